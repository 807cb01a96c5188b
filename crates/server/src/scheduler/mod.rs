//! The scheduler: keeps `importPolicy.scheduled` tags current. Every spec tag with a
//! DockerImage source and `scheduled: true` is checked once per
//! `--scheduled-import-interval` (±10%, spread over the interval by a hash of its
//! name; see [`plan`]). A check asks the registry for the tag's digest with a HEAD:
//! an unchanged digest makes no other request and writes nothing (the stream's
//! `resourceVersion` stays); a new one runs a full import through the importer (a new
//! history entry and an event). Failures set the tag's `ImportSuccess` condition
//! (history kept) and retry with exponential backoff capped at the interval. Requests
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
pub mod leader;
pub mod plan;
pub mod records;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use moor_api::image::history::{import_failure, needs_import};
use moor_api::image::{ImageStream, KIND_DOCKER_IMAGE, TagEvent, TagReference, reasons};
use moor_api::scheduled::{CheckResult, ScheduledImportStatus, record_key};
use moor_api::{Digest, DockerImageReference};
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

use crate::apiserver::error::ApiError;
use crate::apiserver::resource::{ListOptions, RequestContext, WatchEvent};
use crate::importer::{ImportError, ImportMetrics, Importer, PullOptions, Source, TagOutcome};
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
    /// The registries, for HEAD checks (their budget is taken before the slot).
    source: Arc<dyn Source>,
    store: Arc<dyn Store>,
    budgets: Arc<Budgets>,
    slots: Arc<Semaphore>,
    metrics: SchedulerMetrics,
    import_metrics: ImportMetrics,
    secrets: Mutex<HashMap<String, CachedSecrets>>,
}

/// The scheduled import controller. Build it with [`Scheduler::new`], then
/// [`run`](Scheduler::run) it behind a [`Leadership`].
pub struct Scheduler {
    shared: Arc<Shared>,
}

/// One check to make.
struct Job {
    key: TagKey,
    epoch: u64,
    due: i64,
    registry: String,
    tag: TagReference,
    current: Option<TagEvent>,
    last_digest: Option<String>,
    record_image: Option<String>,
    failed: bool,
}

/// What a check found.
enum Outcome {
    Unchanged {
        digest: String,
        image: String,
    },
    Updated {
        digest: Option<String>,
        image: String,
    },
    Failed(ImportError),
    RateLimited {
        until_ms: i64,
        message: String,
    },
    /// The tag changed or went away during the check.
    Skipped,
}

struct Done {
    key: TagKey,
    epoch: u64,
    started_ms: i64,
    outcome: Outcome,
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
        let budgeted = Importer {
            source: Arc::new(BudgetedSource {
                inner: source.clone(),
                budgets: budgets.clone(),
                throttle: true,
            }),
            streams: importer.streams.clone(),
            images: importer.images.clone(),
            events: importer.events.clone(),
            secrets: importer.secrets.clone(),
        };
        let interval_ms = (config.interval.as_millis() as i64).max(1);
        Scheduler {
            shared: Arc::new(Shared {
                slots: Arc::new(Semaphore::new(config.concurrency.max(1))),
                config,
                interval_ms,
                importer,
                budgeted,
                source,
                store,
                budgets,
                metrics: SchedulerMetrics::default(),
                import_metrics: ImportMetrics::default(),
                secrets: Mutex::new(HashMap::new()),
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
        let ctx = RequestContext::default();
        let list = shared
            .importer
            .streams
            .list(&ctx, None, &ListOptions::default())
            .await?;
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
        for v in &list.items {
            if let Ok(stream) = serde_json::from_value::<ImageStream>(v.clone()) {
                state.sync_stream(&stream, now, Some((&mut loaded, resume.as_ref())));
            }
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
        let opts = ListOptions {
            resource_version: Some(list.resource_version.clone()),
            ..Default::default()
        };
        let mut events = shared.importer.streams.watch(&ctx, None, &opts).await?;
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
                        WatchEvent::Added(v) | WatchEvent::Modified(v) => {
                            if let Ok(stream) = serde_json::from_value::<ImageStream>(v) {
                                state.sync_stream(&stream, now_ms(), None);
                                state.count_tags();
                            }
                        }
                        WatchEvent::Deleted(v) => {
                            let ns = v.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
                            let name = v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
                            state.remove_stream(ns, name, &HashSet::new());
                            state.count_tags();
                        }
                        WatchEvent::Bookmark(_) => {}
                        WatchEvent::Error(e) => return Err(ApiError::Gone(e.to_string())),
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

/// A tag the scheduler knows (scheduled now, or with a record from when it was).
struct Entry {
    spec: TagReference,
    registry: String,
    phase: i64,
    record: ScheduledImportStatus,
    /// When it is due, while queued.
    due: Option<i64>,
    in_flight: bool,
    /// Bumped when the source changes, so that a check of the old one is ignored.
    epoch: u64,
    /// The tag's newest history entry.
    current: Option<TagEvent>,
    /// A spec change is being imported by the import controller.
    pending: bool,
    /// The tag has a failed `ImportSuccess` condition.
    failed: bool,
}

struct State<'a> {
    shared: Arc<Shared>,
    writer: &'a RecordWriter,
    entries: BTreeMap<TagKey, Entry>,
    queue: BTreeSet<(i64, TagKey)>,
    tasks: JoinSet<Done>,
    /// When `moor_scheduled_tags` was last set, and whether it is stale.
    counted: Option<Instant>,
    count_pending: bool,
}

type Startup<'b> = (
    &'b mut HashMap<TagKey, ScheduledImportStatus>,
    Option<&'b plan::Resume>,
);

impl State<'_> {
    fn interval(&self) -> i64 {
        self.shared.interval_ms
    }

    /// Sets `moor_scheduled_tags`, at most once a second (a count walks every entry).
    fn count_tags(&mut self) {
        if self
            .counted
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            self.count_pending = true;
            return;
        }
        let active = self.entries.values().filter(|e| e.record.active).count();
        self.shared.metrics.tags.set(active as i64);
        self.counted = Some(Instant::now());
        self.count_pending = false;
    }

    fn schedule(&mut self, key: &TagKey, due: i64) {
        if let Some(e) = self.entries.get_mut(key) {
            if let Some(old) = e.due.take() {
                self.queue.remove(&(old, key.clone()));
            }
            e.due = Some(due);
            e.record.next_check_time = Some(timestamp(due));
            self.queue.insert((due, key.clone()));
        }
    }

    fn unqueue(&mut self, key: &TagKey) {
        if let Some(e) = self.entries.get_mut(key)
            && let Some(old) = e.due.take()
        {
            self.queue.remove(&(old, key.clone()));
        }
    }

    fn persist(&self, key: &TagKey) {
        if let Some(e) = self.entries.get(key) {
            self.writer.put(key.record_key(), &e.record);
        }
    }

    /// Brings the entries of `stream` in line with its spec and status.
    fn sync_stream(&mut self, stream: &ImageStream, now: i64, mut startup: Option<Startup<'_>>) {
        let ns = stream.metadata.namespace.clone().unwrap_or_default();
        let name = stream.metadata.name.clone().unwrap_or_default();
        let mut seen = HashSet::new();
        for tag in &stream.spec.tags {
            let key = TagKey::new(&ns, &name, &tag.name);
            seen.insert(tag.name.clone());
            let scheduled = is_scheduled(tag);
            let loaded = startup.as_mut().and_then(|(l, _)| l.remove(&key));
            let resume = startup.as_ref().and_then(|(_, c)| *c);
            let current = stream.latest_tagged_image(&tag.name).cloned();
            let pending = needs_import(stream, &tag.name);
            let failed = import_failure(stream, &tag.name).is_some();
            if !self.entries.contains_key(&key) {
                if !scheduled {
                    // Not scheduled; keep the record of when it was, for describe.
                    if let Some(record) = loaded {
                        let mut entry = self.new_entry(&key, tag, record);
                        entry.current = current;
                        if entry.record.active {
                            entry.record.active = false;
                            entry.record.next_check_time = None;
                            self.writer.put(key.record_key(), &entry.record);
                        }
                        self.entries.insert(key, entry);
                    }
                    continue;
                }
                let phase = plan::phase(&key.name(), self.interval());
                let (record, due, write) = match loaded {
                    Some(r) if r.active => {
                        let next = r.next_check_time.map(|t| t.as_millisecond());
                        let due = plan::resume(next, now, phase, self.interval(), resume);
                        (r, due, next != Some(due))
                    }
                    Some(r) => (r, plan::first_slot(now, phase, self.interval()), true),
                    None => (
                        ScheduledImportStatus::default(),
                        plan::first_slot(now, phase, self.interval()),
                        true,
                    ),
                };
                let mut entry = self.new_entry(&key, tag, record);
                let write = write || !entry.record.active;
                entry.record.active = true;
                entry.current = current;
                entry.pending = pending;
                entry.failed = failed;
                self.entries.insert(key.clone(), entry);
                self.schedule(&key, due);
                if write {
                    self.persist(&key);
                }
                continue;
            }
            let interval = self.interval();
            let mut write = false;
            let mut reschedule = None;
            let mut unqueue = false;
            if let Some(e) = self.entries.get_mut(&key) {
                e.current = current;
                e.pending = pending;
                e.failed = failed;
                if e.spec.from != tag.from || e.spec.import_policy != tag.import_policy {
                    e.epoch += 1;
                }
                e.spec = tag.clone();
                // The record keeps the registry source it was scheduled from, so that
                // describe can say how to resume a rolled-back tag.
                if scheduled && e.record.from != tag.from_name() {
                    e.record.from = tag.from_name().to_string();
                    e.registry = registry_of(tag);
                    e.record.registry = e.registry.clone();
                    write = true;
                }
                match (scheduled, e.record.active) {
                    (true, false) => {
                        // Scheduled again (`moor tag SRC DEST --scheduled`).
                        e.record.active = true;
                        e.epoch += 1;
                        reschedule = Some(plan::first_slot(now, e.phase, interval));
                        write = true;
                    }
                    (false, true) => {
                        // Rolled back or tagged without --scheduled: no more checks.
                        e.record.active = false;
                        e.record.next_check_time = None;
                        e.epoch += 1;
                        unqueue = true;
                        write = true;
                    }
                    _ => {}
                }
            }
            if unqueue {
                self.unqueue(&key);
            }
            if let Some(due) = reschedule
                && !self.entries.get(&key).is_some_and(|e| e.in_flight)
            {
                self.schedule(&key, due);
            }
            if write {
                self.persist(&key);
            }
        }
        self.remove_stream(&ns, &name, &seen);
    }

    fn new_entry(
        &self,
        key: &TagKey,
        tag: &TagReference,
        mut record: ScheduledImportStatus,
    ) -> Entry {
        let registry = registry_of(tag);
        record.image_stream = key.stream.clone();
        record.tag = key.tag.clone();
        if is_scheduled(tag) || record.from.is_empty() {
            record.from = tag.from_name().to_string();
            record.registry = registry.clone();
        }
        Entry {
            spec: tag.clone(),
            registry,
            phase: plan::phase(&key.name(), self.interval()),
            record,
            due: None,
            in_flight: false,
            epoch: 0,
            current: None,
            pending: false,
            failed: false,
        }
    }

    /// Forgets the tags of `ns/name` not in `keep`, and deletes their records.
    fn remove_stream(&mut self, ns: &str, name: &str, keep: &HashSet<String>) {
        let start = TagKey::new(ns, name, "");
        let gone: Vec<TagKey> = self
            .entries
            .range(start..)
            .take_while(|(k, _)| k.namespace == ns && k.stream == name)
            .filter(|(k, _)| !keep.contains(&k.tag))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.unqueue(&key);
            self.entries.remove(&key);
            self.writer.delete(key.record_key());
        }
    }

    /// Starts the checks that are due.
    fn dispatch_due(&mut self) {
        let now = now_ms();
        while let Some((due, key)) = self.queue.first().cloned() {
            if due > now {
                break;
            }
            self.queue.pop_first();
            let interval = self.interval();
            let Some(e) = self.entries.get_mut(&key) else {
                continue;
            };
            e.due = None;
            if e.pending {
                // The import controller is importing a spec change of this tag now.
                let next = plan::next_after(now, e.phase, interval);
                self.schedule(&key, next);
                self.persist(&key);
                continue;
            }
            e.in_flight = true;
            let job = Job {
                key: key.clone(),
                epoch: e.epoch,
                due,
                registry: e.registry.clone(),
                tag: e.spec.clone(),
                current: e.current.clone(),
                last_digest: e.record.last_digest.clone(),
                record_image: e.record.image.clone(),
                failed: e.failed,
            };
            self.shared.metrics.queue_depth.inc();
            self.tasks.spawn(check(self.shared.clone(), job));
        }
    }

    /// Records a finished check and schedules the next.
    fn finish(&mut self, done: Done) {
        let interval = self.interval();
        let backoff = self.shared.config.failure_backoff.as_millis() as i64;
        let now = now_ms();
        let Some(e) = self.entries.get_mut(&done.key) else {
            return;
        };
        e.in_flight = false;
        if !e.record.active {
            return;
        }
        if e.epoch != done.epoch || matches!(done.outcome, Outcome::Skipped) {
            let next = plan::next_after(done.started_ms.min(now), e.phase, interval);
            self.schedule(&done.key, next);
            self.persist(&done.key);
            return;
        }
        let r = &mut e.record;
        r.last_check_time = Some(timestamp(done.started_ms));
        let (result, due) = match done.outcome {
            Outcome::Unchanged { digest, image } => {
                r.last_digest = Some(digest);
                r.image = Some(image);
                r.consecutive_failures = 0;
                r.message = None;
                (
                    CheckResult::Unchanged,
                    plan::next_after(done.started_ms, e.phase, interval),
                )
            }
            Outcome::Updated { digest, image } => {
                r.last_digest = digest;
                r.image = Some(image);
                r.consecutive_failures = 0;
                r.message = None;
                (
                    CheckResult::Updated,
                    plan::next_after(done.started_ms, e.phase, interval),
                )
            }
            Outcome::Failed(err) => {
                r.consecutive_failures += 1;
                r.message = Some(format!("{}: {}", err.reason(), err.message()));
                let retry_after = err.retry_after().map_or(0, |d| d.as_millis() as i64);
                let delay =
                    plan::retry_delay(r.consecutive_failures, backoff, interval, retry_after);
                (CheckResult::Failed, done.started_ms + delay)
            }
            Outcome::RateLimited { until_ms, message } => {
                r.message = Some(message);
                (CheckResult::RateLimited, until_ms.max(now))
            }
            Outcome::Skipped => unreachable!("handled above"),
        };
        r.last_check_result = Some(result);
        self.shared
            .metrics
            .checks
            .get_or_create(&CheckLabels {
                registry: e.registry.clone(),
                result: result_label(result).to_string(),
            })
            .inc();
        self.schedule(&done.key, due);
        self.persist(&done.key);
    }
}

/// One check: the registry's budget, a slot, then HEAD (and an import if needed).
async fn check(shared: Arc<Shared>, job: Job) -> Done {
    shared.budgets.acquire(&job.registry).await;
    let _slot = shared.slots.clone().acquire_owned().await.ok();
    shared.metrics.queue_depth.dec();
    let started_ms = now_ms();
    shared
        .metrics
        .lag
        .observe((started_ms - job.due).max(0) as f64 / 1000.0);
    let t0 = Instant::now();
    let outcome = shared.run_check(&job).await;
    shared
        .metrics
        .check_duration
        .observe(t0.elapsed().as_secs_f64());
    Done {
        key: job.key,
        epoch: job.epoch,
        started_ms,
        outcome,
    }
}

impl Shared {
    async fn pull_secrets(&self, ns: &str) -> Arc<Vec<Bytes>> {
        let cached = self
            .secrets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(ns)
            .filter(|(at, _)| at.elapsed() < SECRETS_TTL)
            .map(|(_, s)| s.clone());
        if let Some(s) = cached {
            return s;
        }
        let s = self.importer.pull_secrets(ns).await;
        self.secrets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ns.to_string(), (Instant::now(), s.clone()));
        s
    }

    async fn run_check(&self, job: &Job) -> Outcome {
        let secrets = self.pull_secrets(&job.key.namespace).await;
        let spec = match Importer::spec_for(
            &job.tag,
            PullOptions {
                insecure: false,
                secrets: secrets.clone(),
            },
        ) {
            Ok(s) => s,
            Err(e) => return self.failed(job, e).await,
        };
        let Some(from) = spec.from.as_ref() else {
            return self
                .failed(job, ImportError::invalid("no image reference to import"))
                .await;
        };
        let digest = match self.source.digest(from, &spec.pull).await {
            Ok(d) => d,
            Err(e) => return self.failed(job, e).await,
        };
        if let (Some(d), Some(current)) = (&digest, &job.current)
            && unchanged(job, d, current)
        {
            if job.failed
                && let Err(e) = self
                    .importer
                    .write_scheduled(&job.key.namespace, &job.key.stream, &job.key.tag, None)
                    .await
            {
                tracing::warn!(tag = %job.key.name(), error = %e, "clearing the import failure failed");
            }
            return Outcome::Unchanged {
                digest: d.to_string(),
                image: current.image.clone(),
            };
        }
        self.import(job, digest, &secrets).await
    }

    /// The full import, after the digest changed (or could not be told).
    async fn import(
        &self,
        job: &Job,
        digest: Option<Digest>,
        secrets: &Arc<Vec<Bytes>>,
    ) -> Outcome {
        let (ns, name, tag) = (&job.key.namespace, &job.key.stream, &job.key.tag);
        let ctx = RequestContext::default();
        let stream: ImageStream = match self.importer.streams.get(&ctx, Some(ns), name).await {
            Ok(v) => match serde_json::from_value(v) {
                Ok(s) => s,
                Err(e) => return Outcome::Failed(ImportError::internal("", e)),
            },
            Err(ApiError::NotFound { .. }) => return Outcome::Skipped,
            Err(e) => {
                return Outcome::Failed(ImportError::internal("", e));
            }
        };
        let Some(spec) = stream
            .spec_tag(tag)
            .filter(|t| is_scheduled(t) && t.from == job.tag.from)
            .cloned()
        else {
            return Outcome::Skipped;
        };
        let t0 = Instant::now();
        let outcome = self.budgeted.resolve_tag(&stream, &spec, secrets).await;
        self.import_metrics.observe("scheduled", t0.elapsed());
        match &outcome {
            TagOutcome::Imported { event, .. } => {
                let image = event.image.clone();
                match self
                    .importer
                    .write_scheduled(ns, name, tag, Some(&outcome))
                    .await
                {
                    Ok(changed) => {
                        if changed {
                            tracing::info!(tag = %job.key.name(), %image, "scheduled import: new image");
                        }
                        Outcome::Updated {
                            digest: digest.map(|d| d.to_string()),
                            image,
                        }
                    }
                    Err(e) => Outcome::Failed(ImportError::internal("recording the import", e)),
                }
            }
            TagOutcome::Failed(e) => self.failed(job, e.clone()).await,
        }
    }

    /// A failed check: a 429 pauses the registry; anything else sets the condition.
    async fn failed(&self, job: &Job, e: ImportError) -> Outcome {
        if e.reason() == reasons::TOO_MANY_REQUESTS {
            let until = self
                .budgets
                .paused_until(&job.registry)
                .unwrap_or_else(|| self.budgets.pause(&job.registry, e.retry_after()));
            let until_ms =
                now_ms() + until.saturating_duration_since(Instant::now()).as_millis() as i64;
            return Outcome::RateLimited {
                until_ms,
                message: format!("{}: {}", e.reason(), e.message()),
            };
        }
        let (ns, name, tag) = (&job.key.namespace, &job.key.stream, &job.key.tag);
        if let Err(err) = self
            .importer
            .write_scheduled(ns, name, tag, Some(&TagOutcome::Failed(e.clone())))
            .await
        {
            tracing::warn!(tag = %job.key.name(), error = %err, "recording a failed check failed");
        }
        tracing::info!(tag = %job.key.name(), reason = %e.reason(), error = %e.message(), "scheduled check failed");
        Outcome::Failed(e)
    }
}

/// Whether the digest the registry announced is what the tag already has: its current
/// image, or the digest seen last time while the tag still has the image it had then
/// (a manifest list imported in Legacy mode has a child as its image).
fn unchanged(job: &Job, digest: &Digest, current: &TagEvent) -> bool {
    let d = digest.as_str();
    current.image == d
        || (job.last_digest.as_deref() == Some(d)
            && job.record_image.as_deref() == Some(current.image.as_str()))
}
