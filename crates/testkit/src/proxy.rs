//! In-process HTTP peers on 127.0.0.1 that count requests: a counting proxy in front
//! of a real registry (every request forwarded, logged with its time, method, path,
//! status and the response bytes passed on as they stream, optionally over a link of
//! limited bandwidth), and a tiny fake registry that serves one image and can answer
//! the next manifest request with `429 Retry-After`. Calls axum, reqwest and tokio;
//! only loopback addresses.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde_json::json;

/// One request seen.
#[derive(Clone, Debug)]
pub struct Hit {
    /// When the answer's status was known (the proxy: when the upstream answered).
    pub at: Instant,
    pub method: String,
    /// The path, without the query.
    pub path: String,
    pub status: u16,
    /// Response body bytes passed on so far (the proxy counts as they stream).
    pub bytes: Arc<AtomicU64>,
}

/// The requests a peer saw, in order.
#[derive(Clone, Default)]
pub struct HitLog(Arc<Mutex<Vec<Hit>>>);

impl HitLog {
    fn push(&self, hit: Hit) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(hit);
    }

    /// Every request so far.
    pub fn all(&self) -> Vec<Hit> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many requests so far.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no request came yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every request so far, forgotten by the log.
    pub fn take(&self) -> Vec<Hit> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Response body bytes passed on so far, all requests together.
    pub fn bytes(&self) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|h| h.bytes.load(Ordering::Relaxed))
            .sum()
    }

    /// The requests since `t`.
    pub fn since(&self, t: Instant) -> Vec<Hit> {
        self.all().into_iter().filter(|h| h.at >= t).collect()
    }

    /// How many requests with `method` came since `t`.
    pub fn count_since(&self, t: Instant, method: &str) -> usize {
        self.since(t).iter().filter(|h| h.method == method).count()
    }
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr").to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A counting proxy in front of a registry: point moor at [`host`](Self::host).
pub struct CountingProxy {
    /// `127.0.0.1:PORT`.
    pub host: String,
    pub log: HitLog,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    log: HitLog,
    link: Option<Arc<Link>>,
}

/// A link of limited bandwidth shared by every connection through the proxy: each
/// chunk waits for its turn on the wire.
struct Link {
    bytes_per_sec: f64,
    free_at: Mutex<Instant>,
}

impl Link {
    async fn send(&self, bytes: usize) {
        let done = {
            let mut free_at = self.free_at.lock().unwrap_or_else(|e| e.into_inner());
            let start = (*free_at).max(Instant::now());
            *free_at = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec);
            *free_at
        };
        tokio::time::sleep_until(done.into()).await;
    }
}

impl CountingProxy {
    /// A proxy forwarding to `http://{upstream}`.
    pub async fn start(upstream: &str) -> Self {
        Self::start_with_link(upstream, None).await
    }

    /// A proxy whose response bodies share a link of `mbit_per_sec` (unlimited:
    /// `None`).
    pub async fn start_with_link(upstream: &str, mbit_per_sec: Option<f64>) -> Self {
        let log = HitLog::default();
        let state = ProxyState {
            upstream: upstream.to_string(),
            client: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(64)
                .build()
                .expect("client"),
            log: log.clone(),
            link: mbit_per_sec.map(|m| {
                Arc::new(Link {
                    bytes_per_sec: m * 1e6 / 8.0,
                    free_at: Mutex::new(Instant::now()),
                })
            }),
        };
        let app = Router::new().fallback(forward).with_state(state);
        CountingProxy {
            host: serve(app).await,
            log,
        }
    }

    /// `127.0.0.1:PORT/<repo_tag>`.
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host)
    }
}

async fn forward(State(s): State<ProxyState>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let mut out = s
        .client
        .request(method.clone(), format!("http://{}{path}", s.upstream));
    for (k, v) in req.headers() {
        if k != "host" {
            out = out.header(k, v);
        }
    }
    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let resp = match out.body(body).send().await {
        Ok(r) => r,
        Err(e) => {
            return (StatusCode::BAD_GATEWAY, e.to_string()).into_response();
        }
    };
    let status = resp.status();
    let mut headers = HeaderMap::new();
    for (k, v) in resp.headers() {
        if k != "transfer-encoding" && k != "connection" {
            headers.append(k, v.clone());
        }
    }
    let bytes = Arc::new(AtomicU64::new(0));
    s.log.push(Hit {
        at: Instant::now(),
        method: method.to_string(),
        path: path.split('?').next().unwrap_or_default().to_string(),
        status: status.as_u16(),
        bytes: bytes.clone(),
    });
    let link = s.link.clone();
    let counted = resp.bytes_stream().then(move |c| {
        let (bytes, link) = (bytes.clone(), link.clone());
        async move {
            if let Ok(c) = &c {
                if let Some(link) = link {
                    link.send(c.len()).await;
                }
                bytes.fetch_add(c.len() as u64, Ordering::Relaxed);
            }
            c
        }
    });
    let mut r = Response::new(Body::from_stream(counted));
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// A fake registry with one single-platform image under every repository and tag.
pub struct FakeRegistry {
    /// `127.0.0.1:PORT`.
    pub host: String,
    pub log: HitLog,
    /// The manifest's digest.
    pub digest: String,
    limit_next: Arc<AtomicU64>,
}

#[derive(Clone)]
struct FakeState {
    manifest: Arc<Vec<u8>>,
    digest: String,
    config: Arc<Vec<u8>>,
    config_digest: String,
    log: HitLog,
    limit_next: Arc<AtomicU64>,
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

impl FakeRegistry {
    /// A fake registry serving an image whose config names `label`.
    pub async fn start(label: &str) -> Self {
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Labels": {"fake": label}},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", "1".repeat(64))]},
        }))
        .expect("JSON");
        let config_digest = sha256(&config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": format!("sha256:{}", "2".repeat(64)), "size": 1234}],
        }))
        .expect("JSON");
        let digest = sha256(&manifest);
        let log = HitLog::default();
        let limit_next = Arc::new(AtomicU64::new(0));
        let state = FakeState {
            manifest: Arc::new(manifest),
            digest: digest.clone(),
            config: Arc::new(config),
            config_digest,
            log: log.clone(),
            limit_next: limit_next.clone(),
        };
        let app = Router::new().fallback(fake).with_state(state);
        FakeRegistry {
            host: serve(app).await,
            log,
            digest,
            limit_next,
        }
    }

    /// `127.0.0.1:PORT/<repo_tag>`.
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host)
    }

    /// Answers the next manifest request with 429 and `Retry-After: {seconds}`.
    pub fn rate_limit_next(&self, seconds: u64) {
        self.limit_next.store(seconds, Ordering::SeqCst);
    }
}

async fn fake(State(s): State<FakeState>, req: Request) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let (status, response) = if path == "/v2/" {
        (200, (StatusCode::OK, "{}").into_response())
    } else if path.contains("/manifests/") {
        match s.limit_next.swap(0, Ordering::SeqCst) {
            0 => {
                let mut r = Response::new(Body::from(s.manifest.as_ref().clone()));
                let h = r.headers_mut();
                h.insert(
                    "content-type",
                    HeaderValue::from_static("application/vnd.oci.image.manifest.v1+json"),
                );
                h.insert(
                    "docker-content-digest",
                    HeaderValue::from_str(&s.digest).expect("digest header"),
                );
                h.insert("content-length", s.manifest.len().into());
                (200, r)
            }
            secs => {
                let mut r = (
                    StatusCode::TOO_MANY_REQUESTS,
                    r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#,
                )
                    .into_response();
                r.headers_mut().insert("retry-after", secs.into());
                (429, r)
            }
        }
    } else if path.ends_with(&format!("/blobs/{}", s.config_digest)) {
        (
            200,
            Response::new(Body::from(s.config.as_ref().clone())).into_response(),
        )
    } else {
        (404, (StatusCode::NOT_FOUND, "not found").into_response())
    };
    s.log.push(Hit {
        at: Instant::now(),
        method,
        path,
        status,
        bytes: Arc::new(AtomicU64::new(0)),
    });
    response
}
