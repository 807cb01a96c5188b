//! [`DecodedStreams`]: image streams as the registry decoded them, each with the stored
//! revision it came from, so that a lookup of a stream that has not changed since
//! decodes nothing. Every lookup still reads the stored revision first (from the watch
//! cache when that is consistent, see `moor_store::cache`), so a kept stream is never
//! served after a write has changed it. Bounded in entries and in stored bytes; the
//! least recently used entries go first.
//!
//! Hand-written rather than `lru` or `hashlink`'s LRU map: their lookups take `&mut`
//! (one lock per manifest GET, the registry's hottest path); here lookups share a read
//! lock and stamp an atomic tick, and only a put of a new revision scans the (at most
//! [`DECODED_STREAMS_ENTRIES`]) entries for the oldest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use moor_api::image::ImageStream;

use super::repos::RepoName;

/// The most streams kept decoded.
pub const DECODED_STREAMS_ENTRIES: usize = 1024;
/// The most stored bytes the kept streams may come from (a decoded stream takes a
/// small multiple of its stored JSON); a stream of more than a quarter of it is
/// decoded per lookup, as before this cache.
pub const DECODED_STREAMS_BYTES: usize = 16 << 20;

/// Decoded streams by repository, each valid at one revision.
pub struct DecodedStreams {
    max_entries: usize,
    max_bytes: usize,
    /// Ticks of use, for eviction of the least recently used entry.
    clock: AtomicU64,
    state: RwLock<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<RepoName, Entry>,
    bytes: usize,
}

struct Entry {
    revision: i64,
    stream: Arc<ImageStream>,
    bytes: usize,
    used: AtomicU64,
}

impl Default for DecodedStreams {
    fn default() -> Self {
        Self::new(DECODED_STREAMS_ENTRIES, DECODED_STREAMS_BYTES)
    }
}

impl DecodedStreams {
    /// A cache of at most `max_entries` streams from at most `max_bytes` stored bytes.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        DecodedStreams {
            max_entries,
            max_bytes,
            clock: AtomicU64::new(0),
            state: RwLock::new(State::default()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// The stream `repo` as decoded at `revision`, if kept.
    pub fn get(&self, repo: &RepoName, revision: i64) -> Option<Arc<ImageStream>> {
        let state = self.read();
        let entry = state.entries.get(repo).filter(|e| e.revision == revision)?;
        entry.used.store(self.tick(), Ordering::Relaxed);
        Some(entry.stream.clone())
    }

    /// Keeps `stream`, decoded from `bytes` stored bytes at `revision`, unless a newer
    /// revision is kept already or it alone would take more than a quarter of the bound.
    pub fn put(&self, repo: &RepoName, revision: i64, stream: Arc<ImageStream>, bytes: usize) {
        if bytes > self.max_bytes / 4 || self.max_entries == 0 {
            self.remove(repo);
            return;
        }
        let mut state = self.write();
        if let Some(old) = state.entries.get(repo) {
            if old.revision > revision {
                return;
            }
            let old_bytes = old.bytes;
            state.entries.remove(repo);
            state.bytes -= old_bytes;
        }
        while state.entries.len() >= self.max_entries || state.bytes + bytes > self.max_bytes {
            let Some(oldest) = state
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used.load(Ordering::Relaxed))
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = state.entries.remove(&oldest) {
                state.bytes -= e.bytes;
            }
        }
        state.bytes += bytes;
        let used = AtomicU64::new(self.tick());
        state.entries.insert(
            repo.clone(),
            Entry {
                revision,
                stream,
                bytes,
                used,
            },
        );
    }

    /// Forgets `repo` (its stream is gone).
    pub fn remove(&self, repo: &RepoName) {
        if !self.read().entries.contains_key(repo) {
            return;
        }
        let mut state = self.write();
        if let Some(e) = state.entries.remove(repo) {
            state.bytes -= e.bytes;
        }
    }

    /// How many streams are kept, and from how many stored bytes.
    pub fn size(&self) -> (usize, usize) {
        let state = self.read();
        (state.entries.len(), state.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str) -> RepoName {
        RepoName::parse("ns", name).unwrap()
    }

    fn stream(name: &str) -> Arc<ImageStream> {
        let mut s = ImageStream::default();
        s.metadata.name = Some(name.into());
        Arc::new(s)
    }

    #[test]
    fn a_stream_is_served_at_its_revision_only() {
        let cache = DecodedStreams::new(8, 1 << 20);
        let s = stream("a");
        cache.put(&repo("a"), 5, s.clone(), 100);
        assert!(Arc::ptr_eq(&cache.get(&repo("a"), 5).unwrap(), &s));
        assert!(
            cache.get(&repo("a"), 6).is_none(),
            "a newer revision is decoded"
        );
        assert!(cache.get(&repo("a"), 4).is_none());
        assert!(cache.get(&repo("b"), 5).is_none());
        cache.put(&repo("a"), 7, stream("a"), 120);
        assert!(cache.get(&repo("a"), 5).is_none());
        assert_eq!(cache.size(), (1, 120));
        // A slower lookup that decoded an older revision does not replace a newer one.
        cache.put(&repo("a"), 6, stream("a"), 10);
        assert!(cache.get(&repo("a"), 7).is_some());
        cache.remove(&repo("a"));
        assert_eq!(cache.size(), (0, 0));
    }

    #[test]
    fn entries_and_bytes_are_bounded_least_recently_used_first() {
        let cache = DecodedStreams::new(3, 1000);
        for name in ["a", "b", "c"] {
            cache.put(&repo(name), 1, stream(name), 100);
        }
        cache.get(&repo("a"), 1).unwrap();
        cache.put(&repo("d"), 1, stream("d"), 100);
        assert_eq!(cache.size(), (3, 300));
        assert!(
            cache.get(&repo("b"), 1).is_none(),
            "least recently used went"
        );
        assert!(cache.get(&repo("a"), 1).is_some());
        // Bytes: the least recently used go until the new one fits.
        let small = DecodedStreams::new(100, 1000);
        for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
            small.put(&repo(name), i as i64, stream(name), 240);
        }
        let (entries, bytes) = small.size();
        assert!(bytes <= 1000 && entries == 4, "{entries} {bytes}");
        small.put(&repo("e"), 9, stream("e"), 240);
        let (entries, bytes) = small.size();
        assert!(bytes <= 1000 && entries == 4, "{entries} {bytes}");
        assert!(small.get(&repo("a"), 0).is_none(), "the oldest went");
        // Larger than a quarter of the bound: not kept.
        small.put(&repo("f"), 1, stream("f"), 251);
        assert!(small.get(&repo("f"), 1).is_none());
    }
}
