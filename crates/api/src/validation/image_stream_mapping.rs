//! ImageStreamMapping.

use crate::image::ImageStreamMapping;

use super::field::{FieldError, FieldPath};
use super::image::validate_image_at;
use super::meta::{MetaRules, validate_image_stream_name, validate_object_meta, validate_tag_name};

/// Validates an image stream mapping (OpenShift's `ValidateImageStreamMapping`): the
/// name is the target stream's (a valid image stream name) in a valid namespace, `tag`
/// is required (moor: and a valid tag), and `image` is a valid image
/// ([`validate_image`], paths under `image.`).
pub fn validate_image_stream_mapping(mapping: &ImageStreamMapping) -> Vec<FieldError> {
    let mut errs = validate_object_meta(
        &mapping.metadata,
        MetaRules {
            namespaced: true,
            name: validate_image_stream_name,
        },
        &FieldPath::new("metadata"),
    );
    if mapping.tag.is_empty() {
        errs.push(FieldError::required("tag", ""));
    } else {
        for reason in validate_tag_name(&mapping.tag) {
            errs.push(FieldError::invalid("tag", &mapping.tag, reason));
        }
    }
    errs.extend(validate_image_at(
        &mapping.image,
        &FieldPath::new("image"),
        true,
    ));
    errs
}
