//! Leader election on a real etcd: one of three candidates leads; when it goes
//! without a word (its renewals stop, as after `kill -9`) another leads within the
//! lease's TTL plus a retry, and the one that went may no longer write through a
//! fence. Another set of candidates on another prefix is a separate election.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moor_server::election::fence::FencedStore;
use moor_server::election::{Backend, Election, LEADER_KEY, LEASE_TTL, RETRY_INTERVAL};
use moor_server::scheduler::Leadership;
use moor_store::{EtcdOptions, EtcdStore, EtcdTls, Store};
use moor_testkit::etcd::Etcd;

async fn connect(etcd: &Etcd, prefix: &str) -> Arc<EtcdStore> {
    let url = format!("etcd://127.0.0.1:{}/{prefix}", etcd.client_port);
    let options = EtcdOptions::from_url(&url, EtcdTls::default()).unwrap();
    Arc::new(EtcdStore::connect(options).await.unwrap())
}

/// The candidates that lead now.
fn leaders(candidates: &[Option<Arc<Election>>]) -> Vec<usize> {
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.as_ref().is_some_and(|c| c.is_leader()))
        .map(|(i, _)| i)
        .collect()
}

async fn wait_for_one_leader(candidates: &[Option<Arc<Election>>], within: Duration) -> usize {
    let start = Instant::now();
    loop {
        let now = leaders(candidates);
        assert!(now.len() <= 1, "two leaders at once: {now:?}");
        if let [one] = now[..] {
            return one;
        }
        assert!(start.elapsed() < within, "no leader within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leads_and_another_takes_over_when_it_goes_silent() {
    let Some(etcd) = tokio::task::block_in_place(Etcd::start) else {
        return;
    };
    let mut candidates = Vec::new();
    let mut stores = Vec::new();
    for i in 0..3 {
        let store = connect(&etcd, "moor-election").await;
        stores.push(store.clone());
        candidates.push(Some(
            Election::start(Backend::Etcd(store), format!("candidate-{i}")).unwrap(),
        ));
    }
    let first = wait_for_one_leader(&candidates, Duration::from_secs(10)).await;
    let held = stores[0].get(LEADER_KEY).await.unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&held.value).starts_with(&format!("candidate-{first} ")),
        "{held:?}"
    );
    // Another prefix holds another election, led at the same time.
    let other = Election::start(
        Backend::Etcd(connect(&etcd, "moor-other").await),
        "other".into(),
    )
    .unwrap();
    other.subscribe().wait_for(|l| *l).await.unwrap();

    // The leader freezes: its renewals stop, its lease runs out, and it still
    // believes it leads.
    let gone = candidates[first].take().unwrap();
    let fenced = FencedStore::wrap(stores[first].clone() as Arc<dyn Store>, gone.clone());
    fenced.create("/before", "1".into()).await.unwrap();
    let silent_at = Instant::now();
    gone.halt();
    let next = wait_for_one_leader(&candidates, LEASE_TTL * 2).await;
    let takeover = silent_at.elapsed();
    println!("takeover after the leader went silent: {takeover:?}");
    assert_ne!(next, first);
    assert!(
        takeover < LEASE_TTL + RETRY_INTERVAL * 3,
        "takeover took {takeover:?}"
    );
    // The old leader's fenced writes are refused by now (its deadline passed before
    // its lease could expire, so before anyone else could lead).
    let refused = fenced.create("/after", "1".into()).await;
    assert!(
        gone.is_leader(),
        "the frozen leader still believes it leads"
    );
    assert!(refused.is_err(), "a stale leader wrote: {refused:?}");
    assert!(stores[next].get("/after").await.unwrap().is_none());
    let held = stores[next].get(LEADER_KEY).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&held.value).starts_with(&format!("candidate-{next} ")));
    assert!(other.is_leader(), "the other election is untouched");
}

/// A leader that stops cleanly resigns: its controllers stop and its fenced writes
/// are refused at once, the leader key goes with its lease, and another candidate
/// leads within a retry rather than after the lease's TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_resigns_hands_over_within_a_retry() {
    let Some(etcd) = tokio::task::block_in_place(Etcd::start) else {
        return;
    };
    let mut candidates = Vec::new();
    let mut stores = Vec::new();
    for i in 0..2 {
        let store = connect(&etcd, "moor-resign").await;
        stores.push(store.clone());
        candidates.push(Some(
            Election::start(Backend::Etcd(store), format!("candidate-{i}")).unwrap(),
        ));
    }
    let first = wait_for_one_leader(&candidates, Duration::from_secs(10)).await;
    let leaving = candidates[first].take().unwrap();
    let fenced = FencedStore::wrap(stores[first].clone() as Arc<dyn Store>, leaving.clone());
    let resigned_at = Instant::now();
    leaving.resign().await;
    assert!(!leaving.is_leader() && !leaving.may_write());
    let refused = fenced.create("/after-resign", "1".into()).await;
    assert!(refused.is_err(), "a resigned leader wrote: {refused:?}");
    let next = wait_for_one_leader(&candidates, LEASE_TTL).await;
    let takeover = resigned_at.elapsed();
    println!("takeover after the leader resigned: {takeover:?}");
    assert_ne!(next, first);
    assert!(
        takeover < RETRY_INTERVAL * 3,
        "takeover took {takeover:?}: the lease was not revoked"
    );
}
