//! Who the console's user is, and as whom it asks: OIDC login with PKCE through the
//! real listener against the test issuer (a full round trip, denial, wrong state, a
//! PKCE mismatch and a replayed code; `--console-url` as the redirect URI whatever
//! the `Host`, with `Secure` cookies on plain HTTP), sessions shared by two replicas on one store
//! (logout on one ends them on both), "who runs it" in cluster mode, listed from
//! the cluster (the kube double) with the user's own token, and the OIDC login in
//! cluster mode, whose ID token the cluster (the double's TokenReview) must accept.

use crate::console_support;

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode, header};
use console_support::{builder, digest, login, populate, push, request};
use moor_testkit::oidc::OidcIssuer;
use moor_testkit::{KubeDouble, MoorServer};
use serde_json::json;

/// The client id (and audience) the console logs in with.
const CLIENT: &str = "moor-console";

/// moor on a real plain-HTTP listener trusting `issuer`, with `--console-url`
/// `console_url` if any.
async fn oidc_listener(issuer: &OidcIssuer, console_url: Option<&str>) -> MoorServer {
    let b = builder();
    let config = b.options.data_dir.with_file_name("authn.yaml");
    std::fs::write(&config, issuer.authentication_config(CLIENT)).expect("config");
    let console_url = console_url.map(|u| u.parse().expect("console URL"));
    b.with(|o| {
        o.token_authn.authentication_config = Some(config);
        o.console_url = console_url;
    })
    .listen()
    .await
}

/// moor on a real listener trusting `issuer`, with the console's users and streams,
/// and `oidc:dave` (group `oidc:team-b-devs`) editing team-b only.
async fn oidc_server(issuer: &OidcIssuer) -> MoorServer {
    oidc_server_at(issuer, None).await
}

/// [`oidc_server`] with `--console-url` `console_url`.
async fn oidc_server_at(issuer: &OidcIssuer, console_url: Option<&str>) -> MoorServer {
    let server = oidc_listener(issuer, console_url).await;
    populate(&server).await;
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "devs-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "oidc:team-b-devs"}],
    });
    let r = server
        .post(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/team-b/rolebindings",
            &binding,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // The policy follows the store: wait until a token of dave's may read team-b.
    let mut claims = issuer.claims("dave", CLIENT);
    claims["groups"] = json!(["team-b-devs"]);
    let token = issuer.mint(&claims);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = server
            .http
            .get(server.url("/apis/image.openshift.io/v1/namespaces/team-b/imagestreams"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("GET");
        if r.status() == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "dave never may read team-b");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server
}

/// A browser without redirects or a cookie jar (cookies are passed by hand),
/// trusting the issuer's CA.
fn browser(issuer: &OidcIssuer) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(reqwest::Certificate::from_pem(issuer.ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

/// The `name=value` of cookie `name` set by `resp`, and its full `Set-Cookie` line.
fn cookie_of(resp: &reqwest::Response, name: &str) -> Option<(String, String)> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            (
                v.split(';').next().unwrap_or_default().to_owned(),
                v.to_owned(),
            )
        })
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()[header::LOCATION]
        .to_str()
        .expect("location")
        .to_owned()
}

/// A started login: the flow cookie and the issuer's authorization URL.
struct Started {
    cookie: String,
    /// The flow cookie's whole `Set-Cookie` line.
    line: String,
    authorize: String,
}

async fn start(server: &MoorServer, client: &reqwest::Client) -> Started {
    start_as(server, client, None).await
}

/// [`start`] with the `Host` header `host` instead of the listener's address.
async fn start_as(server: &MoorServer, client: &reqwest::Client, host: Option<&str>) -> Started {
    let mut r = client.get(server.url("/console/oidc/start?issuer=0"));
    if let Some(host) = host {
        r = r.header(header::HOST, host);
    }
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (cookie, line) = cookie_of(&r, "moor-console-oidc").expect("flow cookie");
    for part in ["HttpOnly", "SameSite=Lax", "Path=/console", "Max-Age=600"] {
        assert!(line.contains(part), "{line} lacks {part}");
    }
    Started {
        cookie,
        line,
        authorize: location(&r),
    }
}

/// The issuer's answer to the authorization: the callback URL it redirects to.
async fn authorize(client: &reqwest::Client, started: &Started) -> reqwest::Url {
    let r = client.get(&started.authorize).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    reqwest::Url::parse(&location(&r)).expect("callback URL")
}

fn query(url: &reqwest::Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

async fn callback(
    client: &reqwest::Client,
    url: &reqwest::Url,
    cookie: &str,
) -> (reqwest::StatusCode, Option<(String, String)>, String) {
    let r = client
        .get(url.clone())
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let session = cookie_of(&r, "moor-console");
    (status, session, r.text().await.unwrap())
}

#[tokio::test]
async fn oidc_login_with_pkce_starts_a_session_showing_the_users_namespaces_only() {
    let issuer = OidcIssuer::start().await;
    issuer.approve_as("dave", &["team-b-devs"]);
    let server = oidc_server(&issuer).await;
    let client = browser(&issuer);

    let page = login_page(&server, &client, &issuer).await;
    assert!(
        page.contains(r#"href="/console/oidc/start?issuer=0""#),
        "{page}"
    );

    let started = start(&server, &client).await;
    let authorize_url = reqwest::Url::parse(&started.authorize).unwrap();
    assert!(
        started
            .authorize
            .starts_with(&format!("{}/authorize?", issuer.url))
    );
    assert_eq!(
        query(&authorize_url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(query(&authorize_url, "client_id").as_deref(), Some(CLIENT));
    assert_eq!(
        query(&authorize_url, "redirect_uri"),
        Some(server.url("/console/oidc/callback"))
    );
    for k in ["state", "nonce", "code_challenge"] {
        assert!(
            query(&authorize_url, k).is_some_and(|v| v.len() >= 32),
            "{k}"
        );
    }

    let back = authorize(&client, &started).await;
    assert!(query(&back, "code").is_some(), "{back}");
    let (status, session, text) = callback(&client, &back, &started.cookie).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        text.contains("Signed in as <strong>oidc:dave</strong>"),
        "{text}"
    );
    assert!(text.contains(r#"http-equiv="refresh" content="0;url=/console/""#));
    assert!(!text.contains("eyJ"), "no token in the page: {text}");
    let (session, line) = session.expect("session cookie");
    assert!(
        line.contains("SameSite=Strict") && line.contains("HttpOnly"),
        "{line}"
    );
    assert!(!line.contains("eyJ"), "the cookie is not the ID token");
    assert_eq!(issuer.exchanges(), 1);

    let r = client
        .get(server.url("/console/"))
        .header(header::COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(text.contains(r#"href="/console/ns/team-b/""#), "{text}");
    assert!(!text.contains("team-a"), "{text}");

    // The same callback again (its cookie replayed): the code was taken once.
    let (status, session, text) = callback(&client, &back, &started.cookie).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert!(session.is_none());
    assert!(text.contains("already used code"), "{text}");
    // A flow cookie changed by a byte opens nothing, and is refused before any
    // exchange.
    let exchanges = issuer.exchanges();
    let started = start(&server, &client).await;
    let back = authorize(&client, &started).await;
    let (name, value) = started.cookie.split_once('=').expect("name=value");
    let flipped = if value.ends_with('A') { 'B' } else { 'A' };
    let tampered = format!("{name}={}{flipped}", &value[..value.len() - 1]);
    let (status, session, text) = callback(&client, &back, &tampered).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(session.is_none());
    assert!(
        text.contains("expired or was started in another browser"),
        "{text}"
    );
    assert_eq!(
        issuer.exchanges(),
        exchanges,
        "no exchange for a tampered login"
    );
}

/// With `--console-url https://moor.example.test` on a plain-HTTP listener, the
/// issuer is given that URL's callback whatever the `Host` header says, and the
/// console's cookies are `Secure`; the login completes at the callback. Without it,
/// the `Host` header's URL over http, and no `Secure`.
#[tokio::test]
async fn console_url_is_the_redirect_uri_whatever_the_host_and_makes_cookies_secure() {
    let issuer = OidcIssuer::start().await;
    issuer.approve_as("dave", &["team-b-devs"]);
    let server = oidc_server_at(&issuer, Some("https://moor.example.test/")).await;
    let client = browser(&issuer);
    let callback_uri = "https://moor.example.test/console/oidc/callback";

    for host in [None, Some("attacker.example:8080")] {
        let started = start_as(&server, &client, host).await;
        let authorize_url = reqwest::Url::parse(&started.authorize).unwrap();
        assert_eq!(
            query(&authorize_url, "redirect_uri").as_deref(),
            Some(callback_uri),
            "Host {host:?}"
        );
        assert!(started.line.contains("; Secure"), "{}", started.line);
    }
    let r = client
        .get(server.url("/console/login"))
        .send()
        .await
        .unwrap();
    let (_, line) = cookie_of(&r, "moor-console-login").expect("login form cookie");
    assert!(line.contains("; Secure"), "{line}");

    // The issuer sends the browser to the public URL; the proxy forwards the
    // callback to moor, which exchanges the code with the same redirect_uri.
    let started = start_as(&server, &client, Some("moor:8443")).await;
    let back = authorize(&client, &started).await;
    assert!(back.as_str().starts_with(callback_uri), "{back}");
    let mut forwarded = reqwest::Url::parse(&server.url("/console/oidc/callback")).unwrap();
    forwarded.set_query(back.query());
    let (status, session, text) = callback(&client, &forwarded, &started.cookie).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (_, line) = session.expect("session cookie");
    assert!(
        line.contains("; Secure") && line.contains("SameSite=Strict"),
        "{line}"
    );
    assert_eq!(issuer.exchanges(), 1);

    // Without --console-url: the Host header's URL, over http (moor serves no TLS).
    let plain = oidc_listener(&issuer, None).await;
    let started = start_as(&plain, &client, Some("moor.internal:8080")).await;
    assert_eq!(
        query(
            &reqwest::Url::parse(&started.authorize).unwrap(),
            "redirect_uri"
        )
        .as_deref(),
        Some("http://moor.internal:8080/console/oidc/callback")
    );
    assert!(!started.line.contains("; Secure"), "{}", started.line);
}

#[tokio::test]
async fn oidc_logins_refused_show_why_and_start_no_session() {
    let issuer = OidcIssuer::start().await;
    let server = oidc_server(&issuer).await;
    let client = browser(&issuer);

    // The user declines at the issuer.
    let started = start(&server, &client).await;
    let back = authorize(&client, &started).await;
    assert_eq!(query(&back, "error").as_deref(), Some("access_denied"));
    let (status, session, text) = callback(&client, &back, &started.cookie).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert!(session.is_none());
    assert!(
        text.contains("The identity provider did not log you in: access_denied"),
        "{text}"
    );
    assert!(text.contains(r#"role="alert""#));

    issuer.approve_as("dave", &["team-b-devs"]);
    // A wrong state: refused before any exchange.
    let started = start(&server, &client).await;
    let mut back = authorize(&client, &started).await;
    let code = query(&back, "code").expect("code");
    back.query_pairs_mut()
        .clear()
        .append_pair("code", &code)
        .append_pair("state", "forged");
    let (status, session, text) = callback(&client, &back, &started.cookie).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(session.is_none());
    assert!(text.contains("wrong state"), "{text}");
    // Without the flow cookie (another browser), nothing either.
    let (status, session, _) = callback(&client, &back, "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(session.is_none());
    assert_eq!(issuer.exchanges(), 0, "no code was exchanged");

    // A code bound to another login's PKCE challenge: the issuer refuses the
    // verifier, and the console says so.
    let first = start(&server, &client).await;
    let first_back = authorize(&client, &first).await;
    let stolen = query(&first_back, "code").expect("code");
    let second = start(&server, &client).await;
    let second_state =
        query(&reqwest::Url::parse(&second.authorize).unwrap(), "state").expect("state");
    let mut forged = first_back.clone();
    forged
        .query_pairs_mut()
        .clear()
        .append_pair("code", &stolen)
        .append_pair("state", &second_state);
    let (status, session, text) = callback(&client, &forged, &second.cookie).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert!(session.is_none());
    assert!(
        text.contains("refused the login: invalid_grant (PKCE verification failed)"),
        "{text}"
    );

    // A code used once is refused the second time (the first login's own flow,
    // verifier and state, after the code went to the second).
    let (status, session, text) = callback(&client, &first_back, &first.cookie).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert!(session.is_none());
    assert!(text.contains("already used code"), "{text}");
    assert_eq!(issuer.exchanges(), 2);
}

#[tokio::test]
async fn the_test_issuer_checks_the_pkce_verifier_and_uses_a_code_once() {
    let issuer = OidcIssuer::start().await;
    issuer.approve_as("dave", &[]);
    let client = browser(&issuer);
    let verifier = "a-verifier-of-forty-three-characters-or-more-0000";
    let challenge = {
        use base64::Engine as _;
        use sha2::Digest as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()))
    };
    let code = || async {
        let r = client
            .get(format!("{}/authorize", issuer.url))
            .query(&[
                ("response_type", "code"),
                ("client_id", CLIENT),
                ("redirect_uri", "http://127.0.0.1:1/cb"),
                ("state", "s"),
                ("nonce", "n"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .unwrap();
        let back = reqwest::Url::parse(&location(&r)).unwrap();
        query(&back, "code").expect("code")
    };
    let exchange = |code: String, verifier: &'static str| {
        let client = client.clone();
        let url = format!("{}/token", issuer.url);
        async move {
            let r = client
                .post(url)
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", "http://127.0.0.1:1/cb"),
                    ("client_id", CLIENT),
                    ("code_verifier", verifier),
                ])
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, body) = exchange(code().await, "the-wrong-verifier").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant", "{body}");
    let c = code().await;
    let (status, body) = exchange(c.clone(), verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["id_token"].as_str().is_some());
    let (status, body) = exchange(c, verifier).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a replayed code");
    assert_eq!(body["error"], "invalid_grant", "{body}");
}

#[tokio::test]
async fn a_session_started_on_one_replica_works_on_another_until_logout_on_either() {
    let store: std::sync::Arc<dyn moor_store::Store> =
        std::sync::Arc::new(moor_store::MemoryStore::new());
    let a = builder().store(store.clone()).start().await;
    let b = builder().store(store).start().await;
    populate(&a).await;
    let session = login(&a, "alice-token").await.ok().expect("alice on a");
    let page = session.get(&b, "/console/ns/team-a/").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(
        page.text.contains("Signed in as <strong>alice</strong>"),
        "{}",
        page.text
    );
    // The CSRF token is the session's on both.
    let r = session.post(&b, "/console/logout", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    for (name, server) in [("a", &a), ("b", &b)] {
        let r = server
            .raw(request(Method::GET, "/console/", &session.cookie, None))
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{name}");
        assert_eq!(r.headers[header::LOCATION], "/console/login", "{name}");
    }
    // The store holds no trace of the session's id or token.
    let all = a
        .store
        .list("/moor/console/", Default::default())
        .await
        .unwrap();
    assert!(all.kvs.is_empty(), "logged out: no session record left");
    let other = login(&b, "alice-token").await.ok().expect("alice on b");
    let all = a
        .store
        .list("/moor/console/sessions/", Default::default())
        .await
        .unwrap();
    assert_eq!(all.kvs.len(), 1);
    let raw = String::from_utf8_lossy(&all.kvs[0].value);
    assert!(!raw.contains("alice-token"), "{raw}");
    let id = other.cookie.trim_start_matches("moor-console=");
    assert!(!all.kvs[0].key.contains(id) && !raw.contains(id));
}

/// In cluster mode, "who runs it" lists the cluster's workloads with the user's own
/// token: dave may list Deployments and Pods of team-a and sees his; erin may read
/// the stream but list no workload, and is told so.
#[tokio::test]
async fn cluster_mode_lists_who_runs_it_from_the_cluster_as_the_user() {
    let double = KubeDouble::start().await;
    double.add_namespace("team-a");
    for user in ["dave", "erin"] {
        double.add_token(&format!("{user}-token"), user, &["system:authenticated"]);
        for verb in ["get", "list", "watch"] {
            double.allow(user, verb, "imagestreams", "team-a");
        }
    }
    double.allow("dave", "list", "deployments", "team-a");
    double.allow("dave", "list", "pods", "team-a");
    let kubeconfig = double.kubeconfig();
    let server = MoorServer::builder()
        .with(|o| {
            o.cluster = Some(moor_server::auth::cluster::ClusterSource::Kubeconfig(
                kubeconfig,
            ))
        })
        .start()
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = server
            .post(
                "/apis/image.openshift.io/v1/namespaces/team-a/imagestreams",
                &json!({"metadata": {"name": "app"}}),
            )
            .await;
        if r.status == StatusCode::CREATED {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "team-a never appeared: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (old, current) = (digest("first"), digest("second"));
    push(&server, "team-a", "v1", &old).await;
    push(&server, "team-a", "v1", &current).await;
    let deployment = |name: &str, image: String| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": name, "namespace": "team-a"},
               "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}})
    };
    double.add_workload(
        "deployments",
        deployment("web", format!("quay.io/team/app@{old}")),
    );
    double.add_workload(
        "deployments",
        deployment("api", format!("quay.io/team/app@{current}")),
    );
    double.add_workload(
        "pods",
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "job-pod", "namespace": "team-a"},
               "spec": {"containers": [{"name": "c", "image": format!("quay.io/team/app@{current}")}]}}),
    );

    let dave = login(&server, "dave-token").await.ok().expect("dave");
    let page = dave.get(&server, "/console/ns/team-a/streams/app").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    for w in ["Deployment/web", "Deployment/api", "Pod/job-pod"] {
        assert!(
            page.text.contains(&format!(r#"data-workload="{w}""#)),
            "{w}: {}",
            page.text
        );
    }
    assert!(
        page.text
            .contains(r#"data-workload="Deployment/web" data-old"#),
        "{}",
        page.text
    );
    assert!(
        page.text
            .contains("Not shown (you may not list them): StatefulSet, DaemonSet, Job, CronJob."),
        "{}",
        page.text
    );

    let erin = login(&server, "erin-token").await.ok().expect("erin");
    let page = erin.get(&server, "/console/ns/team-a/streams/app").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(!page.text.contains("data-workload="), "{}", page.text);
    assert!(
        page.text.contains(
            "Not shown (you may not list them): Deployment, StatefulSet, DaemonSet, Job, CronJob, Pod."
        ),
        "{}",
        page.text
    );
}

/// moor in cluster mode with the double, on a real listener, whose console logs in
/// with `issuer` (for client [`CLIENT`]); team-a and team-b each with stream `app`
/// (created once the namespace mirror has them), team-a's `app:v1` at `current`.
async fn cluster_oidc_server(
    double: &KubeDouble,
    issuer: &OidcIssuer,
    current: &str,
) -> MoorServer {
    let kubeconfig = double.kubeconfig();
    let b = MoorServer::builder();
    let config = b.options.data_dir.with_file_name("authn.yaml");
    if let Some(parent) = config.parent() {
        std::fs::create_dir_all(parent).expect("server dir");
    }
    std::fs::write(&config, issuer.authentication_config(CLIENT)).expect("config");
    let server = b
        .with(|o| {
            o.cluster = Some(moor_server::auth::cluster::ClusterSource::Kubeconfig(
                kubeconfig,
            ));
            o.token_authn.authentication_config = Some(config);
        })
        .listen()
        .await;
    for ns in ["team-a", "team-b"] {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = server
                .post(
                    &format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams"),
                    &json!({"metadata": {"name": "app"}}),
                )
                .await;
            if r.status == StatusCode::CREATED {
                break;
            }
            assert!(Instant::now() < deadline, "{ns} never appeared: {}", r.text);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    push(&server, "team-a", "v1", current).await;
    server
}

/// In cluster mode the console logs in through the OIDC issuer the cluster trusts,
/// and its session uses the ID token as alice's bearer token everywhere: the
/// cluster's SelfSubjectReview, namespaces, SelfSubjectAccessReviews and workloads,
/// and moor's image API, whose TokenReview asks the cluster about that same token.
/// The pages show what the cluster lets `oidc:alice` see; the session ends no later
/// than the token.
#[tokio::test]
async fn cluster_mode_oidc_login_uses_the_id_token_with_the_cluster_and_moor() {
    let issuer = OidcIssuer::start().await;
    issuer.approve_as("alice", &["devs"]);
    let double = KubeDouble::start().await;
    double.trust_issuer(&issuer, CLIENT);
    for ns in ["team-a", "team-b"] {
        double.add_namespace(ns);
    }
    double.allow("oidc:alice", "list", "namespaces", "*");
    for verb in ["get", "list", "watch"] {
        double.allow("oidc:alice", verb, "imagestreams", "team-a");
    }
    double.allow("oidc:devs", "list", "deployments", "team-a");
    let current = digest("current");
    double.add_workload(
        "deployments",
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "team-a"},
               "spec": {"template": {"spec": {"containers": [
                   {"name": "c", "image": format!("quay.io/team/app@{current}")}]}}}}),
    );
    let server = cluster_oidc_server(&double, &issuer, &current).await;
    let client = browser(&issuer);

    login_page(&server, &client, &issuer).await;
    let started = start(&server, &client).await;
    let back = authorize(&client, &started).await;
    let (status, session, text) = callback(&client, &back, &started.cookie).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        text.contains("Signed in as <strong>oidc:alice</strong>"),
        "{text}"
    );
    let (session, _) = session.expect("session cookie");
    let id_token = issuer.id_tokens().pop().expect("an ID token was issued");

    // The session ends no later than the ID token (an hour), not after 8 hours.
    let records = server
        .store
        .list("/moor/console/sessions/", Default::default())
        .await
        .unwrap();
    assert_eq!(records.kvs.len(), 1);
    let record: serde_json::Value = serde_json::from_slice(&records.kvs[0].value).unwrap();
    let expires = record["expires"].as_i64().expect("expires");
    assert!(
        expires <= moor_testkit::oidc::now() + 3600,
        "the session outlives its ID token: {record}"
    );
    assert!(!String::from_utf8_lossy(&records.kvs[0].value).contains(&id_token));

    let get = |path: &'static str| {
        let (client, session, url) = (client.clone(), session.clone(), server.url(path));
        async move {
            let r = client
                .get(url)
                .header(header::COOKIE, session)
                .send()
                .await
                .unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    let (status, text) = get("/console/").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        text.contains("Signed in as <strong>oidc:alice</strong>"),
        "{text}"
    );
    for ns in ["team-a", "team-b"] {
        assert!(
            text.contains(&format!(r#"href="/console/ns/{ns}/""#)),
            "{ns}: {text}"
        );
    }
    assert!(text.contains("not readable"), "team-b's streams: {text}");

    let (status, text) = get("/console/ns/team-a/streams/app").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains(r#"data-workload="Deployment/web""#), "{text}");
    assert!(
        text.contains(
            "Not shown (you may not list them): StatefulSet, DaemonSet, Job, CronJob, Pod."
        ),
        "{text}"
    );
    let (status, text) = get("/console/ns/team-b/").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("oidc:alice"), "{text}");

    // The cluster was asked as alice, with her ID token, and moor's own API had the
    // cluster review that token.
    let as_alice: Vec<String> = double
        .calls()
        .into_iter()
        .filter(|c| c.bearer.as_deref() == Some(id_token.as_str()))
        .map(|c| format!("{} {}", c.method, c.path))
        .collect();
    for call in [
        "POST /apis/authentication.k8s.io/v1/selfsubjectreviews",
        "GET /api/v1/namespaces",
        "POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        "GET /apis/apps/v1/namespaces/team-a/deployments",
    ] {
        assert!(
            as_alice
                .iter()
                .any(|c| c == call || c.starts_with(&format!("{call}?"))),
            "{call} not among {as_alice:?}"
        );
    }
    assert!(
        double.reviewed_tokens().contains(&id_token),
        "moor's API did not ask the cluster's TokenReview"
    );
}

/// An ID token the cluster does not accept (the cluster trusts the issuer only for
/// another audience) ends on the login page saying so, not in a 500; moor itself,
/// which adds no JWT authenticator in cluster mode, refuses the token too.
#[tokio::test]
async fn cluster_mode_oidc_login_the_cluster_refuses_ends_on_the_login_page() {
    let issuer = OidcIssuer::start().await;
    issuer.approve_as("alice", &["devs"]);
    let double = KubeDouble::start().await;
    double.trust_issuer(&issuer, "kubernetes");
    for ns in ["team-a", "team-b"] {
        double.add_namespace(ns);
    }
    double.allow("oidc:alice", "*", "*", "*");
    let server = cluster_oidc_server(&double, &issuer, &digest("current")).await;
    let client = browser(&issuer);

    let started = start(&server, &client).await;
    let back = authorize(&client, &started).await;
    let (status, session, text) = callback(&client, &back, &started.cookie).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert!(session.is_none());
    assert!(text.contains(r#"role="alert""#), "{text}");
    assert!(
        text.contains(&format!(
            "The cluster does not accept the ID token of {} for client {CLIENT}",
            issuer.url
        )),
        "{text}"
    );
    assert!(text.contains("Log in to moor"), "the login page: {text}");
    let id_token = issuer.id_tokens().pop().expect("an ID token was issued");
    assert!(!text.contains(&id_token));
    let records = server
        .store
        .list("/moor/console/sessions/", Default::default())
        .await
        .unwrap();
    assert!(records.kvs.is_empty(), "no session");

    let r = server
        .http
        .get(server.url("/apis/image.openshift.io/v1/namespaces/team-a/imagestreams"))
        .bearer_auth(&id_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "moor has no JWT authenticator here"
    );
    // The same issuer's token for the audience the cluster trusts is accepted.
    let token = issuer.mint(&issuer.claims("alice", "kubernetes"));
    let r = server
        .http
        .get(server.url("/apis/image.openshift.io/v1/namespaces/team-a/imagestreams"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// In cluster mode, a user the cluster does not let list namespaces is shown those
/// that hold image streams they may list (moor knows where its streams are), not an
/// empty console.
#[tokio::test]
async fn cluster_mode_shows_who_may_not_list_namespaces_those_with_streams_they_may_list() {
    let issuer = OidcIssuer::start().await;
    issuer.approve_as("alice", &["devs"]);
    let double = KubeDouble::start().await;
    double.trust_issuer(&issuer, CLIENT);
    // `team-a-x` sorts before `team-a/`: the scan for namespaces must not skip it.
    for ns in ["team-a", "team-b", "team-a-x"] {
        double.add_namespace(ns);
    }
    for verb in ["get", "list", "watch"] {
        for ns in ["team-a", "team-a-x"] {
            double.allow("oidc:alice", verb, "imagestreams", ns);
        }
    }
    let server = cluster_oidc_server(&double, &issuer, &digest("current")).await;
    for name in ["one", "two"] {
        let r = server
            .post(
                "/apis/image.openshift.io/v1/namespaces/team-a-x/imagestreams",
                &json!({"metadata": {"name": name}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let client = browser(&issuer);
    let session = oidc_login(&server, &client).await;
    let (status, _, text) = console_page(&server, &client, &session).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    for ns in ["team-a", "team-a-x"] {
        assert!(
            text.contains(&format!(r#"href="/console/ns/{ns}/""#)),
            "{ns}: {text}"
        );
    }
    assert!(!text.contains("team-b"), "{text}");
}

/// The console's login page, which must offer `issuer`.
async fn login_page(server: &MoorServer, client: &reqwest::Client, issuer: &OidcIssuer) -> String {
    let page = client
        .get(server.url("/console/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("Log in with {}", issuer.url)),
        "{page}"
    );
    page
}

/// Logs `client` in through the OIDC flow: the session cookie (`name=value`).
async fn oidc_login(server: &MoorServer, client: &reqwest::Client) -> String {
    let started = start(server, client).await;
    let back = authorize(client, &started).await;
    let (status, session, text) = callback(client, &back, &started.cookie).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    session.expect("session cookie").0
}

/// `GET /console/` with `session`: the status, the `Set-Cookie` of the session
/// cookie if any, and the page.
async fn console_page(
    server: &MoorServer,
    client: &reqwest::Client,
    session: &str,
) -> (reqwest::StatusCode, Option<String>, String) {
    let r = client
        .get(server.url("/console/"))
        .header(header::COOKIE, session)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let set = cookie_of(&r, "moor-console").map(|c| c.1);
    (status, set, r.text().await.unwrap())
}

/// Logs dave in to a server whose issuer gives refresh tokens and 30 s ID tokens, has
/// `fail` break the next refresh, and asserts that the next page is the login page
/// saying why (`reason`), with the session cookie cleared. Returns what a later
/// request with the same cookie gets, and the issuer.
async fn refresh_fails(
    fail: impl FnOnce(&OidcIssuer),
    reason: &str,
) -> (reqwest::StatusCode, OidcIssuer) {
    let issuer = OidcIssuer::start().await;
    issuer.approve_as("dave", &["team-b-devs"]);
    issuer.issue_refresh_tokens(true);
    issuer.id_token_lifetime(30);
    let server = oidc_server(&issuer).await;
    let client = browser(&issuer);
    let session = oidc_login(&server, &client).await;
    fail(&issuer);

    let (status, set, text) = console_page(&server, &client, &session).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert!(text.contains("Log in to moor"), "the login page: {text}");
    assert!(
        text.contains("Your session expired and could not be renewed"),
        "{text}"
    );
    assert!(text.contains(reason), "{text}");
    assert!(!text.contains("mallory"), "{text}");
    assert!(
        set.is_some_and(|c| c.contains("Max-Age=0")),
        "the session cookie is cleared"
    );
    assert_eq!(issuer.refreshes(), 1);
    let (later, _, _) = console_page(&server, &client, &session).await;
    (later, issuer)
}

/// A session whose ID token has expired keeps working: the console refreshes it at
/// the issuer (one `refresh_token` grant, a rotated refresh token kept), and the new
/// ID token is the session's bearer token from then on (no second refresh while it
/// is good).
#[tokio::test]
async fn an_oidc_session_outlives_its_id_token_by_refreshing_it() {
    let issuer = OidcIssuer::start().await;
    issuer.approve_as("dave", &["team-b-devs"]);
    issuer.issue_refresh_tokens(true);
    issuer.rotate_refresh_tokens(true);
    issuer.id_token_lifetime(2);
    let server = oidc_server(&issuer).await;
    let client = browser(&issuer);
    let session = oidc_login(&server, &client).await;
    assert_eq!(issuer.refreshes(), 0);
    // The ID token expires (the API's leeway aside, it is past its exp).
    tokio::time::sleep(Duration::from_secs(3)).await;
    issuer.id_token_lifetime(3600);

    let (status, set, text) = console_page(&server, &client, &session).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        text.contains("Signed in as <strong>oidc:dave</strong>"),
        "{text}"
    );
    assert!(text.contains(r#"href="/console/ns/team-b/""#), "{text}");
    assert_eq!(issuer.refreshes(), 1, "one refresh_token grant");
    // The same session id, its cookie's 8 hours counting from the refresh.
    let set = set.expect("the session cookie is set again");
    assert!(set.starts_with(&format!("{session};")), "{set}");
    assert!(
        set.contains("Max-Age=28800") && set.contains("HttpOnly"),
        "{set}"
    );
    assert_eq!(issuer.exchanges(), 1, "no new login");

    // The refreshed token is good for an hour: no refresh on the next pages.
    for _ in 0..3 {
        let (status, set, text) = console_page(&server, &client, &session).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert!(set.is_none(), "the cookie is set again only on a refresh");
    }
    assert_eq!(issuer.refreshes(), 1);
    assert_eq!(
        issuer.id_tokens().len(),
        2,
        "the login's ID token and the refreshed one"
    );
}

/// Two requests at once with a session whose ID token is about to expire cause one
/// refresh (the issuer rotates refresh tokens: a second use would be refused), and
/// both are served.
#[tokio::test]
async fn concurrent_requests_refresh_a_session_once() {
    let issuer = OidcIssuer::start().await;
    issuer.approve_as("dave", &["team-b-devs"]);
    issuer.issue_refresh_tokens(true);
    issuer.rotate_refresh_tokens(true);
    // Within the minute before expiry from the start.
    issuer.id_token_lifetime(30);
    let server = oidc_server(&issuer).await;
    let client = browser(&issuer);
    let session = oidc_login(&server, &client).await;
    issuer.id_token_lifetime(3600);
    issuer.delay_refreshes(Duration::from_millis(500));

    let (a, b) = tokio::join!(
        console_page(&server, &client, &session),
        console_page(&server, &client, &session),
    );
    for (status, _, text) in [a, b] {
        assert_eq!(status, StatusCode::OK, "{text}");
        assert!(
            text.contains("Signed in as <strong>oidc:dave</strong>"),
            "{text}"
        );
    }
    assert_eq!(issuer.refreshes(), 1, "one refresh for both requests");
}

/// A revoked refresh token ends the session: the login page says why (no 500), the
/// cookie is cleared, and the session is gone for later requests too.
#[tokio::test]
async fn a_revoked_refresh_token_ends_the_session_on_the_login_page() {
    let (later, issuer) = refresh_fails(OidcIssuer::revoke_refresh_tokens, "invalid_grant").await;
    assert_eq!(later, StatusCode::SEE_OTHER, "the session is gone");
    assert_eq!(issuer.refreshes(), 1, "and not refreshed again");
}

/// A refreshed ID token for another `sub` is refused: the session ends on the login
/// page with the reason, and the other user gets nothing.
#[tokio::test]
async fn a_refreshed_id_token_for_another_sub_is_refused() {
    let (later, _) = refresh_fails(|i| i.refresh_as("mallory"), "another user (sub)").await;
    assert_eq!(later, StatusCode::SEE_OTHER, "the session is gone");
}

/// In cluster mode a refreshed ID token is the session's new bearer token: the
/// cluster (the double) is asked with it after the refresh, and the old one is no
/// longer used.
#[tokio::test]
async fn cluster_mode_a_refreshed_id_token_is_the_new_bearer_token() {
    let issuer = OidcIssuer::start().await;
    issuer.approve_as("alice", &["devs"]);
    issuer.issue_refresh_tokens(true);
    issuer.rotate_refresh_tokens(true);
    issuer.id_token_lifetime(30);
    let double = KubeDouble::start().await;
    double.trust_issuer(&issuer, CLIENT);
    for ns in ["team-a", "team-b"] {
        double.add_namespace(ns);
    }
    double.allow("oidc:alice", "list", "namespaces", "*");
    let server = cluster_oidc_server(&double, &issuer, &digest("current")).await;
    let client = browser(&issuer);
    let session = oidc_login(&server, &client).await;
    let first = issuer.id_tokens().pop().expect("the login's ID token");
    issuer.id_token_lifetime(3600);

    let (status, _, text) = console_page(&server, &client, &session).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        text.contains("Signed in as <strong>oidc:alice</strong>"),
        "{text}"
    );
    assert_eq!(issuer.refreshes(), 1);
    let refreshed = issuer.id_tokens().pop().expect("the refreshed ID token");
    assert_ne!(refreshed, first);
    let calls = double.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.bearer.as_deref() == Some(refreshed.as_str())
                && c.path.starts_with("/api/v1/namespaces")),
        "the cluster was not asked with the refreshed token"
    );
    let after = calls
        .iter()
        .position(|c| c.bearer.as_deref() == Some(refreshed.as_str()))
        .expect("a call with the refreshed token");
    assert!(
        calls[after..]
            .iter()
            .all(|c| c.bearer.as_deref() != Some(first.as_str())),
        "the old ID token was used after the refresh"
    );
}

/// An issuer that is down (a 503 from its proxy) when the session needs refreshing
/// ends the session on the login page with the reason, not in a 500.
#[tokio::test]
async fn an_issuer_down_at_refresh_ends_the_session_on_the_login_page() {
    refresh_fails(
        OidcIssuer::refreshes_down,
        "The identity provider refused the refresh (503 Service Unavailable)",
    )
    .await;
}
