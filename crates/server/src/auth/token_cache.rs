//! A cache of verified JWTs: what a token verified to, keyed by the SHA-256 of the
//! token, until the token's `exp`. A signature check (ECDSA above all) costs far more
//! than a request should; with this, a client that presents the same token on every
//! request pays for it once. Only successes are cached, so a forged token costs its
//! sender a verification every time, and nothing in the cache outlives its token.
//!
//! Hand-written rather than a caching crate: a bounded map with expiry by a value of
//! its own is a dozen lines, and none of the field's caches is in the tree.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// Entries kept at most; when full, the expired go, and if none had, everything.
const CAPACITY: usize = 8192;

/// Verified tokens and what they verified to, until their `exp`.
pub struct TokenCache<T> {
    entries: Mutex<HashMap<[u8; 32], (T, i64)>>,
}

impl<T> Default for TokenCache<T> {
    fn default() -> Self {
        TokenCache {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone> TokenCache<T> {
    fn key(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// What `token` verified to, if it did and has not expired by `now` (seconds).
    pub fn get(&self, token: &str, now: i64) -> Option<T> {
        let entries = self.entries.lock().ok()?;
        let (value, exp) = entries.get(&Self::key(token))?;
        (now < *exp).then(|| value.clone())
    }

    /// Remembers that `token` verified to `value` until `exp` (seconds).
    pub fn insert(&self, token: &str, value: T, exp: i64, now: i64) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= CAPACITY {
            entries.retain(|_, (_, e)| now < *e);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(Self::key(token), (value, exp));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_until_their_expiry_and_capacity_is_bounded() {
        let c = TokenCache::default();
        c.insert("a", 1, 100, 0);
        assert_eq!(c.get("a", 99), Some(1));
        assert_eq!(c.get("a", 100), None);
        assert_eq!(c.get("b", 0), None);
        for i in 0..(CAPACITY + 10) {
            c.insert(&i.to_string(), i, 1000, 0);
        }
        assert!(c.entries.lock().unwrap().len() <= CAPACITY);
    }
}
