//! Blob storage drivers: where the content of blobs lives, by content address.
//! [`BlobStoreUrl`] names one (`--blob-store file://PATH` or
//! `s3://BUCKET[/PREFIX]?endpoint=URL&region=R`); [`BlobDriver`] is the small
//! interface both implement ([`file::FileBlobs`] over today's [`BlobStore`] layout,
//! [`s3::S3Blobs`] over `object_store`), and [`conformance`] the one suite every
//! driver passes.
//!
//! Verify before visible: bytes go to a [`Staged`] blob, hashed as they pass, and only
//! [`Staged::commit`] with the matching digest makes them readable under the content
//! address. Calls the filesystem (file) or an S3 endpoint (s3) only.

pub mod conformance;
pub mod file;
pub mod s3;

use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures::stream::BoxStream;
use moor_api::Digest;

use super::storage::{BlobStore, StorageError};

/// Errors of blob storage drivers.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("invalid --blob-store {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("object store: {context}: {source}")]
    Object {
        context: String,
        #[source]
        source: object_store::Error,
    },
    #[error("digest mismatch: expected {expected}, the content is {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("a blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("the {0} driver does not keep upload chunks")]
    NoChunks(&'static str),
}

/// Bytes of a blob as they are read.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Where blobs live: by content address, written once, verified before visible.
#[async_trait::async_trait]
pub trait BlobDriver: Send + Sync + std::fmt::Debug {
    /// `file` or `s3`.
    fn kind(&self) -> &'static str;

    /// The size of blob `digest`, if stored.
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, DriverError>;

    /// The whole content of a (small) blob, if stored.
    async fn read(&self, digest: &Digest) -> Result<Option<Bytes>, DriverError>;

    /// Bytes `range` of blob `digest` (clamped to its end), if stored.
    async fn read_range(
        &self,
        digest: &Digest,
        range: Range<u64>,
    ) -> Result<Option<ByteStream>, DriverError>;

    /// A new staged blob: invisible until committed, gone when dropped uncommitted.
    async fn stage(&self) -> Result<Box<dyn Staged>, DriverError>;

    /// A new staged blob that will be committed as `digest` (known before the first
    /// byte): the driver may write it at its content address directly, still
    /// invisible until a verified commit. The default: [`stage`](Self::stage).
    async fn stage_as(&self, digest: &Digest) -> Result<Box<dyn Staged>, DriverError> {
        let _ = digest;
        self.stage().await
    }

    /// The writer of chunk `name` of upload session `session` (a uuid): stored as
    /// written, unverified, readable by every replica once finished; never a blob.
    async fn chunk_writer(&self, session: &str, name: &str) -> Result<Box<dyn Chunk>, DriverError> {
        let _ = (session, name);
        Err(DriverError::NoChunks(self.kind()))
    }

    /// The bytes of chunk `name` of upload session `session`, if stored.
    async fn chunk_read(
        &self,
        session: &str,
        name: &str,
    ) -> Result<Option<ByteStream>, DriverError> {
        let _ = (session, name);
        Err(DriverError::NoChunks(self.kind()))
    }

    /// Makes chunk `name` of `session`, which the caller verified to be `digest`
    /// of `size` bytes (its [`Chunk::finish`] said so), that blob without reading it
    /// again; `false` when the driver cannot (the caller streams it instead).
    async fn promote_chunk(
        &self,
        session: &str,
        name: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<bool, DriverError> {
        let _ = (session, name, digest, size);
        Ok(false)
    }

    /// Removes every chunk of upload session `session`.
    async fn remove_chunks(&self, session: &str) -> Result<(), DriverError> {
        let _ = session;
        Err(DriverError::NoChunks(self.kind()))
    }

    /// Removes blob `digest`; `false` when it was not there.
    async fn delete(&self, digest: &Digest) -> Result<bool, DriverError>;

    /// Every stored blob, with its size (never staged content).
    async fn list(&self) -> Result<Vec<(Digest, u64)>, DriverError> {
        Ok(self
            .list_dated()
            .await?
            .into_iter()
            .map(|(d, size, _)| (d, size))
            .collect())
    }

    /// Every stored blob, with its size and when it was last written (never staged
    /// content, nor upload chunks): what garbage collection plans on.
    async fn list_dated(&self) -> Result<Vec<(Digest, u64, SystemTime)>, DriverError>;

    /// When blob `digest` was last written, if stored.
    async fn modified(&self, digest: &Digest) -> Result<Option<SystemTime>, DriverError>;
}

/// A blob being written: hashed as written, visible only after a verified commit.
#[async_trait::async_trait]
pub trait Staged: Send {
    /// Appends `chunk`.
    async fn write(&mut self, chunk: Bytes) -> Result<(), DriverError>;

    /// Bytes written so far.
    fn size(&self) -> u64;

    /// Makes the content blob `digest` if it hashes to it (and has `size` bytes, when
    /// given); otherwise nothing becomes visible and the staged bytes are removed.
    async fn commit(self: Box<Self>, digest: &Digest, size: Option<u64>)
    -> Result<(), DriverError>;
}

/// A chunk of an upload session being written ([`BlobDriver::chunk_writer`]).
#[async_trait::async_trait]
pub trait Chunk: Send {
    /// Appends `bytes`.
    async fn write(&mut self, bytes: Bytes) -> Result<(), DriverError>;

    /// Bytes written so far.
    fn size(&self) -> u64;

    /// Stores the chunk; returns the sha256 of its bytes. Dropped unfinished, nothing
    /// is stored.
    async fn finish(self: Box<Self>) -> Result<Digest, DriverError>;
}

/// `--blob-store`: where blobs live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobStoreUrl {
    /// `file://PATH`: today's layout under PATH (the default: `<data-dir>/registry`).
    File(PathBuf),
    /// `s3://BUCKET[/PREFIX]?endpoint=URL&region=R`; credentials from the standard
    /// AWS environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...).
    S3 {
        bucket: String,
        prefix: String,
        endpoint: Option<String>,
        region: Option<String>,
    },
}

impl FromStr for BlobStoreUrl {
    type Err = DriverError;

    fn from_str(s: &str) -> Result<Self, DriverError> {
        let bad = |reason: &str| DriverError::BadUrl {
            url: s.to_string(),
            reason: reason.to_string(),
        };
        if let Some(path) = s.strip_prefix("file://") {
            if path.is_empty() {
                return Err(bad("file:// needs a path"));
            }
            return Ok(BlobStoreUrl::File(PathBuf::from(path)));
        }
        let Some(rest) = s.strip_prefix("s3://") else {
            return Err(bad(
                "expected file://PATH or s3://BUCKET?endpoint=URL&region=R",
            ));
        };
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        if bucket.is_empty() {
            return Err(bad("s3:// needs a bucket"));
        }
        let (mut endpoint, mut region) = (None, None);
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "endpoint" => endpoint = Some(v.into_owned()),
                "region" => region = Some(v.into_owned()),
                other => return Err(bad(&format!("unknown parameter {other:?}"))),
            }
        }
        Ok(BlobStoreUrl::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            endpoint,
            region,
        })
    }
}

impl BlobStoreUrl {
    /// The driver this URL names; `file` drivers share `local` (the registry's store)
    /// when the path is its root. S3 takes `credentials` (access key id, secret) or
    /// else the AWS environment's.
    pub fn open(
        &self,
        local: &BlobStore,
        credentials: Option<(&str, &str)>,
    ) -> Result<Arc<dyn BlobDriver>, DriverError> {
        match self {
            BlobStoreUrl::File(path) if path == local.root() => {
                Ok(Arc::new(file::FileBlobs::new(local.clone())))
            }
            BlobStoreUrl::File(path) => Ok(Arc::new(file::FileBlobs::new(BlobStore::open(path)?))),
            BlobStoreUrl::S3 {
                bucket,
                prefix,
                endpoint,
                region,
            } => Ok(Arc::new(s3::S3Blobs::connect(
                bucket,
                prefix,
                endpoint.as_deref(),
                region.as_deref(),
                credentials,
            )?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            "file:///var/lib/moor".parse::<BlobStoreUrl>().unwrap(),
            BlobStoreUrl::File("/var/lib/moor".into())
        );
        assert_eq!(
            "s3://b?endpoint=http://127.0.0.1:8333&region=us-east-1"
                .parse::<BlobStoreUrl>()
                .unwrap(),
            BlobStoreUrl::S3 {
                bucket: "b".into(),
                prefix: String::new(),
                endpoint: Some("http://127.0.0.1:8333".into()),
                region: Some("us-east-1".into()),
            }
        );
        assert_eq!(
            "s3://b/some/prefix/".parse::<BlobStoreUrl>().unwrap(),
            BlobStoreUrl::S3 {
                bucket: "b".into(),
                prefix: "some/prefix".into(),
                endpoint: None,
                region: None,
            }
        );
        for bad in ["", "/tmp/x", "file://", "s3://", "s3://b?nope=1", "gs://b"] {
            assert!(bad.parse::<BlobStoreUrl>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_file_driver_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let driver = BlobStoreUrl::File(dir.path().to_path_buf())
            .open(&store, None)
            .unwrap();
        conformance::run(&*driver).await;
        assert_eq!(
            std::fs::read_dir(dir.path().join("uploads"))
                .unwrap()
                .count(),
            0,
            "nothing staged is left behind"
        );
    }
}
