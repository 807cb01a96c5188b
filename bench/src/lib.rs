//! Shared pieces of moor's benchmarks: the peers and `moor serve` come from the test
//! kit (`moor_testkit`); here are nginx, CPU time, and summaries of latencies.
//! Benchmarks are binaries under `src/bin`, run by `bench/run`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
pub use moor_testkit::peers::peak_rss_mib;
pub use moor_testkit::proxy::{Hit, HitLog};
pub use moor_testkit::{CountingProxy, Distribution, MoorProcess as Moor};
use moor_testkit::{DistributionOptions, ImageSpec, OciLayout};

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

/// A plain-HTTP distribution on loopback (the peers' log level `error`), pulling
/// through from `proxy_remote` when given.
pub fn distribution(proxy_remote: Option<String>) -> Result<Distribution> {
    distribution_with(proxy_remote, None)
}

/// [`distribution`], over TLS with `tls`'s certificate when given (Go's crypto/tls
/// defaults: TLS 1.2 and 1.3).
pub fn distribution_with(
    proxy_remote: Option<String>,
    tls: Option<&TestCert>,
) -> Result<Distribution> {
    Distribution::start_with(DistributionOptions {
        proxy_remote,
        log_level: Some("error".into()),
        tls_files: tls.map(|t| (t.cert.clone(), t.key.clone())),
        ..Default::default()
    })
    .context("docker-registry, skopeo and umoci are needed (apt-get install docker-registry skopeo umoci)")
}

/// A counting proxy in front of `upstream` (see [`CountingProxy`]): its host and the
/// requests it forwards.
pub async fn start_proxy(upstream: &str, mbit_per_sec: Option<f64>) -> Result<(String, HitLog)> {
    let proxy = CountingProxy::start_with_link(upstream, mbit_per_sec).await;
    Ok((proxy.host, proxy.log))
}

/// Builds a one-layer image (a file of `layer_bytes` random bytes) and pushes it with
/// skopeo to `dest` (`HOST/repo:tag`). Returns nothing; skopeo decides the digest.
pub fn push_image(dest: &str, layer_bytes: usize, seed: u64) -> Result<()> {
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
    let mut spec = ImageSpec::new("amd64").with_cmd("/data.bin");
    spec.files = vec![("data.bin".to_owned(), data)];
    let layout = OciLayout::new();
    layout.add_image("img", &spec);
    let out = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:img", layout.path().display()))
        .arg(format!("docker://{dest}"))
        .output()
        .context("running skopeo")?;
    if !out.status.success() {
        bail!(
            "skopeo copy failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
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
        Self::start_with(files, None)
    }

    /// [`start`](Self::start), over TLS 1.3 only with `tls`'s certificate when given
    /// (OpenSSL; `ssl_buffer_size` stays 16k).
    pub fn start_with(files: &[(&str, &[u8])], tls: Option<&TestCert>) -> Result<Nginx> {
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
        let listen = match tls {
            None => format!("listen 127.0.0.1:{port};"),
            // AES-128-GCM first and the server's order, as Go's crypto/tls (and
            // moor) choose: the machine's limit at its best, whatever the client offers.
            Some(t) => format!(
                "listen 127.0.0.1:{port} ssl; ssl_protocols TLSv1.3; ssl_prefer_server_ciphers on; \
                 ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256; \
                 ssl_certificate {}; ssl_certificate_key {};",
                t.cert.display(),
                t.key.display()
            ),
        };
        let config = format!(
            "daemon off;\nuser root;\nworker_processes auto;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 1000000;\n\
             \x20 default_type application/octet-stream;\n  client_body_temp_path {d}/tmp;\n\
             \x20 server {{ {listen} root {d}/www; }}\n}}\n"
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

/// One ECDSA P-256 certificate for `127.0.0.1` (and its CA), made with `openssl` for
/// one benchmark run: every server measured over TLS serves it, so they all pay for the
/// same key type and chain.
pub struct TestCert {
    /// The CA's certificate (PEM): what clients trust.
    pub ca: PathBuf,
    /// The server certificate (PEM).
    pub cert: PathBuf,
    /// The server key (PKCS#8 PEM).
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCert {
    /// A fresh CA and a server certificate signed by it (webpki refuses a CA
    /// certificate as the server's own), both P-256.
    pub fn p256() -> Result<TestCert> {
        let dir = tempfile::tempdir()?;
        let path = |name: &str| dir.path().join(name);
        let (ca, ca_key, csr, ext) = (
            path("ca.pem"),
            path("ca.key"),
            path("server.csr"),
            path("server.ext"),
        );
        let (cert, key) = (path("cert.pem"), path("key.pem"));
        let openssl = |args: &[&std::ffi::OsStr]| -> Result<()> {
            let out = Command::new("openssl")
                .args(args)
                .output()
                .context("running openssl")?;
            ensure!(
                out.status.success(),
                "openssl failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(())
        };
        let os = |s: &'static str| std::ffi::OsStr::new(s);
        let ec = [
            os("-newkey"),
            os("ec"),
            os("-pkeyopt"),
            os("ec_paramgen_curve:P-256"),
        ];
        let mut args = vec![os("req"), os("-x509"), os("-nodes"), os("-days"), os("2")];
        args.extend(ec);
        args.extend([os("-subj"), os("/CN=moor bench CA")]);
        args.extend([os("-addext"), os("basicConstraints=critical,CA:TRUE")]);
        args.extend([os("-addext"), os("keyUsage=critical,keyCertSign,cRLSign")]);
        args.extend([
            os("-keyout"),
            ca_key.as_os_str(),
            os("-out"),
            ca.as_os_str(),
        ]);
        openssl(&args)?;
        let mut args = vec![os("req"), os("-new"), os("-nodes")];
        args.extend(ec);
        args.extend([os("-subj"), os("/CN=127.0.0.1")]);
        args.extend([os("-keyout"), key.as_os_str(), os("-out"), csr.as_os_str()]);
        openssl(&args)?;
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )?;
        openssl(&[
            os("x509"),
            os("-req"),
            os("-days"),
            os("2"),
            os("-set_serial"),
            os("2"),
            os("-in"),
            csr.as_os_str(),
            os("-CA"),
            ca.as_os_str(),
            os("-CAkey"),
            ca_key.as_os_str(),
            os("-extfile"),
            ext.as_os_str(),
            os("-out"),
            cert.as_os_str(),
        ])?;
        Ok(TestCert {
            ca,
            cert,
            key,
            _dir: dir,
        })
    }

    /// The CA certificate's PEM.
    pub fn ca_pem(&self) -> Result<Vec<u8>> {
        Ok(std::fs::read(&self.ca)?)
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

/// Runs `total` requests from `connections` workers, each with its own connection;
/// `make(i)` builds request `i`. Returns the latencies and the wall time.
pub async fn load(
    moor: &Moor,
    connections: usize,
    total: usize,
    make: impl Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + Clone + 'static,
    check: fn(&[u8]) -> Result<()>,
) -> Result<(Vec<Duration>, Duration)> {
    let mut workers = Vec::new();
    let started = Instant::now();
    for w in 0..connections {
        let client = moor.client_pool(1);
        let make = make.clone();
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut i = w;
            while i < total {
                let t = Instant::now();
                let r = make(&client, i).send().await?;
                let status = r.status();
                let body = r.bytes().await?;
                samples.push(t.elapsed());
                ensure!(
                    status.is_success(),
                    "answered {status}: {}",
                    String::from_utf8_lossy(&body)
                );
                check(&body)?;
                i += connections;
            }
            Ok::<_, anyhow::Error>(samples)
        }));
    }
    let mut all = Vec::with_capacity(total);
    for w in workers {
        all.extend(w.await.context("worker")??);
    }
    Ok((all, started.elapsed()))
}

/// Prints one line of latency quantiles and throughput.
pub fn report(name: &str, samples: &mut [Duration], wall: Duration) {
    let n = samples.len();
    println!(
        "  {name:<22} n={n}  p50 {}  p90 {}  p99 {}  max {}  {:.0} req/s",
        ms(quantile(samples, 0.50)),
        ms(quantile(samples, 0.90)),
        ms(quantile(samples, 0.99)),
        ms(quantile(samples, 1.0)),
        n as f64 / wall.as_secs_f64()
    );
}
