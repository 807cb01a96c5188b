//! The RBAC authorizer: kube's decisions (`moor_api::authz`) over the Roles,
//! ClusterRoles and bindings the store holds, kept current by a watch.
//!
//! - [`Policy`] holds the current [`PolicySnapshot`] and a decision cache that every
//!   new snapshot empties. A write through the API waits ([`Policy::wait_for`]) until
//!   the snapshot has seen it, so a client that just created a RoleBinding is
//!   authorized by it on its next request.
//! - [`run_policy_watch`] loads the RBAC objects, then follows the store's watch and
//!   swaps in a new snapshot after each batch of changes.
//! - [`reconcile_bootstrap`] writes the bootstrap policy at start (kube's additive
//!   reconciliation); [`run_namespace_bindings`] gives each new namespace its
//!   `system:image-pullers` and `system:image-builders` bindings.
//!
//! Calls the store; knows the RBAC resources only by their store prefix.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use moor_api::authz::{Change, Decision, PolicyObject, PolicyObjects, PolicySnapshot, reconcile};
use moor_store::{EventKind, ListOptions, Revision, Store, StoreError};
use serde::Serialize;
use tokio::sync::watch;

use moor_apimachinery::stored::{now_rfc3339, object_key};

/// Store prefix of every RBAC object: the group's part of
/// [`moor_apimachinery::stored::resource_prefix`] (a test holds them together).
pub const RBAC_PREFIX: &str = "/registry/rbac.authorization.k8s.io/";
/// Store prefix of the namespaces (`namespace_key` of no name).
const NAMESPACES_PREFIX: &str = "/registry/core/namespaces/";
/// How many decisions the cache holds before it starts over.
const CACHE_CAPACITY: usize = 16_384;
/// How long an API write waits for the policy to see it.
const WAIT_FOR_WRITE: Duration = Duration::from_secs(5);
/// Pause before a lost watch is resumed.
const RETRY: Duration = Duration::from_millis(500);

/// Errors of loading and reconciling the policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("encoding {key}: {source}")]
    Encode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The current RBAC policy, its decisions cached.
pub struct Policy {
    snapshot: RwLock<Arc<PolicySnapshot>>,
    cache: Mutex<HashMap<moor_api::authz::Attributes, Decision>>,
    /// The store revision the snapshot reflects.
    revision: watch::Sender<Revision>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::new(PolicySnapshot::default(), 0)
    }
}

impl Policy {
    /// A policy starting from `snapshot`, as of `revision`.
    pub fn new(snapshot: PolicySnapshot, revision: Revision) -> Self {
        Policy {
            snapshot: RwLock::new(Arc::new(snapshot)),
            cache: Mutex::new(HashMap::new()),
            revision: watch::channel(revision).0,
        }
    }

    /// The snapshot decisions are made on now.
    pub fn snapshot(&self) -> Arc<PolicySnapshot> {
        self.snapshot.read().expect("policy lock").clone()
    }

    /// Swaps in a snapshot that reflects the store as of `revision`.
    pub fn replace(&self, snapshot: PolicySnapshot, revision: Revision) {
        *self.snapshot.write().expect("policy lock") = Arc::new(snapshot);
        self.cache.lock().expect("cache lock").clear();
        self.revision.send_replace(revision);
    }

    /// kube-apiserver's chain: `system:masters` first, then RBAC; cached until the
    /// policy changes.
    pub fn authorize(&self, attrs: &moor_api::authz::Attributes) -> Decision {
        if let Some(d) = self.cache.lock().expect("cache lock").get(attrs) {
            return d.clone();
        }
        let snapshot = self.snapshot();
        let decision = snapshot.authorize_request(attrs);
        let mut cache = self.cache.lock().expect("cache lock");
        // A snapshot swapped in meanwhile emptied the cache; the decision was made on
        // the old one and must not outlive it.
        if Arc::ptr_eq(&snapshot, &self.snapshot.read().expect("policy lock")) {
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(attrs.clone(), decision.clone());
        }
        decision
    }

    /// Waits (a bounded time) until the snapshot reflects the store at `revision`.
    pub async fn wait_for(&self, revision: Revision) {
        let mut rx = self.revision.subscribe();
        let _ = tokio::time::timeout(WAIT_FOR_WRITE, rx.wait_for(|r| *r >= revision)).await;
    }

    /// The store revision the snapshot reflects.
    pub fn revision(&self) -> Revision {
        *self.revision.borrow()
    }
}

/// The RBAC objects under [`RBAC_PREFIX`], by key.
#[derive(Default)]
struct Objects(BTreeMap<String, PolicyObject>);

fn decode(key: &str, value: &[u8]) -> Option<PolicyObject> {
    let rest = key.strip_prefix(RBAC_PREFIX)?;
    let resource = rest.split('/').next()?;
    let parsed = match resource {
        "clusterroles" => serde_json::from_slice(value).map(PolicyObject::ClusterRole),
        "clusterrolebindings" => {
            serde_json::from_slice(value).map(PolicyObject::ClusterRoleBinding)
        }
        "roles" => serde_json::from_slice(value).map(PolicyObject::Role),
        "rolebindings" => serde_json::from_slice(value).map(PolicyObject::RoleBinding),
        _ => return None,
    };
    match parsed {
        Ok(o) => Some(o),
        Err(e) => {
            tracing::warn!(key, error = %e, "RBAC object not understood; it grants nothing");
            None
        }
    }
}

impl Objects {
    fn policy_objects(&self) -> PolicyObjects {
        let mut out = PolicyObjects::default();
        for o in self.0.values() {
            match o {
                PolicyObject::ClusterRole(r) => out.cluster_roles.push(r.clone()),
                PolicyObject::ClusterRoleBinding(b) => out.cluster_role_bindings.push(b.clone()),
                PolicyObject::Role(r) => out.roles.push(r.clone()),
                PolicyObject::RoleBinding(b) => out.role_bindings.push(b.clone()),
            }
        }
        out
    }
}

async fn load(store: &dyn Store) -> Result<(Objects, Revision), StoreError> {
    let list = store.list(RBAC_PREFIX, ListOptions::default()).await?;
    let mut objects = Objects::default();
    for kv in list.kvs {
        if let Some(o) = decode(&kv.key, &kv.value) {
            objects.0.insert(kv.key, o);
        }
    }
    Ok((objects, list.revision))
}

/// Loads the stored policy into a new [`Policy`].
pub async fn load_policy(store: &dyn Store) -> Result<Policy, StoreError> {
    let (objects, revision) = load(store).await?;
    Ok(Policy::new(objects.policy_objects().snapshot(), revision))
}

/// Loads the stored policy into `policy` now.
pub async fn refresh(store: &dyn Store, policy: &Policy) -> Result<(), StoreError> {
    let (objects, revision) = load(store).await?;
    policy.replace(objects.policy_objects().snapshot(), revision);
    Ok(())
}

/// Follows RBAC changes in the store for ever, swapping in a new snapshot after each
/// batch of events; relists when the watch is lost.
pub async fn run_policy_watch(store: Arc<dyn Store>, policy: Arc<Policy>) {
    loop {
        let (mut objects, mut revision) = match load(store.as_ref()).await {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::warn!(error = %e, "loading the RBAC policy failed; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        publish(store.as_ref(), &policy, &objects, revision).await;
        let mut events = match store.watch(RBAC_PREFIX, revision).await {
            Ok(w) => w.ready_chunks(256),
            Err(e) => {
                tracing::warn!(error = %e, "watching the RBAC policy failed; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        while let Some(batch) = events.next().await {
            let mut lost = false;
            for event in batch {
                match event {
                    Ok(e) => {
                        revision = revision.max(e.kv.mod_revision);
                        match e.kind {
                            EventKind::Put => match decode(&e.kv.key, &e.kv.value) {
                                Some(o) => {
                                    objects.0.insert(e.kv.key, o);
                                }
                                None => {
                                    objects.0.remove(&e.kv.key);
                                }
                            },
                            EventKind::Delete => {
                                objects.0.remove(&e.kv.key);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "RBAC watch lost; relisting");
                        lost = true;
                    }
                }
            }
            publish(store.as_ref(), &policy, &objects, revision).await;
            if lost {
                break;
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Stores the rules of aggregated ClusterRoles (`admin`, `edit`, `view`, and any
/// with an `aggregationRule`), as kube's `clusterroleaggregation` controller does,
/// so that reading the role shows what it grants. A lost race is left to the event
/// it causes.
/// Swaps in the snapshot of `objects` (as of `revision`), then stores the rules of
/// aggregated ClusterRoles that changed; the objects are gathered once for both.
async fn publish(store: &dyn Store, policy: &Policy, objects: &Objects, revision: Revision) {
    let objects = objects.policy_objects();
    policy.replace(objects.snapshot(), revision);
    write_aggregated(store, objects.cluster_roles).await;
}

async fn write_aggregated(store: &dyn Store, mut roles: Vec<ClusterRole>) {
    let (changed, errors) = moor_api::authz::aggregate_cluster_roles(&mut roles);
    for e in errors {
        tracing::warn!(error = %e, "ClusterRole aggregation");
    }
    for name in changed {
        let Some(role) = roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name.as_str()))
        else {
            continue;
        };
        let key = key_of(&PolicyObject::ClusterRole(role.clone()));
        let Ok(Some(current)) = store.get(&key).await else {
            continue;
        };
        let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&current.value) else {
            continue;
        };
        value["rules"] =
            serde_json::to_value(role.rules.clone().unwrap_or_default()).unwrap_or_default();
        let Ok(bytes) = serde_json::to_vec(&value) else {
            continue;
        };
        match store.update(&key, bytes.into(), current.mod_revision).await {
            Ok(_) | Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {}
            Err(e) => tracing::warn!(key, error = %e, "aggregated ClusterRole not stored"),
        }
    }
}

/// The store key of `object`: where the served RBAC resource keeps it.
fn key_of(object: &PolicyObject) -> String {
    use crate::apiserver::resources::rbac::Kind;
    let (kind, meta) = match object {
        PolicyObject::ClusterRole(o) => (Kind::ClusterRole, &o.metadata),
        PolicyObject::ClusterRoleBinding(o) => (Kind::ClusterRoleBinding, &o.metadata),
        PolicyObject::Role(o) => (Kind::Role, &o.metadata),
        PolicyObject::RoleBinding(o) => (Kind::RoleBinding, &o.metadata),
    };
    object_key(
        &kind.def(),
        meta.namespace.as_deref().filter(|ns| !ns.is_empty()),
        meta.name.as_deref().unwrap_or_default(),
    )
}

fn encode<T: Serialize>(
    key: &str,
    kind: &str,
    object: &T,
    fresh: bool,
) -> Result<bytes::Bytes, PolicyError> {
    let mut value = serde_json::to_value(object).map_err(|source| PolicyError::Encode {
        key: key.to_owned(),
        source,
    })?;
    value["apiVersion"] = "rbac.authorization.k8s.io/v1".into();
    value["kind"] = kind.into();
    if let Some(meta) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        // The store's revision is the resourceVersion; it is never stored.
        meta.remove("resourceVersion");
        if fresh {
            meta.insert("uid".into(), uuid::Uuid::new_v4().to_string().into());
            meta.insert("creationTimestamp".into(), now_rfc3339().into());
        }
    }
    serde_json::to_vec(&value)
        .map(Into::into)
        .map_err(|source| PolicyError::Encode {
            key: key.to_owned(),
            source,
        })
}

fn encode_object(
    object: &PolicyObject,
    fresh: bool,
) -> Result<(String, bytes::Bytes), PolicyError> {
    let key = key_of(object);
    let value = match object {
        PolicyObject::ClusterRole(o) => encode::<ClusterRole>(&key, "ClusterRole", o, fresh),
        PolicyObject::ClusterRoleBinding(o) => {
            encode::<ClusterRoleBinding>(&key, "ClusterRoleBinding", o, fresh)
        }
        PolicyObject::Role(o) => encode::<Role>(&key, "Role", o, fresh),
        PolicyObject::RoleBinding(o) => encode::<RoleBinding>(&key, "RoleBinding", o, fresh),
    }?;
    Ok((key, value))
}

/// Applies `changes` to the store; a write that lost a race is left to the next
/// reconciliation (the object exists, which is what matters).
async fn apply(store: &dyn Store, changes: Vec<Change>) -> Result<usize, PolicyError> {
    let mut written = 0;
    for change in changes {
        match change {
            Change::Create(o) => {
                let (key, value) = encode_object(&o, true)?;
                match store.create(&key, value).await {
                    Ok(_) => written += 1,
                    Err(StoreError::AlreadyExists(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Change::Update(o) => {
                let (key, value) = encode_object(&o, false)?;
                let Some(current) = store.get(&key).await? else {
                    continue;
                };
                match store.update(&key, value, current.mod_revision).await {
                    Ok(_) => written += 1,
                    Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Change::Recreate(o) => {
                let (key, value) = encode_object(&o, true)?;
                match store.delete(&key, None).await {
                    Ok(_) | Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                match store.create(&key, value).await {
                    Ok(_) => written += 1,
                    Err(StoreError::AlreadyExists(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Change::Protected(o) => {
                tracing::info!(
                    key = key_of(&o),
                    "bootstrap RBAC object differs but has autoupdate=false; left alone"
                );
            }
        }
    }
    Ok(written)
}

/// The names of the namespaces the store holds.
async fn namespaces(store: &dyn Store) -> Result<Vec<String>, StoreError> {
    let list = store
        .list(NAMESPACES_PREFIX, ListOptions::default())
        .await?;
    Ok(list
        .kvs
        .into_iter()
        .filter_map(|kv| kv.key.strip_prefix(NAMESPACES_PREFIX).map(str::to_owned))
        .collect())
}

/// Brings the stored policy in line with the bootstrap policy of the namespaces the
/// store holds (kube's additive reconciliation). Returns how many objects it wrote.
pub async fn reconcile_bootstrap(store: &dyn Store) -> Result<usize, PolicyError> {
    let names = namespaces(store).await?;
    let want = PolicyObjects::bootstrap(names.iter().map(String::as_str));
    let (have, _) = load(store).await?;
    let written = apply(store, reconcile(&have.policy_objects(), &want)).await?;
    if written > 0 {
        tracing::info!(written, "bootstrap RBAC policy reconciled");
    }
    Ok(written)
}

async fn ensure_namespace_bindings(store: &dyn Store, namespace: &str) -> Result<(), PolicyError> {
    let want = PolicyObjects {
        role_bindings: moor_api::authz::bootstrap::namespace_role_bindings(namespace),
        ..PolicyObjects::default()
    };
    let mut have = PolicyObjects::default();
    for b in &want.role_bindings {
        let key = key_of(&PolicyObject::RoleBinding(b.clone()));
        if let Some(kv) = store.get(&key).await?
            && let Some(PolicyObject::RoleBinding(b)) = decode(&kv.key, &kv.value)
        {
            have.role_bindings.push(b);
        }
    }
    apply(store, reconcile(&have, &want)).await?;
    Ok(())
}

/// Gives every namespace created after revision `from` its image bindings, for ever.
pub async fn run_namespace_bindings(store: Arc<dyn Store>, mut from: Revision) {
    loop {
        let mut events = match store.watch(NAMESPACES_PREFIX, from).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "watching namespaces for RBAC bindings failed");
                tokio::time::sleep(RETRY).await;
                if let Ok(r) = store.current_revision().await {
                    from = r;
                }
                continue;
            }
        };
        while let Some(event) = events.next().await {
            let Ok(e) = event else { break };
            from = e.kv.mod_revision;
            if e.kind != EventKind::Put || e.kv.create_revision != e.kv.mod_revision {
                continue;
            }
            if let Some(ns) = e.kv.key.strip_prefix(NAMESPACES_PREFIX)
                && let Err(err) = ensure_namespace_bindings(store.as_ref(), ns).await
            {
                tracing::warn!(namespace = ns, error = %err, "namespace RBAC bindings not written");
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::rbac::Kind;
    use moor_apimachinery::stored::{namespace_key, resource_prefix};

    #[test]
    fn prefixes_are_the_served_resources_own() {
        for kind in [
            Kind::Role,
            Kind::ClusterRole,
            Kind::RoleBinding,
            Kind::ClusterRoleBinding,
        ] {
            assert!(
                resource_prefix(&kind.def()).starts_with(RBAC_PREFIX),
                "{kind:?}"
            );
        }
        assert_eq!(namespace_key(""), NAMESPACES_PREFIX);
    }
}
