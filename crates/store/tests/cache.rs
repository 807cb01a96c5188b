//! The watch cache ([`CachedStore`]): the store conformance suite through it, and its
//! own cases (list then watch under concurrent writes, the byte-bounded window, 410
//! below compaction, a restarted store watch, deletes), on SQLite and on a real etcd.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use moor_store::{
    CacheOptions, CachedStore, EventKind, KeyValue, ListOptions, ListResult, MemoryStore, Revision,
    SqliteStore, Store, StoreError, WatchStream, conformance,
};

use crate::support;
use support::{etcd_peer, etcd_store};

fn cached(inner: Arc<dyn Store>, window_bytes: usize) -> CachedStore {
    CachedStore::new(
        inner,
        CacheOptions {
            prefixes: vec!["/".into()],
            window_bytes,
            catch_up: Duration::from_secs(5),
            ..Default::default()
        },
    )
}

/// Waits for a positive signal: `check` true, polled, failing after 30 s.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn ready(store: &CachedStore) {
    until("cache loaded", || store.stats().ready).await;
}

async fn list_all(store: &dyn Store, prefix: &str) -> ListResult {
    store.list(prefix, ListOptions::default()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_memory_store_conforms() {
    conformance::run_all(|| async { cached(Arc::new(MemoryStore::new()), 1 << 20) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_sqlite_store_conforms() {
    conformance::run_all(|| async {
        cached(Arc::new(SqliteStore::open_in_memory().unwrap()), 1 << 20)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_etcd_store_conforms() {
    if !etcd_peer::available() {
        return;
    }
    let mut running: Option<etcd_peer::Etcd> = None;
    conformance::run_all(|| {
        running = None;
        let etcd = tokio::task::block_in_place(etcd_peer::Etcd::start);
        let endpoint = etcd.endpoint.clone();
        running = Some(etcd);
        async move { cached(Arc::new(etcd_store(vec![endpoint], "/moor").await), 1 << 20) }
    })
    .await;
}

/// Runs `case` on a cached SQLite store and on a cached etcd store.
async fn on_both<F, Fut>(case: F)
where
    F: Fn(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    case(Arc::new(SqliteStore::open_in_memory().unwrap())).await;
    if etcd_peer::available() {
        let etcd = tokio::task::block_in_place(etcd_peer::Etcd::start);
        case(Arc::new(
            etcd_store(vec![etcd.endpoint.clone()], "/moor").await,
        ))
        .await;
    }
}

/// Lists at X (from memory) then watches from X while 4 writers create, update and
/// delete: list plus events equal the final state, and no event comes twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_list_then_a_watch_from_its_revision_see_every_later_write_once() {
    on_both(|inner| async move {
        let store = Arc::new(cached(inner, 1 << 20));
        ready(&store).await;
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0..60 {
                        let key = format!("/c/{w}-{}", i % 20);
                        match store.get(&key).await.unwrap() {
                            Some(kv) if i % 3 == 0 => {
                                store.delete(&key, None).await.unwrap();
                                let _ = kv;
                            }
                            Some(kv) => {
                                store
                                    .update(&key, Bytes::from(format!("{i}")), kv.mod_revision)
                                    .await
                                    .unwrap();
                            }
                            None => {
                                store
                                    .create(&key, Bytes::from(format!("{i}")))
                                    .await
                                    .unwrap();
                            }
                        }
                    }
                })
            })
            .collect();
        // Mid-burst: list, then watch from the list's revision.
        until("writes under way", || store.stats().revision > 20).await;
        let listed = list_all(store.as_ref(), "/c/").await;
        let mut state: BTreeMap<String, KeyValue> = listed
            .kvs
            .into_iter()
            .map(|kv| (kv.key.clone(), kv))
            .collect();
        let mut watch = store.watch("/c/", listed.revision).await.unwrap();
        for w in writers {
            w.await.unwrap();
        }
        let last = store.current_revision().await.unwrap();
        let mut seen = listed.revision;
        while seen < last {
            let ev = tokio::time::timeout(Duration::from_secs(30), watch.next())
                .await
                .expect("an event")
                .expect("open")
                .expect("no error");
            assert!(
                ev.kv.mod_revision > seen,
                "in order, once: {ev:?} after {seen}"
            );
            seen = ev.kv.mod_revision;
            match ev.kind {
                EventKind::Put => state.insert(ev.kv.key.clone(), ev.kv),
                EventKind::Delete => state.remove(&ev.kv.key),
            };
        }
        let now = list_all(store.as_ref(), "/c/").await;
        assert_eq!(state.into_values().collect::<Vec<_>>(), now.kvs);
        assert!(store.stats().hits > 0, "served from memory");
    })
    .await;
}

/// The window is bounded by bytes: large events evict older ones. A watch from before
/// the window is served by the store while it has the history, and fails with
/// `Compacted` (410) once the store compacted it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_window_is_bounded_by_bytes_and_older_watches_go_to_the_store() {
    on_both(|inner| async move {
        let store = cached(inner, 64 * 1024);
        ready(&store).await;
        let start = store.current_revision().await.unwrap();
        let big = Bytes::from(vec![b'x'; 8 * 1024]);
        let mut last = start;
        for i in 0..40 {
            last = store
                .create(&format!("/w/{i:02}"), big.clone())
                .await
                .unwrap();
        }
        until("applied", || store.stats().revision >= last).await;
        let stats = store.stats();
        assert!(stats.window_bytes <= 64 * 1024, "{stats:?}");
        assert!(stats.window_events < 40, "{stats:?}");
        assert!(stats.window_start > start, "{stats:?}");
        // Before the window, not compacted: the store replays it.
        let misses = store.stats().misses;
        let mut old = store.watch("/w/", start).await.unwrap();
        let first = old.next().await.unwrap().unwrap();
        assert_eq!(first.kv.key, "/w/00");
        assert_eq!(store.stats().misses, misses + 1);
        // Inside the window: from memory.
        let hits = store.stats().hits;
        let mut recent = store.watch("/w/", last - 1).await.unwrap();
        assert_eq!(recent.next().await.unwrap().unwrap().kv.key, "/w/39");
        assert_eq!(store.stats().hits, hits + 1);
        // Compacted: 410.
        store.compact(last).await.unwrap();
        match store.watch("/w/", start).await {
            Err(StoreError::Compacted { .. }) => {}
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a watch below the compacted revision was served"),
        }
    })
    .await;
}

/// Deletes leave the cached lists and reach cached watches; `get_recent` and
/// `list_recent` answer from memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deletes_are_visible_in_lists_and_watches() {
    on_both(|inner| async move {
        let store = cached(inner, 1 << 20);
        ready(&store).await;
        let r = store
            .create("/d/a", Bytes::from_static(b"a"))
            .await
            .unwrap();
        store
            .create("/d/b", Bytes::from_static(b"b"))
            .await
            .unwrap();
        let mut watch = store.watch("/d/", r).await.unwrap();
        let gone = store.delete("/d/a", None).await.unwrap();
        let listed = list_all(&store, "/d/").await;
        assert_eq!(
            listed
                .kvs
                .iter()
                .map(|kv| kv.key.as_str())
                .collect::<Vec<_>>(),
            ["/d/b"]
        );
        let b = watch.next().await.unwrap().unwrap();
        assert_eq!((b.kind, b.kv.key.as_str()), (EventKind::Put, "/d/b"));
        let d = watch.next().await.unwrap().unwrap();
        assert_eq!(
            (d.kind, d.kv.mod_revision),
            (EventKind::Delete, gone.mod_revision)
        );
        until("delete applied", || {
            store.stats().revision >= gone.mod_revision
        })
        .await;
        assert_eq!(store.get_recent("/d/a").await.unwrap(), None);
        let recent = store
            .list_recent("/d/", ListOptions::default())
            .await
            .unwrap();
        assert_eq!(recent.kvs, listed.kvs);
    })
    .await;
}

/// A store whose watches the test can end with an error, as a compaction or a lagging
/// watch ends them.
struct Breakable {
    inner: Arc<dyn Store>,
    breakers: Mutex<Vec<tokio::sync::oneshot::Sender<()>>>,
}

impl Breakable {
    fn break_watches(&self) {
        for b in self.breakers.lock().unwrap().drain(..) {
            let _ = b.send(());
        }
    }
}

#[async_trait]
impl Store for Breakable {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult, StoreError> {
        self.inner.list(prefix, opts).await
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
    async fn txn(&self, writes: Vec<moor_store::TxnWrite>) -> Result<Vec<Revision>, StoreError> {
        self.inner.txn(writes).await
    }
    fn multi_key_txn(&self) -> bool {
        self.inner.multi_key_txn()
    }
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue, StoreError> {
        self.inner.delete(key, expected).await
    }
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let events = self.inner.watch(prefix, after).await?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.breakers.lock().unwrap().push(tx);
        let broken = futures::stream::once(rx).map(|_| {
            Err(StoreError::Compacted {
                requested: 0,
                compacted: 0,
            })
        });
        Ok(futures::stream::select(events, broken)
            .scan(false, |ended, r| {
                if *ended {
                    return futures::future::ready(None);
                }
                *ended = r.is_err();
                futures::future::ready(Some(r))
            })
            .boxed())
    }
    /// Through [`watch`](Self::watch), so that the cache's own watch breaks too.
    async fn watch_with_progress(
        &self,
        prefix: &str,
        after: Revision,
    ) -> Result<moor_store::ProgressStream, StoreError> {
        moor_store::watch_without_progress(self, prefix, after).await
    }
    async fn claim_compaction(
        &self,
        version: i64,
        revision: Revision,
    ) -> Result<moor_store::CompactionClaim, StoreError> {
        self.inner.claim_compaction(version, revision).await
    }
    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.inner.compact(revision).await
    }
    async fn current_revision(&self) -> Result<Revision, StoreError> {
        self.inner.current_revision().await
    }
}

/// When the store watch under the cache ends, the cache loads again and keeps serving:
/// its watchers end (so they list again), writes made meanwhile are listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_store_watch_loads_again_and_keeps_serving() {
    on_both(|inner| async move {
        let breakable = Arc::new(Breakable {
            inner,
            breakers: Mutex::new(Vec::new()),
        });
        let store = cached(breakable.clone(), 1 << 20);
        ready(&store).await;
        let r = store
            .create("/r/a", Bytes::from_static(b"a"))
            .await
            .unwrap();
        // The watch must come from the cache (a store watch breaks with the store's
        // own error): wait until it is ready with the write (under load an etcd watch
        // may have restarted it meanwhile).
        until("applied", || {
            let stats = store.stats();
            stats.ready && stats.revision >= r
        })
        .await;
        let mut watch = store.watch("/r/", r).await.unwrap();
        breakable.break_watches();
        let ended = watch.next().await;
        assert!(
            matches!(ended, Some(Err(StoreError::WatchLagged))),
            "the cache's watchers end: {ended:?}"
        );
        store
            .create("/r/b", Bytes::from_static(b"b"))
            .await
            .unwrap();
        until("loaded again", || {
            store.stats().loads >= 2 && store.stats().ready
        })
        .await;
        let listed = list_all(&store, "/r/").await;
        assert_eq!(listed.kvs.len(), 2);
        let hits = store.stats().hits;
        let mut again = store.watch("/r/", listed.revision).await.unwrap();
        assert_eq!(store.stats().hits, hits + 1, "watched from memory again");
        let c = store
            .create("/r/c", Bytes::from_static(b"c"))
            .await
            .unwrap();
        assert_eq!(again.next().await.unwrap().unwrap().kv.mod_revision, c);
    })
    .await;
}

/// Read-your-writes through `get`: each write, acknowledged, is what the next `get`
/// returns. Where the store knows its revision in process (SQLite, memory) the cache
/// answers every one; on etcd every `get` reads the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_get_sees_the_write_acknowledged_just_before_it() {
    let case = |inner: Arc<dyn Store>| async move {
        let local = inner.local_revision().is_some();
        let store = Arc::new(cached(inner, 1 << 20));
        ready(&store).await;
        let mut r = store
            .create("/g/a", Bytes::from_static(b"0"))
            .await
            .unwrap();
        let before = store.stats();
        for i in 1..=200 {
            let value = Bytes::from(i.to_string());
            r = store.update("/g/a", value.clone(), r).await.unwrap();
            let got = store.get("/g/a").await.unwrap().unwrap();
            assert_eq!((got.value, got.mod_revision), (value, r), "write {i}");
        }
        let deleted = store.delete("/g/a", None).await.unwrap();
        assert_eq!(store.get("/g/a").await.unwrap(), None, "deleted");
        assert!(store.stats().revision >= deleted.mod_revision || !local);
        let after = store.stats();
        if local {
            assert_eq!(after.hits - before.hits, 201, "{after:?}");
            assert_eq!(after.misses, before.misses, "{after:?}");
        } else {
            assert_eq!(after.misses - before.misses, 201, "{after:?}");
        }
    };
    case(Arc::new(MemoryStore::new())).await;
    on_both(case).await;
}

/// Writers on other tasks: a reader that saw a write acknowledged (through a channel)
/// never reads an older value.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_get_sees_writes_acknowledged_to_other_tasks() {
    let inner: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    let store = Arc::new(cached(inner, 1 << 20));
    ready(&store).await;
    let r = store
        .create("/o/a", Bytes::from_static(b"0"))
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut r = r;
            for i in 1..=200u32 {
                r = store
                    .update("/o/a", Bytes::from(i.to_string()), r)
                    .await
                    .unwrap();
                tx.send((i, r)).unwrap();
            }
        })
    };
    while let Some((i, r)) = rx.recv().await {
        let got = store.get("/o/a").await.unwrap().unwrap();
        assert!(
            got.mod_revision >= r,
            "write {i} at {r}, read {}",
            got.mod_revision
        );
    }
    writer.await.unwrap();
}

/// A cache that cannot catch up (its store watch delivers nothing) does not hold a
/// `get` longer than the catch-up time, nor answer it from a stale copy: the store
/// answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_get_reads_the_store_when_the_cache_cannot_catch_up() {
    let frozen = Arc::new(Frozen(Arc::new(MemoryStore::new())));
    let store = CachedStore::new(
        frozen,
        CacheOptions {
            prefixes: vec!["/".into()],
            catch_up: Duration::from_millis(100),
            ..Default::default()
        },
    );
    ready(&store).await;
    let r = store
        .create("/f/a", Bytes::from_static(b"a"))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let got = store.get("/f/a").await.unwrap().unwrap();
    assert_eq!(got.mod_revision, r);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(store.stats().hits, 0);
    assert!(store.stats().misses >= 1);
}

/// A store whose watches never deliver an event, so a cache over it never catches up.
struct Frozen(Arc<dyn Store>);

#[async_trait]
impl Store for Frozen {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.0.get(key).await
    }
    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult, StoreError> {
        self.0.list(prefix, opts).await
    }
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision, StoreError> {
        self.0.create(key, value).await
    }
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        self.0.update(key, value, expected).await
    }
    async fn txn(&self, writes: Vec<moor_store::TxnWrite>) -> Result<Vec<Revision>, StoreError> {
        self.0.txn(writes).await
    }
    fn multi_key_txn(&self) -> bool {
        self.0.multi_key_txn()
    }
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue, StoreError> {
        self.0.delete(key, expected).await
    }
    async fn watch(&self, _prefix: &str, _after: Revision) -> Result<WatchStream, StoreError> {
        Ok(futures::stream::pending().boxed())
    }
    async fn watch_with_progress(
        &self,
        prefix: &str,
        after: Revision,
    ) -> Result<moor_store::ProgressStream, StoreError> {
        moor_store::watch_without_progress(self, prefix, after).await
    }
    async fn claim_compaction(
        &self,
        version: i64,
        revision: Revision,
    ) -> Result<moor_store::CompactionClaim, StoreError> {
        self.0.claim_compaction(version, revision).await
    }
    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.0.compact(revision).await
    }
    async fn current_revision(&self) -> Result<Revision, StoreError> {
        self.0.current_revision().await
    }
    fn local_revision(&self) -> Option<Revision> {
        self.0.local_revision()
    }
}

/// Hits and misses count only reads of what the cache keeps: a key or prefix outside
/// it is the store's own read, neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_outside_the_cached_prefixes_count_neither_hit_nor_miss() {
    let store = Arc::new(CachedStore::new(
        Arc::new(MemoryStore::new()),
        CacheOptions {
            prefixes: vec!["/c/".into()],
            window_bytes: 1 << 20,
            catch_up: Duration::from_secs(5),
            ..Default::default()
        },
    ));
    ready(&store).await;
    store
        .create("/c/a", Bytes::from_static(b"a"))
        .await
        .unwrap();
    store
        .create("/o/a", Bytes::from_static(b"a"))
        .await
        .unwrap();
    let before = store.stats();
    assert!(store.get("/o/a").await.unwrap().is_some());
    assert!(store.get_recent("/o/a").await.unwrap().is_some());
    assert_eq!(list_all(store.as_ref(), "/o/").await.kvs.len(), 1);
    let _ = store.watch("/o/", 0).await.unwrap();
    let after = store.stats();
    assert_eq!((after.hits, after.misses), (before.hits, before.misses));
    assert!(store.get("/c/a").await.unwrap().is_some());
    assert_eq!(store.stats().hits, before.hits + 1, "a kept key is a hit");
}
