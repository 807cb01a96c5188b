//! One fetch for the scheduled imports of one image: the tags that follow a
//! repository all pick its new release at the same read, and each importing it on its
//! own asked the registry for the same manifest and config once per tag (200 requests
//! for a release followed by 100 tags). [`SharedFetches`] wraps the scheduler's
//! source (the same interface, as distribution's proxy wraps its storage): a
//! manifest or a small blob asked while the same one is being fetched joins that
//! fetch (a single flight), and one fetched less than its `reuse` ago is used again.
//! Only followed tags' imports go through it: a tag checked by a HEAD imports what the
//! HEAD announced, which a manifest fetched before the HEAD may not be.
//! Fetches are keyed by reference, `insecure` and a SHA-256 of the pull secrets, so
//! one namespace's credentials never answer another's request. Failures are shared
//! only with the fetches that joined them, never reused. Calls tokio and the
//! importer's [`Source`] port.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use moor_api::{Digest, DockerImageReference};
use sha2::{Digest as _, Sha256};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::importer::follow::TagsAnswer;
use crate::importer::image::FetchedManifest;
use crate::importer::{ImportError, PullOptions, Source};

/// How long the scheduler reuses a fetch: half the interval, at most a minute. The
/// tags that follow a repository pick a release at the same read and import it within
/// moments; the list that chose it may itself be most of an interval old, and a
/// followed tag is re-imported only when its choice changes, so reusing a manifest
/// within that time tells nothing older than the choice does.
pub fn reuse_for(interval: Duration) -> Duration {
    (interval / 2).min(Duration::from_secs(60))
}

/// Who asks: the pull options' part of a key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Asker {
    insecure: bool,
    secrets: [u8; 32],
}

impl Asker {
    fn of(opts: &PullOptions) -> Self {
        let mut h = Sha256::new();
        for s in opts.secrets.iter() {
            h.update((s.len() as u64).to_be_bytes());
            h.update(s);
        }
        Asker {
            insecure: opts.insecure,
            secrets: h.finalize().into(),
        }
    }
}

/// One fetch: its answer once there, and when it came.
type Flight<V> = Arc<OnceCell<(Result<V, ImportError>, Instant)>>;

/// Fetches in flight or reusable, by key.
struct Flights<K, V> {
    flights: Mutex<HashMap<K, Flight<V>>>,
    reuse: Duration,
}

impl<K: Eq + Hash + Clone, V: Clone> Flights<K, V> {
    fn new(reuse: Duration) -> Self {
        Flights {
            flights: Mutex::new(HashMap::new()),
            reuse,
        }
    }

    /// Whether a flight can still answer: in flight, or a success younger than `reuse`.
    fn usable(&self, flight: &Flight<V>) -> bool {
        match flight.get() {
            None => true,
            Some((Ok(_), at)) => at.elapsed() < self.reuse,
            Some((Err(_), _)) => false,
        }
    }

    /// The answer of the flight for `key`: joined, reused, or `fetch`ed. If the fetch
    /// is cancelled, a joined caller takes it over (the cell's semantics).
    async fn get<F, Fut>(&self, key: K, fetch: F) -> Result<V, ImportError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, ImportError>>,
    {
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
            match flights.get(&key) {
                Some(f) if self.usable(f) => f.clone(),
                _ => {
                    flights.retain(|_, f| self.usable(f));
                    let f = Flight::default();
                    flights.insert(key, f.clone());
                    f
                }
            }
        };
        let (result, _) = flight
            .get_or_init(|| async { (fetch().await, Instant::now()) })
            .await;
        result.clone()
    }
}

/// The scheduler's source, fetching each manifest and config once for the imports
/// that ask for it together (see the module's doc).
pub struct SharedFetches {
    inner: Arc<dyn Source>,
    manifests: Flights<(String, Asker), FetchedManifest>,
    blobs: Flights<(String, String, Asker), Bytes>,
}

impl SharedFetches {
    /// Shares the fetches of `inner`, reusing an answer for `reuse`.
    pub fn new(inner: Arc<dyn Source>, reuse: Duration) -> Self {
        SharedFetches {
            inner,
            manifests: Flights::new(reuse),
            blobs: Flights::new(reuse),
        }
    }
}

#[async_trait]
impl Source for SharedFetches {
    async fn manifest(
        &self,
        reference: &DockerImageReference,
        opts: &PullOptions,
    ) -> Result<FetchedManifest, ImportError> {
        let key = (reference.exact(), Asker::of(opts));
        self.manifests
            .get(key, || self.inner.manifest(reference, opts))
            .await
    }

    async fn blob(
        &self,
        repository: &DockerImageReference,
        digest: &Digest,
        opts: &PullOptions,
    ) -> Result<Bytes, ImportError> {
        let key = (repository.exact(), digest.to_string(), Asker::of(opts));
        self.blobs
            .get(key, || self.inner.blob(repository, digest, opts))
            .await
    }

    async fn tags(
        &self,
        repository: &DockerImageReference,
        opts: &PullOptions,
    ) -> Result<Vec<String>, ImportError> {
        self.inner.tags(repository, opts).await
    }

    async fn tags_if_changed(
        &self,
        repository: &DockerImageReference,
        opts: &PullOptions,
        etag: Option<&str>,
    ) -> Result<TagsAnswer, ImportError> {
        self.inner.tags_if_changed(repository, opts, etag).await
    }

    async fn referrers(
        &self,
        repository: &DockerImageReference,
        digest: &Digest,
        artifact_type: &str,
        opts: &PullOptions,
    ) -> Result<Option<Bytes>, ImportError> {
        self.inner
            .referrers(repository, digest, artifact_type, opts)
            .await
    }

    async fn digest(
        &self,
        reference: &DockerImageReference,
        opts: &PullOptions,
    ) -> Result<Option<Digest>, ImportError> {
        self.inner.digest(reference, opts).await
    }
}
