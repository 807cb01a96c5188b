//! The delegated authenticator's and authorizer's answer caches: an answer kept,
//! keyed by the SHA-256 of what was asked, until a TTL the caller gives per entry
//! (kube keeps allowed and denied answers for different times). Time comes from a
//! [`Clock`], so tests expire entries without sleeping.
//!
//! Hand-written rather than a caching crate: a bounded map with per-entry expiry is a
//! dozen lines, and none of the field's caches is in the tree (as `token_cache`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::clock::Clock;

/// Entries kept at most; when full, the expired go, and if none had, everything.
const CAPACITY: usize = 8192;

/// Answers until their expiry.
pub struct TtlCache<T> {
    clock: Arc<dyn Clock>,
    entries: Mutex<HashMap<[u8; 32], (T, Instant)>>,
}

impl<T: Clone> TtlCache<T> {
    /// An empty cache on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        TtlCache {
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The key of a question (its bytes hashed, so no secret is kept).
    pub fn key(question: &[u8]) -> [u8; 32] {
        Sha256::digest(question).into()
    }

    /// The answer to `key`, if one is kept and has not expired.
    pub fn get(&self, key: &[u8; 32]) -> Option<T> {
        let now = self.clock.now();
        let entries = self.entries.lock().ok()?;
        let (value, until) = entries.get(key)?;
        (now < *until).then(|| value.clone())
    }

    /// Keeps `value` for `key` during `ttl` (a zero TTL keeps nothing).
    pub fn insert(&self, key: [u8; 32], value: T, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let now = self.clock.now();
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= CAPACITY {
            entries.retain(|_, (_, until)| now < *until);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key, (value, now + ttl));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(Mutex<Instant>);
    impl Clock for Fixed {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
    }

    #[test]
    fn entries_expire_after_their_own_ttl_and_capacity_is_bounded() {
        let clock = Arc::new(Fixed(Mutex::new(Instant::now())));
        let cache = TtlCache::new(clock.clone());
        let (a, b) = (TtlCache::<u8>::key(b"a"), TtlCache::<u8>::key(b"b"));
        cache.insert(a, 1, Duration::from_secs(10));
        cache.insert(b, 2, Duration::from_secs(2));
        cache.insert(TtlCache::<u8>::key(b"z"), 3, Duration::ZERO);
        assert_eq!(cache.get(&a), Some(1));
        assert_eq!(cache.get(&TtlCache::<u8>::key(b"z")), None);
        *clock.0.lock().unwrap() += Duration::from_secs(2);
        assert_eq!((cache.get(&a), cache.get(&b)), (Some(1), None));
        *clock.0.lock().unwrap() += Duration::from_secs(8);
        assert_eq!(cache.get(&a), None);
        for i in 0..(CAPACITY + 10) {
            cache.insert(
                TtlCache::<u8>::key(&i.to_le_bytes()),
                0,
                Duration::from_secs(60),
            );
        }
        assert!(cache.entries.lock().unwrap().len() <= CAPACITY);
    }
}
