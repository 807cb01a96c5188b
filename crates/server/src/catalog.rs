//! Ports: how the registry, the scheduler and garbage collection reach image streams,
//! images and pull secrets. They are small traits (after distribution's storage
//! interfaces), so a caller depends on what it uses and not on the API machinery or
//! on the importer's storages. The composition root wires one implementation, the
//! importer over the API server's storages (`importer/catalog.rs`); tests may wire
//! another.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use moor_api::image::{Image, ImageStream};
use moor_apimachinery::error::ApiError;
use moor_apimachinery::stored::{LARGE_OBJECT_BYTES, cpu_bound_if};

/// Which part of a stream a read-modify-write changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamPart {
    /// `spec` (and metadata): tags as users set them.
    Spec,
    /// `status`: the tag history.
    Status,
}

/// A change to a stream inside a read-modify-write; it may run more than once (on
/// conflicts), each time on the stream as it is then.
pub type StreamChange<'a> = dyn Fn(&mut ImageStream) -> Result<(), ApiError> + Send + Sync + 'a;

/// A change of a stream, as [`StreamStore::watch_streams`] gives it.
#[derive(Debug)]
pub enum StreamEvent {
    /// Created or changed.
    Changed(StoredStream),
    /// Deleted.
    Deleted {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

/// The changes of streams; an error ends them (the watcher lists again).
pub type StreamEvents = BoxStream<'static, Result<StreamEvent, ApiError>>;

/// A stream as stored, not decoded yet: each watcher decodes it straight from the
/// shared bytes into what it keeps, so a large stream is never a JSON tree per
/// watcher, and a watcher that needs nothing of it (one that follows deletions)
/// decodes nothing.
#[derive(Clone, Debug)]
pub struct StoredStream {
    /// The stored JSON.
    pub bytes: Bytes,
    /// The write's resource version.
    pub revision: i64,
}

impl StoredStream {
    /// The stream without `metadata.managedFields` (skipped unparsed: no controller
    /// reads them, and on a large stream they are as big as its spec), with its
    /// resource version; decoded off the async workers when large.
    pub fn decode(&self) -> Result<ImageStream, serde_json::Error> {
        let large = self.bytes.len() > LARGE_OBJECT_BYTES;
        cpu_bound_if(large, || {
            let mut s: ImageStream = serde_json::from_slice::<Slim>(&self.bytes)?.into();
            s.metadata.resource_version = Some(self.revision.to_string());
            Ok(s)
        })
    }
}

/// `v` decoded as an [`ImageStream`] without `metadata.managedFields`, read in place.
pub fn slim_stream(v: &serde_json::Value) -> Result<ImageStream, serde_json::Error> {
    use serde::Deserialize;
    Slim::deserialize(v).map(ImageStream::from)
}

/// An [`ImageStream`] decoded without `metadata.managedFields`.
#[derive(serde::Deserialize)]
struct Slim {
    #[serde(default)]
    metadata: MetaWithoutManagedFields,
    #[serde(default)]
    spec: moor_api::image::ImageStreamSpec,
    #[serde(default)]
    status: moor_api::image::ImageStreamStatus,
}

impl From<Slim> for ImageStream {
    fn from(s: Slim) -> Self {
        ImageStream {
            metadata: s.metadata.0,
            spec: s.spec,
            status: s.status,
            ..Default::default()
        }
    }
}

/// Object metadata read without `managedFields`, which are skipped as they are parsed.
#[derive(Default)]
struct MetaWithoutManagedFields(k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta);

impl<'de> serde::Deserialize<'de> for MetaWithoutManagedFields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, IgnoredAny, MapAccess, Visitor};
        use serde_json::{Map, Value};
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = Map<String, Value>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("object metadata")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut m = Map::new();
                while let Some(k) = a.next_key::<String>()? {
                    if k == "managedFields" {
                        a.next_value::<IgnoredAny>()?;
                    } else {
                        let v = a.next_value()?;
                        m.insert(k, v);
                    }
                }
                Ok(m)
            }
        }
        let fields = d.deserialize_map(Fields)?;
        serde::Deserialize::deserialize(Value::Object(fields))
            .map(MetaWithoutManagedFields)
            .map_err(D::Error::custom)
    }
}

/// Every stream, at one resource version.
#[derive(Debug, Default)]
pub struct StreamList {
    pub streams: Vec<ImageStream>,
    /// `namespace/name` of stored streams that do not decode (left alone).
    pub undecodable: Vec<String>,
    /// The version to watch from.
    pub resource_version: String,
}

/// Every image.
#[derive(Debug, Default)]
pub struct ImageList {
    pub images: Vec<Image>,
    /// `(name, error)` of stored images that do not decode (left alone).
    pub undecodable: Vec<(String, String)>,
}

/// Image streams.
#[async_trait]
pub trait StreamStore: Send + Sync {
    /// The stream, if it exists.
    async fn stream(&self, ns: &str, name: &str) -> Result<Option<ImageStream>, ApiError>;
    /// The stream as stored, not decoded (read as consistently as
    /// [`stream`](Self::stream)), if it exists: for a reader that keeps what it decodes
    /// by revision, as the registry does.
    async fn stream_stored(&self, ns: &str, name: &str) -> Result<Option<StoredStream>, ApiError>;
    /// Every stream in every namespace.
    async fn list_streams(&self) -> Result<StreamList, ApiError>;
    /// The streams' current resource version (to watch from now on), without listing
    /// them.
    async fn streams_version(&self) -> Result<String, ApiError>;
    /// Changes after `resource_version`.
    async fn watch_streams(&self, resource_version: &str) -> Result<StreamEvents, ApiError>;
    /// Read-modify-write of `part` of `ns/name`, retrying on conflicts; `false` when
    /// the stream does not exist.
    async fn modify_stream(
        &self,
        ns: &str,
        name: &str,
        part: StreamPart,
        change: &StreamChange<'_>,
    ) -> Result<bool, ApiError>;
    /// Tags `image` (stored first) as `ns/name:tag`, creating the stream when missing:
    /// what a registry push by tag does.
    async fn tag_pushed(
        &self,
        ns: &str,
        name: &str,
        tag: &str,
        image: &Image,
    ) -> Result<(), ApiError>;
}

/// Images (cluster-scoped, named by digest, never changed once written).
#[async_trait]
pub trait ImageStore: Send + Sync {
    /// The image, if it exists.
    async fn image(&self, name: &str) -> Result<Option<Image>, ApiError>;
    /// Every image.
    async fn list_images(&self) -> Result<ImageList, ApiError>;
    /// Stores `images`; those that exist already are kept as they are.
    async fn store_images(&self, images: &[Image]) -> Result<(), ApiError>;
    /// Deletes image `name` (one that is gone already is not an error).
    async fn delete_image(&self, name: &str) -> Result<(), ApiError>;
}

/// The pull secrets of a namespace.
#[async_trait]
pub trait PullSecrets: Send + Sync {
    /// Its `kubernetes.io/dockerconfigjson` secrets' contents, minus those marked
    /// `openshift.io/image.excludeSecret`.
    async fn pull_secrets(&self, ns: &str) -> Arc<Vec<Bytes>>;
    /// The signature policy check of pushes into `ns`, when policies are served.
    fn signature_gate(&self, _ns: &str) -> Option<crate::signatures::Gate> {
        None
    }
}

/// Streams, images and pull secrets together: what the registry is given.
pub trait Catalog: StreamStore + ImageStore + PullSecrets {}

impl<T: StreamStore + ImageStore + PullSecrets> Catalog for T {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_stored_stream_decodes_as_the_api_does_without_its_managed_fields() {
        let stored = json!({
            "kind": "ImageStream",
            "apiVersion": "image.openshift.io/v1",
            "metadata": {
                "name": "app", "namespace": "ns", "uid": "u", "generation": 3,
                "labels": {"l": "v"},
                "managedFields": [{"manager": "m", "operation": "Update",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:tags": {}}}}],
            },
            "spec": {"tags": [{"name": "latest", "from": {"kind": "DockerImage", "name": "r/a:1"}}]},
            "status": {"dockerImageRepository": "h/ns/app", "tags": [{"tag": "latest", "items": []}]},
        });
        let bytes = Bytes::from(serde_json::to_vec(&stored).unwrap());
        let s = StoredStream {
            bytes,
            revision: 42,
        }
        .decode()
        .unwrap();
        let mut want: ImageStream = serde_json::from_value(stored.clone()).unwrap();
        want.metadata.managed_fields = None;
        want.metadata.resource_version = Some("42".into());
        assert_eq!(s, want);
        let mut want = want;
        want.metadata.resource_version = None;
        assert_eq!(slim_stream(&stored).unwrap(), want);
    }
}
