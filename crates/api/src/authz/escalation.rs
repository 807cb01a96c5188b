//! The escalation check: nobody may write a Role or ClusterRole, or bind one, that
//! grants more than they hold, unless they are in `system:masters` or are allowed the
//! `escalate` verb on the role (for role writes) or `bind` on the referenced role
//! (for binding writes). Kube's `Covers` (`component-helpers/auth/rbac/validation`),
//! `ConfirmNoEscalation` (`pkg/registry/rbac/validation/rule.go`) and the
//! `policybased` storages' decisions, as pure functions over a [`PolicySnapshot`].

use std::collections::{BTreeSet, HashMap, HashSet};

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};

use super::attributes::{Attributes, ResourceAttributes, UserInfo};
use super::names::SYSTEM_MASTERS;
use super::rules::RuleBuilder;
use super::snapshot::{PolicySnapshot, ResolutionError};
use super::{ALL, RBAC_GROUP};

/// Why a write of an RBAC object is refused.
#[derive(Debug, thiserror::Error)]
pub enum EscalationError {
    /// The writer lacks some of the permissions the object grants; the message is
    /// kube's, listing what is missing.
    #[error("{0}")]
    NotHeld(String),
    /// Only a holder of every permission may set an `aggregationRule`.
    #[error("must have cluster-admin privileges to use the aggregationRule")]
    AggregationRule,
    /// The role a binding references does not exist (kube answers 404).
    #[error(transparent)]
    RoleRef(#[from] ResolutionError),
}

fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or_default()
}

fn has(set: &[String], s: &str) -> bool {
    set.iter().any(|x| x == s)
}

fn has_all(set: &[String], wanted: &[String]) -> bool {
    if wanted.len() <= 4 {
        return wanted.iter().all(|w| has(set, w));
    }
    let set: HashSet<&str> = set.iter().map(String::as_str).collect();
    wanted.iter().all(|w| set.contains(w.as_str()))
}

/// One rule per verb, group, resource and resource name (or per verb and URL) that
/// together say what `rule` says (kube's `BreakdownRule`).
pub fn breakdown_rule(rule: &PolicyRule) -> Vec<PolicyRule> {
    let one = |s: &String| Some(vec![s.clone()]);
    let mut out = Vec::new();
    for group in list(&rule.api_groups) {
        for resource in list(&rule.resources) {
            for verb in &rule.verbs {
                let base = PolicyRule {
                    api_groups: one(group),
                    resources: one(resource),
                    verbs: vec![verb.clone()],
                    ..PolicyRule::default()
                };
                let names = list(&rule.resource_names);
                if names.is_empty() {
                    out.push(base);
                } else {
                    out.extend(names.iter().map(|n| PolicyRule {
                        resource_names: one(n),
                        ..base.clone()
                    }));
                }
            }
        }
    }
    for url in list(&rule.non_resource_urls) {
        for verb in &rule.verbs {
            out.push(PolicyRule {
                non_resource_urls: one(url),
                verbs: vec![verb.clone()],
                ..PolicyRule::default()
            });
        }
    }
    out
}

/// Owner resources cover the sub-rule's: `*`, all of them exactly, or
/// `*/subresource` for each subresource not held exactly.
fn resources_cover(owner: &[String], wanted: &[String]) -> bool {
    if has(owner, ALL) || has_all(owner, wanted) {
        return true;
    }
    wanted.iter().all(|path| {
        has(owner, path)
            || path
                .split_once('/')
                .is_some_and(|(_, sub)| has(owner, &format!("*/{sub}")))
    })
}

fn url_covers(owner: &str, path: &str) -> bool {
    owner == path || (owner.ends_with('*') && path.starts_with(owner.trim_end_matches('*')))
}

fn urls_cover(owner: &[String], wanted: &[String]) -> bool {
    wanted
        .iter()
        .all(|p| owner.iter().any(|o| url_covers(o, p)))
}

/// Whether `owner` covers `sub`, a rule of at most one verb, resource and name
/// (kube's `ruleCovers`).
fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, ALL) || has_all(&owner.verbs, &sub.verbs);
    let groups = has(list(&owner.api_groups), ALL)
        || has_all(list(&owner.api_groups), list(&sub.api_groups));
    let resources = resources_cover(list(&owner.resources), list(&sub.resources));
    let urls = urls_cover(list(&owner.non_resource_urls), list(&sub.non_resource_urls));
    let owner_names = list(&owner.resource_names);
    let sub_names = list(&sub.resource_names);
    let names =
        owner_names.is_empty() || (!sub_names.is_empty() && has_all(owner_names, sub_names));
    verbs && groups && resources && names && urls
}

/// Whether `owner` rules grant everything `servant` rules grant, and the pieces of
/// `servant` (broken down by [`breakdown_rule`]) that they do not (kube's `Covers`).
pub fn covers(owner: &[PolicyRule], servant: &[PolicyRule]) -> (bool, Vec<PolicyRule>) {
    let uncovered: Vec<PolicyRule> = servant
        .iter()
        .flat_map(breakdown_rule)
        .filter(|sub| !owner.iter().any(|o| rule_covers(o, sub)))
        .collect();
    (uncovered.is_empty(), uncovered)
}

/// Merge rules of one group and one resource (and at most one name) that differ only
/// in verbs (kube's `CompactRules`), for shorter messages.
pub fn compact_rules(rules: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    let mut simple: HashMap<(String, String, Option<String>), PolicyRule> = HashMap::new();
    let mut order = Vec::new();
    for rule in rules {
        let groups = list(&rule.api_groups);
        let resources = list(&rule.resources);
        let names = list(&rule.resource_names);
        let is_simple = names.len() <= 1
            && list(&rule.non_resource_urls).is_empty()
            && groups.len() == 1
            && resources.len() == 1;
        if !is_simple {
            out.push(rule.clone());
            continue;
        }
        let key = (
            groups[0].clone(),
            resources[0].clone(),
            names.first().cloned(),
        );
        match simple.get_mut(&key) {
            Some(existing) => existing.verbs.extend(rule.verbs.iter().cloned()),
            None => {
                order.push(key.clone());
                simple.insert(key, rule.clone());
            }
        }
    }
    out.extend(order.into_iter().filter_map(|k| simple.remove(&k)));
    out
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quoted(list: &[String]) -> String {
    let items: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(" "))
}

/// kube's `CompactString`: `{APIGroups:["g"], Resources:["r"], Verbs:["get"]}`.
pub fn compact_string(rule: &PolicyRule) -> String {
    let parts: Vec<String> = [
        ("APIGroups", list(&rule.api_groups)),
        ("Resources", list(&rule.resources)),
        ("NonResourceURLs", list(&rule.non_resource_urls)),
        ("ResourceNames", list(&rule.resource_names)),
        ("Verbs", rule.verbs.as_slice()),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| format!("{k}:{}", go_quoted(v)))
    .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Whether `user`'s rules in `namespace` cover `rules` (kube's `ConfirmNoEscalation`);
/// the error lists what is missing, as kube's.
pub fn confirm_no_escalation(
    snapshot: &PolicySnapshot,
    user: &UserInfo,
    namespace: &str,
    rules: &[PolicyRule],
) -> Result<(), EscalationError> {
    let (owner, errors) = snapshot.rules_for(user, namespace);
    let (ok, missing) = covers(&owner, rules);
    if ok {
        return Ok(());
    }
    let lines: BTreeSet<String> = compact_rules(&missing).iter().map(compact_string).collect();
    let mut msg = format!(
        "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        go_quoted(&user.groups),
        lines.into_iter().collect::<Vec<_>>().join("\n")
    );
    if !errors.is_empty() {
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        msg.push_str(&format!("; resolution errors: [{}]", errors.join(" ")));
    }
    Err(EscalationError::NotHeld(msg))
}

/// Members of `system:masters` skip every escalation check (kube's
/// `EscalationAllowed`).
pub fn escalation_allowed(user: &UserInfo) -> bool {
    user.in_group(SYSTEM_MASTERS)
}

/// Whether `user` holds `escalate` on the role being written (kube's
/// `RoleEscalationAuthorized`). `resource` is `roles` or `clusterroles`.
pub fn role_escalation_authorized(
    snapshot: &PolicySnapshot,
    user: &UserInfo,
    target: &RoleTarget<'_>,
) -> bool {
    let attrs = Attributes::resource(
        user.clone(),
        "escalate",
        ResourceAttributes::new(RBAC_GROUP, target.resource())
            .namespace(target.namespace)
            .name(target.name),
    );
    snapshot.authorize(&attrs).is_allowed()
}

/// Whether `user` holds `bind` on the role `role_ref` names, in the binding's
/// namespace (`""` for a ClusterRoleBinding) (kube's `BindingAuthorized`).
pub fn binding_authorized(
    snapshot: &PolicySnapshot,
    user: &UserInfo,
    role_ref: &RoleRef,
    binding_namespace: &str,
) -> bool {
    let resource = match role_ref.kind.as_str() {
        "ClusterRole" => "clusterroles",
        "Role" => "roles",
        _ => return false,
    };
    let attrs = Attributes::resource(
        user.clone(),
        "bind",
        ResourceAttributes::new(role_ref.api_group.clone().unwrap_or_default(), resource)
            .namespace(binding_namespace)
            .name(role_ref.name.clone()),
    );
    snapshot.authorize(&attrs).is_allowed()
}

/// The Role or ClusterRole a write is for.
#[derive(Clone, Copy, Debug)]
pub struct RoleTarget<'a> {
    /// `""` for a ClusterRole.
    pub namespace: &'a str,
    /// The role's name.
    pub name: &'a str,
}

impl RoleTarget<'_> {
    fn resource(&self) -> &'static str {
        if self.namespace.is_empty() {
            "clusterroles"
        } else {
            "roles"
        }
    }
}

/// `*` on everything: what setting an `aggregationRule` requires.
fn full_authority() -> [PolicyRule; 2] {
    [
        RuleBuilder::verbs(&[ALL])
            .groups(&[ALL])
            .resources(&[ALL])
            .rule(),
        RuleBuilder::verbs(&[ALL]).urls(&[ALL]).rule(),
    ]
}

/// May `user` create or update the role `target` so that it holds `rules`?
/// `aggregated` is whether the new object, or on update the old one, has an
/// `aggregationRule` (kube's `policybased` storages for roles and cluster roles).
/// The caller skips this for updates that change only `ownerReferences` and
/// `finalizers`, as kube does.
pub fn authorize_role_write(
    snapshot: &PolicySnapshot,
    user: &UserInfo,
    target: &RoleTarget<'_>,
    rules: &[PolicyRule],
    aggregated: bool,
) -> Result<(), EscalationError> {
    if escalation_allowed(user) || role_escalation_authorized(snapshot, user, target) {
        return Ok(());
    }
    confirm_no_escalation(snapshot, user, target.namespace, rules)?;
    if aggregated
        && confirm_no_escalation(snapshot, user, target.namespace, &full_authority()).is_err()
    {
        return Err(EscalationError::AggregationRule);
    }
    Ok(())
}

/// May `user` create or update a binding in `binding_namespace` (`""` for a
/// ClusterRoleBinding) to `role_ref`? Allowed with `bind` on the role, else only if
/// the user holds every rule of the role; a missing role is then an error (kube's
/// `policybased` binding storages). The caller skips this for updates that change
/// only `ownerReferences` and `finalizers`, as kube does.
pub fn authorize_binding_write(
    snapshot: &PolicySnapshot,
    user: &UserInfo,
    binding_namespace: &str,
    role_ref: &RoleRef,
) -> Result<(), EscalationError> {
    if escalation_allowed(user) || binding_authorized(snapshot, user, role_ref, binding_namespace) {
        return Ok(());
    }
    let rules = snapshot.role_ref_rules(&role_ref.kind, &role_ref.name, binding_namespace)?;
    confirm_no_escalation(snapshot, user, binding_namespace, rules)
}
