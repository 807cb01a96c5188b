//! The bootstrap policy (a table of what each role may do) and its reconciliation.

use super::super::bootstrap::{self, AUTOUPDATE_ANNOTATION};
use super::super::escalation;
use super::*;

// ---- the bootstrap policy ----

#[derive(Clone, Copy)]
enum Who {
    ClusterRole(&'static str),
    Group(&'static str),
    Anonymous,
    ServiceAccount(&'static str, &'static str),
}

/// A snapshot of the bootstrap policy for namespaces `team-a` and `team-b`, plus
/// `who` bound in `team-a` through a RoleBinding to the given ClusterRole.
fn bootstrap_user(who: Who) -> (PolicySnapshot, UserInfo) {
    let mut policy = PolicyObjects::bootstrap(["team-a", "team-b"]);
    let u = match who {
        Who::ClusterRole(role) => {
            policy.role_bindings.push(rb(
                "team-a",
                "grant",
                rref("ClusterRole", role),
                vec![subj("User", "user", None)],
            ));
            user("user")
        }
        Who::Group(g) => UserInfo::new("someone", [g, names::AUTHENTICATED]),
        Who::Anonymous => UserInfo::anonymous(),
        Who::ServiceAccount(ns, name) => UserInfo::service_account(ns, name, ""),
    };
    (policy.snapshot(), u)
}

#[test]
fn bootstrap_policy_table() {
    use Who::*;
    let img = |resource: &str| res("image.openshift.io", resource);
    let layers = |ns: &str| {
        img("imagestreams")
            .subresource("layers")
            .namespace(ns)
            .name("app")
    };
    #[rustfmt::skip]
    let table: Vec<(&str, Who, &str, ResourceAttributes, bool)> = vec![
        ("edit may update imagestreams/layers in its namespace", ClusterRole("edit"), "update", layers("team-a"), true),
        ("edit may not update imagestreams/layers elsewhere", ClusterRole("edit"), "update", layers("team-b"), false),
        ("edit may create imagestreams (push a new stream)", ClusterRole("edit"), "create", img("imagestreams").namespace("team-a"), true),
        ("edit may create imagestreamimports", ClusterRole("edit"), "create", img("imagestreamimports").namespace("team-a"), true),
        ("edit may patch imagestreamtags", ClusterRole("edit"), "patch", img("imagestreamtags").namespace("team-a").name("app:1"), true),
        ("edit may read secrets", ClusterRole("edit"), "get", res("", "secrets").namespace("team-a").name("s"), true),
        ("edit may update deployments", ClusterRole("edit"), "update", res("apps", "deployments").namespace("team-a").name("d"), true),
        ("edit may create cronjobs", ClusterRole("edit"), "create", res("batch", "cronjobs").namespace("team-a"), true),
        ("edit may create serviceaccount tokens", ClusterRole("edit"), "create", res("", "serviceaccounts").subresource("token").namespace("team-a").name("sa"), true),
        ("edit may not write rolebindings", ClusterRole("edit"), "create", res(RBAC_GROUP, "rolebindings").namespace("team-a"), false),
        ("edit may not update imagestreams/status", ClusterRole("edit"), "update", img("imagestreams").subresource("status").namespace("team-a").name("app"), false),
        ("edit may not delete images (prune)", ClusterRole("edit"), "delete", img("images").name("sha256:x"), false),
        ("view may read imagestreams", ClusterRole("view"), "list", img("imagestreams").namespace("team-a"), true),
        ("view may read imagestreamtags", ClusterRole("view"), "get", img("imagestreamtags").namespace("team-a").name("app:1"), true),
        ("view may pull (registry-viewer aggregates into view)", ClusterRole("view"), "get", layers("team-a"), true),
        ("view may not push", ClusterRole("view"), "update", layers("team-a"), false),
        ("view may not read secrets", ClusterRole("view"), "get", res("", "secrets").namespace("team-a").name("s"), false),
        ("view may not read imagestreams/secrets", ClusterRole("view"), "get", img("imagestreams").subresource("secrets").namespace("team-a").name("app"), false),
        ("view may read deployments", ClusterRole("view"), "watch", res("apps", "deployments").namespace("team-a"), true),
        ("view may read scheduledimports", ClusterRole("view"), "list", res("moor.io", "scheduledimports").namespace("team-a"), true),
        ("view may read imagepolicies", ClusterRole("view"), "list", res("config.openshift.io", "imagepolicies").namespace("team-a"), true),
        ("edit may not write imagepolicies", ClusterRole("edit"), "create", res("config.openshift.io", "imagepolicies").namespace("team-a"), false),
        ("admin may write imagepolicies", ClusterRole("admin"), "update", res("config.openshift.io", "imagepolicies").namespace("team-a").name("p"), true),
        ("admin may not write clusterimagepolicies", ClusterRole("admin"), "create", res("config.openshift.io", "clusterimagepolicies"), false),
        ("view may not create imagestreamimports", ClusterRole("view"), "create", img("imagestreamimports").namespace("team-a"), false),
        ("admin may write rolebindings", ClusterRole("admin"), "create", res(RBAC_GROUP, "rolebindings").namespace("team-a"), true),
        ("admin may push", ClusterRole("admin"), "update", layers("team-a"), true),
        ("admin may read pods", ClusterRole("admin"), "get", res("", "pods").namespace("team-a").name("p"), true),
        ("admin may not write clusterrolebindings", ClusterRole("admin"), "create", res(RBAC_GROUP, "clusterrolebindings"), false),
        ("admin may not delete the namespace", ClusterRole("admin"), "delete", res("", "namespaces").name("team-a"), false),
        ("view may read its own namespace", ClusterRole("view"), "get", ResourceAttributes::for_object("", "namespaces", "", "team-a"), true),
        ("view may not read another namespace", ClusterRole("view"), "get", ResourceAttributes::for_object("", "namespaces", "", "team-b"), false),
        ("admin may not delete its own namespace", ClusterRole("admin"), "delete", ResourceAttributes::for_object("", "namespaces", "", "team-a"), false),
        ("cluster-admin via a rolebinding is admin of the namespace only", ClusterRole("cluster-admin"), "delete", res("", "secrets").namespace("team-b").name("s"), false),
        ("system:image-puller may pull", ClusterRole("system:image-puller"), "get", layers("team-a"), true),
        ("system:image-puller may not push", ClusterRole("system:image-puller"), "update", layers("team-a"), false),
        ("system:image-puller may not read the stream object", ClusterRole("system:image-puller"), "get", img("imagestreams").namespace("team-a").name("app"), false),
        ("system:image-pusher may push", ClusterRole("system:image-pusher"), "update", layers("team-a"), true),
        ("system:image-pusher may not create streams", ClusterRole("system:image-pusher"), "create", img("imagestreams").namespace("team-a"), false),
        ("system:image-builder may create streams", ClusterRole("system:image-builder"), "create", img("imagestreams").namespace("team-a"), true),
        ("registry-viewer may pull", ClusterRole("registry-viewer"), "get", layers("team-a"), true),
        ("registry-viewer may not push", ClusterRole("registry-viewer"), "update", layers("team-a"), false),
        ("registry-editor may push", ClusterRole("registry-editor"), "update", layers("team-a"), true),
        ("registry-editor may write secrets", ClusterRole("registry-editor"), "create", res("", "secrets").namespace("team-a"), true),
        ("registry-editor may not write rolebindings", ClusterRole("registry-editor"), "create", res(RBAC_GROUP, "rolebindings").namespace("team-a"), false),
        ("registry-admin may write rolebindings", ClusterRole("registry-admin"), "create", res(RBAC_GROUP, "rolebindings").namespace("team-a"), true),
        ("system:image-signer may create imagesignatures", ClusterRole("system:image-signer"), "create", img("imagesignatures").namespace("team-a"), true),
        ("system:masters may do anything anywhere", Group(names::SYSTEM_MASTERS), "delete", res("", "namespaces").name("team-b"), true),
        ("system:masters may list across namespaces", Group(names::SYSTEM_MASTERS), "list", img("imagestreams"), true),
        ("authenticated users may create selfsubjectaccessreviews", Group(names::AUTHENTICATED), "create", res("authorization.k8s.io", "selfsubjectaccessreviews"), true),
        ("authenticated users may create selfsubjectrulesreviews", Group(names::AUTHENTICATED), "create", res("authorization.k8s.io", "selfsubjectrulesreviews"), true),
        ("authenticated users may create selfsubjectreviews", Group(names::AUTHENTICATED), "create", res("authentication.k8s.io", "selfsubjectreviews"), true),
        ("authenticated users may not create subjectaccessreviews", Group(names::AUTHENTICATED), "create", res("authorization.k8s.io", "subjectaccessreviews"), false),
        ("authenticated users may not list imagestreams", Group(names::AUTHENTICATED), "list", img("imagestreams").namespace("team-a"), false),
        ("authenticated users may pull from openshift", Group(names::AUTHENTICATED), "get", layers("openshift"), true),
        ("authenticated users may read imagestreamtags in openshift", Group(names::AUTHENTICATED), "get", img("imagestreamtags").namespace("openshift").name("ruby:3"), true),
        ("authenticated users may not push to openshift", Group(names::AUTHENTICATED), "update", layers("openshift"), false),
        ("anonymous may not pull from openshift", Anonymous, "get", layers("openshift"), false),
        ("anonymous may not pull", Anonymous, "get", layers("team-a"), false),
        ("a namespace's service accounts may pull there", ServiceAccount("team-a", "default"), "get", layers("team-a"), true),
        ("a namespace's service accounts may not pull elsewhere", ServiceAccount("team-a", "default"), "get", layers("team-b"), false),
        ("a namespace's service accounts may not push", ServiceAccount("team-a", "default"), "update", layers("team-a"), false),
        ("the builder service account may push", ServiceAccount("team-a", "builder"), "update", layers("team-a"), true),
        ("the builder service account may create streams", ServiceAccount("team-a", "builder"), "create", img("imagestreams").namespace("team-a"), true),
        ("the builder service account may not push elsewhere", ServiceAccount("team-a", "builder"), "update", layers("team-b"), false),
    ];
    let mut failures = Vec::new();
    for (name, who, verb, ra, want) in table {
        let (snapshot, u) = bootstrap_user(who);
        let got = snapshot.authorize(&Attributes::resource(u, verb, ra));
        if got.is_allowed() != want {
            failures.push(format!("{name}: got {got}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn bootstrap_non_resource_urls() {
    let (s, _) = bootstrap_user(Who::Anonymous);
    let get = |u: &UserInfo, path: &str| {
        s.authorize(&Attributes::non_resource(u.clone(), "get", path))
            .is_allowed()
    };
    let authn = user("u");
    let anon = UserInfo::anonymous();
    let root = UserInfo::new("root", [names::SYSTEM_MASTERS]);
    assert!(get(&authn, "/apis/image.openshift.io/v1"), "discovery");
    assert!(get(&authn, "/openapi/v3"));
    assert!(!get(&anon, "/apis"), "anonymous discovery is not bound");
    for open in ["/healthz", "/livez", "/readyz", "/version"] {
        assert!(get(&anon, open), "{open}");
    }
    assert!(!get(&authn, "/metrics"));
    assert!(get(&root, "/metrics"));
}

#[test]
fn bootstrap_objects_carry_the_autoupdate_annotation_and_aggregated_roles_fill_in() {
    let policy = PolicyObjects::bootstrap(["ns"]);
    let metas = policy
        .cluster_roles
        .iter()
        .map(|o| &o.metadata)
        .chain(policy.cluster_role_bindings.iter().map(|o| &o.metadata))
        .chain(policy.roles.iter().map(|o| &o.metadata))
        .chain(policy.role_bindings.iter().map(|o| &o.metadata));
    for m in metas {
        assert_eq!(
            m.annotations.as_ref().unwrap()[AUTOUPDATE_ANNOTATION],
            "true",
            "{:?}",
            m.name
        );
    }
    let mut roles = policy.cluster_roles.clone();
    aggregate_cluster_roles(&mut roles);
    let rules = |name: &str| {
        roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .unwrap()
            .rules
            .clone()
            .unwrap()
    };
    // admin ⊇ edit ⊇ view, through the aggregation chain.
    assert!(escalation::covers(&rules("admin"), &rules("edit")).0);
    assert!(escalation::covers(&rules("edit"), &rules("view")).0);
    assert!(!escalation::covers(&rules("view"), &rules("edit")).0);
    // Every bootstrap role's rules are covered by cluster-admin.
    for r in &roles {
        assert!(
            escalation::covers(
                &rules("cluster-admin"),
                r.rules.as_deref().unwrap_or_default()
            )
            .0
        );
    }
}

#[test]
fn namespace_bindings_are_openshifts() {
    let b = bootstrap::namespace_role_bindings("team-a");
    assert_eq!(b[0].metadata.name.as_deref(), Some("system:image-pullers"));
    assert_eq!(b[0].role_ref.name, "system:image-puller");
    assert_eq!(
        b[0].subjects.as_ref().unwrap()[0].name,
        "system:serviceaccounts:team-a"
    );
    assert_eq!(b[1].metadata.name.as_deref(), Some("system:image-builders"));
    assert_eq!(
        b[1].subjects.as_ref().unwrap()[0],
        subj("ServiceAccount", "builder", Some("team-a"))
    );
}

// ---- reconcile ----

fn find_change<'a>(changes: &'a [Change], name: &str) -> Option<&'a Change> {
    changes.iter().find(|c| {
        let (Change::Create(o) | Change::Update(o) | Change::Recreate(o) | Change::Protected(o)) =
            c;
        let n = match o {
            PolicyObject::ClusterRole(x) => &x.metadata.name,
            PolicyObject::ClusterRoleBinding(x) => &x.metadata.name,
            PolicyObject::Role(x) => &x.metadata.name,
            PolicyObject::RoleBinding(x) => &x.metadata.name,
        };
        n.as_deref() == Some(name)
    })
}

#[test]
fn reconcile_creates_everything_on_an_empty_store_and_then_nothing() {
    let bootstrap = PolicyObjects::bootstrap(["ns"]);
    let changes = reconcile(&PolicyObjects::default(), &bootstrap);
    let n = bootstrap.cluster_roles.len()
        + bootstrap.cluster_role_bindings.len()
        + bootstrap.roles.len()
        + bootstrap.role_bindings.len();
    assert_eq!(changes.len(), n);
    assert!(changes.iter().all(|c| matches!(c, Change::Create(_))));
    assert!(reconcile(&bootstrap, &bootstrap).is_empty());
}

#[test]
fn reconcile_adds_missing_rules_and_keeps_extra_rules_and_user_labels() {
    let bootstrap = PolicyObjects::bootstrap(["ns"]);
    let mut existing = bootstrap.clone();
    let puller = existing
        .cluster_roles
        .iter_mut()
        .find(|r| r.metadata.name.as_deref() == Some("system:image-puller"))
        .unwrap();
    let extra = r(&["list"], &["image.openshift.io"], &["imagestreams"]);
    puller.rules = Some(vec![extra.clone()]);
    puller
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert("team".into(), "mine".into());
    let changes = reconcile(&existing, &bootstrap);
    assert_eq!(changes.len(), 1);
    let Some(Change::Update(PolicyObject::ClusterRole(updated))) =
        find_change(&changes, "system:image-puller")
    else {
        panic!("{changes:?}")
    };
    assert_eq!(
        updated.rules.as_deref().unwrap(),
        [
            extra,
            r(&["get"], &["image.openshift.io"], &["imagestreams/layers"])
        ]
    );
    assert_eq!(updated.metadata.labels.as_ref().unwrap()["team"], "mine");
}

#[test]
fn reconcile_never_overwrites_an_object_whose_autoupdate_is_false() {
    let bootstrap = PolicyObjects::bootstrap(["ns"]);
    let mut existing = bootstrap.clone();
    let view = existing
        .cluster_roles
        .iter_mut()
        .find(|r| r.metadata.name.as_deref() == Some("system:aggregate-to-view"))
        .unwrap();
    view.rules = Some(vec![]);
    view.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(AUTOUPDATE_ANNOTATION.into(), "false".into());
    let pullers = existing
        .role_bindings
        .iter_mut()
        .find(|b| b.metadata.name.as_deref() == Some("system:image-pullers"))
        .unwrap();
    pullers.subjects = Some(vec![]);
    pullers
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(AUTOUPDATE_ANNOTATION.into(), "false".into());
    let changes = reconcile(&existing, &bootstrap);
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(changes.iter().all(|c| matches!(c, Change::Protected(_))));
    // Deleted protected objects are still re-created, as kube's.
    existing
        .role_bindings
        .retain(|b| b.metadata.name.as_deref() != Some("system:image-pullers"));
    assert!(matches!(
        find_change(&reconcile(&existing, &bootstrap), "system:image-pullers"),
        Some(Change::Create(_))
    ));
}

#[test]
fn reconcile_adds_missing_subjects_and_recreates_bindings_with_another_role_ref() {
    let bootstrap = PolicyObjects::bootstrap(["ns"]);
    let mut existing = bootstrap.clone();
    let admin = existing
        .cluster_role_bindings
        .iter_mut()
        .find(|b| b.metadata.name.as_deref() == Some("cluster-admin"))
        .unwrap();
    admin.subjects = Some(vec![subj("User", "root", None)]);
    let basic = existing
        .cluster_role_bindings
        .iter_mut()
        .find(|b| b.metadata.name.as_deref() == Some("system:basic-user"))
        .unwrap();
    basic.role_ref = rref("ClusterRole", "view");
    let changes = reconcile(&existing, &bootstrap);
    let Some(Change::Update(PolicyObject::ClusterRoleBinding(b))) =
        find_change(&changes, "cluster-admin")
    else {
        panic!()
    };
    assert_eq!(
        b.subjects.as_deref().unwrap(),
        [
            subj("User", "root", None),
            subj("Group", names::SYSTEM_MASTERS, None)
        ]
    );
    assert!(matches!(
        find_change(&changes, "system:basic-user"),
        Some(Change::Recreate(_))
    ));
}

#[test]
fn reconcile_adds_missing_aggregation_selectors_and_leaves_aggregated_rules_alone() {
    let bootstrap = PolicyObjects::bootstrap(["ns"]);
    let mut existing = bootstrap.clone();
    aggregate_cluster_roles(&mut existing.cluster_roles);
    assert!(
        reconcile(&existing, &bootstrap).is_empty(),
        "aggregated rules are not extra or missing"
    );
    let admin = existing
        .cluster_roles
        .iter_mut()
        .find(|r| r.metadata.name.as_deref() == Some("admin"))
        .unwrap();
    admin.aggregation_rule = Some(Default::default());
    let changes = reconcile(&existing, &bootstrap);
    let Some(Change::Update(PolicyObject::ClusterRole(a))) = find_change(&changes, "admin") else {
        panic!()
    };
    assert_eq!(
        a.aggregation_rule
            .as_ref()
            .unwrap()
            .cluster_role_selectors
            .as_ref()
            .unwrap()
            .len(),
        1
    );
}
