//! Where the registry keeps the content of blobs: files under the registry root (the
//! default, and `--blob-store file://PATH`), or a [`BlobDriver`] (`--blob-store
//! s3://...`). With a driver, content is still verified and committed locally first
//! (uploads and pull-through keep their single-writer files), then published: staged
//! in the driver, verified again there, made visible, and the local copy removed.
//! Calls the blob store and the driver.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use moor_api::Digest;

use super::driver::{BlobDriver, BlobStoreUrl, DriverError};
use super::error::{Code, RegistryError};
use super::storage::BlobStore;
use super::{Registry, RegistryConfig};

/// A driver that is not the local store, if the registry has one.
pub(super) type Remote = Option<Arc<dyn BlobDriver>>;

impl From<DriverError> for RegistryError {
    fn from(e: DriverError) -> Self {
        match e {
            DriverError::Storage(e) => e.into(),
            DriverError::DigestMismatch { expected, actual } => Self::new(
                Code::DigestInvalid,
                format!("provided digest {expected} did not match uploaded content {actual}"),
            ),
            DriverError::SizeMismatch { expected, actual } => Self::new(
                Code::SizeInvalid,
                format!("provided length {expected} did not match content length {actual}"),
            ),
            other => Self::internal(other),
        }
    }
}

/// The local store `config` names, and the remote driver when blobs live elsewhere.
pub(super) fn open(config: &RegistryConfig) -> Result<(BlobStore, Remote), DriverError> {
    match &config.blob_store {
        None => Ok((BlobStore::open(&config.root)?, None)),
        Some(BlobStoreUrl::File(path)) => Ok((BlobStore::open(path)?, None)),
        Some(url @ BlobStoreUrl::S3 { .. }) => {
            let local = BlobStore::open(&config.root)?;
            let credentials = config
                .s3_credentials
                .as_ref()
                .map(|(id, secret)| (id.as_str(), secret.as_str()));
            let remote = url.open(&local, credentials)?;
            tracing::info!(blob_store = ?url, "blob content in S3");
            Ok((local, Some(remote)))
        }
    }
}

/// The upstream client's hook for manifests it fetched (its own alias is private).
type ManifestHook = Arc<dyn Fn(&Digest, &Bytes) + Send + Sync>;

/// The importer's hook that keeps every manifest it fetched.
pub(super) fn manifest_hook(store: &BlobStore, remote: &Remote) -> ManifestHook {
    let (store, remote) = (store.clone(), remote.clone());
    Arc::new(move |digest: &Digest, bytes: &Bytes| match &remote {
        None => {
            if let Err(e) = store.put(digest, bytes) {
                tracing::warn!(%digest, error = %e, "keeping an imported manifest failed");
            }
        }
        Some(remote) => {
            let Ok(rt) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let (remote, digest, bytes) = (remote.clone(), digest.clone(), bytes.clone());
            rt.spawn(async move {
                if let Err(e) = put_remote(&*remote, &digest, bytes).await {
                    tracing::warn!(%digest, error = %e, "keeping an imported manifest failed");
                }
            });
        }
    })
}

/// Stores `bytes` as blob `digest` in `remote`, checked first: a blob already there
/// is no proof that `bytes` are its content (an empty upload naming another
/// repository's digest must not link that blob).
async fn put_remote(
    remote: &dyn BlobDriver,
    digest: &Digest,
    bytes: Bytes,
) -> Result<(), DriverError> {
    if !digest.matches(&bytes) {
        return Err(DriverError::DigestMismatch {
            expected: digest.clone(),
            actual: digest.of_same_algorithm(&bytes),
        });
    }
    if remote.stat(digest).await?.is_some() {
        return Ok(());
    }
    let size = bytes.len() as u64;
    let mut staged = remote.stage_as(digest).await?;
    staged.write(bytes).await?;
    staged.commit(digest, Some(size)).await
}

/// Stores `bytes` as blob `digest` after checking them (durably).
pub(super) async fn put(
    store: &BlobStore,
    remote: &Remote,
    digest: &Digest,
    bytes: Bytes,
) -> Result<(), RegistryError> {
    match remote {
        Some(remote) => Ok(put_remote(&**remote, digest, bytes).await?),
        None => {
            let (store, d) = (store.clone(), digest.clone());
            tokio::task::spawn_blocking(move || store.put(&d, &bytes))
                .await
                .map_err(RegistryError::internal)??;
            Ok(())
        }
    }
}

/// The whole content of (small) blob `digest`, if stored.
pub(super) async fn read(
    store: &BlobStore,
    remote: &Remote,
    digest: &Digest,
) -> Result<Option<Bytes>, RegistryError> {
    match remote {
        Some(remote) => Ok(remote.read(digest).await?),
        None => Ok(store.read(digest).await?),
    }
}

/// Moves blob `digest`, just committed to the local store, to the remote driver (a
/// no-op without one): streamed into a staged blob, verified, committed, and the
/// local copy removed.
pub(super) async fn publish(
    store: &BlobStore,
    remote: &Remote,
    digest: &Digest,
) -> Result<(), RegistryError> {
    let Some(remote) = remote else {
        return Ok(());
    };
    let Some(file) = store.open_blob(digest).await? else {
        return Err(RegistryError::blob_unknown(digest.as_str()));
    };
    if remote.stat(digest).await?.is_none() {
        let mut staged = remote.stage_as(digest).await?;
        let mut chunks = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
        while let Some(chunk) = chunks.next().await {
            staged
                .write(chunk.map_err(RegistryError::internal)?)
                .await?;
        }
        staged.commit(digest, None).await?;
    }
    let (store, d) = (store.clone(), digest.clone());
    tokio::task::spawn_blocking(move || store.remove_blob(&d))
        .await
        .map_err(RegistryError::internal)??;
    Ok(())
}

impl Registry {
    /// The size of blob `digest`, if stored (wherever blobs live).
    pub(crate) async fn content_stat(&self, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        match &self.remote {
            Some(remote) => Ok(remote.stat(digest).await?),
            None => Ok(self.blobs.stat(digest).await),
        }
    }

    /// The whole content of (small) blob `digest`, if stored.
    pub(crate) async fn content_read(
        &self,
        digest: &Digest,
    ) -> Result<Option<Bytes>, RegistryError> {
        read(&self.blobs, &self.remote, digest).await
    }

    /// Stores `bytes` as blob `digest` after checking them.
    pub(crate) async fn content_put(
        &self,
        digest: &Digest,
        bytes: Bytes,
    ) -> Result<(), RegistryError> {
        put(&self.blobs, &self.remote, digest, bytes).await
    }

    /// Moves a blob just committed locally to where blobs live (see [`publish`]).
    pub(crate) async fn content_publish(&self, digest: &Digest) -> Result<(), RegistryError> {
        publish(&self.blobs, &self.remote, digest).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::driver::s3::S3Blobs;

    #[tokio::test]
    async fn content_put_to_a_remote_checks_the_bytes_even_when_the_blob_exists() {
        let remote = S3Blobs::new(Arc::new(object_store::memory::InMemory::new()), "");
        let blob = Bytes::from_static(b"another repository's layer");
        let digest = Digest::sha256_of(&blob);
        put_remote(&remote, &digest, blob.clone()).await.unwrap();
        // The same digest claimed with other bytes (an empty upload): refused.
        let err = put_remote(&remote, &digest, Bytes::new())
            .await
            .unwrap_err();
        assert!(matches!(err, DriverError::DigestMismatch { .. }), "{err}");
        let err = put_remote(&remote, &digest, Bytes::from_static(b"x")).await;
        assert!(err.is_err());
        // The right bytes again: fine, nothing rewritten.
        put_remote(&remote, &digest, blob).await.unwrap();
    }
}
