//! Image lookup, triggers and admission on the server: reading the image streams the
//! pure resolver (`moor_api::lookup`) needs, the AdmissionReview webhook, and the
//! trigger controller. Streams are read through the API server's storage; workloads of
//! other clusters only through the Kubernetes API.

pub mod admission;
pub mod triggers;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use moor_api::image::ImageStream;

use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::{ListOptions, RequestContext, RestStorage, WatchEvent};

type StreamKey = (String, String);

/// Every image stream, decoded, kept current by a watch of the streams storage: what
/// the admission webhook answers from, so that a review costs no store read. A write is
/// seen here a moment after it is committed (OpenShift's webhook caches for a minute).
/// Until the first list completes (and after a watch fails) it is not ready and
/// callers read the store instead.
#[derive(Default)]
pub struct StreamCache {
    streams: RwLock<HashMap<StreamKey, Arc<ImageStream>>>,
    ready: AtomicBool,
    started: AtomicBool,
}

fn stream_key(v: &serde_json::Value) -> Option<StreamKey> {
    Some((
        v.pointer("/metadata/namespace")?.as_str()?.to_string(),
        v.pointer("/metadata/name")?.as_str()?.to_string(),
    ))
}

impl StreamCache {
    /// Starts filling the cache from `storage` (once; later calls do nothing).
    pub fn start(self: &Arc<Self>, storage: Arc<dyn RestStorage>) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let cache = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = cache.sync(storage.as_ref()).await {
                    tracing::warn!(error = %e, "stream cache: watch failed; reading the store until it resyncs");
                }
                cache.ready.store(false, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }

    async fn sync(&self, storage: &dyn RestStorage) -> Result<(), ApiError> {
        let ctx = RequestContext::default();
        let list = storage.list(&ctx, None, &ListOptions::default()).await?;
        let mut fresh = HashMap::with_capacity(list.items.len());
        for v in list.items {
            if let (Some(k), Ok(s)) = (stream_key(&v), serde_json::from_value::<ImageStream>(v)) {
                fresh.insert(k, Arc::new(s));
            }
        }
        *self
            .streams
            .write()
            .map_err(|_| ApiError::internal_message("stream cache lock"))? = fresh;
        let opts = ListOptions {
            resource_version: Some(list.resource_version),
            ..Default::default()
        };
        let mut events = storage.watch(&ctx, None, &opts).await?;
        self.ready.store(true, Ordering::SeqCst);
        while let Some(ev) = events.next().await {
            let mut map = self
                .streams
                .write()
                .map_err(|_| ApiError::internal_message("stream cache lock"))?;
            match ev {
                WatchEvent::Added(v) | WatchEvent::Modified(v) => {
                    if let (Some(k), Ok(s)) =
                        (stream_key(&v), serde_json::from_value::<ImageStream>(v))
                    {
                        map.insert(k, Arc::new(s));
                    }
                }
                WatchEvent::Deleted(v) => {
                    if let Some(k) = stream_key(&v) {
                        map.remove(&k);
                    }
                }
                WatchEvent::Bookmark(_) => {}
                WatchEvent::Error(e) => return Err(ApiError::Gone(e.to_string())),
            }
        }
        Ok(())
    }

    /// The streams of `namespace` named in `names`, or `None` while not ready.
    pub fn named(
        &self,
        namespace: &str,
        names: &BTreeSet<String>,
    ) -> Option<HashMap<String, Arc<ImageStream>>> {
        if !self.ready.load(Ordering::SeqCst) {
            return None;
        }
        let map = self.streams.read().ok()?;
        Some(
            names
                .iter()
                .filter_map(|n| {
                    map.get(&(namespace.to_string(), n.clone()))
                        .map(|s| (n.clone(), s.clone()))
                })
                .collect(),
        )
    }
}
