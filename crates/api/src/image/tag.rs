//! The views of one tag or one image of a stream: `ImageStreamTag` (`stream:tag`),
//! `ImageStreamImage` (`stream@digest`) and `ImageStreamMapping` (push a tag).
//! IO-free data types.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::meta::serde_helpers::{deserialize_null_as_default, serialize_nested};
use crate::meta::{ApiVersionField, KindField};

use super::{Image, ImageLookupPolicy, TagEventCondition, TagReference};

/// One tag of a stream with its current image; named `<stream>:<tag>`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageStreamTag {
    /// Always `ImageStreamTag`.
    #[serde(default)]
    pub kind: KindField<ImageStreamTag>,
    /// Always `image.openshift.io/v1`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: ApiVersionField<ImageStreamTag>,
    /// Standard object metadata; the name is `<stream>:<tag>`.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The spec tag, or `None` if the tag only exists in status (pushed). Written as
    /// `null` when `None`.
    #[serde(default)]
    pub tag: Option<TagReference>,
    /// The generation of the current image of the tag.
    #[serde(default)]
    pub generation: i64,
    /// The stream's lookup policy.
    #[serde(rename = "lookupPolicy", default)]
    pub lookup_policy: ImageLookupPolicy,
    /// Conditions of the tag, such as a failed import.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub conditions: Vec<TagEventCondition>,
    /// The current image of the tag.
    #[serde(default, serialize_with = "serialize_nested")]
    pub image: Image,
}

super::image_resource!(ImageStreamTag, kind: "ImageStreamTag", plural: "imagestreamtags", scope: NamespaceResourceScope, list: "ImageStreamTagList");

/// One image of a stream's history; named `<stream>@<digest>`. Read-only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageStreamImage {
    /// Always `ImageStreamImage`.
    #[serde(default)]
    pub kind: KindField<ImageStreamImage>,
    /// Always `image.openshift.io/v1`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: ApiVersionField<ImageStreamImage>,
    /// Standard object metadata; the name is `<stream>@<digest>`.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The image.
    #[serde(default, serialize_with = "serialize_nested")]
    pub image: Image,
}

super::image_resource!(ImageStreamImage, kind: "ImageStreamImage", plural: "imagestreamimages", scope: NamespaceResourceScope);

/// A request to record `image` as the newest entry of `tag` in the stream named by
/// `metadata.name` (what a registry push does). Create-only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageStreamMapping {
    /// Always `ImageStreamMapping`.
    #[serde(default)]
    pub kind: KindField<ImageStreamMapping>,
    /// Always `image.openshift.io/v1`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: ApiVersionField<ImageStreamMapping>,
    /// Standard object metadata; the name is the stream's.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The image to record.
    #[serde(default, serialize_with = "serialize_nested")]
    pub image: Image,
    /// The tag to record it under.
    #[serde(default)]
    pub tag: String,
}

super::image_resource!(ImageStreamMapping, kind: "ImageStreamMapping", plural: "imagestreammappings", scope: NamespaceResourceScope);
