//! Leadership: the scheduler checks registries only while this process leads, so that
//! several moor processes over one store (the etcd backend) do not check every tag
//! several times. A small interface: one process is always the leader
//! ([`AlwaysLeader`]); tests and a future election flip a [`ManualLeadership`] or
//! implement [`Leadership`] themselves; replicas elect theirs through
//! [`crate::election::Election`]. Calls only tokio's watch channel.

use tokio::sync::watch;

/// Whether this process leads, and a way to be told when that changes.
pub trait Leadership: Send + Sync + 'static {
    /// A receiver whose value is `true` while this process leads. The scheduler
    /// starts work when it turns `true` and drops in-flight work when it turns
    /// `false`.
    fn subscribe(&self) -> watch::Receiver<bool>;

    /// Whether this process leads now.
    fn is_leader(&self) -> bool {
        *self.subscribe().borrow()
    }

    /// Whether a leader-only write may be made now: leading, and (for an election
    /// with leases) before the lease may have run out. Fenced writes ask this right
    /// before writing ([`crate::election::fence`]).
    fn may_write(&self) -> bool {
        self.is_leader()
    }

    /// One line for `/readyz?verbose`: whether this process leads, and how.
    fn describe(&self) -> String {
        if self.is_leader() {
            "leading".into()
        } else {
            "following".into()
        }
    }
}

/// One process: always the leader.
pub struct AlwaysLeader {
    tx: watch::Sender<bool>,
}

impl AlwaysLeader {
    /// The leadership of a process that runs alone.
    pub fn new() -> Self {
        AlwaysLeader {
            tx: watch::Sender::new(true),
        }
    }
}

impl Default for AlwaysLeader {
    fn default() -> Self {
        Self::new()
    }
}

impl Leadership for AlwaysLeader {
    fn subscribe(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }
}

/// Leadership set by hand (tests; the seam an election plugs into).
pub struct ManualLeadership {
    tx: watch::Sender<bool>,
}

impl ManualLeadership {
    /// Starts leading or not.
    pub fn new(leading: bool) -> Self {
        ManualLeadership {
            tx: watch::Sender::new(leading),
        }
    }

    /// Gains (`true`) or loses (`false`) leadership.
    pub fn set(&self, leading: bool) {
        self.tx.send_replace(leading);
    }
}

impl Leadership for ManualLeadership {
    fn subscribe(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn always_and_manual() {
        assert!(AlwaysLeader::new().is_leader());
        let m = ManualLeadership::new(false);
        let rx = m.subscribe();
        assert!(!m.is_leader());
        m.set(true);
        assert!(m.is_leader());
        assert!(*rx.borrow());
    }
}
