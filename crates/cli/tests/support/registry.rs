//! A real upstream registry for the CLI's interop tests: CNCF distribution
//! (`docker-registry`) on 127.0.0.1 over plain HTTP, and images built with umoci and
//! pushed with skopeo as TESTBED.md shows (after crates/server/tests/support/registry.rs,
//! trimmed to what the CLI tests use). Blocking (std::process); only loopback.
//!
//! A missing peer fails the test when `CI` is set and otherwise skips it:
//! [`Distribution::start`] prints `SKIP ...` and returns `None`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// Whether every tool in `tools` is on `PATH`. When one is missing: panics if `CI` is
/// set, else prints `SKIP <test>: ...` and returns false.
pub fn require(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| super::peer(t).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let thread = std::thread::current();
    eprintln!(
        "SKIP {}: {missing:?} not installed (see TESTBED.md; set CI to fail instead)",
        thread.name().unwrap_or("test")
    );
    false
}

/// A port on 127.0.0.1 that nothing listens on (free at the time of the call).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A running CNCF distribution on 127.0.0.1 (plain HTTP, no auth), stopped on drop.
pub struct Distribution {
    /// `127.0.0.1:PORT`.
    pub host: String,
    dir: TempDir,
    child: Child,
}

impl Distribution {
    /// A distribution, or `None` (after printing SKIP) when docker-registry, skopeo or
    /// umoci is missing and `CI` is not set.
    pub fn start() -> Option<Self> {
        if !require(&["docker-registry", "skopeo", "umoci"]) {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let config = format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                root = dir.path().join("data").display(),
            );
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).expect("write config");
            let log_path = dir.path().join("registry.log");
            let log = std::fs::File::create(&log_path).expect("log file");
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config_path)
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn docker-registry");
            if wait_listening(port, &mut child, Duration::from_secs(10)) {
                return Some(Self {
                    host: format!("127.0.0.1:{port}"),
                    dir,
                    child,
                });
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
        }
        panic!("docker-registry did not start:\n{last_log}");
    }

    /// `127.0.0.1:PORT/<repo_tag>`.
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host)
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Pushes `tag` of `layout` to `repo_tag` (`keycloak/keycloak:20.0.2`) with skopeo,
    /// keeping its OCI manifest, and returns the digest `skopeo inspect` reports.
    pub fn push(&self, layout: &OciLayout, tag: &str, repo_tag: &str) -> String {
        run(Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:{tag}", layout.path().display()))
            .arg(format!("docker://{}", self.reference(repo_tag)))
            .stdout(Stdio::null()));
        self.inspect_digest(repo_tag)
    }

    /// `skopeo inspect`'s `.Digest` for `repo_tag`.
    pub fn inspect_digest(&self, repo_tag: &str) -> String {
        let out = run(Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{}", self.reference(repo_tag))));
        let v: Value = serde_json::from_slice(&out.stdout).expect("skopeo inspect JSON");
        v["Digest"]
            .as_str()
            .expect("skopeo inspect .Digest")
            .to_owned()
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_listening(port: u16, child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// An OCI image layout in a temp dir, written with umoci.
pub struct OciLayout {
    dir: TempDir,
}

impl OciLayout {
    /// An empty layout (`umoci init`).
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        run(Command::new("umoci")
            .args(["init", "--layout"])
            .arg(dir.path().join("oci")));
        Self { dir }
    }

    /// The layout's directory.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("oci")
    }

    fn image(&self, tag: &str) -> String {
        format!("{}:{tag}", self.path().display())
    }

    /// Builds image `tag`: one layer with `/hello.txt` holding `content`, an amd64/linux
    /// config with `Cmd ["/hello.txt"]`, `Env`, a label and an exposed port. Returns its
    /// manifest digest.
    pub fn add_image(&self, tag: &str, content: &str) -> String {
        let image = self.image(tag);
        run(Command::new("umoci").args(["new", "--image", &image]));
        let bundle = self.dir.path().join(format!("bundle-{tag}"));
        run(Command::new("umoci")
            .args(["unpack", "--rootless", "--image", &image])
            .arg(&bundle));
        std::fs::write(bundle.join("rootfs/hello.txt"), content).expect("write file");
        run(Command::new("umoci")
            .args(["repack", "--image", &image])
            .arg(&bundle));
        run(Command::new("umoci").args([
            "config",
            "--image",
            &image,
            "--architecture",
            "amd64",
            "--os",
            "linux",
            "--config.cmd",
            "/hello.txt",
            "--config.env",
            "GREETING=hello",
            "--config.label",
            "org.example.version=1",
            "--config.exposedports",
            "8080/tcp",
            "--config.workingdir",
            "/srv",
        ]));
        let _ = std::fs::remove_dir_all(&bundle);
        self.digest(tag).expect("umoci tagged the image")
    }

    /// A copy of image `from` under `tag` that differs only in a label (a new
    /// manifest digest for the price of one `umoci config`). Returns its digest.
    pub fn relabel(&self, from: &str, tag: &str, label: &str) -> String {
        run(Command::new("umoci")
            .args(["config", "--image", &self.image(from), "--tag", tag])
            .args(["--config.label", &format!("org.example.variant={label}")]));
        self.digest(tag).expect("umoci tagged the copy")
    }

    /// The manifest digest tagged `tag` in `index.json`.
    pub fn digest(&self, tag: &str) -> Option<String> {
        let layout: Value =
            serde_json::from_slice(&std::fs::read(self.path().join("index.json")).ok()?).ok()?;
        layout["manifests"].as_array()?.iter().find_map(|m| {
            (m["annotations"]["org.opencontainers.image.ref.name"] == tag)
                .then(|| m["digest"].as_str().unwrap_or_default().to_owned())
        })
    }
}

impl Default for OciLayout {
    fn default() -> Self {
        Self::new()
    }
}
