//! Notifications (`moor.io/v1` Notification): CloudEvents when a tag moves, an import
//! fails, an image is pushed or a signature is refused, made durable by an outbox.
//!
//! - Recording ([`OutboxStore`]): a [`Store`] wrapper under every writer of image
//!   streams (API, importer, registry, rollback). A create or update of a stream is
//!   compared with the stored version ([`diff`]); for each event and each Notification
//!   of the namespace that selects it, an outbox entry is created **in the same
//!   transaction** as the stream ([`Store::txn`]), so a change is never stored without
//!   its events, nor an event without its change. One place, whatever path moved the
//!   tag. [`record`] is the hook for events without a stream change (a push refused by
//!   the signature policy).
//! - On a store without multi-key transactions (kine, [`Store::multi_key_txn`] false)
//!   the wrapper writes streams alone, and the [`recorder`], a leader-only controller,
//!   derives the same entries from the streams' watch, from a persisted cursor.
//! - Delivering ([`deliver`]): a leader-only controller whose store writes are fenced,
//!   POSTing each Notification's entries in order, deleting each once a 2xx answers.
//!
//! Calls the store and the types of `moor_api::notification`.

pub mod deliver;
pub mod diff;
pub mod recorder;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use moor_api::notification::{EventData, EventKind, Notification, OutboxEntry, outbox_prefix};
use moor_store::{
    CompactionClaim, KeyValue, ListOptions, ListResult, ProgressStream, Revision, Store,
    StoreError, TxnWrite, WatchStream,
};
use serde_json::Value;

pub use deliver::{DeliveryConfig, NotificationMetrics};
pub use recorder::RecorderMetrics;

/// The store key prefix of image streams.
pub const STREAM_PREFIX: &str = "/registry/image.openshift.io/imagestreams/";
/// The store key prefix of Notifications.
pub const NOTIFICATION_PREFIX: &str = "/registry/moor.io/notifications/";

/// Errors of recording and delivering notifications.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The store failed.
    #[error("notifications: {0}")]
    Store(#[from] StoreError),
    /// A stored object or entry does not decode.
    #[error("notifications: decoding {what}: {source}")]
    Decode {
        /// What was decoded.
        what: String,
        /// Why it failed.
        #[source]
        source: serde_json::Error,
    },
    /// The receiver's URL is not allowed or cannot be resolved.
    #[error("receiver refused: {0}")]
    Target(String),
    /// The POST failed or did not answer 2xx.
    #[error("delivery failed: {0}")]
    Delivery(String),
}

/// The namespace and name a key under `prefix` names (`<prefix><ns>/<name>`).
pub fn parse_key<'a>(prefix: &str, key: &'a str) -> Option<(&'a str, &'a str)> {
    let (ns, name) = key.strip_prefix(prefix)?.split_once('/')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains('/')).then_some((ns, name))
}

/// The Notifications of namespace `ns`, as recently as the store can tell.
async fn notifications(store: &dyn Store, ns: &str) -> Result<Vec<Notification>, NotifyError> {
    let listed = store
        .list_recent(
            &format!("{NOTIFICATION_PREFIX}{ns}/"),
            ListOptions::default(),
        )
        .await?;
    listed
        .kvs
        .iter()
        .map(|kv| {
            serde_json::from_slice(&kv.value).map_err(|source| NotifyError::Decode {
                what: kv.key.clone(),
                source,
            })
        })
        .collect()
}

/// The outbox writes of `events` for the Notifications of `ns` that select them; each
/// entry key sorts after every earlier one of the same transaction.
fn outbox_writes(
    notifications: &[Notification],
    events: &[(EventKind, EventData)],
) -> Vec<TxnWrite> {
    let now = jiff::Timestamp::now();
    let mut writes = Vec::new();
    for n in notifications {
        let (Some(ns), Some(name)) = (&n.metadata.namespace, &n.metadata.name) else {
            continue;
        };
        if n.metadata.deletion_timestamp.is_some() {
            continue;
        }
        for (kind, data) in events {
            if !n.spec.selects(*kind, &data.image_stream, &data.tag) {
                continue;
            }
            let id = uuid::Uuid::new_v4().simple().to_string();
            let entry = OutboxEntry {
                id: id.clone(),
                kind: *kind,
                time: now.to_string(),
                data: data.clone(),
            };
            let Ok(value) = serde_json::to_vec(&entry) else {
                continue;
            };
            writes.push(TxnWrite::Create {
                key: format!(
                    "{}{:020}-{:04}-{id}",
                    outbox_prefix(ns, name),
                    now.as_nanosecond(),
                    writes.len()
                ),
                value: value.into(),
            });
        }
    }
    writes
}

/// Records `kind` on `namespace/stream:tag` for every Notification that selects it,
/// outside any stream change: the hook for the signature policy's refused pushes
/// (`EventKind::SignatureRefused`). Returns how many entries were written: in one
/// transaction, or one create each where the store has no multi-key transactions.
pub async fn record(
    store: &dyn Store,
    kind: EventKind,
    data: EventData,
) -> Result<usize, NotifyError> {
    let found = notifications(store, &data.namespace).await?;
    let writes = outbox_writes(&found, &[(kind, data)]);
    let n = writes.len();
    if store.multi_key_txn() {
        store.txn(writes).await?;
    } else {
        for write in writes {
            store.txn(vec![write]).await?;
        }
    }
    Ok(n)
}

/// A [`Store`] that records the notification events of every image stream write in
/// the write's own transaction. Everything else passes through, and so does every
/// write where the store has no multi-key transactions (the [`recorder`] records
/// those).
pub struct OutboxStore {
    inner: Arc<dyn Store>,
    registry: String,
}

impl OutboxStore {
    /// Wraps `inner`; `registry` is the registry hostname (pushes' pull specs).
    pub fn wrap(inner: Arc<dyn Store>, registry: &str) -> Arc<dyn Store> {
        Arc::new(OutboxStore {
            inner,
            registry: registry.to_owned(),
        })
    }

    /// The Notifications of the namespace of the stream at `key` (none for other keys).
    async fn notifications_for(&self, key: &str) -> Result<Vec<Notification>, NotifyError> {
        match parse_key(STREAM_PREFIX, key) {
            Some((ns, _)) => notifications(self.inner.as_ref(), ns).await,
            None => Ok(Vec::new()),
        }
    }

    /// The outbox writes for `found` that go with writing `value` at the stream `key`
    /// over `old`.
    fn writes_for(
        &self,
        found: &[Notification],
        key: &str,
        old: Option<&KeyValue>,
        value: &Bytes,
    ) -> Result<Vec<TxnWrite>, NotifyError> {
        let decode = |bytes: &[u8]| -> Result<Value, NotifyError> {
            serde_json::from_slice(bytes).map_err(|source| NotifyError::Decode {
                what: key.to_owned(),
                source,
            })
        };
        let new = decode(value)?;
        let old = old.map(|kv| decode(&kv.value)).transpose()?;
        let events: Vec<(EventKind, EventData)> = diff::events(old.as_ref(), &new, &self.registry)
            .into_iter()
            .map(|f| (f.kind, f.data))
            .collect();
        Ok(outbox_writes(found, &events))
    }
}

fn store_error(e: NotifyError) -> StoreError {
    match e {
        NotifyError::Store(e) => e,
        other => StoreError::Backend(other.to_string()),
    }
}

impl OutboxStore {
    /// Whether a write of `key` records its events here.
    fn records(&self, key: &str) -> bool {
        key.starts_with(STREAM_PREFIX) && self.inner.multi_key_txn()
    }
}

#[async_trait]
impl Store for OutboxStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult, StoreError> {
        self.inner.list(prefix, opts).await
    }
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision, StoreError> {
        if !self.records(key) {
            return self.inner.create(key, value).await;
        }
        let found = self.notifications_for(key).await.map_err(store_error)?;
        if found.is_empty() {
            return self.inner.create(key, value).await;
        }
        let mut writes = self
            .writes_for(&found, key, None, &value)
            .map_err(store_error)?;
        if writes.is_empty() {
            return self.inner.create(key, value).await;
        }
        writes.insert(
            0,
            TxnWrite::Create {
                key: key.to_owned(),
                value,
            },
        );
        Ok(self.inner.txn(writes).await?[0])
    }
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        if !self.records(key) {
            return self.inner.update(key, value, expected).await;
        }
        // Without a Notification in the namespace, a stream write costs no more than
        // the listing of none (from the watch cache).
        let found = self.notifications_for(key).await.map_err(store_error)?;
        if found.is_empty() {
            return self.inner.update(key, value, expected).await;
        }
        // The version the compare-and-swap replaces; any other and the write fails.
        let old = self.inner.get(key).await?;
        let Some(old) = old.filter(|kv| kv.mod_revision == expected) else {
            return self.inner.update(key, value, expected).await;
        };
        let mut writes = self
            .writes_for(&found, key, Some(&old), &value)
            .map_err(store_error)?;
        if writes.is_empty() {
            return self.inner.update(key, value, expected).await;
        }
        writes.insert(
            0,
            TxnWrite::Update {
                key: key.to_owned(),
                value,
                expected,
            },
        );
        Ok(self.inner.txn(writes).await?[0])
    }
    async fn txn(&self, writes: Vec<TxnWrite>) -> Result<Vec<Revision>, StoreError> {
        self.inner.txn(writes).await
    }
    fn multi_key_txn(&self) -> bool {
        self.inner.multi_key_txn()
    }
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue, StoreError> {
        self.inner.delete(key, expected).await
    }
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        self.inner.watch(prefix, after).await
    }
    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.inner.compact(revision).await
    }
    async fn get_recent(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.inner.get_recent(key).await
    }
    async fn list_recent(&self, prefix: &str, opts: ListOptions) -> Result<ListResult, StoreError> {
        self.inner.list_recent(prefix, opts).await
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
    async fn claim_compaction(
        &self,
        version: i64,
        revision: Revision,
    ) -> Result<CompactionClaim, StoreError> {
        self.inner.claim_compaction(version, revision).await
    }
    async fn is_stale(&self, kv: &KeyValue) -> Result<bool, StoreError> {
        self.inner.is_stale(kv).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moor_store::MemoryStore;
    use serde_json::json;

    fn stream(image: &str) -> Bytes {
        serde_json::to_vec(&json!({
            "metadata": {"namespace": "ns", "name": "app"},
            "status": {"tags": [{"tag": "1", "items": [
                {"image": image, "dockerImageReference": format!("r/app@{image}")}]}]},
        }))
        .unwrap()
        .into()
    }

    #[tokio::test]
    async fn a_stream_update_writes_its_outbox_entries_in_the_same_transaction() {
        let inner: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let store = OutboxStore::wrap(inner.clone(), "moor:5000");
        let key = format!("{STREAM_PREFIX}ns/app");
        let r1 = store.create(&key, stream("sha256:a")).await.unwrap();
        // No Notification yet: no entry.
        assert!(
            inner
                .list(OUTBOX_PREFIX_ALL, Default::default())
                .await
                .unwrap()
                .kvs
                .is_empty()
        );
        let n = json!({"metadata": {"namespace": "ns", "name": "hook"},
                       "spec": {"url": "https://example.com/", "tags": ["1"]}});
        store
            .create(
                &format!("{NOTIFICATION_PREFIX}ns/hook"),
                serde_json::to_vec(&n).unwrap().into(),
            )
            .await
            .unwrap();
        let r2 = store.update(&key, stream("sha256:b"), r1).await.unwrap();
        let out = inner
            .list(OUTBOX_PREFIX_ALL, Default::default())
            .await
            .unwrap();
        assert_eq!(out.kvs.len(), 1);
        assert!(out.kvs[0].key.starts_with("/moor/outbox/ns/hook/"));
        // One transaction: the entry follows the stream's write directly.
        assert_eq!(out.kvs[0].create_revision, r2 + 1);
        let entry: OutboxEntry = serde_json::from_slice(&out.kvs[0].value).unwrap();
        assert_eq!(entry.kind, EventKind::TagUpdated);
        assert_eq!(entry.data.old_digest.as_deref(), Some("sha256:a"));
        assert_eq!(entry.data.new_digest.as_deref(), Some("sha256:b"));
        // A stale update writes neither.
        assert!(matches!(
            store.update(&key, stream("sha256:c"), r1).await,
            Err(StoreError::Conflict { .. })
        ));
        let out = inner
            .list(OUTBOX_PREFIX_ALL, Default::default())
            .await
            .unwrap();
        assert_eq!(out.kvs.len(), 1);
    }

    const OUTBOX_PREFIX_ALL: &str = moor_api::notification::OUTBOX_PREFIX;
}
