//! `/v2/<ns>/<stream>/blobs/<digest>`: GET (with `Range`) and HEAD of blobs the
//! stream may serve, from the cache or pulled through (a HEAD of a blob not cached
//! asks the upstream with a HEAD, downloading nothing); DELETE of a blob pushed into
//! the repository. A blob of another stream is BLOB_UNKNOWN: there is no probing
//! across streams or namespaces.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use moor_api::Digest;

use super::error::{Code, RegistryError};
use super::repos::{Origin, RepoName};
use super::storage::LinkKind;
use super::{Registry, parse_digest};

/// Read size when serving a cached blob.
const READ_CHUNK: usize = 512 * 1024;

/// A read of the next chunk of a cached blob, on the blocking pool.
type ChunkRead = tokio::task::JoinHandle<std::io::Result<Vec<u8>>>;

/// Starts reading the next chunk (at most `left` bytes) from the file's position.
fn read_chunk(file: &Arc<std::fs::File>, left: u64) -> Option<ChunkRead> {
    (left > 0).then(|| {
        let file = file.clone();
        let want = left.min(READ_CHUNK as u64);
        // Allocated on the runtime's thread, which also frees it once it is sent (see
        // `pullthrough::read_growing`).
        let mut buf = Vec::with_capacity(want as usize);
        tokio::task::spawn_blocking(move || {
            // `read_to_end` reads into the spare capacity without zeroing it first.
            (&*file).take(want).read_to_end(&mut buf).map(|_| buf)
        })
    })
}

/// The body of `len` bytes of `file` from its current position. Each chunk is read on
/// the blocking pool straight into the buffer that is sent, and the next chunk is
/// read while this one is written to the socket. (`tokio::fs::File` behind a
/// `ReaderStream` reads into its own buffer and copies from there, and reads only
/// once the socket has taken the previous chunk: one more copy of every byte, and no
/// overlap of disk and socket.)
fn file_body(file: std::fs::File, len: u64) -> Body {
    let file = Arc::new(file);
    let first = read_chunk(&file, len);
    let chunks = futures::stream::unfold((file, len, first), |(file, left, pending)| async move {
        let buf = match pending?.await {
            Ok(Ok(buf)) if !buf.is_empty() => buf,
            Ok(Ok(_)) => {
                let e = std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the blob is shorter than its size",
                );
                return Some((Err(e), (file, 0, None)));
            }
            Ok(Err(e)) => return Some((Err(e), (file, 0, None))),
            Err(e) => return Some((Err(std::io::Error::other(e)), (file, 0, None))),
        };
        let left = left - buf.len() as u64;
        let next = read_chunk(&file, left);
        Some((Ok(Bytes::from(buf)), (file, left, next)))
    });
    Body::from_stream(chunks)
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` against a blob of `size` bytes.
fn parse_range(value: &str, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // several ranges: answer with the whole blob
    }
    let (a, b) = spec.split_once('-')?;
    let range = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            if n == 0 {
                return Some(Err(()));
            }
            (size.saturating_sub(n), size.checked_sub(1)?)
        }
        (a, "") => (a.parse().ok()?, size.saturating_sub(1)),
        (a, b) => (
            a.parse().ok()?,
            b.parse::<u64>().ok()?.min(size.saturating_sub(1)),
        ),
    };
    if range.0 >= size || range.0 > range.1 {
        return Some(Err(()));
    }
    Some(Ok(range))
}

/// Where the blob can come from, or BLOB_UNKNOWN.
async fn origin(reg: &Registry, repo: &RepoName, digest: &Digest) -> Result<Origin, RegistryError> {
    let stream = reg.repos.stream(repo).await?;
    reg.repos
        .blob_origin(repo, stream.as_deref(), digest)
        .await?
        .ok_or_else(|| RegistryError::blob_unknown(digest.as_str()))
}

fn blob_headers(digest: &Digest) -> [(header::HeaderName, HeaderValue); 3] {
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        ),
        (
            header::HeaderName::from_static("docker-content-digest"),
            HeaderValue::from_str(digest.as_str()).expect("a digest is a header value"),
        ),
        (header::ACCEPT_RANGES, HeaderValue::from_static("bytes")),
    ]
}

/// The status, first byte and length that the request's `Range` asks of a blob of
/// `size` bytes; RANGE_INVALID (416) outside it.
fn requested_range(
    headers: &HeaderMap,
    size: u64,
) -> Result<(StatusCode, u64, u64), RegistryError> {
    let range = super::header_str(headers, "range").and_then(|r| parse_range(r, size));
    match range {
        Some(Err(())) => Err(RegistryError::new(
            Code::RangeInvalid,
            format!("the range is outside the blob's {size} bytes"),
        )
        .header(header::CONTENT_RANGE, &format!("bytes */{size}"))),
        Some(Ok((a, b))) => Ok((StatusCode::PARTIAL_CONTENT, a, b - a + 1)),
        None => Ok((StatusCode::OK, 0, size)),
    }
}

/// Adds `Content-Length` and, for a 206, `Content-Range`.
fn with_length(
    mut resp: Response,
    status: StatusCode,
    start: u64,
    len: u64,
    size: u64,
) -> Response {
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if status == StatusCode::PARTIAL_CONTENT {
        let v = format!("bytes {start}-{}/{size}", start + len - 1);
        resp.headers_mut().insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&v).expect("a range is a header value"),
        );
    }
    resp
}

/// A blob from the remote driver (`--blob-store s3://`), ranges included.
async fn serve_remote(
    remote: &dyn super::driver::BlobDriver,
    digest: &Digest,
    headers: &HeaderMap,
    head: bool,
) -> Result<Option<Response>, RegistryError> {
    let Some(size) = remote.stat(digest).await? else {
        return Ok(None);
    };
    let (status, start, len) = requested_range(headers, size)?;
    let body = if head {
        Body::empty()
    } else {
        match remote.read_range(digest, start..start + len).await? {
            Some(stream) => Body::from_stream(stream),
            None => return Ok(None), // removed since the stat
        }
    };
    let resp = (status, blob_headers(digest), body).into_response();
    Ok(Some(with_length(resp, status, start, len, size)))
}

async fn serve_cached(
    reg: &Registry,
    digest: &Digest,
    headers: &HeaderMap,
    head: bool,
) -> Result<Option<Response>, RegistryError> {
    if let Some(remote) = &reg.remote {
        return serve_remote(&**remote, digest, headers, head).await;
    }
    let Some(file) = reg.blobs.open_blob(digest).await? else {
        return Ok(None);
    };
    let size = file
        .metadata()
        .await
        .map_err(RegistryError::internal)?
        .len();
    let (status, start, len) = requested_range(headers, size)?;
    let resp = if head {
        (status, blob_headers(digest), Body::empty()).into_response()
    } else {
        let mut file = file.into_std().await;
        if start > 0 {
            // lseek only moves the offset: no I/O to wait for.
            file.seek(SeekFrom::Start(start))
                .map_err(RegistryError::internal)?;
        }
        (status, blob_headers(digest), file_body(file, len)).into_response()
    };
    Ok(Some(with_length(resp, status, start, len, size)))
}

async fn serve(
    reg: Arc<Registry>,
    ns: String,
    stream: String,
    digest: String,
    headers: HeaderMap,
    head: bool,
) -> Result<Response, RegistryError> {
    let repo = RepoName::parse(&ns, &stream)?;
    let digest = parse_digest(&digest)?;
    let origin = origin(&reg, &repo, &digest).await?;
    if let Some(resp) = serve_cached(&reg, &digest, &headers, head).await? {
        return Ok(resp);
    }
    let Some(upstream) = &origin.repository else {
        return Err(RegistryError::blob_unknown(digest.as_str()));
    };
    let opts = super::manifests::pull_options(&reg, &repo.namespace, origin.insecure).await;
    if head && let Some(size) = reg.pull.blob_size(upstream, &digest, &opts).await? {
        // The upstream's HEAD tells the size: nothing is downloaded for a HEAD.
        let mut resp = (StatusCode::OK, blob_headers(&digest), Body::empty()).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        return Ok(resp);
    }
    let Some(pulled) = reg.pull.blob(upstream, &digest, opts).await? else {
        return serve_cached(&reg, &digest, &headers, head)
            .await?
            .ok_or_else(|| RegistryError::blob_unknown(digest.as_str()));
    };
    if head {
        // An upstream that announced no size: it is certain only once the download is
        // through and verified. Finish it, then answer from the cache, or (while the
        // verified blob is still being committed to the cache) with the size read.
        let mut body = pulled.body;
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            size += chunk
                .map_err(|e| {
                    RegistryError::new(Code::Unavailable, e.to_string())
                        .status(StatusCode::BAD_GATEWAY)
                })?
                .len() as u64;
        }
        if let Some(resp) = serve_cached(&reg, &digest, &headers, true).await? {
            return Ok(resp);
        }
        let mut resp = (StatusCode::OK, blob_headers(&digest), Body::empty()).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        return Ok(resp);
    }
    let mut resp = (
        StatusCode::OK,
        blob_headers(&digest),
        Body::from_stream(pulled.body),
    )
        .into_response();
    if let Some(size) = pulled.size {
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    Ok(resp)
}

pub(super) async fn get(
    State(reg): State<Arc<Registry>>,
    Path((ns, stream, digest)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, RegistryError> {
    serve(reg, ns, stream, digest, headers, false).await
}

pub(super) async fn head(
    State(reg): State<Arc<Registry>>,
    Path((ns, stream, digest)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, RegistryError> {
    serve(reg, ns, stream, digest, headers, true).await
}

/// Removes a blob from the repository it was pushed into (the content stays until
/// `moor prune images` finds nothing uses it).
pub(super) async fn delete(
    State(reg): State<Arc<Registry>>,
    Path((ns, stream, digest)): Path<(String, String, String)>,
) -> Result<Response, RegistryError> {
    let repo = RepoName::parse(&ns, &stream)?;
    let digest = parse_digest(&digest)?;
    if reg
        .links
        .unlink(&repo.namespace, &repo.stream, LinkKind::Layer, &digest)
        .await?
    {
        Ok(StatusCode::ACCEPTED.into_response())
    } else {
        Err(RegistryError::blob_unknown(digest.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Some(Ok((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=5-1", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
