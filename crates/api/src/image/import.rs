//! `ImageStreamImport`: a request to look up (and optionally import into a stream)
//! images or a whole repository from a registry, and its result. IO-free data types.

use k8s_openapi::api::core::v1::{LocalObjectReference, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Status};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::serde_helpers::{
    deserialize_null_as_default, is_false, serialize_nested, serialize_nested_opt,
    serialize_nested_vec,
};
use crate::meta::{ApiVersionField, KindField};

use super::{Image, ImageStream, TagImportPolicy, TagReferencePolicy};

/// The image stream import resource provides an easy way for a user to find and import
/// container images from other container image registries into the server. Individual
/// images or an entire image repository may be imported, and users may choose to see
/// the results of the import prior to tagging the resulting images into the specified
/// image stream.
///
/// This API is intended for end-user tools that need to see the metadata of the image
/// prior to import (for instance, to generate an application from it). Clients that
/// know the desired image can continue to create spec.tags directly into their image
/// streams.
///
/// Compatibility level 1: Stable within a major release for a minimum of 12 months or 3
/// minor releases (whichever is longer).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.ImageStreamImport")]
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
    /// Spec is a description of the images that the user wishes to import
    #[serde(default)]
    pub spec: ImageStreamImportSpec,
    /// Status is the result of importing the image
    #[serde(default)]
    pub status: ImageStreamImportStatus,
}

super::image_resource!(ImageStreamImport, kind: "ImageStreamImport", plural: "imagestreamimports", scope: NamespaceResourceScope);

/// ImageStreamImportSpec defines what images should be imported.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.ImageStreamImportSpec")]
pub struct ImageStreamImportSpec {
    /// Import indicates whether to perform an import - if so, the specified tags are
    /// set on the spec and status of the image stream defined by the type meta.
    #[serde(default)]
    pub import: bool,
    /// Repository is an optional import of an entire container image repository. A
    /// maximum limit on the number of tags imported this way is imposed by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<RepositoryImportSpec>,
    /// Images are a list of individual images to import.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub images: Vec<ImageImportSpec>,
}

/// ImageStreamImportStatus contains information about the status of an image stream
/// import.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.ImageStreamImportStatus")]
pub struct ImageStreamImportStatus {
    /// Import is the image stream that was successfully updated or created when 'to'
    /// was set.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_nested_opt"
    )]
    pub import: Option<ImageStream>,
    /// Repository is set if spec.repository was set to the outcome of the import
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<RepositoryImportStatus>,
    /// Images is set with the result of importing spec.images
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub images: Vec<ImageImportStatus>,
}

/// RepositoryImportSpec describes a request to import images from a container image
/// repository.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.RepositoryImportSpec")]
pub struct RepositoryImportSpec {
    /// From is the source for the image repository to import; only kind DockerImage and
    /// a name of a container image repository is allowed
    #[serde(default)]
    pub from: ObjectReference,
    /// ImportPolicy is the policy controlling how the image is imported
    #[serde(rename = "importPolicy", default)]
    pub import_policy: TagImportPolicy,
    /// ReferencePolicy defines how other components should consume the image
    #[serde(rename = "referencePolicy", default)]
    pub reference_policy: TagReferencePolicy,
    /// IncludeManifest determines if the manifest for each image is returned in the
    /// response
    #[serde(rename = "includeManifest", default, skip_serializing_if = "is_false")]
    pub include_manifest: bool,
}

/// RepositoryImportStatus describes the result of an image repository import
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.RepositoryImportStatus")]
pub struct RepositoryImportStatus {
    /// Status reflects whether any failure occurred during import
    #[serde(default, serialize_with = "serialize_nested")]
    pub status: Status,
    /// Images is a list of images successfully retrieved by the import of the
    /// repository.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub images: Vec<ImageImportStatus>,
    /// AdditionalTags are tags that exist in the repository but were not imported
    /// because a maximum limit of automatic imports was applied.
    #[serde(
        rename = "additionalTags",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub additional_tags: Vec<String>,
}

/// ImageImportSpec describes a request to import a specific image.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.ImageImportSpec")]
pub struct ImageImportSpec {
    /// From is the source of an image to import; only kind DockerImage is allowed
    #[serde(default)]
    pub from: ObjectReference,
    /// To is a tag in the current image stream to assign the imported image to, if name
    /// is not specified the default tag from from.name will be used
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<LocalObjectReference>,
    /// ImportPolicy is the policy controlling how the image is imported
    #[serde(rename = "importPolicy", default)]
    pub import_policy: TagImportPolicy,
    /// ReferencePolicy defines how other components should consume the image
    #[serde(rename = "referencePolicy", default)]
    pub reference_policy: TagReferencePolicy,
    /// IncludeManifest determines if the manifest for each image is returned in the
    /// response
    #[serde(rename = "includeManifest", default, skip_serializing_if = "is_false")]
    pub include_manifest: bool,
}

/// ImageImportStatus describes the result of an image import.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.ImageImportStatus")]
pub struct ImageImportStatus {
    /// Status is the status of the image import, including errors encountered while
    /// retrieving the image
    #[serde(default, serialize_with = "serialize_nested")]
    pub status: Status,
    /// Image is the metadata of that image, if the image was located
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_nested_opt"
    )]
    pub image: Option<Image>,
    /// Tag is the tag this image was located under, if any
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
    /// Manifests holds sub-manifests metadata when importing a manifest list
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "serialize_nested_vec",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub manifests: Vec<Image>,
}
