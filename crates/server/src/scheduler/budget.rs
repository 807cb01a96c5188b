//! Request budgets per registry: a token bucket each (`--registry-qps HOST=N`, else
//! `--default-registry-qps`), a pause until `Retry-After` when a registry answers
//! 429, and how long work waited for its budget (a histogram per registry). Waiting is
//! by reservation, as golang.org/x/time/rate does: each request takes a token, the
//! bucket may go into debt, and the caller sleeps once until its token exists, so that
//! many waiters cost one timer each and are served in arrival order. Also the
//! importer [`Source`] wrapper that spends the budget ([`BudgetedSource`]). Calls
//! tokio time, the importer's port and prometheus-client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use moor_api::image::reasons;
use moor_api::{Digest, DockerImageReference};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::time::Instant;

use crate::importer::{FetchedManifest, ImportError, PullOptions, Source};

/// Requests per second a registry gets when no `--registry-qps` names it.
pub const DEFAULT_REGISTRY_QPS: f64 = 10.0;
/// How long a 429 without `Retry-After` pauses its registry.
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(60);
/// The longest pause a `Retry-After` can ask for.
pub const MAX_PAUSE: Duration = Duration::from_secs(3600);
/// The shortest pause after a 429 (`Retry-After: 0` must not become a tight loop).
pub const MIN_PAUSE: Duration = Duration::from_secs(1);

/// The budgets' settings.
#[derive(Clone, Debug)]
pub struct BudgetConfig {
    /// Requests per second for registries not listed; 0 or less means no limit.
    pub default_qps: f64,
    /// Per registry (`quay.io`, `docker.io`, `127.0.0.1:5000`) requests per second.
    pub registry_qps: Vec<(String, f64)>,
    /// The pause after a 429 that has no `Retry-After`.
    pub default_pause: Duration,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            default_qps: DEFAULT_REGISTRY_QPS,
            registry_qps: Vec::new(),
            default_pause: DEFAULT_PAUSE,
        }
    }
}

/// The `registry` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegistryLabels {
    pub registry: String,
}

struct Bucket {
    /// Tokens per second; `None`: unlimited.
    rate: Option<f64>,
    /// The most tokens saved up (one second's worth, at least one).
    burst: f64,
    /// Available tokens; negative while requests are reserved ahead.
    tokens: f64,
    last: Instant,
    paused_until: Option<Instant>,
}

impl Bucket {
    fn new(qps: f64, now: Instant) -> Self {
        let rate = (qps > 0.0 && qps.is_finite()).then_some(qps);
        let burst = rate.map_or(1.0, |r| r.max(1.0));
        Bucket {
            rate,
            burst,
            tokens: burst,
            last: now,
            paused_until: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(rate) = self.rate {
            let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * rate).min(self.burst);
        }
        self.last = now;
    }
}

enum Wait {
    Go,
    Paused(Instant),
    Reserved(Instant),
}

/// The request budgets of all registries.
pub struct Budgets {
    config: BudgetConfig,
    buckets: Mutex<HashMap<String, Bucket>>,
    /// `moor_scheduled_budget_wait_seconds{registry}`.
    pub wait: Family<RegistryLabels, Histogram>,
    /// `moor_scheduled_rate_limited_total{registry}`: 429 answers seen.
    pub rate_limited: Family<RegistryLabels, Counter>,
}

impl Budgets {
    /// Budgets with `config`.
    pub fn new(config: BudgetConfig) -> Self {
        Budgets {
            config,
            buckets: Mutex::new(HashMap::new()),
            wait: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 20))
            }),
            rate_limited: Family::default(),
        }
    }

    /// The registry a reference's requests are budgeted under: its host as a user
    /// names it, lower case (`docker.io` for every Docker Hub alias).
    pub fn registry_of(reference: &DockerImageReference) -> String {
        crate::importer::registry_of(reference)
    }

    /// Requests per second of `registry` (0: unlimited).
    pub fn qps(&self, registry: &str) -> f64 {
        self.config
            .registry_qps
            .iter()
            .find(|(r, _)| r.eq_ignore_ascii_case(registry))
            .map_or(self.config.default_qps, |(_, q)| *q)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Bucket>> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until `registry` is not paused and a request fits its budget, then takes
    /// the token. Returns how long it waited (also observed in the histogram).
    pub async fn acquire(&self, registry: &str) -> Duration {
        let started = Instant::now();
        loop {
            let wait = {
                let mut buckets = self.lock();
                let now = Instant::now();
                let qps = self.qps(registry);
                let b = buckets
                    .entry(registry.to_string())
                    .or_insert_with(|| Bucket::new(qps, now));
                match b.paused_until {
                    Some(until) if until > now => Wait::Paused(until),
                    _ => {
                        b.paused_until = None;
                        match b.rate {
                            None => Wait::Go,
                            Some(rate) => {
                                b.refill(now);
                                b.tokens -= 1.0;
                                if b.tokens >= 0.0 {
                                    Wait::Go
                                } else {
                                    Wait::Reserved(now + Duration::from_secs_f64(-b.tokens / rate))
                                }
                            }
                        }
                    }
                }
            };
            match wait {
                Wait::Go => break,
                Wait::Paused(until) => tokio::time::sleep_until(until).await,
                Wait::Reserved(at) => {
                    tokio::time::sleep_until(at).await;
                    // A pause that began meanwhile holds this request too: give the
                    // token back and wait it out.
                    if self.paused_until(registry).is_some() {
                        if let Some(b) = self.lock().get_mut(registry) {
                            b.tokens = (b.tokens + 1.0).min(b.burst);
                        }
                        continue;
                    }
                    break;
                }
            }
        }
        let waited = started.elapsed();
        self.wait
            .get_or_create(&RegistryLabels {
                registry: registry.to_string(),
            })
            .observe(waited.as_secs_f64());
        waited
    }

    /// Pauses every request to `registry` for `retry_after` (the registry's
    /// `Retry-After`; [`BudgetConfig::default_pause`] when it sent none; between
    /// [`MIN_PAUSE`] and [`MAX_PAUSE`]). A longer pause already running is kept.
    pub fn pause(&self, registry: &str, retry_after: Option<Duration>) -> Instant {
        let pause = retry_after
            .unwrap_or(self.config.default_pause)
            .clamp(MIN_PAUSE, MAX_PAUSE);
        let now = Instant::now();
        let until = now + pause;
        self.rate_limited
            .get_or_create(&RegistryLabels {
                registry: registry.to_string(),
            })
            .inc();
        let qps = self.qps(registry);
        let mut buckets = self.lock();
        let b = buckets
            .entry(registry.to_string())
            .or_insert_with(|| Bucket::new(qps, now));
        let until = b.paused_until.map_or(until, |p| p.max(until));
        b.paused_until = Some(until);
        tracing::warn!(%registry, pause_ms = pause.as_millis() as u64, "registry answered 429: pausing its scheduled checks");
        until
    }

    /// When the pause of `registry` ends, if it is paused now.
    pub fn paused_until(&self, registry: &str) -> Option<Instant> {
        let now = Instant::now();
        self.lock()
            .get(registry)
            .and_then(|b| b.paused_until)
            .filter(|u| *u > now)
    }
}

/// An importer [`Source`] that spends `budgets`: every request first takes a token of
/// its registry (waiting out a pause), and a 429 pauses the registry. With
/// `throttle` off it only records 429s (for imports that users wait for, so that the
/// scheduler still backs off).
pub struct BudgetedSource {
    pub inner: Arc<dyn Source>,
    pub budgets: Arc<Budgets>,
    pub throttle: bool,
}

impl BudgetedSource {
    async fn before(&self, reference: &DockerImageReference) -> String {
        let registry = Budgets::registry_of(reference);
        if self.throttle {
            self.budgets.acquire(&registry).await;
        }
        registry
    }

    fn after<T>(&self, registry: &str, result: Result<T, ImportError>) -> Result<T, ImportError> {
        if let Err(e) = &result
            && e.reason() == reasons::TOO_MANY_REQUESTS
        {
            self.budgets.pause(registry, e.retry_after());
        }
        result
    }
}

#[async_trait]
impl Source for BudgetedSource {
    async fn manifest(
        &self,
        reference: &DockerImageReference,
        opts: &PullOptions,
    ) -> Result<FetchedManifest, ImportError> {
        let registry = self.before(reference).await;
        let r = self.inner.manifest(reference, opts).await;
        self.after(&registry, r)
    }

    async fn blob(
        &self,
        repository: &DockerImageReference,
        digest: &Digest,
        opts: &PullOptions,
    ) -> Result<Bytes, ImportError> {
        let registry = self.before(repository).await;
        let r = self.inner.blob(repository, digest, opts).await;
        self.after(&registry, r)
    }

    async fn tags(
        &self,
        repository: &DockerImageReference,
        opts: &PullOptions,
    ) -> Result<Vec<String>, ImportError> {
        let registry = self.before(repository).await;
        let r = self.inner.tags(repository, opts).await;
        self.after(&registry, r)
    }

    async fn tags_if_changed(
        &self,
        repository: &DockerImageReference,
        opts: &PullOptions,
        etag: Option<&str>,
    ) -> Result<crate::importer::follow::TagsAnswer, ImportError> {
        let registry = self.before(repository).await;
        let r = self.inner.tags_if_changed(repository, opts, etag).await;
        self.after(&registry, r)
    }

    async fn referrers(
        &self,
        repository: &DockerImageReference,
        digest: &Digest,
        artifact_type: &str,
        opts: &PullOptions,
    ) -> Result<Option<Bytes>, ImportError> {
        let registry = self.before(repository).await;
        let r = self
            .inner
            .referrers(repository, digest, artifact_type, opts)
            .await;
        self.after(&registry, r)
    }

    async fn digest(
        &self,
        reference: &DockerImageReference,
        opts: &PullOptions,
    ) -> Result<Option<Digest>, ImportError> {
        let registry = self.before(reference).await;
        let r = self.inner.digest(reference, opts).await;
        self.after(&registry, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets(default_qps: f64, registry_qps: &[(&str, f64)]) -> Budgets {
        Budgets::new(BudgetConfig {
            default_qps,
            registry_qps: registry_qps
                .iter()
                .map(|(r, q)| (r.to_string(), *q))
                .collect(),
            default_pause: Duration::from_secs(60),
        })
    }

    #[test]
    fn registries_are_named_as_users_name_them() {
        let r = |s: &str| DockerImageReference::parse(s).unwrap();
        assert_eq!(Budgets::registry_of(&r("busybox")), "docker.io");
        assert_eq!(
            Budgets::registry_of(&r("index.docker.io/library/busybox")),
            "docker.io"
        );
        assert_eq!(
            Budgets::registry_of(&r("Quay.io/keycloak/keycloak:1")),
            "quay.io"
        );
        assert_eq!(
            Budgets::registry_of(&r("127.0.0.1:5000/a/b:1")),
            "127.0.0.1:5000"
        );
        let b = budgets(10.0, &[("quay.io", 2.0)]);
        assert_eq!(b.qps("QUAY.io"), 2.0);
        assert_eq!(b.qps("docker.io"), 10.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_spends_its_burst_then_paces_requests() {
        let b = budgets(10.0, &[("slow", 2.0)]);
        let start = Instant::now();
        // Two tokens saved up, then one every half second.
        for _ in 0..2 {
            assert_eq!(b.acquire("slow").await, Duration::ZERO);
        }
        b.acquire("slow").await;
        assert_eq!(start.elapsed(), Duration::from_millis(500));
        b.acquire("slow").await;
        assert_eq!(start.elapsed(), Duration::from_millis(1000));
        // Another registry has its own bucket.
        assert_eq!(b.acquire("other").await, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_waiters_are_served_in_order_at_the_rate() {
        let b = Arc::new(budgets(4.0, &[]));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let b = b.clone();
            tasks.push(tokio::spawn(async move {
                b.acquire("r").await;
                start.elapsed()
            }));
            tokio::task::yield_now().await;
        }
        let mut done = Vec::new();
        for t in tasks {
            done.push(t.await.unwrap());
        }
        // 4 at once, then 8 more at 4 per second: the last after 2 s.
        assert_eq!(done.iter().filter(|d| d.is_zero()).count(), 4);
        assert_eq!(*done.iter().max().unwrap(), Duration::from_secs(2));
        assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_the_registry_until_retry_after() {
        let b = budgets(0.0, &[]);
        assert_eq!(b.acquire("r").await, Duration::ZERO, "unlimited");
        b.pause("r", Some(Duration::from_secs(3)));
        assert!(b.paused_until("r").is_some());
        let start = Instant::now();
        b.acquire("r").await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        assert!(b.paused_until("r").is_none());
        // Other registries go on; a pause without Retry-After takes the default.
        assert_eq!(b.acquire("s").await, Duration::ZERO);
        b.pause("s", None);
        let start = Instant::now();
        b.acquire("s").await;
        assert_eq!(start.elapsed(), Duration::from_secs(60));
        // Retry-After: 0 still pauses for a second.
        b.pause("z", Some(Duration::ZERO));
        let start = Instant::now();
        b.acquire("z").await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        // A shorter pause does not cut a longer one short.
        b.pause("s", Some(Duration::from_secs(10)));
        b.pause("s", Some(Duration::from_secs(1)));
        let start = Instant::now();
        b.acquire("s").await;
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_during_a_reserved_wait_holds_the_request() {
        let b = Arc::new(budgets(1.0, &[]));
        b.acquire("r").await;
        let start = Instant::now();
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move {
                b.acquire("r").await;
                start.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        b.pause("r", Some(Duration::from_secs(5)));
        let waited = waiter.await.unwrap();
        assert!(waited >= Duration::from_millis(5100), "{waited:?}");
    }
}
