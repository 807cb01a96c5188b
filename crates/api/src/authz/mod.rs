//! The IO-free core of authorization: Kubernetes RBAC decisions over
//! `rbac.authorization.k8s.io/v1` objects, as kube-apiserver makes them, and the
//! policy data and mappings moor needs around them. Nothing here reads a store or a
//! file: the server builds a [`PolicySnapshot`] from what it holds, asks it for
//! [`Decision`]s and rebuilds it on RBAC watch events.
//!
//! - [`attributes`]: who asks ([`UserInfo`]) to do what ([`Attributes`]), and the answer.
//! - [`rules`]: does one `PolicyRule` allow a request (kube's `RuleAllows`).
//! - [`snapshot`]: the indexed evaluator over Roles, ClusterRoles and their bindings.
//! - [`aggregation`]: the rules of ClusterRoles with an `aggregationRule`.
//! - [`escalation`]: kube's `Covers`, `ConfirmNoEscalation` and the `bind`/`escalate`
//!   exceptions for writes of roles and bindings.
//! - [`bootstrap`]: the default policy (kube's and OpenShift's roles for what moor
//!   serves) and its reconciliation with what is stored.
//! - [`registry`]: registry actions on `ns/name` as the attributes to check
//!   (openshift/image-registry's mapping).
//! - [`tokenfile`]: kube-apiserver's `--token-auth-file` CSV, kept as token hashes.
//!
//! May call: `k8s_openapi` types, `kube_core` label selectors, `sha2`. Nothing else.

pub mod aggregation;
pub mod attributes;
pub mod bootstrap;
pub mod escalation;
pub mod reconcile;
pub mod registry;
pub mod rules;
pub mod snapshot;
pub mod tokenfile;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use aggregation::aggregate_cluster_roles;
pub use attributes::{
    Attributes, Decision, NonResourceAttributes, Request, ResourceAttributes, UserInfo,
};
pub use bootstrap::PolicyObjects;
pub use reconcile::{Change, PolicyObject, reconcile};
pub use snapshot::PolicySnapshot;

/// The RBAC API group.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// `*`: every verb, group, resource or non-resource URL in a rule.
pub const ALL: &str = "*";

/// Well-known user and group names (kube's `user` package).
pub mod names {
    /// Members can do anything; the escalation check never stops them.
    pub const SYSTEM_MASTERS: &str = "system:masters";
    /// Every authenticated user is in this group.
    pub const AUTHENTICATED: &str = "system:authenticated";
    /// Every anonymous request is in this group.
    pub const UNAUTHENTICATED: &str = "system:unauthenticated";
    /// The user name of anonymous requests.
    pub const ANONYMOUS: &str = "system:anonymous";
    /// Every ServiceAccount is in this group.
    pub const SERVICE_ACCOUNTS: &str = "system:serviceaccounts";
    /// The prefix of ServiceAccount user names: `system:serviceaccount:NS:NAME`.
    pub const SERVICE_ACCOUNT_USER_PREFIX: &str = "system:serviceaccount:";
}
