//! Pull-through: content missing from the [`BlobStore`] is fetched from the image's
//! source with the importer's upstream client, streamed to the client while it is
//! written to the cache, and committed only once verified. Requests for the same
//! digest share one upstream fetch (single-flight): the first starts a detached
//! download into a temporary file; every request, the first included, reads that file
//! as it grows. The last chunk is held back until the digest is verified, so a client
//! never receives a complete body of wrong content, and a mismatch caches nothing; the
//! commit to the cache (fsync and rename) happens after readers have the last chunk.
//! Calls the upstream client and the blob store.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use axum::http::{StatusCode, header};
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::{Stream, StreamExt};
use moor_api::{Digest, DockerImageReference};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::watch;
use tracing::Instrument;

mod claims;

use self::claims::{Claimed, Claims};
use super::content::Remote;
use super::error::{Code, RegistryError};
use super::storage::BlobStore;
use crate::upstream::{FetchOptions, UpstreamClient, UpstreamError};

/// Bytes read per chunk when serving a download in progress.
const CHUNK: usize = 256 * 1024;

/// The state of one download, shared by everyone reading it.
#[derive(Clone, Debug, Default)]
struct Progress {
    /// `None` while the upstream has not answered; then the size (if announced), or
    /// the error it answered with.
    started: Option<Result<Option<u64>, Arc<RegistryError>>>,
    /// Bytes readers may read (the last chunk waits for verification).
    visible: u64,
    /// Every byte is visible and the digest matched: readers may end, whether or not
    /// the commit to the cache (fsync, rename) is through.
    verified: bool,
    /// `None` while running; then whether the blob was verified and committed.
    done: Option<Result<(), String>>,
}

struct Download {
    file: Arc<std::fs::File>,
    progress: watch::Receiver<Progress>,
}

type ManifestFetch = Shared<BoxFuture<'static, Result<(Bytes, String), Arc<RegistryError>>>>;

/// A blob being served by pull-through: its size when known, and its bytes.
pub struct PulledBlob {
    pub size: Option<u64>,
    pub body: futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>>,
}

/// The pull-through cache over one blob store.
pub struct PullThrough {
    client: UpstreamClient,
    store: BlobStore,
    /// Where blobs live when not in `store` (`--blob-store s3://`).
    remote: Remote,
    downloads: Arc<Mutex<HashMap<Digest, Arc<Download>>>>,
    /// Cluster-wide single-flight of blob fetches ([`claims`]), when `remote` is
    /// shared with other replicas through a shared store.
    claims: Option<Claims>,
    /// The blobs whose fetch by another replica one request here polls for; the other
    /// requests for the blob wait for that poll to end (its sender dropped) instead of
    /// each polling the bucket and the claim.
    cluster_waits: Mutex<HashMap<Digest, watch::Receiver<()>>>,
    manifests: Mutex<HashMap<Digest, ManifestFetch>>,
    /// Blob fetches started upstream.
    pub blob_fetches: Counter,
    /// Bytes of blobs received from upstreams.
    pub blob_bytes: Counter,
}

/// An upstream failure as the registry answers it: 429 passes as TOOMANYREQUESTS
/// (with its Retry-After), a missing upstream object as `not_found`, anything else
/// as 502 with the upstream's words.
pub fn upstream_error(e: &UpstreamError, not_found: RegistryError) -> RegistryError {
    match e.status_code() {
        404 => not_found,
        429 => {
            let mut err = RegistryError::new(
                Code::TooManyRequests,
                format!("the upstream registry is rate limiting: {}", e.message()),
            );
            if let Some(after) = e.retry_after() {
                err = err.header(header::RETRY_AFTER, &after.as_secs().max(1).to_string());
            }
            err
        }
        _ => RegistryError::new(
            Code::Unavailable,
            format!("pulling from the upstream registry failed: {e}"),
        )
        .status(StatusCode::BAD_GATEWAY),
    }
}

/// What clients are told when caching a blob failed here (a disk error): the cause
/// goes to the log only, since it names server paths.
fn cache_failure(digest: &Digest, e: &dyn std::fmt::Display) -> String {
    tracing::error!(%digest, error = %e, "pull-through: caching a blob failed");
    "caching the blob failed; the server log has the cause".to_string()
}

/// The turn of the one request of this replica that polls for another replica's
/// fetch of a blob; dropping it ends the others' wait.
struct PollTurn<'a> {
    waits: &'a Mutex<HashMap<Digest, watch::Receiver<()>>>,
    digest: &'a Digest,
    _done: watch::Sender<()>,
}

impl Drop for PollTurn<'_> {
    fn drop(&mut self) {
        self.waits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(self.digest);
    }
}

impl PullThrough {
    /// Pull-through with `client` into `store`.
    pub fn new(client: UpstreamClient, store: BlobStore) -> Self {
        PullThrough {
            client,
            store,
            remote: None,
            downloads: Arc::default(),
            claims: None,
            cluster_waits: Mutex::new(HashMap::new()),
            manifests: Mutex::new(HashMap::new()),
            blob_fetches: Counter::default(),
            blob_bytes: Counter::default(),
        }
    }

    /// Keeps verified content in `remote` (moved there from the local store).
    pub(super) fn with_remote(mut self, remote: Remote) -> Self {
        self.remote = remote;
        self
    }

    /// Fetches each blob once for every replica that shares `store` and the remote
    /// driver (see [`claims`]); nothing changes without a remote driver.
    pub(super) fn share_through(&mut self, store: Arc<dyn moor_store::Store>) {
        if self.remote.is_some() {
            self.claims = Some(Claims::new(store));
        }
    }

    /// The deadline of waiting for another replica's fetch of one blob; past it this
    /// replica fetches the blob itself.
    pub const CLUSTER_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

    /// The download of `digest` in progress here, if any.
    fn in_progress(&self, digest: &Digest) -> Option<Arc<Download>> {
        self.downloads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .cloned()
    }

    /// With replicas: waits until this replica may fetch `digest` (its claim won, or
    /// the wait's deadline passed) and returns its claim, or `Ok(Err(()))` once the
    /// blob is in the shared driver (another replica fetched it) or a download of it
    /// runs here.
    async fn cluster_turn(
        &self,
        claims: &Claims,
        remote: &dyn super::driver::BlobDriver,
        digest: &Digest,
    ) -> Result<Result<Option<claims::ClaimGuard>, ()>, RegistryError> {
        let deadline = tokio::time::Instant::now() + Self::CLUSTER_WAIT;
        // While this request polls, the others for the blob here wait for it.
        let mut polling: Option<PollTurn<'_>> = None;
        loop {
            if polling.is_none() {
                let waiting = {
                    let mut waits = self.cluster_waits.lock().unwrap_or_else(|p| p.into_inner());
                    match waits.get(digest) {
                        Some(rx) => Some(rx.clone()),
                        None => {
                            let (tx, rx) = watch::channel(());
                            waits.insert(digest.clone(), rx);
                            polling = Some(PollTurn {
                                waits: &self.cluster_waits,
                                digest,
                                _done: tx,
                            });
                            None
                        }
                    }
                };
                if let Some(mut rx) = waiting {
                    // Returns when the polling request is done (its sender dropped),
                    // whatever it found; then look for ourselves.
                    let _ = tokio::time::timeout_at(deadline, rx.changed()).await;
                    if tokio::time::Instant::now() >= deadline {
                        tracing::warn!(%digest, "pull-through: another replica's fetch took too long; fetching too");
                        return Ok(Ok(None));
                    }
                    continue;
                }
            }
            if self.in_progress(digest).is_some() || remote.stat(digest).await?.is_some() {
                return Ok(Err(()));
            }
            match claims.try_claim(digest).await {
                // The holder before may have published and released between the look
                // above and this claim: look again, now that no one else may publish.
                Ok(Claimed::Won(guard)) => match remote.stat(digest).await {
                    Ok(None) => return Ok(Ok(Some(guard))),
                    Ok(Some(_)) => {
                        guard.release().await;
                        return Ok(Err(()));
                    }
                    Err(e) => {
                        guard.release().await;
                        return Err(e.into());
                    }
                },
                Ok(Claimed::Held) => {}
                Err(e) => {
                    // The store is away: fetch alone rather than fail the pull.
                    tracing::warn!(%digest, error = %e, "pull-through: claiming a fetch failed; fetching unclaimed");
                    return Ok(Ok(None));
                }
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(%digest, "pull-through: another replica's fetch took too long; fetching too");
                return Ok(Ok(None));
            }
            tokio::time::sleep(claims::POLL_EVERY).await;
        }
    }

    /// Manifest `digest` of `repository`, fetched (once for concurrent callers),
    /// verified and cached. Returns its bytes and media type.
    pub async fn manifest(
        &self,
        repository: &DockerImageReference,
        digest: &Digest,
        opts: FetchOptions,
    ) -> Result<(Bytes, String), RegistryError> {
        let fetch = {
            let mut map = self.manifests.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(digest) {
                Some(f) => Some(f.clone()),
                // A fetch that just finished stored the manifest before it left the
                // map: a caller that missed the cache a moment ago must not fetch again.
                None if self.store.blob_path(digest).exists() => None,
                None => {
                    let f = self.fetch_manifest(repository, digest, opts);
                    map.insert(digest.clone(), f.clone());
                    Some(f)
                }
            }
        };
        let Some(fetch) = fetch else {
            let bytes = super::content::read(&self.store, &self.remote, digest)
                .await?
                .ok_or_else(|| RegistryError::manifest_unknown(digest.as_str()))?;
            let media_type = super::manifests::media_type_of(&bytes);
            return Ok((bytes, media_type));
        };
        let out = fetch.await;
        self.manifests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(digest);
        out.map_err(|e| (*e).clone())
    }

    /// The shared fetch of manifest `digest`: from upstream, verified, then stored.
    fn fetch_manifest(
        &self,
        repository: &DockerImageReference,
        digest: &Digest,
        opts: FetchOptions,
    ) -> ManifestFetch {
        let client = self.client.clone();
        let store = self.store.clone();
        let remote = self.remote.clone();
        let reference = repository.clone().without_tag().with_id(digest.clone());
        let digest = digest.clone();
        let span = tracing::info_span!(
            "pull_through",
            kind = "manifest",
            upstream = %reference.exact(),
            digest = %digest,
        );
        async move {
            let m = client
                .fetch_manifest(&reference, &opts)
                .await
                .map_err(|e| {
                    Arc::new(upstream_error(
                        &e,
                        RegistryError::manifest_unknown(digest.as_str()),
                    ))
                })?;
            super::content::put(&store, &remote, &digest, m.bytes.clone())
                .await
                .map_err(Arc::new)?;
            Ok((m.bytes, m.media_type))
        }
        .instrument(span)
        .boxed()
        .shared()
    }

    /// The size of blob `digest` of `repository` as the upstream's HEAD announces it
    /// (no download); `None` when it announces none, or answers the HEAD with an
    /// error other than 404 or 429 (the download then decides what the client gets).
    pub async fn blob_size(
        &self,
        repository: &DockerImageReference,
        digest: &Digest,
        opts: &FetchOptions,
    ) -> Result<Option<u64>, RegistryError> {
        match self.client.head_blob(repository, digest, opts).await {
            Ok(size) => Ok(size),
            Err(e) if matches!(e.status_code(), 404 | 429) => Err(upstream_error(
                &e,
                RegistryError::blob_unknown(digest.as_str()),
            )),
            Err(e) => {
                tracing::debug!(%digest, error = %e, "pull-through: a blob HEAD failed; downloading instead");
                Ok(None)
            }
        }
    }

    /// Blob `digest` of `repository`: joins the download in progress or starts one.
    /// `Ok(None)` when the blob is in the store after all (serve it from there).
    pub async fn blob(
        &self,
        repository: &DockerImageReference,
        digest: &Digest,
        opts: FetchOptions,
    ) -> Result<Option<PulledBlob>, RegistryError> {
        let mut claim = None;
        if let (Some(claims), Some(remote)) = (&self.claims, &self.remote)
            && self.in_progress(digest).is_none()
        {
            match self.cluster_turn(claims, &**remote, digest).await? {
                Ok(c) => claim = c,
                Err(()) if self.in_progress(digest).is_none() => return Ok(None),
                Err(()) => {}
            }
        }
        let download = {
            let mut map = self.downloads.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(digest) {
                // Joined; a claim won meanwhile goes (released when dropped).
                Some(d) => d.clone(),
                None => {
                    // A download that just finished left the map after its commit.
                    if self.store.blob_path(digest).exists() {
                        return Ok(None);
                    }
                    let d = self.start(repository, digest, opts, claim)?;
                    map.insert(digest.clone(), d.clone());
                    d
                }
            }
        };
        let mut rx = download.progress.clone();
        // Answer only once there is something to send (or the download is over), so
        // that a blob failing verification before any byte is visible gets a proper
        // error instead of a connection broken off before the status line.
        let size = loop {
            let p = rx.borrow_and_update().clone();
            match (&p.started, &p.done) {
                (Some(Err(e)), _) => return Err((**e).clone()),
                (_, Some(Err(e))) if p.visible == 0 => {
                    return Err(RegistryError::new(
                        Code::Unavailable,
                        format!("pulling {digest} from the upstream registry failed: {e}"),
                    )
                    .status(StatusCode::BAD_GATEWAY));
                }
                (Some(Ok(size)), done) if p.visible > 0 || done.is_some() => break *size,
                _ => {
                    if rx.changed().await.is_err() {
                        return Err(RegistryError::internal("the download stopped"));
                    }
                }
            }
        };
        Ok(Some(PulledBlob {
            size,
            body: read_growing(download).boxed(),
        }))
    }

    /// Starts the detached download of `digest` into a temporary file.
    fn start(
        &self,
        repository: &DockerImageReference,
        digest: &Digest,
        opts: FetchOptions,
        claim: Option<claims::ClaimGuard>,
    ) -> Result<Arc<Download>, RegistryError> {
        let mut writer = self.store.writer_unhashed()?;
        let file = writer
            .file()
            .expect("a new writer is open")
            .try_clone()
            .map_err(RegistryError::internal)?;
        let (tx, rx) = watch::channel(Progress::default());
        let download = Arc::new(Download {
            file: Arc::new(file),
            progress: rx,
        });
        let client = self.client.clone();
        let repository = repository.clone();
        let digest = digest.clone();
        let fetches = self.blob_fetches.clone();
        let (store, remote) = (self.store.clone(), self.remote.clone());
        let received = self.blob_bytes.clone();
        let downloads = self.downloads.clone();
        // Leaves the map once over: later requests find the blob in the store.
        let forget = move |digest: &Digest| {
            downloads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(digest);
        };
        // The download outlives the request that started it: a span of its own (a
        // child of the span current when it started).
        let span = tracing::info_span!(
            "pull_through",
            kind = "blob",
            upstream = %repository.exact(),
            digest = %digest,
        );
        tokio::spawn(async move {
            fetches.inc();
            let mut stream = match client.blob_stream(&repository, &digest, &opts).await {
                Ok(s) => s,
                Err(e) => {
                    let err = upstream_error(&e, RegistryError::blob_unknown(digest.as_str()));
                    tracing::warn!(%digest, error = %e, "pull-through: upstream refused a blob");
                    tx.send_modify(|p| {
                        p.started = Some(Err(Arc::new(err)));
                        p.done = Some(Err(e.to_string()));
                    });
                    if let Some(claim) = claim {
                        claim.release().await;
                    }
                    forget(&digest);
                    return;
                }
            };
            tx.send_modify(|p| p.started = Some(Ok(stream.size)));
            let mut held: Option<Bytes> = None;
            let mut failure = None;
            while let Some(item) = stream.next().await {
                match item {
                    Ok(chunk) => {
                        received.inc_by(chunk.len() as u64);
                        if let Some(prev) = held.replace(chunk) {
                            if let Err(e) = writer.write(&prev) {
                                failure = Some(cache_failure(&digest, &e));
                                break;
                            }
                            let visible = writer.size();
                            tx.send_modify(|p| p.visible = visible);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%digest, error = %e, "pull-through: a blob download failed");
                        failure = Some(e.to_string());
                        break;
                    }
                }
            }
            if failure.is_none()
                && let Some(last) = held.take()
                && let Err(e) = writer.write(&last)
            {
                failure = Some(cache_failure(&digest, &e));
            }
            let result = match failure {
                Some(f) => Err(f),
                None => {
                    // The upstream stream ended without an error, so its digest matched:
                    // readers get the last chunk now. Making the cache durable (fsync,
                    // rename, fsync) need not hold them up; a reader that joins before
                    // the commit is through reads the same file.
                    let size = writer.size();
                    tx.send_modify(|p| {
                        p.visible = size;
                        p.verified = true;
                    });
                    let d = digest.clone();
                    match tokio::task::spawn_blocking(move || writer.commit_verified(&d)).await {
                        Ok(Ok(())) => super::content::publish(&store, &remote, &digest)
                            .await
                            .map_err(|e| cache_failure(&digest, &e)),
                        Ok(Err(e)) => Err(cache_failure(&digest, &e)),
                        Err(e) => Err(cache_failure(&digest, &e)),
                    }
                }
            };
            if let Some(claim) = claim {
                // Published (or failed): replicas waiting on the claim look again.
                claim.release().await;
            }
            tx.send_modify(|p| p.done = Some(result));
            forget(&digest);
        }.instrument(span));
        Ok(download)
    }
}

/// The bytes of a download as they become visible; an error if it fails.
fn read_growing(download: Arc<Download>) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    let rx = download.progress.clone();
    futures::stream::unfold((download, rx, 0u64), |(d, mut rx, offset)| async move {
        loop {
            let p = rx.borrow_and_update().clone();
            if offset < p.visible {
                let len = ((p.visible - offset) as usize).min(CHUNK);
                let file = d.file.clone();
                // Allocated here, on the runtime's thread that also frees it once the
                // chunk is sent: allocated on the blocking pool, the buffers were freed
                // across threads and the allocator kept taking fresh pages for them
                // (tens of MiB of resident memory and page zeroing per cold pull).
                let mut buf = vec![0u8; len];
                let read = tokio::task::spawn_blocking(move || {
                    file.read_exact_at(&mut buf, offset).map(|()| buf)
                })
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r);
                return match read {
                    Ok(buf) => Some((Ok(Bytes::from(buf)), (d, rx, offset + len as u64))),
                    Err(e) => Some((Err(e), (d, rx, u64::MAX))),
                };
            }
            if p.verified {
                // Everything was read, and it is what the digest names (a failed
                // commit afterwards only means the cache does not keep it).
                return None;
            }
            match &p.done {
                Some(Ok(())) => return None,
                Some(Err(e)) if offset != u64::MAX => {
                    let e = std::io::Error::other(format!("pull-through failed: {e}"));
                    return Some((Err(e), (d, rx, u64::MAX)));
                }
                Some(Err(_)) => return None,
                None => {
                    if rx.changed().await.is_err() {
                        return None;
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::ops::Range;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::SystemTime;

    use super::super::driver::file::FileBlobs;
    use super::super::driver::{BlobDriver, ByteStream, DriverError, Staged};
    use super::*;

    /// A bucket over files that counts the looks at it and, when given a blob, has its
    /// first look miss it just before another replica publishes it (and then releases
    /// its claim): the race between a look and a claim.
    #[derive(Debug)]
    struct TestBucket {
        inner: FileBlobs,
        looks: AtomicUsize,
        published_after_first_look: Option<(BlobStore, Bytes)>,
    }

    impl TestBucket {
        fn new(bucket: &BlobStore, published_after_first_look: Option<Bytes>) -> Self {
            TestBucket {
                inner: FileBlobs::new(bucket.clone()),
                looks: AtomicUsize::new(0),
                published_after_first_look: published_after_first_look
                    .map(|blob| (bucket.clone(), blob)),
            }
        }
    }

    #[async_trait::async_trait]
    impl BlobDriver for TestBucket {
        fn kind(&self) -> &'static str {
            "file"
        }
        async fn stat(&self, digest: &Digest) -> Result<Option<u64>, DriverError> {
            let seen = self.inner.stat(digest).await;
            let first = self.looks.fetch_add(1, Ordering::SeqCst) == 0;
            if first && let Some((bucket, blob)) = &self.published_after_first_look {
                bucket.put(digest, blob).expect("publish");
            }
            seen
        }
        async fn read(&self, digest: &Digest) -> Result<Option<Bytes>, DriverError> {
            self.inner.read(digest).await
        }
        async fn read_range(
            &self,
            digest: &Digest,
            range: Range<u64>,
        ) -> Result<Option<ByteStream>, DriverError> {
            self.inner.read_range(digest, range).await
        }
        async fn stage(&self) -> Result<Box<dyn Staged>, DriverError> {
            self.inner.stage().await
        }
        async fn delete(&self, digest: &Digest) -> Result<bool, DriverError> {
            self.inner.delete(digest).await
        }
        async fn list_dated(&self) -> Result<Vec<(Digest, u64, SystemTime)>, DriverError> {
            self.inner.list_dated().await
        }
        async fn modified(&self, digest: &Digest) -> Result<Option<SystemTime>, DriverError> {
            self.inner.modified(digest).await
        }
    }

    /// Ten requests of one replica waiting for another replica's fetch: one of them
    /// polls the bucket and the claim, and all ten go on when the blob is published.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_waiting_for_another_replicas_fetch_poll_once_per_replica() {
        let dir = tempfile::tempdir().unwrap();
        let bucket = BlobStore::open(&dir.path().join("bucket")).unwrap();
        let blob = Bytes::from_static(b"a layer another replica is fetching");
        let digest = Digest::sha256_of(&blob);
        let remote = TestBucket::new(&bucket, None);
        let store: Arc<dyn moor_store::Store> = Arc::new(moor_store::MemoryStore::new());
        let other = Claims::new(store.clone());
        let Ok(Claimed::Won(held)) = other.try_claim(&digest).await else {
            panic!("the other replica claims the fetch");
        };
        let claims = Claims::new(store);
        let client = UpstreamClient::new(crate::upstream::UpstreamConfig::default()).unwrap();
        let pull = PullThrough::new(client, BlobStore::open(&dir.path().join("local")).unwrap());
        let waiting = futures::future::join_all(
            (0..10).map(|_| pull.cluster_turn(&claims, &remote, &digest)),
        );
        let publish = async {
            tokio::time::sleep(claims::POLL_EVERY * 8).await;
            bucket.put(&digest, &blob).expect("publish");
            held.release().await;
        };
        let (turns, ()) = tokio::join!(waiting, publish);
        assert!(
            turns.iter().all(|t| matches!(t, Ok(Err(())))),
            "all served from the bucket"
        );
        let looks = remote.looks.load(Ordering::SeqCst);
        // One poller: about 8 looks, then one more per request; ten pollers: 80 or more.
        assert!(looks <= 25, "{looks} looks at the bucket");
    }

    #[tokio::test]
    async fn a_claim_won_after_the_holder_published_fetches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let bucket = BlobStore::open(&dir.path().join("bucket")).unwrap();
        let blob = Bytes::from_static(b"a layer another replica fetched");
        let digest = Digest::sha256_of(&blob);
        let remote = TestBucket::new(&bucket, Some(blob));
        let store: Arc<dyn moor_store::Store> = Arc::new(moor_store::MemoryStore::new());
        let claims = Claims::new(store.clone());
        let client = UpstreamClient::new(crate::upstream::UpstreamConfig::default()).unwrap();
        let pull = PullThrough::new(client, BlobStore::open(&dir.path().join("local")).unwrap());
        let turn = pull.cluster_turn(&claims, &remote, &digest).await.unwrap();
        assert!(
            turn.is_err(),
            "the blob published meanwhile is served from the bucket, not fetched again"
        );
        let key = format!("{}{digest}", claims::PREFIX);
        assert!(
            store.get(&key).await.unwrap().is_none(),
            "the claim won for nothing is released"
        );
    }
}
