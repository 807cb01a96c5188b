//! Reads: a bounded pool of read connections used under `spawn_blocking`, the head
//! revision, latest values, ranges and history.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::Semaphore;

use super::{HEAD, LATEST, Location};
use crate::{Event, EventKind, KeyValue, ListOptions, ListResult, Revision, StoreError};

/// A bounded pool of read connections, used under `spawn_blocking`.
pub(super) struct Readers {
    pub(super) location: Location,
    pub(super) idle: Mutex<Vec<Connection>>,
    /// One permit per connection, so the pool never holds more than that many.
    pub(super) permits: Arc<Semaphore>,
}

impl Readers {
    /// Runs `read` on a pooled connection on a blocking thread.
    pub(super) async fn run<T, F>(self: &Arc<Self>, read: F) -> Result<T, StoreError>
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
pub(super) struct Head {
    pub(super) current: Revision,
    pub(super) compacted: Revision,
}

pub(super) fn head(conn: &Connection) -> rusqlite::Result<Head> {
    conn.prepare_cached(HEAD)?.query_row([], |row| {
        Ok(Head {
            current: row.get(0)?,
            compacted: row.get(1)?,
        })
    })
}

/// A row of `kv`, without its name.
pub(super) struct Row {
    pub(super) id: Revision,
    pub(super) deleted: bool,
    pub(super) create_revision: Revision,
    pub(super) value: Bytes,
}

impl Row {
    pub(super) fn key_value(self, key: String) -> KeyValue {
        KeyValue {
            key,
            value: self.value,
            create_revision: self.create_revision,
            mod_revision: self.id,
        }
    }
}

pub(super) fn blob(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Bytes> {
    Ok(Bytes::copy_from_slice(row.get_ref(index)?.as_blob()?))
}

pub(super) fn latest(conn: &Connection, key: &str) -> rusqlite::Result<Option<Row>> {
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
pub(super) fn prefix_end(prefix: &str) -> Option<String> {
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
pub(super) fn name_range<'a>(
    prefix: &'a str,
    start_after: Option<&'a str>,
) -> (String, &'a str, String) {
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
pub(super) fn list_sql(range: &str) -> String {
    format!(
        "SELECT kv.id, kv.name, kv.create_revision, kv.value FROM kv INDEXED BY kv_name_id \
         WHERE {range} AND kv.id <= ?3 AND kv.deleted = 0 \
         AND kv.id = (SELECT MAX(newer.id) FROM kv AS newer WHERE newer.name = kv.name AND newer.id <= ?3) \
         ORDER BY kv.name LIMIT ?4"
    )
}

pub(super) fn list(
    conn: &mut Connection,
    prefix: &str,
    opts: &ListOptions,
) -> Result<ListResult, StoreError> {
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
pub(super) fn history(
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
