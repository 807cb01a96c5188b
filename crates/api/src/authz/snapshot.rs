//! The RBAC evaluator over one snapshot of Roles, ClusterRoles, RoleBindings and
//! ClusterRoleBindings (kube's `DefaultRuleResolver` and `RBACAuthorizer`).
//!
//! Building a [`PolicySnapshot`] indexes every binding by the subjects it names: user
//! names (ServiceAccount subjects under their `system:serviceaccount:NS:NAME` user
//! name) and group names, cluster-wide and per namespace. A decision then visits only
//! the bindings of the asking user's name and groups, in the order kube visits them
//! (ClusterRoleBindings, then the RoleBindings of the request's namespace, each in
//! the order given), so the binding a reason names is the one kube would name.
//! Bindings to missing roles grant nothing; their errors become the reason of a
//! `NoOpinion`, as kube's.

use std::collections::HashMap;
use std::fmt;

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};

use super::attributes::{Attributes, Decision, UserInfo, service_account_username};
use super::names::SYSTEM_MASTERS;
use super::rules::rule_allows;

/// A role reference that resolves to no rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolutionError {
    /// The ClusterRole does not exist.
    #[error("clusterrole.rbac.authorization.k8s.io \"{0}\" not found")]
    ClusterRoleNotFound(String),
    /// The Role does not exist in the binding's namespace.
    #[error("role.rbac.authorization.k8s.io \"{name}\" not found")]
    RoleNotFound {
        /// The binding's namespace.
        namespace: String,
        /// The role's name.
        name: String,
    },
    /// `roleRef.kind` is neither `Role` nor `ClusterRole`.
    #[error("unsupported role reference kind: \"{0}\"")]
    UnsupportedKind(String),
}

/// One binding as the evaluator keeps it.
#[derive(Clone, Debug)]
struct Binding {
    name: String,
    /// `""` for ClusterRoleBindings.
    namespace: String,
    role_kind: String,
    role_name: String,
    subjects: Vec<Subject>,
}

/// (binding position, subject position) pairs.
type Hits = Vec<(u32, u32)>;

/// Bindings by the user names and group names their subjects name.
#[derive(Clone, Debug, Default)]
struct SubjectIndex {
    users: HashMap<String, Hits>,
    groups: HashMap<String, Hits>,
}

impl SubjectIndex {
    /// Index the subjects of binding `pos`; `namespace` is the binding's (`""` for
    /// cluster bindings), which ServiceAccount subjects without one default to.
    fn add(&mut self, pos: u32, subjects: &[Subject], namespace: &str) {
        for (i, s) in subjects.iter().enumerate() {
            let hit = (pos, u32::try_from(i).unwrap_or(u32::MAX));
            match s.kind.as_str() {
                "User" => self.users.entry(s.name.clone()).or_default().push(hit),
                "Group" => self.groups.entry(s.name.clone()).or_default().push(hit),
                "ServiceAccount" => {
                    let ns = s
                        .namespace
                        .as_deref()
                        .filter(|n| !n.is_empty())
                        .unwrap_or(namespace);
                    if !ns.is_empty() {
                        let user = service_account_username(ns, &s.name);
                        self.users.entry(user).or_default().push(hit);
                    }
                }
                _ => {}
            }
        }
    }

    /// The bindings that apply to `user`, in binding order, each with the first
    /// subject that applies (kube's `appliesTo`).
    fn lookup(&self, user: &UserInfo) -> Hits {
        let mut hits: Hits = Vec::new();
        if let Some(h) = self.users.get(&user.name) {
            hits.extend_from_slice(h);
        }
        for g in &user.groups {
            if let Some(h) = self.groups.get(g) {
                hits.extend_from_slice(h);
            }
        }
        hits.sort_unstable();
        hits.dedup_by_key(|h| h.0);
        hits
    }
}

/// The RBAC objects of one moment, indexed for decisions. Cheap to build (one pass
/// over the objects) and immutable: rebuild it when any RBAC object changes.
#[derive(Clone, Debug, Default)]
pub struct PolicySnapshot {
    cluster_roles: HashMap<String, Vec<PolicyRule>>,
    /// namespace -> name -> rules.
    roles: HashMap<String, HashMap<String, Vec<PolicyRule>>>,
    cluster_bindings: Vec<Binding>,
    role_bindings: Vec<Binding>,
    cluster_index: SubjectIndex,
    /// namespace -> index of that namespace's RoleBindings.
    namespace_index: HashMap<String, SubjectIndex>,
}

fn binding(
    name: &Option<String>,
    namespace: &str,
    role_ref: &RoleRef,
    subjects: &Option<Vec<Subject>>,
) -> Binding {
    Binding {
        name: name.clone().unwrap_or_default(),
        namespace: namespace.to_owned(),
        role_kind: role_ref.kind.clone(),
        role_name: role_ref.name.clone(),
        subjects: subjects.clone().unwrap_or_default(),
    }
}

impl PolicySnapshot {
    /// Index the given objects. ClusterRoles with an `aggregationRule` should carry
    /// their aggregated rules already (see [`super::aggregate_cluster_roles`]).
    pub fn new(
        roles: &[Role],
        cluster_roles: &[ClusterRole],
        role_bindings: &[RoleBinding],
        cluster_role_bindings: &[ClusterRoleBinding],
    ) -> Self {
        let mut s = PolicySnapshot::default();
        for r in cluster_roles {
            let name = r.metadata.name.clone().unwrap_or_default();
            s.cluster_roles
                .insert(name, r.rules.clone().unwrap_or_default());
        }
        for r in roles {
            let ns = r.metadata.namespace.clone().unwrap_or_default();
            let name = r.metadata.name.clone().unwrap_or_default();
            s.roles
                .entry(ns)
                .or_default()
                .insert(name, r.rules.clone().unwrap_or_default());
        }
        for b in cluster_role_bindings {
            let pos = u32::try_from(s.cluster_bindings.len()).unwrap_or(u32::MAX);
            let b = binding(&b.metadata.name, "", &b.role_ref, &b.subjects);
            s.cluster_index.add(pos, &b.subjects, "");
            s.cluster_bindings.push(b);
        }
        for b in role_bindings {
            let ns = b.metadata.namespace.clone().unwrap_or_default();
            if ns.is_empty() {
                continue;
            }
            let pos = u32::try_from(s.role_bindings.len()).unwrap_or(u32::MAX);
            let b = binding(&b.metadata.name, &ns, &b.role_ref, &b.subjects);
            s.namespace_index
                .entry(ns.clone())
                .or_default()
                .add(pos, &b.subjects, &ns);
            s.role_bindings.push(b);
        }
        s
    }

    /// The rules a role reference names (kube's `GetRoleReferenceRules`):
    /// `binding_namespace` is the binding's namespace, `""` for a ClusterRoleBinding.
    pub fn role_ref_rules(
        &self,
        kind: &str,
        name: &str,
        binding_namespace: &str,
    ) -> Result<&[PolicyRule], ResolutionError> {
        match kind {
            "ClusterRole" => self
                .cluster_roles
                .get(name)
                .map(Vec::as_slice)
                .ok_or_else(|| ResolutionError::ClusterRoleNotFound(name.to_owned())),
            "Role" => self
                .roles
                .get(binding_namespace)
                .and_then(|r| r.get(name))
                .map(Vec::as_slice)
                .ok_or_else(|| ResolutionError::RoleNotFound {
                    namespace: binding_namespace.to_owned(),
                    name: name.to_owned(),
                }),
            other => Err(ResolutionError::UnsupportedKind(other.to_owned())),
        }
    }

    /// Call `visit` with each rule that applies to `user` in `namespace` (`""`: only
    /// cluster-wide bindings) and where it comes from, or with each resolution error,
    /// in kube's order, until `visit` returns false (kube's `VisitRulesFor`).
    pub fn visit_rules_for(
        &self,
        user: &UserInfo,
        namespace: &str,
        mut visit: impl FnMut(Result<(&PolicyRule, Source<'_>), ResolutionError>) -> bool,
    ) {
        let scopes: [(&[Binding], Option<&SubjectIndex>); 2] = [
            (&self.cluster_bindings, Some(&self.cluster_index)),
            (
                &self.role_bindings,
                if namespace.is_empty() {
                    None
                } else {
                    self.namespace_index.get(namespace)
                },
            ),
        ];
        for (bindings, index) in scopes {
            let Some(index) = index else { continue };
            for (pos, subject) in index.lookup(user) {
                let Some(b) = bindings.get(pos as usize) else {
                    continue;
                };
                match self.role_ref_rules(&b.role_kind, &b.role_name, &b.namespace) {
                    Err(e) => {
                        if !visit(Err(e)) {
                            return;
                        }
                    }
                    Ok(rules) => {
                        let source = Source {
                            binding: b,
                            subject: b.subjects.get(subject as usize),
                        };
                        for rule in rules {
                            if !visit(Ok((rule, source))) {
                                return;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Every rule that applies to `user` in `namespace`, and the role references that
    /// could not be resolved (kube's `RulesFor`; the rules are complete apart from
    /// those).
    pub fn rules_for(
        &self,
        user: &UserInfo,
        namespace: &str,
    ) -> (Vec<PolicyRule>, Vec<ResolutionError>) {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        self.visit_rules_for(user, namespace, |r| {
            match r {
                Ok((rule, _)) => rules.push(rule.clone()),
                Err(e) => errors.push(e),
            }
            true
        });
        (rules, errors)
    }

    /// Kube's RBAC authorizer: `Allow` naming the first binding whose role has a rule
    /// that allows the request, else `NoOpinion` (never `Deny`).
    pub fn authorize(&self, attrs: &Attributes) -> Decision {
        let mut allowed = None;
        let mut errors = Vec::new();
        self.visit_rules_for(&attrs.user, attrs.namespace(), |r| match r {
            Ok((rule, source)) => {
                if rule_allows(attrs, rule) {
                    allowed = Some(format!("RBAC: allowed by {source}"));
                    return false;
                }
                true
            }
            Err(e) => {
                errors.push(e.to_string());
                true
            }
        });
        match allowed {
            Some(reason) => Decision::Allow { reason },
            None if errors.is_empty() => Decision::NoOpinion {
                reason: String::new(),
            },
            None => Decision::NoOpinion {
                reason: format!("RBAC: [{}]", errors.join(", ")),
            },
        }
    }

    /// kube-apiserver's authorizer chain as moor runs it: members of
    /// `system:masters` are allowed everything before RBAC is asked (kube's
    /// privileged-group authorizer, so no edit of the policy can lock the admin
    /// out), then [`Self::authorize`].
    pub fn authorize_request(&self, attrs: &Attributes) -> Decision {
        if attrs.user.in_group(SYSTEM_MASTERS) {
            return Decision::Allow {
                reason: String::new(),
            };
        }
        self.authorize(attrs)
    }

    /// How many bindings the snapshot holds (cluster, namespaced).
    pub fn binding_counts(&self) -> (usize, usize) {
        (self.cluster_bindings.len(), self.role_bindings.len())
    }
}

/// Where a rule comes from: a binding and the subject of it that applied.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    binding: &'a Binding,
    subject: Option<&'a Subject>,
}

impl Source<'_> {
    /// The binding's name.
    pub fn binding_name(&self) -> &str {
        &self.binding.name
    }

    /// The binding's namespace, `""` for a ClusterRoleBinding.
    pub fn binding_namespace(&self) -> &str {
        &self.binding.namespace
    }
}

/// kube's `describeSubject`.
fn describe_subject(s: &Subject, binding_namespace: &str) -> String {
    match s.kind.as_str() {
        "ServiceAccount" => {
            let ns = s
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_namespace);
            format!("{} {:?}", s.kind, format!("{}/{}", s.name, ns))
        }
        _ => format!("{} {:?}", s.kind, s.name),
    }
}

impl fmt::Display for Source<'_> {
    /// kube's `clusterRoleBindingDescriber` and `roleBindingDescriber`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.binding;
        let subject = self
            .subject
            .map(|s| describe_subject(s, &b.namespace))
            .unwrap_or_default();
        if b.namespace.is_empty() {
            write!(
                f,
                "ClusterRoleBinding {:?} of {} {:?} to {subject}",
                b.name, b.role_kind, b.role_name
            )
        } else {
            write!(
                f,
                "RoleBinding {:?} of {} {:?} to {subject}",
                format!("{}/{}", b.name, b.namespace),
                b.role_kind,
                b.role_name
            )
        }
    }
}
