//! `POST /admission/image-policy`: a mutating admission webhook for any Kubernetes
//! cluster. It takes an `admission.k8s.io/v1` AdmissionReview (kube-core's types) of a
//! Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job or CronJob on CREATE or
//! UPDATE, runs the same resolver the API server runs (`moor_api::lookup`) against
//! moor's stored image streams, and answers with a JSONPatch of the resolved images.
//! It never calls a registry. It denies, with the reason, a short name of a stream that
//! has lookup on but no usable image (fail closed), and an invalid triggers annotation.
//! Objects with a controller owner and other kinds or operations pass unchanged.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use kube_core::DynamicObject;
use kube_core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use moor_api::lookup::{
    Workload, WorkloadKind, candidate_streams, resolve_workload, validate_triggers,
};
use serde_json::{Value, json};

use crate::apiserver::ApiServer;
use crate::apiserver::error::ApiError;

/// The webhook's path.
pub const PATH: &str = "/admission/image-policy";

/// The AdmissionReview versions this webhook speaks (the shape is the same).
pub const VERSIONS: &[&str] = &["admission.k8s.io/v1", "admission.k8s.io/v1beta1"];

/// The webhook route. kube-apiserver presents no credentials to webhooks by default,
/// so the route is open; it reveals only what a workload's images resolve to.
pub fn router(api: Arc<ApiServer>) -> Router {
    Router::new().route(PATH, post(review)).with_state(api)
}

fn bad_request(message: String) -> Response {
    let e = ApiError::BadRequest(message);
    (StatusCode::BAD_REQUEST, axum::Json(e.status())).into_response()
}

async fn review(State(api): State<Arc<ApiServer>>, body: Body) -> Response {
    let bytes = match crate::apiserver::handlers::read_body(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match answer(&api, &bytes).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e,
    }
}

/// Decodes an AdmissionReview body and builds the answer (an AdmissionReview with a
/// response), or the error response for a body that is not one.
pub async fn answer(api: &ApiServer, bytes: &[u8]) -> Result<Value, Response> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| bad_request(format!("the body is not JSON: {e}")))?;
    let version = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind != "AdmissionReview" {
        return Err(bad_request(format!(
            "expected kind AdmissionReview, got {kind:?}"
        )));
    }
    if !VERSIONS.contains(&version) {
        return Err(bad_request(format!(
            "unsupported AdmissionReview version {version:?}: this webhook speaks {} (set admissionReviewVersions: [\"v1\"])",
            VERSIONS.join(" and ")
        )));
    }
    let review: AdmissionReview<DynamicObject> = serde_json::from_value(v)
        .map_err(|e| bad_request(format!("the AdmissionReview does not decode: {e}")))?;
    let req: AdmissionRequest<DynamicObject> = review
        .try_into()
        .map_err(|_| bad_request("the AdmissionReview has no request".into()))?;
    let resp = decide(api, &req).await;
    let mut out = serde_json::to_value(resp.into_review())
        .map_err(|e| ApiError::internal(e).into_response())?;
    // kube-core writes the patch bytes as a JSON array of numbers; Go's []byte, which
    // kube-apiserver decodes and every webhook sends, is a base64 string.
    if let Some(slot) = out.pointer_mut("/response/patch")
        && let Some(bytes) = slot.as_array().map(|a| {
            a.iter()
                .filter_map(Value::as_u64)
                .map(|b| b as u8)
                .collect::<Vec<u8>>()
        })
    {
        use base64::Engine;
        *slot = Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
    }
    Ok(out)
}

fn deny(
    req: &AdmissionRequest<DynamicObject>,
    code: u16,
    reason: &str,
    message: String,
) -> AdmissionResponse {
    let mut resp = AdmissionResponse::from(req).deny(&message);
    resp.result = kube_core::Status::failure(&message, reason).with_code(code);
    resp
}

fn typed(kind: WorkloadKind, obj: &DynamicObject) -> Result<Workload, String> {
    let v = serde_json::to_value(obj).map_err(|e| e.to_string())?;
    Workload::from_value(kind, v).map_err(|e| e.to_string())
}

/// What the webhook answers for one request.
pub async fn decide(api: &ApiServer, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
    let allowed = AdmissionResponse::from(req);
    if !matches!(req.operation, Operation::Create | Operation::Update)
        || req.sub_resource.as_deref().is_some_and(|s| !s.is_empty())
    {
        return allowed;
    }
    let Some(kind) = WorkloadKind::from_group_kind(&req.kind.group, &req.kind.kind) else {
        return allowed;
    };
    let Some(object) = &req.object else {
        return allowed;
    };
    let mut w = match typed(kind, object) {
        Ok(w) => w,
        Err(e) => {
            return deny(
                req,
                400,
                "BadRequest",
                format!("image policy: the {kind} does not decode: {e}"),
            );
        }
    };
    let trigger_errors = validate_triggers(&w);
    if !trigger_errors.is_empty() {
        let msg = trigger_errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        return deny(req, 422, "Invalid", format!("image policy: {msg}"));
    }
    let names = candidate_streams(&w);
    if names.is_empty() || w.has_controller_owner() {
        return allowed;
    }
    let namespace = req
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| w.metadata().namespace.clone())
        .unwrap_or_else(|| "default".into());
    let Some(streams_storage) = api.storage("image.openshift.io", "v1", "imagestreams") else {
        return allowed;
    };
    let streams =
        match crate::lookup::named_streams(streams_storage.as_ref(), &namespace, &names).await {
            Ok(s) => s,
            Err(e) => {
                return deny(
                    req,
                    503,
                    "ServiceUnavailable",
                    format!("image policy: reading image streams: {e}"),
                );
            }
        };
    let old = match (&req.old_object, req.operation == Operation::Update) {
        (Some(o), true) => typed(kind, o).ok(),
        _ => None,
    };
    let res = resolve_workload(&mut w, old.as_ref(), &namespace, &streams);
    if !res.failures.is_empty() {
        let msg = res
            .failures
            .iter()
            .map(|f| {
                format!(
                    "{}: image {:?} cannot be resolved: {}",
                    f.field, f.image, f.message
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        return deny(req, 422, "Invalid", format!("image policy: {msg}"));
    }
    if res.rewrites.is_empty() {
        return allowed;
    }
    let ops: Vec<Value> = res
        .rewrites
        .iter()
        .map(|r| json!({"op": "replace", "path": r.pointer, "value": r.to}))
        .collect();
    let patch: json_patch_v4::Patch = match serde_json::from_value(Value::Array(ops)) {
        Ok(p) => p,
        Err(e) => return deny(req, 500, "InternalError", format!("image policy: {e}")),
    };
    let warnings = res
        .rewrites
        .iter()
        .map(|r| format!("image {} resolved to {}", r.from, r.to))
        .collect();
    match allowed.with_patch(patch) {
        Ok(mut resp) => {
            resp.warnings = Some(warnings);
            resp
        }
        Err(e) => deny(req, 500, "InternalError", format!("image policy: {e}")),
    }
}
