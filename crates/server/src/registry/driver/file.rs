//! The file driver: [`BlobStore`]'s own layout (`blobs/<algorithm>/<xx>/<hex>`),
//! staged under `uploads/` and renamed into place after the digest matched (fsynced).
//! Blocking filesystem work runs on the blocking pool.

use std::io::{Seek, SeekFrom};
use std::ops::Range;
use std::time::SystemTime;

use bytes::Bytes;
use futures::StreamExt;
use moor_api::Digest;
use moor_api::reference::DigestAlgorithm;
use tokio::io::AsyncReadExt;

use super::{BlobDriver, ByteStream, DriverError, Staged};
use crate::registry::storage::{BlobStore, BlobWriter, StorageError};

/// Blobs on the local filesystem, in today's layout.
#[derive(Clone, Debug)]
pub struct FileBlobs {
    store: BlobStore,
}

impl FileBlobs {
    /// The driver over `store`.
    pub fn new(store: BlobStore) -> Self {
        FileBlobs { store }
    }
}

#[async_trait::async_trait]
impl BlobDriver for FileBlobs {
    fn kind(&self) -> &'static str {
        "file"
    }

    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, DriverError> {
        Ok(self.store.stat(digest).await)
    }

    async fn read(&self, digest: &Digest) -> Result<Option<Bytes>, DriverError> {
        Ok(self.store.read(digest).await?)
    }

    async fn read_range(
        &self,
        digest: &Digest,
        range: Range<u64>,
    ) -> Result<Option<ByteStream>, DriverError> {
        let Some(file) = self.store.open_blob(digest).await? else {
            return Ok(None);
        };
        let mut file = file.into_std().await;
        let start = range.start;
        let file =
            tokio::task::spawn_blocking(move || file.seek(SeekFrom::Start(start)).map(|_| file))
                .await?
                .map_err(|source| StorageError::Io {
                    context: format!("seeking in blob {digest}"),
                    source,
                })?;
        let len = range.end.saturating_sub(range.start);
        let reader = tokio::fs::File::from_std(file).take(len);
        Ok(Some(tokio_util::io::ReaderStream::new(reader).boxed()))
    }

    async fn stage(&self) -> Result<Box<dyn Staged>, DriverError> {
        let store = self.store.clone();
        let writer =
            tokio::task::spawn_blocking(move || store.writer(DigestAlgorithm::Sha256)).await??;
        Ok(Box::new(FileStaged {
            writer: Some(writer),
        }))
    }

    async fn delete(&self, digest: &Digest) -> Result<bool, DriverError> {
        let store = self.store.clone();
        let digest = digest.clone();
        Ok(tokio::task::spawn_blocking(move || store.remove_blob(&digest)).await??)
    }

    async fn list_dated(&self) -> Result<Vec<(Digest, u64, SystemTime)>, DriverError> {
        let store = self.store.clone();
        Ok(tokio::task::spawn_blocking(move || store.list_blobs()).await??)
    }

    async fn modified(&self, digest: &Digest) -> Result<Option<SystemTime>, DriverError> {
        Ok(tokio::fs::metadata(self.store.blob_path(digest))
            .await
            .ok()
            .map(|m| m.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
    }
}

/// A file under `uploads/`, removed when dropped uncommitted.
struct FileStaged {
    /// `None` only while a blocking write holds it.
    writer: Option<BlobWriter>,
}

impl FileStaged {
    fn take(&mut self) -> Result<BlobWriter, DriverError> {
        self.writer.take().ok_or_else(|| {
            DriverError::Storage(StorageError::Io {
                context: "a staged blob after a failed write".into(),
                source: std::io::Error::other("unusable"),
            })
        })
    }
}

#[async_trait::async_trait]
impl Staged for FileStaged {
    async fn write(&mut self, chunk: Bytes) -> Result<(), DriverError> {
        let mut writer = self.take()?;
        let writer =
            tokio::task::spawn_blocking(move || writer.write(&chunk).map(|()| writer)).await??;
        self.writer = Some(writer);
        Ok(())
    }

    fn size(&self) -> u64 {
        self.writer.as_ref().map_or(0, BlobWriter::size)
    }

    async fn commit(
        mut self: Box<Self>,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<(), DriverError> {
        let writer = self.take()?;
        let d = digest.clone();
        tokio::task::spawn_blocking(move || writer.commit(&d, size))
            .await?
            .map_err(|e| match e {
                StorageError::DigestMismatch { expected, actual } => {
                    DriverError::DigestMismatch { expected, actual }
                }
                StorageError::SizeMismatch { expected, actual } => {
                    DriverError::SizeMismatch { expected, actual }
                }
                e => DriverError::Storage(e),
            })
    }
}
