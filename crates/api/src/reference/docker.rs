//! [`DockerImageReference`]: parsing, accessors, the validating `with_*` builders and
//! formatting.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::grammar::{
    REFERENCE_RE, is_registry_docker_hub, is_valid_registry, is_valid_repository_path, is_valid_tag,
};
use super::{DOCKER_DEFAULT_NAMESPACE, Digest, NAME_TOTAL_LENGTH_MAX, ReferenceError};

/// A container image pull spec split as OpenShift splits it: registry, namespace, name,
/// tag and digest (`id`). Empty strings mean "not given".
///
/// Built only by [`parse`](Self::parse) and the validating `with_*` methods, so every
/// value formats back into a parsable pull spec. Displays as [`exact`](Self::exact);
/// serializes as that string.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DockerImageReference {
    pub(super) registry: String,
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) tag: String,
    pub(super) id: Option<Digest>,
}

impl DockerImageReference {
    /// Parses a pull spec with OpenShift's rules (see the module docs).
    ///
    /// Stricter than library-go: a first component without `.`/`:` that is not
    /// `localhost` must be lowercase (library-go lets `Foo/bar` through); a registry
    /// alone (`quay.io`, `localhost:5000`) may only carry a numeric port, not a
    /// digest; and only `localhost` exactly (not any name starting with it) is a
    /// registry when alone.
    pub fn parse(spec: &str) -> Result<Self, ReferenceError> {
        let Some(caps) = REFERENCE_RE.captures(spec) else {
            if spec.is_empty() {
                return Err(ReferenceError::NameEmpty);
            }
            if REFERENCE_RE.is_match(&spec.to_ascii_lowercase()) {
                return Err(ReferenceError::NameContainsUppercase);
            }
            return Err(ReferenceError::InvalidFormat);
        };
        let full_name = caps.get(1).map_or("", |m| m.as_str());
        if full_name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong);
        }
        let tag = caps.get(2).map_or("", |m| m.as_str());
        let id = caps.get(3).map(|m| Digest::parse(m.as_str())).transpose()?;

        let mut reference = Self {
            registry: String::new(),
            namespace: String::new(),
            name: String::new(),
            tag: String::new(),
            id,
        };
        match full_name.find('/') {
            None if full_name.contains('.') || full_name == "localhost" => {
                // A registry alone: `quay.io`, `localhost:5000` (parsed as name + tag).
                if reference.id.is_some() {
                    return Err(ReferenceError::InvalidFormat);
                }
                if !tag.is_empty() && !tag.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ReferenceError::InvalidFormat);
                }
                reference.registry = if tag.is_empty() {
                    full_name.to_owned()
                } else {
                    format!("{full_name}:{tag}")
                };
                return Ok(reference);
            }
            None => reference.name = full_name.to_owned(),
            Some(i) => {
                let first = &full_name[..i];
                if first.contains(['.', ':']) || first == "localhost" {
                    reference.registry = first.to_owned();
                    reference.name = full_name[i + 1..].to_owned();
                } else {
                    reference.name = full_name.to_owned();
                }
            }
        }
        if reference.registry.is_empty() && reference.name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::NameContainsUppercase);
        }
        if let Some(i) = reference.name.find('/') {
            reference.namespace = reference.name[..i].to_owned();
            reference.name = reference.name[i + 1..].to_owned();
        }
        reference.tag = tag.to_owned();
        Ok(reference)
    }

    /// A reference from its parts, each validated: `registry` may be empty or a
    /// registry host, `namespace` empty or one path component, `name` one or more path
    /// components.
    pub fn from_parts(registry: &str, namespace: &str, name: &str) -> Result<Self, ReferenceError> {
        if name.is_empty() {
            return Err(ReferenceError::NameEmpty);
        }
        if !registry.is_empty() && !is_valid_registry(registry) {
            return Err(ReferenceError::InvalidRegistry);
        }
        if namespace.contains('/') {
            return Err(ReferenceError::InvalidFormat);
        }
        if !namespace.is_empty() && !is_valid_repository_path(namespace) {
            return Err(path_error(namespace));
        }
        if !is_valid_repository_path(name) {
            return Err(path_error(name));
        }
        let reference = Self {
            registry: registry.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            tag: String::new(),
            id: None,
        };
        if reference.repository_full_name().len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong);
        }
        Ok(reference)
    }

    /// The registry host (with port), or `""` when none was given.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The namespace (the first path component when there are two or more), or `""`.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The name: every path component after the namespace (`b/c` in `quay.io/a/b/c`).
    /// Empty only for a registry-only reference such as `quay.io`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tag, or `None`.
    pub fn tag(&self) -> Option<&str> {
        (!self.tag.is_empty()).then_some(self.tag.as_str())
    }

    /// The digest (OpenShift's `ID`), or `None`.
    pub fn id(&self) -> Option<&Digest> {
        self.id.as_ref()
    }

    /// Whether this names a registry only, with no repository.
    pub fn is_registry_only(&self) -> bool {
        self.name.is_empty()
    }

    /// Whether this is a short name: no registry and no namespace (`keycloak:20.0`),
    /// the form image stream lookup resolves.
    pub fn is_short_name(&self) -> bool {
        self.registry.is_empty() && self.namespace.is_empty() && !self.name.is_empty()
    }

    /// This reference with `tag` (validated).
    pub fn with_tag(mut self, tag: &str) -> Result<Self, ReferenceError> {
        if !is_valid_tag(tag) {
            return Err(ReferenceError::InvalidTag);
        }
        self.tag = tag.to_owned();
        Ok(self)
    }

    /// This reference without a tag.
    pub fn without_tag(mut self) -> Self {
        self.tag.clear();
        self
    }

    /// This reference with digest `id`.
    pub fn with_id(mut self, id: Digest) -> Self {
        self.id = Some(id);
        self
    }

    /// This reference without a digest.
    pub fn without_id(mut self) -> Self {
        self.id = None;
        self
    }

    /// This reference with another registry (validated; `""` removes it).
    pub fn with_registry(mut self, registry: &str) -> Result<Self, ReferenceError> {
        if !registry.is_empty() && !is_valid_registry(registry) {
            return Err(ReferenceError::InvalidRegistry);
        }
        self.registry = registry.to_owned();
        Ok(self)
    }

    /// The name with its digest (`name@sha256:…`) or else its tag (`name:tag`), as
    /// OpenShift's `NameString`: a digest hides the tag.
    pub fn name_string(&self) -> String {
        match (&self.id, self.tag.is_empty()) {
            _ if self.name.is_empty() => String::new(),
            (Some(id), _) => format!("{}@{id}", self.name),
            (None, false) => format!("{}:{}", self.name, self.tag),
            (None, true) => self.name.clone(),
        }
    }

    /// The pull spec with exactly the parts that are set, no defaults
    /// (`quay.io/keycloak/keycloak@sha256:…`). A digest hides the tag, as in OpenShift.
    pub fn exact(&self) -> String {
        let mut s = String::new();
        if !self.registry.is_empty() {
            s.push_str(&self.registry);
            if self.name.is_empty() {
                return s;
            }
            s.push('/');
        }
        if !self.namespace.is_empty() {
            s.push_str(&self.namespace);
            s.push('/');
        }
        s.push_str(&self.name_string());
        s
    }

    /// OpenShift's `String()`: [`exact`](Self::exact), with `library/` added to a
    /// one-component Docker Hub name that names its registry (`docker.io/library/x`).
    pub fn string(&self) -> String {
        if self.namespace.is_empty() && is_registry_docker_hub(&self.registry) {
            let mut r = self.clone();
            r.namespace = DOCKER_DEFAULT_NAMESPACE.to_owned();
            return r.exact();
        }
        self.exact()
    }

    /// The repository path relative to its registry: `namespace/name`, or `name`.
    pub fn repository_name(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }

    fn repository_full_name(&self) -> String {
        match (self.registry.is_empty(), self.name.is_empty()) {
            (true, _) => self.repository_name(),
            (false, true) => self.registry.clone(),
            (false, false) => format!("{}/{}", self.registry, self.repository_name()),
        }
    }

    /// This reference without tag and digest.
    pub fn as_repository(&self) -> Self {
        self.clone().without_tag().without_id()
    }
}

fn path_error(path: &str) -> ReferenceError {
    if is_valid_repository_path(&path.to_ascii_lowercase()) {
        ReferenceError::NameContainsUppercase
    } else {
        ReferenceError::InvalidFormat
    }
}

impl fmt::Display for DockerImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.exact())
    }
}

impl fmt::Debug for DockerImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerImageReference")
            .field("registry", &self.registry)
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("tag", &self.tag)
            .field("id", &self.id.as_ref().map(Digest::as_str))
            .finish()
    }
}

impl FromStr for DockerImageReference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for DockerImageReference {
    type Error = ReferenceError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl Serialize for DockerImageReference {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.exact())
    }
}

impl<'de> Deserialize<'de> for DockerImageReference {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}
