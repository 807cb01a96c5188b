//! `moor store copy --from URL --to URL`: copies a data set between stores, offline
//! (SQLite to etcd to grow into replicas, etcd to SQLite for a backup or to shrink),
//! then verifies the target against the source: the count of objects and a SHA-256
//! over every key and value in key order, both printed. Values are copied as stored:
//! encrypted values stay encrypted (the copy needs no keys). Revisions are not copied:
//! the target gives each key a revision of its own (see docs/api.md, "Moving and
//! backing up a data set"). Opens the
//! stores directly (moor-store, and moor-server's `open_store` for SQLite); talks to no
//! server.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use futures::{StreamExt as _, TryStreamExt as _};
use indicatif::{ProgressBar, ProgressStyle};
use moor_api::reference::{DigestAlgorithm, DigestHasher};
use moor_store::{ListOptions, Revision, Store, StoreError};

use crate::commands::serve::EtcdArgs;
use crate::error::CliError;

pub(crate) const STORE_EXAMPLES: &str = "\
Examples:
  # Move a single server's data set to a three-member etcd (stop `moor serve` first)
  moor store copy --from ./moor-data --to etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379

  # Back up an etcd data set (prefix /moor) to a SQLite file, over TLS
  moor store copy --from etcd://etcd.example:2379/moor --to sqlite:///backup/moor.db \\
      --etcd-cafile ca.pem --etcd-certfile client.pem --etcd-keyfile client.key

  # Restore that backup over what the data set holds now (the target ends up equal)
  moor store copy --from /backup/moor.db --to etcd://etcd.example:2379/moor --force ...";

/// `moor store`: work on a data set's store directly, with no server running.
#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
}

/// The `moor store` verbs.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy every object from one store to another and verify the copy (count and SHA-256)
    #[command(after_help = COPY_EXAMPLES)]
    Copy(CopyArgs),
}

const COPY_EXAMPLES: &str = "\
Stores are named as `moor serve --store` names them: etcd://HOST:PORT[,HOST:PORT...][/PREFIX]
(prefix default /moor), sqlite://PATH, or a plain path: a SQLite file, or a data dir
(DIR/moor.db). The copy is offline: stop every `moor serve` on both stores first (a
data dir's lock is taken, so a server running on one fails the copy).

What is copied: every key and its value as stored, so objects encrypted at rest stay
encrypted with the same keys (give the new servers the same
--encryption-provider-config). What is not: revisions. The target numbers its own, so
resourceVersions change, history older than the copy is gone, and clients list again
(watches and continue tokens from before do not resume).

A target that holds objects is refused; with --force it is made equal to the source
(objects written over, objects the source lacks deleted). At the end the count and a
SHA-256 over every key and value, in key order, are printed for both sides; a
difference fails the command.

Examples:
  # SQLite (a data dir) to etcd
  moor store copy --from ./moor-data --to etcd://127.0.0.1:2379

  # etcd back to a new SQLite file, then serve it
  moor store copy --from etcd://127.0.0.1:2379 --to sqlite://./restored/moor.db
  moor serve --data-dir ./restored";

/// `moor store copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The store to read: etcd://..., kine://..., sqlite://PATH, or a SQLite file or data dir
    #[arg(long, value_name = "URL")]
    pub from: String,

    /// The store to write: etcd://..., kine://..., sqlite://PATH, or a SQLite file or data dir
    #[arg(long, value_name = "URL")]
    pub to: String,

    /// Write into a target that holds objects, making it equal to the source
    #[arg(long)]
    pub force: bool,

    /// Objects read and written per page
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub page_size: usize,

    /// TLS to etcd, for whichever side is etcd://
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

/// Why a store command failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreCopyError {
    /// A URL that names no store.
    #[error(
        "{0:?} is no store: use etcd://HOST:PORT[,...][/PREFIX], sqlite://PATH, or a SQLite file or data dir"
    )]
    Url(String),
    /// The source SQLite file does not exist (the copy would read an empty new one).
    #[error("source {} does not exist", .0.display())]
    NoSource(PathBuf),
    /// Opening a store failed.
    #[error("opening {url}: {source}")]
    Open {
        /// The store.
        url: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The target holds objects and `--force` was not given.
    #[error(
        "target {0} is not empty (it holds objects); pass --force to make it equal to the source"
    )]
    NotEmpty(String),
    /// Source and target are one store.
    #[error("--from and --to name the same store")]
    SameStore,
    /// A store operation failed.
    #[error("{what}: {source}")]
    Store {
        /// What was being done.
        what: &'static str,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The copy does not match the source.
    #[error(
        "verification failed: source has {source_count} objects ({source_hash}), target {target_count} ({target_hash})"
    )]
    Mismatch {
        /// Objects in the source.
        source_count: u64,
        /// Their hash.
        source_hash: String,
        /// Objects in the target.
        target_count: u64,
        /// Their hash.
        target_hash: String,
    },
}

fn store_err(what: &'static str) -> impl Fn(StoreError) -> StoreCopyError {
    move |source| StoreCopyError::Store { what, source }
}

/// Runs `moor store ...`.
pub async fn run(args: StoreArgs) -> Result<(), CliError> {
    match args.command {
        StoreCommand::Copy(args) => copy_command(args).await,
    }
}

async fn copy_command(args: CopyArgs) -> Result<(), CliError> {
    let tls = moor_store::EtcdTls {
        ca_file: args.etcd.etcd_cafile.clone(),
        cert_file: args.etcd.etcd_certfile.clone(),
        key_file: args.etcd.etcd_keyfile.clone(),
    };
    let from_spec = StoreSpec::parse(&args.from)?;
    let to_spec = StoreSpec::parse(&args.to)?;
    if from_spec.same(&to_spec) {
        return Err(StoreCopyError::SameStore.into());
    }
    let etcd = |s: &StoreSpec| matches!(s, StoreSpec::Etcd(..));
    if tls.is_set() && !etcd(&from_spec) && !etcd(&to_spec) {
        return Err(CliError::Usage(
            "--etcd-cafile, --etcd-certfile and --etcd-keyfile need an etcd:// store".into(),
        ));
    }
    if let StoreSpec::Sqlite(path) = &from_spec
        && !path.is_file()
    {
        return Err(StoreCopyError::NoSource(path.clone()).into());
    }
    // Held until the copy ends: no server starts on either data dir meanwhile.
    let _locks = [from_spec.lock()?, to_spec.lock()?];
    let from = from_spec.open(&args.from, &tls).await?;
    let to = to_spec.open(&args.to, &tls).await?;
    let options = CopyOptions {
        force: args.force,
        page_size: args.page_size.max(1),
        progress: true,
    };
    let report = copy(from.as_ref(), to.as_ref(), &args.to, &options).await?;
    eprintln!(
        "copied {} objects ({}) at source revision {}",
        report.written,
        indicatif::HumanBytes(report.bytes),
        report.revision
    );
    if report.deleted > 0 {
        eprintln!(
            "deleted {} objects the source does not have",
            report.deleted
        );
    }
    crate::commands::emit(&format!(
        "source: {} objects, {}\ntarget: {} objects, {}\n",
        report.source.count, report.source.hash, report.target.count, report.target.hash
    ))?;
    if report.source != report.target {
        return Err(StoreCopyError::Mismatch {
            source_count: report.source.count,
            source_hash: report.source.hash,
            target_count: report.target.count,
            target_hash: report.target.hash,
        }
        .into());
    }
    Ok(())
}

/// A store named on the command line.
#[derive(Debug, PartialEq, Eq)]
enum StoreSpec {
    /// Endpoints and prefix.
    Etcd(BTreeSet<String>, String),
    Sqlite(PathBuf),
}

impl StoreSpec {
    fn parse(url: &str) -> Result<Self, StoreCopyError> {
        if moor_store::EtcdOptions::is_url(url) {
            let options = moor_store::EtcdOptions::from_url(url, Default::default())
                .map_err(|_| StoreCopyError::Url(url.to_owned()))?;
            return Ok(StoreSpec::Etcd(
                options.endpoints.into_iter().collect(),
                options.prefix,
            ));
        }
        let path = match url.strip_prefix("sqlite://") {
            Some(p) => PathBuf::from(p),
            None if url.contains("://") || url.is_empty() => {
                return Err(StoreCopyError::Url(url.to_owned()));
            }
            None => PathBuf::from(url),
        };
        if path.is_dir() {
            return Ok(StoreSpec::Sqlite(path.join("moor.db")));
        }
        Ok(StoreSpec::Sqlite(path))
    }

    /// Whether both name one store: one SQLite file, or a prefix on a shared member.
    fn same(&self, other: &StoreSpec) -> bool {
        match (self, other) {
            (StoreSpec::Etcd(a, p), StoreSpec::Etcd(b, q)) => p == q && !a.is_disjoint(b),
            (StoreSpec::Sqlite(a), StoreSpec::Sqlite(b)) => {
                let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
                canonical(a) == canonical(b)
            }
            _ => false,
        }
    }

    /// The data dir's lock, when the SQLite file sits in one (next to `moor.lock`).
    fn lock(&self) -> Result<Option<std::fs::File>, CliError> {
        let StoreSpec::Sqlite(path) = self else {
            return Ok(None);
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if !dir.join(moor_server::serve::LOCK_FILE).exists() {
            return Ok(None);
        }
        Ok(Some(moor_server::serve::lock_data_dir(dir)?))
    }

    async fn open(
        &self,
        url: &str,
        tls: &moor_store::EtcdTls,
    ) -> Result<Arc<dyn Store>, StoreCopyError> {
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| StoreCopyError::Open {
            url: url.to_owned(),
            source,
        };
        match self {
            StoreSpec::Etcd(..) => {
                let options = moor_store::EtcdOptions::from_url(url, tls.clone())
                    .map_err(|e| open_err(e.into()))?;
                let store = moor_store::EtcdStore::connect(options)
                    .await
                    .map_err(|e| open_err(e.into()))?;
                Ok(Arc::new(store))
            }
            StoreSpec::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| open_err(e.into()))?;
                }
                let url = format!("sqlite://{}", path.display());
                moor_server::serve::open_store(Some(&url), Path::new("."))
                    .map_err(|e| open_err(e.into()))
            }
        }
    }
}

/// How to copy.
#[derive(Clone, Debug)]
pub struct CopyOptions {
    /// Write into a non-empty target, making it equal to the source.
    pub force: bool,
    /// Objects per page.
    pub page_size: usize,
    /// Show progress bars on stderr (hidden when it is not a terminal).
    pub progress: bool,
}

/// A side's count of objects and the SHA-256 of its keys and values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Objects.
    pub count: u64,
    /// `sha256:...` over each key and value, in key order, each length-prefixed.
    pub hash: String,
}

/// What a copy did.
#[derive(Clone, Debug)]
pub struct CopyReport {
    /// The source's revision the copy read at.
    pub revision: Revision,
    /// Objects written.
    pub written: u64,
    /// Bytes of values written.
    pub bytes: u64,
    /// Target objects deleted (with `force`).
    pub deleted: u64,
    /// The source, as read.
    pub source: Summary,
    /// The target, read back after the copy.
    pub target: Summary,
}

/// Every object of a store at one revision, page by page: later pages read at the
/// first page's revision (the current one unless given).
struct Pages<'a> {
    store: &'a dyn Store,
    options: ListOptions,
    done: bool,
}

impl<'a> Pages<'a> {
    fn new(store: &'a dyn Store, revision: Option<Revision>, page_size: usize) -> Self {
        Self {
            store,
            options: ListOptions {
                revision,
                start_after: None,
                limit: Some(page_size),
            },
            done: false,
        }
    }

    /// The next page, `None` after the last.
    async fn next(&mut self) -> Result<Option<Vec<moor_store::KeyValue>>, StoreCopyError> {
        if self.done {
            return Ok(None);
        }
        let page = self
            .store
            .list("/", self.options.clone())
            .await
            .map_err(store_err("reading"))?;
        self.options.revision = Some(page.revision);
        self.options.start_after = page.kvs.last().map(|kv| kv.key.clone());
        self.done = !page.more || self.options.start_after.is_none();
        Ok(Some(page.kvs))
    }

    /// The revision read at (after the first page).
    fn revision(&self) -> Option<Revision> {
        self.options.revision
    }
}

/// The running hash of a side.
struct Hasher {
    count: u64,
    hash: DigestHasher,
}

impl Hasher {
    fn new() -> Self {
        Self {
            count: 0,
            hash: DigestHasher::new(DigestAlgorithm::Sha256),
        }
    }

    fn add(&mut self, key: &str, value: &[u8]) {
        self.count += 1;
        for part in [key.as_bytes(), value] {
            self.hash.update(&(part.len() as u64).to_be_bytes());
            self.hash.update(part);
        }
    }

    fn finish(self) -> Summary {
        Summary {
            count: self.count,
            hash: self.hash.finish().to_string(),
        }
    }
}

fn bar(show: bool, len: Option<u64>, message: &'static str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let (bar, template) = match len {
        Some(len) => (
            ProgressBar::new(len),
            "{msg} [{bar:30}] {pos}/{len} objects {per_sec} {eta}",
        ),
        None => (ProgressBar::new_spinner(), "{spinner} {msg} {pos} objects"),
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(message);
    bar
}

/// Copies every object of `from` into `to` (named `to_name` in messages), then reads
/// both back and summarises them.
pub async fn copy(
    from: &dyn Store,
    to: &dyn Store,
    to_name: &str,
    options: &CopyOptions,
) -> Result<CopyReport, StoreCopyError> {
    let page_size = options.page_size;
    let target_empty = to
        .list(
            "/",
            ListOptions {
                limit: Some(1),
                ..Default::default()
            },
        )
        .await
        .map_err(store_err("reading the target"))?
        .kvs
        .is_empty();
    if !target_empty && !options.force {
        return Err(StoreCopyError::NotEmpty(to_name.to_owned()));
    }

    // 1. Count and hash the source (at one revision, which the copy reads again).
    let counting = bar(options.progress, None, "reading the source");
    let mut source = Hasher::new();
    let mut keys = BTreeSet::new();
    let mut pages = Pages::new(from, None, page_size);
    while let Some(page) = pages.next().await? {
        for kv in &page {
            source.add(&kv.key, &kv.value);
            if !target_empty {
                keys.insert(kv.key.clone());
            }
        }
        counting.inc(page.len() as u64);
    }
    counting.finish_and_clear();
    let revision = pages.revision().unwrap_or_default();
    let source = source.finish();

    // 2. Write, a page at a time, several writes in flight.
    let writing = bar(options.progress, Some(source.count), "copying");
    let (mut written, mut bytes) = (0u64, 0u64);
    let mut pages = Pages::new(from, Some(revision), page_size);
    while let Some(page) = pages.next().await? {
        bytes += page.iter().map(|kv| kv.value.len() as u64).sum::<u64>();
        let n = page.len() as u64;
        futures::stream::iter(page)
            .map(|kv| async move { put(to, kv).await })
            .buffer_unordered(16)
            .inspect_ok(|()| writing.inc(1))
            .try_collect::<()>()
            .await?;
        written += n;
    }
    writing.finish_and_clear();

    // 3. With --force, delete what the source does not have.
    let mut deleted = 0u64;
    if !target_empty {
        let mut extra = Vec::new();
        let mut pages = Pages::new(to, None, page_size);
        while let Some(page) = pages.next().await? {
            extra.extend(
                page.into_iter()
                    .filter(|kv| !keys.contains(&kv.key))
                    .map(|kv| kv.key),
            );
        }
        for key in extra {
            match to.delete(&key, None).await {
                Ok(_) | Err(StoreError::NotFound(_)) => deleted += 1,
                Err(e) => return Err(store_err("deleting from the target")(e)),
            }
        }
    }

    // 4. Verify: read the target back.
    let checking = bar(options.progress, Some(source.count), "verifying");
    let mut target = Hasher::new();
    let mut pages = Pages::new(to, None, page_size);
    while let Some(page) = pages.next().await? {
        for kv in &page {
            target.add(&kv.key, &kv.value);
        }
        checking.inc(page.len() as u64);
    }
    checking.finish_and_clear();
    Ok(CopyReport {
        revision,
        written,
        bytes,
        deleted,
        source,
        target: target.finish(),
    })
}

/// Creates `kv`'s key with its value, or (when it exists: a forced copy) writes over it.
async fn put(to: &dyn Store, kv: moor_store::KeyValue) -> Result<(), StoreCopyError> {
    let (key, value) = (kv.key.as_str(), kv.value);
    loop {
        match to.create(key, value.clone()).await {
            Ok(_) => return Ok(()),
            Err(StoreError::AlreadyExists(_)) => {}
            Err(e) => return Err(store_err("writing the target")(e)),
        }
        let Some(current) = to.get(key).await.map_err(store_err("reading the target"))? else {
            continue;
        };
        if current.value == value {
            return Ok(());
        }
        match to.update(key, value.clone(), current.mod_revision).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => continue,
            Err(e) => return Err(store_err("writing the target")(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moor_store::MemoryStore;

    fn quiet(force: bool) -> CopyOptions {
        CopyOptions {
            force,
            page_size: 2,
            progress: false,
        }
    }

    #[tokio::test]
    async fn copies_every_object_and_refuses_a_full_target_without_force() {
        let from = MemoryStore::new();
        for i in 0..5 {
            from.create(&format!("/a/{i}"), format!("v{i}").into())
                .await
                .unwrap();
        }
        from.delete("/a/3", None).await.unwrap();
        let to = MemoryStore::new();
        let report = copy(&from, &to, "to", &quiet(false)).await.unwrap();
        assert_eq!(report.source, report.target);
        assert_eq!((report.source.count, report.written), (4, 4));
        assert_eq!(to.get("/a/4").await.unwrap().unwrap().value, "v4");

        // Not again without --force; with it, the target becomes equal to the source.
        assert!(matches!(
            copy(&from, &to, "to", &quiet(false)).await,
            Err(StoreCopyError::NotEmpty(_))
        ));
        to.create("/extra", "x".into()).await.unwrap();
        to.update(
            "/a/0",
            "changed".into(),
            to.get("/a/0").await.unwrap().unwrap().mod_revision,
        )
        .await
        .unwrap();
        let report = copy(&from, &to, "to", &quiet(true)).await.unwrap();
        assert_eq!(report.source, report.target);
        assert_eq!(report.deleted, 1);
        assert!(to.get("/extra").await.unwrap().is_none());
        assert_eq!(to.get("/a/0").await.unwrap().unwrap().value, "v0");
    }

    #[test]
    fn names_of_stores() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            StoreSpec::parse(dir.path().to_str().unwrap()).unwrap(),
            StoreSpec::Sqlite(dir.path().join("moor.db"))
        );
        assert_eq!(
            StoreSpec::parse("sqlite:///x/y.db").unwrap(),
            StoreSpec::Sqlite(PathBuf::from("/x/y.db"))
        );
        assert!(matches!(
            StoreSpec::parse("etcd://a:1,b:2/p").unwrap(),
            StoreSpec::Etcd(..)
        ));
        for bad in ["s3://b", "", "etcd://"] {
            assert!(StoreSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
