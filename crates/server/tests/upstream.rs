//! Interop tests of the upstream client (`moor_server::upstream`) against a real CNCF
//! distribution with images pushed by skopeo, and against in-process fakes (axum) for
//! what a well-behaved registry never does: lying digests, 429, schema 1, huge
//! manifests, slow answers. Every server listens on 127.0.0.1; `quay.io` is resolved to
//! a closed loopback port so that no request can leave the machine.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt as _;
use moor_api::media_types::{
    DOCKER_MANIFEST_V1_SIGNED, DOCKER_MANIFEST_V2, OCI_INDEX, OCI_MANIFEST,
};
use moor_api::{Digest, DockerImageReference};
use moor_server::upstream::{
    Credentials, FetchOptions, ManifestContent, Mirror, Scheme, Timeouts, UpstreamClient,
    UpstreamConfig, UpstreamError,
};
use moor_testkit::{
    Distribution, DistributionOptions, Format, ImageSpec, ManualClock, OciLayout, closed_addr,
};

// ---------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------

/// A config that can only ever reach loopback: no proxies from the environment, and
/// `quay.io` pinned to a closed local port.
fn base_config() -> UpstreamConfig {
    UpstreamConfig {
        use_environment_proxy: false,
        dns_overrides: vec![("quay.io".to_owned(), closed_addr())],
        ..UpstreamConfig::default()
    }
}

/// A client for which every 127.0.0.1 registry is insecure (plain HTTP allowed).
fn loopback_client() -> UpstreamClient {
    UpstreamClient::new(UpstreamConfig {
        insecure_registries: vec!["127.0.0.1".to_owned()],
        ..base_config()
    })
    .expect("client")
}

fn r(s: &str) -> DockerImageReference {
    DockerImageReference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn anon() -> FetchOptions {
    FetchOptions::default()
}

async fn serve(make: impl FnOnce(SocketAddr) -> Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = make(addr);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

fn small_manifest() -> Bytes {
    Bytes::from_static(
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#,
    )
}

fn manifest_response(bytes: Bytes, content_type: &str, digest_header: Option<String>) -> Response {
    let mut resp = (StatusCode::OK, bytes).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("ct"),
    );
    if let Some(d) = digest_header {
        resp.headers_mut().insert(
            "docker-content-digest",
            HeaderValue::from_str(&d).expect("digest"),
        );
    }
    resp
}

fn oci_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!(r#"{{"errors":[{{"code":"{code}","message":"{message}"}}]}}"#),
    )
        .into_response()
}

/// One image (`app-1.0`, amd64) pushed as OCI to `keycloak/keycloak:20.0.2` and as
/// Docker schema 2 to `keycloak/keycloak:v2s2`.
fn push_keycloak(dist: &Distribution) -> (OciLayout, String, String) {
    let layout = OciLayout::new();
    layout.add_image(
        "app-1.0",
        &ImageSpec::new("amd64").with_file("etc/version", "20.0.2\n"),
    );
    let oci = dist.push(&layout, "app-1.0", "keycloak/keycloak:20.0.2", Format::Oci);
    let v2 = dist.push(
        &layout,
        "app-1.0",
        "keycloak/keycloak:v2s2",
        Format::DockerV2S2,
    );
    (layout, oci.digest, v2.digest)
}

// ---------------------------------------------------------------------------------------
// 1. digests agree with skopeo; HEAD; config; blobs; tags
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_match_skopeo_for_oci_and_docker_schema2() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let (_layout, oci_digest, v2_digest) = push_keycloak(&dist);
    let client = UpstreamClient::new(UpstreamConfig {
        insecure_registries: vec![dist.host.clone()],
        tag_page_size: Some(1),
        ..base_config()
    })
    .expect("client");

    for (tag, skopeo_digest, media_type) in [
        ("20.0.2", &oci_digest, OCI_MANIFEST),
        ("v2s2", &v2_digest, DOCKER_MANIFEST_V2),
    ] {
        let name = dist.reference(&format!("keycloak/keycloak:{tag}"));
        let image = r(&name);
        let m = client.fetch_manifest(&image, &anon()).await.expect("fetch");
        assert_eq!(m.digest.as_str(), skopeo_digest.as_str(), "{tag}");
        assert_eq!(m.media_type, media_type, "{tag}");
        assert_eq!(
            m.bytes.as_ref(),
            dist.inspect_raw(&format!("keycloak/keycloak:{tag}"))
                .as_slice()
        );
        assert_eq!(m.source, image);
        assert_eq!(m.served_by.registry, dist.host);
        assert_eq!(m.served_by.repository, "keycloak/keycloak");
        assert!(!m.served_by.mirror);
        // An insecure registry is tried over unverified HTTPS first, then HTTP.
        assert_eq!(m.served_by.scheme, Scheme::Http);
        assert_eq!(
            m.pinned().exact(),
            format!("{}/keycloak/keycloak@{skopeo_digest}", dist.host)
        );

        let head = client.head_manifest(&image, &anon()).await.expect("head");
        assert_eq!(head.digest.as_ref(), Some(&m.digest), "{tag}");
        assert_eq!(head.media_type.as_deref(), Some(media_type));
        assert_eq!(head.size, Some(m.bytes.len() as u64));

        // By digest: verified against the digest asked for.
        let by_digest = r(&format!("{}/keycloak/keycloak@{skopeo_digest}", dist.host));
        let again = client
            .fetch_manifest(&by_digest, &anon())
            .await
            .expect("by digest");
        assert_eq!(again.bytes, m.bytes);

        let config_digest = m.config_digest().expect("config digest");
        let cfg = client
            .fetch_config(&image, &config_digest, &anon())
            .await
            .expect("config");
        assert_eq!(cfg.config.architecture().to_string(), "amd64");
        assert_eq!(cfg.config.os().to_string(), "linux");
        let cmd = cfg
            .config
            .config()
            .as_ref()
            .and_then(|c| c.cmd().clone())
            .expect("config.Cmd");
        assert_eq!(cmd, ["/hello.txt"]);

        // The layer streams and verifies.
        let ManifestContent::Image(manifest) = &m.content else {
            panic!("{tag}: not an image manifest");
        };
        let layer = &manifest.layers()[0];
        let layer_digest = Digest::parse(layer.digest().as_ref()).expect("layer digest");
        let stream = client
            .blob_stream(&image, &layer_digest, &anon())
            .await
            .expect("blob stream");
        assert_eq!(stream.size, Some(layer.size()));
        let chunks: Vec<Bytes> = stream.map(|c| c.expect("chunk")).collect::<Vec<_>>().await;
        assert!(layer_digest.matches(&chunks.concat()));
    }

    // Tags (distribution 2.8 ignores `n` and answers in one page; pagination is
    // tested against a fake below).
    let mut tags = client
        .list_tags(&r(&dist.reference("keycloak/keycloak")), &anon())
        .await
        .expect("tags")
        .tags;
    tags.sort();
    assert_eq!(tags, ["20.0.2", "v2s2"]);

    // insecure per call: a client that does not list the registry.
    let strict = UpstreamClient::new(base_config()).expect("client");
    let image = r(&dist.reference("keycloak/keycloak:20.0.2"));
    let m = strict
        .fetch_manifest(&image, &anon().insecure(true))
        .await
        .expect("insecure per call");
    assert_eq!(m.digest.as_str(), oci_digest);
    let e = strict.fetch_manifest(&image, &anon()).await.unwrap_err();
    assert_eq!(e.reason(), "ServiceUnavailable", "{e}");
    assert!(e.to_string().contains("https://127.0.0.1"), "{e}");
}

// ---------------------------------------------------------------------------------------
// 2. an OCI index with two platforms
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_index_and_both_children() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let layout = OciLayout::new();
    let amd = layout.add_image("amd64", &ImageSpec::new("amd64"));
    let arm = layout.add_image("arm64", &ImageSpec::new("arm64"));
    let index = layout.add_index("multi", &["amd64", "arm64"]);
    let pushed = dist.push(&layout, "multi", "multi/app:1", Format::Oci);
    assert_eq!(pushed.digest, index.digest);

    let client = loopback_client();
    let image = r(&pushed.reference);
    let list = client.fetch_manifest(&image, &anon()).await.expect("index");
    assert_eq!(list.digest.as_str(), pushed.digest);
    assert_eq!(list.media_type, OCI_INDEX);
    assert!(list.is_list());
    assert_eq!(list.config_digest(), None);
    let children: Vec<String> = list.child_digests().iter().map(|d| d.to_string()).collect();
    assert_eq!(children, [amd.digest.clone(), arm.digest.clone()]);
    let ManifestContent::Index(idx) = &list.content else {
        panic!("not an index");
    };
    let platforms: Vec<String> = idx
        .manifests()
        .iter()
        .map(|d| {
            d.platform()
                .as_ref()
                .expect("platform")
                .architecture()
                .to_string()
        })
        .collect();
    assert_eq!(platforms, ["amd64", "arm64"]);
    let head = client.head_manifest(&image, &anon()).await.expect("head");
    assert_eq!(head.digest.as_ref(), Some(&list.digest));
    assert_eq!(head.media_type.as_deref(), Some(OCI_INDEX));

    for (child, arch) in [(&amd, "amd64"), (&arm, "arm64")] {
        let child_ref = r(&format!("{}/multi/app@{}", dist.host, child.digest));
        let m = client
            .fetch_manifest(&child_ref, &anon())
            .await
            .expect("child");
        assert_eq!(m.digest.as_str(), child.digest);
        assert_eq!(m.media_type, OCI_MANIFEST);
        let cfg = client
            .fetch_config(&child_ref, &m.config_digest().expect("config"), &anon())
            .await
            .expect("child config");
        assert_eq!(cfg.config.architecture().to_string(), arch);
    }
}

// ---------------------------------------------------------------------------------------
// 3. htpasswd: Basic credentials from a dockerconfigjson
// ---------------------------------------------------------------------------------------

fn dockerconfigjson(entries: &[(&str, &str, &str)]) -> Credentials {
    let auths: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(key, user, pass)| {
            let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            ((*key).to_owned(), serde_json::json!({ "auth": auth }))
        })
        .collect();
    let doc = serde_json::json!({ "auths": auths });
    Credentials::from_dockerconfigjson(doc.to_string().as_bytes()).expect("dockerconfigjson")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htpasswd_registry_needs_basic_credentials() {
    let Some(dist) = Distribution::start_with(DistributionOptions {
        htpasswd: Some(("moor".to_owned(), "s3cret".to_owned())),
        ..DistributionOptions::default()
    }) else {
        return;
    };
    let (_layout, oci_digest, _) = push_keycloak(&dist);
    let client = loopback_client();
    let image = r(&dist.reference("keycloak/keycloak:20.0.2"));

    let e = client.fetch_manifest(&image, &anon()).await.unwrap_err();
    assert!(matches!(e, UpstreamError::Unauthorized { .. }), "{e:?}");
    assert_eq!(e.reason(), "Unauthorized");
    assert_eq!(e.message(), "authentication required");
    let e = client.head_manifest(&image, &anon()).await.unwrap_err();
    assert_eq!(e.reason(), "Unauthorized", "{e}");
    let e = client.list_tags(&image, &anon()).await.unwrap_err();
    assert_eq!(e.reason(), "Unauthorized", "{e}");

    let good = FetchOptions::with_credentials(dockerconfigjson(&[
        ("quay.io", "someone", "else"),
        (&dist.host, "moor", "s3cret"),
    ]));
    let m = client
        .fetch_manifest(&image, &good)
        .await
        .expect("with credentials");
    assert_eq!(m.digest.as_str(), oci_digest);
    let cfg = client
        .fetch_config(&image, &m.config_digest().expect("config"), &good)
        .await
        .expect("config with credentials");
    assert_eq!(cfg.config.os().to_string(), "linux");
    let mut tags = client.list_tags(&image, &good).await.expect("tags").tags;
    tags.sort();
    assert_eq!(tags, ["20.0.2", "v2s2"]);

    // The URL form of the key; and first match wins.
    let url_key = format!("http://{}/v2/", dist.host);
    let first_good = FetchOptions::with_credentials(dockerconfigjson(&[
        (&url_key, "moor", "s3cret"),
        (&dist.host, "moor", "wrong"),
    ]));
    assert!(client.fetch_manifest(&image, &first_good).await.is_ok());
    let first_bad = FetchOptions::with_credentials(dockerconfigjson(&[
        (&dist.host, "moor", "wrong"),
        (&url_key, "moor", "s3cret"),
    ]));
    let e = client.fetch_manifest(&image, &first_bad).await.unwrap_err();
    assert_eq!(e.reason(), "Unauthorized", "{e}");
}

// ---------------------------------------------------------------------------------------
// 4. bearer tokens through the WWW-Authenticate challenge, cached
// ---------------------------------------------------------------------------------------

#[derive(Clone)]
struct TokenServer {
    realm: String,
    hits: Arc<AtomicUsize>,
    issued: Arc<Mutex<HashSet<String>>>,
    expires_in: u64,
    credentials: Option<(String, String)>,
}

async fn token(
    State(s): State<TokenServer>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let n = s.hits.fetch_add(1, Ordering::SeqCst) + 1;
    if q.get("service").map(String::as_str) != Some("fake-registry")
        || q.get("scope").map(String::as_str) != Some("repository:team/app:pull")
    {
        return oci_error(StatusCode::BAD_REQUEST, "INVALID", "bad service or scope");
    }
    if let Some((user, pass)) = &s.credentials {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        );
        if headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(expected.as_str())
        {
            return oci_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "bad credentials");
        }
    }
    let token = format!("tok-{n}");
    s.issued.lock().expect("lock").insert(token.clone());
    axum::Json(serde_json::json!({"token": token, "expires_in": s.expires_in})).into_response()
}

async fn bearer_manifest(
    State(s): State<TokenServer>,
    Path(_reference): Path<String>,
    headers: HeaderMap,
) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let valid = presented.is_some_and(|t| s.issued.lock().expect("lock").contains(&t));
    if !valid {
        let mut resp = oci_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required",
        );
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&format!(
                r#"Bearer realm="{}",service="fake-registry",scope="repository:team/app:pull""#,
                s.realm
            ))
            .expect("challenge"),
        );
        return resp;
    }
    let bytes = small_manifest();
    let digest = Digest::sha256_of(&bytes).to_string();
    manifest_response(bytes, OCI_MANIFEST, Some(digest))
}

async fn token_registry(
    expires_in: u64,
    credentials: Option<(&str, &str)>,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let hits2 = hits.clone();
    let credentials = credentials.map(|(u, p)| (u.to_owned(), p.to_owned()));
    let addr = serve(move |addr| {
        let state = TokenServer {
            realm: format!("http://{addr}/token"),
            hits: hits2,
            issued: Arc::default(),
            expires_in,
            credentials,
        };
        Router::new()
            .route("/token", get(token))
            .route("/v2/team/app/manifests/{reference}", get(bearer_manifest))
            .with_state(state)
    })
    .await;
    (addr, hits)
}

#[tokio::test]
async fn bearer_token_is_fetched_once_and_cached() {
    let (addr, hits) = token_registry(300, Some(("robot", "pw"))).await;
    let client = loopback_client();
    let image = r(&format!("{addr}/team/app:v1"));
    let creds =
        FetchOptions::with_credentials(Credentials::basic(&addr.to_string(), "robot", "pw"));

    let first = client
        .fetch_manifest(&image, &creds)
        .await
        .expect("first fetch");
    assert_eq!(first.digest, Digest::sha256_of(&small_manifest()));
    let second = client
        .fetch_manifest(&image, &creds)
        .await
        .expect("second fetch");
    assert_eq!(second.digest, first.digest);
    let head = client.head_manifest(&image, &creds).await.expect("head");
    assert_eq!(head.digest.as_ref(), Some(&first.digest));
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the token endpoint is hit once"
    );

    // Without credentials the token server refuses: Unauthorized, and no token
    // is shared with the caller that has credentials.
    let e = client.fetch_manifest(&image, &anon()).await.unwrap_err();
    assert_eq!(e.reason(), "Unauthorized", "{e}");
    assert!(e.message().contains("bad credentials"), "{e}");
    // Wrong credentials likewise.
    let wrong =
        FetchOptions::with_credentials(Credentials::basic(&addr.to_string(), "robot", "nope"));
    let e = client.fetch_manifest(&image, &wrong).await.unwrap_err();
    assert_eq!(e.reason(), "Unauthorized", "{e}");
}

#[tokio::test]
async fn bearer_token_expiry_is_honoured() {
    // Anonymous tokens that live one second, on a clock the test moves.
    let (addr, hits) = token_registry(1, None).await;
    let clock = Arc::new(ManualClock::new());
    let client = UpstreamClient::new(UpstreamConfig {
        insecure_registries: vec!["127.0.0.1".to_owned()],
        clock: clock.clone(),
        ..base_config()
    })
    .expect("client");
    let image = r(&format!("{addr}/team/app:v1"));
    client.fetch_manifest(&image, &anon()).await.expect("first");
    clock.advance(Duration::from_millis(850));
    client
        .fetch_manifest(&image, &anon())
        .await
        .expect("second");
    assert_eq!(hits.load(Ordering::SeqCst), 1, "a live token is reused");
    // Past the lifetime less its 10% margin (0.9 s).
    clock.advance(Duration::from_millis(100));
    client
        .fetch_manifest(&image, &anon())
        .await
        .expect("after expiry");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "an expired token is replaced"
    );
}

// ---------------------------------------------------------------------------------------
// 5. not found
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tag_repository_and_blob_are_not_found() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    push_keycloak(&dist);
    let client = loopback_client();
    let missing = r(&dist.reference("keycloak/keycloak:20.0.99"));
    let e = client.fetch_manifest(&missing, &anon()).await.unwrap_err();
    assert!(matches!(e, UpstreamError::NotFound { .. }), "{e:?}");
    assert_eq!(e.reason(), "NotFound");
    assert_eq!(e.message(), "manifest unknown");
    assert_eq!(
        e.to_string(),
        format!("{}: manifest unknown", missing.exact())
    );
    let e = client.head_manifest(&missing, &anon()).await.unwrap_err();
    assert_eq!(e.reason(), "NotFound", "{e}");

    let e = client
        .list_tags(&r(&dist.reference("nobody/here")), &anon())
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "NotFound", "{e}");
    let e = client
        .fetch_blob(&missing, &Digest::sha256_of(b"nothing"), 1024, &anon())
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "NotFound", "{e}");
}

// ---------------------------------------------------------------------------------------
// 6. lying registries
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn lying_registry_is_refused() {
    let honest = small_manifest();
    let claimed = Digest::sha256_of(b"{\"some\":\"other manifest\"}");
    let claimed_s = claimed.to_string();
    let addr = serve(move |_| {
        let body = honest.clone();
        let body2 = honest.clone();
        let body3 = honest.clone();
        let claimed_s2 = claimed_s.clone();
        Router::new()
            // Serves other bytes than the digest asked for.
            .route(
                "/v2/lie/body/manifests/{reference}",
                get(move || async move { manifest_response(body, OCI_MANIFEST, None) }),
            )
            // Announces a digest its bytes do not have.
            .route(
                "/v2/lie/header/manifests/{reference}",
                get(
                    move || async move { manifest_response(body2, OCI_MANIFEST, Some(claimed_s2)) },
                ),
            )
            .route(
                "/v2/honest/app/manifests/{reference}",
                get(move || async move {
                    let d = Digest::sha256_of(&body3).to_string();
                    manifest_response(body3, OCI_MANIFEST, Some(d))
                }),
            )
    })
    .await;
    let client = loopback_client();

    let e = client
        .fetch_manifest(&r(&format!("{addr}/lie/body@{claimed}")), &anon())
        .await
        .unwrap_err();
    let UpstreamError::DigestMismatch {
        expected, actual, ..
    } = &e
    else {
        panic!("{e:?}");
    };
    assert_eq!(expected, &claimed.to_string());
    assert_eq!(actual, &Digest::sha256_of(&small_manifest()));
    assert_eq!(e.reason(), "Invalid");

    let e = client
        .fetch_manifest(&r(&format!("{addr}/lie/header:latest")), &anon())
        .await
        .unwrap_err();
    assert!(matches!(e, UpstreamError::DigestMismatch { .. }), "{e:?}");
    assert!(e.message().contains("Docker-Content-Digest"), "{e}");

    let ok = client
        .fetch_manifest(&r(&format!("{addr}/honest/app:latest")), &anon())
        .await
        .expect("honest");
    assert_eq!(ok.digest, Digest::sha256_of(&small_manifest()));
    // HEAD by digest with a contradicting header is refused too.
    let e = client
        .head_manifest(&r(&format!("{addr}/honest/app@{claimed}")), &anon())
        .await
        .unwrap_err();
    assert!(matches!(e, UpstreamError::DigestMismatch { .. }), "{e:?}");
}

// ---------------------------------------------------------------------------------------
// 7. 429 and Retry-After
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn too_many_requests_carries_retry_after() {
    let addr = serve(|_| {
        Router::new()
            .route(
                "/v2/slow/seconds/manifests/{reference}",
                get(|| async {
                    let mut resp = oci_error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "TOOMANYREQUESTS",
                        "slow down",
                    );
                    resp.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
                    resp
                }),
            )
            .route(
                "/v2/slow/date/manifests/{reference}",
                get(|| async {
                    let when =
                        httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
                    let mut resp = StatusCode::TOO_MANY_REQUESTS.into_response();
                    resp.headers_mut().insert(
                        header::RETRY_AFTER,
                        HeaderValue::from_str(&when).expect("date"),
                    );
                    resp
                }),
            )
            .route(
                "/v2/slow/none/manifests/{reference}",
                get(|| async { StatusCode::TOO_MANY_REQUESTS }),
            )
    })
    .await;
    let client = loopback_client();

    let e = client
        .fetch_manifest(&r(&format!("{addr}/slow/seconds:1")), &anon())
        .await
        .unwrap_err();
    assert_eq!(
        e,
        UpstreamError::TooManyRequests {
            retry_after: Some(Duration::from_secs(3))
        }
    );
    assert_eq!(e.reason(), "TooManyRequests");
    let e = client
        .head_manifest(&r(&format!("{addr}/slow/seconds:1")), &anon())
        .await
        .unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));

    let e = client
        .fetch_manifest(&r(&format!("{addr}/slow/date:1")), &anon())
        .await
        .unwrap_err();
    let after = e.retry_after().expect("retry_after from an HTTP date");
    assert!(
        after <= Duration::from_secs(120) && after >= Duration::from_secs(115),
        "{after:?}"
    );
    let e = client
        .fetch_manifest(&r(&format!("{addr}/slow/none:1")), &anon())
        .await
        .unwrap_err();
    assert_eq!(e, UpstreamError::TooManyRequests { retry_after: None });
}

// ---------------------------------------------------------------------------------------
// 8. mirrors
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_serves_the_source_name() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let (_layout, oci_digest, _) = push_keycloak(&dist);
    let client = UpstreamClient::new(UpstreamConfig {
        mirrors: vec![Mirror::parse(&format!("quay.io={}", dist.host)).expect("mirror")],
        insecure_registries: vec![dist.host.clone()],
        ..base_config()
    })
    .expect("client");
    let image = r("quay.io/keycloak/keycloak:20.0.2");

    let m = client
        .fetch_manifest(&image, &anon())
        .await
        .expect("via mirror");
    assert_eq!(m.source.exact(), "quay.io/keycloak/keycloak:20.0.2");
    assert_eq!(m.digest.as_str(), oci_digest);
    assert_eq!(
        m.pinned().exact(),
        format!("quay.io/keycloak/keycloak@{oci_digest}")
    );
    assert!(m.served_by.mirror);
    assert_eq!(m.served_by.registry, dist.host);
    assert_eq!(m.served_by.repository, "keycloak/keycloak");
    let head = client
        .head_manifest(&image, &anon())
        .await
        .expect("head via mirror");
    assert_eq!(head.digest.as_ref(), Some(&m.digest));
    assert!(head.served_by.mirror);
    let cfg = client
        .fetch_config(&image, &m.config_digest().expect("config"), &anon())
        .await
        .expect("config via mirror");
    assert!(cfg.served_by.mirror);
    let tags = client
        .list_tags(&image, &anon())
        .await
        .expect("tags via mirror");
    assert!(tags.served_by.mirror);
    assert_eq!(tags.tags.len(), 2);

    // A tag the mirror lacks, with quay.io unreachable (pinned to a closed port):
    // the mirror's definite answer (issue 15 §3), naming the mirror first, then
    // what the source did.
    let e = client
        .fetch_manifest(&r("quay.io/keycloak/keycloak:20.0.99"), &anon())
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "NotFound", "{e}");
    assert!(!e.is_transient(), "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "quay.io/keycloak/keycloak:20.0.99: mirror {}/keycloak/keycloak: manifest unknown; also tried: source quay.io/keycloak/keycloak: ",
            dist.host
        )),
        "{text}"
    );
    assert!(
        text.contains("https://quay.io/v2/keycloak/keycloak/manifests/20.0.99"),
        "{text}"
    );
}

/// Issue 15 §3: a mirror that wants credentials answers definitely (Unauthorized),
/// ahead of a source that cannot be reached; a mirror that cannot be reached
/// before a source that answers `manifest unknown` leaves the source's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definite_answer_wins_over_unreachable_endpoints() {
    let Some(dist) = Distribution::start_with(DistributionOptions {
        htpasswd: Some(("moor".into(), "s3cret".into())),
        ..Default::default()
    }) else {
        return;
    };
    let client = UpstreamClient::new(UpstreamConfig {
        mirrors: vec![Mirror::parse(&format!("quay.io={}", dist.host)).expect("mirror")],
        insecure_registries: vec![dist.host.clone()],
        ..base_config()
    })
    .expect("client");
    let e = client
        .fetch_manifest(&r("quay.io/keycloak/keycloak:20.0.2"), &anon())
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "Unauthorized", "{e}");
    assert!(
        e.message()
            .starts_with(&format!("mirror {}/keycloak/keycloak: ", dist.host)),
        "{e}"
    );
    assert!(e.message().contains("also tried: source quay.io/"), "{e}");

    // The other way round: the mirror is down, the source answers.
    let Some(open) = Distribution::start() else {
        return;
    };
    let mirror = closed_addr();
    let client = UpstreamClient::new(UpstreamConfig {
        mirrors: vec![Mirror::parse(&format!("{}={mirror}", open.host)).expect("mirror")],
        insecure_registries: vec!["127.0.0.1".to_owned()],
        ..base_config()
    })
    .expect("client");
    let e = client
        .fetch_manifest(&r(&open.reference("none/such:1")), &anon())
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "NotFound", "{e}");
    let message = e.message();
    assert!(
        message.starts_with(&format!("source {}/none/such: ", open.host)),
        "{message}"
    );
    assert!(
        message.contains(&format!("also tried: mirror {mirror}/none/such: ")),
        "{message}"
    );
}

#[tokio::test]
async fn mirror_down_and_source_unreachable_is_a_clear_error() {
    let mirror = closed_addr();
    let client = UpstreamClient::new(UpstreamConfig {
        mirrors: vec![Mirror::parse(&format!("quay.io={mirror}")).expect("mirror")],
        insecure_registries: vec![mirror.to_string()],
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            ..Timeouts::default()
        },
        ..base_config()
    })
    .expect("client");
    let e = client
        .fetch_manifest(&r("quay.io/keycloak/keycloak:20.0.2"), &anon())
        .await
        .unwrap_err();
    assert!(matches!(e, UpstreamError::Transport { .. }), "{e:?}");
    assert_eq!(e.reason(), "ServiceUnavailable");
    let text = e.to_string();
    assert!(
        text.starts_with("quay.io/keycloak/keycloak:20.0.2: cannot connect to https://quay.io/"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "mirror {mirror}/keycloak/keycloak: cannot connect"
        )),
        "{text}"
    );
    assert!(text.to_lowercase().contains("refused"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_down_falls_back_to_the_source() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let (_layout, oci_digest, _) = push_keycloak(&dist);
    let mirror = closed_addr();
    let client = UpstreamClient::new(UpstreamConfig {
        mirrors: vec![Mirror::parse(&format!("{}={mirror}/cache", dist.host)).expect("mirror")],
        insecure_registries: vec!["127.0.0.1".to_owned()],
        ..base_config()
    })
    .expect("client");
    let m = client
        .fetch_manifest(&r(&dist.reference("keycloak/keycloak:20.0.2")), &anon())
        .await
        .expect("from the source");
    assert_eq!(m.digest.as_str(), oci_digest);
    assert!(!m.served_by.mirror);
    assert_eq!(m.served_by.registry, dist.host);
}

// ---------------------------------------------------------------------------------------
// 9. schema 1 and oversized manifests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn schema1_and_oversized_manifests_are_refused() {
    let addr = serve(|_| {
        Router::new()
            .route(
                "/v2/old/s1/manifests/{reference}",
                get(|| async {
                    let body = Bytes::from_static(
                        br#"{"schemaVersion":1,"name":"old/s1","tag":"x","architecture":"amd64","fsLayers":[],"history":[],"signatures":[]}"#,
                    );
                    manifest_response(body, DOCKER_MANIFEST_V1_SIGNED, None)
                }),
            )
            .route(
                "/v2/big/length/manifests/{reference}",
                get(|| async {
                    let body = Bytes::from(vec![b' '; 4 * 1024 * 1024 + 1]);
                    manifest_response(body, OCI_MANIFEST, None)
                }),
            )
            .route(
                "/v2/big/chunked/manifests/{reference}",
                get(|| async {
                    // 5 MiB in 64 KiB chunks, no Content-Length.
                    let chunks = futures::stream::iter(
                        (0..80).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 64 * 1024]))),
                    );
                    let mut resp = Body::from_stream(chunks).into_response();
                    resp.headers_mut()
                        .insert(header::CONTENT_TYPE, HeaderValue::from_static(OCI_MANIFEST));
                    resp
                }),
            )
    })
    .await;
    let client = loopback_client();

    let s1 = r(&format!("{addr}/old/s1:x"));
    let e = client.fetch_manifest(&s1, &anon()).await.unwrap_err();
    assert!(
        matches!(e, UpstreamError::UnsupportedSchema1 { .. }),
        "{e:?}"
    );
    assert_eq!(e.reason(), "BadRequest");
    assert!(
        e.to_string()
            .contains("schema 1 manifests are not supported"),
        "{e}"
    );
    let e = client.head_manifest(&s1, &anon()).await.unwrap_err();
    assert!(
        matches!(e, UpstreamError::UnsupportedSchema1 { .. }),
        "{e:?}"
    );

    for path in ["big/length", "big/chunked"] {
        let e = client
            .fetch_manifest(&r(&format!("{addr}/{path}:x")), &anon())
            .await
            .unwrap_err();
        assert!(
            matches!(e, UpstreamError::TooLarge { kind: "manifest", limit, .. } if limit == 4 * 1024 * 1024),
            "{path}: {e:?}"
        );
        assert_eq!(e.reason(), "BadRequest");
    }
}

// ---------------------------------------------------------------------------------------
// transport: TLS with an extra CA, concurrency limits, timeouts
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_registry_with_ca_file_or_insecure() {
    let Some(dist) = Distribution::start_with(DistributionOptions {
        tls: true,
        ..DistributionOptions::default()
    }) else {
        return;
    };
    let (_layout, oci_digest, _) = push_keycloak(&dist);
    let image = r(&dist.reference("keycloak/keycloak:20.0.2"));

    let trusted = UpstreamClient::new(UpstreamConfig {
        ca_files: vec![dist.ca_cert.clone().expect("ca")],
        ..base_config()
    })
    .expect("client with CA");
    let m = trusted
        .fetch_manifest(&image, &anon())
        .await
        .expect("verified TLS");
    assert_eq!(m.digest.as_str(), oci_digest);
    assert_eq!(m.served_by.scheme, Scheme::Https);

    let plain = UpstreamClient::new(base_config()).expect("client");
    let e = plain.fetch_manifest(&image, &anon()).await.unwrap_err();
    assert!(matches!(e, UpstreamError::Transport { .. }), "{e:?}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    let m = plain
        .fetch_manifest(&image, &anon().insecure(true))
        .await
        .expect("unverified TLS");
    assert_eq!(m.served_by.scheme, Scheme::HttpsUnverified);
}

#[tokio::test]
async fn per_registry_concurrency_is_limited() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (f, p) = (in_flight.clone(), peak.clone());
    let addr = serve(move |_| {
        Router::new().route(
            "/v2/busy/app/manifests/{reference}",
            get(move || {
                let (f, p) = (f.clone(), p.clone());
                async move {
                    let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    f.fetch_sub(1, Ordering::SeqCst);
                    let body = small_manifest();
                    manifest_response(body, OCI_MANIFEST, None)
                }
            }),
        )
    })
    .await;
    let client = UpstreamClient::new(UpstreamConfig {
        insecure_registries: vec!["127.0.0.1".to_owned()],
        per_registry_concurrency: 2,
        ..base_config()
    })
    .expect("client");
    let metrics = moor_server::metrics::Metrics::new();
    client.register_metrics(&metrics);
    let image = r(&format!("{addr}/busy/app:1"));
    let started = Instant::now();
    let fetches = (0..6).map(|_| {
        let client = client.clone();
        let image = image.clone();
        async move { client.fetch_manifest(&image, &anon()).await }
    });
    for result in futures::future::join_all(fetches).await {
        result.expect("fetch");
    }
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    assert!(started.elapsed() >= Duration::from_millis(450));
    let text = metrics.render();
    let line =
        format!(r#"moor_upstream_requests_total{{registry="{addr}",method="GET",code="200"}} 6"#);
    assert!(text.contains(&line), "{text}");
}

#[tokio::test]
async fn slow_registry_times_out() {
    let addr = serve(|_| {
        Router::new().route(
            "/v2/sleepy/app/manifests/{reference}",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                StatusCode::OK
            }),
        )
    })
    .await;
    let client = UpstreamClient::new(UpstreamConfig {
        insecure_registries: vec!["127.0.0.1".to_owned()],
        timeouts: Timeouts {
            request: Duration::from_millis(300),
            ..Timeouts::default()
        },
        ..base_config()
    })
    .expect("client");
    let started = Instant::now();
    let e = client
        .fetch_manifest(&r(&format!("{addr}/sleepy/app:1")), &anon())
        .await
        .unwrap_err();
    assert!(matches!(e, UpstreamError::Timeout { .. }), "{e:?}");
    assert_eq!(e.reason(), "Timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
}

// ---------------------------------------------------------------------------------------
// tag list pagination (Link: <...>; rel="next")
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn tag_list_follows_link_pages() {
    let all: Vec<String> = (0..7).map(|i| format!("v{i}")).collect();
    let pages = Arc::new(AtomicUsize::new(0));
    let pages2 = pages.clone();
    let addr = serve(move |_| {
        Router::new().route(
            "/v2/many/tags/tags/list",
            get(
                move |Query(q): Query<std::collections::HashMap<String, String>>| {
                    let all = all.clone();
                    pages2.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let n: usize = q.get("n").and_then(|n| n.parse().ok()).unwrap_or(100);
                        let start = match q.get("last") {
                            Some(last) => all.iter().position(|t| t == last).map_or(0, |i| i + 1),
                            None => 0,
                        };
                        let page: Vec<&String> = all.iter().skip(start).take(n).collect();
                        let mut resp =
                            axum::Json(serde_json::json!({"name": "many/tags", "tags": page}))
                                .into_response();
                        if start + n < all.len() {
                            let last = page.last().map(|s| s.as_str()).unwrap_or_default();
                            let link = format!(
                                r#"</v2/many/tags/tags/list?last={last}&n={n}>; rel="next""#
                            );
                            resp.headers_mut()
                                .insert(header::LINK, HeaderValue::from_str(&link).expect("link"));
                        }
                        resp
                    }
                },
            ),
        )
    })
    .await;
    let client = UpstreamClient::new(UpstreamConfig {
        insecure_registries: vec!["127.0.0.1".to_owned()],
        tag_page_size: Some(3),
        ..base_config()
    })
    .expect("client");
    let tags = client
        .list_tags(&r(&format!("{addr}/many/tags")), &anon())
        .await
        .expect("tags");
    let expected: Vec<String> = (0..7).map(|i| format!("v{i}")).collect();
    assert_eq!(tags.tags, expected);
    assert_eq!(pages.load(Ordering::SeqCst), 3);
}
