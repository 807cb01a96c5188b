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
//! Calls the API server's storages (image streams, images, workloads), the
//! repositories' links and the blobs: files, or with `--blob-store s3://` the keys in
//! the shared store and the bucket (its `blobs/` only: staged blobs and upload chunks
//! are the upload reaper's).
//!
//! By concept: the IO-free planning (`plan`), the prune itself ([`run()`]), and the
//! resource ([`ImagePrunes`], `imageprunes.moor.io/v1`).

use super::driver::DriverError;
use super::storage::StorageError;
use moor_apimachinery::error::ApiError;

mod plan;
mod resource;
mod run;
#[cfg(test)]
mod tests;

pub use plan::{
    BlobPlan, ImagePlan, Pins, Policy, plan_blobs, plan_images, prune_history, referenced_images,
    workload_pins,
};
pub use resource::ImagePrunes;
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
    /// Listing the blobs where they live (files or a bucket) failed.
    #[error("registry storage: {0}")]
    Driver(#[from] DriverError),
}

impl From<PruneError> for ApiError {
    fn from(e: PruneError) -> Self {
        match e {
            PruneError::BadRequest(m) => ApiError::BadRequest(m),
            PruneError::Api(e) => e,
            PruneError::Driver(e) => {
                tracing::error!(error = %e, "prune: listing blobs failed");
                ApiError::internal_message(
                    "the registry's blob storage failed; the server log has the cause",
                )
            }
            PruneError::Storage(e) => {
                // The cause names server paths: the log has it, the client does not.
                tracing::error!(error = %e, "prune: registry storage failed");
                ApiError::internal_message(
                    "the registry's storage failed; the server log has the cause",
                )
            }
        }
    }
}
