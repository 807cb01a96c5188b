//! Runs the conformance suite against every backend of this crate.

use std::sync::atomic::{AtomicUsize, Ordering};

use moor_store::{MemoryStore, SqliteStore, conformance};

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
