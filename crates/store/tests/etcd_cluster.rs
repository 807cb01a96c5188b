//! The etcd store on a three-member etcd cluster whose leader is killed with `kill -9`
//! while eight writers run: no acknowledged write is lost, a watch from revision 0 sees
//! every write once and in order, and the writes that failed are counted (the goal is
//! none: each request retries on another member within its deadline).

use crate::support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use moor_store::Store as _;
use support::{etcd_options, etcd_peer};

/// The index of the member that is the leader, from each member's status.
async fn leader(endpoints: &[String]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for (i, endpoint) in endpoints.iter().enumerate() {
            let Ok(mut client) = etcd_client::Client::connect([endpoint], None).await else {
                continue;
            };
            if let Ok(status) = client.status().await
                && status.leader() != 0
                && status.leader() == status.header().map_or(0, |h| h.member_id())
            {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leader_loses_no_acknowledged_write() {
    if !etcd_peer::available() {
        return;
    }
    let mut cluster = tokio::task::block_in_place(|| etcd_peer::Cluster::start(3));
    let leader = leader(&cluster.endpoints).await;
    // The leader first: the store sends to it until it dies.
    let mut endpoints = cluster.endpoints.clone();
    endpoints.rotate_left(leader);
    let store = Arc::new(
        moor_store::EtcdStore::connect(etcd_options(endpoints, "/moor"))
            .await
            .unwrap(),
    );
    let mut watch = store.watch("/w/", 0).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (store, stop, failed) = (store.clone(), stop.clone(), failed.clone());
        writers.push(tokio::spawn(async move {
            // Each acknowledged write: key and revision; slow ones noted.
            let mut acked = Vec::new();
            let mut slowest = Duration::ZERO;
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                let key = format!("/w/{w}/{n:05}");
                let started = Instant::now();
                match store.create(&key, format!("{w}-{n}").into()).await {
                    Ok(revision) => acked.push((key, revision, Instant::now())),
                    Err(e) => {
                        eprintln!("writer {w}: {key}: {e}");
                        failed.fetch_add(1, Ordering::AcqRel);
                    }
                }
                slowest = slowest.max(started.elapsed());
                n += 1;
            }
            (acked, slowest)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed_at = Instant::now();
    tokio::task::block_in_place(|| cluster.kill(leader));
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Release);
    let mut acked = BTreeMap::new();
    let mut slowest = Duration::ZERO;
    let mut after_kill = 0;
    for writer in writers {
        let (writes, slow) = writer.await.unwrap();
        for (key, revision, at) in writes {
            after_kill += usize::from(at > killed_at);
            acked.insert(key, revision);
        }
        slowest = slowest.max(slow);
    }
    let failed = failed.load(Ordering::Acquire);
    eprintln!(
        "3-member failover: {} writes acknowledged ({after_kill} after the kill), {failed} failed ({:.2}%), slowest write {slowest:?}, {:?} since the kill",
        acked.len(),
        100.0 * failed as f64 / (acked.len() + failed).max(1) as f64,
        killed_at.elapsed(),
    );
    assert!(after_kill > 0, "writes went on after the kill");

    // Every acknowledged write is there, at its revision (one list, not a get each).
    let listed = store.list("/w/", Default::default()).await.unwrap();
    let found: BTreeMap<&str, i64> = listed
        .kvs
        .iter()
        .map(|kv| (kv.key.as_str(), kv.mod_revision))
        .collect();
    for (key, revision) in &acked {
        assert_eq!(found.get(key.as_str()), Some(revision), "{key}");
    }
    // The watch saw every key that exists, once, in revision order; no other.
    let mut seen = Vec::new();
    while seen.len() < listed.kvs.len() {
        let event = tokio::time::timeout(Duration::from_secs(15), watch.next())
            .await
            .expect("the watch goes on")
            .expect("the watch is open")
            .expect("no watch error");
        seen.push((event.kv.key, event.kv.mod_revision));
    }
    assert!(
        seen.windows(2).all(|p| p[0].1 < p[1].1),
        "revisions strictly increase"
    );
    let mut by_key: Vec<_> = seen.clone();
    by_key.sort();
    let listed: Vec<_> = listed
        .kvs
        .into_iter()
        .map(|kv| (kv.key, kv.mod_revision))
        .collect();
    assert_eq!(by_key, listed, "the watch saw exactly the keys written");
    assert_eq!(failed, 0, "no write failed within its deadline");
}
