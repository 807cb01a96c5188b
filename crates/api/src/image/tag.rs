//! The views of one tag or one image of a stream: `ImageStreamTag` (`stream:tag`),
//! `ImageStreamImage` (`stream@digest`) and `ImageStreamMapping` (push a tag).
//! IO-free data types.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::serde_helpers::{deserialize_null_as_default, serialize_nested};
use crate::meta::{ApiVersionField, KindField};

use super::{Image, ImageLookupPolicy, TagEventCondition, TagReference};

/// ImageStreamTag represents an Image that is retrieved by tag name from an
/// ImageStream. Use this resource to interact with the tags and images in an image
/// stream by tag, or to see the image details for a particular tag. The image
/// associated with this resource is the most recently successfully tagged, imported, or
/// pushed image (as described in the image stream status.tags.items list for this tag).
/// If an import is in progress or has failed the previous image will be shown. Deleting
/// an image stream tag clears both the status and spec fields of an image stream. If no
/// image can be retrieved for a given tag, a not found error will be returned.
///
/// Compatibility level 1: Stable within a major release for a minimum of 12 months or 3
/// minor releases (whichever is longer).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.ImageStreamTag")]
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
    /// tag is the spec tag associated with this image stream tag, and it may be null if
    /// only pushes have occurred to this image stream.
    // moor: The spec tag, or `None` if the tag only exists in status (pushed). Written
    // moor: as `null` when `None`.
    #[serde(default)]
    pub tag: Option<TagReference>,
    /// generation is the current generation of the tagged image - if tag is provided
    /// and this value is not equal to the tag generation, a user has requested an
    /// import that has not completed, or conditions will be filled out indicating any
    /// error.
    #[serde(default)]
    pub generation: i64,
    /// lookupPolicy indicates whether this tag will handle image references in this
    /// namespace.
    #[serde(rename = "lookupPolicy", default)]
    pub lookup_policy: ImageLookupPolicy,
    /// conditions is an array of conditions that apply to the image stream tag.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub conditions: Vec<TagEventCondition>,
    /// image associated with the ImageStream and tag.
    #[serde(default, serialize_with = "serialize_nested")]
    pub image: Image,
}

super::image_resource!(ImageStreamTag, kind: "ImageStreamTag", plural: "imagestreamtags", scope: NamespaceResourceScope, list: "ImageStreamTagList");

/// ImageStreamImage represents an Image that is retrieved by image name from an
/// ImageStream. User interfaces and regular users can use this resource to access the
/// metadata details of a tagged image in the image stream history for viewing, since
/// Image resources are not directly accessible to end users. A not found error will be
/// returned if no such image is referenced by a tag within the ImageStream. Images are
/// created when spec tags are set on an image stream that represent an image in an
/// external registry, when pushing to the integrated registry, or when tagging an
/// existing image from one image stream to another. The name of an image stream image
/// is in the form "<STREAM>@<DIGEST>", where the digest is the content addressible
/// identifier for the image (sha256:xxxxx...). You can use ImageStreamImages as the
/// from.kind of an image stream spec tag to reference an image exactly. The only
/// operations supported on the imagestreamimage endpoint are retrieving the image.
///
/// Compatibility level 1: Stable within a major release for a minimum of 12 months or 3
/// minor releases (whichever is longer).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.ImageStreamImage")]
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
    /// Image associated with the ImageStream and image name.
    #[serde(default, serialize_with = "serialize_nested")]
    pub image: Image,
}

super::image_resource!(ImageStreamImage, kind: "ImageStreamImage", plural: "imagestreamimages", scope: NamespaceResourceScope);

/// ImageStreamMapping represents a mapping from a single image stream tag to a
/// container image as well as the reference to the container image stream the image
/// came from. This resource is used by privileged integrators to create an image
/// resource and to associate it with an image stream in the status tags field. Creating
/// an ImageStreamMapping will allow any user who can view the image stream to tag or
/// pull that image, so only create mappings where the user has proven they have access
/// to the image contents directly. The only operation supported for this resource is
/// create and the metadata name and namespace should be set to the image stream
/// containing the tag that should be updated.
///
/// Compatibility level 1: Stable within a major release for a minimum of 12 months or 3
/// minor releases (whichever is longer).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.ImageStreamMapping")]
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
    /// Image is a container image.
    #[serde(default, serialize_with = "serialize_nested")]
    pub image: Image,
    /// Tag is a string value this image can be located with inside the stream.
    #[serde(default)]
    pub tag: String,
}

super::image_resource!(ImageStreamMapping, kind: "ImageStreamMapping", plural: "imagestreammappings", scope: NamespaceResourceScope);
