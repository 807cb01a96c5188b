//! The registry's errors and their OCI error bodies (distribution-spec "Error Codes"):
//! `{"errors":[{"code":"BLOB_UNKNOWN","message":"…","detail":…}]}` with the status the
//! spec gives each code. Calls nothing.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The spec's error codes (and distribution's `TOOMANYREQUESTS`/`UNAVAILABLE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    RangeInvalid,
    Unavailable,
}

impl Code {
    /// The code as written in the body.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::TooManyRequests => "TOOMANYREQUESTS",
            Code::RangeInvalid => "RANGE_INVALID",
            Code::Unavailable => "UNAVAILABLE",
        }
    }

    /// The HTTP status the spec (or distribution, where it is silent) pairs with it.
    pub fn status(self) -> StatusCode {
        match self {
            Code::BlobUnknown
            | Code::BlobUploadUnknown
            | Code::ManifestUnknown
            | Code::NameUnknown => StatusCode::NOT_FOUND,
            Code::BlobUploadInvalid
            | Code::DigestInvalid
            | Code::ManifestBlobUnknown
            | Code::ManifestInvalid
            | Code::NameInvalid
            | Code::SizeInvalid => StatusCode::BAD_REQUEST,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Denied => StatusCode::FORBIDDEN,
            Code::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Code::RangeInvalid => StatusCode::RANGE_NOT_SATISFIABLE,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// One registry error: a code, a message, and optionally detail, another status and
/// headers to add (boxed: errors travel in `Result`s on every path).
#[derive(Clone, Debug)]
pub struct RegistryError {
    pub code: Code,
    pub message: String,
    extra: Option<Box<Extra>>,
}

#[derive(Clone, Debug, Default)]
struct Extra {
    detail: Option<Value>,
    /// Overrides the code's status (e.g. 502 when an upstream failed).
    status: Option<StatusCode>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl RegistryError {
    /// An error with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        RegistryError {
            code,
            message: message.into(),
            extra: None,
        }
    }

    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// Adds detail.
    pub fn detail(mut self, detail: Value) -> Self {
        self.extra().detail = Some(detail);
        self
    }

    /// Answers with `status` instead of the code's.
    pub fn status(mut self, status: StatusCode) -> Self {
        self.extra().status = Some(status);
        self
    }

    /// The status this error answers with.
    pub fn http_status(&self) -> StatusCode {
        self.extra
            .as_ref()
            .and_then(|e| e.status)
            .unwrap_or_else(|| self.code.status())
    }

    /// Adds a header.
    pub fn header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.extra().headers.push((name, v));
        }
        self
    }

    /// `BLOB_UNKNOWN` for `digest`.
    pub fn blob_unknown(digest: &str) -> Self {
        Self::new(Code::BlobUnknown, "blob unknown to registry").detail(json!({"digest": digest}))
    }

    /// `MANIFEST_UNKNOWN` for `reference`.
    pub fn manifest_unknown(reference: &str) -> Self {
        Self::new(Code::ManifestUnknown, "manifest unknown").detail(json!({"reference": reference}))
    }

    /// `NAME_UNKNOWN` for `name`.
    pub fn name_unknown(name: &str) -> Self {
        Self::new(Code::NameUnknown, "repository name not known to registry")
            .detail(json!({"name": name}))
    }

    /// An internal failure (storage, store): 500 with the spec's closest code. The
    /// cause goes to the log only: it may name server paths.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "registry: internal error");
        Self::new(
            Code::Unavailable,
            "internal server error; the server log has the cause",
        )
        .status(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for RegistryError {}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let status = self.http_status();
        let extra = self.extra.map(|e| *e).unwrap_or_default();
        let mut entry = json!({"code": self.code.as_str(), "message": self.message});
        if let Some(d) = extra.detail {
            entry["detail"] = d;
        }
        let body = json!({ "errors": [entry] }).to_string();
        let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        for (k, v) in extra.headers {
            resp.headers_mut().append(k, v);
        }
        resp
    }
}

impl From<super::storage::StorageError> for RegistryError {
    fn from(e: super::storage::StorageError) -> Self {
        use super::storage::StorageError as E;
        match e {
            E::DigestMismatch { expected, actual } => Self::new(
                Code::DigestInvalid,
                format!("provided digest {expected} did not match uploaded content {actual}"),
            ),
            E::SizeMismatch { expected, actual } => Self::new(
                Code::SizeInvalid,
                format!("provided length {expected} did not match content length {actual}"),
            ),
            other => Self::internal(other),
        }
    }
}
