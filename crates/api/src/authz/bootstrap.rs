//! The default policy, as data: kube's bootstrap roles (`cluster-admin`, the
//! aggregated `admin`/`edit`/`view`, discovery and self-review roles) with
//! OpenShift's image rules for the `image.openshift.io` resources moor serves and
//! moor's own `moor.io` ones, OpenShift's registry roles (`system:image-puller`,
//! `-pusher`, `-builder`, `-signer`, `-pruner`, `registry-viewer`/`-editor`/`-admin`),
//! the cluster bindings, the bindings every namespace gets
//! (`system:image-pullers`, `system:image-builders`) and the `openshift` namespace
//! that every authenticated user may read and pull from.
//!
//! Every object carries `rbac.authorization.kubernetes.io/autoupdate: "true"` and
//! kube's `kubernetes.io/bootstrapping: rbac-defaults` label; see [`super::reconcile()`]
//! for keeping stored objects in line with it. Aggregated roles come with no rules:
//! [`super::aggregate_cluster_roles`] fills them in.
//!
//! Sources: kube's `plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go` and
//! openshift-apiserver's `pkg/bootstrappolicy/policy.go`; OpenShift's build, deploy,
//! route, template and project rules are left out, as moor serves none of those.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{
    AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef,
    Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::aggregation::aggregate_cluster_roles;
use super::names::{AUTHENTICATED, SYSTEM_MASTERS, UNAUTHENTICATED};
use super::rules::RuleBuilder;
use super::snapshot::PolicySnapshot;
use super::{ALL, RBAC_GROUP};

/// The annotation that says whether the server may update a bootstrap object
/// (`"false"` protects a user's edits).
pub const AUTOUPDATE_ANNOTATION: &str = "rbac.authorization.kubernetes.io/autoupdate";
/// kube's label on bootstrap objects.
pub const BOOTSTRAPPING_LABEL: &str = "kubernetes.io/bootstrapping";
/// Its value.
pub const BOOTSTRAPPING_VALUE: &str = "rbac-defaults";
/// The namespace every authenticated user may read image streams in and pull from.
pub const OPENSHIFT_NAMESPACE: &str = "openshift";
/// Labels that aggregate a ClusterRole into `admin`, `edit` and `view`.
pub const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
/// See [`AGGREGATE_TO_ADMIN`].
pub const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
/// See [`AGGREGATE_TO_ADMIN`].
pub const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

const CORE: &str = "";
const APPS: &str = "apps";
const BATCH: &str = "batch";
const AUTOSCALING: &str = "autoscaling";
const POLICY: &str = "policy";
const NETWORKING: &str = "networking.k8s.io";
const AUTHZ: &str = "authorization.k8s.io";
const AUTHN: &str = "authentication.k8s.io";
const IMAGE: &str = "image.openshift.io";
const MOOR: &str = "moor.io";
const CONFIG: &str = "config.openshift.io";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

fn rule(verbs: &[&str], group: &str, resources: &[&str]) -> PolicyRule {
    RuleBuilder::verbs(verbs)
        .groups(&[group])
        .resources(resources)
        .rule()
}

fn meta(name: &str, namespace: Option<&str>, labels: &[(&str, &str)]) -> ObjectMeta {
    let mut l: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    l.insert(
        BOOTSTRAPPING_LABEL.to_owned(),
        BOOTSTRAPPING_VALUE.to_owned(),
    );
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(l),
        annotations: Some(BTreeMap::from([(
            AUTOUPDATE_ANNOTATION.to_owned(),
            "true".to_owned(),
        )])),
        ..ObjectMeta::default()
    }
}

fn cluster_role(name: &str, labels: &[(&str, &str)], rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: meta(name, None, labels),
        rules: Some(rules),
        aggregation_rule: None,
    }
}

fn aggregated(name: &str, labels: &[(&str, &str)], selector_label: &str) -> ClusterRole {
    ClusterRole {
        metadata: meta(name, None, labels),
        rules: None,
        aggregation_rule: Some(AggregationRule {
            cluster_role_selectors: Some(vec![LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    selector_label.to_owned(),
                    "true".to_owned(),
                )])),
                match_expressions: None,
            }]),
        }),
    }
}

/// A `rbac.authorization.k8s.io` subject.
pub fn subject(kind: &str, name: &str, namespace: Option<&str>) -> Subject {
    Subject {
        api_group: (kind != "ServiceAccount").then(|| RBAC_GROUP.to_owned()),
        kind: kind.to_owned(),
        name: name.to_owned(),
        namespace: namespace.map(str::to_owned),
    }
}

fn group(name: &str) -> Subject {
    subject("Group", name, None)
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: Some(RBAC_GROUP.to_owned()),
        kind: kind.to_owned(),
        name: name.to_owned(),
    }
}

/// The image rules of `edit` and `admin` (OpenShift's aggregated edit/admin roles).
fn image_edit_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            READ_WRITE,
            IMAGE,
            &[
                "imagestreams",
                "imagestreammappings",
                "imagestreamtags",
                "imagetags",
                "imagestreamimages",
                "imagestreams/secrets",
            ],
        ),
        rule(READ, IMAGE, &["imagestreams/status"]),
        rule(&["get", "update"], IMAGE, &["imagestreams/layers"]),
        rule(&["create"], IMAGE, &["imagestreamimports"]),
        rule(READ, MOOR, &["scheduledimports"]),
        rule(READ_WRITE, MOOR, &["notifications"]),
        rule(READ, MOOR, &["notifications/status"]),
    ]
}

/// The bootstrap ClusterRoles.
pub fn cluster_roles() -> Vec<ClusterRole> {
    let admin_label = [(AGGREGATE_TO_ADMIN, "true")];
    let edit_label = [(AGGREGATE_TO_EDIT, "true")];
    let view_label = [(AGGREGATE_TO_VIEW, "true")];
    let mut aggregate_to_edit = vec![
        rule(
            READ,
            CORE,
            &[
                "pods/attach",
                "pods/proxy",
                "pods/exec",
                "pods/portforward",
                "secrets",
                "services/proxy",
            ],
        ),
        rule(&["impersonate"], CORE, &["serviceaccounts"]),
        rule(
            WRITE,
            CORE,
            &[
                "pods",
                "pods/attach",
                "pods/proxy",
                "pods/exec",
                "pods/portforward",
            ],
        ),
        rule(&["create"], CORE, &["pods/eviction"]),
        rule(
            WRITE,
            CORE,
            &[
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/proxy",
                "persistentvolumeclaims",
                "configmaps",
                "secrets",
                "events",
            ],
        ),
        rule(&["create"], CORE, &["serviceaccounts/token"]),
        rule(
            WRITE,
            APPS,
            &[
                "statefulsets",
                "statefulsets/scale",
                "daemonsets",
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "replicasets",
                "replicasets/scale",
            ],
        ),
        rule(WRITE, AUTOSCALING, &["horizontalpodautoscalers"]),
        rule(WRITE, BATCH, &["jobs", "cronjobs"]),
        rule(WRITE, POLICY, &["poddisruptionbudgets"]),
        rule(WRITE, NETWORKING, &["networkpolicies", "ingresses"]),
    ];
    aggregate_to_edit.extend(image_edit_rules());
    let mut aggregate_to_admin = vec![
        rule(&["create"], AUTHZ, &["localsubjectaccessreviews"]),
        rule(READ_WRITE, RBAC_GROUP, &["roles", "rolebindings"]),
    ];
    aggregate_to_admin.extend(image_edit_rules());
    // Signature policies: a namespace's admins set them, everyone who may view reads
    // them (ClusterImagePolicies: cluster-admin only).
    aggregate_to_admin.push(rule(READ_WRITE, CONFIG, &["imagepolicies"]));
    let aggregate_to_view = vec![
        rule(
            READ,
            CORE,
            &[
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "configmaps",
            ],
        ),
        rule(
            READ,
            CORE,
            &[
                "limitranges",
                "resourcequotas",
                "bindings",
                "events",
                "pods/status",
                "resourcequotas/status",
                "namespaces/status",
                "replicationcontrollers/status",
                "pods/log",
            ],
        ),
        rule(READ, CORE, &["namespaces"]),
        rule(
            READ,
            APPS,
            &[
                "controllerrevisions",
                "statefulsets",
                "statefulsets/status",
                "statefulsets/scale",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/status",
                "deployments/scale",
                "replicasets",
                "replicasets/status",
                "replicasets/scale",
            ],
        ),
        rule(
            READ,
            AUTOSCALING,
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
        ),
        rule(
            READ,
            BATCH,
            &["jobs", "cronjobs", "cronjobs/status", "jobs/status"],
        ),
        rule(
            READ,
            POLICY,
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
        ),
        rule(
            READ,
            NETWORKING,
            &["networkpolicies", "ingresses", "ingresses/status"],
        ),
        rule(
            READ,
            IMAGE,
            &[
                "imagestreams",
                "imagestreammappings",
                "imagestreamtags",
                "imagetags",
                "imagestreamimages",
            ],
        ),
        rule(READ, IMAGE, &["imagestreams/status"]),
        rule(READ, MOOR, &["scheduledimports"]),
        rule(READ, CONFIG, &["imagepolicies"]),
        rule(READ, MOOR, &["notifications", "notifications/status"]),
    ];
    let registry_common = |layers: &[&str]| {
        vec![
            rule(&["get"], CORE, &["namespaces"]),
            rule(layers, IMAGE, &["imagestreams/layers"]),
        ]
    };
    let registry_edit_images = || {
        vec![
            rule(READ_WRITE, CORE, &["serviceaccounts", "secrets"]),
            rule(
                READ_WRITE,
                IMAGE,
                &[
                    "imagestreamimages",
                    "imagestreammappings",
                    "imagestreams",
                    "imagestreams/secrets",
                    "imagestreamtags",
                    "imagetags",
                ],
            ),
            rule(&["create"], IMAGE, &["imagestreamimports"]),
        ]
    };
    let mut registry_admin = registry_edit_images();
    registry_admin.extend([
        rule(READ_WRITE, RBAC_GROUP, &["roles", "rolebindings"]),
        rule(&["create"], AUTHZ, &["localsubjectaccessreviews"]),
    ]);
    registry_admin.extend(registry_common(&["get", "update"]));
    let mut registry_editor = registry_edit_images();
    registry_editor.extend(registry_common(&["get", "update"]));
    let mut registry_viewer = vec![rule(
        READ,
        IMAGE,
        &[
            "imagestreamimages",
            "imagestreammappings",
            "imagestreams",
            "imagestreamtags",
            "imagetags",
        ],
    )];
    registry_viewer.extend(registry_common(&["get"]));

    vec![
        cluster_role(
            "cluster-admin",
            &[],
            vec![
                RuleBuilder::verbs(&[ALL])
                    .groups(&[ALL])
                    .resources(&[ALL])
                    .rule(),
                RuleBuilder::verbs(&[ALL]).urls(&[ALL]).rule(),
            ],
        ),
        cluster_role(
            "system:discovery",
            &[],
            vec![
                RuleBuilder::verbs(&["get"])
                    .urls(&[
                        "/api",
                        "/api/*",
                        "/apis",
                        "/apis/*",
                        "/healthz",
                        "/livez",
                        "/openapi",
                        "/openapi/*",
                        "/readyz",
                        "/version",
                        "/version/",
                    ])
                    .rule(),
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            &[],
            vec![
                RuleBuilder::verbs(&["get"])
                    .urls(&["/livez", "/readyz", "/healthz", "/version", "/version/"])
                    .rule(),
            ],
        ),
        cluster_role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["create"],
                    AUTHZ,
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(&["create"], AUTHN, &["selfsubjectreviews"]),
            ],
        ),
        aggregated("admin", &[], AGGREGATE_TO_ADMIN),
        aggregated("edit", &admin_label, AGGREGATE_TO_EDIT),
        aggregated("view", &edit_label, AGGREGATE_TO_VIEW),
        cluster_role(
            "system:aggregate-to-admin",
            &admin_label,
            aggregate_to_admin,
        ),
        cluster_role("system:aggregate-to-edit", &edit_label, aggregate_to_edit),
        cluster_role("system:aggregate-to-view", &view_label, aggregate_to_view),
        cluster_role(
            "system:image-puller",
            &[],
            vec![rule(&["get"], IMAGE, &["imagestreams/layers"])],
        ),
        cluster_role(
            "system:image-pusher",
            &[],
            vec![rule(&["get", "update"], IMAGE, &["imagestreams/layers"])],
        ),
        cluster_role(
            "system:image-builder",
            &[(AGGREGATE_TO_ADMIN, "true"), (AGGREGATE_TO_EDIT, "true")],
            vec![
                rule(&["get", "update"], IMAGE, &["imagestreams/layers"]),
                rule(&["create"], IMAGE, &["imagestreams"]),
            ],
        ),
        cluster_role(
            "system:image-signer",
            &[],
            vec![
                rule(&["get"], IMAGE, &["images", "imagestreams/layers"]),
                rule(&["create", "delete"], IMAGE, &["imagesignatures"]),
            ],
        ),
        cluster_role(
            "system:image-pruner",
            &[],
            vec![
                rule(&["get", "list"], CORE, &["pods", "replicationcontrollers"]),
                rule(&["list"], CORE, &["limitranges"]),
                rule(&["get", "list"], BATCH, &["jobs", "cronjobs"]),
                rule(
                    &["get", "list"],
                    APPS,
                    &["daemonsets", "deployments", "replicasets", "statefulsets"],
                ),
                rule(&["delete"], IMAGE, &["images"]),
                rule(READ, IMAGE, &["images", "imagestreams"]),
                rule(&["update"], IMAGE, &["imagestreams/status"]),
                rule(&["create"], MOOR, &["imageprunes"]),
            ],
        ),
        cluster_role("registry-admin", &admin_label, registry_admin),
        cluster_role("registry-editor", &edit_label, registry_editor),
        cluster_role("registry-viewer", &view_label, registry_viewer),
    ]
}

fn cluster_binding(name: &str, role: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(name, None, &[]),
        role_ref: role_ref("ClusterRole", role),
        subjects: Some(subjects),
    }
}

/// The ClusterRoles cluster mode gives a cluster's users (the chart ships them, and
/// moor applies them at start when its identity may): the image rules of
/// `system:aggregate-to-{admin,edit,view}` as `moor:aggregate-to-*` (so the cluster's
/// `admin`, `edit` and `view` include them), and OpenShift's image and registry roles.
/// They carry `app.kubernetes.io/part-of: moor` instead of kube's bootstrapping label.
pub fn cluster_mode_roles() -> Vec<ClusterRole> {
    let image_groups = [IMAGE, MOOR];
    let mut out = Vec::new();
    for mut role in cluster_roles() {
        let name = role.metadata.name.clone().unwrap_or_default();
        if let Some(labels) = role.metadata.labels.as_mut() {
            labels.remove(BOOTSTRAPPING_LABEL);
            labels.insert("app.kubernetes.io/part-of".into(), "moor".into());
        }
        if let Some(which) = name.strip_prefix("system:aggregate-to-") {
            let rules: Vec<PolicyRule> = role
                .rules
                .take()
                .unwrap_or_default()
                .into_iter()
                .filter(|r| {
                    r.api_groups
                        .as_ref()
                        .is_some_and(|g| g.iter().all(|g| image_groups.contains(&g.as_str())))
                })
                .collect();
            role.metadata.name = Some(format!("moor:aggregate-to-{which}"));
            role.metadata.annotations = None;
            role.rules = Some(rules);
            out.push(role);
        } else if name.starts_with("system:image-") || name.starts_with("registry-") {
            role.metadata.annotations = None;
            out.push(role);
        }
    }
    out
}

/// The bootstrap ClusterRoleBindings: `system:masters` may do anything, every
/// authenticated user may discover the API and review their own access, and
/// everyone may read `/healthz`, `/livez`, `/readyz` and `/version`.
pub fn cluster_role_bindings() -> Vec<ClusterRoleBinding> {
    vec![
        cluster_binding(
            "cluster-admin",
            "cluster-admin",
            vec![group(SYSTEM_MASTERS)],
        ),
        cluster_binding(
            "system:discovery",
            "system:discovery",
            vec![group(AUTHENTICATED)],
        ),
        cluster_binding(
            "system:basic-user",
            "system:basic-user",
            vec![group(AUTHENTICATED)],
        ),
        cluster_binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            vec![group(AUTHENTICATED), group(UNAUTHENTICATED)],
        ),
    ]
}

fn role_binding(namespace: &str, name: &str, role: RoleRef, subjects: Vec<Subject>) -> RoleBinding {
    RoleBinding {
        metadata: meta(name, Some(namespace), &[]),
        role_ref: role,
        subjects: Some(subjects),
    }
}

/// The bindings every namespace gets (OpenShift's default role bindings): its
/// ServiceAccounts may pull its images, and its `builder` ServiceAccount may push.
pub fn namespace_role_bindings(namespace: &str) -> Vec<RoleBinding> {
    vec![
        role_binding(
            namespace,
            "system:image-pullers",
            role_ref("ClusterRole", "system:image-puller"),
            vec![group(&format!("system:serviceaccounts:{namespace}"))],
        ),
        role_binding(
            namespace,
            "system:image-builders",
            role_ref("ClusterRole", "system:image-builder"),
            vec![subject("ServiceAccount", "builder", Some(namespace))],
        ),
    ]
}

/// The `openshift` namespace's Role and RoleBinding: every authenticated user may
/// read its image streams and pull from them (OpenShift's `shared-resource-viewer`).
pub fn openshift_namespace_policy() -> (Vec<Role>, Vec<RoleBinding>) {
    let role = Role {
        metadata: meta("shared-resource-viewer", Some(OPENSHIFT_NAMESPACE), &[]),
        rules: Some(vec![
            rule(
                READ,
                IMAGE,
                &[
                    "imagestreams",
                    "imagestreamtags",
                    "imagestreamimages",
                    "imagetags",
                ],
            ),
            rule(&["get"], IMAGE, &["imagestreams/layers"]),
        ]),
    };
    let binding = role_binding(
        OPENSHIFT_NAMESPACE,
        "shared-resource-viewers",
        role_ref("Role", "shared-resource-viewer"),
        vec![group(AUTHENTICATED)],
    );
    (vec![role], vec![binding])
}

/// A set of RBAC objects: the bootstrap policy, or what a store holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyObjects {
    /// ClusterRoles.
    pub cluster_roles: Vec<ClusterRole>,
    /// ClusterRoleBindings.
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    /// Roles.
    pub roles: Vec<Role>,
    /// RoleBindings.
    pub role_bindings: Vec<RoleBinding>,
}

impl PolicyObjects {
    /// The bootstrap policy of a server whose namespaces are `namespaces`: the
    /// cluster roles and bindings, the `openshift` namespace's role and binding, and
    /// each namespace's bindings. Aggregated roles have no rules yet.
    pub fn bootstrap<'a>(namespaces: impl IntoIterator<Item = &'a str>) -> Self {
        let (roles, mut role_bindings) = openshift_namespace_policy();
        for ns in namespaces {
            role_bindings.extend(namespace_role_bindings(ns));
        }
        PolicyObjects {
            cluster_roles: cluster_roles(),
            cluster_role_bindings: cluster_role_bindings(),
            roles,
            role_bindings,
        }
    }

    /// Aggregate the ClusterRoles and index everything for decisions.
    pub fn snapshot(&self) -> PolicySnapshot {
        let mut cluster_roles = self.cluster_roles.clone();
        aggregate_cluster_roles(&mut cluster_roles);
        PolicySnapshot::new(
            &self.roles,
            &cluster_roles,
            &self.role_bindings,
            &self.cluster_role_bindings,
        )
    }
}
