//! The watch stream shared by the backends: replayed history, then live events from a
//! broadcast channel, without gap or duplicate. Each watcher's live events are drained
//! from the broadcast ring at once into a queue of its own, bounded by bytes, so a
//! watcher that stops reading pins neither the shared ring nor more than its budget:
//! past it, its stream ends with [`StoreError::WatchLagged`] (kube-apiserver closes
//! slow watchers the same way, and clients re-list). Calls only tokio and futures.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::stream::{self, StreamExt};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;

use crate::{Event, ProgressStream, Revision, StoreError, WatchItem, WatchStream};

/// The bytes of undelivered events one watcher may hold before it is closed.
pub const DEFAULT_WATCH_BUFFER_BYTES: usize = 32 * 1024 * 1024;

/// What an item costs a watcher's budget.
fn cost(item: &WatchItem) -> usize {
    match item {
        WatchItem::Event(event) => event.kv.key.len() + event.kv.value.len() + 64,
        WatchItem::Progress(_) => 64,
    }
}

/// The events of `items`, without the bookmarks.
pub(crate) fn events_only(items: ProgressStream) -> WatchStream {
    items
        .filter_map(|r| {
            futures::future::ready(match r {
                Ok(WatchItem::Event(e)) => Some(Ok(e)),
                Ok(WatchItem::Progress(_)) => None,
                Err(e) => Some(Err(e)),
            })
        })
        .boxed()
}

/// Builds a watch stream under `prefix`: first `history` (in revision order), then the
/// live events of `live` whose revision is greater than `seen` and than every replayed
/// event, buffered up to [`DEFAULT_WATCH_BUFFER_BYTES`].
///
/// `live` must have been subscribed before `history` was read, and `seen` must be the
/// revision `history` was read at (or the watch's `after`, if that is greater): every
/// event under `prefix` up to `seen` is then in `history`, every later one arrives on
/// `live`, and the overlap is skipped. A lagging receiver ends the stream with
/// [`StoreError::WatchLagged`].
pub(crate) fn stream(
    history: Vec<Event>,
    live: broadcast::Receiver<Arc<Event>>,
    prefix: String,
    seen: Revision,
) -> WatchStream {
    stream_with_budget(history, live, prefix, seen, DEFAULT_WATCH_BUFFER_BYTES)
}

/// [`stream`] with a chosen buffer budget in bytes.
pub(crate) fn stream_with_budget(
    history: Vec<Event>,
    mut live: broadcast::Receiver<Arc<Event>>,
    prefix: String,
    seen: Revision,
    budget: usize,
) -> WatchStream {
    let seen = history.last().map_or(seen, |e| e.kv.mod_revision.max(seen));
    let (tx, live_stream) = queue(budget);
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = tx.closed() => return,
                r = live.recv() => r,
            };
            match event {
                Ok(event) => {
                    if event.kv.mod_revision <= seen || !event.kv.key.starts_with(&prefix) {
                        continue;
                    }
                    if !tx.send(Arc::unwrap_or_clone(event)) {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    tx.fail(StoreError::WatchLagged);
                    return;
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
    stream::iter(history.into_iter().map(Ok))
        .chain(events_only(live_stream))
        .boxed()
}

/// The producing end of one watcher's queue (see [`queue`]).
pub(crate) struct QueueSender {
    tx: mpsc::UnboundedSender<Result<WatchItem, StoreError>>,
    buffered: Arc<AtomicUsize>,
    budget: usize,
}

impl QueueSender {
    /// Queues `event`. Returns false when the watcher is gone, or when the event would
    /// pass the byte budget: then [`StoreError::WatchLagged`] is queued instead and the
    /// caller must stop.
    pub(crate) fn send(&self, event: Event) -> bool {
        self.send_item(WatchItem::Event(event))
    }

    /// Queues a bookmark at `revision`; returns as [`send`](Self::send) does.
    pub(crate) fn progress(&self, revision: Revision) -> bool {
        self.send_item(WatchItem::Progress(revision))
    }

    fn send_item(&self, item: WatchItem) -> bool {
        let c = cost(&item);
        if self.buffered.fetch_add(c, Ordering::AcqRel) + c > self.budget {
            self.fail(StoreError::WatchLagged);
            return false;
        }
        self.tx.send(Ok(item)).is_ok()
    }

    /// Ends the stream with `err` (after the events already queued).
    pub(crate) fn fail(&self, err: StoreError) {
        let _ = self.tx.send(Err(err));
    }

    /// Whether the watcher dropped its stream.
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves when the watcher dropped its stream.
    pub(crate) async fn closed(&self) {
        self.tx.closed().await;
    }
}

/// One watcher's queue, bounded by `budget` bytes of undelivered events rather than by
/// count, and the stream that drains it; the stream ends after its first error.
pub(crate) fn queue(budget: usize) -> (QueueSender, ProgressStream) {
    let buffered = Arc::new(AtomicUsize::new(0));
    // Unbounded by count, bounded by `buffered`: `QueueSender::send` ends the stream
    // before the queue holds more than `budget` bytes.
    let (tx, rx) = mpsc::unbounded_channel::<Result<WatchItem, StoreError>>();
    let sender = QueueSender {
        tx,
        buffered: buffered.clone(),
        budget,
    };
    let live = tokio_stream::wrappers::UnboundedReceiverStream::new(rx).map(move |r| {
        if let Ok(item) = &r {
            buffered.fetch_sub(cost(item), Ordering::AcqRel);
        }
        r
    });
    let live = live.scan(false, |ended, r| {
        if *ended {
            return futures::future::ready(None);
        }
        *ended = r.is_err();
        futures::future::ready(Some(r))
    });
    (sender, live.boxed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventKind, KeyValue};
    use bytes::Bytes;

    fn event(rev: Revision, size: usize) -> Arc<Event> {
        Arc::new(Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key: format!("/k/{rev}"),
                value: Bytes::from(vec![b'x'; size]),
                create_revision: rev,
                mod_revision: rev,
            },
        })
    }

    #[tokio::test]
    async fn a_watcher_that_stops_reading_is_closed_at_its_byte_budget() {
        let (tx, rx) = broadcast::channel(100_000);
        let mut watch = stream_with_budget(Vec::new(), rx, "/k/".into(), 0, 1 << 20);
        // 64 KiB events: the 17th passes the 1 MiB budget.
        for rev in 1..=200 {
            tx.send(event(rev, 64 * 1024)).unwrap();
        }
        // The pump drains the ring at once: nothing stays pinned in the broadcast.
        for _ in 0..100 {
            if tx.is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(tx.is_empty(), "the shared ring was drained");
        let mut delivered = 0;
        loop {
            match watch.next().await {
                Some(Ok(_)) => delivered += 1,
                Some(Err(StoreError::WatchLagged)) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(
            (10..=16).contains(&delivered),
            "{delivered} events before closing"
        );
        assert!(
            watch.next().await.is_none(),
            "the stream ends after the error"
        );
    }

    #[tokio::test]
    async fn a_reading_watcher_gets_every_event_in_order() {
        let (tx, rx) = broadcast::channel(16);
        let mut watch = stream_with_budget(Vec::new(), rx, "/k/".into(), 0, 1 << 20);
        for rev in 1..=1000 {
            tx.send(event(rev, 1024)).unwrap();
            let ev = watch.next().await.unwrap().unwrap();
            assert_eq!(ev.kv.mod_revision, rev);
        }
    }
}
