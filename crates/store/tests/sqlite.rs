//! SQLite-only properties: data and revision counter survive reopening, acknowledged
//! writes survive kill -9 of the writing process, and listing 10,000 keys is fast.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use moor_store::{EventKind, ListOptions, SqliteStore, Store};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_data_history_and_revision_counter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/moor.db");
    let (listed, current, compacted_at) = {
        let store = SqliteStore::open(&path).unwrap();
        for i in 0..100 {
            store
                .create(&format!("/r/{i:03}"), b(&format!("v{i}")))
                .await
                .unwrap();
        }
        for i in 0..100 {
            let kv = store.get(&format!("/r/{i:03}")).await.unwrap().unwrap();
            store
                .update(&kv.key, b(&format!("w{i}")), kv.mod_revision)
                .await
                .unwrap();
        }
        let compacted_at = store.current_revision().await.unwrap();
        store.compact(compacted_at).await.unwrap();
        for i in (0..100).step_by(3) {
            store.delete(&format!("/r/{i:03}"), None).await.unwrap();
        }
        // The newest write is a delete, so the counter is not the newest row's id.
        store.create("/r/last", b("x")).await.unwrap();
        store.delete("/r/last", None).await.unwrap();
        let listed = store.list("/r/", ListOptions::default()).await.unwrap();
        (
            listed,
            store.current_revision().await.unwrap(),
            compacted_at,
        )
    };
    assert_eq!(current, 236);

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.current_revision().await.unwrap(), current);
    assert_eq!(
        store.list("/r/", ListOptions::default()).await.unwrap(),
        listed
    );
    assert_eq!(listed.kvs.len(), 66);
    assert_eq!(store.get("/r/001").await.unwrap().unwrap().value, b("w1"));
    assert!(
        store
            .list(
                "/r/",
                ListOptions {
                    revision: Some(compacted_at - 1),
                    ..Default::default()
                }
            )
            .await
            .is_err()
    );
    // History after the compacted revision is still there to watch.
    let mut watch = store.watch("/r/", compacted_at).await.unwrap();
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(
        (first.kind, first.kv.key.as_str(), first.kv.mod_revision),
        (EventKind::Delete, "/r/000", compacted_at + 1)
    );
    assert_eq!(store.create("/r/after", b("y")).await.unwrap(), current + 1);
    // Compact the newest tombstone, reopen again: still no revision reused.
    store.delete("/r/after", None).await.unwrap();
    store.compact(current + 2).await.unwrap();
    drop(watch);
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.current_revision().await.unwrap(), current + 2);
    assert_eq!(store.create("/r/again", b("z")).await.unwrap(), current + 3);
}

const CHILD_DB: &str = "MOOR_STORE_TEST_CHILD_DB";

/// Not a test by itself: the writer process of `acknowledged_writes_survive_kill_9`.
/// Writes from many tasks, printing each acknowledged write, until killed.
#[test]
#[ignore = "run by acknowledged_writes_survive_kill_9 in a child process"]
fn child_writer_process() {
    let Some(path) = std::env::var_os(CHILD_DB) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = Arc::new(SqliteStore::open(std::path::Path::new(&path)).unwrap());
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    for i in 0..10_000 {
                        let key = format!("/kill/{t:02}/{i:05}");
                        let revision = store
                            .create(&key, Bytes::from(vec![7u8; 512]))
                            .await
                            .unwrap();
                        println!("ACK {key} {revision}");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kill.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sqlite::child_writer_process",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let acks = tokio::task::spawn_blocking(move || {
        let mut acks = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(ack) = line.strip_prefix("ACK ") {
                let (key, revision) = ack.split_once(' ').unwrap();
                acks.push((key.to_owned(), revision.parse::<i64>().unwrap()));
                if acks.len() == 2000 {
                    break;
                }
            }
        }
        acks
    });
    let acks = tokio::time::timeout(Duration::from_secs(120), acks)
        .await
        .unwrap()
        .unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(acks.len(), 2000, "the child stopped early");

    let store = SqliteStore::open(&path).unwrap();
    let current = store.current_revision().await.unwrap();
    for (key, revision) in &acks {
        let kv = store
            .get(key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged {key} lost"));
        assert_eq!(kv.mod_revision, *revision);
        assert!(*revision <= current);
    }
    let listed = store.list("/kill/", ListOptions::default()).await.unwrap();
    assert!(listed.kvs.len() >= acks.len());
    // The store goes on from where the killed process stopped.
    assert_eq!(
        store.create("/kill/after", b("x")).await.unwrap(),
        current + 1
    );
}

/// Creates 10,000 keys of 1 KB from 100 concurrent tasks, then lists them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_keys_create_and_list() {
    const KEYS: usize = 10_000;
    const TASKS: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("bench.db")).unwrap());
    let value = Bytes::from(vec![b'x'; 1024]);
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = Arc::clone(&store);
            let value = value.clone();
            tokio::spawn(async move {
                for i in (t..KEYS).step_by(TASKS) {
                    store
                        .create(&format!("/bench/ns/{i:05}"), value.clone())
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let created = start.elapsed();
    // Other keys around the prefix, and history, which a list must skip.
    store.create("/bench/other", value.clone()).await.unwrap();
    for i in 0..1000 {
        let key = format!("/bench/ns/{i:05}");
        let kv = store.get(&key).await.unwrap().unwrap();
        store
            .update(&key, value.clone(), kv.mod_revision)
            .await
            .unwrap();
    }
    let mut lists = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let listed = store
            .list("/bench/ns/", ListOptions::default())
            .await
            .unwrap();
        lists.push(start.elapsed());
        assert_eq!(listed.kvs.len(), KEYS);
    }
    let start = Instant::now();
    let mut pages = 0;
    let mut opts = ListOptions {
        limit: Some(500),
        ..ListOptions::default()
    };
    loop {
        let page = store.list("/bench/ns/", opts.clone()).await.unwrap();
        pages += 1;
        if !page.more {
            break;
        }
        opts.revision = Some(page.revision);
        opts.start_after = page.kvs.last().map(|kv| kv.key.clone());
    }
    let paged = start.elapsed();
    assert_eq!(pages, KEYS / 500);
    let start = Instant::now();
    for i in 0..1000 {
        store
            .get(&format!("/bench/ns/{:05}", i * 7))
            .await
            .unwrap()
            .unwrap();
    }
    let gets = start.elapsed();
    eprintln!(
        "sqlite: created {KEYS} keys of 1 KB in {created:?}; listed them in {lists:?}; \
         paged by 500 in {paged:?}; 1000 gets in {gets:?}"
    );
    let best = lists.iter().min().unwrap();
    assert!(
        *best < Duration::from_secs(2),
        "listing {KEYS} keys took {best:?}"
    );
}
