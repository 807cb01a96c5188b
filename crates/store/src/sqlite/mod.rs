//! The durable embedded [`Store`]: one SQLite log table in WAL mode, after k3s kine.
//! Calls rusqlite on one dedicated writer thread (group commit) and on a small pool of
//! read connections under `spawn_blocking`, and the shared watch stream of this crate.
//!
//! Layout: every write is a row of `kv`, its `id` the revision. The current value of a
//! key is its newest row; a delete is a tombstone row (`deleted = 1`) that keeps the last
//! value. `prev_revision` points at the row a write superseded, so compaction deletes
//! exactly the rows superseded at or below the compact revision, plus tombstones there.
//! `AUTOINCREMENT` keeps the revision counter in `sqlite_sequence`, so a revision is never
//! reused, even when compaction deletes the newest row. `meta` holds the compact revision.
//!
//! By concept: the store and its lifecycle here, reads on the connection pool
//! (`read`), and the writer thread with its batched transactions (`write`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::{Semaphore, broadcast, oneshot};

use crate::{
    DEFAULT_WATCH_CAPACITY, Event, KeyValue, ListOptions, ListResult, Revision, Store, StoreError,
    WatchStream, watch,
};

mod read;
mod write;

use read::{Readers, head, history, latest, list};
use write::{Outcome, WriteOp, WriteRequest, write_loop};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    created INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS kv_name_id ON kv (name, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', 1), ('compact_revision', 0);
";

/// The current and compacted revisions, read in one snapshot.
const HEAD: &str = "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'kv'), 0), \
     COALESCE((SELECT value FROM meta WHERE key = 'compact_revision'), 0)";

/// The newest row of one key (served by the `(name, id)` index).
const LATEST: &str =
    "SELECT id, deleted, create_revision, value FROM kv WHERE name = ?1 ORDER BY id DESC LIMIT 1";

const INSERT: &str = "INSERT INTO kv (id, name, created, deleted, create_revision, prev_revision, value) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// Every row in `(after, compact]` supersedes its `prev_revision`; tombstones there go too.
/// Rows at or below the previous compact revision were handled by the previous compaction.
const COMPACT: &str = "DELETE FROM kv WHERE id IN ( \
     SELECT prev_revision FROM kv WHERE id > ?1 AND id <= ?2 AND prev_revision != 0 \
     UNION ALL SELECT id FROM kv WHERE id > ?1 AND id <= ?2 AND deleted != 0)";

/// Tuning of a [`SqliteStore`].
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// How many events a watcher may lag behind before its stream ends with
    /// [`StoreError::WatchLagged`].
    pub watch_capacity: usize,
    /// Read connections (and so concurrent reads); WAL lets them run beside the writer.
    pub read_connections: usize,
    /// At most this many write requests share one transaction (and one fsync).
    pub max_batch: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            watch_capacity: DEFAULT_WATCH_CAPACITY,
            read_connections: 4,
            max_batch: 1024,
        }
    }
}

/// The durable [`Store`]: a SQLite database file in WAL mode with `synchronous=FULL`, so a
/// write whose future returned `Ok` has been committed and fsynced and survives a crash.
///
/// Writes go to one writer thread, which applies every request waiting for it in one
/// transaction (group commit: one fsync for many concurrent writers), each request with
/// its own precondition and result. A write whose future is dropped after it was sent may
/// still be applied. Reads run on a small pool of read connections under
/// `spawn_blocking`, so a tokio runtime must be running.
///
/// Open one store per database file: watchers see only the writes of their own store.
/// Dropping the store waits for the writer thread to answer what was already sent.
pub struct SqliteStore {
    writer: Option<mpsc::Sender<WriteRequest>>,
    thread: Option<JoinHandle<()>>,
    readers: Arc<Readers>,
    events: broadcast::Sender<Arc<Event>>,
    /// The revision of the last committed write, set by the writer thread before it
    /// answers the write (see [`Store::local_revision`]).
    committed: Arc<AtomicI64>,
}

/// Where the database lives, to open more connections to it.
#[derive(Clone, Debug)]
enum Location {
    File(PathBuf),
    /// A `memdb` URI shared by the connections of this process.
    Memory(String),
}

impl Location {
    fn connect(&self) -> rusqlite::Result<Connection> {
        let conn = match self {
            Location::File(path) => Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?,
            Location::Memory(uri) => Connection::open_with_flags(
                uri,
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_URI
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?,
        };
        match self {
            Location::File(_) => conn.busy_timeout(Duration::from_secs(30))?,
            // Without WAL, readers and the writer take turns on locks; SQLite's default
            // busy handler sleeps up to 100 ms a try, so retry in short steps instead.
            Location::Memory(_) => conn.busy_handler(Some(retry_soon))?,
        }
        Ok(conn)
    }
}

/// A busy handler that retries every 50 µs, for about 30 s.
fn retry_soon(attempt: i32) -> bool {
    std::thread::sleep(Duration::from_micros(50));
    attempt < 600_000
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        StoreError::Backend(format!("sqlite: {err}"))
    }
}

impl SqliteStore {
    /// Opens (creating file and schema if missing) the database at `path` with default
    /// options. Blocks briefly on file I/O.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens the database at `path` with `options`.
    pub fn open_with(path: &Path, options: SqliteOptions) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("creating {}: {e}", dir.display())))?;
        }
        Self::start(Location::File(path.to_owned()), options)
    }

    /// A fresh database in memory (SQLite's `memdb`, shared by this store's connections,
    /// with a rollback journal instead of WAL): the same SQL, nothing on disk. For tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::open_in_memory_with(SqliteOptions::default())
    }

    /// [`SqliteStore::open_in_memory`] with `options`.
    pub fn open_in_memory_with(options: SqliteOptions) -> Result<Self, StoreError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let uri = format!("file:/moor-store-{}-{n}?vfs=memdb", std::process::id());
        Self::start(Location::Memory(uri), options)
    }

    fn start(location: Location, options: SqliteOptions) -> Result<Self, StoreError> {
        let mut conn = location.connect()?;
        if let Location::File(path) = &location {
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Backend(format!(
                    "{}: cannot use WAL journal mode (got {mode})",
                    path.display()
                )));
            }
            conn.execute_batch("PRAGMA synchronous = FULL")?;
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(SCHEMA)?;
        tx.commit()?;
        let committed = Arc::new(AtomicI64::new(head(&conn)?.current));

        let (events, _) = broadcast::channel(options.watch_capacity.max(1));
        let (writer, requests) = mpsc::channel();
        let thread_events = events.clone();
        let thread_committed = committed.clone();
        let max_batch = options.max_batch.max(1);
        let thread = std::thread::Builder::new()
            .name("moor-store-writer".into())
            .spawn(move || write_loop(conn, requests, thread_events, &thread_committed, max_batch))
            .map_err(|e| StoreError::Backend(format!("starting the writer thread: {e}")))?;
        let connections = options.read_connections.max(1);
        Ok(Self {
            writer: Some(writer),
            thread: Some(thread),
            readers: Arc::new(Readers {
                location,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(connections)),
            }),
            events,
            committed,
        })
    }

    async fn write(&self, op: WriteOp) -> Result<Outcome, StoreError> {
        let stopped = || StoreError::Backend("the sqlite writer thread has stopped".into());
        let (reply, answer) = oneshot::channel();
        let writer = self.writer.as_ref().ok_or_else(stopped)?;
        writer
            .send(WriteRequest { op, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl Drop for SqliteStore {
    /// Stops the writer thread after it has answered every request already sent.
    fn drop(&mut self) {
        drop(self.writer.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the sqlite writer thread panicked");
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let key = key.to_owned();
        self.readers
            .run(move |conn| {
                let row = latest(conn, &key)?;
                Ok(row.filter(|row| !row.deleted).map(|row| row.key_value(key)))
            })
            .await
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult, StoreError> {
        let prefix = prefix.to_owned();
        self.readers
            .run(move |conn| list(conn, &prefix, &opts))
            .await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision, StoreError> {
        match self
            .write(WriteOp::Create {
                key: key.to_owned(),
                value,
            })
            .await?
        {
            Outcome::Revision(revision) => Ok(revision),
            other => Err(other.unexpected()),
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        match self
            .write(WriteOp::Update {
                key: key.to_owned(),
                value,
                expected,
            })
            .await?
        {
            Outcome::Revision(revision) => Ok(revision),
            other => Err(other.unexpected()),
        }
    }

    async fn txn(&self, writes: Vec<crate::TxnWrite>) -> Result<Vec<Revision>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        match self.write(WriteOp::Txn { writes }).await? {
            Outcome::Revisions(revisions) => Ok(revisions),
            other => Err(other.unexpected()),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue, StoreError> {
        match self
            .write(WriteOp::Delete {
                key: key.to_owned(),
                expected,
            })
            .await?
        {
            Outcome::Deleted(kv) => Ok(kv),
            other => Err(other.unexpected()),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        // Subscribe first: whatever commits after the history snapshot arrives live.
        let live = self.events.subscribe();
        let owned = prefix.to_owned();
        let (history, seen) = self
            .readers
            .run(move |conn| history(conn, &owned, after))
            .await?;
        Ok(watch::stream(history, live, prefix.to_owned(), seen))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        match self.write(WriteOp::Compact { revision }).await? {
            Outcome::Compacted => Ok(()),
            other => Err(other.unexpected()),
        }
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
        self.readers.run(|conn| Ok(head(conn)?.current)).await
    }

    /// One store per database file (see the type's docs): its writer thread is the
    /// only writer, so it knows the last committed revision.
    fn local_revision(&self) -> Option<Revision> {
        Some(self.committed.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {

    use super::read::{list_sql, name_range, prefix_end};
    use super::*;

    #[test]
    fn prefix_end_bounds_exactly_the_prefixed_strings() {
        assert_eq!(prefix_end("/a/b/").as_deref(), Some("/a/b0"));
        assert_eq!(prefix_end("").as_deref(), None);
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("x\u{D7FF}").as_deref(), Some("x\u{E000}"));
        assert_eq!(prefix_end("/ü/").as_deref(), Some("/ü0"));
        let end = prefix_end("/ü").unwrap();
        for inside in ["/ü", "/ü/", "/ü\u{10FFFF}", "/üü"] {
            assert!(inside >= "/ü" && inside < end.as_str(), "{inside}");
        }
        for outside in ["/ý", "/ý/", "/u", "/\u{10FFFF}"] {
            assert!(!(outside >= "/ü" && outside < end.as_str()), "{outside}");
        }
    }

    #[tokio::test]
    async fn compaction_deletes_superseded_rows_and_tombstones() {
        let store = SqliteStore::open_in_memory().unwrap();
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
        let ids = store
            .readers
            .run(|conn| {
                let mut stmt = conn.prepare("SELECT id FROM kv ORDER BY id")?;
                let ids = stmt
                    .query_map([], |row| row.get::<_, i64>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(ids)
            })
            .await
            .unwrap();
        assert_eq!(ids, vec![r2, r5]);
        // Compacting the newest row (a tombstone) does not reuse its revision.
        let gone = store.delete("/a", None).await.unwrap();
        store.compact(gone.mod_revision).await.unwrap();
        assert_eq!(store.current_revision().await.unwrap(), gone.mod_revision);
        assert_eq!(
            store.create("/c", Bytes::new()).await.unwrap(),
            gone.mod_revision + 1
        );
    }

    #[tokio::test]
    async fn queries_use_the_indexes() {
        let store = SqliteStore::open_in_memory().unwrap();
        let plans = store
            .readers
            .run(|conn| {
                let mut plans = Vec::new();
                let (range, _, _) = name_range("/a/", None);
                for sql in [
                    LATEST.to_owned(),
                    list_sql(&range),
                    format!("SELECT id FROM kv NOT INDEXED WHERE id > ?3 AND {range} ORDER BY id"),
                ] {
                    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                    for i in 1..=stmt.parameter_count() {
                        stmt.raw_bind_parameter(i, "x")?;
                    }
                    let mut rows = stmt.raw_query();
                    let mut plan = Vec::new();
                    while let Some(row) = rows.next()? {
                        plan.push(row.get::<_, String>(3)?);
                    }
                    plans.push(plan.join("; "));
                }
                Ok(plans)
            })
            .await
            .unwrap();
        assert!(plans[0].contains("kv_name_id"), "{}", plans[0]);
        assert!(plans[1].contains("kv_name_id"), "{}", plans[1]);
        assert!(!plans[1].contains("TEMP B-TREE"), "{}", plans[1]);
        assert!(plans[2].contains("rowid>?"), "{}", plans[2]);
    }
}
