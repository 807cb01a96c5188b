//! ImageStream and its spec tags (`TagReference`).

use std::collections::BTreeSet;

use crate::image::{
    ImageStream, ImportMode, KIND_DOCKER_IMAGE, KIND_IMAGE_STREAM_IMAGE, KIND_IMAGE_STREAM_TAG,
    TagImportPolicy, TagReference, TagReferencePolicyType, parse_image_stream_image_name,
    parse_image_stream_tag_name,
};
use crate::reference::{Digest, DockerImageReference, NAME_TOTAL_LENGTH_MAX};

use super::field::{FieldError, FieldPath};
use super::meta::{
    MetaRules, validate_image_stream_name, validate_object_meta, validate_object_meta_update,
    validate_tag_name,
};

const SCHEDULED_ONLY_DOCKER: &str =
    "only tags pointing to Docker repositories may be scheduled for background import";

/// Validates an image stream (OpenShift's `ValidateImageStream`): metadata (name per
/// [`validate_image_stream_name`], namespace a DNS-1123 label, `namespace/name` at most
/// 255 characters), `spec.dockerImageRepository` (a repository without tag or digest),
/// every spec tag ([`validate_tag_reference`]), and every status history entry (a
/// parsable `dockerImageReference`).
///
/// moor additions: spec tag names must be present, valid tags and unique.
pub fn validate_image_stream(stream: &ImageStream) -> Vec<FieldError> {
    let meta_path = FieldPath::new("metadata");
    let mut errs = validate_object_meta(
        &stream.metadata,
        MetaRules {
            namespaced: true,
            name: validate_image_stream_name,
        },
        &meta_path,
    );
    let name = stream.metadata.name.as_deref().unwrap_or("");
    let namespace = stream.metadata.namespace.as_deref().unwrap_or("");
    if namespace.len() + 1 + name.len() > NAME_TOTAL_LENGTH_MAX {
        errs.push(FieldError::invalid(
            meta_path.child("name"),
            name,
            format!("'namespace/name' cannot be longer than {NAME_TOTAL_LENGTH_MAX} characters"),
        ));
    }

    let repo = &stream.spec.docker_image_repository;
    if !repo.is_empty() {
        let path = FieldPath::new("spec").child("dockerImageRepository");
        match DockerImageReference::parse(repo) {
            Err(e) => errs.push(FieldError::invalid(&path, repo, e.to_string())),
            Ok(r) => {
                if r.tag().is_some() {
                    errs.push(FieldError::invalid(
                        &path,
                        repo,
                        "the repository name may not contain a tag",
                    ));
                }
                if r.id().is_some() {
                    errs.push(FieldError::invalid(
                        &path,
                        repo,
                        "the repository name may not contain an ID",
                    ));
                }
            }
        }
    }

    let tags_path = FieldPath::new("spec").child("tags");
    let mut seen = BTreeSet::new();
    for (i, tag) in stream.spec.tags.iter().enumerate() {
        if tag.name.is_empty() {
            errs.push(FieldError::required(tags_path.index(i).child("name"), ""));
            errs.extend(validate_tag_reference(tag, &tags_path.index(i)));
            continue;
        }
        let path = tags_path.key(&tag.name);
        for reason in validate_tag_name(&tag.name) {
            errs.push(FieldError::invalid(path.child("name"), &tag.name, reason));
        }
        if !seen.insert(tag.name.as_str()) {
            errs.push(FieldError::duplicate(path.child("name"), &tag.name));
        }
        errs.extend(validate_tag_reference(tag, &path));
    }

    let status_path = FieldPath::new("status").child("tags");
    for history in &stream.status.tags {
        for (i, event) in history.items.iter().enumerate() {
            let path = status_path
                .key(&history.tag)
                .child("items")
                .index(i)
                .child("dockerImageReference");
            if event.docker_image_reference.is_empty() {
                errs.push(FieldError::required(&path, ""));
            } else if let Err(e) = DockerImageReference::parse(&event.docker_image_reference) {
                errs.push(FieldError::invalid(
                    &path,
                    &event.docker_image_reference,
                    e.to_string(),
                ));
            }
        }
    }
    errs
}

/// Validates an image stream update: metadata immutables, then the new stream.
pub fn validate_image_stream_update(new: &ImageStream, old: &ImageStream) -> Vec<FieldError> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &FieldPath::new("metadata"));
    errs.extend(validate_image_stream(new));
    errs
}

/// Validates a spec tag at `path` (OpenShift's `ValidateImageStreamTagReference`):
///
/// - `from.name` is required when `from` is set;
/// - `from.kind` is `DockerImage` (the name must parse as a pull spec),
///   `ImageStreamTag` or `ImageStreamImage`;
/// - `importPolicy.scheduled` only with kind `DockerImage`;
/// - `referencePolicy.type` is `Source` or `Local`;
/// - `importPolicy.importMode` is empty, `Legacy` or `PreserveOriginal`.
///
/// moor additions: `ImageStreamTag` names must be `stream:tag` and `ImageStreamImage`
/// names `stream@digest`, with a valid stream name, tag and digest; `scheduled` on a
/// tag without `from` is rejected too.
pub fn validate_tag_reference(tag: &TagReference, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let scheduled_path = path.child("importPolicy").child("scheduled");
    match &tag.from {
        Some(from) => {
            let name = from.name.as_deref().unwrap_or("");
            let kind = from.kind.as_deref().unwrap_or("");
            let name_path = path.child("from").child("name");
            if name.is_empty() {
                errs.push(FieldError::required(&name_path, ""));
            }
            match kind {
                KIND_DOCKER_IMAGE => {
                    if !name.is_empty()
                        && let Err(e) = DockerImageReference::parse(name)
                    {
                        errs.push(FieldError::invalid(&name_path, name, e.to_string()));
                    }
                }
                KIND_IMAGE_STREAM_TAG | KIND_IMAGE_STREAM_IMAGE => {
                    if tag.import_policy.scheduled {
                        errs.push(FieldError::invalid_literal(
                            &scheduled_path,
                            true,
                            SCHEDULED_ONLY_DOCKER,
                        ));
                    }
                    if !name.is_empty() {
                        let problem = if kind == KIND_IMAGE_STREAM_TAG {
                            image_stream_tag_name_problem(name)
                        } else {
                            image_stream_image_name_problem(name)
                        };
                        if let Some(message) = problem {
                            errs.push(FieldError::invalid(&name_path, name, message));
                        }
                    }
                }
                _ => errs.push(FieldError::required(
                    path.child("from").child("kind"),
                    "valid values are 'DockerImage', 'ImageStreamImage', 'ImageStreamTag'",
                )),
            }
        }
        None => {
            if tag.import_policy.scheduled {
                errs.push(FieldError::invalid_literal(
                    &scheduled_path,
                    true,
                    SCHEDULED_ONLY_DOCKER,
                ));
            }
        }
    }
    match &tag.reference_policy.type_ {
        Some(TagReferencePolicyType::Source | TagReferencePolicyType::Local) => {}
        other => errs.push(FieldError::invalid(
            path.child("referencePolicy").child("type"),
            other.as_ref().map_or("", |t| t.as_str()),
            "valid values are \"Source\", \"Local\"",
        )),
    }
    errs.extend(validate_import_mode(&tag.import_policy, path));
    errs
}

pub(super) fn validate_import_mode(
    policy: &TagImportPolicy,
    path: &FieldPath,
) -> Option<FieldError> {
    match &policy.import_mode {
        Some(ImportMode::Other(mode)) => Some(FieldError::invalid(
            path.child("importPolicy").child("importMode"),
            mode,
            "invalid import mode, valid modes are '', 'Legacy', 'PreserveOriginal'",
        )),
        _ => None,
    }
}

/// Why `name` is not a valid `stream:tag`, or `None` when it is.
pub(super) fn image_stream_tag_name_problem(name: &str) -> Option<String> {
    match parse_image_stream_tag_name(name) {
        Err(e) => Some(e.to_string()),
        Ok((stream, tag)) => validate_image_stream_name(stream)
            .into_iter()
            .map(|r| format!("image stream name {stream:?} {r}"))
            .chain(
                validate_tag_name(tag)
                    .into_iter()
                    .map(|r| format!("tag {tag:?} {r}")),
            )
            .next(),
    }
}

/// Why `name` is not a valid `stream@digest`, or `None` when it is.
fn image_stream_image_name_problem(name: &str) -> Option<String> {
    match parse_image_stream_image_name(name) {
        Err(e) => Some(e.to_string()),
        Ok((stream, id)) => validate_image_stream_name(stream)
            .into_iter()
            .map(|r| format!("image stream name {stream:?} {r}"))
            .next()
            .or_else(|| {
                Digest::parse(id)
                    .err()
                    .map(|e| format!("image ID {id:?}: {e}"))
            }),
    }
}
