//! What an authorizer is asked and what it answers: the user ([`UserInfo`], kube's
//! `user.Info`), the request ([`Attributes`], kube's `authorizer.Attributes`) and the
//! [`Decision`]. Also the ServiceAccount naming rules (`system:serviceaccount:NS:NAME`).

use std::collections::BTreeMap;
use std::fmt;

use super::names;

/// An authenticated (or anonymous) user, as an authenticator hands it over.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct UserInfo {
    /// The user name RBAC `User` subjects name.
    pub name: String,
    /// A unique id, if the authenticator has one.
    pub uid: String,
    /// Groups RBAC `Group` subjects name, including the `system:` ones.
    pub groups: Vec<String>,
    /// Extra authenticator data (kube's `user.Info.GetExtra`).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// A user with a name and groups (no uid, no extra).
    pub fn new(
        name: impl Into<String>,
        groups: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        UserInfo {
            name: name.into(),
            groups: groups.into_iter().map(Into::into).collect(),
            ..UserInfo::default()
        }
    }

    /// The identity of ServiceAccount `name` in `namespace`: kube's user name and its
    /// groups `system:serviceaccounts`, `system:serviceaccounts:NS` and
    /// `system:authenticated`.
    pub fn service_account(namespace: &str, name: &str, uid: impl Into<String>) -> Self {
        let mut groups = service_account_groups(namespace);
        groups.push(names::AUTHENTICATED.to_owned());
        UserInfo {
            name: service_account_username(namespace, name),
            uid: uid.into(),
            groups,
            extra: BTreeMap::new(),
        }
    }

    /// The anonymous user: `system:anonymous` in `system:unauthenticated`.
    pub fn anonymous() -> Self {
        UserInfo::new(names::ANONYMOUS, [names::UNAUTHENTICATED])
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// `system:serviceaccount:NS:NAME`.
pub fn service_account_username(namespace: &str, name: &str) -> String {
    format!("{}{namespace}:{name}", names::SERVICE_ACCOUNT_USER_PREFIX)
}

/// The groups of every ServiceAccount in `namespace`: `system:serviceaccounts` and
/// `system:serviceaccounts:NS`.
pub fn service_account_groups(namespace: &str) -> Vec<String> {
    vec![
        names::SERVICE_ACCOUNTS.to_owned(),
        format!("{}:{namespace}", names::SERVICE_ACCOUNTS),
    ]
}

/// The namespace and name of a ServiceAccount user name, as kube's
/// `serviceaccount.SplitUsername`: exactly two non-empty parts after the prefix.
pub fn split_service_account_username(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix(names::SERVICE_ACCOUNT_USER_PREFIX)?;
    let (namespace, name) = rest.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

/// A request for an API resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ResourceAttributes {
    /// The API group (`""` for core).
    pub api_group: String,
    /// The resource's plural name (`imagestreams`).
    pub resource: String,
    /// The subresource (`layers`, `status`), or `""`.
    pub subresource: String,
    /// The namespace, or `""` for cluster-scoped requests and lists across all
    /// namespaces. For a `namespaces` object kube's request info puts its name here
    /// too (`/api/v1/namespaces/team-a` is namespace `team-a`, name `team-a`), which
    /// is how a RoleBinding can let someone read their own namespace; see
    /// [`ResourceAttributes::for_object`].
    pub namespace: String,
    /// The object's name, or `""`. Kube leaves it empty on create (so a rule limited
    /// by `resourceNames` never allows create) and on list and watch, unless a
    /// `metadata.name=` field selector names one object.
    pub name: String,
}

impl ResourceAttributes {
    /// A request on `resource` of `api_group`, cluster-wide, no name.
    pub fn new(api_group: impl Into<String>, resource: impl Into<String>) -> Self {
        ResourceAttributes {
            api_group: api_group.into(),
            resource: resource.into(),
            ..ResourceAttributes::default()
        }
    }

    /// A request on one object, with kube's request-info rule for `namespaces`
    /// objects (core group): their namespace is their name.
    pub fn for_object(
        api_group: impl Into<String>,
        resource: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        let mut r = ResourceAttributes::new(api_group, resource)
            .namespace(namespace)
            .name(name);
        if r.api_group.is_empty() && r.resource == "namespaces" && r.namespace.is_empty() {
            r.namespace = r.name.clone();
        }
        r
    }

    /// With a subresource.
    pub fn subresource(mut self, subresource: impl Into<String>) -> Self {
        self.subresource = subresource.into();
        self
    }

    /// In a namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// On one named object.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

/// A request for a path outside the resource API (`/metrics`, `/apis`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NonResourceAttributes {
    /// The URL path.
    pub path: String,
}

/// Resource or non-resource.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Request {
    /// An API resource.
    Resource(ResourceAttributes),
    /// Any other path.
    NonResource(NonResourceAttributes),
}

/// One authorization question: may `user` do `verb` to `request`?
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Attributes {
    /// Who asks.
    pub user: UserInfo,
    /// The verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, or a special one (`bind`, `escalate`, `impersonate`); for
    /// non-resource requests the lower-case HTTP method.
    pub verb: String,
    /// On what.
    pub request: Request,
}

impl Attributes {
    /// A resource request.
    pub fn resource(user: UserInfo, verb: impl Into<String>, resource: ResourceAttributes) -> Self {
        Attributes {
            user,
            verb: verb.into(),
            request: Request::Resource(resource),
        }
    }

    /// A non-resource request.
    pub fn non_resource(user: UserInfo, verb: impl Into<String>, path: impl Into<String>) -> Self {
        Attributes {
            user,
            verb: verb.into(),
            request: Request::NonResource(NonResourceAttributes { path: path.into() }),
        }
    }

    /// The namespace RoleBindings are looked up in (`""` for none).
    pub fn namespace(&self) -> &str {
        match &self.request {
            Request::Resource(r) => &r.namespace,
            Request::NonResource(_) => "",
        }
    }
}

/// An authorizer's answer, with kube's reason text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; the reason names the binding, as kube's
    /// `RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "y" to User "z"`.
    Allow {
        /// Why.
        reason: String,
    },
    /// Explicitly denied (RBAC never denies; other authorizers may).
    Deny {
        /// Why.
        reason: String,
    },
    /// Nothing allows it; the reason lists role references that could not be
    /// resolved, if any (kube's `RBAC: [...]`), else is empty.
    NoOpinion {
        /// Why, or `""`.
        reason: String,
    },
}

impl Decision {
    /// Whether the request may go ahead.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }

    /// The reason text.
    pub fn reason(&self) -> &str {
        match self {
            Decision::Allow { reason }
            | Decision::Deny { reason }
            | Decision::NoOpinion { reason } => reason,
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self {
            Decision::Allow { .. } => "allow",
            Decision::Deny { .. } => "deny",
            Decision::NoOpinion { .. } => "no opinion",
        };
        match self.reason() {
            "" => f.write_str(word),
            reason => write!(f, "{word}: {reason}"),
        }
    }
}
