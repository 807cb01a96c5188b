//! The integrated registry with real peers: skopeo and podman pull OCI, Docker
//! schema 2 and multi-arch images through moor by tag and by digest (with the
//! upstream's digests); a skopeo push creates the stream tag and pulls back
//! byte-identical; pull-through from a real distribution under referencePolicy Local
//! keeps working once the upstream is stopped; 20 concurrent cold pulls fetch each
//! blob once; a lying upstream caches nothing; streams and namespaces are isolated;
//! anonymous requests get 401; an imported Local tag's first pull fetches no manifest
//! and a HEAD of an uncached blob downloads nothing.

use crate::registry_support;

use std::process::Command;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use moor_testkit::peers::run_blocking;
use moor_testkit::{CountingProxy, Distribution, Format, ImageSpec, OciLayout, require};
use registry_support::*;
use serde_json::{Value, json};

fn oci_blob(layout: &OciLayout, digest: &str) -> Vec<u8> {
    layout.blob(digest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_and_podman_pull_oci_schema2_and_index_with_the_upstream_digests() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    if !require(&["podman"]) {
        return;
    }
    let layout = OciLayout::new();
    layout.add_image("amd", &ImageSpec::new("amd64"));
    layout.add_image("arm", &ImageSpec::new("arm64"));
    layout.add_index("multi", &["amd", "arm"]);
    let oci = dist.push(&layout, "amd", "app/oci:1", Format::Oci);
    let v2s2 = dist.push(&layout, "arm", "app/docker:1", Format::DockerV2S2);
    let multi = dist.push(&layout, "multi", "app/multi:1", Format::Oci);

    let moor = Moor::start(Options {
        insecure: vec![dist.host.clone()],
        ..Default::default()
    })
    .await;
    moor.create_stream(
        "app",
        vec![
            local_tag("oci", &oci.reference),
            local_tag("docker", &v2s2.reference),
            local_tag("multi", &multi.reference),
        ],
    )
    .await;
    for (tag, pushed) in [("oci", &oci), ("docker", &v2s2), ("multi", &multi)] {
        assert_eq!(moor.wait_tag("app", tag).await, pushed.digest);
        let by_tag = moor.reference(&format!("app:{tag}"));
        let by_digest = moor.reference(&format!("app@{}", pushed.digest));
        assert_eq!(skopeo_digest(&moor, &by_tag).await, pushed.digest, "{tag}");
        assert_eq!(
            skopeo_digest(&moor, &by_digest).await,
            pushed.digest,
            "{tag}"
        );
        // Byte-exact manifests: the raw manifest hashes to the upstream digest.
        let raw = moor
            .req(
                reqwest::Method::GET,
                &format!("/v2/default/app/manifests/{tag}"),
            )
            .header("accept", "*/*")
            .send()
            .await
            .unwrap();
        assert_eq!(raw.status(), 200);
        assert_eq!(
            raw.headers()["docker-content-digest"].to_str().unwrap(),
            pushed.digest
        );
        let ct = raw.headers()["content-type"].to_str().unwrap().to_string();
        let bytes = raw.bytes().await.unwrap();
        assert_eq!(
            format!("sha256:{}", sha256_hex(&bytes)),
            pushed.digest,
            "{tag} ({ct})"
        );
        let expected_type = match tag {
            "docker" => "application/vnd.docker.distribution.manifest.v2+json",
            "multi" => "application/vnd.oci.image.index.v1+json",
            _ => "application/vnd.oci.image.manifest.v1+json",
        };
        assert_eq!(ct, expected_type);
        let dest = tempfile::tempdir().unwrap();
        let out = skopeo_pull(&moor, &by_tag, &dest.path().join("oci"), tag == "multi").await;
        assert!(
            out.status.success(),
            "skopeo copy {by_tag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // podman pulls by tag and by digest; what it stores has the upstream's digest.
    let root = tempfile::tempdir().unwrap();
    for (reference, expected) in [
        (moor.reference("app:oci"), &oci.digest),
        (
            moor.reference(&format!("app@{}", v2s2.digest)),
            &v2s2.digest,
        ),
        (moor.reference("app:multi"), &multi.digest),
    ] {
        let mut pull = podman(root.path());
        pull.args([
            "pull",
            "--quiet",
            "--tls-verify=false",
            "--creds",
            &moor.creds(),
        ])
        .arg(&reference);
        if reference.ends_with(":multi") {
            pull.args(["--arch", "amd64"]);
        }
        let out = run_blocking(pull).await;
        assert!(
            out.status.success(),
            "podman pull {reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut inspect = podman(root.path());
        // For a list podman keeps the platform's image; its RepoDigests name the list.
        inspect
            .args([
                "image",
                "inspect",
                "--format",
                "{{.Digest}} {{.RepoDigests}}",
            ])
            .arg(&reference);
        let out = run_blocking(inspect).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let seen = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            seen.starts_with(expected.as_str())
                || seen.contains(&format!("/default/app@{expected}")),
            "podman's digests of {reference}: {seen}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skopeo_push_creates_the_stream_tag_and_pulls_back_the_same_bytes() {
    if !require(&["skopeo", "umoci"]) {
        return;
    }
    let moor = Moor::start(Options::default()).await;
    let layout = OciLayout::new();
    let entry = layout.add_image("v1", &ImageSpec::new("amd64").with_file("data", "pushed"));
    let mut push = Command::new("skopeo");
    push.args(["--insecure-policy", "copy", "--dest-tls-verify=false"])
        .args(["--dest-creds", &moor.creds()])
        .arg(format!("oci:{}:v1", layout.path().display()))
        .arg(format!("docker://{}", moor.reference("pushed:1.0")));
    let out = run_blocking(push).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The stream exists with the tag, pointing at the pushed digest, and the
    // tag event names moor's registry.
    assert_eq!(moor.wait_tag("pushed", "1.0").await, entry.digest);
    let s = moor.stream("pushed").await;
    assert_eq!(
        s["status"]["tags"][0]["items"][0]["dockerImageReference"],
        format!("{}/default/pushed@{}", moor.host, entry.digest)
    );
    let istag: Value = moor
        .send(
            reqwest::Method::GET,
            "/apis/image.openshift.io/v1/namespaces/default/imagestreamtags/pushed:1.0",
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(istag["image"]["metadata"]["name"], entry.digest);
    assert_eq!(
        istag["image"]["dockerImageMetadata"]["Architecture"],
        "amd64"
    );

    let dest = tempfile::tempdir().unwrap();
    let back = dest.path().join("oci");
    let out = skopeo_pull(&moor, &moor.reference("pushed:1.0"), &back, false).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let index: Value =
        serde_json::from_slice(&std::fs::read(back.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], entry.digest.as_str());
    let manifest: Value = serde_json::from_slice(&oci_blob(&layout, &entry.digest)).unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        let d = layer["digest"].as_str().unwrap();
        let hex = d.trim_start_matches("sha256:");
        assert_eq!(
            std::fs::read(back.join("blobs/sha256").join(hex)).unwrap(),
            oci_blob(&layout, d),
            "layer {d} came back byte-identical"
        );
    }
}

/// Read-your-writes from the registry: a tag moved through the API (an image stream
/// mapping, acknowledged) is what the very next manifest GET by that tag serves, every
/// time, although the registry reads streams from the watch cache and keeps them
/// decoded by revision. On SQLite, as `moor serve` runs by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_moved_through_the_api_is_served_by_the_next_manifest_get() {
    if !require(&["skopeo", "umoci"]) {
        return;
    }
    let moor = Moor::start(Options {
        sqlite: true,
        ..Default::default()
    })
    .await;
    let layout = OciLayout::new();
    let mut digests = Vec::new();
    for (tag, content) in [("one", "first"), ("two", "second")] {
        let entry = layout.add_image(tag, &ImageSpec::new("amd64").with_file("data", content));
        let mut push = Command::new("skopeo");
        push.args(["--insecure-policy", "copy", "--dest-tls-verify=false"])
            .args(["--dest-creds", &moor.creds()])
            .arg(format!("oci:{}:{tag}", layout.path().display()))
            .arg(format!(
                "docker://{}",
                moor.reference(&format!("moving:{tag}"))
            ));
        let out = run_blocking(push).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(moor.wait_tag("moving", tag).await, entry.digest);
        digests.push(entry.digest);
    }
    let accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json";
    for round in 0..60 {
        let digest = &digests[round % 2];
        let mapping = json!({
            "apiVersion": "image.openshift.io/v1",
            "kind": "ImageStreamMapping",
            "metadata": {"name": "moving"},
            "image": {
                "metadata": {"name": digest},
                "dockerImageReference": format!("{}/default/moving@{digest}", moor.host),
            },
            "tag": "t",
        });
        let r = moor
            .req(
                reqwest::Method::POST,
                "/apis/image.openshift.io/v1/namespaces/default/imagestreammappings",
            )
            .json(&mapping)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        // Twice: the second GET finds the stream decoded at the same revision.
        for _ in 0..2 {
            let r = moor
                .req(reqwest::Method::GET, "/v2/default/moving/manifests/t")
                .header("accept", accept)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "round {round}");
            assert_eq!(
                r.headers()["docker-content-digest"].to_str().unwrap(),
                digest.as_str(),
                "round {round}: the moved tag"
            );
        }
    }
    let (streams, bytes) = moor.registry.repos.decoded_streams();
    assert!(
        streams >= 1 && bytes > 0,
        "{streams} streams from {bytes} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_through_once_then_serve_by_tag_and_digest_with_the_upstream_stopped() {
    let Some(mut dist) = Distribution::start() else {
        return;
    };
    let layout = OciLayout::new();
    layout.add_image(
        "v1",
        &ImageSpec::new("amd64").with_file("big", vec![7u8; 300_000]),
    );
    let pushed = dist.push(&layout, "v1", "team/app:1", Format::Oci);
    let moor = Moor::start(Options {
        insecure: vec![dist.host.clone()],
        ..Default::default()
    })
    .await;
    moor.create_stream("app", vec![local_tag("1", &pushed.reference)])
        .await;
    moor.wait_tag("app", "1").await;
    // The istag names moor's registry (referencePolicy Local).
    let istag: Value = moor
        .send(
            reqwest::Method::GET,
            "/apis/image.openshift.io/v1/namespaces/default/imagestreamtags/app:1",
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        istag["image"]["dockerImageReference"],
        format!("{}/default/app@{}", moor.host, pushed.digest)
    );
    let stored = moor.stored_blobs();
    assert!(
        stored.len() == 1 && stored[0].ends_with(pushed.digest.trim_start_matches("sha256:")),
        "only the imported manifest is kept, layers are fetched lazily: {stored:?}"
    );

    let first = tempfile::tempdir().unwrap();
    let out = skopeo_pull(
        &moor,
        &moor.reference("app:1"),
        &first.path().join("oci"),
        false,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dist.stop();
    for reference in [
        moor.reference("app:1"),
        moor.reference(&format!("app@{}", pushed.digest)),
    ] {
        let again = tempfile::tempdir().unwrap();
        let out = skopeo_pull(&moor, &reference, &again.path().join("oci"), false).await;
        assert!(
            out.status.success(),
            "pull {reference} with the upstream stopped: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_cold_pulls_fetch_each_blob_once_from_upstream() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let layout = OciLayout::new();
    let entry = layout.add_image(
        "v1",
        &ImageSpec::new("amd64")
            .with_file("a", random_bytes(2_000_000))
            .with_file("b", random_bytes(500_000)),
    );
    let pushed = dist.push(&layout, "v1", "team/hot:1", Format::Oci);
    let proxy = CountingProxy::start(&dist.host).await;
    let moor = Moor::start(Options {
        insecure: vec![proxy.host.clone()],
        ..Default::default()
    })
    .await;
    moor.create_stream("hot", vec![local_tag("1", &proxy.reference("team/hot:1"))])
        .await;
    moor.wait_tag("hot", "1").await;
    let manifest: Value = serde_json::from_slice(&oci_blob(&layout, &entry.digest)).unwrap();
    let mut blobs: Vec<String> = vec![manifest["config"]["digest"].as_str().unwrap().to_string()];
    for l in manifest["layers"].as_array().unwrap() {
        blobs.push(l["digest"].as_str().unwrap().to_string());
    }
    let started = std::time::Instant::now();
    let moor = Arc::new(moor);
    let mut pulls = Vec::new();
    for _ in 0..20 {
        let moor = moor.clone();
        let blobs = blobs.clone();
        let digest = pushed.digest.clone();
        pulls.push(tokio::spawn(async move {
            let m = moor
                .send(reqwest::Method::GET, "/v2/default/hot/manifests/1")
                .await;
            assert_eq!(m.status(), 200);
            assert_eq!(
                format!("sha256:{}", sha256_hex(&m.bytes().await.unwrap())),
                digest
            );
            for b in &blobs {
                let r = moor
                    .send(reqwest::Method::GET, &format!("/v2/default/hot/blobs/{b}"))
                    .await;
                assert_eq!(r.status(), 200, "{b}");
                let bytes = r.bytes().await.unwrap();
                assert_eq!(format!("sha256:{}", sha256_hex(&bytes)), *b);
            }
        }));
    }
    for p in pulls {
        p.await.unwrap();
    }
    let hits = proxy.log.since(started);
    for b in &blobs {
        let n = hits
            .iter()
            .filter(|h| h.method == "GET" && h.path.ends_with(&format!("/blobs/{b}")))
            .count();
        assert_eq!(n, 1, "blob {b} fetched {n} times from upstream: {hits:?}");
    }
    let manifests = hits
        .iter()
        .filter(|h| h.method == "GET" && h.path.contains("/manifests/"))
        .count();
    assert_eq!(
        manifests, 0,
        "the importer kept the manifest, no fetch for 20 pulls: {hits:?}"
    );
}

/// A registry whose manifest is honest but whose layer blob is not what its digest
/// says: the fault no real registry produces on purpose.
async fn lying_registry() -> (String, String, String) {
    let layer = b"the real layer".to_vec();
    let layer_digest = format!("sha256:{}", sha256_hex(&layer));
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .unwrap();
    let config_digest = format!("sha256:{}", sha256_hex(&config));
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer.len()}],
    }))
    .unwrap();
    let manifest_digest = format!("sha256:{}", sha256_hex(&manifest));
    let (m, c, ld) = (manifest.clone(), config.clone(), layer_digest.clone());
    let app = Router::new().fallback(move |req: Request| {
        let (m, c, ld) = (m.clone(), c.clone(), ld.clone());
        async move {
            let path = req.uri().path().to_string();
            if path == "/v2/" {
                return "{}".into_response();
            }
            if path.contains("/manifests/") {
                let mut r = Response::new(Body::from(m));
                r.headers_mut().insert(
                    "content-type",
                    "application/vnd.oci.image.manifest.v1+json"
                        .parse()
                        .unwrap(),
                );
                return r;
            }
            if path.ends_with(&ld) {
                // Same length, other bytes.
                return Response::new(Body::from(b"a forged layer".to_vec()));
            }
            if path.contains("/blobs/") {
                return Response::new(Body::from(c));
            }
            (axum::http::StatusCode::NOT_FOUND, "").into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (host, manifest_digest, layer_digest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_upstream_gets_the_client_an_error_and_caches_nothing() {
    let (host, _manifest, layer) = lying_registry().await;
    let moor = Moor::start(Options {
        insecure: vec![host.clone()],
        ..Default::default()
    })
    .await;
    moor.create_stream("liar", vec![local_tag("1", &format!("{host}/x/y:1"))])
        .await;
    moor.wait_tag("liar", "1").await;
    for _ in 0..2 {
        let r = moor
            .send(
                reqwest::Method::GET,
                &format!("/v2/default/liar/blobs/{layer}"),
            )
            .await;
        // The whole blob is one chunk, held back until verified: the status says so.
        assert_eq!(r.status(), 502);
        let body: Value = r.json().await.unwrap();
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("digest"),
            "{body}"
        );
    }
    let path = moor
        .data_dir()
        .join("registry/blobs/sha256")
        .join(&layer["sha256:".len()..][..2])
        .join(&layer["sha256:".len()..]);
    assert!(!path.exists(), "nothing is cached");
    let uploads = std::fs::read_dir(moor.data_dir().join("registry/uploads"))
        .unwrap()
        .count();
    assert_eq!(uploads, 0, "no temporary file is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_namespaces_are_isolated_and_anonymous_requests_get_401() {
    let moor = Moor::start(Options::default()).await;
    // Stream b exists too: existing or not, it cannot reach a's blob.
    moor.create_stream("b", vec![]).await;
    let blob = b"only in a".to_vec();
    let digest = format!("sha256:{}", sha256_hex(&blob));
    let r = moor
        .req(
            reqwest::Method::POST,
            &format!("/v2/default/a/blobs/uploads/?digest={digest}"),
        )
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let own = moor
        .send(
            reqwest::Method::GET,
            &format!("/v2/default/a/blobs/{digest}"),
        )
        .await;
    assert_eq!(own.status(), 200);
    assert_eq!(own.bytes().await.unwrap().as_ref(), blob.as_slice());
    for other in ["default/b", "other/a"] {
        let r = moor
            .send(reqwest::Method::GET, &format!("/v2/{other}/blobs/{digest}"))
            .await;
        assert_eq!(r.status(), 404, "{other}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "BLOB_UNKNOWN");
    }
    // No credentials: 401 with a Bearer challenge naming the token endpoint.
    let anon = moor
        .http
        .get(moor.url(&format!("/v2/default/a/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    let challenge = anon.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with(&format!(
            "Bearer realm=\"http://{}/openshift/token\"",
            moor.host
        )),
        "{challenge}"
    );
    let body: Value = anon.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
    // A wrong token: 401 too; the token endpoint refuses wrong credentials.
    let wrong = moor
        .http
        .get(moor.url("/v2/"))
        .basic_auth("u", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let token = moor
        .http
        .get(moor.url("/openshift/token?service=x&scope=repository:default/a:pull"))
        .basic_auth("u", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 401);
    // The token endpoint's token works as a bearer token.
    let token: Value = moor
        .http
        .get(moor.url("/openshift/token"))
        .basic_auth("u", Some(moor.token()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = token["token"].as_str().unwrap();
    let r = moor
        .http
        .get(moor.url(&format!("/v2/default/a/blobs/{digest}")))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The anonymous token does not pull without --registry-anonymous-pull.
    let r = moor
        .http
        .get(moor.url(&format!("/v2/default/a/blobs/{digest}")))
        .bearer_auth("anonymous")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_pull_allows_reads_only() {
    let moor = Moor::start(Options {
        anonymous_pull: true,
        ..Default::default()
    })
    .await;
    let blob = b"public".to_vec();
    let digest = format!("sha256:{}", sha256_hex(&blob));
    let r = moor
        .req(
            reqwest::Method::POST,
            &format!("/v2/default/pub/blobs/uploads/?digest={digest}"),
        )
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = moor
        .http
        .get(moor.url(&format!("/v2/default/pub/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = moor
        .http
        .post(moor.url("/v2/default/pub/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "pushes need credentials");
}

fn random_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|_| rand::random::<u8>()).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_429_reaches_clients_only_while_nothing_is_cached() {
    let fake = moor_testkit::FakeRegistry::start("rl").await;
    let moor = Moor::start(Options {
        insecure: vec![fake.host.clone()],
        ..Default::default()
    })
    .await;
    moor.create_stream("rl", vec![local_tag("1", &fake.reference("x/y:1"))])
        .await;
    moor.wait_tag("rl", "1").await;
    // The importer kept the manifest; take it out of the cache, as an eviction would.
    let hex = fake.digest.trim_start_matches("sha256:");
    let kept = moor
        .data_dir()
        .join("registry/blobs/sha256")
        .join(&hex[..2])
        .join(hex);
    std::fs::remove_file(&kept).unwrap();
    let get = || async {
        moor.send(reqwest::Method::GET, "/v2/default/rl/manifests/1")
            .await
    };
    fake.rate_limit_next(7);
    let r = get().await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"].to_str().unwrap(), "7");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "TOOMANYREQUESTS");
    // The limit is over: fetched and cached.
    assert_eq!(get().await.status(), 200);
    // Limited again, but nothing needs the upstream now.
    fake.rate_limit_next(7);
    let before = fake.log.all().len();
    let r = get().await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["docker-content-digest"].to_str().unwrap(),
        fake.digest
    );
    assert_eq!(fake.log.all().len(), before, "no upstream request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_tag_serves_the_imported_manifest_and_heads_uncached_blobs_with_a_head() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let layout = OciLayout::new();
    let entry = layout.add_image(
        "v1",
        &ImageSpec::new("amd64").with_file("a", random_bytes(300_000)),
    );
    let pushed = dist.push(&layout, "v1", "team/lazy:1", Format::Oci);
    let proxy = CountingProxy::start(&dist.host).await;
    let moor = Moor::start(Options {
        insecure: vec![proxy.host.clone()],
        ..Default::default()
    })
    .await;
    moor.create_stream(
        "lazy",
        vec![local_tag("1", &proxy.reference("team/lazy:1"))],
    )
    .await;
    moor.wait_tag("lazy", "1").await;
    let started = std::time::Instant::now();
    // The importer kept the manifest it fetched: the first pull does not fetch it again.
    let r = moor
        .send(reqwest::Method::GET, "/v2/default/lazy/manifests/1")
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        format!("sha256:{}", sha256_hex(&r.bytes().await.unwrap())),
        pushed.digest
    );
    // A HEAD of a blob not cached asks the upstream with a HEAD: nothing downloaded.
    let manifest: Value = serde_json::from_slice(&oci_blob(&layout, &entry.digest)).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let size = manifest["layers"][0]["size"].as_u64().unwrap();
    let r = moor
        .send(
            reqwest::Method::HEAD,
            &format!("/v2/default/lazy/blobs/{layer}"),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-length"].to_str().unwrap(),
        size.to_string()
    );
    assert_eq!(
        r.headers()["docker-content-digest"].to_str().unwrap(),
        layer
    );
    let hits: Vec<_> = proxy
        .log
        .since(started)
        .into_iter()
        .filter(|h| h.path.contains("/manifests/") || h.path.contains("/blobs/"))
        .collect();
    assert!(
        hits.iter()
            .all(|h| h.method == "HEAD" && h.path.ends_with(&format!("/blobs/{layer}"))),
        "only the blob's HEAD went upstream: {hits:?}"
    );
    assert_eq!(hits.len(), 1, "{hits:?}");
    let hex = layer.trim_start_matches("sha256:");
    assert!(
        !moor.stored_blobs().iter().any(|p| p.ends_with(hex)),
        "the layer was not downloaded"
    );
}
