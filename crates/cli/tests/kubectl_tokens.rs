//! ServiceAccount tokens against a real `moor serve` with kubectl: TokenRequests
//! with a lifetime and an audience, and the token used by kubectl itself (`--token`),
//! before and after the ServiceAccount is gone. `kubectl create token` sends its
//! TokenRequest as protobuf, which moor does not decode yet: that test is ignored, and
//! the same requests go as JSON through `kubectl create --raw` meanwhile. Also an OIDC
//! login through `--authentication-config` and the test kit's loopback issuer.

use crate::support;

use support::*;

/// The claims of a JWT, unverified.
fn claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let part = token.split('.').nth(1).expect("a JWT");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&raw).expect("JSON claims")
}

/// What one TokenRequest mints: `kubectl create token` or a JSON POST of the same.
type Mint<'a> = &'a dyn Fn(&Kubectl, &str, &[&str]) -> String;

/// `kubectl create token SA -n default EXTRA...`.
fn create_token(k: &Kubectl, sa: &str, extra: &[&str]) -> String {
    let mut args = vec!["create", "token", sa, "-n", "default"];
    args.extend_from_slice(extra);
    k.ok(&args).trim().to_owned()
}

/// The TokenRequest `kubectl create token` would send, as JSON through
/// `kubectl create --raw`.
fn raw_token_request(k: &Kubectl, sa: &str, extra: &[&str]) -> String {
    let mut spec = serde_json::json!({});
    for pair in extra.chunks(2) {
        match pair {
            ["--duration", "10m"] => spec["expirationSeconds"] = 600.into(),
            ["--audience", aud] => spec["audiences"] = serde_json::json!([aud]),
            other => panic!("unexpected {other:?}"),
        }
    }
    let body = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec,
    });
    let path = format!("/api/v1/namespaces/default/serviceaccounts/{sa}/token");
    let (ok, out, err) = k.stdin(&["create", "--raw", &path, "-f", "-"], &body.to_string());
    assert!(ok, "{out}{err}");
    let answer: serde_json::Value = serde_json::from_str(&out).expect("a TokenRequest");
    answer["status"]["token"]
        .as_str()
        .expect("status.token")
        .to_owned()
}

#[test]
fn kubectl_create_token_mints_a_token_kubectl_can_use() {
    tokens_work_with_kubectl(&create_token);
}

#[test]
fn token_requests_mint_tokens_kubectl_can_use() {
    tokens_work_with_kubectl(&raw_token_request);
}

fn tokens_work_with_kubectl(mint: Mint<'_>) {
    if peer("kubectl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), &[]);
    let k = Kubectl::new(&server.kubeconfig()).expect("kubectl");

    let sa = k.ok(&["get", "sa", "default", "-n", "default", "-o", "name"]);
    assert_eq!(sa.trim(), "serviceaccount/default");

    // (`kubectl create serviceaccount` sends protobuf; apply sends JSON.)
    k.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: robot, namespace: default}\n");
    let token = mint(&k, "robot", &["--duration", "10m"]);
    let token = token.as_str();
    let c = claims(token);
    assert_eq!(c["sub"], "system:serviceaccount:default:robot");
    let lifetime = c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 600);

    // The token is a credential kubectl can use: it is the ServiceAccount...
    let out = k.ok(&["--token", token, "auth", "whoami"]);
    assert!(out.contains("system:serviceaccount:default:robot"), "{out}");
    assert!(out.contains("system:serviceaccounts:default"), "{out}");
    // ...which may do what RBAC grants it, and no more.
    let err = k.fails(&["--token", token, "get", "sa", "-n", "default"]);
    assert!(err.contains("Forbidden"), "{err}");
    k.ok(&[
        "create",
        "rolebinding",
        "robot-view",
        "-n",
        "default",
        "--clusterrole=view",
        "--serviceaccount=default:robot",
    ]);
    let out = k.ok(&["--token", token, "get", "sa", "-n", "default", "-o", "name"]);
    assert!(out.contains("serviceaccount/robot"), "{out}");

    // A token for another audience is minted, but is not for moor's API.
    let vault = mint(&k, "robot", &["--audience", "vault"]);
    assert_eq!(claims(&vault)["aud"], serde_json::json!(["vault"]));
    let err = k.fails(&["--token", &vault, "get", "sa", "-n", "default"]);
    assert!(err.contains("Unauthorized"), "{err}");

    // Deleting the ServiceAccount invalidates its tokens.
    k.ok(&["delete", "sa", "robot", "-n", "default"]);
    let err = k.fails(&["--token", token, "get", "sa", "-n", "default"]);
    assert!(err.contains("Unauthorized"), "{err}");
}

#[test]
fn an_oidc_token_logs_kubectl_in_through_authentication_config() {
    if peer("kubectl").is_none() {
        return;
    }
    // The issuer serves from this runtime's threads while kubectl runs here.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let issuer = rt.block_on(moor_testkit::oidc::OidcIssuer::start());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("authn.yaml");
    std::fs::write(&config, issuer.authentication_config("moor")).unwrap();
    let server = start(
        &dir.path().join("data"),
        &["--authentication-config", config.to_str().unwrap()],
    );
    let k = Kubectl::new(&server.kubeconfig()).expect("kubectl");

    let mut claims = issuer.claims("alice", "moor");
    claims["groups"] = serde_json::json!(["dev"]);
    let token = issuer.mint(&claims);
    let out = k.ok(&["--token", &token, "auth", "whoami"]);
    assert!(out.contains("alice") && out.contains("dev"), "{out}");
    assert_eq!(issuer.jwks_fetches(), 1);

    let other = issuer.mint(&issuer.claims("alice", "someone-else"));
    let err = k.fails(&["--token", &other, "get", "sa", "-n", "default"]);
    // kubectl words a 401 in discovery "provide credentials", in a request "Unauthorized".
    assert!(
        err.contains("Unauthorized") || err.contains("provide credentials"),
        "{err}"
    );
}
