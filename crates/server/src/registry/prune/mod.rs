//! Garbage collection, the server side of `moor prune images`: an [`ImagePrune`]
//! posted to `/apis/moor.io/v1/imageprunes` removes, in order, (1) tag history entries
//! beyond the limits, (2) Images that no stream names any more, (3) blobs and
//! repository links that no remaining image needs. The planning functions
//! ([`prune_history`], [`plan_images`], [`plan_blobs`]) are IO-free; [`run`] reads
//! the streams, images, workloads and blob store, and deletes.
//!
//! Safe against pushes and pulls in flight: nothing made after the prune started, or
//! younger than `keepYoungerThan` (history entries, Images, blobs, links), is removed;
//! the image and blob plans are made after the history change, under the registry's
//! `gc` lock, which a push holds from checking what the repository has to tagging
//! what it pushed; an Image that a stream names again by the time it was deleted is
//! restored before blobs are planned. Pulls keep reading files they opened.
//!
//! Calls the API server's storages (image streams, images, workloads) and the blob
//! store.
//!
//! By concept: the IO-free planning (`plan`), the prune itself ([`run()`]), and the
//! endpoint here.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use moor_api::prune::ImagePrune;

use super::Registry;
use super::storage::StorageError;
use moor_apimachinery::ApiServer;
use moor_apimachinery::error::ApiError;

mod plan;
mod run;
#[cfg(test)]
mod tests;

pub use plan::{
    BlobPlan, ImagePlan, Pins, Policy, plan_blobs, plan_images, prune_history, referenced_images,
    workload_pins,
};
pub use run::run;

/// Errors of a prune that stop it (single removals that fail are reported in
/// `status.errors` instead).
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// The request is not an ImagePrune.
    #[error("{0}")]
    BadRequest(String),
    /// Reading or writing API objects failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// Reading the blob store failed.
    #[error("registry storage: {0}")]
    Storage(#[from] StorageError),
}

impl From<PruneError> for ApiError {
    fn from(e: PruneError) -> Self {
        match e {
            PruneError::BadRequest(m) => ApiError::BadRequest(m),
            PruneError::Api(e) => e,
            PruneError::Storage(e) => {
                // The cause names server paths: the log has it, the client does not.
                tracing::error!(error = %e, "prune: registry storage failed");
                ApiError::internal("the registry's storage failed; the server log has the cause")
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// The endpoint
// ---------------------------------------------------------------------------------

/// `POST /apis/moor.io/v1/imageprunes` over the API server and the registry. The
/// caller applies authentication.
pub fn router(api: Arc<ApiServer>, registry: Arc<Registry>) -> Router {
    Router::new()
        .route(
            moor_api::prune::PATH,
            axum::routing::post(create).fallback(|| async { ApiError::MethodNotAllowed }),
        )
        .with_state((api, registry))
}

/// Whether the query asks for a dry run as Kubernetes spells it (`dryRun=All`).
fn query_dry_run(uri: &Uri) -> bool {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .any(|(k, v)| k == "dryRun" && v == "All")
}

async fn create(
    State((api, reg)): State<(Arc<ApiServer>, Arc<Registry>)>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let mut prune: ImagePrune = if body.iter().all(u8::is_ascii_whitespace) {
        ImagePrune::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(p) => p,
            Err(e) => {
                return ApiError::from(PruneError::BadRequest(format!(
                    "the request is not an ImagePrune: {e}"
                )))
                .into_response();
            }
        }
    };
    let dry_run = prune.spec.dry_run || query_dry_run(&uri);
    match run(&reg, &api, &prune.spec, dry_run).await {
        Ok(status) => {
            prune.status = Some(status);
            (StatusCode::CREATED, axum::Json(prune)).into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
