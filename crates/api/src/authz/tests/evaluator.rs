//! The evaluator (kube's `rbac.go` and `rule.go`) and ClusterRole aggregation.

use super::super::attributes::split_service_account_username;
use super::super::rules::RuleBuilder;
use super::*;

// ---- the evaluator (rbac.go, rule.go) ----

fn sample() -> PolicySnapshot {
    PolicySnapshot::new(
        &[role(
            "team-a",
            "pusher",
            vec![r(
                &["get", "update"],
                &["image.openshift.io"],
                &["imagestreams/layers"],
            )],
        )],
        &[
            cr(
                "reader",
                vec![r(
                    &["get", "list"],
                    &["image.openshift.io"],
                    &["imagestreams"],
                )],
            ),
            cr(
                "cluster-lister",
                vec![r(&["list"], &["image.openshift.io"], &["imagestreams"])],
            ),
        ],
        &[
            rb(
                "team-a",
                "alice-reads",
                rref("ClusterRole", "reader"),
                vec![subj("User", "alice", None)],
            ),
            rb(
                "team-a",
                "robots-push",
                rref("Role", "pusher"),
                vec![subj("ServiceAccount", "robot", None)],
            ),
            rb(
                "team-a",
                "devs-push",
                rref("Role", "pusher"),
                vec![subj("Group", "devs", None)],
            ),
            rb(
                "team-a",
                "dangling",
                rref("ClusterRole", "missing"),
                vec![subj("User", "carol", None)],
            ),
            rb(
                "team-a",
                "weird",
                rref("Something", "reader"),
                vec![subj("User", "dave", None)],
            ),
        ],
        &[crb(
            "listers",
            "cluster-lister",
            vec![
                subj("User", "lister", None),
                subj("Group", "auditors", None),
            ],
        )],
    )
}

#[test]
fn user_subject_matches_by_user_name_only() {
    let s = sample();
    assert!(can(
        &s,
        &user("alice"),
        "get",
        res("image.openshift.io", "imagestreams").namespace("team-a")
    ));
    assert!(!can(
        &s,
        &user("bob"),
        "get",
        res("image.openshift.io", "imagestreams").namespace("team-a")
    ));
}

#[test]
fn group_subject_matches_members() {
    let s = sample();
    let dev = UserInfo::new("zed", ["devs"]);
    assert!(can(
        &s,
        &dev,
        "update",
        res("image.openshift.io", "imagestreams")
            .subresource("layers")
            .namespace("team-a")
            .name("x")
    ));
}

#[test]
fn rolebinding_grants_only_in_its_namespace() {
    let s = sample();
    assert!(!can(
        &s,
        &user("alice"),
        "get",
        res("image.openshift.io", "imagestreams").namespace("team-b")
    ));
    assert!(
        !can(
            &s,
            &user("alice"),
            "list",
            res("image.openshift.io", "imagestreams")
        ),
        "not cluster-wide (-A)"
    );
}

#[test]
fn clusterrolebinding_grants_in_every_namespace_and_cluster_wide() {
    let s = sample();
    let auditor = UserInfo::new("x", ["auditors"]);
    assert!(can(
        &s,
        &auditor,
        "list",
        res("image.openshift.io", "imagestreams")
    ));
    assert!(can(
        &s,
        &auditor,
        "list",
        res("image.openshift.io", "imagestreams").namespace("anything")
    ));
}

#[test]
fn service_account_subject_without_namespace_defaults_to_the_rolebindings() {
    let s = sample();
    let robot = UserInfo::service_account("team-a", "robot", "u1");
    let layers = || {
        res("image.openshift.io", "imagestreams")
            .subresource("layers")
            .namespace("team-a")
            .name("app")
    };
    assert!(can(&s, &robot, "update", layers()));
    let other = UserInfo::service_account("team-b", "robot", "u2");
    assert!(!can(&s, &other, "update", layers()));
}

#[test]
fn service_account_subject_in_clusterrolebinding_needs_a_namespace() {
    let s = PolicySnapshot::new(
        &[],
        &[cr("all", vec![r(&["*"], &["*"], &["*"])])],
        &[],
        &[
            crb("no-ns", "all", vec![subj("ServiceAccount", "robot", None)]),
            crb(
                "with-ns",
                "all",
                vec![subj("ServiceAccount", "bot", Some("ci"))],
            ),
        ],
    );
    assert!(!can(
        &s,
        &UserInfo::service_account("", "robot", ""),
        "get",
        res("", "pods")
    ));
    assert!(can(
        &s,
        &UserInfo::service_account("ci", "bot", ""),
        "get",
        res("", "pods")
    ));
}

#[test]
fn service_account_subject_matches_the_user_name_not_the_groups() {
    let s = sample();
    // Someone in the SA's groups but with another name is not that SA.
    let impostor = UserInfo::new(
        "mallory",
        ["system:serviceaccounts", "system:serviceaccounts:team-a"],
    );
    assert!(!can(
        &s,
        &impostor,
        "update",
        res("image.openshift.io", "imagestreams")
            .subresource("layers")
            .namespace("team-a")
    ));
    // A User subject spelled as the SA's user name matches it, as kube's.
    let s = PolicySnapshot::new(
        &[],
        &[cr("all", vec![r(&["*"], &["*"], &["*"])])],
        &[],
        &[crb(
            "b",
            "all",
            vec![subj("User", "system:serviceaccount:ns:sa", None)],
        )],
    );
    assert!(can(
        &s,
        &UserInfo::service_account("ns", "sa", ""),
        "get",
        res("", "pods")
    ));
}

#[test]
fn service_account_user_names_and_groups_are_kubes() {
    let sa = UserInfo::service_account("ns", "builder", "uid");
    assert_eq!(sa.name, "system:serviceaccount:ns:builder");
    assert_eq!(
        sa.groups,
        [
            "system:serviceaccounts",
            "system:serviceaccounts:ns",
            "system:authenticated"
        ]
    );
    assert_eq!(
        split_service_account_username(&sa.name),
        Some(("ns", "builder"))
    );
    assert_eq!(
        split_service_account_username("system:serviceaccount:ns"),
        None
    );
    assert_eq!(
        split_service_account_username("system:serviceaccount:ns:a:b"),
        None
    );
    assert_eq!(
        split_service_account_username("system:serviceaccount::a"),
        None
    );
}

#[test]
fn unknown_subject_kinds_match_nobody() {
    let s = PolicySnapshot::new(
        &[],
        &[cr("all", vec![r(&["*"], &["*"], &["*"])])],
        &[],
        &[crb(
            "b",
            "all",
            vec![subj("user", "alice", None), subj("Robot", "alice", None)],
        )],
    );
    assert!(!can(&s, &user("alice"), "get", res("", "pods")));
}

#[test]
fn bindings_to_missing_roles_grant_nothing_and_say_why() {
    let s = sample();
    let d = s.authorize(&Attributes::resource(
        user("carol"),
        "get",
        res("", "pods").namespace("team-a"),
    ));
    assert_eq!(
        d,
        Decision::NoOpinion {
            reason: "RBAC: [clusterrole.rbac.authorization.k8s.io \"missing\" not found]".into()
        }
    );
    let d = s.authorize(&Attributes::resource(
        user("dave"),
        "get",
        res("", "pods").namespace("team-a"),
    ));
    assert_eq!(
        d.reason(),
        "RBAC: [unsupported role reference kind: \"Something\"]"
    );
    assert!(!d.is_allowed());
}

#[test]
fn role_ref_to_role_resolves_in_the_bindings_namespace_only() {
    let s = PolicySnapshot::new(
        &[role("other", "pusher", vec![r(&["*"], &["*"], &["*"])])],
        &[],
        &[rb(
            "team-a",
            "b",
            rref("Role", "pusher"),
            vec![subj("User", "u", None)],
        )],
        &[],
    );
    let d = s.authorize(&Attributes::resource(
        user("u"),
        "get",
        res("", "pods").namespace("team-a"),
    ));
    assert_eq!(
        d.reason(),
        "RBAC: [role.rbac.authorization.k8s.io \"pusher\" not found]"
    );
}

#[test]
fn allow_reason_names_the_clusterrolebinding_role_and_subject_as_kube() {
    let s = sample();
    let d = s.authorize(&Attributes::resource(
        UserInfo::new("x", ["auditors"]),
        "list",
        res("image.openshift.io", "imagestreams"),
    ));
    assert_eq!(
        d,
        Decision::Allow {
            reason: "RBAC: allowed by ClusterRoleBinding \"listers\" of ClusterRole \"cluster-lister\" to Group \"auditors\"".into()
        }
    );
}

#[test]
fn allow_reason_names_the_rolebinding_with_namespace_and_service_account_as_name_slash_ns() {
    let s = sample();
    let d = s.authorize(&Attributes::resource(
        UserInfo::service_account("team-a", "robot", ""),
        "get",
        res("image.openshift.io", "imagestreams")
            .subresource("layers")
            .namespace("team-a"),
    ));
    assert_eq!(
        d.reason(),
        "RBAC: allowed by RoleBinding \"robots-push/team-a\" of Role \"pusher\" to ServiceAccount \"robot/team-a\""
    );
}

#[test]
fn reason_names_the_first_binding_in_kube_order_and_its_first_matching_subject() {
    let all = || vec![r(&["*"], &["*"], &["*"])];
    let s = PolicySnapshot::new(
        &[],
        &[cr("a", all()), cr("b", all())],
        &[rb(
            "ns",
            "ns-first",
            rref("ClusterRole", "a"),
            vec![subj("User", "u", None)],
        )],
        &[
            crb(
                "second",
                "b",
                vec![subj("Group", "g", None), subj("User", "u", None)],
            ),
            crb("third", "a", vec![subj("User", "u", None)]),
        ],
    );
    let d = s.authorize(&Attributes::resource(
        UserInfo::new("u", ["g"]),
        "get",
        res("", "pods").namespace("ns"),
    ));
    // Cluster bindings come before RoleBindings; the first subject that applies is named.
    assert_eq!(
        d.reason(),
        "RBAC: allowed by ClusterRoleBinding \"second\" of ClusterRole \"b\" to Group \"g\""
    );
}

#[test]
fn non_resource_requests_use_cluster_bindings_only() {
    let metrics = || vec![RuleBuilder::verbs(&["get"]).urls(&["/metrics"]).rule()];
    let s = PolicySnapshot::new(
        &[],
        &[cr("metrics", metrics())],
        &[rb(
            "ns",
            "m",
            rref("ClusterRole", "metrics"),
            vec![subj("User", "ns-user", None)],
        )],
        &[crb("m", "metrics", vec![subj("User", "scraper", None)])],
    );
    assert!(
        s.authorize(&Attributes::non_resource(
            user("scraper"),
            "get",
            "/metrics"
        ))
        .is_allowed()
    );
    assert!(
        !s.authorize(&Attributes::non_resource(
            user("ns-user"),
            "get",
            "/metrics"
        ))
        .is_allowed()
    );
}

#[test]
fn rules_for_lists_cluster_then_namespace_rules_and_errors() {
    let s = sample();
    let (rules, errors) = s.rules_for(&UserInfo::new("alice", ["auditors"]), "team-a");
    assert_eq!(
        rules,
        [
            r(&["list"], &["image.openshift.io"], &["imagestreams"]),
            r(&["get", "list"], &["image.openshift.io"], &["imagestreams"])
        ]
    );
    assert!(errors.is_empty());
    let (_, errors) = s.rules_for(&user("carol"), "team-a");
    assert_eq!(errors.len(), 1);
}

// ---- aggregation ----

fn labeled(name: &str, labels: &[(&str, &str)], rules: Vec<PolicyRule>) -> ClusterRole {
    let mut c = cr(name, rules);
    c.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
    );
    c
}

fn aggregating(name: &str, selectors: Vec<LabelSelector>) -> ClusterRole {
    ClusterRole {
        metadata: meta(None, name),
        rules: Some(vec![r(&["stale"], &[""], &["x"])]),
        aggregation_rule: Some(k8s_openapi::api::rbac::v1::AggregationRule {
            cluster_role_selectors: Some(selectors),
        }),
    }
}

fn match_labels(k: &str, v: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some([(k.to_owned(), v.to_owned())].into()),
        match_expressions: None,
    }
}

#[test]
fn aggregation_replaces_rules_with_matching_roles_rules_in_name_order_without_duplicates() {
    let a = r(&["get"], &[""], &["a"]);
    let b = r(&["get"], &[""], &["b"]);
    let mut roles = vec![
        aggregating("agg", vec![match_labels("k", "v")]),
        labeled("z-role", &[("k", "v")], vec![b.clone(), a.clone()]),
        labeled("a-role", &[("k", "v")], vec![a.clone()]),
        labeled("other", &[("k", "w")], vec![r(&["*"], &["*"], &["*"])]),
    ];
    let (changed, errors) = aggregate_cluster_roles(&mut roles);
    assert_eq!(changed, ["agg"]);
    assert!(errors.is_empty());
    assert_eq!(roles[0].rules.as_deref().unwrap(), [a, b]);
    // A second run changes nothing.
    assert!(aggregate_cluster_roles(&mut roles).0.is_empty());
}

#[test]
fn aggregation_follows_chains_and_match_expressions() {
    let v = r(&["get"], &[""], &["v"]);
    let sel = LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "In".into(),
            values: Some(vec!["view".into()]),
        }]),
    };
    let mut roles = vec![
        aggregating("top", vec![match_labels("tier", "mid")]),
        {
            let mut m = aggregating("mid", vec![sel]);
            m.metadata.labels = Some([("tier".to_owned(), "mid".to_owned())].into());
            m
        },
        labeled("leaf", &[("tier", "view")], vec![v.clone()]),
    ];
    aggregate_cluster_roles(&mut roles);
    assert_eq!(roles[0].rules.as_deref().unwrap(), std::slice::from_ref(&v));
    assert_eq!(roles[1].rules.as_deref().unwrap(), [v]);
}

#[test]
fn aggregation_with_an_invalid_selector_keeps_the_roles_rules() {
    let bad = LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "k".into(),
            operator: "Near".into(),
            values: None,
        }]),
    };
    let mut roles = vec![aggregating("agg", vec![bad])];
    let (changed, errors) = aggregate_cluster_roles(&mut roles);
    assert!(changed.is_empty());
    assert_eq!(errors.len(), 1);
    assert_eq!(
        roles[0].rules.as_deref().unwrap(),
        [r(&["stale"], &[""], &["x"])]
    );
}

#[test]
fn aggregation_terminates_on_selector_cycles() {
    let mut a = aggregating("a", vec![match_labels("to", "a")]);
    a.metadata.labels = Some([("to".to_owned(), "c".to_owned())].into());
    let mut b = aggregating("b", vec![match_labels("to", "b")]);
    b.metadata.labels = Some([("to".to_owned(), "a".to_owned())].into());
    let mut c = aggregating("c", vec![match_labels("to", "c")]);
    c.metadata.labels = Some([("to".to_owned(), "b".to_owned())].into());
    let mut roles = vec![a, b, c];
    aggregate_cluster_roles(&mut roles);
}

#[test]
fn decision_display_and_reason() {
    assert_eq!(
        Decision::NoOpinion {
            reason: String::new()
        }
        .to_string(),
        "no opinion"
    );
    assert_eq!(Decision::Deny { reason: "x".into() }.to_string(), "deny: x");
}

#[test]
fn system_masters_are_allowed_before_rbac_even_without_any_binding() {
    let empty = PolicySnapshot::default();
    let root = UserInfo::new("root", [names::SYSTEM_MASTERS]);
    let a = Attributes::resource(root, "delete", res("", "namespaces").name("x"));
    assert!(
        !empty.authorize(&a).is_allowed(),
        "RBAC alone has no opinion"
    );
    assert_eq!(
        empty.authorize_request(&a),
        Decision::Allow {
            reason: String::new()
        }
    );
    let other = Attributes::resource(user("u"), "get", res("", "pods"));
    assert!(!empty.authorize_request(&other).is_allowed());
}

#[test]
fn a_namespace_object_is_in_itself_so_a_rolebinding_can_grant_reading_it() {
    let ns = ResourceAttributes::for_object("", "namespaces", "", "team-a");
    assert_eq!(
        (ns.namespace.as_str(), ns.name.as_str()),
        ("team-a", "team-a")
    );
    let other = ResourceAttributes::for_object("apps", "deployments", "ns", "d");
    assert_eq!((other.namespace.as_str(), other.name.as_str()), ("ns", "d"));
    let s = PolicySnapshot::new(
        &[],
        &[cr("ns-reader", vec![r(&["get"], &[""], &["namespaces"])])],
        &[rb(
            "team-a",
            "b",
            rref("ClusterRole", "ns-reader"),
            vec![subj("User", "u", None)],
        )],
        &[],
    );
    assert!(can(
        &s,
        &user("u"),
        "get",
        ResourceAttributes::for_object("", "namespaces", "", "team-a")
    ));
    assert!(!can(
        &s,
        &user("u"),
        "get",
        ResourceAttributes::for_object("", "namespaces", "", "team-b")
    ));
}
