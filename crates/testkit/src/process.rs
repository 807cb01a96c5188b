//! `moor serve` as a child process on a free loopback port (readiness: its
//! kubeconfig names a URL that accepts connections), the `moor` CLI against it, and
//! kubectl with a scratch `HOME`. Blocking (std::process); callers pass the `moor`
//! binary (`env!("CARGO_BIN_EXE_moor")` in the CLI's tests, `$MOOR_BIN` in benchmarks).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::peers::{peer, run};

/// A `moor serve` child process, killed (SIGKILL) on drop.
pub struct MoorProcess {
    pub child: Child,
    /// The `moor` binary.
    pub bin: PathBuf,
    pub data_dir: PathBuf,
    /// `https://127.0.0.1:PORT` (or `http://`), from the kubeconfig.
    pub url: String,
    /// The admin token, from the kubeconfig.
    pub token: String,
    _scratch: Option<TempDir>,
}

impl MoorProcess {
    /// Starts `bin serve --data-dir data_dir --listen 127.0.0.1:0 EXTRA...`; its log
    /// goes to `data_dir` with the extension `.log`.
    pub fn start(bin: &Path, data_dir: &Path, extra: &[&str]) -> MoorProcess {
        Self::start_with_env(bin, data_dir, extra, &[])
    }

    /// [`start`](Self::start) over a fresh temp data directory.
    pub fn start_fresh(bin: &Path, extra: &[&str]) -> MoorProcess {
        let scratch = tempfile::tempdir().expect("temp dir");
        let mut server = Self::start(bin, &scratch.path().join("data"), extra);
        server._scratch = Some(scratch);
        server
    }

    /// [`start`](Self::start) with extra environment variables for the server.
    pub fn start_with_env(
        bin: &Path,
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> MoorProcess {
        let _ = std::fs::remove_file(data_dir.join("kubeconfig"));
        if let Some(parent) = data_dir.parent() {
            std::fs::create_dir_all(parent).expect("data directory's parent");
        }
        let log = std::fs::File::create(data_dir.with_extension("log")).expect("log file");
        let child = Command::new(bin)
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} serve: {e}", bin.display()));
        // From here on the child is owned by the guard, which kills and reaps it on drop
        // (also when the readiness wait below panics).
        let mut server = MoorProcess {
            child,
            bin: bin.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            url: String::new(),
            token: String::new(),
            _scratch: None,
        };
        let kubeconfig = data_dir.join("kubeconfig");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((url, token)) = kubeconfig_server(&kubeconfig)
                && accepts(&url)
            {
                server.url = url;
                server.token = token;
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "moor serve exited ({status}); see {}",
                    data_dir.with_extension("log").display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "moor serve did not become ready; see {}",
                data_dir.with_extension("log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir.join("kubeconfig")
    }

    /// `127.0.0.1:PORT`: the API and the registry.
    pub fn host(&self) -> String {
        self.url
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .to_string()
    }

    /// The CA of the server's certificate (PEM; empty with `--plain-http`).
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.data_dir.join("tls/ca.crt")).unwrap_or_default()
    }

    /// An HTTP client that trusts this server's CA.
    pub fn client(&self) -> reqwest::Client {
        self.client_pool(usize::MAX)
    }

    /// [`client`](Self::client) keeping at most `pool` idle connections per host.
    pub fn client_pool(&self, pool: usize) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(pool);
        let pem = self.ca_pem();
        if !pem.is_empty() {
            b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA PEM"));
        }
        b.build().expect("client")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory of the server so far, in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        crate::peers::peak_rss_mib(self.child.id())
    }

    /// The `moor` CLI pointed at this server.
    pub fn cli(&self) -> Cli {
        Cli {
            bin: self.bin.clone(),
            kubeconfig: self.kubeconfig(),
        }
    }

    /// `moor ARGS` against this server: (success, stdout, stderr).
    pub fn moor(&self, args: &[&str]) -> (bool, String, String) {
        self.cli().run(args)
    }

    /// `moor ARGS`, which must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.cli().ok(args)
    }

    /// `moor ARGS`, which must fail; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        self.cli().fails(args)
    }

    /// SIGKILL, no goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for MoorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The server URL and the token of a kubeconfig `moor serve` wrote, once both are
/// there.
pub fn kubeconfig_server(path: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .map(str::to_string)
    };
    Some((field("server: ")?, field("token: ")?))
}

fn accepts(url: &str) -> bool {
    // The kubeconfig is written once the listener serves; a connect confirms it.
    let hostport = url
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    std::net::TcpStream::connect(hostport).is_ok()
}

/// The `moor` CLI with a kubeconfig (`RUST_LOG` removed, so stderr is the CLI's own).
#[derive(Clone, Debug)]
pub struct Cli {
    pub bin: PathBuf,
    pub kubeconfig: PathBuf,
}

impl Cli {
    /// `moor --kubeconfig K` as a command to add arguments to.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env_remove("RUST_LOG");
        c
    }

    /// Runs `moor ARGS`: (success, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (bool, String, String) {
        run(self.command().args(args))
    }

    /// Runs `moor ARGS`, which must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_both(args).0
    }

    /// Runs `moor ARGS`, which must succeed; returns (stdout, stderr).
    pub fn ok_both(&self, args: &[&str]) -> (String, String) {
        let (success, out, err) = self.run(args);
        assert!(
            success,
            "moor {args:?} failed:\nstdout: {out}\nstderr: {err}"
        );
        (out, err)
    }

    /// Runs `moor ARGS`, which must fail; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let (success, out, err) = self.run(args);
        assert!(
            !success,
            "moor {args:?} succeeded:\nstdout: {out}\nstderr: {err}"
        );
        err
    }
}

/// kubectl with `KUBECONFIG` set and a scratch `HOME` (so its discovery cache does
/// not leak between runs).
pub struct Kubectl {
    pub bin: PathBuf,
    pub kubeconfig: PathBuf,
    home: TempDir,
}

impl Kubectl {
    /// kubectl for `kubeconfig`, or `None` (after printing SKIP) when it is missing
    /// and `CI` is not set.
    pub fn new(kubeconfig: &Path) -> Option<Kubectl> {
        Some(Kubectl {
            bin: peer("kubectl")?,
            kubeconfig: kubeconfig.to_path_buf(),
            home: tempfile::tempdir().expect("temp dir"),
        })
    }

    /// `kubectl` as a command to add arguments to.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("HOME", self.home.path())
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST");
        c
    }

    /// `kubectl ARGS`, which must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = run(self.cmd().args(args));
        assert!(ok, "kubectl {args:?} failed:\nstdout: {out}\nstderr: {err}");
        out
    }

    /// `kubectl ARGS`, which must fail; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let (ok, out, err) = run(self.cmd().args(args));
        assert!(
            !ok,
            "kubectl {args:?} should fail:\nstdout: {out}\nstderr: {err}"
        );
        err
    }

    /// `kubectl ARGS` with `yaml` on stdin: (success, stdout, stderr).
    pub fn stdin(&self, args: &[&str], yaml: &str) -> (bool, String, String) {
        use std::io::Write as _;
        let mut child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(yaml.as_bytes())
            .expect("write stdin");
        let out = child.wait_with_output().expect("kubectl output");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    /// `kubectl apply -f -` of `yaml`, which must succeed: (stdout, stderr).
    pub fn apply(&self, yaml: &str) -> (String, String) {
        let (ok, out, err) = self.stdin(&["apply", "-f", "-"], yaml);
        assert!(ok, "kubectl apply failed:\n{out}\n{err}");
        (out, err)
    }
}
