//! Image streams as repositories: which image a tag serves (the newest event of the
//! stream tag, whatever the upstream tag says now), which manifests and blobs a
//! stream may serve (its history's images, the children of lists in it, their layers
//! and configs, and what was pushed into it), and where each can be pulled from on a
//! miss. Calls the API server's storages (streams, images, secrets) and the
//! repositories' links.
//!
//! A stream is read as stored (from the watch cache, consistently, where the store
//! allows it) and decoded once per revision: [`DecodedStreams`] keeps the decoded stream
//! with the revision it came from, so lookups of an unchanged stream decode nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use moor_api::image::{Image, ImageStream, TagEvent};
use moor_api::{Digest, DockerImageReference};

use super::decoded_streams::DecodedStreams;
use super::error::{Code, RegistryError};
use super::links::Links;
use super::storage::LinkKind;
use crate::catalog::Catalog;
use crate::importer::PullOptions;

/// The most images kept parsed in memory (images are immutable, named by digest).
const IMAGE_CACHE_LIMIT: usize = 4096;

/// Where content a stream may serve can be fetched from when it is not cached.
#[derive(Clone, Debug)]
pub struct Origin {
    /// The upstream repository (`None`: the content was pushed to moor, no upstream).
    pub repository: Option<DockerImageReference>,
    /// The tag's `importPolicy.insecure`.
    pub insecure: bool,
}

/// A validated `<namespace>/<stream>` repository name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RepoName {
    pub namespace: String,
    pub stream: String,
}

impl RepoName {
    /// Checks both parts the way the API does (a stream name may hold dots, never be
    /// `.` or `..`, nor hold `/` or `%`), so that no path trick reaches the store or
    /// the filesystem.
    pub fn parse(namespace: &str, stream: &str) -> Result<Self, RegistryError> {
        let ns_errors = moor_api::validation::validate_namespace_name(namespace);
        let name_errors = moor_api::validation::validate_image_stream_name(stream);
        if !ns_errors.is_empty() || !name_errors.is_empty() {
            return Err(RegistryError::new(
                Code::NameInvalid,
                format!(
                    "invalid repository name {namespace}/{stream}: a repository is <namespace>/<image stream>"
                ),
            )
            .detail(serde_json::json!({"name": format!("{namespace}/{stream}")})));
        }
        Ok(RepoName {
            namespace: namespace.to_string(),
            stream: stream.to_string(),
        })
    }
}

impl std::fmt::Display for RepoName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.stream)
    }
}

/// Streams and images as the registry sees them.
pub struct Repositories {
    catalog: Arc<dyn Catalog>,
    links: Links,
    /// `host[:port]` of this registry: references to it have no upstream.
    registry_hostname: String,
    images: Mutex<HashMap<String, Arc<Image>>>,
    streams: DecodedStreams,
}

impl Repositories {
    /// Streams and images of `catalog`, what was pushed of `links`.
    pub fn new(catalog: Arc<dyn Catalog>, links: Links, registry_hostname: &str) -> Self {
        Repositories {
            catalog,
            links,
            registry_hostname: registry_hostname.to_string(),
            images: Mutex::new(HashMap::new()),
            streams: DecodedStreams::default(),
        }
    }

    /// Reads what was pushed from `links` from now on (the shared store's).
    pub fn set_links(&mut self, links: Links) {
        self.links = links;
    }

    /// Streams, images and pull secrets (for pushes, deletes and prunes).
    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }

    /// This registry's host name.
    pub fn registry_hostname(&self) -> &str {
        &self.registry_hostname
    }

    /// The stream, if it exists, as of its stored revision now: decoded once per
    /// revision (without `managedFields`, which the registry never reads), then shared.
    pub async fn stream(&self, repo: &RepoName) -> Result<Option<Arc<ImageStream>>, RegistryError> {
        let stored = self
            .catalog
            .stream_stored(&repo.namespace, &repo.stream)
            .await
            .map_err(RegistryError::internal)?;
        let Some(stored) = stored else {
            self.streams.remove(repo);
            return Ok(None);
        };
        if let Some(stream) = self.streams.get(repo, stored.revision) {
            return Ok(Some(stream));
        }
        let stream = Arc::new(stored.decode().map_err(RegistryError::internal)?);
        self.streams
            .put(repo, stored.revision, stream.clone(), stored.bytes.len());
        Ok(Some(stream))
    }

    /// The streams kept decoded, and the stored bytes they came from.
    pub fn decoded_streams(&self) -> (usize, usize) {
        self.streams.size()
    }

    /// The stream, or NAME_UNKNOWN.
    pub async fn require_stream(&self, repo: &RepoName) -> Result<Arc<ImageStream>, RegistryError> {
        self.stream(repo)
            .await?
            .ok_or_else(|| RegistryError::name_unknown(&repo.to_string()))
    }

    /// Image `name`, if it exists (kept parsed: images never change).
    pub async fn image(&self, name: &str) -> Result<Option<Arc<Image>>, RegistryError> {
        if let Some(i) = self.lock_images().get(name) {
            return Ok(Some(i.clone()));
        }
        match self.catalog.image(name).await {
            Ok(Some(image)) => {
                let image = Arc::new(image);
                let mut cache = self.lock_images();
                if cache.len() >= IMAGE_CACHE_LIMIT {
                    cache.clear();
                }
                cache.insert(name.to_string(), image.clone());
                Ok(Some(image))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(RegistryError::internal(e)),
        }
    }

    /// Forgets cached image `name` (it was deleted).
    pub fn forget_image(&self, name: &str) {
        self.lock_images().remove(name);
    }

    fn lock_images(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Image>>> {
        self.images.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pull options of a namespace: its pull secrets, and `insecure`.
    pub async fn pull_options(&self, namespace: &str, insecure: bool) -> PullOptions {
        PullOptions {
            insecure,
            secrets: self.catalog.pull_secrets(namespace).await,
        }
    }

    fn origin(&self, stream: &ImageStream, tag: &str, event: &TagEvent) -> Origin {
        let insecure = stream
            .spec_tag(tag)
            .is_some_and(|t| t.import_policy.insecure);
        let repository = DockerImageReference::parse(&event.docker_image_reference)
            .ok()
            .filter(|r| r.registry() != self.registry_hostname && !r.registry().is_empty())
            .map(|r| r.without_tag().without_id());
        Origin {
            repository,
            insecure,
        }
    }

    /// The digest tag `tag` serves now (its newest event) and where it comes from.
    pub fn tag_image(&self, stream: &ImageStream, tag: &str) -> Option<(Digest, Origin)> {
        let list = stream.status.tags.iter().find(|t| t.tag == tag)?;
        let event = list.items.first()?;
        let digest = Digest::parse(&event.image).ok()?;
        Some((digest, self.origin(stream, tag, event)))
    }

    /// Whether the stream may serve manifest `digest`, and from where: an image of
    /// its history, a child of a list in its history, or a manifest pushed into it.
    pub async fn manifest_origin(
        &self,
        repo: &RepoName,
        stream: &ImageStream,
        digest: &Digest,
    ) -> Result<Option<Origin>, RegistryError> {
        for list in &stream.status.tags {
            if let Some(event) = list.items.iter().find(|e| e.image == digest.as_str()) {
                return Ok(Some(self.origin(stream, &list.tag, event)));
            }
        }
        for list in &stream.status.tags {
            for event in &list.items {
                let Some(image) = self.image(&event.image).await? else {
                    continue;
                };
                if image
                    .docker_image_manifests
                    .iter()
                    .any(|m| m.digest == digest.as_str())
                {
                    return Ok(Some(self.origin(stream, &list.tag, event)));
                }
            }
        }
        if self
            .links
            .is_linked(&repo.namespace, &repo.stream, LinkKind::Manifest, digest)
            .await?
        {
            return Ok(Some(Origin {
                repository: None,
                insecure: false,
            }));
        }
        Ok(None)
    }

    /// Whether the stream may serve blob `digest`, and from where: a layer or config
    /// of an image in its history (children of lists included), or a blob pushed or
    /// mounted into it. Manifests of the stream are blobs too (distribution serves
    /// them under `/blobs/` as well).
    pub async fn blob_origin(
        &self,
        repo: &RepoName,
        stream: Option<&ImageStream>,
        digest: &Digest,
    ) -> Result<Option<Origin>, RegistryError> {
        if self
            .links
            .is_linked(&repo.namespace, &repo.stream, LinkKind::Layer, digest)
            .await?
        {
            return Ok(Some(Origin {
                repository: None,
                insecure: false,
            }));
        }
        let Some(stream) = stream else {
            return Ok(None);
        };
        for list in &stream.status.tags {
            for event in &list.items {
                let Some(image) = self.image(&event.image).await? else {
                    continue;
                };
                if self.image_has_blob(&image, digest).await? {
                    return Ok(Some(self.origin(stream, &list.tag, event)));
                }
            }
        }
        self.manifest_origin(repo, stream, digest).await
    }

    async fn image_has_blob(&self, image: &Image, digest: &Digest) -> Result<bool, RegistryError> {
        if Self::own_blob(image, digest) {
            return Ok(true);
        }
        for child in &image.docker_image_manifests {
            if let Some(c) = self.image(&child.digest).await?
                && Self::own_blob(&c, digest)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn own_blob(image: &Image, digest: &Digest) -> bool {
        image
            .docker_image_layers
            .iter()
            .any(|l| l.name == digest.as_str())
            || image
                .docker_image_metadata
                .as_ref()
                .is_some_and(|m| m.id == digest.as_str())
    }

    /// The namespaces and streams that exist, as `ns/stream`, sorted (`_catalog`).
    pub async fn repository_names(&self) -> Result<Vec<String>, RegistryError> {
        let list = self
            .catalog
            .list_streams()
            .await
            .map_err(RegistryError::internal)?;
        let mut names: Vec<String> = list
            .streams
            .iter()
            .filter_map(|s| {
                let ns = s.metadata.namespace.as_deref()?;
                let name = s.metadata.name.as_deref()?;
                Some(format!("{ns}/{name}"))
            })
            .chain(list.undecodable)
            .collect();
        names.sort();
        Ok(names)
    }
}
