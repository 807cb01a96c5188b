//! Turns between the writes of one object: a status write (a controller recording
//! what it did) waits for the writes of the main resource in flight (a user's
//! update or patch), and they for it. Otherwise a status write landing during a
//! user's update makes that update run again from the new version: on a large
//! object, a second decode, patch, validation and encode, with their copies alive.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

/// The turns of the objects being written, by store key; an object nobody writes has
/// no entry.
#[derive(Default)]
pub(super) struct WriteTurns {
    keys: Mutex<HashMap<String, Arc<RwLock<()>>>>,
}

/// A write's turn; ends when dropped.
pub(super) struct Turn<'a> {
    turns: &'a WriteTurns,
    key: String,
    lock: Option<Arc<RwLock<()>>>,
    guard: Option<Held>,
}

enum Held {
    /// Main-resource writes share their turn.
    Main(#[allow(dead_code)] OwnedRwLockReadGuard<()>),
    /// A status write has it alone.
    Status(#[allow(dead_code)] OwnedRwLockWriteGuard<()>),
}

impl WriteTurns {
    /// Waits for the turn of a write of `key`: `status` writes wait for every write in
    /// flight, main-resource writes only for a status write in flight (or waiting:
    /// the lock is fair, so a status write is not starved by a stream of updates).
    pub(super) async fn turn(&self, key: &str, status: bool) -> Turn<'_> {
        let lock = {
            let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            keys.entry(key.to_string()).or_default().clone()
        };
        let guard = if status {
            Held::Status(lock.clone().write_owned().await)
        } else {
            Held::Main(lock.clone().read_owned().await)
        };
        Turn {
            turns: self,
            key: key.to_string(),
            lock: Some(lock),
            guard: Some(guard),
        }
    }

    /// Keys with an entry (tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let Some(lock) = self.lock.take() else {
            return;
        };
        let mut keys = self.turns.keys.lock().unwrap_or_else(|e| e.into_inner());
        // Clones are made under this mutex: the map's and ours are the last two.
        if Arc::strong_count(&lock) == 2 {
            keys.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn a_status_write_waits_for_main_writes_in_flight_and_they_for_it() {
        let turns = WriteTurns::default();
        let a = turns.turn("k", false).await;
        let b = turns.turn("k", false).await;
        // Main writes share; another key is not held up.
        let other = turns.turn("other", true).await;
        let status = turns.turn("k", true);
        tokio::pin!(status);
        assert!((&mut status).now_or_never().is_none());
        drop(a);
        assert!((&mut status).now_or_never().is_none());
        drop(b);
        let status = status.now_or_never().expect("the status write's turn");
        let main = turns.turn("k", false);
        tokio::pin!(main);
        assert!((&mut main).now_or_never().is_none());
        drop(status);
        let main = main.now_or_never().expect("the main write's turn");
        drop(main);
        drop(other);
        assert_eq!(turns.len(), 0, "entries of finished writes are removed");
    }
}
