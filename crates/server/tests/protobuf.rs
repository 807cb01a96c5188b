//! `application/vnd.kubernetes.protobuf` request bodies through the router: created,
//! replaced and deleted objects read back as JSON equal to what a JSON body gives;
//! bad bodies are a `Status` with nothing stored; `Accept` without JSON is 406.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use k8s_pb::api::{apps, batch, core};
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use moor_testkit::server::*;
use prost::Message;
use serde_json::{Value, json};

const PB: &str = "application/vnd.kubernetes.protobuf";
const SECRETS: &str = "/api/v1/namespaces/default/secrets";

/// A body as client-go encodes it: `k8s\0`, then `runtime.Unknown` around `object`.
fn envelope<M: Message>(api_version: &str, kind: &str, object: &M) -> Vec<u8> {
    let mut body = b"k8s\0".to_vec();
    body.extend(
        Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(object.encode_to_vec()),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        }
        .encode_to_vec(),
    );
    body
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn named(name: &str) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: s(name),
        ..Default::default()
    })
}

fn secret(name: &str) -> core::v1::Secret {
    core::v1::Secret {
        metadata: named(name),
        data: BTreeMap::from([("a".to_string(), b"b".to_vec())]),
        string_data: BTreeMap::from([("c".to_string(), "d".to_string())]),
        r#type: s("Opaque"),
        ..Default::default()
    }
}

fn template() -> Option<core::v1::PodTemplateSpec> {
    Some(core::v1::PodTemplateSpec {
        metadata: Some(meta::ObjectMeta {
            labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
            ..Default::default()
        }),
        spec: Some(core::v1::PodSpec {
            containers: vec![core::v1::Container {
                name: s("web"),
                image: s("quay.io/keycloak/keycloak:20.0.2"),
                resources: Some(Default::default()),
                ..Default::default()
            }],
            restart_policy: s("Never"),
            ..Default::default()
        }),
    })
}

/// Strips what the server adds, to compare what was sent.
fn sent_fields(mut v: Value) -> Value {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
            "generation",
            "namespace",
            "annotations",
        ] {
            m.remove(k);
        }
    }
    v
}

#[tokio::test]
async fn built_in_kinds_are_created_from_protobuf_and_read_back_as_json() {
    let h = MoorServer::start().await;
    let r = h
        .call(
            Method::POST,
            SECRETS,
            PB,
            envelope("v1", "Secret", &secret("s")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let got = h.get(&format!("{SECRETS}/s")).await;
    assert_eq!(got.body["data"], json!({"a": "Yg==", "c": "ZA=="}));
    assert_eq!(got.body["type"], "Opaque");
    // The same object sent as JSON is stored the same.
    let r = h
        .post(
            SECRETS,
            &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "j"},
                    "data": {"a": "Yg=="}, "stringData": {"c": "d"}, "type": "Opaque"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let json_got = h.get(&format!("{SECRETS}/j")).await;
    let mut a = sent_fields(got.body.clone());
    let mut b = sent_fields(json_got.body);
    a["metadata"]["name"] = json!("x");
    b["metadata"]["name"] = json!("x");
    assert_eq!(a, b);

    let ns = core::v1::Namespace {
        metadata: named("team"),
        ..Default::default()
    };
    let r = h
        .call(
            Method::POST,
            "/api/v1/namespaces",
            PB,
            envelope("v1", "Namespace", &ns),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        h.get("/api/v1/namespaces/team").await.status,
        StatusCode::OK
    );

    let deploy = apps::v1::Deployment {
        metadata: named("web"),
        spec: Some(apps::v1::DeploymentSpec {
            replicas: Some(1),
            selector: Some(meta::LabelSelector {
                match_labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
                match_expressions: vec![],
            }),
            template: template(),
            strategy: Some(Default::default()),
            ..Default::default()
        }),
        status: Some(Default::default()),
    };
    let r = h
        .call(
            Method::POST,
            "/apis/apps/v1/namespaces/default/deployments",
            PB,
            envelope("apps/v1", "Deployment", &deploy),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let got = h
        .get("/apis/apps/v1/namespaces/default/deployments/web")
        .await;
    assert_eq!(
        got.body["spec"]["template"]["spec"]["containers"][0]["image"],
        "quay.io/keycloak/keycloak:20.0.2"
    );
    assert_eq!(got.body["spec"]["selector"]["matchLabels"]["app"], "web");

    let job = batch::v1::Job {
        metadata: named("once"),
        spec: Some(batch::v1::JobSpec {
            template: template(),
            ..Default::default()
        }),
        status: None,
    };
    let r = h
        .call(
            Method::POST,
            "/apis/batch/v1/namespaces/default/jobs",
            PB,
            envelope("batch/v1", "Job", &job),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["kind"], "Job");
}

#[tokio::test]
async fn replace_and_delete_take_protobuf_bodies() {
    let h = MoorServer::start().await;
    let r = h
        .call(
            Method::POST,
            SECRETS,
            PB,
            envelope("v1", "Secret", &secret("s")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let uid = r.body["metadata"]["uid"].as_str().unwrap().to_string();
    let rv = r.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut changed = secret("s");
    changed.string_data.clear();
    changed.data = BTreeMap::from([("a".to_string(), b"new".to_vec())]);
    if let Some(m) = changed.metadata.as_mut() {
        m.resource_version = Some(rv.clone());
    }
    let r = h
        .call(
            Method::PUT,
            &format!("{SECRETS}/s"),
            PB,
            envelope("v1", "Secret", &changed),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["data"], json!({"a": "bmV3"}));
    // A stale resourceVersion in a protobuf body is a precondition like in JSON.
    let r = h
        .call(
            Method::PUT,
            &format!("{SECRETS}/s"),
            PB,
            envelope("v1", "Secret", &changed),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);

    // DeleteOptions as client-go sends them: a wrong uid precondition is a conflict.
    let opts = |uid: &str, dry_run: bool| meta::DeleteOptions {
        preconditions: Some(meta::Preconditions {
            uid: s(uid),
            resource_version: None,
        }),
        dry_run: if dry_run { vec!["All".into()] } else { vec![] },
        ..Default::default()
    };
    let path = format!("{SECRETS}/s");
    let r = h
        .call(
            Method::DELETE,
            &path,
            PB,
            envelope("v1", "DeleteOptions", &opts("other", false)),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let r = h
        .call(
            Method::DELETE,
            &path,
            PB,
            envelope("v1", "DeleteOptions", &opts(&uid, true)),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        h.get(&path).await.status,
        StatusCode::OK,
        "dry run deletes nothing"
    );
    let r = h
        .call(
            Method::DELETE,
            &path,
            PB,
            envelope("v1", "DeleteOptions", &opts(&uid, false)),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(h.get(&path).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_protobuf_bodies_get_a_status_and_store_nothing() {
    let h = MoorServer::start().await;
    let before = h.store.current_revision().await.unwrap();
    let good = envelope("v1", "Secret", &secret("s"));
    let mut garbage = b"k8s\0".to_vec();
    garbage.extend([0xff; 32]);
    let mut wrong_magic = good.clone();
    wrong_magic[3] = b'!';
    let cm = core::v1::ConfigMap {
        metadata: named("s"),
        ..Default::default()
    };
    let cases: Vec<(&str, &str, Vec<u8>, StatusCode)> = vec![
        (
            "truncated",
            SECRETS,
            good[..good.len() - 5].to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        ("garbage", SECRETS, garbage, StatusCode::BAD_REQUEST),
        ("wrong magic", SECRETS, wrong_magic, StatusCode::BAD_REQUEST),
        (
            "JSON labelled protobuf",
            SECRETS,
            b"{}".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "kind of another resource",
            SECRETS,
            envelope("v1", "ConfigMap", &cm),
            StatusCode::BAD_REQUEST,
        ),
        (
            "unknown kind",
            SECRETS,
            envelope("v1", "Node", &cm),
            StatusCode::BAD_REQUEST,
        ),
        (
            "other group",
            SECRETS,
            envelope("apps/v1", "Secret", &cm),
            StatusCode::BAD_REQUEST,
        ),
        (
            "a resource without protobuf",
            "/apis/image.openshift.io/v1/namespaces/default/imagestreams",
            good.clone(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ];
    for (what, path, body, code) in cases {
        let r = h.call(Method::POST, path, PB, body).await;
        assert_eq!(r.status, code, "{what}: {}", r.text);
        assert_eq!(r.body["kind"], "Status", "{what}");
        assert_eq!(r.body["code"], code.as_u16(), "{what}");
    }
    // Over 3 MiB: 413 before decoding.
    let mut big = secret("big");
    big.data
        .insert("x".into(), vec![b'x'; 3 * 1024 * 1024 + 10]);
    let r = h
        .call(Method::POST, SECRETS, PB, envelope("v1", "Secret", &big))
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert_eq!(r.body["reason"], "RequestEntityTooLarge");
    // A field this API version does not know is an unknown field, as in JSON.
    let mut pod_spec = template();
    if let Some(spec) = pod_spec.as_mut().and_then(|t| t.spec.as_mut()) {
        spec.workload_ref = Some(Default::default());
    }
    let job = batch::v1::Job {
        metadata: named("j"),
        spec: Some(batch::v1::JobSpec {
            template: pod_spec,
            ..Default::default()
        }),
        status: None,
    };
    let r = h
        .call(
            Method::POST,
            "/apis/batch/v1/namespaces/default/jobs?fieldValidation=Strict",
            PB,
            envelope("batch/v1", "Job", &job),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("spec.template.spec.workloadRef"),
        "{}",
        r.text
    );
    assert_eq!(h.store.current_revision().await.unwrap(), before);
}

fn with_accept(h: &MoorServer, path: &str, accept: &str) -> Request<Body> {
    Request::builder()
        .uri(path)
        .header("authorization", format!("Bearer {}", h.token))
        .header("accept", accept)
        .body(Body::empty())
        .expect("request")
}

#[tokio::test]
async fn responses_are_json_and_protobuf_only_is_406() {
    let h = MoorServer::start().await;
    for accept in [
        "application/vnd.kubernetes.protobuf, */*",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        "application/json;stream=watch",
        "",
    ] {
        let r = h.raw(with_accept(&h, SECRETS, accept)).await;
        assert_eq!(r.status, StatusCode::OK, "{accept}: {}", r.text);
        assert!(r.body.is_object(), "{accept}");
    }
    for accept in [
        "application/vnd.kubernetes.protobuf",
        "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io",
        "application/json;q=0, application/vnd.kubernetes.protobuf",
    ] {
        let r = h.raw(with_accept(&h, SECRETS, accept)).await;
        assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE, "{accept}");
        assert_eq!(r.body["kind"], "Status");
        assert_eq!(r.body["reason"], "NotAcceptable");
    }
    // Discovery and OpenAPI do not claim protobuf.
    for path in [
        "/api/v1",
        "/apis",
        "/apis/apps/v1",
        "/openapi/v3",
        "/openapi/v3/api/v1",
    ] {
        let r = h.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(!r.text.contains("protobuf"), "{path} mentions protobuf");
    }
}
