//! Cluster mode's Secrets: the cluster's, read through kube-rs, so imports use the
//! pull secrets (`kubernetes.io/dockerconfigjson`) of the stream's namespace in the
//! cluster, and a pull secret created or changed there retries failed imports, as in
//! standalone mode. The importer reads Secrets through a `RestStorage`; this one
//! answers `get`, `list` and `watch` from the cluster; writes get the trait's default
//! `MethodNotAllowed` (Secrets are not served in cluster mode). Calls the cluster's
//! API only.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, WatchParams};
use kube::core::WatchEvent as KubeWatchEvent;
use kube::{Api, Client};
use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::*;
use moor_apimachinery::stored::Strategy;
use moor_apimachinery::table::TableDef;
use serde_json::{Value, json};

use crate::apiserver::resources::core;

/// The cluster's Secrets as the importer's storage.
pub struct ClusterSecrets {
    client: Client,
    strategy: Arc<core::Secrets>,
}

impl ClusterSecrets {
    /// Secrets read through `client`.
    pub fn storage(client: Client) -> Arc<dyn RestStorage> {
        Arc::new(ClusterSecrets {
            client,
            strategy: core::Secrets::new(),
        })
    }

    fn api(&self, ns: Option<&str>) -> Api<Secret> {
        match ns {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }
}

/// A failed call to the cluster, as the API's answer.
fn cluster_error(e: kube::Error) -> ApiError {
    ApiError::internal_message(format!("reading Secrets from the cluster: {e}"))
}

fn to_value(s: &Secret) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    v["apiVersion"] = json!("v1");
    v["kind"] = json!("Secret");
    v
}

#[async_trait::async_trait]
impl RestStorage for ClusterSecrets {
    fn def(&self) -> &ResourceDef {
        self.strategy.def()
    }
    fn table(&self) -> TableDef {
        self.strategy.table()
    }
    async fn get(
        &self,
        _ctx: &RequestContext,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        match self.api(ns).get_opt(name).await.map_err(cluster_error)? {
            Some(s) => Ok(to_value(&s)),
            None => Err(ApiError::NotFound {
                gr: GroupResource::new("", "secrets"),
                name: name.to_owned(),
            }),
        }
    }
    async fn list(
        &self,
        _ctx: &RequestContext,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ObjectList, ApiError> {
        // The importer lists a namespace's Secrets whole and filters them itself.
        let _ = opts;
        let params = ListParams::default();
        let list = self.api(ns).list(&params).await.map_err(cluster_error)?;
        Ok(ObjectList {
            items: list.items.iter().map(to_value).collect(),
            resource_version: list.metadata.resource_version.unwrap_or_default(),
            continue_token: None,
            remaining: None,
        })
    }
    async fn watch(
        &self,
        _ctx: &RequestContext,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<WatchEvents, ApiError> {
        let version = opts.resource_version.clone().unwrap_or_default();
        let events = self
            .api(ns)
            .watch(&WatchParams::default(), &version)
            .await
            .map_err(cluster_error)?;
        Ok(events
            .map(|e| match e {
                Ok(KubeWatchEvent::Added(s)) => WatchEvent::Added(to_value(&s)),
                Ok(KubeWatchEvent::Modified(s)) => WatchEvent::Modified(to_value(&s)),
                Ok(KubeWatchEvent::Deleted(s)) => WatchEvent::Deleted(to_value(&s)),
                Ok(KubeWatchEvent::Bookmark(b)) => WatchEvent::Bookmark(json!({
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": {"resourceVersion": b.metadata.resource_version},
                })),
                Ok(KubeWatchEvent::Error(s)) => WatchEvent::Error(json!({
                    "apiVersion": "v1", "kind": "Status", "status": "Failure",
                    "message": s.message, "reason": s.reason, "code": s.code,
                })),
                Err(e) => WatchEvent::Error(json!({
                    "apiVersion": "v1", "kind": "Status", "status": "Failure",
                    "message": format!("watching Secrets in the cluster: {e}"),
                    "reason": "InternalError", "code": 500,
                })),
            })
            .boxed())
    }
}
