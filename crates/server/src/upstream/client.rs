//! [`UpstreamClient`]: manifests, blobs, configs and tag lists over the transport, with
//! mirrors, auth and verification.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use moor_api::media_types;
use moor_api::reference::DigestHasher;
use moor_api::{Digest, DockerImageReference};
use reqwest::header::{CONTENT_TYPE, HeaderMap, LINK};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;

use super::mirrors::{self, Target};
use super::transport::{self, Call, Sent, Transport, content_length, read_capped, status_error};
use super::{
    Blob, BlobStream, Endpoint, FetchOptions, ImageConfig, MAX_CONFIG_BYTES, MAX_ERROR_BODY_BYTES,
    MAX_MANIFEST_BYTES, MAX_TAG_PAGE_BYTES, MAX_TAG_PAGES, Manifest, ManifestHead, Scheme, TagList,
    UpstreamConfig, UpstreamError, manifest,
};

/// The tag list document. Read with our own type because oci-spec's `TagList`
/// refuses `"tags": null`, which distribution sends for a repository whose tags were
/// all deleted.
#[derive(Deserialize)]
struct TagsBody {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// Receives each manifest the importer fetched, verified: its digest and bytes.
pub type ManifestHook = Arc<dyn Fn(&Digest, &Bytes) + Send + Sync>;

struct Inner {
    config: UpstreamConfig,
    transport: Transport,
    /// Set once, by the registry: where imported manifests are kept.
    manifest_hook: std::sync::OnceLock<ManifestHook>,
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
            inner: Arc::new(Inner {
                config,
                transport,
                manifest_hook: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Hands every manifest the importer fetches through this client (and its clones)
    /// to `hook` (the registry keeps them, so that a first pull need not fetch them
    /// again). Only the first hook set counts.
    pub fn set_manifest_hook(&self, hook: ManifestHook) {
        let _ = self.inner.manifest_hook.set(hook);
    }

    /// The hook set by [`set_manifest_hook`](Self::set_manifest_hook), if any.
    pub fn manifest_hook(&self) -> Option<ManifestHook> {
        self.inner.manifest_hook.get().cloned()
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
    /// returns the first success. When all fail, see [`all_failed`].
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
        let mut failures = Vec::with_capacity(count);
        for (i, target) in targets.into_iter().enumerate() {
            let name = target.name();
            let mirror = target.mirror;
            match op(target).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if i + 1 < count {
                        tracing::info!(image = %reference, endpoint = %name, error = %e, "upstream endpoint failed; trying the next");
                    }
                    failures.push(Failure {
                        endpoint: name,
                        mirror,
                        error: e,
                    });
                }
            }
        }
        Err(
            all_failed(failures).unwrap_or_else(|| UpstreamError::InvalidConfig {
                message: format!("no endpoint for {reference}"),
            }),
        )
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
            if_none_match: None,
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

    /// The size of a blob as the registry announces it to a HEAD request, without
    /// downloading it; `None` when the answer has no `Content-Length`.
    pub async fn head_blob(
        &self,
        reference: &DockerImageReference,
        digest: &Digest,
        options: &FetchOptions,
    ) -> Result<Option<u64>, UpstreamError> {
        let what = format!("{}@{digest}", reference.as_repository().exact());
        self.each_endpoint(reference, |target| {
            let what = what.as_str();
            async move {
                let path = format!("/v2/{}/blobs/{digest}", target.repository);
                let call = self.call(&target, options, Method::HEAD, path, None, what);
                let Sent { response, .. } = self.inner.transport.send(&call).await?;
                let status = response.status();
                let headers = response.headers().clone();
                if !status.is_success() {
                    return Err(status_error(status, &headers, b"", what, "blob"));
                }
                Ok(content_length(&headers))
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
        match self.list_tags_if_changed(reference, options, None).await? {
            TagListAnswer::Changed { list, .. } => Ok(list),
            // Not asked conditionally, so a 304 is the registry's mistake.
            TagListAnswer::NotModified => Err(UpstreamError::InvalidContent {
                target: reference.as_repository().exact(),
                message: "304 Not Modified to an unconditional tag list request".into(),
            }),
        }
    }

    /// Lists the tags like [`list_tags`](Self::list_tags), conditionally: with
    /// `etag` (from an earlier answer) the first page is asked with `If-None-Match`,
    /// and a `304 Not Modified` ends the listing at one request. The first page's
    /// `ETag`, if the registry sends one, comes back with a changed list. (CNCF
    /// distribution 2.8 sends none: there the caller compares lists.)
    pub async fn list_tags_if_changed(
        &self,
        reference: &DockerImageReference,
        options: &FetchOptions,
        etag: Option<&str>,
    ) -> Result<TagListAnswer, UpstreamError> {
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
                let mut first_etag = None;
                for page_number in 0..MAX_TAG_PAGES {
                    let mut call = self.call(
                        &target,
                        options,
                        Method::GET,
                        path.clone(),
                        Some("application/json"),
                        what,
                    );
                    if page_number == 0 {
                        call.if_none_match = etag;
                    }
                    let sent = self.inner.transport.send(&call).await?;
                    scheme = sent.scheme;
                    let response = sent.response;
                    let status = response.status();
                    let headers = response.headers().clone();
                    if page_number == 0 {
                        if status == StatusCode::NOT_MODIFIED && etag.is_some() {
                            return Ok(TagListAnswer::NotModified);
                        }
                        first_etag = headers
                            .get(reqwest::header::ETAG)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string);
                    }
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
                            return Ok(TagListAnswer::Changed {
                                list: TagList {
                                    tags,
                                    served_by: Endpoint::new(&target, scheme),
                                },
                                etag: first_etag,
                                pages: page_number + 1,
                            });
                        }
                    }
                }
                tracing::warn!(repository = %what, "tag list longer than {MAX_TAG_PAGES} pages; truncated");
                Ok(TagListAnswer::Changed {
                    list: TagList {
                        tags,
                        served_by: Endpoint::new(&target, scheme),
                    },
                    etag: first_etag,
                    pages: MAX_TAG_PAGES,
                })
            }
        })
        .await
    }
}

impl UpstreamClient {
    /// The OCI 1.1 referrers index of manifest `digest` in `reference`'s repository
    /// (`GET /v2/<name>/referrers/<digest>`, asked with `artifactType` when given; the
    /// caller filters too, since a registry may ignore it). `None` when the registry
    /// answers 404: it has no referrers API (distribution 2.8) or no such repository.
    pub async fn fetch_referrers(
        &self,
        reference: &DockerImageReference,
        digest: &Digest,
        artifact_type: Option<&str>,
        options: &FetchOptions,
    ) -> Result<Option<Bytes>, UpstreamError> {
        let what = reference.as_repository().exact();
        self.each_endpoint(reference, |target| {
            let what = what.as_str();
            async move {
                let mut path = format!("/v2/{}/referrers/{digest}", target.repository);
                if let Some(t) = artifact_type {
                    path.push_str("?artifactType=");
                    path.extend(form_urlencoded::byte_serialize(t.as_bytes()));
                }
                let call = self.call(
                    &target,
                    options,
                    Method::GET,
                    path,
                    Some("application/vnd.oci.image.index.v1+json"),
                    what,
                );
                let response = self.inner.transport.send(&call).await?.response;
                let status = response.status();
                if status == StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                let headers = response.headers().clone();
                if !status.is_success() {
                    return Err(error_from(response, status, &headers, what, "referrers").await);
                }
                read_capped(response, MAX_TAG_PAGE_BYTES, what, "referrers index")
                    .await
                    .map(Some)
            }
        })
        .await
    }
}

/// The answer to a conditional tag list request.
#[derive(Clone, Debug)]
pub enum TagListAnswer {
    /// `304 Not Modified`: the list is what the ETag named.
    NotModified,
    /// The list (all pages), the first page's `ETag` if any, and the pages read.
    Changed {
        list: TagList,
        etag: Option<String>,
        pages: usize,
    },
}

/// One endpoint's failed answer, for [`all_failed`].
struct Failure {
    /// `registry/repository` as contacted.
    endpoint: String,
    mirror: bool,
    error: UpstreamError,
}

impl Failure {
    /// `mirror HOST/REPO: MESSAGE` or `source HOST/REPO: MESSAGE`.
    fn describe(&self) -> String {
        let kind = if self.mirror { "mirror" } else { "source" };
        format!("{kind} {}: {}", self.endpoint, self.error.message())
    }
}

/// The error of a request every endpoint failed (`None` for no endpoint). A definite
/// answer (not found, unauthorized, forbidden, refused content: anything not
/// [transient](UpstreamError::is_transient)) from any endpoint is what the request
/// failed with, as that endpoint said it, even when another only failed to answer:
/// its message leads with that endpoint, and the others' failures follow. With no
/// definite answer, the source's (last) error, with the mirrors' failures appended.
/// A single endpoint's error is returned as it is.
fn all_failed(mut failures: Vec<Failure>) -> Option<UpstreamError> {
    if failures.len() <= 1 {
        return failures.pop().map(|f| f.error);
    }
    match failures.iter().position(|f| !f.error.is_transient()) {
        Some(i) => {
            let definite = failures.remove(i);
            let others: Vec<String> = failures.iter().map(Failure::describe).collect();
            let lead = if definite.mirror { "mirror" } else { "source" };
            Some(
                definite
                    .error
                    .with_prefix(&format!("{lead} {}: ", definite.endpoint))
                    .with_note(&format!("also tried: {}", others.join("; "))),
            )
        }
        None => {
            let source = failures.pop()?;
            let notes: Vec<String> = failures.iter().map(Failure::describe).collect();
            Some(
                source
                    .error
                    .with_note(&format!("tried first: {}", notes.join("; "))),
            )
        }
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
