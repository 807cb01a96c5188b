//! The integrated registry: OCI distribution-spec v1.1 under `/v2/`, on the API's
//! listener. Repositories are image streams (`<namespace>/<stream>`): a tag serves
//! the stream tag's newest image, a digest only what the stream's history (or a push
//! into it) holds. Content missing from the cache is pulled through from the image's
//! source and verified while it streams. Pushes add tag events as ImageStreamMappings
//! do. Every request is authenticated (Basic with the token as password, or a bearer
//! token from `/openshift/token`); anonymous pulls only with `--registry-anonymous-pull`.
//! Garbage collection ([`prune`]) removes old history, Images no stream names and the
//! blobs no remaining image needs.
//!
//! May call the catalog port (streams, images, pull secrets), the upstream client and
//! the filesystem (through [`storage`]).

pub mod auth;
mod blobs;
mod content;
pub mod decoded_streams;
mod deletions;
pub mod driver;
pub mod error;
pub mod links;
mod manifests;
pub mod prune;
pub mod pullthrough;
pub mod repos;
pub mod sigmirror;
pub mod storage;
mod uploads;

pub use self::uploads::UploadLimits;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use moor_api::Digest;
use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;
use serde_json::json;

use self::error::{Code, RegistryError};
use self::pullthrough::PullThrough;
use self::repos::{RepoName, Repositories};
use self::storage::BlobStore;
use crate::auth::AuthLayer;
use crate::catalog::Catalog;
use crate::upstream::UpstreamClient;

/// `Docker-Distribution-API-Version`, sent on every answer as distribution does.
const API_VERSION: &str = "registry/2.0";
/// Default and largest page of tag lists and the catalog.
const MAX_PAGE: usize = 1000;

/// Settings of the registry.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// Where blobs and uploads live (`<data-dir>/registry`).
    pub root: PathBuf,
    /// `--blob-store`: `file://PATH` keeps everything under PATH instead of `root`;
    /// `s3://...` keeps the content of blobs in S3 (`root` keeps uploads in progress;
    /// what each repository was given goes to the shared store, see
    /// [`Registry::share_through`]). `None`: files under `root`.
    pub blob_store: Option<driver::BlobStoreUrl>,
    /// S3 credentials (access key id, secret); `None`: the AWS environment's.
    pub s3_credentials: Option<(String, String)>,
    /// `host:port` that names this registry in pull specs.
    pub hostname: String,
    /// Whether clients reach moor over TLS (the token realm's scheme).
    pub tls: bool,
    /// `--registry-anonymous-pull`: GET and HEAD without credentials.
    pub anonymous_pull: bool,
    /// Caps and idle expiry of upload sessions.
    pub uploads: UploadLimits,
}

/// The registry's shared state.
pub struct Registry {
    pub config: RegistryConfig,
    pub blobs: BlobStore,
    /// Where the content of blobs lives when it is not `blobs` (`--blob-store s3://`).
    pub remote: Option<Arc<dyn driver::BlobDriver>>,
    /// What each repository was given (links and referrers): files under `blobs`, or
    /// keys in the shared store when blobs live in a driver.
    pub links: links::Links,
    pub repos: Repositories,
    pub pull: PullThrough,
    pub(crate) uploads: uploads::Uploads,
    /// Upload sessions every replica serves, when blobs live in a driver and the
    /// store is shared ([`share_through`](Self::share_through)).
    pub(crate) shared_uploads: Option<uploads::SharedUploads>,
    /// Manifests read lately, kept in memory.
    pub(crate) manifest_cache: manifests::ManifestCache,
    pub auth: AuthLayer,
    /// Manifests pushed.
    pub pushes: Counter,
    /// Garbage collection against pushes: a push holds it shared while it checks what
    /// the repository has and records what it adds (a blob committed and linked, a
    /// mount, a manifest stored, imaged and tagged); [`prune`] holds it exclusively
    /// while it decides and deletes. Pulls never take it.
    pub(crate) gc: tokio::sync::RwLock<()>,
}

impl Registry {
    /// Opens the registry's storage under `config.root`.
    pub fn new(
        config: RegistryConfig,
        catalog: Arc<dyn Catalog>,
        client: UpstreamClient,
        auth: AuthLayer,
    ) -> Result<Self, driver::DriverError> {
        let (blobs, remote) = content::open(&config)?;
        client.set_manifest_hook(content::manifest_hook(&blobs, &remote));
        let links = links::Links::files(blobs.clone());
        Ok(Registry {
            repos: Repositories::new(catalog, links.clone(), &config.hostname),
            links,
            pull: PullThrough::new(client, blobs.clone()).with_remote(remote.clone()),
            uploads: uploads::Uploads::open(config.uploads.clone(), blobs.clone()),
            shared_uploads: None,
            manifest_cache: manifests::ManifestCache::default(),
            blobs,
            remote,
            config,
            auth,
            pushes: Counter::default(),
            gc: tokio::sync::RwLock::new(()),
        })
    }

    /// Shares what replicas must agree on through `store` (the store every replica
    /// opens), when blobs live in a driver all of them reach (`--blob-store s3://`):
    /// upload sessions, so that any replica serves any session, pull-through
    /// fetches, so that one replica fetches each blob for all, and what each
    /// repository was given ([`links`]), so that every replica serves it. Without a
    /// driver (blobs on this replica's disk) nothing changes.
    pub fn share_through(mut self, store: std::sync::Arc<dyn moor_store::Store>) -> Self {
        self.pull.share_through(store.clone());
        if let Some(remote) = &self.remote {
            self.links = links::Links::shared(store.clone());
            self.repos.set_links(self.links.clone());
            self.shared_uploads = Some(uploads::SharedUploads::new(
                store,
                remote.clone(),
                self.config.uploads.clone(),
            ));
        }
        self
    }

    /// Forgets idle upload sessions periodically, for as long as the registry lives.
    pub fn spawn_upload_reaper(self: &Arc<Self>) {
        let registry = Arc::downgrade(self);
        let period = self.uploads.reap_period();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(r) = registry.upgrade() else {
                    return;
                };
                r.uploads.reap();
                if let Some(shared) = &r.shared_uploads {
                    shared.reap().await;
                }
            }
        });
    }

    /// Removes the links of image streams as they are deleted, for as long as the
    /// registry lives.
    pub fn spawn_stream_cleanup(self: &Arc<Self>) {
        tokio::spawn(self.stream_cleanup());
    }

    /// What [`spawn_stream_cleanup`](Self::spawn_stream_cleanup) runs, for a caller
    /// that starts and stops it (the leader's controllers).
    pub fn stream_cleanup(self: &Arc<Self>) -> impl Future<Output = ()> + Send + use<> {
        deletions::follow(Arc::downgrade(self))
    }

    /// Upload sessions open now.
    pub fn upload_sessions(&self) -> usize {
        self.uploads.len()
    }

    /// Registers the registry's counters.
    pub fn register_metrics(&self, metrics: &crate::metrics::Metrics) {
        metrics.register(
            "registry_pullthrough_blob_fetches",
            "Blob downloads started from upstream registries by pull-through",
            self.pull.blob_fetches.clone(),
        );
        metrics.register(
            "registry_pullthrough_blob_bytes",
            "Bytes of blobs received from upstream registries by pull-through",
            self.pull.blob_bytes.clone(),
        );
        metrics.register(
            "registry_manifest_pushes",
            "Manifests pushed to the registry",
            self.pushes.clone(),
        );
    }
}

/// The `/v2/` routes and the token endpoint.
pub fn router(registry: Arc<Registry>) -> Router {
    let v2 = Router::new()
        .route("/v2/", get(base))
        .route("/v2", get(base))
        .route("/v2/{*path}", axum::routing::any(dispatch))
        .layer(middleware::from_fn_with_state(
            registry.clone(),
            auth::require,
        ))
        .layer(middleware::map_response(api_version_header));
    Router::new()
        .route(auth::TOKEN_PATH, get(auth::token).post(auth::token))
        .merge(v2)
        .with_state(registry)
}

/// Routes a `/v2/...` request by its segments, the way distribution's router does:
/// repository names here are always `<namespace>/<stream>`, and a path that fits no
/// endpoint gets an OCI error body (NAME_INVALID when it names a deeper repository).
/// Routes a `/v2/` request, inside a span naming the repository (`namespace`,
/// `stream`) and what is asked of it (`manifests`/`blobs` and the tag or digest), so
/// that pull-through, uploads and their logs say which stream they serve.
async fn dispatch(
    state: State<Arc<Registry>>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    caller: Option<axum::Extension<auth::Caller>>,
    body: axum::body::Body,
) -> Response {
    use tracing::Instrument;
    let mut parts = uri.path().trim_start_matches("/v2/").splitn(4, '/');
    let span = tracing::info_span!(
        "registry",
        method = %method,
        namespace = %parts.next().unwrap_or_default(),
        stream = %parts.next().unwrap_or_default(),
        kind = %parts.next().unwrap_or_default(),
        reference = %parts.next().unwrap_or_default(),
    );
    route(state, method, uri, headers, caller, body)
        .instrument(span)
        .await
}

async fn route(
    State(reg): State<Arc<Registry>>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    caller: Option<axum::Extension<auth::Caller>>,
    body: axum::body::Body,
) -> Response {
    let path = uri.path().trim_start_matches("/v2/").to_string();
    let segs: Vec<String> = path.split('/').map(percent_decode).collect();
    let seg: Vec<&str> = segs.iter().map(String::as_str).collect();
    let st = State(reg.clone());
    macro_rules! query {
        ($t:ty) => {
            match Query::<$t>::try_from_uri(&uri) {
                Ok(q) => q,
                Err(e) => {
                    return RegistryError::new(Code::Unsupported, format!("bad query: {e}"))
                        .status(StatusCode::BAD_REQUEST)
                        .into_response();
                }
            }
        };
    }
    let owned = |i: usize| seg[i].to_string();
    let r = match (&method, seg.as_slice()) {
        (&Method::GET, ["_catalog"]) => catalog(st, query!(Page)).await,
        (m, [_, _, "manifests", _]) => {
            let p = Path((owned(0), owned(1), owned(3)));
            match *m {
                Method::GET => manifests::get(st, p).await,
                Method::HEAD => manifests::head(st, p).await,
                Method::PUT => manifests::put(st, p, headers, body).await,
                Method::DELETE => manifests::delete(st, p).await,
                _ => Err(not_allowed(&method)),
            }
        }
        (m, [_, _, "blobs", "uploads"] | [_, _, "blobs", "uploads", ""]) => match *m {
            Method::POST => {
                uploads::start(
                    st,
                    Path((owned(0), owned(1))),
                    query!(uploads::StartQuery),
                    caller,
                    headers,
                    body,
                )
                .await
            }
            _ => Err(not_allowed(&method)),
        },
        (m, [_, _, "blobs", "uploads", _]) => {
            let p = Path((owned(0), owned(1), owned(4)));
            match *m {
                Method::GET => uploads::status(st, p).await,
                Method::PATCH => uploads::patch(st, p, headers, body).await,
                Method::PUT => {
                    uploads::finish(st, p, query!(uploads::FinishQuery), headers, body).await
                }
                Method::DELETE => uploads::cancel(st, p).await,
                _ => Err(not_allowed(&method)),
            }
        }
        (m, [_, _, "blobs", _]) => {
            let p = Path((owned(0), owned(1), owned(3)));
            match *m {
                Method::GET => blobs::get(st, p, headers).await,
                Method::HEAD => blobs::head(st, p, headers).await,
                Method::DELETE => blobs::delete(st, p).await,
                _ => Err(not_allowed(&method)),
            }
        }
        (&Method::GET, [_, _, "tags", "list"]) => {
            tags_list(st, Path((owned(0), owned(1))), query!(Page)).await
        }
        (&Method::GET, [_, _, "referrers", _]) => {
            referrers(
                st,
                Path((owned(0), owned(1), owned(3))),
                query!(ReferrersQuery),
            )
            .await
        }
        _ => Err(unknown_route(&seg)),
    };
    r.unwrap_or_else(IntoResponse::into_response)
}

fn not_allowed(method: &Method) -> RegistryError {
    RegistryError::new(
        Code::Unsupported,
        format!("the method {method} is not supported here"),
    )
}

/// A path segment with `%XX` escapes decoded (a `%2F` stays inside its segment, where
/// name validation refuses it).
pub(super) fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn api_version_header(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static(API_VERSION),
    );
    resp
}

async fn base() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        "{}",
    )
}

/// A path under `/v2/` no endpoint matched: a repository name that is not
/// `<namespace>/<stream>`, or an unknown endpoint.
fn unknown_route(seg: &[&str]) -> RegistryError {
    for marker in ["manifests", "blobs", "tags", "referrers"] {
        if let Some(i) = seg.iter().position(|s| *s == marker)
            && i != 2
        {
            let name = seg[..i].join("/");
            return RegistryError::new(
                Code::NameInvalid,
                format!(
                    "invalid repository name {name:?}: repositories in moor are <namespace>/<image stream>"
                ),
            )
            .detail(json!({ "name": name }));
        }
    }
    RegistryError::new(
        Code::Unsupported,
        format!("no such endpoint: /v2/{}", seg.join("/")),
    )
    .status(StatusCode::NOT_FOUND)
}

/// `?n=&last=` of tag lists and the catalog.
#[derive(Deserialize, Default)]
struct Page {
    n: Option<usize>,
    last: Option<String>,
}

/// One page of sorted `names` after `page.last`, and the `Link` to the next page.
fn paginate(names: Vec<String>, page: &Page, path: &str) -> (Vec<String>, Option<String>) {
    let n = page.n.unwrap_or(MAX_PAGE).min(MAX_PAGE);
    let start = match &page.last {
        Some(last) => names.partition_point(|t| t <= last),
        None => 0,
    };
    let rest = &names[start.min(names.len())..];
    let out: Vec<String> = rest.iter().take(n).cloned().collect();
    let link = (rest.len() > n && n > 0).then(|| {
        let last = out.last().cloned().unwrap_or_default();
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("n", &n.to_string())
            .append_pair("last", &last)
            .finish();
        format!("<{path}?{query}>; rel=\"next\"")
    });
    (out, link)
}

fn paged_json(body: serde_json::Value, link: Option<String>) -> Response {
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Some(l) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LINK, l);
    }
    resp
}

async fn catalog(
    State(reg): State<Arc<Registry>>,
    Query(page): Query<Page>,
) -> Result<Response, RegistryError> {
    let names = reg.repos.repository_names().await?;
    let (out, link) = paginate(names, &page, "/v2/_catalog");
    Ok(paged_json(json!({ "repositories": out }), link))
}

async fn tags_list(
    State(reg): State<Arc<Registry>>,
    Path((ns, stream)): Path<(String, String)>,
    Query(page): Query<Page>,
) -> Result<Response, RegistryError> {
    let repo = RepoName::parse(&ns, &stream)?;
    let s = reg.repos.require_stream(&repo).await?;
    let mut tags: Vec<String> = s
        .status
        .tags
        .iter()
        .filter(|t| !t.items.is_empty())
        .map(|t| t.tag.clone())
        .collect();
    tags.sort();
    let (out, link) = paginate(tags, &page, &format!("/v2/{repo}/tags/list"));
    Ok(paged_json(
        json!({ "name": repo.to_string(), "tags": out }),
        link,
    ))
}

#[derive(Deserialize, Default)]
struct ReferrersQuery {
    #[serde(rename = "artifactType")]
    artifact_type: Option<String>,
}

/// `GET /v2/<name>/referrers/<digest>`: an image index of the manifests pushed into
/// the repository (or mirrored into it at import) whose `subject` is the digest
/// (empty when there are none).
async fn referrers(
    State(reg): State<Arc<Registry>>,
    Path((ns, stream, digest)): Path<(String, String, String)>,
    Query(q): Query<ReferrersQuery>,
) -> Result<Response, RegistryError> {
    let repo = RepoName::parse(&ns, &stream)?;
    let digest = parse_digest(&digest)?;
    let manifests = sigmirror::referrers(
        &reg,
        &repo.namespace,
        &repo.stream,
        &digest,
        q.artifact_type.as_deref(),
    )
    .await?;
    let body = json!({
        "schemaVersion": 2,
        "mediaType": moor_api::media_types::OCI_INDEX,
        "manifests": manifests,
    });
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, moor_api::media_types::OCI_INDEX)],
        body.to_string(),
    )
        .into_response();
    if q.artifact_type.is_some() {
        resp.headers_mut().insert(
            "oci-filters-applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(resp)
}

/// A digest from a path or query, or DIGEST_INVALID.
fn parse_digest(s: &str) -> Result<Digest, RegistryError> {
    Digest::parse(s).map_err(|e| {
        RegistryError::new(Code::DigestInvalid, format!("invalid digest {s:?}: {e}"))
            .detail(json!({ "digest": s }))
    })
}

/// The header `name` as text.
fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_last_and_link_to_the_next() {
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let (p, link) = paginate(
            names.clone(),
            &Page {
                n: Some(2),
                last: None,
            },
            "/v2/x/y/tags/list",
        );
        assert_eq!(p, ["a", "b"]);
        assert_eq!(
            link.as_deref(),
            Some("</v2/x/y/tags/list?n=2&last=b>; rel=\"next\"")
        );
        let (p, link) = paginate(
            names.clone(),
            &Page {
                n: Some(2),
                last: Some("b".into()),
            },
            "/p",
        );
        assert_eq!(p, ["c", "d"]);
        assert_eq!(link, None);
        let (p, _) = paginate(
            names,
            &Page {
                n: None,
                last: Some("bb".into()),
            },
            "/p",
        );
        assert_eq!(p, ["c", "d"]);
    }
}
