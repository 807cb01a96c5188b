//! Properties of the decision core over small random policies: `Covers` is
//! reflexive, monotone and sound against `RuleAllows`; breaking a rule down keeps
//! its meaning; and the indexed evaluator decides exactly as a plain transcription
//! of kube's `VisitRulesFor` scan over every binding.

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

use super::attributes::service_account_username;
use super::escalation::{breakdown_rule, covers};
use super::rules::rule_allows;
use super::*;

const VERBS: &[&str] = &["get", "list", "update", "*"];
const GROUPS: &[&str] = &["", "apps", "*"];
const RESOURCES: &[&str] = &["pods", "pods/status", "*/status", "deployments", "*"];
const NAMES: &[&str] = &["a", "b"];
const URLS: &[&str] = &["/metrics", "/apis/*", "/apis/x", "*"];

fn strings(pool: &'static [&'static str], min: usize) -> impl Strategy<Value = Vec<String>> {
    subsequence(pool, min..=pool.len()).prop_map(|v| v.into_iter().map(str::to_owned).collect())
}

fn opt_strings(pool: &'static [&'static str]) -> impl Strategy<Value = Option<Vec<String>>> {
    prop::option::of(strings(pool, 0))
}

/// Rules kube's validation accepts: resource rules (groups and resources, maybe
/// names) or non-resource rules (URLs only; kube also accepts `resourceNames` there,
/// which `Covers` then never covers: see the unit test on that).
fn rule() -> impl Strategy<Value = PolicyRule> {
    let resource = (
        strings(VERBS, 1),
        strings(GROUPS, 1),
        strings(RESOURCES, 1),
        opt_strings(NAMES),
    )
        .prop_map(|(verbs, groups, resources, resource_names)| PolicyRule {
            verbs,
            api_groups: Some(groups),
            resources: Some(resources),
            resource_names,
            non_resource_urls: None,
        });
    let url = (strings(VERBS, 1), strings(URLS, 1)).prop_map(|(verbs, urls)| PolicyRule {
        verbs,
        non_resource_urls: Some(urls),
        ..PolicyRule::default()
    });
    prop_oneof![3 => resource, 1 => url]
}

fn rules() -> impl Strategy<Value = Vec<PolicyRule>> {
    prop::collection::vec(rule(), 0..4)
}

fn request(user: UserInfo) -> impl Strategy<Value = Attributes> {
    let resource = (
        select(&["get", "list", "update"][..]),
        select(&["", "apps"][..]),
        select(&["pods", "deployments"][..]),
        select(&["", "status", "log"][..]),
        select(&["", "ns1", "ns2"][..]),
        select(&["", "a", "b"][..]),
    )
        .prop_map({
            let user = user.clone();
            move |(verb, group, resource, sub, ns, name)| {
                Attributes::resource(
                    user.clone(),
                    verb,
                    ResourceAttributes::new(group, resource)
                        .subresource(sub)
                        .namespace(ns)
                        .name(name),
                )
            }
        });
    let non_resource = (
        select(&["get", "list"][..]),
        select(&["/metrics", "/apis/x", "/apis", "/other"][..]),
    )
        .prop_map(move |(verb, path)| Attributes::non_resource(user.clone(), verb, path));
    prop_oneof![3 => resource, 1 => non_resource]
}

fn any_user() -> impl Strategy<Value = UserInfo> {
    (
        select(
            &[
                "u1",
                "u2",
                "system:serviceaccount:ns1:sa",
                "system:serviceaccount:ns2:sa",
            ][..],
        ),
        subsequence(&["g1", "g2", "system:serviceaccounts:ns1"][..], 0..=3),
    )
        .prop_map(|(name, groups)| UserInfo::new(name, groups))
}

proptest! {
    #[test]
    fn covers_is_reflexive(rs in rules()) {
        prop_assert!(covers(&rs, &rs).0);
    }

    #[test]
    fn a_role_covers_any_subset_of_its_rules(rs in rules(), keep in prop::collection::vec(any::<bool>(), 4)) {
        let subset: Vec<PolicyRule> = rs.iter().zip(&keep).filter(|(_, k)| **k).map(|(r, _)| r.clone()).collect();
        prop_assert!(covers(&rs, &subset).0);
    }

    #[test]
    fn breakdown_keeps_a_rules_meaning(r in rule(), a in any_user().prop_flat_map(request)) {
        let parts = breakdown_rule(&r);
        prop_assert_eq!(rule_allows(&a, &r), parts.iter().any(|p| rule_allows(&a, p)));
    }

    #[test]
    fn covered_rules_allow_nothing_the_owner_does_not(
        owner in rules(),
        servant in rules(),
        requests in prop::collection::vec(any_user().prop_flat_map(request), 1..16),
    ) {
        if covers(&owner, &servant).0 {
            for a in &requests {
                if servant.iter().any(|r| rule_allows(a, r)) {
                    prop_assert!(owner.iter().any(|r| rule_allows(a, r)), "{:?}", a);
                }
            }
        }
    }

    #[test]
    fn indexed_decisions_equal_kubes_linear_scan(
        world in world(),
        requests in prop::collection::vec(any_user().prop_flat_map(request), 1..16),
    ) {
        let (roles, cluster_roles, role_bindings, cluster_bindings) = &world;
        let snapshot = PolicySnapshot::new(roles, cluster_roles, role_bindings, cluster_bindings);
        for a in &requests {
            prop_assert_eq!(snapshot.authorize(a), reference_authorize(&world, a));
        }
    }
}

type World = (
    Vec<Role>,
    Vec<ClusterRole>,
    Vec<RoleBinding>,
    Vec<ClusterRoleBinding>,
);

fn meta(ns: Option<&str>, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: ns.map(Into::into),
        ..ObjectMeta::default()
    }
}

fn subject() -> impl Strategy<Value = Subject> {
    (
        select(&["User", "Group", "ServiceAccount", "Robot"][..]),
        select(
            &[
                "u1",
                "u2",
                "g1",
                "g2",
                "sa",
                "system:serviceaccounts:ns1",
                "system:serviceaccount:ns1:sa",
            ][..],
        ),
        select(&["", "ns1", "ns2"][..]),
    )
        .prop_map(|(kind, name, ns)| Subject {
            api_group: None,
            kind: kind.into(),
            name: name.into(),
            namespace: (!ns.is_empty()).then(|| ns.to_owned()),
        })
}

fn role_ref() -> impl Strategy<Value = RoleRef> {
    (
        select(&["Role", "ClusterRole", "Other"][..]),
        select(&["r0", "r1", "r2"][..]),
    )
        .prop_map(|(kind, name)| RoleRef {
            api_group: Some(RBAC_GROUP.into()),
            kind: kind.into(),
            name: name.into(),
        })
}

fn world() -> impl Strategy<Value = World> {
    let roles = prop::collection::vec(
        (
            select(&["ns1", "ns2"][..]),
            select(&["r0", "r1"][..]),
            rules(),
        ),
        0..4,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(ns, n, rules)| Role {
                metadata: meta(Some(ns), n),
                rules: Some(rules),
            })
            .collect()
    });
    let cluster_roles =
        prop::collection::vec((select(&["r0", "r1"][..]), rules()), 0..3).prop_map(|v| {
            v.into_iter()
                .map(|(n, rules)| ClusterRole {
                    metadata: meta(None, n),
                    rules: Some(rules),
                    aggregation_rule: None,
                })
                .collect()
        });
    let subjects = || prop::collection::vec(subject(), 0..4);
    let role_bindings =
        prop::collection::vec((select(&["ns1", "ns2"][..]), role_ref(), subjects()), 0..6)
            .prop_map(|v| {
                v.into_iter()
                    .enumerate()
                    .map(|(i, (ns, role_ref, subjects))| RoleBinding {
                        metadata: meta(Some(ns), &format!("rb{i}")),
                        role_ref,
                        subjects: Some(subjects),
                    })
                    .collect()
            });
    let cluster_bindings = prop::collection::vec((role_ref(), subjects()), 0..4).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (role_ref, subjects))| ClusterRoleBinding {
                metadata: meta(None, &format!("crb{i}")),
                role_ref,
                subjects: Some(subjects),
            })
            .collect()
    });
    (roles, cluster_roles, role_bindings, cluster_bindings)
}

/// kube's `appliesToUser`, transcribed.
fn applies(user: &UserInfo, s: &Subject, namespace: &str) -> bool {
    match s.kind.as_str() {
        "User" => user.name == s.name,
        "Group" => user.groups.contains(&s.name),
        "ServiceAccount" => {
            let ns = s
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(namespace);
            !ns.is_empty() && user.name == service_account_username(ns, &s.name)
        }
        _ => false,
    }
}

/// kube's `Authorize` over `VisitRulesFor`, scanning every binding; the reason
/// strings written out independently of the snapshot's `Display`.
fn reference_authorize(
    (roles, cluster_roles, role_bindings, cluster_bindings): &World,
    a: &Attributes,
) -> Decision {
    let find_rules = |kind: &str, name: &str, ns: &str| -> Result<Vec<PolicyRule>, String> {
        match kind {
            // The last object of a name wins, as the snapshot's map insertion.
            "ClusterRole" => cluster_roles
                .iter()
                .rev()
                .find(|r| r.metadata.name.as_deref() == Some(name))
                .map(|r| r.rules.clone().unwrap_or_default())
                .ok_or(format!(
                    "clusterrole.rbac.authorization.k8s.io \"{name}\" not found"
                )),
            "Role" => roles
                .iter()
                .rev()
                .find(|r| {
                    r.metadata.name.as_deref() == Some(name)
                        && r.metadata.namespace.as_deref() == Some(ns)
                })
                .map(|r| r.rules.clone().unwrap_or_default())
                .ok_or(format!(
                    "role.rbac.authorization.k8s.io \"{name}\" not found"
                )),
            other => Err(format!("unsupported role reference kind: \"{other}\"")),
        }
    };
    let describe = |s: &Subject, ns: &str| match s.kind.as_str() {
        "ServiceAccount" => format!(
            "ServiceAccount \"{}/{}\"",
            s.name,
            s.namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(ns)
        ),
        k => format!("{k} \"{}\"", s.name),
    };
    let mut errors = Vec::new();
    for b in cluster_bindings {
        let Some(s) = b
            .subjects
            .iter()
            .flatten()
            .find(|s| applies(&a.user, s, ""))
        else {
            continue;
        };
        match find_rules(&b.role_ref.kind, &b.role_ref.name, "") {
            Err(e) => errors.push(e),
            Ok(rules) => {
                if rules.iter().any(|r| rule_allows(a, r)) {
                    let name = b.metadata.name.clone().unwrap_or_default();
                    return Decision::Allow {
                        reason: format!(
                            "RBAC: allowed by ClusterRoleBinding \"{name}\" of {} \"{}\" to {}",
                            b.role_ref.kind,
                            b.role_ref.name,
                            describe(s, "")
                        ),
                    };
                }
            }
        }
    }
    let ns = a.namespace();
    if !ns.is_empty() {
        for b in role_bindings
            .iter()
            .filter(|b| b.metadata.namespace.as_deref() == Some(ns))
        {
            let Some(s) = b
                .subjects
                .iter()
                .flatten()
                .find(|s| applies(&a.user, s, ns))
            else {
                continue;
            };
            match find_rules(&b.role_ref.kind, &b.role_ref.name, ns) {
                Err(e) => errors.push(e),
                Ok(rules) => {
                    if rules.iter().any(|r| rule_allows(a, r)) {
                        let name = b.metadata.name.clone().unwrap_or_default();
                        return Decision::Allow {
                            reason: format!(
                                "RBAC: allowed by RoleBinding \"{name}/{ns}\" of {} \"{}\" to {}",
                                b.role_ref.kind,
                                b.role_ref.name,
                                describe(s, ns)
                            ),
                        };
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Decision::NoOpinion {
            reason: String::new(),
        }
    } else {
        Decision::NoOpinion {
            reason: format!("RBAC: [{}]", errors.join(", ")),
        }
    }
}
