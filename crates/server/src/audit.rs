//! The audit log: `--audit-log-path FILE` (`-`: stdout) gets one JSON line per
//! `audit.k8s.io/v1` `Event`, at the `Metadata` level, for every mutating API request
//! (create, update, patch, delete, deletecollection: also when refused with 401 or
//! 403) and every registry push (manifest PUT, blob upload completion, cross-repository
//! mount) and manifest or blob DELETE. Never a request or response body, never a
//! header but `User-Agent`.
//!
//! [`record`] is a middleware outside the authentication layers: it learns the user
//! through a task-local slot that the auth layer fills ([`note_user`]) as soon as a
//! credential is accepted, so that a 403 still names who was refused; a request
//! without an accepted credential is `system:anonymous`.
//!
//! Events go through a bounded channel ([`QUEUE_CAPACITY`]) to a writer thread that
//! owns the file, so a slow disk never holds a request. When the queue is full the
//! event is dropped and counted in `moor_audit_events_dropped_total` (kube's
//! batching backend drops the same way), with a warning in the server log.
//! Calls the filesystem and tokio only.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use tokio::sync::mpsc;

use moor_api::authz::names;
use moor_apimachinery::resource::UserInfo;

/// Events waiting for the writer at most; beyond, events are dropped and counted.
pub const QUEUE_CAPACITY: usize = 10_000;

/// `--audit-log-path`, `--audit-log-maxsize`, `--audit-log-maxbackup`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditOptions {
    /// The log file, `-` for stdout; `None`: no audit log.
    pub path: Option<PathBuf>,
    /// Rotate the file before a line would take it past this many bytes (0: never).
    pub max_size_bytes: u64,
    /// Rotated files kept (`FILE.1` newest … `FILE.N`); 0 keeps them all, as kube's
    /// `--audit-log-maxbackup 0` does.
    pub max_backups: usize,
}

/// Errors of starting the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("starting the audit log writer: {0}")]
    Writer(#[source] io::Error),
}

/// The audit log's sending side; `Audit::default()` logs nothing.
#[derive(Clone, Default)]
pub struct Audit {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    tx: mpsc::Sender<Message>,
    dropped: Counter,
    events: Counter,
}

impl Audit {
    /// Opens the log `options` names (none: a disabled log) and starts its writer.
    pub fn start(options: &AuditOptions) -> Result<Self, AuditError> {
        let Some(path) = &options.path else {
            return Ok(Audit::default());
        };
        let sink = if path.as_os_str() == "-" {
            Sink::Stdout(io::stdout())
        } else {
            Sink::File(RotatingFile::open(
                path,
                options.max_size_bytes,
                options.max_backups,
            )?)
        };
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || write_loop(rx, sink))
            .map_err(AuditError::Writer)?;
        Ok(Audit {
            inner: Some(Arc::new(Inner {
                tx,
                dropped: Counter::default(),
                events: Counter::default(),
            })),
        })
    }

    /// Whether events are recorded.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Registers `moor_audit_events_total` and `moor_audit_events_dropped_total`.
    pub fn register_metrics(&self, metrics: &crate::metrics::Metrics) {
        if let Some(inner) = &self.inner {
            metrics.register(
                "audit_events",
                "Audit events queued for the audit log",
                inner.events.clone(),
            );
            metrics.register(
                "audit_events_dropped",
                "Audit events dropped because the audit log's queue was full",
                inner.dropped.clone(),
            );
        }
    }

    /// Waits until every event queued so far is written and flushed (at most
    /// `timeout`): `moor serve` calls it when it stops, so no event is lost.
    pub async fn flush(&self, timeout: std::time::Duration) {
        let Some(inner) = &self.inner else { return };
        let (done, written) = tokio::sync::oneshot::channel();
        let flushed = async {
            if inner.tx.send(Message::Flush(done)).await.is_ok() {
                let _ = written.await;
            }
        };
        if tokio::time::timeout(timeout, flushed).await.is_err() {
            tracing::warn!("the audit log was not flushed in {timeout:?}");
        }
    }

    fn send(&self, event: &Event) {
        let Some(inner) = &self.inner else { return };
        let mut line = match serde_json::to_vec(event) {
            Ok(line) => line,
            Err(e) => {
                tracing::warn!(error = %e, "encoding an audit event failed");
                return;
            }
        };
        line.push(b'\n');
        match inner.tx.try_send(Message::Line(line)) {
            Ok(()) => {
                inner.events.inc();
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                inner.dropped.inc();
                tracing::warn!(
                    audit_id = %event.audit_id,
                    "audit log queue full: event dropped"
                );
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                inner.dropped.inc();
            }
        }
    }
}

/// Who the request being audited is: the user the authenticator accepted, and whom
/// it acts as through impersonation headers.
#[derive(Default)]
struct NotedUsers {
    user: OnceLock<UserInfo>,
    impersonated: OnceLock<UserInfo>,
}

tokio::task_local! {
    static REQUEST_USER: Arc<NotedUsers>;
}

/// Tells the audit layer who the request in flight is (the first user noted wins:
/// the caller, not a token it asks about). [`AuthLayer`](crate::auth::AuthLayer)
/// calls it once it has authenticated a credential; outside an audited request it
/// does nothing.
pub fn note_user(user: &UserInfo) {
    let _ = REQUEST_USER.try_with(|slot| slot.user.set(user.clone()));
}

/// Tells the audit layer whom the request in flight acts as (kube's
/// `impersonatedUser`), after the impersonation was allowed.
pub fn note_impersonated(user: &UserInfo) {
    let _ = REQUEST_USER.try_with(|slot| slot.impersonated.set(user.clone()));
}

// ---------------------------------------------------------------------------------------
// The event (audit.k8s.io/v1 Event at the Metadata level).

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    kind: &'static str,
    api_version: &'static str,
    level: &'static str,
    #[serde(rename = "auditID")]
    audit_id: String,
    stage: &'static str,
    #[serde(rename = "requestURI")]
    request_uri: String,
    verb: String,
    user: EventUser,
    #[serde(skip_serializing_if = "Option::is_none")]
    impersonated_user: Option<EventUser>,
    #[serde(rename = "sourceIPs", skip_serializing_if = "Vec::is_empty")]
    source_ips: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
    object_ref: ObjectRef,
    response_status: ResponseStatus,
    request_received_timestamp: String,
    stage_timestamp: String,
}

#[derive(Serialize)]
struct EventUser {
    username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    uid: String,
    groups: Vec<String>,
}

#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectRef {
    #[serde(skip_serializing_if = "String::is_empty")]
    resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    api_group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    api_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    subresource: Option<String>,
}

#[derive(Serialize)]
struct ResponseStatus {
    metadata: serde_json::Map<String, serde_json::Value>,
    code: u16,
}

/// kube's timestamps: RFC 3339 with microseconds.
fn timestamp(t: jiff::Timestamp) -> String {
    format!("{t:.6}")
}

// ---------------------------------------------------------------------------------------
// What is audited.

/// The verb and object of an audited request; `None`: not audited.
fn audited(method: &Method, uri: &axum::http::Uri) -> Option<(String, ObjectRef)> {
    let path = uri.path();
    if path.starts_with("/v2/") {
        return registry_write(method, uri);
    }
    if *method == Method::GET || *method == Method::HEAD || *method == Method::OPTIONS {
        return None;
    }
    let info = moor_apimachinery::request_info::request_info(method, uri);
    let mutating = matches!(
        info.verb.as_str(),
        "create" | "update" | "patch" | "delete" | "deletecollection"
    );
    if !(info.is_resource_request && mutating) {
        return None;
    }
    Some((
        info.verb,
        ObjectRef {
            resource: info.resource,
            namespace: info.namespace,
            name: info.name,
            api_group: info.api_group,
            api_version: info.api_version,
            subresource: info.subresource,
        },
    ))
}

/// A registry push or delete under `/v2/<namespace>/<stream>/...`, as OpenShift's
/// registry authorizes it: `update` (push) or `delete` on `imagestreams/layers`.
fn registry_write(method: &Method, uri: &axum::http::Uri) -> Option<(String, ObjectRef)> {
    let rest = uri.path().strip_prefix("/v2/")?;
    let mut parts = rest.splitn(4, '/');
    let (ns, stream, kind, reference) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next().unwrap_or(""),
    );
    let reference = reference.trim_end_matches('/');
    let query = uri.query().unwrap_or("");
    let has = |param: &str| {
        form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == param && !v.is_empty())
    };
    let upload = reference == "uploads" || reference.starts_with("uploads/");
    let verb = match (method, kind) {
        (&Method::PUT, "manifests") => "update",
        // Completing an upload (PUT to its session) or a mount or monolithic upload
        // (POST with `mount=` or `digest=`).
        (&Method::PUT, "blobs") if reference.starts_with("uploads/") => "update",
        (&Method::POST, "blobs") if upload && (has("mount") || has("digest")) => "update",
        (&Method::DELETE, "manifests") => "delete",
        (&Method::DELETE, "blobs") if !upload => "delete",
        _ => return None,
    };
    Some((
        verb.to_string(),
        ObjectRef {
            resource: "imagestreams".into(),
            namespace: Some(ns.to_string()),
            name: Some(stream.to_string()),
            api_group: moor_api::authz::registry::IMAGE_GROUP.into(),
            api_version: "v1".into(),
            subresource: Some("layers".into()),
        },
    ))
}

/// Middleware: records an [`Event`] for every audited request once its response is
/// ready. Sits outside the authentication layers.
pub async fn record(State(audit): State<Audit>, req: Request, next: Next) -> Response {
    if !audit.enabled() {
        return next.run(req).await;
    }
    let Some((verb, object_ref)) = audited(req.method(), req.uri()) else {
        return next.run(req).await;
    };
    let received = jiff::Timestamp::now();
    let audit_id = uuid::Uuid::new_v4().to_string();
    let request_uri = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
    let user_agent = req
        .headers()
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let source_ips = source_ips(&req);
    let slot = Arc::new(NotedUsers::default());
    let mut response = REQUEST_USER.scope(slot.clone(), next.run(req)).await;
    let mut object_ref = object_ref;
    if verb == "create" && object_ref.name.is_none() && response.status().is_success() {
        // The name of a created object is in the body, not the URL (generateName
        // included): read it from the answer, as kube fills `objectRef.name` in.
        let (name, rebuilt) = created_name(response).await;
        object_ref.name = name;
        response = rebuilt;
    }
    if let Ok(v) = HeaderValue::from_str(&audit_id) {
        response.headers_mut().insert("audit-id", v);
    }
    let event_user = |u: &UserInfo| EventUser {
        username: u.name.clone(),
        uid: u.uid.clone(),
        groups: u.groups.clone(),
    };
    let impersonated_user = slot.impersonated.get().map(event_user);
    let user = match slot.user.get() {
        Some(u) => event_user(u),
        None => EventUser {
            username: names::ANONYMOUS.into(),
            uid: String::new(),
            groups: vec![names::UNAUTHENTICATED.into()],
        },
    };
    audit.send(&Event {
        kind: "Event",
        api_version: "audit.k8s.io/v1",
        level: "Metadata",
        audit_id,
        stage: "ResponseComplete",
        request_uri,
        verb,
        user,
        impersonated_user,
        source_ips,
        user_agent,
        object_ref,
        response_status: ResponseStatus {
            metadata: Default::default(),
            code: response.status().as_u16(),
        },
        request_received_timestamp: timestamp(received),
        stage_timestamp: timestamp(jiff::Timestamp::now()),
    });
    response
}

/// The largest create answer read for its object's name.
const CREATED_BODY_LIMIT: usize = 16 << 20;

/// The `metadata.name` of the object a create answered with, and the answer again.
async fn created_name(response: Response) -> (Option<String>, Response) {
    #[derive(serde::Deserialize)]
    struct Named {
        metadata: Meta,
    }
    #[derive(serde::Deserialize)]
    struct Meta {
        name: Option<String>,
    }
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, CREATED_BODY_LIMIT).await {
        Ok(bytes) => {
            let name = serde_json::from_slice::<Named>(&bytes)
                .ok()
                .and_then(|n| n.metadata.name);
            (
                name,
                Response::from_parts(parts, axum::body::Body::from(bytes)),
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "audit: the create answer could not be read");
            (None, Response::from_parts(parts, axum::body::Body::empty()))
        }
    }
}

/// kube's source IPs: `X-Forwarded-For`'s, `X-Real-Ip`, then the peer's address.
fn source_ips(req: &Request) -> Vec<String> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut ips: Vec<String> = header("x-forwarded-for")
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| s.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default();
    if let Some(real) = header("x-real-ip").filter(|s| s.parse::<std::net::IpAddr>().is_ok()) {
        ips.push(real);
    }
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        ips.push(peer.ip().to_string());
    }
    let mut seen = std::collections::HashSet::new();
    ips.retain(|ip| seen.insert(ip.clone()));
    ips
}

// ---------------------------------------------------------------------------------------
// The writer.

enum Sink {
    Stdout(io::Stdout),
    File(RotatingFile),
}

impl Sink {
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stdout(out) => out.write_all(line),
            Sink::File(f) => f.write_line(line),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(out) => out.flush(),
            Sink::File(f) => f.file.flush(),
        }
    }
}

/// What the writer thread is sent.
enum Message {
    /// One event's JSON line.
    Line(Vec<u8>),
    /// Answer once everything before is written and flushed.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The writer thread: drains what is queued, then flushes, until the senders are gone.
fn write_loop(mut rx: mpsc::Receiver<Message>, mut sink: Sink) {
    let mut next = rx.blocking_recv();
    while next.is_some() {
        let mut waiting = Vec::new();
        let mut result = Ok(());
        while let Some(message) = next {
            match message {
                Message::Line(line) if result.is_ok() => result = sink.write_line(&line),
                Message::Line(_) => {}
                Message::Flush(done) => waiting.push(done),
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = result.and_then(|()| sink.flush()) {
            tracing::warn!(error = %e, "writing the audit log failed");
        }
        for done in waiting {
            let _ = done.send(());
        }
        next = rx.blocking_recv();
    }
}

/// An append-only file rotated by size: before a line would take it past the limit,
/// `FILE` becomes `FILE.1`, `FILE.1` becomes `FILE.2`, and so on, and the oldest
/// beyond the backups kept is removed.
///
/// Hand-written: the crates for this (file-rotate, rolling-file) panic on I/O errors
/// or rotate only by time, and the rule is a few renames.
struct RotatingFile {
    path: PathBuf,
    file: BufWriter<File>,
    size: u64,
    max_size: u64,
    max_backups: usize,
}

fn open_append(path: &Path) -> io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)
}

fn backup(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

impl RotatingFile {
    fn open(path: &Path, max_size: u64, max_backups: usize) -> Result<Self, AuditError> {
        let err = |source| AuditError::Open {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let file = open_append(path).map_err(err)?;
        let size = file.metadata().map_err(err)?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            file: BufWriter::new(file),
            size,
            max_size,
            max_backups,
        })
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.max_size > 0 && self.size > 0 && self.size + line.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let keep = if self.max_backups > 0 {
            self.max_backups
        } else {
            // Keep all: shift every existing backup up by one.
            (1..)
                .find(|n| !backup(&self.path, *n).exists())
                .unwrap_or(1)
        };
        match std::fs::remove_file(backup(&self.path, keep)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        for n in (1..keep).rev() {
            match std::fs::rename(backup(&self.path, n), backup(&self.path, n + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, backup(&self.path, 1))?;
        self.file = BufWriter::new(open_append(&self.path)?);
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verb(method: Method, uri: &str) -> Option<(String, Option<String>)> {
        audited(&method, &uri.parse().unwrap()).map(|(v, o)| (v, o.subresource))
    }

    #[test]
    fn mutating_api_requests_and_registry_writes_are_audited_reads_are_not() {
        let ns = "/api/v1/namespaces/ns/secrets";
        let some = |v: &str| Some((v.to_string(), None));
        assert_eq!(verb(Method::POST, ns), some("create"));
        assert_eq!(verb(Method::PUT, &format!("{ns}/s")), some("update"));
        assert_eq!(verb(Method::PATCH, &format!("{ns}/s")), some("patch"));
        assert_eq!(verb(Method::DELETE, &format!("{ns}/s")), some("delete"));
        assert_eq!(verb(Method::DELETE, ns), some("deletecollection"));
        assert_eq!(verb(Method::GET, ns), None);
        assert_eq!(verb(Method::GET, &format!("{ns}?watch=true")), None);
        assert_eq!(verb(Method::POST, "/admission/image-policy"), None);
        assert_eq!(verb(Method::GET, "/metrics"), None);

        let layers = |v: &str| Some((v.to_string(), Some("layers".to_string())));
        let repo = "/v2/ns/app";
        assert_eq!(
            verb(Method::PUT, &format!("{repo}/manifests/v1")),
            layers("update")
        );
        assert_eq!(
            verb(
                Method::PUT,
                &format!("{repo}/blobs/uploads/abc?digest=sha256:00")
            ),
            layers("update")
        );
        assert_eq!(
            verb(
                Method::POST,
                &format!("{repo}/blobs/uploads/?mount=sha256:00&from=a/b")
            ),
            layers("update")
        );
        assert_eq!(
            verb(
                Method::POST,
                &format!("{repo}/blobs/uploads/?digest=sha256:00")
            ),
            layers("update")
        );
        assert_eq!(verb(Method::POST, &format!("{repo}/blobs/uploads/")), None);
        assert_eq!(
            verb(Method::PATCH, &format!("{repo}/blobs/uploads/abc")),
            None
        );
        assert_eq!(
            verb(Method::DELETE, &format!("{repo}/blobs/uploads/abc")),
            None
        );
        assert_eq!(
            verb(Method::DELETE, &format!("{repo}/manifests/sha256:00")),
            layers("delete")
        );
        assert_eq!(
            verb(Method::DELETE, &format!("{repo}/blobs/sha256:00")),
            layers("delete")
        );
        assert_eq!(verb(Method::GET, &format!("{repo}/manifests/v1")), None);
        assert_eq!(verb(Method::HEAD, &format!("{repo}/blobs/sha256:00")), None);
        assert_eq!(verb(Method::PUT, "/v2/"), None);
    }

    #[test]
    fn the_file_rotates_at_the_size_limit_and_keeps_n_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut f = RotatingFile::open(&path, 100, 2).unwrap();
        // 40-byte lines: two fit in 100 bytes, the third rotates.
        for i in 0..9 {
            f.write_line(format!("{i:039}\n").as_bytes()).unwrap();
        }
        f.file.flush().unwrap();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(path.clone()), format!("{:039}\n", 8));
        assert_eq!(read(backup(&path, 1)), format!("{:039}\n{:039}\n", 6, 7));
        assert_eq!(read(backup(&path, 2)), format!("{:039}\n{:039}\n", 4, 5));
        assert!(!backup(&path, 3).exists());

        // 0 backups: every one is kept.
        let all = dir.path().join("all.log");
        let mut f = RotatingFile::open(&all, 50, 0).unwrap();
        for i in 0..5 {
            f.write_line(format!("{i:039}\n").as_bytes()).unwrap();
        }
        f.file.flush().unwrap();
        assert_eq!(read(backup(&all, 4)), format!("{:039}\n", 0));
        assert_eq!(read(all), format!("{:039}\n", 4));
    }

    #[cfg(unix)]
    #[test]
    fn the_log_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        RotatingFile::open(&path, 0, 0).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    fn sample() -> Event {
        Event {
            kind: "Event",
            api_version: "audit.k8s.io/v1",
            level: "Metadata",
            audit_id: "id".into(),
            stage: "ResponseComplete",
            request_uri: "/".into(),
            verb: "create".into(),
            user: EventUser {
                username: "u".into(),
                uid: String::new(),
                groups: Vec::new(),
            },
            impersonated_user: None,
            source_ips: Vec::new(),
            user_agent: None,
            object_ref: ObjectRef::default(),
            response_status: ResponseStatus {
                metadata: Default::default(),
                code: 201,
            },
            request_received_timestamp: String::new(),
            stage_timestamp: String::new(),
        }
    }

    #[tokio::test]
    async fn flush_returns_once_every_queued_event_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let audit = Audit::start(&AuditOptions {
            path: Some(path.clone()),
            ..Default::default()
        })
        .unwrap();
        for _ in 0..500 {
            audit.send(&sample());
        }
        audit.flush(std::time::Duration::from_secs(30)).await;
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 500);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        // A queue of one that nobody drains: the second event cannot wait.
        let (tx, _rx) = mpsc::channel(1);
        let audit = Audit {
            inner: Some(Arc::new(Inner {
                tx,
                dropped: Counter::default(),
                events: Counter::default(),
            })),
        };
        audit.send(&sample());
        audit.send(&sample());
        let inner = audit.inner.as_ref().unwrap();
        assert_eq!((inner.events.get(), inner.dropped.get()), (1, 1));
    }

    #[test]
    fn timestamps_have_microseconds() {
        let t: jiff::Timestamp = "2026-01-02T03:04:05.123456789Z".parse().unwrap();
        assert_eq!(timestamp(t), "2026-01-02T03:04:05.123456Z");
    }
}
