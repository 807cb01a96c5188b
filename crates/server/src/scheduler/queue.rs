//! The scheduler's queue: one entry per scheduled tag (its spec, record and phase),
//! ordered by when its next check is due; kept in line with the streams' spec and
//! status, it starts the checks that are due (see [`check`](super::check)) and
//! books what they found. Runs inside the scheduler's loop; calls the record writer.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use moor_api::image::follow::FollowPolicy;
use moor_api::image::history::TagIndex;
use moor_api::image::{ImageStream, TagEvent, TagReference};
use moor_api::scheduled::{CheckResult, ScheduledImportStatus};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use super::check::{Done, Job, Outcome, check};
use super::follow::phase_of;
use super::records::RecordWriter;
use super::{
    CheckLabels, Shared, TagKey, is_scheduled, now_ms, plan, registry_of, result_label, timestamp,
};
use crate::importer::follow::follows;

/// A tag the scheduler knows (scheduled now, or with a record from when it was).
pub(super) struct Entry {
    spec: TagReference,
    registry: String,
    phase: i64,
    pub(super) record: ScheduledImportStatus,
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

impl Entry {
    /// When to check again after a check that started at `t`: see [`plan::next_after`].
    /// A followed tag goes to the slot nearest to `t + interval`, unclamped, so that a
    /// tag off its slot (a first check, a retry, a spec change) joins the checks of
    /// the other tags that follow its repository at once (one gap of 0.5 to 1.5
    /// intervals) and their one list read.
    fn next_after(&self, t: i64, interval: i64) -> i64 {
        if follows(&self.spec) {
            plan::nearest_slot(t + interval, self.phase, interval)
        } else {
            plan::next_after(t, self.phase, interval)
        }
    }
}

pub(super) struct State<'a> {
    pub(super) shared: Arc<Shared>,
    pub(super) writer: &'a RecordWriter,
    pub(super) entries: BTreeMap<TagKey, Entry>,
    pub(super) queue: BTreeSet<(i64, TagKey)>,
    pub(super) tasks: JoinSet<Done>,
    /// When `moor_scheduled_tags` was last set, and whether it is stale.
    pub(super) counted: Option<Instant>,
    pub(super) count_pending: bool,
}

pub(super) type Startup<'b> = (
    &'b mut HashMap<TagKey, ScheduledImportStatus>,
    Option<&'b plan::Resume>,
);

impl State<'_> {
    fn interval(&self) -> i64 {
        self.shared.interval_ms
    }

    /// Sets `moor_scheduled_tags`, at most once a second (a count walks every entry).
    pub(super) fn count_tags(&mut self) {
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
    pub(super) fn sync_stream(
        &mut self,
        stream: &ImageStream,
        now: i64,
        mut startup: Option<Startup<'_>>,
    ) {
        let ns = stream.metadata.namespace.clone().unwrap_or_default();
        let name = stream.metadata.name.clone().unwrap_or_default();
        let mut seen = HashSet::new();
        let index = TagIndex::new(stream);
        for tag in &stream.spec.tags {
            let key = TagKey::new(&ns, &name, &tag.name);
            seen.insert(tag.name.clone());
            let scheduled = is_scheduled(tag);
            let loaded = startup.as_mut().and_then(|(l, _)| l.remove(&key));
            let resume = startup.as_ref().and_then(|(_, c)| *c);
            let current = index.latest_tagged_image(&tag.name).cloned();
            let pending = index.needs_import(&tag.name);
            let failed = index.import_failure(&tag.name).is_some();
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
                let phase = phase_of(&key, tag, self.interval());
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
                // A tag that failed before this process started, whose configuration
                // may now work (a mirror, a CA, a secret), is checked within seconds,
                // not at its slot up to an interval away.
                let healing = startup.is_some()
                    && (failed || record.last_check_result == Some(CheckResult::Failed));
                let (due, write) = match plan::heal_at_start(now, phase, self.interval()) {
                    soon if healing && soon < due => (soon, true),
                    _ => (due, write),
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
                if e.spec.from != tag.from
                    || e.spec.import_policy != tag.import_policy
                    || e.spec.annotations != tag.annotations
                {
                    e.epoch += 1;
                    reschedule = rephase(e, &key, tag, now, interval);
                }
                e.spec = tag.clone();
                // The record keeps the registry source it was scheduled from, so that
                // describe can say how to resume a rolled-back tag.
                if scheduled && e.record.follow != follow_flags(tag) {
                    e.record.follow = follow_flags(tag);
                    e.record.followed_tag = None;
                    write = true;
                }
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
                        reschedule = None;
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
                write = true;
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
            if record.follow != follow_flags(tag) {
                record.follow = follow_flags(tag);
                record.followed_tag = None;
            }
        }
        Entry {
            spec: tag.clone(),
            registry,
            phase: phase_of(key, tag, self.interval()),
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
    pub(super) fn remove_stream(&mut self, ns: &str, name: &str, keep: &HashSet<String>) {
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

    /// Checks now the failed tags of namespace `ns` (a pull secret there was created
    /// or changed). A check in flight is left to finish.
    pub(super) fn retry_failed_now(&mut self, ns: &str, now: i64) {
        let start = TagKey::new(ns, "", "");
        let failed: Vec<TagKey> = self
            .entries
            .range(start..)
            .take_while(|(k, _)| k.namespace == ns)
            .filter(|(_, e)| {
                e.record.active
                    && !e.in_flight
                    && (e.failed || e.record.last_check_result == Some(CheckResult::Failed))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in failed {
            self.schedule(&key, now);
        }
    }

    /// Starts the checks that are due.
    pub(super) fn dispatch_due(&mut self) {
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
                let next = e.next_after(now, interval);
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
                followed_tag: e.record.followed_tag.clone(),
            };
            self.shared.metrics.queue_depth.inc();
            let span = tracing::info_span!(
                "scheduled_check",
                namespace = %job.key.namespace,
                stream = %job.key.stream,
                tag = %job.key.tag,
                registry = %job.registry,
            );
            self.tasks
                .spawn(check(self.shared.clone(), job).instrument(span));
        }
    }

    /// Records a finished check and schedules the next.
    pub(super) fn finish(&mut self, done: Done) {
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
            let next = e.next_after(done.started_ms.min(now), interval);
            self.schedule(&done.key, next);
            self.persist(&done.key);
            return;
        }
        let next = e.next_after(done.started_ms, interval);
        let r = &mut e.record;
        r.last_check_time = Some(timestamp(done.started_ms));
        if done.followed.is_some() {
            r.followed_tag = done.followed;
        }
        let (result, due) = match done.outcome {
            Outcome::Unchanged { digest, image } => {
                if digest.is_some() {
                    r.last_digest = digest;
                }
                r.image = Some(image);
                r.consecutive_failures = 0;
                r.message = None;
                (CheckResult::Unchanged, next)
            }
            Outcome::Updated { digest, image } => {
                r.last_digest = digest;
                r.image = Some(image);
                r.consecutive_failures = 0;
                r.message = None;
                (CheckResult::Updated, next)
            }
            Outcome::Failed(err) => {
                r.consecutive_failures += 1;
                r.message = Some(format!("{}: {}", err.reason(), err.message()));
                let retry_after = err.retry_after().map_or(0, |d| d.as_millis() as i64);
                let due = if err.is_transient() {
                    done.started_ms
                        + plan::retry_delay(r.consecutive_failures, backoff, interval, retry_after)
                } else {
                    // A definite answer (not found, unauthorized) waits for the next
                    // scheduled check.
                    next
                };
                (CheckResult::Failed, due)
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

/// After a change of a tag's source or annotations: its new phase (a followed tag's
/// is its repository's), and, when that moved and the tag is queued, its first slot
/// with it, so that it joins the checks of the tags that follow the same repository.
fn rephase(
    e: &mut Entry,
    key: &TagKey,
    tag: &TagReference,
    now: i64,
    interval: i64,
) -> Option<i64> {
    let phase = phase_of(key, tag, interval);
    if phase == e.phase {
        return None;
    }
    e.phase = phase;
    (e.record.active && e.due.is_some()).then(|| plan::first_slot(now, phase, interval))
}

/// The `moor tag` flags of a followed tag's policy, kept in its record.
fn follow_flags(tag: &TagReference) -> Option<String> {
    FollowPolicy::of_tag(tag).ok().flatten().map(|p| p.flags())
}
