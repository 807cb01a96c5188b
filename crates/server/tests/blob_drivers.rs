//! The blob-storage conformance suite on the S3 driver, against a real SeaweedFS
//! (`weed mini` on loopback). The file driver runs the same suite in its unit tests
//! (`registry::driver::tests`). Then replicas over one store and one bucket.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::Method;

use moor_server::registry::driver::s3::S3Blobs;
use moor_server::registry::driver::{BlobDriver, conformance};
use moor_testkit::seaweedfs::{ACCESS_KEY, SECRET_KEY};
use moor_testkit::{MoorServer, SeaweedFs};

/// The driver for `weed`'s bucket under `prefix`, once a signed listing succeeds
/// (the bucket appears a moment after the S3 port answers).
async fn connect(weed: &SeaweedFs, prefix: &str) -> S3Blobs {
    let driver = S3Blobs::connect(
        &weed.bucket,
        prefix,
        Some(&weed.endpoint),
        Some("us-east-1"),
        Some((ACCESS_KEY, SECRET_KEY)),
    )
    .expect("an S3 driver");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match driver.list().await {
            Ok(_) => return driver,
            Err(e) if Instant::now() > deadline => {
                panic!("SeaweedFS's bucket never answered: {e}\n{}", weed.log())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_driver_passes_the_conformance_suite() {
    let Some(weed) = tokio::task::spawn_blocking(|| SeaweedFs::start("moor"))
        .await
        .unwrap()
    else {
        return;
    };
    let driver = connect(&weed, "conformance").await;
    conformance::run(&driver).await;
    assert_eq!(
        driver.staging_objects().await.unwrap(),
        0,
        "no staged object is left behind"
    );
    // Another prefix in the same bucket is another store.
    let other = connect(&weed, "elsewhere").await;
    assert!(other.list().await.unwrap().is_empty());
}

/// Past S3's single-request copy limit (lowered here to a byte): a blob staged
/// without its digest is streamed from its staging key into a multipart upload at
/// its content address, instead of failing; one staged for its digest never goes
/// through a staging key at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_blobs_past_the_copy_limit_commit_without_a_copy() {
    let Some(weed) = tokio::task::spawn_blocking(|| SeaweedFs::start("moor"))
        .await
        .unwrap()
    else {
        return;
    };
    let driver = connect(&weed, "large").await.with_copy_limit(1);
    let bytes = bytes::Bytes::from(ascii(moor_server::registry::driver::s3::PART * 2 + 99, 3));
    let d = moor_api::Digest::sha256_of(&bytes);

    let mut staged = driver.stage().await.unwrap();
    staged.write(bytes.clone()).await.unwrap();
    staged
        .commit(&d, Some(bytes.len() as u64))
        .await
        .expect("commits past the copy limit");
    assert_eq!(driver.read(&d).await.unwrap().unwrap(), bytes);
    assert_eq!(driver.staging_objects().await.unwrap(), 0);
    assert!(driver.delete(&d).await.unwrap());

    let mut staged = driver.stage_as(&d).await.unwrap();
    staged.write(bytes.clone()).await.unwrap();
    assert_eq!(
        driver.staging_objects().await.unwrap(),
        0,
        "the parts go to the content address, not a staging key"
    );
    assert_eq!(
        driver.stat(&d).await.unwrap(),
        None,
        "not visible before the commit"
    );
    staged.commit(&d, None).await.unwrap();
    assert_eq!(driver.read(&d).await.unwrap().unwrap(), bytes);
}

fn sha256(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
    )
}

/// ASCII bytes, `len` of them (so that the kit's text bodies compare exactly).
fn ascii(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| b'a' + ((i as u64 * 7 + seed as u64) % 26) as u8)
        .collect()
}

/// Replica `store`'s registry with blobs in `weed`'s bucket under `prefix`.
async fn replica(store: &Arc<dyn moor_store::Store>, weed: &SeaweedFs, prefix: &str) -> MoorServer {
    let url = format!(
        "s3://{}/{prefix}?endpoint={}&region=us-east-1",
        weed.bucket, weed.endpoint
    );
    MoorServer::builder()
        .store(store.clone())
        .with(|o| {
            o.blob_store = Some(url);
            o.s3_credentials = Some((ACCESS_KEY.into(), SECRET_KEY.into()));
        })
        .start()
        .await
}

/// Replicas on one store and one bucket are one registry: a blob larger than an S3
/// part and its manifest pushed through replica 1 are pulled (whole, by range, and
/// by HEAD) through replica 3, and the content is in the bucket, not on either disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_the_s3_driver_push_through_1_pull_through_3() {
    let Some(weed) = tokio::task::spawn_blocking(|| SeaweedFs::start("moor"))
        .await
        .unwrap()
    else {
        return;
    };
    let bucket = connect(&weed, "replicas").await;
    let store: Arc<dyn moor_store::Store> = Arc::new(moor_store::MemoryStore::new());
    let r1 = replica(&store, &weed, "replicas").await;
    let r3 = replica(&store, &weed, "replicas").await;

    let layer = ascii(moor_server::registry::driver::s3::PART + 4321, 1);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let (l, c) = (sha256(&layer), sha256(config));
    for (digest, bytes) in [(&l, layer.clone()), (&c, config.to_vec())] {
        let r = r1
            .call(
                Method::POST,
                &format!("/v2/default/app/blobs/uploads/?digest={digest}"),
                "application/octet-stream",
                bytes,
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l, "size": layer.len()}],
    })
    .to_string();
    let r = r1
        .call(
            Method::PUT,
            "/v2/default/app/manifests/1.0",
            "application/vnd.oci.image.manifest.v1+json",
            manifest.clone(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let m = sha256(manifest.as_bytes());

    // Replica 3 sees the tag once the shared store tells it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        let r = r3.get("/v2/default/app/manifests/1.0").await;
        if r.status == 200 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.text, manifest);
    assert_eq!(got.headers["docker-content-digest"], m.as_str());

    let blob = r3.get(&format!("/v2/default/app/blobs/{l}")).await;
    assert_eq!(blob.status, 200, "{}", blob.text);
    assert_eq!(
        blob.headers["content-length"],
        layer.len().to_string().as_str()
    );
    assert!(
        blob.text.as_bytes() == layer.as_slice(),
        "the layer's bytes"
    );
    let start = moor_server::registry::driver::s3::PART - 3;
    let req = axum::http::Request::get(format!("/v2/default/app/blobs/{l}"))
        .header("authorization", format!("Bearer {}", r3.token))
        .header("range", format!("bytes={start}-{}", start + 9))
        .body(axum::body::Body::empty())
        .unwrap();
    let part = r3.raw(req).await;
    assert_eq!(part.status, 206, "{}", part.text);
    assert_eq!(part.text.as_bytes(), &layer[start..start + 10]);
    assert_eq!(
        part.headers["content-range"],
        format!("bytes {start}-{}/{}", start + 9, layer.len()).as_str()
    );
    let head = r3
        .call(Method::HEAD, &format!("/v2/default/app/blobs/{c}"), "", "")
        .await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.headers["content-length"],
        config.len().to_string().as_str()
    );

    // The content is in the bucket, and on neither replica's disk.
    let mut stored: Vec<String> = bucket
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|(d, _)| d.to_string())
        .collect();
    stored.sort();
    let mut want = vec![l.clone(), c.clone(), m.clone()];
    want.sort();
    assert_eq!(stored, want);
    for r in [&r1, &r3] {
        let local = walk(&r.data_dir().join("registry").join("blobs"));
        assert!(
            local.is_empty(),
            "blobs left on a replica's disk: {local:?}"
        );
    }
    assert_eq!(bucket.staging_objects().await.unwrap(), 0);
}

/// Pull-through with blobs in S3: a cold pull through replica 1 fetches each blob
/// from the upstream once, publishes it to the bucket (verified, nothing left on its
/// disk), and replica 3 serves it from the bucket with the upstream stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_through_publishes_to_s3_and_another_replica_serves_it_with_the_upstream_down() {
    let Some(weed) = tokio::task::spawn_blocking(|| SeaweedFs::start("moor"))
        .await
        .unwrap()
    else {
        return;
    };
    let Some(mut dist) = moor_testkit::Distribution::start() else {
        return;
    };
    let layout = moor_testkit::OciLayout::new();
    layout.add_image(
        "v1",
        &moor_testkit::ImageSpec::new("amd64").with_file("big", vec![7u8; 300_000]),
    );
    let pushed = dist.push(&layout, "v1", "team/app:1", moor_testkit::Format::Oci);
    let bucket = connect(&weed, "pulls").await;
    let store: Arc<dyn moor_store::Store> = Arc::new(moor_store::MemoryStore::new());
    let url = format!(
        "s3://{}/pulls?endpoint={}&region=us-east-1",
        weed.bucket, weed.endpoint
    );
    let creds = Some((ACCESS_KEY.to_string(), SECRET_KEY.to_string()));
    let r1 = MoorServer::builder()
        .store(store.clone())
        .upstream(&[&dist.host])
        .imports(moor_server::importer::controller::Backoff {
            initial: Duration::from_millis(300),
            max: Duration::from_secs(2),
            max_retries: 20,
        })
        .with(|o| {
            o.blob_store = Some(url.clone());
            o.s3_credentials = creds.clone();
        })
        .start()
        .await;
    let r3 = replica(&store, &weed, "pulls").await;
    let tag = serde_json::json!({"name": "1", "from": {"kind": "DockerImage", "name": pushed.reference},
        "importPolicy": {"insecure": true, "importMode": "PreserveOriginal"},
        "referencePolicy": {"type": "Local"}});
    let r = r1
        .post(
            "/apis/image.openshift.io/v1/namespaces/default/imagestreams",
            &serde_json::json!({"metadata": {"name": "app"}, "spec": {"tags": [tag]}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let deadline = Instant::now() + Duration::from_secs(60);
    let manifest = loop {
        let r = r1.get("/v2/default/app/manifests/1").await;
        if r.status == 200 {
            break r.body;
        }
        assert!(Instant::now() < deadline, "never imported: {}", r.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut blobs = vec![manifest["config"]["digest"].as_str().unwrap().to_string()];
    for l in manifest["layers"].as_array().unwrap() {
        blobs.push(l["digest"].as_str().unwrap().to_string());
    }
    let registry = r1.registry.clone().unwrap();
    let mut bodies = Vec::new();
    for d in &blobs {
        let r = r1.get(&format!("/v2/default/app/blobs/{d}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        bodies.push((d.clone(), r.headers["content-length"].clone()));
    }
    // Published once verified: wait for each blob to reach the bucket.
    let deadline = Instant::now() + Duration::from_secs(30);
    for d in &blobs {
        let digest = moor_api::Digest::parse(d).unwrap();
        while bucket.stat(&digest).await.unwrap().is_none() {
            assert!(Instant::now() < deadline, "{d} never reached the bucket");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(registry.pull.blob_fetches.get(), blobs.len() as u64);
    // Served from the bucket now: no second fetch.
    for d in &blobs {
        assert_eq!(
            r1.get(&format!("/v2/default/app/blobs/{d}")).await.status,
            200
        );
    }
    assert_eq!(registry.pull.blob_fetches.get(), blobs.len() as u64);
    let local = walk(&r1.data_dir().join("registry").join("blobs"));
    assert!(
        local.is_empty(),
        "blobs left on replica 1's disk: {local:?}"
    );

    dist.stop();
    for (d, len) in &bodies {
        let r = r3.get(&format!("/v2/default/app/blobs/{d}")).await;
        assert_eq!(r.status, 200, "{d} through replica 3: {}", r.text);
        assert_eq!(&r.headers["content-length"], len);
    }
    assert_eq!(bucket.staging_objects().await.unwrap(), 0);
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Replica `store`'s registry on `weed`'s bucket under `prefix`, with upload limits
/// `limits` and upstream `upstream` (plain HTTP), when given.
async fn replica_with(
    store: &Arc<dyn moor_store::Store>,
    weed: &SeaweedFs,
    prefix: &str,
    limits: moor_server::registry::UploadLimits,
    upstream: Option<&str>,
) -> MoorServer {
    let url = format!(
        "s3://{}/{prefix}?endpoint={}&region=us-east-1",
        weed.bucket, weed.endpoint
    );
    let mut builder = MoorServer::builder().store(store.clone());
    if let Some(up) = upstream {
        builder = builder.upstream(&[up]);
    }
    builder
        .with(|o| {
            o.blob_store = Some(url);
            o.s3_credentials = Some((ACCESS_KEY.into(), SECRET_KEY.into()));
            o.uploads = limits;
        })
        .start()
        .await
}

/// A request to `server` with extra headers.
async fn send(
    server: &MoorServer,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> moor_testkit::server::Resp {
    let mut req = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {}", server.token));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    server
        .raw(req.body(axum::body::Body::from(body)).unwrap())
        .await
}

/// An upload started on replica 1 takes a chunk on replica 2, refuses a chunk at the
/// wrong offset on replica 3 (416, with the exact offset), takes the next chunk
/// there, tells its progress on replica 1, and is closed on replica 3; the blob and a
/// manifest naming it are pulled through replica 1. Caps count every replica's
/// sessions, and an idle session expires (its chunks leave the bucket) whichever
/// replica it was used on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_started_on_replica_1_is_patched_on_2_and_closed_on_3() {
    let Some(weed) = tokio::task::spawn_blocking(|| SeaweedFs::start("moor"))
        .await
        .unwrap()
    else {
        return;
    };
    let bucket = connect(&weed, "sessions").await;
    let store: Arc<dyn moor_store::Store> = Arc::new(moor_store::MemoryStore::new());
    let limits = moor_server::registry::UploadLimits {
        max_sessions: 100,
        max_sessions_per_repository: 3,
        idle_timeout: Duration::from_secs(4),
    };
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(replica_with(&store, &weed, "sessions", limits.clone(), None).await);
    }
    let (r1, r2, r3) = (&replicas[0], &replicas[1], &replicas[2]);

    let layer = ascii(moor_server::registry::driver::s3::PART + 1234, 5);
    let l = sha256(&layer);
    let (a, rest) = layer.split_at(moor_server::registry::driver::s3::PART + 1000);
    let (b, c) = rest.split_at(200);

    let started = send(
        r1,
        Method::POST,
        "/v2/default/app/blobs/uploads/",
        &[],
        vec![],
    )
    .await;
    assert_eq!(started.status, 202, "{}", started.text);
    let location = started.headers["location"].to_str().unwrap().to_string();

    let range =
        |start: usize, len: usize| ("content-range", format!("{start}-{}", start + len - 1));
    let r = send(
        r2,
        Method::PATCH,
        &location,
        &[range(0, a.len())],
        a.to_vec(),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.headers["range"], format!("0-{}", a.len() - 1).as_str());

    // A chunk that does not start where the upload stands: 416 with the exact offset.
    let r = send(
        r3,
        Method::PATCH,
        &location,
        &[range(5, b.len())],
        b.to_vec(),
    )
    .await;
    assert_eq!(r.status, 416, "{}", r.text);
    assert_eq!(r.headers["range"], format!("0-{}", a.len() - 1).as_str());

    let r = send(
        r3,
        Method::PATCH,
        &location,
        &[range(a.len(), b.len())],
        b.to_vec(),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let r = send(r1, Method::GET, &location, &[], vec![]).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        r.headers["range"],
        format!("0-{}", a.len() + b.len() - 1).as_str()
    );
    assert!(
        bucket.chunk_objects().await.unwrap() >= 2,
        "the chunks are in the bucket"
    );

    // The closing PUT, with the last bytes, on replica 3.
    let put = format!("{location}?digest={l}");
    let r = send(
        r3,
        Method::PUT,
        &put,
        &[range(a.len() + b.len(), c.len())],
        c.to_vec(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(bucket.chunk_objects().await.unwrap(), 0, "chunks removed");
    assert_eq!(bucket.staging_objects().await.unwrap(), 0);
    // The session is over everywhere.
    let r = send(r2, Method::GET, &location, &[], vec![]).await;
    assert_eq!(r.status, 404, "{}", r.text);

    // A manifest naming the layer, pushed through replica 3, pulled through replica 1.
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cfg = sha256(config);
    let r = send(
        r3,
        Method::POST,
        &format!("/v2/default/app/blobs/uploads/?digest={cfg}"),
        &[],
        config.to_vec(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l, "size": layer.len()}],
    })
    .to_string();
    let r = r3
        .call(
            Method::PUT,
            "/v2/default/app/manifests/1.0",
            "application/vnd.oci.image.manifest.v1+json",
            manifest,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = r1.get("/v2/default/app/manifests/1.0").await;
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "{}", r.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let blob = r1.get(&format!("/v2/default/app/blobs/{l}")).await;
    assert_eq!(blob.status, 200, "{}", blob.text);
    assert!(
        blob.text.as_bytes() == layer.as_slice(),
        "the layer's bytes"
    );

    // Caps count the sessions of every replica: 3 per repository.
    let mut open = Vec::new();
    for r in [r1, r2, r3] {
        let s = send(
            r,
            Method::POST,
            "/v2/default/capped/blobs/uploads/",
            &[],
            vec![],
        )
        .await;
        assert_eq!(s.status, 202, "{}", s.text);
        open.push(s.headers["location"].to_str().unwrap().to_string());
    }
    let s = send(
        r2,
        Method::POST,
        "/v2/default/capped/blobs/uploads/",
        &[],
        vec![],
    )
    .await;
    assert_eq!(s.status, 429, "{}", s.text);
    // Cancelled on another replica than the one that opened it: room again.
    let r = send(r3, Method::DELETE, &open[0], &[], vec![]).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let s = send(
        r1,
        Method::POST,
        "/v2/default/capped/blobs/uploads/",
        &[],
        vec![],
    )
    .await;
    assert_eq!(s.status, 202, "{}", s.text);

    // An idle session expires: its chunk leaves the bucket, and it is unknown on
    // every replica.
    let r = send(r2, Method::PATCH, &open[1], &[range(0, 3)], b"abc".to_vec()).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let deadline = Instant::now() + Duration::from_secs(30);
    while bucket.chunk_objects().await.unwrap() > 0 {
        assert!(Instant::now() < deadline, "the idle session's chunk stayed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = send(r3, Method::PATCH, &open[1], &[range(3, 3)], b"def".to_vec()).await;
    assert_eq!(r.status, 404, "{}", r.text);
}

/// Twenty concurrent cold pulls of one blob spread over three replicas (one store,
/// one bucket) fetch it from the upstream once: the counting proxy in front of
/// distribution sees one GET of the blob, and every pull gets all of its bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_cold_pulls_over_three_replicas_fetch_the_blob_once() {
    let Some(weed) = tokio::task::spawn_blocking(|| SeaweedFs::start("moor"))
        .await
        .unwrap()
    else {
        return;
    };
    let Some(dist) = moor_testkit::Distribution::start() else {
        return;
    };
    // Random bytes, so that the gzipped layer stays large; a slow link, so that the
    // pulls overlap the fetch.
    let mut noise = Vec::with_capacity(3_000_000);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    while noise.len() < 3_000_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    let layout = moor_testkit::OciLayout::new();
    layout.add_image(
        "v1",
        &moor_testkit::ImageSpec::new("amd64").with_file("noise", noise),
    );
    let proxy = moor_testkit::proxy::CountingProxy::start_with_link(&dist.host, Some(40.0)).await;
    let pushed = dist.push(&layout, "v1", "team/app:1", moor_testkit::Format::Oci);
    let _ = connect(&weed, "flight").await;
    let store: Arc<dyn moor_store::Store> = Arc::new(moor_store::MemoryStore::new());
    let url = format!(
        "s3://{}/flight?endpoint={}&region=us-east-1",
        weed.bucket, weed.endpoint
    );
    let importer = MoorServer::builder()
        .store(store.clone())
        .upstream(&[&proxy.host])
        .imports(moor_server::importer::controller::Backoff {
            initial: Duration::from_millis(300),
            max: Duration::from_secs(2),
            max_retries: 20,
        })
        .with(|o| {
            o.blob_store = Some(url.clone());
            o.s3_credentials = Some((ACCESS_KEY.into(), SECRET_KEY.into()));
        })
        .start()
        .await;
    let mut replicas = vec![importer];
    for _ in 0..2 {
        replicas.push(
            replica_with(
                &store,
                &weed,
                "flight",
                Default::default(),
                Some(&proxy.host),
            )
            .await,
        );
    }
    let reference = pushed.reference.replace(&dist.host, &proxy.host);
    let tag = serde_json::json!({"name": "1", "from": {"kind": "DockerImage", "name": reference},
        "importPolicy": {"insecure": true, "importMode": "PreserveOriginal"},
        "referencePolicy": {"type": "Local"}});
    let r = replicas[0]
        .post(
            "/apis/image.openshift.io/v1/namespaces/default/imagestreams",
            &serde_json::json!({"metadata": {"name": "app"}, "spec": {"tags": [tag]}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let deadline = Instant::now() + Duration::from_secs(60);
    let manifest = loop {
        let r = replicas[2].get("/v2/default/app/manifests/1").await;
        if r.status == 200 {
            break r.body;
        }
        assert!(Instant::now() < deadline, "never imported: {}", r.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let size = manifest["layers"][0]["size"].as_u64().unwrap();
    assert!(size > 1_000_000, "a large layer: {size}");

    let replicas = Arc::new(replicas);
    let pulls: Vec<_> = (0..20)
        .map(|i| {
            let (replicas, layer) = (replicas.clone(), layer.clone());
            tokio::spawn(async move {
                let server = &replicas[i % 3];
                let req = axum::http::Request::get(format!("/v2/default/app/blobs/{layer}"))
                    .header("authorization", format!("Bearer {}", server.token))
                    .body(axum::body::Body::empty())
                    .unwrap();
                let resp = tower::ServiceExt::oneshot(server.router.clone(), req)
                    .await
                    .unwrap();
                let status = resp.status();
                let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                    .await
                    .unwrap();
                (status, sha256(&bytes))
            })
        })
        .collect();
    for p in pulls {
        let (status, digest) = p.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(digest, layer, "the layer's bytes");
    }
    let fetches = proxy
        .log
        .all()
        .into_iter()
        .filter(|h| h.method == "GET" && h.path.ends_with(&layer))
        .count();
    assert_eq!(fetches, 1, "upstream GETs of the layer");
    let counted: u64 = replicas
        .iter()
        .map(|r| r.registry.as_ref().unwrap().pull.blob_fetches.get())
        .sum();
    assert_eq!(counted, 1, "fetches started by the replicas");
}

/// Pushes `bytes` as a blob by digest into `repo` through `server`; the digest.
async fn push_blob(server: &MoorServer, repo: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let r = server
        .call(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            "application/octet-stream",
            bytes.to_vec(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    digest
}

/// Pushes `manifest` (an OCI image manifest) into `repo` as `reference` (a tag, or
/// `None`: by its digest) through `server`; its digest.
async fn push_manifest(
    server: &MoorServer,
    repo: &str,
    reference: Option<&str>,
    manifest: &serde_json::Value,
) -> String {
    let body = manifest.to_string();
    let digest = sha256(body.as_bytes());
    let r = server
        .call(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{}", reference.unwrap_or(&digest)),
            "application/vnd.oci.image.manifest.v1+json",
            body,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    digest
}

/// An OCI image manifest of `config` and `layers` (digest, size), with `extra` fields.
fn image_manifest(
    config: (&str, usize),
    layers: &[(&str, usize)],
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
        "layers": layers.iter().map(|(d, s)| serde_json::json!(
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": s})).collect::<Vec<_>>(),
    });
    if let serde_json::Value::Object(extra) = extra {
        m.as_object_mut().unwrap().extend(extra);
    }
    m
}

/// The keys under `prefix` in `store`.
async fn keys(store: &Arc<dyn moor_store::Store>, prefix: &str) -> Vec<String> {
    store
        .list(prefix, Default::default())
        .await
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect()
}

/// What each repository was given is shared by the replicas on one store and one
/// bucket: a blob pushed by digest (no manifest) through replica 1 is served by
/// replica 2 in that repository and in no other; a manifest pushed by digest through
/// replica 1 is pulled through replica 2, and replica 2 lists its referrers. A
/// deleted stream's records leave the store. `moor prune images` on replica 1 plans
/// on the shared links and the bucket: a dry run deletes nothing; the prune removes
/// an unreferenced blob (old link, old object) and an old object no link names from
/// the bucket, and keeps the blobs of a tagged image and an object younger than the
/// grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_s3_share_links_and_referrers_and_prune_the_bucket() {
    let Some(weed) = tokio::task::spawn_blocking(|| SeaweedFs::start("moor"))
        .await
        .unwrap()
    else {
        return;
    };
    let bucket = connect(&weed, "links").await;
    let store: Arc<dyn moor_store::Store> = Arc::new(moor_store::MemoryStore::new());
    let r1 = replica(&store, &weed, "links").await;
    let r2 = replica(&store, &weed, "links").await;

    // A blob pushed by digest, without a manifest, on replica 1.
    let lone = push_blob(&r1, "default/app", b"a layer pushed alone").await;
    let head = r2
        .call(
            Method::HEAD,
            &format!("/v2/default/app/blobs/{lone}"),
            "",
            "",
        )
        .await;
    assert_eq!(head.status, 200, "served by replica 2 in its repository");
    let got = r2.get(&format!("/v2/default/app/blobs/{lone}")).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.text, "a layer pushed alone");
    let other = r2.get(&format!("/v2/default/other/blobs/{lone}")).await;
    assert_eq!(
        other.status, 404,
        "not in another repository: {}",
        other.text
    );
    assert_eq!(other.body["errors"][0]["code"], "BLOB_UNKNOWN");

    // A manifest pushed by digest on replica 1, pulled on replica 2, and a referrer.
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let c = push_blob(&r1, "default/app", config).await;
    let m = push_manifest(
        &r1,
        "default/app",
        None,
        &image_manifest((&c, config.len()), &[(&lone, 20)], serde_json::json!({})),
    )
    .await;
    let got = r2.get(&format!("/v2/default/app/manifests/{m}")).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.headers["docker-content-digest"], m.as_str());
    let empty = push_blob(&r1, "default/app", b"{}").await;
    let sbom = push_manifest(
        &r1,
        "default/app",
        None,
        &image_manifest(
            (&empty, 2),
            &[(&empty, 2)],
            serde_json::json!({
                "artifactType": "application/vnd.example.sbom",
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
                "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": 1},
            }),
        ),
    )
    .await;
    let referrers = r2.get(&format!("/v2/default/app/referrers/{m}")).await;
    assert_eq!(referrers.status, 200, "{}", referrers.text);
    let listed = referrers.body["manifests"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{}", referrers.text);
    assert_eq!(listed[0]["digest"], sbom.as_str());
    assert_eq!(listed[0]["artifactType"], "application/vnd.example.sbom");
    assert_eq!(
        walk(&r1.data_dir().join("registry").join("repositories")),
        Vec::<std::path::PathBuf>::new(),
        "no link on replica 1's disk"
    );

    // A deleted stream's records leave the store.
    let gone_layer = push_blob(&r1, "default/gone", b"a layer of a stream deleted").await;
    let gone_config = push_blob(&r1, "default/gone", config).await;
    push_manifest(
        &r1,
        "default/gone",
        Some("1"),
        &image_manifest(
            (&gone_config, config.len()),
            &[(&gone_layer, 27)],
            serde_json::json!({}),
        ),
    )
    .await;
    assert!(
        !keys(&store, "/moor/registry/links/default/gone/")
            .await
            .is_empty()
    );
    let r = r2
        .delete("/apis/image.openshift.io/v1/namespaces/default/imagestreams/gone")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !keys(&store, "/moor/registry/links/default/gone/")
        .await
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "the deleted stream's links stayed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = r2
        .get(&format!("/v2/default/gone/blobs/{gone_layer}"))
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(
        !keys(&store, "/moor/registry/links/default/app/")
            .await
            .is_empty()
    );

    // Prune: an unreferenced blob with an old link, an old object no link names, a
    // tagged image's blobs, then (after the grace period) a fresh object.
    let unreferenced = push_blob(&r1, "default/junk", b"a blob no image needs").await;
    let orphan = moor_api::Digest::sha256_of(b"an object no link names");
    {
        let mut staged = bucket.stage_as(&orphan).await.unwrap();
        staged
            .write(bytes::Bytes::from_static(b"an object no link names"))
            .await
            .unwrap();
        staged.commit(&orphan, None).await.unwrap();
    }
    let kept_layer = push_blob(&r2, "default/kept", b"a layer of a tagged image").await;
    let kept_config = push_blob(&r2, "default/kept", config).await;
    let kept = push_manifest(
        &r2,
        "default/kept",
        Some("1"),
        &image_manifest(
            (&kept_config, config.len()),
            &[(&kept_layer, 25)],
            serde_json::json!({}),
        ),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let fresh = moor_api::Digest::sha256_of(b"an object inside the grace period");
    {
        let mut staged = bucket.stage_as(&fresh).await.unwrap();
        staged
            .write(bytes::Bytes::from_static(
                b"an object inside the grace period",
            ))
            .await
            .unwrap();
        staged.commit(&fresh, None).await.unwrap();
    }
    let in_bucket = |d: String| {
        let bucket = bucket.clone();
        async move {
            bucket
                .stat(&moor_api::Digest::parse(&d).unwrap())
                .await
                .unwrap()
                .is_some()
        }
    };
    let spec = serde_json::json!({"keepTagRevisions": 1, "keepYoungerThan": "3s"});
    let dry = r1
        .post(
            "/apis/moor.io/v1/imageprunes",
            &serde_json::json!({"spec": {"keepTagRevisions": 1, "keepYoungerThan": "3s", "dryRun": true}}),
        )
        .await;
    assert_eq!(dry.status, 201, "{}", dry.text);
    let planned: Vec<&str> = dry.body["status"]["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap())
        .collect();
    assert!(planned.contains(&unreferenced.as_str()), "{}", dry.text);
    assert!(planned.contains(&orphan.as_str()), "{}", dry.text);
    assert!(
        in_bucket(unreferenced.clone()).await,
        "a dry run deletes nothing"
    );
    assert!(
        in_bucket(orphan.to_string()).await,
        "a dry run deletes nothing"
    );
    assert!(
        !keys(&store, "/moor/registry/links/default/junk/")
            .await
            .is_empty()
    );

    let done = r1
        .post(
            "/apis/moor.io/v1/imageprunes",
            &serde_json::json!({"spec": spec}),
        )
        .await;
    assert_eq!(done.status, 201, "{}", done.text);
    assert_eq!(
        done.body["status"]["errors"],
        serde_json::json!(null),
        "{}",
        done.text
    );
    assert!(!in_bucket(unreferenced.clone()).await, "{}", done.text);
    assert!(!in_bucket(orphan.to_string()).await, "{}", done.text);
    assert!(
        keys(&store, "/moor/registry/links/default/junk/")
            .await
            .is_empty(),
        "the stale link went with its blob"
    );
    for d in [&kept, &kept_layer, &kept_config] {
        assert!(
            in_bucket(d.to_string()).await,
            "{d} of a tagged image stays"
        );
    }
    assert!(
        in_bucket(fresh.to_string()).await,
        "inside the grace period"
    );
    let r = r2
        .get(&format!("/v2/default/kept/blobs/{kept_layer}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(bucket.staging_objects().await.unwrap(), 0);
}
