//! The checks every kind shares: names (path segments, image streams, DNS-1123
//! labels, namespaces, tags) and object metadata.

use std::sync::LazyLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use regex::Regex;

use super::field::{FieldError, FieldPath};
use crate::reference::is_valid_tag;

/// The image stream name pattern OpenShift shows in its error message.
pub const IMAGE_STREAM_NAME_PATTERN: &str = "[a-z0-9]+(?:[._-][a-z0-9]+)*";
/// The tag name pattern (docker/distribution's).
pub const TAG_NAME_PATTERN: &str = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
/// The DNS-1123 label pattern.
pub const DNS1123_LABEL_PATTERN: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
/// The maximum length of a DNS-1123 label.
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;

pub(super) static IMAGE_STREAM_NAME_RE: LazyLock<Regex> =
    LazyLock::new(|| anchored(IMAGE_STREAM_NAME_PATTERN));
pub(super) static DNS1123_LABEL_RE: LazyLock<Regex> =
    LazyLock::new(|| anchored(DNS1123_LABEL_PATTERN));

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

/// How object metadata is checked.
#[derive(Clone, Copy)]
pub(super) struct MetaRules {
    pub(super) namespaced: bool,
    pub(super) name: fn(&str) -> Vec<String>,
}

pub(super) fn validate_object_meta(
    meta: &ObjectMeta,
    rules: MetaRules,
    path: &FieldPath,
) -> Vec<FieldError> {
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
