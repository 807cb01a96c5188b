//! The resources moor serves, each a [`Strategy`](moor_apimachinery::stored::Strategy) over the
//! generic store or a virtual [`RestStorage`](moor_apimachinery::resource::RestStorage).

pub mod core;
pub mod image;
pub mod notifications;
pub mod policies;
pub mod rbac;
pub mod reviews;
pub mod scheduled;
pub mod serviceaccounts;
pub mod workloads;

use std::sync::Arc;

use moor_store::Store;

use super::ApiConfig;
use moor_apimachinery::resource::RestStorage;
use moor_apimachinery::stored::StoredResource;

/// Every served resource, and the importer wired to them; the importer reads pull
/// secrets from `pull_secrets` when given (the cluster's, in cluster mode), else from
/// the served Secrets.
pub fn all(
    store: Arc<dyn Store>,
    config: &ApiConfig,
    source: Arc<dyn crate::importer::Source>,
    pull_secrets: Option<Arc<dyn RestStorage>>,
) -> (Vec<Arc<dyn RestStorage>>, Arc<crate::importer::Importer>) {
    let stored = |s: Arc<dyn moor_apimachinery::stored::Strategy>| -> Arc<dyn RestStorage> {
        Arc::new(StoredResource::new(
            store.clone(),
            s,
            config.serving.clone(),
        ))
    };
    let secrets = stored(core::Secrets::new());
    let events = stored(core::Events::new());
    let (namespaces, service_accounts) = serviceaccounts_and_namespaces(&stored, config);
    let mut out: Vec<Arc<dyn RestStorage>> = vec![
        namespaces,
        service_accounts,
        secrets.clone(),
        events.clone(),
    ];
    let (image_storages, importer) = image::all(
        store.clone(),
        config,
        source,
        events,
        pull_secrets.unwrap_or(secrets),
    );
    let streams = image_storages
        .iter()
        .find(|s| s.def().plural == "imagestreams")
        .cloned()
        .expect("image::all serves imagestreams");
    out.extend(image_storages);
    out.push(Arc::new(scheduled::ScheduledImports::new(store.clone())));
    out.extend(signature_policies(&stored, &importer));
    out.push(stored(notifications::Notifications::new()));
    out.extend(workloads::all(store.clone(), config, streams));
    (out, importer)
}

/// Namespaces (each made with its `default` ServiceAccount) and ServiceAccounts
/// (with the `token` subresource).
fn serviceaccounts_and_namespaces(
    stored: &dyn Fn(Arc<dyn moor_apimachinery::stored::Strategy>) -> Arc<dyn RestStorage>,
    config: &ApiConfig,
) -> (Arc<dyn RestStorage>, Arc<dyn RestStorage>) {
    let service_accounts: Arc<dyn RestStorage> =
        Arc::new(serviceaccounts::ServiceAccountStorage::new(
            stored(serviceaccounts::ServiceAccounts::new()),
            config.service_account_tokens.clone(),
        ));
    let namespaces = serviceaccounts::DefaultServiceAccount::wrap(
        stored(core::Namespaces::new()),
        service_accounts.clone(),
    );
    (namespaces, service_accounts)
}

/// `imagepolicies` and `clusterimagepolicies`, and the importer's check over them.
fn signature_policies(
    stored: &dyn Fn(Arc<dyn moor_apimachinery::stored::Strategy>) -> Arc<dyn RestStorage>,
    importer: &crate::importer::Importer,
) -> [Arc<dyn RestStorage>; 2] {
    let namespaced = stored(policies::Policies::namespaced());
    let cluster = stored(policies::Policies::cluster());
    importer.set_signatures(Arc::new(crate::signatures::Verifier::new(
        namespaced.clone(),
        cluster.clone(),
    )));
    [namespaced, cluster]
}
