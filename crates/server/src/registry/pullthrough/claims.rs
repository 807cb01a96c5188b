//! Cluster-wide single-flight of pull-through blob fetches, for replicas that share
//! a store and a bucket: before fetching a blob from upstream, a replica claims
//! `/moor/registry/pulls/<digest>` in the store (a create, or a compare-and-swap over
//! an expired claim). The claim names its holder and a deadline, [`CLAIM_TTL`] ahead,
//! which the holder pushes forward every [`RENEW_EVERY`] while it downloads, and
//! deletes once the blob is published (or the fetch failed). Other replicas wait for
//! the blob to appear in the bucket, polling every [`POLL_EVERY`], and take the claim
//! over once its deadline passed without a renewal (the holder died).
//!
//! The deadline is wall-clock time written by one replica and read by another: like
//! any lease it assumes the replicas' clocks agree to well within [`CLAIM_TTL`]
//! (NTP). It lives in the value rather than in an etcd lease so that the claim works
//! on every store (a SQLite file shared by in-process replicas, etcd, kine), with
//! one-key compare-and-swaps only. Calls the store.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use moor_api::Digest;
use moor_store::{Revision, Store, StoreError};
use serde::{Deserialize, Serialize};

/// Where claims live in the store.
pub const PREFIX: &str = "/moor/registry/pulls/";
/// How long a claim holds without a renewal.
pub const CLAIM_TTL: Duration = Duration::from_secs(10);
/// How often the holder renews its claim.
pub const RENEW_EVERY: Duration = Duration::from_secs(3);
/// How often a waiting replica looks for the blob (and at the claim).
pub const POLL_EVERY: Duration = Duration::from_millis(150);

/// A claim's value.
#[derive(Serialize, Deserialize)]
struct ClaimValue {
    holder: String,
    /// Milliseconds since the Unix epoch.
    expires_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// What [`Claims::try_claim`] found.
pub(crate) enum Claimed {
    /// This replica fetches: keep the guard until the blob is published.
    Won(ClaimGuard),
    /// Another fetch (on this replica or another) holds a live claim.
    Held,
}

/// The claims of one replica.
pub(crate) struct Claims {
    store: Arc<dyn Store>,
    holder: String,
}

impl Claims {
    /// Claims made as a fresh holder name (one per replica process).
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Claims {
            store,
            holder: uuid::Uuid::new_v4().to_string(),
        }
    }

    fn value(&self) -> Bytes {
        let v = ClaimValue {
            holder: self.holder.clone(),
            expires_ms: now_ms() + CLAIM_TTL.as_millis() as u64,
        };
        Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
    }

    /// Claims the fetch of `digest`, or says who holds it.
    pub(crate) async fn try_claim(&self, digest: &Digest) -> Result<Claimed, StoreError> {
        let key = format!("{PREFIX}{digest}");
        for _ in 0..3 {
            match self.store.create(&key, self.value()).await {
                Ok(rev) => return Ok(Claimed::Won(self.guard(key, rev))),
                Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
            let Some(kv) = self.store.get(&key).await? else {
                continue; // released meanwhile: create again
            };
            let current: Option<ClaimValue> = serde_json::from_slice(&kv.value).ok();
            let live = current.as_ref().is_some_and(|c| c.expires_ms > now_ms());
            if live {
                return Ok(Claimed::Held);
            }
            // Expired: its holder stopped renewing. Take it over.
            match self.store.update(&key, self.value(), kv.mod_revision).await {
                Ok(rev) => {
                    tracing::info!(%digest, "pull-through: took over an expired fetch claim");
                    return Ok(Claimed::Won(self.guard(key, rev)));
                }
                Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Claimed::Held)
    }

    fn guard(&self, key: String, rev: Revision) -> ClaimGuard {
        let (store, holder) = (self.store.clone(), self.holder.clone());
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task_key = key.clone();
        let task = tokio::spawn(async move {
            let mut rev = rev;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(RENEW_EVERY) => {}
                }
                let v = ClaimValue {
                    holder: holder.clone(),
                    expires_ms: now_ms() + CLAIM_TTL.as_millis() as u64,
                };
                let value = Bytes::from(serde_json::to_vec(&v).unwrap_or_default());
                match store.update(&task_key, value, rev).await {
                    Ok(r) => rev = r,
                    Err(e) => {
                        // Taken over, or the store is away: the fetch goes on, and
                        // at worst another replica fetches too.
                        tracing::warn!(key = %task_key, error = %e, "pull-through: renewing a fetch claim failed");
                        return;
                    }
                }
            }
            // Released: delete the claim if it is still ours.
            if let Err(e) = store.delete(&task_key, Some(rev)).await
                && !matches!(e, StoreError::Conflict { .. } | StoreError::NotFound(_))
            {
                tracing::warn!(key = %task_key, error = %e, "pull-through: releasing a fetch claim failed");
            }
        });
        ClaimGuard {
            stop: Some(stop),
            task: Some(task),
        }
    }
}

/// A won claim: renewed while held, deleted by [`release`](Self::release) (or, when
/// dropped, in the background).
pub(crate) struct ClaimGuard {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ClaimGuard {
    /// Deletes the claim and waits until it is gone, so that a replica waiting on it
    /// finds the published blob or, after a failed fetch, may claim at once.
    pub(crate) async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_claim_at_a_time_released_or_taken_over_once_expired() {
        let store: Arc<dyn Store> = Arc::new(moor_store::MemoryStore::new());
        let (a, b) = (Claims::new(store.clone()), Claims::new(store.clone()));
        let d = Digest::sha256_of(b"blob");
        let Claimed::Won(guard) = a.try_claim(&d).await.unwrap() else {
            panic!("the first claim wins");
        };
        assert!(matches!(b.try_claim(&d).await.unwrap(), Claimed::Held));
        guard.release().await;
        assert!(store.get(&format!("{PREFIX}{d}")).await.unwrap().is_none());
        let Claimed::Won(guard) = b.try_claim(&d).await.unwrap() else {
            panic!("a released claim is free");
        };
        // A holder that died: its claim's deadline passed without a renewal.
        std::mem::forget(guard);
        let key = format!("{PREFIX}{d}");
        let kv = store.get(&key).await.unwrap().unwrap();
        let dead = serde_json::to_vec(&ClaimValue {
            holder: "gone".into(),
            expires_ms: now_ms() - 1,
        })
        .unwrap();
        store
            .update(&key, dead.into(), kv.mod_revision)
            .await
            .unwrap();
        assert!(
            matches!(a.try_claim(&d).await.unwrap(), Claimed::Won(_)),
            "an expired claim is taken over"
        );
    }
}
