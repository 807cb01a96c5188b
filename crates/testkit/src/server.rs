//! moor in process, wired by `moor_server::serve::build` exactly as `moor serve` wires
//! it, with fakes where a test asks for them: requests go through the router
//! ([`MoorServer::get`] and friends, `tower::ServiceExt::oneshot`), or through a
//! real loopback listener ([`Builder::listen`]). Its data directory is a temp dir.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use moor_apimachinery::ApiServer;
use moor_server::importer::controller::Backoff;
use moor_server::importer::{FetchedManifest, ImportError, PullOptions, Source};
use moor_server::registry::Registry;
use moor_server::scheduler::Leadership;
use moor_server::serve::{Built, Loops, Overrides, ServeOptions, build};
use moor_store::Store;
use serde_json::Value;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tower::ServiceExt as _;

/// The admin token of every in-process moor.
pub const TOKEN: &str = "test-token";
/// The registry hostname in-process moors name unless told otherwise.
pub const REGISTRY_HOST: &str = "registry.test:5000";

/// A registry that has nothing: every lookup is NotFound. The in-process API tests
/// need no registry; importer tests use the real distribution instead.
pub struct NoRegistry;

#[async_trait::async_trait]
impl Source for NoRegistry {
    async fn manifest(
        &self,
        r: &moor_api::DockerImageReference,
        _: &PullOptions,
    ) -> Result<FetchedManifest, ImportError> {
        Err(ImportError::not_found(format!(
            "manifest unknown: {}",
            r.exact()
        )))
    }
    async fn blob(
        &self,
        _: &moor_api::DockerImageReference,
        d: &moor_api::Digest,
        _: &PullOptions,
    ) -> Result<bytes::Bytes, ImportError> {
        Err(ImportError::not_found(format!("blob unknown: {d}")))
    }
    async fn tags(
        &self,
        r: &moor_api::DockerImageReference,
        _: &PullOptions,
    ) -> Result<Vec<String>, ImportError> {
        Err(ImportError::not_found(format!(
            "repository unknown: {}",
            r.exact()
        )))
    }
}

/// How to build a [`MoorServer`]: `moor serve`'s options and [`Overrides`], with the
/// kit's defaults (memory store, plain HTTP, admin token [`TOKEN`], registry
/// hostname [`REGISTRY_HOST`], bookmarks every 200 ms, 3 images per bulk import,
/// imports read [`NoRegistry`], no loops, no proxy from the environment).
pub struct Builder {
    /// The options, as `moor serve` takes them.
    pub options: ServeOptions,
    /// What replaces parts of the wiring.
    pub overrides: Overrides,
    dir: TempDir,
    api_only: bool,
}

impl Builder {
    /// The store, instead of a fresh memory store.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.overrides.store = Some(store);
        self
    }

    /// Where imports read registries (default: [`NoRegistry`]).
    pub fn source(mut self, source: Arc<dyn Source>) -> Self {
        self.overrides.source = Some(source);
        self
    }

    /// Imports read registries through the real upstream client, reaching
    /// `insecure` over plain HTTP.
    pub fn upstream(mut self, insecure: &[&str]) -> Self {
        self.overrides.source = None;
        self.options.insecure_registries = insecure.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The loops to run (default: none).
    pub fn loops(mut self, loops: Loops) -> Self {
        self.overrides.loops = loops;
        self
    }

    /// The import controller with `backoff`.
    pub fn imports(mut self, backoff: Backoff) -> Self {
        self.overrides.loops.imports = true;
        self.overrides.import_backoff = Some(backoff);
        self
    }

    /// The scheduler, checking every `interval`, led by `leadership`.
    pub fn scheduler(mut self, interval: Duration, leadership: Arc<dyn Leadership>) -> Self {
        self.overrides.loops.scheduler = true;
        self.options.scheduled_import_interval = interval;
        self.overrides.leadership = Some(leadership);
        self
    }

    /// The notification delivery controller with `delivery` (its backoff and timeout),
    /// private and loopback receivers allowed (the kit's receivers are on loopback).
    pub fn notifications(mut self, delivery: moor_server::notify::DeliveryConfig) -> Self {
        self.overrides.loops.notifications = true;
        self.overrides.notification_delivery = Some(delivery);
        self.options.allow_private_notification_targets = true;
        self
    }

    /// The router without the registry (`AppState::registry` unset: no `/v2/`, no
    /// imageprunes), which `moor serve` never builds but `app()` allows.
    pub fn api_only(mut self) -> Self {
        self.api_only = true;
        self
    }

    /// Changes the options.
    pub fn with(mut self, configure: impl FnOnce(&mut ServeOptions)) -> Self {
        configure(&mut self.options);
        self
    }

    /// Builds moor; requests go through its router.
    pub async fn start(self) -> MoorServer {
        let (server, built) = self.build().await;
        built.state.ready.store(true, Ordering::SeqCst);
        server
    }

    /// Builds moor and serves it on a loopback port, as `moor serve` does; returns
    /// once it is ready (its kubeconfig is written).
    pub async fn listen(self) -> MoorServer {
        let (mut server, built) = self.build().await;
        let ready = built.state.ready.clone();
        server.server = Some(tokio::spawn(async move {
            if let Err(e) = built.serve(std::future::pending()).await {
                panic!("moor stopped serving: {e}");
            }
        }));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "moor did not become ready");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server
    }

    async fn build(self) -> (MoorServer, Built) {
        let data_dir = self.options.data_dir.clone();
        let mut overrides = self.overrides;
        overrides.api_only = self.api_only;
        let mut built = build(&self.options, overrides)
            .await
            .unwrap_or_else(|e| panic!("building moor: {e}"));
        let server = MoorServer {
            router: built.router(),
            store: built.state.api.store.clone(),
            api: built.state.api.clone(),
            registry: built.state.registry.clone(),
            token: built.token.clone(),
            host: built.addr.to_string(),
            http: client(),
            tasks: std::mem::take(&mut built.tasks),
            dir: self.dir,
            data_dir,
            server: None,
        };
        (server, built)
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("HTTP client")
}

/// moor in process; its loops and listener stop on drop.
pub struct MoorServer {
    /// The router, as `moor serve` serves it.
    pub router: Router,
    pub store: Arc<dyn Store>,
    pub api: Arc<ApiServer>,
    /// The integrated registry.
    pub registry: Option<Arc<Registry>>,
    /// The admin token.
    pub token: String,
    /// `127.0.0.1:PORT`: the bound address (served only after [`Builder::listen`]).
    pub host: String,
    /// A client for the listener (no proxy).
    pub http: reqwest::Client,
    /// A temporary directory of this server's own (the data directory is `dir/data`
    /// unless the options named another).
    pub dir: TempDir,
    /// `--data-dir` (in [`dir`](Self::dir) unless the options named another).
    data_dir: std::path::PathBuf,
    tasks: Vec<JoinHandle<()>>,
    server: Option<JoinHandle<()>>,
}

/// A response, decoded.
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: Value,
    pub text: String,
}

impl MoorServer {
    /// A builder with the kit's defaults (see [`Builder`]).
    pub fn builder() -> Builder {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = ServeOptions {
            data_dir: dir.path().join("data"),
            listen: "127.0.0.1:0".into(),
            registry_hostname: Some(REGISTRY_HOST.into()),
            store: Some("memory://".into()),
            bookmark_interval: Duration::from_millis(200),
            plain_http: true,
            max_images_bulk: 3,
            ..Default::default()
        };
        let overrides = Overrides {
            source: Some(Arc::new(NoRegistry)),
            admin_token: Some(TOKEN.into()),
            ignore_proxy_environment: true,
            loops: Loops::NONE,
            ..Default::default()
        };
        Builder {
            options,
            overrides,
            dir,
            api_only: false,
        }
    }

    /// moor over a fresh memory store, no loops, imports reading [`NoRegistry`].
    pub async fn start() -> MoorServer {
        Self::builder().start().await
    }

    /// [`start`](Self::start) over `store`.
    pub async fn over(store: Arc<dyn Store>) -> MoorServer {
        Self::builder().store(store).start().await
    }

    /// moor whose imports read `source`, with the import controller running (retries
    /// after 0.5 s, at most 2 s apart).
    pub async fn importing(source: Arc<dyn Source>) -> MoorServer {
        Self::builder()
            .source(source)
            .imports(Backoff {
                initial: Duration::from_millis(500),
                max: Duration::from_secs(2),
                max_retries: 20,
            })
            .start()
            .await
    }

    /// Stops the loops and the listener, and waits until they let go of the store.
    pub async fn stop(mut self) {
        let tasks: Vec<_> = self.tasks.drain(..).chain(self.server.take()).collect();
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Sends `req` through the router.
    pub async fn raw(&self, req: Request<Body>) -> Resp {
        let resp = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("the router is infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("response body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    /// An authenticated request with a body of `content_type`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: impl Into<Body>,
    ) -> Resp {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", content_type)
            .body(body.into())
            .expect("request");
        self.raw(req).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, "application/json", Body::empty())
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.call(Method::POST, path, "application/json", body.to_string())
            .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.call(Method::PUT, path, "application/json", body.to_string())
            .await
    }

    pub async fn patch(&self, path: &str, content_type: &str, body: &Value) -> Resp {
        self.call(Method::PATCH, path, content_type, body.to_string())
            .await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, "application/json", Body::empty())
            .await
    }

    /// `http://HOST{path}` on the listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.host)
    }

    /// An authenticated request to the listener (Basic, as registry clients send).
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .basic_auth("anyone", Some(&self.token))
    }

    /// The data directory (`moor serve --data-dir`).
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.data_dir.clone()
    }
}

impl Drop for MoorServer {
    fn drop(&mut self) {
        for t in self.tasks.iter().chain(self.server.iter()) {
            t.abort();
        }
    }
}

/// The image streams of namespace `default`.
pub const IS: &str = "/apis/image.openshift.io/v1/namespaces/default/imagestreams";
/// The image stream tags of namespace `default`.
pub const ISTAG: &str = "/apis/image.openshift.io/v1/namespaces/default/imagestreamtags";
