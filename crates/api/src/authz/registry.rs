//! Registry requests as RBAC questions, following openshift/image-registry's
//! `auth.go`: pulling from `ns/name` is `get imagestreams/layers` named `name` in
//! `ns`; pushing is `update` on the same (and `create imagestreams` when the stream
//! does not exist yet); deleting a manifest is `delete images` cluster-wide (the
//! prune permission); `_catalog` is `list imagestreams` cluster-wide. A mount from
//! another repository checks pull on the source, and a refusal there is not an
//! error: the push goes on as an ordinary upload.

use super::attributes::{Attributes, ResourceAttributes, UserInfo};

/// The image API group.
pub const IMAGE_GROUP: &str = "image.openshift.io";

/// A repository name that is not `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RepositoryError {
    /// Not two non-empty parts separated by one `/`.
    #[error("repository name {0:?} must be of the form <namespace>/<name>")]
    NotNamespaced(String),
}

/// A repository of moor's registry: an image stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repository<'a> {
    /// The stream's namespace.
    pub namespace: &'a str,
    /// The stream's name.
    pub name: &'a str,
}

impl<'a> Repository<'a> {
    /// Split `ns/name`; anything else is refused.
    pub fn parse(repo: &'a str) -> Result<Self, RepositoryError> {
        match repo.split_once('/') {
            Some((namespace, name))
                if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
            {
                Ok(Repository { namespace, name })
            }
            _ => Err(RepositoryError::NotNamespaced(repo.to_owned())),
        }
    }
}

/// What a registry client asks to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryAction<'a> {
    /// Read manifests, blobs or the tag list of a repository.
    Pull(Repository<'a>),
    /// Upload blobs or put manifests; `stream_exists` is whether the image stream
    /// exists already (pushing to a new one creates it).
    Push {
        /// The target.
        repository: Repository<'a>,
        /// Whether the stream exists.
        stream_exists: bool,
    },
    /// Delete a manifest (in any repository).
    Delete,
    /// List repositories (`/v2/_catalog`).
    Catalog,
    /// Mount a blob from this source repository into a push target.
    MountFrom(Repository<'a>),
}

/// What to do when a check is denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDeny {
    /// Refuse the request (401 or 403).
    Refuse,
    /// Carry on as an ordinary upload (202), never a mount (201).
    PlainUpload,
}

/// The checks for one registry action: every attribute must be allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryChecks {
    /// The questions to ask.
    pub attributes: Vec<Attributes>,
    /// What a denial means.
    pub on_deny: OnDeny,
}

fn layers(user: &UserInfo, verb: &str, repo: Repository<'_>) -> Attributes {
    Attributes::resource(
        user.clone(),
        verb,
        ResourceAttributes::new(IMAGE_GROUP, "imagestreams")
            .subresource("layers")
            .namespace(repo.namespace)
            .name(repo.name),
    )
}

/// The RBAC questions a registry action asks for `user`.
pub fn registry_checks(user: &UserInfo, action: RegistryAction<'_>) -> RegistryChecks {
    let refuse = |attributes| RegistryChecks {
        attributes,
        on_deny: OnDeny::Refuse,
    };
    match action {
        RegistryAction::Pull(repo) => refuse(vec![layers(user, "get", repo)]),
        RegistryAction::Push {
            repository,
            stream_exists,
        } => {
            let mut checks = vec![layers(user, "update", repository)];
            if !stream_exists {
                checks.push(Attributes::resource(
                    user.clone(),
                    "create",
                    ResourceAttributes::new(IMAGE_GROUP, "imagestreams")
                        .namespace(repository.namespace),
                ));
            }
            refuse(checks)
        }
        RegistryAction::Delete => refuse(vec![Attributes::resource(
            user.clone(),
            "delete",
            ResourceAttributes::new(IMAGE_GROUP, "images"),
        )]),
        RegistryAction::Catalog => refuse(vec![Attributes::resource(
            user.clone(),
            "list",
            ResourceAttributes::new(IMAGE_GROUP, "imagestreams"),
        )]),
        RegistryAction::MountFrom(source) => RegistryChecks {
            attributes: vec![layers(user, "get", source)],
            on_deny: OnDeny::PlainUpload,
        },
    }
}
