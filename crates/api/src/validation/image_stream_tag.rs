//! ImageStreamTag.

use std::collections::BTreeMap;

use crate::image::ImageStreamTag;

use super::field::{FieldError, FieldPath};
use super::image_stream::{image_stream_tag_name_problem, validate_tag_reference};
use super::meta::{MetaRules, validate_object_meta, validate_path_segment_name};

/// Validates an image stream tag on create or update (OpenShift's
/// `ValidateImageStreamTag`): metadata, the spec tag under `tag`
/// ([`validate_tag_reference`]), and `tag.annotations` either unset or equal to
/// `metadata.annotations`.
///
/// moor addition: the name must be `stream:tag` with a valid stream name and tag.
pub fn validate_image_stream_tag(ist: &ImageStreamTag) -> Vec<FieldError> {
    let meta_path = FieldPath::new("metadata");
    let mut errs = validate_object_meta(
        &ist.metadata,
        MetaRules {
            namespaced: true,
            name: validate_path_segment_name,
        },
        &meta_path,
    );
    let name = ist.metadata.name.as_deref().unwrap_or("");
    if !name.is_empty()
        && validate_path_segment_name(name).is_empty()
        && let Some(message) = image_stream_tag_name_problem(name)
    {
        errs.push(FieldError::invalid(meta_path.child("name"), name, message));
    }
    if let Some(tag) = &ist.tag {
        let tag_path = FieldPath::new("tag");
        errs.extend(validate_tag_reference(tag, &tag_path));
        if let Some(annotations) = &tag.annotations {
            let empty = BTreeMap::new();
            let meta_annotations = ist.metadata.annotations.as_ref().unwrap_or(&empty);
            if annotations != meta_annotations {
                errs.push(FieldError::invalid_literal(
                    tag_path.child("annotations"),
                    "<map>",
                    "tag annotations must not be provided or must be equal to the object meta annotations",
                ));
            }
        }
    }
    errs
}
