//! `ImageStream` and the parts of its spec and status: tag references, import and
//! reference policies, tag history and conditions. IO-free data types.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Serialize};

use crate::meta::serde_helpers::{
    deserialize_null_as_default, deserialize_opt_nonempty, is_false, serialize_opt_as_empty,
    serialize_vec_null_if_empty,
};
use crate::meta::{ApiVersionField, KindField, string_enum};

/// A stream of images: spec tags that say where each tag's image comes from, and a
/// status with the history of images each tag has pointed at (newest first).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    /// The desired state: tags and lookup policy.
    #[serde(default)]
    pub spec: ImageStreamSpec,
    /// The observed state: tag history and the stream's repository.
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

/// The desired state of an image stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageStreamSpec {
    /// Whether short names in workloads of this namespace resolve through this stream.
    #[serde(rename = "lookupPolicy", default)]
    pub lookup_policy: ImageLookupPolicy,
    /// Deprecated: a repository whose tags are all imported.
    #[serde(
        rename = "dockerImageRepository",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub docker_image_repository: String,
    /// The tags, each pointing at an image source.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub tags: Vec<TagReference>,
}

/// How other resources in the namespace may use this stream's tags by short name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageLookupPolicy {
    /// When true, short names such as `mysql:8` in workloads of this namespace are
    /// rewritten to the tag's pinned pull spec.
    #[serde(default)]
    pub local: bool,
}

/// A spec tag: its name, where its image comes from, and how it is imported and used.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TagReference {
    /// The tag name.
    #[serde(default)]
    pub name: String,
    /// Annotations for the images this tag yields. Written as `null` when `None`.
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The image source: kind `DockerImage`, `ImageStreamTag` or `ImageStreamImage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ObjectReference>,
    /// When true, the tag is a reference only and is not imported.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reference: bool,
    /// The stream generation at which this tag last changed; `0` asks for a
    /// re-import. Written as `null` when `None`.
    #[serde(default)]
    pub generation: Option<i64>,
    /// How the image is imported.
    #[serde(rename = "importPolicy", default)]
    pub import_policy: TagImportPolicy,
    /// How consumers pull the image.
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

/// Controls how a tag's image is imported.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagImportPolicy {
    /// Allow plain HTTP or unverified TLS when importing.
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure: bool,
    /// Re-import periodically.
    #[serde(default, skip_serializing_if = "is_false")]
    pub scheduled: bool,
    /// How a manifest list is imported; `None` is written as an absent field and
    /// defaults to [`ImportMode::Legacy`].
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

/// Controls how pull specs for a tag's images are written for consumers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagReferencePolicy {
    /// `Source` (the image's original location) or `Local` (this server's registry).
    /// Always written; `None` is written as `""`.
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

/// The observed state of an image stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageStreamStatus {
    /// Where this stream can be pulled from (`<registry-hostname>/<ns>/<name>`).
    /// Always written.
    #[serde(rename = "dockerImageRepository", default)]
    pub docker_image_repository: String,
    /// Where this stream can be pulled from outside the cluster, if exposed.
    #[serde(
        rename = "publicDockerImageRepository",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub public_docker_image_repository: String,
    /// The history of each tag.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub tags: Vec<NamedTagEventList>,
}

/// The image history of one tag.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedTagEventList {
    /// The tag.
    #[serde(default)]
    pub tag: String,
    /// The images this tag has pointed at, newest first. Written as `null` when empty
    /// (Go's nil slice, as after a failed first import).
    #[serde(
        default,
        serialize_with = "serialize_vec_null_if_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub items: Vec<TagEvent>,
    /// Conditions about this tag, such as a failed import.
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

/// One entry of a tag's history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TagEvent {
    /// When the entry was created. Written as `null` when `None`.
    #[serde(default)]
    pub created: Option<Time>,
    /// The pull spec of the image, per the tag's reference policy.
    #[serde(rename = "dockerImageReference", default)]
    pub docker_image_reference: String,
    /// The image name (its digest).
    #[serde(default)]
    pub image: String,
    /// The spec tag generation that produced this entry.
    #[serde(default)]
    pub generation: i64,
    /// The platforms of the image, as `os/architecture` strings.
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

/// A condition on a tag's history, such as `ImportSuccess=False`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TagEventCondition {
    /// The condition type.
    #[serde(rename = "type", default)]
    pub type_: TagEventConditionType,
    /// `True`, `False` or `Unknown`.
    #[serde(default)]
    pub status: ConditionStatus,
    /// When the status last changed. Written as `null` when `None`.
    #[serde(rename = "lastTransitionTime", default)]
    pub last_transition_time: Option<Time>,
    /// A machine-readable reason, e.g. `NotFound`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// A human-readable message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The spec tag generation this condition is about.
    #[serde(default)]
    pub generation: i64,
}
