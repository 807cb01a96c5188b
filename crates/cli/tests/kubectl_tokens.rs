//! `kubectl create token` against a real `moor serve`: the TokenRequest subresource
//! of the `default` ServiceAccount, `--duration` and `--audience`, and the token
//! used by kubectl itself (`--token`), before and after the ServiceAccount is gone.

mod support;

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

#[test]
fn kubectl_create_token_mints_a_token_kubectl_can_use() {
    if peer("kubectl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), &[]);
    let k = Kubectl::new(&server.kubeconfig()).expect("kubectl");

    let sa = k.ok(&["get", "sa", "default", "-n", "default", "-o", "name"]);
    assert_eq!(sa.trim(), "serviceaccount/default");

    k.ok(&["create", "serviceaccount", "robot", "-n", "default"]);
    let token = k.ok(&[
        "create",
        "token",
        "robot",
        "-n",
        "default",
        "--duration",
        "10m",
    ]);
    let token = token.trim();
    let c = claims(token);
    assert_eq!(c["sub"], "system:serviceaccount:default:robot");
    let lifetime = c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 600);

    // The token is a credential kubectl can use in place of the admin's.
    let out = k.ok(&["--token", token, "get", "sa", "-n", "default", "-o", "name"]);
    assert!(out.contains("serviceaccount/robot"), "{out}");

    // A token for another audience is minted, but is not for moor's API.
    let vault = k.ok(&[
        "create",
        "token",
        "robot",
        "-n",
        "default",
        "--audience",
        "vault",
    ]);
    assert_eq!(claims(vault.trim())["aud"], serde_json::json!(["vault"]));
    let err = k.fails(&["--token", vault.trim(), "get", "sa", "-n", "default"]);
    assert!(err.contains("Unauthorized"), "{err}");

    // Deleting the ServiceAccount invalidates its tokens.
    k.ok(&["delete", "sa", "robot", "-n", "default"]);
    let err = k.fails(&["--token", token, "get", "sa", "-n", "default"]);
    assert!(err.contains("Unauthorized"), "{err}");
}
