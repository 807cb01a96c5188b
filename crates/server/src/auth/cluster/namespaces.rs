//! Cluster mode's namespaces: the cluster's, mirrored into moor's store so that a
//! stream can be made only in a namespace the cluster has (a create elsewhere gets
//! kube's NotFound for the namespace), and a namespace's deletion in the cluster
//! deletes its streams here, as a namespace controller would.
//!
//! A follower of the cluster's namespaces (kube-rs's watcher): the first listing
//! replaces the mirror (namespaces that are gone are removed with their objects),
//! then each event is applied. Calls the store and the API server's cascade.

use std::collections::BTreeSet;
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
}

impl NamespaceMirror {
    /// A mirror in `api`'s store.
    pub fn new(api: Arc<ApiServer>) -> Self {
        NamespaceMirror {
            api,
            listing: BTreeSet::new(),
        }
    }

    async fn ensure(&self, name: &str) -> Result<(), NamespaceMirrorError> {
        let err = |source| NamespaceMirrorError::Store {
            name: name.to_owned(),
            source,
        };
        let key = namespace_key(name);
        if self.api.store.get(&key).await.map_err(err)?.is_some() {
            return Ok(());
        }
        let obj = core::new_namespace(name);
        let bytes = serde_json::to_vec(&obj).unwrap_or_default();
        match self.api.store.create(&key, bytes.into()).await {
            Ok(_) | Err(moor_store::StoreError::AlreadyExists(_)) => Ok(()),
            Err(e) => Err(err(e)),
        }
    }

    async fn remove(&self, name: &str) -> Result<(), NamespaceMirrorError> {
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
                self.ensure(&name).await?;
                self.listing.insert(name);
            }
            watcher::Event::InitDone => {
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
                    if !self.listing.contains(name) {
                        self.remove(name).await?;
                    }
                }
                return Ok(true);
            }
            watcher::Event::Apply(ns) => self.ensure(&name(&ns)).await?,
            watcher::Event::Delete(ns) => self.remove(&name(&ns)).await?,
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
