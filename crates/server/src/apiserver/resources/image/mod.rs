//! image.openshift.io/v1: imagestreams (stored, with `status`), images (stored,
//! cluster-scoped, named by digest) and imagestreamtags (a view over a stream and its
//! images, as openshift-apiserver serves it). Strategies and the istag view only.
//!
//! One file per resource: `imagestreams`, `images`, `imagestreamtags` and
//! `imagestreamimages`; `reads` has the stream reads that resolving short names
//! needs; this module wires them and holds what they share.

use std::sync::Arc;

use moor_api::image::ImageStream;
use moor_store::Store;
use serde_json::Value;

use crate::apiserver::ApiConfig;
use moor_apimachinery::resource::*;
use moor_apimachinery::stored::StoredResource;

mod images;
mod imagestreamimages;
mod imagestreams;
mod imagestreamtags;
pub mod reads;
pub mod tag_sources;

pub use images::Images;
pub use imagestreamimages::{ImageStreamImages, matching_images};
pub use imagestreams::{IMAGE_STREAM_MERGE_KEYS, ImageStreams};
pub use imagestreamtags::ImageStreamTags;
use imagestreamtags::istag_def;

/// The served image.openshift.io resources and the importer that writes to them.
pub fn all(
    store: Arc<dyn Store>,
    config: &ApiConfig,
    source: Arc<dyn crate::importer::Source>,
    events: Arc<dyn RestStorage>,
    secrets: Arc<dyn RestStorage>,
) -> (Vec<Arc<dyn RestStorage>>, Arc<crate::importer::Importer>) {
    let streams = Arc::new(StoredResource::new(
        store.clone(),
        Arc::new(ImageStreams::new(&config.registry_hostname)),
        config.serving.clone(),
    ));
    let images = Arc::new(StoredResource::new(
        store.clone(),
        Arc::new(Images::new()),
        config.serving.clone(),
    ));
    let tags = Arc::new(ImageStreamTags {
        def: istag_def(),
        streams: streams.clone(),
        store,
    });
    let importer = Arc::new(crate::importer::Importer::new(
        source,
        crate::importer::ImporterStorages {
            streams: streams.clone(),
            images: images.clone(),
            events,
            secrets,
        },
    ));
    let imports = Arc::new(crate::importer::imports::ImageStreamImports::new(
        importer.clone(),
        config.max_images_bulk,
    ));
    let isimages = Arc::new(ImageStreamImages::new(tags.clone()));
    let mappings = Arc::new(crate::importer::mapping::ImageStreamMappings::new(
        importer.clone(),
    ));
    (
        vec![streams, images, tags, isimages, imports, mappings],
        importer,
    )
}

/// `"<duration> ago"` for an RFC 3339 time, or "" when absent.
pub fn ago(ts: Option<&str>) -> String {
    let Some(t) = ts.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return String::new();
    };
    let secs = jiff::Timestamp::now().as_second() - t.as_second();
    format!("{} ago", moor_api::humanize::human_duration(secs.max(0)))
}

/// `v` decoded as `T`, read in place (no copy of the tree).
fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> Option<T> {
    T::deserialize(v).ok()
}

fn write_back<T: serde::Serialize>(v: &mut Value, t: &T) {
    if let Ok(mut nv) = serde_json::to_value(t) {
        // Keep the server-managed metadata fields exactly as they were (moved, not
        // copied: `v` is replaced below).
        if let (Some(old_meta), Some(new_meta)) = (
            v.get_mut("metadata").map(Value::take),
            nv.get_mut("metadata"),
        ) {
            *new_meta = old_meta;
        }
        *v = nv;
    }
}

/// Sorts tags as oc does: `latest` first, then the rest in order.
fn sorted_tags(stream: &ImageStream) -> Vec<String> {
    let mut tags: Vec<String> = stream.status.tags.iter().map(|t| t.tag.clone()).collect();
    tags.sort();
    if let Some(i) = tags.iter().position(|t| t == "latest") {
        let latest = tags.remove(i);
        tags.insert(0, latest);
    }
    tags
}
