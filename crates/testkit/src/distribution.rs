//! CNCF distribution (`docker-registry`) on 127.0.0.1: plain HTTP, or HTTPS with a
//! throw-away CA; optional htpasswd auth; optional pull-through. Images reach it with
//! skopeo from an [`OciLayout`]. Blocking (std::process); only loopback addresses.
//! May call `docker-registry`, `skopeo`, `htpasswd` and `openssl`.
//!
//! A missing peer fails the test when `CI` is set, and otherwise skips it:
//! [`Distribution::start`] prints `SKIP ...` and returns `None`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::oci::OciLayout;
use crate::peers::{free_port, require, run_ok as run, wait_listening};

/// How to start a distribution.
#[derive(Clone, Debug, Default)]
pub struct DistributionOptions {
    /// Require Basic auth with this user and password (htpasswd, bcrypt).
    pub htpasswd: Option<(String, String)>,
    /// Serve HTTPS with a certificate for 127.0.0.1 from a fresh CA
    /// ([`Distribution::ca_cert`] is the CA's certificate).
    pub tls: bool,
    /// Be a pull-through cache of this registry URL (`proxy.remoteurl`).
    pub proxy_remote: Option<String>,
    /// Log level (`warn` when unset).
    pub log_level: Option<String>,
    /// Serve HTTPS with this certificate chain and key (PEM files) instead of a fresh
    /// CA's (the benchmarks give every server one certificate).
    pub tls_files: Option<(PathBuf, PathBuf)>,
}

/// A running CNCF distribution on 127.0.0.1, stopped on drop.
pub struct Distribution {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The htpasswd user and password, when auth is on.
    pub credentials: Option<(String, String)>,
    /// The CA certificate that signed the server's, when TLS is on.
    pub ca_cert: Option<PathBuf>,
    tls: bool,
    dir: TempDir,
    child: Child,
}

impl Distribution {
    /// A plain-HTTP distribution without auth, or `None` (after printing SKIP) when
    /// the tools are missing and `CI` is not set. Also checks for skopeo and umoci,
    /// which [`push`](Self::push) and [`OciLayout`] need.
    pub fn start() -> Option<Self> {
        Self::start_with(DistributionOptions::default())
    }

    /// A distribution started with `options` (see [`start`](Self::start)).
    pub fn start_with(options: DistributionOptions) -> Option<Self> {
        let mut tools = vec!["docker-registry", "skopeo", "umoci"];
        if options.htpasswd.is_some() {
            tools.push("htpasswd");
        }
        if options.tls {
            tools.push("openssl");
        }
        if !require(&tools) {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let mut extra = String::new();
        if let Some((user, pass)) = &options.htpasswd {
            let out = run(Command::new("htpasswd").args(["-Bbn", user, pass]));
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).expect("write htpasswd");
            extra.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: moor-test\n    path: {}\n",
                file.display()
            ));
        }
        if let Some(remote) = &options.proxy_remote {
            extra.push_str(&format!("proxy:\n  remoteurl: {remote}\n"));
        }
        let mut ca_cert = None;
        let mut tls_config = String::new();
        if let Some((cert, key)) = &options.tls_files {
            tls_config = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
        } else if options.tls {
            // A throw-away CA and a server certificate for IP 127.0.0.1 signed by it
            // (webpki refuses a CA certificate used as the server's own).
            let path = |name: &str| dir.path().join(name);
            let (ca, ca_key, csr, ext) = (
                path("ca.pem"),
                path("ca.key"),
                path("server.csr"),
                path("server.ext"),
            );
            let (cert, key) = (path("cert.pem"), path("key.pem"));
            run(Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args(["-subj", "/CN=moor test CA"])
                .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
                .arg("-keyout")
                .arg(&ca_key)
                .arg("-out")
                .arg(&ca)
                .stderr(Stdio::null()));
            run(Command::new("openssl")
                .args(["req", "-new", "-newkey", "rsa:2048", "-nodes"])
                .args(["-subj", "/CN=127.0.0.1"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&csr)
                .stderr(Stdio::null()));
            std::fs::write(
                &ext,
                "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
            )
            .expect("write extensions");
            run(Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-set_serial", "2"])
                .arg("-in")
                .arg(&csr)
                .arg("-CA")
                .arg(&ca)
                .arg("-CAkey")
                .arg(&ca_key)
                .arg("-extfile")
                .arg(&ext)
                .arg("-out")
                .arg(&cert)
                .stderr(Stdio::null()));
            tls_config = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
            ca_cert = Some(ca);
        }

        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let config = format!(
                "version: 0.1\nlog:\n  level: {level}\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{tls_config}{extra}",
                root = dir.path().join("data").display(),
                level = options.log_level.as_deref().unwrap_or("warn"),
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
                    port,
                    credentials: options.htpasswd.clone(),
                    ca_cert,
                    tls: options.tls || options.tls_files.is_some(),
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

    /// `http://127.0.0.1:PORT` (or `https://`).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.host)
    }

    /// `127.0.0.1:PORT/<repo_tag>`.
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host)
    }

    /// The registry's process id (for its peak memory or CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory of the registry so far, in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        crate::peers::peak_rss_mib(self.child.id())
    }

    /// Stops the registry (SIGKILL); its content stays on disk for [`restart`](Self::restart).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the registry again on the same port with the same content.
    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.dir.path().join("registry.log"))
            .expect("log file");
        self.child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn docker-registry");
        assert!(
            wait_listening(self.port, &mut self.child, Duration::from_secs(10)),
            "docker-registry did not restart:\n{}",
            self.log()
        );
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    fn creds_args(&self, flag: &str) -> Vec<String> {
        match &self.credentials {
            Some((u, p)) => vec![flag.to_owned(), format!("{u}:{p}")],
            None => Vec::new(),
        }
    }

    /// Pushes `tag` of `layout` (an image or an index with its children) to
    /// `repo_tag` (`keycloak/keycloak:20.0.2`) with skopeo, and returns the digest
    /// `skopeo inspect` reports.
    pub fn push(&self, layout: &OciLayout, tag: &str, repo_tag: &str, format: Format) -> Pushed {
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "--insecure-policy",
            "copy",
            "--all",
            "--dest-tls-verify=false",
        ])
        .args(self.creds_args("--dest-creds"));
        if format == Format::DockerV2S2 {
            cmd.args(["--format", "v2s2"]);
        }
        cmd.arg(format!("oci:{}:{tag}", layout.path().display()))
            .arg(format!("docker://{}", self.reference(repo_tag)));
        run(cmd.stdout(Stdio::null()));
        Pushed {
            reference: self.reference(repo_tag),
            digest: self.inspect_digest(repo_tag),
        }
    }

    /// `skopeo inspect`'s `.Digest` for `repo_tag` (for a list: the list's digest).
    pub fn inspect_digest(&self, repo_tag: &str) -> String {
        let out = run(Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .args(self.creds_args("--creds"))
            .arg(format!("docker://{}", self.reference(repo_tag))));
        let v: Value = serde_json::from_slice(&out.stdout).expect("skopeo inspect JSON");
        v["Digest"]
            .as_str()
            .expect("skopeo inspect .Digest")
            .to_owned()
    }

    /// `skopeo inspect --raw` (the manifest bytes as served).
    pub fn inspect_raw(&self, repo_tag: &str) -> Vec<u8> {
        run(Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .args(self.creds_args("--creds"))
            .arg(format!("docker://{}", self.reference(repo_tag))))
        .stdout
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The manifest format skopeo writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// As built: OCI manifests (and indexes).
    Oci,
    /// Docker schema 2 (`--format v2s2`).
    DockerV2S2,
}

/// An image pushed to a distribution.
#[derive(Clone, Debug)]
pub struct Pushed {
    /// `127.0.0.1:PORT/repo:tag`.
    pub reference: String,
    /// The digest `skopeo inspect` reports.
    pub digest: String,
}
