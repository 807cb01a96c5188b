//! `rbac.authorization.k8s.io/v1`: Roles, ClusterRoles, RoleBindings and
//! ClusterRoleBindings, stored like every other resource, validated as kube-apiserver
//! validates them, and written only by users who hold what they grant (kube's
//! escalation check; `bind` and `escalate` are the exceptions). A write returns once
//! the authorizer has seen it.

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use moor_api::authz::escalation::{RoleTarget, authorize_binding_write, authorize_role_write};
use moor_api::authz::{RBAC_GROUP, UserInfo};
use moor_api::validation::FieldError;
use moor_store::Store;
use serde_json::{Value, json};

use crate::auth::rbac::Policy;
use moor_apimachinery::admission::{Admitted, WriteAdmission};
use moor_apimachinery::codec::decode_as;
use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::*;
use moor_apimachinery::stored::{ServingConfig, StoredResource, Strategy};
use moor_apimachinery::table::{
    Column, TableDef, age_column, age_of, creation_timestamp, name_column, name_of,
};

/// Which of the four kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Role,
    ClusterRole,
    RoleBinding,
    ClusterRoleBinding,
}

const VERBS: &[&str] = ALL_VERBS;

impl Kind {
    /// The served resource (what discovery publishes and the store keys follow).
    pub fn def(self) -> ResourceDef {
        let (kind, list_kind, plural, singular, namespaced) = match self {
            Kind::Role => ("Role", "RoleList", "roles", "role", true),
            Kind::ClusterRole => (
                "ClusterRole",
                "ClusterRoleList",
                "clusterroles",
                "clusterrole",
                false,
            ),
            Kind::RoleBinding => (
                "RoleBinding",
                "RoleBindingList",
                "rolebindings",
                "rolebinding",
                true,
            ),
            Kind::ClusterRoleBinding => (
                "ClusterRoleBinding",
                "ClusterRoleBindingList",
                "clusterrolebindings",
                "clusterrolebinding",
                false,
            ),
        };
        ResourceDef {
            group: RBAC_GROUP,
            version: "v1",
            kind,
            list_kind,
            plural,
            singular,
            short_names: &[],
            categories: &[],
            namespaced,
            verbs: VERBS,
            subresources: &[],
            selectable_fields: &[],
        }
    }

    fn is_binding(self) -> bool {
        matches!(self, Kind::RoleBinding | Kind::ClusterRoleBinding)
    }
}

/// The strategy of one RBAC kind.
struct RbacStrategy {
    kind: Kind,
    def: ResourceDef,
}

fn rules_of(obj: &Value) -> Vec<PolicyRule> {
    obj.get("rules")
        .cloned()
        .and_then(|r| serde_json::from_value(r).ok())
        .unwrap_or_default()
}

fn role_ref_of(obj: &Value) -> Option<RoleRef> {
    obj.get("roleRef")
        .cloned()
        .and_then(|r| serde_json::from_value(r).ok())
}

fn subjects_of(obj: &Value) -> Vec<Subject> {
    obj.get("subjects")
        .cloned()
        .and_then(|r| serde_json::from_value(r).ok())
        .unwrap_or_default()
}

/// kube's `ValidatePolicyRule`.
fn validate_rules(rules: &[PolicyRule], namespaced: bool, errors: &mut Vec<FieldError>) {
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("rules[{i}]");
        if rule.verbs.is_empty() {
            errors.push(FieldError::required(
                format!("{path}.verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = rule.non_resource_urls.as_deref().unwrap_or_default();
        let groups = rule.api_groups.as_deref().unwrap_or_default();
        let resources = rule.resources.as_deref().unwrap_or_default();
        if !urls.is_empty() {
            if namespaced {
                errors.push(FieldError::invalid(
                    format!("{path}.nonResourceURLs"),
                    urls.join(","),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !groups.is_empty() || !resources.is_empty() {
                errors.push(FieldError::invalid(
                    format!("{path}.nonResourceURLs"),
                    urls.join(","),
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if groups.is_empty() {
            errors.push(FieldError::required(
                format!("{path}.apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if resources.is_empty() {
            errors.push(FieldError::required(
                format!("{path}.resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
}

/// kube's `ValidateRoleBinding` / `ValidateClusterRoleBinding`.
fn validate_binding(obj: &Value, cluster: bool, errors: &mut Vec<FieldError>) {
    match role_ref_of(obj) {
        None => errors.push(FieldError::required("roleRef", "roleRef is required")),
        Some(r) => {
            let group = r.api_group.as_deref().unwrap_or_default();
            if group != RBAC_GROUP {
                errors.push(FieldError::not_supported(
                    "roleRef.apiGroup",
                    group,
                    &[RBAC_GROUP],
                ));
            }
            let kinds: &[&str] = if cluster {
                &["ClusterRole"]
            } else {
                &["Role", "ClusterRole"]
            };
            if !kinds.contains(&r.kind.as_str()) {
                errors.push(FieldError::not_supported("roleRef.kind", &r.kind, kinds));
            }
            if r.name.is_empty() {
                errors.push(FieldError::required("roleRef.name", ""));
            }
        }
    }
    for (i, s) in subjects_of(obj).iter().enumerate() {
        let path = format!("subjects[{i}]");
        if s.name.is_empty() {
            errors.push(FieldError::required(format!("{path}.name"), ""));
        }
        match s.kind.as_str() {
            "ServiceAccount" => {
                if s.api_group.as_deref().is_some_and(|g| !g.is_empty()) {
                    errors.push(FieldError::not_supported(
                        format!("{path}.apiGroup"),
                        s.api_group.as_deref().unwrap_or_default(),
                        &[""],
                    ));
                }
                if cluster && s.namespace.as_deref().unwrap_or_default().is_empty() {
                    errors.push(FieldError::required(format!("{path}.namespace"), ""));
                }
            }
            "User" | "Group" => {
                if s.api_group.as_deref() != Some(RBAC_GROUP) {
                    errors.push(FieldError::not_supported(
                        format!("{path}.apiGroup"),
                        s.api_group.as_deref().unwrap_or_default(),
                        &[RBAC_GROUP],
                    ));
                }
            }
            other => errors.push(FieldError::not_supported(
                format!("{path}.kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
}

fn role_ref_column(obj: &Value) -> Value {
    match role_ref_of(obj) {
        Some(r) => Value::from(format!("{}/{}", r.kind, r.name)),
        None => Value::from(""),
    }
}

impl Strategy for RbacStrategy {
    fn def(&self) -> &ResourceDef {
        &self.def
    }
    fn decode(&self, body: Value) -> Result<(Value, Vec<String>), String> {
        match self.kind {
            Kind::Role => decode_as::<Role>(body),
            Kind::ClusterRole => decode_as::<ClusterRole>(body),
            Kind::RoleBinding => decode_as::<RoleBinding>(body),
            Kind::ClusterRoleBinding => decode_as::<ClusterRoleBinding>(body),
        }
    }
    fn table(&self) -> TableDef {
        if self.kind.is_binding() {
            TableDef {
                columns: vec![
                    name_column(),
                    Column {
                        name: "Role",
                        kind: "string",
                        format: "",
                        description: "The role the binding grants",
                        priority: 0,
                    },
                    age_column(),
                ],
                row: Arc::new(|o| vec![json!(name_of(o)), role_ref_column(o), json!(age_of(o))]),
            }
        } else {
            TableDef {
                columns: vec![
                    name_column(),
                    Column {
                        name: "Created At",
                        kind: "string",
                        format: "date",
                        description: "When the role was created",
                        priority: 0,
                    },
                ],
                row: Arc::new(|o| vec![json!(name_of(o)), json!(creation_timestamp(o))]),
            }
        }
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        match self.kind {
            Kind::Role => validate_rules(&rules_of(obj), true, &mut errors),
            Kind::ClusterRole => validate_rules(&rules_of(obj), false, &mut errors),
            Kind::RoleBinding => validate_binding(obj, false, &mut errors),
            Kind::ClusterRoleBinding => validate_binding(obj, true, &mut errors),
        }
        if self.kind.is_binding()
            && let Some(old) = old
            && role_ref_of(old) != role_ref_of(obj)
        {
            errors.push(FieldError::invalid(
                "roleRef",
                role_ref_column(obj).as_str().unwrap_or_default(),
                "cannot change roleRef",
            ));
        }
        errors
    }
}

/// The escalation check of an RBAC resource's writes; a write returns once the
/// authorizer has seen it.
pub struct EscalationCheck {
    kind: Kind,
    gr: moor_apimachinery::resource::GroupResource,
    store: Arc<dyn Store>,
    policy: Arc<Policy>,
}

/// The RBAC objects' meaning, for the escalation check: a role's rules and whether it
/// aggregates, or a binding's role reference.
fn grants(obj: &Value) -> (Vec<PolicyRule>, bool, Option<RoleRef>) {
    (
        rules_of(obj),
        obj.get("aggregationRule").is_some_and(|a| !a.is_null()),
        role_ref_of(obj),
    )
}

impl EscalationCheck {
    /// kube's `policybased` storages: may `user` write `new` (replacing `old`)?
    fn check(
        &self,
        user: Option<&UserInfo>,
        ns: Option<&str>,
        new: &Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let (rules, aggregated, role_ref) = grants(new);
        if let Some(old) = old {
            let before = grants(old);
            // An update that grants nothing new (labels, annotations, owners) is not
            // an escalation.
            if before.0 == rules
                && before.1 == aggregated
                && before.2 == role_ref
                && subjects_of(old) == subjects_of(new)
            {
                return Ok(());
            }
        }
        let anonymous = UserInfo::anonymous();
        let user = user.unwrap_or(&anonymous);
        let snapshot = self.policy.snapshot();
        let namespace = ns.unwrap_or_default();
        let name = name_of(new);
        let result = match self.kind {
            Kind::Role | Kind::ClusterRole => {
                let was_aggregated = old.is_some_and(|o| grants(o).1);
                authorize_role_write(
                    &snapshot,
                    user,
                    &RoleTarget { namespace, name },
                    &rules,
                    aggregated || was_aggregated,
                )
            }
            Kind::RoleBinding | Kind::ClusterRoleBinding => match &role_ref {
                Some(r) => authorize_binding_write(&snapshot, user, namespace, r),
                None => Ok(()),
            },
        };
        result.map_err(|e| ApiError::ForbiddenOn {
            gr: self.gr.clone(),
            name: name.to_owned(),
            message: e.to_string(),
        })
    }
}

#[async_trait]
impl WriteAdmission for EscalationCheck {
    fn admit(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        _subresource: Option<&str>,
        new: &Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        self.check(ctx.user.as_ref(), ns, new, old)
    }
    async fn after_write(
        &self,
        _ctx: &RequestContext,
        written: &Value,
        _created: bool,
    ) -> Result<(), ApiError> {
        let rv = written
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|rv| rv.parse().ok());
        if let Some(rv) = rv {
            self.policy.wait_for(rv).await;
        }
        Ok(())
    }
    async fn after_delete(&self, _gone: &Value) {
        if let Ok(rev) = self.store.current_revision().await {
            self.policy.wait_for(rev).await;
        }
    }
}

/// The four RBAC resources over `store`, checked against and feeding `policy`.
pub fn all(
    store: Arc<dyn Store>,
    serving: &ServingConfig,
    policy: Arc<Policy>,
) -> Vec<Arc<dyn RestStorage>> {
    [
        Kind::Role,
        Kind::ClusterRole,
        Kind::RoleBinding,
        Kind::ClusterRoleBinding,
    ]
    .into_iter()
    .map(|kind| {
        let strategy = Arc::new(RbacStrategy {
            kind,
            def: kind.def(),
        });
        let check = EscalationCheck {
            kind,
            gr: strategy.def.group_resource(),
            store: store.clone(),
            policy: policy.clone(),
        };
        Admitted::wrap(
            Arc::new(StoredResource::new(
                store.clone(),
                strategy,
                serving.clone(),
            )),
            check,
        )
    })
    .collect()
}
