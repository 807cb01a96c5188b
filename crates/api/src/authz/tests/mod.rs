//! Kubernetes' RBAC behaviours, one test each, named after the rule they check, and
//! a table over the bootstrap policy; this file holds the fixtures they share.

mod bootstrap;
mod escalation;
mod evaluator;
mod registry;
mod rules;

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};

use super::rules::RuleBuilder;
use super::*;

fn meta(ns: Option<&str>, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: ns.map(Into::into),
        ..ObjectMeta::default()
    }
}

fn cr(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: meta(None, name),
        rules: Some(rules),
        aggregation_rule: None,
    }
}

fn role(ns: &str, name: &str, rules: Vec<PolicyRule>) -> Role {
    Role {
        metadata: meta(Some(ns), name),
        rules: Some(rules),
    }
}

fn rref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: Some(RBAC_GROUP.into()),
        kind: kind.into(),
        name: name.into(),
    }
}

fn subj(kind: &str, name: &str, ns: Option<&str>) -> Subject {
    Subject {
        api_group: (kind != "ServiceAccount").then(|| RBAC_GROUP.to_owned()),
        kind: kind.into(),
        name: name.into(),
        namespace: ns.map(Into::into),
    }
}

fn crb(name: &str, role: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(None, name),
        role_ref: rref("ClusterRole", role),
        subjects: Some(subjects),
    }
}

fn rb(ns: &str, name: &str, role_ref: RoleRef, subjects: Vec<Subject>) -> RoleBinding {
    RoleBinding {
        metadata: meta(Some(ns), name),
        role_ref,
        subjects: Some(subjects),
    }
}

fn r(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
    RuleBuilder::verbs(verbs)
        .groups(groups)
        .resources(resources)
        .rule()
}

fn user(name: &str) -> UserInfo {
    UserInfo::new(name, [names::AUTHENTICATED])
}

fn res(group: &str, resource: &str) -> ResourceAttributes {
    ResourceAttributes::new(group, resource)
}

fn can(s: &PolicySnapshot, u: &UserInfo, verb: &str, ra: ResourceAttributes) -> bool {
    s.authorize(&Attributes::resource(u.clone(), verb, ra))
        .is_allowed()
}
