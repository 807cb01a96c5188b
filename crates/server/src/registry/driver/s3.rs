//! The S3 driver, over `object_store`: blobs under `[PREFIX/]blobs/<algorithm>/<xx>/<hex>`
//! in one bucket, credentials from the standard AWS environment.
//!
//! Verify before visible: a staged blob is hashed as it is written. One that fits in
//! a part ([`PART`]) stays in memory and is put under its content address only after
//! the digest matched. A larger one goes to a multipart upload under
//! `[PREFIX/]_staging/<uuid>`; once the digest matched it is completed there, copied
//! under the content address and the staging object deleted; on a mismatch (or a drop)
//! the multipart upload is aborted and nothing was ever visible. When the digest is
//! known before the first byte ([`BlobDriver::stage_as`]: publishing, pull-through),
//! the multipart upload is made at the content address itself and completed only
//! once the digest matched: no copy, whatever the size. S3 copies at most 5 GiB in
//! one request and `object_store` has no multipart copy (UploadPartCopy), so a staged
//! blob past that is streamed from its staging key into a multipart upload at the
//! content address instead of copied.
//!
//! Upload sessions keep their chunks under `[PREFIX/]_uploads/<session>/<chunk>`,
//! where any replica reads them back ([`BlobDriver::chunk_writer`]).

use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use moor_api::Digest;
use moor_api::reference::{DigestAlgorithm, DigestHasher};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload,
};

use super::{BlobDriver, ByteStream, Chunk, DriverError, Staged};

/// Bytes per part of a multipart upload (S3 wants at least 5 MiB but for the last).
pub const PART: usize = 8 * 1024 * 1024;
/// Parts uploading at once, per staged blob.
const PARTS_IN_FLIGHT: usize = 2;
/// The largest object S3 copies in one request.
const MAX_COPY: u64 = 5 * 1024 * 1024 * 1024;

fn object(context: impl Into<String>) -> impl FnOnce(object_store::Error) -> DriverError {
    let context = context.into();
    move |source| DriverError::Object { context, source }
}

/// Blobs in an S3 bucket.
#[derive(Clone, Debug)]
pub struct S3Blobs {
    store: Arc<dyn ObjectStore>,
    prefix: Vec<String>,
    /// Staged blobs larger than this are not copied in one request ([`MAX_COPY`]).
    copy_limit: u64,
}

impl S3Blobs {
    /// The driver for `bucket` (under `prefix`), at `endpoint` (any S3 server; plain
    /// HTTP allowed when the endpoint says `http://`) in `region`, with `credentials`
    /// (access key id, secret) or else those of the AWS environment.
    pub fn connect(
        bucket: &str,
        prefix: &str,
        endpoint: Option<&str>,
        region: Option<&str>,
        credentials: Option<(&str, &str)>,
    ) -> Result<Self, DriverError> {
        // reqwest 0.13 built without a bundled provider (no aws-lc-rs) takes the process
        // default: ring, the provider moor uses everywhere. Already set: kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some((id, secret)) = credentials {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
        }
        if let Some(endpoint) = endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(region) = region {
            builder = builder.with_region(region);
        }
        let store = builder
            .build()
            .map_err(object(format!("configuring bucket {bucket}")))?;
        Ok(Self::new(Arc::new(store), prefix))
    }

    /// The driver over any object store, under `prefix`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        S3Blobs {
            store,
            prefix: prefix
                .split('/')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
            copy_limit: MAX_COPY,
        }
    }

    /// The driver with another limit of single-request copies than S3's 5 GiB (tests
    /// exercise what happens past it with small blobs).
    pub fn with_copy_limit(mut self, limit: u64) -> Self {
        self.copy_limit = limit;
        self
    }

    /// Streams object `from` into a multipart upload at `to` (for objects S3 will not
    /// copy in one request). `to` is visible only once the upload completes.
    async fn restream(&self, from: &Path, to: &Path) -> Result<(), DriverError> {
        let got = self
            .store
            .get(from)
            .await
            .map_err(object("re-reading a staged blob"))?;
        let mut out = S3Staged::new(self, to.clone(), None);
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            out.push(chunk.map_err(object("re-reading a staged blob"))?)
                .await?;
        }
        Chunk::finish(Box::new(out)).await.map(|_| ())
    }

    fn chunk_path(&self, session: &str, name: &str) -> Path {
        self.path(["_uploads", session, name])
    }

    /// Objects under the staging prefix (completed staged uploads not yet removed).
    pub async fn staging_objects(&self) -> Result<usize, DriverError> {
        self.objects_under("_staging").await
    }

    /// Chunks of upload sessions in the bucket (every session's).
    pub async fn chunk_objects(&self) -> Result<usize, DriverError> {
        self.objects_under("_uploads").await
    }

    async fn objects_under(&self, dir: &str) -> Result<usize, DriverError> {
        let prefix = self.path([dir]);
        let found: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(object(format!("listing {dir}")))?;
        Ok(found.len())
    }

    fn path<'a>(&'a self, rest: impl IntoIterator<Item = &'a str>) -> Path {
        Path::from_iter(self.prefix.iter().map(String::as_str).chain(rest))
    }

    fn blob_path(&self, digest: &Digest) -> Path {
        let hex = digest.hex();
        self.path(["blobs", digest.algorithm().as_str(), &hex[..2], hex])
    }
}

fn not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

#[async_trait::async_trait]
impl BlobDriver for S3Blobs {
    fn kind(&self) -> &'static str {
        "s3"
    }

    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, DriverError> {
        match self.store.head(&self.blob_path(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(object(format!("stat of blob {digest}"))(e)),
        }
    }

    async fn read(&self, digest: &Digest) -> Result<Option<Bytes>, DriverError> {
        let got = match self.store.get(&self.blob_path(digest)).await {
            Ok(got) => got,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(object(format!("reading blob {digest}"))(e)),
        };
        Ok(Some(
            got.bytes()
                .await
                .map_err(object(format!("reading blob {digest}")))?,
        ))
    }

    async fn read_range(
        &self,
        digest: &Digest,
        range: Range<u64>,
    ) -> Result<Option<ByteStream>, DriverError> {
        if range.start >= range.end {
            // S3 has no empty range: only whether the blob is there.
            return Ok(self
                .stat(digest)
                .await?
                .map(|_| futures::stream::empty().boxed()));
        }
        let opts = GetOptions::default().with_range(Some(GetRange::Bounded(range)));
        match self.store.get_opts(&self.blob_path(digest), opts).await {
            Ok(got) => Ok(Some(
                got.into_stream().map_err(std::io::Error::other).boxed(),
            )),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(object(format!("reading blob {digest}"))(e)),
        }
    }

    async fn stage(&self) -> Result<Box<dyn Staged>, DriverError> {
        let staging = self.path(["_staging", &uuid::Uuid::new_v4().to_string()]);
        Ok(Box::new(S3Staged::new(self, staging, None)))
    }

    async fn stage_as(&self, digest: &Digest) -> Result<Box<dyn Staged>, DriverError> {
        Ok(Box::new(S3Staged::new(
            self,
            self.blob_path(digest),
            Some(digest.clone()),
        )))
    }

    async fn chunk_writer(&self, session: &str, name: &str) -> Result<Box<dyn Chunk>, DriverError> {
        Ok(Box::new(S3Staged::new(
            self,
            self.chunk_path(session, name),
            None,
        )))
    }

    async fn chunk_read(
        &self,
        session: &str,
        name: &str,
    ) -> Result<Option<ByteStream>, DriverError> {
        match self.store.get(&self.chunk_path(session, name)).await {
            Ok(got) => Ok(Some(
                got.into_stream().map_err(std::io::Error::other).boxed(),
            )),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(object("reading an upload chunk")(e)),
        }
    }

    async fn promote_chunk(
        &self,
        session: &str,
        name: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<bool, DriverError> {
        if size > self.copy_limit {
            return Ok(false);
        }
        self.store
            .copy(&self.chunk_path(session, name), &self.blob_path(digest))
            .await
            .map_err(object(format!("storing blob {digest}")))?;
        Ok(true)
    }

    async fn remove_chunks(&self, session: &str) -> Result<(), DriverError> {
        let prefix = self.path(["_uploads", session]);
        let found: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(object("listing upload chunks"))?;
        for meta in found {
            match self.store.delete(&meta.location).await {
                Ok(()) => {}
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(object("removing an upload chunk")(e)),
            }
        }
        Ok(())
    }

    async fn delete(&self, digest: &Digest) -> Result<bool, DriverError> {
        // S3 deletes what is not there without complaint: ask first.
        if self.stat(digest).await?.is_none() {
            return Ok(false);
        }
        self.store
            .delete(&self.blob_path(digest))
            .await
            .map_err(object(format!("deleting blob {digest}")))?;
        Ok(true)
    }

    async fn modified(&self, digest: &Digest) -> Result<Option<SystemTime>, DriverError> {
        match self.store.head(&self.blob_path(digest)).await {
            Ok(meta) => Ok(Some(meta.last_modified.into())),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(object(format!("stat of blob {digest}"))(e)),
        }
    }

    /// Lists `blobs/` only: staged blobs (`_staging/`) and upload chunks
    /// (`_uploads/`) are never blobs.
    async fn list_dated(&self) -> Result<Vec<(Digest, u64, SystemTime)>, DriverError> {
        let prefix = self.path(["blobs"]);
        let mut out = Vec::new();
        let mut listing = self.store.list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(object("listing blobs"))?;
            let parts: Vec<_> = meta.location.parts().collect();
            let [.., alg, _, hex] = parts.as_slice() else {
                continue;
            };
            if let Ok(d) = Digest::parse(&format!("{}:{}", alg.as_ref(), hex.as_ref())) {
                out.push((d, meta.size, meta.last_modified.into()));
            }
        }
        Ok(out)
    }
}

/// A staged blob: in memory up to a part, then a multipart upload to `path` (the
/// content address when the digest was known at [`stage_as`](BlobDriver::stage_as),
/// else a staging key). Also an upload session's chunk ([`BlobDriver::chunk_writer`]),
/// completed unverified at its own key.
struct S3Staged {
    driver: S3Blobs,
    path: Path,
    /// The digest `path` is the content address of, if it is one.
    target: Option<Digest>,
    hasher: DigestHasher,
    buffer: Vec<Bytes>,
    buffered: usize,
    size: u64,
    upload: Option<Box<dyn MultipartUpload>>,
    /// Whether a multipart upload was started (the bytes are not all in `buffer`).
    multipart: bool,
    parts: tokio::task::JoinSet<object_store::Result<()>>,
}

impl S3Staged {
    fn new(driver: &S3Blobs, path: Path, target: Option<Digest>) -> Self {
        let algorithm = target
            .as_ref()
            .map_or(DigestAlgorithm::Sha256, Digest::algorithm);
        S3Staged {
            driver: driver.clone(),
            path,
            target,
            hasher: DigestHasher::new(algorithm),
            buffer: Vec::new(),
            buffered: 0,
            size: 0,
            upload: None,
            multipart: false,
            parts: tokio::task::JoinSet::new(),
        }
    }

    /// Sends what is buffered as the next part (starting the multipart upload).
    async fn flush_part(&mut self) -> Result<(), DriverError> {
        let upload = match &mut self.upload {
            Some(u) => u,
            None => {
                let u = self
                    .driver
                    .store
                    .put_multipart(&self.path)
                    .await
                    .map_err(object("starting a staged upload"))?;
                self.multipart = true;
                self.upload.insert(u)
            }
        };
        let payload = PutPayload::from_iter(std::mem::take(&mut self.buffer));
        self.buffered = 0;
        self.parts.spawn(upload.put_part(payload));
        while self.parts.len() >= PARTS_IN_FLIGHT {
            self.join_part().await?;
        }
        Ok(())
    }

    async fn join_part(&mut self) -> Result<(), DriverError> {
        match self.parts.join_next().await {
            Some(r) => r?.map_err(object("uploading a part")),
            None => Ok(()),
        }
    }

    /// Sends the last part and waits for every part (a multipart upload only).
    async fn flush_all(&mut self) -> Result<(), DriverError> {
        if self.buffered > 0 {
            self.flush_part().await?;
        }
        while !self.parts.is_empty() {
            self.join_part().await?;
        }
        Ok(())
    }

    /// The digest of the content in `algorithm` (re-reading the staged bytes when
    /// the hasher ran another one).
    async fn digest_as(&mut self, algorithm: DigestAlgorithm) -> Result<Digest, DriverError> {
        let hasher = std::mem::replace(&mut self.hasher, DigestHasher::new(algorithm));
        if hasher.algorithm() == algorithm {
            return Ok(hasher.finish());
        }
        let mut h = DigestHasher::new(algorithm);
        if !self.multipart {
            for b in &self.buffer {
                h.update(b);
            }
            return Ok(h.finish());
        }
        let got = self
            .driver
            .store
            .get(&self.path)
            .await
            .map_err(object("re-reading a staged blob"))?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            h.update(&chunk.map_err(object("re-reading a staged blob"))?);
        }
        Ok(h.finish())
    }

    /// Completes the multipart upload (started) at `path`.
    async fn complete(&mut self) -> Result<(), DriverError> {
        let Some(mut upload) = self.upload.take() else {
            return Ok(());
        };
        upload
            .complete()
            .await
            .map_err(object("completing a staged upload"))?;
        Ok(())
    }

    /// Checks the content against `digest` and `size`, then makes it visible.
    async fn publish(&mut self, digest: &Digest, size: Option<u64>) -> Result<(), DriverError> {
        if let Some(expected) = size
            && expected != self.size
        {
            return Err(DriverError::SizeMismatch {
                expected,
                actual: self.size,
            });
        }
        let mismatch = |actual: Digest| DriverError::DigestMismatch {
            expected: digest.clone(),
            actual,
        };
        let dest = self.driver.blob_path(digest);
        if !self.multipart {
            // Small: verified in memory, then put once under the content address.
            let actual = self.digest_as(digest.algorithm()).await?;
            if &actual != digest {
                return Err(mismatch(actual));
            }
            let payload = PutPayload::from_iter(std::mem::take(&mut self.buffer));
            self.driver
                .store
                .put(&dest, payload)
                .await
                .map_err(object(format!("storing blob {digest}")))?;
            return Ok(());
        }
        self.flush_all().await?;
        if let Some(target) = self.target.clone() {
            // The parts went straight to the content address: completing the upload is
            // what makes them visible, so it happens only once the digest matched.
            // (Dropped uncompleted, the upload is aborted.) No copy: any size.
            let actual = self.digest_as(target.algorithm()).await?;
            if &actual != digest || &target != digest {
                return Err(mismatch(actual));
            }
            return self.complete().await;
        }
        let sha256 = digest.algorithm() == DigestAlgorithm::Sha256;
        if sha256 {
            let actual = self.digest_as(DigestAlgorithm::Sha256).await?;
            if &actual != digest {
                return Err(mismatch(actual));
            }
        }
        self.complete().await?;
        // Completed under the staging key only: still invisible. A digest other than
        // sha256 is checked from the staged object before it is copied.
        let copied = async {
            if !sha256 {
                let actual = self.digest_as(digest.algorithm()).await?;
                if &actual != digest {
                    return Err(mismatch(actual));
                }
            }
            if self.size > self.driver.copy_limit {
                // S3 copies at most 5 GiB in one request (and object_store has no
                // UploadPartCopy): stream the staged object into a multipart upload
                // at the content address instead.
                return self.driver.restream(&self.path, &dest).await;
            }
            self.driver
                .store
                .copy(&self.path, &dest)
                .await
                .map_err(object(format!("storing blob {digest}")))
        }
        .await;
        if let Err(e) = self.driver.store.delete(&self.path).await {
            tracing::warn!(staging = %self.path, error = %e, "removing a staged blob failed");
        }
        copied
    }

    /// Buffers `chunk`, sending a part when one is full.
    async fn push(&mut self, chunk: Bytes) -> Result<(), DriverError> {
        self.hasher.update(&chunk);
        self.size += chunk.len() as u64;
        self.buffered += chunk.len();
        self.buffer.push(chunk);
        if self.buffered >= PART {
            self.flush_part().await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Staged for S3Staged {
    async fn write(&mut self, chunk: Bytes) -> Result<(), DriverError> {
        self.push(chunk).await
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn commit(
        mut self: Box<Self>,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<(), DriverError> {
        self.publish(digest, size).await
        // Dropped here: an upload not completed is aborted.
    }
}

#[async_trait::async_trait]
impl Chunk for S3Staged {
    async fn write(&mut self, chunk: Bytes) -> Result<(), DriverError> {
        self.push(chunk).await
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn finish(mut self: Box<Self>) -> Result<Digest, DriverError> {
        if self.multipart {
            self.flush_all().await?;
            self.complete().await?;
        } else {
            let payload = PutPayload::from_iter(std::mem::take(&mut self.buffer));
            self.driver
                .store
                .put(&self.path, payload)
                .await
                .map_err(object("storing an upload chunk"))?;
        }
        let hasher =
            std::mem::replace(&mut self.hasher, DigestHasher::new(DigestAlgorithm::Sha256));
        Ok(hasher.finish())
    }
}

impl Drop for S3Staged {
    fn drop(&mut self) {
        self.parts.abort_all();
        if let Some(mut upload) = self.upload.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let staging = self.path.clone();
            rt.spawn(async move {
                if let Err(e) = upload.abort().await {
                    tracing::warn!(%staging, error = %e, "aborting a staged upload failed");
                }
            });
        }
    }
}
