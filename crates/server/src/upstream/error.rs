//! The upstream client's error type, with OpenShift's reason strings and the registry's
//! own wording. Pure data: may call nothing but formatting and oci-client's error-body
//! types.

use std::time::Duration;

use moor_api::Digest;

/// Everything that can go wrong talking to an upstream registry.
///
/// `Display` gives `<image>: <message>`, where `<message>` is the registry's own text
/// when it sent one (`manifest unknown`, `authentication required`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The registry has no such repository, tag, manifest or blob (HTTP 404).
    #[error("{target}: {message}")]
    NotFound {
        /// The image or repository asked for.
        target: String,
        /// The registry's message, e.g. `manifest unknown`.
        message: String,
    },
    /// The registry wants credentials, or rejected those sent (HTTP 401).
    #[error("{target}: {message}")]
    Unauthorized {
        /// The image or repository asked for.
        target: String,
        /// The registry's message, e.g. `authentication required`.
        message: String,
    },
    /// The credentials are valid but may not read this repository (HTTP 403).
    #[error("{target}: {message}")]
    Forbidden {
        /// The image or repository asked for.
        target: String,
        /// The registry's message, e.g. `requested access to the resource is denied`.
        message: String,
    },
    /// The registry is rate limiting (HTTP 429); `retry_after` comes from the
    /// `Retry-After` header (seconds or an HTTP date), when the registry sent one.
    #[error("too many requests to the registry{}", retry_after_text(.retry_after))]
    TooManyRequests {
        /// How long the registry asked us to wait.
        retry_after: Option<Duration>,
    },
    /// Content does not hash to the digest it was asked for or announced with.
    #[error("{target}: {message}")]
    DigestMismatch {
        /// The image or blob asked for.
        target: String,
        /// The digest the content should have had (requested, or the
        /// `Docker-Content-Digest` header).
        expected: String,
        /// The digest of the bytes received, in the expected digest's algorithm.
        actual: Digest,
        /// A sentence saying which check failed.
        message: String,
    },
    /// A Docker schema 1 manifest, which moor does not import.
    #[error(
        "{target}: unsupported manifest type {media_type}: Docker schema 1 manifests are not supported; push the image again with a current client"
    )]
    UnsupportedSchema1 {
        /// The image asked for.
        target: String,
        /// The schema 1 media type.
        media_type: String,
    },
    /// A manifest of a kind moor does not import (not an OCI manifest or index, nor a
    /// Docker schema 2 manifest or manifest list).
    #[error("{target}: unsupported manifest type {media_type:?}")]
    UnsupportedMediaType {
        /// The image asked for.
        target: String,
        /// The media type found (empty when none could be determined).
        media_type: String,
    },
    /// A manifest or blob larger than the client accepts.
    #[error("{target}: {kind} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The image or blob asked for.
        target: String,
        /// `manifest`, `config blob`, `tag list`, ...
        kind: &'static str,
        /// The limit in bytes.
        limit: u64,
    },
    /// The registry sent something that cannot be parsed (bad JSON, a bad header).
    #[error("{target}: {message}")]
    InvalidContent {
        /// The image or blob asked for.
        target: String,
        /// What is wrong with it.
        message: String,
    },
    /// Any other HTTP error status from the registry.
    #[error("{target}: {message} (HTTP {status})")]
    Registry {
        /// The image or repository asked for.
        target: String,
        /// The HTTP status code.
        status: u16,
        /// The registry's message, or the status text.
        message: String,
    },
    /// The connection or the whole request took longer than the configured timeout.
    #[error("{target}: {message}")]
    Timeout {
        /// The image or repository asked for.
        target: String,
        /// What timed out.
        message: String,
    },
    /// The registry could not be reached or the connection failed (DNS, refused,
    /// TLS, reset).
    #[error("{target}: {message}")]
    Transport {
        /// The image or repository asked for.
        target: String,
        /// What failed, with the underlying cause.
        message: String,
    },
    /// The client's configuration is unusable (a bad mirror spec, an unreadable CA
    /// file).
    #[error("invalid upstream configuration: {message}")]
    InvalidConfig {
        /// What is wrong.
        message: String,
    },
}

fn retry_after_text(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(", retry after {} s", d.as_secs()),
        None => String::new(),
    }
}

impl UpstreamError {
    /// OpenShift's `metav1.StatusReason` for this error, as the importer writes it
    /// into `ImportSuccess` conditions: `NotFound`, `Unauthorized`, `Forbidden`,
    /// `TooManyRequests`, `Invalid` (digest mismatch), `BadRequest` (unsupported,
    /// too large or unparsable content), `Timeout`, `ServiceUnavailable` (registry
    /// unreachable or answering 502/503/504) and `InternalError` (anything else).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "NotFound",
            Self::Unauthorized { .. } => "Unauthorized",
            Self::Forbidden { .. } => "Forbidden",
            Self::TooManyRequests { .. } => "TooManyRequests",
            Self::DigestMismatch { .. } => "Invalid",
            Self::UnsupportedSchema1 { .. }
            | Self::UnsupportedMediaType { .. }
            | Self::TooLarge { .. }
            | Self::InvalidContent { .. } => "BadRequest",
            Self::Timeout { .. } => "Timeout",
            Self::Transport { .. } => "ServiceUnavailable",
            Self::Registry { status, .. } => match status {
                502..=504 => "ServiceUnavailable",
                400 => "BadRequest",
                _ => "InternalError",
            },
            Self::InvalidConfig { .. } => "InternalError",
        }
    }

    /// The HTTP status code matching [`reason`](Self::reason), for a
    /// `metav1.Status` or an OCI error body.
    pub fn status_code(&self) -> u16 {
        match self.reason() {
            "NotFound" => 404,
            "Unauthorized" => 401,
            "Forbidden" => 403,
            "TooManyRequests" => 429,
            "Invalid" => 422,
            "BadRequest" => 400,
            "Timeout" => 504,
            "ServiceUnavailable" => 503,
            _ => 500,
        }
    }

    /// The message without the image name: the registry's own words where it sent
    /// any (`manifest unknown`), else a description of what failed.
    pub fn message(&self) -> String {
        match self {
            Self::NotFound { message, .. }
            | Self::Unauthorized { message, .. }
            | Self::Forbidden { message, .. }
            | Self::DigestMismatch { message, .. }
            | Self::InvalidContent { message, .. }
            | Self::Registry { message, .. }
            | Self::Timeout { message, .. }
            | Self::Transport { message, .. }
            | Self::InvalidConfig { message } => message.clone(),
            other => {
                let text = other.to_string();
                match other.target() {
                    Some(t) => text
                        .strip_prefix(t)
                        .and_then(|s| s.strip_prefix(": "))
                        .map(str::to_owned)
                        .unwrap_or(text),
                    None => text,
                }
            }
        }
    }

    /// The image, repository or blob the failed request was about, when known.
    pub fn target(&self) -> Option<&str> {
        match self {
            Self::NotFound { target, .. }
            | Self::Unauthorized { target, .. }
            | Self::Forbidden { target, .. }
            | Self::DigestMismatch { target, .. }
            | Self::UnsupportedSchema1 { target, .. }
            | Self::UnsupportedMediaType { target, .. }
            | Self::TooLarge { target, .. }
            | Self::InvalidContent { target, .. }
            | Self::Registry { target, .. }
            | Self::Timeout { target, .. }
            | Self::Transport { target, .. } => Some(target),
            Self::TooManyRequests { .. } | Self::InvalidConfig { .. } => None,
        }
    }

    /// How long to wait before retrying, for a rate-limited request.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::TooManyRequests { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// Whether retrying the same request later may succeed (rate limits, timeouts,
    /// unreachable or failing registries), as opposed to answers that will not
    /// change by themselves (not found, unauthorized, bad content).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::TooManyRequests { .. } | Self::Timeout { .. } | Self::Transport { .. } => true,
            Self::Registry { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// The message of the variants that carry one.
    fn message_mut(&mut self) -> Option<&mut String> {
        match self {
            Self::NotFound { message, .. }
            | Self::Unauthorized { message, .. }
            | Self::Forbidden { message, .. }
            | Self::DigestMismatch { message, .. }
            | Self::InvalidContent { message, .. }
            | Self::Registry { message, .. }
            | Self::Timeout { message, .. }
            | Self::Transport { message, .. } => Some(message),
            _ => None,
        }
    }

    /// Puts `prefix` before the message (used to name the endpoint that answered).
    /// Variants without a message are returned unchanged.
    pub(crate) fn with_prefix(mut self, prefix: &str) -> Self {
        if let Some(message) = self.message_mut() {
            message.insert_str(0, prefix);
        }
        self
    }

    /// Appends `note` to the message (used to say which mirrors failed before the
    /// source answered). Variants without a message are returned unchanged.
    pub(crate) fn with_note(mut self, note: &str) -> Self {
        if let Some(message) = self.message_mut() {
            message.push_str("; ");
            message.push_str(note);
        }
        self
    }
}

/// The registry's own message from an OCI/Docker error body
/// (`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`), the
/// messages of several errors joined by `; `. `None` when the body is not such a
/// document or carries no message.
///
/// Parsed with oci-client's `OciEnvelope`, which (unlike oci-spec's `ErrorResponse`)
/// keeps error codes outside the spec, such as Docker Hub's `TOOMANYREQUESTS`.
pub(crate) fn registry_message(body: &[u8]) -> Option<String> {
    let envelope: oci_client::errors::OciEnvelope = serde_json::from_slice(body).ok()?;
    let messages: Vec<String> = envelope
        .errors
        .iter()
        .map(|e| {
            if e.message.is_empty() {
                // Distribution's own wording for a code is its lowercase form.
                serde_json::to_value(&e.code)
                    .ok()
                    .and_then(|v| v.as_str().map(|s| s.to_lowercase().replace('_', " ")))
                    .unwrap_or_default()
            } else {
                e.message.clone()
            }
        })
        .filter(|m| !m.is_empty())
        .collect();
    if messages.is_empty() {
        None
    } else {
        Some(messages.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_messages() {
        let e = UpstreamError::NotFound {
            target: "quay.io/a/b:1".into(),
            message: "manifest unknown".into(),
        };
        assert_eq!(e.reason(), "NotFound");
        assert_eq!(e.status_code(), 404);
        assert_eq!(e.to_string(), "quay.io/a/b:1: manifest unknown");
        assert_eq!(e.message(), "manifest unknown");
        assert!(!e.is_transient());

        let e = UpstreamError::TooManyRequests {
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(e.reason(), "TooManyRequests");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert!(e.to_string().contains("retry after 3 s"));
        assert!(e.is_transient());

        let e = UpstreamError::UnsupportedSchema1 {
            target: "x/y:1".into(),
            media_type: moor_api::media_types::DOCKER_MANIFEST_V1_SIGNED.into(),
        };
        assert_eq!(e.reason(), "BadRequest");
        assert!(e.message().starts_with("unsupported manifest type"));
        assert!(e.message().contains("schema 1"));

        let e = UpstreamError::Registry {
            target: "x".into(),
            status: 503,
            message: "down".into(),
        };
        assert_eq!(e.reason(), "ServiceUnavailable");
        assert!(e.is_transient());
        let e = UpstreamError::Transport {
            target: "x".into(),
            message: "connection refused".into(),
        }
        .with_note("mirror m/x: manifest unknown");
        assert_eq!(
            e.message(),
            "connection refused; mirror m/x: manifest unknown"
        );
    }

    #[test]
    fn registry_messages() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#;
        assert_eq!(registry_message(body).as_deref(), Some("manifest unknown"));
        let body =
            br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"},{"code":"DENIED"}]}"#;
        assert_eq!(registry_message(body).as_deref(), Some("slow down; denied"));
        let body = br#"{"errors":[{"code":"SOMETHING_ELSE"}]}"#;
        assert_eq!(registry_message(body).as_deref(), Some("something else"));
        assert_eq!(registry_message(b"<html>"), None);
        assert_eq!(registry_message(br#"{"errors":[]}"#), None);
    }
}
