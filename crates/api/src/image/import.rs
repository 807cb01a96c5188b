//! `ImageStreamImport`: a request to look up (and optionally import into a stream)
//! images or a whole repository from a registry, and its result. IO-free data types.

use k8s_openapi::api::core::v1::{LocalObjectReference, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Status};
use serde::{Deserialize, Serialize};

use crate::meta::serde_helpers::{
    deserialize_null_as_default, is_false, serialize_nested, serialize_nested_opt,
    serialize_nested_vec,
};
use crate::meta::{ApiVersionField, KindField};

use super::{Image, ImageStream, TagImportPolicy, TagReferencePolicy};

/// Import images into the stream named by `metadata.name` (when `spec.import` is
/// true), or only look them up. Create-only; the response carries the status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageStreamImport {
    /// Always `ImageStreamImport`.
    #[serde(default)]
    pub kind: KindField<ImageStreamImport>,
    /// Always `image.openshift.io/v1`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: ApiVersionField<ImageStreamImport>,
    /// Standard object metadata; the name is the target stream's.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What to import.
    #[serde(default)]
    pub spec: ImageStreamImportSpec,
    /// The result.
    #[serde(default)]
    pub status: ImageStreamImportStatus,
}

super::image_resource!(ImageStreamImport, kind: "ImageStreamImport", plural: "imagestreamimports", scope: NamespaceResourceScope);

/// What an [`ImageStreamImport`] asks for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageStreamImportSpec {
    /// Whether to write the results into the stream's spec and status.
    #[serde(default)]
    pub import: bool,
    /// A whole repository to import (up to a server limit of tags).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<RepositoryImportSpec>,
    /// Individual images to import.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub images: Vec<ImageImportSpec>,
}

/// The result of an [`ImageStreamImport`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageStreamImportStatus {
    /// The stream as updated, when `spec.import` was true.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_nested_opt"
    )]
    pub import: Option<ImageStream>,
    /// The result of `spec.repository`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<RepositoryImportStatus>,
    /// The result of each `spec.images` entry, in the same order.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub images: Vec<ImageImportStatus>,
}

/// A repository to import.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RepositoryImportSpec {
    /// The repository: kind `DockerImage`, name without tag or digest.
    #[serde(default)]
    pub from: ObjectReference,
    /// How to import.
    #[serde(rename = "importPolicy", default)]
    pub import_policy: TagImportPolicy,
    /// How consumers pull the result.
    #[serde(rename = "referencePolicy", default)]
    pub reference_policy: TagReferencePolicy,
    /// Return each manifest in the response.
    #[serde(rename = "includeManifest", default, skip_serializing_if = "is_false")]
    pub include_manifest: bool,
}

/// The result of a repository import.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RepositoryImportStatus {
    /// Whether the repository could be read.
    #[serde(default, serialize_with = "serialize_nested")]
    pub status: Status,
    /// The images found.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub images: Vec<ImageImportStatus>,
    /// Tags that exist but were not imported because of the limit.
    #[serde(
        rename = "additionalTags",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub additional_tags: Vec<String>,
}

/// One image to import.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageImportSpec {
    /// The source: kind `DockerImage` and a pull spec.
    #[serde(default)]
    pub from: ObjectReference,
    /// The tag to write the result to (defaults to the source's tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<LocalObjectReference>,
    /// How to import.
    #[serde(rename = "importPolicy", default)]
    pub import_policy: TagImportPolicy,
    /// How consumers pull the result.
    #[serde(rename = "referencePolicy", default)]
    pub reference_policy: TagReferencePolicy,
    /// Return the manifest in the response.
    #[serde(rename = "includeManifest", default, skip_serializing_if = "is_false")]
    pub include_manifest: bool,
}

/// The result of importing one image.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageImportStatus {
    /// `Success`, or `Failure` with reason and message.
    #[serde(default, serialize_with = "serialize_nested")]
    pub status: Status,
    /// The image, when found.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_nested_opt"
    )]
    pub image: Option<Image>,
    /// The tag the image was found under.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
    /// The sub-manifests, when a manifest list was imported whole.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "serialize_nested_vec",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub manifests: Vec<Image>,
}
