//! Reads of image streams as the API serves them (with `status.dockerImageRepository`),
//! for those that resolve short names: the workloads' lookup and the admission
//! webhook. Through the streams' storage, in process.

use std::collections::{BTreeSet, HashMap};

use moor_api::image::ImageStream;
use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::{ListOptions, RequestContext, RestStorage};

/// The streams of `namespace` named in `names` that exist, as the API serves them
/// (with `status.dockerImageRepository`).
pub async fn named_streams(
    streams: &dyn RestStorage,
    namespace: &str,
    names: &BTreeSet<String>,
) -> Result<HashMap<String, ImageStream>, ApiError> {
    let ctx = RequestContext::default();
    let mut out = HashMap::with_capacity(names.len());
    for name in names {
        match streams.get(&ctx, Some(namespace), name).await {
            Ok(v) => {
                if let Ok(s) = serde_json::from_value::<ImageStream>(v) {
                    out.insert(name.clone(), s);
                }
            }
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Every stream of `namespace`, by name.
pub async fn namespace_streams(
    streams: &dyn RestStorage,
    namespace: &str,
) -> Result<HashMap<String, ImageStream>, ApiError> {
    let ctx = RequestContext::default();
    let list = streams
        .list(&ctx, Some(namespace), &ListOptions::default())
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|v| serde_json::from_value::<ImageStream>(v).ok())
        .filter_map(|s| Some((s.metadata.name.clone()?, s)))
        .collect())
}
