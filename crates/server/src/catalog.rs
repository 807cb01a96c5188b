//! Ports: how the registry, the scheduler and garbage collection reach image streams,
//! images and pull secrets. They are small traits (after distribution's storage
//! interfaces), so a caller depends on what it uses and not on the API machinery or
//! on the importer's storages. The composition root wires one implementation, the
//! importer over the API server's storages (`importer/catalog.rs`); tests may wire
//! another.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use moor_api::image::{Image, ImageStream};
use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::WatchEvents;

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
    /// Every stream in every namespace.
    async fn list_streams(&self) -> Result<StreamList, ApiError>;
    /// The streams' current resource version (to watch from now on), without listing
    /// them.
    async fn streams_version(&self) -> Result<String, ApiError>;
    /// Changes from `resource_version` on (as the API's watch events).
    async fn watch_streams(&self, resource_version: &str) -> Result<WatchEvents, ApiError>;
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
}

/// Streams, images and pull secrets together: what the registry is given.
pub trait Catalog: StreamStore + ImageStore + PullSecrets {}

impl<T: StreamStore + ImageStore + PullSecrets> Catalog for T {}
