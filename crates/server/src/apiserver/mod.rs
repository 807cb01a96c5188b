//! The composition of moor's API: the resources moor serves (`resources`), registered
//! with the generic machinery of `moor_apimachinery`, and the importer wired to them.
//! This is where a resource is added or removed; the machinery itself knows none.

pub mod resources;
pub mod schemas;

use std::sync::Arc;

use moor_api::lookup::WorkloadKind;
use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::RestStorage;
use moor_apimachinery::stored::{ServingConfig, namespace_key};
use moor_apimachinery::{ApiServer, ServerConfig};
use moor_store::Store;

/// Settings of the API server and of the resources it serves.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// `host:port` that `status.dockerImageRepository` names.
    pub registry_hostname: String,
    /// The address clients use to reach this server (for `/api`).
    pub server_address: String,
    pub serving: ServingConfig,
    /// `--max-images-bulk-imported-per-repository`.
    pub max_images_bulk: usize,
    /// What mints ServiceAccount tokens (`serviceaccounts/NAME/token`); none: that
    /// subresource fails.
    pub service_account_tokens: Option<Arc<crate::auth::serviceaccount::ServiceAccountTokens>>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            registry_hostname: "127.0.0.1:8443".into(),
            server_address: "127.0.0.1:8443".into(),
            serving: ServingConfig::default(),
            max_images_bulk: 50,
            service_account_tokens: None,
        }
    }
}

/// The resources to serve, before the server is made: more can be registered (the
/// registry adds `imageprunes`).
pub struct Resources {
    storages: Vec<Arc<dyn RestStorage>>,
    /// The importer, wired to the image resources.
    pub importer: Arc<crate::importer::Importer>,
}

impl Resources {
    /// Every built-in resource over `store`, and the importer wired to them; imports
    /// read registries through `source`.
    pub fn new(
        store: Arc<dyn Store>,
        config: &ApiConfig,
        source: Arc<dyn crate::importer::Source>,
    ) -> Self {
        Self::with_pull_secrets(store, config, source, None)
    }

    /// [`new`](Self::new), with the importer reading pull secrets from `pull_secrets`
    /// (the cluster's Secrets, in cluster mode) instead of the served Secrets.
    pub fn with_pull_secrets(
        store: Arc<dyn Store>,
        config: &ApiConfig,
        source: Arc<dyn crate::importer::Source>,
        pull_secrets: Option<Arc<dyn RestStorage>>,
    ) -> Self {
        let (storages, importer) = resources::all(store, config, source, pull_secrets);
        Resources { storages, importer }
    }

    /// The storages of the workload kinds (Deployments, Pods, ...), with their kind.
    pub fn workloads(&self) -> Vec<(WorkloadKind, Arc<dyn RestStorage>)> {
        WorkloadKind::ALL
            .into_iter()
            .filter_map(|k| {
                let s = self.storages.iter().find(|s| {
                    let d = s.def();
                    k.group() == d.group && k.version() == d.version && k.plural() == d.plural
                })?;
                Some((k, s.clone()))
            })
            .collect()
    }

    /// Serves the resource `group`/`plural` through `wrap` (a guard around the
    /// storage; in-process callers keep the storage itself).
    pub fn guard(
        &mut self,
        group: &str,
        plural: &str,
        wrap: impl Fn(Arc<dyn RestStorage>) -> Arc<dyn RestStorage>,
    ) {
        for s in &mut self.storages {
            if s.def().group == group && s.def().plural == plural {
                *s = wrap(s.clone());
            }
        }
    }

    /// Serves only the resources `keep` accepts (cluster mode keeps its own groups).
    pub fn retain(&mut self, keep: impl Fn(&moor_apimachinery::resource::ResourceDef) -> bool) {
        self.storages.retain(|s| keep(s.def()));
    }

    /// Serves `storage` too.
    pub fn register(&mut self, storage: Arc<dyn RestStorage>) {
        self.storages.push(storage);
    }

    /// The API server over `store`, serving every registered resource.
    pub fn into_server(self, store: Arc<dyn Store>, config: &ApiConfig) -> Arc<ApiServer> {
        let server_config = ServerConfig {
            server_address: config.server_address.clone(),
            serving: config.serving.clone(),
        };
        Arc::new(ApiServer::with_schemas(
            store,
            server_config,
            self.storages,
            &schemas::catalog(),
        ))
    }
}

/// Creates what must exist: the `default` namespace, `openshift` (whose streams every
/// authenticated user may read and pull, as on OpenShift), and each namespace's
/// `default` ServiceAccount.
pub async fn bootstrap(api: &ApiServer) -> Result<(), ApiError> {
    for ns in ["default", moor_api::authz::bootstrap::OPENSHIFT_NAMESPACE] {
        if api.store.get(&namespace_key(ns)).await?.is_none() {
            let obj = resources::core::new_namespace(ns);
            match api
                .store
                .create(
                    &namespace_key(ns),
                    serde_json::to_vec(&obj).map_err(ApiError::internal)?.into(),
                )
                .await
            {
                Ok(_) | Err(moor_store::StoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    if let (Some(namespaces), Some(service_accounts)) = (
        api.storage("", "v1", "namespaces"),
        api.storage("", "v1", "serviceaccounts"),
    ) {
        resources::serviceaccounts::ensure_default_service_accounts(
            namespaces.as_ref(),
            service_accounts.as_ref(),
        )
        .await?;
    }
    Ok(())
}
