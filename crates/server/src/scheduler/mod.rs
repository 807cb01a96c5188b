//! The scheduler: keeps `importPolicy.scheduled` tags current. Every spec tag with a
//! DockerImage source and `scheduled: true` is checked once per
//! `--scheduled-import-interval` (±10%, spread over the interval by a hash of its
//! name, or, for a tag that follows a range, of its repository's, so that one list
//! read serves all the tags that follow it; see [`plan`] and [`follow`]). A check asks the registry for the tag's digest with a HEAD:
//! an unchanged digest makes no other request and writes nothing (the stream's
//! `resourceVersion` stays); a new one runs a full import through the importer (a new
//! history entry and an event). Failures set the tag's `ImportSuccess` condition
//! (history kept); transient ones retry with exponential backoff capped at the
//! interval, definite answers (not found, unauthorized) at the next slot. Failed tags
//! are checked within seconds of a start, and those of a namespace whose pull secret
//! is created or changed at once. Requests
//! spend per-registry budgets, a 429 pauses its registry until `Retry-After`
//! ([`budget`]), and at most `concurrency` checks run at once. Tags whose source is not
//! a registry (a rollback to an ImageStreamImage) are not scheduled.
//!
//! Each tag's last check, digest and next check are kept in a record of its own in
//! the store (`/moor/scheduler/<ns>/<stream>/<tag>`, [`records`]), never on the
//! stream; a restart resumes from the records without re-checking everything at once
//! and without skipping an interval. The scheduler works only while its process leads
//! ([`leader`]). May call the importer (its [`Source`] port and storages), the store
//! (its records only), tokio and prometheus-client.

pub mod budget;
mod check;
pub mod fetches;
pub mod follow;
pub mod leader;
pub mod plan;
mod queue;
pub mod records;
mod writes;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use moor_api::DockerImageReference;
use moor_api::image::{KIND_DOCKER_IMAGE, TagReference};
use moor_api::scheduled::{CheckResult, record_key};
use moor_store::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use budget::{BudgetConfig, BudgetedSource, Budgets};
pub use leader::{AlwaysLeader, Leadership, ManualLeadership};

use crate::catalog::{StreamEvent, StreamStore};
use crate::importer::{ImportMetrics, Importer, Source};
use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::WatchEvent;
use moor_apimachinery::stored::{LARGE_OBJECT_BYTES, cpu_bound_if};
use queue::State;
use records::RecordWriter;

/// How long a namespace's pull secrets are reused between checks.
const SECRETS_TTL: Duration = Duration::from_secs(10);

/// A scheduled tag: namespace, stream and tag.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TagKey {
    pub namespace: String,
    pub stream: String,
    pub tag: String,
}

impl TagKey {
    /// The key of `namespace/stream:tag`.
    pub fn new(namespace: &str, stream: &str, tag: &str) -> Self {
        TagKey {
            namespace: namespace.to_string(),
            stream: stream.to_string(),
            tag: tag.to_string(),
        }
    }

    /// The store key of its record.
    pub fn record_key(&self) -> String {
        record_key(&self.namespace, &self.stream, &self.tag)
    }

    /// `namespace/stream:tag`, what its phase is hashed from.
    pub fn name(&self) -> String {
        format!("{}/{}:{}", self.namespace, self.stream, self.tag)
    }
}

/// How the scheduler runs.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// `--scheduled-import-interval`: how often each scheduled tag is checked.
    pub interval: Duration,
    /// `--scheduled-import-concurrency`: checks in flight at most, all registries.
    pub concurrency: usize,
    /// The first retry delay after a failed check (doubling up to the interval).
    pub failure_backoff: Duration,
    /// Concurrent record writes.
    pub record_writers: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            interval: Duration::from_secs(15 * 60),
            concurrency: 16,
            failure_backoff: Duration::from_secs(1),
            record_writers: 8,
        }
    }
}

/// Labels of `moor_scheduled_checks_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    pub registry: String,
    /// `unchanged`, `updated`, `failed` or `rate_limited`.
    pub result: String,
}

/// The scheduler's metrics.
#[derive(Clone, Debug)]
pub struct SchedulerMetrics {
    /// `moor_scheduled_checks_total{registry,result}`.
    pub checks: Family<CheckLabels, Counter>,
    /// `moor_scheduled_check_duration_seconds`: one check, HEAD and any import.
    pub check_duration: Histogram,
    /// `moor_scheduled_check_lag_seconds`: how late a check started after it was due.
    pub lag: Histogram,
    /// `moor_scheduled_queue_depth`: checks due and waiting for their budget or a slot.
    pub queue_depth: Gauge,
    /// `moor_scheduled_tags`: tags scheduled now.
    pub tags: Gauge,
}

impl Default for SchedulerMetrics {
    fn default() -> Self {
        SchedulerMetrics {
            checks: Family::default(),
            check_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            lag: Histogram::new(exponential_buckets(0.001, 2.0, 22)),
            queue_depth: Gauge::default(),
            tags: Gauge::default(),
        }
    }
}

fn result_label(r: CheckResult) -> &'static str {
    match r {
        CheckResult::Unchanged => "unchanged",
        CheckResult::Updated => "updated",
        CheckResult::Failed => "failed",
        CheckResult::RateLimited => "rate_limited",
    }
}

/// Wall-clock milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn timestamp(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap_or_else(|_| jiff::Timestamp::now())
}

/// Whether a spec tag is scheduled: `scheduled: true` on a registry source that is
/// imported (not `reference`). A rolled-back tag (an ImageStreamImage source) is not.
pub fn is_scheduled(tag: &TagReference) -> bool {
    tag.import_policy.scheduled && tag.from_kind() == KIND_DOCKER_IMAGE && !tag.reference
}

fn registry_of(tag: &TagReference) -> String {
    DockerImageReference::parse(tag.from_name())
        .map(|r| Budgets::registry_of(&r))
        .unwrap_or_default()
}

/// A namespace's pull secrets and when they were read.
type CachedSecrets = (Instant, Arc<Vec<Bytes>>);

struct Shared {
    config: SchedulerConfig,
    interval_ms: i64,
    /// The API server's importer: storages and pull secrets.
    importer: Arc<Importer>,
    /// The same storages, reading registries through the budgets (full imports).
    budgeted: Importer,
    /// The same, sharing the fetches of one image among the imports of the tags that
    /// follow its repository ([`fetches`]).
    followers: Importer,
    /// The registries, for HEAD checks (their budget is taken before the slot).
    source: Arc<dyn Source>,
    store: Arc<dyn Store>,
    budgets: Arc<Budgets>,
    slots: Arc<Semaphore>,
    metrics: SchedulerMetrics,
    import_metrics: ImportMetrics,
    secrets: Mutex<HashMap<String, CachedSecrets>>,
    /// Tag lists read for followed tags.
    tag_lists: follow::TagLists,
    /// Checks' outcomes waiting for their stream's write (tag, outcome).
    writes: writes::StreamWrites<(String, Option<crate::importer::TagOutcome>)>,
}

/// The scheduled import controller. Build it with [`Scheduler::new`], then
/// [`run`](Scheduler::run) it behind a [`Leadership`].
pub struct Scheduler {
    shared: Arc<Shared>,
}

impl Scheduler {
    /// A scheduler over the API server's `importer` (its storages), checking
    /// registries through `source` and spending `budgets`, keeping records in `store`.
    pub fn new(
        importer: Arc<Importer>,
        source: Arc<dyn Source>,
        store: Arc<dyn Store>,
        budgets: Arc<Budgets>,
        config: SchedulerConfig,
    ) -> Self {
        let budgeted_source: Arc<dyn Source> = Arc::new(BudgetedSource {
            inner: source.clone(),
            budgets: budgets.clone(),
            throttle: true,
        });
        let budgeted = importer.with_source(budgeted_source.clone());
        let followers = importer.with_source(Arc::new(fetches::SharedFetches::new(
            budgeted_source,
            fetches::reuse_for(config.interval),
        )));
        let interval_ms = (config.interval.as_millis() as i64).max(1);
        Scheduler {
            shared: Arc::new(Shared {
                slots: Arc::new(Semaphore::new(config.concurrency.max(1))),
                config,
                interval_ms,
                importer,
                budgeted,
                followers,
                source,
                store,
                budgets,
                metrics: SchedulerMetrics::default(),
                import_metrics: ImportMetrics::default(),
                secrets: Mutex::new(HashMap::new()),
                tag_lists: follow::TagLists::default(),
                writes: writes::StreamWrites::default(),
            }),
        }
    }

    /// Records import durations in `metrics` (shared with the import controller).
    pub fn with_import_metrics(mut self, metrics: ImportMetrics) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.import_metrics = metrics;
        }
        self
    }

    /// The scheduler's metrics.
    pub fn metrics(&self) -> &SchedulerMetrics {
        &self.shared.metrics
    }

    /// Registers the scheduler's and the budgets' metric families with `metrics`.
    pub fn register_metrics(&self, metrics: &crate::metrics::Metrics) {
        let m = &self.shared.metrics;
        metrics.register(
            "scheduled_checks",
            "Scheduled checks of tags, by registry and result",
            m.checks.clone(),
        );
        metrics.register(
            "scheduled_check_duration_seconds",
            "Time of one scheduled check (HEAD, and the import when the digest changed)",
            m.check_duration.clone(),
        );
        metrics.register(
            "scheduled_check_lag_seconds",
            "How late scheduled checks started after they were due",
            m.lag.clone(),
        );
        metrics.register(
            "scheduled_queue_depth",
            "Scheduled checks due and waiting for their registry budget or a slot",
            m.queue_depth.clone(),
        );
        metrics.register("scheduled_tags", "Tags scheduled now", m.tags.clone());
        metrics.register(
            "scheduled_budget_wait_seconds",
            "Time requests waited for their registry's budget (token bucket or 429 pause)",
            self.shared.budgets.wait.clone(),
        );
        metrics.register(
            "scheduled_rate_limited",
            "429 answers that paused a registry",
            self.shared.budgets.rate_limited.clone(),
        );
    }

    /// Runs forever: while `leadership` says this process leads, loads the records,
    /// watches the streams and checks what is due; when leadership is lost, drops the
    /// checks in flight and waits to lead again.
    pub async fn run(self, leadership: Arc<dyn Leadership>) {
        let writer =
            RecordWriter::new(self.shared.store.clone(), self.shared.config.record_writers);
        let mut rx = leadership.subscribe();
        loop {
            while !*rx.borrow_and_update() {
                if rx.changed().await.is_err() {
                    return;
                }
            }
            tracing::info!("scheduler: leading");
            let lost = async {
                loop {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    if !*rx.borrow_and_update() {
                        return;
                    }
                }
            };
            tokio::select! {
                r = self.lead(&writer) => {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "scheduler restarts its watch");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                _ = lost => tracing::info!("scheduler: leadership lost; checks stop"),
            }
            self.shared.metrics.queue_depth.set(0);
        }
    }

    async fn lead(&self, writer: &RecordWriter) -> Result<(), ApiError> {
        let shared = &self.shared;
        writer.flushed().await;
        let mut loaded = records::load(shared.store.as_ref()).await?;
        let list = shared.importer.list_streams().await?;
        let now = now_ms();
        let oldest = loaded
            .values()
            .filter(|r| r.active)
            .filter_map(|r| r.next_check_time)
            .map(|t| t.as_millisecond())
            .filter(|n| *n < now)
            .min();
        let last_check = loaded
            .values()
            .filter_map(|r| r.last_check_time)
            .map(|t| t.as_millisecond())
            .max();
        let resume = oldest.map(|o| plan::Resume::new(o, last_check, now, shared.interval_ms));
        let mut state = State {
            shared: shared.clone(),
            writer,
            entries: BTreeMap::new(),
            queue: BTreeSet::new(),
            tasks: JoinSet::new(),
            counted: None,
            count_pending: false,
        };
        for stream in &list.streams {
            state.sync_stream(stream, now, Some((&mut loaded, resume.as_ref())));
        }
        // Records of streams or tags that are gone.
        for key in loaded.keys() {
            writer.delete(key.record_key());
        }
        state.count_tags();
        tracing::info!(
            tags = state.entries.values().filter(|e| e.record.active).count(),
            overdue_since_ms = oldest.map(|o| now - o),
            "scheduler: resumed"
        );
        let mut events = shared
            .importer
            .watch_streams(&list.resource_version)
            .await?;
        // A pull secret created or changed may fix the failed tags of its namespace.
        let mut secrets = shared
            .importer
            .watch_secrets(&list.resource_version)
            .await?;
        loop {
            let sleep = match state.queue.first() {
                Some((due, _)) => Duration::from_millis((*due - now_ms()).max(0) as u64),
                None => Duration::from_secs(3600),
            };
            let sleep = if state.count_pending {
                sleep.min(Duration::from_secs(1))
            } else {
                sleep
            };
            tokio::select! {
                biased;
                Some(done) = state.tasks.join_next(), if !state.tasks.is_empty() => {
                    match done {
                        Ok(done) => state.finish(done),
                        Err(e) if e.is_panic() => tracing::error!(error = %e, "a scheduled check panicked"),
                        Err(_) => {}
                    }
                }
                ev = events.next() => {
                    let Some(ev) = ev else { return Ok(()) };
                    match ev {
                        Ok(StreamEvent::Changed(stored)) => {
                            // A large stream is decoded and synced off the async
                            // workers, straight from its bytes.
                            let large = stored.bytes.len() > LARGE_OBJECT_BYTES;
                            if let Ok(stream) = stored.decode() {
                                cpu_bound_if(large, || {
                                    state.sync_stream(&stream, now_ms(), None);
                                    state.count_tags();
                                });
                            }
                        }
                        Ok(StreamEvent::Deleted { namespace, name }) => {
                            state.remove_stream(&namespace, &name, &HashSet::new());
                            state.count_tags();
                        }
                        Err(e) => return Err(e),
                    }
                }
                ev = secrets.next() => {
                    let Some(ev) = ev else { return Ok(()) };
                    if let WatchEvent::Added(v) | WatchEvent::Modified(v) = ev
                        && let Some(ns) = v.pointer("/metadata/namespace").and_then(Value::as_str)
                    {
                        shared.secrets.lock().unwrap_or_else(|e| e.into_inner()).remove(ns);
                        state.retry_failed_now(ns, now_ms());
                    }
                }
                _ = tokio::time::sleep(sleep) => {
                    state.dispatch_due();
                    if state.count_pending {
                        state.count_tags();
                    }
                }
            }
        }
    }
}
