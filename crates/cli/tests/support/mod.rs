//! Test support: run the real `moor` binary as a child (`moor serve` on a free port),
//! wait for readiness, and find the real peers (kubectl, ...). A missing peer fails
//! the test when `CI` is set and skips it otherwise.
#![allow(dead_code)]

pub mod registry;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `moor serve` child process.
pub struct MoorServer {
    pub child: Child,
    pub data_dir: PathBuf,
    pub url: String,
    pub token: String,
}

pub fn moor_bin() -> &'static str {
    env!("CARGO_BIN_EXE_moor")
}

/// The path of a peer binary, or `None` (after failing under CI) when it is missing.
pub fn peer(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!(
                "required test peer {name:?} is not installed (CI is set); run .ci/run or see TESTBED"
            );
        }
        eprintln!("SKIP: test peer {name:?} is not installed");
    }
    found
}

impl MoorServer {
    /// Starts `moor serve` on a free loopback port with the given extra flags.
    pub fn start(data_dir: &Path, extra: &[&str]) -> MoorServer {
        Self::start_with_env(data_dir, extra, &[])
    }

    /// [`start`](Self::start) with extra environment variables for the server.
    pub fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> MoorServer {
        let _ = std::fs::remove_file(data_dir.join("kubeconfig"));
        let log = std::fs::File::create(data_dir.with_extension("log")).expect("log file");
        let child = Command::new(moor_bin())
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn moor serve");
        // From here on the child is owned by the guard, which kills and reaps it on drop
        // (also when the readiness wait below panics).
        let mut server = MoorServer {
            child,
            data_dir: data_dir.to_path_buf(),
            url: String::new(),
            token: String::new(),
        };
        let kubeconfig = data_dir.join("kubeconfig");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&kubeconfig) {
                let field = |key: &str| {
                    text.lines()
                        .find_map(|l| l.trim().strip_prefix(key))
                        .map(str::to_string)
                };
                if let (Some(url), Some(token)) = (field("server: "), field("token: "))
                    && ready(&url)
                {
                    server.url = url;
                    server.token = token;
                    return server;
                }
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

    /// An HTTP client that trusts this server's CA.
    pub fn client(&self) -> reqwest::Client {
        let pem = std::fs::read(self.data_dir.join("tls/ca.crt")).expect("CA certificate");
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA PEM"))
            .build()
            .expect("client")
    }

    /// SIGKILL, no goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for MoorServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn ready(url: &str) -> bool {
    // The kubeconfig is written once the listener serves; a connect confirms it.
    let hostport = url
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    std::net::TcpStream::connect(hostport).is_ok()
}

/// Runs a command and returns (success, stdout, stderr).
pub fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("run command");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The seed's YAML file under `examples/` that contains `needle`, verbatim (the
/// repository's own copy: tests read nothing outside the repository).
pub fn seed_yaml(needle: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .find(|text| text.contains(needle))
        .unwrap_or_else(|| panic!("no YAML file with {needle:?} in {}", dir.display()))
}
