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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::LazyLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    ObjectMeta, Status, StatusCause, StatusDetails,
};
use regex::Regex;

use crate::image::{
    Image, ImageImportSpec, ImageStream, ImageStreamImport, ImageStreamMapping, ImageStreamTag,
    ImportMode, KIND_DOCKER_IMAGE, KIND_IMAGE_STREAM_IMAGE, KIND_IMAGE_STREAM_TAG, TagImportPolicy,
    TagReference, TagReferencePolicyType,
};
use crate::media_types::is_valid_media_type;
use crate::reference::{Digest, DockerImageReference, NAME_TOTAL_LENGTH_MAX, is_valid_tag};

pub use crate::image::{
    NameError, join_image_stream_image, join_image_stream_tag, parse_image_stream_image_name,
    parse_image_stream_tag_name, split_image_stream_tag,
};

// ---------------------------------------------------------------------------------------
// Field errors
// ---------------------------------------------------------------------------------------

/// The type of a field error (Kubernetes `field.ErrorType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    /// The value is malformed or not allowed.
    Invalid,
    /// A required value is missing.
    Required,
    /// The value is not one of the supported values.
    NotSupported,
    /// The value must be unique and is not.
    Duplicate,
    /// The field may not be set (here, or to this value).
    Forbidden,
    /// The value is too long.
    TooLong,
}

impl FieldErrorKind {
    /// The text Kubernetes shows for this type (`Invalid value`, `Required value`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "Invalid value",
            Self::Required => "Required value",
            Self::NotSupported => "Unsupported value",
            Self::Duplicate => "Duplicate value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
        }
    }

    /// The `StatusCause.reason` for this type (`FieldValueInvalid`, …).
    pub fn cause_type(self) -> &'static str {
        match self {
            Self::Invalid => "FieldValueInvalid",
            Self::Required => "FieldValueRequired",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
        }
    }
}

impl fmt::Display for FieldErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One validation failure: a field path, its type, the offending value and a message
/// (Kubernetes `field.Error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The JSON path of the field, e.g. `spec.tags[20.0].from.kind`.
    pub path: String,
    /// The type of failure.
    pub kind: FieldErrorKind,
    /// The offending value as text (empty for `Required` and `Forbidden`).
    pub value: String,
    /// What is wrong (Kubernetes' `Detail`); may be empty.
    pub message: String,
    /// Whether [`body`](Self::body) shows `value` in quotes: true for strings, false for
    /// booleans, numbers and placeholders such as `<map>` (Go's `%q` versus `%v`).
    pub quote_value: bool,
}

impl FieldError {
    fn new(
        path: impl Into<String>,
        kind: FieldErrorKind,
        value: impl Into<String>,
        message: impl Into<String>,
        quote_value: bool,
    ) -> Self {
        Self {
            path: path.into(),
            kind,
            value: value.into(),
            message: message.into(),
            quote_value,
        }
    }

    /// An `Invalid` error for a string value.
    pub fn invalid(
        path: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(path, FieldErrorKind::Invalid, value, message, true)
    }

    /// An `Invalid` error for a non-string value (bool, number, `<map>`), shown
    /// unquoted.
    pub fn invalid_literal(
        path: impl Into<String>,
        value: impl fmt::Display,
        message: impl Into<String>,
    ) -> Self {
        Self::new(
            path,
            FieldErrorKind::Invalid,
            value.to_string(),
            message,
            false,
        )
    }

    /// A `Required` error.
    pub fn required(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(path, FieldErrorKind::Required, "", message, true)
    }

    /// A `NotSupported` error listing the supported values.
    pub fn not_supported(
        path: impl Into<String>,
        value: impl Into<String>,
        supported: &[&str],
    ) -> Self {
        let list = supported
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        Self::new(
            path,
            FieldErrorKind::NotSupported,
            value,
            format!("supported values: {list}"),
            true,
        )
    }

    /// A `Duplicate` error.
    pub fn duplicate(path: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(path, FieldErrorKind::Duplicate, value, "", true)
    }

    /// A `Forbidden` error.
    pub fn forbidden(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(path, FieldErrorKind::Forbidden, "", message, true)
    }

    /// A `TooLong` error.
    pub fn too_long(path: impl Into<String>, value: impl Into<String>, max: usize) -> Self {
        Self::new(
            path,
            FieldErrorKind::TooLong,
            value,
            format!("may not be more than {max} bytes"),
            true,
        )
    }

    /// The error without its path, as Kubernetes puts it in `StatusCause.message`:
    /// `Invalid value: "x": detail`, `Required value`, `Forbidden: detail`.
    pub fn body(&self) -> String {
        let mut s = match self.kind {
            FieldErrorKind::Required | FieldErrorKind::Forbidden | FieldErrorKind::TooLong => {
                self.kind.as_str().to_owned()
            }
            _ if self.quote_value => format!("{}: {:?}", self.kind, self.value),
            _ => format!("{}: {}", self.kind, self.value),
        };
        if !self.message.is_empty() {
            s.push_str(": ");
            s.push_str(&self.message);
        }
        s
    }

    /// The `StatusCause` for this error.
    pub fn to_cause(&self) -> StatusCause {
        StatusCause {
            field: Some(self.path.clone()),
            message: Some(self.body()),
            reason: Some(self.kind.cause_type().to_owned()),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.body())
    }
}

impl std::error::Error for FieldError {}

/// A field path under construction (Kubernetes `field.Path`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(String);

impl FieldPath {
    /// A path starting at `root` (`""` for none).
    pub fn new(root: &str) -> Self {
        Self(root.to_owned())
    }

    /// `self.name`.
    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_owned())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    /// `self[index]`.
    pub fn index(&self, index: usize) -> Self {
        Self(format!("{}[{index}]", self.0))
    }

    /// `self[key]`.
    pub fn key(&self, key: &str) -> Self {
        Self(format!("{}[{key}]", self.0))
    }

    /// The path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<FieldPath> for String {
    fn from(p: FieldPath) -> Self {
        p.0
    }
}

impl From<&FieldPath> for String {
    fn from(p: &FieldPath) -> Self {
        p.0.clone()
    }
}

/// The errors joined as Kubernetes' aggregate error does: one message alone, several
/// as `[a, b]`, duplicates dropped.
pub fn aggregate_message(errors: &[FieldError]) -> String {
    let mut seen = BTreeSet::new();
    let mut messages = Vec::new();
    for e in errors {
        let m = e.to_string();
        if seen.insert(m.clone()) {
            messages.push(m);
        }
    }
    match messages.len() {
        1 => messages.remove(0),
        _ => format!("[{}]", messages.join(", ")),
    }
}

/// The 422 `Status` Kubernetes returns for invalid objects: reason `Invalid`, a
/// message such as `ImageStream.image.openshift.io "keycloak" is invalid: …`, and one
/// cause per error.
pub fn invalid_status(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> Status {
    let qualified = if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    };
    let message = if errors.is_empty() {
        format!("{qualified} {name:?} is invalid")
    } else {
        format!(
            "{qualified} {name:?} is invalid: {}",
            aggregate_message(errors)
        )
    };
    Status {
        code: Some(422),
        details: Some(StatusDetails {
            causes: Some(errors.iter().map(FieldError::to_cause).collect()),
            group: Some(group.to_owned()),
            kind: Some(kind.to_owned()),
            name: Some(name.to_owned()),
            ..Default::default()
        }),
        message: Some(message),
        metadata: Default::default(),
        reason: Some("Invalid".to_owned()),
        status: Some("Failure".to_owned()),
    }
}

// ---------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------

/// The image stream name pattern OpenShift shows in its error message.
pub const IMAGE_STREAM_NAME_PATTERN: &str = "[a-z0-9]+(?:[._-][a-z0-9]+)*";
/// The tag name pattern (docker/distribution's).
pub const TAG_NAME_PATTERN: &str = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
/// The DNS-1123 label pattern.
pub const DNS1123_LABEL_PATTERN: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
/// The maximum length of a DNS-1123 label.
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;

static IMAGE_STREAM_NAME_RE: LazyLock<Regex> =
    LazyLock::new(|| anchored(IMAGE_STREAM_NAME_PATTERN));
static DNS1123_LABEL_RE: LazyLock<Regex> = LazyLock::new(|| anchored(DNS1123_LABEL_PATTERN));

fn anchored(pattern: &str) -> Regex {
    // The patterns are constants of this module; `patterns_compile` compiles them.
    Regex::new(&format!("^(?:{pattern})$")).expect("constant regex must compile")
}

/// Kubernetes' rule for names used as URL path segments: not `.` or `..`, no `/` or
/// `%`. Returns the reasons it fails (empty when valid).
pub fn validate_path_segment_name(name: &str) -> Vec<String> {
    let mut reasons = Vec::new();
    match name {
        "." | ".." => reasons.push(format!("may not be '{name}'")),
        _ => {}
    }
    for c in ['/', '%'] {
        if name.contains(c) {
            reasons.push(format!("may not contain '{c}'"));
        }
    }
    reasons
}

/// OpenShift's rule for image stream names: a path segment matching
/// `[a-z0-9]+(?:[._-][a-z0-9]+)*`. Returns the reasons it fails.
pub fn validate_image_stream_name(name: &str) -> Vec<String> {
    let reasons = validate_path_segment_name(name);
    if !reasons.is_empty() {
        return reasons;
    }
    if !IMAGE_STREAM_NAME_RE.is_match(name) {
        return vec![format!("must match {IMAGE_STREAM_NAME_PATTERN:?}")];
    }
    Vec::new()
}

/// Whether `s` is a DNS-1123 label; returns the reasons it is not (Kubernetes'
/// messages).
pub fn is_dns1123_label(s: &str) -> Vec<String> {
    let mut reasons = Vec::new();
    if s.len() > DNS1123_LABEL_MAX_LENGTH {
        reasons.push(format!(
            "must be no more than {DNS1123_LABEL_MAX_LENGTH} characters"
        ));
    }
    if !DNS1123_LABEL_RE.is_match(s) {
        reasons.push(format!(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', \
             regex used for validation is '{DNS1123_LABEL_PATTERN}')"
        ));
    }
    reasons
}

/// Kubernetes' namespace name rule (a DNS-1123 label). Returns the reasons it fails.
pub fn validate_namespace_name(namespace: &str) -> Vec<String> {
    is_dns1123_label(namespace)
}

/// moor's tag name rule (docker/distribution's tag grammar, so every tag can appear in
/// a pull spec). Returns the reasons it fails.
pub fn validate_tag_name(tag: &str) -> Vec<String> {
    if is_valid_tag(tag) {
        Vec::new()
    } else {
        vec![format!("must match {TAG_NAME_PATTERN:?}")]
    }
}

// ---------------------------------------------------------------------------------------
// Object metadata
// ---------------------------------------------------------------------------------------

/// How object metadata is checked.
#[derive(Clone, Copy)]
struct MetaRules {
    namespaced: bool,
    name: fn(&str) -> Vec<String>,
}

fn validate_object_meta(meta: &ObjectMeta, rules: MetaRules, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = meta.name.as_deref().unwrap_or("");
    let generate_name = meta.generate_name.as_deref().unwrap_or("");
    if name.is_empty() {
        if generate_name.is_empty() {
            errs.push(FieldError::required(
                path.child("name"),
                "name or generateName is required",
            ));
        }
    } else {
        for reason in (rules.name)(name) {
            errs.push(FieldError::invalid(path.child("name"), name, reason));
        }
    }
    let namespace = meta.namespace.as_deref().unwrap_or("");
    if rules.namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required(path.child("namespace"), ""));
        } else {
            for reason in validate_namespace_name(namespace) {
                errs.push(FieldError::invalid(
                    path.child("namespace"),
                    namespace,
                    reason,
                ));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            path.child("namespace"),
            "not allowed on this type",
        ));
    }
    errs
}

/// The immutable parts of metadata on update: name, namespace and uid may not change.
pub fn validate_object_meta_update(
    new: &ObjectMeta,
    old: &ObjectMeta,
    path: &FieldPath,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let fields = [
        ("name", &new.name, &old.name),
        ("namespace", &new.namespace, &old.namespace),
        ("uid", &new.uid, &old.uid),
    ];
    for (field, n, o) in fields {
        if o.is_some() && n != o {
            errs.push(FieldError::invalid(
                path.child(field),
                n.as_deref().unwrap_or(""),
                "field is immutable",
            ));
        }
    }
    errs
}

// ---------------------------------------------------------------------------------------
// ImageStream and TagReference
// ---------------------------------------------------------------------------------------

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

fn validate_import_mode(policy: &TagImportPolicy, path: &FieldPath) -> Option<FieldError> {
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
fn image_stream_tag_name_problem(name: &str) -> Option<String> {
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

// ---------------------------------------------------------------------------------------
// ImageStreamTag
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// ImageStreamImport
// ---------------------------------------------------------------------------------------

/// Validates an image stream import (OpenShift's `ValidateImageStreamImport`): each
/// `spec.images[]` has kind `DockerImage` and a parsable name (`*` is tolerated, as
/// for old clients) and a non-empty `to.name` if `to` is set; `spec.repository` has
/// kind `DockerImage` and a repository without tag or digest; at least one of them is
/// given; the name is a valid image stream name.
///
/// moor additions: `to.name` must be a valid tag; import modes must be known.
pub fn validate_image_stream_import(isi: &ImageStreamImport) -> Vec<FieldError> {
    let spec_path = FieldPath::new("spec");
    let images_path = spec_path.child("images");
    let repo_path = spec_path.child("repository");
    let mut errs = Vec::new();

    for (i, spec) in isi.spec.images.iter().enumerate() {
        errs.extend(validate_image_import_spec(spec, &images_path.index(i)));
    }

    if let Some(repo) = &isi.spec.repository {
        let kind = repo.from.kind.as_deref().unwrap_or("");
        let name = repo.from.name.as_deref().unwrap_or("");
        let name_path = repo_path.child("from").child("name");
        if kind == KIND_DOCKER_IMAGE {
            if name.is_empty() {
                errs.push(FieldError::required(
                    &name_path,
                    "container image references require a name",
                ));
            } else {
                match DockerImageReference::parse(name) {
                    Err(e) => errs.push(FieldError::invalid(&name_path, name, e.to_string())),
                    Ok(r) if r.tag().is_some() || r.id().is_some() => {
                        errs.push(FieldError::invalid(
                            &name_path,
                            name,
                            "you must specify an image repository, not a tag or ID",
                        ));
                    }
                    Ok(_) => {}
                }
            }
        } else {
            errs.push(FieldError::invalid(
                repo_path.child("from").child("kind"),
                kind,
                "only DockerImage is supported",
            ));
        }
        errs.extend(validate_import_mode(&repo.import_policy, &repo_path));
    }

    if isi.spec.images.is_empty() && isi.spec.repository.is_none() {
        errs.push(FieldError::invalid_literal(
            &images_path,
            "null",
            "you must specify at least one image or a repository import",
        ));
    }

    errs.extend(validate_object_meta(
        &isi.metadata,
        MetaRules {
            namespaced: true,
            name: validate_image_stream_name,
        },
        &FieldPath::new("metadata"),
    ));
    errs
}

fn validate_image_import_spec(spec: &ImageImportSpec, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let kind = spec.from.kind.as_deref().unwrap_or("");
    let name = spec.from.name.as_deref().unwrap_or("");
    if kind != KIND_DOCKER_IMAGE {
        errs.push(FieldError::invalid(
            path.child("from").child("kind"),
            kind,
            "only DockerImage is supported",
        ));
        return errs;
    }
    if let Some(to) = &spec.to {
        let to_path = path.child("to").child("name");
        if to.name.is_empty() {
            errs.push(FieldError::invalid(
                &to_path,
                "",
                "the name of the target tag must be specified",
            ));
        } else {
            for reason in validate_tag_name(&to.name) {
                errs.push(FieldError::invalid(&to_path, &to.name, reason));
            }
        }
    }
    let name_path = path.child("from").child("name");
    if name.is_empty() {
        errs.push(FieldError::required(&name_path, ""));
    } else if name != "*"
        && let Err(e) = DockerImageReference::parse(name)
    {
        errs.push(FieldError::invalid(&name_path, name, e.to_string()));
    }
    errs.extend(validate_import_mode(&spec.import_policy, path));
    errs
}

// ---------------------------------------------------------------------------------------
// Image and ImageStreamMapping
// ---------------------------------------------------------------------------------------

/// Validates an image (OpenShift's `ValidateImage`): a name, no namespace, a
/// parsable `dockerImageReference`, and well-formed `dockerImageManifests` (digest,
/// RFC 6838 media type, architecture, OS, non-negative size).
///
/// moor addition: the name must be a digest (`sha256:<64 hex>` or `sha512:<128 hex>`).
pub fn validate_image(image: &Image) -> Vec<FieldError> {
    validate_image_at(image, &FieldPath::new(""), false)
}

fn validate_image_at(image: &Image, prefix: &FieldPath, embedded: bool) -> Vec<FieldError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{
        ApplyDefaults, ImageManifest, NamedTagEventList, RepositoryImportSpec, TagEvent,
        TagReferencePolicy,
    };
    use k8s_openapi::api::core::v1::{LocalObjectReference, ObjectReference};

    const D1: &str = "sha256:1c3e4a5e5b3f5d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c";

    #[test]
    fn patterns_compile() {
        LazyLock::force(&IMAGE_STREAM_NAME_RE);
        LazyLock::force(&DNS1123_LABEL_RE);
    }

    fn meta(ns: &str, name: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: (!ns.is_empty()).then(|| ns.to_owned()),
            name: (!name.is_empty()).then(|| name.to_owned()),
            ..Default::default()
        }
    }

    fn from(kind: &str, name: &str) -> Option<ObjectReference> {
        Some(ObjectReference {
            kind: Some(kind.to_owned()),
            name: Some(name.to_owned()),
            ..Default::default()
        })
    }

    fn tag(name: &str, kind: &str, from_name: &str) -> TagReference {
        let mut t = TagReference {
            name: name.to_owned(),
            from: from(kind, from_name),
            ..Default::default()
        };
        t.apply_defaults();
        t
    }

    fn stream(ns: &str, name: &str, tags: Vec<TagReference>) -> ImageStream {
        let mut is = ImageStream {
            metadata: meta(ns, name),
            ..Default::default()
        };
        is.spec.tags = tags;
        is
    }

    fn paths(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(|e| e.path.clone()).collect()
    }

    #[test]
    fn image_stream_names() {
        assert!(validate_image_stream_name("keycloak").is_empty());
        assert!(
            validate_image_stream_name("abcdefghijklmnopqrstuvwxyz-1234567890.dot_underscore-dash")
                .is_empty()
        );
        assert_eq!(
            validate_image_stream_name("foo/bar"),
            ["may not contain '/'"]
        );
        assert_eq!(
            validate_image_stream_name("foo%bar"),
            ["may not contain '%'"]
        );
        assert_eq!(validate_image_stream_name(".."), ["may not be '..'"]);
        assert_eq!(
            validate_image_stream_name("foo bar"),
            [r#"must match "[a-z0-9]+(?:[._-][a-z0-9]+)*""#]
        );
        assert!(!validate_image_stream_name("Keycloak").is_empty());
        assert!(!validate_image_stream_name("-a").is_empty());
        assert!(!validate_image_stream_name("a..b").is_empty());
    }

    #[test]
    fn namespaces_are_dns_labels() {
        assert!(validate_namespace_name("demo-1").is_empty());
        assert!(validate_namespace_name("f").is_empty());
        let r = validate_namespace_name("!$");
        assert_eq!(r.len(), 1);
        assert!(r[0].starts_with("a lowercase RFC 1123 label must consist of"));
        assert!(r[0].ends_with("regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"));
        assert_eq!(
            validate_namespace_name(&"a".repeat(64)),
            ["must be no more than 63 characters"]
        );
        assert!(!validate_namespace_name("Demo").is_empty());
        assert!(!validate_namespace_name("demo-").is_empty());
        assert!(!validate_namespace_name("").is_empty());
    }

    #[test]
    fn valid_stream_passes() {
        let is = stream(
            "demo",
            "keycloak",
            vec![
                tag("20.0", "DockerImage", "quay.io/keycloak/keycloak:20.0.2"),
                tag("latest", "ImageStreamTag", "keycloak:20.0"),
                tag("old", "ImageStreamImage", &format!("keycloak@{D1}")),
                TagReference {
                    name: "pushed".into(),
                    reference_policy: TagReferencePolicy {
                        type_: Some(TagReferencePolicyType::Local),
                    },
                    ..Default::default()
                },
            ],
        );
        assert_eq!(validate_image_stream(&is), []);
    }

    #[test]
    fn stream_metadata_errors() {
        let errs = validate_image_stream(&stream("foo", "", vec![]));
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "metadata.name: Required value: name or generateName is required"
        );
        let errs = validate_image_stream(&stream("", "foo", vec![]));
        assert_eq!(errs[0].to_string(), "metadata.namespace: Required value");
        let errs = validate_image_stream(&stream("foo", "foo bar", vec![]));
        assert_eq!(
            errs[0].to_string(),
            r#"metadata.name: Invalid value: "foo bar": must match "[a-z0-9]+(?:[._-][a-z0-9]+)*""#
        );
        let ok = validate_image_stream(&stream(&"a".repeat(63), &"b".repeat(191), vec![]));
        assert_eq!(ok, []);
        let long = "x".to_owned() + &"b".repeat(191);
        let errs = validate_image_stream(&stream(&"a".repeat(63), &long, vec![]));
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].message,
            "'namespace/name' cannot be longer than 255 characters"
        );
    }

    #[test]
    fn docker_image_repository_rules() {
        let mut is = stream("ns", "foo", vec![]);
        for (repo, message) in [
            ("a-|///bbb", "invalid reference format"),
            ("a/b:tag", "the repository name may not contain a tag"),
            ("a/b@sha256:something", "invalid reference format"),
        ] {
            is.spec.docker_image_repository = repo.into();
            let errs = validate_image_stream(&is);
            assert_eq!(errs.len(), 1, "{repo}");
            assert_eq!(errs[0].path, "spec.dockerImageRepository");
            assert_eq!(errs[0].message, message);
        }
        is.spec.docker_image_repository = format!("a/b@{D1}");
        assert_eq!(
            validate_image_stream(&is)[0].message,
            "the repository name may not contain an ID"
        );
    }

    #[test]
    fn tag_reference_rules() {
        let mut bad_kind = tag("a", "Deployment", "x");
        bad_kind.from.as_mut().unwrap().kind = Some("Deployment".into());
        let mut no_name = tag("b", "DockerImage", "");
        no_name.from.as_mut().unwrap().name = None;
        let bad_ref = tag("c", "DockerImage", "Quay.io/Foo:bar baz");
        let mut sched_ist = tag("d", "ImageStreamTag", "other:latest");
        sched_ist.import_policy.scheduled = true;
        let mut sched_isi = tag("e", "ImageStreamImage", &format!("other@{D1}"));
        sched_isi.import_policy.scheduled = true;
        let mut bad_policy = tag("f", "DockerImage", "abc");
        bad_policy.reference_policy.type_ = Some(TagReferencePolicyType::Other("Other".into()));
        let mut bad_mode = tag("g", "DockerImage", "abc");
        bad_mode.import_policy.import_mode = Some(ImportMode::Other("Invalid".into()));
        let mut no_policy = tag("h", "DockerImage", "abc");
        no_policy.reference_policy.type_ = None;
        let ist_no_colon = tag("i", "ImageStreamTag", "other");
        let isi_not_digest = tag("j", "ImageStreamImage", "other@latest");
        let mut sched_pushed = TagReference {
            name: "k".into(),
            ..Default::default()
        };
        sched_pushed.apply_defaults();
        sched_pushed.import_policy.scheduled = true;
        let mut sched_docker = tag("l", "DockerImage", "abc");
        sched_docker.import_policy.scheduled = true;

        let is = stream(
            "ns",
            "s",
            vec![
                bad_kind,
                no_name,
                bad_ref,
                sched_ist,
                sched_isi,
                bad_policy,
                bad_mode,
                no_policy,
                ist_no_colon,
                isi_not_digest,
                sched_pushed,
                sched_docker,
            ],
        );
        let errs = validate_image_stream(&is);
        let rendered: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            rendered,
            [
                "spec.tags[a].from.kind: Required value: valid values are 'DockerImage', 'ImageStreamImage', 'ImageStreamTag'",
                "spec.tags[b].from.name: Required value",
                r#"spec.tags[c].from.name: Invalid value: "Quay.io/Foo:bar baz": invalid reference format"#,
                "spec.tags[d].importPolicy.scheduled: Invalid value: true: only tags pointing to Docker repositories may be scheduled for background import",
                "spec.tags[e].importPolicy.scheduled: Invalid value: true: only tags pointing to Docker repositories may be scheduled for background import",
                r#"spec.tags[f].referencePolicy.type: Invalid value: "Other": valid values are "Source", "Local""#,
                r#"spec.tags[g].importPolicy.importMode: Invalid value: "Invalid": invalid import mode, valid modes are '', 'Legacy', 'PreserveOriginal'"#,
                r#"spec.tags[h].referencePolicy.type: Invalid value: "": valid values are "Source", "Local""#,
                r#"spec.tags[i].from.name: Invalid value: "other": expected exactly one : delimiter in the istag "other""#,
                r#"spec.tags[j].from.name: Invalid value: "other@latest": image ID "latest": invalid checksum digest format"#,
                "spec.tags[k].importPolicy.scheduled: Invalid value: true: only tags pointing to Docker repositories may be scheduled for background import",
            ]
        );
        assert_eq!(errs[0].kind, FieldErrorKind::Required);
        assert_eq!(errs[0].kind.cause_type(), "FieldValueRequired");
    }

    #[test]
    fn tag_names_unique_and_valid() {
        let is = stream(
            "ns",
            "s",
            vec![
                tag("a", "DockerImage", "x"),
                tag("a", "DockerImage", "y"),
                tag("bad tag", "DockerImage", "x"),
                tag("", "DockerImage", "x"),
            ],
        );
        let errs = validate_image_stream(&is);
        assert_eq!(
            paths(&errs),
            [
                "spec.tags[a].name",
                "spec.tags[bad tag].name",
                "spec.tags[3].name"
            ]
        );
        assert_eq!(errs[0].kind, FieldErrorKind::Duplicate);
        assert_eq!(errs[0].body(), r#"Duplicate value: "a""#);
        assert_eq!(errs[2].kind, FieldErrorKind::Required);
    }

    #[test]
    fn status_items_need_references() {
        let mut is = stream("ns", "s", vec![]);
        is.status.tags.push(NamedTagEventList {
            tag: "tag".into(),
            items: vec![
                TagEvent::default(),
                TagEvent {
                    docker_image_reference: "foo/bar:latest".into(),
                    ..Default::default()
                },
                TagEvent {
                    docker_image_reference: "Bad Ref".into(),
                    ..Default::default()
                },
            ],
            conditions: vec![],
        });
        let errs = validate_image_stream(&is);
        assert_eq!(
            paths(&errs),
            [
                "status.tags[tag].items[0].dockerImageReference",
                "status.tags[tag].items[2].dockerImageReference"
            ]
        );
        assert_eq!(errs[0].kind, FieldErrorKind::Required);
        assert_eq!(errs[1].kind, FieldErrorKind::Invalid);
    }

    #[test]
    fn stream_update_keeps_name() {
        let old = stream("ns", "a", vec![]);
        let new = stream("ns", "b", vec![]);
        let errs = validate_image_stream_update(&new, &old);
        assert_eq!(
            errs[0].to_string(),
            r#"metadata.name: Invalid value: "b": field is immutable"#
        );
        assert_eq!(validate_image_stream_update(&old, &old), []);
    }

    #[test]
    fn image_stream_tag_rules() {
        let mut ist = ImageStreamTag {
            metadata: meta("demo", "keycloak:20.0"),
            tag: Some(tag(
                "20.0",
                "DockerImage",
                "quay.io/keycloak/keycloak:20.0.2",
            )),
            ..Default::default()
        };
        assert_eq!(validate_image_stream_tag(&ist), []);

        ist.metadata.name = Some("keycloak".into());
        let errs = validate_image_stream_tag(&ist);
        assert_eq!(
            errs[0].to_string(),
            r#"metadata.name: Invalid value: "keycloak": expected exactly one : delimiter in the istag "keycloak""#
        );
        ist.metadata.name = Some("Key:cloak".into());
        assert_eq!(
            validate_image_stream_tag(&ist)[0].message,
            r#"image stream name "Key" must match "[a-z0-9]+(?:[._-][a-z0-9]+)*""#
        );
        ist.metadata.name = Some("keycloak:bad tag".into());
        assert_eq!(validate_image_stream_tag(&ist).len(), 1);

        ist.metadata.name = Some("keycloak:20.0".into());
        let t = ist.tag.as_mut().unwrap();
        t.annotations = Some([("a".to_owned(), "b".to_owned())].into());
        let errs = validate_image_stream_tag(&ist);
        assert_eq!(
            errs[0].to_string(),
            "tag.annotations: Invalid value: <map>: tag annotations must not be provided or must be equal to the object meta annotations"
        );
        ist.metadata.annotations = Some([("a".to_owned(), "b".to_owned())].into());
        assert_eq!(validate_image_stream_tag(&ist), []);

        ist.tag.as_mut().unwrap().from = from("Pod", "x");
        assert_eq!(paths(&validate_image_stream_tag(&ist)), ["tag.from.kind"]);
    }

    fn import_spec(name: &str) -> ImageImportSpec {
        let mut s = ImageImportSpec {
            from: ObjectReference {
                kind: Some("DockerImage".into()),
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        s.apply_defaults();
        s
    }

    #[test]
    fn image_stream_import_rules() {
        let mut isi = ImageStreamImport {
            metadata: meta("demo", "keycloak"),
            ..Default::default()
        };
        isi.spec
            .images
            .push(import_spec("quay.io/keycloak/keycloak:20.0.2"));
        assert_eq!(validate_image_stream_import(&isi), []);

        let mut wrong_kind = import_spec("x");
        wrong_kind.from.kind = Some("ImageStreamTag".into());
        let mut empty_to = import_spec("x");
        empty_to.to = Some(LocalObjectReference {
            name: String::new(),
        });
        let star = import_spec("*");
        let bad = import_spec("a//b");
        let mut no_name = import_spec("x");
        no_name.from.name = None;
        isi.spec.images = vec![wrong_kind, empty_to, star, bad, no_name];
        isi.spec.repository = Some(RepositoryImportSpec {
            from: ObjectReference {
                kind: Some("DockerImage".into()),
                name: Some("quay.io/keycloak/keycloak:20".into()),
                ..Default::default()
            },
            ..Default::default()
        });
        let rendered: Vec<String> = validate_image_stream_import(&isi)
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            rendered,
            [
                r#"spec.images[0].from.kind: Invalid value: "ImageStreamTag": only DockerImage is supported"#,
                r#"spec.images[1].to.name: Invalid value: "": the name of the target tag must be specified"#,
                r#"spec.images[3].from.name: Invalid value: "a//b": invalid reference format"#,
                "spec.images[4].from.name: Required value",
                r#"spec.repository.from.name: Invalid value: "quay.io/keycloak/keycloak:20": you must specify an image repository, not a tag or ID"#,
            ]
        );

        let empty = ImageStreamImport {
            metadata: meta("demo", "Bad Name"),
            ..Default::default()
        };
        let rendered: Vec<String> = validate_image_stream_import(&empty)
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            rendered,
            [
                "spec.images: Invalid value: null: you must specify at least one image or a repository import",
                r#"metadata.name: Invalid value: "Bad Name": must match "[a-z0-9]+(?:[._-][a-z0-9]+)*""#,
            ]
        );
    }

    fn image(name: &str, reference: &str) -> Image {
        Image {
            metadata: meta("", name),
            docker_image_reference: reference.into(),
            ..Default::default()
        }
    }

    #[test]
    fn image_rules() {
        assert_eq!(
            validate_image(&image(D1, &format!("quay.io/keycloak/keycloak@{D1}"))),
            []
        );
        let errs = validate_image(&image("", "ref"));
        assert_eq!(paths(&errs), ["metadata.name"]);
        let errs = validate_image(&image("foo/bar", "ref"));
        assert_eq!(errs[0].message, "may not contain '/'");
        let errs = validate_image(&image("foo", ""));
        assert_eq!(paths(&errs), ["metadata.name", "dockerImageReference"]);
        assert_eq!(
            errs[0].message,
            "must be an image digest: invalid checksum digest format"
        );
        assert_eq!(errs[1].kind, FieldErrorKind::Required);
        let mut namespaced = image(D1, "a/b");
        namespaced.metadata.namespace = Some("x".into());
        assert_eq!(
            validate_image(&namespaced)[0].to_string(),
            "metadata.namespace: Forbidden: not allowed on this type"
        );
    }

    #[test]
    fn image_manifest_rules() {
        let mut img = image(D1, "a/b");
        let good = ImageManifest {
            digest: D1.into(),
            media_type: "foo/bar".into(),
            manifest_size: 1,
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: String::new(),
        };
        img.docker_image_manifests = vec![
            good.clone(),
            ImageManifest {
                digest: "abc".into(),
                ..good.clone()
            },
            ImageManifest {
                media_type: "foobar".into(),
                ..good.clone()
            },
            ImageManifest {
                architecture: String::new(),
                ..good.clone()
            },
            ImageManifest {
                os: String::new(),
                ..good.clone()
            },
            ImageManifest {
                manifest_size: -2,
                ..good
            },
        ];
        let rendered: Vec<String> = validate_image(&img).iter().map(|e| e.to_string()).collect();
        assert_eq!(
            rendered,
            [
                r#"dockerImageManifests[1].digest: Invalid value: "abc": digest does not conform with OCI image specification"#,
                r#"dockerImageManifests[2].mediaType: Invalid value: "foobar": media type does not conform to RFC6838"#,
                "dockerImageManifests[3].architecture: Required value",
                "dockerImageManifests[4].os: Required value",
                "dockerImageManifests[5].manifestSize: Invalid value: -2: manifest size cannot be negative",
            ]
        );
    }

    #[test]
    fn image_stream_mapping_rules() {
        let mut m = ImageStreamMapping {
            metadata: meta("default", "ruby"),
            image: image(D1, "openshift/ruby-19-centos"),
            tag: "latest".into(),
            ..Default::default()
        };
        m.image.metadata.namespace = Some("default".into());
        assert_eq!(validate_image_stream_mapping(&m), []);
        m.tag.clear();
        m.image.metadata.name = None;
        m.image.docker_image_reference = "registry/extra/openshift//ruby-19-centos".into();
        assert_eq!(
            paths(&validate_image_stream_mapping(&m)),
            ["tag", "image.metadata.name", "image.dockerImageReference"]
        );
    }

    #[test]
    fn status_for_invalid_object() {
        let errs = vec![
            FieldError::required("spec.tags[a].from.kind", "valid values are 'DockerImage'"),
            FieldError::invalid("metadata.name", "Foo", "must match x"),
        ];
        let status = invalid_status("image.openshift.io", "ImageStream", "Foo", &errs);
        assert_eq!(status.code, Some(422));
        assert_eq!(status.reason.as_deref(), Some("Invalid"));
        assert_eq!(status.status.as_deref(), Some("Failure"));
        assert_eq!(
            status.message.as_deref(),
            Some(
                r#"ImageStream.image.openshift.io "Foo" is invalid: [spec.tags[a].from.kind: Required value: valid values are 'DockerImage', metadata.name: Invalid value: "Foo": must match x]"#
            )
        );
        let details = status.details.unwrap();
        assert_eq!(details.kind.as_deref(), Some("ImageStream"));
        assert_eq!(details.group.as_deref(), Some("image.openshift.io"));
        let causes = details.causes.unwrap();
        assert_eq!(causes[0].reason.as_deref(), Some("FieldValueRequired"));
        assert_eq!(causes[0].field.as_deref(), Some("spec.tags[a].from.kind"));
        assert_eq!(
            causes[0].message.as_deref(),
            Some("Required value: valid values are 'DockerImage'")
        );
        let one = invalid_status("image.openshift.io", "ImageStream", "x", &errs[1..]);
        assert_eq!(
            one.message.as_deref(),
            Some(
                r#"ImageStream.image.openshift.io "x" is invalid: metadata.name: Invalid value: "Foo": must match x"#
            )
        );
        // JSON shape of the Status.
        let v = serde_json::to_value(&one).unwrap();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["details"]["causes"][0]["reason"], "FieldValueInvalid");
    }

    #[test]
    fn other_error_bodies() {
        assert_eq!(
            FieldError::not_supported("spec.x", "c", &["a", "b"]).body(),
            r#"Unsupported value: "c": supported values: "a", "b""#
        );
        assert_eq!(
            FieldError::forbidden("spec.x", "no").to_string(),
            "spec.x: Forbidden: no"
        );
        assert_eq!(
            FieldError::too_long("spec.x", "aaaa", 3).body(),
            "Too long: may not be more than 3 bytes"
        );
        let p = FieldPath::new("spec")
            .child("tags")
            .key("a")
            .child("items")
            .index(2);
        assert_eq!(p.as_str(), "spec.tags[a].items[2]");
        assert_eq!(FieldPath::new("").child("x").to_string(), "x");
    }
}
