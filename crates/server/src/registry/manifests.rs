//! `/v2/<ns>/<stream>/manifests/<reference>`: GET and HEAD by tag (the stream tag's
//! newest image) or by digest (an image the stream holds), served byte-exact from the
//! cache or pulled through (a signature mirrored at import by its cosign tag too,
//! see [`super::sigmirror`]); PUT (a push: the manifest is checked against the blobs
//! the repository has, stored as pushed, and tagged as an ImageStreamMapping would);
//! DELETE by digest (out of the stream's history) or by tag.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use moor_api::image::{Image, ImageStream};
use moor_api::{Digest, DockerImageReference, media_types};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{Code, RegistryError};
use super::repos::{Origin, RepoName};
use super::storage::LinkKind;
use super::{Registry, parse_digest};
use crate::catalog::{Catalog, StreamPart};
use crate::importer::image::{FetchedManifest, Parsed};
use crate::upstream::MAX_MANIFEST_BYTES;

/// The OS and architecture recorded for an index entry without a platform.
const UNKNOWN_PLATFORM: &str = "unknown";

/// A tag or a digest.
enum Reference {
    Tag(String),
    Digest(Digest),
}

fn parse_reference(s: &str) -> Result<Reference, RegistryError> {
    if s.contains(':') {
        return parse_digest(s).map(Reference::Digest);
    }
    if !moor_api::reference::is_valid_tag(s) {
        return Err(
            RegistryError::new(Code::ManifestInvalid, format!("invalid tag {s:?}"))
                .detail(json!({ "tag": s })),
        );
    }
    Ok(Reference::Tag(s.to_string()))
}

/// The fields that tell a manifest's kind.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shape {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde::de::IgnoredAny>,
}

/// The media type of stored manifest bytes: the body's `mediaType`, else by shape.
pub fn media_type_of(bytes: &[u8]) -> String {
    match serde_json::from_slice::<Shape>(bytes) {
        Ok(Shape {
            media_type: Some(t),
            ..
        }) if !t.is_empty() => t,
        Ok(Shape {
            manifests: Some(_), ..
        }) => media_types::OCI_INDEX.to_string(),
        _ => media_types::OCI_MANIFEST.to_string(),
    }
}

struct Found {
    digest: Digest,
    bytes: Bytes,
    media_type: String,
}

/// The most manifests kept in memory, and the largest one kept.
const MANIFEST_CACHE_ENTRIES: usize = 1024;
const MANIFEST_CACHE_MAX_BYTES: usize = 64 * 1024;

/// Manifests by digest, with their media types, kept in memory: content never
/// changes under a digest, and reading the file for every GET meant a trip to the
/// blocking pool and a JSON parse (for the media type) per request. Which digest a
/// tag serves, and whether the stream may serve it, is still decided per request.
#[derive(Default)]
pub(crate) struct ManifestCache {
    map: Mutex<HashMap<Digest, (Bytes, String)>>,
}

impl ManifestCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, (Bytes, String)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, digest: &Digest) -> Option<(Bytes, String)> {
        self.lock().get(digest).cloned()
    }

    fn put(&self, digest: &Digest, bytes: &Bytes, media_type: &str) {
        if bytes.len() > MANIFEST_CACHE_MAX_BYTES {
            return;
        }
        let mut map = self.lock();
        if map.len() >= MANIFEST_CACHE_ENTRIES {
            map.clear();
        }
        map.insert(digest.clone(), (bytes.clone(), media_type.to_string()));
    }
}

async fn find(reg: &Registry, repo: &RepoName, reference: &str) -> Result<Found, RegistryError> {
    let reference = parse_reference(reference)?;
    let stream = reg.repos.stream(repo).await?;
    let (digest, origin) = match (&reference, &stream) {
        (Reference::Tag(tag), Some(s)) => match reg.repos.tag_image(s, tag) {
            Some(found) => found,
            // A signature mirrored at import (`sha256-<hex>.sig`), not a tag of the
            // stream: served from moor only.
            None => super::sigmirror::tagged(reg, &repo.namespace, &repo.stream, tag)
                .await?
                .map(|d| {
                    (
                        d,
                        Origin {
                            repository: None,
                            insecure: false,
                        },
                    )
                })
                .ok_or_else(|| RegistryError::manifest_unknown(tag))?,
        },
        (Reference::Digest(d), Some(s)) => {
            let origin = reg
                .repos
                .manifest_origin(repo, s, d)
                .await?
                .ok_or_else(|| RegistryError::manifest_unknown(d.as_str()))?;
            (d.clone(), origin)
        }
        (Reference::Digest(d), None)
            if reg
                .links
                .is_linked(&repo.namespace, &repo.stream, LinkKind::Manifest, d)
                .await? =>
        {
            (
                d.clone(),
                Origin {
                    repository: None,
                    insecure: false,
                },
            )
        }
        _ => return Err(RegistryError::name_unknown(&repo.to_string())),
    };
    if let Some((bytes, media_type)) = reg.manifest_cache.get(&digest) {
        return Ok(Found {
            digest,
            bytes,
            media_type,
        });
    }
    if let Some(bytes) = reg.content_read(&digest).await? {
        let media_type = media_type_of(&bytes);
        reg.manifest_cache.put(&digest, &bytes, &media_type);
        return Ok(Found {
            media_type,
            digest,
            bytes,
        });
    }
    let Some(upstream) = &origin.repository else {
        return Err(RegistryError::manifest_unknown(digest.as_str()));
    };
    let opts = pull_options(reg, &repo.namespace, origin.insecure).await;
    let (bytes, media_type) = reg.pull.manifest(upstream, &digest, opts).await?;
    Ok(Found {
        digest,
        bytes,
        media_type,
    })
}

/// The upstream fetch options of a pull in `namespace`.
pub(super) async fn pull_options(
    reg: &Registry,
    namespace: &str,
    insecure: bool,
) -> crate::upstream::FetchOptions {
    let pull = reg.repos.pull_options(namespace, insecure).await;
    crate::importer::source::fetch_options(&pull)
}

fn headers_of(found: &Found) -> [(header::HeaderName, HeaderValue); 3] {
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_str(&found.media_type)
                .unwrap_or(HeaderValue::from_static(media_types::OCI_MANIFEST)),
        ),
        (
            header::HeaderName::from_static("docker-content-digest"),
            HeaderValue::from_str(found.digest.as_str()).expect("a digest is a header value"),
        ),
        (
            header::ETAG,
            HeaderValue::from_str(&format!("\"{}\"", found.digest))
                .expect("a digest is a header value"),
        ),
    ]
}

pub(super) async fn get(
    State(reg): State<Arc<Registry>>,
    Path((ns, stream, reference)): Path<(String, String, String)>,
) -> Result<Response, RegistryError> {
    let repo = RepoName::parse(&ns, &stream)?;
    let found = find(&reg, &repo, &reference).await?;
    Ok((headers_of(&found), found.bytes).into_response())
}

pub(super) async fn head(
    State(reg): State<Arc<Registry>>,
    Path((ns, stream, reference)): Path<(String, String, String)>,
) -> Result<Response, RegistryError> {
    let repo = RepoName::parse(&ns, &stream)?;
    let found = find(&reg, &repo, &reference).await?;
    let mut resp = (headers_of(&found), Body::empty()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(found.bytes.len() as u64),
    );
    Ok(resp)
}

/// Reads a request body of at most `limit` bytes.
pub(super) async fn read_limited(body: Body, limit: u64) -> Result<Bytes, RegistryError> {
    axum::body::to_bytes(body, limit as usize)
        .await
        .map_err(|e| {
            RegistryError::new(
                Code::SizeInvalid,
                format!("the body is larger than {limit} bytes or unreadable: {e}"),
            )
            .status(StatusCode::PAYLOAD_TOO_LARGE)
        })
}

pub(super) async fn put(
    State(reg): State<Arc<Registry>>,
    Path((ns, stream, reference)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, RegistryError> {
    let repo = RepoName::parse(&ns, &stream)?;
    let reference = parse_reference(&reference)?;
    let bytes = read_limited(body, MAX_MANIFEST_BYTES).await?;
    let digest = match &reference {
        Reference::Digest(d) => {
            if !d.matches(&bytes) {
                return Err(RegistryError::new(
                    Code::DigestInvalid,
                    format!(
                        "the manifest's digest is {}, not {d}",
                        d.of_same_algorithm(&bytes)
                    ),
                )
                .detail(json!({ "digest": d.as_str() })));
            }
            d.clone()
        }
        Reference::Tag(_) => Digest::sha256_of(&bytes),
    };
    let content_type = super::header_str(&headers, "content-type").unwrap_or("");
    let fetched = FetchedManifest {
        bytes: bytes.clone(),
        media_type: content_type.to_string(),
        digest: digest.clone(),
    };
    let media_type = crate::importer::image::effective_media_type(&fetched);
    let parsed = crate::importer::image::parse(&fetched)
        .map_err(|e| RegistryError::new(Code::ManifestInvalid, e.message()))?;
    // From the check of what the repository has to the tag event, a prune waits.
    let _gc = reg.gc.read().await;
    let stream_obj = reg.repos.stream(&repo).await?;
    let image = build_image(&reg, &repo, stream_obj.as_deref(), &fetched, &parsed).await?;
    reg.content_put(&digest, bytes.clone()).await?;
    reg.links
        .link(&repo.namespace, &repo.stream, LinkKind::Manifest, &digest)
        .await?;
    let subject = subject_of(&bytes);
    if let Some(subject) = &subject {
        let descriptor = referrer_descriptor(&bytes, &media_type, &digest);
        reg.links
            .add_referrer(
                &repo.namespace,
                &repo.stream,
                subject,
                &digest,
                descriptor.to_string().as_bytes(),
            )
            .await?;
    }
    let catalog = reg.repos.catalog();
    match &reference {
        Reference::Tag(tag) => {
            crate::signatures::push::check_push(&reg, &repo.namespace, &repo.stream, tag, &digest)
                .await?;
            catalog
                .tag_pushed(&repo.namespace, &repo.stream, tag, &image)
                .await
                .map_err(|e| push_error(&repo, e))?;
        }
        Reference::Digest(_) => {
            catalog
                .store_images(std::slice::from_ref(&image))
                .await
                .map_err(|e| push_error(&repo, e))?;
        }
    }
    reg.pushes.inc();
    let mut resp = (
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/v2/{repo}/manifests/{digest}")),
            (
                header::HeaderName::from_static("docker-content-digest"),
                digest.to_string(),
            ),
        ],
    )
        .into_response();
    if let Some(s) = subject
        && let Ok(v) = HeaderValue::from_str(s.as_str())
    {
        resp.headers_mut().insert("oci-subject", v);
    }
    Ok(resp)
}

fn push_error(repo: &RepoName, e: moor_apimachinery::error::ApiError) -> RegistryError {
    use moor_apimachinery::error::ApiError;
    match e {
        ApiError::NotFound { .. } => RegistryError::new(
            Code::NameUnknown,
            format!(
                "namespace {:?} does not exist: create it first (moor create namespace {})",
                repo.namespace, repo.namespace
            ),
        ),
        ApiError::Forbidden(reason) => RegistryError::new(Code::Denied, reason),
        // The Image the manifest makes is refused: the manifest's fault, not ours.
        e @ ApiError::Invalid { .. } => RegistryError::new(Code::ManifestInvalid, e.to_string()),
        other => RegistryError::internal(other),
    }
}

/// The `subject` of a manifest, if it names a valid digest.
fn subject_of(bytes: &[u8]) -> Option<Digest> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    Digest::parse(v.pointer("/subject/digest")?.as_str()?).ok()
}

/// The descriptor the referrers API lists for a manifest: its artifact type (the
/// `artifactType`, else the config's media type) and annotations.
pub(super) fn referrer_descriptor(bytes: &[u8], media_type: &str, digest: &Digest) -> Value {
    let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let mut d = json!({
        "mediaType": media_type,
        "digest": digest.as_str(),
        "size": bytes.len(),
    });
    let artifact_type = v
        .get("artifactType")
        .or_else(|| v.pointer("/config/mediaType"))
        .cloned();
    if let Some(t) = artifact_type {
        d["artifactType"] = t;
    }
    if let Some(a) = v.get("annotations") {
        d["annotations"] = a.clone();
    }
    d
}

/// MANIFEST_INVALID when a descriptor's declared `size` differs from the size of
/// the content moor holds for its digest (content only upstream is not checked).
async fn check_size(
    reg: &Registry,
    what: &str,
    digest: &Digest,
    declared: u64,
) -> Result<(), RegistryError> {
    match reg.content_stat(digest).await? {
        Some(actual) if actual != declared => Err(RegistryError::new(
            Code::ManifestInvalid,
            format!("the manifest declares {what} {digest} as {declared} bytes; it has {actual}"),
        )
        .detail(json!({ "digest": digest.as_str(), "size": declared }))),
        _ => Ok(()),
    }
}

/// The Image of a pushed manifest, after checking that the repository has every
/// blob (or child manifest) it names: MANIFEST_BLOB_UNKNOWN otherwise.
async fn build_image(
    reg: &Registry,
    repo: &RepoName,
    stream: Option<&ImageStream>,
    fetched: &FetchedManifest,
    parsed: &Parsed,
) -> Result<Image, RegistryError> {
    let source = DockerImageReference::parse(&format!(
        "{}/{}/{}",
        reg.config.hostname, repo.namespace, repo.stream
    ))
    .map_err(RegistryError::internal)?;
    let missing = |what: &str, d: &str| {
        RegistryError::new(
            Code::ManifestBlobUnknown,
            format!("the manifest names {what} {d}, which the repository does not have"),
        )
        .detail(json!({ "digest": d }))
    };
    match parsed {
        Parsed::Image(m) => {
            let config = crate::importer::image::config_digest(m)
                .map_err(|e| RegistryError::new(Code::ManifestInvalid, e.message()))?;
            for layer in m.layers() {
                let d = parse_digest(layer.digest().as_ref())?;
                if reg.repos.blob_origin(repo, stream, &d).await?.is_none()
                    && !media_types::is_foreign_layer(layer.media_type().as_ref())
                {
                    return Err(missing("layer", d.as_str()));
                }
                check_size(reg, "layer", &d, layer.size()).await?;
            }
            if reg
                .repos
                .blob_origin(repo, stream, &config)
                .await?
                .is_none()
            {
                return Err(missing("config", config.as_str()));
            }
            check_size(reg, "config", &config, m.config().size()).await?;
            let config_bytes = reg
                .content_read(&config)
                .await?
                .ok_or_else(|| missing("config", config.as_str()))?;
            let mut image = if media_types::is_config(m.config().media_type().as_ref()) {
                crate::importer::image::image_from_manifest(&source, fetched, m, &config_bytes)
                    .map_err(|e| RegistryError::new(Code::ManifestInvalid, e.message()))?
            } else {
                crate::importer::image::image_from_artifact(&source, fetched, m)
            };
            image.docker_image_reference = crate::importer::image::pinned(&source, &fetched.digest);
            Ok(image)
        }
        Parsed::List(index) => {
            let mut children = crate::importer::image::children(index)
                .map_err(|e| RegistryError::new(Code::ManifestInvalid, e.message()))?;
            for c in &mut children {
                // An entry without a platform (a nested index, an artifact) is valid
                // OCI, but an Image's `dockerImageManifests` need an OS and an
                // architecture: name them `unknown`, as BuildKit does for entries
                // that run nowhere.
                for field in [&mut c.os, &mut c.architecture] {
                    if field.is_empty() {
                        *field = UNKNOWN_PLATFORM.to_string();
                    }
                }
            }
            for c in &children {
                let known = match stream {
                    Some(s) => reg
                        .repos
                        .manifest_origin(repo, s, &c.digest)
                        .await?
                        .is_some(),
                    None => {
                        reg.links
                            .is_linked(&repo.namespace, &repo.stream, LinkKind::Manifest, &c.digest)
                            .await?
                    }
                };
                if !known {
                    return Err(missing("manifest", c.digest.as_str()));
                }
                check_size(
                    reg,
                    "manifest",
                    &c.digest,
                    u64::try_from(c.size).unwrap_or(0),
                )
                .await?;
            }
            Ok(crate::importer::image::image_from_list(
                &source, fetched, &children,
            ))
        }
    }
}

pub(super) async fn delete(
    State(reg): State<Arc<Registry>>,
    Path((ns, stream, reference)): Path<(String, String, String)>,
) -> Result<Response, RegistryError> {
    let repo = RepoName::parse(&ns, &stream)?;
    let reference = parse_reference(&reference)?;
    // A tag needs its stream; a stream-less repository may still hold manifests
    // pushed by digest.
    if let Reference::Tag(_) = reference {
        reg.repos.require_stream(&repo).await?;
    }
    let catalog = reg.repos.catalog().clone();
    let (found, unlinked) = match &reference {
        Reference::Digest(d) => {
            let unlinked = reg
                .links
                .unlink(&repo.namespace, &repo.stream, LinkKind::Manifest, d)
                .await?;
            reg.links
                .remove_referrer(&repo.namespace, &repo.stream, d)
                .await?;
            let found = remove_from_stream(catalog.as_ref(), &repo, &[StreamPart::Status], |s| {
                let mut changed = false;
                for list in &mut s.status.tags {
                    let before = list.items.len();
                    list.items.retain(|e| e.image != d.as_str());
                    changed |= list.items.len() != before;
                }
                s.status.tags.retain(|t| !t.items.is_empty());
                changed
            })
            .await?;
            (found, unlinked)
        }
        Reference::Tag(tag) => {
            let found = remove_from_stream(
                catalog.as_ref(),
                &repo,
                &[StreamPart::Spec, StreamPart::Status],
                |s| {
                    let before = (s.spec.tags.len(), s.status.tags.len());
                    s.spec.tags.retain(|t| &t.name != tag);
                    s.status.tags.retain(|t| &t.tag != tag);
                    before != (s.spec.tags.len(), s.status.tags.len())
                },
            )
            .await?;
            (found, false)
        }
    };
    if !found && !unlinked {
        let what = match &reference {
            Reference::Digest(d) => d.to_string(),
            Reference::Tag(t) => t.clone(),
        };
        return Err(RegistryError::manifest_unknown(&what));
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Applies `change` to the stream through each of `parts` (retrying on conflicts);
/// returns whether it changed anything. A missing stream changes nothing.
async fn remove_from_stream(
    catalog: &dyn Catalog,
    repo: &RepoName,
    parts: &[StreamPart],
    change: impl Fn(&mut ImageStream) -> bool + Send + Sync,
) -> Result<bool, RegistryError> {
    let changed = std::sync::atomic::AtomicBool::new(false);
    let f = |s: &mut ImageStream| {
        changed.fetch_or(change(s), std::sync::atomic::Ordering::SeqCst);
        Ok(())
    };
    for &part in parts {
        let found = catalog
            .modify_stream(&repo.namespace, &repo.stream, part, &f)
            .await
            .map_err(RegistryError::internal)?;
        if !found {
            return Ok(false);
        }
    }
    Ok(changed.load(std::sync::atomic::Ordering::SeqCst))
}
