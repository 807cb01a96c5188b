//! Signature policies: `config.openshift.io/v1` ImagePolicy and ClusterImagePolicy
//! served with OpenShift's field names and validation.

use axum::http::StatusCode;
use moor_testkit::server::*;
use serde_json::{Value, json};

const IP: &str = "/apis/config.openshift.io/v1/namespaces/default/imagepolicies";
const CIP: &str = "/apis/config.openshift.io/v1/clusterimagepolicies";

const PUBLIC_KEY_PEM: &str =
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n";

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn policy(kind: &str, name: &str, scopes: &[&str], identity: Value) -> Value {
    json!({
        "apiVersion": "config.openshift.io/v1", "kind": kind,
        "metadata": {"name": name},
        "spec": {
            "scopes": scopes,
            "policy": {
                "rootOfTrust": {"policyType": "PublicKey", "publicKey": {"keyData": b64(PUBLIC_KEY_PEM)}},
                "signedIdentity": identity,
            }
        }
    })
}

#[tokio::test]
async fn image_policies_are_served_with_openshift_fields_and_validated() {
    let h = MoorServer::start().await;
    let p = policy(
        "ImagePolicy",
        "signed",
        &["quay.io/keycloak"],
        json!({"matchPolicy": "MatchRepoDigestOrExact"}),
    );
    let r = h.post(IP, &p).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let got = h.get(&format!("{IP}/signed")).await.body;
    assert_eq!(got["spec"]["scopes"], json!(["quay.io/keycloak"]));
    assert_eq!(
        got["spec"]["policy"]["rootOfTrust"]["publicKey"]["keyData"],
        json!(b64(PUBLIC_KEY_PEM))
    );
    assert_eq!(
        got["spec"]["policy"]["signedIdentity"]["matchPolicy"],
        "MatchRepoDigestOrExact"
    );
    assert_eq!(got["metadata"]["generation"], 1);

    // A cluster policy with a remapped identity.
    let c = policy(
        "ClusterImagePolicy",
        "mirror",
        &["*.example.com", "localhost:5000/team"],
        json!({"matchPolicy": "RemapIdentity",
               "remapIdentity": {"prefix": "localhost:5000/team", "signedPrefix": "quay.io/team"}}),
    );
    let r = h.post(CIP, &c).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let list = h.get(CIP).await.body;
    assert_eq!(list["kind"], "ClusterImagePolicyList");
    assert_eq!(list["items"][0]["metadata"]["name"], "mirror");

    // Invalid: a short name as a scope, a missing exactRepository, no key.
    let mut bad = policy(
        "ImagePolicy",
        "bad",
        &["busybox"],
        json!({"matchPolicy": "ExactRepository"}),
    );
    bad["spec"]["policy"]["rootOfTrust"]["publicKey"]["keyData"] = json!("");
    let r = h.post(IP, &bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["kind"], "Status");
    assert_eq!(r.body["reason"], "Invalid");
    let fields: Vec<&str> = r.body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    for f in [
        "spec.scopes[0]",
        "spec.policy.signedIdentity.exactRepository",
        "spec.policy.rootOfTrust.publicKey.keyData",
    ] {
        assert!(fields.contains(&f), "{f} not in {fields:?}");
    }
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("scope must contain a fully qualified domain name or 'localhost'"),
        "{}",
        r.text
    );

    // An unknown policy type is NotSupported.
    let mut other = policy("ImagePolicy", "other", &["quay.io"], json!(null));
    other["spec"]["policy"]["rootOfTrust"] = json!({"policyType": "PGP"});
    let r = h.post(IP, &other).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("supported values"), "{}", r.text);

    // Discovery lists both.
    let d = h.get("/apis/config.openshift.io/v1").await.body;
    let names: Vec<&str> = d["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(names.contains(&"imagepolicies") && names.contains(&"clusterimagepolicies"));
}
