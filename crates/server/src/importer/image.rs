//! Turning registry content into `Image` objects: parses manifests and configs with
//! oci-spec (Docker schema2 shares their JSON shape) and fills the fields OpenShift's
//! importer fills. Pure functions over bytes; no IO.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use moor_api::image::{
    DOCKER_IMAGE_LAYERS_ORDER_ANNOTATION, DOCKER_IMAGE_LAYERS_ORDER_ASCENDING,
    DOCKER_IMAGE_METADATA_VERSION, DockerConfig, DockerImageMetadata, EmptyObject, Image,
    ImageLayer, ImageManifest,
};
use moor_api::media_types;
use moor_api::{Digest, DockerImageReference};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest as OciManifest};

use super::ImportError;

/// A manifest as fetched: exact bytes, media type, digest of the bytes.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    pub bytes: bytes::Bytes,
    pub media_type: String,
    pub digest: Digest,
}

/// What a fetched manifest is.
pub enum Parsed {
    /// A single-platform image (OCI manifest or Docker schema2).
    Image(Box<OciManifest>),
    /// A list of per-platform manifests (OCI index or Docker manifest list).
    List(Box<ImageIndex>),
}

/// The media type of a manifest: the response's, else the body's `mediaType`.
pub fn effective_media_type(m: &FetchedManifest) -> String {
    let header = media_types::essence(&m.media_type).to_string();
    if media_types::is_manifest(&header) {
        return header;
    }
    serde_json::from_slice::<serde_json::Value>(&m.bytes)
        .ok()
        .and_then(|v| {
            v.get("mediaType")
                .and_then(|t| t.as_str())
                .map(str::to_string)
        })
        .unwrap_or(header)
}

/// Parses a manifest, refusing schema1 and unknown types.
pub fn parse(m: &FetchedManifest) -> Result<Parsed, ImportError> {
    let mt = effective_media_type(m);
    if media_types::is_schema1(&mt) {
        return Err(ImportError::invalid(format!(
            "the image uses the Docker schema1 manifest format ({mt}), which is not supported; push it again as Docker schema2 or OCI"
        )));
    }
    let bad = |e: serde_json::Error| {
        ImportError::invalid_because(format!("the manifest ({mt}) cannot be parsed"), e)
    };
    if media_types::is_manifest_list(&mt) {
        return serde_json::from_slice::<ImageIndex>(&m.bytes)
            .map(|i| Parsed::List(Box::new(i)))
            .map_err(bad);
    }
    if media_types::is_image_manifest(&mt) {
        return serde_json::from_slice::<OciManifest>(&m.bytes)
            .map(|m| Parsed::Image(Box::new(m)))
            .map_err(bad);
    }
    Err(ImportError::invalid(format!(
        "unsupported manifest media type {mt:?}"
    )))
}

/// The manifest of one platform in a list, and its platform.
#[derive(Clone, Debug)]
pub struct Child {
    pub digest: Digest,
    pub media_type: String,
    pub size: i64,
    pub os: String,
    pub architecture: String,
    pub variant: String,
}

/// The children of a list.
pub fn children(index: &ImageIndex) -> Result<Vec<Child>, ImportError> {
    index
        .manifests()
        .iter()
        .map(|d| {
            let digest = Digest::parse(d.digest().as_ref()).map_err(|e| {
                ImportError::invalid_because("the manifest list names a bad digest", e)
            })?;
            let (os, architecture, variant) = match d.platform() {
                Some(p) => (
                    p.os().to_string(),
                    p.architecture().to_string(),
                    p.variant().clone().unwrap_or_default(),
                ),
                None => Default::default(),
            };
            Ok(Child {
                digest,
                media_type: d.media_type().to_string(),
                size: d.size() as i64,
                os,
                architecture,
                variant,
            })
        })
        .collect()
}

/// Legacy mode's choice of one child: the preferred arch/os when the tag asks, then
/// linux/amd64, then the first entry.
pub fn pick_child<'a>(
    children: &'a [Child],
    prefer_arch: Option<&str>,
    prefer_os: Option<&str>,
) -> Option<&'a Child> {
    if prefer_arch.is_some() || prefer_os.is_some() {
        let matching = children.iter().find(|c| {
            prefer_arch.is_none_or(|a| c.architecture == a) && prefer_os.is_none_or(|o| c.os == o)
        });
        if matching.is_some() {
            return matching;
        }
    }
    children
        .iter()
        .find(|c| c.os == "linux" && c.architecture == "amd64")
        .or_else(|| children.first())
}

fn layer(d: &Descriptor) -> ImageLayer {
    ImageLayer {
        name: d.digest().to_string(),
        size: d.size() as i64,
        media_type: d.media_type().to_string(),
    }
}

/// The config blob digest of an image manifest.
pub fn config_digest(m: &OciManifest) -> Result<Digest, ImportError> {
    Digest::parse(m.config().digest().as_ref())
        .map_err(|e| ImportError::invalid_because("the manifest names a bad config digest", e))
}

/// Builds the `Image` of a single-platform manifest from its config blob.
pub fn image_from_manifest(
    source: &DockerImageReference,
    fetched: &FetchedManifest,
    manifest: &OciManifest,
    config_bytes: &[u8],
) -> Result<Image, ImportError> {
    let config: ImageConfiguration = serde_json::from_slice(config_bytes)
        .map_err(|e| ImportError::invalid_because("the image config cannot be parsed", e))?;
    let layers: Vec<ImageLayer> = manifest.layers().iter().map(layer).collect();
    let size = layers.iter().map(|l| l.size).sum::<i64>() + manifest.config().size() as i64;
    let created = config
        .created()
        .as_ref()
        .and_then(|c| c.parse::<jiff::Timestamp>().ok())
        .map(Time);
    let runtime = config.config().as_ref().map(|c| DockerConfig {
        user: c.user().clone().unwrap_or_default(),
        exposed_ports: c
            .exposed_ports()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p, EmptyObject {}))
            .collect::<BTreeMap<_, _>>(),
        env: c.env().clone().unwrap_or_default(),
        cmd: c.cmd().clone().unwrap_or_default(),
        entrypoint: c.entrypoint().clone().unwrap_or_default(),
        working_dir: c.working_dir().clone().unwrap_or_default(),
        labels: c
            .labels()
            .clone()
            .map(|l| l.into_iter().collect())
            .unwrap_or_default(),
        ..Default::default()
    });
    let metadata = DockerImageMetadata {
        id: manifest.config().digest().to_string(),
        created,
        author: config.author().clone().unwrap_or_default(),
        config: runtime,
        architecture: config.architecture().to_string(),
        os: config.os().to_string(),
        size,
        ..Default::default()
    };
    let mut image = base_image(source, fetched);
    image.docker_image_metadata = Some(metadata);
    image.docker_image_layers = layers;
    Ok(image)
}

/// Builds the `Image` of a manifest whose config is not an image config (an OCI
/// artifact: a signature, an SBOM): its layers, no runtime metadata.
pub fn image_from_artifact(
    source: &DockerImageReference,
    fetched: &FetchedManifest,
    manifest: &OciManifest,
) -> Image {
    let mut image = base_image(source, fetched);
    image.docker_image_layers = manifest.layers().iter().map(layer).collect();
    image
}

/// Builds the `Image` of a manifest list (PreserveOriginal mode).
pub fn image_from_list(
    source: &DockerImageReference,
    fetched: &FetchedManifest,
    children: &[Child],
) -> Image {
    let mut image = base_image(source, fetched);
    image.docker_image_manifests = children
        .iter()
        .map(|c| ImageManifest {
            digest: c.digest.to_string(),
            media_type: c.media_type.clone(),
            manifest_size: c.size,
            architecture: c.architecture.clone(),
            os: c.os.clone(),
            variant: c.variant.clone(),
        })
        .collect();
    image
}

fn base_image(source: &DockerImageReference, fetched: &FetchedManifest) -> Image {
    let mut image = Image::default();
    image.metadata.name = Some(fetched.digest.to_string());
    image.metadata.annotations = Some(BTreeMap::from([(
        DOCKER_IMAGE_LAYERS_ORDER_ANNOTATION.to_string(),
        DOCKER_IMAGE_LAYERS_ORDER_ASCENDING.to_string(),
    )]));
    image.docker_image_reference = pinned(source, &fetched.digest);
    image.docker_image_manifest_media_type = effective_media_type(fetched);
    image.docker_image_metadata_version = DOCKER_IMAGE_METADATA_VERSION.to_string();
    image
}

/// `source` pinned to `digest`: `quay.io/keycloak/keycloak@sha256:...`.
pub fn pinned(source: &DockerImageReference, digest: &Digest) -> String {
    source.clone().without_tag().with_id(digest.clone()).exact()
}
