//! A moor with its registry served on a real loopback port (plain HTTP), for the
//! registry's interop tests with skopeo and podman: the API over a memory store, the
//! import controller, the upstream client (insecure registries as given) and the
//! registry under a temp dir. Calls over HTTP with the test token.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use moor_server::apiserver::stored::ServingConfig;
use moor_server::apiserver::{ApiConfig, ApiServer};
use moor_server::auth::{AllowAuthenticated, AuthLayer, TokenHashes};
use moor_server::metrics::Metrics;
use moor_server::registry::{Registry, RegistryConfig};
use moor_server::upstream::{UpstreamClient, UpstreamConfig};
use moor_server::{AppState, app};
use moor_store::{MemoryStore, Store};
use serde_json::{Value, json};
use tempfile::TempDir;

pub const TOKEN: &str = "registry-test-token";
pub const IS: &str = "/apis/image.openshift.io/v1/namespaces/default/imagestreams";

/// A running moor with its registry.
pub struct Moor {
    /// `127.0.0.1:PORT`: the API and the registry.
    pub host: String,
    pub registry: Arc<Registry>,
    pub store: Arc<dyn Store>,
    pub dir: TempDir,
    pub http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
    controller: tokio::task::JoinHandle<()>,
}

/// Options of [`Moor::start`].
#[derive(Default)]
pub struct Options {
    /// Registries reached over plain HTTP.
    pub insecure: Vec<String>,
    pub anonymous_pull: bool,
    /// Upload caps and expiry (default: the server's).
    pub uploads: moor_server::registry::UploadLimits,
}

impl Moor {
    /// Starts moor on a free port.
    pub async fn start(options: Options) -> Moor {
        Moor::start_in(options, tempfile::tempdir().unwrap()).await
    }

    /// Stops this moor and starts another over the same registry directory, as a
    /// restart of `moor serve` does (the API's memory store starts empty).
    pub async fn restart(mut self, options: Options) -> Moor {
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        drop(self);
        Moor::start_in(options, dir).await
    }

    /// Starts moor on a free port with its registry under `dir/registry`.
    pub async fn start_in(options: Options, dir: TempDir) -> Moor {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let client = UpstreamClient::new(UpstreamConfig {
            insecure_registries: options.insecure.clone(),
            use_environment_proxy: false,
            ..Default::default()
        })
        .unwrap();
        let config = ApiConfig {
            registry_hostname: host.clone(),
            server_address: host.clone(),
            serving: ServingConfig {
                bookmark_interval: Duration::from_millis(200),
                ..Default::default()
            },
            max_images_bulk: 10,
        };
        let api = Arc::new(ApiServer::new(
            store.clone(),
            config,
            Arc::new(client.clone()),
        ));
        api.bootstrap().await.unwrap();
        let controller = moor_server::importer::controller::ImportController::new(
            api.importer(),
            moor_server::importer::controller::Backoff {
                initial: Duration::from_millis(300),
                max: Duration::from_secs(2),
                max_retries: 20,
            },
        );
        let controller = tokio::spawn(controller.run());
        let auth = AuthLayer {
            authn: Arc::new(TokenHashes::for_token(TOKEN)),
            authz: Arc::new(AllowAuthenticated),
        };
        let registry = Arc::new(
            Registry::new(
                RegistryConfig {
                    root: dir.path().join("registry"),
                    hostname: host.clone(),
                    tls: false,
                    anonymous_pull: options.anonymous_pull,
                    uploads: options.uploads.clone(),
                },
                api.importer(),
                client,
                auth.clone(),
            )
            .unwrap(),
        );
        let metrics = Metrics::new();
        registry.register_metrics(&metrics);
        registry.spawn_stream_cleanup();
        let state = AppState {
            api,
            auth,
            metrics,
            ready: Arc::new(AtomicBool::new(true)),
            registry: Some(registry.clone()),
        };
        let router = app(state);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Moor {
            host,
            registry,
            store,
            dir,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            server,
            controller,
        }
    }

    /// `http://HOST{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.host)
    }

    /// An authenticated request.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .basic_auth("anyone", Some(TOKEN))
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
        format!("u:{TOKEN}")
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
        walk(&self.dir.path().join("registry/blobs"), &mut out);
        out
    }
}

impl Drop for Moor {
    fn drop(&mut self) {
        self.server.abort();
        self.controller.abort();
    }
}

/// A spec tag importing `from` with referencePolicy Local (insecure: plain HTTP).
pub fn local_tag(name: &str, from: &str) -> Value {
    json!({"name": name, "from": {"kind": "DockerImage", "name": from},
           "importPolicy": {"insecure": true, "importMode": "PreserveOriginal"},
           "referencePolicy": {"type": "Local"}})
}

/// Runs a command; panics with its output when it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a blocking command off the async runtime.
pub async fn run_blocking(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("run command"))
        .await
        .unwrap()
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
