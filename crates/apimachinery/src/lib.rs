//! moor's generic Kubernetes API machinery, after kube-apiserver's `genericapiserver`:
//! stored resources over the store, the verbs (get, list, watch, create, update,
//! patch, apply, delete, deletecollection), JSON/merge/strategic patch, server-side
//! apply, selectors, tables, discovery, OpenAPI and `Status` errors.
//!
//! It knows no resource. The composition root (`moor-server`) registers each
//! resource's [`RestStorage`](resource::RestStorage) — usually a
//! [`StoredResource`](stored::StoredResource) with a [`Strategy`](stored::Strategy) —
//! with [`ApiServer::new`]. May call `moor-store` and `moor-api`, nothing else of moor.

pub mod admission;
pub mod apply;
pub mod codec;
pub mod discovery;
pub mod error;
pub mod handlers;
pub mod limits;
pub mod openapi;
pub mod patch;
#[cfg(test)]
mod proptests;
pub mod protobuf;
pub mod request_info;
pub mod resource;
pub mod selectors;
pub mod stored;
pub mod table;

/// What [`forward_reads!`] expands to needs from this crate's dependencies.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use moor_store::KeyValue;
    pub use serde_json::Value;
}

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use moor_store::Store;
use serde_json::json;

use self::error::ApiError;
use self::resource::{ResourceDef, RestStorage, UserInfo};
use self::stored::{ServingConfig, resource_prefix};

/// Settings of the generic server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The address clients use to reach this server (for `/api`).
    pub server_address: String,
    pub serving: ServingConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            server_address: "127.0.0.1:8443".into(),
            serving: ServingConfig::default(),
        }
    }
}

/// The served resources over one store.
pub struct ApiServer {
    pub store: Arc<dyn Store>,
    pub config: ServerConfig,
    storages: Vec<Arc<dyn RestStorage>>,
    openapi: openapi::OpenApi,
}

impl ApiServer {
    /// Serves `storages` (registered by the composition root) over `store`, publishing
    /// open stub schemas in OpenAPI.
    pub fn new(
        store: Arc<dyn Store>,
        config: ServerConfig,
        storages: Vec<Arc<dyn RestStorage>>,
    ) -> Self {
        Self::with_schemas(store, config, storages, &openapi::SchemaCatalog::default())
    }

    /// Serves `storages` over `store`, publishing the kinds' schemas from `schemas`
    /// (built once, here).
    pub fn with_schemas(
        store: Arc<dyn Store>,
        config: ServerConfig,
        storages: Vec<Arc<dyn RestStorage>>,
        schemas: &openapi::SchemaCatalog,
    ) -> Self {
        let openapi = openapi::OpenApi::build(storages.iter().map(|s| s.def()), schemas);
        ApiServer {
            store,
            config,
            storages,
            openapi,
        }
    }

    /// The storage serving `group/version/plural`.
    pub fn storage(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<Arc<dyn RestStorage>> {
        self.storages
            .iter()
            .find(|s| {
                let d = s.def();
                d.group == group && d.version == version && d.plural == plural
            })
            .cloned()
    }

    /// Every served resource.
    pub fn defs(&self) -> impl Iterator<Item = &ResourceDef> {
        self.storages.iter().map(|s| s.def())
    }

    /// Follow-up of a delete: a namespace takes its objects with it.
    pub async fn after_delete(
        &self,
        def: &ResourceDef,
        obj: &serde_json::Value,
    ) -> Result<(), ApiError> {
        if def.group.is_empty() && def.plural == "namespaces" {
            let ns = obj
                .pointer("/metadata/name")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            for d in self.defs().filter(|d| d.namespaced) {
                let prefix = format!("{}{ns}/", resource_prefix(d));
                let list = self.store.list(&prefix, Default::default()).await?;
                for kv in list.kvs {
                    match self.store.delete(&kv.key, None).await {
                        Ok(_) | Err(moor_store::StoreError::NotFound(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Ok(())
    }
}

/// The routes under `/api`, `/apis`, `/openapi` and `/version`. Authentication is
/// applied by the caller; the authenticated user arrives as a request extension.
pub fn router(api: Arc<ApiServer>) -> Router {
    Router::new()
        .route("/api", get(core_versions))
        .route("/apis", get(api_groups))
        .route("/openapi/v2", get(openapi_v2))
        .route("/openapi/v3", get(openapi_root))
        .route("/openapi/v3/{*gv}", get(openapi_doc))
        .fallback(resource_request)
        .with_state(api)
}

async fn core_versions(State(api): State<Arc<ApiServer>>, headers: HeaderMap) -> Response {
    discovery::core_versions(api.defs(), &headers, &api.config.server_address)
}

async fn api_groups(State(api): State<Arc<ApiServer>>, headers: HeaderMap) -> Response {
    discovery::groups(api.defs(), &headers)
}

async fn openapi_v2(State(api): State<Arc<ApiServer>>, headers: HeaderMap) -> Response {
    api.openapi.v2_response(&headers)
}

async fn openapi_root(State(api): State<Arc<ApiServer>>, headers: HeaderMap) -> Response {
    api.openapi.v3_root.response(&headers)
}

async fn openapi_doc(
    State(api): State<Arc<ApiServer>>,
    Path(gv): Path<String>,
    headers: HeaderMap,
) -> Response {
    match api.openapi.v3.get(gv.trim_matches('/')) {
        Some(doc) => doc.response(&headers),
        None => ApiError::NoRoute.into_response(),
    }
}

async fn resource_request(
    State(api): State<Arc<ApiServer>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    user: Option<axum::Extension<UserInfo>>,
    body: Body,
) -> Response {
    let path = uri.path().trim_end_matches('/');
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if method == Method::GET {
        let discovered = match segs.as_slice() {
            ["api", v] => discovery::resource_list(api.defs(), "", v),
            ["apis", g] => discovery::group(api.defs(), g),
            ["apis", g, v] => discovery::resource_list(api.defs(), g, v),
            _ => None,
        };
        if let Some(resp) = discovered {
            return resp;
        }
    }
    if !matches!(segs.first(), Some(&"api") | Some(&"apis")) {
        return (
            axum::http::StatusCode::NOT_FOUND,
            axum::Json(json!(ApiError::NoRoute.status())),
        )
            .into_response();
    }
    let user = user.map(|axum::Extension(u)| u);
    match handlers::serve(api, method, uri, headers, user, body).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}
