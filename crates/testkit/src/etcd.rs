//! A single-member `etcd` (Debian `etcd-server`) on free loopback ports in a temp
//! dir, waited for until healthy and killed on drop. Blocking (std::process); may
//! call `etcd`; only loopback addresses.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::peers::{free_port, require};

/// A running etcd, killed on drop.
pub struct Etcd {
    /// `http://127.0.0.1:PORT`: the client URL.
    pub url: String,
    /// The client port.
    pub client_port: u16,
    dir: TempDir,
    child: Child,
}

impl Etcd {
    /// Starts etcd, or returns `None` (after printing SKIP) when it is missing and
    /// `CI` is not set. Waits until `/health` answers `"health":"true"`.
    pub fn start() -> Option<Etcd> {
        if !require(&["etcd"]) {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let mut last_log = String::new();
        for _ in 0..3 {
            let (client_port, peer_port) = (free_port(), free_port());
            let client = format!("http://127.0.0.1:{client_port}");
            let peer = format!("http://127.0.0.1:{peer_port}");
            let log_path = dir.path().join("etcd.log");
            let log = std::fs::File::create(&log_path).expect("log file");
            let mut child = Command::new("etcd")
                .args(["--name", "t", "--data-dir"])
                .arg(dir.path().join("data"))
                .args(["--listen-client-urls", &client])
                .args(["--advertise-client-urls", &client])
                .args(["--listen-peer-urls", &peer])
                .args(["--initial-advertise-peer-urls", &peer])
                .args(["--initial-cluster", &format!("t={peer}")])
                // Progress notifications (watch bookmarks) every 200 ms, not 10 min.
                .args(["--experimental-watch-progress-notify-interval", "200ms"])
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn etcd");
            if wait_healthy(client_port, &mut child, Duration::from_secs(20)) {
                return Some(Etcd {
                    url: client,
                    client_port,
                    dir,
                    child,
                });
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let _ = std::fs::remove_dir_all(dir.path().join("data"));
        }
        panic!("etcd did not start:\n{last_log}");
    }

    /// etcd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    /// The process id (to kill it by hand).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `GET /health` on the client port reports healthy before `timeout`.
fn wait_healthy(port: u16, child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if healthy(port) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// One `GET /health`, as raw HTTP/1.0: this runs outside any async runtime.
fn healthy(port: u16) -> bool {
    use std::io::{Read as _, Write as _};
    let answer = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body)
    });
    answer.is_ok_and(|b| b.contains("\"health\":\"true\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_healthy_and_is_killed_on_drop() {
        let Some(etcd) = Etcd::start() else { return };
        let (pid, port) = (etcd.pid(), etcd.client_port);
        assert!(healthy(port), "{}", etcd.log());
        drop(etcd);
        // Killed and reaped: the process is gone.
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        assert!(!healthy(port));
    }
}
