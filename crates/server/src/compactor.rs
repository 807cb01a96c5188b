//! Periodic compaction of the store's history, as kube-apiserver does: every
//! `interval`, forget history older than the revision seen one interval earlier, so
//! a watch can resume from any resourceVersion younger than one interval. On a store
//! several processes share (etcd), one of them compacts per round: the one that wins
//! the round's election ([`Store::claim_compaction`], kube-apiserver's compare-and-swap
//! of `compact_rev_key`); the others wait a full interval. Calls the store only.

use std::sync::Arc;
use std::time::Duration;

use moor_store::{Revision, Store};

/// What a compactor carries from one round to the next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// The compaction key's version this process saw last.
    pub version: i64,
    /// The store's revision at the last round: what a win compacts to.
    pub revision: Revision,
}

/// Compacts `store` every `interval`, forever.
pub async fn run(store: Arc<dyn Store>, interval: Duration) {
    let mut round = Round::default();
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        round = step(&store, round).await.0;
    }
}

/// One round: claims the compaction and, if won, compacts to `last.revision` (unless
/// 0: nothing is compacted on bootstrap). Returns the next round's state and whether
/// this process compacted.
pub async fn step(store: &Arc<dyn Store>, last: Round) -> (Round, bool) {
    let claim = match store.claim_compaction(last.version, last.revision).await {
        Ok(claim) => claim,
        Err(e) => {
            tracing::warn!(error = %e, "claiming the compaction failed");
            return (last, false);
        }
    };
    let next = Round {
        version: claim.version,
        revision: claim.revision,
    };
    if !claim.won || last.revision <= 0 {
        return (next, false);
    }
    match store.compact(last.revision).await {
        Ok(()) => {
            tracing::debug!(revision = last.revision, "compacted store history");
            (next, true)
        }
        Err(e) => {
            tracing::warn!(error = %e, "compaction failed");
            (next, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moor_store::MemoryStore;

    #[tokio::test]
    async fn compacts_to_the_revision_of_the_previous_round() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        store.create("/a", "1".into()).await.unwrap();
        let (first, compacted) = step(&store, Round::default()).await;
        assert_eq!((first.revision, compacted), (1, false));
        store.update("/a", "2".into(), 1).await.unwrap();
        let (second, compacted) = step(&store, first).await;
        assert_eq!((second.revision, compacted), (2, true));
        // Watching from revision 0 now needs compacted history; from 1 it does not.
        assert!(store.watch("/", 0).await.is_err());
        assert!(store.watch("/", 1).await.is_ok());
    }

    /// Two processes on one etcd run the compactor's rounds in turn: exactly one of
    /// them compacts per round (the compaction key's version grows by one a round), to
    /// the revision of its previous round; when one stops, the other goes on alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_etcd_one_process_compacts_per_round() {
        use moor_store::{EtcdOptions, EtcdStore, EtcdTls, ListOptions, StoreError};
        let Some(etcd) = tokio::task::block_in_place(moor_testkit::etcd::Etcd::start) else {
            return;
        };
        let url = format!("etcd://127.0.0.1:{}/moor", etcd.client_port);
        let open = || async {
            let options = EtcdOptions::from_url(&url, EtcdTls::default()).unwrap();
            Arc::new(EtcdStore::connect(options).await.unwrap()) as Arc<dyn Store>
        };
        let (a, b) = (open().await, open().await);
        let (mut ra, mut rb) = (Round::default(), Round::default());
        let mut winners = Vec::new();
        let mut previous_revision = 0;
        for round in 0..6 {
            let written = a.create(&format!("/k/{round}"), "x".into()).await.unwrap();
            // The two processes' timers are not in step: either may go first.
            let (ca, cb);
            if round % 2 == 0 {
                (ra, ca) = step(&a, ra).await;
                (rb, cb) = step(&b, rb).await;
            } else {
                (rb, cb) = step(&b, rb).await;
                (ra, ca) = step(&a, ra).await;
            }
            assert!(!(ca && cb), "round {round}: both compacted");
            if round > 0 {
                assert!(ca || cb, "round {round}: nobody compacted");
                winners.push(if ca { 'a' } else { 'b' });
                // Compacted at the revision of the previous round, not later.
                let at = |revision| ListOptions {
                    revision: Some(revision),
                    ..Default::default()
                };
                let below = a.list("/k/", at(previous_revision - 1)).await;
                assert!(
                    matches!(below, Err(StoreError::Compacted { .. })),
                    "{below:?}"
                );
                a.list("/k/", at(previous_revision)).await.unwrap();
            }
            previous_revision = ra.revision.max(rb.revision);
            assert!(previous_revision >= written);
            assert_eq!(ra.version, rb.version, "both saw the key's new version");
            assert_eq!(ra.version, round + 1);
        }
        // Whoever goes first in a round wins it: both won some.
        assert!(
            winners.contains(&'a') && winners.contains(&'b'),
            "{winners:?}"
        );
        // `a` stops; `b` alone compacts, from its next round on.
        let mut compacted = false;
        for round in 0..2 {
            b.create(&format!("/k/b{round}"), "x".into()).await.unwrap();
            let c;
            (rb, c) = step(&b, rb).await;
            compacted |= c;
        }
        assert!(compacted, "the survivor took over");
    }
}
