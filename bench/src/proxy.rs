//! A counting proxy for the benchmarks: forwards to an upstream registry on loopback,
//! records every request and counts the response bytes it passes on as they stream,
//! optionally over a link of limited bandwidth. Calls the network (loopback) only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use futures::StreamExt;

/// One request the counting proxy forwarded, and the response bytes it passed on.
pub struct Hit {
    /// When the request arrived.
    pub at: Instant,
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Response body bytes passed on so far.
    pub bytes: Arc<AtomicU64>,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    client: reqwest::Client,
    hits: Arc<Mutex<Vec<Hit>>>,
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

/// The requests a proxy forwarded, in order.
pub type Hits = Arc<Mutex<Vec<Hit>>>;

/// A proxy that forwards to `upstream` and counts the response body bytes it passes
/// on, per request, as they stream through; with `mbit_per_sec`, response bodies
/// share a link of that bandwidth.
pub async fn start_proxy(upstream: &str, mbit_per_sec: Option<f64>) -> Result<(String, Hits)> {
    let hits = Arc::new(Mutex::new(Vec::new()));
    let proxy = Proxy {
        upstream: upstream.to_string(),
        client: reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .build()?,
        hits: hits.clone(),
        link: mbit_per_sec.map(|m| {
            Arc::new(Link {
                bytes_per_sec: m * 1e6 / 8.0,
                free_at: Mutex::new(Instant::now()),
            })
        }),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let host = listener.local_addr()?.to_string();
    let app = Router::new().fallback(forward).with_state(proxy);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((host, hits))
}

async fn forward(State(p): State<Proxy>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map(|q| q.as_str().to_string())
        .unwrap_or_default();
    let mut out = p
        .client
        .request(method.clone(), format!("http://{}{path}", p.upstream));
    for (k, v) in req.headers() {
        if k != "host" {
            out = out.header(k, v);
        }
    }
    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let bytes = Arc::new(AtomicU64::new(0));
    p.hits.lock().unwrap_or_else(|e| e.into_inner()).push(Hit {
        at: Instant::now(),
        method: method.to_string(),
        path: path.split('?').next().unwrap_or_default().to_string(),
        bytes: bytes.clone(),
    });
    let mut response = Response::new(Body::empty());
    match out.body(body).send().await {
        Ok(r) => {
            *response.status_mut() = r.status();
            for (k, v) in r.headers() {
                if k != "transfer-encoding" && k != "connection" {
                    response.headers_mut().append(k, v.clone());
                }
            }
            let link = p.link.clone();
            let counted = r.bytes_stream().then(move |c| {
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
            *response.body_mut() = Body::from_stream(counted);
        }
        Err(_) => *response.status_mut() = axum::http::StatusCode::BAD_GATEWAY,
    }
    response
}
