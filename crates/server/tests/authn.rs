//! Authentication by tokens that are not the admin token, in-process over `app()`:
//! ServiceAccounts and their `default` ones, TokenRequest, ServiceAccount JWTs, and
//! OIDC login through `--authentication-config` against the test kit's loopback
//! issuer. Every forged or stale token is a row of one table: 401, with the same body
//! as no token at all.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use jsonwebtoken::{Algorithm, Header};
use moor_server::auth::Authenticator;
use moor_server::auth::oidc::{AuthenticationConfiguration, JwtAuthenticators};
use moor_testkit::oidc::{OidcIssuer, SigningKey, hs256, now, unsigned};
use moor_testkit::server::{MoorServer, Resp};
use serde_json::{Value, json};

const AUD: &str = "moor";
const SAS: &str = "/api/v1/namespaces/default/serviceaccounts";
/// What a token is tried on: discovery, which RBAC's bootstrap policy opens to every
/// authenticated user (`system:discovery`) and to no anonymous one.
const PROBE: &str = "/apis";

/// moor trusting `issuer` for audience [`AUD`].
async fn moor_with(issuer: &OidcIssuer) -> MoorServer {
    let builder = MoorServer::builder();
    let config = builder.options.data_dir.with_extension("authn.yaml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, issuer.authentication_config(AUD)).unwrap();
    builder
        .with(|o| o.token_authn.authentication_config = Some(config))
        .start()
        .await
}

#[tokio::test]
async fn an_unknown_field_in_the_authentication_config_stops_the_start() {
    let builder = MoorServer::builder();
    let config = builder.options.data_dir.with_extension("authn.yaml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let issuer = OidcIssuer::start().await;
    let text = issuer
        .authentication_config(AUD)
        .replace("audiences:", "audience:");
    std::fs::write(&config, text).unwrap();
    let mut options = builder.options.clone();
    options.token_authn.authentication_config = Some(config);
    let err = match moor_server::serve::build(&options, builder.overrides).await {
        Ok(_) => panic!("started with an unknown field"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("--authentication-config") && err.contains("unknown field"),
        "{err}"
    );
}

/// GET `path` presenting `token` (none: no Authorization header).
async fn get_as(h: &MoorServer, path: &str, token: Option<&str>) -> Resp {
    let mut req = Request::builder().method(Method::GET).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    h.raw(req.body(Body::empty()).unwrap()).await
}

/// A TokenRequest for ServiceAccount `sa` in `default` (admin), its answer.
async fn token_request(h: &MoorServer, sa: &str, spec: Value) -> Resp {
    h.post(
        &format!("{SAS}/{sa}/token"),
        &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}),
    )
    .await
}

async fn sa_token(h: &MoorServer, sa: &str) -> String {
    let r = token_request(h, sa, json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["status"]["token"].as_str().unwrap().to_owned()
}

async fn create_sa(h: &MoorServer, name: &str) {
    let r = h
        .post(
            SAS,
            &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[tokio::test]
async fn every_namespace_has_a_default_service_account() {
    let h = MoorServer::start().await;
    let r = h.get(&format!("{SAS}/default")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["kind"], "ServiceAccount");
    let r = h
        .post(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = h
        .get("/api/v1/namespaces/team-a/serviceaccounts/default")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Discovery names the short name and the token subresource.
    let r = h.get("/api/v1").await;
    let res = r.body["resources"].as_array().unwrap();
    let sa = res.iter().find(|r| r["name"] == "serviceaccounts").unwrap();
    assert_eq!(sa["shortNames"], json!(["sa"]));
    assert!(
        res.iter().any(|r| r["name"] == "serviceaccounts/token"),
        "{res:?}"
    );
}

#[tokio::test]
async fn a_namespace_made_before_start_gets_its_default_service_account_at_start() {
    let store: Arc<dyn moor_store::Store> = Arc::new(moor_store::MemoryStore::new());
    let key = "/registry/core/namespaces/old";
    let ns = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "old", "uid": "u-old", "creationTimestamp": "2024-01-01T00:00:00Z"}});
    store.create(key, ns.to_string().into()).await.unwrap();
    let h = MoorServer::over(store).await;
    let r = h
        .get("/api/v1/namespaces/old/serviceaccounts/default")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn token_request_answers_a_token_that_reaches_the_api() {
    let h = MoorServer::start().await;
    let r = token_request(&h, "default", json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["kind"], "TokenRequest");
    assert_eq!(r.body["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(r.body["spec"]["expirationSeconds"], 3600);
    let exp: jiff::Timestamp = r.body["status"]["expirationTimestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let left = exp.as_second() - now();
    assert!((3590..=3600).contains(&left), "{left}");
    let token = r.body["status"]["token"].as_str().unwrap();
    let claims = payload(token);
    assert_eq!(claims["sub"], "system:serviceaccount:default:default");
    assert_eq!(claims["kubernetes.io"]["namespace"], "default");
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["name"], "default");
    assert!(claims["jti"].is_string() && claims["nbf"].is_number() && claims["iat"].is_number());
    let uid = h.get(&format!("{SAS}/default")).await.body["metadata"]["uid"].clone();
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["uid"], uid);
    // The audience defaults to the issuer, moor's own URL.
    assert_eq!(claims["aud"], json!([claims["iss"].clone()]));

    let r = get_as(&h, PROBE, Some(token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Audiences are echoed; lifetimes too short, bound tokens and missing
    // ServiceAccounts are refused.
    let r = token_request(
        &h,
        "default",
        json!({"audiences": ["vault"], "expirationSeconds": 600}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["spec"]["audiences"], json!(["vault"]));
    assert_eq!(
        payload(r.body["status"]["token"].as_str().unwrap())["aud"],
        json!(["vault"])
    );
    let r = token_request(&h, "default", json!({"expirationSeconds": 60})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("spec.expirationSeconds"), "{}", r.text);
    let r = token_request(
        &h,
        "default",
        json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("boundObjectRef"), "{}", r.text);
    let r = token_request(&h, "nobody", json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    // Lifetimes beyond the server's maximum (24h) are capped.
    let r = token_request(&h, "default", json!({"expirationSeconds": 7 * 86_400})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let exp = payload(r.body["status"]["token"].as_str().unwrap())["exp"]
        .as_i64()
        .unwrap();
    assert!(exp - now() <= 86_400, "capped");
}

/// The claims of a JWT, unverified.
fn payload(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(1).unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&raw).unwrap()
}

#[tokio::test]
async fn an_oidc_user_reaches_the_api_with_mapped_name_and_groups() {
    let issuer = OidcIssuer::start().await;
    let h = moor_with(&issuer).await;
    let mut claims = issuer.claims("alice", AUD);
    claims["groups"] = json!(["dev", "ops"]);
    let token = issuer.mint(&claims);
    let r = get_as(&h, PROBE, Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // The same configuration, asked directly, names the user.
    let config =
        AuthenticationConfiguration::parse(&issuer.authentication_config(AUD), "t").unwrap();
    let authn = JwtAuthenticators::new(&config).unwrap();
    let user = authn.authenticate(&token).await.unwrap();
    assert_eq!(user.name, "oidc:alice");
    assert_eq!(
        user.groups,
        vec!["oidc:dev", "oidc:ops", "system:authenticated"]
    );
    // `aud` may be a list holding the audience, and `groups` a single string.
    let mut claims = issuer.claims("bob", AUD);
    claims["aud"] = json!(["elsewhere", AUD]);
    claims["groups"] = json!("qa");
    let user = authn.authenticate(&issuer.mint(&claims)).await.unwrap();
    assert_eq!(user.groups, vec!["oidc:qa", "system:authenticated"]);
}

#[tokio::test]
async fn unknown_key_ids_refetch_the_jwks_at_most_once_per_interval() {
    let issuer = OidcIssuer::start().await;
    let h = moor_with(&issuer).await;
    let token = issuer.mint(&issuer.claims("alice", AUD));
    assert_eq!(get_as(&h, PROBE, Some(&token)).await.status, StatusCode::OK);
    assert_eq!(issuer.jwks_fetches(), 1);
    // A flood of unknown kids right after a fetch fetches nothing (10 s apart).
    for i in 0..5 {
        let stranger = SigningKey::generate(&format!("unknown-{i}"));
        let r = get_as(&h, PROBE, Some(&stranger.sign(&issuer.claims("eve", AUD)))).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(issuer.jwks_fetches(), 1, "rate-limited");
    assert_eq!(get_as(&h, PROBE, Some(&token)).await.status, StatusCode::OK);
    assert_eq!(issuer.jwks_fetches(), 1, "known keys come from the cache");
}

#[tokio::test]
async fn a_rotated_key_is_fetched_when_a_token_names_it() {
    let issuer = OidcIssuer::start().await;
    let config =
        AuthenticationConfiguration::parse(&issuer.authentication_config(AUD), "t").unwrap();
    let interval = std::time::Duration::from_millis(200);
    let authn = JwtAuthenticators::with_min_refresh(&config, interval).unwrap();
    let old = issuer.mint(&issuer.claims("alice", AUD));
    assert!(authn.authenticate(&old).await.is_some());
    assert_eq!(issuer.jwks_fetches(), 1);
    let rotated = SigningKey::generate("issuer-key-2");
    issuer.add_key(&rotated);
    let new = rotated.sign(&issuer.claims("alice", AUD));
    // Accepted once the interval since the last fetch has passed, by one more fetch.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while authn.authenticate(&new).await.is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "rotated key never accepted"
        );
        tokio::time::sleep(interval / 4).await;
    }
    assert_eq!(issuer.jwks_fetches(), 2);
    assert!(authn.authenticate(&old).await.is_some());
}

/// One forged or stale token.
struct Case {
    name: &'static str,
    token: String,
}

#[tokio::test]
async fn bad_tokens_get_401_and_no_detail() {
    let issuer = OidcIssuer::start().await;
    let h = moor_with(&issuer).await;
    // Valid claims, changed by `f`.
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = issuer.claims("mallory", AUD);
        f(&mut c);
        c
    };
    let t = now();
    let attacker = SigningKey::generate("attacker");

    // ServiceAccount tokens gone stale: deleted, and deleted then recreated.
    create_sa(&h, "gone").await;
    let gone = sa_token(&h, "gone").await;
    assert_eq!(get_as(&h, PROBE, Some(&gone)).await.status, StatusCode::OK);
    create_sa(&h, "reborn").await;
    let reborn = sa_token(&h, "reborn").await;
    assert_eq!(
        get_as(&h, PROBE, Some(&reborn)).await.status,
        StatusCode::OK
    );
    for sa in ["gone", "reborn"] {
        let r = h.delete(&format!("{SAS}/{sa}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    create_sa(&h, "reborn").await;
    // A namespace's deletion takes its ServiceAccounts along.
    let r = h
        .post(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = h
        .post(
            "/api/v1/namespaces/doomed/serviceaccounts/default/token",
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let doomed = r.body["status"]["token"].as_str().unwrap().to_owned();
    assert_eq!(
        get_as(&h, PROBE, Some(&doomed)).await.status,
        StatusCode::OK
    );
    let r = h.delete("/api/v1/namespaces/doomed").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let default_sa = sa_token(&h, "default").await;
    let mut tampered_sa: Vec<&str> = default_sa.split('.').collect();
    let forged_payload = {
        use base64::Engine;
        let mut c = payload(&default_sa);
        c["kubernetes.io"]["serviceaccount"]["name"] = json!("reborn");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c.to_string())
    };
    tampered_sa[1] = &forged_payload;
    let tampered_sa = tampered_sa.join(".");
    let other_audience = {
        let r = token_request(&h, "default", json!({"audiences": ["vault"]})).await;
        r.body["status"]["token"].as_str().unwrap().to_owned()
    };

    let cases = vec![
        Case {
            name: "malformed",
            token: "not.a.jwt".into(),
        },
        Case {
            name: "garbage",
            token: "moor_0000".into(),
        },
        Case {
            name: "expired",
            token: issuer.mint(&with(&|c| {
                c["iat"] = json!(t - 7200);
                c["nbf"] = json!(t - 7200);
                c["exp"] = json!(t - 3600);
            })),
        },
        Case {
            name: "not yet valid",
            token: issuer.mint(&with(&|c| c["nbf"] = json!(t + 3600))),
        },
        Case {
            name: "wrong audience",
            token: issuer.mint(&with(&|c| c["aud"] = json!("other"))),
        },
        Case {
            name: "wrong issuer",
            token: issuer.mint(&with(&|c| c["iss"] = json!("https://evil.test"))),
        },
        Case {
            name: "issuer with a trailing slash",
            token: issuer.mint(&with(&|c| c["iss"] = json!(format!("{}/", issuer.url)))),
        },
        Case {
            name: "missing exp",
            token: issuer.mint(&with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            })),
        },
        Case {
            name: "missing aud",
            token: issuer.mint(&with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            })),
        },
        Case {
            name: "unknown key under the issuer's kid",
            token: {
                let mut header = Header::new(Algorithm::ES256);
                header.kid = Some(issuer.key.kid.clone());
                attacker.sign_with(header, &with(&|_| {}))
            },
        },
        Case {
            name: "unknown key and kid",
            token: attacker.sign(&with(&|_| {})),
        },
        Case {
            name: "alg none",
            token: unsigned(&with(&|_| {})),
        },
        Case {
            name: "alg none with the issuer's kid",
            token: {
                use base64::Engine;
                let e = |v: &Value| {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
                };
                let h = json!({"alg": "none", "kid": issuer.key.kid});
                let sig = issuer.mint(&with(&|_| {}));
                let sig = sig.rsplit('.').next().unwrap().to_owned();
                format!("{}.{}.{sig}", e(&h), e(&with(&|_| {})))
            },
        },
        Case {
            name: "embedded jwk header",
            token: {
                let mut header = Header::new(Algorithm::ES256);
                header.kid = Some(attacker.kid.clone());
                header.jwk = Some(attacker.jwk.clone());
                attacker.sign_with(header, &with(&|_| {}))
            },
        },
        Case {
            name: "embedded jwk header under the issuer's kid",
            token: {
                let mut header = Header::new(Algorithm::ES256);
                header.kid = Some(issuer.key.kid.clone());
                let mut jwk = attacker.jwk.clone();
                jwk.common.key_id = Some(issuer.key.kid.clone());
                header.jwk = Some(jwk);
                attacker.sign_with(header, &with(&|_| {}))
            },
        },
        Case {
            name: "jku and x5u headers",
            token: {
                let mut header = Header::new(Algorithm::ES256);
                header.kid = Some(attacker.kid.clone());
                header.jku = Some(format!("{}/keys", issuer.url));
                header.x5u = Some(format!("{}/keys", issuer.url));
                attacker.sign_with(header, &with(&|_| {}))
            },
        },
        Case {
            name: "HS256 with the public key as secret",
            token: hs256(
                issuer.key.public_pem.as_bytes(),
                Some(&issuer.key.kid),
                &with(&|_| {}),
            ),
        },
        Case {
            name: "groups not a string array",
            token: issuer.mint(&with(&|c| c["groups"] = json!(5))),
        },
        Case {
            name: "groups holding a number",
            token: issuer.mint(&with(&|c| c["groups"] = json!(["dev", 5]))),
        },
        Case {
            name: "exp a string",
            token: issuer.mint(&with(&|c| c["exp"] = json!((t + 3600).to_string()))),
        },
        Case {
            name: "sub a number",
            token: issuer.mint(&with(&|c| c["sub"] = json!(42))),
        },
        Case {
            name: "aud a number",
            token: issuer.mint(&with(&|c| c["aud"] = json!(7))),
        },
        Case {
            name: "deleted ServiceAccount",
            token: gone,
        },
        Case {
            name: "recreated ServiceAccount",
            token: reborn,
        },
        Case {
            name: "ServiceAccount of a deleted namespace",
            token: doomed,
        },
        Case {
            name: "ServiceAccount token with a changed payload",
            token: tampered_sa,
        },
        Case {
            name: "ServiceAccount token for another audience",
            token: other_audience,
        },
    ];

    let baseline = get_as(&h, PROBE, None).await;
    assert_eq!(baseline.status, StatusCode::UNAUTHORIZED);
    let mut failures = Vec::new();
    for case in &cases {
        let r = get_as(&h, PROBE, Some(&case.token)).await;
        if r.status != StatusCode::UNAUTHORIZED {
            failures.push(format!("{}: {} {}", case.name, r.status, r.text));
        } else if r.text != baseline.text {
            failures.push(format!("{}: body tells more: {}", case.name, r.text));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // The valid token still works: the rows failed for their own reasons.
    let ok = get_as(&h, PROBE, Some(&issuer.mint(&with(&|_| {})))).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(
        get_as(&h, PROBE, Some(&default_sa)).await.status,
        StatusCode::OK
    );
}

/// What a ServiceAccount token costs per request, split into the signature check
/// and the uid lookup (a store get), over SQLite. A measurement, run by hand:
/// `cargo test --workspace --locked --test authn -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement"]
async fn measure_service_account_authentication() {
    use moor_server::auth::serviceaccount::{
        ServiceAccountTokens, SigningKey as SaKey, service_account_key,
    };
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn moor_store::Store> =
        Arc::new(moor_store::SqliteStore::open(&dir.path().join("m.db")).unwrap());
    let sa = json!({"metadata": {"name": "robot", "namespace": "ns", "uid": "u1"}});
    store
        .create(&service_account_key("ns", "robot"), sa.to_string().into())
        .await
        .unwrap();
    let key = SaKey::load_or_generate(None, dir.path()).unwrap();
    let t = ServiceAccountTokens::new(
        key,
        "https://moor.test".into(),
        Vec::new(),
        Duration::from_secs(3600),
        store.clone(),
    );
    let n = 500;
    let tokens: Vec<String> = (0..n)
        .map(|_| {
            t.mint("ns", "robot", "u1", &[], Duration::from_secs(3600))
                .unwrap()
                .token
        })
        .collect();
    let start = Instant::now();
    for token in &tokens {
        assert!(t.authenticate(token).await.is_some());
    }
    let first = start.elapsed() / n;
    let start = Instant::now();
    for token in &tokens {
        assert!(t.authenticate(token).await.is_some());
    }
    let again = start.elapsed() / n;
    let start = Instant::now();
    for _ in 0..n {
        assert!(
            store
                .get(&service_account_key("ns", "robot"))
                .await
                .unwrap()
                .is_some()
        );
    }
    let get = start.elapsed() / n;
    println!(
        "ServiceAccount token: first use {first:?}, later uses {again:?} (of which the uid's store get {get:?})"
    );
}

#[tokio::test]
async fn registry_clients_log_in_with_a_service_account_token_as_password() {
    use base64::Engine;
    let h = MoorServer::start().await;
    create_sa(&h, "pusher").await;
    let token = sa_token(&h, "pusher").await;
    let basic = |t: &str| {
        let creds = base64::engine::general_purpose::STANDARD.encode(format!("robot:{t}"));
        Request::builder()
            .uri("/v2/")
            .header("authorization", format!("Basic {creds}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(h.raw(basic(&token)).await.status, StatusCode::OK);
    let r = h.delete(&format!("{SAS}/pusher")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(h.raw(basic(&token)).await.status, StatusCode::UNAUTHORIZED);
}
