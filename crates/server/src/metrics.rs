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

    /// Registers a collector read at every scrape (values kept elsewhere, such as the
    /// watch cache's counters).
    pub fn register_collector(&self, collector: Box<dyn prometheus_client::collector::Collector>) {
        self.registry
            .lock()
            .expect("metrics registry lock")
            .register_collector(collector);
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

/// The watch cache's state and counters (`moor_watch_cache_*`), read at each scrape.
pub struct WatchCacheCollector(pub Arc<moor_store::CachedStore>);

impl std::fmt::Debug for WatchCacheCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WatchCacheCollector")
    }
}

impl prometheus_client::collector::Collector for WatchCacheCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let stats = self.0.stats();
        let gauges: [(&str, &str, i64); 5] = [
            (
                "watch_cache_ready",
                "1 while the watch cache is loaded and following the store",
                i64::from(stats.ready),
            ),
            (
                "watch_cache_revision",
                "the store revision the watch cache has applied",
                stats.revision,
            ),
            (
                "watch_cache_objects",
                "keys the watch cache holds",
                stats.objects as i64,
            ),
            (
                "watch_cache_window_events",
                "events in the watch cache's window",
                stats.window_events as i64,
            ),
            (
                "watch_cache_window_bytes",
                "bytes the watch cache's window counts",
                stats.window_bytes as i64,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let counters: [(&str, &str, u64); 3] = [
            (
                "watch_cache_loads",
                "times the watch cache loaded the store",
                stats.loads,
            ),
            (
                "watch_cache_hits",
                "reads and watches answered from the watch cache",
                stats.hits,
            ),
            (
                "watch_cache_misses",
                "reads and watches of cached prefixes passed to the store",
                stats.misses,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
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
