//! Watches on etcd: one etcd watch per moor watcher, from a revision, with progress
//! notification and `prev_kv` (a delete event carries the last value). A task pumps
//! its events into the watcher's byte-bounded queue (the one of `crate::watch`), and
//! re-opens the etcd watch on another member from the next revision when the stream
//! breaks, so a member failure costs neither a gap nor a duplicate.
//!
//! **Bookmarks.** etcd sends a synced watcher a progress notification (a response
//! without events) every `--experimental-watch-progress-notify-interval` (etcd's default
//! is 10 minutes; kube's guidance is 5 s): every change up to its header revision was
//! sent. The pump passes it on as [`crate::WatchItem::Progress`]. moor does not send
//! `RequestProgress` itself: etcd before 3.4.24 and 3.5.8 answers it ahead of events an
//! unsynced watcher still has to receive (etcd issue 15220), which would make a
//! bookmark lie.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, GetOptions, WatchOptions, WatchStream as EtcdWatch};
use futures::StreamExt;

use super::{Inner, REVISION_OFFSET, backend};
use crate::watch::{QueueSender, queue};
use crate::{Event, EventKind, ProgressStream, Revision, StoreError};

/// Opens a watch of moor `prefix` for revisions after `after`, with bookmarks.
pub(super) async fn open(
    inner: Arc<Inner>,
    prefix: &str,
    after: Revision,
) -> Result<ProgressStream, StoreError> {
    let Some((start, end)) = inner.range(prefix) else {
        return Ok(futures::stream::pending().boxed());
    };
    // Reading the range at `after` fails exactly when `after` is below the compacted
    // revision (etcd itself would still accept a watch from the compacted revision).
    let at = GetOptions::new()
        .with_range(end.clone())
        .with_count_only()
        .with_revision((after + REVISION_OFFSET).max(1));
    match inner.get(start.clone(), at, Some(after), false).await {
        Ok(_) | Err(StoreError::FutureRevision { .. }) => {}
        Err(e) => return Err(e),
    }
    let next = after + REVISION_OFFSET + 1;
    let stream = connect(&inner, &start, &end, next).await?;
    let (tx, out) = queue(inner.watch_buffer_bytes);
    tokio::spawn(pump(inner, start, end, next, stream, tx));
    Ok(out)
}

/// An etcd watch of `[start, end)` from etcd revision `from`, once etcd confirmed it.
async fn connect(
    inner: &Inner,
    start: &[u8],
    end: &[u8],
    from: i64,
) -> Result<EtcdWatch, StoreError> {
    inner
        .read(|mut m| {
            let options = WatchOptions::new()
                .with_range(end.to_vec())
                .with_start_revision(from)
                .with_prev_key()
                .with_progress_notify();
            let start = start.to_vec();
            async move {
                let mut stream = m.watch.watch(start, Some(options)).await?;
                match stream.message().await? {
                    Some(r) if r.created() && !r.canceled() => Ok(stream),
                    Some(r) => Err(etcd_client::Error::WatchError(r.cancel_reason().into())),
                    None => Err(etcd_client::Error::WatchError("watch closed".into())),
                }
            }
        })
        .await
        .map_err(|e| backend("watch", e))
}

/// Moves events from `stream` to `tx` until the watcher is gone or the watch fails for
/// good; `next` is the etcd revision of the next event due.
async fn pump(
    inner: Arc<Inner>,
    start: Vec<u8>,
    end: Vec<u8>,
    mut next: i64,
    mut stream: EtcdWatch,
    tx: QueueSender,
) {
    loop {
        let message = tokio::select! {
            _ = tx.closed() => return,
            m = stream.message() => m,
        };
        let response = match message {
            Ok(Some(response)) => response,
            Ok(None) | Err(_) => {
                tracing::debug!(?message, "etcd watch broke; resuming");
                match connect(&inner, &start, &end, next).await {
                    Ok(s) => {
                        stream = s;
                        continue;
                    }
                    Err(e) => {
                        tx.fail(e);
                        return;
                    }
                }
            }
        };
        if response.canceled() {
            tx.fail(if response.compact_revision() != 0 {
                StoreError::Compacted {
                    requested: next - REVISION_OFFSET - 1,
                    compacted: response.compact_revision() - REVISION_OFFSET,
                }
            } else {
                backend("watch", format!("cancelled: {}", response.cancel_reason()))
            });
            return;
        }
        if response.events().is_empty() {
            // A progress notification: every event up to its revision was sent. One
            // below the watch's start (etcd 3.4 sends those to a watch that starts in
            // the future) says nothing new.
            if let Some(h) = response.header()
                && !response.created()
                && h.revision() + 1 >= next
            {
                next = h.revision() + 1;
                if !tx.progress(h.revision() - REVISION_OFFSET) {
                    return;
                }
            }
            continue;
        }
        for event in response.events() {
            match convert(&inner, event) {
                Ok(event) => {
                    next = event.kv.mod_revision + REVISION_OFFSET + 1;
                    if !tx.send(event) {
                        return;
                    }
                }
                Err(e) => {
                    tx.fail(e);
                    return;
                }
            }
        }
    }
}

/// A moor event from an etcd one; a delete takes its value from `prev_kv`.
fn convert(inner: &Inner, event: &etcd_client::Event) -> Result<Event, StoreError> {
    let kv = event
        .kv()
        .ok_or_else(|| backend("watch", "event without a key"))?;
    match event.event_type() {
        EventType::Put => Ok(Event {
            kind: EventKind::Put,
            kv: inner.moor_kv(kv)?,
        }),
        EventType::Delete => {
            // etcd finds no previous value only below the compacted revision, which
            // `open` refuses; should it happen, the watcher must list again.
            let prev = event.prev_kv().ok_or(StoreError::WatchLagged)?;
            let mut deleted = inner.moor_kv(prev)?;
            deleted.mod_revision = kv.mod_revision() - REVISION_OFFSET;
            Ok(Event {
                kind: EventKind::Delete,
                kv: deleted,
            })
        }
    }
}

/// The first change of the etcd key `key` after etcd revision `after`, which the
/// caller knows exists: a single-key watch replays it from history.
pub(super) async fn first_change(
    inner: &Inner,
    key: &[u8],
    after: i64,
) -> Result<etcd_client::Event, StoreError> {
    inner
        .read(|mut m| {
            let key = key.to_vec();
            let options = WatchOptions::new()
                .with_start_revision(after + 1)
                .with_prev_key();
            async move {
                let mut stream = m.watch.watch(key, Some(options)).await?;
                while let Some(r) = stream.message().await? {
                    if r.canceled() {
                        return Err(etcd_client::Error::WatchError(format!(
                            "cancelled (compacted at {}): {}",
                            r.compact_revision(),
                            r.cancel_reason()
                        )));
                    }
                    if let Some(event) = r.events().first() {
                        return Ok(event.clone());
                    }
                }
                Err(etcd_client::Error::WatchError("watch closed".into()))
            }
        })
        .await
        .map_err(|e| backend("reading back a write of unknown outcome", e))
}

/// etcd's compacted revision: a watch from revision 1 is cancelled with it. Only
/// asked after etcd said a revision was compacted, so the cancel comes.
pub(super) async fn compact_revision(inner: &Inner) -> Result<i64, StoreError> {
    let key = inner.root.clone().into_bytes();
    let wait = async {
        inner
            .read(|mut m| {
                let key = key.clone();
                async move {
                    let options = WatchOptions::new().with_start_revision(1);
                    let mut stream = m.watch.watch(key, Some(options)).await?;
                    while let Some(r) = stream.message().await? {
                        if r.compact_revision() != 0 {
                            return Ok(r.compact_revision());
                        }
                    }
                    Err(etcd_client::Error::WatchError("watch closed".into()))
                }
            })
            .await
    };
    match tokio::time::timeout(inner.deadline + Duration::from_secs(1), wait).await {
        Ok(Ok(revision)) => Ok(revision),
        Ok(Err(e)) => Err(backend("finding the compacted revision", e)),
        Err(_) => Err(backend("finding the compacted revision", "no answer")),
    }
}
