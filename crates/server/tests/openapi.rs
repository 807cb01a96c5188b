//! `/openapi/v2` and `/openapi/v3`: every served kind has a full schema with a
//! description, every `$ref` resolves inside its own document, built-in fields carry
//! kube's patch extensions, and `/openapi/v2` answers JSON or protobuf.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use moor_testkit::server::{MoorServer, TOKEN};
use serde_json::Value;

fn refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                out.insert(r.clone());
            }
            o.values().for_each(|v| refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// The schema of `kind` in `doc`'s definitions (`defs`), by its
/// `x-kubernetes-group-version-kind`.
fn kind_schema<'a>(defs: &'a Value, group: &str, kind: &str) -> Option<&'a Value> {
    defs.as_object()?.values().find(|s| {
        s["x-kubernetes-group-version-kind"]
            .as_array()
            .is_some_and(|l| l.iter().any(|g| g["group"] == group && g["kind"] == kind))
    })
}

/// Every served kind, from discovery: (group, version, kind).
async fn served_kinds(h: &MoorServer) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let core = h.get("/api/v1").await.body;
    for r in core["resources"].as_array().unwrap() {
        if !r["name"].as_str().unwrap().contains('/') {
            out.push(("".into(), "v1".into(), r["kind"].as_str().unwrap().into()));
        }
    }
    let groups = h.get("/apis").await.body;
    for g in groups["groups"].as_array().unwrap() {
        let gv = g["preferredVersion"]["groupVersion"].as_str().unwrap();
        let list = h.get(&format!("/apis/{gv}")).await.body;
        let (group, version) = gv.split_once('/').unwrap();
        for r in list["resources"].as_array().unwrap() {
            if !r["name"].as_str().unwrap().contains('/') {
                out.push((
                    group.into(),
                    version.into(),
                    r["kind"].as_str().unwrap().into(),
                ));
            }
        }
    }
    out
}

#[tokio::test]
async fn v3_documents_have_described_schemas_for_every_kind_and_closed_refs() {
    let h = MoorServer::start().await;
    let root = h.get("/openapi/v3").await.body;
    let kinds = served_kinds(&h).await;
    assert!(kinds.len() > 20, "{kinds:?}");
    for (group, version, kind) in &kinds {
        let gv = if group.is_empty() {
            format!("api/{version}")
        } else {
            format!("apis/{group}/{version}")
        };
        let url = root["paths"][&gv]["serverRelativeURL"].as_str().unwrap();
        let doc = h.get(url).await.body;
        let defs = &doc["components"]["schemas"];
        let schema =
            kind_schema(defs, group, kind).unwrap_or_else(|| panic!("{gv} {kind} has no schema"));
        assert!(
            schema["description"].as_str().is_some_and(|d| d.len() > 10),
            "{kind}: {schema}"
        );
        assert!(schema["properties"].is_object(), "{kind} is not a stub");
        assert!(schema.get("x-kubernetes-preserve-unknown-fields").is_none());
        let mut all = BTreeSet::new();
        refs(&doc, &mut all);
        for r in all {
            let name = r.strip_prefix("#/components/schemas/").expect(&r);
            assert!(defs.get(name).is_some(), "{gv}: {r} does not resolve");
        }
    }
}

#[tokio::test]
async fn image_stream_schema_carries_openshift_descriptions() {
    let h = MoorServer::start().await;
    let doc = h.get("/openapi/v3/apis/image.openshift.io/v1").await.body;
    let defs = &doc["components"]["schemas"];
    let is = kind_schema(defs, "image.openshift.io", "ImageStream").unwrap();
    assert!(
        is["description"]
            .as_str()
            .unwrap()
            .starts_with("An ImageStream stores a mapping of tags to images")
    );
    let policy = &defs["com.github.openshift.api.image.v1.TagImportPolicy"];
    assert!(
        policy["properties"]["scheduled"]["description"]
            .as_str()
            .unwrap()
            .contains("periodically checked")
    );
    let spec = &defs["com.github.openshift.api.image.v1.ImageStreamSpec"];
    assert_eq!(
        spec["properties"]["tags"]["x-kubernetes-patch-merge-key"],
        "name"
    );
    assert_eq!(
        spec["properties"]["tags"]["x-kubernetes-patch-strategy"],
        "merge"
    );
    // A described `$ref` is wrapped in allOf, as kube-openapi publishes v3.
    let tag = &defs["com.github.openshift.api.image.v1.TagReference"];
    assert!(tag["properties"]["importPolicy"]["allOf"][0]["$ref"].is_string());
    assert!(tag["properties"]["importPolicy"]["description"].is_string());
}

#[tokio::test]
async fn built_in_schemas_carry_kube_patch_extensions() {
    let h = MoorServer::start().await;
    let doc = h.get("/openapi/v3/apis/apps/v1").await.body;
    let defs = &doc["components"]["schemas"];
    let deploy = kind_schema(defs, "apps", "Deployment").unwrap();
    assert!(deploy["properties"]["spec"].is_object());
    let pod = &defs["io.k8s.api.core.v1.PodSpec"]["properties"];
    for (list, key) in [
        ("containers", "name"),
        ("volumes", "name"),
        ("initContainers", "name"),
    ] {
        assert_eq!(pod[list]["x-kubernetes-patch-merge-key"], key, "{list}");
        assert_eq!(pod[list]["x-kubernetes-list-type"], "map", "{list}");
    }
    assert_eq!(
        pod["volumes"]["x-kubernetes-patch-strategy"],
        "merge,retainKeys"
    );
    let c = &defs["io.k8s.api.core.v1.Container"]["properties"];
    assert_eq!(c["env"]["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(c["ports"]["x-kubernetes-patch-merge-key"], "containerPort");
    assert_eq!(
        c["ports"]["x-kubernetes-list-map-keys"],
        serde_json::json!(["containerPort", "protocol"])
    );
    let meta = &defs["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"];
    assert_eq!(meta["finalizers"]["x-kubernetes-list-type"], "set");
}

#[tokio::test]
async fn v2_is_one_swagger_document_in_json_only() {
    let h = MoorServer::start().await;
    let r = h.get("/openapi/v2").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["swagger"], "2.0");
    let defs = &r.body["definitions"];
    let mut all = BTreeSet::new();
    refs(&r.body, &mut all);
    for x in all {
        let name = x.strip_prefix("#/definitions/").expect(&x);
        assert!(defs.get(name).is_some(), "{x} does not resolve");
    }
    for (g, k) in [
        ("image.openshift.io", "ImageStream"),
        ("apps", "Deployment"),
        ("", "Secret"),
    ] {
        assert!(kind_schema(defs, g, k).is_some(), "{k}");
    }
    let patch =
        &r.body["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert!(
        patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
    );
    // What client-go asks for: gnostic's protobuf Document; other types get 406.
    let req = |accept: &str| {
        Request::get("/openapi/v2")
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("accept", accept)
            .body(Body::empty())
            .unwrap()
    };
    let pb = h
        .raw(req(
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
        ))
        .await;
    assert_eq!(pb.status, StatusCode::OK);
    assert_eq!(
        pb.headers["content-type"],
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    );
    // Field 1 (swagger, a string): tag byte 0x0a, length 3, "2.0".
    assert!(
        pb.text.as_bytes().starts_with(b"\x0a\x032.0"),
        "{:?}",
        pb.text.chars().take(8).collect::<String>()
    );
    let xml = h.raw(req("application/xml")).await;
    assert_eq!(xml.status, StatusCode::NOT_ACCEPTABLE);
    let json = h.raw(req("application/json")).await;
    assert_eq!(json.status, StatusCode::OK);
    // The ETag lets a client revalidate without the body.
    let etag = json.headers["etag"].to_str().unwrap().to_string();
    let again = h
        .raw(
            Request::get("/openapi/v2")
                .header("authorization", format!("Bearer {TOKEN}"))
                .header("if-none-match", &etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
}
