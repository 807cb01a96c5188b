//! Shared pieces of moor's benchmarks: start a `moor serve` child, read its peak RSS,
//! and summarise latencies. Benchmarks are binaries under `src/bin`, run by `bench/run`.

pub mod proxy;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A running `moor serve`.
pub struct Moor {
    pub child: Child,
    pub url: String,
    pub token: String,
    /// The CA of the server's TLS certificate (PEM).
    pub ca_pem: Vec<u8>,
    _dir: tempfile::TempDir,
}

impl Moor {
    /// Starts `bin serve` on a free port over a fresh data directory.
    pub fn start(bin: &Path, extra: &[&str]) -> Result<Moor> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(data.join("kubeconfig")) {
                let url = text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("server: "))
                    .map(str::to_string);
                let token = text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("token: "))
                    .map(str::to_string);
                if let (Some(url), Some(token)) = (url, token) {
                    let ca_pem = std::fs::read(data.join("tls/ca.crt")).unwrap_or_default();
                    return Ok(Moor {
                        child,
                        url,
                        token,
                        ca_pem,
                        _dir: dir,
                    });
                }
            }
            if Instant::now() > deadline {
                bail!("moor serve did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// An HTTP client trusting the server's CA.
    pub fn client(&self, pool: usize) -> Result<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&self.ca_pem)?)
            .pool_max_idle_per_host(pool)
            .build()?)
    }

    /// Peak resident memory of the server so far, in MiB (Linux `VmHWM`).
    pub fn peak_rss_mib(&self) -> Option<f64> {
        peak_rss_mib(self.child.id())
    }
}

impl Drop for Moor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Peak resident memory of a process in MiB, from `/proc/<pid>/status`.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// The `moor` binary to measure: `$MOOR_BIN`, else `target/release/moor`.
pub fn moor_bin() -> PathBuf {
    std::env::var_os("MOOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/moor"))
}

/// The `q` quantile (0..=1) of `samples`.
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort();
    let idx = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[idx]
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// A CNCF distribution (`docker-registry`) on a free loopback port, stopped on drop.
pub struct Distribution {
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub host: String,
    pub dir: tempfile::TempDir,
}

impl Distribution {
    /// Starts `docker-registry serve` with storage in a temp dir; `extra` is appended
    /// to its YAML config (e.g. a `proxy:` section).
    pub fn start(extra: &str) -> Result<Distribution> {
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{extra}",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), config)?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting docker-registry (apt-get install docker-registry)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("docker-registry did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Distribution {
            child,
            host: format!("127.0.0.1:{port}"),
            dir,
        })
    }

    /// Peak resident memory of the registry so far, in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        peak_rss_mib(self.child.id())
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Builds a one-layer image with umoci (a file of `layer_bytes` random bytes) and
/// pushes it with skopeo to `dest` (`HOST/repo:tag`). Returns nothing; skopeo decides
/// the digest.
pub fn push_image(dest: &str, layer_bytes: usize, seed: u64) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let layout = dir.path().join("oci");
    let image = format!("{}:img", layout.display());
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout))?;
    run(Command::new("umoci").args(["new", "--image", &image]))?;
    let bundle = dir.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image", &image])
        .arg(&bundle))?;
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let data: Vec<u8> = (0..layer_bytes)
        .map(|_| {
            // xorshift: incompressible bytes without a dependency.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state & 0xff) as u8
        })
        .collect();
    std::fs::write(bundle.join("rootfs/data.bin"), data)?;
    run(Command::new("umoci")
        .args(["repack", "--image", &image])
        .arg(&bundle))?;
    run(Command::new("umoci").args([
        "config",
        "--image",
        &image,
        "--architecture",
        "amd64",
        "--os",
        "linux",
        "--config.cmd",
        "/data.bin",
    ]))?;
    run(Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{image}"))
        .arg(format!("docker://{dest}")))?;
    Ok(())
}

/// Sum of a Prometheus counter family in `/metrics` text, over series whose labels
/// contain every `filter` substring.
pub fn counter_sum(metrics: &str, name: &str, filter: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && filter.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// nginx (`nginx-light`) serving the files of a private temp folder with `sendfile
/// on`: the machine's own limit for serving bytes over HTTP (see TESTBED.md, "Measuring").
/// Runs as root (`user root;`, the folder is private) with its pid file and error log
/// in the temp folder; stopped with SIGTERM on drop.
pub struct Nginx {
    /// The master process (its workers are its children).
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// The temp folder: `www/` is the document root.
    pub dir: tempfile::TempDir,
}

impl Nginx {
    /// Writes `files` (path under the root, content) into the document root and starts nginx on a
    /// free loopback port with as many workers as cores (`worker_processes auto`).
    pub fn start(files: &[(&str, &[u8])]) -> Result<Nginx> {
        let dir = tempfile::tempdir()?;
        let www = dir.path().join("www");
        std::fs::create_dir_all(&www)?;
        std::fs::create_dir_all(dir.path().join("tmp"))?;
        for (name, content) in files {
            let path = www.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, content)?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let d = dir.path().display();
        let config = format!(
            "daemon off;\nuser root;\nworker_processes auto;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 1000000;\n\
             \x20 default_type application/octet-stream;\n  client_body_temp_path {d}/tmp;\n\
             \x20 server {{ listen 127.0.0.1:{port}; root {d}/www; }}\n}}\n"
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config)?;
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx (apt-get install nginx-light)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
                bail!("nginx did not start: {log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Nginx {
            child,
            host: format!("127.0.0.1:{port}"),
            dir,
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its workers; SIGKILL would orphan them.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system, in seconds) of a process, its threads, and its child
/// processes still running (nginx's workers), from `/proc`.
pub fn tree_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    let mut secs = ticks / clock_ticks();
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
        secs += tree_cpu_seconds(child).unwrap_or(0.0);
    }
    Some(secs)
}

/// `getconf CLK_TCK` (100 on Linux unless told otherwise), asked once.
fn clock_ticks() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}
