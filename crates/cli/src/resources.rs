//! The resource types the CLI knows: their names and aliases as typed by users
//! (`is`, `istag`, `ns`, ...), their REST paths, and the names oc prints for them.
//! Pure data; no IO.

/// One resource type served by the API.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// The kind, e.g. `ImageStream`.
    pub kind: &'static str,
    /// The API group; empty for core/v1.
    pub group: &'static str,
    /// The API version within the group.
    pub version: &'static str,
    /// The plural resource name, e.g. `imagestreams`.
    pub plural: &'static str,
    /// The singular resource name, e.g. `imagestream`.
    pub singular: &'static str,
    /// Short names, e.g. `is`.
    pub short_names: &'static [&'static str],
    /// Whether objects live in a namespace.
    pub namespaced: bool,
}

const IMAGE_GROUP: &str = "image.openshift.io";

/// `imagestreams.image.openshift.io`.
pub static IMAGE_STREAMS: ResourceType = ResourceType {
    kind: "ImageStream",
    group: IMAGE_GROUP,
    version: "v1",
    plural: "imagestreams",
    singular: "imagestream",
    short_names: &["is"],
    namespaced: true,
};

/// `imagestreamtags.image.openshift.io`, named `stream:tag`.
pub static IMAGE_STREAM_TAGS: ResourceType = ResourceType {
    kind: "ImageStreamTag",
    group: IMAGE_GROUP,
    version: "v1",
    plural: "imagestreamtags",
    singular: "imagestreamtag",
    short_names: &["istag"],
    namespaced: true,
};

/// `images.image.openshift.io`, cluster-scoped, named by digest.
pub static IMAGES: ResourceType = ResourceType {
    kind: "Image",
    group: IMAGE_GROUP,
    version: "v1",
    plural: "images",
    singular: "image",
    short_names: &[],
    namespaced: false,
};

/// core/v1 `namespaces`.
pub static NAMESPACES: ResourceType = ResourceType {
    kind: "Namespace",
    group: "",
    version: "v1",
    plural: "namespaces",
    singular: "namespace",
    short_names: &["ns"],
    namespaced: false,
};

/// core/v1 `secrets`.
pub static SECRETS: ResourceType = ResourceType {
    kind: "Secret",
    group: "",
    version: "v1",
    plural: "secrets",
    singular: "secret",
    short_names: &[],
    namespaced: true,
};

/// core/v1 `events`.
pub static EVENTS: ResourceType = ResourceType {
    kind: "Event",
    group: "",
    version: "v1",
    plural: "events",
    singular: "event",
    short_names: &["ev"],
    namespaced: true,
};

/// `scheduledimports.moor.io`: the scheduler's read-only record of each scheduled
/// tag (last and next check), named `stream:tag`.
pub static SCHEDULED_IMPORTS: ResourceType = ResourceType {
    kind: "ScheduledImport",
    group: "moor.io",
    version: "v1",
    plural: "scheduledimports",
    singular: "scheduledimport",
    short_names: &[],
    namespaced: true,
};
/// `notifications.moor.io`: where CloudEvents are POSTed when tags move, and how
/// delivery went.
pub static NOTIFICATIONS: ResourceType = ResourceType {
    kind: "Notification",
    group: "moor.io",
    version: "v1",
    plural: "notifications",
    singular: "notification",
    short_names: &[],
    namespaced: true,
};

macro_rules! workload_type {
    ($name:ident, $kind:literal, $group:literal, $plural:literal, $singular:literal, [$($short:literal),*]) => {
        #[doc = concat!("`", $plural, "` (", $kind, ").")]
        pub static $name: ResourceType = ResourceType {
            kind: $kind,
            group: $group,
            version: "v1",
            plural: $plural,
            singular: $singular,
            short_names: &[$($short),*],
            namespaced: true,
        };
    };
}

workload_type!(
    DEPLOYMENTS,
    "Deployment",
    "apps",
    "deployments",
    "deployment",
    ["deploy"]
);
workload_type!(
    REPLICA_SETS,
    "ReplicaSet",
    "apps",
    "replicasets",
    "replicaset",
    ["rs"]
);
workload_type!(
    STATEFUL_SETS,
    "StatefulSet",
    "apps",
    "statefulsets",
    "statefulset",
    ["sts"]
);
workload_type!(
    DAEMON_SETS,
    "DaemonSet",
    "apps",
    "daemonsets",
    "daemonset",
    ["ds"]
);
workload_type!(JOBS, "Job", "batch", "jobs", "job", []);
workload_type!(CRON_JOBS, "CronJob", "batch", "cronjobs", "cronjob", ["cj"]);
workload_type!(PODS, "Pod", "", "pods", "pod", ["po"]);

/// core/v1 `serviceaccounts`.
pub static SERVICE_ACCOUNTS: ResourceType = ResourceType {
    kind: "ServiceAccount",
    group: "",
    version: "v1",
    plural: "serviceaccounts",
    singular: "serviceaccount",
    short_names: &["sa"],
    namespaced: true,
};

macro_rules! rbac_type {
    ($name:ident, $kind:literal, $plural:literal, $singular:literal, $namespaced:literal) => {
        #[doc = concat!("`", $plural, ".rbac.authorization.k8s.io` (", $kind, ").")]
        pub static $name: ResourceType = ResourceType {
            kind: $kind,
            group: "rbac.authorization.k8s.io",
            version: "v1",
            plural: $plural,
            singular: $singular,
            short_names: &[],
            namespaced: $namespaced,
        };
    };
}

rbac_type!(ROLES, "Role", "roles", "role", true);
rbac_type!(
    CLUSTER_ROLES,
    "ClusterRole",
    "clusterroles",
    "clusterrole",
    false
);
rbac_type!(
    ROLE_BINDINGS,
    "RoleBinding",
    "rolebindings",
    "rolebinding",
    true
);
rbac_type!(
    CLUSTER_ROLE_BINDINGS,
    "ClusterRoleBinding",
    "clusterrolebindings",
    "clusterrolebinding",
    false
);

/// Every type the CLI knows, in the order help lists them.
pub static ALL: &[&ResourceType] = &[
    &IMAGE_STREAMS,
    &IMAGE_STREAM_TAGS,
    &IMAGES,
    &NAMESPACES,
    &SECRETS,
    &EVENTS,
    &SCHEDULED_IMPORTS,
    &NOTIFICATIONS,
    &DEPLOYMENTS,
    &REPLICA_SETS,
    &STATEFUL_SETS,
    &DAEMON_SETS,
    &JOBS,
    &CRON_JOBS,
    &PODS,
    &SERVICE_ACCOUNTS,
    &ROLES,
    &CLUSTER_ROLES,
    &ROLE_BINDINGS,
    &CLUSTER_ROLE_BINDINGS,
];

/// Errors from naming a resource type.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResourceError {
    /// No known type has this name.
    #[error("the server doesn't have a resource type {0:?}")]
    Unknown(String),
    /// `TYPE/NAME` arguments name different types.
    #[error(
        "arguments in resource/name form must have a single resource type: got {0:?} and {1:?}"
    )]
    MixedTypes(String, String),
    /// `TYPE/NAME` mixed with bare names.
    #[error(
        "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'moor get is/keycloak' instead of 'moor get is is/keycloak')"
    )]
    MixedForms,
    /// `TYPE/` without a name.
    #[error("arguments in resource/name form must have a name: {0:?}")]
    EmptyName(String),
}

/// Finds a type by any of the names kubectl accepts: plural, singular, short name,
/// kind, each optionally followed by `.group` (case-insensitive).
pub fn lookup(name: &str) -> Result<&'static ResourceType, ResourceError> {
    let lower = name.to_ascii_lowercase();
    ALL.iter()
        .copied()
        .find(|r| r.matches(&lower))
        .ok_or_else(|| ResourceError::Unknown(name.to_string()))
}

/// Splits `TYPE NAME...` or `TYPE/NAME...` into the type and the names.
pub fn resolve_args(
    resource: &str,
    names: &[String],
) -> Result<(&'static ResourceType, Vec<String>), ResourceError> {
    let Some((first_type, first_name)) = resource.split_once('/') else {
        return Ok((lookup(resource)?, names.to_vec()));
    };
    let ty = lookup(first_type)?;
    let mut out = Vec::with_capacity(names.len() + 1);
    for arg in std::iter::once(resource).chain(names.iter().map(String::as_str)) {
        let Some((t, n)) = arg.split_once('/') else {
            return Err(ResourceError::MixedForms);
        };
        if !std::ptr::eq(lookup(t)?, ty) {
            return Err(ResourceError::MixedTypes(
                first_type.to_string(),
                t.to_string(),
            ));
        }
        if n.is_empty() {
            return Err(ResourceError::EmptyName(arg.to_string()));
        }
        out.push(n.to_string());
    }
    debug_assert_eq!(out.first().map(String::as_str), Some(first_name));
    Ok((ty, out))
}

impl ResourceType {
    fn matches(&self, lower: &str) -> bool {
        let kind = self.kind.to_ascii_lowercase();
        let bare = [self.plural, self.singular, kind.as_str()];
        let (base, group) = match lower.split_once('.') {
            Some((b, g)) => (b, Some(g)),
            None => (lower, None),
        };
        match group {
            None => bare.contains(&base) || self.short_names.contains(&base),
            Some(g) => g == self.group && bare.contains(&base),
        }
    }

    /// `/apis/<group>/<version>` or `/api/v1`.
    pub fn api_prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// The collection path, within `namespace` when the type is namespaced and one is
    /// given (none lists across all namespaces).
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => {
                format!("{}/namespaces/{}/{}", self.api_prefix(), ns, self.plural)
            }
            _ => format!("{}/{}", self.api_prefix(), self.plural),
        }
    }

    /// `apiVersion` of objects of this type.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The workload kind of this type, when it carries a pod template.
    pub fn workload_kind(&self) -> Option<moor_api::lookup::WorkloadKind> {
        moor_api::lookup::WorkloadKind::from_group_kind(self.group, self.kind)
    }

    /// What `-o name` and `created` messages print before `/NAME`:
    /// `imagestream.image.openshift.io`, or `namespace` for core types.
    pub fn qualified_singular(&self) -> String {
        let kind = self.kind.to_ascii_lowercase();
        if self.group.is_empty() {
            kind
        } else {
            format!("{kind}.{}", self.group)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alias_resolves() {
        for (alias, want) in [
            ("is", &IMAGE_STREAMS),
            ("imagestream", &IMAGE_STREAMS),
            ("imagestreams", &IMAGE_STREAMS),
            ("ImageStream", &IMAGE_STREAMS),
            ("imagestreams.image.openshift.io", &IMAGE_STREAMS),
            ("istag", &IMAGE_STREAM_TAGS),
            ("imagestreamtag", &IMAGE_STREAM_TAGS),
            ("imagestreamtags", &IMAGE_STREAM_TAGS),
            ("image", &IMAGES),
            ("images", &IMAGES),
            ("ns", &NAMESPACES),
            ("namespace", &NAMESPACES),
            ("namespaces", &NAMESPACES),
        ] {
            assert_eq!(lookup(alias), Ok(want), "{alias}");
        }
        assert_eq!(lookup("deploy"), Ok(&DEPLOYMENTS));
        assert_eq!(lookup("deployments.apps"), Ok(&DEPLOYMENTS));
        assert_eq!(lookup("po"), Ok(&PODS));
        assert_eq!(DEPLOYMENTS.qualified_singular(), "deployment.apps");
        assert_eq!(
            DEPLOYMENTS.workload_kind(),
            Some(moor_api::lookup::WorkloadKind::Deployment)
        );
        assert_eq!(
            lookup("routes"),
            Err(ResourceError::Unknown("routes".into()))
        );
        assert!(lookup("is.apps").is_err());
    }

    #[test]
    fn paths_and_names() {
        assert_eq!(
            IMAGE_STREAMS.collection_path(Some("default")),
            "/apis/image.openshift.io/v1/namespaces/default/imagestreams"
        );
        assert_eq!(
            IMAGE_STREAMS.collection_path(None),
            "/apis/image.openshift.io/v1/imagestreams"
        );
        assert_eq!(NAMESPACES.collection_path(Some("x")), "/api/v1/namespaces");
        assert_eq!(
            IMAGES.collection_path(Some("x")),
            "/apis/image.openshift.io/v1/images"
        );
        assert_eq!(
            IMAGE_STREAMS.qualified_singular(),
            "imagestream.image.openshift.io"
        );
        assert_eq!(NAMESPACES.qualified_singular(), "namespace");
        assert_eq!(IMAGE_STREAMS.api_version(), "image.openshift.io/v1");
        assert_eq!(NAMESPACES.api_version(), "v1");
    }

    #[test]
    fn type_slash_name_arguments() {
        let (t, names) = resolve_args("is/a", &["is/b".into()]).unwrap();
        assert_eq!(t, &IMAGE_STREAMS);
        assert_eq!(names, vec!["a", "b"]);
        let (t, names) = resolve_args("istag", &["a:1".into()]).unwrap();
        assert_eq!(t, &IMAGE_STREAM_TAGS);
        assert_eq!(names, vec!["a:1"]);
        assert_eq!(
            resolve_args("is/a", &["b".into()]),
            Err(ResourceError::MixedForms)
        );
        assert!(matches!(
            resolve_args("is/a", &["ns/b".into()]),
            Err(ResourceError::MixedTypes(..))
        ));
        assert!(matches!(
            resolve_args("is/", &[]),
            Err(ResourceError::EmptyName(_))
        ));
    }
}
