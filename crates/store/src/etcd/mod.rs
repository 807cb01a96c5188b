//! The etcd backend, on the kube-apiserver model: one etcd key per moor key under a
//! prefix per data set, `resourceVersion` from the key's `mod_revision`, writes as
//! single-key compare-and-swap transactions, lists at a revision, watches from a
//! revision with progress notification, and etcd's own compaction.
//!
//! Transactions keep to the shapes kine also accepts, so moor runs on kine too: every
//! transaction compares one key's `mod_revision` and has at most one operation per
//! branch: create is `mod(key) == 0 ? put`, update `mod(key) == R ? put : get`, delete
//! `mod(key) == R ? delete : get` (an unconditional delete reads the key first). The
//! one exception is [`Store::txn`] of several writes (the notification outbox written
//! with its stream), a Txn of several compares and puts.
//!
//! **kine.** `kine://HOST:PORT[,...][/PREFIX]` is this backend talking to kine (k3s's
//! etcd shim), which accepts only the single-key shapes: [`Store::txn`] of one write
//! is that write's create or update, of several fails with [`StoreError::Unsupported`]
//! as kine itself would, and [`Store::multi_key_txn`] says so (the server then records
//! notifications from the streams' watch instead).
//!
//! **Revisions.** etcd's revision counter starts at 1 for an empty cluster and its first
//! write gets 2; the [`Store`] contract says an empty store is at 0 and the first write
//! gets 1. Every revision crossing this module is therefore etcd's minus one
//! ([`REVISION_OFFSET`]): a moor revision R is etcd revision R + 1, in both directions,
//! on every replica alike (it is a constant, not a per-process base). A fresh etcd then
//! meets the contract exactly; several data sets in one etcd share its counter, so each
//! sees gaps, as the contract allows for a shared store.
//!
//! **Keys.** A moor key `/a/b` is the etcd key `PREFIX/a/b`; moor keys begin with `/`,
//! so the prefixes `/moor` and `/moor2` never see each other's keys.
//!
//! **Endpoint failures.** Each endpoint has a client of its own; requests go to the
//! current one and move to the next on failure, within [`EtcdOptions::deadline`].
//! Reads are retried as they are. A write is retried only when it certainly did not
//! apply (the connection was never made, or the member had no leader); when its outcome
//! is unknown (a timeout, a reset connection) the key is read back to decide: see
//! `resolve.rs`. A watch whose stream breaks re-opens on the next member from the
//! revision after its last event (`watch.rs`).
//!
//! **Compaction.** One compactor per etcd, elected as kube-apiserver's is: each round,
//! every process compares the version of [`COMPACT_REV_KEY`] with the one it saw last
//! round and puts the key if it is unchanged; the process whose transaction succeeds
//! compacts to the revision it read one round earlier, the others take the new
//! version and wait a full interval ([`Store::claim_compaction`]; the loop is the
//! server's `compactor`).
//!
//! **Bookmarks.** A watch opened with [`Store::watch_with_progress`] yields etcd's
//! progress notifications as bookmarks (`watch.rs`). Calls only etcd, through
//! `etcd-client`.

mod lease;
mod resolve;
mod watch;

pub use lease::LeaseId;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, GetResponse, KvClient,
    LeaseClient, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchClient,
};

use crate::{
    CompactionClaim, KeyValue, ListOptions, ListResult, ProgressStream, Revision, Store,
    StoreError, WatchStream,
};

/// etcd revision = moor revision + this (see the module doc).
pub const REVISION_OFFSET: i64 = 1;

/// The key of kube-apiserver's compactor election, outside every data set's prefix:
/// compaction is etcd-wide, so every moor data set (and a kube-apiserver) on one etcd
/// takes part in one election. kine recognises the election's transaction on this key
/// and answers it without compacting (it compacts on its own).
pub const COMPACT_REV_KEY: &str = "compact_rev_key";

/// The largest gRPC message this client accepts: etcd's own default limit for requests
/// is 1.5 MiB (`--max-request-bytes`), but a list page may hold many values.
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// Errors of connecting to etcd and of reading its options.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// The `etcd://` (or `kine://`) URL is malformed.
    #[error("etcd URL {0:?}: use etcd://HOST:PORT[,HOST:PORT...][/PREFIX] (or kine://...)")]
    Url(String),
    /// A TLS file could not be read.
    #[error("reading {}: {source}", path.display())]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `--etcd-certfile` without `--etcd-keyfile`, or the other way round.
    #[error("--etcd-certfile and --etcd-keyfile go together")]
    HalfIdentity,
    /// The client could not be made.
    #[error("etcd client for {endpoint}: {source}")]
    Client {
        /// The endpoint.
        endpoint: String,
        /// Why.
        #[source]
        source: etcd_client::Error,
    },
    /// No endpoint answered in time.
    #[error("no etcd endpoint answered: {0}")]
    Unreachable(#[source] StoreError),
}

/// TLS to etcd: `--etcd-cafile`, `--etcd-certfile`, `--etcd-keyfile`.
#[derive(Clone, Debug, Default)]
pub struct EtcdTls {
    /// CA certificates (PEM) that sign the members' serving certificates.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM), with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM), with `cert_file`.
    pub key_file: Option<PathBuf>,
}

impl EtcdTls {
    /// Whether any TLS option is set (then endpoints are `https://`).
    pub fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some()
    }
}

/// How to reach etcd.
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    /// `HOST:PORT` of each member.
    pub endpoints: Vec<String>,
    /// The etcd key prefix of this data set, e.g. `/moor` (no trailing `/`).
    pub prefix: String,
    /// TLS, if any option is set.
    pub tls: EtcdTls,
    /// How long one request may take, retries on other endpoints included.
    pub deadline: Duration,
    /// How long one attempt on one endpoint may take.
    pub attempt_timeout: Duration,
    /// The bytes of undelivered events one watcher may hold before it is closed.
    pub watch_buffer_bytes: usize,
    /// The server is kine (`kine://`): transactions keep to single-key shapes.
    pub kine: bool,
}

impl EtcdOptions {
    /// Options from `etcd://HOST:PORT[,HOST:PORT...][/PREFIX]` (prefix default `/moor`),
    /// or the same with `kine://` for kine.
    pub fn from_url(url: &str, tls: EtcdTls) -> Result<Self, EtcdError> {
        let (rest, kine) = match (url.strip_prefix("etcd://"), url.strip_prefix("kine://")) {
            (Some(rest), _) => (rest, false),
            (None, Some(rest)) => (rest, true),
            (None, None) => return Err(EtcdError::Url(url.to_owned())),
        };
        let (hosts, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, "/moor"),
        };
        let endpoints: Vec<String> = hosts.split(',').map(str::to_owned).collect();
        if prefix.is_empty() || endpoints.iter().any(|e| e.is_empty() || e.contains('@')) {
            return Err(EtcdError::Url(url.to_owned()));
        }
        Ok(Self {
            endpoints,
            prefix: prefix.to_owned(),
            tls,
            deadline: Duration::from_secs(15),
            attempt_timeout: Duration::from_secs(5),
            watch_buffer_bytes: crate::DEFAULT_WATCH_BUFFER_BYTES,
            kine,
        })
    }

    /// Whether `url` names this backend (`etcd://` or `kine://`).
    pub fn is_url(url: &str) -> bool {
        url.starts_with("etcd://") || url.starts_with("kine://")
    }
}

/// One member's clients.
#[derive(Clone)]
struct Member {
    endpoint: String,
    kv: KvClient,
    watch: WatchClient,
    /// Leases of leader election (`lease.rs`).
    lease: LeaseClient,
}

/// A [`Store`] on etcd (or kine). Cheap to share: clone the `Arc`.
pub struct EtcdStore {
    inner: Arc<Inner>,
}

/// What the store and its watch tasks share.
struct Inner {
    members: Vec<Member>,
    /// The member requests go to now.
    current: AtomicUsize,
    /// The newest etcd revision any response showed: a write sent later gets a higher one.
    seen: AtomicI64,
    /// The etcd prefix, without trailing `/`.
    root: String,
    deadline: Duration,
    attempt_timeout: Duration,
    watch_buffer_bytes: usize,
    /// kine: single-key transactions only.
    kine: bool,
}

/// Why one attempt failed.
enum Attempt {
    /// etcd answered with an error (or the call was refused before it was sent).
    Etcd(etcd_client::Error),
    /// No answer within the attempt timeout.
    TimedOut,
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attempt::Etcd(e) => write!(f, "{e}"),
            Attempt::TimedOut => f.write_str("timed out"),
        }
    }
}

/// What a failed attempt means for a retry.
#[derive(Debug, PartialEq, Eq)]
enum Retry {
    /// The request did not reach a leader: safe to send again, also a write.
    NotApplied,
    /// The request may or may not have applied: reads are retried, writes resolved.
    Unknown,
    /// A definite answer (compacted, too large, invalid): no retry.
    Final,
}

fn classify(attempt: &Attempt) -> Retry {
    use etcd_client::Error as E;
    match attempt {
        Attempt::TimedOut => Retry::Unknown,
        Attempt::Etcd(E::TransportError(_) | E::IoError(_)) => Retry::NotApplied,
        Attempt::Etcd(E::GRpcStatus(status)) => {
            let message = status.message();
            match i32::from(status.code()) {
                // Not "connection reset" or "closed": a request may have been sent.
                tonic_code::UNAVAILABLE if NOT_SENT.iter().any(|m| message.contains(m)) => {
                    Retry::NotApplied
                }
                tonic_code::RESOURCE_EXHAUSTED => Retry::NotApplied,
                tonic_code::UNAVAILABLE
                | tonic_code::DEADLINE_EXCEEDED
                | tonic_code::CANCELLED
                | tonic_code::UNKNOWN
                | tonic_code::ABORTED
                | tonic_code::INTERNAL => Retry::Unknown,
                _ => Retry::Final,
            }
        }
        Attempt::Etcd(_) => Retry::Final,
    }
}

/// Messages of an UNAVAILABLE status that mean the request never reached a leader:
/// no connection could be made (tonic's connect errors), or etcd had no leader.
const NOT_SENT: [&str; 6] = [
    "tcp connect error",
    "error trying to connect",
    "onnection refused",
    "dns error",
    "etcdserver: no leader",
    "etcdserver: not capable",
];

/// gRPC status codes by number: `etcd-client` re-exports no `tonic::Code`.
mod tonic_code {
    pub(super) const CANCELLED: i32 = 1;
    pub(super) const UNKNOWN: i32 = 2;
    pub(super) const DEADLINE_EXCEEDED: i32 = 4;
    pub(super) const RESOURCE_EXHAUSTED: i32 = 8;
    pub(super) const ABORTED: i32 = 10;
    pub(super) const INTERNAL: i32 = 13;
    pub(super) const UNAVAILABLE: i32 = 14;
}

/// etcd's "required revision has been compacted".
fn is_compacted(e: &Attempt) -> bool {
    matches!(e, Attempt::Etcd(etcd_client::Error::GRpcStatus(s)) if s.message().contains("has been compacted"))
}

/// etcd's "required revision is a future revision".
fn is_future(e: &Attempt) -> bool {
    matches!(e, Attempt::Etcd(etcd_client::Error::GRpcStatus(s)) if s.message().contains("future revision"))
}

fn backend(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("etcd {what}: {e}"))
}

/// The smallest key greater than every key starting with `prefix` (etcd's range end).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (never, with a non-empty root): to the end of the keyspace.
    vec![0]
}

impl EtcdStore {
    /// Connects to the members in `options` and checks that one of them answers.
    pub async fn connect(options: EtcdOptions) -> Result<Self, EtcdError> {
        let tls = tls_options(&options.tls)?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut members = Vec::new();
        for endpoint in &options.endpoints {
            let mut connect = ConnectOptions::new()
                .with_connect_timeout(options.attempt_timeout)
                .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
                .with_require_leader(true);
            if let Some(tls) = &tls {
                connect = connect.with_tls(tls.clone());
            }
            let url = format!("{scheme}://{endpoint}");
            let client = Client::connect([url.as_str()], Some(connect))
                .await
                .map_err(|source| EtcdError::Client {
                    endpoint: endpoint.clone(),
                    source,
                })?;
            members.push(Member {
                endpoint: endpoint.clone(),
                kv: client
                    .kv_client()
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
                watch: client
                    .watch_client()
                    .max_decoding_message_size(MAX_MESSAGE_BYTES),
                lease: client.lease_client(),
            });
        }
        if members.is_empty() {
            return Err(EtcdError::Url(String::new()));
        }
        let store = Self {
            inner: Arc::new(Inner {
                members,
                current: AtomicUsize::new(0),
                seen: AtomicI64::new(0),
                root: options.prefix,
                deadline: options.deadline,
                attempt_timeout: options.attempt_timeout,
                watch_buffer_bytes: options.watch_buffer_bytes,
                kine: options.kine,
            }),
        };
        store
            .current_revision()
            .await
            .map_err(EtcdError::Unreachable)?;
        Ok(store)
    }
}

/// tonic's TLS configuration from the files.
fn tls_options(tls: &EtcdTls) -> Result<Option<etcd_client::TlsOptions>, EtcdError> {
    if !tls.is_set() {
        return Ok(None);
    }
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|source| EtcdError::TlsFile {
            path: path.clone(),
            source,
        })
    };
    let mut options = etcd_client::TlsOptions::new();
    if let Some(ca) = &tls.ca_file {
        options = options.ca_certificate(etcd_client::Certificate::from_pem(read(ca)?));
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            options = options.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
        }
        (None, None) => {}
        _ => return Err(EtcdError::HalfIdentity),
    }
    Ok(Some(options))
}

impl Inner {
    fn etcd_key(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        if !key.starts_with('/') {
            return Err(StoreError::Backend(format!(
                "etcd store: key {key:?} does not begin with /"
            )));
        }
        Ok(format!("{}{key}", self.root).into_bytes())
    }

    /// The etcd range of the moor `prefix`: `None` when no moor key can match.
    fn range(&self, prefix: &str) -> Option<(Vec<u8>, Vec<u8>)> {
        let start = match prefix {
            "" => format!("{}/", self.root),
            p if p.starts_with('/') => format!("{}{p}", self.root),
            _ => return None,
        }
        .into_bytes();
        let end = prefix_end(&start);
        Some((start, end))
    }

    fn moor_kv(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
        let key = std::str::from_utf8(kv.key())
            .ok()
            .and_then(|k| k.strip_prefix(self.root.as_str()))
            .ok_or_else(|| backend("key", format!("{:?} is not a moor key", kv.key())))?;
        Ok(KeyValue {
            key: key.to_owned(),
            value: Bytes::copy_from_slice(kv.value()),
            create_revision: kv.create_revision() - REVISION_OFFSET,
            mod_revision: kv.mod_revision() - REVISION_OFFSET,
        })
    }

    fn saw(&self, header: Option<&etcd_client::ResponseHeader>) -> i64 {
        let revision = header.map_or(0, |h| h.revision());
        self.seen.fetch_max(revision, Ordering::AcqRel);
        revision
    }

    fn member(&self) -> (usize, Member) {
        let i = self.current.load(Ordering::Acquire) % self.members.len();
        (i, self.members[i].clone())
    }

    /// Moves on from member `i` (unless another request already did).
    fn rotate(&self, i: usize) {
        let next = (i + 1) % self.members.len();
        if self
            .current
            .compare_exchange(i, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            && self.members.len() > 1
        {
            tracing::warn!(
                from = %self.members[i].endpoint,
                to = %self.members[next].endpoint,
                "etcd endpoint failed; moving on"
            );
        }
    }

    /// One attempt of `op` on the current member, for at most `timeout`.
    async fn attempt<T, F, Fut>(&self, op: &F, timeout: Duration) -> (usize, Result<T, Attempt>)
    where
        F: Fn(Member) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let (i, member) = self.member();
        let result = match tokio::time::timeout(timeout, op(member)).await {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(e)) => Err(Attempt::Etcd(e)),
            Err(_) => Err(Attempt::TimedOut),
        };
        (i, result)
    }

    /// Runs the read `op`, on the next member after each failure that is not a definite
    /// answer, until the deadline; each attempt may take the attempt timeout.
    async fn read<T, F, Fut>(&self, op: F) -> Result<T, Attempt>
    where
        F: Fn(Member) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.read_within(self.attempt_timeout, op).await
    }

    /// [`read`](Self::read) with attempts of at most `timeout` each.
    async fn read_within<T, F, Fut>(&self, timeout: Duration, op: F) -> Result<T, Attempt>
    where
        F: Fn(Member) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::now() + self.deadline;
        let mut backoff = Duration::from_millis(20);
        loop {
            let (i, result) = self.attempt(&op, timeout).await;
            match result {
                Ok(t) => return Ok(t),
                Err(e) if classify(&e) != Retry::Final && Instant::now() + backoff < deadline => {
                    tracing::debug!(error = %e, "etcd read failed; retrying");
                    self.rotate(i);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs the write transaction `txn`: sent again after a failure that certainly did
    /// not apply it; after one whose outcome is unknown, `resolve` reads the key back and
    /// says whether it applied (`Some`) or not (`None`, and it is sent again).
    async fn write<T, R, RFut>(&self, txn: Txn, resolve: R) -> Result<Written<T>, StoreError>
    where
        R: Fn() -> RFut,
        RFut: Future<Output = Result<Option<T>, StoreError>>,
    {
        let deadline = Instant::now() + self.deadline;
        let mut backoff = Duration::from_millis(20);
        loop {
            let op = |mut m: Member| {
                let txn = txn.clone();
                async move { m.kv.txn(txn).await }
            };
            let (i, result) = self.attempt(&op, self.attempt_timeout).await;
            let e = match result {
                Ok(response) => {
                    self.saw(response.header());
                    return Ok(Written::Answer(response));
                }
                Err(e) => e,
            };
            let retry = classify(&e);
            if retry == Retry::Final {
                return Err(backend("write", e));
            }
            if Instant::now() + backoff >= deadline {
                return Err(match retry {
                    Retry::Unknown => backend("write (outcome unknown)", e),
                    _ => backend("write (not applied)", e),
                });
            }
            self.rotate(i);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
            if retry == Retry::Unknown {
                tracing::debug!(error = %e, "etcd write outcome unknown; reading back");
                if let Some(done) = resolve().await? {
                    return Ok(Written::Resolved(done));
                }
            }
        }
    }

    /// A range read with retries; compaction and future revisions mapped. A read of
    /// `many` keys (a list) may take the whole deadline in one attempt: a large list is
    /// slow, not stuck.
    async fn get(
        &self,
        key: Vec<u8>,
        options: GetOptions,
        requested: Option<Revision>,
        many: bool,
    ) -> Result<GetResponse, StoreError> {
        let timeout = if many {
            self.deadline
        } else {
            self.attempt_timeout
        };
        let result = self
            .read_within(timeout, |mut m| {
                let (key, options) = (key.clone(), options.clone());
                async move { m.kv.get(key, Some(options)).await }
            })
            .await;
        match result {
            Ok(response) => {
                self.saw(response.header());
                Ok(response)
            }
            Err(e) if is_compacted(&e) => Err(StoreError::Compacted {
                requested: requested.unwrap_or_default(),
                compacted: self.compacted_revision().await?,
            }),
            Err(e) if is_future(&e) => Err(StoreError::FutureRevision {
                requested: requested.unwrap_or_default(),
                // Boxed: `current_revision` reads through `get`.
                current: Box::pin(self.current_revision()).await?,
            }),
            Err(e) => Err(backend("read", e)),
        }
    }

    async fn get_one(&self, key: &[u8]) -> Result<Option<etcd_client::KeyValue>, StoreError> {
        let mut response = self
            .get(key.to_vec(), GetOptions::new(), None, false)
            .await?;
        Ok(response.take_kvs().into_iter().next())
    }

    /// The key as of etcd revision `revision`.
    async fn get_at(
        &self,
        key: &[u8],
        revision: i64,
    ) -> Result<Option<etcd_client::KeyValue>, StoreError> {
        let options = GetOptions::new().with_revision(revision);
        let mut response = self.get(key.to_vec(), options, None, false).await?;
        Ok(response.take_kvs().into_iter().next())
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        // A key no moor key can be: the root itself.
        let options = GetOptions::new().with_count_only();
        let response = self
            .get(self.root.clone().into_bytes(), options, None, false)
            .await?;
        let revision = response
            .header()
            .map(|h| h.revision())
            .ok_or_else(|| backend("read", "no response header"))?;
        Ok(revision - REVISION_OFFSET)
    }

    /// The oldest readable moor revision, from the cancel of a watch at revision 1.
    async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        let etcd = watch::compact_revision(self).await?;
        Ok(etcd - REVISION_OFFSET)
    }
}

/// How a write ended.
enum Written<T> {
    /// etcd answered the (last) transaction.
    Answer(TxnResponse),
    /// The transaction's outcome was unknown and reading back found it applied.
    Resolved(T),
}

/// The `get` response of a transaction's failure branch: the key's current value.
fn failure_kv(response: &TxnResponse) -> Option<etcd_client::KeyValue> {
    response.op_responses().into_iter().find_map(|r| match r {
        TxnOpResponse::Get(g) => g.kvs().first().cloned(),
        _ => None,
    })
}

fn header_revision(response: &TxnResponse) -> Result<i64, StoreError> {
    response
        .header()
        .map(|h| h.revision())
        .ok_or_else(|| backend("write", "no response header"))
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let key = self.inner.etcd_key(key)?;
        match self.inner.get_one(&key).await? {
            Some(kv) => Ok(Some(self.inner.moor_kv(&kv)?)),
            None => Ok(None),
        }
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult, StoreError> {
        let inner = &self.inner;
        // The keys to read: the prefix's range, from after `start_after`.
        let range = match inner.range(prefix) {
            Some((start, end)) => {
                let start = match &opts.start_after {
                    Some(after) => {
                        let mut k = inner.etcd_key(after)?;
                        k.push(0);
                        k.max(start)
                    }
                    None => start,
                };
                (start < end).then_some((start, end))
            }
            None => None,
        };
        let Some((start, end)) = range else {
            let revision = match opts.revision {
                Some(r) => r,
                None => inner.current_revision().await?,
            };
            return Ok(ListResult {
                kvs: Vec::new(),
                revision,
                more: false,
            });
        };
        let mut options = GetOptions::new().with_range(end);
        if let Some(revision) = opts.revision {
            options = options.with_revision((revision + REVISION_OFFSET).max(1));
        }
        if let Some(limit) = opts.limit {
            if limit == 0 {
                // etcd reads limit 0 as "no limit".
                options = options.with_limit(1).with_keys_only();
            } else {
                options = options.with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
            }
        }
        let response = inner.get(start, options, opts.revision, true).await?;
        let header = response
            .header()
            .map(|h| h.revision())
            .ok_or_else(|| backend("list", "no response header"))?;
        let (kvs, more) = if opts.limit == Some(0) {
            (Vec::new(), !response.kvs().is_empty() || response.more())
        } else {
            let kvs = response
                .kvs()
                .iter()
                .map(|kv| inner.moor_kv(kv))
                .collect::<Result<Vec<_>, _>>()?;
            (kvs, response.more())
        };
        Ok(ListResult {
            kvs,
            revision: opts.revision.unwrap_or(header - REVISION_OFFSET),
            more,
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision, StoreError> {
        let inner = &self.inner;
        let ekey = inner.etcd_key(key)?;
        let before = inner.seen.load(Ordering::Acquire);
        let txn = Txn::new()
            .when([Compare::mod_revision(ekey.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(ekey.clone(), value.to_vec(), None)]);
        let written = inner
            .write(txn, || resolve::create(inner, &ekey, &value, before))
            .await?;
        match written {
            Written::Resolved(revision) => Ok(revision - REVISION_OFFSET),
            Written::Answer(r) if r.succeeded() => Ok(header_revision(&r)? - REVISION_OFFSET),
            Written::Answer(_) => Err(StoreError::AlreadyExists(key.to_owned())),
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        let inner = &self.inner;
        let ekey = inner.etcd_key(key)?;
        // At least 1: `mod == 0` would match a missing key (create); etcd revision 1 is
        // the empty store's, which no key has.
        let expected_etcd = (expected + REVISION_OFFSET).max(1);
        let txn = Txn::new()
            .when([Compare::mod_revision(
                ekey.clone(),
                CompareOp::Equal,
                expected_etcd,
            )])
            .and_then([TxnOp::put(ekey.clone(), value.to_vec(), None)])
            .or_else([TxnOp::get(ekey.clone(), None)]);
        let written = inner
            .write(txn, || resolve::update(inner, &ekey, &value, expected_etcd))
            .await?;
        match written {
            Written::Resolved(revision) => Ok(revision - REVISION_OFFSET),
            Written::Answer(r) if r.succeeded() => Ok(header_revision(&r)? - REVISION_OFFSET),
            Written::Answer(r) => match failure_kv(&r) {
                None => Err(StoreError::NotFound(key.to_owned())),
                Some(kv) => Err(StoreError::Conflict {
                    key: key.to_owned(),
                    expected,
                    actual: Some(kv.mod_revision() - REVISION_OFFSET),
                }),
            },
        }
    }

    async fn txn(&self, writes: Vec<crate::TxnWrite>) -> Result<Vec<Revision>, StoreError> {
        use crate::TxnWrite;
        crate::check_txn_keys(&writes)?;
        let inner = &self.inner;
        if inner.kine {
            return kine_txn(self, writes).await;
        }
        let Some(first) = writes.first() else {
            return Ok(Vec::new());
        };
        let before = inner.seen.load(Ordering::Acquire);
        let mut compares = Vec::with_capacity(writes.len());
        let mut puts = Vec::with_capacity(writes.len());
        let mut gets = Vec::with_capacity(writes.len());
        for write in &writes {
            let ekey = inner.etcd_key(write.key())?;
            let expected = match write {
                TxnWrite::Create { .. } => 0,
                TxnWrite::Update { expected, .. } => (expected + REVISION_OFFSET).max(1),
            };
            compares.push(Compare::mod_revision(
                ekey.clone(),
                CompareOp::Equal,
                expected,
            ));
            puts.push(TxnOp::put(ekey.clone(), write.value().to_vec(), None));
            gets.push(TxnOp::get(ekey, None));
        }
        let txn = Txn::new().when(compares).and_then(puts).or_else(gets);
        let first_key = inner.etcd_key(first.key())?;
        let written = inner
            .write(txn, || async {
                // Every write applied or none: the first one tells.
                match first {
                    TxnWrite::Create { value, .. } => {
                        resolve::create(inner, &first_key, value, before).await
                    }
                    TxnWrite::Update {
                        value, expected, ..
                    } => {
                        let expected = (expected + REVISION_OFFSET).max(1);
                        resolve::update(inner, &first_key, value, expected).await
                    }
                }
            })
            .await?;
        let response = match written {
            Written::Resolved(revision) => {
                return Ok(vec![revision - REVISION_OFFSET; writes.len()]);
            }
            Written::Answer(r) => r,
        };
        if response.succeeded() {
            let revision = header_revision(&response)? - REVISION_OFFSET;
            return Ok(vec![revision; writes.len()]);
        }
        // The failure branch read each key, in order: the first whose compare fails.
        let current: Vec<Option<etcd_client::KeyValue>> = response
            .op_responses()
            .into_iter()
            .map(|r| match r {
                TxnOpResponse::Get(g) => g.kvs().first().cloned(),
                _ => None,
            })
            .collect();
        for (write, now) in writes
            .iter()
            .zip(current.iter().chain(std::iter::repeat(&None)))
        {
            match (write, now) {
                (TxnWrite::Create { .. }, None) => {}
                (TxnWrite::Create { key, .. }, Some(_)) => {
                    return Err(StoreError::AlreadyExists(key.clone()));
                }
                (TxnWrite::Update { key, .. }, None) => {
                    return Err(StoreError::NotFound(key.clone()));
                }
                (TxnWrite::Update { key, expected, .. }, Some(kv)) => {
                    let actual = kv.mod_revision() - REVISION_OFFSET;
                    if actual != *expected {
                        return Err(StoreError::Conflict {
                            key: key.clone(),
                            expected: *expected,
                            actual: Some(actual),
                        });
                    }
                }
            }
        }
        Err(backend(
            "txn",
            "a compare failed, but every key read back matches",
        ))
    }

    fn multi_key_txn(&self) -> bool {
        !self.inner.kine
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue, StoreError> {
        let inner = &self.inner;
        let ekey = inner.etcd_key(key)?;
        loop {
            // Unconditional: delete the current revision, again if it moved meanwhile.
            let expected_etcd = match expected {
                Some(e) => (e + REVISION_OFFSET).max(1),
                None => match inner.get_one(&ekey).await? {
                    Some(kv) => kv.mod_revision(),
                    None => return Err(StoreError::NotFound(key.to_owned())),
                },
            };
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    ekey.clone(),
                    CompareOp::Equal,
                    expected_etcd,
                )])
                .and_then([TxnOp::delete(
                    ekey.clone(),
                    Some(DeleteOptions::new().with_prev_key()),
                )])
                .or_else([TxnOp::get(ekey.clone(), None)]);
            let written = inner
                .write(txn, || resolve::delete(inner, &ekey, expected_etcd))
                .await?;
            let response = match written {
                Written::Resolved(kv) => return Ok(kv),
                Written::Answer(r) => r,
            };
            if response.succeeded() {
                let revision = header_revision(&response)?;
                let prev = response.op_responses().into_iter().find_map(|r| match r {
                    TxnOpResponse::Delete(d) => d.prev_kvs().first().cloned(),
                    _ => None,
                });
                let prev = prev.ok_or_else(|| backend("delete", "no previous value"))?;
                let mut kv = inner.moor_kv(&prev)?;
                kv.mod_revision = revision - REVISION_OFFSET;
                return Ok(kv);
            }
            match (failure_kv(&response), expected) {
                (None, _) => return Err(StoreError::NotFound(key.to_owned())),
                (Some(kv), Some(expected)) => {
                    return Err(StoreError::Conflict {
                        key: key.to_owned(),
                        expected,
                        actual: Some(kv.mod_revision() - REVISION_OFFSET),
                    });
                }
                (Some(_), None) => continue,
            }
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let items = watch::open(Arc::clone(&self.inner), prefix, after).await?;
        Ok(crate::watch::events_only(items))
    }

    async fn watch_with_progress(
        &self,
        prefix: &str,
        after: Revision,
    ) -> Result<ProgressStream, StoreError> {
        watch::open(Arc::clone(&self.inner), prefix, after).await
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let etcd_revision = revision + REVISION_OFFSET;
        let result = self
            .inner
            .read(|mut m| async move { m.kv.compact(etcd_revision, None).await })
            .await;
        match result {
            Ok(response) => {
                self.inner.saw(response.header());
                Ok(())
            }
            // At or below the compacted revision: nothing to do.
            Err(e) if is_compacted(&e) => Ok(()),
            Err(e) if is_future(&e) => Err(StoreError::FutureRevision {
                requested: revision,
                current: self.inner.current_revision().await?,
            }),
            Err(e) => Err(backend("compact", e)),
        }
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        self.inner.current_revision().await
    }

    /// kube-apiserver's transaction, shape for shape (kine matches it): `version(key) ==
    /// version ? put(key, revision) : get(key)`.
    async fn claim_compaction(
        &self,
        version: i64,
        revision: Revision,
    ) -> Result<CompactionClaim, StoreError> {
        let key = COMPACT_REV_KEY.as_bytes().to_vec();
        let value = if revision > 0 {
            revision + REVISION_OFFSET
        } else {
            0
        };
        let txn = Txn::new()
            .when([Compare::version(key.clone(), CompareOp::Equal, version)])
            .and_then([TxnOp::put(key.clone(), value.to_string(), None)])
            .or_else([TxnOp::get(key, None)]);
        // A transaction of unknown outcome is sent again without reading back: the
        // version compare keeps it from applying twice, and at worst this process loses
        // a round it won, in which nobody compacts.
        let written = self.inner.write(txn, || async { Ok(None::<()>) }).await?;
        let Written::Answer(response) = written else {
            return Err(backend("compaction claim", "resolved without an answer"));
        };
        let revision = header_revision(&response)? - REVISION_OFFSET;
        if response.succeeded() {
            return Ok(CompactionClaim {
                won: true,
                version: version + 1,
                revision,
            });
        }
        Ok(CompactionClaim {
            won: false,
            version: failure_kv(&response).map_or(0, |kv| kv.version()),
            revision,
        })
    }
}

/// [`Store::txn`] on kine: one write is its own single-key shape, several are refused
/// (kine answers such a Txn with "unsupported transaction").
async fn kine_txn(
    store: &EtcdStore,
    mut writes: Vec<crate::TxnWrite>,
) -> Result<Vec<Revision>, StoreError> {
    use crate::TxnWrite;
    if writes.len() > 1 {
        let keys: Vec<&str> = writes.iter().map(TxnWrite::key).collect();
        return Err(StoreError::Unsupported(format!(
            "kine accepts no transaction over several keys; this one writes {} ({})",
            keys.len(),
            keys.join(", ")
        )));
    }
    let revision = match writes.pop() {
        None => return Ok(Vec::new()),
        Some(TxnWrite::Create { key, value }) => store.create(&key, value).await?,
        Some(TxnWrite::Update {
            key,
            value,
            expected,
        }) => store.update(&key, value, expected).await?,
    };
    Ok(vec![revision])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_endpoints_and_a_prefix() {
        let o = EtcdOptions::from_url("etcd://a:1,b:2", EtcdTls::default()).unwrap();
        assert_eq!(
            (o.endpoints, o.prefix.as_str()),
            (vec!["a:1".into(), "b:2".into()], "/moor")
        );
        let o = EtcdOptions::from_url("etcd://a:1/x/y/", EtcdTls::default()).unwrap();
        assert_eq!(
            (o.endpoints, o.prefix.as_str()),
            (vec!["a:1".into()], "/x/y")
        );
        assert!(!o.kine);
        let o = EtcdOptions::from_url("kine://a:1,b:2/k", EtcdTls::default()).unwrap();
        assert_eq!(
            (o.endpoints, o.prefix.as_str(), o.kine),
            (vec!["a:1".into(), "b:2".into()], "/k", true)
        );
        for bad in [
            "kine://",
            "sqlite://x",
            "etcd://",
            "etcd://a:1,,b:2",
            "etcd://a:1/",
            "etcd://u@a:1",
        ] {
            assert!(
                EtcdOptions::from_url(bad, EtcdTls::default()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn prefix_end_increments_the_last_byte_below_ff() {
        assert_eq!(prefix_end(b"/moor/"), b"/moor0");
        assert_eq!(prefix_end(b"a\xff\xff"), b"b");
    }
}
