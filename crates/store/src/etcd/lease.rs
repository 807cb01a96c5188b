//! etcd leases for leader election (moor's replicas elect one to run the controllers):
//! grant a lease, renew it, revoke it, and create a key bound to it. The create is the
//! store's own create shape, `mod(key) == 0 ? put(key, lease)`, which kine accepts; the
//! key disappears when the lease expires, which is how a dead leader's claim ends.
//! Calls only etcd, through the members' lease and KV clients.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};

use super::{EtcdStore, Written, backend, resolve};
use crate::StoreError;

/// An etcd lease id.
pub type LeaseId = i64;

impl EtcdStore {
    /// Grants a lease of `ttl` (whole seconds, at least 1). A grant retried after an
    /// unknown outcome may leave an unused lease behind; it expires by itself.
    pub async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let granted = self
            .inner
            .read(|mut m| async move { m.lease.grant(secs, None).await })
            .await
            .map_err(|e| backend("lease grant", e))?;
        Ok(granted.id())
    }

    /// Renews `lease` once: `true` if it is still alive (its TTL starts again), `false`
    /// if etcd no longer knows it (it expired or was revoked).
    pub async fn keep_lease_alive(&self, lease: LeaseId) -> Result<bool, StoreError> {
        self.inner
            .read(|mut m| async move {
                // `keep_alive` sends one renewal and waits for its answer.
                match m.lease.keep_alive(lease).await {
                    Ok(_) => Ok(true),
                    Err(etcd_client::Error::LeaseKeepAliveError(_)) => Ok(false),
                    Err(e) => Err(e),
                }
            })
            .await
            .map_err(|e| backend("lease keep-alive", e))
    }

    /// Revokes `lease`, deleting the keys bound to it (a leader that steps down).
    pub async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.inner
            .read(|mut m| async move { m.lease.revoke(lease).await.map(|_| ()) })
            .await
            .map_err(|e| backend("lease revoke", e))
    }

    /// Creates `key` with `value`, bound to `lease`, if it does not exist: `true` if
    /// this call created it. `value` should be unique to the caller (a write whose
    /// outcome is unknown is decided by reading it back).
    pub async fn create_leased(
        &self,
        key: &str,
        value: Bytes,
        lease: LeaseId,
    ) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let ekey = inner.etcd_key(key)?;
        let before = inner.seen.load(Ordering::Acquire);
        let txn = Txn::new()
            .when([Compare::mod_revision(ekey.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                ekey.clone(),
                value.to_vec(),
                Some(PutOptions::new().with_lease(lease)),
            )]);
        let written = inner
            .write(txn, || resolve::create(inner, &ekey, &value, before))
            .await?;
        Ok(match written {
            Written::Resolved(_) => true,
            Written::Answer(r) => r.succeeded(),
        })
    }
}
