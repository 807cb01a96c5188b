//! Fencing: the writes of leader-only controllers go through wrappers that ask
//! [`Leadership::may_write`] right before each write, and refuse it when this process
//! no longer leads or its lease may have run out (see the module doc of
//! [`crate::election`] for the deadline).
//!
//! - [`FencedStore`]: a [`Store`] whose writes are checked just before they are sent
//!   (the compactor, the scheduler's records).
//! - [`FencedStorage`]: a [`WriteAdmission`] around a [`RestStorage`], so its updates
//!   are checked inside the update step, after the read and right before the
//!   compare-and-swap (the importer's streams, images and events), its creates,
//!   deletes and subresource creates first, and every read path passes through.
//! - [`fence_layer`]: refuses mutating requests of an in-process API client (the
//!   trigger controller's).
//!
//! Why not in the transaction: a fence compared inside the write's transaction would
//! compare the leader key and write another key, a two-key transaction that kine
//! refuses (it accepts one compare on the written key only). What remains instead: a
//! write checked before the deadline but delivered to etcd more than [`FENCE_MARGIN`]
//! later, after the lease expired and a new leader was elected, still applies, but
//! only if its compare on the written key's revision still holds, that is, if the
//! new leader has not written that key since. Calls the wrapped store and storages.
//!
//! [`FENCE_MARGIN`]: super::FENCE_MARGIN

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use moor_apimachinery::admission::{Admitted, WriteAdmission};
use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::{RequestContext, RestStorage};
use moor_store::{
    CompactionClaim, KeyValue, ListResult, ProgressStream, Revision, Store, StoreError, WatchStream,
};
use serde_json::Value;

use crate::scheduler::Leadership;

/// The message of a refused write.
pub const REFUSED: &str = "not the leader: a controller write was fenced off";

/// A [`Store`] whose writes only the leader may make.
pub struct FencedStore {
    inner: Arc<dyn Store>,
    leadership: Arc<dyn Leadership>,
}

impl FencedStore {
    /// Wraps `inner`.
    pub fn wrap(inner: Arc<dyn Store>, leadership: Arc<dyn Leadership>) -> Arc<dyn Store> {
        Arc::new(FencedStore { inner, leadership })
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.leadership.may_write() {
            Ok(())
        } else {
            Err(StoreError::Backend(REFUSED.into()))
        }
    }
}

#[async_trait]
impl Store for FencedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.inner.get(key).await
    }
    async fn list(
        &self,
        prefix: &str,
        opts: moor_store::ListOptions,
    ) -> Result<ListResult, StoreError> {
        self.inner.list(prefix, opts).await
    }
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision, StoreError> {
        self.check()?;
        self.inner.create(key, value).await
    }
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        self.check()?;
        self.inner.update(key, value, expected).await
    }
    async fn txn(&self, writes: Vec<moor_store::TxnWrite>) -> Result<Vec<Revision>, StoreError> {
        self.check()?;
        self.inner.txn(writes).await
    }
    fn multi_key_txn(&self) -> bool {
        self.inner.multi_key_txn()
    }
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue, StoreError> {
        self.check()?;
        self.inner.delete(key, expected).await
    }
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        self.inner.watch(prefix, after).await
    }
    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.check()?;
        self.inner.compact(revision).await
    }
    async fn current_revision(&self) -> Result<Revision, StoreError> {
        self.inner.current_revision().await
    }
    async fn watch_with_progress(
        &self,
        prefix: &str,
        after: Revision,
    ) -> Result<ProgressStream, StoreError> {
        self.inner.watch_with_progress(prefix, after).await
    }
    /// A claim is a write to the compaction key: only the leader makes it.
    async fn claim_compaction(
        &self,
        version: i64,
        revision: Revision,
    ) -> Result<CompactionClaim, StoreError> {
        self.check()?;
        self.inner.claim_compaction(version, revision).await
    }
    async fn is_stale(&self, kv: &KeyValue) -> Result<bool, StoreError> {
        self.inner.is_stale(kv).await
    }
}

/// A [`RestStorage`] whose writes only the leader may make: the fence is a
/// [`WriteAdmission`], so every read, watch and list path of the storage underneath
/// passes through [`Admitted`] unchanged. An update is checked inside its step, after
/// the read and right before the compare-and-swap.
pub struct FencedStorage {
    leadership: Arc<dyn Leadership>,
}

impl FencedStorage {
    /// Wraps `inner`.
    pub fn wrap(
        inner: Arc<dyn RestStorage>,
        leadership: Arc<dyn Leadership>,
    ) -> Arc<dyn RestStorage> {
        Admitted::wrap(inner, FencedStorage { leadership })
    }

    fn check(&self) -> Result<(), ApiError> {
        if self.leadership.may_write() {
            Ok(())
        } else {
            Err(ApiError::ServiceUnavailable(REFUSED.into()))
        }
    }
}

impl WriteAdmission for FencedStorage {
    fn admit(
        &self,
        _ctx: &RequestContext,
        _ns: Option<&str>,
        _subresource: Option<&str>,
        _new: &Value,
        _old: Option<&Value>,
    ) -> Result<(), ApiError> {
        self.check()
    }
    fn admit_other(
        &self,
        _ctx: &RequestContext,
        _ns: Option<&str>,
        _name: &str,
        _subresource: Option<&str>,
    ) -> Result<(), ApiError> {
        self.check()
    }
}

/// `router` with mutating requests (anything but GET, HEAD, OPTIONS) refused with 503
/// while `leadership` may not write: an in-process API client for a controller.
pub fn fence_layer(router: axum::Router, leadership: Arc<dyn Leadership>) -> axum::Router {
    use axum::http::Method;
    use axum::response::IntoResponse;
    router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let leadership = leadership.clone();
            async move {
                let reads = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
                if reads || leadership.may_write() {
                    next.run(req).await
                } else {
                    let status = ApiError::ServiceUnavailable(REFUSED.into());
                    (status.code(), axum::Json(status.status())).into_response()
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::ManualLeadership;
    use moor_store::MemoryStore;

    #[tokio::test]
    async fn a_stale_leader_writes_nothing_to_the_store() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let leadership = Arc::new(ManualLeadership::new(true));
        let fenced = FencedStore::wrap(store.clone(), leadership.clone());
        let rev = fenced.create("/k", "1".into()).await.unwrap();
        leadership.set(false);
        for refused in [
            fenced.update("/k", "2".into(), rev).await.err(),
            fenced.create("/other", "1".into()).await.err(),
            fenced.delete("/k", None).await.err(),
            fenced.compact(rev).await.err(),
            fenced.claim_compaction(0, rev).await.err(),
        ] {
            assert!(
                matches!(&refused, Some(StoreError::Backend(m)) if m == REFUSED),
                "{refused:?}"
            );
        }
        // Reads still work, and nothing changed.
        let kv = fenced.get("/k").await.unwrap().unwrap();
        assert_eq!((kv.value.as_ref(), kv.mod_revision), (&b"1"[..], rev));
        assert_eq!(store.current_revision().await.unwrap(), rev);
    }

    /// The fenced storage refuses every kind of write once the lead is lost, and keeps
    /// every read path of the storage underneath, `watch_stored` (how the import
    /// controller watches) included.
    #[tokio::test]
    async fn a_stale_leader_writes_nothing_through_a_storage_and_still_reads() {
        use crate::apiserver::resources::image::ImageStreams;
        use moor_apimachinery::resource::{DeletePreconditions, ListOptions};
        use moor_apimachinery::stored::{ServingConfig, StoredResource, namespace_key};
        use serde_json::json;

        let store = Arc::new(MemoryStore::new());
        let ns = serde_json::to_vec(&json!({"metadata": {"name": "ns"}})).unwrap();
        store.create(&namespace_key("ns"), ns.into()).await.unwrap();
        let streams: Arc<dyn RestStorage> = Arc::new(StoredResource::new(
            store,
            Arc::new(ImageStreams::new("reg")),
            ServingConfig::default(),
        ));
        let leadership = Arc::new(ManualLeadership::new(true));
        let fenced = FencedStorage::wrap(streams, leadership.clone());
        let ctx = RequestContext::default();
        let stream = |name: &str| {
            let body = json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
                "metadata": {"name": name}});
            fenced.decode(body).unwrap().0
        };
        fenced.create(&ctx, Some("ns"), stream("a")).await.unwrap();
        leadership.set(false);
        let same = |cur: Option<&Value>| Ok(cur.cloned().unwrap_or_default());
        for refused in [
            fenced.create(&ctx, Some("ns"), stream("b")).await.err(),
            fenced
                .update(&ctx, Some("ns"), "a", None, &same, false)
                .await
                .err(),
            fenced
                .update(&ctx, Some("ns"), "a", Some("status"), &same, false)
                .await
                .err(),
            fenced
                .delete(&ctx, Some("ns"), "a", &DeletePreconditions::default())
                .await
                .err(),
        ] {
            assert!(
                matches!(&refused, Some(ApiError::ServiceUnavailable(m)) if m == REFUSED),
                "{refused:?}"
            );
        }
        fenced.get(&ctx, Some("ns"), "a").await.unwrap();
        let list = fenced
            .list(&ctx, Some("ns"), &ListOptions::default())
            .await
            .unwrap();
        assert_eq!(list.items.len(), 1);
        let _events = fenced.watch_stored(None, "0").await.unwrap();
    }
}
