//! Content digests and container image references (pull specs), validated on parse.
//! IO-free: string parsing, formatting and hashing of in-memory bytes only.
//!
//! [`DockerImageReference`] follows OpenShift's `library-go` `reference.Parse`: the
//! docker/distribution grammar, then a split into registry, namespace and name where the
//! first path component is a registry only if it contains `.` or `:` or is `localhost`,
//! and everything after the namespace (the first remaining component) is the name:
//!
//! | input | registry | namespace | name | tag | id |
//! |---|---|---|---|---|---|
//! | `keycloak:20.0` | | | `keycloak` | `20.0` | |
//! | `quay.io/keycloak/keycloak:20.0.2` | `quay.io` | `keycloak` | `keycloak` | `20.0.2` | |
//! | `localhost:5000/a/b@sha256:…` | `localhost:5000` | `a` | `b` | | `sha256:…` |
//! | `quay.io/a/b/c` | `quay.io` | `a` | `b/c` | | |
//! | `bar/foo/baz` | | `bar` | `foo/baz` | | |
//!
//! Where moor is stricter than library-go, the method docs say so.
//!
//! By concept: the grammar and its validity checks (`grammar`), digests and hashing
//! (`digest`), the reference type with parsing and formatting (`docker`), and the
//! Docker Hub defaults and registry host normalisation (`normalize`). Everything is
//! re-exported here.

mod digest;
mod docker;
mod grammar;
mod normalize;
#[cfg(test)]
mod tests;

pub use digest::{Digest, DigestAlgorithm, DigestHasher};
pub use docker::DockerImageReference;
pub use grammar::{
    is_registry_docker_hub, is_valid_registry, is_valid_repository_path, is_valid_tag,
};

/// Errors from parsing a digest or an image reference. The messages are those of
/// docker/distribution and go-digest, which OpenShift shows in validation errors.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The reference string is empty.
    #[error("repository name must have at least one component")]
    NameEmpty,
    /// The reference would be valid if it were lowercase.
    #[error("repository name must be lowercase")]
    NameContainsUppercase,
    /// The registry plus repository path is longer than [`NAME_TOTAL_LENGTH_MAX`].
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    /// The string does not follow the reference grammar (bad characters, empty path
    /// components, a `:` or `@` in the wrong place, a scheme such as `https://`).
    #[error("invalid reference format")]
    InvalidFormat,
    /// A tag does not match `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    #[error("invalid tag format")]
    InvalidTag,
    /// A registry is not a host name or IP address with an optional numeric port.
    #[error("invalid registry format")]
    InvalidRegistry,
    /// A digest is not `algorithm:hex` with lowercase hex.
    #[error("invalid checksum digest format")]
    DigestInvalidFormat,
    /// A digest's hex part has the wrong length for its algorithm.
    #[error("invalid checksum digest length")]
    DigestInvalidLength,
    /// A digest uses an algorithm other than `sha256` or `sha512`.
    #[error("unsupported digest algorithm")]
    DigestUnsupported,
}

/// The maximum length of a registry plus repository path.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// The registry assumed when a reference names none.
pub const DOCKER_DEFAULT_REGISTRY: &str = "docker.io";
/// The host name of Docker Hub's v1 registry.
pub const DOCKER_DEFAULT_V1_REGISTRY: &str = "index.docker.io";
/// The host name of Docker Hub's v2 registry API.
pub const DOCKER_DEFAULT_V2_REGISTRY: &str = "registry-1.docker.io";
/// The namespace Docker Hub assumes for single-component names.
pub const DOCKER_DEFAULT_NAMESPACE: &str = "library";
/// The tag assumed when a reference names neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
