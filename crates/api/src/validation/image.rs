//! Image (also as embedded in an ImageStreamMapping).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::image::Image;
use crate::media_types::is_valid_media_type;
use crate::reference::{Digest, DockerImageReference};

use super::field::{FieldError, FieldPath};
use super::meta::{MetaRules, validate_object_meta, validate_path_segment_name};

/// Validates an image (OpenShift's `ValidateImage`): a name, no namespace, a
/// parsable `dockerImageReference`, and well-formed `dockerImageManifests` (digest,
/// RFC 6838 media type, architecture, OS, non-negative size).
///
/// moor addition: the name must be a digest (`sha256:<64 hex>` or `sha512:<128 hex>`).
pub fn validate_image(image: &Image) -> Vec<FieldError> {
    validate_image_at(image, &FieldPath::new(""), false)
}

pub(super) fn validate_image_at(
    image: &Image,
    prefix: &FieldPath,
    embedded: bool,
) -> Vec<FieldError> {
    let meta_path = prefix.child("metadata");
    let mut errs = if embedded {
        // An image inside a namespaced object may carry that namespace.
        validate_object_meta(
            &ObjectMeta {
                namespace: None,
                ..image.metadata.clone()
            },
            MetaRules {
                namespaced: false,
                name: validate_path_segment_name,
            },
            &meta_path,
        )
    } else {
        validate_object_meta(
            &image.metadata,
            MetaRules {
                namespaced: false,
                name: validate_path_segment_name,
            },
            &meta_path,
        )
    };
    let name = image.metadata.name.as_deref().unwrap_or("");
    if !name.is_empty()
        && validate_path_segment_name(name).is_empty()
        && let Err(e) = Digest::parse(name)
    {
        errs.push(FieldError::invalid(
            meta_path.child("name"),
            name,
            format!("must be an image digest: {e}"),
        ));
    }

    let ref_path = prefix.child("dockerImageReference");
    if image.docker_image_reference.is_empty() {
        errs.push(FieldError::required(&ref_path, ""));
    } else if let Err(e) = DockerImageReference::parse(&image.docker_image_reference) {
        errs.push(FieldError::invalid(
            &ref_path,
            &image.docker_image_reference,
            e.to_string(),
        ));
    }

    let manifests_path = prefix.child("dockerImageManifests");
    for (i, m) in image.docker_image_manifests.iter().enumerate() {
        let path = manifests_path.index(i);
        if Digest::parse(&m.digest).is_err() {
            errs.push(FieldError::invalid(
                path.child("digest"),
                &m.digest,
                "digest does not conform with OCI image specification",
            ));
        }
        if !is_valid_media_type(&m.media_type) {
            errs.push(FieldError::invalid(
                path.child("mediaType"),
                &m.media_type,
                "media type does not conform to RFC6838",
            ));
        }
        if m.architecture.is_empty() {
            errs.push(FieldError::required(path.child("architecture"), ""));
        }
        if m.os.is_empty() {
            errs.push(FieldError::required(path.child("os"), ""));
        }
        if m.manifest_size < 0 {
            errs.push(FieldError::invalid_literal(
                path.child("manifestSize"),
                m.manifest_size,
                "manifest size cannot be negative",
            ));
        }
    }
    errs
}
