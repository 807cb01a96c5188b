//! `Image` (an immutable image named by its digest), its layers, sub-manifests and
//! signatures, and the Docker 1.0 metadata object it embeds. IO-free data types.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::serde_helpers::{
    deserialize_null_as_default, is_false, is_zero, serialize_nested_vec,
};
use crate::meta::{ApiVersionField, KindField, TypeInfo};

use super::ConditionStatus;

/// Image is an immutable representation of a container image and metadata at a point in
/// time. Images are named by taking a hash of their contents (metadata and content) and
/// any change in format, content, or metadata results in a new name. The images
/// resource is primarily for use by cluster administrators and integrations like the
/// cluster image registry - end users instead access images via the imagestreamtags or
/// imagestreamimages resources. While image metadata is stored in the API, any
/// integration that implements the container image registry API must provide its own
/// storage for the raw manifest data, image config, and layer contents.
///
/// Compatibility level 1: Stable within a major release for a minimum of 12 months or 3
/// minor releases (whichever is longer).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.Image")]
pub struct Image {
    /// Always `Image`.
    #[serde(default)]
    pub kind: KindField<Image>,
    /// Always `image.openshift.io/v1`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: ApiVersionField<Image>,
    /// Standard object metadata; the name is the manifest digest.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// DockerImageReference is the string that can be used to pull this image.
    #[serde(
        rename = "dockerImageReference",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub docker_image_reference: String,
    /// DockerImageMetadata contains metadata about this image
    #[serde(
        rename = "dockerImageMetadata",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(extend("x-kubernetes-patch-strategy" = "replace"))]
    pub docker_image_metadata: Option<DockerImageMetadata>,
    /// DockerImageMetadataVersion conveys the version of the object, which if empty
    /// defaults to "1.0"
    #[serde(
        rename = "dockerImageMetadataVersion",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub docker_image_metadata_version: String,
    /// DockerImageManifest is the raw JSON of the manifest
    #[serde(
        rename = "dockerImageManifest",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub docker_image_manifest: String,
    /// DockerImageLayers represents the layers in the image. May not be set if the
    /// image does not define that data or if the image represents a manifest list.
    #[serde(
        rename = "dockerImageLayers",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub docker_image_layers: Vec<ImageLayer>,
    /// Signatures holds all signatures of the image.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "serialize_nested_vec",
        deserialize_with = "deserialize_null_as_default"
    )]
    #[schemars(extend("x-kubernetes-patch-strategy" = "merge", "x-kubernetes-patch-merge-key" = "name"))]
    pub signatures: Vec<ImageSignature>,
    /// DockerImageSignatures provides the signatures as opaque blobs. This is a part of
    /// manifest schema v1.
    #[serde(
        rename = "dockerImageSignatures",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    #[schemars(schema_with = "crate::meta::schema::bytes_list")]
    pub docker_image_signatures: Vec<ByteString>,
    /// DockerImageManifestMediaType specifies the mediaType of manifest. This is a part
    /// of manifest schema v2.
    #[serde(
        rename = "dockerImageManifestMediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub docker_image_manifest_media_type: String,
    /// DockerImageConfig is a JSON blob that the runtime uses to set up the container.
    /// This is a part of manifest schema v2. Will not be set when the image represents
    /// a manifest list.
    #[serde(
        rename = "dockerImageConfig",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub docker_image_config: String,
    /// DockerImageManifests holds information about sub-manifests when the image
    /// represents a manifest list. When this field is present, no DockerImageLayers
    /// should be specified.
    #[serde(
        rename = "dockerImageManifests",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub docker_image_manifests: Vec<ImageManifest>,
}

super::image_resource!(Image, kind: "Image", plural: "images", scope: ClusterResourceScope, list: "ImageList");

impl Image {
    /// Whether this image is a manifest list (it has sub-manifests).
    pub fn is_manifest_list(&self) -> bool {
        !self.docker_image_manifests.is_empty()
    }
}

/// ImageLayer represents a single layer of the image. Some images may have multiple
/// layers. Some may have none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.ImageLayer")]
pub struct ImageLayer {
    /// Name of the layer as defined by the underlying store.
    #[serde(default)]
    pub name: String,
    /// Size of the layer in bytes as defined by the underlying store.
    #[serde(default)]
    pub size: i64,
    /// MediaType of the referenced object.
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
}

/// ImageManifest represents sub-manifests of a manifest list. The Digest field points
/// to a regular Image object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.ImageManifest")]
pub struct ImageManifest {
    /// Digest is the unique identifier for the manifest. It refers to an Image object.
    #[serde(default)]
    pub digest: String,
    /// MediaType defines the type of the manifest, possible values are
    /// application/vnd.oci.image.manifest.v1+json,
    /// application/vnd.docker.distribution.manifest.v2+json or
    /// application/vnd.docker.distribution.manifest.v1+json.
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    /// ManifestSize represents the size of the raw object contents, in bytes.
    #[serde(rename = "manifestSize", default)]
    pub manifest_size: i64,
    /// Architecture specifies the supported CPU architecture, for example `amd64` or
    /// `ppc64le`.
    #[serde(default)]
    pub architecture: String,
    /// OS specifies the operating system, for example `linux`.
    #[serde(default)]
    pub os: String,
    /// Variant is an optional field repreenting a variant of the CPU, for example v6 to
    /// specify a particular CPU variant of the ARM CPU.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

/// Docker 1.0 image metadata, as OpenShift writes into `Image.dockerImageMetadata`
/// (`kind: DockerImage`, `apiVersion: image.openshift.io/1.0`, capitalized fields).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.DockerImageMetadata")]
pub struct DockerImageMetadata {
    /// Always `DockerImage`.
    #[serde(default)]
    pub kind: KindField<DockerImageMetadata>,
    /// Always `image.openshift.io/1.0`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: ApiVersionField<DockerImageMetadata>,
    /// The image ID (config digest). Always written.
    #[serde(rename = "Id", default)]
    pub id: String,
    /// The parent image ID.
    #[serde(rename = "Parent", default, skip_serializing_if = "String::is_empty")]
    pub parent: String,
    /// A comment.
    #[serde(rename = "Comment", default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// When the image was created. Written as `null` when `None`.
    #[serde(rename = "Created", default)]
    pub created: Option<Time>,
    /// The ID of the container the image was committed from.
    #[serde(
        rename = "Container",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub container: String,
    /// The config of that container. Always written (`{}` when empty).
    #[serde(rename = "ContainerConfig", default)]
    pub container_config: DockerConfig,
    /// The Docker version that built the image.
    #[serde(
        rename = "DockerVersion",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub docker_version: String,
    /// The author.
    #[serde(rename = "Author", default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// The runtime config: entrypoint, environment, labels, ports.
    #[serde(rename = "Config", default, skip_serializing_if = "Option::is_none")]
    pub config: Option<DockerConfig>,
    /// The CPU architecture.
    #[serde(
        rename = "Architecture",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub architecture: String,
    /// The total size of the layers in bytes.
    #[serde(rename = "Size", default, skip_serializing_if = "is_zero")]
    pub size: i64,
    /// The operating system. Not in OpenShift's Docker 1.0 type: moor records it so a
    /// multi-platform history says which platform each entry is; clients that do not
    /// know it ignore it.
    #[serde(rename = "Os", default, skip_serializing_if = "String::is_empty")]
    pub os: String,
}

impl TypeInfo for DockerImageMetadata {
    const API_VERSION: &'static str = DOCKER_IMAGE_METADATA_API_VERSION;
    const KIND: &'static str = "DockerImage";
}

/// `apiVersion` of [`DockerImageMetadata`].
pub const DOCKER_IMAGE_METADATA_API_VERSION: &str = "image.openshift.io/1.0";
/// The `dockerImageMetadataVersion` OpenShift writes, `1.0`.
pub const DOCKER_IMAGE_METADATA_VERSION: &str = "1.0";

/// An empty JSON object, the value type of Docker's port and volume sets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.EmptyObject")]
pub struct EmptyObject {}

/// The Docker container configuration stored with an image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.DockerConfig")]
pub struct DockerConfig {
    /// Host name.
    #[serde(rename = "Hostname", default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// Domain name.
    #[serde(
        rename = "Domainname",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub domainname: String,
    /// The user the process runs as.
    #[serde(rename = "User", default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Memory limit.
    #[serde(rename = "Memory", default, skip_serializing_if = "is_zero")]
    pub memory: i64,
    /// Memory plus swap limit.
    #[serde(rename = "MemorySwap", default, skip_serializing_if = "is_zero")]
    pub memory_swap: i64,
    /// CPU shares.
    #[serde(rename = "CpuShares", default, skip_serializing_if = "is_zero")]
    pub cpu_shares: i64,
    /// CPU set.
    #[serde(rename = "Cpuset", default, skip_serializing_if = "String::is_empty")]
    pub cpuset: String,
    /// Attach stdin.
    #[serde(rename = "AttachStdin", default, skip_serializing_if = "is_false")]
    pub attach_stdin: bool,
    /// Attach stdout.
    #[serde(rename = "AttachStdout", default, skip_serializing_if = "is_false")]
    pub attach_stdout: bool,
    /// Attach stderr.
    #[serde(rename = "AttachStderr", default, skip_serializing_if = "is_false")]
    pub attach_stderr: bool,
    /// Legacy port specs.
    #[serde(
        rename = "PortSpecs",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub port_specs: Vec<String>,
    /// Exposed ports, e.g. `8080/tcp`.
    #[serde(
        rename = "ExposedPorts",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub exposed_ports: BTreeMap<String, EmptyObject>,
    /// Allocate a TTY.
    #[serde(rename = "Tty", default, skip_serializing_if = "is_false")]
    pub tty: bool,
    /// Keep stdin open.
    #[serde(rename = "OpenStdin", default, skip_serializing_if = "is_false")]
    pub open_stdin: bool,
    /// Close stdin after one attach.
    #[serde(rename = "StdinOnce", default, skip_serializing_if = "is_false")]
    pub stdin_once: bool,
    /// Environment, `KEY=value`.
    #[serde(
        rename = "Env",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub env: Vec<String>,
    /// Default command.
    #[serde(
        rename = "Cmd",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub cmd: Vec<String>,
    /// DNS servers (Docker API 1.9 and older).
    #[serde(
        rename = "Dns",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub dns: Vec<String>,
    /// The image the container was made from.
    #[serde(rename = "Image", default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// Volumes, by container path.
    #[serde(
        rename = "Volumes",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub volumes: BTreeMap<String, EmptyObject>,
    /// Volumes from another container.
    #[serde(
        rename = "VolumesFrom",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub volumes_from: String,
    /// Working directory.
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub working_dir: String,
    /// Entrypoint.
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub entrypoint: Vec<String>,
    /// Networking disabled.
    #[serde(rename = "NetworkDisabled", default, skip_serializing_if = "is_false")]
    pub network_disabled: bool,
    /// Security options.
    #[serde(
        rename = "SecurityOpts",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub security_opts: Vec<String>,
    /// ONBUILD instructions.
    #[serde(
        rename = "OnBuild",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub on_build: Vec<String>,
    /// Image labels.
    #[serde(
        rename = "Labels",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub labels: BTreeMap<String, String>,
}

/// ImageSignature holds a signature of an image. It allows to verify image identity and
/// possibly other claims as long as the signature is trusted. Based on this information
/// it is possible to restrict runnable images to those matching cluster-wide policy.
/// Mandatory fields should be parsed by clients doing image verification. The others
/// are parsed from signature's content by the server. They serve just an informative
/// purpose.
///
/// Compatibility level 1: Stable within a major release for a minimum of 12 months or 3
/// minor releases (whichever is longer).
// moor: A signature of an image (kept for JSON compatibility; moor does not verify
// moor: them). Cluster-scoped; named `<image>@<signature>`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.ImageSignature")]
pub struct ImageSignature {
    /// Always `ImageSignature`.
    #[serde(default)]
    pub kind: KindField<ImageSignature>,
    /// Always `image.openshift.io/v1`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: ApiVersionField<ImageSignature>,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Required: Describes a type of stored blob.
    #[serde(rename = "type", default)]
    pub type_: String,
    /// Required: An opaque binary string which is an image's signature.
    #[serde(default)]
    #[schemars(schema_with = "crate::meta::schema::bytes")]
    pub content: ByteString,
    /// Conditions represent the latest available observations of a signature's current
    /// state.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    #[schemars(extend("x-kubernetes-patch-strategy" = "merge", "x-kubernetes-patch-merge-key" = "type"))]
    pub conditions: Vec<SignatureCondition>,
    /// A human readable string representing image's identity. It could be a product
    /// name and version, or an image pull spec (e.g.
    /// "registry.access.redhat.com/rhel7/rhel:7.2").
    #[serde(
        rename = "imageIdentity",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub image_identity: String,
    /// Contains claims from the signature.
    #[serde(
        rename = "signedClaims",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub signed_claims: BTreeMap<String, String>,
    /// If specified, it is the time of signature's creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Time>,
    /// If specified, it holds information about an issuer of signing certificate or key
    /// (a person or entity who signed the signing certificate or key).
    #[serde(rename = "issuedBy", default, skip_serializing_if = "Option::is_none")]
    pub issued_by: Option<SignatureIssuer>,
    /// If specified, it holds information about a subject of signing certificate or key
    /// (a person or entity who signed the image).
    #[serde(rename = "issuedTo", default, skip_serializing_if = "Option::is_none")]
    pub issued_to: Option<SignatureSubject>,
}

super::image_resource!(ImageSignature, kind: "ImageSignature", plural: "imagesignatures", scope: ClusterResourceScope);

/// SignatureCondition describes an image signature condition of particular kind at
/// particular probe time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.SignatureCondition")]
pub struct SignatureCondition {
    /// Type of signature condition, Complete or Failed.
    #[serde(rename = "type", default)]
    pub type_: String,
    /// Status of the condition, one of True, False, Unknown.
    #[serde(default)]
    pub status: ConditionStatus,
    /// Last time the condition was checked.
    // moor: When the condition was last checked. Written as `null` when `None`.
    #[serde(rename = "lastProbeTime", default)]
    pub last_probe_time: Option<Time>,
    /// Last time the condition transit from one status to another.
    // moor: When the status last changed. Written as `null` when `None`.
    #[serde(rename = "lastTransitionTime", default)]
    pub last_transition_time: Option<Time>,
    /// (brief) reason for the condition's last transition.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human readable message indicating details about last transition.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// SignatureIssuer holds information about an issuer of signing certificate or key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.SignatureIssuer")]
pub struct SignatureIssuer {
    /// Organization name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub organization: String,
    /// Common name (e.g. openshift-signing-service).
    #[serde(
        rename = "commonName",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub common_name: String,
}

/// SignatureSubject holds information about a person or entity who created the
/// signature.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.image.v1.SignatureSubject")]
pub struct SignatureSubject {
    /// Organization name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub organization: String,
    /// Common name (e.g. openshift-signing-service).
    #[serde(
        rename = "commonName",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub common_name: String,
    /// If present, it is a human readable key id of public key belonging to the subject
    /// used to verify image signature. It should contain at least 64 lowest bits of
    /// public key's fingerprint (e.g. 0x685ebe62bf278440).
    // moor: The key ID of the public key. Always written.
    #[serde(rename = "publicKeyID", default)]
    pub public_key_id: String,
}
