//! Signature policies: `config.openshift.io/v1` ImagePolicy and ClusterImagePolicy
//! served with OpenShift's field names and validation; imports from a real
//! distribution and pushes into moor's registry checked against them.

use crate::registry_support;

use std::sync::Arc;

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

/// An ImagePolicy named `name` whose root of trust is `public_pem`.
fn key_policy(name: &str, scopes: &[&str], identity: Value, public_pem: &str) -> Value {
    let mut p = policy("ImagePolicy", name, scopes, identity);
    p["spec"]["policy"]["rootOfTrust"]["publicKey"]["keyData"] = json!(b64(public_pem));
    p
}

/// Creates policy `p` through the registry test server's API.
async fn post_policy(moor: &registry_support::Moor, p: &Value) {
    let r = moor
        .req(reqwest::Method::POST, IP)
        .json(p)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
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

fn upstream(insecure: &[&str]) -> std::sync::Arc<moor_server::upstream::UpstreamClient> {
    std::sync::Arc::new(
        moor_server::upstream::UpstreamClient::new(moor_server::upstream::UpstreamConfig {
            insecure_registries: insecure.iter().map(|s| s.to_string()).collect(),
            use_environment_proxy: false,
            ..Default::default()
        })
        .unwrap(),
    )
}

/// Polls the stream until `pred` holds for status tag `tag`, or panics after 30 s.
async fn wait_tag(h: &MoorServer, stream: &str, tag: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let s = h.get(&format!("{IS}/{stream}")).await.body;
        let t = s["status"]["tags"]
            .as_array()
            .and_then(|a| a.iter().find(|t| t["tag"] == tag))
            .cloned()
            .unwrap_or(Value::Null);
        if pred(&t) {
            return t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tag {stream}:{tag} never satisfied the condition; last: {t}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn imported(t: &Value) -> bool {
    t["items"].as_array().is_some_and(|a| !a.is_empty())
}

fn failed_with(reason: &'static str) -> impl Fn(&Value) -> bool {
    move |t: &Value| {
        t["conditions"].as_array().is_some_and(|c| {
            c.iter().any(|c| {
                c["type"] == "ImportSuccess" && c["status"] == "False" && c["reason"] == reason
            })
        })
    }
}

fn message(t: &Value) -> String {
    t["conditions"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Images signed in cosign's format (by the test kit, with openssl) in a real
/// distribution: moor imports what the policy's key signed for the right identity
/// and refuses the rest, leaving their history empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_in_scope_need_a_signature_by_the_policy_key_for_the_image() {
    use moor_testkit::{CosignKey, Distribution, Format, ImageSpec, OciLayout};
    if !moor_testkit::require(&["openssl", "skopeo"]) {
        return;
    }
    let Some(dist) = Distribution::start() else {
        return;
    };
    let layout = OciLayout::new();
    for t in ["signed", "unsigned", "otherkey", "otherid", "outside"] {
        layout.add_image(t, &ImageSpec::app(t));
    }
    let (key, other) = (CosignKey::generate(), CosignKey::generate());
    let push = |t: &str, repo_tag: &str| dist.push(&layout, t, repo_tag, Format::Oci);
    let signed = push("signed", "team/signed:1.0");
    key.sign(&dist, "team/signed", &signed.digest, &signed.reference)
        .await;
    let unsigned = push("unsigned", "team/unsigned:1.0");
    let otherkey = push("otherkey", "team/otherkey:1.0");
    other
        .sign(
            &dist,
            "team/otherkey",
            &otherkey.digest,
            &otherkey.reference,
        )
        .await;
    let elsewhere = format!("{}/team/elsewhere:1.0", dist.host);
    let otherid = push("otherid", "team/otherid:1.0");
    key.sign(&dist, "team/otherid", &otherid.digest, &elsewhere)
        .await;
    let outside = dist.push(&layout, "outside", "public/app:1.0", Format::Oci);

    let h = MoorServer::importing(upstream(&[&dist.host])).await;
    let p = key_policy(
        "team-signed",
        &[&format!("{}/team", dist.host)],
        json!({"matchPolicy": "MatchRepoDigestOrExact"}),
        &key.public_pem,
    );
    let r = h.post(IP, &p).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let tags: Vec<Value> = [
        ("signed", &signed),
        ("unsigned", &unsigned),
        ("otherkey", &otherkey),
        ("otherid", &otherid),
        ("outside", &outside),
    ]
    .iter()
    .map(|(t, p)| json!({"name": t, "from": {"kind": "DockerImage", "name": p.reference}}))
    .collect();
    let r = h
        .post(
            IS,
            &json!({"metadata": {"name": "app"}, "spec": {"tags": tags}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    let t = wait_tag(&h, "app", "signed", imported).await;
    assert_eq!(t["items"][0]["image"], json!(signed.digest));
    let image = h
        .get(&format!(
            "/apis/image.openshift.io/v1/images/{}",
            signed.digest
        ))
        .await
        .body;
    let sig = &image["signatures"][0];
    assert_eq!(sig["type"], "sigstore", "{image}");
    assert_eq!(sig["imageIdentity"], json!(signed.reference));
    assert_eq!(sig["conditions"][0]["type"], "Trusted");
    assert!(
        sig["signedClaims"]["policy"]
            .as_str()
            .is_some_and(|p| p.contains("ImagePolicy default/team-signed"))
    );

    let t = wait_tag(&h, "app", "unsigned", failed_with("SignatureMissing")).await;
    assert!(!imported(&t), "{t}");
    let m = message(&t);
    assert!(
        m.contains("ImagePolicy default/team-signed") && m.contains("key SHA256:"),
        "{m}"
    );

    let t = wait_tag(&h, "app", "otherkey", failed_with("SignatureInvalid")).await;
    assert!(!imported(&t), "{t}");
    assert!(
        message(&t).contains("does not verify with the key"),
        "{}",
        message(&t)
    );

    let t = wait_tag(&h, "app", "otherid", failed_with("SignatureInvalid")).await;
    assert!(!imported(&t), "{t}");
    assert!(
        message(&t).contains(&format!("identity {elsewhere}")),
        "{}",
        message(&t)
    );

    // Out of every scope: imported without a check.
    let t = wait_tag(&h, "app", "outside", imported).await;
    assert_eq!(t["items"][0]["image"], json!(outside.digest));
}

/// A push by tag into a stream in a policy's scope is refused with DENIED naming the
/// policy until a signature of the digest, by the policy's key for that tag, is in the
/// stream (push by digest, sign, tag).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_in_scope_are_denied_until_signed() {
    use moor_testkit::cosign::{put_manifest, upload_blob};
    use moor_testkit::{CosignKey, ImageSpec, OciLayout};
    if !moor_testkit::require(&["openssl", "umoci"]) {
        return;
    }
    let moor = registry_support::Moor::start(Default::default()).await;
    let base = moor.url("");
    let creds = Some(("anyone", moor.token()));
    let key = CosignKey::generate();
    let p = key_policy(
        "pushes-signed",
        &[&format!("{}/default/app", moor.host)],
        json!(null),
        &key.public_pem,
    );
    post_policy(&moor, &p).await;

    let layout = OciLayout::new();
    let entry = layout.add_image("1.0", &ImageSpec::app("pushed"));
    let manifest = layout.blob(&entry.digest);
    let m: Value = serde_json::from_slice(&manifest).unwrap();
    for d in std::iter::once(&m["config"]["digest"])
        .chain(m["layers"].as_array().unwrap().iter().map(|l| &l["digest"]))
    {
        let blob = layout.blob(d.as_str().unwrap());
        for repo in ["default/app", "default/other"] {
            upload_blob(&base, creds, repo, &blob).await;
        }
    }
    // Unsigned: refused with DENIED naming the policy and key.
    let r = moor
        .req(reqwest::Method::PUT, "/v2/default/app/manifests/1.0")
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED", "{body}");
    let msg = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("ImagePolicy default/pushes-signed") && msg.contains("key SHA256:"),
        "{msg}"
    );
    // Out of scope: accepted.
    assert_eq!(
        put_manifest(&base, creds, "default/other", "1.0", manifest.clone()).await,
        201
    );
    // By digest, then signed for the tag, then the tag: accepted.
    assert_eq!(
        put_manifest(&base, creds, "default/app", &entry.digest, manifest.clone()).await,
        201
    );
    let identity = format!("{}/default/app:1.0", moor.host);
    key.sign_at(&base, creds, "default/app", &entry.digest, &identity)
        .await;
    assert_eq!(
        put_manifest(&base, creds, "default/app", "1.0", manifest.clone()).await,
        201
    );
    // A signature for another tag does not cover this one.
    assert_eq!(
        put_manifest(&base, creds, "default/app", "2.0", manifest).await,
        403
    );
}

/// Every key type cosign signs with verifies (signed by openssl as cosign signs);
/// a signature by another key of the same type does not; an unsupported key type is
/// refused with a message that names it.
#[test]
fn every_cosign_key_type_verifies() {
    use moor_server::signatures::keys::PublicKey;
    use moor_server::signatures::{chain, verify_one};
    use moor_testkit::cosign::{CosignKey, KeyType};
    if !moor_testkit::require(&["openssl"]) {
        return;
    }
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let identity = "quay.io/team/app:1.0";
    let image = moor_api::DockerImageReference::parse(identity).unwrap();
    let d = moor_api::Digest::parse(digest).unwrap();
    let payload = CosignKey::payload(digest, identity);
    for kind in KeyType::ALL {
        let (key, other) = (
            CosignKey::generate_type(kind),
            CosignKey::generate_type(kind),
        );
        let public = PublicKey::from_pem(key.public_pem.as_bytes())
            .unwrap_or_else(|e| panic!("{kind:?}: {}", chain(&e)));
        let sig = b64_bytes(&key.sign_bytes(&payload));
        let signed = verify_one(&public, &payload, &sig, &d, &image, None)
            .unwrap_or_else(|e| panic!("{kind:?}: {}", chain(&e)));
        assert_eq!(signed, identity);
        let forged = b64_bytes(&other.sign_bytes(&payload));
        let e = verify_one(&public, &payload, &forged, &d, &image, None).unwrap_err();
        assert!(
            chain(&e).contains("does not verify with the key"),
            "{kind:?}: {}",
            chain(&e)
        );
    }
    // secp256k1: an ECDSA curve cosign does not sign with.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:secp256k1",
            "-out",
        ])
        .arg(dir.path().join("k.pem"))
        .status()
        .unwrap();
    assert!(out.success());
    let public = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(dir.path().join("k.pem"))
        .output()
        .unwrap()
        .stdout;
    let e = PublicKey::from_pem(&public).unwrap_err();
    assert!(
        chain(&e).contains("unsupported key type ECDSA curve 1.3.132.0.10"),
        "{}",
        chain(&e)
    );
}

fn b64_bytes(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const ISSUER: &str = "https://accounts.example.com";
const EMAIL: &str = "dev@example.com";

fn fulcio_root(ca: &moor_testkit::cosign::FulcioCa, issuer: &str, email: &str) -> Value {
    json!({"policyType": "FulcioCAWithRekor", "fulcioCAWithRekor": {
        "fulcioCAData": b64(&ca.root_pem),
        "rekorKeyData": b64(&ca.rekor.public_pem),
        "fulcioSubject": {"oidcIssuer": issuer, "signedEmail": email},
    }})
}

/// Verifies a keyless signature layer (its annotations) against a root of trust.
fn keyless_verdict(root: &Value, annotations: &Value, payload: &[u8]) -> Result<String, String> {
    use moor_server::signatures::{Layer, Trust, chain};
    let root: moor_api::config::PolicyRootOfTrust = serde_json::from_value(root.clone()).unwrap();
    let (_, trust) = Trust::parse(&root);
    let trust = trust?;
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let image = moor_api::DockerImageReference::parse("quay.io/team/app:1.0").unwrap();
    let layer = Layer {
        repository: image.clone(),
        digest: moor_api::Digest::parse(digest).unwrap(),
        signature: annotations["dev.cosignproject.cosign/signature"]
            .as_str()
            .unwrap()
            .to_string(),
        annotations: annotations.as_object().unwrap().clone(),
    };
    trust
        .verify(
            &layer,
            payload,
            &moor_api::Digest::parse(digest).unwrap(),
            &image,
            None,
        )
        .map_err(|e| chain(&e))
}

/// Keyless (`FulcioCAWithRekor`) signatures verify offline against a local Fulcio CA
/// and Rekor key: the valid one is accepted; another CA, subject or issuer, a bad
/// SET, a tampered entry and a logged time outside the certificate's validity are
/// each refused with a reason that says so. A `PublicKey` policy with `rekorKeyData`
/// needs a bundle too.
#[test]
fn keyless_signatures_verify_offline() {
    use moor_testkit::cosign::{CosignKey, FulcioCa, Subject};
    if !moor_testkit::require(&["openssl"]) {
        return;
    }
    let (ca, other_ca) = (FulcioCa::new(), FulcioCa::new());
    let subject = Subject {
        email: EMAIL.into(),
        issuer: ISSUER.into(),
        not_before: T0,
    };
    let signer = ca.issue(&subject);
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let payload = CosignKey::payload(digest, "quay.io/team/app:1.0");
    let good = signer.annotations(&ca, &payload, T0 + 60);
    let root = fulcio_root(&ca, ISSUER, EMAIL);
    assert_eq!(
        keyless_verdict(&root, &good, &payload).as_deref(),
        Ok("quay.io/team/app:1.0")
    );

    let refused = |root: &Value, ann: &Value, want: &str| {
        let e = keyless_verdict(root, ann, &payload).expect_err(want);
        assert!(e.contains(want), "wanted {want:?} in {e:?}");
    };
    // Another CA: the chain does not reach the policy's root.
    let mut other_ca_root = fulcio_root(&other_ca, ISSUER, EMAIL);
    other_ca_root["fulcioCAWithRekor"]["rekorKeyData"] = json!(b64(&ca.rekor.public_pem));
    refused(
        &other_ca_root,
        &good,
        "does not chain to the policy's Fulcio CA",
    );
    // Another subject, another issuer.
    refused(
        &fulcio_root(&ca, ISSUER, "someone@example.com"),
        &good,
        "the policy wants email \"someone@example.com\"",
    );
    refused(
        &fulcio_root(&ca, "https://other.example.com", EMAIL),
        &good,
        "OIDC issuer is \"https://accounts.example.com\"",
    );
    // A bundle signed by another Rekor key; a tampered integratedTime.
    refused(
        &fulcio_root(&other_ca, ISSUER, EMAIL),
        &good,
        "SignedEntryTimestamp does not verify",
    );
    let mut tampered = good.clone();
    let bundle = good["dev.sigstore.cosign/bundle"].as_str().unwrap();
    let mut b: Value = serde_json::from_str(bundle).unwrap();
    b["Payload"]["integratedTime"] = json!(T0 + 61);
    tampered["dev.sigstore.cosign/bundle"] = json!(b.to_string());
    refused(&root, &tampered, "SignedEntryTimestamp does not verify");
    // The entry logs another signature.
    let mut swapped = good.clone();
    swapped["dev.sigstore.cosign/bundle"] =
        json!(ca.bundle(&signer.cert_pem, b"another signature", &payload, T0 + 60));
    refused(&root, &swapped, "the Rekor entry is for another signature");
    // Logged after the certificate expired (10 minutes), or before it was issued.
    for t in [T0 + 3600, T0 - 60] {
        refused(
            &root,
            &signer.annotations(&ca, &payload, t),
            "is outside the certificate's validity",
        );
    }
    // No certificate, no bundle.
    let mut bare = good.clone();
    bare.as_object_mut()
        .unwrap()
        .remove("dev.sigstore.cosign/certificate");
    refused(&root, &bare, "has no Fulcio certificate");
    let mut unlogged = good.clone();
    unlogged
        .as_object_mut()
        .unwrap()
        .remove("dev.sigstore.cosign/bundle");
    refused(&root, &unlogged, "has no Rekor bundle");

    // PublicKey with rekorKeyData: the key's signature must be logged too.
    let key = CosignKey::generate();
    let key_root = json!({"policyType": "PublicKey", "publicKey": {
        "keyData": b64(&key.public_pem), "rekorKeyData": b64(&ca.rekor.public_pem)}});
    let sig = key.sign_bytes(&payload);
    let mut logged = json!({"dev.cosignproject.cosign/signature": b64_bytes(&sig)});
    refused(&key_root, &logged, "has no Rekor bundle");
    logged["dev.sigstore.cosign/bundle"] = json!(ca.bundle(&key.public_pem, &sig, &payload, T0));
    assert_eq!(
        keyless_verdict(&key_root, &logged, &payload).as_deref(),
        Ok("quay.io/team/app:1.0")
    );
}

/// A keyless-signed image in a real distribution imports under a FulcioCAWithRekor
/// policy, its signature recorded; one signed for another email is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_imports_from_distribution() {
    use moor_testkit::cosign::{FulcioCa, Subject};
    use moor_testkit::{Distribution, Format, ImageSpec, OciLayout};
    if !moor_testkit::require(&["openssl", "skopeo"]) {
        return;
    }
    let Some(dist) = Distribution::start() else {
        return;
    };
    let layout = OciLayout::new();
    for t in ["good", "stranger"] {
        layout.add_image(t, &ImageSpec::app(t));
    }
    let ca = FulcioCa::new();
    let subject = |email: &str| Subject {
        email: email.into(),
        issuer: ISSUER.into(),
        not_before: T0,
    };
    let good = dist.push(&layout, "good", "team/good:1.0", Format::Oci);
    ca.issue(&subject(EMAIL))
        .sign_at(
            &ca,
            &dist.url(),
            "team/good",
            &good.digest,
            &good.reference,
            T0 + 5,
        )
        .await;
    let stranger = dist.push(&layout, "stranger", "team/stranger:1.0", Format::Oci);
    ca.issue(&subject("mallory@example.com"))
        .sign_at(
            &ca,
            &dist.url(),
            "team/stranger",
            &stranger.digest,
            &stranger.reference,
            T0 + 5,
        )
        .await;

    let h = MoorServer::importing(upstream(&[&dist.host])).await;
    let mut p = policy(
        "ImagePolicy",
        "keyless",
        &[&format!("{}/team", dist.host)],
        json!(null),
    );
    p["spec"]["policy"]["rootOfTrust"] = fulcio_root(&ca, ISSUER, EMAIL);
    let r = h.post(IP, &p).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let tags: Vec<Value> = [("good", &good), ("stranger", &stranger)]
        .iter()
        .map(|(t, p)| json!({"name": t, "from": {"kind": "DockerImage", "name": p.reference}}))
        .collect();
    let r = h
        .post(
            IS,
            &json!({"metadata": {"name": "app"}, "spec": {"tags": tags}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let t = wait_tag(&h, "app", "good", imported).await;
    assert_eq!(t["items"][0]["image"], json!(good.digest));
    let image = h
        .get(&format!(
            "/apis/image.openshift.io/v1/images/{}",
            good.digest
        ))
        .await
        .body;
    assert_eq!(
        image["signatures"][0]["imageIdentity"],
        json!(good.reference)
    );
    let t = wait_tag(&h, "app", "stranger", failed_with("SignatureInvalid")).await;
    assert!(!imported(&t), "{t}");
    let m = message(&t);
    assert!(
        m.contains("ImagePolicy default/keyless (Fulcio CA SHA256:")
            && m.contains("mallory@example.com"),
        "{m}"
    );
}

/// Signatures attached as OCI 1.1 referrers (no `.sig` tag) are found through the
/// referrers tag schema on distribution 2.8 (whose referrers API answers 404), and
/// through the referrers API of moor's own registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrer_signatures_are_found_by_api_and_tag_schema() {
    use moor_server::signatures::referrer_layers;
    use moor_testkit::cosign::{CosignKey, push_referrer_signature, upload_blob};
    use moor_testkit::{Distribution, Format, ImageSpec, OciLayout};
    if !moor_testkit::require(&["openssl", "skopeo", "umoci"]) {
        return;
    }
    let Some(dist) = Distribution::start() else {
        return;
    };
    let layout = OciLayout::new();
    let entry = layout.add_image("ref", &ImageSpec::app("ref"));
    let key = CosignKey::generate();
    let attach = |base: String,
                  creds: Option<(&'static str, String)>,
                  repo: &'static str,
                  digest: String,
                  identity: String,
                  tag_schema: bool| {
        let payload = CosignKey::payload(&digest, &identity);
        let sig = b64_bytes(&key.sign_bytes(&payload));
        async move {
            let creds = creds.as_ref().map(|(u, p)| (*u, p.as_str()));
            push_referrer_signature(
                &base,
                creds,
                repo,
                &digest,
                &payload,
                json!({"dev.cosignproject.cosign/signature": sig}),
                tag_schema,
            )
            .await
        }
    };

    // distribution: the tag schema, through a whole import.
    let pushed = dist.push(&layout, "ref", "team/ref:1.0", Format::Oci);
    let r = reqwest::get(format!(
        "{}/v2/team/ref/referrers/{}",
        dist.url(),
        pushed.digest
    ))
    .await
    .unwrap();
    assert_eq!(
        r.status().as_u16(),
        404,
        "distribution 2.8 has no referrers API"
    );
    attach(
        dist.url(),
        None,
        "team/ref",
        pushed.digest.clone(),
        pushed.reference.clone(),
        true,
    )
    .await;
    let h = MoorServer::importing(upstream(&[&dist.host])).await;
    let p = key_policy(
        "referrers",
        &[&format!("{}/team", dist.host)],
        json!(null),
        &key.public_pem,
    );
    assert_eq!(h.post(IP, &p).await.status, StatusCode::CREATED);
    let r = h
        .post(
            IS,
            &json!({"metadata": {"name": "app"}, "spec": {"tags": [
                {"name": "ref", "from": {"kind": "DockerImage", "name": pushed.reference}}]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let t = wait_tag(&h, "app", "ref", imported).await;
    assert_eq!(t["items"][0]["image"], json!(pushed.digest));

    // moor's registry: the referrers API (no tag schema index written).
    let moor = registry_support::Moor::start(Default::default()).await;
    let base = moor.url("");
    let creds = ("anyone", moor.token().to_string());
    let manifest = layout.blob(&entry.digest);
    let m: Value = serde_json::from_slice(&manifest).unwrap();
    for d in std::iter::once(&m["config"]["digest"])
        .chain(m["layers"].as_array().unwrap().iter().map(|l| &l["digest"]))
    {
        let blob = layout.blob(d.as_str().unwrap());
        upload_blob(&base, Some(("anyone", moor.token())), "default/app", &blob).await;
    }
    assert_eq!(
        moor_testkit::cosign::put_manifest(
            &base,
            Some(("anyone", moor.token())),
            "default/app",
            "1.0",
            manifest
        )
        .await,
        201
    );
    let identity = format!("{}/default/app:1.0", moor.host);
    attach(
        base.clone(),
        Some(creds.clone()),
        "default/app",
        entry.digest.clone(),
        identity.clone(),
        false,
    )
    .await;
    let secret =
        json!({"auths": {moor.host.clone(): {"auth": b64(&format!("anyone:{}", moor.token()))}}});
    let pull = moor_server::importer::PullOptions {
        insecure: true,
        secrets: std::sync::Arc::new(vec![secret.to_string().into()]),
    };
    let client = upstream(&[&moor.host]);
    let from = moor_api::DockerImageReference::parse(&identity).unwrap();
    let digest = moor_api::Digest::parse(&entry.digest).unwrap();
    let layers = referrer_layers(client.as_ref(), &from, &pull, &digest)
        .await
        .unwrap();
    assert_eq!(layers.len(), 1, "{layers:?}");
    let payload = moor_server::importer::Source::blob(
        client.as_ref(),
        &layers[0].repository,
        &layers[0].digest,
        &pull,
    )
    .await
    .unwrap();
    let public =
        moor_server::signatures::keys::PublicKey::from_pem(key.public_pem.as_bytes()).unwrap();
    let signed = moor_server::signatures::verify_one(
        &public,
        &payload,
        &layers[0].signature,
        &digest,
        &from,
        None,
    )
    .unwrap();
    assert_eq!(signed, identity);
}

/// With `referencePolicy: Local`, the signatures verified at import are mirrored into
/// moor's registry: the cosign `.sig` tag (manifest by tag and digest, its blobs) and
/// OCI 1.1 referrers (moor's referrers API) are served with the upstream stopped,
/// byte for byte as the upstream had them, for spec tags and ImageStreamImports alike.
/// Unverified signatures, images no policy covers, `Source` tags and dry-run imports
/// mirror nothing, and no `.sig` becomes a stream tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_tags_mirror_their_verified_signatures() {
    use moor_testkit::cosign::{CosignKey, SIGNATURE_ARTIFACT, push_referrer_signature};
    use moor_testkit::{Distribution, Format, ImageSpec, OciLayout};
    use registry_support::{Moor, Options, local_tag};
    if !moor_testkit::require(&["openssl", "skopeo"]) {
        return;
    }
    let Some(mut dist) = Distribution::start() else {
        return;
    };
    let layout = OciLayout::new();
    for t in ["signed", "ref", "otherkey", "outside"] {
        layout.add_image(t, &ImageSpec::app(t));
    }
    let (key, other) = (CosignKey::generate(), CosignKey::generate());
    let push = |t: &str, repo_tag: &str| dist.push(&layout, t, repo_tag, Format::Oci);
    let signed = push("signed", "team/signed:1.0");
    key.sign(&dist, "team/signed", &signed.digest, &signed.reference)
        .await;
    let referred = push("ref", "team/ref:1.0");
    let payload = CosignKey::payload(&referred.digest, &referred.reference);
    let referrer = push_referrer_signature(
        &dist.url(),
        None,
        "team/ref",
        &referred.digest,
        &payload,
        json!({"dev.cosignproject.cosign/signature": b64_bytes(&key.sign_bytes(&payload))}),
        true,
    )
    .await;
    let otherkey = push("otherkey", "team/otherkey:1.0");
    other
        .sign(
            &dist,
            "team/otherkey",
            &otherkey.digest,
            &otherkey.reference,
        )
        .await;
    let outside = push("outside", "public/app:1.0");
    key.sign(&dist, "public/app", &outside.digest, &outside.reference)
        .await;

    // What the upstream serves, to compare with what moor serves later.
    let http = reqwest::Client::new();
    let upstream_bytes = |path: String| {
        let (http, url) = (http.clone(), dist.url());
        async move {
            let r = http
                .get(format!("{url}{path}"))
                .header("accept", "application/vnd.oci.image.manifest.v1+json")
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            r.bytes().await.unwrap()
        }
    };
    let sig_tag = |d: &str| d.replacen(':', "-", 1) + ".sig";
    let sig_manifest = upstream_bytes(format!(
        "/v2/team/signed/manifests/{}",
        sig_tag(&signed.digest)
    ))
    .await;
    let sig_digest = format!("sha256:{}", sha256_hex(&sig_manifest));
    let sig: Value = serde_json::from_slice(&sig_manifest).unwrap();
    let sig_blobs: Vec<String> = std::iter::once(&sig["config"])
        .chain(sig["layers"].as_array().unwrap())
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect();
    let mut sig_blob_bytes = Vec::new();
    for d in &sig_blobs {
        sig_blob_bytes.push(upstream_bytes(format!("/v2/team/signed/blobs/{d}")).await);
    }
    let ref_manifest = upstream_bytes(format!("/v2/team/ref/manifests/{referrer}")).await;
    let ref_payload = {
        let m: Value = serde_json::from_slice(&ref_manifest).unwrap();
        m["layers"][0]["digest"].as_str().unwrap().to_string()
    };

    let moor = Moor::start(Options {
        insecure: vec![dist.host.clone()],
        ..Default::default()
    })
    .await;
    let p = key_policy(
        "team-signed",
        &[&format!("{}/team", dist.host)],
        json!(null),
        &key.public_pem,
    );
    post_policy(&moor, &p).await;
    moor.create_stream(
        "local",
        vec![
            local_tag("signed", &signed.reference),
            local_tag("ref", &referred.reference),
            local_tag("otherkey", &otherkey.reference),
            local_tag("outside", &outside.reference),
        ],
    )
    .await;
    moor.create_stream(
        "source",
        vec![
            json!({"name": "signed", "from": {"kind": "DockerImage", "name": signed.reference},
                    "importPolicy": {"insecure": true}}),
        ],
    )
    .await;
    assert_eq!(moor.wait_tag("local", "signed").await, signed.digest);
    assert_eq!(moor.wait_tag("local", "ref").await, referred.digest);
    assert_eq!(moor.wait_tag("local", "outside").await, outside.digest);
    assert_eq!(moor.wait_tag("source", "signed").await, signed.digest);
    // The refused import is over once its condition says so.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let s = moor.stream("local").await;
        let t = s["status"]["tags"]
            .as_array()
            .and_then(|a| a.iter().find(|t| t["tag"] == "otherkey"))
            .cloned()
            .unwrap_or(Value::Null);
        if failed_with("SignatureInvalid")(&t) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{s}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // ImageStreamImports: one that writes the tag mirrors; a dry run (`import:
    // false`) does not, into `source` (checked below).
    for (name, import) in [("isi", true), ("source", false)] {
        let isi = json!({"metadata": {"name": name}, "spec": {"import": import, "images": [{
            "from": {"kind": "DockerImage", "name": signed.reference},
            "to": {"name": "1.0"},
            "importPolicy": {"insecure": true},
            "referencePolicy": {"type": "Local"}}]}});
        let r = moor
            .req(
                reqwest::Method::POST,
                "/apis/image.openshift.io/v1/namespaces/default/imagestreamimports",
            )
            .json(&isi)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }

    // The image's config, pulled through once (a push of the manifest below needs it).
    let image_manifest =
        upstream_bytes(format!("/v2/team/signed/manifests/{}", signed.digest)).await;
    let config = {
        let m: Value = serde_json::from_slice(&image_manifest).unwrap();
        m["config"]["digest"].as_str().unwrap().to_string()
    };
    let r = moor
        .send(
            reqwest::Method::GET,
            &format!("/v2/default/local/blobs/{config}"),
        )
        .await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();

    dist.stop();

    let get = |path: String| {
        let moor = &moor;
        async move {
            let r = moor
                .req(reqwest::Method::GET, &path)
                .header(
                    "accept",
                    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
                )
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let digest = r
                .headers()
                .get("docker-content-digest")
                .map(|v| v.to_str().unwrap().to_string());
            (status, digest, r.bytes().await.unwrap())
        }
    };
    // The `.sig` tag: by tag (GET and HEAD), by digest, and its blobs.
    let (status, digest, body) = get(format!(
        "/v2/default/local/manifests/{}",
        sig_tag(&signed.digest)
    ))
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body, sig_manifest);
    assert_eq!(digest.as_deref(), Some(sig_digest.as_str()));
    let head = moor
        .send(
            reqwest::Method::HEAD,
            &format!("/v2/default/local/manifests/{}", sig_tag(&signed.digest)),
        )
        .await;
    assert_eq!(head.status(), 200);
    let (status, _, body) = get(format!("/v2/default/local/manifests/{sig_digest}")).await;
    assert_eq!((status, body), (200, sig_manifest.clone()));
    let (status, _, body) = get(format!(
        "/v2/default/isi/manifests/{}",
        sig_tag(&signed.digest)
    ))
    .await;
    assert_eq!((status, body), (200, sig_manifest.clone()));
    for (d, want) in sig_blobs.iter().zip(&sig_blob_bytes) {
        let (status, _, body) = get(format!("/v2/default/local/blobs/{d}")).await;
        assert_eq!((status, &body), (200, want), "blob {d}");
    }
    // A real client reads it too.
    let raw = {
        let mut cmd = std::process::Command::new("skopeo");
        cmd.args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &moor.creds(),
        ])
        .arg(format!(
            "docker://{}",
            moor.reference(&format!("local:{}", sig_tag(&signed.digest)))
        ));
        moor_testkit::peers::run_blocking(cmd).await
    };
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(raw.stdout, sig_manifest.to_vec());
    let dest = tempfile::tempdir().unwrap();
    let out = registry_support::skopeo_pull(
        &moor,
        &moor.reference(&format!("local:{}", sig_tag(&signed.digest))),
        dest.path(),
        false,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The OCI 1.1 referrer: listed by moor's referrers API, served by digest.
    let (status, _, body) = get(format!("/v2/default/local/referrers/{}", referred.digest)).await;
    assert_eq!(status, 200);
    let index: Value = serde_json::from_slice(&body).unwrap();
    let listed = index["manifests"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{index}");
    assert_eq!(listed[0]["digest"], json!(referrer));
    assert_eq!(listed[0]["artifactType"], json!(SIGNATURE_ARTIFACT));
    let (status, _, body) = get(format!("/v2/default/local/manifests/{referrer}")).await;
    assert_eq!((status, body), (200, ref_manifest));
    let (status, _, _) = get(format!("/v2/default/local/blobs/{ref_payload}")).await;
    assert_eq!(status, 200);
    // A `.sig` manifest has no subject: the referrers API does not list it.
    let (_, _, body) = get(format!("/v2/default/local/referrers/{}", signed.digest)).await;
    let index: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(index["manifests"], json!([]), "{index}");

    // Nothing else was mirrored, and no `.sig` is a tag of the stream.
    for (stream, digest) in [
        ("local", &otherkey.digest),
        ("local", &outside.digest),
        ("source", &signed.digest),
    ] {
        let (status, _, body) = get(format!(
            "/v2/default/{stream}/manifests/{}",
            sig_tag(digest)
        ))
        .await;
        assert_eq!(
            status,
            404,
            "{stream}:{}: {}",
            sig_tag(digest),
            String::from_utf8_lossy(&body)
        );
    }
    let (status, _, body) = get(format!("/v2/default/source/manifests/{sig_digest}")).await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    let s = moor.stream("local").await;
    let mut tags: Vec<&str> = s["status"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    tags.sort();
    assert_eq!(tags, ["otherkey", "outside", "ref", "signed"], "{s}");
    assert_eq!(s["spec"]["tags"].as_array().unwrap().len(), 4, "{s}");
    let (_, _, body) = get("/v2/default/local/tags/list".into()).await;
    let list: Value = serde_json::from_slice(&body).unwrap();
    // (A tag without an image is not listed: `otherkey` was refused.)
    assert_eq!(list["tags"], json!(["outside", "ref", "signed"]), "{list}");

    // A push by tag into moor, under a policy that takes the upstream's signatures
    // (RemapIdentity): the signature mirrored into `local` lets it in; `source`,
    // which has none, refuses it.
    for stream in ["local", "source"] {
        let p = key_policy(
            &format!("push-{stream}"),
            &[&format!("{}/default/{stream}", moor.host)],
            json!({"matchPolicy": "RemapIdentity", "remapIdentity": {
                "prefix": format!("{}/default/{stream}", moor.host),
                "signedPrefix": format!("{}/team/signed", dist.host)}}),
            &key.public_pem,
        );
        post_policy(&moor, &p).await;
    }
    let put = |stream: &'static str| {
        moor.req(
            reqwest::Method::PUT,
            &format!("/v2/default/{stream}/manifests/1.0"),
        )
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(image_manifest.clone())
        .send()
    };
    let r = put("source").await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED", "{body}");
    let r = put("local").await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    // A prune keeping nothing young keeps the signatures of the images it keeps.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = moor
        .req(reqwest::Method::POST, "/apis/moor.io/v1/imageprunes")
        .json(&json!({"apiVersion": "moor.io/v1", "kind": "ImagePrune",
                      "spec": {"keepTagRevisions": 1, "keepYoungerThan": "0s"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let pruned: Value = r.json().await.unwrap();
    // It did remove something: the `.sig` manifest of `otherkey`, read to verify it,
    // which nothing names.
    let removed: Vec<&str> = pruned["status"]["blobs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|b| b["digest"].as_str())
        .collect();
    assert!(!removed.is_empty(), "{pruned}");
    assert!(
        !removed
            .iter()
            .any(|d| sig_blobs.contains(&d.to_string()) || *d == sig_digest),
        "{pruned}"
    );
    let (status, _, body) = get(format!(
        "/v2/default/local/manifests/{}",
        sig_tag(&signed.digest)
    ))
    .await;
    assert_eq!((status, body), (200, sig_manifest.clone()));
    for (d, want) in sig_blobs.iter().zip(&sig_blob_bytes) {
        let (status, _, body) = get(format!("/v2/default/local/blobs/{d}")).await;
        assert_eq!((status, &body), (200, want), "blob {d} after a prune");
    }
    let (_, _, body) = get(format!("/v2/default/local/referrers/{}", referred.digest)).await;
    let index: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(index["manifests"][0]["digest"], json!(referrer), "{index}");
    let (status, _, _) = get(format!("/v2/default/local/blobs/{ref_payload}")).await;
    assert_eq!(status, 200);
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// Replicas on one store and one S3 bucket: the signature a Local import on replica 1
/// mirrors is served by replica 2 (its records are in the shared store, its blobs in
/// the bucket), with the upstream stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_mirrored_on_one_replica_are_served_by_another() {
    use moor_testkit::seaweedfs::{ACCESS_KEY, SECRET_KEY};
    use moor_testkit::{CosignKey, Distribution, Format, ImageSpec, OciLayout, SeaweedFs};
    if !moor_testkit::require(&["openssl", "skopeo"]) {
        return;
    }
    let Some(weed) = tokio::task::spawn_blocking(|| SeaweedFs::start("moor"))
        .await
        .unwrap()
    else {
        return;
    };
    let Some(mut dist) = Distribution::start() else {
        return;
    };
    let layout = OciLayout::new();
    layout.add_image("signed", &ImageSpec::app("replicated"));
    let key = CosignKey::generate();
    let signed = dist.push(&layout, "signed", "team/signed:1.0", Format::Oci);
    key.sign(&dist, "team/signed", &signed.digest, &signed.reference)
        .await;
    let sig_tag = signed.digest.replacen(':', "-", 1) + ".sig";
    let sig_manifest = reqwest::Client::new()
        .get(format!("{}/v2/team/signed/manifests/{sig_tag}", dist.url()))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let store: Arc<dyn moor_store::Store> = Arc::new(moor_store::MemoryStore::new());
    let url = format!(
        "s3://{}/sigs?endpoint={}&region=us-east-1",
        weed.bucket, weed.endpoint
    );
    let replica = |importing: bool| {
        let mut b = MoorServer::builder().store(store.clone());
        if importing {
            b = b
                .upstream(&[&dist.host])
                .imports(moor_server::importer::controller::Backoff {
                    initial: std::time::Duration::from_millis(300),
                    max: std::time::Duration::from_secs(2),
                    max_retries: 20,
                });
        }
        let url = url.clone();
        b.with(move |o| {
            o.blob_store = Some(url);
            o.s3_credentials = Some((ACCESS_KEY.into(), SECRET_KEY.into()));
        })
        .start()
    };
    let r1 = replica(true).await;
    let r2 = replica(false).await;
    let p = key_policy(
        "team-signed",
        &[&format!("{}/team", dist.host)],
        json!(null),
        &key.public_pem,
    );
    assert_eq!(r1.post(IP, &p).await.status, StatusCode::CREATED);
    let tag = json!({"name": "1.0", "from": {"kind": "DockerImage", "name": signed.reference},
        "importPolicy": {"insecure": true}, "referencePolicy": {"type": "Local"}});
    let r = r1
        .post(
            IS,
            &json!({"metadata": {"name": "app"}, "spec": {"tags": [tag]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let t = wait_tag(&r1, "app", "1.0", imported).await;
    assert_eq!(t["items"][0]["image"], json!(signed.digest));

    dist.stop();
    let r = r2
        .get(&format!("/v2/default/app/manifests/{sig_tag}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.text, sig_manifest);
    for l in r.body["layers"].as_array().unwrap() {
        let d = l["digest"].as_str().unwrap();
        let r = r2.get(&format!("/v2/default/app/blobs/{d}")).await;
        assert_eq!(r.status, StatusCode::OK, "{d}: {}", r.text);
    }
}
