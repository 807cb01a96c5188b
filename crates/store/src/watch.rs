//! The watch stream shared by the backends: replayed history, then live events from a
//! broadcast channel, without gap or duplicate. Calls only tokio and futures.

use std::sync::Arc;

use futures::stream::{self, StreamExt};
use tokio::sync::broadcast::{self, error::RecvError};

use crate::{Event, Revision, StoreError, WatchStream};

/// Builds a watch stream under `prefix`: first `history` (in revision order), then the
/// live events of `live` whose revision is greater than `seen` and than every replayed
/// event.
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
    let seen = history.last().map_or(seen, |e| e.kv.mod_revision.max(seen));
    let live = stream::unfold(Some((live, prefix)), move |state| async move {
        let (mut rx, prefix) = state?;
        loop {
            match rx.recv().await {
                Ok(event) => {
                    if event.kv.mod_revision > seen && event.kv.key.starts_with(&prefix) {
                        return Some((Ok(Arc::unwrap_or_clone(event)), Some((rx, prefix))));
                    }
                }
                Err(RecvError::Lagged(_)) => return Some((Err(StoreError::WatchLagged), None)),
                Err(RecvError::Closed) => return None,
            }
        }
    });
    stream::iter(history.into_iter().map(Ok))
        .chain(live)
        .boxed()
}
