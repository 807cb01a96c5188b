//! The registry against the OCI distribution-spec v1.1, endpoint by endpoint, over
//! HTTP: each test quotes the spec's words it checks. Pushing blobs (monolithic POST
//! then PUT, a single POST, chunked with PATCH and Content-Range, out of order 416,
//! status and cancel), mounting, pushing and pulling manifests, deleting, listing tags
//! with `n` and `last`, the referrers API, and the error codes of bad input. No peers:
//! content is made here.

use crate::registry_support;

use registry_support::*;
use reqwest::Method;
use serde_json::{Value, json};

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn sha512(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(bytes)))
}

async fn error_code(r: reqwest::Response) -> String {
    let v: Value = r.json().await.unwrap();
    v["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Pushes `bytes` into `repo` with one POST; returns the digest.
async fn push_blob(moor: &Moor, repo: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let r = moor
        .req(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        )
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    digest
}

/// An image manifest over a config and one layer pushed into `repo`.
async fn push_image(moor: &Moor, repo: &str, label: &str) -> (Vec<u8>, String) {
    let layer = format!("layer of {label}").into_bytes();
    let layer_digest = push_blob(moor, repo, &layer).await;
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Labels": {"label": label}},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .unwrap();
    let config_digest = push_blob(moor, repo, &config).await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer.len()}],
    }))
    .unwrap();
    let digest = sha256(&manifest);
    (manifest, digest)
}

async fn put_manifest(moor: &Moor, repo: &str, reference: &str, body: &[u8]) -> reqwest::Response {
    moor.req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_then_put_is_a_monolithic_upload() {
    // "obtain a session ID (upload URL) ... POST /v2/<name>/blobs/uploads/ ... the
    // response MUST have a code of 202 Accepted, and MUST have a Location header";
    // "PUT <location>?digest=<digest> ... the response MUST have a code of 201 Created
    // and MUST have a Location header".
    let moor = Moor::start(Options::default()).await;
    let r = moor
        .send(Method::POST, "/v2/default/up/blobs/uploads/")
        .await;
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("/v2/default/up/blobs/uploads/"));
    let body = b"monolithic".to_vec();
    let digest = sha256(&body);
    let r = moor
        .req(Method::PUT, &format!("{location}?digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("/v2/default/up/blobs/{digest}")
    );
    assert_eq!(
        r.headers()["docker-content-digest"].to_str().unwrap(),
        digest
    );
    // "HEAD /v2/<name>/blobs/<digest> ... 200 OK", with the length.
    let r = moor
        .send(Method::HEAD, &format!("/v2/default/up/blobs/{digest}"))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"].to_str().unwrap(), "10");
    // A wrong digest: "the registry MUST respond with ... DIGEST_INVALID" and keeps nothing.
    let r = moor
        .send(Method::POST, "/v2/default/up/blobs/uploads/")
        .await;
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let wrong = sha256(b"something else");
    let r = moor
        .req(Method::PUT, &format!("{location}?digest={wrong}"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = moor
        .send(Method::GET, &format!("/v2/default/up/blobs/{wrong}"))
        .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_post_with_the_digest_uploads_and_sha512_is_accepted() {
    // "POST /v2/<name>/blobs/uploads/?digest=<digest> ... with the blob as body ...
    // Successful completion of the request MUST return a 201 Created".
    let moor = Moor::start(Options::default()).await;
    let body = b"in one request".to_vec();
    let digest = sha512(&body);
    let r = moor
        .req(
            Method::POST,
            &format!("/v2/default/one/blobs/uploads/?digest={digest}"),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = moor
        .send(Method::GET, &format!("/v2/default/one/blobs/{digest}"))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), body.as_slice());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_uploads_go_in_order_and_out_of_order_chunks_get_416() {
    // "PATCH <location> ... Content-Range: <range> ... Each successful chunk upload
    // MUST have a 202 Accepted response code, and MUST have ... Location ... Range";
    // "If a chunk is uploaded out of order, the registry MUST respond with a
    // 416 Requested Range Not Satisfiable code".
    let moor = Moor::start(Options::default()).await;
    let r = moor
        .send(Method::POST, "/v2/default/chunks/blobs/uploads/")
        .await;
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let (a, b) = data.split_at(1000);
    let r = moor
        .req(Method::PATCH, &location)
        .header("content-type", "application/octet-stream")
        .header("content-range", "0-999")
        .header("content-length", "1000")
        .body(a.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["range"].to_str().unwrap(), "0-999");
    let location = r.headers()["location"].to_str().unwrap().to_string();
    // Out of order: starts at 1500 while the upload stands at 1000.
    let r = moor
        .req(Method::PATCH, &location)
        .header("content-range", "1500-2499")
        .body(b[500..1500].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["range"].to_str().unwrap(), "0-999");
    // "GET <location> ... 204 No Content ... Range: 0-<end>".
    let r = moor.send(Method::GET, &location).await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["range"].to_str().unwrap(), "0-999");
    let r = moor
        .req(Method::PATCH, &location)
        .header("content-range", "1000-2999")
        .body(b.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["range"].to_str().unwrap(), "0-2999");
    let digest = sha256(&data);
    let r = moor
        .send(Method::PUT, &format!("{location}?digest={digest}"))
        .await;
    assert_eq!(r.status(), 201);
    let got = moor
        .send(Method::GET, &format!("/v2/default/chunks/blobs/{digest}"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), data.as_slice());
    // "Range" requests of a blob: 206 with the asked bytes.
    let r = moor
        .req(Method::GET, &format!("/v2/default/chunks/blobs/{digest}"))
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        "bytes 10-19/3000"
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[10..20]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_order_closing_put_leaves_the_session_open() {
    // The conformance suite's "PutLastChunk" with "OutOfOrderChunks": the closing PUT
    // carries a chunk that does not start where the upload stands. 416, and then
    // "GET <location> ... 204 No Content ... Range: 0-<end>": the session is alive.
    let moor = Moor::start(Options::default()).await;
    let r = moor
        .send(Method::POST, "/v2/default/late/blobs/uploads/")
        .await;
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 241) as u8).collect();
    let r = moor
        .req(Method::PATCH, &location)
        .header("content-range", "0-999")
        .body(data[..1000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let digest = sha256(&data);
    let r = moor
        .req(Method::PUT, &format!("{location}?digest={digest}"))
        .header("content-range", "2000-2999")
        .body(data[2000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["range"].to_str().unwrap(), "0-999");
    assert_eq!(r.headers()["location"].to_str().unwrap(), location);
    let r = moor
        .send(Method::GET, &format!("{location}?digest={digest}"))
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["range"].to_str().unwrap(), "0-999");
    let r = moor
        .req(Method::PATCH, &location)
        .header("content-range", "1000-1999")
        .body(data[1000..2000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = moor
        .req(Method::PUT, &format!("{location}?digest={digest}"))
        .header("content-range", "2000-2999")
        .body(data[2000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let got = moor
        .send(Method::GET, &format!("/v2/default/late/blobs/{digest}"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), data.as_slice());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_upload_is_unknown_afterwards() {
    // "DELETE /v2/<name>/blobs/uploads/<reference> ... 204 No Content"; afterwards the
    // session is BLOB_UPLOAD_UNKNOWN (404).
    let moor = Moor::start(Options::default()).await;
    let r = moor
        .send(Method::POST, "/v2/default/c/blobs/uploads/")
        .await;
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let r = moor.send(Method::DELETE, &location).await;
    assert_eq!(r.status(), 204);
    let r = moor.send(Method::GET, &location).await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
    // A session is bound to its repository.
    let r = moor
        .send(Method::POST, "/v2/default/c/blobs/uploads/")
        .await;
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let elsewhere = location.replace("/default/c/", "/default/d/");
    let r = moor.send(Method::GET, &elsewhere).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounting_links_a_readable_blob_and_falls_back_to_an_upload_otherwise() {
    // "POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<other_name> ... If the
    // registry can mount ... 201 Created ... If the registry does not support cross
    // repository mounting or is unable to mount the requested blob, it SHOULD return
    // a 202".
    let moor = Moor::start(Options::default()).await;
    let digest = push_blob(&moor, "default/src", b"shared layer").await;
    let r = moor
        .send(
            Method::POST,
            &format!("/v2/default/dst/blobs/uploads/?mount={digest}&from=default/src"),
        )
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("/v2/default/dst/blobs/{digest}")
    );
    let r = moor
        .send(Method::GET, &format!("/v2/default/dst/blobs/{digest}"))
        .await;
    assert_eq!(r.status(), 200);
    // From a repository that does not have it: an upload session instead.
    let r = moor
        .send(
            Method::POST,
            &format!("/v2/default/dst2/blobs/uploads/?mount={digest}&from=default/nothing"),
        )
        .await;
    assert_eq!(r.status(), 202);
    let r = moor
        .send(Method::GET, &format!("/v2/default/dst2/blobs/{digest}"))
        .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_push_pull_by_tag_and_digest_and_need_their_blobs() {
    let moor = Moor::start(Options::default()).await;
    let (manifest, digest) = push_image(&moor, "default/m", "one").await;
    // "PUT /v2/<name>/manifests/<reference> ... 201 Created ... Location".
    let r = put_manifest(&moor, "default/m", "v1", &manifest).await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("/v2/default/m/manifests/{digest}")
    );
    assert_eq!(
        r.headers()["docker-content-digest"].to_str().unwrap(),
        digest
    );
    for reference in ["v1", digest.as_str()] {
        let r = moor
            .send(Method::GET, &format!("/v2/default/m/manifests/{reference}"))
            .await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(
            r.headers()["docker-content-digest"].to_str().unwrap(),
            digest
        );
        assert_eq!(r.bytes().await.unwrap().as_ref(), manifest.as_slice());
        let r = moor
            .send(
                Method::HEAD,
                &format!("/v2/default/m/manifests/{reference}"),
            )
            .await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["content-length"].to_str().unwrap(),
            manifest.len().to_string()
        );
    }
    // "If a manifest references a blob that the registry does not have ... the
    // registry MUST respond with ... MANIFEST_BLOB_UNKNOWN".
    let (other, _) = push_image(&moor, "default/other", "two").await;
    let r = put_manifest(&moor, "default/m", "v2", &other).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
    // A digest reference must match the body.
    let r = put_manifest(&moor, "default/m", &sha256(b"x"), &manifest).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    // Not a manifest.
    let r = put_manifest(&moor, "default/m", "bad", b"{not json").await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");
    // Unknown tag and unknown repository.
    let r = moor.send(Method::GET, "/v2/default/m/manifests/nope").await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
    let r = moor
        .send(Method::GET, "/v2/default/ghost/manifests/v1")
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "NAME_UNKNOWN");
}

/// PUTs `body` as an OCI index.
async fn put_index(moor: &Moor, repo: &str, reference: &str, body: &[u8]) -> reqwest::Response {
    moor.req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
        .header("content-type", "application/vnd.oci.image.index.v1+json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

/// An OCI index of `children` (`(digest, size, media type)`), with platforms when given.
fn index_of(children: &[(String, usize, &str)], platform: bool) -> Vec<u8> {
    let manifests: Vec<Value> = children
        .iter()
        .enumerate()
        .map(|(i, (digest, size, media_type))| {
            let mut d = json!({"mediaType": media_type, "digest": digest, "size": size});
            if platform {
                let arch = if i == 0 { "amd64" } else { "arm64" };
                d["platform"] = json!({"os": "linux", "architecture": arch});
            }
            d
        })
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_of_indexes_is_stored_and_served_by_tag() {
    // The conformance suite's "nested index": an index whose entries are indexes
    // (without platforms), pushed by digest and by tag, children checked as for any
    // index.
    const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    let moor = Moor::start(Options::default()).await;
    let repo = "default/nested";
    let mut inner = Vec::new();
    for n in 0..2 {
        let mut images = Vec::new();
        for arch in ["amd64", "arm64"] {
            let (m, d) = push_image(&moor, repo, &format!("{n}-{arch}")).await;
            let r = put_manifest(&moor, repo, &d, &m).await;
            assert_eq!(r.status(), 201);
            images.push((d, m.len(), MANIFEST));
        }
        let index = index_of(&images, true);
        let digest = sha256(&index);
        let r = put_index(&moor, repo, &digest, &index).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        inner.push((digest, index.len(), INDEX));
    }
    let outer = index_of(&inner, false);
    let digest = sha256(&outer);
    let r = put_index(&moor, repo, &digest, &outer).await;
    assert_eq!(r.status(), 201, "by digest: {}", r.text().await.unwrap());
    let r = put_index(&moor, repo, "index-of-index", &outer).await;
    assert_eq!(r.status(), 201, "by tag: {}", r.text().await.unwrap());
    for reference in ["index-of-index", digest.as_str(), inner[1].0.as_str()] {
        let r = moor
            .send(Method::GET, &format!("/v2/{repo}/manifests/{reference}"))
            .await;
        assert_eq!(r.status(), 200, "{reference}");
        assert_eq!(r.headers()["content-type"].to_str().unwrap(), INDEX);
    }
    let r = moor
        .send(Method::GET, &format!("/v2/{repo}/manifests/index-of-index"))
        .await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), outer.as_slice());
    // A child index the repository does not have: MANIFEST_BLOB_UNKNOWN, as for any index.
    let ghost = index_of(&[(sha256(b"ghost"), 5, INDEX)], false);
    let r = put_index(&moor, repo, "ghost", &ghost).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_manifests_tags_and_blobs() {
    // "DELETE /v2/<name>/manifests/<digest> ... 202 Accepted"; "DELETE
    // /v2/<name>/blobs/<digest> ... 202 Accepted"; deleting what is not there: 404.
    let moor = Moor::start(Options::default()).await;
    let (manifest, digest) = push_image(&moor, "default/del", "one").await;
    assert_eq!(
        put_manifest(&moor, "default/del", "a", &manifest)
            .await
            .status(),
        201
    );
    assert_eq!(
        put_manifest(&moor, "default/del", "b", &manifest)
            .await
            .status(),
        201
    );
    // By tag: the tag goes, the other stays.
    let r = moor
        .send(Method::DELETE, "/v2/default/del/manifests/a")
        .await;
    assert_eq!(r.status(), 202);
    let tags: Value = moor
        .send(Method::GET, "/v2/default/del/tags/list")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], json!(["b"]));
    // By digest: out of every tag's history.
    let r = moor
        .send(
            Method::DELETE,
            &format!("/v2/default/del/manifests/{digest}"),
        )
        .await;
    assert_eq!(r.status(), 202);
    let r = moor
        .send(Method::GET, &format!("/v2/default/del/manifests/{digest}"))
        .await;
    assert_eq!(r.status(), 404);
    let r = moor.send(Method::GET, "/v2/default/del/manifests/b").await;
    assert_eq!(r.status(), 404);
    let r = moor
        .send(
            Method::DELETE,
            &format!("/v2/default/del/manifests/{digest}"),
        )
        .await;
    assert_eq!(r.status(), 404);
    // A pushed blob.
    let blob = push_blob(&moor, "default/del", b"to delete").await;
    let r = moor
        .send(Method::DELETE, &format!("/v2/default/del/blobs/{blob}"))
        .await;
    assert_eq!(r.status(), 202);
    let r = moor
        .send(Method::GET, &format!("/v2/default/del/blobs/{blob}"))
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "BLOB_UNKNOWN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_lists_paginate_with_n_and_last() {
    // "GET /v2/<name>/tags/list?n=<integer> ... the response MUST include ... Link:
    // <<url>?n=<n>&last=<last tag>>; rel="next""; "?n=<n>&last=<tag> ... tags
    // lexically after <tag>".
    let moor = Moor::start(Options::default()).await;
    let (manifest, _) = push_image(&moor, "default/tags", "t").await;
    for t in ["c", "a", "e", "b", "d"] {
        assert_eq!(
            put_manifest(&moor, "default/tags", t, &manifest)
                .await
                .status(),
            201
        );
    }
    let all: Value = moor
        .send(Method::GET, "/v2/default/tags/tags/list")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        all,
        json!({"name": "default/tags", "tags": ["a", "b", "c", "d", "e"]})
    );
    let r = moor
        .send(Method::GET, "/v2/default/tags/tags/list?n=2")
        .await;
    assert_eq!(
        r.headers()["link"].to_str().unwrap(),
        "</v2/default/tags/tags/list?n=2&last=b>; rel=\"next\""
    );
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["tags"], json!(["a", "b"]));
    let r = moor
        .send(Method::GET, "/v2/default/tags/tags/list?n=2&last=d")
        .await;
    assert!(r.headers().get("link").is_none());
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["tags"], json!(["e"]));
    // The catalog paginates the same way.
    let catalog: Value = moor
        .send(Method::GET, "/v2/_catalog?n=10")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(catalog["repositories"], json!(["default/tags"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_list_manifests_whose_subject_is_the_digest() {
    // "When processing a request for an image manifest with the subject field, a
    // registry implementation that supports the referrers API MUST respond with the
    // response header OCI-Subject: <subject digest>"; "GET
    // /v2/<name>/referrers/<digest> ... MUST return ... an image index";
    // "?artifactType=<artifactType> ... MUST include OCI-Filters-Applied".
    let moor = Moor::start(Options::default()).await;
    let (manifest, subject) = push_image(&moor, "default/ref", "base").await;
    assert_eq!(
        put_manifest(&moor, "default/ref", "v1", &manifest)
            .await
            .status(),
        201
    );
    let empty = push_blob(&moor, "default/ref", b"{}").await;
    let mut sigs = Vec::new();
    for (i, kind) in [
        "application/vnd.example.sig",
        "application/vnd.example.sbom",
    ]
    .iter()
    .enumerate()
    {
        let referrer = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": kind,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": subject, "size": manifest.len()},
            "annotations": {"n": i.to_string()},
        }))
        .unwrap();
        let d = sha256(&referrer);
        let r = put_manifest(&moor, "default/ref", &d, &referrer).await;
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers()["oci-subject"].to_str().unwrap(), subject);
        sigs.push(d);
    }
    let r = moor
        .send(Method::GET, &format!("/v2/default/ref/referrers/{subject}"))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/vnd.oci.image.index.v1+json"
    );
    let index: Value = r.json().await.unwrap();
    let mut listed: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    listed.sort();
    let mut expected: Vec<&str> = sigs.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(listed, expected);
    let r = moor
        .send(
            Method::GET,
            &format!(
                "/v2/default/ref/referrers/{subject}?artifactType=application/vnd.example.sbom"
            ),
        )
        .await;
    assert_eq!(
        r.headers()["oci-filters-applied"].to_str().unwrap(),
        "artifactType"
    );
    let index: Value = r.json().await.unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(
        index["manifests"][0]["artifactType"],
        "application/vnd.example.sbom"
    );
    assert_eq!(index["manifests"][0]["annotations"]["n"], "1");
    // A digest nothing refers to: an empty index, not 404.
    let r = moor
        .send(
            Method::GET,
            &format!("/v2/default/ref/referrers/{}", sha256(b"none")),
        )
        .await;
    assert_eq!(r.status(), 200);
    let index: Value = r.json().await.unwrap();
    assert_eq!(index["manifests"], json!([]));
}

/// `GET path` over a plain TCP connection, the path exactly as given: the status
/// and the JSON body.
async fn raw_get(moor: &Moor, path: &str) -> (u16, Value) {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(&moor.host).await.unwrap();
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("u:{}", moor.token()));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {creds}\r\nConnection: close\r\n\r\n",
        moor.host
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_default();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_and_digests_get_oci_errors() {
    let moor = Moor::start(Options::default()).await;
    for (path, status, code) in [
        ("/v2/default/UPPER/manifests/v1", 400, "NAME_INVALID"),
        ("/v2/a/b/c/manifests/v1", 400, "NAME_INVALID"),
        ("/v2/default/%2e%2e/manifests/v1", 400, "NAME_INVALID"),
        ("/v2/default/../manifests/v1", 400, "NAME_INVALID"),
        ("/v2/default/x%2Fy/blobs/sha256:00", 400, "NAME_INVALID"),
        ("/v2/default/x/blobs/sha256:zz", 400, "DIGEST_INVALID"),
        ("/v2/default/x/blobs/md5:abc", 400, "DIGEST_INVALID"),
        ("/v2/default/x/manifests/bad:tag:x", 400, "DIGEST_INVALID"),
    ] {
        // Sent byte for byte: an HTTP client library would resolve `..` and `%2e%2e`
        // before the server saw them.
        let (got, body) = raw_get(&moor, path).await;
        assert_eq!(got, status, "{path}");
        assert_eq!(body["errors"][0]["code"], code, "{path}");
    }
    // Nothing was created on disk for those names.
    let repositories = moor.data_dir().join("registry/repositories");
    assert_eq!(repositories.read_dir().unwrap().count(), 0);
    // Dots are fine inside a stream name, as in the API.
    let digest = push_blob(&moor, "default/web.app", b"dotted").await;
    let r = moor
        .send(Method::GET, &format!("/v2/default/web.app/blobs/{digest}"))
        .await;
    assert_eq!(r.status(), 200);
    // Every answer says which API it is.
    let r = moor.send(Method::GET, "/v2/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["docker-distribution-api-version"]
            .to_str()
            .unwrap(),
        "registry/2.0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_stream_mappings_add_a_tag_event_to_an_existing_stream() {
    // OpenShift's ImageStreamMapping: what a registry push records, through the API.
    let moor = Moor::start(Options::default()).await;
    let digest = sha256(b"mapped manifest");
    let mapping = |stream: &str| {
        json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStreamMapping",
            "metadata": {"name": stream},
            "tag": "v1",
            "image": {"metadata": {"name": digest},
                      "dockerImageReference": format!("quay.io/team/app@{digest}")},
        })
    };
    let path = "/apis/image.openshift.io/v1/namespaces/default/imagestreammappings";
    let r = moor
        .req(Method::POST, path)
        .json(&mapping("missing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the stream must exist");
    moor.create_stream("mapped", vec![]).await;
    let r = moor
        .req(Method::POST, path)
        .json(&mapping("mapped"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "Success");
    let s = moor.stream("mapped").await;
    assert_eq!(s["status"]["tags"][0]["tag"], "v1");
    assert_eq!(s["status"]["tags"][0]["items"][0]["image"], digest.as_str());
    assert_eq!(
        s["status"]["tags"][0]["items"][0]["dockerImageReference"],
        format!("quay.io/team/app@{digest}")
    );
    let image = moor
        .send(
            Method::GET,
            &format!("/apis/image.openshift.io/v1/images/{digest}"),
        )
        .await;
    assert_eq!(image.status(), 200);
    // A bad tag is Invalid (422) with the field named.
    let mut bad = mapping("mapped");
    bad["tag"] = json!("not a tag!");
    let r = moor
        .req(Method::POST, path)
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_manifests_are_refused_and_nothing_is_stored() {
    let moor = Moor::start(Options::default()).await;
    let big = vec![b' '; 4 * 1024 * 1024 + 1];
    let r = put_manifest(&moor, "default/big", "v1", &big).await;
    assert_eq!(r.status(), 413);
    assert_eq!(error_code(r).await, "SIZE_INVALID");
    let r = moor.send(Method::GET, "/v2/default/big/manifests/v1").await;
    assert_eq!(r.status(), 404);
}

/// Descriptors of this process open on files under `dir`.
fn descriptors_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|fds| {
            fds.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter(|target| target.starts_with(dir))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_sessions_are_capped_hold_no_descriptor_and_expire() {
    // Beyond the caps: distribution's TOOMANYREQUESTS with 429. An idle session is
    // forgotten (BLOB_UPLOAD_UNKNOWN) and its partial file removed.
    let moor = Moor::start(Options {
        uploads: moor_server::registry::UploadLimits {
            max_sessions: 3,
            max_sessions_per_repository: 2,
            // Long enough that no session expires between the steps below on a loaded
            // machine (500 ms did, in a debug build under load).
            idle_timeout: std::time::Duration::from_secs(3),
        },
        ..Default::default()
    })
    .await;
    let start = |repo: &'static str| {
        let moor = &moor;
        async move {
            moor.send(Method::POST, &format!("/v2/default/{repo}/blobs/uploads/"))
                .await
        }
    };
    let first = start("a").await;
    assert_eq!(first.status(), 202);
    let location = first.headers()["location"].to_str().unwrap().to_string();
    let r = moor
        .req(Method::PATCH, &location)
        .header("content-range", "0-9")
        .body(vec![7u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(start("a").await.status(), 202);
    let r = start("a").await;
    assert_eq!(r.status(), 429, "the repository's cap");
    assert_eq!(error_code(r).await, "TOOMANYREQUESTS");
    assert_eq!(start("b").await.status(), 202);
    let r = start("c").await;
    assert_eq!(r.status(), 429, "the global cap");
    assert_eq!(error_code(r).await, "TOOMANYREQUESTS");
    assert_eq!(moor.registry.upload_sessions(), 3);
    let uploads = moor.data_dir().join("registry/sessions");
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 3);
    assert_eq!(
        descriptors_under(&uploads),
        0,
        "a waiting session holds no descriptor"
    );
    // Idle past the timeout: a new session is accepted again, the old ones are gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while start("c").await.status() != 202 {
        assert!(
            std::time::Instant::now() < deadline,
            "sessions never expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let r = moor.send(Method::GET, &location).await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
    // The expired sessions' files go with them (the cap may count a session out a
    // moment before the reaper's removal of its directory completes).
    while std::fs::read_dir(&uploads).unwrap().count() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "only the new session's files are left: {:?}",
            std::fs::read_dir(&uploads).unwrap().count()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The mode bits of `path`.
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_sessions_survive_a_restart_and_expired_ones_leave_the_disk() {
    let moor = Moor::start(Options::default()).await;
    let r = moor
        .send(Method::POST, "/v2/default/resume/blobs/uploads/")
        .await;
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 239) as u8).collect();
    let r = moor
        .req(Method::PATCH, &location)
        .header("content-range", "0-999")
        .body(data[..1000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let sessions = moor.data_dir().join("registry/sessions");
    let id = location.rsplit('/').next().unwrap().to_string();
    assert_eq!(mode(&sessions.join(&id)), 0o700);
    assert_eq!(mode(&sessions.join(&id).join("data")), 0o600);
    assert_eq!(mode(&sessions.join(&id).join("state.json")), 0o600);

    // Restarted, the session stands where it stood, and the upload goes on.
    let moor = moor.restart(Options::default()).await;
    assert_eq!(moor.registry.upload_sessions(), 1);
    let r = moor.send(Method::GET, &location).await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["range"].to_str().unwrap(), "0-999");
    let r = moor
        .req(Method::PATCH, &location)
        .header("content-range", "1000-2999")
        .body(data[1000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let digest = sha256(&data);
    let r = moor
        .send(Method::PUT, &format!("{location}?digest={digest}"))
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let got = moor
        .send(Method::GET, &format!("/v2/default/resume/blobs/{digest}"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), data.as_slice());
    assert_eq!(std::fs::read_dir(&sessions).unwrap().count(), 0);

    // A session idle past the timeout when moor starts is removed from disk then.
    let r = moor
        .send(Method::POST, "/v2/default/resume/blobs/uploads/")
        .await;
    let stale = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(std::fs::read_dir(&sessions).unwrap().count(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let short = moor_server::registry::UploadLimits {
        idle_timeout: std::time::Duration::from_millis(10),
        ..Default::default()
    };
    let moor = moor
        .restart(Options {
            uploads: short.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(moor.registry.upload_sessions(), 0);
    assert_eq!(std::fs::read_dir(&sessions).unwrap().count(), 0);
    let r = moor.send(Method::GET, &stale).await;
    assert_eq!(r.status(), 404);

    // The caps hold for sessions made after a restart too.
    let capped = moor_server::registry::UploadLimits {
        max_sessions_per_repository: 1,
        ..Default::default()
    };
    let moor = moor
        .restart(Options {
            uploads: capped.clone(),
            ..Default::default()
        })
        .await;
    let r = moor
        .send(Method::POST, "/v2/default/resume/blobs/uploads/")
        .await;
    assert_eq!(r.status(), 202);
    let moor = moor
        .restart(Options {
            uploads: capped,
            ..Default::default()
        })
        .await;
    let r = moor
        .send(Method::POST, "/v2/default/resume/blobs/uploads/")
        .await;
    assert_eq!(
        r.status(),
        429,
        "the resumed session counts against the cap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_stream_removes_its_repository_links() {
    let moor = Moor::start(Options::default()).await;
    let (manifest, _) = push_image(&moor, "default/gone", "x").await;
    let r = put_manifest(&moor, "default/gone", "v1", &manifest).await;
    assert_eq!(r.status(), 201);
    let repo_dir = moor.data_dir().join("registry/repositories/default/gone");
    assert!(repo_dir.join("_layers").exists());
    assert!(repo_dir.join("_manifests").exists());
    let r = moor.send(Method::DELETE, &format!("{IS}/gone")).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while repo_dir.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the deleted stream's links were never removed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Its blobs were pushed here only: a stream made again under the name cannot
    // name them without pushing them again.
    let r = put_manifest(&moor, "default/gone", "v1", &manifest).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_sizes_are_checked_against_the_bytes_that_arrive() {
    let moor = Moor::start(Options::default()).await;
    let session = || async {
        let r = moor
            .send(Method::POST, "/v2/default/sizes/blobs/uploads/")
            .await;
        assert_eq!(r.status(), 202);
        r.headers()["location"].to_str().unwrap().to_string()
    };
    // A Content-Length that disagrees with the Content-Range: SIZE_INVALID before
    // any byte is taken; the session stays where it was.
    let location = session().await;
    let r = moor
        .req(Method::PATCH, &location)
        .header("content-range", "0-99")
        .body(vec![1u8; 50])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "SIZE_INVALID");
    assert_eq!(moor.send(Method::GET, &location).await.status(), 204);
    // A chunked body (no Content-Length) longer than its range: the bytes were
    // taken, so the session is gone.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(vec![2u8; 100]), Ok(vec![2u8; 50])];
    let r = moor
        .req(Method::PATCH, &location)
        .header("content-range", "0-99")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "SIZE_INVALID");
    assert_eq!(moor.send(Method::GET, &location).await.status(), 404);
    // A closing PUT whose body differs from its range: nothing is committed.
    let location = session().await;
    let data = vec![3u8; 20];
    let digest = sha256(&data);
    let r = moor
        .req(Method::PUT, &format!("{location}?digest={digest}"))
        .header("content-range", "0-9")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "SIZE_INVALID");
    let r = moor
        .send(Method::HEAD, &format!("/v2/default/sizes/blobs/{digest}"))
        .await;
    assert_eq!(r.status(), 404, "nothing was committed");
    // A manifest whose layer descriptor declares a size the blob does not have.
    let (manifest, _) = push_image(&moor, "default/sizes", "v1").await;
    let mut m: Value = serde_json::from_slice(&manifest).unwrap();
    let real = m["layers"][0]["size"].as_u64().unwrap();
    m["layers"][0]["size"] = json!(real + 1);
    let r = put_manifest(
        &moor,
        "default/sizes",
        "v1",
        &serde_json::to_vec(&m).unwrap(),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");
    let r = put_manifest(&moor, "default/sizes", "v1", &manifest).await;
    assert_eq!(r.status(), 201, "the true sizes are accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_errors_name_no_server_paths() {
    // A storage failure (here: the upload sessions' directory vanished) is a 500
    // whose body tells nothing of the server's files.
    let moor = Moor::start(Options::default()).await;
    std::fs::remove_dir_all(moor.data_dir().join("registry/sessions")).unwrap();
    let r = moor
        .send(Method::POST, "/v2/default/gone/blobs/uploads/")
        .await;
    assert_eq!(r.status(), 500);
    let body = r.text().await.unwrap();
    let root = moor.data_dir().to_string_lossy().to_string();
    assert!(!body.contains(&root), "{body}");
    assert!(!body.contains("/sessions"), "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["errors"][0]["code"], "UNAVAILABLE");
}
