//! Prometheus metrics (`/metrics`) through prometheus-client: request counts and
//! latencies by verb, area and code. Other modules register their own families here.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// A standard method, else `other`.
    pub method: String,
    /// `api`, `registry`, `ops` or `other`.
    pub area: String,
    pub code: u16,
}

/// Labels of a request-duration observation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AreaLabels {
    pub method: String,
    pub area: String,
}

/// The metrics registry and the families the HTTP layer fills.
pub struct Metrics {
    registry: Mutex<Registry>,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<AreaLabels, Histogram>,
}

impl Metrics {
    /// A registry with moor's HTTP metrics.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("moor");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests served", requests.clone());
        let request_duration = Family::<AreaLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            request_duration.clone(),
        );
        Arc::new(Metrics {
            registry: Mutex::new(registry),
            requests,
            request_duration,
        })
    }

    /// Registers another metric family (used by controllers).
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.registry
            .lock()
            .expect("metrics registry lock")
            .register(name, help, metric);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(
            &mut out,
            &self.registry.lock().expect("metrics registry lock"),
        );
        out
    }
}

/// The part of moor a path belongs to: `api`, `registry`, `ops` or `other` (every
/// unknown path).
fn area(path: &str) -> &'static str {
    if path.starts_with("/api") || path.starts_with("/openapi") || path == "/version" {
        "api"
    } else if path.starts_with("/v2") {
        "registry"
    } else if matches!(path, "/healthz" | "/livez" | "/readyz" | "/metrics") {
        "ops"
    } else {
        "other"
    }
}

/// The method as a label: the standard methods by name, any other as `other`, so
/// that made-up methods cannot grow the number of series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Middleware recording every request. Every label comes from a closed set: the
/// method from [`method_label`], the area from four fixed values (never the path),
/// the status code from what moor's handlers answer.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method()).to_string();
    let area = area(req.uri().path()).to_string();
    let resp = next.run(req).await;
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            area: area.clone(),
            code: resp.status().as_u16(),
        })
        .inc();
    metrics
        .request_duration
        .get_or_create(&AreaLabels { method, area })
        .observe(start.elapsed().as_secs_f64());
    resp
}

/// `GET /metrics`.
pub async fn serve(State(metrics): State<Arc<Metrics>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_a_closed_set() {
        assert_eq!(method_label(&Method::GET), "GET");
        let made_up = Method::from_bytes(b"M000001").expect("a token is a method");
        assert_eq!(method_label(&made_up), "other");
        assert_eq!(area("/v2/ns/s/blobs/sha256:00"), "registry");
        assert_eq!(area("/no/such/route/12345"), "other");
        assert_eq!(area("/apis/image.openshift.io/v1/imagestreams"), "api");
    }
}
