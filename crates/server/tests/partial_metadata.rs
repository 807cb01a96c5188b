//! `PartialObjectMetadata` responses through the router, as client-go's metadata
//! client asks for them (kube-controller-manager's garbage collector and quota
//! informers): get, list, watch and patch answer metadata only under
//! `meta.k8s.io/v1`; a conversion moor cannot make is 406.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use futures::StreamExt;
use moor_testkit::server::*;
use serde_json::{Value, json};
use tower::ServiceExt;

const SECRETS: &str = "/api/v1/namespaces/default/secrets";
/// client-go's metadata client for one object: protobuf first, JSON as the fallback.
const POM: &str = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";
/// The same for lists.
const POML: &str = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";

fn stream(name: &str) -> Value {
    json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
           "metadata": {"name": name, "labels": {"app": name}},
           "spec": {"lookupPolicy": {"local": true}}})
}

fn secret(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": name, "labels": {"app": name}},
           "stringData": {"password": "hunter2"}})
}

fn request(method: Method, path: &str, accept: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("accept", accept)
}

async fn get_as(h: &MoorServer, path: &str, accept: &str) -> Resp {
    h.raw(
        request(Method::GET, path, accept)
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

/// Asserts `v` is a `PartialObjectMetadata` of `name` with nothing but metadata.
fn assert_partial(v: &Value, name: &str) {
    assert_eq!(v["kind"], "PartialObjectMetadata", "{v}");
    assert_eq!(v["apiVersion"], "meta.k8s.io/v1", "{v}");
    assert_eq!(v["metadata"]["name"], name, "{v}");
    assert_eq!(v["metadata"]["labels"]["app"], name, "{v}");
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["kind", "apiVersion", "metadata"], "{v}");
}

#[tokio::test]
async fn get_and_list_answer_metadata_only() {
    let h = MoorServer::start().await;
    for (base, body) in [
        (IS, [stream("a"), stream("b")]),
        (SECRETS, [secret("a"), secret("b")]),
    ] {
        for b in &body {
            let r = h.post(base, b).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        }
        let r = get_as(&h, &format!("{base}/a"), POM).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_partial(&r.body, "a");
        assert!(!r.text.contains("hunter2") && !r.text.contains("aHVudGVyMg"));

        let r = get_as(&h, base, POML).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["kind"], "PartialObjectMetadataList");
        assert_eq!(r.body["apiVersion"], "meta.k8s.io/v1");
        assert!(r.body["metadata"]["resourceVersion"].is_string());
        let items = r.body["items"].as_array().unwrap();
        let names: Vec<&str> = items
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert_partial(&items[1], "b");

        // Pages keep their continue token.
        let r = get_as(&h, &format!("{base}?limit=1"), POML).await;
        assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
        let token = r.body["metadata"]["continue"].as_str().unwrap();
        let r = get_as(&h, &format!("{base}?limit=1&continue={token}"), POML).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_partial(&r.body["items"][0], "b");
    }
    // v1beta1 too.
    let r = get_as(
        &h,
        &format!("{IS}/a"),
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1",
    )
    .await;
    assert_eq!(r.body["apiVersion"], "meta.k8s.io/v1beta1", "{}", r.text);
    // The plain list (the spliced fast path) is unchanged.
    let r = h.get(IS).await;
    assert_eq!(r.body["kind"], "ImageStreamList");
    assert_eq!(r.body["items"][0]["kind"], "ImageStream");
}

#[tokio::test]
async fn unsupported_conversions_are_406() {
    let h = MoorServer::start().await;
    h.post(IS, &stream("a")).await;
    for (path, accept) in [
        (IS, "application/json;as=Foo;g=meta.k8s.io;v=v1"),
        (IS, "application/json;as=PartialObjectMetadata;g=apps;v=v1"),
        (
            IS,
            "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        ),
        // A list asked for as one object, and one object asked for as a list.
        (
            IS,
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        ),
        (
            &format!("{IS}/a"),
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        ),
    ] {
        let r = get_as(&h, path, accept).await;
        assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE, "{path} {accept}");
        assert_eq!(r.body["kind"], "Status");
        assert_eq!(r.body["reason"], "NotAcceptable");
    }
    // An unknown conversion with a plain JSON fallback gets the object.
    let r = get_as(
        &h,
        &format!("{IS}/a"),
        "application/json;as=Foo;g=meta.k8s.io;v=v1,application/json",
    )
    .await;
    assert_eq!(r.body["kind"], "ImageStream");
}

/// Watch events, bookmarks included, carry `PartialObjectMetadata` objects.
#[tokio::test]
async fn watch_events_carry_metadata_only() {
    let h = MoorServer::start().await;
    for (base, body) in [(IS, stream("w")), (SECRETS, secret("w"))] {
        let rv = h.get(base).await.body["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        let req = request(
            Method::GET,
            &format!(
                "{base}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=10"
            ),
            POM,
        )
        .body(Body::empty())
        .unwrap();
        let resp = h.router.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let mut events = resp.into_body().into_data_stream();
        h.post(base, &body).await;
        h.patch(
            &format!("{base}/w"),
            "application/merge-patch+json",
            &json!({"metadata": {"annotations": {"v": "2"}}}),
        )
        .await;
        h.delete(&format!("{base}/w")).await;
        let mut seen = Vec::new();
        let mut buf = String::new();
        while seen.iter().filter(|(t, _)| t != "BOOKMARK").count() < 3
            || !seen.iter().any(|(t, _)| t == "BOOKMARK")
        {
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), events.next())
                .await
                .expect("an event")
                .expect("the stream goes on")
                .unwrap();
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(i) = buf.find('\n') {
                let line: String = buf.drain(..=i).collect();
                let ev: Value = serde_json::from_str(line.trim()).unwrap();
                seen.push((
                    ev["type"].as_str().unwrap().to_string(),
                    ev["object"].clone(),
                ));
            }
        }
        for (t, obj) in &seen {
            assert_eq!(obj["kind"], "PartialObjectMetadata", "{t}: {obj}");
            assert_eq!(obj["apiVersion"], "meta.k8s.io/v1", "{t}: {obj}");
            if t != "BOOKMARK" {
                assert_partial(obj, "w");
            }
        }
        let types: Vec<&str> = seen
            .iter()
            .map(|(t, _)| t.as_str())
            .filter(|t| *t != "BOOKMARK")
            .collect();
        assert_eq!(types, ["ADDED", "MODIFIED", "DELETED"], "{base}");
        assert_eq!(seen[1].1["metadata"]["annotations"]["v"], "2");
    }
}

/// The garbage collector removes owner references through the metadata client,
/// whose patch asks for `PartialObjectMetadata` back.
#[tokio::test]
async fn patch_answers_metadata_only() {
    let h = MoorServer::start().await;
    h.post(IS, &stream("p")).await;
    let req = request(Method::PATCH, &format!("{IS}/p"), POM)
        .header("content-type", "application/merge-patch+json")
        .body(Body::from(
            json!({"metadata": {"annotations": {"gc": "1"}}}).to_string(),
        ))
        .unwrap();
    let r = h.raw(req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_partial(&r.body, "p");
    assert_eq!(r.body["metadata"]["annotations"]["gc"], "1");
}
