//! Cluster mode's bootstrap roles: moor's ClusterRoles for the cluster's users
//! ([`moor_api::authz::bootstrap::cluster_mode_roles`]: `system:image-puller`,
//! `registry-editor`, `moor:aggregate-to-edit`, ...) applied into the cluster at start
//! with server-side apply (field manager `moor`), when moor's identity may write
//! ClusterRoles. The chart's least-privilege identity may not: the chart ships the
//! same roles, and a refusal is only logged.
//! Calls the cluster through kube-rs.

use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, Patch, PatchParams};

/// The field manager of the applied roles.
pub const FIELD_MANAGER: &str = "moor";

/// What applying the roles did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Every role was applied.
    All(usize),
    /// The cluster refused the first write (403): none were applied.
    NotPermitted,
}

/// A role the cluster would not take (other than a refusal to moor's identity).
#[derive(Debug, thiserror::Error)]
#[error("applying ClusterRole {name}: {source}")]
pub struct BootstrapError {
    name: String,
    #[source]
    source: kube::Error,
}

/// Applies the roles; stops at the first refusal (403), since the rest would be too.
pub async fn apply_roles(client: kube::Client) -> Result<Applied, BootstrapError> {
    let api = Api::<ClusterRole>::all(client);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let roles = moor_api::authz::bootstrap::cluster_mode_roles();
    for role in &roles {
        let name = role.metadata.name.clone().unwrap_or_default();
        // Server-side apply wants the type in the body.
        let mut body = match serde_json::to_value(role) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, %name, "bootstrap role does not serialize");
                continue;
            }
        };
        body["apiVersion"] = "rbac.authorization.k8s.io/v1".into();
        body["kind"] = "ClusterRole".into();
        match api.patch(&name, &params, &Patch::Apply(&body)).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 403 => return Ok(Applied::NotPermitted),
            Err(source) => return Err(BootstrapError { name, source }),
        }
    }
    Ok(Applied::All(roles.len()))
}

/// [`apply_roles`], with the outcome logged; never fails the start.
pub async fn apply_and_log(client: kube::Client) {
    match apply_roles(client).await {
        Ok(Applied::All(n)) => {
            tracing::info!(roles = n, "bootstrap ClusterRoles applied into the cluster")
        }
        Ok(Applied::NotPermitted) => tracing::info!(
            "not permitted to write ClusterRoles: moor's bootstrap roles are left to the \
             chart (deploy/helm/moor templates/bootstrap-roles.yaml)"
        ),
        Err(e) => tracing::warn!(error = %e, "bootstrap ClusterRoles not applied"),
    }
}
