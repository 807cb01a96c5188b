//! API errors and their `metav1.Status` form: every failure under `/api` and `/apis`
//! leaves the server as a Kubernetes Status body with Kubernetes' reason and code.
//! Calls nothing but serde and axum.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use moor_api::validation::FieldError;
use serde_json::{Value, json};

use crate::resource::GroupResource;

/// One reason why a field was refused, as `metav1.StatusCause`.
#[derive(Clone, Debug, PartialEq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, ...
    pub reason: String,
    pub message: String,
    /// The field's JSON path, e.g. `spec.tags[0].name`.
    pub field: String,
}

/// An error answered by the API server.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{gr} \"{name}\" not found")]
    NotFound { gr: GroupResource, name: String },
    #[error("{gr} \"{name}\" already exists")]
    AlreadyExists { gr: GroupResource, name: String },
    #[error("Operation cannot be fulfilled on {gr} \"{name}\": {message}")]
    Conflict {
        gr: GroupResource,
        name: String,
        message: String,
    },
    #[error("{} \"{name}\" is invalid: {}", qualified_kind(.kind, &.gr.group), render_causes(.causes))]
    Invalid {
        gr: GroupResource,
        kind: String,
        name: String,
        causes: Vec<Cause>,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    /// An authorizer's refusal, worded as kube-apiserver's
    /// (`imagestreams.image.openshift.io "x" is forbidden: User "u" cannot ...`).
    #[error("{}", forbidden_message(gr, name, message))]
    ForbiddenOn {
        /// The resource asked for (empty for a non-resource path).
        gr: GroupResource,
        /// The object's name, or `""`.
        name: String,
        /// Who could not do what, and why.
        message: String,
    },
    #[error("the server could not find the requested resource")]
    NoRoute,
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    #[error("the body of the request was too large; the limit is {limit} bytes")]
    TooLarge { limit: usize },
    /// A request within the body limit that would build more than a bound allows.
    #[error("{0}")]
    EntityTooLarge(String),
    #[error("the content type {0:?} is not supported")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    NotAcceptable(String),
    /// A resourceVersion or continue token that was compacted away.
    #[error("{0}")]
    Expired(String),
    #[error("{0}")]
    Gone(String),
    /// moor's own failure. The message is what the `Status` says; the cause stays
    /// reachable as the error's `source`, and is logged with its chain.
    #[error("{message}")]
    Internal {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    #[error("{0}")]
    ServiceUnavailable(String),
}

fn qualified_kind(kind: &str, group: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

fn render_causes(causes: &[Cause]) -> String {
    let parts: Vec<String> = causes
        .iter()
        .map(|c| {
            if c.field.is_empty() {
                c.message.clone()
            } else {
                format!("{}: {}", c.field, c.message)
            }
        })
        .collect();
    if parts.len() == 1 {
        parts[0].clone()
    } else {
        format!("[{}]", parts.join(", "))
    }
}

impl ApiError {
    /// A 422 Invalid error built from validation field errors.
    pub fn invalid(gr: &GroupResource, kind: &str, name: &str, errors: &[FieldError]) -> Self {
        ApiError::Invalid {
            gr: gr.clone(),
            kind: kind.to_string(),
            name: name.to_string(),
            causes: errors.iter().map(Cause::from).collect(),
        }
    }

    /// A 409 Conflict for a stale resourceVersion, worded as kube-apiserver words it.
    pub fn stale(gr: &GroupResource, name: &str) -> Self {
        ApiError::Conflict {
            gr: gr.clone(),
            name: name.to_string(),
            message: "the object has been modified; please apply your changes to the latest version and try again".into(),
        }
    }

    /// An internal error caused by `source` (its text is the message).
    pub fn internal(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal {
            message: source.to_string(),
            source: Some(Box::new(source)),
        }
    }

    /// An internal error with no underlying cause (an invariant that did not hold).
    pub fn internal_message(message: impl Into<String>) -> Self {
        ApiError::Internal {
            message: message.into(),
            source: None,
        }
    }

    /// The HTTP status code.
    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::ForbiddenOn { .. } => StatusCode::FORBIDDEN,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge { .. } | ApiError::EntityTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::Expired(_) | ApiError::Gone(_) => StatusCode::GONE,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Kubernetes' `StatusReason`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden(_) | ApiError::ForbiddenOn { .. } => "Forbidden",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::TooLarge { .. } | ApiError::EntityTooLarge(_) => "RequestEntityTooLarge",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::NotAcceptable(_) => "NotAcceptable",
            ApiError::Expired(_) => "Expired",
            ApiError::Gone(_) => "Gone",
            ApiError::Internal { .. } => "InternalError",
            ApiError::ServiceUnavailable(_) => "ServiceUnavailable",
        }
    }

    /// The `metav1.Status` body.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        let details = match self {
            ApiError::NotFound { gr, name }
            | ApiError::AlreadyExists { gr, name }
            | ApiError::Conflict { gr, name, .. }
            | ApiError::ForbiddenOn { gr, name, .. } => {
                Some(json!({"name": name, "group": gr.group, "kind": gr.resource}))
            }
            ApiError::Invalid {
                gr,
                kind,
                name,
                causes,
            } => Some(json!({
                "name": name,
                "group": gr.group,
                "kind": kind,
                "causes": causes.iter().map(|c| json!({
                    "reason": c.reason, "message": c.message, "field": c.field,
                })).collect::<Vec<_>>(),
            })),
            _ => None,
        };
        if let Some(mut details) = details {
            if let Some(obj) = details.as_object_mut() {
                obj.retain(|_, v| v.as_str() != Some(""));
            }
            status["details"] = details;
        }
        status
    }
}

impl From<&FieldError> for Cause {
    fn from(e: &FieldError) -> Self {
        Cause {
            reason: e.kind.cause_type().to_string(),
            message: e.body(),
            field: e.path.clone(),
        }
    }
}

impl From<moor_store::StoreError> for ApiError {
    fn from(e: moor_store::StoreError) -> Self {
        use moor_store::StoreError as S;
        match e {
            S::Compacted { .. } => ApiError::Expired(format!("too old resource version: {e}")),
            S::FutureRevision { .. } => {
                ApiError::ServiceUnavailable(format!("Too large resource version: {e}"))
            }
            other => ApiError::Internal {
                message: format!("storage error: {other}"),
                source: Some(Box::new(other)),
            },
        }
    }
}

/// kube's `NewForbidden` wording.
fn forbidden_message(gr: &GroupResource, name: &str, message: &str) -> String {
    match (gr.resource.is_empty(), name.is_empty()) {
        (true, _) => format!("forbidden: {message}"),
        (false, true) => format!("{gr} is forbidden: {message}"),
        (false, false) => format!("{gr} {name:?} is forbidden: {message}"),
    }
}

/// The causes below `e`, joined by `: ` (for logs).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push(c.to_string());
        cur = c.source();
    }
    out.join(": ")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if matches!(self, ApiError::Internal { .. }) {
            tracing::error!(error = %self, chain = %error_chain(&self), "internal error");
        }
        let mut resp = (self.code(), axum::Json(self.status())).into_response();
        if matches!(self, ApiError::Unauthorized) {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"moor\""),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_reads_like_kubernetes() {
        let gr = GroupResource::new("image.openshift.io", "imagestreams");
        let e = ApiError::NotFound {
            gr,
            name: "x".into(),
        };
        assert_eq!(
            e.to_string(),
            "imagestreams.image.openshift.io \"x\" not found"
        );
        let s = e.status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["details"]["kind"], "imagestreams");
    }

    #[test]
    fn internal_errors_keep_their_cause() {
        let io = std::io::Error::other("disk on fire");
        let e = ApiError::internal(io);
        assert_eq!(e.to_string(), "disk on fire");
        assert!(std::error::Error::source(&e).is_some(), "the cause is kept");
        assert_eq!(e.status()["reason"], "InternalError");
        let store = ApiError::from(moor_store::StoreError::Backend("bad row".into()));
        assert!(std::error::Error::source(&store).is_some());
        assert!(store.to_string().starts_with("storage error: "), "{store}");
    }

    #[test]
    fn core_group_has_no_suffix() {
        let gr = GroupResource::new("", "namespaces");
        let e = ApiError::NotFound {
            gr,
            name: "x".into(),
        };
        assert_eq!(e.to_string(), "namespaces \"x\" not found");
        assert!(e.status()["details"].get("group").is_none());
    }
}
