//! The admission webhook (`POST /admission/image-policy`) with AdmissionReview bodies
//! shaped the way kube-apiserver sends them (tests/fixtures/admission): the JSONPatch for
//! a Pod, a Deployment and a CronJob update, objects with a controller owner skipped,
//! fail-closed denials, an invalid triggers annotation, and an unknown version.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use moor_testkit::server::*;
use serde_json::{Value, json};

const NS_IS: &str = "/apis/image.openshift.io/v1/namespaces/team-a/imagestreams";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/admission/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture JSON")
}

/// A harness with namespace team-a and stream keycloak (lookup on): 20.0 at d2, latest
/// at d1; and stream pending (lookup on) whose tag 1.0 has no image yet.
async fn setup() -> MoorServer {
    let h = MoorServer::start().await;
    let r = h
        .post(
            "/api/v1/namespaces",
            &json!({"metadata": {"name": "team-a"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    for (name, tags) in [
        (
            "keycloak",
            vec![("20.0", digest('2')), ("latest", digest('1'))],
        ),
        ("pending", vec![]),
    ] {
        let r = h
            .post(
                NS_IS,
                &json!({"metadata": {"name": name}, "spec": {"lookupPolicy": {"local": true},
                        "tags": [{"name": if name == "pending" { "1.0" } else { "20.0" },
                                  "from": {"kind": "DockerImage", "name": "quay.io/x/y:1"}}]}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        if tags.is_empty() {
            continue;
        }
        let mut s = h.get(&format!("{NS_IS}/{name}")).await.body;
        s["status"]["tags"] = Value::Array(
            tags.iter()
                .map(|(t, d)| json!({"tag": t, "items": [{"created": "2026-01-01T00:00:00Z",
                    "dockerImageReference": format!("quay.io/keycloak/keycloak@{d}"), "image": d, "generation": 1}]}))
                .collect(),
        );
        let r = h.put(&format!("{NS_IS}/{name}/status"), &s).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    h
}

/// POSTs a review as `token` (`None`: without credentials).
async fn review_as(h: &MoorServer, token: Option<&str>, body: &Value) -> Resp {
    let mut req =
        Request::post("/admission/image-policy").header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    h.raw(req.body(Body::from(body.to_string())).unwrap()).await
}

/// POSTs a review as the admin.
async fn review(h: &MoorServer, body: &Value) -> Resp {
    review_as(h, Some(&h.token), body).await
}

/// The response's JSONPatch, decoded.
fn patch_of(resp: &Value) -> Value {
    assert_eq!(resp["patchType"], "JSONPatch", "{resp}");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(resp["patch"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&raw).unwrap()
}

fn pinned(c: char) -> String {
    format!("quay.io/keycloak/keycloak@{}", digest(c))
}

#[tokio::test]
async fn pod_create_gets_a_patch_for_each_short_name() {
    let h = setup().await;
    let body = fixture("pod-create.json");
    let r = review(&h, &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(r.body["kind"], "AdmissionReview");
    let resp = &r.body["response"];
    assert_eq!(resp["uid"], body["request"]["uid"]);
    assert_eq!(resp["allowed"], true);
    let patch = patch_of(resp);
    assert_eq!(
        patch,
        json!([
            {"op": "replace", "path": "/spec/initContainers/0/image", "value": pinned('1')},
            {"op": "replace", "path": "/spec/containers/0/image", "value": pinned('2')},
        ])
    );
    // The patch applies to the object kube-apiserver sent.
    let mut obj = body["request"]["object"].clone();
    let ops: json_patch::Patch = serde_json::from_value(patch).unwrap();
    json_patch::patch(&mut obj, &ops).unwrap();
    assert_eq!(
        obj["spec"]["containers"][1]["image"],
        "docker.io/library/busybox:1.36"
    );
    assert_eq!(resp["warnings"].as_array().unwrap().len(), 2);

    // The same review in v1beta1 is answered in v1beta1.
    let mut beta = body.clone();
    beta["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let r = review(&h, &beta).await;
    assert_eq!(r.body["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(r.body["response"]["allowed"], true);
}

#[tokio::test]
async fn deployment_create_and_cronjob_update() {
    let h = setup().await;
    let r = review(&h, &fixture("deployment-create.json")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        patch_of(&r.body["response"]),
        json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": pinned('2')}])
    );

    // On UPDATE only images that changed are resolved: "upload" was keycloak:20.0 before.
    let r = review(&h, &fixture("cronjob-update.json")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["response"]["uid"],
        "a1b2c3d4-0000-4111-8222-333344445555"
    );
    assert_eq!(
        patch_of(&r.body["response"]),
        json!([{"op": "replace", "path": "/spec/jobTemplate/spec/template/spec/containers/0/image", "value": pinned('2')}])
    );
}

#[tokio::test]
async fn owned_objects_other_kinds_and_deletes_pass_unchanged() {
    let h = setup().await;
    let r = review(&h, &fixture("pod-owned-by-replicaset.json")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let resp = &r.body["response"];
    assert_eq!(resp["allowed"], true);
    assert!(resp.get("patch").is_none(), "{resp}");
    assert!(resp.get("patchType").is_none(), "{resp}");

    let mut delete = fixture("pod-create.json");
    delete["request"]["operation"] = json!("DELETE");
    delete["request"]["oldObject"] = delete["request"]["object"].take();
    let r = review(&h, &delete).await;
    assert_eq!(r.body["response"]["allowed"], true);
    assert!(r.body["response"].get("patch").is_none());

    let mut secret = fixture("pod-create.json");
    secret["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "Secret"});
    secret["request"]["object"] =
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}});
    let r = review(&h, &secret).await;
    assert_eq!(r.body["response"]["allowed"], true);

    let mut status = fixture("deployment-create.json");
    status["request"]["subResource"] = json!("status");
    status["request"]["operation"] = json!("UPDATE");
    let r = review(&h, &status).await;
    assert!(r.body["response"].get("patch").is_none());
}

#[tokio::test]
async fn fails_closed_when_a_stream_with_lookup_has_no_image() {
    let h = setup().await;
    let mut body = fixture("pod-create.json");
    body["request"]["object"]["spec"]["containers"][0]["image"] = json!("pending:1.0");
    let r = review(&h, &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let resp = &r.body["response"];
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(resp["status"]["code"], 422);
    assert_eq!(resp["status"]["reason"], "Invalid");
    assert_eq!(
        resp["status"]["message"],
        "image policy: spec.containers[0].image: image \"pending:1.0\" cannot be resolved: image stream tag team-a/pending:1.0 has no image yet (its import has not finished)"
    );
    assert!(resp.get("patch").is_none());

    // A tag the stream does not have points at the stream's own repository instead.
    body["request"]["object"]["spec"]["containers"][0]["image"] = json!("pending:2.0");
    let r = review(&h, &body).await;
    let patch = patch_of(&r.body["response"]);
    assert_eq!(patch[1]["value"], "registry.test:5000/team-a/pending:2.0");
}

#[tokio::test]
async fn bad_input_gets_a_clear_status() {
    let h = setup().await;
    let mut v2 = fixture("pod-create.json");
    v2["apiVersion"] = json!("admission.k8s.io/v2");
    let r = review(&h, &v2).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.body["kind"], "Status");
    assert_eq!(r.body["reason"], "BadRequest");
    assert_eq!(
        r.body["message"],
        "unsupported AdmissionReview version \"admission.k8s.io/v2\": this webhook speaks admission.k8s.io/v1 and admission.k8s.io/v1beta1 (set admissionReviewVersions: [\"v1\"])"
    );
    let r = review(&h, &json!({"kind": "Pod", "apiVersion": "v1"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = review(
        &h,
        &json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("no request"), "{}", r.text);

    let mut broken = fixture("pod-create.json");
    broken["request"]["object"]["spec"]["containers"] = json!("not a list");
    let r = review(&h, &broken).await;
    let resp = &r.body["response"];
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(resp["status"]["code"], 400);
    assert!(
        resp["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("image policy: the Pod does not decode: "),
        "{resp}"
    );

    let mut bad = fixture("deployment-create.json");
    bad["request"]["object"]["metadata"]["annotations"] = json!({"image.openshift.io/triggers":
        r#"[{"from":{"kind":"ImageStreamTag","name":"keycloak:20.0"},"fieldPath":"spec.template.spec.containers[?(@.name==\"web\")].image"}]"#});
    let r = review(&h, &bad).await;
    let resp = &r.body["response"];
    assert_eq!(resp["allowed"], false);
    assert!(
        resp["status"]["message"]
            .as_str()
            .unwrap()
            .contains("names no container of this Deployment"),
        "{resp}"
    );
}

#[test]
fn the_example_webhook_configuration_matches_what_is_served() {
    use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/image-policy-webhook.yaml"
    );
    let text = std::fs::read_to_string(path).expect("deploy/image-policy-webhook.yaml");
    let config: MutatingWebhookConfiguration = serde_yaml_ng::from_str(&text).expect("valid YAML");
    let hooks = config.webhooks.expect("webhooks");
    let hook = &hooks[0];
    assert_eq!(hook.admission_review_versions, vec!["v1".to_string()]);
    assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));
    assert_eq!(hook.side_effects, "None");
    let url = hook.client_config.url.as_deref().unwrap();
    assert!(url.ends_with(moor_server::lookup::admission::PATH), "{url}");
    let mut covered: Vec<(String, String)> = Vec::new();
    for rule in hook.rules.iter().flatten() {
        assert_eq!(
            rule.operations.as_deref(),
            Some(&["CREATE".to_string(), "UPDATE".to_string()][..])
        );
        for g in rule.api_groups.iter().flatten() {
            for r in rule.resources.iter().flatten() {
                covered.push((g.clone(), r.clone()));
            }
        }
    }
    for kind in moor_api::lookup::WorkloadKind::ALL {
        assert!(
            covered.contains(&(kind.group().to_string(), kind.plural().to_string())),
            "{kind} is not routed to the webhook"
        );
    }
}

#[tokio::test]
async fn a_namespace_moor_does_not_have_passes_with_a_warning() {
    let h = setup().await;
    let mut body = fixture("pod-create.json");
    body["request"]["namespace"] = json!("elsewhere");
    body["request"]["object"]["metadata"]["namespace"] = json!("elsewhere");
    let r = review(&h, &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let resp = &r.body["response"];
    assert_eq!(resp["allowed"], true, "{resp}");
    assert!(resp.get("patch").is_none(), "{resp}");
    assert_eq!(
        resp["warnings"],
        json!([
            "image policy: namespace \"elsewhere\" does not exist in moor, so short image names in it (keycloak) were not resolved; create it and its image streams in moor"
        ])
    );
    // A namespace moor has, without the streams, passes quietly as before.
    let r = h
        .post(
            "/api/v1/namespaces",
            &json!({"metadata": {"name": "elsewhere"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = review(&h, &body).await;
    assert!(r.body["response"]["warnings"].is_null(), "{}", r.text);
}

/// The webhook answers only callers allowed to: a token whose user may `create`
/// `admissionreviews.admission.k8s.io`, or a verified client certificate (next test).
/// A stranger learns nothing (no digest, no patch).
#[tokio::test]
async fn callers_need_a_token_allowed_to_create_admissionreviews() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        "hook-token,kube-apiserver,1\nother-token,mallory,2\n",
    )
    .unwrap();
    let h = MoorServer::builder()
        .with(|o| o.token_auth_file = Some(tokens.clone()))
        .start()
        .await;
    let body = fixture("pod-create.json");
    let r = review_as(&h, None, &body).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(!r.text.contains("patch"), "{}", r.text);
    let r = review_as(&h, Some("forged"), &body).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let r = review_as(&h, Some("other-token"), &body).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.text.contains("admissionreviews"), "{}", r.text);
    let role = json!({"metadata": {"name": "moor:admission-caller"},
        "rules": [{"apiGroups": ["admission.k8s.io"], "resources": ["admissionreviews"], "verbs": ["create"]}]});
    let r = h
        .post("/apis/rbac.authorization.k8s.io/v1/clusterroles", &role)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let binding = json!({"metadata": {"name": "moor:admission-caller"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "moor:admission-caller"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "kube-apiserver"}]});
    let r = h
        .post(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            &binding,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = review_as(&h, Some("hook-token"), &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["response"]["allowed"], true, "{}", r.text);
    let r = review_as(&h, Some("other-token"), &body).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}

/// kube-apiserver presents a client certificate (its AdmissionConfiguration
/// kubeconfig); one verified against `--client-ca-file` may call the webhook, over a
/// real TLS listener. A certificate from another CA fails the handshake.
#[tokio::test]
async fn a_client_certificate_from_the_client_ca_may_call_the_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let client_ca = moor_testkit::TestCa::new("client CA");
    let ca_file = dir.path().join("client-ca.crt");
    std::fs::write(&ca_file, client_ca.pem()).unwrap();
    let identity = client_ca.client_identity("kube-apiserver", &["system:masters-not"]);

    let h = MoorServer::builder()
        .with(|o| {
            o.plain_http = false;
            o.client_ca_file = Some(ca_file.clone());
        })
        .listen()
        .await;
    let server_ca = std::fs::read(h.data_dir().join("tls/ca.crt")).unwrap();
    let https = |identity: Option<&str>| {
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(reqwest::Certificate::from_pem(&server_ca).unwrap());
        if let Some(id) = identity {
            b = b.identity(reqwest::Identity::from_pem(id.as_bytes()).unwrap());
        }
        b.build().unwrap()
    };
    let url = format!("https://{}/admission/image-policy", h.host);
    let body = fixture("pod-create.json").to_string();
    let r = https(Some(&identity))
        .post(&url)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = https(None)
        .post(&url)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "no certificate, no token"
    );
    // The certificate's user is an ordinary user for the API: no rights there.
    let r = https(Some(&identity))
        .get(format!(
            "https://{}/apis/image.openshift.io/v1/namespaces/team-a/imagestreams",
            h.host
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let text = r.text().await.unwrap();
    assert!(text.contains("User \\\"kube-apiserver\\\""), "{text}");
    // A certificate of another CA does not get through the handshake.
    let forged = moor_testkit::TestCa::new("other CA").client_identity("kube-apiserver", &[]);
    let sent = https(Some(&forged)).post(&url).body(body).send().await;
    assert!(
        sent.is_err() || sent.is_ok_and(|r| r.status() != StatusCode::OK),
        "a foreign certificate is refused"
    );
}

/// In a cluster, kube-apiserver calls the webhook (and the aggregated API) at
/// `SERVICE.NAMESPACE.svc` and verifies the certificate against the caBundle it was
/// given: `--tls-cert-file`/`--tls-private-key-file` serve such a certificate (from
/// cert-manager, say) instead of moor's own.
#[tokio::test]
async fn a_given_serving_certificate_is_served_for_the_service_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = moor_testkit::TestCa::new("cluster CA");
    let (cert, key) = ca.serving(&["moor.moor.svc"]);
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_file, format!("{cert}{}", ca.pem())).unwrap();
    std::fs::write(&key_file, key).unwrap();

    let h = MoorServer::builder()
        .with(|o| {
            o.plain_http = false;
            o.serving_cert = Some((cert_file.clone(), key_file.clone()));
        })
        .listen()
        .await;
    let addr: std::net::SocketAddr = h.host.parse().unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .resolve("moor.moor.svc", addr)
        .build()
        .unwrap();
    let r = client
        .get(format!("https://moor.moor.svc:{}/healthz", addr.port()))
        .send()
        .await
        .expect("the cluster CA verifies the served certificate for the service name");
    assert_eq!(r.status(), StatusCode::OK);
    // moor did not issue a certificate of its own.
    assert!(!h.data_dir().join("tls/server.crt").exists());

    // A renewal (cert-manager rewrites the Secret's files) is served without a
    // restart, to new connections.
    let served = || async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
            .resolve("moor.moor.svc", addr)
            .pool_max_idle_per_host(0)
            .tls_info(true)
            .build()
            .unwrap();
        let r = client
            .get(format!("https://moor.moor.svc:{}/healthz", addr.port()))
            .send()
            .await
            .unwrap();
        r.extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|t| t.peer_certificate().map(<[u8]>::to_vec))
            .expect("the peer certificate")
    };
    let before = served().await;
    let (cert, key) = ca.serving(&["moor.moor.svc"]);
    std::fs::write(&key_file, key).unwrap();
    std::fs::write(&cert_file, format!("{cert}{}", ca.pem())).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while served().await == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the renewed certificate was not served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
