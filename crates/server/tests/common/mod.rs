//! Shared harness of the in-process router tests: `app()` over a memory store, with a
//! known admin token, driven by `tower::ServiceExt::oneshot`.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use moor_apimachinery::stored::ServingConfig;
use moor_server::apiserver::ApiConfig;
use moor_server::auth::{AllowAuthenticated, AuthLayer, TokenHashes};
use moor_server::metrics::Metrics;
use moor_server::{AppState, app};
use moor_store::{MemoryStore, Store};
use serde_json::Value;
use tower::ServiceExt;

pub const TOKEN: &str = "test-token";

/// A registry that has nothing: every lookup is NotFound. The in-process API tests
/// need no registry; importer tests use the real distribution instead.
pub struct NoRegistry;

#[async_trait::async_trait]
impl moor_server::importer::Source for NoRegistry {
    async fn manifest(
        &self,
        r: &moor_api::DockerImageReference,
        _: &moor_server::importer::PullOptions,
    ) -> Result<moor_server::importer::FetchedManifest, moor_server::importer::ImportError> {
        Err(moor_server::importer::ImportError::not_found(format!(
            "manifest unknown: {}",
            r.exact()
        )))
    }
    async fn blob(
        &self,
        _: &moor_api::DockerImageReference,
        d: &moor_api::Digest,
        _: &moor_server::importer::PullOptions,
    ) -> Result<bytes::Bytes, moor_server::importer::ImportError> {
        Err(moor_server::importer::ImportError::not_found(format!(
            "blob unknown: {d}"
        )))
    }
    async fn tags(
        &self,
        r: &moor_api::DockerImageReference,
        _: &moor_server::importer::PullOptions,
    ) -> Result<Vec<String>, moor_server::importer::ImportError> {
        Err(moor_server::importer::ImportError::not_found(format!(
            "repository unknown: {}",
            r.exact()
        )))
    }
}

/// A router over a fresh memory store.
pub struct Harness {
    pub router: Router,
    pub store: Arc<dyn Store>,
}

pub async fn harness() -> Harness {
    harness_with(Arc::new(MemoryStore::new())).await
}

pub async fn harness_with(store: Arc<dyn Store>) -> Harness {
    harness_full(store, Arc::new(NoRegistry), false).await
}

/// A router whose imports read `source`, with the import controller running.
pub async fn harness_importing(source: Arc<dyn moor_server::importer::Source>) -> Harness {
    harness_full(Arc::new(MemoryStore::new()), source, true).await
}

async fn harness_full(
    store: Arc<dyn Store>,
    source: Arc<dyn moor_server::importer::Source>,
    controller: bool,
) -> Harness {
    let config = ApiConfig {
        registry_hostname: "registry.test:5000".into(),
        server_address: "127.0.0.1:0".into(),
        serving: ServingConfig {
            bookmark_interval: Duration::from_millis(200),
            ..Default::default()
        },
        max_images_bulk: 3,
    };
    let (api, importer) = moor_server::apiserver::build(store.clone(), &config, source);
    moor_server::apiserver::bootstrap(&api).await.unwrap();
    if controller {
        let c = moor_server::importer::controller::ImportController::new(
            importer.clone(),
            moor_server::importer::controller::Backoff {
                initial: Duration::from_millis(500),
                max: Duration::from_secs(2),
                max_retries: 20,
            },
        );
        tokio::spawn(c.run());
    }
    let state = AppState {
        api,
        auth: AuthLayer {
            authn: Arc::new(TokenHashes::for_token(TOKEN)),
            authz: Arc::new(AllowAuthenticated),
        },
        metrics: Metrics::new(),
        ready: Arc::new(AtomicBool::new(true)),
        registry: None,
    };
    Harness {
        router: app(state),
        store,
    }
}

/// A response, decoded.
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Harness {
    pub async fn raw(&self, req: Request<Body>) -> Resp {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    /// An authenticated request with a JSON (or other) body.
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
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", content_type)
            .body(body.into())
            .unwrap();
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
}

pub const IS: &str = "/apis/image.openshift.io/v1/namespaces/default/imagestreams";
pub const ISTAG: &str = "/apis/image.openshift.io/v1/namespaces/default/imagestreamtags";
