//! `ImageStream` and the parts of its spec and status: tag references, import and
//! reference policies, tag history and conditions. IO-free data types.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::serde_helpers::{
    deserialize_null_as_default, deserialize_opt_nonempty, is_false, serialize_opt_as_empty,
    serialize_vec_null_if_empty,
};
use crate::meta::{ApiVersionField, KindField, string_enum};

/// An ImageStream stores a mapping of tags to images, metadata overrides that are
/// applied when images are tagged in a stream, and an optional reference to a container
/// image repository on a registry. Users typically update the spec.tags field to point
/// to external images which are imported from container registries using credentials in
/// your namespace with the pull secret type, or to existing image stream tags and
/// images which are immediately accessible for tagging or pulling. The history of
/// images applied to a tag is visible in the status.tags field and any user who can
/// view an image stream is allowed to tag that image into their own image streams.
/// Access to pull images from the integrated registry is granted by having the "get
/// imagestreams/layers" permission on a given image stream. Users may remove a tag by
/// deleting the imagestreamtag resource, which causes both spec and status for that tag
/// to be removed. Image stream history is retained until an administrator runs the
/// prune operation, which removes references that are no longer in use. To preserve a
/// historical image, ensure there is a tag in spec pointing to that image by its
/// digest.
///
/// Compatibility level 1: Stable within a major release for a minimum of 12 months or 3
/// minor releases (whichever is longer).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.ImageStream")]
pub struct ImageStream {
    /// Always `ImageStream`.
    #[serde(default)]
    pub kind: KindField<ImageStream>,
    /// Always `image.openshift.io/v1`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: ApiVersionField<ImageStream>,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Spec describes the desired state of this stream
    #[serde(default)]
    pub spec: ImageStreamSpec,
    /// Status describes the current state of this stream
    #[serde(default)]
    pub status: ImageStreamStatus,
}

super::image_resource!(ImageStream, kind: "ImageStream", plural: "imagestreams", scope: NamespaceResourceScope, list: "ImageStreamList");

impl ImageStream {
    /// The spec tag named `name`.
    pub fn spec_tag(&self, name: &str) -> Option<&TagReference> {
        self.spec.tags.iter().find(|t| t.name == name)
    }

    /// The spec tags by name (the first of a name, as [`Self::spec_tag`] finds it):
    /// for looking up every tag of a large stream in linear time.
    pub fn spec_tags_by_name(&self) -> std::collections::HashMap<&str, &TagReference> {
        let mut by_name = std::collections::HashMap::with_capacity(self.spec.tags.len());
        for t in &self.spec.tags {
            by_name.entry(t.name.as_str()).or_insert(t);
        }
        by_name
    }

    /// The spec tag named `name`, mutable.
    pub fn spec_tag_mut(&mut self, name: &str) -> Option<&mut TagReference> {
        self.spec.tags.iter_mut().find(|t| t.name == name)
    }

    /// The status history of tag `tag`.
    pub fn status_tag(&self, tag: &str) -> Option<&NamedTagEventList> {
        self.status.tags.iter().find(|t| t.tag == tag)
    }

    /// The status history of tag `tag`, mutable.
    pub fn status_tag_mut(&mut self, tag: &str) -> Option<&mut NamedTagEventList> {
        self.status.tags.iter_mut().find(|t| t.tag == tag)
    }

    /// The current image of tag `tag`: the first (newest) history entry.
    pub fn latest_tagged_image(&self, tag: &str) -> Option<&TagEvent> {
        self.status_tag(tag).and_then(|t| t.items.first())
    }
}

/// ImageStreamSpec represents options for ImageStreams.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.ImageStreamSpec")]
pub struct ImageStreamSpec {
    /// lookupPolicy controls how other resources reference images within this
    /// namespace.
    #[serde(rename = "lookupPolicy", default)]
    pub lookup_policy: ImageLookupPolicy,
    /// dockerImageRepository is optional, if specified this stream is backed by a
    /// container repository on this server Deprecated: This field is deprecated as of
    /// v3.7 and will be removed in a future release. Specify the source for the tags to
    /// be imported in each tag via the spec.tags.from reference instead.
    #[serde(
        rename = "dockerImageRepository",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub docker_image_repository: String,
    /// tags map arbitrary string values to specific image locators
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    #[schemars(extend("x-kubernetes-patch-strategy" = "merge", "x-kubernetes-patch-merge-key" = "name"))]
    pub tags: Vec<TagReference>,
}

/// ImageLookupPolicy describes how an image stream can be used to override the image
/// references used by pods, builds, and other resources in a namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.ImageLookupPolicy")]
pub struct ImageLookupPolicy {
    /// local will change the docker short image references (like "mysql" or
    /// "php:latest") on objects in this namespace to the image ID whenever they match
    /// this image stream, instead of reaching out to a remote registry. The name will
    /// be fully qualified to an image ID if found. The tag's referencePolicy is taken
    /// into account on the replaced value. Only works within the current namespace.
    #[serde(default)]
    pub local: bool,
}

/// TagReference specifies optional annotations for images using this tag and an
/// optional reference to an ImageStreamTag, ImageStreamImage, or DockerImage this tag
/// should track.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.TagReference")]
pub struct TagReference {
    /// Name of the tag
    #[serde(default)]
    pub name: String,
    /// Optional; if specified, annotations that are applied to images retrieved via
    /// ImageStreamTags.
    // moor: Annotations for the images this tag yields. Written as `null` when `None`.
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Optional; if specified, a reference to another image that this tag should point
    /// to. Valid values are ImageStreamTag, ImageStreamImage, and DockerImage.
    /// ImageStreamTag references can only reference a tag within this same ImageStream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ObjectReference>,
    /// Reference states if the tag will be imported. Default value is false, which
    /// means the tag will be imported.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reference: bool,
    /// Generation is a counter that tracks mutations to the spec tag (user intent).
    /// When a tag reference is changed the generation is set to match the current
    /// stream generation (which is incremented every time spec is changed). Other
    /// processes in the system like the image importer observe that the generation of
    /// spec tag is newer than the generation recorded in the status and use that as a
    /// trigger to import the newest remote tag. To trigger a new import, clients may
    /// set this value to zero which will reset the generation to the latest stream
    /// generation. Legacy clients will send this value as nil which will be merged with
    /// the current tag generation.
    // moor: The stream generation at which this tag last changed; `0` asks for a
    // moor: re-import. Written as `null` when `None`.
    #[serde(default)]
    pub generation: Option<i64>,
    /// ImportPolicy is information that controls how images may be imported by the
    /// server.
    #[serde(rename = "importPolicy", default)]
    pub import_policy: TagImportPolicy,
    /// ReferencePolicy defines how other components should consume the image.
    #[serde(rename = "referencePolicy", default)]
    pub reference_policy: TagReferencePolicy,
}

impl TagReference {
    /// The `from.kind`, or `""`.
    pub fn from_kind(&self) -> &str {
        self.from
            .as_ref()
            .and_then(|f| f.kind.as_deref())
            .unwrap_or("")
    }

    /// The `from.name`, or `""`.
    pub fn from_name(&self) -> &str {
        self.from
            .as_ref()
            .and_then(|f| f.name.as_deref())
            .unwrap_or("")
    }
}

/// TagImportPolicy controls how images related to this tag will be imported.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.TagImportPolicy")]
pub struct TagImportPolicy {
    /// Insecure is true if the server may bypass certificate verification or connect
    /// directly over HTTP during image import.
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure: bool,
    /// Scheduled indicates to the server that this tag should be periodically checked
    /// to ensure it is up to date, and imported
    #[serde(default, skip_serializing_if = "is_false")]
    pub scheduled: bool,
    /// ImportMode describes how to import an image manifest.
    #[serde(
        rename = "importMode",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_opt_nonempty"
    )]
    pub import_mode: Option<ImportMode>,
}

string_enum! {
    /// How an image manifest list is imported (`importPolicy.importMode`).
    ImportMode {
        /// Import one sub-manifest of a manifest list (by platform); the default.
        #[default]
        Legacy => "Legacy",
        /// Import the manifest list and all its sub-manifests.
        PreserveOriginal => "PreserveOriginal",
    }
}

/// TagReferencePolicy describes how pull-specs for images in this image stream tag are
/// generated when image change triggers in deployment configs or builds are resolved.
/// This allows the image stream author to control how images are accessed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.TagReferencePolicy")]
pub struct TagReferencePolicy {
    /// Type determines how the image pull spec should be transformed when the image
    /// stream tag is used in deployment config triggers or new builds. The default
    /// value is `Source`, indicating the original location of the image should be used
    /// (if imported). The user may also specify `Local`, indicating that the pull spec
    /// should point to the integrated container image registry and leverage the
    /// registry's ability to proxy the pull to an upstream registry. `Local` allows the
    /// credentials used to pull this image to be managed from the image stream's
    /// namespace, so others on the platform can access a remote image but have no
    /// access to the remote secret. It also allows the image layers to be mirrored into
    /// the local registry which the images can still be pulled even if the upstream
    /// registry is unavailable.
    // moor: `Source` (the image's original location) or `Local` (this server's
    // moor: registry). Always written; `None` is written as `""`.
    #[serde(
        rename = "type",
        default,
        serialize_with = "serialize_opt_as_empty",
        deserialize_with = "deserialize_opt_nonempty"
    )]
    pub type_: Option<TagReferencePolicyType>,
}

string_enum! {
    /// The kind of a [`TagReferencePolicy`].
    TagReferencePolicyType {
        /// Use the image's original pull spec; the default.
        #[default]
        Source => "Source",
        /// Use `<registry-hostname>/<namespace>/<stream>@<digest>` from this server.
        Local => "Local",
    }
}

/// ImageStreamStatus contains information about the state of this image stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.ImageStreamStatus")]
pub struct ImageStreamStatus {
    /// DockerImageRepository represents the effective location this stream may be
    /// accessed at. May be empty until the server determines where the repository is
    /// located
    // moor: Where this stream can be pulled from (`<registry-hostname>/<ns>/<name>`).
    // moor: Always written.
    #[serde(rename = "dockerImageRepository", default)]
    pub docker_image_repository: String,
    /// PublicDockerImageRepository represents the public location from where the image
    /// can be pulled outside the cluster. This field may be empty if the administrator
    /// has not exposed the integrated registry externally.
    #[serde(
        rename = "publicDockerImageRepository",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub public_docker_image_repository: String,
    /// Tags are a historical record of images associated with each tag. The first entry
    /// in the TagEvent array is the currently tagged image.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    #[schemars(extend("x-kubernetes-patch-strategy" = "merge", "x-kubernetes-patch-merge-key" = "tag"))]
    pub tags: Vec<NamedTagEventList>,
}

/// NamedTagEventList relates a tag to its image history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.NamedTagEventList")]
pub struct NamedTagEventList {
    /// Tag is the tag for which the history is recorded
    #[serde(default)]
    pub tag: String,
    /// Standard object's metadata.
    // moor: The images this tag has pointed at, newest first. Written as `null` when
    // moor: empty (Go's nil slice, as after a failed first import).
    #[serde(
        default,
        serialize_with = "serialize_vec_null_if_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub items: Vec<TagEvent>,
    /// Conditions is an array of conditions that apply to the tag event list.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub conditions: Vec<TagEventCondition>,
}

impl NamedTagEventList {
    /// The condition of type `type_`.
    pub fn condition(&self, type_: &TagEventConditionType) -> Option<&TagEventCondition> {
        self.conditions.iter().find(|c| &c.type_ == type_)
    }
}

/// TagEvent is used by ImageStreamStatus to keep a historical record of images
/// associated with a tag.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.TagEvent")]
pub struct TagEvent {
    /// Created holds the time the TagEvent was created
    // moor: When the entry was created. Written as `null` when `None`.
    #[serde(default)]
    pub created: Option<Time>,
    /// DockerImageReference is the string that can be used to pull this image
    #[serde(rename = "dockerImageReference", default)]
    pub docker_image_reference: String,
    /// Image is the image
    #[serde(default)]
    pub image: String,
    /// Generation is the spec tag generation that resulted in this tag being updated
    #[serde(default)]
    pub generation: i64,
    /// Platforms is all platforms supported by the image in this tag as a list of
    /// "os/architecture" strings
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub platforms: Vec<String>,
}

string_enum! {
    /// The type of a [`TagEventCondition`].
    TagEventConditionType {
        /// `False` when the last import of the tag failed.
        #[default]
        ImportSuccess => "ImportSuccess",
    }
}

string_enum! {
    /// The status of a condition (Kubernetes `ConditionStatus`).
    ConditionStatus {
        /// The condition holds.
        True => "True",
        /// The condition does not hold.
        False => "False",
        /// Not known.
        #[default]
        Unknown => "Unknown",
    }
}

/// TagEventCondition contains condition information for a tag event.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.TagEventCondition")]
pub struct TagEventCondition {
    /// Type of tag event condition, currently only ImportSuccess
    #[serde(rename = "type", default)]
    pub type_: TagEventConditionType,
    /// Status of the condition, one of True, False, Unknown.
    #[serde(default)]
    pub status: ConditionStatus,
    /// LastTransitionTIme is the time the condition transitioned from one status to
    /// another.
    // moor: When the status last changed. Written as `null` when `None`.
    #[serde(rename = "lastTransitionTime", default)]
    pub last_transition_time: Option<Time>,
    /// Reason is a brief machine readable explanation for the condition's last
    /// transition.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Message is a human readable description of the details about last transition,
    /// complementing reason.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Generation is the spec tag generation that this status corresponds to
    #[serde(default)]
    pub generation: i64,
}
