//! The recorder: on a store without multi-key transactions (kine,
//! [`Store::multi_key_txn`] false) the outbox cannot be written in the stream's own
//! transaction, so this leader-only controller (its writes fenced by the caller's
//! store, like [`deliver`](super::deliver)) derives the entries from the streams'
//! watch instead.
//!
//! - **Cursor.** [`CURSOR_KEY`] holds the last store revision whose stream changes are
//!   recorded. At start the recorder lists the streams of the namespaces that have
//!   Notifications at that revision (keeping only what [`diff`](super::diff) reads,
//!   [`diff::slim`](super::diff::slim)), then watches the streams from it.
//! - **Events.** Each change is compared with the stream's previous value; each event
//!   becomes one entry per Notification that selects it and was created before the
//!   change (its creation revision is lower), created with a single-key create whose
//!   key and CloudEvents id follow from the revision and the event's index. The
//!   cursor is written after every batch that created entries, else at most every
//!   [`CURSOR_EVERY`] (and moves on with the watch's bookmarks).
//! - **Replays.** A recorder that starts behind the store (its predecessor crashed
//!   between creating entries and writing the cursor) first reads which outbox keys
//!   were created since the cursor (a watch of the outbox from it, up to a mark it
//!   writes) and does not create those again, so an entry delivered meanwhile is not
//!   sent twice; a create that finds its entry (`AlreadyExists`) is success too.
//! - **Gaps.** If the cursor's revision is compacted (the leader was away longer than
//!   the store keeps history), the recorder lists the streams at the current revision
//!   and records nothing for what changed in between: each Notification of a
//!   namespace where a stream changed in the gap gets `status.gaps` incremented and
//!   `status.lastGap`, and `moor_notification_gaps_total` counts it.
//!
//! Calls the store, [`diff`](super::diff) and the types of `moor_api::notification`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use moor_api::notification::{
    Notification, NotificationStatus, OUTBOX_PREFIX, OutboxEntry, outbox_prefix,
};
use moor_store::{Event, EventKind, ListOptions, Revision, Store, StoreError, WatchItem};
use prometheus_client::metrics::counter::Counter;
use serde_json::Value;
use sha2::Digest as _;

use super::diff::{self, Found};
use super::{NOTIFICATION_PREFIX, NotifyError, STREAM_PREFIX, parse_key};

/// The store key of the recorder's cursor: `{"revision": R}`, every stream change up
/// to R recorded.
pub const CURSOR_KEY: &str = "/moor/notify/cursor";
/// The longest the cursor lags the recorded position while nothing is recorded.
pub const CURSOR_EVERY: Duration = Duration::from_secs(10);
/// Watch events handled in one batch (one listing of the Notifications, one cursor
/// write).
const BATCH: usize = 256;
/// Keys per page when loading a namespace's streams.
const PAGE: usize = 500;
/// How long reading the outbox's recent history may take at start.
const REPLAY_READ: Duration = Duration::from_secs(30);

/// `/metrics` of the recorder.
#[derive(Clone, Default)]
pub struct RecorderMetrics {
    gaps: Counter,
}

impl RecorderMetrics {
    /// Registers `moor_notification_gaps_total`.
    pub fn register(&self, metrics: &crate::metrics::Metrics) {
        metrics.register(
            "notification_gaps",
            "Notifications that may have missed events because the store's history was \
             compacted before the recorder read it (kine)",
            self.gaps.clone(),
        );
    }

    /// The gaps counted so far.
    pub fn gaps(&self) -> u64 {
        self.gaps.get()
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Cursor {
    revision: Revision,
}

/// One Notification as the recorder needs it.
struct Subscriber {
    notification: Notification,
    key: String,
    /// The revision it was created at: it gets changes after it only.
    created: Revision,
}

/// Runs the recorder until dropped (when leadership is lost): `store` is fenced and
/// its [`Store::multi_key_txn`] is false; `registry` is the registry hostname.
pub async fn run(store: Arc<dyn Store>, registry: String, metrics: RecorderMetrics) {
    let mut recorder = Recorder {
        store,
        registry,
        metrics,
        position: 0,
        cursor: None,
        cursor_written: Instant::now(),
        subscribers: HashMap::new(),
        subscribers_at: -1,
        streams: HashMap::new(),
        replayed: HashSet::new(),
        replay_until: 0,
    };
    let mut loaded = false;
    let mut backoff = Duration::from_millis(200);
    loop {
        let result = if loaded {
            recorder.follow().await
        } else {
            recorder.load().await.map(|()| loaded = true)
        };
        match result {
            Ok(()) => {
                // Loaded, or the watch ended: follow (again), not in a tight loop.
                backoff = Duration::from_millis(200);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(NotifyError::Store(StoreError::Compacted { .. })) => {
                match recorder.resync_after_gap().await {
                    Ok(()) => loaded = true,
                    Err(e) => {
                        tracing::warn!(error = %e, "notification recorder: relisting");
                        tokio::time::sleep(backoff).await;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "notification recorder");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

struct Recorder {
    store: Arc<dyn Store>,
    registry: String,
    metrics: RecorderMetrics,
    /// Every stream change up to this revision is recorded.
    position: Revision,
    /// The cursor key's `mod_revision` and the revision it holds.
    cursor: Option<(Revision, Revision)>,
    cursor_written: Instant,
    /// The Notifications by namespace, as of `subscribers_at`.
    subscribers: HashMap<String, Vec<Subscriber>>,
    subscribers_at: Revision,
    /// The streams of the namespaces with Notifications, slimmed, as of `position`.
    streams: HashMap<String, HashMap<String, Value>>,
    /// Outbox keys created after the cursor by an earlier recorder, not to be created
    /// again while replaying up to `replay_until`.
    replayed: HashSet<String>,
    replay_until: Revision,
}

impl Recorder {
    /// Reads the cursor (a new one starts at the oldest Notification's creation, or
    /// now without any), the Notifications, and their namespaces' streams at the cursor.
    async fn load(&mut self) -> Result<(), NotifyError> {
        self.list_subscribers(0).await?;
        self.position = match self.store.get(CURSOR_KEY).await? {
            Some(kv) => {
                let cursor: Cursor = decode(&kv.key, &kv.value)?;
                self.cursor = Some((kv.mod_revision, cursor.revision));
                cursor.revision
            }
            None => {
                let oldest = self.subscribers.values().flatten().map(|s| s.created - 1);
                match oldest.min() {
                    Some(r) => r.max(0),
                    None => self.store.current_revision().await?,
                }
            }
        };
        self.streams.clear();
        let namespaces: Vec<String> = self.subscribers.keys().cloned().collect();
        for ns in namespaces {
            self.load_namespace(&ns, self.position).await?;
        }
        self.read_replayed().await?;
        self.write_cursor().await?;
        tracing::info!(
            revision = self.position,
            "notification recorder: following the streams"
        );
        Ok(())
    }

    /// Reads which outbox keys were created after `position` (by a recorder that
    /// crashed before writing the cursor): a watch of the outbox from `position` up to
    /// a mark written now.
    async fn read_replayed(&mut self) -> Result<(), NotifyError> {
        self.replayed.clear();
        self.replay_until = 0;
        if self.store.current_revision().await? <= self.position {
            return Ok(());
        }
        let mut watch = self.store.watch(OUTBOX_PREFIX, self.position).await?;
        let mark = format!("{OUTBOX_PREFIX}.recorder/{}", uuid::Uuid::new_v4().simple());
        let until = self.store.create(&mark, "{}".into()).await?;
        let _ = self.store.delete(&mark, None).await;
        let deadline = tokio::time::Instant::now() + REPLAY_READ;
        loop {
            let event = match tokio::time::timeout_at(deadline, watch.next()).await {
                Ok(Some(event)) => event?,
                Ok(None) | Err(_) => {
                    return Err(NotifyError::Store(StoreError::Backend(
                        "reading the outbox's history: the watch ended early".into(),
                    )));
                }
            };
            if event.kv.mod_revision >= until {
                break;
            }
            if event.kind == EventKind::Put {
                self.replayed.insert(event.kv.key);
            }
        }
        self.replay_until = until;
        Ok(())
    }

    /// Lists the Notifications unless those known are as of `upto` or later; a
    /// namespace that gains its first is loaded at `position`, one that loses its last
    /// is dropped.
    async fn list_subscribers(&mut self, upto: Revision) -> Result<(), NotifyError> {
        if self.subscribers_at >= upto && upto > 0 {
            return Ok(());
        }
        // The watch cache's copy when it is as new as `upto`, else the store's.
        let opts = ListOptions::default;
        let recent = match upto {
            0 => None,
            _ => Some(self.store.list_recent(NOTIFICATION_PREFIX, opts()).await?),
        };
        let listed = match recent {
            Some(listed) if listed.revision >= upto => listed,
            _ => self.store.list(NOTIFICATION_PREFIX, opts()).await?,
        };
        let mut subscribers: HashMap<String, Vec<Subscriber>> = HashMap::new();
        for kv in listed.kvs {
            let Some((ns, _)) = parse_key(NOTIFICATION_PREFIX, &kv.key) else {
                continue;
            };
            let notification: Notification = decode(&kv.key, &kv.value)?;
            subscribers
                .entry(ns.to_owned())
                .or_default()
                .push(Subscriber {
                    notification,
                    created: kv.create_revision,
                    key: kv.key,
                });
        }
        self.streams.retain(|ns, _| subscribers.contains_key(ns));
        let new: Vec<String> = subscribers
            .keys()
            .filter(|ns| !self.streams.contains_key(*ns))
            .cloned()
            .collect();
        self.subscribers = subscribers;
        if upto > 0 {
            for ns in new {
                self.load_namespace(&ns, self.position).await?;
            }
        }
        // Only once every namespace is loaded: after a failure the next call lists
        // (and loads) again.
        self.subscribers_at = listed.revision;
        Ok(())
    }

    /// Keeps the streams of `ns` at revision `at`, slimmed. Returns the newest of their
    /// revisions (0 without streams).
    async fn load_namespace(&mut self, ns: &str, at: Revision) -> Result<Revision, NotifyError> {
        let prefix = format!("{STREAM_PREFIX}{ns}/");
        let mut streams = HashMap::new();
        let mut newest = 0;
        let mut start_after = None;
        loop {
            let page = self
                .store
                .list(
                    &prefix,
                    ListOptions {
                        revision: Some(at),
                        start_after: start_after.take(),
                        limit: Some(PAGE),
                    },
                )
                .await?;
            for kv in &page.kvs {
                if let Some((_, name)) = parse_key(STREAM_PREFIX, &kv.key) {
                    newest = newest.max(kv.mod_revision);
                    streams.insert(name.to_owned(), diff::slim(&decode(&kv.key, &kv.value)?));
                }
            }
            match page.kvs.last() {
                Some(last) if page.more => start_after = Some(last.key.clone()),
                _ => break,
            }
        }
        self.streams.insert(ns.to_owned(), streams);
        Ok(newest)
    }

    /// Watches the streams from `position` and records their changes, until the watch
    /// ends (`Ok`: resume from `position`) or something fails.
    async fn follow(&mut self) -> Result<(), NotifyError> {
        let watch = self
            .store
            .watch_with_progress(STREAM_PREFIX, self.position)
            .await?;
        let mut batches = watch.ready_chunks(BATCH);
        loop {
            let Ok(batch) = tokio::time::timeout(CURSOR_EVERY, batches.next()).await else {
                self.save_cursor(false).await?;
                continue;
            };
            let Some(items) = batch else {
                return Ok(());
            };
            let mut events = Vec::new();
            let mut progress = None;
            let mut ended = None;
            for item in items {
                match item {
                    Ok(WatchItem::Event(e)) => events.push(e),
                    Ok(WatchItem::Progress(r)) => progress = Some(r),
                    Err(e) => {
                        ended = Some(e);
                        break;
                    }
                }
            }
            let recorded = self.record(events).await?;
            if let Some(r) = progress {
                self.position = self.position.max(r);
            }
            self.save_cursor(recorded).await?;
            match ended {
                None => {}
                Some(StoreError::WatchLagged) => return Ok(()),
                Some(e) => return Err(e.into()),
            }
        }
    }

    /// Records `events` (in revision order); whether any entry was written.
    async fn record(&mut self, events: Vec<Event>) -> Result<bool, NotifyError> {
        let Some(last) = events.last() else {
            return Ok(false);
        };
        self.list_subscribers(last.kv.mod_revision).await?;
        let mut recorded = false;
        for event in events {
            let revision = event.kv.mod_revision;
            if let Some((ns, name)) = parse_key(STREAM_PREFIX, &event.kv.key)
                && self.streams.contains_key(ns)
            {
                match event.kind {
                    EventKind::Delete => {
                        if let Some(streams) = self.streams.get_mut(ns) {
                            streams.remove(name);
                        }
                    }
                    EventKind::Put => {
                        let new: Value = match serde_json::from_slice(&event.kv.value) {
                            Ok(v) => v,
                            Err(e) => {
                                tracing::warn!(key = %event.kv.key, error = %e, "notification recorder: a stream does not decode; its change is not recorded");
                                self.position = revision;
                                continue;
                            }
                        };
                        let old = self.streams.get(ns).and_then(|s| s.get(name));
                        let found = diff::events(old, &new, &self.registry);
                        if !found.is_empty() {
                            recorded |= self.write_entries(ns, revision, &found).await? > 0;
                        }
                        if let Some(streams) = self.streams.get_mut(ns) {
                            streams.insert(name.to_owned(), diff::slim(&new));
                        }
                    }
                }
            }
            self.position = revision;
        }
        if self.position >= self.replay_until {
            self.replayed = HashSet::new();
        }
        Ok(recorded)
    }

    /// Creates the entries of `found` (the change at `revision` of a stream of `ns`)
    /// for the Notifications that select them and existed before it.
    async fn write_entries(
        &self,
        ns: &str,
        revision: Revision,
        found: &[Found],
    ) -> Result<usize, NotifyError> {
        let Some(subscribers) = self.subscribers.get(ns) else {
            return Ok(0);
        };
        let time = jiff::Timestamp::now().to_string();
        let mut written = 0;
        for s in subscribers {
            let n = &s.notification;
            let Some(name) = &n.metadata.name else {
                continue;
            };
            if s.created >= revision || n.metadata.deletion_timestamp.is_some() {
                continue;
            }
            for (i, f) in found.iter().enumerate() {
                if !n.spec.selects(f.kind, &f.data.image_stream, &f.data.tag) {
                    continue;
                }
                let uid = n.metadata.uid.as_deref().unwrap_or_default();
                let entry = OutboxEntry {
                    id: entry_id(ns, name, uid, revision, i),
                    kind: f.kind,
                    time: time.clone(),
                    data: f.data.clone(),
                };
                let key = entry_key(ns, name, revision, i);
                if self.replayed.contains(&key) {
                    written += 1;
                    continue;
                }
                let value = serde_json::to_vec(&entry).map_err(|source| NotifyError::Decode {
                    what: key.clone(),
                    source,
                })?;
                match self.store.create(&key, value.into()).await {
                    Ok(_) | Err(StoreError::AlreadyExists(_)) => written += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(written)
    }

    /// Writes the cursor if it moved, when `now` or [`CURSOR_EVERY`] after the last.
    async fn save_cursor(&mut self, now: bool) -> Result<(), NotifyError> {
        let moved = self.cursor.is_none_or(|(_, r)| r != self.position);
        if moved && (now || self.cursor_written.elapsed() >= CURSOR_EVERY) {
            self.write_cursor().await?;
        }
        Ok(())
    }

    /// Writes `position` to the cursor key (retrying a lost compare-and-swap).
    async fn write_cursor(&mut self) -> Result<(), NotifyError> {
        let value = serde_json::to_vec(&Cursor {
            revision: self.position,
        })
        .map_err(|source| NotifyError::Decode {
            what: CURSOR_KEY.into(),
            source,
        })?;
        for _ in 0..5 {
            let written = match self.cursor {
                Some((expected, _)) => {
                    self.store
                        .update(CURSOR_KEY, value.clone().into(), expected)
                        .await
                }
                None => self.store.create(CURSOR_KEY, value.clone().into()).await,
            };
            match written {
                Ok(r) => {
                    self.cursor = Some((r, self.position));
                    self.cursor_written = Instant::now();
                    return Ok(());
                }
                Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {
                    self.cursor = None;
                }
                Err(StoreError::AlreadyExists(_)) => {
                    self.cursor = self
                        .store
                        .get(CURSOR_KEY)
                        .await?
                        .map(|kv| (kv.mod_revision, -1));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(NotifyError::Store(StoreError::Backend(format!(
            "{CURSOR_KEY}: another writer keeps changing it"
        ))))
    }

    /// After the history from `position` was compacted: the Notifications and their
    /// streams as they are now; each Notification of a namespace where a stream
    /// changed meanwhile (after its own creation) is marked with a gap.
    async fn resync_after_gap(&mut self) -> Result<(), NotifyError> {
        let from = self.position;
        self.streams.clear();
        self.list_subscribers(0).await?;
        let now = self.subscribers_at;
        let mut changed: HashMap<String, Revision> = HashMap::new();
        let namespaces: Vec<String> = self.subscribers.keys().cloned().collect();
        for ns in &namespaces {
            let newest = self.load_namespace(ns, now).await?;
            changed.insert(ns.clone(), newest);
        }
        let message = format!(
            "store revisions {} to {now} were compacted before the recorder read them: \
             changes in between were not recorded",
            from + 1
        );
        let mut marked = Vec::new();
        for (ns, subscribers) in &self.subscribers {
            let newest = changed.get(ns).copied().unwrap_or(0);
            for s in subscribers {
                if newest > from.max(s.created) {
                    marked.push(s.key.clone());
                }
            }
        }
        for key in &marked {
            self.metrics.gaps.inc();
            mark_gap(self.store.as_ref(), key, &message).await?;
        }
        tracing::warn!(
            from,
            to = now,
            notifications = marked.len(),
            "notification recorder: history compacted; resumed at the current revision"
        );
        self.position = now;
        self.replayed.clear();
        self.replay_until = 0;
        self.write_cursor().await
    }
}

/// The outbox key of event `index` of the change at `revision`, for Notification
/// `ns/name`: ordered by revision, the same on every replay.
pub fn entry_key(ns: &str, name: &str, revision: Revision, index: usize) -> String {
    format!("{}{revision:020}-{index:04}", outbox_prefix(ns, name))
}

/// The CloudEvents id of that entry: the same on every replay (a receiver drops a
/// repeat by it), distinct per Notification incarnation (`uid`).
pub fn entry_id(ns: &str, name: &str, uid: &str, revision: Revision, index: usize) -> String {
    let digest = sha2::Sha256::digest(format!("{ns}/{name}/{uid}/{revision}/{index}"));
    hex::encode(&digest[..16])
}

/// Adds a gap to the status of the Notification at `key` (retrying lost races).
async fn mark_gap(store: &dyn Store, key: &str, message: &str) -> Result<(), NotifyError> {
    for _ in 0..5 {
        let Some(kv) = store.get(key).await? else {
            return Ok(());
        };
        let mut obj: Value = decode(key, &kv.value)?;
        let mut status: NotificationStatus = obj
            .get("status")
            .cloned()
            .and_then(|s| serde_json::from_value(s).ok())
            .unwrap_or_default();
        status.gaps += 1;
        status.last_gap = Some(message.to_owned());
        status.last_gap_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::now(),
        ));
        let encode_err = |source| NotifyError::Decode {
            what: key.to_owned(),
            source,
        };
        obj["status"] = serde_json::to_value(&status).map_err(encode_err)?;
        let bytes = serde_json::to_vec(&obj).map_err(encode_err)?;
        match store.update(key, bytes.into(), kv.mod_revision).await {
            Ok(_) | Err(StoreError::NotFound(_)) => return Ok(()),
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, NotifyError> {
    serde_json::from_slice(value).map_err(|source| NotifyError::Decode {
        what: key.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests;
