//! Kubernetes' rules for `metadata.labels` and `metadata.annotations`, which hold for
//! every kind: keys are qualified names (`prefix/name`), label values are at most 63
//! characters of a restricted alphabet, and all annotations together are at most
//! 256 KiB. Messages are apimachinery's, so clients see what kube-apiserver says.

use std::collections::BTreeMap;

use crate::validation::{FieldError, FieldPath};

/// Kubernetes' `TotalAnnotationSizeLimitB`.
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;
/// The longest label value and name part of a qualified name.
pub const MAX_LABEL_VALUE_LEN: usize = 63;
const MAX_PREFIX_LEN: usize = 253;

const NAME_PART_MESSAGE: &str = "must consist of alphanumeric characters, '-', '_' or '.', \
     and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or \
     '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MESSAGE: &str = "a valid label must be an empty string or consist of \
     alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric \
     character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is \
     '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
     alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character \
     (e.g. 'example.com', regex used for validation is \
     '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, non-empty.
fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_PREFIX_LEN
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// Why `key` is not a qualified name (`[prefix/]name`), in apimachinery's words.
pub fn qualified_name_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let (prefix, name) = match key.split_once('/') {
        None => (None, key),
        Some((p, n)) if !n.contains('/') => (Some(p), n),
        Some(_) => {
            return vec![format!(
                "a qualified name {NAME_PART_MESSAGE} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            errs.push("prefix part must be non-empty".to_string());
        } else if prefix.len() > MAX_PREFIX_LEN {
            errs.push(format!(
                "prefix part must be no more than {MAX_PREFIX_LEN} characters"
            ));
        } else if !is_dns1123_subdomain(prefix) {
            errs.push(format!("prefix part {SUBDOMAIN_MESSAGE}"));
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > MAX_LABEL_VALUE_LEN {
        errs.push(format!(
            "name part must be no more than {MAX_LABEL_VALUE_LEN} characters"
        ));
    }
    if !name.is_empty() && !is_name_part(name) {
        errs.push(format!("name part {NAME_PART_MESSAGE}"));
    }
    errs
}

/// Why `value` is not a label value.
pub fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > MAX_LABEL_VALUE_LEN {
        errs.push(format!(
            "must be no more than {MAX_LABEL_VALUE_LEN} characters"
        ));
    }
    if !value.is_empty() && !is_name_part(value) {
        errs.push(LABEL_VALUE_MESSAGE.to_string());
    }
    errs
}

/// Checks `metadata.labels` as kube-apiserver's `ValidateLabels`.
pub fn validate_labels(labels: &BTreeMap<String, String>, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in labels {
        for reason in qualified_name_errors(k) {
            errs.push(FieldError::invalid(path.clone(), k, reason));
        }
        for reason in label_value_errors(v) {
            errs.push(FieldError::invalid(path.key(k), v, reason));
        }
    }
    errs
}

/// Checks `metadata.annotations` as kube-apiserver's `ValidateAnnotations`: keys are
/// qualified names (compared in lower case) and all of them with their values take at
/// most [`MAX_ANNOTATIONS_BYTES`].
pub fn validate_annotations(
    annotations: &BTreeMap<String, String>,
    path: &FieldPath,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (k, v) in annotations {
        for reason in qualified_name_errors(&k.to_ascii_lowercase()) {
            errs.push(FieldError::invalid(path.clone(), k, reason));
        }
        total += k.len() + v.len();
    }
    if total > MAX_ANNOTATIONS_BYTES {
        errs.push(FieldError::too_long(
            path.clone(),
            "",
            MAX_ANNOTATIONS_BYTES,
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names() {
        for ok in ["app", "app.kubernetes.io/name", "a_b.c-d", "A1", "x/y"] {
            assert!(qualified_name_errors(ok).is_empty(), "{ok}");
        }
        for bad in ["", "-a", "a-", "a/b/c", "/a", "a/", "Ex.com/a", "a b"] {
            assert!(!qualified_name_errors(bad).is_empty(), "{bad:?}");
        }
        assert!(!qualified_name_errors(&"a".repeat(64)).is_empty());
        assert!(qualified_name_errors(&"a".repeat(63)).is_empty());
    }

    #[test]
    fn label_values() {
        assert!(label_value_errors("").is_empty());
        assert!(label_value_errors("v1.2_3-x").is_empty());
        assert!(!label_value_errors("-x").is_empty());
        assert!(!label_value_errors("a b").is_empty());
        assert!(!label_value_errors(&"a".repeat(64)).is_empty());
    }

    #[test]
    fn labels_and_annotations_as_field_errors() {
        let path = FieldPath::new("metadata").child("labels");
        let labels: BTreeMap<_, _> = [("ok".to_string(), "bad value".to_string())].into();
        let errs = validate_labels(&labels, &path);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0]
                .to_string()
                .starts_with("metadata.labels[ok]: Invalid value"),
            "{}",
            errs[0]
        );

        let path = FieldPath::new("metadata").child("annotations");
        let big: BTreeMap<_, _> = [("a".to_string(), "x".repeat(MAX_ANNOTATIONS_BYTES))].into();
        let errs = validate_annotations(&big, &path);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].body().contains("Too long"), "{}", errs[0].body());
        let upper: BTreeMap<_, _> = [("Example.com/Key".to_string(), String::new())].into();
        assert!(validate_annotations(&upper, &path).is_empty());
    }
}
