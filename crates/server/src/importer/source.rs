//! The importer's [`Source`] over the upstream registry client: pull secrets become
//! credentials, upstream errors become import errors with OpenShift's reasons.

use async_trait::async_trait;
use bytes::Bytes;
use moor_api::{Digest, DockerImageReference};

use super::follow::TagsAnswer;
use super::{FetchedManifest, ImportError, PullOptions, Source};
use crate::upstream::{Credentials, FetchOptions, TagListAnswer, UpstreamClient, UpstreamError};

/// Config blobs larger than this are refused (real ones are a few KiB).
pub const MAX_CONFIG_BYTES: u64 = 8 * 1024 * 1024;

pub(crate) fn fetch_options(opts: &PullOptions) -> FetchOptions {
    let mut creds = Credentials::anonymous();
    for secret in opts.secrets.iter() {
        match Credentials::from_dockerconfigjson(secret) {
            Ok(c) => creds = creds.chain(&c),
            Err(e) => tracing::debug!(error = %e, "skipping an unreadable pull secret"),
        }
    }
    FetchOptions::with_credentials(creds).insecure(opts.insecure)
}

fn import_error(e: UpstreamError) -> ImportError {
    ImportError::Registry(e)
}

#[async_trait]
impl Source for UpstreamClient {
    async fn manifest(
        &self,
        reference: &DockerImageReference,
        opts: &PullOptions,
    ) -> Result<FetchedManifest, ImportError> {
        let m = self
            .fetch_manifest(reference, &fetch_options(opts))
            .await
            .map_err(import_error)?;
        if let Some(hook) = self.manifest_hook() {
            // Kept before the import completes, so that a pull right after it finds
            // the manifest here; a failure to keep it is the hook's to log.
            let (digest, bytes) = (m.digest.clone(), m.bytes.clone());
            let _ = tokio::task::spawn_blocking(move || hook(&digest, &bytes)).await;
        }
        Ok(FetchedManifest {
            bytes: m.bytes,
            media_type: m.media_type,
            digest: m.digest,
        })
    }

    async fn blob(
        &self,
        repository: &DockerImageReference,
        digest: &Digest,
        opts: &PullOptions,
    ) -> Result<Bytes, ImportError> {
        let b = self
            .fetch_blob(repository, digest, MAX_CONFIG_BYTES, &fetch_options(opts))
            .await
            .map_err(import_error)?;
        Ok(b.bytes)
    }

    async fn tags(
        &self,
        repository: &DockerImageReference,
        opts: &PullOptions,
    ) -> Result<Vec<String>, ImportError> {
        let t = self
            .list_tags(repository, &fetch_options(opts))
            .await
            .map_err(import_error)?;
        Ok(t.tags)
    }

    async fn tags_if_changed(
        &self,
        repository: &DockerImageReference,
        opts: &PullOptions,
        etag: Option<&str>,
    ) -> Result<TagsAnswer, ImportError> {
        let answer = self
            .list_tags_if_changed(repository, &fetch_options(opts), etag)
            .await
            .map_err(import_error)?;
        Ok(match answer {
            TagListAnswer::NotModified => TagsAnswer::NotModified,
            TagListAnswer::Changed { list, etag, pages } => TagsAnswer::Changed {
                tags: list.tags,
                etag,
                requests: pages,
            },
        })
    }

    async fn referrers(
        &self,
        repository: &DockerImageReference,
        digest: &Digest,
        artifact_type: &str,
        opts: &PullOptions,
    ) -> Result<Option<Bytes>, ImportError> {
        self.fetch_referrers(
            repository,
            digest,
            Some(artifact_type),
            &fetch_options(opts),
        )
        .await
        .map_err(import_error)
    }

    async fn digest(
        &self,
        reference: &DockerImageReference,
        opts: &PullOptions,
    ) -> Result<Option<Digest>, ImportError> {
        let head = self
            .head_manifest(reference, &fetch_options(opts))
            .await
            .map_err(import_error)?;
        Ok(head.digest)
    }
}
