//! An etcd-shaped key-value store: one global revision, compare-and-swap on revision,
//! list at a revision, watch from a revision, compaction. The API server keeps every
//! object here; backends are SQLite (the embedded default), etcd (for replicas; also kine,
//! without multi-key transactions) and memory (tests).
//! Every backend must pass [`conformance`]. This crate calls nothing but its own backends.

#![warn(missing_docs)]

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

pub mod cache;
pub mod conformance;
pub mod etcd;
pub mod memory;
pub mod sqlite;
mod watch;

pub use watch::DEFAULT_WATCH_BUFFER_BYTES;

pub use cache::{CacheOptions, CacheStats, CachedStore, DEFAULT_WATCH_CACHE_BYTES};
pub use etcd::{EtcdError, EtcdOptions, EtcdStore, EtcdTls, LeaseId};
pub use memory::MemoryStore;
pub use sqlite::{SqliteOptions, SqliteStore};

/// A point in the store's single, ever-increasing history. The first write gets 1.
pub type Revision = i64;

/// How many events the shared broadcast ring holds for the watchers, unless a backend
/// is configured otherwise. Each watcher drains it at once into a queue of its own,
/// bounded by [`DEFAULT_WATCH_BUFFER_BYTES`]; a watcher past either bound ends with
/// [`StoreError::WatchLagged`].
pub const DEFAULT_WATCH_CAPACITY: usize = 8192;

/// One key at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, e.g. `/imagestreams/ns/name`.
    pub key: String,
    /// The value as stored (opaque bytes).
    pub value: Bytes,
    /// Revision of the write that created this key (its current incarnation).
    pub create_revision: Revision,
    /// Revision of the last write to this key; for a deleted key, the delete's revision.
    pub mod_revision: Revision,
}

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Created (when `kv.create_revision == kv.mod_revision`) or updated.
    Put,
    /// Deleted: `kv.value` is the last value, `kv.mod_revision` the delete's revision.
    Delete,
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change (for a delete, its last value at the delete's revision).
    pub kv: KeyValue,
}

/// Options of [`Store::list`].
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// Read as of this revision; `None` reads the current state.
    pub revision: Option<Revision>,
    /// Only keys strictly greater than this one (for paging).
    pub start_after: Option<String>,
    /// At most this many keys; `None` for all.
    pub limit: Option<usize>,
}

/// The answer of [`Store::list`]: keys in ascending order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListResult {
    /// The matching keys, ascending.
    pub kvs: Vec<KeyValue>,
    /// The revision the list was read at.
    pub revision: Revision,
    /// More keys match beyond `limit`.
    pub more: bool,
}

/// One write of a [`Store::txn`]: a create or a compare-and-swap update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnWrite {
    /// Creates `key`; the transaction fails with `AlreadyExists` if it exists.
    Create {
        /// The key.
        key: String,
        /// Its value.
        value: Bytes,
    },
    /// Replaces `key` if its `mod_revision` is `expected`; the transaction fails with
    /// `NotFound` or `Conflict` otherwise.
    Update {
        /// The key.
        key: String,
        /// Its new value.
        value: Bytes,
        /// The `mod_revision` it must have.
        expected: Revision,
    },
}

impl TxnWrite {
    /// The key written.
    pub fn key(&self) -> &str {
        match self {
            TxnWrite::Create { key, .. } | TxnWrite::Update { key, .. } => key,
        }
    }

    /// The value written.
    pub fn value(&self) -> &Bytes {
        match self {
            TxnWrite::Create { value, .. } | TxnWrite::Update { value, .. } => value,
        }
    }
}

/// Checks that the keys of a [`Store::txn`] are distinct (each backend calls it first).
pub fn check_txn_keys(writes: &[TxnWrite]) -> Result<(), StoreError> {
    let mut keys: Vec<&str> = writes.iter().map(TxnWrite::key).collect();
    keys.sort_unstable();
    match keys.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(StoreError::Backend(format!(
            "a transaction writes key {:?} twice",
            w[0]
        ))),
        None => Ok(()),
    }
}

/// A watch: events in revision order; ends with `Err` if the watcher fell too far behind.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<Event, StoreError>> + Send>>;

/// One item of a [`ProgressStream`]: a change, or word that the watch is complete up to
/// a revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchItem {
    /// A change, as [`WatchStream`] yields it.
    Event(Event),
    /// Every change under the watched prefix up to this revision has been yielded: a
    /// bookmark (from etcd's progress notifications). It may repeat, never goes back,
    /// and is at least the revision of every event before it.
    Progress(Revision),
}

/// A watch with bookmarks: [`WatchItem`]s in revision order; ends like [`WatchStream`].
pub type ProgressStream = Pin<Box<dyn Stream<Item = Result<WatchItem, StoreError>> + Send>>;

/// The answer of [`Store::claim_compaction`]: one round of kube-apiserver's compactor
/// election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactionClaim {
    /// This process won the round: it compacts to the revision of its previous round.
    pub won: bool,
    /// The compaction key's version now: what the next round compares.
    pub version: i64,
    /// The store's revision at the claim: what the next round compacts to.
    pub revision: Revision,
}

/// Errors of every backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `create` of a key that exists.
    #[error("key {0:?} already exists")]
    AlreadyExists(String),
    /// `update` or `delete` of a key that does not exist.
    #[error("key {0:?} not found")]
    NotFound(String),
    /// Compare-and-swap failed: the key is at another revision (or gone).
    #[error("key {key:?} was modified: expected revision {expected}, found {actual:?}")]
    Conflict {
        /// The key written.
        key: String,
        /// The revision the caller expected.
        expected: Revision,
        /// The key's current `mod_revision`, `None` if it does not exist.
        actual: Option<Revision>,
    },
    /// The requested revision was compacted away.
    #[error("revision {requested} has been compacted (oldest available is {compacted})")]
    Compacted {
        /// The revision asked for (for a watch, its `after`).
        requested: Revision,
        /// The compacted revision: the oldest one still readable.
        compacted: Revision,
    },
    /// The requested revision is newer than the store.
    #[error("revision {requested} is in the future (current is {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The store's current revision.
        current: Revision,
    },
    /// The watcher fell behind and missed events; it must list and watch again.
    #[error("watch fell behind and was closed")]
    WatchLagged,
    /// The backend failed (I/O, database, a stopped worker); the operation may be retried.
    #[error("store backend: {0}")]
    Backend(String),
    /// The backend cannot do this at all (kine: a transaction over several keys); a
    /// retry fails the same way.
    #[error("store backend does not support this: {0}")]
    Unsupported(String),
}

/// An etcd-shaped store. All operations are atomic on one key, [`txn`](Self::txn) on
/// several; revisions are global.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current value of `key`.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;
    /// Keys starting with `prefix`, in ascending key order. Reading at a past revision
    /// fails with `Compacted` below the compacted revision and with `FutureRevision`
    /// above the current one.
    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult, StoreError>;
    /// Creates `key`; fails with `AlreadyExists` if it exists. Returns the new revision.
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision, StoreError>;
    /// Replaces `key` if its `mod_revision` equals `expected`. Returns the new revision.
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
    ) -> Result<Revision, StoreError>;
    /// Applies every write of `writes` or none (an outbox entry with the change it
    /// records): each precondition is checked, and the first that fails is the error.
    /// Keys must be distinct. Returns each write's revision, in order: the same one on
    /// etcd (one Txn), consecutive ones where every write has its own. Watchers see
    /// the writes in that order. Required, so that a wrapper forwards it. On etcd this
    /// is a Txn of several compares and puts, which kine does not accept: where
    /// [`multi_key_txn`](Self::multi_key_txn) is false, more than one write fails with
    /// [`StoreError::Unsupported`].
    async fn txn(&self, writes: Vec<TxnWrite>) -> Result<Vec<Revision>, StoreError>;
    /// Whether [`txn`](Self::txn) takes several writes (every backend but etcd in kine
    /// mode, `kine://`). Wrappers forward it. The default: true.
    fn multi_key_txn(&self) -> bool {
        true
    }
    /// Deletes `key`, if `expected` is given only at that `mod_revision`. Returns the
    /// deleted value with `mod_revision` set to the delete's revision.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue, StoreError>;
    /// Every change under `prefix` with a revision greater than `after`, then live ones.
    /// Fails with `Compacted` when `after` is older than the compacted revision.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError>;
    /// Forgets history older than `revision`: later watches must start at or after it,
    /// lists must read at or after it. Compacting at or below the compacted revision does
    /// nothing; above the current revision fails with `FutureRevision`.
    async fn compact(&self, revision: Revision) -> Result<(), StoreError>;
    /// [`get`](Self::get) where any recent value will do (kube's `resourceVersion=0`):
    /// a store with a watch cache answers from memory, possibly a little behind the
    /// last write. The default: `get`.
    async fn get_recent(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.get(key).await
    }
    /// [`list`](Self::list) where, without `opts.revision`, any recent state will do
    /// (kube's `resourceVersion=0`); the result's `revision` says which. The default:
    /// `list`.
    async fn list_recent(&self, prefix: &str, opts: ListOptions) -> Result<ListResult, StoreError> {
        self.list(prefix, opts).await
    }
    /// The revision of the last write (0 for an empty store).
    async fn current_revision(&self) -> Result<Revision, StoreError>;
    /// The revision of the last write this store has acknowledged, when it knows it
    /// without a round trip because this process is the store's only writer (SQLite's
    /// writer thread, the memory store): at least the revision of every write whose
    /// call has returned. `None` when other processes may write too (etcd). A watch
    /// cache reads consistently from memory once it has applied this revision. Wrappers
    /// below a cache forward it. The default: `None`.
    fn local_revision(&self) -> Option<Revision> {
        None
    }
    /// [`watch`](Self::watch) with bookmarks: [`WatchItem::Progress`] carries a revision
    /// up to which the watch is complete, also when no change under `prefix` happened.
    /// Required, so that a wrapper forwards it rather than losing the bookmarks: a store
    /// only one process opens may answer with [`watch_without_progress`].
    async fn watch_with_progress(
        &self,
        prefix: &str,
        after: Revision,
    ) -> Result<ProgressStream, StoreError>;
    /// One round of the compactor election kube-apiserver runs on etcd: the process
    /// whose compare-and-swap of the compaction key from `version` succeeds wins the
    /// round and compacts (to the `revision` of its previous round); the others learn
    /// the key's new version and wait a full interval. Required, so that a wrapper
    /// forwards it: a store only one process opens may answer with [`claim_alone`].
    async fn claim_compaction(
        &self,
        version: i64,
        revision: Revision,
    ) -> Result<CompactionClaim, StoreError>;
    /// Whether `kv`, as this store returned it, should be written again even when an
    /// update leaves it unchanged: a store that transforms values (encryption at rest)
    /// says so while the value is kept with another key than writes use now (kube's
    /// "stale" transformer result). The default: never.
    async fn is_stale(&self, kv: &KeyValue) -> Result<bool, StoreError> {
        let _ = kv;
        Ok(false)
    }
}

/// [`Store::watch_with_progress`] for a store only one process opens: its
/// [`watch`](Store::watch) events, never a bookmark (the process knows its own writes).
pub async fn watch_without_progress<S: Store + ?Sized>(
    store: &S,
    prefix: &str,
    after: Revision,
) -> Result<ProgressStream, StoreError> {
    use futures::StreamExt as _;
    let events = store.watch(prefix, after).await?;
    Ok(events.map(|r| r.map(WatchItem::Event)).boxed())
}

/// [`Store::claim_compaction`] for a store only one process opens: every round is won,
/// at the current revision.
pub async fn claim_alone<S: Store + ?Sized>(
    store: &S,
    version: i64,
) -> Result<CompactionClaim, StoreError> {
    Ok(CompactionClaim {
        won: true,
        version: version + 1,
        revision: store.current_revision().await?,
    })
}
