//! Runs the conformance suite against every backend of this crate.

use std::sync::atomic::{AtomicUsize, Ordering};

use moor_store::{MemoryStore, SqliteStore, Store as _, conformance};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms() {
    conformance::run_all(|| async { MemoryStore::new() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let n = AtomicUsize::new(0);
    conformance::run_all(|| {
        let path = dir
            .path()
            .join(format!("store-{}.db", n.fetch_add(1, Ordering::Relaxed)));
        async move { SqliteStore::open(&path).unwrap() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_memory_store_conforms() {
    conformance::run_all(|| async { SqliteStore::open_in_memory().unwrap() }).await;
}

use crate::support;
use support::{etcd_peer, etcd_store};

/// The whole suite, unchanged, each case on a fresh etcd: a fresh etcd is at revision 1,
/// which the store shows as 0 (see the etcd module's revision offset).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_store_conforms() {
    if !etcd_peer::available() {
        return;
    }
    let mut running: Option<etcd_peer::Etcd> = None;
    conformance::run_all(|| {
        // The previous case's store is gone: stop its etcd before starting the next.
        running = None;
        let etcd = tokio::task::block_in_place(etcd_peer::Etcd::start);
        let endpoint = etcd.endpoint.clone();
        running = Some(etcd);
        async move { etcd_store(vec![endpoint], "/moor").await }
    })
    .await;
}

/// Several data sets in one etcd, each under its own prefix (`/set1` next to `/set10`),
/// sharing its revision counter: the cases where other data sets' keys and revisions
/// could show (the suite's non-exclusive mode), each on the prefix of a new store while
/// the earlier ones keep their keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_stores_share_one_etcd_under_their_prefixes() {
    if !etcd_peer::available() {
        return;
    }
    let etcd = tokio::task::block_in_place(etcd_peer::Etcd::start);
    let mut n = 0;
    let mut store = || {
        n += 1;
        etcd_store(vec![etcd.endpoint.clone()], format!("/set{n}"))
    };
    for _ in 0..9 {
        conformance::get_create_update_delete(store().await).await;
    }
    conformance::list_by_prefix(store().await).await;
    conformance::list_paging(store().await).await;
    conformance::list_at_revision(store().await).await;
    conformance::watch_replays_history(store().await).await;
    conformance::watch_no_gap_under_concurrent_writes(store().await).await;
    conformance::compaction(store().await).await;
    conformance::list_by_prefix(store().await).await;
    // The first data set still holds only its own keys.
    let first = etcd_store(vec![etcd.endpoint.clone()], "/set1").await;
    let listed = first.list("", Default::default()).await.unwrap();
    let keys: Vec<&str> = listed.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/basics/a", "/basics/binary"]);
}

/// The multi-key transaction alone, on every backend (the outbox's primitive).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_key_transaction_on_every_backend() {
    conformance::multi_key_transaction(MemoryStore::new()).await;
    conformance::multi_key_transaction(SqliteStore::open_in_memory().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    conformance::multi_key_transaction(SqliteStore::open(&dir.path().join("s.db")).unwrap()).await;
    if etcd_peer::available() {
        let etcd = tokio::task::block_in_place(etcd_peer::Etcd::start);
        conformance::multi_key_transaction(etcd_store(vec![etcd.endpoint.clone()], "/moor").await)
            .await;
    }
}

/// etcd in kine mode (`kine://`): a transaction of two writes is refused as kine
/// refuses it, one of one write is that write; the cases that use single-key writes
/// only pass as on etcd (each under its own prefix of one etcd).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kine_mode_refuses_multi_key_transactions_and_conforms_otherwise() {
    if !etcd_peer::available() {
        return;
    }
    let etcd = tokio::task::block_in_place(etcd_peer::Etcd::start);
    let mut n = 0;
    let mut store = || {
        n += 1;
        let mut options = support::etcd_options(vec![etcd.endpoint.clone()], format!("/kine{n}"));
        options.kine = true;
        async move { moor_store::EtcdStore::connect(options).await.unwrap() }
    };
    let kine = store().await;
    assert!(!kine.multi_key_txn());
    conformance::multi_key_transaction(kine).await;
    conformance::get_create_update_delete(store().await).await;
    conformance::stale_revision_conflicts(store().await).await;
    conformance::list_at_revision(store().await).await;
    conformance::watch_replays_history(store().await).await;
    conformance::concurrent_per_key_writes(store().await).await;
    // The same etcd without kine mode takes both writes.
    let etcd_mode = etcd_store(vec![etcd.endpoint.clone()], "/etcd").await;
    assert!(etcd_mode.multi_key_txn());
    conformance::multi_key_transaction(etcd_mode).await;
}
