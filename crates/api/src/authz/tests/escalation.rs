//! The escalation check: `Covers`, `ConfirmNoEscalation`, `bind` and `escalate`.

use super::super::escalation::{self, EscalationError, RoleTarget};
use super::super::rules::RuleBuilder;
use super::*;

// ---- escalation ----

#[test]
fn covers_breaks_rules_down_and_reports_what_is_missing() {
    let owner = [r(&["get", "list"], &[""], &["pods", "secrets"])];
    assert!(escalation::covers(&owner, &[r(&["get"], &[""], &["pods"])]).0);
    let (ok, missing) = escalation::covers(&owner, &[r(&["get", "delete"], &[""], &["pods"])]);
    assert!(!ok);
    assert_eq!(missing, [r(&["delete"], &[""], &["pods"])]);
}

#[test]
fn covers_star_subresource_and_resource_names_as_kube() {
    let owner = [r(&["get"], &["*"], &["*/status"])];
    assert!(escalation::covers(&owner, &[r(&["get"], &["apps"], &["deployments/status"])]).0);
    assert!(!escalation::covers(&owner, &[r(&["get"], &["apps"], &["deployments"])]).0);
    let named = [RuleBuilder::verbs(&["get"])
        .groups(&[""])
        .resources(&["secrets"])
        .names(&["a", "b"])
        .rule()];
    let want_a = RuleBuilder::verbs(&["get"])
        .groups(&[""])
        .resources(&["secrets"])
        .names(&["a"])
        .rule();
    assert!(escalation::covers(&named, &[want_a]).0);
    assert!(
        !escalation::covers(&named, &[r(&["get"], &[""], &["secrets"])]).0,
        "names do not cover all names"
    );
    let urls = [RuleBuilder::verbs(&["get"]).urls(&["/apis/*"]).rule()];
    assert!(
        escalation::covers(
            &urls,
            &[RuleBuilder::verbs(&["get"]).urls(&["/apis/x"]).rule()]
        )
        .0
    );
    assert!(
        !escalation::covers(
            &urls,
            &[RuleBuilder::verbs(&["get"]).urls(&["/api"]).rule()]
        )
        .0
    );
}

#[test]
fn covers_never_covers_url_rules_with_resource_names_as_kube() {
    // kube's validation accepts resourceNames on a non-resource rule, and Covers then
    // breaks the URL part down without the names, which a named owner rule never
    // covers: not even the same rule.
    let odd = RuleBuilder::verbs(&["get"])
        .urls(&["/metrics"])
        .names(&["x"])
        .rule();
    assert!(!escalation::covers(std::slice::from_ref(&odd), std::slice::from_ref(&odd)).0);
}

fn escalation_world() -> PolicySnapshot {
    PolicySnapshot::new(
        &[],
        &[
            cr("viewer", vec![r(&["get", "list"], &[""], &["pods"])]),
            cr("admin-ish", vec![r(&["*"], &[""], &["pods", "secrets"])]),
            cr(
                "binder",
                vec![
                    RuleBuilder::verbs(&["bind"])
                        .groups(&[RBAC_GROUP])
                        .resources(&["clusterroles"])
                        .names(&["admin-ish"])
                        .rule(),
                ],
            ),
            cr(
                "escalator",
                vec![r(&["escalate"], &[RBAC_GROUP], &["roles"])],
            ),
        ],
        &[
            rb(
                "ns",
                "view",
                rref("ClusterRole", "viewer"),
                vec![subj("User", "viewer", None)],
            ),
            rb(
                "ns",
                "bind",
                rref("ClusterRole", "binder"),
                vec![subj("User", "binder", None)],
            ),
            rb(
                "ns",
                "esc",
                rref("ClusterRole", "escalator"),
                vec![subj("User", "escalator", None)],
            ),
        ],
        &[],
    )
}

#[test]
fn confirm_no_escalation_refuses_rules_not_held_with_kubes_message() {
    let s = escalation_world();
    let u = UserInfo::new("viewer", ["system:authenticated"]);
    assert!(
        escalation::confirm_no_escalation(&s, &u, "ns", &[r(&["get"], &[""], &["pods"])]).is_ok()
    );
    let err = escalation::confirm_no_escalation(
        &s,
        &u,
        "ns",
        &[r(&["get", "delete"], &[""], &["pods", "secrets"])],
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "user \"viewer\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n\
         {APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}\n\
         {APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"delete\"]}"
    );
    // Held in one namespace is not held in another.
    assert!(
        escalation::confirm_no_escalation(&s, &u, "other", &[r(&["get"], &[""], &["pods"])])
            .is_err()
    );
}

#[test]
fn self_escalation_through_a_rolebinding_is_refused() {
    // Harbor CVE-2019-16097's shape: a user who may write RoleBindings binds
    // themselves to a stronger role.
    let s = escalation_world();
    let viewer = user("viewer");
    let err =
        escalation::authorize_binding_write(&s, &viewer, "ns", &rref("ClusterRole", "admin-ish"))
            .unwrap_err();
    assert!(matches!(err, EscalationError::NotHeld(_)));
    // Binding a role whose rules they hold is fine.
    assert!(
        escalation::authorize_binding_write(&s, &viewer, "ns", &rref("ClusterRole", "viewer"))
            .is_ok()
    );
}

#[test]
fn bind_verb_on_the_role_allows_binding_it_without_holding_it() {
    let s = escalation_world();
    let binder = user("binder");
    assert!(
        escalation::authorize_binding_write(&s, &binder, "ns", &rref("ClusterRole", "admin-ish"))
            .is_ok()
    );
    // Only that role (resourceNames), only in that namespace.
    assert!(
        escalation::authorize_binding_write(
            &s,
            &binder,
            "other",
            &rref("ClusterRole", "admin-ish")
        )
        .is_err()
    );
    assert!(
        escalation::authorize_binding_write(&s, &binder, "ns", &rref("ClusterRole", "escalator"))
            .is_err()
    );
}

#[test]
fn binding_a_missing_role_without_bind_is_an_error_but_system_masters_may() {
    let s = escalation_world();
    let err = escalation::authorize_binding_write(
        &s,
        &user("viewer"),
        "ns",
        &rref("ClusterRole", "nope"),
    )
    .unwrap_err();
    assert!(matches!(err, EscalationError::RoleRef(_)));
    let root = UserInfo::new("root", [names::SYSTEM_MASTERS]);
    assert!(
        escalation::authorize_binding_write(&s, &root, "ns", &rref("ClusterRole", "nope")).is_ok()
    );
}

#[test]
fn escalate_verb_allows_writing_roles_with_rules_not_held() {
    let s = escalation_world();
    let target = RoleTarget {
        namespace: "ns",
        name: "r",
    };
    let strong = [r(&["*"], &["*"], &["*"])];
    assert!(
        escalation::authorize_role_write(&s, &user("escalator"), &target, &strong, false).is_ok()
    );
    assert!(
        escalation::authorize_role_write(&s, &user("viewer"), &target, &strong, false).is_err()
    );
    assert!(
        escalation::authorize_role_write(
            &s,
            &user("viewer"),
            &target,
            &[r(&["get"], &[""], &["pods"])],
            false
        )
        .is_ok()
    );
    // escalate on roles is not escalate on clusterroles.
    let cluster = RoleTarget {
        namespace: "",
        name: "r",
    };
    assert!(
        escalation::authorize_role_write(&s, &user("escalator"), &cluster, &strong, false).is_err()
    );
}

#[test]
fn aggregation_rule_needs_full_authority() {
    // Every resource verb but escalate, and no non-resource URLs.
    let s = PolicySnapshot::new(
        &[],
        &[cr(
            "almost",
            vec![r(
                &[
                    "get", "list", "watch", "create", "update", "patch", "delete",
                ],
                &["*"],
                &["*"],
            )],
        )],
        &[],
        &[crb("b", "almost", vec![subj("User", "almost", None)])],
    );
    let target = RoleTarget {
        namespace: "",
        name: "agg",
    };
    let err =
        escalation::authorize_role_write(&s, &user("almost"), &target, &[], true).unwrap_err();
    assert_eq!(
        err.to_string(),
        "must have cluster-admin privileges to use the aggregationRule"
    );
    let root = UserInfo::new("root", [names::SYSTEM_MASTERS]);
    assert!(escalation::authorize_role_write(&s, &root, &target, &[], true).is_ok());
}
