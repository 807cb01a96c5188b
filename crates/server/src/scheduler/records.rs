//! The scheduler's per-tag records in the store (`/moor/scheduler/<ns>/<stream>/<tag>`,
//! see [`moor_api::scheduled`]): loading them all, and a coalescing writer. Writes are
//! handed to a few worker tasks; a record changed again before its write started is
//! written once, with its newest value, and two writes of one key never overlap (so
//! an older value cannot land after a newer one). The stored revision of each key is
//! remembered, so that a write is one compare-and-swap, not a read and a write.
//! Calls the store only.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use moor_api::scheduled::{RECORD_PREFIX, ScheduledImportStatus, parse_record_key};
use moor_store::{Revision, Store, StoreError};
use tokio::sync::Notify;

use super::TagKey;

/// Every record in the store, by tag.
pub async fn load(store: &dyn Store) -> Result<HashMap<TagKey, ScheduledImportStatus>, StoreError> {
    let list = store.list(RECORD_PREFIX, Default::default()).await?;
    let mut out = HashMap::new();
    for kv in list.kvs {
        let Some((ns, stream, tag)) = parse_record_key(&kv.key) else {
            continue;
        };
        match serde_json::from_slice::<ScheduledImportStatus>(&kv.value) {
            Ok(status) => {
                out.insert(TagKey::new(ns, stream, tag), status);
            }
            Err(e) => {
                tracing::warn!(key = %kv.key, error = %e, "ignoring an unreadable scheduler record")
            }
        }
    }
    Ok(out)
}

#[derive(Default)]
struct State {
    /// The newest value per key not yet being written (`None`: delete).
    values: HashMap<String, Option<Bytes>>,
    /// Keys ready to be written, each once.
    queue: VecDeque<String>,
    queued: HashSet<String>,
    /// Keys being written now.
    busy: HashSet<String>,
    /// The revision each key was last written at.
    revisions: HashMap<String, Revision>,
    closed: bool,
}

struct Shared {
    store: Arc<dyn Store>,
    state: Mutex<State>,
    work: Notify,
    idle: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The coalescing record writer. Dropping it lets the workers finish what is queued
/// and stop.
pub struct RecordWriter {
    shared: Arc<Shared>,
}

impl RecordWriter {
    /// A writer over `store` with `workers` concurrent writes.
    pub fn new(store: Arc<dyn Store>, workers: usize) -> Self {
        let shared = Arc::new(Shared {
            store,
            state: Mutex::new(State::default()),
            work: Notify::new(),
            idle: Notify::new(),
        });
        for _ in 0..workers.max(1) {
            tokio::spawn(worker(shared.clone()));
        }
        RecordWriter { shared }
    }

    fn enqueue(&self, key: String, value: Option<Bytes>) {
        let mut st = self.shared.lock();
        st.values.insert(key.clone(), value);
        if !st.busy.contains(&key) && st.queued.insert(key.clone()) {
            st.queue.push_back(key);
        }
        drop(st);
        self.shared.work.notify_one();
    }

    /// Stores `status` under `key` (soon).
    pub fn put(&self, key: String, status: &ScheduledImportStatus) {
        match serde_json::to_vec(status) {
            Ok(v) => self.enqueue(key, Some(Bytes::from(v))),
            Err(e) => tracing::warn!(%key, error = %e, "encoding a scheduler record failed"),
        }
    }

    /// Deletes the record under `key` (soon).
    pub fn delete(&self, key: String) {
        self.enqueue(key, None);
    }

    /// Waits until every write asked for so far is done.
    pub async fn flushed(&self) {
        loop {
            let idle = self.shared.idle.notified();
            {
                let st = self.shared.lock();
                if st.values.is_empty() && st.busy.is_empty() {
                    return;
                }
            }
            idle.await;
        }
    }
}

impl Drop for RecordWriter {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.work.notify_waiters();
    }
}

async fn worker(shared: Arc<Shared>) {
    loop {
        let notified = shared.work.notified();
        let job = {
            let mut st = shared.lock();
            match st.queue.pop_front() {
                Some(key) => {
                    st.queued.remove(&key);
                    let value = st.values.remove(&key).unwrap_or(None);
                    st.busy.insert(key.clone());
                    let revision = st.revisions.get(&key).copied();
                    Some((key, value, revision))
                }
                None if st.closed => return,
                None => None,
            }
        };
        let Some((key, value, revision)) = job else {
            notified.await;
            continue;
        };
        let written = match &value {
            Some(v) => put(shared.store.as_ref(), &key, v.clone(), revision)
                .await
                .map(Some),
            None => delete(shared.store.as_ref(), &key).await.map(|_| None),
        };
        let mut st = shared.lock();
        st.busy.remove(&key);
        match written {
            Ok(Some(rev)) => {
                st.revisions.insert(key.clone(), rev);
            }
            Ok(None) => {
                st.revisions.remove(&key);
            }
            Err(e) => {
                st.revisions.remove(&key);
                tracing::warn!(%key, error = %e, "writing a scheduler record failed");
            }
        }
        if st.values.contains_key(&key) && st.queued.insert(key.clone()) {
            st.queue.push_back(key);
            shared.work.notify_one();
        }
        if st.values.is_empty() && st.busy.is_empty() {
            shared.idle.notify_waiters();
        }
    }
}

/// Writes `value` under `key`: one compare-and-swap at the remembered revision, else
/// read and write (a few times, if another writer races).
async fn put(
    store: &dyn Store,
    key: &str,
    value: Bytes,
    revision: Option<Revision>,
) -> Result<Revision, StoreError> {
    if let Some(rev) = revision {
        match store.update(key, value.clone(), rev).await {
            Ok(r) => return Ok(r),
            Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let mut last = None;
    for _ in 0..5 {
        let result = match store.get(key).await? {
            None => store.create(key, value.clone()).await,
            Some(kv) if kv.value == value => return Ok(kv.mod_revision),
            Some(kv) => store.update(key, value.clone(), kv.mod_revision).await,
        };
        match result {
            Ok(r) => return Ok(r),
            Err(
                e @ (StoreError::Conflict { .. }
                | StoreError::NotFound(_)
                | StoreError::AlreadyExists(_)),
            ) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| StoreError::Backend(format!("writing {key} kept conflicting"))))
}

async fn delete(store: &dyn Store, key: &str) -> Result<(), StoreError> {
    match store.delete(key, None).await {
        Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moor_api::scheduled::record_key;
    use moor_store::MemoryStore;

    fn status(from: &str) -> ScheduledImportStatus {
        ScheduledImportStatus {
            image_stream: "s".into(),
            tag: "t".into(),
            from: from.into(),
            active: true,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn writes_coalesce_and_land_in_order() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let w = RecordWriter::new(store.clone(), 4);
        let key = record_key("ns", "s", "t");
        for i in 0..50 {
            w.put(key.clone(), &status(&format!("r/a:{i}")));
        }
        w.put(record_key("ns", "s", "u"), &status("r/b:1"));
        w.flushed().await;
        let all = load(store.as_ref()).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[&TagKey::new("ns", "s", "t")].from, "r/a:49");
        let revision = store.current_revision().await.unwrap();
        assert!(revision < 50, "coalesced: {revision} writes");
        // A second write of the same key is one compare-and-swap.
        w.put(key.clone(), &status("r/a:50"));
        w.flushed().await;
        assert_eq!(
            load(store.as_ref()).await.unwrap()[&TagKey::new("ns", "s", "t")].from,
            "r/a:50"
        );
        w.delete(key.clone());
        w.delete(record_key("ns", "s", "gone"));
        w.flushed().await;
        let all = load(store.as_ref()).await.unwrap();
        assert_eq!(all.len(), 1);
        // Someone else wrote the key meanwhile: the writer reads and overwrites.
        let other = record_key("ns", "s", "u");
        store
            .update(
                &other,
                Bytes::from(serde_json::to_vec(&status("x")).unwrap()),
                store.get(&other).await.unwrap().unwrap().mod_revision,
            )
            .await
            .unwrap();
        w.put(other.clone(), &status("r/b:2"));
        w.flushed().await;
        assert_eq!(
            load(store.as_ref()).await.unwrap()[&TagKey::new("ns", "s", "u")].from,
            "r/b:2"
        );
    }
}
