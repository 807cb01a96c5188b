//! Garbage collection in process: `POST /apis/moor.io/v1/imageprunes` over `app()` with a
//! registry on a temp dir. Images and history are written as a push writes them
//! (`Catalog::tag_pushed`), their blobs put in the blob store; then dry runs, a
//! namespace-only prune and a full prune are checked against what must stay: a tag's
//! newest entry, an entry a Deployment pins by digest, a list's children, an image a
//! spec tag names, blobs shared with a kept image. Also the endpoint's Status errors.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use moor_api::Digest;
use moor_api::image::{DockerImageMetadata, Image, ImageLayer, ImageManifest};
use moor_server::registry::Registry;
use moor_server::registry::storage::BlobStore;
use moor_testkit::server::*;
use serde_json::{Value, json};

const HOST: &str = REGISTRY_HOST;
const PRUNES: &str = "/apis/moor.io/v1/imageprunes";

struct Setup {
    h: MoorServer,
    reg: Arc<Registry>,
}

async fn setup() -> Setup {
    let h = MoorServer::start().await;
    let reg = h.registry.clone().expect("moor serves a registry");
    Setup { h, reg }
}

/// Puts `bytes` in the blob store; returns the digest.
fn put(blobs: &BlobStore, bytes: &[u8]) -> String {
    let d = Digest::sha256_of(bytes);
    blobs.put(&d, bytes).unwrap();
    d.to_string()
}

/// An image whose manifest, config and `layers` are in the blob store.
fn image(blobs: &BlobStore, name: &str, layers: &[&str], children: &[&Image]) -> Image {
    let config = put(blobs, format!("config of {name}").as_bytes());
    let layer_digests: Vec<String> = layers.iter().map(|l| put(blobs, l.as_bytes())).collect();
    let manifest = json!({"name": name, "config": config, "layers": layer_digests});
    let digest = put(blobs, manifest.to_string().as_bytes());
    Image {
        metadata: ObjectMeta {
            name: Some(digest.clone()),
            ..Default::default()
        },
        docker_image_reference: format!("{HOST}/default/app@{digest}"),
        docker_image_metadata: Some(DockerImageMetadata {
            id: config,
            ..Default::default()
        }),
        docker_image_layers: layer_digests
            .into_iter()
            .map(|name| ImageLayer {
                name,
                size: 1,
                media_type: moor_api::media_types::OCI_LAYER.into(),
            })
            .collect(),
        docker_image_manifests: children
            .iter()
            .map(|c| ImageManifest {
                digest: c.metadata.name.clone().unwrap(),
                media_type: moor_api::media_types::OCI_MANIFEST.into(),
                architecture: "amd64".into(),
                os: "linux".into(),
                ..Default::default()
            })
            .collect(),
        docker_image_manifest_media_type: moor_api::media_types::OCI_MANIFEST.into(),
        ..Default::default()
    }
}

fn name(i: &Image) -> String {
    i.metadata.name.clone().unwrap()
}

fn blobs_of(i: &Image) -> Vec<String> {
    let mut out = vec![
        name(i),
        i.docker_image_metadata.as_ref().unwrap().id.clone(),
    ];
    out.extend(i.docker_image_layers.iter().map(|l| l.name.clone()));
    out
}

fn stored(blobs: &BlobStore) -> BTreeSet<String> {
    blobs
        .list_blobs()
        .unwrap()
        .into_iter()
        .map(|(d, _, _)| d.to_string())
        .collect()
}

fn strings(v: &Value, pointer: &str, field: &str) -> BTreeSet<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| x[field].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

async fn history(h: &MoorServer, stream: &str) -> Vec<String> {
    let s = h.get(&format!("{IS}/{stream}")).await.body;
    s["status"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == "latest")
        .unwrap()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["image"].as_str().unwrap().to_string())
        .collect()
}

async fn prune(h: &MoorServer, spec: Value) -> Value {
    let r = h
        .post(
            PRUNES,
            &json!({"apiVersion": "moor.io/v1", "kind": "ImagePrune", "spec": spec}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["kind"], "ImagePrune");
    r.body
}

#[tokio::test]
async fn prune_keeps_what_is_named_and_removes_the_rest() {
    let Setup { h, reg } = setup().await;
    let blobs = &reg.blobs;
    let importer = reg.repos.catalog().clone();
    let v1 = image(blobs, "v1", &["layer a", "shared"], &[]);
    let v2 = image(blobs, "v2", &["shared", "layer b"], &[]);
    let v3 = image(blobs, "v3", &["shared"], &[]);
    for i in [&v1, &v2, &v3] {
        importer
            .tag_pushed("default", "app", "latest", i)
            .await
            .unwrap();
    }
    let child = image(blobs, "child", &["child layer"], &[]);
    let list = image(blobs, "list", &[], &[&child]);
    importer
        .store_images(std::slice::from_ref(&child))
        .await
        .unwrap();
    importer
        .tag_pushed("default", "multi", "latest", &list)
        .await
        .unwrap();
    let orphan = image(blobs, "orphan", &["orphan layer"], &[]);
    let named = image(blobs, "named by a spec tag", &[], &[]);
    importer
        .store_images(&[orphan.clone(), named.clone()])
        .await
        .unwrap();
    let r = h
        .post(
            IS,
            &json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
                "metadata": {"name": "other"},
                "spec": {"tags": [{"name": "pinned", "from": {"kind": "ImageStreamImage",
                    "name": format!("app@{}", name(&named))}}]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = h
        .post(
            "/apis/apps/v1/namespaces/default/deployments",
            &json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web"},
                "spec": {"selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web",
                            "image": format!("{HOST}/default/app@{}", name(&v1))}]}}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let before = stored(blobs);
    assert_eq!(history(&h, "app").await, [name(&v3), name(&v2), name(&v1)]);
    tokio::time::sleep(Duration::from_millis(2100)).await;

    // A dry run reports and changes nothing.
    let spec = json!({"keepTagRevisions": 1, "keepYoungerThan": "0s"});
    let dry = prune(
        &h,
        json!({"keepTagRevisions": 1, "keepYoungerThan": 0, "dryRun": true}),
    )
    .await;
    let status = &dry["status"];
    assert_eq!(status["dryRun"], true);
    assert_eq!(
        strings(status, "/historyItems", "image"),
        [name(&v2)].into(),
        "v1 is pinned by the deployment, v3 is the newest"
    );
    let expect_images: BTreeSet<String> = [name(&v2), name(&orphan)].into();
    assert_eq!(strings(status, "/images", "name"), expect_images);
    let mut expect_blobs: BTreeSet<String> = blobs_of(&v2).into_iter().collect();
    expect_blobs.extend(blobs_of(&orphan));
    expect_blobs.remove(&v3.docker_image_layers[0].name); // shared
    assert_eq!(strings(status, "/blobs", "digest"), expect_blobs);
    assert_eq!(history(&h, "app").await.len(), 3);
    assert_eq!(stored(blobs), before);
    let dry_query = h
        .post(&format!("{PRUNES}?dryRun=All"), &json!({"spec": spec}))
        .await;
    assert_eq!(dry_query.body["status"]["dryRun"], true);
    assert_eq!(stored(blobs), before);

    // With a namespace, only that namespace's history goes.
    let only = prune(
        &h,
        json!({"keepTagRevisions": 1, "keepYoungerThan": "0s", "namespace": "default"}),
    )
    .await;
    assert_eq!(
        strings(&only["status"], "/historyItems", "image"),
        [name(&v2)].into()
    );
    assert!(only["status"].get("images").is_none(), "{only}");
    assert!(
        only["status"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("only image stream history"),
        "{only}"
    );
    assert_eq!(history(&h, "app").await, [name(&v3), name(&v1)]);
    assert_eq!(stored(blobs), before);

    // The full prune removes the images nothing names and the blobs only they used.
    let done = prune(&h, spec.clone()).await;
    let status = &done["status"];
    assert_eq!(status["dryRun"], false);
    assert!(status.get("historyItems").is_none(), "already pruned");
    assert_eq!(strings(status, "/images", "name"), expect_images);
    assert_eq!(strings(status, "/blobs", "digest"), expect_blobs);
    assert!(status.get("errors").is_none(), "{status}");
    assert_eq!(stored(blobs), &before - &expect_blobs);
    for gone in &expect_images {
        let r = h
            .get(&format!("/apis/image.openshift.io/v1/images/{gone}"))
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
    for kept in [&v1, &v3, &list, &child, &named] {
        let r = h
            .get(&format!(
                "/apis/image.openshift.io/v1/images/{}",
                name(kept)
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{} is kept", name(kept));
    }
    let again = prune(&h, spec).await;
    assert!(again["status"].get("images").is_none(), "{again}");
    assert!(again["status"].get("blobs").is_none(), "{again}");
}

#[tokio::test]
async fn young_things_are_kept_by_default() {
    let Setup { h, reg } = setup().await;
    let importer = reg.repos.catalog().clone();
    for n in ["a", "b", "c", "d", "e"] {
        let i = image(&reg.blobs, n, &[n], &[]);
        importer
            .tag_pushed("default", "app", "latest", &i)
            .await
            .unwrap();
    }
    importer
        .store_images(&[image(&reg.blobs, "orphan", &[], &[])])
        .await
        .unwrap();
    let before = stored(&reg.blobs);
    let done = prune(&h, json!({})).await;
    assert_eq!(done["spec"], json!({}));
    assert!(
        done["status"].get("historyItems").is_none(),
        "60m keeps everything just pushed: {done}"
    );
    assert!(done["status"].get("images").is_none(), "{done}");
    assert_eq!(history(&h, "app").await.len(), 5);
    assert_eq!(stored(&reg.blobs), before);
}

#[tokio::test]
async fn the_endpoint_answers_with_statuses() {
    let Setup { h, .. } = setup().await;
    let r = h
        .call(Method::POST, PRUNES, "application/json", "{not json")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["kind"], "Status");
    assert_eq!(r.body["reason"], "BadRequest");
    let r = h
        .post(PRUNES, &json!({"spec": {"keepYoungerThan": "-5m"}}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = h.get(PRUNES).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.body["kind"], "Status");
    let r = h
        .raw(
            axum::http::Request::post(PRUNES)
                .body(axum::body::Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // An ordinary resource: discovered, with its one verb, and in OpenAPI.
    let r = h.get("/apis/moor.io/v1").await;
    let prunes = r.body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "imageprunes")
        .cloned()
        .unwrap_or_else(|| panic!("imageprunes is discovered: {}", r.body));
    assert_eq!(prunes["verbs"], json!(["create"]));
    assert_eq!(prunes["namespaced"], false);
    let r = h.get("/openapi/v3/apis/moor.io/v1").await;
    assert!(r.text.contains("ImagePrune"), "{}", r.text);

    // Without a registry there is nothing to prune.
    let bare = MoorServer::builder().api_only().start().await;
    let r = bare.post(PRUNES, &json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["kind"], "Status");
}
