//! Leader election of the controllers (importer, scheduler, triggers, compactor,
//! stream cleanup), so that several `moor serve` replicas on one store run them once.
//! [`Election`] implements the scheduler's [`Leadership`] seam over one of:
//!
//! - **etcd**: a lease of [`LEASE_TTL`] and a create-if-absent of [`LEADER_KEY`] bound
//!   to it (kine's create shape). The leader renews the lease every
//!   [`RENEW_INTERVAL`]; followers retry the create every [`RETRY_INTERVAL`], which
//!   succeeds once a dead leader's lease has expired and etcd deleted its key.
//! - **SQLite**: an exclusive `flock` on `<database>.leader`, which the kernel drops
//!   when the holder dies (even by SIGKILL); followers retry every [`RETRY_INTERVAL`].
//! - **single**: one process on a store no other process can open (memory), always
//!   the leader.
//!
//! A leader may write until the send time of its last successful renewal plus
//! `LEASE_TTL` minus `FENCE_MARGIN`: etcd starts a renewed lease's TTL when it receives the renewal,
//! so the lease cannot expire earlier than the TTL after the renewal was sent. Past
//! that instant without a renewal the leader steps down by itself. [`fence`] holds the
//! write wrappers that check it. Calls the store (etcd leases), the file system
//! (the lock) and tokio.

pub mod fence;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use crate::scheduler::Leadership;

/// The etcd lease's time to live: a killed leader's claim ends within it.
pub const LEASE_TTL: Duration = Duration::from_secs(5);
/// How often the leader renews its lease (three renewals fit in one TTL).
pub const RENEW_INTERVAL: Duration = Duration::from_millis(1500);
/// How often a follower tries to take the lead.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// A leader stops writing this long before its lease can expire at etcd.
pub const FENCE_MARGIN: Duration = Duration::from_secs(1);
/// The store key the etcd leader holds (its value: the holder's identity and lease).
pub const LEADER_KEY: &str = "/moor/leader/controllers";

/// Errors of starting an election.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    #[error("leader lock {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How replicas elect their leader.
#[derive(Clone)]
pub enum Backend {
    /// An etcd lease and [`LEADER_KEY`].
    Etcd(Arc<moor_store::EtcdStore>),
    /// A `flock` on this file.
    FileLock(PathBuf),
    /// The only process: always the leader.
    Single,
}

impl Backend {
    /// The name `/readyz?verbose` and the logs use.
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Etcd(_) => "etcd-lease",
            Backend::FileLock(_) => "file-lock",
            Backend::Single => "single",
        }
    }
}

/// Until when the leader may write.
#[derive(Clone, Copy, Debug)]
enum Validity {
    Following,
    Until(Instant),
    Forever,
}

/// This process's part in the election; see the module doc.
pub struct Election {
    tx: watch::Sender<bool>,
    validity: Mutex<Validity>,
    identity: String,
    kind: &'static str,
    /// Times this process gained the lead.
    terms: AtomicU64,
    /// Set by [`halt`](Election::halt): no more renewals or campaigns.
    halted: AtomicBool,
    /// The etcd lease of the current campaign or term, for [`resign`](Election::resign).
    lease: Mutex<Option<(Arc<moor_store::EtcdStore>, moor_store::LeaseId)>>,
}

impl Leadership for Election {
    fn subscribe(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }

    fn may_write(&self) -> bool {
        match *self.validity.lock().unwrap_or_else(|e| e.into_inner()) {
            Validity::Following => false,
            Validity::Until(t) => Instant::now() < t,
            Validity::Forever => true,
        }
    }

    fn describe(&self) -> String {
        let role = if self.is_leader() {
            "leading"
        } else {
            "following"
        };
        format!(
            "{role} (election {}, identity {:?}, terms led {})",
            self.kind,
            self.identity,
            self.terms()
        )
    }
}

impl Election {
    /// Starts campaigning through `backend` as `identity` (a name unique to this
    /// process, e.g. `host:port/pid`). Spawns the campaign on the current runtime.
    pub fn start(backend: Backend, identity: String) -> Result<Arc<Self>, ElectionError> {
        let election = Arc::new(Election {
            tx: watch::Sender::new(false),
            validity: Mutex::new(Validity::Following),
            identity,
            kind: backend.kind(),
            terms: AtomicU64::new(0),
            halted: AtomicBool::new(false),
            lease: Mutex::new(None),
        });
        let weak = Arc::downgrade(&election);
        match backend {
            Backend::Single => election.lead(Validity::Forever),
            Backend::FileLock(path) => {
                let file = open_lock_file(&path)?;
                tokio::spawn(run_file_lock(weak, file, path));
            }
            Backend::Etcd(store) => {
                tokio::spawn(run_etcd(weak, store));
            }
        }
        Ok(election)
    }

    /// This process's name in the election.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// How the election is held (`etcd-lease`, `file-lock`, `single`).
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Stops renewing and campaigning, as a process that froze would, without telling
    /// anyone: [`is_leader`](Leadership::is_leader) keeps its last value, while
    /// [`may_write`](Leadership::may_write) ends at the lease's write deadline. For
    /// tests of fencing; dropping every handle has the same effect.
    pub fn halt(&self) {
        self.halted.store(true, Ordering::SeqCst);
    }

    /// Steps down on purpose, as a process that stops cleanly should: the controllers
    /// stop and fenced writes are refused at once, and the etcd lease is revoked, so
    /// the leader key goes with it and another replica leads within its next retry
    /// instead of after the lease's TTL. (The file lock goes when the process exits.)
    pub async fn resign(&self) {
        self.halt();
        let was_leading = self.is_leader();
        self.follow();
        let lease = self.lease.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((store, lease)) = lease {
            match tokio::time::timeout(LEASE_TTL, store.revoke_lease(lease)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "election: revoking the lease failed"),
                Err(_) => tracing::warn!("election: revoking the lease timed out"),
            }
        }
        if was_leading {
            tracing::info!(identity = %self.identity, election = self.kind, "resigned the lead");
        }
    }

    /// The election, unless it was halted or dropped.
    fn live(election: &Weak<Election>) -> Option<Arc<Election>> {
        election
            .upgrade()
            .filter(|e| !e.halted.load(Ordering::SeqCst))
    }

    /// How many times this process gained the lead.
    pub fn terms(&self) -> u64 {
        self.terms.load(Ordering::Relaxed)
    }

    fn lead(&self, validity: Validity) {
        {
            let mut current = self.validity.lock().unwrap_or_else(|e| e.into_inner());
            // Checked under the lock, so a campaign that wins while
            // [`resign`](Election::resign) runs cannot lead after it.
            if self.halted.load(Ordering::SeqCst) {
                return;
            }
            *current = validity;
        }
        if !*self.tx.borrow() {
            self.terms.fetch_add(1, Ordering::Relaxed);
            tracing::info!(identity = %self.identity, election = self.kind, "leading the controllers");
            self.tx.send_replace(true);
        }
    }

    fn follow(&self) {
        *self.validity.lock().unwrap_or_else(|e| e.into_inner()) = Validity::Following;
        if *self.tx.borrow() {
            tracing::warn!(identity = %self.identity, election = self.kind, "lost the lead; controllers stop");
            self.tx.send_replace(false);
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match *self.validity.lock().unwrap_or_else(|e| e.into_inner()) {
            Validity::Until(t) => Some(t),
            _ => None,
        }
    }
}

/// Tries to take [`LEADER_KEY`] with `lease`, renewing the lease while it waits
/// (`renewed`: the send time of its last renewal); `true` once leading, `false` when
/// the lease was lost or the election dropped.
async fn campaign(
    election: &Weak<Election>,
    store: &moor_store::EtcdStore,
    lease: moor_store::LeaseId,
    mut renewed: Instant,
) -> bool {
    loop {
        let Some(this) = Election::live(election) else {
            return false;
        };
        let value = Bytes::from(format!("{} lease={lease:x}", this.identity));
        match store.create_leased(LEADER_KEY, value, lease).await {
            Ok(true) => {
                let until = renewed + LEASE_TTL - FENCE_MARGIN;
                if Instant::now() >= until {
                    // Too late to trust this lease: start over with a fresh one.
                    let _ = store.revoke_lease(lease).await;
                    return false;
                }
                this.lead(Validity::Until(until));
                return true;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "election: campaign failed"),
        }
        drop(this);
        tokio::time::sleep(RETRY_INTERVAL).await;
        let sent = Instant::now();
        match store.keep_lease_alive(lease).await {
            Ok(true) => renewed = sent,
            Ok(false) => return false,
            Err(e) => {
                tracing::warn!(error = %e, "election: renewing a waiting lease failed");
                if Instant::now() >= renewed + LEASE_TTL - FENCE_MARGIN {
                    return false;
                }
            }
        }
    }
}

/// Renews `lease` while it lasts; steps down when a renewal cannot be had before the
/// write deadline.
async fn hold(
    election: &Weak<Election>,
    store: &moor_store::EtcdStore,
    lease: moor_store::LeaseId,
) {
    loop {
        tokio::time::sleep(RENEW_INTERVAL).await;
        let Some(this) = Election::live(election) else {
            return;
        };
        let Some(deadline) = this.deadline() else {
            return;
        };
        let sent = Instant::now();
        let left = deadline.saturating_duration_since(sent);
        match tokio::time::timeout(left, store.keep_lease_alive(lease)).await {
            Ok(Ok(true)) => this.lead(Validity::Until(sent + LEASE_TTL - FENCE_MARGIN)),
            Ok(Ok(false)) => {
                tracing::warn!("election: the lease expired");
                this.follow();
                return;
            }
            Ok(Err(e)) if Instant::now() < deadline => {
                tracing::warn!(error = %e, "election: renewal failed; retrying");
            }
            Ok(Err(_)) | Err(_) => {
                tracing::warn!("election: no renewal before the write deadline");
                this.follow();
                let _ = store.revoke_lease(lease).await;
                return;
            }
        }
    }
}

/// The SQLite election: takes the lock when it can and keeps it until the process
/// ends (the kernel releases it then) or the [`Election`] is dropped.
async fn run_file_lock(election: Weak<Election>, file: std::fs::File, path: PathBuf) {
    loop {
        let Some(this) = Election::live(&election) else {
            return;
        };
        match file.try_lock() {
            Ok(()) => this.lead(Validity::Forever),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => {
                tracing::warn!(path = %path.display(), error = %e, "leader lock failed");
            }
        }
        drop(this);
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
}

/// The etcd election: campaigns, holds the lead while renewals succeed, and
/// campaigns again after losing it, until the [`Election`] is dropped (which stops
/// renewing, as a killed process would).
async fn run_etcd(election: Weak<Election>, store: Arc<moor_store::EtcdStore>) {
    loop {
        let Some(this) = Election::live(&election) else {
            return;
        };
        let sent = Instant::now();
        let lease = match store.grant_lease(LEASE_TTL).await {
            Ok(lease) => lease,
            Err(e) => {
                tracing::warn!(error = %e, "election: granting a lease failed");
                drop(this);
                tokio::time::sleep(RETRY_INTERVAL).await;
                continue;
            }
        };
        *this.lease.lock().unwrap_or_else(|e| e.into_inner()) = Some((store.clone(), lease));
        drop(this);
        if campaign(&election, &store, lease, sent).await {
            hold(&election, &store, lease).await;
        }
    }
}

/// Opens (creating, 0600) the lock file of the SQLite election.
fn open_lock_file(path: &Path) -> Result<std::fs::File, ElectionError> {
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    opts.mode(0o600);
    opts.open(path).map_err(|source| ElectionError::Lock {
        path: path.to_path_buf(),
        source,
    })
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `make()`'s future while `leadership` leads: started when the lead is gained,
/// dropped (at its next await) when it is lost or when this future is dropped,
/// started again on the next term.
pub async fn while_leading<F, Fut>(leadership: Arc<dyn Leadership>, name: &'static str, make: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut rx = leadership.subscribe();
    loop {
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                return;
            }
        }
        tracing::info!(controller = name, "leading: started");
        let lost = async {
            loop {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
                if !*rx.borrow_and_update() {
                    return;
                }
            }
        };
        tokio::pin!(lost);
        let task = tokio::spawn(make());
        let abort = task.abort_handle();
        // Dropping a JoinHandle does not stop its task: when this future is dropped
        // (its task aborted, as a server's shutdown does), the controller must stop too.
        let _stop_with_this = AbortOnDrop(abort.clone());
        tokio::select! {
            _ = task => {
                tracing::warn!(controller = name, "controller ended while leading");
                // Wait for this term to end rather than restart in a loop.
                (&mut lost).await;
            }
            _ = &mut lost => {
                abort.abort();
                tracing::info!(controller = name, "leadership lost: stopped");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::ManualLeadership;

    #[tokio::test]
    async fn file_lock_elects_one_and_the_next_after_the_first_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("moor.db.leader");
        let a = Election::start(Backend::FileLock(path.clone()), "a".into()).unwrap();
        let mut rx = a.subscribe();
        rx.wait_for(|l| *l).await.unwrap();
        assert!(a.may_write());
        // The same lock through another open file description, as a second process.
        let b = Election::start(Backend::FileLock(path.clone()), "b".into()).unwrap();
        let mut b_rx = b.subscribe();
        assert!(!b.is_leader() && !b.may_write());
        // The holder goes (its file closes, as when a process dies): b takes over.
        drop(a);
        b_rx.wait_for(|l| *l).await.unwrap();
        assert!(b.may_write());
        assert_eq!(b.terms(), 1);
    }

    #[tokio::test]
    async fn controllers_run_only_while_leading() {
        /// Counts the controller's stops (its future dropped).
        struct Stops(Arc<watch::Sender<usize>>);
        impl Drop for Stops {
            fn drop(&mut self) {
                self.0.send_modify(|n| *n += 1);
            }
        }
        let leadership = Arc::new(ManualLeadership::new(false));
        let (started_tx, mut started) = watch::channel(0usize);
        let (stopped_tx, mut stopped) = watch::channel(0usize);
        let (started_tx, stopped_tx) = (Arc::new(started_tx), Arc::new(stopped_tx));
        tokio::spawn(while_leading(leadership.clone(), "test", move || {
            let (started_tx, stops) = (started_tx.clone(), Stops(stopped_tx.clone()));
            async move {
                let _stops = stops;
                started_tx.send_modify(|n| *n += 1);
                std::future::pending::<()>().await;
            }
        }));
        leadership.set(true);
        started.wait_for(|n| *n == 1).await.unwrap();
        leadership.set(false);
        stopped.wait_for(|n| *n == 1).await.unwrap();
        leadership.set(true);
        started.wait_for(|n| *n == 2).await.unwrap();
        assert_eq!(*stopped.borrow(), 1);
    }
}
