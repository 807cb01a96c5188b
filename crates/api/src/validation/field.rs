//! Field errors (Kubernetes `field.Error` and `field.Path`) and the 422 `Status` built
//! from them.

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

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
