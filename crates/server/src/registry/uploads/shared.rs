//! Upload sessions any replica serves (`--blob-store s3://` on a store the replicas
//! share): a client behind a load balancer may `POST` on one replica, `PATCH` on
//! another and `PUT` on a third. Each chunk (a `PATCH`'s body, or a closing `PUT`'s)
//! is an object in the bucket ([`BlobDriver::chunk_writer`]); the session's record
//! (its chunks, size and last use) is a key in the store,
//! `/moor/registry/uploads/<namespace>/<stream>/<uuid>`, replaced with a
//! compare-and-swap after every chunk, so offsets stay exact across replicas (a
//! chunk that does not start at the recorded size, or that raced another one, gets
//! 416). The closing `PUT` claims the record (a compare-and-swap delete) and streams
//! the chunks into a blob staged at the content address, verified before it is
//! visible (a single chunk whose sha256 is the digest is copied instead). Caps count
//! the records of every replica; idle records expire on whichever replica looks
//! first, and take their chunks along.
//!
//! Why the store rather than a signed state token in `Location` (distribution's
//! `_state`): the store is shared already, a token cannot be counted against caps,
//! expired or cancelled, and a compare-and-swap stops two replicas from appending at
//! the same offset. The running hash is not kept: the chunks are hashed again as
//! they are assembled. Calls the store and the blob driver.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use moor_api::Digest;
use moor_api::reference::DigestAlgorithm;
use moor_store::{ListOptions, Revision, Store, StoreError};
use serde::{Deserialize, Serialize};

use super::{
    UploadLimits, content_range, created, declared_len, out_of_order, progress, size_mismatch,
    upload_unknown,
};
use crate::registry::Registry;
use crate::registry::driver::BlobDriver;
use crate::registry::error::{Code, RegistryError};
use crate::registry::repos::RepoName;
use crate::registry::storage::LinkKind;

/// Where session records live in the store.
pub const PREFIX: &str = "/moor/registry/uploads/";

/// One chunk of a session: an object in the bucket.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ChunkRecord {
    /// The object's name within the session (its offset and a random suffix, so that
    /// two requests racing at one offset never write the same object).
    name: String,
    len: u64,
    /// The sha256 of its bytes.
    sha256: String,
}

/// A session's record in the store.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Record {
    /// Bytes acknowledged to the client: the sum of the chunks' lengths.
    size: u64,
    chunks: Vec<ChunkRecord>,
    /// The last request, in milliseconds since the Unix epoch.
    touched_ms: u64,
}

impl Record {
    fn expired(&self, idle: Duration) -> bool {
        now_ms().saturating_sub(self.touched_ms) > idle.as_millis() as u64
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn store_error(e: StoreError) -> RegistryError {
    RegistryError::internal(format!("upload sessions in the store: {e}"))
}

/// The shared sessions: the store that records them, the driver that keeps their
/// chunks.
pub(crate) struct SharedUploads {
    store: Arc<dyn Store>,
    driver: Arc<dyn BlobDriver>,
    limits: UploadLimits,
}

fn key(repo: &RepoName, id: &str) -> String {
    format!("{PREFIX}{}/{}/{id}", repo.namespace, repo.stream)
}

impl SharedUploads {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        driver: Arc<dyn BlobDriver>,
        limits: UploadLimits,
    ) -> Self {
        SharedUploads {
            store,
            driver,
            limits,
        }
    }

    /// Forgets session `id` (record and chunks), if its record is still at `rev`.
    async fn forget(&self, key: &str, id: &str, rev: Option<Revision>) {
        match self.store.delete(key, rev).await {
            Ok(_) | Err(StoreError::NotFound(_)) => {}
            Err(StoreError::Conflict { .. }) => return, // touched meanwhile: alive
            Err(e) => {
                tracing::warn!(session = id, error = %e, "forgetting an upload session failed")
            }
        }
        if let Err(e) = self.driver.remove_chunks(id).await {
            tracing::warn!(session = id, error = %e, "removing an upload session's chunks failed");
        }
    }

    /// Every live session's key; expired ones are forgotten on the way.
    async fn live(&self) -> Result<Vec<String>, RegistryError> {
        let listed = self
            .store
            .list(PREFIX, ListOptions::default())
            .await
            .map_err(store_error)?;
        let mut out = Vec::new();
        for kv in listed.kvs {
            let expired = serde_json::from_slice::<Record>(&kv.value)
                .map(|r| r.expired(self.limits.idle_timeout))
                .unwrap_or(true);
            if expired {
                let id = kv.key.rsplit('/').next().unwrap_or_default().to_string();
                self.forget(&kv.key, &id, Some(kv.mod_revision)).await;
            } else {
                out.push(kv.key);
            }
        }
        Ok(out)
    }

    /// Forgets idle sessions now (every replica's reaper calls this periodically).
    pub(crate) async fn reap(&self) {
        if let Err(e) = self.live().await {
            tracing::warn!(error = %e, "expiring upload sessions failed");
        }
    }

    /// Opens a session for `repo` unless a cap is reached (counted over every
    /// replica's sessions; replicas starting sessions at the same instant may pass
    /// a cap by as many); returns its id.
    async fn open(&self, repo: &RepoName) -> Result<String, RegistryError> {
        let live = self.live().await?;
        let repo_prefix = format!("{PREFIX}{}/{}/", repo.namespace, repo.stream);
        let in_repo = live.iter().filter(|k| k.starts_with(&repo_prefix)).count();
        super::check_caps_counts(&self.limits, live.len(), in_repo)?;
        let id = uuid::Uuid::new_v4().to_string();
        let record = Record {
            touched_ms: now_ms(),
            ..Record::default()
        };
        self.store
            .create(&key(repo, &id), record_bytes(&record)?)
            .await
            .map_err(store_error)?;
        Ok(id)
    }

    /// Session `id` of `repo` and its record's revision; BLOB_UPLOAD_UNKNOWN when
    /// there is none or it expired (then it is forgotten).
    async fn load(&self, repo: &RepoName, id: &str) -> Result<(Record, Revision), RegistryError> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(upload_unknown(id));
        }
        let key = key(repo, id);
        let Some(kv) = self.store.get(&key).await.map_err(store_error)? else {
            return Err(upload_unknown(id));
        };
        let record: Record = serde_json::from_slice(&kv.value).map_err(|_| upload_unknown(id))?;
        if record.expired(self.limits.idle_timeout) {
            self.forget(&key, id, Some(kv.mod_revision)).await;
            return Err(upload_unknown(id));
        }
        Ok((record, kv.mod_revision))
    }

    /// Writes `body` as the next chunk of session `id` at `offset`; `None` when it
    /// carried no bytes. With `declared`, the body must be exactly that long.
    async fn write_chunk(
        &self,
        id: &str,
        offset: u64,
        body: Body,
        declared: Option<u64>,
    ) -> Result<Option<ChunkRecord>, RegistryError> {
        let name = format!(
            "{offset:020}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let mut stream = body.into_data_stream();
        let mut writer = None;
        let mut got = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk: Bytes = chunk.map_err(|e| {
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
            if chunk.is_empty() {
                continue;
            }
            let w = match &mut writer {
                Some(w) => w,
                None => writer.insert(self.driver.chunk_writer(id, &name).await?),
            };
            w.write(chunk).await?;
        }
        if let Some(n) = declared
            && got != n
        {
            return Err(size_mismatch(n, got, ""));
        }
        let Some(writer) = writer else {
            return Ok(None);
        };
        let len = writer.size();
        let sha256 = writer.finish().await?;
        Ok(Some(ChunkRecord {
            name,
            len,
            sha256: sha256.to_string(),
        }))
    }

    /// Replaces session `id`'s record at `rev`; `false` when another request changed
    /// or ended it meanwhile.
    async fn save(
        &self,
        repo: &RepoName,
        id: &str,
        record: &Record,
        rev: Revision,
    ) -> Result<bool, RegistryError> {
        match self
            .store
            .update(&key(repo, id), record_bytes(record)?, rev)
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Assembles session `id`'s chunks into blob `digest`, verified before visible.
    async fn assemble(
        &self,
        reg: &Registry,
        id: &str,
        record: &Record,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        if let [only] = record.chunks.as_slice()
            && digest.algorithm() == DigestAlgorithm::Sha256
            && only.sha256 == digest.as_str()
            && self
                .driver
                .promote_chunk(id, &only.name, digest, only.len)
                .await?
        {
            return Ok(());
        }
        if record.size == 0 {
            return reg.content_put(digest, Bytes::new()).await;
        }
        let mut staged = self.driver.stage_as(digest).await?;
        for c in &record.chunks {
            let Some(mut bytes) = self.driver.chunk_read(id, &c.name).await? else {
                return Err(RegistryError::internal(format!(
                    "upload session {id}: chunk {} is missing from the bucket",
                    c.name
                )));
            };
            while let Some(b) = bytes.next().await {
                staged.write(b.map_err(RegistryError::internal)?).await?;
            }
        }
        staged.commit(digest, Some(record.size)).await?;
        Ok(())
    }
}

fn record_bytes(record: &Record) -> Result<Bytes, RegistryError> {
    serde_json::to_vec(record)
        .map(Bytes::from)
        .map_err(RegistryError::internal)
}

/// `POST .../blobs/uploads/` (a session, not a monolithic upload).
pub(super) async fn start(
    shared: &SharedUploads,
    repo: &RepoName,
) -> Result<Response, RegistryError> {
    let id = shared.open(repo).await?;
    Ok(progress(repo, &id, 0, StatusCode::ACCEPTED))
}

/// `GET .../blobs/uploads/<id>`.
pub(super) async fn status(
    shared: &SharedUploads,
    repo: &RepoName,
    id: &str,
) -> Result<Response, RegistryError> {
    let (mut record, rev) = shared.load(repo, id).await?;
    record.touched_ms = now_ms();
    // A status that races a chunk needs no retry: the chunk touched the session too.
    shared.save(repo, id, &record, rev).await?;
    Ok(progress(repo, id, record.size, StatusCode::NO_CONTENT))
}

/// `PATCH .../blobs/uploads/<id>`.
pub(super) async fn patch(
    shared: &SharedUploads,
    repo: &RepoName,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, RegistryError> {
    let (mut record, rev) = shared.load(repo, id).await?;
    let range = content_range(headers);
    match range {
        Some(Err(())) => {
            return Err(RegistryError::new(
                Code::BlobUploadInvalid,
                "invalid Content-Range header",
            ));
        }
        Some(Ok((start, end))) if start != record.size || end < start => {
            return Ok(out_of_order(repo, id, start, record.size));
        }
        _ => {}
    }
    let declared = declared_len(headers, range.and_then(Result::ok))?;
    let chunk = match shared.write_chunk(id, record.size, body, declared).await {
        Ok(c) => c,
        Err(e) => {
            // A failed chunk leaves the upload unusable: forget it.
            shared.forget(&key(repo, id), id, None).await;
            return Err(e);
        }
    };
    let start = record.size;
    if let Some(c) = chunk {
        record.size += c.len;
        record.chunks.push(c);
    }
    record.touched_ms = now_ms();
    if !shared.save(repo, id, &record, rev).await? {
        // Another chunk landed first (on this replica or another): this one does not
        // count. The client asks where the upload stands and goes on from there.
        let (now, _) = shared.load(repo, id).await?;
        return Ok(out_of_order(repo, id, start, now.size));
    }
    Ok(progress(repo, id, record.size, StatusCode::ACCEPTED))
}

/// `PUT .../blobs/uploads/<id>?digest=`.
pub(super) async fn finish(
    reg: &Registry,
    shared: &SharedUploads,
    repo: &RepoName,
    id: &str,
    digest: &Digest,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, RegistryError> {
    let (mut record, rev) = shared.load(repo, id).await?;
    let range = content_range(headers).and_then(Result::ok);
    if let Some((start, _)) = range
        && start != record.size
    {
        // A closing chunk out of order leaves the session open, as a PATCH does.
        return Ok(out_of_order(repo, id, start, record.size));
    }
    // A closing PUT often carries no body (Content-Length: 0) whatever its range says.
    let declared = match crate::registry::header_str(headers, "content-length").map(str::trim) {
        Some("0") => Some(0),
        _ => declared_len(headers, range)?,
    };
    let key = key(repo, id);
    let closing = shared.write_chunk(id, record.size, body, declared).await;
    // Whatever happens now ends the session: claimed by deleting its record at the
    // revision read (a request racing on another replica finds it gone).
    match shared.store.delete(&key, Some(rev)).await {
        Ok(_) => {}
        Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {
            return Err(upload_unknown(id));
        }
        Err(e) => return Err(store_error(e)),
    }
    let result = async {
        if let Some(c) = closing? {
            record.size += c.len;
            record.chunks.push(c);
        }
        let _gc = reg.gc.read().await;
        shared.assemble(reg, id, &record, digest).await?;
        reg.links
            .link(&repo.namespace, &repo.stream, LinkKind::Layer, digest)
            .await?;
        Ok::<_, RegistryError>(())
    }
    .await;
    if let Err(e) = shared.driver.remove_chunks(id).await {
        tracing::warn!(session = id, error = %e, "removing an upload session's chunks failed");
    }
    result?;
    Ok(created(repo, digest))
}

/// `DELETE .../blobs/uploads/<id>`.
pub(super) async fn cancel(
    shared: &SharedUploads,
    repo: &RepoName,
    id: &str,
) -> Result<Response, RegistryError> {
    shared.load(repo, id).await?;
    shared.forget(&key(repo, id), id, None).await;
    Ok(axum::response::IntoResponse::into_response(
        StatusCode::NO_CONTENT,
    ))
}
