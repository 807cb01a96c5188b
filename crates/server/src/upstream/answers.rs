//! What the client answers with: verified manifests, manifest heads, blobs, configs,
//! tag lists and verified blob streams.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use futures::stream::BoxStream;
use moor_api::{Digest, DockerImageReference};

use super::{Endpoint, ManifestContent, UpstreamError};

/// A fetched, verified manifest.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The reference asked for: always the source name, also when a mirror served it.
    pub source: DockerImageReference,
    /// The sha256 of [`bytes`](Self::bytes): the image's name in moor.
    pub digest: Digest,
    /// The media type (no parameters): one of the OCI manifest/index or Docker schema
    /// 2/manifest list types.
    pub media_type: String,
    /// The exact bytes served.
    pub bytes: Bytes,
    /// The parsed manifest.
    pub content: ManifestContent,
    /// Where it came from.
    pub served_by: Endpoint,
}

impl Manifest {
    /// The source name pinned to the digest (`quay.io/a/b@sha256:…`).
    pub fn pinned(&self) -> DockerImageReference {
        self.source
            .clone()
            .without_tag()
            .with_id(self.digest.clone())
    }

    /// Whether this is a multi-platform list (OCI index or Docker manifest list).
    pub fn is_list(&self) -> bool {
        matches!(self.content, ManifestContent::Index(_))
    }

    /// The config blob's digest, for an image manifest.
    pub fn config_digest(&self) -> Option<Digest> {
        match &self.content {
            ManifestContent::Image(m) => Digest::parse(m.config().digest().as_ref()).ok(),
            ManifestContent::Index(_) => None,
        }
    }

    /// The children's digests, for a list (in the list's order; entries with digests
    /// moor cannot hold are left out).
    pub fn child_digests(&self) -> Vec<Digest> {
        match &self.content {
            ManifestContent::Index(i) => i
                .manifests()
                .iter()
                .filter_map(|d| Digest::parse(d.digest().as_ref()).ok())
                .collect(),
            ManifestContent::Image(_) => Vec::new(),
        }
    }
}

/// What a HEAD on a manifest told, without pulling it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestHead {
    /// The reference asked for (the source name).
    pub source: DockerImageReference,
    /// The `Docker-Content-Digest` header; when the registry sends none, the digest
    /// asked for, if any. `None` means only a GET can tell.
    pub digest: Option<Digest>,
    /// The `Content-Type`, without parameters, when it names a manifest type.
    pub media_type: Option<String>,
    /// The `Content-Length`.
    pub size: Option<u64>,
    /// Where it came from.
    pub served_by: Endpoint,
}

/// A small blob read whole and verified.
#[derive(Clone, Debug)]
pub struct Blob {
    /// The digest asked for (verified).
    pub digest: Digest,
    /// The content.
    pub bytes: Bytes,
    /// Where it came from.
    pub served_by: Endpoint,
}

/// An image config blob, verified and parsed.
#[derive(Clone, Debug)]
pub struct ImageConfig {
    /// The digest asked for (verified).
    pub digest: Digest,
    /// The exact bytes.
    pub bytes: Bytes,
    /// The parsed config (architecture, os, config.Cmd, history, ...). Docker
    /// configs parse into the same structure.
    pub config: oci_spec::image::ImageConfiguration,
    /// Where it came from.
    pub served_by: Endpoint,
}

/// A repository's tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagList {
    /// The tags, in the registry's order, all pages joined.
    pub tags: Vec<String>,
    /// Where they came from.
    pub served_by: Endpoint,
}

/// A blob being downloaded. Yields its bytes; if they do not hash to the digest, the
/// last item is a [`UpstreamError::DigestMismatch`], so a consumer must not commit
/// the content before the stream ends without error. Holds one of the registry's
/// concurrency permits until dropped.
pub struct BlobStream {
    /// The digest asked for.
    pub digest: Digest,
    /// The `Content-Length`, when the registry sent it.
    pub size: Option<u64>,
    /// Where it comes from.
    pub served_by: Endpoint,
    pub(super) inner: BoxStream<'static, Result<Bytes, UpstreamError>>,
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("digest", &self.digest)
            .field("size", &self.size)
            .field("served_by", &self.served_by)
            .finish_non_exhaustive()
    }
}

impl Stream for BlobStream {
    type Item = Result<Bytes, UpstreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}
