//! OpenShift's validation rules for `image.openshift.io/v1` objects, as pure functions
//! that return field errors, plus the Kubernetes 422 `Status` built from them.
//! IO-free: no lookups of other objects (tag resolution happens in the server).
//!
//! Apply defaults ([`ApplyDefaults`](crate::image::ApplyDefaults)) before validating,
//! as OpenShift does on decode: an empty `referencePolicy.type` is invalid here.
//!
//! Field paths follow Kubernetes (`spec.tags[20.0].from.kind`); OpenShift keys spec
//! and status tags by tag name, so moor does too (a tag with no name is keyed by its
//! index). Messages are OpenShift's where it has a rule; moor's extra rules (tag name
//! syntax, duplicate tags, `stream:tag`/`stream@digest` source names, digest image
//! names) say so in the function docs.
//!
//! One file per kind (`image_stream`, `image_stream_tag`, `image_stream_import`,
//! `image`, `image_stream_mapping`) over the shared field errors (`field`) and
//! name and metadata checks (`meta`); everything is re-exported here.

mod field;
mod image;
mod image_stream;
mod image_stream_import;
mod image_stream_mapping;
mod image_stream_tag;
mod meta;
#[cfg(test)]
mod tests;

pub use field::{FieldError, FieldErrorKind, FieldPath, aggregate_message, invalid_status};
pub use image::validate_image;
pub use image_stream::{
    validate_image_stream, validate_image_stream_update, validate_tag_reference,
};
pub use image_stream_import::validate_image_stream_import;
pub use image_stream_mapping::validate_image_stream_mapping;
pub use image_stream_tag::validate_image_stream_tag;
pub use meta::{
    DNS1123_LABEL_MAX_LENGTH, DNS1123_LABEL_PATTERN, IMAGE_STREAM_NAME_PATTERN, TAG_NAME_PATTERN,
    is_dns1123_label, validate_image_stream_name, validate_namespace_name,
    validate_object_meta_update, validate_path_segment_name, validate_tag_name,
};

pub use crate::image::{
    NameError, join_image_stream_image, join_image_stream_tag, parse_image_stream_image_name,
    parse_image_stream_tag_name, split_image_stream_tag,
};
