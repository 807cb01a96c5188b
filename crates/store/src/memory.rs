//! The in-memory [`Store`], for tests: the whole revision log behind one mutex, nothing on
//! disk. Calls only the shared watch stream of this crate.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::broadcast;

use crate::{
    DEFAULT_WATCH_CAPACITY, Event, EventKind, KeyValue, ListOptions, ListResult, Revision, Store,
    StoreError, WatchStream, watch,
};

/// An in-memory [`Store`] with full revision history (until compacted). Meant for tests:
/// fast, and passes the same [`crate::conformance`] suite as the durable backends.
pub struct MemoryStore {
    state: Mutex<State>,
    events: broadcast::Sender<Arc<Event>>,
}

/// One write of one key.
#[derive(Clone, Debug)]
struct Row {
    revision: Revision,
    create_revision: Revision,
    deleted: bool,
    value: Bytes,
}

impl Row {
    fn key_value(&self, key: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: self.value.clone(),
            create_revision: self.create_revision,
            mod_revision: self.revision,
        }
    }

    fn event(&self, key: &str) -> Event {
        let kind = if self.deleted {
            EventKind::Delete
        } else {
            EventKind::Put
        };
        Event {
            kind,
            kv: self.key_value(key),
        }
    }
}

#[derive(Default)]
struct State {
    /// Every key's rows, oldest first; a delete is a tombstone row carrying the last value.
    keys: BTreeMap<String, Vec<Row>>,
    /// Which key each retained revision wrote, for replaying watches in revision order.
    log: BTreeMap<Revision, String>,
    revision: Revision,
    compacted: Revision,
}

impl State {
    /// The newest row of `key`, unless the key does not exist (no row, or a tombstone).
    fn live(&self, key: &str) -> Option<&Row> {
        self.keys.get(key)?.last().filter(|row| !row.deleted)
    }

    /// Appends a row at the next revision and returns its event.
    fn append(
        &mut self,
        key: &str,
        create_revision: Option<Revision>,
        deleted: bool,
        value: Bytes,
    ) -> Event {
        self.revision += 1;
        let row = Row {
            revision: self.revision,
            create_revision: create_revision.unwrap_or(self.revision),
            deleted,
            value,
        };
        let event = row.event(key);
        self.keys.entry(key.to_owned()).or_default().push(row);
        self.log.insert(self.revision, key.to_owned());
        event
    }

    fn check_readable(&self, revision: Revision) -> Result<(), StoreError> {
        if revision < self.compacted {
            return Err(StoreError::Compacted {
                requested: revision,
                compacted: self.compacted,
            });
        }
        if revision > self.revision {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current: self.revision,
            });
        }
        Ok(())
    }

    fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListResult, StoreError> {
        let revision = opts.revision.unwrap_or(self.revision);
        self.check_readable(revision)?;
        let start = match opts.start_after.as_deref() {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let limit = opts.limit.unwrap_or(usize::MAX);
        let mut kvs = Vec::new();
        let mut more = false;
        for (key, rows) in self.keys.range::<str, _>((start, Bound::Unbounded)) {
            if !key.starts_with(prefix) {
                break;
            }
            let visible = rows.partition_point(|row| row.revision <= revision);
            let Some(row) = visible.checked_sub(1).map(|i| &rows[i]) else {
                continue;
            };
            if row.deleted {
                continue;
            }
            if kvs.len() == limit {
                more = true;
                break;
            }
            kvs.push(row.key_value(key));
        }
        Ok(ListResult {
            kvs,
            revision,
            more,
        })
    }

    /// Drops every row superseded at `revision`, and tombstones at or below it.
    fn compact(&mut self, revision: Revision) {
        let mut emptied = Vec::new();
        for (key, rows) in &mut self.keys {
            let visible = rows.partition_point(|row| row.revision <= revision);
            let Some(newest) = visible.checked_sub(1) else {
                continue;
            };
            let keep_from = if rows[newest].deleted {
                visible
            } else {
                newest
            };
            for row in rows.drain(..keep_from) {
                self.log.remove(&row.revision);
            }
            if rows.is_empty() {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            self.keys.remove(&key);
        }
        self.compacted = revision;
    }
}

impl MemoryStore {
    /// An empty store whose watchers may lag [`DEFAULT_WATCH_CAPACITY`] events behind.
    pub fn new() -> Self {
        Self::with_watch_capacity(DEFAULT_WATCH_CAPACITY)
    }

    /// An empty store whose watchers may lag `capacity` events behind before their
    /// stream ends with [`StoreError::WatchLagged`].
    pub fn with_watch_capacity(capacity: usize) -> Self {
        let (events, _) = broadcast::channel(capacity.max(1));
        Self {
            state: Mutex::new(State::default()),
            events,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("memory store mutex poisoned")
    }

    /// Publishes while the state lock is held, so events go out in revision order.
    fn publish(&self, event: Event) {
        // No receiver is not an error: nobody is watching.
        let _ = self.events.send(Arc::new(event));
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.state().live(key).map(|row| row.key_value(key)))
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult, StoreError> {
        self.state().list(prefix, &opts)
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision, StoreError> {
        let mut state = self.state();
        if state.live(key).is_some() {
            return Err(StoreError::AlreadyExists(key.to_owned()));
        }
        let event = state.append(key, None, false, value);
        let revision = event.kv.mod_revision;
        self.publish(event);
        Ok(revision)
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        let mut state = self.state();
        let row = state
            .live(key)
            .ok_or_else(|| StoreError::NotFound(key.to_owned()))?;
        if row.revision != expected {
            return Err(StoreError::Conflict {
                key: key.to_owned(),
                expected,
                actual: Some(row.revision),
            });
        }
        let create_revision = row.create_revision;
        let event = state.append(key, Some(create_revision), false, value);
        let revision = event.kv.mod_revision;
        self.publish(event);
        Ok(revision)
    }

    async fn txn(&self, writes: Vec<crate::TxnWrite>) -> Result<Vec<Revision>, StoreError> {
        use crate::TxnWrite;
        crate::check_txn_keys(&writes)?;
        let mut state = self.state();
        for write in &writes {
            match write {
                TxnWrite::Create { key, .. } => {
                    if state.live(key).is_some() {
                        return Err(StoreError::AlreadyExists(key.clone()));
                    }
                }
                TxnWrite::Update { key, expected, .. } => {
                    let row = state
                        .live(key)
                        .ok_or_else(|| StoreError::NotFound(key.clone()))?;
                    if row.revision != *expected {
                        return Err(StoreError::Conflict {
                            key: key.clone(),
                            expected: *expected,
                            actual: Some(row.revision),
                        });
                    }
                }
            }
        }
        let mut revisions = Vec::with_capacity(writes.len());
        for write in writes {
            let create_revision = state.live(write.key()).map(|row| row.create_revision);
            let event = state.append(write.key(), create_revision, false, write.value().clone());
            revisions.push(event.kv.mod_revision);
            self.publish(event);
        }
        Ok(revisions)
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue, StoreError> {
        let mut state = self.state();
        let row = state
            .live(key)
            .ok_or_else(|| StoreError::NotFound(key.to_owned()))?;
        if let Some(expected) = expected.filter(|&e| e != row.revision) {
            return Err(StoreError::Conflict {
                key: key.to_owned(),
                expected,
                actual: Some(row.revision),
            });
        }
        let (create_revision, value) = (row.create_revision, row.value.clone());
        let event = state.append(key, Some(create_revision), true, value);
        let kv = event.kv.clone();
        self.publish(event);
        Ok(kv)
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let state = self.state();
        if after < state.compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted: state.compacted,
            });
        }
        // Under the lock no write can slip between the history and the subscription.
        let live = self.events.subscribe();
        let history = state
            .log
            .range(after.saturating_add(1)..)
            .filter(|(_, key)| key.starts_with(prefix))
            .filter_map(|(revision, key)| {
                let rows = state.keys.get(key)?;
                let i = rows
                    .binary_search_by_key(revision, |row| row.revision)
                    .ok()?;
                Some(rows[i].event(key))
            })
            .collect();
        let seen = state.revision.max(after);
        drop(state);
        Ok(watch::stream(history, live, prefix.to_owned(), seen))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let mut state = self.state();
        if revision > state.revision {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current: state.revision,
            });
        }
        if revision > state.compacted {
            state.compact(revision);
        }
        Ok(())
    }

    async fn watch_with_progress(
        &self,
        prefix: &str,
        after: Revision,
    ) -> Result<crate::ProgressStream, StoreError> {
        crate::watch_without_progress(self, prefix, after).await
    }

    async fn claim_compaction(
        &self,
        version: i64,
        _revision: Revision,
    ) -> Result<crate::CompactionClaim, StoreError> {
        crate::claim_alone(self, version).await
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.state().revision)
    }

    fn local_revision(&self) -> Option<Revision> {
        Some(self.state().revision)
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[tokio::test]
    async fn compaction_drops_superseded_rows_and_tombstones() {
        let store = MemoryStore::new();
        let r1 = store.create("/a", Bytes::from_static(b"1")).await.unwrap();
        let r2 = store
            .update("/a", Bytes::from_static(b"2"), r1)
            .await
            .unwrap();
        store.create("/b", Bytes::from_static(b"1")).await.unwrap();
        let deleted = store.delete("/b", None).await.unwrap();
        let r5 = store
            .update("/a", Bytes::from_static(b"3"), r2)
            .await
            .unwrap();
        store.compact(deleted.mod_revision).await.unwrap();
        let state = store.state();
        assert_eq!(state.keys.len(), 1, "/b is gone entirely");
        let revisions: Vec<_> = state.keys["/a"].iter().map(|row| row.revision).collect();
        assert_eq!(
            revisions,
            vec![r2, r5],
            "the row of r1 is superseded at the compact revision"
        );
        assert_eq!(state.log.keys().copied().collect::<Vec<_>>(), vec![r2, r5]);
    }
}
