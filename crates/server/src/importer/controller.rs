//! The import controller: watches image streams and, for every spec tag whose
//! generation is newer than its history has observed (or whose source stream moved,
//! for tracking tags), imports or resolves it. A failed import of a tag that is not
//! scheduled is retried with exponential backoff from 1 s to 10 min, a bounded number
//! of times (OpenShift never retries these), when the failure is transient; a definite
//! answer (not found, unauthorized) waits for a pull secret or the spec to change. One
//! that failed before this process started is retried at once, and so is every failed
//! one of a namespace whose pull secret is created or changed. The reconciler returns its next action
//! and queues the tags it found due; imports run as tasks of their own, taken from a
//! [`FairQueue`] (round robin across namespaces, bounded overall and per registry), so
//! that a hanging registry delays no other. A stream's finished imports are written in
//! one status write once none of its imports still runs, or after [`WRITE_LINGER`],
//! and no sooner after its previous write than [`WRITE_PACE`] times what that took.
//! Deleting a stream cancels its queued and running imports.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use moor_api::DockerImageReference;
use moor_api::image::history::TagIndex;
use moor_api::image::{
    ImageStream, KIND_DOCKER_IMAGE, KIND_IMAGE_STREAM_IMAGE, KIND_IMAGE_STREAM_TAG, TagReference,
    reasons,
};
use serde_json::Value;
use tokio::sync::OnceCell;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;
use tracing::Instrument;

use super::queue::{FairQueue, ImportLimits};
use super::{Importer, TagOutcome};
use crate::catalog::{StreamEvent, StreamStore};
use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::{ListOptions, RequestContext, WatchEvent};
use moor_apimachinery::stored::{cpu_bound_if, is_large};

/// Retry policy of failed imports.
#[derive(Clone, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// Retries after the first failure; then the tag waits for a spec change.
    pub max_retries: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(600),
            max_retries: 12,
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (1-based), honouring Retry-After.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        exp.min(self.max).max(retry_after.unwrap_or_default())
    }
}

/// What the reconciler wants next for a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do until the stream changes.
    Await,
    /// Look again after this long (a retry is due).
    Requeue(Duration),
}

type Key = (String, String);

#[derive(Clone, Debug)]
struct Retry {
    attempts: u32,
    /// The spec generation the failures were for; a new generation starts over.
    generation: i64,
    due: Instant,
    /// The last failure was a definite answer (not found, unauthorized): no retry
    /// until a pull secret of the namespace changes or the spec does.
    parked: bool,
}

impl Retry {
    /// Whether a retry is booked (due at [`due`](Self::due)).
    fn pending(&self, max_retries: u32) -> bool {
        !self.parked && self.attempts <= max_retries
    }
}

/// How long finished imports of a stream wait for its other imports before they are
/// written anyway: one status write carries many tags, and none waits for a tag whose
/// registry hangs.
pub const WRITE_LINGER: Duration = Duration::from_millis(250);

/// A stream's next status write waits this many times as long as its previous one
/// took, so that the status writes of a large stream (each re-encodes all its tags)
/// take at most about a fifth of the time, and other writers of the stream (a
/// user's patch) are not raced back to back; at most [`WRITE_PACE_MAX`].
pub const WRITE_PACE: u32 = 4;
/// The longest wait [`WRITE_PACE`] imposes.
pub const WRITE_PACE_MAX: Duration = Duration::from_secs(5);

/// Status writes in flight at most (each reads, decodes and re-encodes its stream);
/// the others wait with only their outcomes, so a burst of created streams whose
/// reference tags resolve at once does not hold thousands of decoded streams.
pub const MAX_STATUS_WRITES: usize = 32;

/// When a stream's outcomes are due to be written: once none of its imports still
/// runs (`unfinished == 0`), or [`WRITE_LINGER`] after the first of them finished,
/// but not before `paced_until` (see [`WRITE_PACE`]).
fn write_due(
    now: Instant,
    first_done: Instant,
    unfinished: usize,
    paced_until: Option<Instant>,
) -> Instant {
    let due = if unfinished > 0 {
        first_done + WRITE_LINGER
    } else {
        now
    };
    paced_until.map_or(due, |p| due.max(p))
}

/// A tag import waiting for its turn.
struct Job {
    key: Key,
    /// Boxed: a queued job is a few words, not a whole tag (a burst queues tens of
    /// thousands).
    tag: Box<TagReference>,
    /// The stream as the reconcile saw it, shared with the controller's state, for
    /// tags whose source is an image stream (they may read it); for the others its
    /// name and namespace only, so that queued imports do not keep old versions of a
    /// large stream alive.
    stream: Arc<ImageStream>,
    /// The namespace's pull secrets, read once by the first job of a reconcile.
    secrets: Arc<OnceCell<Arc<Vec<Bytes>>>>,
}

/// A finished tag import.
struct Finished {
    tag: String,
    generation: i64,
    outcome: TagOutcome,
}

/// A running import task.
struct Running {
    key: Key,
    tag: String,
    registry: String,
    /// The [`StreamWork::id`] it belongs to (a stream deleted and created again has a
    /// new one).
    work: u64,
}

/// What a stream has queued, running or waiting to be written.
struct StreamWork {
    id: u64,
    /// Tags queued, running, or finished and not yet written, with the spec generation
    /// being imported. The reconciler leaves these alone.
    tags: HashMap<String, i64>,
    /// Running imports, to abort when the stream goes.
    running: HashMap<String, AbortHandle>,
    /// Tags queued or running.
    unfinished: usize,
    /// Outcomes waiting for the stream's next status write.
    done: Vec<(String, TagOutcome)>,
    /// When the oldest outcome in `done` finished.
    first_done: Option<Instant>,
    /// A status write of this stream is in flight.
    writing: bool,
}

impl StreamWork {
    fn idle(&self) -> bool {
        self.tags.is_empty() && self.done.is_empty() && !self.writing
    }
}

/// Streams due for a reconcile, earliest first (one entry per stream).
#[derive(Default)]
struct DueQueue {
    at: HashMap<Key, Instant>,
    order: BTreeSet<(Instant, Key)>,
}

impl DueQueue {
    fn schedule(&mut self, key: Key, at: Instant) {
        if let Some(old) = self.at.insert(key.clone(), at) {
            self.order.remove(&(old, key.clone()));
        }
        self.order.insert((at, key));
    }

    fn remove(&mut self, key: &Key) {
        if let Some(old) = self.at.remove(key) {
            self.order.remove(&(old, key.clone()));
        }
    }

    fn next(&self) -> Option<Instant> {
        self.order.first().map(|(t, _)| *t)
    }

    fn pop_ready(&mut self, now: Instant) -> Vec<Key> {
        let mut ready = Vec::new();
        while let Some((t, _)) = self.order.first()
            && *t <= now
        {
            if let Some((_, k)) = self.order.pop_first() {
                self.at.remove(&k);
                ready.push(k);
            }
        }
        ready
    }
}

/// A finished status write: the stream, the tags it carried, the stream written, and
/// how long the write took.
type Written = (Key, Vec<String>, Result<Value, ApiError>, Duration);

/// What the controller reads of a spec tag when one of its imports finishes.
#[derive(Clone, Copy, Debug)]
struct SpecTag {
    generation: i64,
    scheduled: bool,
}

/// Spec tags up to which a stream's tags are looked up by a scan instead of an index
/// (an index per small stream cost 5 MiB for 10,000 streams of 5 tags).
const INDEXED_SPEC_TAGS: usize = 32;

/// What the controller reads of `tag`.
fn spec_tag_of(tag: &TagReference) -> SpecTag {
    SpecTag {
        generation: tag.generation.unwrap_or(0),
        scheduled: tag.import_policy.scheduled,
    }
}

/// The spec tags of `stream` by name (the first of a name, as `spec_tag` finds it).
fn spec_index(stream: &ImageStream) -> HashMap<String, SpecTag> {
    stream
        .spec
        .tags
        .iter()
        .rev()
        .map(|t| (t.name.clone(), spec_tag_of(t)))
        .collect()
}

/// Spec tags beyond which a stream's reconcile runs off the async workers
/// ([`moor_apimachinery::stored::cpu_bound`]), as its watch events are decoded there.
const LARGE_STREAM_TAGS: usize = 500;

/// The state of one list-and-watch run of the controller loop.
#[derive(Default)]
struct State {
    /// Shared with the queued imports of tracking tags (no copy per reconcile).
    streams: HashMap<Key, Arc<ImageStream>>,
    /// The spec tags by name of each of `streams` that has more than
    /// [`INDEXED_SPEC_TAGS`]: each finished import looks its tag up, and a stream may
    /// have thousands.
    spec: HashMap<Key, HashMap<String, SpecTag>>,
    due: DueQueue,
    imports: JoinSet<Finished>,
    running: HashMap<tokio::task::Id, Running>,
    writes: JoinSet<Written>,
    writing: HashMap<tokio::task::Id, Key>,
    /// When streams' lingering outcomes are to be written.
    lingers: BTreeSet<(Instant, Key)>,
    /// The streams with a tag from an ImageStreamTag of stream `(namespace, name)` in
    /// their own namespace: they look again when it changes (without a scan of every
    /// stream per change).
    trackers: HashMap<Key, BTreeSet<Key>>,
}

/// The streams of its own namespace whose ImageStreamTags `stream` has tags from.
fn tracked_sources(key: &Key, stream: &ImageStream) -> BTreeSet<Key> {
    stream
        .spec
        .tags
        .iter()
        .filter(|t| t.from_kind() == KIND_IMAGE_STREAM_TAG)
        .filter_map(|t| t.from_name().split(':').next())
        .map(|source| (key.0.clone(), source.to_string()))
        .collect()
}

impl State {
    /// Replaces what `key` is recorded to track by `sources`.
    fn track(&mut self, key: &Key, old: BTreeSet<Key>, sources: BTreeSet<Key>) {
        for gone in old.difference(&sources) {
            if let Some(set) = self.trackers.get_mut(gone) {
                set.remove(key);
                if set.is_empty() {
                    self.trackers.remove(gone);
                }
            }
        }
        for added in sources.difference(&old) {
            self.trackers
                .entry(added.clone())
                .or_default()
                .insert(key.clone());
        }
    }

    /// The streams that track stream `key`.
    fn trackers_of(&self, key: &Key) -> Vec<Key> {
        self.trackers
            .get(key)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Keeps `stream` unless what is kept is newer (a write's answer can arrive before
    /// the watch events of earlier writes). Returns whether it was kept.
    fn offer(&mut self, key: Key, stream: ImageStream) -> bool {
        let rv = |s: &ImageStream| {
            s.metadata
                .resource_version
                .as_deref()
                .and_then(|v| v.parse::<u64>().ok())
        };
        if let (Some(old), Some(new)) = (self.streams.get(&key).and_then(|s| rv(s)), rv(&stream))
            && new < old
        {
            return false;
        }
        if stream.spec.tags.len() > INDEXED_SPEC_TAGS {
            self.spec.insert(key.clone(), spec_index(&stream));
        } else {
            self.spec.remove(&key);
        }
        let old = self
            .streams
            .get(&key)
            .map(|s| tracked_sources(&key, s))
            .unwrap_or_default();
        self.track(&key, old, tracked_sources(&key, &stream));
        self.streams.insert(key, Arc::new(slim(stream)));
        true
    }

    /// What the controller reads of spec tag `tag` of stream `key`.
    fn spec_tag(&self, key: &Key, tag: &str) -> Option<SpecTag> {
        match self.spec.get(key) {
            Some(index) => index.get(tag).copied(),
            None => self
                .streams
                .get(key)?
                .spec
                .tags
                .iter()
                .find(|t| t.name == tag)
                .map(spec_tag_of),
        }
    }

    /// Forgets a deleted stream.
    fn remove(&mut self, key: &Key) {
        if let Some(s) = self.streams.remove(key) {
            self.track(key, tracked_sources(key, &s), BTreeSet::new());
        }
        self.spec.remove(key);
    }
}

/// The controller state: retry bookkeeping per (namespace, stream) and tag, the queue
/// of tag imports and what each stream has in flight.
pub struct ImportController {
    importer: Arc<Importer>,
    backoff: Backoff,
    retries: HashMap<Key, BTreeMap<String, Retry>>,
    metrics: Option<super::ImportMetrics>,
    queue: FairQueue<Job>,
    work: HashMap<Key, StreamWork>,
    next_work_id: u64,
    /// Streams whose next status write waits (see [`WRITE_PACE`]), until when.
    paced: HashMap<Key, Instant>,
    /// Permits for [`MAX_STATUS_WRITES`].
    write_slots: Arc<tokio::sync::Semaphore>,
}

/// A stream as the controller keeps it (one per stream, for as long as it exists):
/// without what neither the controller nor an import reads of it, `managedFields` (a
/// large share of each object) first, then labels, annotations and the other metadata
/// and the status's repository names (with ten thousand streams, a few megabytes).
fn slim(mut s: ImageStream) -> ImageStream {
    let m = &mut s.metadata;
    m.managed_fields = None;
    m.labels = None;
    m.annotations = None;
    m.uid = None;
    m.owner_references = None;
    m.creation_timestamp = None;
    m.generate_name = None;
    s.status.docker_image_repository = String::new();
    s.status.public_docker_image_repository = String::new();
    s
}

/// `stream`'s name and namespace, all an import from a registry reads of it.
fn name_only(stream: &ImageStream) -> ImageStream {
    let mut named = ImageStream::default();
    named.metadata.name = stream.metadata.name.clone();
    named.metadata.namespace = stream.metadata.namespace.clone();
    named
}

/// The registry a tag's import is bounded under; `""` for tags that need none.
fn registry_of(tag: &TagReference) -> String {
    if tag.from_kind() != KIND_DOCKER_IMAGE || tag.reference {
        return String::new();
    }
    DockerImageReference::parse(tag.from_name())
        .map(|r| super::registry_of(&r))
        .unwrap_or_default()
}

/// Whether a tracking tag (ImageStreamTag source) lags behind its source in `streams`.
fn tracking_lags(
    stream: &ImageStream,
    tag: &TagReference,
    sources: &HashMap<Key, Arc<ImageStream>>,
) -> bool {
    if tag.from_kind() != KIND_IMAGE_STREAM_TAG {
        return false;
    }
    let ns = stream.metadata.namespace.clone().unwrap_or_default();
    let from_ns = tag
        .from
        .as_ref()
        .and_then(|f| f.namespace.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or(ns);
    let Ok((src, src_tag)) = moor_api::image::parse_image_stream_tag_name(tag.from_name()) else {
        return false;
    };
    let source = if Some(src) == stream.metadata.name.as_deref() {
        Some(stream)
    } else {
        sources.get(&(from_ns, src.to_string())).map(|s| &**s)
    };
    let Some(source) = source else { return false };
    let want = source.latest_tagged_image(src_tag);
    let have = stream.latest_tagged_image(&tag.name);
    match (want, have) {
        (Some(w), Some(h)) => {
            w.image != h.image || w.docker_image_reference != h.docker_image_reference
        }
        (Some(_), None) => true,
        _ => false,
    }
}

/// Imports or resolves one tag (a task of its own).
async fn import_one(
    importer: Arc<Importer>,
    metrics: Option<super::ImportMetrics>,
    job: Job,
) -> Finished {
    let secrets = job
        .secrets
        .get_or_init(|| importer.pull_secrets(&job.key.0))
        .await
        .clone();
    let started = std::time::Instant::now();
    let outcome = importer.resolve_tag(&job.stream, &job.tag, &secrets).await;
    if let Some(m) = &metrics
        && job.tag.from_kind() == KIND_DOCKER_IMAGE
        && !job.tag.reference
    {
        m.observe("spec", started.elapsed());
    }
    match &outcome {
        TagOutcome::Imported { .. } => tracing::info!(
            ok = true,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "import"
        ),
        TagOutcome::Failed(e) => tracing::info!(
            ok = false,
            elapsed_ms = started.elapsed().as_millis() as u64,
            reason = %e.reason(),
            error = %e.message(),
            "import"
        ),
    }
    Finished {
        tag: job.tag.name.clone(),
        generation: job.tag.generation.unwrap_or(0),
        outcome,
    }
}

impl ImportController {
    /// A controller over `importer`, with the default [`ImportLimits`].
    pub fn new(importer: Arc<Importer>, backoff: Backoff) -> Self {
        ImportController {
            importer,
            backoff,
            retries: HashMap::new(),
            metrics: None,
            queue: FairQueue::new(ImportLimits::default()),
            work: HashMap::new(),
            next_work_id: 0,
            paced: HashMap::new(),
            write_slots: Arc::new(tokio::sync::Semaphore::new(MAX_STATUS_WRITES)),
        }
    }

    /// Records how long each registry import takes (`trigger="spec"`).
    pub fn with_metrics(mut self, metrics: super::ImportMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Bounds the imports in flight, overall and per registry.
    pub fn with_limits(mut self, limits: ImportLimits) -> Self {
        self.queue = FairQueue::new(limits);
        self
    }

    /// Reconciles one stream: queues the imports of the tags that need one (and are
    /// not already queued, running or being written) and says when to look again.
    pub fn reconcile(
        &mut self,
        stream: &Arc<ImageStream>,
        all: &HashMap<Key, Arc<ImageStream>>,
    ) -> Action {
        let key: Key = (
            stream.metadata.namespace.clone().unwrap_or_default(),
            stream.metadata.name.clone().unwrap_or_default(),
        );
        let now = Instant::now();
        let busy = |tag: &str| {
            self.work
                .get(&key)
                .is_some_and(|w| w.tags.contains_key(tag))
        };
        // One index per reconcile: every tag is asked about, and a stream may hold
        // thousands.
        let index = TagIndex::new(stream);
        let retries = self.retries.entry(key.clone()).or_default();
        retries.retain(|tag, r| {
            index
                .spec_tag(tag)
                .is_some_and(|t| t.generation.unwrap_or(0) == r.generation)
        });
        let mut due: Vec<TagReference> = Vec::new();
        for tag in &stream.spec.tags {
            if tag.from.is_none() || busy(&tag.name) {
                continue;
            }
            // A failure of this generation that this process has no record of (it
            // failed before a restart, whose configuration may now work: a mirror,
            // a CA, a secret) is retried at once, then with the usual backoff.
            if !tag.import_policy.scheduled
                && !retries.contains_key(&tag.name)
                && let Some(failure) = index.import_failure(&tag.name)
                && failure.generation == tag.generation.unwrap_or(0)
                && failure.reason != reasons::INVALID
            {
                retries.insert(
                    tag.name.clone(),
                    Retry {
                        attempts: 0,
                        generation: failure.generation,
                        due: now,
                        parked: false,
                    },
                );
            }
            let wanted = index.needs_import(&tag.name) || tracking_lags(stream, tag, all);
            let retry_due = retries
                .get(&tag.name)
                .is_some_and(|r| r.due <= now && r.pending(self.backoff.max_retries));
            if wanted || retry_due {
                if retries.get(&tag.name).is_some_and(|r| r.due > now)
                    && !index.needs_import(&tag.name)
                {
                    continue;
                }
                due.push(tag.clone());
            }
        }
        let mut resolved = Vec::new();
        if !due.is_empty() {
            let named = Arc::new(name_only(stream));
            let secrets = Arc::new(OnceCell::new());
            let next_id = &mut self.next_work_id;
            let work = self.work.entry(key.clone()).or_insert_with(|| {
                *next_id += 1;
                StreamWork {
                    id: *next_id,
                    tags: HashMap::new(),
                    running: HashMap::new(),
                    unfinished: 0,
                    done: Vec::new(),
                    first_done: None,
                    writing: false,
                }
            });
            for tag in due {
                work.tags
                    .insert(tag.name.clone(), tag.generation.unwrap_or(0));
                // A reference tag needs no registry: its outcome is known now, and
                // waits for the stream's status write without a queued job (a burst
                // of created streams would queue tens of thousands).
                if let Some(outcome) = Importer::reference_outcome(&tag) {
                    work.done.push((tag.name.clone(), outcome));
                    work.first_done.get_or_insert(now);
                    resolved.push(tag.name.clone());
                    continue;
                }
                work.unfinished += 1;
                let registry = registry_of(&tag);
                let snapshot = match tag.from_kind() {
                    KIND_IMAGE_STREAM_TAG | KIND_IMAGE_STREAM_IMAGE => stream.clone(),
                    _ => named.clone(),
                };
                self.queue.push(
                    &key.0,
                    &registry,
                    Job {
                        key: key.clone(),
                        tag: Box::new(tag),
                        stream: snapshot.clone(),
                        secrets: secrets.clone(),
                    },
                );
            }
        }
        // Resolved tags need no retry (an import of theirs may have failed before).
        if let Some(retries) = self.retries.get_mut(&key) {
            for tag in &resolved {
                retries.remove(tag);
            }
        }
        self.next_action(&key)
    }

    /// When a retry of `key` is due (tags whose import is under way excluded).
    fn next_action(&self, key: &Key) -> Action {
        let work = self.work.get(key);
        let next = self.retries.get(key).and_then(|retries| {
            retries
                .iter()
                .filter(|(tag, r)| {
                    r.pending(self.backoff.max_retries)
                        && !work.is_some_and(|w| w.tags.contains_key(*tag))
                })
                .map(|(_, r)| r.due)
                .min()
        });
        match next {
            Some(next) => Action::Requeue(
                next.saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(10)),
            ),
            None => Action::Await,
        }
    }

    /// Books a finished import's outcome for retries (the backoff of failures).
    fn record_retry(&mut self, key: &Key, tag: &str, outcome: &TagOutcome, spec: SpecTag) {
        let retries = self.retries.entry(key.clone()).or_default();
        let SpecTag {
            generation,
            scheduled,
        } = spec;
        match outcome {
            TagOutcome::Imported { .. } => {
                retries.remove(tag);
            }
            TagOutcome::Failed(e) if !scheduled && e.reason() != reasons::INVALID => {
                let attempts = retries
                    .get(tag)
                    .filter(|r| r.generation == generation)
                    .map(|r| r.attempts)
                    .unwrap_or(0)
                    + 1;
                let delay = self.backoff.delay(attempts, e.retry_after());
                // A definite answer is kept (a pull secret may change it) but not
                // retried on the transient schedule.
                retries.insert(
                    tag.to_string(),
                    Retry {
                        attempts,
                        generation,
                        due: Instant::now() + delay,
                        parked: !e.is_transient(),
                    },
                );
            }
            TagOutcome::Failed(_) => {
                retries.remove(tag);
            }
        }
    }

    /// Starts the queued imports that the limits let through.
    fn dispatch(&mut self, st: &mut State) {
        while let Some((registry, job)) = self.queue.pop() {
            let Some(work) = self.work.get_mut(&job.key) else {
                self.queue.done(&registry);
                continue;
            };
            let span = tracing::info_span!(
                "import",
                namespace = %job.key.0,
                stream = %job.key.1,
                tag = %job.tag.name,
                registry = %registry,
            );
            let key = job.key.clone();
            let tag = job.tag.name.clone();
            let handle = st.imports.spawn(
                import_one(self.importer.clone(), self.metrics.clone(), job).instrument(span),
            );
            st.running.insert(
                handle.id(),
                Running {
                    key,
                    tag: tag.clone(),
                    registry,
                    work: work.id,
                },
            );
            work.running.insert(tag, handle);
        }
    }

    /// Takes a finished (or aborted) import task.
    fn finished(
        &mut self,
        st: &mut State,
        res: Result<(tokio::task::Id, Finished), tokio::task::JoinError>,
    ) {
        let id = match &res {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        let Some(run) = st.running.remove(&id) else {
            return;
        };
        self.queue.done(&run.registry);
        let key = run.key;
        let Some(work) = self.work.get_mut(&key).filter(|w| w.id == run.work) else {
            // The stream was deleted meanwhile.
            return;
        };
        work.running.remove(&run.tag);
        work.unfinished = work.unfinished.saturating_sub(1);
        let now = Instant::now();
        match res {
            Ok((_, f)) => {
                let current = st.spec_tag(&key, &f.tag);
                let wanted = work.tags.get(&f.tag) == Some(&f.generation)
                    && current.is_some_and(|t| t.generation == f.generation);
                if !wanted {
                    // The tag changed or went away during the import: look again.
                    work.tags.remove(&f.tag);
                    st.due.schedule(key.clone(), now);
                } else {
                    work.done.push((f.tag.clone(), f.outcome.clone()));
                    work.first_done.get_or_insert(now);
                    if let Some(spec) = current {
                        self.record_retry(&key, &f.tag, &f.outcome, spec);
                    }
                }
            }
            Err(e) => {
                if e.is_panic() {
                    tracing::error!(namespace = %key.0, stream = %key.1, tag = %run.tag, "an import task panicked");
                }
                work.tags.remove(&run.tag);
                st.due.schedule(key.clone(), now + self.backoff.initial);
            }
        }
        self.flush(st, &key);
    }

    /// Writes the stream's finished outcomes when none of its imports is still running,
    /// or when the oldest has waited [`WRITE_LINGER`]; one write per stream at a time.
    fn flush(&mut self, st: &mut State, key: &Key) {
        let Some(work) = self.work.get_mut(key) else {
            return;
        };
        if work.writing || work.done.is_empty() {
            if work.idle() {
                self.work.remove(key);
            }
            return;
        }
        let now = Instant::now();
        let first = *work.first_done.get_or_insert(now);
        let paced = self.paced.get(key).copied().filter(|p| *p > now);
        if paced.is_none() {
            self.paced.remove(key);
        }
        let due = write_due(now, first, work.unfinished, paced);
        if due > now {
            st.lingers.insert((due, key.clone()));
            return;
        }
        work.writing = true;
        work.first_done = None;
        let outcomes = std::mem::take(&mut work.done);
        let importer = self.importer.clone();
        let slots = self.write_slots.clone();
        let k = key.clone();
        let span = tracing::info_span!("import_write", namespace = %key.0, stream = %key.1, tags = outcomes.len());
        let handle = st.writes.spawn(
            async move {
                // Never closed, so never an error.
                let _slot = slots.acquire_owned().await.ok();
                let started = Instant::now();
                let result = importer.write_outcomes(&k.0, &k.1, &outcomes).await;
                let tags = outcomes.into_iter().map(|(t, _)| t).collect();
                (k, tags, result, started.elapsed())
            }
            .instrument(span),
        );
        st.writing.insert(handle.id(), key.clone());
    }

    /// Takes a finished status write.
    fn written(
        &mut self,
        st: &mut State,
        res: Result<(tokio::task::Id, Written), tokio::task::JoinError>,
    ) {
        let id = match &res {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        let Some(key) = st.writing.remove(&id) else {
            return;
        };
        let now = Instant::now();
        let result = match res {
            Ok((_, (_, tags, result, took))) => {
                let wait = took.saturating_mul(WRITE_PACE).min(WRITE_PACE_MAX);
                self.paced.insert(key.clone(), now + wait);
                if let Some(work) = self.work.get_mut(&key) {
                    for t in &tags {
                        work.tags.remove(t);
                    }
                }
                result
            }
            Err(e) => Err(ApiError::Internal {
                message: "the status write task failed".into(),
                source: Some(Box::new(e)),
            }),
        };
        if let Some(work) = self.work.get_mut(&key) {
            work.writing = false;
            if result.is_err() {
                // Outcomes not written are imported again.
                work.tags.retain(|t, _| work.running.contains_key(t));
            }
        }
        match result {
            Ok(written) => {
                let large = is_large(&written);
                let decode = || {
                    serde_json::from_value::<ImageStream>(super::without_managed_fields(written))
                };
                if let Ok(s) = cpu_bound_if(large, decode) {
                    st.offer(key.clone(), s);
                }
                st.due.schedule(key.clone(), now);
            }
            Err(e) => {
                tracing::warn!(namespace = %key.0, stream = %key.1, error = %e, "writing import results failed");
                st.due.schedule(key.clone(), now + self.backoff.initial);
            }
        }
        self.flush(st, &key);
    }

    /// Cancels the queued and running imports of a deleted stream.
    fn cancel(&mut self, key: &Key) {
        self.paced.remove(key);
        let queued = self.queue.cancel(&key.0, |j| j.key == *key);
        if let Some(work) = self.work.remove(key) {
            for h in work.running.values() {
                h.abort();
            }
            if queued > 0 || !work.running.is_empty() {
                tracing::info!(namespace = %key.0, stream = %key.1, queued, running = work.running.len(), "stream deleted: its imports are cancelled");
            }
        }
    }

    /// Drops the queued imports of tags no longer in the stream's spec (a running one
    /// finishes and is discarded).
    fn cancel_removed_tags(&mut self, key: &Key, stream: &ImageStream) {
        let Some(work) = self.work.get_mut(key) else {
            return;
        };
        let spec = stream.spec_tags_by_name();
        let gone: Vec<String> = work
            .tags
            .keys()
            .filter(|t| !spec.contains_key(t.as_str()) && !work.running.contains_key(*t))
            .cloned()
            .collect();
        if gone.is_empty() {
            return;
        }
        let dropped = self
            .queue
            .cancel(&key.0, |j| j.key == *key && gone.contains(&j.tag.name));
        for t in &gone {
            work.tags.remove(t);
        }
        work.unfinished = work.unfinished.saturating_sub(dropped);
    }

    /// Runs forever: lists and watches streams, reconciling each change, the streams
    /// that track it, and every due retry.
    pub async fn run(mut self) {
        loop {
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "import controller restarts its watch");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    async fn run_once(&mut self) -> Result<(), ApiError> {
        // Tasks of a previous run were aborted with its JoinSets.
        self.queue.clear();
        self.work.clear();
        self.paced.clear();
        let ctx = RequestContext::default();
        let list = self
            .importer
            .streams
            .list_encoded(&ctx, None, &ListOptions::default())
            .await?;
        // Typed streams straight from bytes: no JSON trees for the whole collection.
        let mut array = Vec::with_capacity(list.items.len() + 2);
        array.push(b'[');
        array.extend_from_slice(&list.items);
        array.push(b']');
        let typed: Vec<ImageStream> = serde_json::from_slice(&array).map_err(ApiError::internal)?;
        drop(array);
        let mut st = State::default();
        let now = Instant::now();
        for s in typed {
            let key = (
                s.metadata.namespace.clone().unwrap_or_default(),
                s.metadata.name.clone().unwrap_or_default(),
            );
            st.due.schedule(key.clone(), now);
            st.offer(key, s);
        }
        let opts = ListOptions {
            resource_version: Some(list.resource_version.clone()),
            ..Default::default()
        };
        let mut events = self.importer.watch_streams(&list.resource_version).await?;
        // A pull secret created or changed may fix a failed import of its namespace.
        let mut secrets = self.importer.secrets.watch(&ctx, None, &opts).await?;
        loop {
            let wake = [st.due.next(), st.lingers.first().map(|(t, _)| *t)]
                .into_iter()
                .flatten()
                .min();
            let sleep = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                ev = events.next() => {
                    let Some(ev) = ev else { return Ok(()) };
                    self.event(&mut st, ev)?;
                }
                ev = secrets.next() => {
                    let Some(ev) = ev else { return Ok(()) };
                    if let WatchEvent::Added(v) | WatchEvent::Modified(v) = ev
                        && let Some(ns) = v.pointer("/metadata/namespace").and_then(Value::as_str)
                    {
                        self.retry_failed_now(&mut st, ns);
                    }
                }
                Some(res) = st.imports.join_next_with_id(), if !st.imports.is_empty() => {
                    self.finished(&mut st, res);
                }
                Some(res) = st.writes.join_next_with_id(), if !st.writes.is_empty() => {
                    self.written(&mut st, res);
                }
                _ = sleep => {
                    let now = Instant::now();
                    for k in st.due.pop_ready(now) {
                        let Some(stream) = st.streams.get(&k) else { continue };
                        let large = stream.spec.tags.len() > LARGE_STREAM_TAGS;
                        let action = cpu_bound_if(large, || self.reconcile(stream, &st.streams));
                        if let Action::Requeue(d) = action {
                            st.due.schedule(k.clone(), Instant::now() + d);
                        }
                        // Reference tags were resolved in place.
                        self.flush(&mut st, &k);
                    }
                    while let Some((t, _)) = st.lingers.first()
                        && *t <= now
                    {
                        if let Some((_, k)) = st.lingers.pop_first() {
                            self.flush(&mut st, &k);
                        }
                    }
                }
            }
            self.dispatch(&mut st);
        }
    }

    /// Retries now, with a fresh count, every failed import of namespace `ns` (a pull
    /// secret there was created or changed).
    fn retry_failed_now(&mut self, st: &mut State, ns: &str) {
        let now = Instant::now();
        for (key, retries) in self.retries.iter_mut().filter(|(k, _)| k.0 == ns) {
            if retries.is_empty() {
                continue;
            }
            for r in retries.values_mut() {
                r.attempts = 0;
                r.due = now;
                r.parked = false;
            }
            st.due.schedule(key.clone(), now);
        }
    }

    /// Drops the queued imports of tags the stream no longer has, and keeps it unless
    /// what is kept is newer. Returns whether it was kept.
    fn take_stream(&mut self, st: &mut State, key: &Key, s: ImageStream) -> bool {
        self.cancel_removed_tags(key, &s);
        st.offer(key.clone(), s)
    }

    /// Takes one watch event.
    fn event(&mut self, st: &mut State, ev: Result<StreamEvent, ApiError>) -> Result<(), ApiError> {
        match ev? {
            StreamEvent::Changed(stored) => {
                // A large stream (a 10,000-tag one is a megabyte) is decoded from its
                // bytes (slim: its managed fields are skipped) and indexed off the
                // async workers, which keep answering meanwhile.
                let Ok(s) = stored.decode() else {
                    return Ok(());
                };
                let k = (
                    s.metadata.namespace.clone().unwrap_or_default(),
                    s.metadata.name.clone().unwrap_or_default(),
                );
                let large = s.spec.tags.len() > LARGE_STREAM_TAGS;
                if !cpu_bound_if(large, || self.take_stream(st, &k, s)) {
                    return Ok(());
                }
                let now = Instant::now();
                // Streams tracking this one look again too.
                for dk in st.trackers_of(&k) {
                    st.due.schedule(dk, now);
                }
                st.due.schedule(k, now);
            }
            StreamEvent::Deleted { namespace, name } => {
                let k = (namespace, name);
                st.remove(&k);
                st.due.remove(&k);
                self.retries.remove(&k);
                self.cancel(&k);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_tags_are_found_by_scan_in_small_streams_and_by_index_in_large_ones() {
        let stream = |tags: usize| {
            let mut s = ImageStream::default();
            s.metadata.namespace = Some("ns".into());
            s.metadata.name = Some("app".into());
            for i in 0..tags {
                let mut t = TagReference {
                    name: format!("t{i}"),
                    generation: Some(i as i64 + 1),
                    ..Default::default()
                };
                t.import_policy.scheduled = i == 1;
                s.spec.tags.push(t);
            }
            // A second tag of a name: the first one counts.
            s.spec.tags.push(TagReference {
                name: "t0".into(),
                generation: Some(99),
                ..Default::default()
            });
            s
        };
        let mut st = State::default();
        let key: Key = ("ns".into(), "app".into());
        for (tags, indexed) in [(3, false), (INDEXED_SPEC_TAGS + 5, true), (2, false)] {
            assert!(st.offer(key.clone(), stream(tags)));
            assert_eq!(st.spec.contains_key(&key), indexed, "{tags} tags");
            let t0 = st.spec_tag(&key, "t0").unwrap();
            assert_eq!((t0.generation, t0.scheduled), (1, false));
            let t1 = st.spec_tag(&key, "t1").unwrap();
            assert_eq!((t1.generation, t1.scheduled), (2, true));
            assert!(st.spec_tag(&key, "missing").is_none());
        }
        st.remove(&key);
        assert!(st.spec_tag(&key, "t0").is_none());
    }

    #[test]
    fn trackers_are_indexed_by_source_and_follow_changes_and_deletions() {
        let stream = |name: &str, rv: u64, sources: &[&str]| {
            let mut s = ImageStream::default();
            s.metadata.namespace = Some("ns".into());
            s.metadata.name = Some(name.into());
            s.metadata.resource_version = Some(rv.to_string());
            for (i, src) in sources.iter().enumerate() {
                s.spec.tags.push(TagReference {
                    name: format!("t{i}"),
                    from: Some(k8s_openapi::api::core::v1::ObjectReference {
                        kind: Some(KIND_IMAGE_STREAM_TAG.into()),
                        name: Some(format!("{src}:latest")),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
            }
            s
        };
        let key = |n: &str| -> Key { ("ns".into(), n.into()) };
        let mut st = State::default();
        assert!(st.offer(key("a"), stream("a", 1, &["base", "base", "other"])));
        assert!(st.offer(key("b"), stream("b", 2, &["base"])));
        assert_eq!(st.trackers_of(&key("base")), vec![key("a"), key("b")]);
        assert_eq!(st.trackers_of(&key("other")), vec![key("a")]);
        // An older version is refused and changes nothing.
        assert!(!st.offer(key("a"), stream("a", 0, &[])));
        assert_eq!(st.trackers_of(&key("other")), vec![key("a")]);
        // `a` stops tracking `other`; `b` is deleted.
        assert!(st.offer(key("a"), stream("a", 3, &["base"])));
        assert!(st.trackers_of(&key("other")).is_empty());
        st.remove(&key("b"));
        assert_eq!(st.trackers_of(&key("base")), vec![key("a")]);
        st.remove(&key("a"));
        assert!(st.trackers.is_empty());
    }

    #[test]
    fn status_writes_wait_for_running_imports_a_linger_at_most_and_their_pace() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        // Nothing running: now; imports running: the linger after the first outcome.
        assert_eq!(write_due(now, now, 0, None), now);
        assert_eq!(write_due(now, now - ms(100), 3, None), now + ms(150));
        // A previous write that took 300 ms paces the next to 1.2 s after it ended.
        let paced = now + ms(300) * WRITE_PACE;
        assert_eq!(write_due(now, now, 0, Some(paced)), paced);
        assert_eq!(write_due(now, now - ms(100), 3, Some(paced)), paced);
        // A pace already past does not delay.
        assert_eq!(write_due(now, now, 0, Some(now - ms(1))), now);
    }

    #[test]
    fn backoff_doubles_caps_and_honours_retry_after() {
        let b = Backoff::default();
        assert_eq!(b.delay(1, None), Duration::from_secs(1));
        assert_eq!(b.delay(2, None), Duration::from_secs(2));
        assert_eq!(b.delay(5, None), Duration::from_secs(16));
        assert_eq!(b.delay(30, None), Duration::from_secs(600));
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
    }
}
