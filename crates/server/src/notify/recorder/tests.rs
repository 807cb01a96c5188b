//! The recorder's tests, on a memory store restricted to single-key transactions.

use super::*;
use crate::notify::OutboxStore;
use async_trait::async_trait;
use bytes::Bytes;
use moor_api::notification::{EventKind as Kind, OUTBOX_PREFIX};
use moor_store::{
    CompactionClaim, KeyValue, ListResult, MemoryStore, ProgressStream, TxnWrite, WatchStream,
};
use serde_json::json;

/// A memory store that takes single-key transactions only, as kine.
struct SingleKey(MemoryStore);

#[async_trait]
impl Store for SingleKey {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.0.get(key).await
    }
    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult, StoreError> {
        self.0.list(prefix, opts).await
    }
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision, StoreError> {
        self.0.create(key, value).await
    }
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        self.0.update(key, value, expected).await
    }
    async fn txn(&self, writes: Vec<TxnWrite>) -> Result<Vec<Revision>, StoreError> {
        if writes.len() > 1 {
            return Err(StoreError::Unsupported("several keys".into()));
        }
        self.0.txn(writes).await
    }
    fn multi_key_txn(&self) -> bool {
        false
    }
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue, StoreError> {
        self.0.delete(key, expected).await
    }
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        self.0.watch(prefix, after).await
    }
    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.0.compact(revision).await
    }
    async fn current_revision(&self) -> Result<Revision, StoreError> {
        self.0.current_revision().await
    }
    async fn watch_with_progress(
        &self,
        prefix: &str,
        after: Revision,
    ) -> Result<ProgressStream, StoreError> {
        self.0.watch_with_progress(prefix, after).await
    }
    async fn claim_compaction(
        &self,
        version: i64,
        revision: Revision,
    ) -> Result<CompactionClaim, StoreError> {
        self.0.claim_compaction(version, revision).await
    }
}

const KEY: &str = "/registry/image.openshift.io/imagestreams/ns/app";

fn stream(image: &str) -> Bytes {
    serde_json::to_vec(&json!({
        "metadata": {"namespace": "ns", "name": "app"},
        "status": {"tags": [{"tag": "1", "items": [
            {"image": image, "dockerImageReference": format!("r/app@{image}")}]}]},
    }))
    .unwrap()
    .into()
}

async fn notification(store: &dyn Store, name: &str) -> Revision {
    let n = json!({"metadata": {"namespace": "ns", "name": name, "uid": format!("uid-{name}")},
                   "spec": {"url": "https://example.com/"}});
    store
        .create(
            &format!("{NOTIFICATION_PREFIX}ns/{name}"),
            serde_json::to_vec(&n).unwrap().into(),
        )
        .await
        .unwrap()
}

async fn entries(store: &dyn Store) -> Vec<(String, OutboxEntry)> {
    let listed = store.list(OUTBOX_PREFIX, Default::default()).await.unwrap();
    listed
        .kvs
        .iter()
        .map(|kv| (kv.key.clone(), serde_json::from_slice(&kv.value).unwrap()))
        .collect()
}

/// The outbox's keys, in order.
async fn entry_keys(store: &dyn Store) -> Vec<String> {
    entries(store).await.into_iter().map(|(k, _)| k).collect()
}

/// Sets the cursor back to `revision`, as a crash before it moved leaves it.
async fn rewind_cursor(store: &dyn Store, revision: Revision) {
    let kv = store.get(CURSOR_KEY).await.unwrap().unwrap();
    let back = serde_json::to_vec(&json!({ "revision": revision })).unwrap();
    store
        .update(CURSOR_KEY, back.into(), kv.mod_revision)
        .await
        .unwrap();
}

/// Waits until the cursor holds `revision` or later.
async fn cursor_reaches(store: &dyn Store, revision: Revision) {
    for _ in 0..500 {
        if let Some(kv) = store.get(CURSOR_KEY).await.unwrap() {
            let c: Cursor = serde_json::from_slice(&kv.value).unwrap();
            if c.revision >= revision {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the cursor never reached {revision}");
}

fn start(store: &Arc<dyn Store>, metrics: &RecorderMetrics) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(store.clone(), "moor:5000".into(), metrics.clone()))
}

#[tokio::test]
async fn changes_are_recorded_from_the_watch_once_even_when_replayed() {
    let inner: Arc<dyn Store> = Arc::new(SingleKey(MemoryStore::new()));
    let store = OutboxStore::wrap(inner.clone(), "moor:5000");
    let r1 = store.create(KEY, stream("sha256:a")).await.unwrap();
    notification(store.as_ref(), "hook").await;
    let metrics = RecorderMetrics::default();
    let recorder = start(&inner, &metrics);
    // The stream write alone passes the wrapper; the recorder adds the entry.
    let r2 = store.update(KEY, stream("sha256:b"), r1).await.unwrap();
    cursor_reaches(inner.as_ref(), r2).await;
    let got = entries(inner.as_ref()).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let (key, entry) = &got[0];
    assert_eq!(key, &entry_key("ns", "hook", r2, 0));
    assert_eq!(entry.id, entry_id("ns", "hook", "uid-hook", r2, 0));
    assert_eq!(entry.kind, Kind::TagUpdated);
    assert_eq!(entry.data.old_digest.as_deref(), Some("sha256:a"));
    assert_eq!(entry.data.new_digest.as_deref(), Some("sha256:b"));
    // A Notification created after a change gets only the later ones.
    notification(store.as_ref(), "late").await;
    let r3 = store.update(KEY, stream("sha256:c"), r2).await.unwrap();
    cursor_reaches(inner.as_ref(), r3).await;
    assert_eq!(
        entry_keys(inner.as_ref()).await,
        [
            entry_key("ns", "hook", r2, 0),
            entry_key("ns", "hook", r3, 0),
            entry_key("ns", "late", r3, 0)
        ]
    );
    // A crash before the cursor moved, after the first entry was delivered (and
    // deleted): the replay creates neither it nor the pending ones again.
    recorder.abort();
    let _ = recorder.await;
    rewind_cursor(inner.as_ref(), r1).await;
    inner
        .delete(&entry_key("ns", "hook", r2, 0), None)
        .await
        .unwrap();
    let recorder = start(&inner, &metrics);
    let r4 = store.update(KEY, stream("sha256:d"), r3).await.unwrap();
    cursor_reaches(inner.as_ref(), r4).await;
    assert_eq!(
        entry_keys(inner.as_ref()).await,
        [
            entry_key("ns", "hook", r3, 0),
            entry_key("ns", "hook", r4, 0),
            entry_key("ns", "late", r3, 0),
            entry_key("ns", "late", r4, 0)
        ]
    );
    // A second replay, from r3: r4's entries are not created twice.
    recorder.abort();
    let _ = recorder.await;
    rewind_cursor(inner.as_ref(), r3).await;
    let recorder = start(&inner, &metrics);
    let r5 = store.update(KEY, stream("sha256:e"), r4).await.unwrap();
    cursor_reaches(inner.as_ref(), r5).await;
    assert_eq!(entries(inner.as_ref()).await.len(), 6);
    assert_eq!(metrics.gaps(), 0);
    recorder.abort();
}

#[tokio::test]
async fn without_multi_key_transactions_writes_are_single_key() {
    let inner: Arc<dyn Store> = Arc::new(SingleKey(MemoryStore::new()));
    let store = OutboxStore::wrap(inner.clone(), "moor:5000");
    assert!(!store.multi_key_txn());
    notification(store.as_ref(), "a").await;
    notification(store.as_ref(), "b").await;
    // A stream write passes alone (no recorder runs here: no entry).
    let r1 = store.create(KEY, stream("sha256:a")).await.unwrap();
    store.update(KEY, stream("sha256:b"), r1).await.unwrap();
    assert!(entries(inner.as_ref()).await.is_empty());
    // An event without a stream change: one create per Notification.
    let data = moor_api::notification::EventData {
        namespace: "ns".into(),
        image_stream: "app".into(),
        tag: "1".into(),
        old_digest: None,
        new_digest: None,
        pull_spec: None,
        reason: Some("SignatureMissing".into()),
        message: Some("unsigned".into()),
    };
    let n = crate::notify::record(store.as_ref(), Kind::SignatureRefused, data)
        .await
        .unwrap();
    assert_eq!(n, 2);
    let got = entries(inner.as_ref()).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|(_, e)| e.kind == Kind::SignatureRefused));
}

#[tokio::test]
async fn a_compacted_cursor_is_a_gap_for_the_notifications_whose_streams_changed() {
    let inner: Arc<dyn Store> = Arc::new(SingleKey(MemoryStore::new()));
    let r1 = inner.create(KEY, stream("sha256:a")).await.unwrap();
    notification(inner.as_ref(), "hook").await;
    let other = json!({"metadata": {"namespace": "quiet", "name": "hook"},
                       "spec": {"url": "https://example.com/"}});
    let quiet = format!("{NOTIFICATION_PREFIX}quiet/hook");
    inner
        .create(&quiet, serde_json::to_vec(&other).unwrap().into())
        .await
        .unwrap();
    let metrics = RecorderMetrics::default();
    let recorder = start(&inner, &metrics);
    let now = inner.current_revision().await.unwrap();
    cursor_reaches(inner.as_ref(), 0).await;
    recorder.abort();
    let _ = recorder.await;
    // Moves while no recorder runs, then their history is compacted away.
    let r2 = inner.update(KEY, stream("sha256:b"), r1).await.unwrap();
    let r3 = inner.update(KEY, stream("sha256:c"), r2).await.unwrap();
    inner.compact(r3).await.unwrap();
    assert!(now < r3);
    let recorder = start(&inner, &metrics);
    cursor_reaches(inner.as_ref(), r3).await;
    assert!(entries(inner.as_ref()).await.is_empty());
    assert_eq!(metrics.gaps(), 1);
    let hook = inner
        .get(&format!("{NOTIFICATION_PREFIX}ns/hook"))
        .await
        .unwrap()
        .unwrap();
    let status: NotificationStatus = serde_json::from_value(
        serde_json::from_slice::<Value>(&hook.value).unwrap()["status"].clone(),
    )
    .unwrap();
    assert_eq!(status.gaps, 1);
    assert!(
        status.last_gap.as_deref().unwrap().contains("compacted"),
        "{status:?}"
    );
    assert!(status.last_gap_time.is_some());
    // The namespace without changes has no gap.
    let q = inner.get(&quiet).await.unwrap().unwrap();
    assert!(
        serde_json::from_slice::<Value>(&q.value)
            .unwrap()
            .get("status")
            .is_none()
    );
    // Later changes are recorded against the relisted state.
    let r4 = inner.update(KEY, stream("sha256:d"), r3).await.unwrap();
    cursor_reaches(inner.as_ref(), r4).await;
    let got = entries(inner.as_ref()).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1.data.old_digest.as_deref(), Some("sha256:c"));
    recorder.abort();
}
