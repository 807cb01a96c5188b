//! `Image` (an immutable image named by its digest), its layers, sub-manifests and
//! signatures, and the Docker 1.0 metadata object it embeds. IO-free data types.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Serialize};

use crate::meta::serde_helpers::{
    deserialize_null_as_default, is_false, is_zero, serialize_nested_vec,
};
use crate::meta::{ApiVersionField, KindField, TypeInfo};

use super::ConditionStatus;

/// An image: its pull spec, manifest, config and layers, named by its manifest digest.
/// Cluster-scoped.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    /// The pull spec of this image.
    #[serde(
        rename = "dockerImageReference",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub docker_image_reference: String,
    /// Docker 1.0 style metadata (OpenShift's `runtime.RawExtension` holding a
    /// `DockerImage`).
    #[serde(
        rename = "dockerImageMetadata",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub docker_image_metadata: Option<DockerImageMetadata>,
    /// The version of `dockerImageMetadata`; `1.0` when empty.
    #[serde(
        rename = "dockerImageMetadataVersion",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub docker_image_metadata_version: String,
    /// The raw manifest JSON.
    #[serde(
        rename = "dockerImageManifest",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub docker_image_manifest: String,
    /// The layers, base first. Empty for a manifest list.
    #[serde(
        rename = "dockerImageLayers",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub docker_image_layers: Vec<ImageLayer>,
    /// Signatures of the image.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "serialize_nested_vec",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub signatures: Vec<ImageSignature>,
    /// Schema 1 signatures as opaque blobs (base64 in JSON).
    #[serde(
        rename = "dockerImageSignatures",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub docker_image_signatures: Vec<ByteString>,
    /// The manifest's media type.
    #[serde(
        rename = "dockerImageManifestMediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub docker_image_manifest_media_type: String,
    /// The raw image config JSON. Empty for a manifest list.
    #[serde(
        rename = "dockerImageConfig",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub docker_image_config: String,
    /// The sub-manifests when this image is a manifest list.
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

/// One layer of an image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageLayer {
    /// The layer's digest.
    #[serde(default)]
    pub name: String,
    /// The layer's size in bytes.
    #[serde(default)]
    pub size: i64,
    /// The layer's media type.
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
}

/// A sub-manifest of a manifest list; its digest names another [`Image`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageManifest {
    /// The sub-manifest digest.
    #[serde(default)]
    pub digest: String,
    /// The sub-manifest media type.
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    /// The sub-manifest size in bytes.
    #[serde(rename = "manifestSize", default)]
    pub manifest_size: i64,
    /// The CPU architecture, e.g. `amd64`.
    #[serde(default)]
    pub architecture: String,
    /// The operating system, e.g. `linux`.
    #[serde(default)]
    pub os: String,
    /// The CPU variant, e.g. `v8`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

/// Docker 1.0 image metadata, as OpenShift writes into `Image.dockerImageMetadata`
/// (`kind: DockerImage`, `apiVersion: image.openshift.io/1.0`, capitalized fields).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptyObject {}

/// The Docker container configuration stored with an image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// A signature of an image (kept for JSON compatibility; moor does not verify them).
/// Cluster-scoped; named `<image>@<signature>`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    /// The type of the signature blob, e.g. `AtomicImageV1`.
    #[serde(rename = "type", default)]
    pub type_: String,
    /// The signature blob (base64 in JSON).
    #[serde(default)]
    pub content: ByteString,
    /// Conditions about the signature.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub conditions: Vec<SignatureCondition>,
    /// The identity the signature claims.
    #[serde(
        rename = "imageIdentity",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub image_identity: String,
    /// Claims from the signature.
    #[serde(
        rename = "signedClaims",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "deserialize_null_as_default"
    )]
    pub signed_claims: BTreeMap<String, String>,
    /// When the signature was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Time>,
    /// Who issued the signing key.
    #[serde(rename = "issuedBy", default, skip_serializing_if = "Option::is_none")]
    pub issued_by: Option<SignatureIssuer>,
    /// Who signed.
    #[serde(rename = "issuedTo", default, skip_serializing_if = "Option::is_none")]
    pub issued_to: Option<SignatureSubject>,
}

super::image_resource!(ImageSignature, kind: "ImageSignature", plural: "imagesignatures", scope: ClusterResourceScope);

/// A condition on an image signature.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SignatureCondition {
    /// The condition type, e.g. `Trusted`.
    #[serde(rename = "type", default)]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    #[serde(default)]
    pub status: ConditionStatus,
    /// When the condition was last checked. Written as `null` when `None`.
    #[serde(rename = "lastProbeTime", default)]
    pub last_probe_time: Option<Time>,
    /// When the status last changed. Written as `null` when `None`.
    #[serde(rename = "lastTransitionTime", default)]
    pub last_transition_time: Option<Time>,
    /// A machine-readable reason.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// A human-readable message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The issuer of a signing key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureIssuer {
    /// Organization name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub organization: String,
    /// Common name.
    #[serde(
        rename = "commonName",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub common_name: String,
}

/// The subject of a signing key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureSubject {
    /// Organization name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub organization: String,
    /// Common name.
    #[serde(
        rename = "commonName",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub common_name: String,
    /// The key ID of the public key. Always written.
    #[serde(rename = "publicKeyID", default)]
    pub public_key_id: String,
}
