//! The upstream registry client: what the importer, the scheduler and the registry's
//! pull-through use to talk to any OCI/Docker registry. Manifests (OCI manifest and
//! index, Docker schema 2 and manifest list; schema 1 refused) verified against their
//! digests, HEAD for digests without a pull, size-capped config blobs, streamed
//! verified blobs, paginated tag lists; anonymous, Basic and Bearer-token auth with a
//! token cache; insecure registries; mirrors; timeouts; 429 with `Retry-After`; a
//! concurrency limit per registry. May call the network (through `transport`), the
//! metrics registry, moor-api, oci-spec and oci-client types; never the store.
//!
//! ```text
//! let client = UpstreamClient::new(UpstreamConfig::default())?;
//! let image = DockerImageReference::parse("quay.io/keycloak/keycloak:20.0.2")?;
//! let manifest = client.fetch_manifest(&image, &FetchOptions::default()).await?;
//! // manifest.digest is the sha256 of manifest.bytes; manifest.source is the name asked
//! // for even when manifest.served_by is a mirror.
//! ```

mod auth;
mod credentials;
mod error;
mod manifest;
mod mirrors;
mod transport;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use futures::stream::BoxStream;
use moor_api::media_types;
use moor_api::reference::DigestHasher;
use moor_api::{Digest, DockerImageReference};
use reqwest::header::{CONTENT_TYPE, HeaderMap, LINK};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;

pub use credentials::{
    Credentials, CredentialsError, SECRET_TYPE_DOCKER_CONFIG_JSON, SECRET_TYPE_DOCKERCFG,
};
pub use error::UpstreamError;
pub use manifest::{MAX_MANIFEST_BYTES, ManifestContent};
pub use mirrors::Mirror;
/// What to send to a registry: anonymous, Basic or a bearer token (oci-client's type).
pub use oci_client::secrets::RegistryAuth;
pub use transport::{Scheme, UpstreamRequestLabels};

use mirrors::Target;
use transport::{Call, Sent, Transport, content_length, read_capped, status_error};

/// The largest image config blob [`UpstreamClient::fetch_config`] reads (the limit
/// containers/image uses): 4 MiB.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;
/// The largest page of a tag list read.
pub const MAX_TAG_PAGE_BYTES: u64 = 16 * 1024 * 1024;
/// The most tag list pages followed.
pub const MAX_TAG_PAGES: usize = 10_000;
/// The most of an error body read, for its message.
const MAX_ERROR_BODY_BYTES: u64 = 64 * 1024;

/// Timeouts of upstream requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection (TCP and TLS).
    pub connect: Duration,
    /// A whole request, from connecting to the last body byte (not for streamed blobs).
    pub request: Duration,
    /// The longest wait for the next bytes of a response, streamed blobs included.
    pub read_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(60),
            read_idle: Duration::from_secs(60),
        }
    }
}

/// How the client reaches registries. Built once from server flags.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// Registries (`HOST[:PORT]`, from `--insecure-registry`) reached over HTTPS
    /// without certificate verification, falling back to plain HTTP. An entry without
    /// a port matches the host on any port. `localhost` is not special: list it.
    pub insecure_registries: Vec<String>,
    /// Mirrors (from `--registry-mirror SOURCE=MIRROR`), tried before the source.
    pub mirrors: Vec<Mirror>,
    /// PEM (or DER) files of CA certificates trusted besides the system roots (from
    /// `--registry-ca FILE`).
    pub ca_files: Vec<PathBuf>,
    /// Connect, request and idle-read timeouts.
    pub timeouts: Timeouts,
    /// Requests in flight to one registry host at most (a streamed blob counts until
    /// it is dropped).
    pub per_registry_concurrency: usize,
    /// The `n` asked for per tag list page; `None` lets the registry choose.
    pub tag_page_size: Option<u32>,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Whether to honour `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` from the environment.
    pub use_environment_proxy: bool,
    /// Host names resolved to fixed addresses instead of DNS (like curl's
    /// `--resolve`), for tests and closed networks. With port 0 the URL's port is
    /// used; a non-zero port replaces the default port of URLs without one.
    pub dns_overrides: Vec<(String, SocketAddr)>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            insecure_registries: Vec::new(),
            mirrors: Vec::new(),
            ca_files: Vec::new(),
            timeouts: Timeouts::default(),
            per_registry_concurrency: 8,
            tag_page_size: None,
            user_agent: format!("moor/{}", env!("CARGO_PKG_VERSION")),
            use_environment_proxy: true,
            dns_overrides: Vec::new(),
        }
    }
}

/// Per-call options: the import's `insecure` flag and the credentials usable for it.
#[derive(Clone, Debug, Default)]
pub struct FetchOptions {
    /// importPolicy.insecure: reach the source registry over unverified HTTPS or plain
    /// HTTP. Mirrors are insecure only when listed in
    /// [`UpstreamConfig::insecure_registries`].
    pub insecure: bool,
    /// Credentials, matched by the registry actually contacted (a mirror's host for a
    /// mirror).
    pub credentials: Credentials,
}

impl FetchOptions {
    /// Options with these credentials, secure.
    pub fn with_credentials(credentials: Credentials) -> Self {
        Self {
            insecure: false,
            credentials,
        }
    }

    /// The same options with `insecure` set.
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }
}

/// The registry and repository that answered, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Host with optional port, as contacted (`registry-1.docker.io` for Docker Hub).
    pub registry: String,
    /// Repository path at that registry.
    pub repository: String,
    /// Whether it is a mirror rather than the source.
    pub mirror: bool,
    /// The scheme that worked.
    pub scheme: Scheme,
}

impl Endpoint {
    fn new(target: &Target, scheme: Scheme) -> Self {
        Self {
            registry: target.registry.clone(),
            repository: target.repository.clone(),
            mirror: target.mirror,
            scheme,
        }
    }

    /// `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

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
    inner: BoxStream<'static, Result<Bytes, UpstreamError>>,
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

/// The tag list document. Read with our own type because oci-spec's `TagList`
/// refuses `"tags": null`, which distribution sends for a repository whose tags were
/// all deleted.
#[derive(Deserialize)]
struct TagsBody {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

struct Inner {
    config: UpstreamConfig,
    transport: Transport,
}

/// The upstream registry client. Cheap to clone: clones share connections, tokens,
/// concurrency limits and metrics.
#[derive(Clone)]
pub struct UpstreamClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl UpstreamClient {
    /// A client for `config`. Fails when a CA file cannot be read or parsed.
    pub fn new(config: UpstreamConfig) -> Result<Self, UpstreamError> {
        let transport = Transport::new(&config)?;
        Ok(Self {
            inner: Arc::new(Inner { config, transport }),
        })
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &UpstreamConfig {
        &self.inner.config
    }

    /// Registers `moor_upstream_requests_total{registry,method,code}` (one count per
    /// HTTP request sent, token requests included; `code` is `error` when no answer
    /// came) with `metrics`.
    pub fn register_metrics(&self, metrics: &crate::metrics::Metrics) {
        metrics.register(
            "upstream_requests",
            "HTTP requests sent to upstream registries",
            self.inner.transport.requests.clone(),
        );
    }

    /// Tries the endpoints for `reference` in order (mirrors, then the source) and
    /// returns the first success. When all fail, the source's error is returned with
    /// the mirrors' failures appended to its message.
    async fn each_endpoint<T, F, Fut>(
        &self,
        reference: &DockerImageReference,
        mut op: F,
    ) -> Result<T, UpstreamError>
    where
        F: FnMut(Target) -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        let targets = mirrors::targets(&self.inner.config.mirrors, reference);
        let count = targets.len();
        let mut notes = Vec::new();
        for (i, target) in targets.into_iter().enumerate() {
            let name = target.name();
            let mirror = target.mirror;
            match op(target).await {
                Ok(v) => return Ok(v),
                Err(e) if i + 1 < count => {
                    tracing::info!(image = %reference, endpoint = %name, error = %e, "upstream endpoint failed; trying the next");
                    let kind = if mirror { "mirror" } else { "endpoint" };
                    notes.push(format!("{kind} {name}: {}", e.message()));
                }
                Err(e) => {
                    return Err(if notes.is_empty() {
                        e
                    } else {
                        e.with_note(&format!("tried first: {}", notes.join("; ")))
                    });
                }
            }
        }
        Err(UpstreamError::InvalidConfig {
            message: format!("no endpoint for {reference}"),
        })
    }

    fn call<'a>(
        &self,
        target: &'a Target,
        options: &'a FetchOptions,
        method: Method,
        path_and_query: String,
        accept: Option<&'a str>,
        what: &'a str,
    ) -> Call<'a> {
        Call {
            target,
            insecure: options.insecure,
            credentials: &options.credentials,
            method,
            path_and_query,
            accept,
            what,
            overall_timeout: true,
        }
    }

    /// Fetches the manifest `reference` names (its digest if it has one, else its
    /// tag, else `latest`), verified: by digest the bytes must hash to it; by tag a
    /// `Docker-Content-Digest` header must match the bytes. Schema 1 and manifests
    /// over [`MAX_MANIFEST_BYTES`] are refused.
    pub async fn fetch_manifest(
        &self,
        reference: &DockerImageReference,
        options: &FetchOptions,
    ) -> Result<Manifest, UpstreamError> {
        let what = reference.exact();
        let accept = media_types::accept_header();
        self.each_endpoint(reference, |target| {
            let what = what.as_str();
            let accept = accept.as_str();
            async move {
                let path = format!(
                    "/v2/{}/manifests/{}",
                    target.repository,
                    reference.manifest_reference()
                );
                let call = self.call(&target, options, Method::GET, path, Some(accept), what);
                let Sent {
                    response,
                    scheme,
                    permit: _permit,
                } = self.inner.transport.send(&call).await?;
                let status = response.status();
                let headers = response.headers().clone();
                if !status.is_success() {
                    return Err(error_from(response, status, &headers, what, "manifest").await);
                }
                let body = read_capped(response, MAX_MANIFEST_BYTES, what, "manifest").await?;
                let checked = manifest::check_manifest(
                    what,
                    &body,
                    header_str(&headers, CONTENT_TYPE),
                    reference.id(),
                    header_str(&headers, "docker-content-digest"),
                )?;
                Ok(Manifest {
                    source: reference.clone(),
                    digest: checked.digest,
                    media_type: checked.media_type,
                    bytes: body,
                    content: checked.content,
                    served_by: Endpoint::new(&target, scheme),
                })
            }
        })
        .await
    }

    /// Asks for the manifest's digest with a HEAD request (no pull, and no pull
    /// counted by registries that rate-limit GETs). Schema 1 answers are refused; a
    /// digest header that contradicts a requested digest is refused.
    pub async fn head_manifest(
        &self,
        reference: &DockerImageReference,
        options: &FetchOptions,
    ) -> Result<ManifestHead, UpstreamError> {
        let what = reference.exact();
        let accept = media_types::accept_header();
        self.each_endpoint(reference, |target| {
            let what = what.as_str();
            let accept = accept.as_str();
            async move {
                let path = format!(
                    "/v2/{}/manifests/{}",
                    target.repository,
                    reference.manifest_reference()
                );
                let call = self.call(&target, options, Method::HEAD, path, Some(accept), what);
                let Sent {
                    response, scheme, ..
                } = self.inner.transport.send(&call).await?;
                let status = response.status();
                let headers = response.headers().clone();
                if !status.is_success() {
                    return Err(status_error(status, &headers, b"", what, "manifest"));
                }
                let media_type = header_str(&headers, CONTENT_TYPE)
                    .map(media_types::essence)
                    .filter(|t| media_types::is_manifest(t))
                    .map(str::to_owned);
                if let Some(t) = media_type.as_deref().filter(|t| media_types::is_schema1(t)) {
                    return Err(UpstreamError::UnsupportedSchema1 {
                        target: what.to_owned(),
                        media_type: t.to_owned(),
                    });
                }
                let announced = header_str(&headers, "docker-content-digest")
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(|h| {
                        Digest::parse(h).map_err(|e| UpstreamError::InvalidContent {
                            target: what.to_owned(),
                            message: format!("invalid Docker-Content-Digest header {h:?}: {e}"),
                        })
                    })
                    .transpose()?;
                let digest = match (reference.id(), announced) {
                    (Some(asked), Some(got))
                        if asked.algorithm() == got.algorithm() && *asked != got =>
                    {
                        return Err(UpstreamError::DigestMismatch {
                            target: what.to_owned(),
                            expected: asked.to_string(),
                            message: format!(
                                "manifest verification failed: requested digest {asked}, the registry announced {got}"
                            ),
                            actual: got,
                        });
                    }
                    (_, Some(got)) => Some(got),
                    (Some(asked), None) => Some(asked.clone()),
                    (None, None) => None,
                };
                Ok(ManifestHead {
                    source: reference.clone(),
                    digest,
                    media_type,
                    size: content_length(&headers),
                    served_by: Endpoint::new(&target, scheme),
                })
            }
        })
        .await
    }

    /// Reads a blob of at most `max_bytes` from `reference`'s repository (its tag or
    /// digest is ignored) and verifies it against `digest`.
    pub async fn fetch_blob(
        &self,
        reference: &DockerImageReference,
        digest: &Digest,
        max_bytes: u64,
        options: &FetchOptions,
    ) -> Result<Blob, UpstreamError> {
        let what = format!("{}@{digest}", reference.as_repository().exact());
        self.each_endpoint(reference, |target| {
            let what = what.as_str();
            async move {
                let path = format!("/v2/{}/blobs/{digest}", target.repository);
                let call = self.call(&target, options, Method::GET, path, None, what);
                let Sent {
                    response,
                    scheme,
                    permit: _permit,
                } = self.inner.transport.send(&call).await?;
                let status = response.status();
                let headers = response.headers().clone();
                if !status.is_success() {
                    return Err(error_from(response, status, &headers, what, "blob").await);
                }
                let bytes = read_capped(response, max_bytes, what, "blob").await?;
                if !digest.matches(&bytes) {
                    let actual = digest.of_same_algorithm(&bytes);
                    return Err(UpstreamError::DigestMismatch {
                        target: what.to_owned(),
                        expected: digest.to_string(),
                        message: format!(
                            "blob verification failed: requested digest {digest}, the content is {actual}"
                        ),
                        actual,
                    });
                }
                Ok(Blob {
                    digest: digest.clone(),
                    bytes,
                    served_by: Endpoint::new(&target, scheme),
                })
            }
        })
        .await
    }

    /// Reads and parses an image config blob (at most [`MAX_CONFIG_BYTES`]), for
    /// `dockerImageMetadata`. Take the digest from [`Manifest::config_digest`].
    pub async fn fetch_config(
        &self,
        reference: &DockerImageReference,
        digest: &Digest,
        options: &FetchOptions,
    ) -> Result<ImageConfig, UpstreamError> {
        let blob = self
            .fetch_blob(reference, digest, MAX_CONFIG_BYTES, options)
            .await
            .map_err(|e| match e {
                UpstreamError::TooLarge { target, limit, .. } => UpstreamError::TooLarge {
                    target,
                    kind: "config blob",
                    limit,
                },
                other => other,
            })?;
        let config =
            serde_json::from_slice(&blob.bytes).map_err(|e| UpstreamError::InvalidContent {
                target: format!("{}@{digest}", reference.as_repository().exact()),
                message: format!("invalid image config: {e}"),
            })?;
        Ok(ImageConfig {
            digest: blob.digest,
            bytes: blob.bytes,
            config,
            served_by: blob.served_by,
        })
    }

    /// Starts downloading a blob of any size; the stream verifies the digest as the
    /// bytes pass (see [`BlobStream`]). Mirrors are tried until one answers with
    /// success; errors after that come through the stream. Only the idle read timeout
    /// applies, not the overall request timeout.
    pub async fn blob_stream(
        &self,
        reference: &DockerImageReference,
        digest: &Digest,
        options: &FetchOptions,
    ) -> Result<BlobStream, UpstreamError> {
        let what = format!("{}@{digest}", reference.as_repository().exact());
        self.each_endpoint(reference, |target| {
            let what = what.clone();
            async move {
                let path = format!("/v2/{}/blobs/{digest}", target.repository);
                let mut call = self.call(&target, options, Method::GET, path, None, &what);
                call.overall_timeout = false;
                let Sent {
                    response,
                    scheme,
                    permit,
                } = self.inner.transport.send(&call).await?;
                let status = response.status();
                let headers = response.headers().clone();
                if !status.is_success() {
                    return Err(error_from(response, status, &headers, &what, "blob").await);
                }
                Ok(BlobStream {
                    digest: digest.clone(),
                    size: content_length(&headers),
                    served_by: Endpoint::new(&target, scheme),
                    inner: verified_stream(response, digest.clone(), what.clone(), permit),
                })
            }
        })
        .await
    }

    /// Lists the tags of `reference`'s repository, following `Link: <…>; rel="next"`
    /// pages (asking for [`UpstreamConfig::tag_page_size`] per page when set).
    pub async fn list_tags(
        &self,
        reference: &DockerImageReference,
        options: &FetchOptions,
    ) -> Result<TagList, UpstreamError> {
        let what = reference.as_repository().exact();
        let page_size = self.inner.config.tag_page_size;
        self.each_endpoint(reference, |target| {
            let what = what.as_str();
            async move {
                let mut path = format!("/v2/{}/tags/list", target.repository);
                if let Some(n) = page_size {
                    path.push_str(&format!("?n={n}"));
                }
                let mut tags = Vec::new();
                let mut scheme = Scheme::Https;
                for _ in 0..MAX_TAG_PAGES {
                    let call = self.call(
                        &target,
                        options,
                        Method::GET,
                        path.clone(),
                        Some("application/json"),
                        what,
                    );
                    let sent = self.inner.transport.send(&call).await?;
                    scheme = sent.scheme;
                    let response = sent.response;
                    let status = response.status();
                    let headers = response.headers().clone();
                    if !status.is_success() {
                        return Err(
                            error_from(response, status, &headers, what, "repository").await
                        );
                    }
                    let body = read_capped(response, MAX_TAG_PAGE_BYTES, what, "tag list page")
                        .await?;
                    let page: TagsBody = serde_json::from_slice(&body).map_err(|e| {
                        UpstreamError::InvalidContent {
                            target: what.to_owned(),
                            message: format!("invalid tag list: {e}"),
                        }
                    })?;
                    tags.extend(page.tags.unwrap_or_default());
                    match next_link(&headers) {
                        Some(next) if next != path => path = next,
                        _ => {
                            return Ok(TagList {
                                tags,
                                served_by: Endpoint::new(&target, scheme),
                            });
                        }
                    }
                }
                tracing::warn!(repository = %what, "tag list longer than {MAX_TAG_PAGES} pages; truncated");
                Ok(TagList {
                    tags,
                    served_by: Endpoint::new(&target, scheme),
                })
            }
        })
        .await
    }
}

fn header_str<K: reqwest::header::AsHeaderName>(headers: &HeaderMap, name: K) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The error for a failed response, reading (a bounded part of) its body for the
/// registry's message.
async fn error_from(
    response: reqwest::Response,
    status: StatusCode,
    headers: &HeaderMap,
    what: &str,
    kind: &str,
) -> UpstreamError {
    let body = read_capped(response, MAX_ERROR_BODY_BYTES, what, "error body")
        .await
        .unwrap_or_default();
    status_error(status, headers, &body, what, kind)
}

/// The path and query of the `rel="next"` link in `Link` headers, when it stays on
/// the registry's `/v2/` API (absolute URLs are reduced to their path: the next page
/// is asked of the same endpoint).
fn next_link(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(LINK).iter().filter_map(|v| v.to_str().ok()) {
        for link in value.split(',') {
            let link = link.trim();
            let Some((target, params)) =
                link.strip_prefix('<').and_then(|rest| rest.split_once('>'))
            else {
                continue;
            };
            let is_next = params.split(';').any(|p| {
                let p = p.trim();
                p.strip_prefix("rel=")
                    .map(|v| v.trim_matches('"'))
                    .is_some_and(|v| v.split_whitespace().any(|r| r == "next"))
            });
            if !is_next {
                continue;
            }
            let path = if target.starts_with("http://") || target.starts_with("https://") {
                let url = reqwest::Url::parse(target).ok()?;
                match url.query() {
                    Some(q) => format!("{}?{q}", url.path()),
                    None => url.path().to_owned(),
                }
            } else {
                target.to_owned()
            };
            return path.starts_with("/v2/").then_some(path);
        }
    }
    None
}

/// The response body as a stream that hashes what passes and ends with a
/// `DigestMismatch` error when the content does not match `expected`.
fn verified_stream(
    response: reqwest::Response,
    expected: Digest,
    what: String,
    permit: OwnedSemaphorePermit,
) -> BoxStream<'static, Result<Bytes, UpstreamError>> {
    use futures::StreamExt as _;
    struct State {
        body: BoxStream<'static, reqwest::Result<Bytes>>,
        hasher: Option<DigestHasher>,
        expected: Digest,
        what: String,
        url: String,
        _permit: OwnedSemaphorePermit,
    }
    let state = State {
        url: response.url().to_string(),
        body: response.bytes_stream().boxed(),
        hasher: Some(DigestHasher::for_digest(&expected)),
        expected,
        what,
        _permit: permit,
    };
    futures::stream::unfold(state, |mut s| async move {
        let hasher = s.hasher.as_mut()?;
        match s.body.next().await {
            Some(Ok(chunk)) => {
                hasher.update(&chunk);
                Some((Ok(chunk), s))
            }
            Some(Err(e)) => {
                s.hasher = None;
                let err = transport::transport_error(&e, &s.what, &s.url);
                Some((Err(err), s))
            }
            None => {
                let actual = s.hasher.take()?.finish();
                if actual == s.expected {
                    None
                } else {
                    let err = UpstreamError::DigestMismatch {
                        target: s.what.clone(),
                        expected: s.expected.to_string(),
                        message: format!(
                            "blob verification failed: requested digest {}, the content is {actual}",
                            s.expected
                        ),
                        actual,
                    };
                    Some((Err(err), s))
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            r#"</v2/a/b/tags/list?last=x&n=2>; rel="next""#.parse().unwrap(),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("/v2/a/b/tags/list?last=x&n=2")
        );
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            r#"<https://r.example/v2/a/tags/list?last=y>; rel=next, </other>; rel="prev""#
                .parse()
                .unwrap(),
        );
        assert_eq!(next_link(&h).as_deref(), Some("/v2/a/tags/list?last=y"));
        let mut h = HeaderMap::new();
        h.insert(LINK, r#"</elsewhere>; rel="next""#.parse().unwrap());
        assert_eq!(next_link(&h), None);
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn defaults() {
        let c = UpstreamConfig::default();
        assert_eq!(c.per_registry_concurrency, 8);
        assert!(c.user_agent.starts_with("moor/"));
        let client = UpstreamClient::new(c).unwrap();
        let clone = client.clone();
        assert!(Arc::ptr_eq(&client.inner, &clone.inner));
        let bad = UpstreamConfig {
            ca_files: vec!["/nonexistent/ca.pem".into()],
            ..UpstreamConfig::default()
        };
        let e = UpstreamClient::new(bad).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}
