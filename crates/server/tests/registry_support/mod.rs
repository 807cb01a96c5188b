//! A moor with its registry served on a real loopback port (plain HTTP), for the
//! registry's interop tests with skopeo and podman: built by the test kit as `moor
//! serve` builds it, over a memory store, with the import controller and the upstream
//! client (insecure registries as given). Calls over HTTP with the admin token.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moor_server::registry::Registry;
use moor_store::Store;
use moor_testkit::MoorServer;
use moor_testkit::peers::run_blocking;
use serde_json::{Value, json};

pub const IS: &str = moor_testkit::server::IS;

/// A running moor with its registry, serving on a loopback port.
pub struct Moor {
    /// `127.0.0.1:PORT`: the API and the registry.
    pub host: String,
    pub registry: Arc<Registry>,
    pub store: Arc<dyn Store>,
    pub http: reqwest::Client,
    server: MoorServer,
    /// Holds the data directory (kept across [`Moor::restart`]).
    dir: tempfile::TempDir,
}

/// Options of [`Moor::start`].
#[derive(Default)]
pub struct Options {
    /// Registries reached over plain HTTP.
    pub insecure: Vec<String>,
    pub anonymous_pull: bool,
    /// Upload caps and expiry (default: the server's).
    pub uploads: moor_server::registry::UploadLimits,
    /// The audit log (default: none).
    pub audit: moor_server::audit::AuditOptions,
    /// The API's objects in SQLite under the data directory, as `moor serve` keeps
    /// them by default (default: a memory store).
    pub sqlite: bool,
}

impl Moor {
    /// Starts moor on a free port: the import controller running, the registry
    /// hostname the bound address.
    pub async fn start(options: Options) -> Moor {
        Moor::start_in(options, tempfile::tempdir().unwrap()).await
    }

    /// Stops this moor and starts another over the same data directory, as a restart
    /// of `moor serve` does (the API's memory store starts empty; the registry's
    /// storage stays).
    pub async fn restart(self, options: Options) -> Moor {
        let Moor { server, dir, .. } = self;
        let lock = dir.path().join("data").join(moor_server::serve::LOCK_FILE);
        drop(server);
        // The old server lets go of the data dir's lock as its task ends.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let file = std::fs::OpenOptions::new().write(true).open(&lock).unwrap();
            if file.try_lock().is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "the old moor kept its data dir");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Moor::start_in(options, dir).await
    }

    /// Starts moor on a free port with its data (and so its registry) under `dir/data`.
    pub async fn start_in(options: Options, dir: tempfile::TempDir) -> Moor {
        let data_dir = dir.path().join("data");
        let insecure: Vec<&str> = options.insecure.iter().map(String::as_str).collect();
        let server = MoorServer::builder()
            .upstream(&insecure)
            .imports(moor_server::importer::controller::Backoff {
                initial: Duration::from_millis(300),
                max: Duration::from_secs(2),
                max_retries: 20,
            })
            .with(|o| {
                o.data_dir = data_dir;
                o.registry_hostname = None;
                o.max_images_bulk = 10;
                o.registry_anonymous_pull = options.anonymous_pull;
                o.uploads = options.uploads;
                o.audit = options.audit;
                if options.sqlite {
                    o.store = Some(format!("sqlite://{}", o.data_dir.join("moor.db").display()));
                }
            })
            .listen()
            .await;
        Moor {
            host: server.host.clone(),
            registry: server.registry.clone().expect("moor serves a registry"),
            store: server.store.clone(),
            http: server.http.clone(),
            server,
            dir,
        }
    }

    /// The data directory (the registry's storage is `registry/` in it).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The admin token.
    pub fn token(&self) -> &str {
        &self.server.token
    }

    /// `http://HOST{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.host)
    }

    /// An authenticated request.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .basic_auth("anyone", Some(&self.server.token))
    }

    /// Sends an authenticated request without a body.
    pub async fn send(&self, method: reqwest::Method, path: &str) -> reqwest::Response {
        self.req(method, path).send().await.unwrap()
    }

    /// Creates stream `name` with `tags` (spec tags as JSON).
    pub async fn create_stream(&self, name: &str, tags: Vec<Value>) {
        let r = self
            .req(reqwest::Method::POST, IS)
            .json(&json!({"metadata": {"name": name}, "spec": {"tags": tags}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }

    /// The stream as JSON.
    pub async fn stream(&self, name: &str) -> Value {
        self.req(reqwest::Method::GET, &format!("{IS}/{name}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until `stream:tag` has an image and returns it.
    pub async fn wait_tag(&self, stream: &str, tag: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.stream(stream).await;
            let image = s["status"]["tags"].as_array().and_then(|a| {
                a.iter()
                    .find(|t| t["tag"] == tag)
                    .and_then(|t| t["items"][0]["image"].as_str())
                    .map(str::to_string)
            });
            if let Some(i) = image {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "{stream}:{tag} was never imported: {s}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `HOST/default/<stream_ref>` for clients.
    pub fn reference(&self, stream_ref: &str) -> String {
        format!("{}/default/{stream_ref}", self.host)
    }

    /// `user:TOKEN` for `--creds`.
    pub fn creds(&self) -> String {
        format!("u:{}", self.server.token)
    }

    /// The files under the registry's blob directory.
    pub fn stored_blobs(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for e in entries.flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        walk(&p, out);
                    } else {
                        out.push(p);
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.data_dir().join("registry/blobs"), &mut out);
        out
    }
}

/// A spec tag importing `from` with referencePolicy Local (insecure: plain HTTP).
pub fn local_tag(name: &str, from: &str) -> Value {
    json!({"name": name, "from": {"kind": "DockerImage", "name": from},
           "importPolicy": {"insecure": true, "importMode": "PreserveOriginal"},
           "referencePolicy": {"type": "Local"}})
}

/// `skopeo inspect` of `reference` through moor: `.Digest`.
pub async fn skopeo_digest(moor: &Moor, reference: &str) -> String {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--tls-verify=false", "--creds", &moor.creds()])
        .arg(format!("docker://{reference}"));
    let out = run_blocking(cmd).await;
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Digest"].as_str().unwrap().to_string()
}

/// `skopeo copy` of `reference` through moor into an OCI layout at `dest:tag`.
pub async fn skopeo_pull(moor: &Moor, reference: &str, dest: &Path, all: bool) -> Output {
    let mut cmd = Command::new("skopeo");
    cmd.args(["--insecure-policy", "copy", "--src-tls-verify=false"])
        .args(["--src-creds", &moor.creds()]);
    if all {
        cmd.arg("--all");
    }
    cmd.arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:pulled", dest.display()));
    run_blocking(cmd).await
}

/// A podman that keeps its storage under `root` (vfs, no daemon).
pub fn podman(root: &Path) -> Command {
    let mut cmd = Command::new("podman");
    cmd.arg("--root")
        .arg(root.join("root"))
        .arg("--runroot")
        .arg(root.join("run"))
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager=cgroupfs",
            "--events-backend=file",
        ])
        .env("HOME", root)
        .env("XDG_RUNTIME_DIR", root.join("xdg"))
        .env("XDG_CONFIG_HOME", root.join("config"));
    cmd
}
