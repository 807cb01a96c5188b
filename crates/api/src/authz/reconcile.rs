//! Keeping stored RBAC objects in line with the bootstrap policy, as kube's
//! reconciler does at server start (`pkg/registry/rbac/reconciliation`, in its
//! additive mode): missing objects are created; existing ones gain the bootstrap
//! labels and annotations they lack (their own values win), the rules or
//! aggregation selectors they lack, and the subjects they lack; a binding whose
//! `roleRef` differs is recreated. Nothing is ever removed from an object, and an
//! object annotated `rbac.authorization.kubernetes.io/autoupdate: "false"` is never
//! changed: that is how a user keeps an edit of a bootstrap object.

use std::collections::BTreeMap;

use k8s_openapi::Metadata;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::bootstrap::{AUTOUPDATE_ANNOTATION, PolicyObjects};
use super::escalation::covers;

/// One RBAC object.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyObject {
    /// A ClusterRole.
    ClusterRole(ClusterRole),
    /// A ClusterRoleBinding.
    ClusterRoleBinding(ClusterRoleBinding),
    /// A Role.
    Role(Role),
    /// A RoleBinding.
    RoleBinding(RoleBinding),
}

/// What the server should do to bring one object in line.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Create this missing object.
    Create(PolicyObject),
    /// Update the stored object to this (it keeps the stored metadata, so the
    /// write can be conditional on its `resourceVersion`).
    Update(PolicyObject),
    /// Delete the stored binding and create this one (its `roleRef`, which cannot be
    /// updated, differs).
    Recreate(PolicyObject),
    /// The stored object (given) differs but is protected by `autoupdate: "false"`;
    /// nothing is to be done, the server may log it.
    Protected(PolicyObject),
}

fn protected(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(AUTOUPDATE_ANNOTATION))
        .is_some_and(|v| v == "false")
}

/// Expected keys added to the existing map; existing values win (kube's `merge`).
fn merge(
    expected: &Option<BTreeMap<String, String>>,
    existing: &Option<BTreeMap<String, String>>,
) -> Option<BTreeMap<String, String>> {
    if expected.as_ref().is_none_or(BTreeMap::is_empty) {
        return existing.clone();
    }
    let mut out = expected.clone().unwrap_or_default();
    out.extend(existing.clone().unwrap_or_default());
    Some(out)
}

/// Merge labels and annotations into `result`; whether that changed anything.
fn merge_meta(result: &mut ObjectMeta, expected: &ObjectMeta) -> bool {
    let annotations = merge(&expected.annotations, &result.annotations);
    let labels = merge(&expected.labels, &result.labels);
    let changed = annotations != result.annotations || labels != result.labels;
    result.annotations = annotations;
    result.labels = labels;
    changed
}

/// Rules of `expected` that `existing` lacks, broken down as kube's `Covers` reports
/// them.
fn missing_rules(
    existing: &Option<Vec<PolicyRule>>,
    expected: &Option<Vec<PolicyRule>>,
) -> Vec<PolicyRule> {
    covers(
        existing.as_deref().unwrap_or_default(),
        expected.as_deref().unwrap_or_default(),
    )
    .1
}

fn reconcile_cluster_role(existing: &ClusterRole, expected: &ClusterRole) -> Option<ClusterRole> {
    let mut result = existing.clone();
    let mut changed = merge_meta(&mut result.metadata, &expected.metadata);
    let missing = missing_rules(&existing.rules, &expected.rules);
    if !missing.is_empty() {
        result.rules.get_or_insert_with(Vec::new).extend(missing);
        changed = true;
    }
    match (&expected.aggregation_rule, &existing.aggregation_rule) {
        (None, Some(_)) => {
            result.aggregation_rule = None;
            changed = true;
        }
        (Some(want), have) => {
            let have_selectors = have
                .as_ref()
                .and_then(|h| h.cluster_role_selectors.clone())
                .unwrap_or_default();
            let missing: Vec<_> = want
                .cluster_role_selectors
                .iter()
                .flatten()
                .filter(|s| !have_selectors.contains(s))
                .cloned()
                .collect();
            if !missing.is_empty() {
                let rule = result.aggregation_rule.get_or_insert_with(Default::default);
                rule.cluster_role_selectors
                    .get_or_insert_with(Vec::new)
                    .extend(missing);
                changed = true;
            }
        }
        (None, None) => {}
    }
    changed.then_some(result)
}

fn reconcile_role(existing: &Role, expected: &Role) -> Option<Role> {
    let mut result = existing.clone();
    let mut changed = merge_meta(&mut result.metadata, &expected.metadata);
    let missing = missing_rules(&existing.rules, &expected.rules);
    if !missing.is_empty() {
        result.rules.get_or_insert_with(Vec::new).extend(missing);
        changed = true;
    }
    changed.then_some(result)
}

/// Subjects compared with an empty `apiGroup` the same as none.
fn same_subject(a: &Subject, b: &Subject) -> bool {
    a.kind == b.kind
        && a.name == b.name
        && a.namespace.as_deref().unwrap_or_default() == b.namespace.as_deref().unwrap_or_default()
        && a.api_group.as_deref().unwrap_or_default() == b.api_group.as_deref().unwrap_or_default()
}

fn same_role_ref(a: &RoleRef, b: &RoleRef) -> bool {
    a.kind == b.kind
        && a.name == b.name
        && a.api_group.as_deref().unwrap_or_default() == b.api_group.as_deref().unwrap_or_default()
}

/// Merge metadata and add missing subjects; whether that changed anything.
fn reconcile_subjects(
    meta: &mut ObjectMeta,
    subjects: &mut Option<Vec<Subject>>,
    expected_meta: &ObjectMeta,
    expected_subjects: &Option<Vec<Subject>>,
) -> bool {
    let mut changed = merge_meta(meta, expected_meta);
    let have = subjects.clone().unwrap_or_default();
    let missing: Vec<Subject> = expected_subjects
        .iter()
        .flatten()
        .filter(|s| !have.iter().any(|h| same_subject(h, s)))
        .cloned()
        .collect();
    if !missing.is_empty() {
        subjects.get_or_insert_with(Vec::new).extend(missing);
        changed = true;
    }
    changed
}

fn key<T: Metadata<Ty = ObjectMeta>>(o: &T) -> (&str, &str) {
    let m = o.metadata();
    (
        m.namespace.as_deref().unwrap_or_default(),
        m.name.as_deref().unwrap_or_default(),
    )
}

fn find<'a, T: Metadata<Ty = ObjectMeta>>(existing: &'a [T], expected: &T) -> Option<&'a T> {
    let k = key(expected);
    existing.iter().find(|e| key(*e) == k)
}

/// Decide an outcome given whether the existing object is protected.
fn outcome(
    existing_protected: bool,
    existing: PolicyObject,
    change: Option<Change>,
) -> Option<Change> {
    match change {
        Some(_) if existing_protected => Some(Change::Protected(existing)),
        other => other,
    }
}

/// The changes that bring `existing` in line with `bootstrap` (both as the server
/// holds them), in the order of `bootstrap`: ClusterRoles, ClusterRoleBindings,
/// Roles, RoleBindings. Objects of `existing` that `bootstrap` does not name are
/// left alone.
pub fn reconcile(existing: &PolicyObjects, bootstrap: &PolicyObjects) -> Vec<Change> {
    let mut changes = Vec::new();
    for want in &bootstrap.cluster_roles {
        let change = match find(&existing.cluster_roles, want) {
            None => Some(Change::Create(PolicyObject::ClusterRole(want.clone()))),
            Some(have) => outcome(
                protected(&have.metadata),
                PolicyObject::ClusterRole(have.clone()),
                reconcile_cluster_role(have, want)
                    .map(|r| Change::Update(PolicyObject::ClusterRole(r))),
            ),
        };
        changes.extend(change);
    }
    for want in &bootstrap.cluster_role_bindings {
        let change = match find(&existing.cluster_role_bindings, want) {
            None => Some(Change::Create(PolicyObject::ClusterRoleBinding(
                want.clone(),
            ))),
            Some(have) => {
                let change = if !same_role_ref(&have.role_ref, &want.role_ref) {
                    Some(Change::Recreate(PolicyObject::ClusterRoleBinding(
                        want.clone(),
                    )))
                } else {
                    let mut result = have.clone();
                    reconcile_subjects(
                        &mut result.metadata,
                        &mut result.subjects,
                        &want.metadata,
                        &want.subjects,
                    )
                    .then(|| Change::Update(PolicyObject::ClusterRoleBinding(result)))
                };
                outcome(
                    protected(&have.metadata),
                    PolicyObject::ClusterRoleBinding(have.clone()),
                    change,
                )
            }
        };
        changes.extend(change);
    }
    for want in &bootstrap.roles {
        let change = match find(&existing.roles, want) {
            None => Some(Change::Create(PolicyObject::Role(want.clone()))),
            Some(have) => outcome(
                protected(&have.metadata),
                PolicyObject::Role(have.clone()),
                reconcile_role(have, want).map(|r| Change::Update(PolicyObject::Role(r))),
            ),
        };
        changes.extend(change);
    }
    for want in &bootstrap.role_bindings {
        let change = match find(&existing.role_bindings, want) {
            None => Some(Change::Create(PolicyObject::RoleBinding(want.clone()))),
            Some(have) => {
                let change = if !same_role_ref(&have.role_ref, &want.role_ref) {
                    Some(Change::Recreate(PolicyObject::RoleBinding(want.clone())))
                } else {
                    let mut result = have.clone();
                    reconcile_subjects(
                        &mut result.metadata,
                        &mut result.subjects,
                        &want.metadata,
                        &want.subjects,
                    )
                    .then(|| Change::Update(PolicyObject::RoleBinding(result)))
                };
                outcome(
                    protected(&have.metadata),
                    PolicyObject::RoleBinding(have.clone()),
                    change,
                )
            }
        };
        changes.extend(change);
    }
    changes
}
