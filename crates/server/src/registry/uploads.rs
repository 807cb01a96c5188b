//! Blob uploads (distribution-spec "Pushing blobs"): `POST .../blobs/uploads/` opens a
//! session (or, with `?digest=`, takes the whole blob at once; with `?mount=&from=`,
//! links a blob the caller may read in another repository); `PATCH` appends a chunk,
//! which must start where the upload stands (else 416); `PUT ?digest=` closes it,
//! and the blob exists only if the bytes hash to that digest; `GET` tells the
//! progress; `DELETE` cancels. A session's bytes and state (repository, size, last
//! use) are kept under the data dir ([`BlobStore::session_writer`]), the state
//! replaced atomically after every request that changes it, so a client resumes its
//! upload after moor restarts; a session idle past the timeout is removed from disk,
//! at the next start as well.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use moor_api::Digest;
use moor_api::reference::DigestAlgorithm;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;

use super::auth::Caller;
use super::error::{Code, RegistryError};
use super::repos::RepoName;
use super::storage::{BlobStore, BlobWriter, LinkKind};
use super::{Registry, parse_digest};

mod shared;
pub(crate) use self::shared::SharedUploads;

/// Caps and idle expiry of upload sessions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadLimits {
    /// `--max-upload-sessions`: open sessions at most, all repositories together.
    pub max_sessions: usize,
    /// `--max-upload-sessions-per-repository`: open sessions at most in one repository.
    pub max_sessions_per_repository: usize,
    /// `--upload-session-idle-timeout`: a session with no request for this long is
    /// forgotten and its partial file removed.
    pub idle_timeout: Duration,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits {
            max_sessions: 1024,
            max_sessions_per_repository: 64,
            idle_timeout: Duration::from_secs(15 * 60),
        }
    }
}

/// One upload session. Between requests its writer is released: a waiting session
/// holds a partial file on disk but no descriptor.
struct Upload {
    repo: RepoName,
    writer: BlobWriter,
    /// When a request last finished with the session.
    touched: Instant,
}

impl Upload {
    /// Ends the session: its writer takes its file along when dropped.
    fn discard(mut self) {
        self.writer.discard_on_drop();
    }
}

/// What `sessions/<id>/state.json` holds: enough to serve the session again after a
/// restart. The bytes themselves are the session's `data` file.
#[derive(Serialize, Deserialize)]
struct SessionState {
    namespace: String,
    stream: String,
    /// Bytes acknowledged to the client; anything past it in `data` was not.
    size: u64,
    /// The last request, in milliseconds since the Unix epoch.
    touched_ms: u64,
}

type Session = Arc<tokio::sync::Mutex<Option<Upload>>>;

/// The open upload sessions, capped per repository and in all, forgotten when idle.
pub(crate) struct Uploads {
    limits: UploadLimits,
    store: BlobStore,
    sessions: Mutex<HashMap<String, (RepoName, Session)>>,
}

impl Uploads {
    /// The sessions `store` kept from before a restart, minus those idle for too long
    /// (removed from disk) or unreadable (removed too: the client starts again).
    pub(crate) fn open(limits: UploadLimits, store: BlobStore) -> Self {
        let mut map = HashMap::new();
        for id in store.session_ids() {
            match Self::load(&store, &id, limits.idle_timeout) {
                Some(upload) => {
                    let repo = upload.repo.clone();
                    map.insert(id, (repo, Arc::new(tokio::sync::Mutex::new(Some(upload)))));
                }
                None => store.remove_session(&id),
            }
        }
        if !map.is_empty() {
            tracing::info!(sessions = map.len(), "upload sessions resumed");
        }
        Uploads {
            limits,
            store,
            sessions: Mutex::new(map),
        }
    }

    /// Session `id` from disk, unless it expired or its files do not fit together.
    fn load(store: &BlobStore, id: &str, idle: Duration) -> Option<Upload> {
        uuid::Uuid::parse_str(id).ok()?;
        let state: SessionState = serde_json::from_slice(&store.read_session_state(id)?).ok()?;
        let repo = RepoName::parse(&state.namespace, &state.stream).ok()?;
        let touched = SystemTime::UNIX_EPOCH + Duration::from_millis(state.touched_ms);
        let idle_for = SystemTime::now()
            .duration_since(touched)
            .unwrap_or_default();
        if idle_for > idle {
            return None;
        }
        let writer = store.resume_session(id, state.size)?;
        Some(Upload {
            repo,
            writer,
            touched: Instant::now()
                .checked_sub(idle_for)
                .unwrap_or_else(Instant::now),
        })
    }

    /// Records `upload`'s state on disk, atomically.
    fn persist(&self, id: &str, upload: &Upload) -> Result<(), RegistryError> {
        let touched = SystemTime::now() - upload.touched.elapsed();
        let state = SessionState {
            namespace: upload.repo.namespace.clone(),
            stream: upload.repo.stream.clone(),
            size: upload.writer.size(),
            touched_ms: touched
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or_default(),
        };
        let bytes = serde_json::to_vec(&state).map_err(RegistryError::internal)?;
        self.store.write_session_state(id, &bytes)?;
        Ok(())
    }

    /// The session `id`, unless it is unknown or expired.
    fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.lock();
        self.expire(&mut map);
        map.get(id).map(|(_, s)| s.clone())
    }

    /// Ends session `id`: forgotten, and its files removed (a committed blob has left
    /// them already).
    fn remove(&self, id: &str) {
        self.lock().remove(id);
        self.store.remove_session(id);
    }

    /// `TOOMANYREQUESTS` when `map` has no room for another session of `repo`.
    fn check_caps(
        &self,
        map: &HashMap<String, (RepoName, Session)>,
        repo: &RepoName,
    ) -> Result<(), RegistryError> {
        let in_repo = map.values().filter(|(r, _)| r == repo).count();
        check_caps_counts(&self.limits, map.len(), in_repo)
    }

    /// Opens a session for `repo` unless a cap is reached (`TOOMANYREQUESTS`); returns
    /// its id. Its files are made outside the sessions' lock (the state is fsynced),
    /// and the caps checked again before it counts.
    fn insert(&self, repo: &RepoName) -> Result<String, RegistryError> {
        {
            let mut map = self.lock();
            self.expire(&mut map);
            self.check_caps(&map, repo)?;
        }
        let id = uuid::Uuid::new_v4().to_string();
        let mut writer = self.store.session_writer(&id)?;
        writer.release();
        let session = Upload {
            repo: repo.clone(),
            writer,
            touched: Instant::now(),
        };
        let mut refused = self.persist(&id, &session).err();
        let mut map = self.lock();
        if refused.is_none() {
            refused = self.check_caps(&map, repo).err();
        }
        if let Some(e) = refused {
            drop(map);
            session.discard();
            self.store.remove_session(&id);
            return Err(e);
        }
        map.insert(
            id.clone(),
            (
                repo.clone(),
                Arc::new(tokio::sync::Mutex::new(Some(session))),
            ),
        );
        Ok(id)
    }

    /// Forgets sessions idle for longer than the timeout (a session a request holds
    /// is busy, not idle) and removes their files.
    fn expire(&self, map: &mut HashMap<String, (RepoName, Session)>) {
        let idle = self.limits.idle_timeout;
        map.retain(|id, (_, session)| match session.try_lock() {
            Ok(mut guard) => match guard.as_ref() {
                Some(u) if u.touched.elapsed() > idle => {
                    if let Some(u) = guard.take() {
                        u.discard();
                    }
                    self.store.remove_session(id);
                    false
                }
                Some(_) => true,
                None => false,
            },
            Err(_) => true,
        });
    }

    /// Forgets idle sessions now (the registry's reaper calls this periodically).
    pub(crate) fn reap(&self) {
        self.expire(&mut self.lock());
    }

    /// Sessions open now.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// How often the reaper should run.
    pub(crate) fn reap_period(&self) -> Duration {
        (self.limits.idle_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(60))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (RepoName, Session)>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `TOOMANYREQUESTS` when `open` sessions in all, `in_repo` in the repository, leave
/// no room for another.
fn check_caps_counts(
    limits: &UploadLimits,
    open: usize,
    in_repo: usize,
) -> Result<(), RegistryError> {
    if open >= limits.max_sessions || in_repo >= limits.max_sessions_per_repository {
        return Err(RegistryError::new(
            Code::TooManyRequests,
            format!(
                "too many blob uploads in progress (at most {} per repository, {} in all): finish or cancel some",
                limits.max_sessions_per_repository, limits.max_sessions
            ),
        )
        .header(header::RETRY_AFTER, "60"));
    }
    Ok(())
}

#[derive(Deserialize, Default)]
pub(super) struct StartQuery {
    digest: Option<String>,
    mount: Option<String>,
    from: Option<String>,
}

fn upload_unknown(id: &str) -> RegistryError {
    RegistryError::new(Code::BlobUploadUnknown, "blob upload unknown to registry")
        .detail(json!({ "uuid": id }))
}

/// `202 Accepted` with the session's `Location`, `Range` and id.
fn progress(repo: &RepoName, id: &str, size: u64, status: StatusCode) -> Response {
    let mut resp = (
        status,
        [
            (header::LOCATION, format!("/v2/{repo}/blobs/uploads/{id}")),
            (header::RANGE, format!("0-{}", size.saturating_sub(1))),
        ],
    )
        .into_response();
    resp.headers_mut().insert(
        "docker-upload-uuid",
        HeaderValue::from_str(id).expect("a uuid is a header value"),
    );
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    resp
}

/// `201 Created` for blob `digest` of `repo`.
fn created(repo: &RepoName, digest: &Digest) -> Response {
    (
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/v2/{repo}/blobs/{digest}")),
            (
                header::HeaderName::from_static("docker-content-digest"),
                digest.to_string(),
            ),
        ],
    )
        .into_response()
}

/// Appends a request body to the upload. With `declared`, the body must be exactly
/// that many bytes: SIZE_INVALID otherwise, as soon as it is known.
async fn append(
    writer: &mut BlobWriter,
    body: Body,
    declared: Option<u64>,
) -> Result<(), RegistryError> {
    let mut stream = body.into_data_stream();
    let mut got = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            RegistryError::new(
                Code::BlobUploadInvalid,
                format!("reading the request body: {e}"),
            )
        })?;
        got += chunk.len() as u64;
        if let Some(n) = declared
            && got > n
        {
            return Err(size_mismatch(n, got, "at least "));
        }
        writer.write(&chunk)?;
    }
    match declared {
        Some(n) if got != n => Err(size_mismatch(n, got, "")),
        _ => Ok(()),
    }
}

fn size_mismatch(declared: u64, got: u64, at_least: &str) -> RegistryError {
    RegistryError::new(
        Code::SizeInvalid,
        format!("the request declares {declared} bytes, {at_least}{got} arrived"),
    )
}

/// The length a chunk declares: its `Content-Range`'s (inclusive), checked against
/// its `Content-Length` when both are given.
fn declared_len(
    headers: &HeaderMap,
    range: Option<(u64, u64)>,
) -> Result<Option<u64>, RegistryError> {
    let content_length =
        match super::header_str(headers, "content-length") {
            Some(v) => Some(v.trim().parse::<u64>().map_err(|_| {
                RegistryError::new(Code::SizeInvalid, "invalid Content-Length header")
            })?),
            None => None,
        };
    let range_len = range.map(|(start, end)| end.saturating_sub(start).saturating_add(1));
    match (range_len, content_length) {
        (Some(r), Some(c)) if r != c => Err(RegistryError::new(
            Code::SizeInvalid,
            format!("Content-Range declares {r} bytes, Content-Length {c}"),
        )),
        (r, c) => Ok(r.or(c)),
    }
}

/// Commits the upload as `digest` (blocking work off the runtime) and links it.
async fn commit(
    reg: &Registry,
    repo: &RepoName,
    writer: BlobWriter,
    digest: &Digest,
) -> Result<(), RegistryError> {
    let _gc = reg.gc.read().await;
    let d = digest.clone();
    tokio::task::spawn_blocking(move || writer.commit(&d, None))
        .await
        .map_err(RegistryError::internal)??;
    reg.content_publish(digest).await?;
    reg.links
        .link(&repo.namespace, &repo.stream, LinkKind::Layer, digest)
        .await?;
    Ok(())
}

pub(super) async fn start(
    State(reg): State<Arc<Registry>>,
    Path((ns, stream)): Path<(String, String)>,
    Query(q): Query<StartQuery>,
    caller: Option<axum::Extension<Caller>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, RegistryError> {
    let repo = RepoName::parse(&ns, &stream)?;
    if let (Some(mount), Some(from)) = (&q.mount, &q.from) {
        let digest = parse_digest(mount)?;
        if let Some(resp) = try_mount(&reg, &repo, &digest, from, caller.as_deref()).await? {
            return Ok(resp);
        }
    }
    if let Some(d) = &q.digest {
        // The monolithic upload: the whole blob in this request.
        let digest = parse_digest(d)?;
        let declared = declared_len(&headers, None)?;
        let mut writer = reg.blobs.writer(DigestAlgorithm::Sha256)?;
        append(&mut writer, body, declared).await?;
        commit(&reg, &repo, writer, &digest).await?;
        return Ok(created(&repo, &digest));
    }
    if let Some(shared) = &reg.shared_uploads {
        return shared::start(shared, &repo).await;
    }
    let id = reg.uploads.insert(&repo)?;
    Ok(progress(&repo, &id, 0, StatusCode::ACCEPTED))
}

/// Links `digest` from repository `from` into `repo` when the caller may read it
/// there and the content is cached; `None` to fall back to an upload.
async fn try_mount(
    reg: &Registry,
    repo: &RepoName,
    digest: &Digest,
    from: &str,
    caller: Option<&Caller>,
) -> Result<Option<Response>, RegistryError> {
    let Some(caller) = caller else {
        return Ok(None);
    };
    let Ok(repository) = moor_api::authz::registry::Repository::parse(from) else {
        return Ok(None);
    };
    let Ok(source) = RepoName::parse(repository.namespace, repository.name) else {
        return Ok(None);
    };
    if !super::auth::may_mount_from(reg, caller, repository).await {
        return Ok(None);
    }
    let _gc = reg.gc.read().await;
    let s = reg.repos.stream(&source).await?;
    if reg
        .repos
        .blob_origin(&source, s.as_deref(), digest)
        .await?
        .is_none()
        || reg.content_stat(digest).await?.is_none()
    {
        return Ok(None);
    }
    reg.links
        .link(&repo.namespace, &repo.stream, LinkKind::Layer, digest)
        .await?;
    Ok(Some(created(repo, digest)))
}

fn session(reg: &Registry, id: &str) -> Result<Session, RegistryError> {
    reg.uploads.get(id).ok_or_else(|| upload_unknown(id))
}

/// The upload, checked to belong to `repo`.
fn check_repo<'a>(
    upload: &'a mut Option<Upload>,
    repo: &RepoName,
    id: &str,
) -> Result<&'a mut Upload, RegistryError> {
    match upload {
        Some(u) if &u.repo == repo => Ok(u),
        _ => Err(upload_unknown(id)),
    }
}

pub(super) async fn status(
    State(reg): State<Arc<Registry>>,
    Path((ns, stream, id)): Path<(String, String, String)>,
) -> Result<Response, RegistryError> {
    let repo = RepoName::parse(&ns, &stream)?;
    if let Some(shared) = &reg.shared_uploads {
        return shared::status(shared, &repo, &id).await;
    }
    let s = session(&reg, &id)?;
    let mut guard = s.lock().await;
    let upload = check_repo(&mut guard, &repo, &id)?;
    upload.touched = Instant::now();
    reg.uploads.persist(&id, upload)?;
    Ok(progress(
        &repo,
        &id,
        upload.writer.size(),
        StatusCode::NO_CONTENT,
    ))
}

/// `Content-Range: start-end` (the spec's form, no `bytes ` prefix; tolerated).
fn content_range(headers: &HeaderMap) -> Option<Result<(u64, u64), ()>> {
    let v = super::header_str(headers, "content-range")?;
    let v = v
        .trim()
        .trim_start_matches("bytes ")
        .trim_start_matches("bytes=");
    let v = v.split('/').next().unwrap_or(v);
    let parsed = v
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
    Some(parsed.ok_or(()))
}

/// A chunk that does not start where the upload stands: 416 with the session's
/// `Location` and `Range`. The session is left as it was, for the client to ask
/// where it stands (GET) and go on from there.
fn out_of_order(repo: &RepoName, id: &str, start: u64, size: u64) -> Response {
    let mut resp = RegistryError::new(
        Code::BlobUploadInvalid,
        format!("the chunk starts at {start}, the upload is at {size}"),
    )
    .status(StatusCode::RANGE_NOT_SATISFIABLE)
    .into_response();
    for (k, v) in progress(repo, id, size, StatusCode::ACCEPTED).headers() {
        if k != header::CONTENT_LENGTH && k != header::CONTENT_TYPE {
            resp.headers_mut().insert(k, v.clone());
        }
    }
    resp
}

pub(super) async fn patch(
    State(reg): State<Arc<Registry>>,
    Path((ns, stream, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, RegistryError> {
    let repo = RepoName::parse(&ns, &stream)?;
    if let Some(shared) = &reg.shared_uploads {
        return shared::patch(shared, &repo, &id, &headers, body).await;
    }
    let s = session(&reg, &id)?;
    let mut guard = s.lock().await;
    let upload = check_repo(&mut guard, &repo, &id)?;
    let size = upload.writer.size();
    let range = content_range(&headers);
    match range {
        Some(Err(())) => {
            return Err(RegistryError::new(
                Code::BlobUploadInvalid,
                "invalid Content-Range header",
            ));
        }
        Some(Ok((start, end))) if start != size || end < start => {
            return Ok(out_of_order(&repo, &id, start, size));
        }
        _ => {}
    }
    let declared = declared_len(&headers, range.and_then(Result::ok))?;
    if let Err(e) = append(&mut upload.writer, body, declared).await {
        // A failed chunk leaves the upload unusable: forget it.
        if let Some(u) = guard.take() {
            u.discard();
        }
        reg.uploads.remove(&id);
        return Err(e);
    }
    upload.touched = Instant::now();
    upload.writer.release();
    reg.uploads.persist(&id, upload)?;
    Ok(progress(
        &repo,
        &id,
        upload.writer.size(),
        StatusCode::ACCEPTED,
    ))
}

#[derive(Deserialize, Default)]
pub(super) struct FinishQuery {
    digest: Option<String>,
}

pub(super) async fn finish(
    State(reg): State<Arc<Registry>>,
    Path((ns, stream, id)): Path<(String, String, String)>,
    Query(q): Query<FinishQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, RegistryError> {
    let repo = RepoName::parse(&ns, &stream)?;
    let digest = parse_digest(q.digest.as_deref().ok_or_else(|| {
        RegistryError::new(Code::DigestInvalid, "the digest parameter is required")
    })?)?;
    if let Some(shared) = &reg.shared_uploads {
        return shared::finish(&reg, shared, &repo, &id, &digest, &headers, body).await;
    }
    let s = session(&reg, &id)?;
    let mut guard = s.lock().await;
    let size = check_repo(&mut guard, &repo, &id)?.writer.size();
    let range = content_range(&headers).and_then(Result::ok);
    if let Some((start, _)) = range
        && start != size
    {
        // A closing chunk out of order leaves the session open, as a PATCH does.
        return Ok(out_of_order(&repo, &id, start, size));
    }
    let Some(mut upload) = guard.take() else {
        return Err(upload_unknown(&id));
    };
    // Whatever happens now ends the session: its data becomes the blob or goes.
    upload.writer.discard_on_drop();
    let result = close(&reg, &repo, upload, &digest, &headers, range, body).await;
    reg.uploads.remove(&id);
    result?;
    Ok(created(&repo, &digest))
}

/// Appends the closing request's bytes to the upload and commits it as `digest`.
async fn close(
    reg: &Registry,
    repo: &RepoName,
    mut upload: Upload,
    digest: &Digest,
    headers: &HeaderMap,
    range: Option<(u64, u64)>,
    body: Body,
) -> Result<(), RegistryError> {
    // A closing PUT often carries no body (Content-Length: 0) whatever its range says.
    let declared = match super::header_str(headers, "content-length").map(str::trim) {
        Some("0") => Some(0),
        _ => declared_len(headers, range)?,
    };
    append(&mut upload.writer, body, declared).await?;
    commit(reg, repo, upload.writer, digest).await
}

pub(super) async fn cancel(
    State(reg): State<Arc<Registry>>,
    Path((ns, stream, id)): Path<(String, String, String)>,
) -> Result<Response, RegistryError> {
    let repo = RepoName::parse(&ns, &stream)?;
    if let Some(shared) = &reg.shared_uploads {
        return shared::cancel(shared, &repo, &id).await;
    }
    let s = session(&reg, &id)?;
    let mut guard = s.lock().await;
    check_repo(&mut guard, &repo, &id)?;
    if let Some(u) = guard.take() {
        u.discard();
    }
    reg.uploads.remove(&id);
    Ok(StatusCode::NO_CONTENT.into_response())
}
