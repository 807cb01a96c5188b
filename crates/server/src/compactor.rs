//! Periodic compaction of the store's history, as kube-apiserver does: every
//! `interval`, forget history older than the revision seen one interval earlier, so
//! a watch can resume from any resourceVersion younger than one interval. Calls the
//! store only.

use std::sync::Arc;
use std::time::Duration;

use moor_store::{Revision, Store};

/// Compacts `store` every `interval`, forever.
pub async fn run(store: Arc<dyn Store>, interval: Duration) {
    let mut previous: Option<Revision> = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        previous = step(&store, previous).await;
    }
}

/// One round: compacts to `previous` (if any) and returns the revision to compact to
/// next time.
pub async fn step(store: &Arc<dyn Store>, previous: Option<Revision>) -> Option<Revision> {
    if let Some(rev) = previous.filter(|r| *r > 0) {
        match store.compact(rev).await {
            Ok(()) => tracing::debug!(revision = rev, "compacted store history"),
            Err(e) => tracing::warn!(error = %e, "compaction failed"),
        }
    }
    match store.current_revision().await {
        Ok(rev) => Some(rev),
        Err(e) => {
            tracing::warn!(error = %e, "reading the store revision failed");
            previous
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
        let first = step(&store, None).await;
        assert_eq!(first, Some(1));
        store.update("/a", "2".into(), 1).await.unwrap();
        let second = step(&store, first).await;
        assert_eq!(second, Some(2));
        // Watching from revision 0 now needs compacted history; from 1 it does not.
        assert!(store.watch("/", 0).await.is_err());
        assert!(store.watch("/", 1).await.is_ok());
    }
}
