//! moor's IO-free API types, shared by the server, the store and the CLI:
//! `image.openshift.io/v1` objects with OpenShift's JSON shape ([`image`]), validated
//! digest and image reference newtypes ([`reference`]), OpenShift's validation rules
//! ([`validation`]), image lookup and triggers over workload pod specs ([`lookup`]), OCI
//! and Docker media types ([`media_types`]), the type-meta plumbing behind them
//! ([`meta`]), and moor's own `moor.io/v1` types: read-only views ([`scheduled`]) and
//! garbage collection requests ([`prune`]), notifications ([`notification`]),
//! `meta.k8s.io/v1` Tables ([`table`]), durations and sizes for people ([`humanize`]),
//! OpenShift's `config.openshift.io/v1` signature policies ([`config`]), and the
//! decision core of
//! authorization: Kubernetes RBAC, moor's bootstrap policy and registry permissions
//! ([`authz`]). Nothing here does IO: no files, network or async.

#![warn(missing_docs)]

pub mod authz;
pub mod config;
pub mod humanize;
pub mod image;
pub mod labels;
pub mod lookup;
pub mod media_types;
pub mod meta;
pub mod notification;
pub mod prune;
pub mod reference;
pub mod scheduled;
pub mod table;
pub mod validation;

pub use reference::{Digest, DigestAlgorithm, DockerImageReference, ReferenceError};

/// The k8s-openapi crate these types are built on, re-exported so that users name
/// the same version.
pub use k8s_openapi;
