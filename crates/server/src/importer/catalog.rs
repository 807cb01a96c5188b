//! The importer as the [`Catalog`](crate::catalog::Catalog) port: streams, images and
//! pull secrets read and written through the API server's storages, in process.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use moor_api::image::{Image, ImageStream};
use serde::Deserialize;
use serde_json::Value;

use super::{Importer, ctx, stream_not_found};
use crate::catalog::{
    ImageList, ImageStore, PullSecrets, StoredStream, StreamChange, StreamEvent, StreamEvents,
    StreamList, StreamPart, StreamStore,
};
use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::ListOptions;
use moor_apimachinery::stored::{LARGE_OBJECT_BYTES, cpu_bound_if, unconditional};

fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?")
}

/// One stream of a list: typed, or when it does not decode as a stream, its name.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Listed {
    Stream(Box<ImageStream>),
    Undecodable {
        #[serde(default)]
        metadata: ListedName,
    },
    Junk(serde::de::IgnoredAny),
}

/// The namespace and name of a stream that does not decode.
#[derive(Default, serde::Deserialize)]
struct ListedName {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// The streams of a list's items (JSON objects separated by commas), and the
/// `namespace/name` of those that do not decode as streams (`?` where unknown).
fn decode_list(items: &[u8]) -> Result<(Vec<ImageStream>, Vec<String>), serde_json::Error> {
    let mut array = Vec::with_capacity(items.len() + 2);
    array.push(b'[');
    array.extend_from_slice(items);
    array.push(b']');
    let listed: Vec<Listed> = serde_json::from_slice(&array)?;
    drop(array);
    let mut streams = Vec::with_capacity(listed.len());
    let mut undecodable = Vec::new();
    for item in listed {
        match item {
            Listed::Stream(s) => streams.push(*s),
            Listed::Undecodable { metadata } => undecodable.push(format!(
                "{}/{}",
                metadata.namespace.as_deref().unwrap_or("?"),
                metadata.name.as_deref().unwrap_or("?")
            )),
            Listed::Junk(_) => undecodable.push("?/?".into()),
        }
    }
    Ok((streams, undecodable))
}

/// A store event of a stream as the controllers take it (its key ends in
/// `<namespace>/<name>`).
pub(crate) fn stream_event(ev: moor_store::Event) -> StreamEvent {
    match ev.kind {
        moor_store::EventKind::Put => StreamEvent::Changed(StoredStream {
            bytes: ev.kv.value,
            revision: ev.kv.mod_revision,
        }),
        moor_store::EventKind::Delete => {
            let mut parts = ev.kv.key.rsplit('/');
            let name = parts.next().unwrap_or_default().to_string();
            let namespace = parts.next().unwrap_or_default().to_string();
            StreamEvent::Deleted { namespace, name }
        }
    }
}

#[async_trait]
impl StreamStore for Importer {
    async fn stream(&self, ns: &str, name: &str) -> Result<Option<ImageStream>, ApiError> {
        match self.streams.get(&ctx(), Some(ns), name).await {
            Ok(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(ApiError::internal),
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn stream_stored(&self, ns: &str, name: &str) -> Result<Option<StoredStream>, ApiError> {
        Ok(self
            .streams
            .get_stored(Some(ns), name)
            .await?
            .map(|kv| StoredStream {
                bytes: kv.value,
                revision: kv.mod_revision,
            }))
    }

    async fn list_streams(&self) -> Result<StreamList, ApiError> {
        // Typed streams straight from the stored bytes, one item at a time, instead of a
        // JSON tree of the whole collection and a copy of each item (the controllers
        // list every stream when they start, and `_catalog` on each request).
        let list = self
            .streams
            .list_encoded(&ctx(), None, &ListOptions::default())
            .await?;
        let large = list.items.len() > LARGE_OBJECT_BYTES;
        let (streams, undecodable) =
            cpu_bound_if(large, || decode_list(&list.items)).map_err(ApiError::internal)?;
        Ok(StreamList {
            streams,
            undecodable,
            resource_version: list.resource_version,
        })
    }

    async fn streams_version(&self) -> Result<String, ApiError> {
        let opts = ListOptions {
            limit: Some(1),
            ..Default::default()
        };
        Ok(self
            .streams
            .list(&ctx(), None, &opts)
            .await?
            .resource_version)
    }

    async fn watch_streams(&self, resource_version: &str) -> Result<StreamEvents, ApiError> {
        let events = self.streams.watch_stored(None, resource_version).await?;
        Ok(events.map(|ev| ev.map(stream_event)).boxed())
    }

    async fn modify_stream(
        &self,
        ns: &str,
        name: &str,
        part: StreamPart,
        change: &StreamChange<'_>,
    ) -> Result<bool, ApiError> {
        let f = |cur: Option<&Value>| -> Result<Value, ApiError> {
            let cur = cur.ok_or_else(|| stream_not_found(name))?;
            let mut stream = ImageStream::deserialize(cur).map_err(ApiError::internal)?;
            change(&mut stream)?;
            Ok(unconditional(
                serde_json::to_value(&stream).map_err(ApiError::internal)?,
            ))
        };
        let sub = match part {
            StreamPart::Spec => None,
            StreamPart::Status => Some("status"),
        };
        match self
            .streams
            .update(&ctx(), Some(ns), name, sub, &f, false)
            .await
        {
            Ok(_) => Ok(true),
            Err(ApiError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn tag_pushed(
        &self,
        ns: &str,
        name: &str,
        tag: &str,
        image: &Image,
    ) -> Result<(), ApiError> {
        self.map_image(ns, name, tag, image, true).await.map(|_| ())
    }
}

#[async_trait]
impl ImageStore for Importer {
    async fn image(&self, name: &str) -> Result<Option<Image>, ApiError> {
        match self.images.get(&ctx(), None, name).await {
            Ok(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(ApiError::internal),
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_images(&self) -> Result<ImageList, ApiError> {
        let list = self
            .images
            .list(&ctx(), None, &ListOptions::default())
            .await?;
        let mut out = ImageList::default();
        for v in list.items {
            match serde_json::from_value::<Image>(v.clone()) {
                Ok(i) => out.images.push(i),
                Err(e) => out
                    .undecodable
                    .push((name_of(&v).to_string(), e.to_string())),
            }
        }
        Ok(out)
    }

    async fn store_images(&self, images: &[Image]) -> Result<(), ApiError> {
        Importer::store_images(self, images).await
    }

    async fn delete_image(&self, name: &str) -> Result<(), ApiError> {
        match self
            .images
            .delete(&ctx(), None, name, &Default::default())
            .await
        {
            Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl PullSecrets for Importer {
    async fn pull_secrets(&self, ns: &str) -> Arc<Vec<Bytes>> {
        Importer::pull_secrets(self, ns).await
    }

    fn signature_gate(&self, ns: &str) -> Option<crate::signatures::Gate> {
        Importer::signature_gate(self, ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_decodes_item_by_item_and_names_what_does_not_decode() {
        let items =
            br#"{"metadata":{"namespace":"a","name":"good"},"spec":{"tags":[{"name":"1"}]}},
            {"metadata":{"namespace":"a","name":"bad"},"spec":{"tags":"not a list"}},
            {"metadata":7},
            "junk""#;
        let (streams, undecodable) = decode_list(items).unwrap();
        assert_eq!(streams.len(), 1);
        assert_eq!(streams[0].metadata.name.as_deref(), Some("good"));
        assert_eq!(streams[0].spec.tags[0].name, "1");
        assert_eq!(undecodable, ["a/bad", "?/?", "?/?"]);
        assert_eq!(decode_list(b"").unwrap().0.len(), 0);
    }
}
