//! Cluster mode's namespaces: the cluster's, mirrored into moor's store so that a
//! stream can be made only in a namespace the cluster has (a create elsewhere gets
//! kube's NotFound for the namespace), and a namespace's deletion in the cluster
//! deletes its streams here, as a namespace controller would.
//!
//! A follower of the cluster's namespaces (kube-rs's watcher): the first listing
//! replaces the mirror, then each event is applied. A watched deletion removes the
//! namespace's objects. A namespace missing from a listing loses its objects only if
//! it was mirrored from this very cluster (its `moor.io/cluster-id` annotation is the
//! UID of the cluster's `kube-system`): one that moor made standalone, or that came
//! from another cluster (a wrong kubeconfig), keeps them, with a warning.
//! Calls the store and the API server's cascade.

use std::collections::BTreeSet;

/// The annotation naming the cluster (its `kube-system` UID) a namespace was mirrored from.
pub const CLUSTER_ID_ANNOTATION: &str = "moor.io/cluster-id";
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::watcher;
use moor_apimachinery::ApiServer;
use moor_apimachinery::error::ApiError;
use moor_apimachinery::stored::{Strategy, namespace_key};
use serde_json::Value;

use crate::apiserver::resources::core;

/// A mirror that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceMirrorError {
    #[error("mirroring namespace {name}: {source}")]
    Store {
        name: String,
        #[source]
        source: moor_store::StoreError,
    },
    #[error("deleting the objects of namespace {name}: {source}")]
    Cascade {
        name: String,
        #[source]
        source: ApiError,
    },
    #[error("the cluster's namespaces: {0}")]
    Watch(#[source] watcher::Error),
}

/// The events of the cluster's namespaces.
pub type NamespaceEvents =
    std::pin::Pin<Box<dyn Stream<Item = Result<watcher::Event<Namespace>, watcher::Error>> + Send>>;

/// Starts following the cluster's namespaces.
pub fn watch(client: kube::Client) -> NamespaceEvents {
    use kube::runtime::WatchStreamExt;
    watcher::watcher(
        kube::Api::<Namespace>::all(client),
        watcher::Config::default(),
    )
    .default_backoff()
    .boxed()
}

/// Applies events to moor's mirror.
pub struct NamespaceMirror {
    api: Arc<ApiServer>,
    listing: BTreeSet<String>,
    /// The UID of the cluster's `kube-system` namespace, once seen.
    cluster_id: String,
}

impl NamespaceMirror {
    /// A mirror in `api`'s store.
    pub fn new(api: Arc<ApiServer>) -> Self {
        NamespaceMirror {
            api,
            listing: BTreeSet::new(),
            cluster_id: String::new(),
        }
    }

    async fn ensure(&self, name: &str) -> Result<(), NamespaceMirrorError> {
        let err = |source| NamespaceMirrorError::Store {
            name: name.to_owned(),
            source,
        };
        let key = namespace_key(name);
        let existing = self.api.store.get(&key).await.map_err(err)?;
        let mut obj = match &existing {
            Some(kv) => serde_json::from_slice::<Value>(&kv.value)
                .unwrap_or_else(|_| core::new_namespace(name)),
            None => core::new_namespace(name),
        };
        let marked = obj
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(CLUSTER_ID_ANNOTATION))
            .and_then(Value::as_str);
        if existing.is_some() && (self.cluster_id.is_empty() || marked == Some(&self.cluster_id)) {
            return Ok(());
        }
        if !self.cluster_id.is_empty() {
            obj["metadata"]["annotations"][CLUSTER_ID_ANNOTATION] = self.cluster_id.clone().into();
        }
        let bytes = serde_json::to_vec(&obj).unwrap_or_default();
        let written = match existing {
            Some(kv) => self
                .api
                .store
                .update(&key, bytes.into(), kv.mod_revision)
                .await
                .map(|_| ()),
            None => self.api.store.create(&key, bytes.into()).await.map(|_| ()),
        };
        match written {
            Ok(()) | Err(moor_store::StoreError::AlreadyExists(_)) => Ok(()),
            Err(e) => Err(err(e)),
        }
    }

    /// Removes namespace `name`; with `cascade`, its objects too.
    async fn remove(&self, name: &str, cascade: bool) -> Result<(), NamespaceMirrorError> {
        let key = namespace_key(name);
        let obj = match self.api.store.get(&key).await {
            Ok(Some(kv)) => serde_json::from_slice::<Value>(&kv.value)
                .unwrap_or_else(|_| core::new_namespace(name)),
            Ok(None) => core::new_namespace(name),
            Err(source) => {
                return Err(NamespaceMirrorError::Store {
                    name: name.to_owned(),
                    source,
                });
            }
        };
        match self.api.store.delete(&key, None).await {
            Ok(_) | Err(moor_store::StoreError::NotFound(_)) => {}
            Err(source) => {
                return Err(NamespaceMirrorError::Store {
                    name: name.to_owned(),
                    source,
                });
            }
        }
        if !cascade {
            tracing::warn!(
                namespace = name,
                "the cluster has no such namespace and moor did not mirror it from this \
                 cluster: its objects are kept, and new ones refused until it exists"
            );
            return Ok(());
        }
        let namespaces = core::Namespaces::new();
        self.api
            .after_delete(namespaces.def(), &obj)
            .await
            .map_err(|source| NamespaceMirrorError::Cascade {
                name: name.to_owned(),
                source,
            })
    }

    /// Applies one event; `Ok(true)` when it ended a listing.
    pub async fn apply(
        &mut self,
        event: Result<watcher::Event<Namespace>, watcher::Error>,
    ) -> Result<bool, NamespaceMirrorError> {
        let name = |ns: &Namespace| ns.metadata.name.clone().unwrap_or_default();
        match event.map_err(NamespaceMirrorError::Watch)? {
            watcher::Event::Init => self.listing.clear(),
            watcher::Event::InitApply(ns) => {
                let name = name(&ns);
                if name == "kube-system" {
                    self.cluster_id = ns.metadata.uid.clone().unwrap_or_default();
                }
                self.listing.insert(name);
            }
            watcher::Event::InitDone => {
                for name in self.listing.clone() {
                    self.ensure(&name).await?;
                }
                let prefix = namespace_key("");
                let mirrored = self
                    .api
                    .store
                    .list(&prefix, Default::default())
                    .await
                    .map_err(|source| NamespaceMirrorError::Store {
                        name: String::new(),
                        source,
                    })?;
                for kv in mirrored.kvs {
                    let Some(name) = kv.key.strip_prefix(&prefix) else {
                        continue;
                    };
                    if self.listing.contains(name) {
                        continue;
                    }
                    let marked = serde_json::from_slice::<Value>(&kv.value)
                        .ok()
                        .and_then(|o| {
                            o.pointer("/metadata/annotations")?
                                .get(CLUSTER_ID_ANNOTATION)?
                                .as_str()
                                .map(str::to_owned)
                        });
                    let ours =
                        !self.cluster_id.is_empty() && marked.as_deref() == Some(&self.cluster_id);
                    self.remove(name, ours).await?;
                }
                return Ok(true);
            }
            watcher::Event::Apply(ns) => self.ensure(&name(&ns)).await?,
            watcher::Event::Delete(ns) => self.remove(&name(&ns), true).await?,
        }
        Ok(false)
    }

    /// Applies `events` until the first listing is mirrored.
    pub async fn first_listing(
        &mut self,
        events: &mut NamespaceEvents,
    ) -> Result<(), NamespaceMirrorError> {
        while let Some(event) = events.next().await {
            if self.apply(event).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Applies `events` until they end.
    pub async fn run(mut self, mut events: NamespaceEvents) {
        while let Some(event) = events.next().await {
            if let Err(e) = self.apply(event).await {
                tracing::warn!(error = %e, "mirroring the cluster's namespaces");
            }
        }
    }
}
