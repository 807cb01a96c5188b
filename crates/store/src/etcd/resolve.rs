//! Reading back a write whose outcome is unknown (the request timed out, or the
//! connection broke after it was sent), to decide whether it applied; a write that did
//! not is sent again, one that did is answered as if etcd had said so. All revisions
//! here are etcd's.
//!
//! Compare-and-swap lets exactly one write follow a given revision of a key, so the key's
//! first change after the expected revision tells: it is ours if it is what we wrote (a
//! put of the same bytes, or a delete). Another writer's identical write from the same
//! revision is indistinguishable, and equivalent. When history was compacted in between,
//! the outcome stays unknown and the write fails with `Backend`, never retried blindly.
//!
//! A create has no expected revision: it counts as ours when the key now exists, was
//! created after the last revision this client saw before sending, and held our bytes
//! when created. One case stays open: a create that applied and whose key was deleted
//! again before this read finds the key absent, and the create is sent again (it would
//! take another client deleting an object whose creation was never acknowledged).

use super::{Inner, watch};
use crate::{KeyValue, StoreError};

/// Whether a create of `value` at `key` applied: its revision, or `None`.
pub(super) async fn create(
    inner: &Inner,
    key: &[u8],
    value: &[u8],
    before: i64,
) -> Result<Option<i64>, StoreError> {
    let Some(now) = inner.get_one(key).await? else {
        return Ok(None);
    };
    let created = now.create_revision();
    if created <= before {
        // It existed before we wrote: the retry answers AlreadyExists.
        return Ok(None);
    }
    let first = if now.mod_revision() == created {
        now.value().to_vec()
    } else {
        match inner.get_at(key, created).await {
            Ok(Some(kv)) => kv.value().to_vec(),
            Ok(None) | Err(_) => return Err(unknown(key)),
        }
    };
    Ok((first == value).then_some(created))
}

/// Whether an update of `key` from revision `expected` to `value` applied: its
/// revision, or `None`.
pub(super) async fn update(
    inner: &Inner,
    key: &[u8],
    value: &[u8],
    expected: i64,
) -> Result<Option<i64>, StoreError> {
    if !changed_since(inner, key, expected).await? {
        return Ok(None);
    }
    let event = watch::first_change(inner, key, expected).await?;
    let ours = event.event_type() == etcd_client::EventType::Put
        && event.kv().is_some_and(|kv| kv.value() == value);
    Ok(ours.then(|| event.kv().map_or(0, |kv| kv.mod_revision())))
}

/// Whether a delete of `key` at revision `expected` applied: the deleted value, or
/// `None`.
pub(super) async fn delete(
    inner: &Inner,
    key: &[u8],
    expected: i64,
) -> Result<Option<KeyValue>, StoreError> {
    if !changed_since(inner, key, expected).await? {
        return Ok(None);
    }
    let event = watch::first_change(inner, key, expected).await?;
    if event.event_type() != etcd_client::EventType::Delete {
        return Ok(None);
    }
    let (Some(kv), Some(prev)) = (event.kv(), event.prev_kv()) else {
        return Err(unknown(key));
    };
    let mut deleted = inner.moor_kv(prev)?;
    deleted.mod_revision = kv.mod_revision() - super::REVISION_OFFSET;
    Ok(Some(deleted))
}

/// Whether `key` was at `expected` and changed since: only then can a write compared
/// against `expected` have applied, and only then does its history hold a change.
async fn changed_since(inner: &Inner, key: &[u8], expected: i64) -> Result<bool, StoreError> {
    match inner.get_one(key).await? {
        Some(now) if now.mod_revision() <= expected => Ok(false),
        Some(_) => Ok(true),
        None => match inner.get_at(key, expected).await {
            Ok(then) => Ok(then.is_some_and(|kv| kv.mod_revision() == expected)),
            Err(_) => Err(unknown(key)),
        },
    }
}

fn unknown(key: &[u8]) -> StoreError {
    StoreError::Backend(format!(
        "etcd write of {} has an unknown outcome (history compacted); read the key again",
        String::from_utf8_lossy(key)
    ))
}
