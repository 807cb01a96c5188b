//! One stream write for the checks of its tags that finish together: the tags that
//! follow one repository move at the same read, and each writing the stream on its
//! own made a release cost one compare-and-swap per tag, all on one key (each retried
//! on the others' conflicts). Here the first check to write a stream writes it; the
//! checks that finish while it writes wait, and the first of them then writes all of
//! theirs in one batch, and so on (a combining writer, per stream). Each check gets
//! its own tag's result. A check cancelled while it leads or has been handed the lead
//! hands it on, so that a stream is never left with waiters and no writer. Calls
//! tokio only.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use moor_apimachinery::error::ApiError;
use tokio::sync::oneshot;

/// A stream: namespace and name.
type StreamKey = (String, String);

/// What a waiting check is told.
enum Turn {
    /// Its item was written (or failed with the batch).
    Done(Result<bool, ApiError>),
    /// It writes the next batch.
    Lead,
}

/// A check's item, waiting for a writer.
struct Waiting<T> {
    /// Tells the writer's own item from those of waiters gone.
    id: u64,
    item: T,
    /// `None` for the writer's own item (and for a waiter gone).
    turn: Option<oneshot::Sender<Turn>>,
}

/// The items waiting, per stream. A stream present here has a writer (its list holds
/// what the next batch will carry).
pub(super) struct StreamWrites<T> {
    waiting: Mutex<HashMap<StreamKey, Vec<Waiting<T>>>>,
    ids: AtomicU64,
}

impl<T> Default for StreamWrites<T> {
    fn default() -> Self {
        StreamWrites {
            waiting: Mutex::new(HashMap::new()),
            ids: AtomicU64::new(0),
        }
    }
}

impl<T> StreamWrites<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StreamKey, Vec<Waiting<T>>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `item` into `stream` with the items of the other checks of that stream
    /// that wait meanwhile: `write` gets a batch, in arrival order, and returns a
    /// result per item (a missing one counts as `false`). Returns this item's result.
    pub(super) async fn write<F, Fut>(
        &self,
        stream: StreamKey,
        item: T,
        write: F,
    ) -> Result<bool, ApiError>
    where
        F: FnOnce(Vec<T>) -> Fut,
        Fut: Future<Output = Result<Vec<bool>, ApiError>>,
    {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let waiter = {
            let mut map = self.lock();
            match map.get_mut(&stream) {
                Some(waiting) => {
                    let (tx, rx) = oneshot::channel();
                    waiting.push(Waiting {
                        id,
                        item,
                        turn: Some(tx),
                    });
                    Some(rx)
                }
                None => {
                    map.insert(
                        stream.clone(),
                        vec![Waiting {
                            id,
                            item,
                            turn: None,
                        }],
                    );
                    None
                }
            }
        };
        if let Some(rx) = waiter {
            let mut waiter = Waiter {
                writes: self,
                stream: &stream,
                rx: Some(rx),
            };
            let turn = match waiter.rx.as_mut() {
                Some(rx) => rx.await,
                None => return Ok(false),
            };
            waiter.rx = None;
            match turn {
                Ok(Turn::Done(result)) => return result,
                Ok(Turn::Lead) => {}
                Err(_) => {
                    return Err(ApiError::internal_message(
                        "the scheduled write of this check was dropped",
                    ));
                }
            }
        }
        let lead = Lead {
            writes: self,
            stream: &stream,
        };
        let batch = std::mem::take(self.lock().get_mut(&stream).unwrap_or(&mut Vec::new()));
        let (items, turns): (Vec<T>, Vec<_>) =
            batch.into_iter().map(|w| (w.item, (w.id, w.turn))).unzip();
        let results = write(items).await;
        // The batch's error is the writer's own; each other check gets its message.
        let (changed, error) = match results {
            Ok(changed) => (changed, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        let mut own = None;
        for (i, (item_id, turn)) in turns.into_iter().enumerate() {
            let result = match &error {
                None => Ok(changed.get(i).copied().unwrap_or(false)),
                Some(e) => Err(ApiError::internal_message(e.to_string())),
            };
            match turn {
                Some(tx) => {
                    let _ = tx.send(Turn::Done(result));
                }
                None if item_id == id => own = Some(result),
                None => {}
            }
        }
        drop(lead);
        match error {
            Some(e) => Err(e),
            None => own.unwrap_or(Ok(false)),
        }
    }

    /// Hands the stream's writing on to the first waiter still there, or, with none,
    /// marks the stream as having no writer (dropping the items of waiters gone).
    fn hand_on(&self, stream: &StreamKey) {
        let mut map = self.lock();
        let Some(waiting) = map.get_mut(stream) else {
            return;
        };
        for w in waiting.iter_mut() {
            if let Some(tx) = w.turn.take()
                && tx.send(Turn::Lead).is_ok()
            {
                return;
            }
        }
        map.remove(stream);
    }
}

/// The writer of a stream's batch; dropped (done or cancelled), it hands on.
struct Lead<'a, T> {
    writes: &'a StreamWrites<T>,
    stream: &'a StreamKey,
}

impl<T> Drop for Lead<'_, T> {
    fn drop(&mut self) {
        self.writes.hand_on(self.stream);
    }
}

/// A check waiting for its turn; cancelled after it was handed the lead, it hands on.
struct Waiter<'a, T> {
    writes: &'a StreamWrites<T>,
    stream: &'a StreamKey,
    rx: Option<oneshot::Receiver<Turn>>,
}

impl<T> Drop for Waiter<'_, T> {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take()
            && let Ok(Turn::Lead) = rx.try_recv()
        {
            self.writes.hand_on(self.stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn key() -> StreamKey {
        ("ns".to_string(), "s".to_string())
    }

    /// Records each batch; an item is `true` when even.
    #[derive(Default)]
    struct Recorder {
        batches: Mutex<Vec<Vec<u32>>>,
    }

    impl Recorder {
        async fn write(&self, items: Vec<u32>) -> Result<Vec<bool>, ApiError> {
            self.batches.lock().unwrap().push(items.clone());
            Ok(items.iter().map(|i| i % 2 == 0).collect())
        }
    }

    #[tokio::test]
    async fn checks_finishing_during_a_write_share_the_next_one_and_get_their_own_results() {
        let writes = Arc::new(StreamWrites::<u32>::default());
        let recorder = Arc::new(Recorder::default());
        let (open, gate) = oneshot::channel::<()>();
        let first = {
            let (writes, recorder) = (writes.clone(), recorder.clone());
            tokio::spawn(async move {
                writes
                    .write(key(), 1, |items| async move {
                        let _ = gate.await;
                        recorder.write(items).await
                    })
                    .await
            })
        };
        while writes.lock().get(&key()).is_none_or(|w| !w.is_empty()) {
            tokio::task::yield_now().await;
        }
        let others: Vec<_> = (2..=6)
            .map(|i| {
                let (writes, recorder) = (writes.clone(), recorder.clone());
                tokio::spawn(async move {
                    writes
                        .write(key(), i, |items| async move { recorder.write(items).await })
                        .await
                })
            })
            .collect();
        while writes.lock().get(&key()).map_or(0, Vec::len) < 5 {
            tokio::task::yield_now().await;
        }
        open.send(()).unwrap();
        assert!(!first.await.unwrap().unwrap());
        for (i, task) in (2..=6).zip(others) {
            assert_eq!(task.await.unwrap().unwrap(), i % 2 == 0, "item {i}");
        }
        assert_eq!(
            *recorder.batches.lock().unwrap(),
            [vec![1], vec![2, 3, 4, 5, 6]]
        );
        assert!(writes.lock().is_empty(), "no writer is left behind");
    }

    #[tokio::test]
    async fn a_writer_cancelled_mid_write_hands_on_to_the_next_check() {
        let writes = Arc::new(StreamWrites::<u32>::default());
        let recorder = Arc::new(Recorder::default());
        let first = {
            let writes = writes.clone();
            tokio::spawn(async move {
                writes
                    .write(key(), 1, |_| {
                        std::future::pending::<Result<Vec<bool>, ApiError>>()
                    })
                    .await
            })
        };
        while writes.lock().get(&key()).is_none_or(|w| !w.is_empty()) {
            tokio::task::yield_now().await;
        }
        let second = {
            let (writes, recorder) = (writes.clone(), recorder.clone());
            tokio::spawn(async move {
                writes
                    .write(key(), 2, |items| async move { recorder.write(items).await })
                    .await
            })
        };
        while writes.lock().get(&key()).map_or(0, Vec::len) < 1 {
            tokio::task::yield_now().await;
        }
        first.abort();
        assert!(second.await.unwrap().unwrap());
        assert_eq!(*recorder.batches.lock().unwrap(), [vec![2]]);
        assert!(writes.lock().is_empty());
    }

    #[test]
    fn a_waiter_cancelled_after_it_was_handed_the_lead_hands_it_on() {
        let writes = StreamWrites::<u32>::default();
        let (a_tx, a_rx) = oneshot::channel();
        let (b_tx, mut b_rx) = oneshot::channel();
        writes.lock().insert(
            key(),
            vec![
                Waiting {
                    id: 1,
                    item: 1,
                    turn: Some(a_tx),
                },
                Waiting {
                    id: 2,
                    item: 2,
                    turn: Some(b_tx),
                },
            ],
        );
        let stream = key();
        let a = Waiter {
            writes: &writes,
            stream: &stream,
            rx: Some(a_rx),
        };
        writes.hand_on(&stream); // the writer finished: A leads next
        assert!(b_rx.try_recv().is_err(), "B waits while A leads");
        drop(a); // A is cancelled before it ran
        assert!(matches!(b_rx.try_recv(), Ok(Turn::Lead)), "B leads instead");
    }
}
