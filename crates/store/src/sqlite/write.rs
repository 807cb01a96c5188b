//! Writes: one writer thread that batches requests into transactions (group commit)
//! and applies creates, updates, deletes and compactions.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, mpsc};

use bytes::Bytes;
use rusqlite::{Connection, Transaction, TransactionBehavior, params};
use tokio::sync::{broadcast, oneshot};

use super::read::{head, latest};
use super::{COMPACT, INSERT};
use crate::{Event, EventKind, KeyValue, Revision, StoreError};

pub(super) enum WriteOp {
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
    /// Every write or none: preconditions are all checked before the first is applied.
    Txn {
        writes: Vec<crate::TxnWrite>,
    },
}

pub(super) enum Outcome {
    Revision(Revision),
    Revisions(Vec<Revision>),
    Deleted(KeyValue),
    Compacted,
}

impl Outcome {
    pub(super) fn unexpected(&self) -> StoreError {
        let what = match self {
            Outcome::Revision(_) => "a revision",
            Outcome::Revisions(_) => "revisions",
            Outcome::Deleted(_) => "a deleted key",
            Outcome::Compacted => "a compaction",
        };
        StoreError::Backend(format!(
            "the sqlite writer answered with {what} to another request"
        ))
    }
}

pub(super) struct WriteRequest {
    pub(super) op: WriteOp,
    pub(super) reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

/// What a request did: its answer and, if it wrote, its events.
pub(super) type Applied = (Result<Outcome, StoreError>, Vec<Event>);

/// A request's own result: what it wrote, or why its precondition failed.
pub(super) type Written = Result<(Outcome, Vec<Event>), StoreError>;

pub(super) enum BatchError {
    /// Request `index` failed in SQLite; the transaction was rolled back.
    Request(usize, rusqlite::Error),
    /// Beginning or committing the transaction failed: nothing was written.
    Transaction(rusqlite::Error),
}

/// The writer thread: takes every waiting request (up to `max_batch`), applies them in
/// one transaction, records the last revision in `committed` and publishes their
/// events after the commit, then answers each.
pub(super) fn write_loop(
    mut conn: Connection,
    requests: mpsc::Receiver<WriteRequest>,
    events: broadcast::Sender<Arc<Event>>,
    committed: &AtomicI64,
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
                    // Before any answer: a caller that saw its write acknowledged
                    // reads a revision at least as new.
                    let last = applied
                        .iter()
                        .flat_map(|(_, events_of)| events_of.iter())
                        .map(|event| event.kv.mod_revision)
                        .max();
                    if let Some(last) = last {
                        committed.fetch_max(last, Ordering::Release);
                    }
                    for (request, (result, events_of)) in batch.into_iter().zip(applied) {
                        for event in events_of {
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

pub(super) fn apply_batch(
    conn: &mut Connection,
    batch: &[WriteRequest],
) -> Result<Vec<Applied>, BatchError> {
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
            Err(err) => (Err(err), Vec::new()),
        });
    }
    tx.commit().map_err(BatchError::Transaction)?;
    Ok(applied)
}

/// Applies one request inside the batch's transaction. The outer error is SQLite's; the
/// inner one the request's own (a failed precondition), which writes nothing.
pub(super) fn apply(
    tx: &Transaction<'_>,
    op: &WriteOp,
    current: &mut Revision,
) -> rusqlite::Result<Written> {
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
                vec![Event {
                    kind: EventKind::Put,
                    kv,
                }],
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
                vec![Event {
                    kind: EventKind::Put,
                    kv,
                }],
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
            Ok(Ok((Outcome::Deleted(kv), vec![event])))
        }
        WriteOp::Txn { writes } => apply_txn(tx, writes, current),
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
            Ok(Ok((Outcome::Compacted, Vec::new())))
        }
    }
}

/// A [`WriteOp::Txn`]: checks every precondition, then applies each write as its own
/// request would (which, checked, cannot fail but in SQLite).
fn apply_txn(
    tx: &Transaction<'_>,
    writes: &[crate::TxnWrite],
    current: &mut Revision,
) -> rusqlite::Result<Written> {
    use crate::TxnWrite;
    if let Err(e) = crate::check_txn_keys(writes) {
        return Ok(Err(e));
    }
    for write in writes {
        let prev = latest(tx, write.key())?.filter(|row| !row.deleted);
        let failed = match (write, prev) {
            (TxnWrite::Create { key, .. }, Some(_)) => StoreError::AlreadyExists(key.clone()),
            (TxnWrite::Create { .. }, None) => continue,
            (TxnWrite::Update { key, .. }, None) => StoreError::NotFound(key.clone()),
            (TxnWrite::Update { expected, .. }, Some(row)) if row.id == *expected => continue,
            (TxnWrite::Update { key, expected, .. }, Some(row)) => StoreError::Conflict {
                key: key.clone(),
                expected: *expected,
                actual: Some(row.id),
            },
        };
        return Ok(Err(failed));
    }
    let mut revisions = Vec::with_capacity(writes.len());
    let mut events = Vec::with_capacity(writes.len());
    for write in writes {
        let op = match write.clone() {
            TxnWrite::Create { key, value } => WriteOp::Create { key, value },
            TxnWrite::Update {
                key,
                value,
                expected,
            } => WriteOp::Update {
                key,
                value,
                expected,
            },
        };
        match apply(tx, &op, current)? {
            Ok((Outcome::Revision(revision), written)) => {
                revisions.push(revision);
                events.extend(written);
            }
            // Cannot happen once checked; failing in SQLite's terms rolls the whole
            // batch back, so no write of the transaction stays.
            Ok((other, _)) => return Err(rolled_back(other.unexpected())),
            Err(e) => return Err(rolled_back(e)),
        }
    }
    Ok(Ok((Outcome::Revisions(revisions), events)))
}

fn rolled_back(e: StoreError) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

pub(super) fn insert(
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
