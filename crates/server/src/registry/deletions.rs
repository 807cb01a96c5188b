//! Deleted image streams leave nothing behind in the registry: a task follows the
//! streams' watch and, when one is deleted, removes its repository's links and
//! referrer records (files, or keys in the shared store with `--blob-store s3://`;
//! the content itself stays until `moor prune images` finds no image needs it).
//! Calls the catalog port (streams) and the repositories' links.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;

use super::Registry;
use super::repos::RepoName;
use crate::catalog::{StreamEvent, StreamEvents};
use moor_apimachinery::error::ApiError;

/// Pause before following the watch again after it ended or failed.
const RESUME_AFTER: Duration = Duration::from_secs(1);

/// Follows stream deletions for as long as the registry lives.
pub(super) async fn follow(registry: Weak<Registry>) {
    loop {
        let Some(reg) = registry.upgrade() else {
            return;
        };
        let events = watch_from_now(&reg).await;
        drop(reg);
        match events {
            Ok(mut events) => {
                while let Some(event) = events.next().await {
                    let Some(reg) = registry.upgrade() else {
                        return;
                    };
                    match event {
                        Ok(StreamEvent::Deleted { namespace, name }) => {
                            forget(&reg, &namespace, &name).await
                        }
                        Ok(StreamEvent::Changed(_)) => {}
                        Err(e) => {
                            tracing::debug!(error = %e, "the image stream watch ended; following again");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "watching image streams failed; trying again"),
        }
        tokio::time::sleep(RESUME_AFTER).await;
    }
}

/// The streams' changes from now on.
async fn watch_from_now(reg: &Registry) -> Result<StreamEvents, ApiError> {
    let catalog = reg.repos.catalog();
    let now = catalog.streams_version().await?;
    catalog.watch_streams(&now).await
}

/// Removes what the registry recorded for deleted stream `namespace/name`, unless a
/// push made the stream again meanwhile.
async fn forget(reg: &Arc<Registry>, namespace: &str, name: &str) {
    let Ok(repo) = RepoName::parse(namespace, name) else {
        return;
    };
    // Pushes record links under the shared lock: none is halfway through now.
    let _gc = reg.gc.write().await;
    match reg.repos.stream(&repo).await {
        Ok(None) => {}
        Ok(Some(_)) => return, // pushed into again since the delete
        Err(e) => {
            tracing::warn!(repository = %repo, error = %e, "checking a deleted stream failed");
            return;
        }
    }
    match reg
        .links
        .remove_repository(&repo.namespace, &repo.stream)
        .await
    {
        Ok(()) => tracing::debug!(repository = %repo, "removed the links of a deleted stream"),
        Err(e) => {
            tracing::warn!(repository = %repo, error = %e, "removing a deleted stream's links failed")
        }
    }
}
