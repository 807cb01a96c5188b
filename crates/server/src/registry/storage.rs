//! The registry's content store on the filesystem: blobs (layers, configs and the
//! exact bytes of manifests) by content address, uploads in progress, and what each
//! repository was given by a push. Calls the filesystem only.
//!
//! ```text
//! <root>/                                   (<data-dir>/registry)
//! ├── blobs/
//! │   └── <algorithm>/<first two hex>/<hex>    the content; written once, never changed
//! ├── uploads/
//! │   └── <uuid>                              a monolithic upload or a pull-through
//! │                                           being written; removed at startup
//! ├── sessions/<uuid>/                        an upload session, kept across restarts
//! │   ├── data                                the bytes received so far
//! │   └── state.json                          its repository, size and last use
//! └── repositories/<namespace>/<stream>/
//!     ├── _layers/<algorithm>/<hex>           empty: the blob was pushed or mounted here
//!     ├── _manifests/<algorithm>/<hex>        empty: the manifest was pushed here
//!     └── _referrers/<algorithm>/<hex>/<algorithm>-<hex>
//!                                             the descriptor (JSON) of a manifest pushed
//!                                             here whose `subject` is the first digest
//! ```
//!
//! A blob reaches `blobs/` only by [`BlobWriter::commit`]: the bytes were hashed while
//! written to a file under `uploads/`, the digest matched, the file was fsynced, renamed
//! into place and the directory fsynced. Nothing half-written is ever visible, and a
//! blob acknowledged to a client survives a crash. Image streams and tags live in the
//! store, not here: a repository's tags are its stream's. With `--blob-store s3://`
//! the `repositories/` records are keys in the shared store instead
//! ([`links`](super::links)), and blobs live in the bucket.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use moor_api::Digest;
use moor_api::reference::{DigestAlgorithm, DigestHasher};

/// Errors of the content store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("digest mismatch: expected {expected}, the content is {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch { expected: u64, actual: u64 },
    /// The shared store that keeps repository links failed (`--blob-store s3://`).
    #[error("repository links in the store: {0}")]
    Store(#[from] moor_store::StoreError),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StorageError {
    let context = context.into();
    move |source| StorageError::Io { context, source }
}

/// What a repository holds besides its stream's images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// A blob pushed or mounted into the repository.
    Layer,
    /// A manifest pushed into the repository.
    Manifest,
}

impl LinkKind {
    /// `layer` or `manifest`.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Layer => "layer",
            LinkKind::Manifest => "manifest",
        }
    }

    fn dir(self) -> &'static str {
        match self {
            LinkKind::Layer => "_layers",
            LinkKind::Manifest => "_manifests",
        }
    }
}

/// A digest linked into a repository by a push or a mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub namespace: String,
    pub stream: String,
    pub kind: LinkKind,
    pub digest: Digest,
    /// When the link was made.
    pub modified: std::time::SystemTime,
}

/// A manifest pushed into `namespace/stream` whose `subject` is another manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferrerRecord {
    pub namespace: String,
    pub stream: String,
    pub subject: Digest,
    pub manifest: Digest,
}

/// The content store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct BlobStore {
    root: Arc<PathBuf>,
}

impl BlobStore {
    /// Opens (creating) the store under `root` and removes leftover uploads.
    pub fn open(root: &Path) -> Result<Self, StorageError> {
        let mut builder = private_dir_builder();
        builder.recursive(true);
        for dir in ["blobs", "uploads", "sessions", "repositories"] {
            builder
                .create(root.join(dir))
                .map_err(io(format!("creating {}", root.join(dir).display())))?;
        }
        if let Ok(entries) = std::fs::read_dir(root.join("uploads")) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(BlobStore {
            root: Arc::new(root.to_path_buf()),
        })
    }

    /// The directory the store was opened on.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the content of `digest` lives (whether or not it is there).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
    }

    /// The size of blob `digest`, if it is stored.
    pub async fn stat(&self, digest: &Digest) -> Option<u64> {
        tokio::fs::metadata(self.blob_path(digest))
            .await
            .ok()
            .map(|m| m.len())
    }

    /// The whole content of a small blob (a manifest or config), if stored.
    pub async fn read(&self, digest: &Digest) -> Result<Option<bytes::Bytes>, StorageError> {
        match tokio::fs::read(self.blob_path(digest)).await {
            Ok(b) => Ok(Some(b.into())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(format!("reading blob {digest}"))(e)),
        }
    }

    /// Opens blob `digest` for reading, if stored.
    pub async fn open_blob(
        &self,
        digest: &Digest,
    ) -> Result<Option<tokio::fs::File>, StorageError> {
        match tokio::fs::File::open(self.blob_path(digest)).await {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(format!("opening blob {digest}"))(e)),
        }
    }

    /// Removes blob `digest`; `false` when it was not there.
    pub fn remove_blob(&self, digest: &Digest) -> Result<bool, StorageError> {
        match std::fs::remove_file(self.blob_path(digest)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(format!("removing blob {digest}"))(e)),
        }
    }

    /// Every stored blob, with its size and modification time.
    pub fn list_blobs(&self) -> Result<Vec<(Digest, u64, std::time::SystemTime)>, StorageError> {
        let mut out = Vec::new();
        for alg in [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512] {
            let dir = self.root.join("blobs").join(alg.as_str());
            let Ok(prefixes) = std::fs::read_dir(&dir) else {
                continue;
            };
            for p in prefixes.flatten() {
                let Ok(files) = std::fs::read_dir(p.path()) else {
                    continue;
                };
                for f in files.flatten() {
                    let name = f.file_name().to_string_lossy().into_owned();
                    let Ok(d) = Digest::parse(&format!("{}:{name}", alg.as_str())) else {
                        continue;
                    };
                    if let Ok(m) = f.metadata() {
                        out.push((d, m.len(), m.modified().unwrap_or(std::time::UNIX_EPOCH)));
                    }
                }
            }
        }
        Ok(out)
    }

    /// A new temporary file under `uploads/`, hashed with `algorithm` as written.
    pub fn writer(&self, algorithm: DigestAlgorithm) -> Result<BlobWriter, StorageError> {
        let path = self
            .root
            .join("uploads")
            .join(uuid::Uuid::new_v4().to_string());
        let file = private_options()
            .create_new(true)
            .write(true)
            .read(true)
            .open(&path)
            .map_err(io(format!("creating {}", path.display())))?;
        Ok(BlobWriter {
            store: self.clone(),
            file: Some(file),
            path,
            hasher: Some(DigestHasher::new(algorithm)),
            size: 0,
            committed: false,
            keep: false,
        })
    }

    fn session_dir(&self, id: &str) -> PathBuf {
        self.root.join("sessions").join(id)
    }

    /// The writer of a new upload session `id`: its bytes go to `sessions/<id>/data`
    /// and stay there when the writer is dropped, until [`BlobWriter::discard_on_drop`]
    /// or [`remove_session`](Self::remove_session).
    pub fn session_writer(&self, id: &str) -> Result<BlobWriter, StorageError> {
        let dir = self.session_dir(id);
        private_dir_builder()
            .create(&dir)
            .map_err(io(format!("creating {}", dir.display())))?;
        let path = dir.join("data");
        let file = private_options()
            .create_new(true)
            .write(true)
            .read(true)
            .open(&path)
            .map_err(io(format!("creating {}", path.display())))?;
        Ok(BlobWriter {
            store: self.clone(),
            file: Some(file),
            path,
            hasher: Some(DigestHasher::new(DigestAlgorithm::Sha256)),
            size: 0,
            committed: false,
            keep: true,
        })
    }

    /// The writer of upload session `id` as a restart finds it: its data cut back to
    /// the `size` bytes its state records (bytes past it were never acknowledged).
    /// The digest is computed from the file at commit. `None` when the data is
    /// missing or shorter than `size`.
    pub fn resume_session(&self, id: &str, size: u64) -> Option<BlobWriter> {
        let path = self.session_dir(id).join("data");
        let file = std::fs::OpenOptions::new().write(true).open(&path).ok()?;
        if file.metadata().ok()?.len() < size || file.set_len(size).is_err() {
            return None;
        }
        Some(BlobWriter {
            store: self.clone(),
            file: None,
            path,
            hasher: None,
            size,
            committed: false,
            keep: true,
        })
    }

    /// Replaces the state of upload session `id` atomically (a 0600 temporary file,
    /// fsynced, renamed over the old one, the directory fsynced).
    pub fn write_session_state(&self, id: &str, state: &[u8]) -> Result<(), StorageError> {
        write_atomic(&self.session_dir(id), "state.json", state)
    }

    /// The state of upload session `id`, if it has one.
    pub fn read_session_state(&self, id: &str) -> Option<Vec<u8>> {
        std::fs::read(self.session_dir(id).join("state.json")).ok()
    }

    /// The upload sessions on disk, by id.
    pub fn session_ids(&self) -> Vec<String> {
        read_names(&self.root.join("sessions"))
    }

    /// Removes whatever upload session `id` left on disk.
    pub fn remove_session(&self, id: &str) {
        match std::fs::remove_dir_all(self.session_dir(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(session = id, error = %e, "removing an upload session failed")
            }
        }
    }

    /// A new temporary file under `uploads/` for content that a [`VerifyingStream`]
    /// already hashes as it passes (see [`BlobWriter::commit_verified`]).
    ///
    /// [`VerifyingStream`]: crate::upstream::BlobStream
    pub fn writer_unhashed(&self) -> Result<BlobWriter, StorageError> {
        let mut w = self.writer(DigestAlgorithm::Sha256)?;
        w.hasher = None;
        Ok(w)
    }

    /// Stores `bytes` as a blob after checking them against `digest` (durably).
    pub fn put(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StorageError> {
        if self.blob_path(digest).exists() {
            return if digest.matches(bytes) {
                Ok(())
            } else {
                Err(StorageError::DigestMismatch {
                    expected: digest.clone(),
                    actual: digest.of_same_algorithm(bytes),
                })
            };
        }
        let mut w = self.writer(digest.algorithm())?;
        w.write(bytes)?;
        w.commit(digest, None)
    }

    fn repo_dir(&self, ns: &str, stream: &str) -> PathBuf {
        self.root.join("repositories").join(ns).join(stream)
    }

    fn link_path(&self, ns: &str, stream: &str, kind: LinkKind, digest: &Digest) -> PathBuf {
        self.repo_dir(ns, stream)
            .join(kind.dir())
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// Records that `digest` was pushed (or mounted) into `ns/stream`, now: the link's
    /// modification time is when it was last pushed, which garbage collection reads.
    pub fn link(
        &self,
        ns: &str,
        stream: &str,
        kind: LinkKind,
        digest: &Digest,
    ) -> Result<(), StorageError> {
        let path = self.link_path(ns, stream, kind, digest);
        if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&path) {
            return f
                .set_modified(std::time::SystemTime::now())
                .map_err(io(format!("touching {}", path.display())));
        }
        let dir = path.parent().expect("a link has a parent");
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        private_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .and_then(|f| f.sync_all())
            .map_err(io(format!("writing {}", path.display())))?;
        sync_dir(dir)
    }

    /// Whether `digest` was pushed (or mounted) into `ns/stream`.
    pub fn is_linked(&self, ns: &str, stream: &str, kind: LinkKind, digest: &Digest) -> bool {
        self.link_path(ns, stream, kind, digest).exists()
    }

    /// Forgets that `digest` was pushed into `ns/stream`; `false` when it was not.
    pub fn unlink(
        &self,
        ns: &str,
        stream: &str,
        kind: LinkKind,
        digest: &Digest,
    ) -> Result<bool, StorageError> {
        match std::fs::remove_file(self.link_path(ns, stream, kind, digest)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(format!("unlinking {digest}"))(e)),
        }
    }

    /// Every digest linked into any repository, with when it was linked.
    pub fn list_links(&self) -> Vec<Link> {
        let mut out = Vec::new();
        let repos = self.root.join("repositories");
        for ns in read_names(&repos) {
            for stream in read_names(&repos.join(&ns)) {
                for kind in [LinkKind::Layer, LinkKind::Manifest] {
                    let base = self.repo_dir(&ns, &stream).join(kind.dir());
                    for alg in read_names(&base) {
                        for hex in read_names(&base.join(&alg)) {
                            let Ok(digest) = Digest::parse(&format!("{alg}:{hex}")) else {
                                continue;
                            };
                            let Ok(meta) = std::fs::metadata(base.join(&alg).join(&hex)) else {
                                continue; // unlinked meanwhile
                            };
                            out.push(Link {
                                namespace: ns.clone(),
                                stream: stream.clone(),
                                kind,
                                digest,
                                modified: meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                            });
                        }
                    }
                }
            }
        }
        out
    }

    /// When `digest` was linked into `ns/stream`, if it is.
    pub fn link_modified(
        &self,
        ns: &str,
        stream: &str,
        kind: LinkKind,
        digest: &Digest,
    ) -> Option<std::time::SystemTime> {
        std::fs::metadata(self.link_path(ns, stream, kind, digest))
            .ok()
            .map(|m| m.modified().unwrap_or(std::time::UNIX_EPOCH))
    }

    /// The namespaces and streams that have a record here (links or referrers), as
    /// `(ns, stream)`.
    pub fn list_repositories(&self) -> Vec<(String, String)> {
        let repos = self.root.join("repositories");
        let mut out = Vec::new();
        for ns in read_names(&repos) {
            for stream in read_names(&repos.join(&ns)) {
                out.push((ns.clone(), stream));
            }
        }
        out
    }

    /// Every referrer record: a manifest pushed into a repository whose `subject` is
    /// another manifest.
    pub fn list_referrers(&self) -> Vec<ReferrerRecord> {
        let mut out = Vec::new();
        for (ns, stream) in self.list_repositories() {
            let base = self.repo_dir(&ns, &stream).join("_referrers");
            for alg in read_names(&base) {
                for hex in read_names(&base.join(&alg)) {
                    let Ok(subject) = Digest::parse(&format!("{alg}:{hex}")) else {
                        continue;
                    };
                    for name in read_names(&base.join(&alg).join(&hex)) {
                        let Some(manifest) = name
                            .split_once('-')
                            .and_then(|(a, h)| Digest::parse(&format!("{a}:{h}")).ok())
                        else {
                            continue; // a temporary file, or not ours
                        };
                        out.push(ReferrerRecord {
                            namespace: ns.clone(),
                            stream: stream.clone(),
                            subject: subject.clone(),
                            manifest,
                        });
                    }
                }
            }
        }
        out
    }

    /// Records that manifest `descriptor` (JSON) names `subject`, in `ns/stream`.
    pub fn add_referrer(
        &self,
        ns: &str,
        stream: &str,
        subject: &Digest,
        manifest: &Digest,
        descriptor: &[u8],
    ) -> Result<(), StorageError> {
        let dir = self.referrers_dir(ns, stream, subject);
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let name = format!("{}-{}", manifest.algorithm().as_str(), manifest.hex());
        write_atomic(&dir, &name, descriptor)
    }

    /// The descriptors (JSON) of manifests in `ns/stream` whose subject is `subject`.
    pub fn referrers(&self, ns: &str, stream: &str, subject: &Digest) -> Vec<Vec<u8>> {
        let dir = self.referrers_dir(ns, stream, subject);
        let mut names = read_names(&dir);
        names.retain(|n| !n.starts_with('.'));
        names.sort();
        names
            .into_iter()
            .filter_map(|n| std::fs::read(dir.join(n)).ok())
            .collect()
    }

    /// Forgets referrer `manifest` of every subject in `ns/stream`.
    pub fn remove_referrer(&self, ns: &str, stream: &str, manifest: &Digest) {
        let name = format!("{}-{}", manifest.algorithm().as_str(), manifest.hex());
        let base = self.repo_dir(ns, stream).join("_referrers");
        for alg in read_names(&base) {
            for hex in read_names(&base.join(&alg)) {
                let _ = std::fs::remove_file(base.join(&alg).join(hex).join(&name));
            }
        }
    }

    fn referrers_dir(&self, ns: &str, stream: &str, subject: &Digest) -> PathBuf {
        self.repo_dir(ns, stream)
            .join("_referrers")
            .join(subject.algorithm().as_str())
            .join(subject.hex())
    }

    /// Removes everything recorded for `ns/stream` (the stream was deleted).
    pub fn remove_repository(&self, ns: &str, stream: &str) -> Result<(), StorageError> {
        match std::fs::remove_dir_all(self.repo_dir(ns, stream)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(format!("removing repository {ns}/{stream}"))(e)),
        }
    }
}

/// Options that create files readable by moor's user only (0600, whatever the
/// umask): blobs may hold private images.
fn private_options() -> std::fs::OpenOptions {
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    #[allow(unused_mut)]
    let mut opts = std::fs::OpenOptions::new();
    #[cfg(unix)]
    opts.mode(0o600);
    opts
}

/// A builder of directories readable by moor's user only (0700, whatever the umask).
fn private_dir_builder() -> std::fs::DirBuilder {
    #[allow(unused_mut)]
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
}

/// Writes `dir/name` atomically: a 0600 temporary file `.name.tmp`, fsynced, renamed
/// over `name`, then the directory fsynced.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = private_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io(format!("writing {}", tmp.display())))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, dir.join(name)).map_err(io(format!("renaming {}", tmp.display())))?;
    sync_dir(dir)
}

fn read_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("syncing {}", dir.display())))
}

/// A blob being written: bytes go to a temporary file and through a hasher; only
/// [`commit`](Self::commit) with the matching digest makes them a blob. Dropped
/// without a commit, the temporary file is removed. Writes are blocking: call from
/// `spawn_blocking`, or with small buffers.
#[derive(Debug)]
pub struct BlobWriter {
    store: BlobStore,
    file: Option<std::fs::File>,
    path: PathBuf,
    hasher: Option<DigestHasher>,
    size: u64,
    committed: bool,
    /// Whether the file outlives the writer when not committed (an upload session's).
    keep: bool,
}

impl BlobWriter {
    /// Makes the file go with the writer when it is dropped uncommitted, as a
    /// temporary file's does (an upload session that ends).
    pub fn discard_on_drop(&mut self) {
        self.keep = false;
    }

    /// Appends `bytes` (reopening the file after [`release`](Self::release)).
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        let file = self.open_file()?;
        file.write_all(bytes)
            .map_err(io(format!("writing {}", self.path.display())))?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(bytes);
        }
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Closes the temporary file until the next write, so that a writer waiting
    /// between requests (an upload session) holds no descriptor.
    pub fn release(&mut self) {
        self.file = None;
    }

    /// The temporary file, opened again for appending if it was released.
    fn open_file(&mut self) -> Result<&mut std::fs::File, StorageError> {
        let file = match self.file.take() {
            Some(f) => f,
            None => std::fs::OpenOptions::new()
                .append(true)
                .read(true)
                .open(&self.path)
                .map_err(io(format!("reopening {}", self.path.display())))?,
        };
        Ok(self.file.insert(file))
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The temporary file, for reading what was written so far.
    pub fn file(&self) -> Option<&std::fs::File> {
        self.file.as_ref()
    }

    /// The digest of what was written, in `algorithm` (re-reading the file when the
    /// writer hashed with another one).
    fn digest_as(&mut self, algorithm: DigestAlgorithm) -> Result<Digest, StorageError> {
        if let Some(h) = self.hasher.take()
            && h.algorithm() == algorithm
        {
            return Ok(h.finish());
        }
        let mut h = DigestHasher::new(algorithm);
        let mut f = std::fs::File::open(&self.path)
            .map_err(io(format!("reading {}", self.path.display())))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = std::io::Read::read(&mut f, &mut buf)
                .map_err(io(format!("reading {}", self.path.display())))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(h.finish())
    }

    /// Makes the content blob `expected` if it hashes to it (and has `size` bytes,
    /// when given): fsync, rename into place, fsync the directory. On a mismatch
    /// nothing is stored and the temporary file is removed.
    pub fn commit(mut self, expected: &Digest, size: Option<u64>) -> Result<(), StorageError> {
        if let Some(size) = size
            && size != self.size
        {
            return Err(StorageError::SizeMismatch {
                expected: size,
                actual: self.size,
            });
        }
        let actual = self.digest_as(expected.algorithm())?;
        if &actual != expected {
            return Err(StorageError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        self.commit_verified(expected)
    }

    /// Makes the content blob `digest`, which the caller verified while the bytes
    /// passed (an upstream [`BlobStream`](crate::upstream::BlobStream) ends with an
    /// error instead when they do not match): fsync, rename, fsync the directory.
    pub fn commit_verified(mut self, digest: &Digest) -> Result<(), StorageError> {
        let expected = digest;
        self.open_file()?;
        let file = self.file.take().expect("opened above");
        file.sync_all()
            .map_err(io(format!("syncing {}", self.path.display())))?;
        drop(file);
        let dest = self.store.blob_path(expected);
        let dir = dest.parent().expect("a blob path has a parent");
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        std::fs::rename(&self.path, &dest).map_err(io(format!("storing blob {expected}")))?;
        self.committed = true;
        sync_dir(dir)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.committed && !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_verified_content_becomes_a_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let good = Digest::sha256_of(b"hello");
        let mut w = store.writer(DigestAlgorithm::Sha256).unwrap();
        w.write(b"hel").unwrap();
        w.write(b"lo").unwrap();
        w.commit(&good, Some(5)).unwrap();
        assert_eq!(std::fs::read(store.blob_path(&good)).unwrap(), b"hello");

        let wrong = Digest::sha256_of(b"other");
        let mut w = store.writer(DigestAlgorithm::Sha256).unwrap();
        w.write(b"hello!").unwrap();
        assert!(matches!(
            w.commit(&wrong, None),
            Err(StorageError::DigestMismatch { .. })
        ));
        assert!(!store.blob_path(&wrong).exists());
        assert_eq!(
            std::fs::read_dir(dir.path().join("uploads"))
                .unwrap()
                .count(),
            0,
            "the temporary file is gone"
        );
    }

    #[test]
    fn a_released_writer_reopens_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut w = store.writer(DigestAlgorithm::Sha256).unwrap();
        w.write(b"hel").unwrap();
        w.release();
        assert!(w.file().is_none(), "no descriptor while released");
        w.write(b"lo").unwrap();
        w.release();
        let d = Digest::sha256_of(b"hello");
        w.commit(&d, Some(5)).unwrap();
        assert_eq!(std::fs::read(store.blob_path(&d)).unwrap(), b"hello");
    }

    #[test]
    fn sha512_is_verified_even_when_hashed_as_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let d = Digest::sha512_of(b"abc");
        let mut w = store.writer(DigestAlgorithm::Sha256).unwrap();
        w.write(b"abc").unwrap();
        w.commit(&d, None).unwrap();
        assert_eq!(store.list_blobs().unwrap()[0].0, d);
    }

    #[test]
    fn links_and_referrers_are_per_repository() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let d = Digest::sha256_of(b"x");
        store.link("ns", "a", LinkKind::Layer, &d).unwrap();
        assert!(store.is_linked("ns", "a", LinkKind::Layer, &d));
        assert!(!store.is_linked("ns", "b", LinkKind::Layer, &d));
        assert!(!store.is_linked("ns", "a", LinkKind::Manifest, &d));
        let m = Digest::sha256_of(b"m");
        store.add_referrer("ns", "a", &d, &m, b"{}").unwrap();
        assert_eq!(store.referrers("ns", "a", &d), vec![b"{}".to_vec()]);
        assert!(store.referrers("ns", "b", &d).is_empty());
        let links = store.list_links();
        assert_eq!(links.len(), 1);
        assert_eq!(
            (links[0].stream.as_str(), links[0].kind),
            ("a", LinkKind::Layer)
        );
        // Linking again (a push of a blob the repository has) renews the link's time.
        let path = store.link_path("ns", "a", LinkKind::Layer, &d);
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(
            store.link_modified("ns", "a", LinkKind::Layer, &d),
            Some(old)
        );
        store.link("ns", "a", LinkKind::Layer, &d).unwrap();
        assert!(store.link_modified("ns", "a", LinkKind::Layer, &d).unwrap() > old);
        assert_eq!(
            store.list_referrers(),
            vec![ReferrerRecord {
                namespace: "ns".into(),
                stream: "a".into(),
                subject: d.clone(),
                manifest: m.clone(),
            }]
        );
        assert!(store.unlink("ns", "a", LinkKind::Layer, &d).unwrap());
        assert!(!store.unlink("ns", "a", LinkKind::Layer, &d).unwrap());
    }
}
