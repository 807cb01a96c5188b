//! [`CachedStore`]: a watch cache in front of any [`Store`], as kube-apiserver's
//! cacher is in front of etcd. One store watch feeds an in-memory copy of the current
//! values under the cached prefixes (the stored bytes, shared, never decoded) and a
//! window of recent events bounded by bytes. Lists, `*_recent` reads and watches are
//! answered from it when it can answer exactly as the store would; otherwise (not
//! caught up, a revision older than the window, a prefix it does not cache) they go
//! to the store. Writes always go to the store. Calls only the wrapped store, tokio
//! and futures.
//!
//! Consistency: a list at the current revision first reads the store's current
//! revision and waits until the cache has applied every event up to it (kube's
//! "consistent read from cache"), so it sees every write acknowledged before it
//! started. A `get` does the same where that revision costs nothing: when the store
//! knows it in process ([`Store::local_revision`]: SQLite, memory), the cache answers
//! once it has applied it (waiting briefly if it is behind); otherwise (etcd, whose
//! revision is a round trip as costly as the read) `get` reads the store. A store
//! whose revision also moves for keys the cache does not watch (an etcd shared with
//! other writers) times out of the list's wait and reads the store, unless the
//! store's progress notifications ([`Store::watch_with_progress`]) move the cache's
//! revision first; those notifications also reach the cache's own watchers as
//! bookmarks.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use tokio::sync::watch;

use crate::watch::{QueueSender, events_only, queue};
use crate::{
    CompactionClaim, DEFAULT_WATCH_BUFFER_BYTES, Event, EventKind, KeyValue, ListOptions,
    ListResult, ProgressStream, Revision, Store, StoreError, WatchItem, WatchStream,
};

/// The default bytes of recent events the cache keeps for watches that resume.
pub const DEFAULT_WATCH_CACHE_BYTES: usize = 8 * 1024 * 1024;

/// Keys per store page while the cache (re)loads its state.
const LOAD_PAGE: usize = 1000;
/// Events applied under one lock.
const APPLY_BATCH: usize = 256;

/// What the cache keeps and how long a consistent read waits for it.
#[derive(Clone, Debug)]
pub struct CacheOptions {
    /// Key prefixes whose values are kept; reads under other prefixes go to the store.
    pub prefixes: Vec<String>,
    /// Key prefixes under `prefixes` that are not kept (their reads go to the store).
    pub exclude: Vec<String>,
    /// The bytes of recent events kept for watches (keys and values counted, so the
    /// bound holds however large objects are). Older watches go to the store.
    pub window_bytes: usize,
    /// How long a consistent read waits for the cache to catch up before it reads
    /// the store instead.
    pub catch_up: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            prefixes: vec!["/".into()],
            exclude: Vec::new(),
            window_bytes: DEFAULT_WATCH_CACHE_BYTES,
            catch_up: Duration::from_secs(1),
        }
    }
}

/// Counters of a [`CachedStore`], for tests and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Times the state was loaded from the store (1 after the first load).
    pub loads: u64,
    /// Whether the cache is loaded and following the store.
    pub ready: bool,
    /// Every event up to this revision is applied.
    pub revision: Revision,
    /// Watches may start from here on (events after it are in the window).
    pub window_start: Revision,
    /// Events in the window.
    pub window_events: usize,
    /// Bytes the window's events are counted at.
    pub window_bytes: usize,
    /// Keys held.
    pub objects: usize,
    /// Reads and watches answered from memory.
    pub hits: u64,
    /// Reads and watches of cached prefixes passed to the store.
    pub misses: u64,
}

/// A [`Store`] whose lists and watches under the configured prefixes are served from
/// memory (see the module docs).
pub struct CachedStore {
    inner: Arc<dyn Store>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    options: CacheOptions,
    state: RwLock<State>,
    /// The applied revision, for readers waiting to catch up; `None` while loading.
    progress: watch::Sender<Option<Revision>>,
    hits: AtomicU64,
    misses: AtomicU64,
    loads: AtomicU64,
}

#[derive(Default)]
struct State {
    ready: bool,
    revision: Revision,
    objects: BTreeMap<String, KeyValue>,
    window: VecDeque<Arc<Event>>,
    window_cost: usize,
    window_start: Revision,
    watchers: Vec<Watcher>,
}

struct Watcher {
    prefix: String,
    /// Events at or below this revision are not sent (it was replayed or asked for).
    after: Revision,
    tx: QueueSender,
}

/// What one event costs the window.
fn cost(event: &Event) -> usize {
    event.kv.key.len() + event.kv.value.len() + 64
}

impl CacheOptions {
    /// Whether the value of `key` is kept.
    fn keeps(&self, key: &str) -> bool {
        self.prefixes.iter().any(|p| key.starts_with(p.as_str()))
            && !self.exclude.iter().any(|e| key.starts_with(e.as_str()))
    }

    /// Whether every key under `prefix` is kept.
    fn covers(&self, prefix: &str) -> bool {
        self.prefixes.iter().any(|p| prefix.starts_with(p.as_str()))
            && !self
                .exclude
                .iter()
                .any(|e| prefix.starts_with(e.as_str()) || e.starts_with(prefix))
    }
}

impl State {
    fn apply(&mut self, event: Event, options: &CacheOptions) {
        self.revision = self.revision.max(event.kv.mod_revision);
        if !options.keeps(&event.kv.key) {
            return;
        }
        match event.kind {
            EventKind::Put => {
                self.objects.insert(event.kv.key.clone(), event.kv.clone());
            }
            EventKind::Delete => {
                self.objects.remove(&event.kv.key);
            }
        }
        let event = Arc::new(event);
        self.watchers.retain(|w| {
            if event.kv.mod_revision <= w.after || !event.kv.key.starts_with(&w.prefix) {
                return !w.tx.is_closed();
            }
            w.tx.send(Event::clone(&event))
        });
        self.window_cost += cost(&event);
        self.window.push_back(event);
        while self.window_cost > options.window_bytes {
            let Some(old) = self.window.pop_front() else {
                break;
            };
            self.window_cost -= cost(&old);
            self.window_start = self.window_start.max(old.kv.mod_revision);
        }
    }

    /// A bookmark from the store: every change up to `revision` has been applied, so
    /// the cache's revision moves there and its watchers get the bookmark.
    /// Watchers get it even when the cache had already reached `revision` through an
    /// event under another prefix, which they did not see.
    fn progress(&mut self, revision: Revision) {
        self.revision = self.revision.max(revision);
        self.watchers.retain(|w| {
            if revision <= w.after {
                return !w.tx.is_closed();
            }
            w.tx.progress(revision)
        });
    }

    /// Whether no event under `prefix` is newer than `revision`, so the current values
    /// are the values at `revision`.
    fn unchanged_since(&self, prefix: &str, revision: Revision) -> bool {
        self.window
            .iter()
            .rev()
            .take_while(|e| e.kv.mod_revision > revision)
            .all(|e| !e.kv.key.starts_with(prefix))
    }

    /// The page of `prefix` at `revision` (`None`: the applied one), if memory can
    /// answer it exactly.
    fn list(
        &self,
        prefix: &str,
        revision: Option<Revision>,
        opts: &ListOptions,
    ) -> Option<ListResult> {
        if !self.ready {
            return None;
        }
        let at = match revision {
            None => self.revision,
            Some(r) if r > self.revision || r < self.window_start => return None,
            Some(r) if !self.unchanged_since(prefix, r) => return None,
            Some(r) => r,
        };
        let start = match &opts.start_after {
            Some(after) if after.as_str() >= prefix => Bound::Excluded(after.clone()),
            _ => Bound::Included(prefix.to_string()),
        };
        let limit = opts.limit.unwrap_or(usize::MAX);
        let mut kvs = Vec::new();
        let mut more = false;
        for (key, kv) in self.objects.range::<String, _>((start, Bound::Unbounded)) {
            if !key.starts_with(prefix) {
                break;
            }
            if kvs.len() == limit {
                more = true;
                break;
            }
            kvs.push(kv.clone());
        }
        Some(ListResult {
            kvs,
            revision: at,
            more,
        })
    }
}

impl CachedStore {
    /// Wraps `inner` and starts loading the cache in the background; until it is loaded
    /// every read goes to `inner`. Must be called inside a tokio runtime.
    pub fn new(inner: Arc<dyn Store>, options: CacheOptions) -> Self {
        let (progress, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            options,
            state: RwLock::new(State::default()),
            progress,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            loads: AtomicU64::new(0),
        });
        let task = tokio::spawn(follow(inner.clone(), shared.clone()));
        CachedStore {
            inner,
            shared,
            task,
        }
    }

    /// The cache's counters.
    pub fn stats(&self) -> CacheStats {
        let state = self.read();
        CacheStats {
            ready: state.ready,
            revision: state.revision,
            window_start: state.window_start,
            window_events: state.window.len(),
            window_bytes: state.window_cost,
            objects: state.objects.len(),
            loads: self.shared.loads.load(Ordering::Relaxed),
            hits: self.shared.hits.load(Ordering::Relaxed),
            misses: self.shared.misses.load(Ordering::Relaxed),
        }
    }

    /// Waits until the cache is loaded and has applied `revision` (at most the
    /// configured catch-up time); whether it has.
    pub async fn wait_for(&self, revision: Revision) -> bool {
        let mut rx = self.shared.progress.subscribe();
        let wait = rx.wait_for(|r| r.is_some_and(|r| r >= revision));
        matches!(
            tokio::time::timeout(self.shared.options.catch_up, wait).await,
            Ok(Ok(_))
        )
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A panic while holding the lock leaves a state that is still consistent
        // (every mutation is a whole event), so a poisoned lock is used as it is.
        self.shared
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn covers(&self, prefix: &str) -> bool {
        self.shared.options.covers(prefix)
    }

    fn count(&self, hit: bool) {
        let counter = if hit {
            &self.shared.hits
        } else {
            &self.shared.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The value of `key` from memory if the cache is loaded and has applied `at`;
    /// `None` when it cannot answer.
    fn get_at(&self, key: &str, at: Revision) -> Option<Option<KeyValue>> {
        let state = self.read();
        (state.ready && state.revision >= at).then(|| state.objects.get(key).cloned())
    }

    /// A consistent `get` from memory: the store knows its last acknowledged revision
    /// in process, and the cache has applied it or catches up within the catch-up
    /// time. `None`: read the store.
    async fn get_consistent(&self, key: &str) -> Option<Option<KeyValue>> {
        if !self.shared.options.keeps(key) {
            return None;
        }
        let now = self.inner.local_revision()?;
        if let Some(kv) = self.get_at(key, now) {
            return Some(kv);
        }
        // Behind (a write this process just acknowledged): wait for its event rather
        // than read the store; a cache still loading is not waited for.
        let behind = {
            let state = self.read();
            state.ready && state.revision < now
        };
        if behind && self.wait_for(now).await {
            return self.get_at(key, now);
        }
        None
    }

    /// A list from memory at `revision` (`None`: the cache's), or from the store.
    async fn list_from(
        &self,
        prefix: &str,
        revision: Option<Revision>,
        opts: ListOptions,
    ) -> Result<ListResult, StoreError> {
        if self.covers(prefix) {
            let cached = self.read().list(prefix, revision, &opts);
            if let Some(result) = cached {
                self.count(true);
                return Ok(result);
            }
            self.count(false);
        }
        self.inner.list(prefix, opts).await
    }

    /// A watch from memory, or `None` when the window cannot serve it.
    fn watch_cached(&self, prefix: &str, after: Revision) -> Option<ProgressStream> {
        let mut state = self
            .shared
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !state.ready || after < state.window_start || after > state.revision {
            return None;
        }
        let history: Vec<WatchItem> = state
            .window
            .iter()
            .filter(|e| e.kv.mod_revision > after && e.kv.key.starts_with(prefix))
            .map(|e| WatchItem::Event(Event::clone(e)))
            .collect();
        let (tx, live) = queue(DEFAULT_WATCH_BUFFER_BYTES);
        let after = state.revision;
        state.watchers.push(Watcher {
            prefix: prefix.to_string(),
            after,
            tx,
        });
        self.count(true);
        Some(
            stream::iter(history.into_iter().map(Ok))
                .chain(live)
                .boxed(),
        )
    }

    /// A watch with bookmarks from memory when the cache can serve it (waiting briefly
    /// for a revision it has not applied yet), else `None`.
    async fn watch_from_cache(&self, prefix: &str, after: Revision) -> Option<ProgressStream> {
        if self.covers(prefix) {
            if let Some(stream) = self.watch_cached(prefix, after) {
                return Some(stream);
            }
            // A revision the cache has not applied yet (a client that just wrote):
            // wait for it rather than open a store watch.
            let behind = {
                let state = self.read();
                state.ready && after > state.revision
            };
            if behind
                && self.wait_for(after).await
                && let Some(stream) = self.watch_cached(prefix, after)
            {
                return Some(stream);
            }
            self.count(false);
        }
        None
    }
}

impl Drop for CachedStore {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Loads the state, then applies the store's events; loads again whenever the watch
/// ends (compaction, a lagging watch, a failed backend), until the store is dropped.
async fn follow(inner: Arc<dyn Store>, shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match load(&inner, &shared).await {
            Ok(mut events) => {
                backoff = Duration::from_millis(50);
                let mut batches = (&mut events).ready_chunks(APPLY_BATCH);
                let mut failure = None;
                while let Some(batch) = batches.next().await {
                    let mut state = shared
                        .state
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    for item in batch {
                        match item {
                            Ok(WatchItem::Event(event)) => state.apply(event, &shared.options),
                            Ok(WatchItem::Progress(revision)) => state.progress(revision),
                            Err(e) => failure = Some(e),
                        }
                        if failure.is_some() {
                            break;
                        }
                    }
                    let revision = state.revision;
                    drop(state);
                    shared.progress.send_replace(Some(revision));
                    if failure.is_some() {
                        break;
                    }
                }
                tracing::info!(error = ?failure, "watch cache: the store watch ended; loading again");
                tokio::time::sleep(backoff).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "watch cache: loading failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
        // Until loaded again, reads go to the store and watchers start over.
        let mut state = shared
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.ready = false;
        for w in state.watchers.drain(..) {
            w.tx.fail(StoreError::WatchLagged);
        }
        state.objects.clear();
        state.window.clear();
        state.window_cost = 0;
        drop(state);
        shared.progress.send_replace(None);
    }
}

/// Reads every cached prefix at one revision, installs it, and returns the store watch
/// that continues from there.
async fn load(inner: &Arc<dyn Store>, shared: &Shared) -> Result<ProgressStream, StoreError> {
    let revision = inner.current_revision().await?;
    let mut objects = BTreeMap::new();
    for prefix in &shared.options.prefixes {
        let mut start_after = None;
        loop {
            let page = inner
                .list(
                    prefix,
                    ListOptions {
                        revision: Some(revision),
                        start_after: start_after.take(),
                        limit: Some(LOAD_PAGE),
                    },
                )
                .await?;
            start_after = page.kvs.last().map(|kv| kv.key.clone());
            for kv in page.kvs {
                if shared.options.keeps(&kv.key) {
                    objects.insert(kv.key.clone(), kv);
                }
            }
            if !page.more {
                break;
            }
        }
    }
    // Every key: the cache's revision moves with every write of the store, so a
    // consistent read knows when it has caught up.
    let events = inner.watch_with_progress("", revision).await?;
    let mut state = shared
        .state
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    state.objects = objects;
    state.revision = revision;
    state.window_start = revision;
    state.ready = true;
    drop(state);
    shared.loads.fetch_add(1, Ordering::Relaxed);
    shared.progress.send_replace(Some(revision));
    tracing::info!(revision, "watch cache: loaded");
    Ok(events)
}

#[async_trait]
impl Store for CachedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        if let Some(kv) = self.get_consistent(key).await {
            self.count(true);
            return Ok(kv);
        }
        // A miss only for a key the cache keeps (not for every other key's read).
        if self.shared.options.keeps(key) {
            self.count(false);
        }
        self.inner.get(key).await
    }

    async fn get_recent(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        if self.covers(key) {
            let state = self.read();
            if state.ready {
                let kv = state.objects.get(key).cloned();
                drop(state);
                self.count(true);
                return Ok(kv);
            }
            self.count(false);
        }
        self.inner.get(key).await
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult, StoreError> {
        if !self.covers(prefix) {
            return self.inner.list(prefix, opts).await;
        }
        match opts.revision {
            Some(r) => self.list_from(prefix, Some(r), opts).await,
            None => {
                // A consistent read: every write acknowledged before now is included.
                let now = self.inner.current_revision().await?;
                if !self.wait_for(now).await {
                    self.count(false);
                    return self.inner.list(prefix, opts).await;
                }
                self.list_from(prefix, None, opts).await
            }
        }
    }

    async fn list_recent(&self, prefix: &str, opts: ListOptions) -> Result<ListResult, StoreError> {
        let revision = opts.revision;
        self.list_from(prefix, revision, opts).await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision, StoreError> {
        self.inner.create(key, value).await
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        self.inner.update(key, value, expected).await
    }

    async fn txn(&self, writes: Vec<crate::TxnWrite>) -> Result<Vec<Revision>, StoreError> {
        self.inner.txn(writes).await
    }

    fn multi_key_txn(&self) -> bool {
        self.inner.multi_key_txn()
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue, StoreError> {
        self.inner.delete(key, expected).await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        match self.watch_from_cache(prefix, after).await {
            Some(items) => Ok(events_only(items)),
            None => self.inner.watch(prefix, after).await,
        }
    }

    async fn watch_with_progress(
        &self,
        prefix: &str,
        after: Revision,
    ) -> Result<ProgressStream, StoreError> {
        match self.watch_from_cache(prefix, after).await {
            Some(items) => Ok(items),
            None => self.inner.watch_with_progress(prefix, after).await,
        }
    }

    async fn claim_compaction(
        &self,
        version: i64,
        revision: Revision,
    ) -> Result<CompactionClaim, StoreError> {
        self.inner.claim_compaction(version, revision).await
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.inner.compact(revision).await?;
        // Watches from before the compacted revision now fail as the store's do.
        let mut state = self
            .shared
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.window_start = state.window_start.max(revision);
        Ok(())
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        self.inner.current_revision().await
    }

    fn local_revision(&self) -> Option<Revision> {
        self.inner.local_revision()
    }

    async fn is_stale(&self, kv: &KeyValue) -> Result<bool, StoreError> {
        self.inner.is_stale(kv).await
    }
}
