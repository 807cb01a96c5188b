//! Real upstream registries for interop tests: CNCF distribution (`docker-registry`)
//! on 127.0.0.1 (plain HTTP, or HTTPS with a throw-away CA; optional htpasswd auth;
//! optional pull-through), and images built with umoci and pushed with skopeo as
//! TESTBED.md shows. Blocking (std::process): call it from a multi-thread runtime (or
//! `spawn_blocking`) when in-process servers must keep answering meanwhile. May call
//! those binaries, `htpasswd`, `openssl` and temp dirs; only loopback addresses.
//!
//! A missing peer fails the test when the `CI` environment variable is set, and
//! otherwise skips it: [`Distribution::start`] prints `SKIP ...` and returns `None`.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

/// The OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Whether peers are mandatory (`CI` is set).
pub fn ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// Whether every tool in `tools` is on `PATH`. When one is missing: panics if `CI` is
/// set, else prints `SKIP <test>: ...` (the test is named after the current thread,
/// as the test harness names it) and returns false.
pub fn require(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| which(t).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("test");
    assert!(
        !ci(),
        "{test}: required peer(s) {missing:?} not installed and CI is set (see TESTBED.md)"
    );
    eprintln!(
        "SKIP {test}: {missing:?} not installed (scripts/install-peers installs them; set CI to fail instead)"
    );
    false
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

/// A port on 127.0.0.1 that nothing listens on (free at the time of the call).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// An address on 127.0.0.1 where connections are refused.
pub fn closed_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
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
        if options.tls {
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
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{tls_config}{extra}",
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
                    port,
                    credentials: options.htpasswd.clone(),
                    ca_cert,
                    tls: options.tls,
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

/// What to put in a test image.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// `amd64`, `arm64`, ...
    pub architecture: String,
    /// `linux`, ...
    pub os: String,
    /// `config.Cmd`.
    pub cmd: Vec<String>,
    /// Files (path relative to the root, content) in the one layer.
    pub files: Vec<(String, Vec<u8>)>,
}

impl ImageSpec {
    /// A linux image for `architecture` with `/hello.txt` and `Cmd ["/hello.txt"]`.
    pub fn new(architecture: &str) -> Self {
        Self {
            architecture: architecture.to_owned(),
            os: "linux".to_owned(),
            cmd: vec!["/hello.txt".to_owned()],
            files: vec![(
                "hello.txt".to_owned(),
                format!("hello from {architecture}\n").into_bytes(),
            )],
        }
    }

    /// The same image with one more file.
    pub fn with_file(mut self, path: &str, content: impl Into<Vec<u8>>) -> Self {
        self.files.push((path.to_owned(), content.into()));
        self
    }
}

/// A descriptor in an OCI layout's `index.json`.
#[derive(Clone, Debug)]
pub struct LayoutEntry {
    /// `sha256:…`
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Media type.
    pub media_type: String,
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

    /// Builds image `tag` from `spec` (umoci new, unpack --rootless, add files,
    /// repack, config) and returns its descriptor.
    pub fn add_image(&self, tag: &str, spec: &ImageSpec) -> LayoutEntry {
        let image = self.image(tag);
        run(Command::new("umoci").args(["new", "--image", &image]));
        let bundle = self.dir.path().join(format!("bundle-{tag}"));
        run(Command::new("umoci")
            .args(["unpack", "--rootless", "--image", &image])
            .arg(&bundle));
        for (path, content) in &spec.files {
            let file = bundle.join("rootfs").join(path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).expect("mkdir in bundle");
            }
            let mut f = std::fs::File::create(&file).expect("create file in bundle");
            f.write_all(content).expect("write file in bundle");
        }
        run(Command::new("umoci")
            .args(["repack", "--image", &image])
            .arg(&bundle));
        let mut config = Command::new("umoci");
        config.args([
            "config",
            "--image",
            &image,
            "--architecture",
            &spec.architecture,
            "--os",
            &spec.os,
        ]);
        for c in &spec.cmd {
            config.args(["--config.cmd", c]);
        }
        run(&mut config);
        let _ = std::fs::remove_dir_all(&bundle);
        self.entry(tag).expect("umoci tagged the image")
    }

    /// Writes an OCI index named `tag` over the images `children` (tags of this
    /// layout), with each child's platform read from its config, as TESTBED.md
    /// describes (umoci cannot write indexes).
    pub fn add_index(&self, tag: &str, children: &[&str]) -> LayoutEntry {
        let mut manifests = Vec::new();
        for child in children {
            let entry = self.entry(child).expect("child image in the layout");
            let manifest: Value =
                serde_json::from_slice(&self.blob(&entry.digest)).expect("child manifest JSON");
            let config_digest = manifest["config"]["digest"]
                .as_str()
                .expect("config digest");
            let config: Value =
                serde_json::from_slice(&self.blob(config_digest)).expect("config JSON");
            manifests.push(json!({
                "mediaType": entry.media_type,
                "digest": entry.digest,
                "size": entry.size,
                "platform": {"architecture": config["architecture"], "os": config["os"]},
            }));
        }
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        }))
        .expect("index JSON");
        let digest = format!("sha256:{}", sha256_hex(&index));
        let blob_path = self
            .path()
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        std::fs::write(&blob_path, &index).expect("write index blob");
        let index_json = self.path().join("index.json");
        let mut layout: Value =
            serde_json::from_slice(&std::fs::read(&index_json).expect("read index.json"))
                .expect("index.json");
        layout["manifests"]
            .as_array_mut()
            .expect("index.json manifests")
            .push(json!({
                "mediaType": OCI_INDEX,
                "digest": digest,
                "size": index.len(),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }));
        std::fs::write(&index_json, serde_json::to_vec(&layout).expect("JSON"))
            .expect("write index.json");
        LayoutEntry {
            digest,
            size: index.len() as u64,
            media_type: OCI_INDEX.to_owned(),
        }
    }

    /// The descriptor tagged `tag` in `index.json`.
    pub fn entry(&self, tag: &str) -> Option<LayoutEntry> {
        let layout: Value =
            serde_json::from_slice(&std::fs::read(self.path().join("index.json")).ok()?).ok()?;
        layout["manifests"].as_array()?.iter().find_map(|m| {
            (m["annotations"]["org.opencontainers.image.ref.name"] == tag).then(|| LayoutEntry {
                digest: m["digest"].as_str().unwrap_or_default().to_owned(),
                size: m["size"].as_u64().unwrap_or_default(),
                media_type: m["mediaType"].as_str().unwrap_or_default().to_owned(),
            })
        })
    }

    /// A blob's bytes.
    pub fn blob(&self, digest: &str) -> Vec<u8> {
        let (alg, hex) = digest.split_once(':').expect("algorithm:hex");
        std::fs::read(self.path().join("blobs").join(alg).join(hex)).expect("read blob")
    }
}

impl Default for OciLayout {
    fn default() -> Self {
        Self::new()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}
