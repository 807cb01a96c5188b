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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};
use tokio::sync::{Semaphore, broadcast, oneshot};

use crate::{
    DEFAULT_WATCH_CAPACITY, Event, EventKind, KeyValue, ListOptions, ListResult, Revision, Store,
    StoreError, WatchStream, watch,
};

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

        let (events, _) = broadcast::channel(options.watch_capacity.max(1));
        let (writer, requests) = mpsc::channel();
        let thread_events = events.clone();
        let max_batch = options.max_batch.max(1);
        let thread = std::thread::Builder::new()
            .name("moor-store-writer".into())
            .spawn(move || write_loop(conn, requests, thread_events, max_batch))
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

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        self.readers.run(|conn| Ok(head(conn)?.current)).await
    }
}

// ---------------------------------------------------------------------------------------
// Reads

/// A bounded pool of read connections, used under `spawn_blocking`.
struct Readers {
    location: Location,
    idle: Mutex<Vec<Connection>>,
    /// One permit per connection, so the pool never holds more than that many.
    permits: Arc<Semaphore>,
}

impl Readers {
    /// Runs `read` on a pooled connection on a blocking thread.
    async fn run<T, F>(self: &Arc<Self>, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Backend("the read pool is closed".into()))?;
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let pooled = readers.idle.lock().expect("read pool mutex poisoned").pop();
            let mut conn = match pooled {
                Some(conn) => conn,
                None => {
                    let conn = readers.location.connect()?;
                    conn.execute_batch("PRAGMA query_only = ON")?;
                    conn
                }
            };
            let result = read(&mut conn);
            readers
                .idle
                .lock()
                .expect("read pool mutex poisoned")
                .push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("sqlite read task failed: {e}")))?
    }
}

/// The store's current and compacted revisions.
#[derive(Clone, Copy, Debug)]
struct Head {
    current: Revision,
    compacted: Revision,
}

fn head(conn: &Connection) -> rusqlite::Result<Head> {
    conn.prepare_cached(HEAD)?.query_row([], |row| {
        Ok(Head {
            current: row.get(0)?,
            compacted: row.get(1)?,
        })
    })
}

/// A row of `kv`, without its name.
struct Row {
    id: Revision,
    deleted: bool,
    create_revision: Revision,
    value: Bytes,
}

impl Row {
    fn key_value(self, key: String) -> KeyValue {
        KeyValue {
            key,
            value: self.value,
            create_revision: self.create_revision,
            mod_revision: self.id,
        }
    }
}

fn blob(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Bytes> {
    Ok(Bytes::copy_from_slice(row.get_ref(index)?.as_blob()?))
}

fn latest(conn: &Connection, key: &str) -> rusqlite::Result<Option<Row>> {
    conn.prepare_cached(LATEST)?
        .query_row([key], |row| {
            Ok(Row {
                id: row.get(0)?,
                deleted: row.get(1)?,
                create_revision: row.get(2)?,
                value: blob(row, 3)?,
            })
        })
        .optional()
}

/// The smallest string greater than every string that starts with `prefix`, if any.
///
/// SQLite compares TEXT bytewise, and UTF-8 byte order is code point order, so
/// `prefix <= name < prefix_end(prefix)` holds exactly for the names starting with
/// `prefix` and lets the `(name, id)` index serve a prefix scan (LIKE would not).
pub(crate) fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// `name` conditions selecting the keys under `prefix` after `start_after`, binding
/// `?1` (lower bound) and `?2` (upper bound, unused when there is none).
fn name_range<'a>(prefix: &'a str, start_after: Option<&'a str>) -> (String, &'a str, String) {
    let (lower_op, lower) = match start_after {
        Some(after) if after >= prefix => (">", after),
        _ => (">=", prefix),
    };
    match prefix_end(prefix) {
        Some(upper) => (format!("name {lower_op} ?1 AND name < ?2"), lower, upper),
        // No upper bound (an empty prefix): `?2` is still bound, so mention it.
        None => (
            format!("name {lower_op} ?1 AND ?2 = ?2"),
            lower,
            String::new(),
        ),
    }
}

/// The newest row of each name at `?3` that is not a tombstone, walking the `(name, id)`
/// index in name order: no sort (sorting rows with their values made a list of 10,000
/// keys five times slower), and a `LIMIT` stops the walk early.
fn list_sql(range: &str) -> String {
    format!(
        "SELECT kv.id, kv.name, kv.create_revision, kv.value FROM kv INDEXED BY kv_name_id \
         WHERE {range} AND kv.id <= ?3 AND kv.deleted = 0 \
         AND kv.id = (SELECT MAX(newer.id) FROM kv AS newer WHERE newer.name = kv.name AND newer.id <= ?3) \
         ORDER BY kv.name LIMIT ?4"
    )
}

fn list(conn: &mut Connection, prefix: &str, opts: &ListOptions) -> Result<ListResult, StoreError> {
    let tx = conn.transaction()?;
    let head = head(&tx)?;
    let revision = match opts.revision {
        None => head.current,
        Some(r) if r < head.compacted => {
            return Err(StoreError::Compacted {
                requested: r,
                compacted: head.compacted,
            });
        }
        Some(r) if r > head.current => {
            return Err(StoreError::FutureRevision {
                requested: r,
                current: head.current,
            });
        }
        Some(r) => r,
    };
    let (range, lower, upper) = name_range(prefix, opts.start_after.as_deref());
    let sql = list_sql(&range);
    let fetch = opts
        .limit
        .map_or(-1, |limit| i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1);
    let mut kvs = Vec::new();
    {
        let mut stmt = tx.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![lower, upper, revision, fetch])?;
        while let Some(row) = rows.next()? {
            kvs.push(KeyValue {
                key: row.get(1)?,
                value: blob(row, 3)?,
                create_revision: row.get(2)?,
                mod_revision: row.get(0)?,
            });
        }
    }
    tx.commit()?;
    let more = opts.limit.is_some_and(|limit| kvs.len() > limit);
    if let Some(limit) = opts.limit {
        kvs.truncate(limit);
    }
    Ok(ListResult {
        kvs,
        revision,
        more,
    })
}

/// Every event under `prefix` after `after`, and the revision they were read at.
fn history(
    conn: &mut Connection,
    prefix: &str,
    after: Revision,
) -> Result<(Vec<Event>, Revision), StoreError> {
    let tx = conn.transaction()?;
    let head = head(&tx)?;
    if after < head.compacted {
        return Err(StoreError::Compacted {
            requested: after,
            compacted: head.compacted,
        });
    }
    let (range, lower, upper) = name_range(prefix, None);
    // Walk the rowid from `after` (usually recent, so few rows) instead of every row of
    // the prefix through the name index.
    let sql = format!(
        "SELECT id, name, deleted, create_revision, value FROM kv NOT INDEXED \
         WHERE id > ?3 AND {range} ORDER BY id"
    );
    let mut events = Vec::new();
    {
        let mut stmt = tx.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![lower, upper, after])?;
        while let Some(row) = rows.next()? {
            let deleted: bool = row.get(2)?;
            events.push(Event {
                kind: if deleted {
                    EventKind::Delete
                } else {
                    EventKind::Put
                },
                kv: KeyValue {
                    key: row.get(1)?,
                    value: blob(row, 4)?,
                    create_revision: row.get(3)?,
                    mod_revision: row.get(0)?,
                },
            });
        }
    }
    tx.commit()?;
    Ok((events, head.current.max(after)))
}

// ---------------------------------------------------------------------------------------
// Writes

enum WriteOp {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    Compact {
        revision: Revision,
    },
}

enum Outcome {
    Revision(Revision),
    Deleted(KeyValue),
    Compacted,
}

impl Outcome {
    fn unexpected(&self) -> StoreError {
        let what = match self {
            Outcome::Revision(_) => "a revision",
            Outcome::Deleted(_) => "a deleted key",
            Outcome::Compacted => "a compaction",
        };
        StoreError::Backend(format!(
            "the sqlite writer answered with {what} to another request"
        ))
    }
}

struct WriteRequest {
    op: WriteOp,
    reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

/// What a request did: its answer and, if it wrote, its event.
type Applied = (Result<Outcome, StoreError>, Option<Event>);

/// A request's own result: what it wrote, or why its precondition failed.
type Written = Result<(Outcome, Option<Event>), StoreError>;

enum BatchError {
    /// Request `index` failed in SQLite; the transaction was rolled back.
    Request(usize, rusqlite::Error),
    /// Beginning or committing the transaction failed: nothing was written.
    Transaction(rusqlite::Error),
}

/// The writer thread: takes every waiting request (up to `max_batch`), applies them in
/// one transaction, publishes their events after the commit, then answers each.
fn write_loop(
    mut conn: Connection,
    requests: mpsc::Receiver<WriteRequest>,
    events: broadcast::Sender<Arc<Event>>,
    max_batch: usize,
) {
    while let Ok(first) = requests.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        loop {
            match apply_batch(&mut conn, &batch) {
                Ok(applied) => {
                    for (request, (result, event)) in batch.into_iter().zip(applied) {
                        if let Some(event) = event {
                            // No receiver is not an error: nobody is watching.
                            let _ = events.send(Arc::new(event));
                        }
                        // The caller may have gone away; its write stands.
                        let _ = request.reply.send(result);
                    }
                    break;
                }
                Err(BatchError::Request(index, err)) => {
                    // Answer the failing request and retry the others without it.
                    tracing::warn!(error = %err, "sqlite store: a write failed");
                    let request = batch.remove(index);
                    let _ = request.reply.send(Err(err.into()));
                    if batch.is_empty() {
                        break;
                    }
                }
                Err(BatchError::Transaction(err)) => {
                    tracing::error!(error = %err, "sqlite store: a write transaction failed");
                    let message = format!("sqlite: {err}");
                    for request in batch {
                        let _ = request
                            .reply
                            .send(Err(StoreError::Backend(message.clone())));
                    }
                    // A connection left inside a transaction would fail every later batch.
                    if !conn.is_autocommit() {
                        let _ = conn.execute_batch("ROLLBACK");
                    }
                    break;
                }
            }
        }
    }
}

fn apply_batch(conn: &mut Connection, batch: &[WriteRequest]) -> Result<Vec<Applied>, BatchError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(BatchError::Transaction)?;
    let mut current = head(&tx).map_err(BatchError::Transaction)?.current;
    let mut applied = Vec::with_capacity(batch.len());
    for (index, request) in batch.iter().enumerate() {
        let result =
            apply(&tx, &request.op, &mut current).map_err(|err| BatchError::Request(index, err))?;
        applied.push(match result {
            Ok((outcome, event)) => (Ok(outcome), event),
            Err(err) => (Err(err), None),
        });
    }
    tx.commit().map_err(BatchError::Transaction)?;
    Ok(applied)
}

/// Applies one request inside the batch's transaction. The outer error is SQLite's; the
/// inner one the request's own (a failed precondition), which writes nothing.
fn apply(tx: &Transaction<'_>, op: &WriteOp, current: &mut Revision) -> rusqlite::Result<Written> {
    match op {
        WriteOp::Create { key, value } => {
            let prev = latest(tx, key)?;
            if prev.as_ref().is_some_and(|row| !row.deleted) {
                return Ok(Err(StoreError::AlreadyExists(key.clone())));
            }
            let revision = *current + 1;
            let prev_revision = prev.map_or(0, |row| row.id);
            insert(tx, revision, key, false, revision, prev_revision, value)?;
            *current = revision;
            let kv = KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: revision,
                mod_revision: revision,
            };
            Ok(Ok((
                Outcome::Revision(revision),
                Some(Event {
                    kind: EventKind::Put,
                    kv,
                }),
            )))
        }
        WriteOp::Update {
            key,
            value,
            expected,
        } => {
            let prev = match latest(tx, key)? {
                Some(row) if !row.deleted => row,
                _ => return Ok(Err(StoreError::NotFound(key.clone()))),
            };
            if prev.id != *expected {
                return Ok(Err(StoreError::Conflict {
                    key: key.clone(),
                    expected: *expected,
                    actual: Some(prev.id),
                }));
            }
            let revision = *current + 1;
            insert(
                tx,
                revision,
                key,
                false,
                prev.create_revision,
                prev.id,
                value,
            )?;
            *current = revision;
            let kv = KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: prev.create_revision,
                mod_revision: revision,
            };
            Ok(Ok((
                Outcome::Revision(revision),
                Some(Event {
                    kind: EventKind::Put,
                    kv,
                }),
            )))
        }
        WriteOp::Delete { key, expected } => {
            let prev = match latest(tx, key)? {
                Some(row) if !row.deleted => row,
                _ => return Ok(Err(StoreError::NotFound(key.clone()))),
            };
            if let Some(expected) = expected.filter(|&e| e != prev.id) {
                return Ok(Err(StoreError::Conflict {
                    key: key.clone(),
                    expected,
                    actual: Some(prev.id),
                }));
            }
            let revision = *current + 1;
            insert(
                tx,
                revision,
                key,
                true,
                prev.create_revision,
                prev.id,
                &prev.value,
            )?;
            *current = revision;
            let kv = KeyValue {
                key: key.clone(),
                value: prev.value,
                create_revision: prev.create_revision,
                mod_revision: revision,
            };
            let event = Event {
                kind: EventKind::Delete,
                kv: kv.clone(),
            };
            Ok(Ok((Outcome::Deleted(kv), Some(event))))
        }
        WriteOp::Compact { revision } => {
            let revision = *revision;
            if revision > *current {
                return Ok(Err(StoreError::FutureRevision {
                    requested: revision,
                    current: *current,
                }));
            }
            let compacted = head(tx)?.compacted;
            if revision > compacted {
                let removed = tx
                    .prepare_cached(COMPACT)?
                    .execute(params![compacted, revision])?;
                tx.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'compact_revision'")?
                    .execute([revision])?;
                tracing::debug!(revision, removed, "sqlite store: compacted");
            }
            Ok(Ok((Outcome::Compacted, None)))
        }
    }
}

fn insert(
    tx: &Transaction<'_>,
    revision: Revision,
    key: &str,
    deleted: bool,
    create_revision: Revision,
    prev_revision: Revision,
    value: &[u8],
) -> rusqlite::Result<()> {
    let created = !deleted && create_revision == revision;
    tx.prepare_cached(INSERT)?.execute(params![
        revision,
        key,
        created,
        deleted,
        create_revision,
        prev_revision,
        value
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

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
    async fn lagging_watcher_gets_watch_lagged_then_end() {
        let options = SqliteOptions {
            watch_capacity: 4,
            ..SqliteOptions::default()
        };
        let store = SqliteStore::open_in_memory_with(options).unwrap();
        let mut watch = store.watch("/", 0).await.unwrap();
        // Past the ring's capacity in events, or past the watcher's byte budget.
        let big = Bytes::from(vec![0u8; 4 << 20]);
        for i in 0..10 {
            store.create(&format!("/k{i}"), big.clone()).await.unwrap();
        }
        let mut delivered = 0;
        loop {
            match watch.next().await {
                Some(Ok(_)) => delivered += 1,
                Some(Err(StoreError::WatchLagged)) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(delivered < 10, "closed before all 10 events");
        assert!(watch.next().await.is_none());
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
