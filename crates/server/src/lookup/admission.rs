//! `POST /admission/image-policy`: a mutating admission webhook for any Kubernetes
//! cluster. It takes an `admission.k8s.io/v1` AdmissionReview (kube-core's types) of a
//! Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job or CronJob on CREATE or
//! UPDATE, runs the same resolver the API server runs (`moor_api::lookup`) against
//! moor's stored image streams, and answers with a JSONPatch of the resolved images.
//! It never calls a registry. It denies, with the reason, a short name of a stream that
//! has lookup on but no usable image (fail closed), and an invalid triggers annotation.
//! Objects with a controller owner and other kinds or operations pass unchanged. A
//! workload of a namespace moor does not have passes with a warning saying so.

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

use super::StreamCache;
use moor_apimachinery::ApiServer;
use moor_apimachinery::error::ApiError;

/// The webhook's path.
pub const PATH: &str = "/admission/image-policy";

/// The AdmissionReview versions this webhook speaks (the shape is the same).
pub const VERSIONS: &[&str] = &["admission.k8s.io/v1", "admission.k8s.io/v1beta1"];

/// The webhook route. kube-apiserver presents no credentials to webhooks by default,
/// so the route is open; it reveals only what a workload's images resolve to.
pub fn router(api: Arc<ApiServer>) -> Router {
    let webhook = Arc::new(Webhook {
        api,
        cache: Arc::new(StreamCache::default()),
    });
    Router::new().route(PATH, post(review)).with_state(webhook)
}

/// The webhook's state: the API server, and the streams it answers from.
pub struct Webhook {
    pub api: Arc<ApiServer>,
    pub cache: Arc<StreamCache>,
}

fn bad_request(message: String) -> Response {
    let e = ApiError::BadRequest(message);
    (StatusCode::BAD_REQUEST, axum::Json(e.status())).into_response()
}

async fn review(State(webhook): State<Arc<Webhook>>, body: Body) -> Response {
    let bytes = match moor_apimachinery::handlers::read_body(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match answer(&webhook, &bytes).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e,
    }
}

/// Just enough of a body to check it and to pick the kind to decode it as.
#[derive(serde::Deserialize)]
struct Probe {
    #[serde(rename = "apiVersion", default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    request: Option<ProbeRequest>,
}

#[derive(serde::Deserialize)]
struct ProbeRequest {
    kind: kube_core::GroupVersionKind,
}

/// A request about a workload, decoded as its k8s-openapi type.
pub struct WorkloadReview {
    /// The allowed answer, carrying the request's uid and version.
    pub base: AdmissionResponse,
    pub kind: WorkloadKind,
    pub operation: Operation,
    pub sub_resource: Option<String>,
    pub namespace: Option<String>,
    pub object: Option<Workload>,
    pub old_object: Option<Workload>,
}

fn typed_review<K>(
    bytes: &[u8],
    kind: WorkloadKind,
    wrap: fn(K) -> Workload,
) -> Option<WorkloadReview>
where
    K: kube_core::Resource + serde::de::DeserializeOwned,
{
    let review: AdmissionReview<K> = serde_json::from_slice(bytes).ok()?;
    let req: AdmissionRequest<K> = review.try_into().ok()?;
    Some(WorkloadReview {
        base: AdmissionResponse::from(&req),
        kind,
        operation: req.operation,
        sub_resource: req.sub_resource,
        namespace: req.namespace,
        object: req.object.map(wrap),
        old_object: req.old_object.map(wrap),
    })
}

/// Decodes a review of a `kind` object straight into its k8s-openapi type (no JSON
/// value in between); `None` when it does not decode so.
fn workload_review(bytes: &[u8], kind: WorkloadKind) -> Option<WorkloadReview> {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    use k8s_openapi::api::core::v1::Pod;
    match kind {
        WorkloadKind::Pod => typed_review::<Pod>(bytes, kind, Workload::Pod),
        WorkloadKind::Deployment => typed_review::<Deployment>(bytes, kind, Workload::Deployment),
        WorkloadKind::ReplicaSet => typed_review::<ReplicaSet>(bytes, kind, Workload::ReplicaSet),
        WorkloadKind::StatefulSet => {
            typed_review::<StatefulSet>(bytes, kind, Workload::StatefulSet)
        }
        WorkloadKind::DaemonSet => typed_review::<DaemonSet>(bytes, kind, Workload::DaemonSet),
        WorkloadKind::Job => typed_review::<Job>(bytes, kind, Workload::Job),
        WorkloadKind::CronJob => typed_review::<CronJob>(bytes, kind, Workload::CronJob),
    }
}

/// Decodes an AdmissionReview body and builds the answer (an AdmissionReview with a
/// response), or the error response for a body that is not one.
pub async fn answer(webhook: &Webhook, bytes: &[u8]) -> Result<Value, Response> {
    let probe: Probe = serde_json::from_slice(bytes)
        .map_err(|e| bad_request(format!("the body is not an AdmissionReview: {e}")))?;
    if probe.kind != "AdmissionReview" {
        return Err(bad_request(format!(
            "expected kind AdmissionReview, got {:?}",
            probe.kind
        )));
    }
    if !VERSIONS.contains(&probe.api_version.as_str()) {
        return Err(bad_request(format!(
            "unsupported AdmissionReview version {:?}: this webhook speaks {} (set admissionReviewVersions: [\"v1\"])",
            probe.api_version,
            VERSIONS.join(" and ")
        )));
    }
    let Some(probe_req) = probe.request else {
        return Err(bad_request("the AdmissionReview has no request".into()));
    };
    let kind = WorkloadKind::from_group_kind(&probe_req.kind.group, &probe_req.kind.kind);
    let resp = match kind.and_then(|k| workload_review(bytes, k)) {
        Some(review) => decide_workload(webhook, review).await,
        None => {
            // Other kinds, and workloads that do not decode as their type.
            let review: AdmissionReview<DynamicObject> = serde_json::from_slice(bytes)
                .map_err(|e| bad_request(format!("the AdmissionReview does not decode: {e}")))?;
            let req: AdmissionRequest<DynamicObject> = review
                .try_into()
                .map_err(|_| bad_request("the AdmissionReview has no request".into()))?;
            decide(webhook, &req).await
        }
    };
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

fn deny(base: &AdmissionResponse, code: u16, reason: &str, message: String) -> AdmissionResponse {
    let mut resp = base.clone().deny(&message);
    resp.result = kube_core::Status::failure(&message, reason).with_code(code);
    resp
}

fn typed(kind: WorkloadKind, obj: &DynamicObject) -> Result<Workload, String> {
    let v = serde_json::to_value(obj).map_err(|e| e.to_string())?;
    Workload::from_value(kind, v).map_err(|e| e.to_string())
}

/// What the webhook answers for a request decoded generically (kinds it does not
/// handle pass; a workload that does not decode as its type is refused).
pub async fn decide(webhook: &Webhook, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
    let base = AdmissionResponse::from(req);
    let Some(kind) = WorkloadKind::from_group_kind(&req.kind.group, &req.kind.kind) else {
        return base;
    };
    let object = match req.object.as_ref().map(|o| typed(kind, o)).transpose() {
        Ok(o) => o,
        Err(e) if matches!(req.operation, Operation::Create | Operation::Update) => {
            return deny(
                &base,
                400,
                "BadRequest",
                format!("image policy: the {kind} does not decode: {e}"),
            );
        }
        Err(_) => None,
    };
    let old_object = req.old_object.as_ref().and_then(|o| typed(kind, o).ok());
    decide_workload(
        webhook,
        WorkloadReview {
            base,
            kind,
            operation: req.operation.clone(),
            sub_resource: req.sub_resource.clone(),
            namespace: req.namespace.clone(),
            object,
            old_object,
        },
    )
    .await
}

/// Whether moor has the namespace (a store error counts as yes: no warning then).
async fn namespace_exists(api: &ApiServer, namespace: &str) -> bool {
    let Some(namespaces) = api.storage("", "v1", "namespaces") else {
        return true;
    };
    let ctx = moor_apimachinery::resource::RequestContext::default();
    !matches!(
        namespaces.get(&ctx, None, namespace).await,
        Err(ApiError::NotFound { .. })
    )
}

/// What the webhook answers for a request about a workload.
pub async fn decide_workload(webhook: &Webhook, review: WorkloadReview) -> AdmissionResponse {
    let WorkloadReview {
        base,
        kind: _,
        operation,
        sub_resource,
        namespace,
        object,
        old_object,
    } = review;
    let api = &webhook.api;
    if !matches!(operation, Operation::Create | Operation::Update)
        || sub_resource.as_deref().is_some_and(|s| !s.is_empty())
    {
        return base;
    }
    let Some(mut w) = object else {
        return base;
    };
    let trigger_errors = validate_triggers(&w);
    if !trigger_errors.is_empty() {
        let msg = trigger_errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        return deny(&base, 422, "Invalid", format!("image policy: {msg}"));
    }
    let names = candidate_streams(&w);
    if names.is_empty() || w.has_controller_owner() {
        return base;
    }
    let namespace = namespace
        .filter(|n| !n.is_empty())
        .or_else(|| w.metadata().namespace.clone())
        .unwrap_or_else(|| "default".into());
    let Some(streams_storage) = api.storage("image.openshift.io", "v1", "imagestreams") else {
        return base;
    };
    webhook.cache.start(streams_storage.clone());
    let streams = match webhook.cache.named(&namespace, &names) {
        Some(s) => s,
        None => {
            match crate::apiserver::resources::image::reads::named_streams(
                streams_storage.as_ref(),
                &namespace,
                &names,
            )
            .await
            {
                Ok(s) => s.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
                Err(e) => {
                    return deny(
                        &base,
                        503,
                        "ServiceUnavailable",
                        format!("image policy: reading image streams: {e}"),
                    );
                }
            }
        }
    };
    let old = match operation {
        Operation::Update => old_object,
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
        return deny(&base, 422, "Invalid", format!("image policy: {msg}"));
    }
    if res.rewrites.is_empty() {
        // A namespace the cluster opted in but moor does not have resolves nothing:
        // say so rather than pass the short names through unnoticed.
        if streams.is_empty() && !namespace_exists(api, &namespace).await {
            let mut resp = base;
            resp.warnings = Some(vec![format!(
                "image policy: namespace {namespace:?} does not exist in moor, so short image names in it ({}) were not resolved; create it and its image streams in moor",
                names.iter().cloned().collect::<Vec<_>>().join(", ")
            )]);
            return resp;
        }
        return base;
    }
    let ops: Vec<Value> = res
        .rewrites
        .iter()
        .map(|r| json!({"op": "replace", "path": r.pointer, "value": r.to}))
        .collect();
    let patch: json_patch_v4::Patch = match serde_json::from_value(Value::Array(ops)) {
        Ok(p) => p,
        Err(e) => return deny(&base, 500, "InternalError", format!("image policy: {e}")),
    };
    let warnings = res
        .rewrites
        .iter()
        .map(|r| format!("image {} resolved to {}", r.from, r.to))
        .collect();
    match base.clone().with_patch(patch) {
        Ok(mut resp) => {
            resp.warnings = Some(warnings);
            resp
        }
        Err(e) => deny(&base, 500, "InternalError", format!("image policy: {e}")),
    }
}
