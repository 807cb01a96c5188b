//! A single-member etcd on loopback for these tests, killed on drop. moor-testkit has
//! one too, but depends on the server crate, which depends on this one.

use std::io::{Read as _, Write as _};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running etcd, killed on drop.
pub struct Etcd {
    /// `127.0.0.1:PORT`.
    pub endpoint: String,
    child: Child,
    _dir: tempfile::TempDir,
}

/// Whether `etcd` is installed; without it the tests skip, unless `CI` is set.
pub fn available() -> bool {
    let found = Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found || std::env::var_os("CI").is_none(),
        "etcd is not installed and CI is set"
    );
    if !found {
        eprintln!("SKIP: etcd is not installed");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Etcd {
    /// Starts etcd on free ports, its data in memory when /dev/shm exists, taking
    /// requests up to 16 MiB (the suite writes 4 MiB values).
    pub fn start() -> Etcd {
        Self::start_with(None)
    }

    /// [`start`](Self::start), serving TLS when `tls` names a directory with `ca.pem`,
    /// `server.pem` and `server.key`, and then requiring client certificates that CA
    /// signed. `/health` is read from a plain-HTTP metrics port.
    pub fn start_with(tls: Option<&std::path::Path>) -> Etcd {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("temp dir");
        for _ in 0..3 {
            let (client, peer, metrics) = (free_port(), free_port(), free_port());
            let scheme = if tls.is_some() { "https" } else { "http" };
            let client_url = format!("{scheme}://127.0.0.1:{client}");
            let mut tls_args = Vec::new();
            if let Some(dir) = tls {
                for (flag, file) in [
                    ("--cert-file", "server.pem"),
                    ("--key-file", "server.key"),
                    ("--trusted-ca-file", "ca.pem"),
                ] {
                    tls_args.push(flag.to_owned());
                    tls_args.push(dir.join(file).display().to_string());
                }
                tls_args.push("--client-cert-auth".to_owned());
            }
            let peer_url = format!("http://127.0.0.1:{peer}");
            let log = std::fs::File::create(dir.path().join("etcd.log")).expect("log");
            let mut child = Command::new("etcd")
                .args(["--name", "t", "--data-dir"])
                .arg(dir.path().join("data"))
                .args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &format!("t={peer_url}")])
                .args(["--max-request-bytes", &(16 << 20).to_string()])
                // Bookmarks (progress notifications) every 200 ms, not every 10 min.
                .args(["--experimental-watch-progress-notify-interval", "200ms"])
                .args([
                    "--listen-metrics-urls",
                    &format!("http://127.0.0.1:{metrics}"),
                ])
                .args(&tls_args)
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn etcd");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                if healthy(metrics) {
                    return Etcd {
                        endpoint: format!("127.0.0.1:{client}"),
                        child,
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(dir.path().join("data"));
        }
        let log = std::fs::read_to_string(dir.path().join("etcd.log")).unwrap_or_default();
        panic!("etcd did not start:\n{log}");
    }
}

impl Etcd {
    /// Sends `signal` (`STOP`, `CONT`) to etcd with kill(1): no unsafe, no libc.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal}");
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A three-member etcd cluster on loopback (TESTBED.md), each member killed on drop.
pub struct Cluster {
    /// `127.0.0.1:PORT` of each member, in member order.
    pub endpoints: Vec<String>,
    members: Vec<Option<Child>>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` members on free ports and waits until each reports healthy (which
    /// needs a leader).
    pub fn start(n: usize) -> Cluster {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("temp dir");
        let ports: Vec<(u16, u16, u16)> = (0..n)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let initial = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer, _))| format!("e{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        for (i, (client, peer, metrics)) in ports.iter().enumerate() {
            let client_url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let log = std::fs::File::create(dir.path().join(format!("e{i}.log"))).expect("log");
            let child = Command::new("etcd")
                .args(["--name", &format!("e{i}"), "--data-dir"])
                .arg(dir.path().join(format!("e{i}")))
                .args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &initial])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "moor-test"])
                .args(["--experimental-watch-progress-notify-interval", "200ms"])
                .args([
                    "--listen-metrics-urls",
                    &format!("http://127.0.0.1:{metrics}"),
                ])
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn etcd");
            members.push(Some(child));
        }
        let cluster = Cluster {
            endpoints: ports
                .iter()
                .map(|(client, _, _)| format!("127.0.0.1:{client}"))
                .collect(),
            members,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ports.iter().all(|(_, _, metrics)| healthy(*metrics)) {
            assert!(Instant::now() < deadline, "etcd cluster did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// Kills member `i` with SIGKILL (`kill -9`) and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// `GET /health` answers healthy.
fn healthy(port: u16) -> bool {
    let answer = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body)
    });
    answer.is_ok_and(|b| b.contains("\"health\":\"true\""))
}
