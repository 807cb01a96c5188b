//! The importer: turns spec tags into status history. It reads registries through the
//! [`Source`] port (implemented over the upstream client), builds `Image` objects,
//! and writes images, tag events, `ImportSuccess` conditions and core/v1 Events
//! through the API server's storages (in process). Tags whose source is another
//! stream (ImageStreamTag, ImageStreamImage) resolve without any registry.

pub mod catalog;
pub mod controller;
mod events;
pub mod follow;
pub mod image;
pub mod imports;
pub mod mapping;
pub mod queue;
pub mod source;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use moor_api::image::history::{
    add_tag_event, add_tag_event_to, clear_import_failure, set_import_failed, set_import_failed_on,
};
use moor_api::image::{
    IMPORTER_PREFER_ARCH_ANNOTATION, IMPORTER_PREFER_OS_ANNOTATION, Image, ImageStream, ImportMode,
    KIND_DOCKER_IMAGE, KIND_IMAGE_STREAM_IMAGE, KIND_IMAGE_STREAM_TAG, NamedTagEventList, TagEvent,
    TagReference, reasons,
};
use moor_api::{Digest, DockerImageReference};
use serde_json::Value;

use crate::upstream::UpstreamError;
pub use image::FetchedManifest;
use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::{RequestContext, RestStorage};
use moor_apimachinery::stored::unconditional;

/// Why an import failed. Each variant stands for one of OpenShift's reasons
/// ([`reason`](Self::reason), a `StatusReason`) and gives the message that conditions,
/// Events and import statuses carry ([`message`](Self::message)); the cause stays
/// reachable as the error's `source`.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ImportError {
    /// The registry answered with an error, or could not be reached in time.
    #[error("the registry request failed")]
    Registry(#[source] UpstreamError),
    /// Content moor refuses: a bad digest, schema 1, a manifest or config that does
    /// not parse, a source kind it does not know.
    #[error("{message}")]
    Invalid {
        message: String,
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// Something the import needs does not exist (a stream, a tag, an image).
    #[error("{0}")]
    NotFound(String),
    /// Reading or writing moor's own storage failed.
    #[error("{}", if context.is_empty() { "internal error" } else { context })]
    Internal {
        /// What was being done; empty when the cause says it all.
        context: String,
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// A failure with any other reason (sources other than the upstream client).
    #[error("{message}")]
    Other {
        reason: String,
        message: String,
        retry_after: Option<Duration>,
    },
}

impl From<UpstreamError> for ImportError {
    fn from(e: UpstreamError) -> Self {
        ImportError::Registry(e)
    }
}

impl ImportError {
    /// An error with `reason` and `message`.
    pub fn new(reason: &str, message: impl Into<String>) -> Self {
        match reason {
            reasons::INVALID => Self::invalid(message),
            reasons::NOT_FOUND => Self::not_found(message),
            _ => ImportError::Other {
                reason: reason.to_string(),
                message: message.into(),
                retry_after: None,
            },
        }
    }

    /// Content the registry served that moor refuses (bad digest, schema1, ...).
    pub fn invalid(message: impl Into<String>) -> Self {
        ImportError::Invalid {
            message: message.into(),
            source: None,
        }
    }

    /// Refused content, with the error that refused it (its text ends the message).
    pub fn invalid_because(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ImportError::Invalid {
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// Something missing upstream.
    pub fn not_found(message: impl Into<String>) -> Self {
        ImportError::NotFound(message.into())
    }

    /// moor's own storage failed while `context` (may be empty).
    pub fn internal(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ImportError::Internal {
            context: context.into(),
            source: Arc::new(source),
        }
    }

    /// OpenShift's `StatusReason` for this failure. A registry's 403 (`denied`) is
    /// `Unauthorized`, as OpenShift's importer reports it ("you may not have access").
    pub fn reason(&self) -> &str {
        match self {
            ImportError::Registry(UpstreamError::Forbidden { .. }) => reasons::UNAUTHORIZED,
            ImportError::Registry(e) => e.reason(),
            ImportError::Invalid { .. } => reasons::INVALID,
            ImportError::NotFound(_) => reasons::NOT_FOUND,
            ImportError::Internal { .. } => reasons::INTERNAL_ERROR,
            ImportError::Other { reason, .. } => reason,
        }
    }

    /// The message written into conditions, Events and import statuses.
    pub fn message(&self) -> String {
        match self {
            ImportError::Registry(e) => e.message(),
            ImportError::Invalid {
                message,
                source: Some(source),
            } => format!("{message}: {source}"),
            ImportError::Invalid { message, .. } => message.clone(),
            ImportError::NotFound(message) => message.clone(),
            ImportError::Internal { context, source } if context.is_empty() => source.to_string(),
            ImportError::Internal { context, source } => format!("{context}: {source}"),
            ImportError::Other { message, .. } => message.clone(),
        }
    }

    /// Whether trying again soon may succeed: the registry could not be reached, timed
    /// out, rate limited or failed (5xx), or moor's own storage failed. A definite
    /// answer (not found, unauthorized, refused content) is not: it changes only when
    /// the registry's content, moor's configuration or a pull secret does.
    pub fn is_transient(&self) -> bool {
        match self {
            ImportError::Registry(e) => e.is_transient(),
            ImportError::Internal { .. } => true,
            ImportError::Invalid { .. } | ImportError::NotFound(_) => false,
            ImportError::Other { reason, .. } => matches!(
                reason.as_str(),
                reasons::TOO_MANY_REQUESTS
                    | reasons::TIMEOUT
                    | reasons::SERVICE_UNAVAILABLE
                    | reasons::INTERNAL_ERROR
            ),
        }
    }

    /// When the registry asked us to come back (429 `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ImportError::Registry(e) => e.retry_after(),
            ImportError::Other { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP code OpenShift reports for the reason.
    pub fn code(&self) -> u16 {
        match self.reason() {
            reasons::NOT_FOUND => 404,
            reasons::UNAUTHORIZED => 401,
            reasons::FORBIDDEN => 403,
            reasons::TOO_MANY_REQUESTS => 429,
            reasons::INVALID => 422,
            reasons::BAD_REQUEST => 400,
            reasons::TIMEOUT => 504,
            reasons::SERVICE_UNAVAILABLE => 503,
            _ => 500,
        }
    }
}

/// The registry a reference's requests are counted under: its host as a user names
/// it, lower case (`docker.io` for every Docker Hub alias).
pub fn registry_of(reference: &DockerImageReference) -> String {
    if reference.is_docker_hub() {
        "docker.io".to_string()
    } else {
        reference.effective_registry().to_ascii_lowercase()
    }
}

/// Pull options of one import: the tag's insecure flag and the namespace's pull
/// secrets (raw `.dockerconfigjson` documents, in name order).
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    pub insecure: bool,
    pub secrets: Arc<Vec<Bytes>>,
}

/// The importer's port to registries (the distribution style: a small interface the
/// upstream client implements, and fakes in tests).
#[async_trait]
pub trait Source: Send + Sync {
    /// The manifest `reference` names (by tag or digest), verified against its digest.
    async fn manifest(
        &self,
        reference: &DockerImageReference,
        opts: &PullOptions,
    ) -> Result<FetchedManifest, ImportError>;
    /// A small blob (an image config) of `repository`, verified against `digest`.
    async fn blob(
        &self,
        repository: &DockerImageReference,
        digest: &Digest,
        opts: &PullOptions,
    ) -> Result<Bytes, ImportError>;
    /// The tags of `repository`.
    async fn tags(
        &self,
        repository: &DockerImageReference,
        opts: &PullOptions,
    ) -> Result<Vec<String>, ImportError>;
    /// The tags of `repository`, asked with `If-None-Match: etag` when an ETag is
    /// given ([`follow::TagsAnswer`]). Sources that cannot ask conditionally list.
    async fn tags_if_changed(
        &self,
        repository: &DockerImageReference,
        opts: &PullOptions,
        _etag: Option<&str>,
    ) -> Result<follow::TagsAnswer, ImportError> {
        Ok(follow::TagsAnswer::Changed {
            tags: self.tags(repository, opts).await?,
            etag: None,
            requests: 1,
        })
    }
    /// The OCI 1.1 referrers index (JSON) of manifest `digest` in `repository`,
    /// filtered by `artifact_type` where the registry does; `Ok(None)` when the
    /// registry has no referrers API (or the source cannot ask one).
    async fn referrers(
        &self,
        _repository: &DockerImageReference,
        _digest: &Digest,
        _artifact_type: &str,
        _opts: &PullOptions,
    ) -> Result<Option<Bytes>, ImportError> {
        Ok(None)
    }
    /// The digest of the manifest `reference` names, asked without pulling it (a HEAD
    /// request, which registries do not count as a pull); `Ok(None)` when the registry
    /// does not tell, so that only a full import can. The scheduler's cheap check.
    async fn digest(
        &self,
        _reference: &DockerImageReference,
        _opts: &PullOptions,
    ) -> Result<Option<Digest>, ImportError> {
        Ok(None)
    }
}

/// A successful import of one reference.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The image the tag points at (a list in PreserveOriginal mode).
    pub image: Image,
    /// Per-platform images of a list (PreserveOriginal mode).
    pub children: Vec<Image>,
}

impl Imported {
    /// The tag event for this import.
    pub fn event(&self, generation: i64) -> TagEvent {
        TagEvent {
            created: Some(Time(jiff::Timestamp::now())),
            docker_image_reference: self.image.docker_image_reference.clone(),
            image: self.image.metadata.name.clone().unwrap_or_default(),
            generation,
            ..Default::default()
        }
    }
}

/// How to import one reference.
#[derive(Clone, Debug, Default)]
pub struct ImportSpec {
    pub from: Option<DockerImageReference>,
    pub mode: ImportMode,
    pub prefer_arch: Option<String>,
    pub prefer_os: Option<String>,
    pub pull: PullOptions,
    /// The signature policy check of the namespace imported into, if any.
    pub signatures: Option<crate::signatures::Gate>,
    /// Where verified signatures are mirrored (a tag whose reference policy is
    /// `Local`), if anywhere.
    pub mirror: Option<crate::signatures::mirror::MirrorTarget>,
}

/// Imports one reference: its manifest (and, for a list, the chosen or every child)
/// and config blobs, into `Image`s. Makes manifest + config requests only, and, when
/// a signature policy covers the image, those of its signatures
/// ([`crate::signatures`]): an image that fails it is an error, one that passes
/// carries its verified signatures, mirrored into `spec.mirror` when it is set.
pub async fn import_reference(
    source: &dyn Source,
    spec: &ImportSpec,
) -> Result<Imported, ImportError> {
    let from = spec
        .from
        .as_ref()
        .ok_or_else(|| ImportError::invalid("no image reference to import"))?;
    let fetched = source.manifest(from, &spec.pull).await?;
    let mut imported = import_fetched(source, spec, from, &fetched).await?;
    if let Some(gate) = &spec.signatures {
        let verified = gate
            .verify(source, from, &spec.pull, &fetched.digest)
            .await?;
        if let Some(target) = &spec.mirror {
            crate::signatures::mirror::mirror(
                source,
                &spec.pull,
                target,
                &fetched.digest,
                &verified.manifests,
            )
            .await?;
        }
        imported.image.signatures = verified.signatures;
    }
    Ok(imported)
}

async fn import_fetched(
    source: &dyn Source,
    spec: &ImportSpec,
    from: &DockerImageReference,
    fetched: &FetchedManifest,
) -> Result<Imported, ImportError> {
    match image::parse(fetched)? {
        image::Parsed::Image(m) => {
            let config = source
                .blob(from, &image::config_digest(&m)?, &spec.pull)
                .await?;
            Ok(Imported {
                image: image::image_from_manifest(from, fetched, &m, &config)?,
                children: vec![],
            })
        }
        image::Parsed::List(index) => {
            let children = image::children(&index)?;
            match spec.mode {
                ImportMode::PreserveOriginal => {
                    let list = image::image_from_list(from, fetched, &children);
                    let mut images = Vec::new();
                    for c in &children {
                        images.push(import_child(source, from, &c.digest, &spec.pull).await?);
                    }
                    Ok(Imported {
                        image: list,
                        children: images,
                    })
                }
                _ => {
                    let chosen = image::pick_child(
                        &children,
                        spec.prefer_arch.as_deref(),
                        spec.prefer_os.as_deref(),
                    )
                    .ok_or_else(|| ImportError::invalid("the manifest list is empty"))?;
                    Ok(Imported {
                        image: import_child(source, from, &chosen.digest, &spec.pull).await?,
                        children: vec![],
                    })
                }
            }
        }
    }
}

async fn import_child(
    source: &dyn Source,
    from: &DockerImageReference,
    digest: &Digest,
    pull: &PullOptions,
) -> Result<Image, ImportError> {
    let child_ref = from.clone().without_tag().with_id(digest.clone());
    let fetched = source.manifest(&child_ref, pull).await?;
    match image::parse(&fetched)? {
        image::Parsed::Image(m) => {
            let config = source.blob(from, &image::config_digest(&m)?, pull).await?;
            image::image_from_manifest(from, &fetched, &m, &config)
        }
        image::Parsed::List(_) => Err(ImportError::invalid(
            "a manifest list may not contain another manifest list",
        )),
    }
}

/// The result of importing (or resolving) one spec tag.
#[derive(Clone, Debug)]
pub enum TagOutcome {
    /// A new current image (tag event), and the images to create.
    Imported { event: TagEvent, images: Vec<Image> },
    /// The import failed; history is kept.
    Failed(ImportError),
}

/// Up to this many tags in one write get an Event each; more get one summary Event.
const EVENTS_PER_TAG_UP_TO: usize = 3;

/// The `trigger` label of `moor_import_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct TriggerLabels {
    /// `spec` (a spec tag changed) or `scheduled` (the scheduler saw a new digest).
    pub trigger: String,
}

/// Import metrics shared by the import controller and the scheduler.
#[derive(Clone, Debug)]
pub struct ImportMetrics {
    /// `moor_import_duration_seconds{trigger}`: how long importing one tag took.
    pub duration: prometheus_client::metrics::family::Family<
        TriggerLabels,
        prometheus_client::metrics::histogram::Histogram,
    >,
}

impl Default for ImportMetrics {
    fn default() -> Self {
        ImportMetrics {
            duration: prometheus_client::metrics::family::Family::new_with_constructor(|| {
                prometheus_client::metrics::histogram::Histogram::new(
                    prometheus_client::metrics::histogram::exponential_buckets(0.005, 2.0, 14),
                )
            }),
        }
    }
}

impl ImportMetrics {
    /// Registers the families with `metrics`.
    pub fn register(&self, metrics: &crate::metrics::Metrics) {
        metrics.register(
            "import_duration_seconds",
            "Time to import one tag from its registry",
            self.duration.clone(),
        );
    }

    /// Records one import by `trigger`.
    pub fn observe(&self, trigger: &str, elapsed: Duration) {
        self.duration
            .get_or_create(&TriggerLabels {
                trigger: trigger.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }
}

/// The importer: a source of images plus the storages it writes to. Others reach
/// streams, images and secrets through the [`Catalog`](crate::catalog::Catalog) port
/// it implements (`catalog.rs`), never through its storages.
pub struct Importer {
    source: Arc<dyn Source>,
    streams: Arc<dyn RestStorage>,
    images: Arc<dyn RestStorage>,
    events: Arc<dyn RestStorage>,
    secrets: Arc<dyn RestStorage>,
    /// Events recorded, for counting identical ones (shared with
    /// [`with_source`](Self::with_source) copies).
    event_log: Arc<events::EventLog>,
    /// The signature policies imports are checked against, once set (shared with
    /// copies).
    signatures: Arc<std::sync::OnceLock<Arc<crate::signatures::Verifier>>>,
    /// Where signatures verified for `Local` tags are mirrored, once set (shared
    /// with copies).
    mirror: Arc<std::sync::OnceLock<Arc<dyn crate::signatures::mirror::MirrorStore>>>,
}

/// The API storages an [`Importer`] reads and writes.
pub struct ImporterStorages {
    pub streams: Arc<dyn RestStorage>,
    pub images: Arc<dyn RestStorage>,
    pub events: Arc<dyn RestStorage>,
    pub secrets: Arc<dyn RestStorage>,
}

/// NotFound for image stream `name` (a read-modify-write that found none).
pub(crate) fn stream_not_found(name: &str) -> ApiError {
    ApiError::NotFound {
        gr: moor_apimachinery::resource::GroupResource::new("image.openshift.io", "imagestreams"),
        name: name.to_string(),
    }
}

fn ctx() -> RequestContext {
    RequestContext::default()
}

fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, ApiError> {
    T::deserialize(v).map_err(ApiError::internal)
}

/// `obj` without `metadata.managedFields`: for objects decoded only to be read, or to
/// write their `status` (which takes nothing else from the body), where decoding them
/// costs as much as the rest of a large stream.
pub(crate) fn without_managed_fields(mut obj: Value) -> Value {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    obj
}

/// Records `outcomes` in the stream's status history (a tag whose spec vanished
/// meanwhile gets none). Looks the tags up in indexes built once: one write may carry
/// the outcomes of all the tags of a large stream.
fn record_outcomes(stream: &mut ImageStream, outcomes: &[(String, TagOutcome)], now: &Time) {
    // The first of a name wins, as `spec_tag` and `status_tag_mut` find them.
    let generations: HashMap<String, i64> = stream
        .spec
        .tags
        .iter()
        .rev()
        .map(|t| (t.name.clone(), t.generation.unwrap_or(0)))
        .collect();
    let mut at: HashMap<String, usize> = stream
        .status
        .tags
        .iter()
        .enumerate()
        .rev()
        .map(|(i, l)| (l.tag.clone(), i))
        .collect();
    for (tag, outcome) in outcomes {
        let Some(&generation) = generations.get(tag) else {
            continue;
        };
        let i = *at.entry(tag.clone()).or_insert_with(|| {
            stream.status.tags.push(NamedTagEventList {
                tag: tag.clone(),
                items: vec![],
                conditions: vec![],
            });
            stream.status.tags.len() - 1
        });
        let list = &mut stream.status.tags[i];
        match outcome {
            TagOutcome::Imported { event, .. } => {
                add_tag_event_to(list, event.clone());
            }
            TagOutcome::Failed(e) => {
                set_import_failed_on(list, e.reason(), &e.message(), generation, now.clone());
            }
        }
    }
}

impl Importer {
    /// An importer reading registries through `source`, writing to `storages`.
    pub fn new(source: Arc<dyn Source>, storages: ImporterStorages) -> Self {
        Importer {
            source,
            streams: storages.streams,
            images: storages.images,
            events: storages.events,
            secrets: storages.secrets,
            event_log: Arc::default(),
            signatures: Arc::default(),
            mirror: Arc::default(),
        }
    }

    /// The same importer, reading registries through `source` instead.
    pub fn with_source(&self, source: Arc<dyn Source>) -> Self {
        Importer {
            source,
            streams: self.streams.clone(),
            images: self.images.clone(),
            events: self.events.clone(),
            secrets: self.secrets.clone(),
            event_log: self.event_log.clone(),
            signatures: self.signatures.clone(),
            mirror: self.mirror.clone(),
        }
    }

    /// The same importer, writing through `wrap` of each of its storages (the
    /// leader's controllers fence their writes this way).
    pub fn with_storages(
        &self,
        wrap: impl Fn(Arc<dyn RestStorage>) -> Arc<dyn RestStorage>,
    ) -> Self {
        Importer {
            source: self.source.clone(),
            streams: wrap(self.streams.clone()),
            images: wrap(self.images.clone()),
            events: wrap(self.events.clone()),
            secrets: wrap(self.secrets.clone()),
            event_log: self.event_log.clone(),
            signatures: self.signatures.clone(),
            mirror: self.mirror.clone(),
        }
    }

    /// Checks imports against the signature policies `verifier` reads (once; later
    /// calls are ignored).
    pub fn set_signatures(&self, verifier: Arc<crate::signatures::Verifier>) {
        let _ = self.signatures.set(verifier);
    }

    /// Mirrors the signatures verified for tags whose reference policy is `Local`
    /// into `store` (once; later calls are ignored).
    pub fn set_signature_mirror(&self, store: Arc<dyn crate::signatures::mirror::MirrorStore>) {
        let _ = self.mirror.set(store);
    }

    /// Where an import into `ns/stream` under `policy` mirrors verified signatures:
    /// the registry when the policy is `Local` (and a registry is served).
    pub fn mirror_target(
        &self,
        ns: &str,
        stream: &str,
        policy: &moor_api::image::TagReferencePolicy,
    ) -> Option<crate::signatures::mirror::MirrorTarget> {
        if policy.type_ != Some(moor_api::image::TagReferencePolicyType::Local) {
            return None;
        }
        self.mirror
            .get()
            .map(|store| crate::signatures::mirror::MirrorTarget {
                store: store.clone(),
                namespace: ns.to_string(),
                stream: stream.to_string(),
            })
    }

    /// The signature check of imports into namespace `ns`, when policies are served.
    pub fn signature_gate(&self, ns: &str) -> Option<crate::signatures::Gate> {
        self.signatures
            .get()
            .map(|verifier| crate::signatures::Gate {
                verifier: verifier.clone(),
                namespace: ns.to_string(),
            })
    }

    /// The namespace's pull secrets, minus those marked `openshift.io/image.excludeSecret`.
    pub async fn pull_secrets(&self, ns: &str) -> Arc<Vec<Bytes>> {
        let Ok(list) = self
            .secrets
            .list(&ctx(), Some(ns), &Default::default())
            .await
        else {
            return Arc::default();
        };
        let mut out = Vec::new();
        for s in list.items {
            let excluded = s
                .pointer(&format!(
                    "/metadata/annotations/{}",
                    moor_api::image::EXCLUDE_IMAGE_SECRET_ANNOTATION.replace('/', "~1")
                ))
                .and_then(Value::as_str)
                == Some("true");
            let ty = s.get("type").and_then(Value::as_str).unwrap_or("");
            if excluded || ty != "kubernetes.io/dockerconfigjson" {
                continue;
            }
            if let Some(b64) = s.pointer("/data/.dockerconfigjson").and_then(Value::as_str) {
                use base64::Engine;
                if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64) {
                    out.push(Bytes::from(raw));
                }
            }
        }
        Arc::new(out)
    }

    /// Changes of Secrets (every namespace) from `resource_version` on: a pull secret
    /// created or changed may fix failed imports.
    pub async fn watch_secrets(
        &self,
        resource_version: &str,
    ) -> Result<moor_apimachinery::resource::WatchEvents, ApiError> {
        let opts = moor_apimachinery::resource::ListOptions {
            resource_version: Some(resource_version.to_string()),
            ..Default::default()
        };
        self.secrets.watch(&ctx(), None, &opts).await
    }

    /// The import spec of a DockerImage spec tag.
    pub fn spec_for(tag: &TagReference, pull: PullOptions) -> Result<ImportSpec, ImportError> {
        let from = DockerImageReference::parse(tag.from_name()).map_err(|e| {
            ImportError::invalid(format!(
                "invalid image reference {:?}: {e}",
                tag.from_name()
            ))
        })?;
        let ann = tag.annotations.clone().unwrap_or_default();
        Ok(ImportSpec {
            from: Some(from),
            mode: tag.import_policy.import_mode.clone().unwrap_or_default(),
            prefer_arch: ann.get(IMPORTER_PREFER_ARCH_ANNOTATION).cloned(),
            prefer_os: ann.get(IMPORTER_PREFER_OS_ANNOTATION).cloned(),
            pull: PullOptions {
                insecure: tag.import_policy.insecure || pull.insecure,
                secrets: pull.secrets,
            },
            signatures: None,
            mirror: None,
        })
    }

    /// The outcome of a reference tag (`reference: true` from a DockerImage; such a tag
    /// never follows a range): recorded as named, without contacting any registry or
    /// reading anything, so the import controller resolves it in place.
    pub fn reference_outcome(tag: &TagReference) -> Option<TagOutcome> {
        (tag.from_kind() == KIND_DOCKER_IMAGE && tag.reference).then(|| TagOutcome::Imported {
            event: TagEvent {
                created: Some(Time(jiff::Timestamp::now())),
                docker_image_reference: tag.from_name().to_string(),
                image: String::new(),
                generation: tag.generation.unwrap_or(0),
                ..Default::default()
            },
            images: vec![],
        })
    }

    /// Imports or resolves one spec tag of `stream`.
    pub async fn resolve_tag(
        &self,
        stream: &ImageStream,
        tag: &TagReference,
        secrets: &Arc<Vec<Bytes>>,
    ) -> TagOutcome {
        // A tag that follows a range imports the tag its policy picks now.
        let pinned;
        let tag = if follow::follows(tag) {
            let pull = PullOptions {
                insecure: false,
                secrets: secrets.clone(),
            };
            match follow::pin(self.source.as_ref(), tag, pull).await {
                Ok(t) => {
                    pinned = t;
                    &pinned
                }
                Err(e) => return TagOutcome::Failed(e),
            }
        } else {
            tag
        };
        if let Some(outcome) = Self::reference_outcome(tag) {
            return outcome;
        }
        let generation = tag.generation.unwrap_or(0);
        let ns = stream.metadata.namespace.clone().unwrap_or_default();
        match tag.from_kind() {
            KIND_DOCKER_IMAGE => {
                let spec = match Self::spec_for(
                    tag,
                    PullOptions {
                        insecure: false,
                        secrets: secrets.clone(),
                    },
                ) {
                    Ok(s) => ImportSpec {
                        signatures: self.signature_gate(&ns),
                        mirror: self.mirror_target(
                            &ns,
                            stream.metadata.name.as_deref().unwrap_or_default(),
                            &tag.reference_policy,
                        ),
                        ..s
                    },
                    Err(e) => return TagOutcome::Failed(e),
                };
                match import_reference(self.source.as_ref(), &spec).await {
                    Ok(imported) => {
                        let mut images = vec![imported.image.clone()];
                        images.extend(imported.children.iter().cloned());
                        TagOutcome::Imported {
                            event: imported.event(generation),
                            images,
                        }
                    }
                    Err(e) => TagOutcome::Failed(e),
                }
            }
            KIND_IMAGE_STREAM_TAG | KIND_IMAGE_STREAM_IMAGE => {
                match self.resolve_local(stream, &ns, tag).await {
                    Ok(mut event) => {
                        event.generation = generation;
                        event.created = Some(Time(jiff::Timestamp::now()));
                        TagOutcome::Imported {
                            event,
                            images: vec![],
                        }
                    }
                    Err(e) => TagOutcome::Failed(e),
                }
            }
            other => TagOutcome::Failed(ImportError::invalid(format!(
                "unsupported source kind {other:?}"
            ))),
        }
    }

    /// The tag event an ImageStreamTag or ImageStreamImage source stands for.
    async fn resolve_local(
        &self,
        stream: &ImageStream,
        ns: &str,
        tag: &TagReference,
    ) -> Result<TagEvent, ImportError> {
        let from = tag
            .from
            .as_ref()
            .ok_or_else(|| ImportError::invalid("the tag has no source"))?;
        let from_ns = from
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| ns.to_string());
        let name = tag.from_name();
        let (src_name, key, by_digest) = match tag.from_kind() {
            KIND_IMAGE_STREAM_TAG => {
                let (s, t) = moor_api::image::parse_image_stream_tag_name(name)
                    .map_err(|e| ImportError::invalid(e.to_string()))?;
                (s.to_string(), t.to_string(), false)
            }
            _ => {
                let (s, d) = moor_api::image::parse_image_stream_image_name(name)
                    .map_err(|e| ImportError::invalid(e.to_string()))?;
                (s.to_string(), d.to_string(), true)
            }
        };
        let source_stream: ImageStream =
            if src_name == stream.metadata.name.clone().unwrap_or_default() && from_ns == ns {
                stream.clone()
            } else {
                let v = self
                    .streams
                    .get(&ctx(), Some(&from_ns), &src_name)
                    .await
                    .map_err(|_| {
                        ImportError::not_found(format!(
                            "imagestreams.image.openshift.io \"{src_name}\" not found"
                        ))
                    })?;
                typed(&v).map_err(|e| ImportError::internal("", e))?
            };
        if by_digest {
            let found = source_stream
                .status
                .tags
                .iter()
                .flat_map(|t| t.items.iter())
                .find(|e| e.image == key)
                .cloned();
            return found.ok_or_else(|| {
                ImportError::not_found(format!(
                    "imagestreamimages.image.openshift.io \"{name}\" not found"
                ))
            });
        }
        source_stream
            .latest_tagged_image(&key)
            .cloned()
            .ok_or_else(|| {
                ImportError::not_found(format!(
                    "imagestreamtags.image.openshift.io \"{name}\" not found"
                ))
            })
    }

    /// Creates `images` that do not exist yet.
    pub async fn store_images(&self, images: &[Image]) -> Result<(), ApiError> {
        for image in images {
            let v = serde_json::to_value(image).map_err(ApiError::internal)?;
            match self.images.create(&ctx(), None, v).await {
                Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes outcomes into the stream's status (retrying on conflicts), then records
    /// events. Returns the stream as written.
    pub async fn write_outcomes(
        &self,
        ns: &str,
        name: &str,
        outcomes: &[(String, TagOutcome)],
    ) -> Result<Value, ApiError> {
        for (_, o) in outcomes {
            if let TagOutcome::Imported { images, .. } = o {
                self.store_images(images).await?;
            }
        }
        let now = Time(jiff::Timestamp::now());
        // Decoded without its managed fields, and only the status handed back: the
        // status subresource takes nothing else from the step's result.
        let f = |cur: Option<&Value>| -> Result<Value, ApiError> {
            let cur = cur.ok_or_else(|| stream_not_found(name))?;
            let mut stream = crate::catalog::slim_stream(cur).map_err(ApiError::internal)?;
            record_outcomes(&mut stream, outcomes, &now);
            let status = serde_json::to_value(&stream.status).map_err(ApiError::internal)?;
            Ok(serde_json::json!({ "status": status }))
        };
        let (written, _) = self
            .streams
            .update(&ctx(), Some(ns), name, Some("status"), &f, false)
            .await?;
        let mut imported = Vec::new();
        let mut failed = Vec::new();
        for (tag, outcome) in outcomes {
            match outcome {
                TagOutcome::Imported { event, .. } => imported.push((tag.as_str(), event)),
                TagOutcome::Failed(e) => failed.push((tag.as_str(), e)),
            }
        }
        self.record_import_events(&written, name, &imported, &failed, false)
            .await;
        Ok(written)
    }

    /// Records the results of scheduled checks of tags of one stream (`items`: tag and
    /// outcome, in order) in one write, and writes nothing when they change nothing (so
    /// that the stream's `resourceVersion` stays): a tag event that changes a history
    /// is written with its images; a success that changes nothing (`None`: the digest
    /// was unchanged) clears a failed `ImportSuccess` condition, if any; a failure sets
    /// the condition (history kept). Events as [`write_outcomes`](Self::write_outcomes)
    /// records them (one per tag for a few, one summary for more): `ImportSucceeded`
    /// for each history changed, `ImportFailed` for each condition set. Returns, per
    /// item, whether its tag's history changed.
    pub async fn write_scheduled(
        &self,
        ns: &str,
        name: &str,
        items: &[(String, Option<TagOutcome>)],
    ) -> Result<Vec<bool>, ApiError> {
        let unchanged = || vec![false; items.len()];
        let current: ImageStream = typed(&self.streams.get(&ctx(), Some(ns), name).await?)?;
        let now = Time(jiff::Timestamp::now());
        // Per item: whether its history changed, and whether anything changed.
        let apply = |stream: &mut ImageStream| -> Vec<(bool, bool)> {
            items
                .iter()
                .map(|(tag, outcome)| {
                    let Some(spec) = stream.spec_tag(tag) else {
                        return (false, false);
                    };
                    let generation = spec.generation.unwrap_or(0);
                    match outcome {
                        None => (false, clear_import_failure(stream, tag)),
                        Some(TagOutcome::Imported { event, .. }) => {
                            let history = add_tag_event(stream, tag, event.clone());
                            let cleared = clear_import_failure(stream, tag);
                            (history, history || cleared)
                        }
                        Some(TagOutcome::Failed(e)) => {
                            let changed = set_import_failed(
                                stream,
                                tag,
                                e.reason(),
                                &e.message(),
                                generation,
                                now.clone(),
                            );
                            (false, changed)
                        }
                    }
                })
                .collect()
        };
        if !apply(&mut current.clone())
            .iter()
            .any(|(_, changed)| *changed)
        {
            return Ok(unchanged());
        }
        // Tags that follow one repository import the same images: each stored once.
        let mut stored = std::collections::HashSet::new();
        for (_, outcome) in items {
            if let Some(TagOutcome::Imported { images, .. }) = outcome {
                let new: Vec<Image> = images
                    .iter()
                    .filter(|i| stored.insert(i.metadata.name.clone()))
                    .cloned()
                    .collect();
                self.store_images(&new).await?;
            }
        }
        let changes = std::sync::Mutex::new(vec![(false, false); items.len()]);
        let f = |cur: Option<&Value>| -> Result<Value, ApiError> {
            let cur = cur.ok_or_else(|| stream_not_found(name))?;
            let mut stream: ImageStream = typed(cur)?;
            let applied = apply(&mut stream);
            let any = applied.iter().any(|(_, changed)| *changed);
            *changes.lock().unwrap_or_else(|p| p.into_inner()) = applied;
            if !any {
                return Ok(cur.clone());
            }
            Ok(unconditional(
                serde_json::to_value(&stream).map_err(ApiError::internal)?,
            ))
        };
        let (written, _) = self
            .streams
            .update(&ctx(), Some(ns), name, Some("status"), &f, false)
            .await?;
        let changes: Vec<(bool, bool)> = changes.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut imported = Vec::new();
        let mut failed = Vec::new();
        for ((tag, outcome), (history, changed)) in items.iter().zip(&changes) {
            match outcome {
                Some(TagOutcome::Imported { event, .. }) if *history => {
                    imported.push((tag.as_str(), event))
                }
                Some(TagOutcome::Failed(e)) if *changed => failed.push((tag.as_str(), e)),
                _ => {}
            }
        }
        self.record_import_events(&written, name, &imported, &failed, true)
            .await;
        Ok(changes.into_iter().map(|(history, _)| history).collect())
    }

    /// Records the Events of one write of imports into stream `name` (as `written`):
    /// an Event per tag for up to [`EVENTS_PER_TAG_UP_TO`] tags, else one summary per
    /// outcome (a repository import of 50 tags records 1 Event, not 50). `scheduled`
    /// says so in the messages.
    async fn record_import_events(
        &self,
        written: &Value,
        name: &str,
        imported: &[(&str, &TagEvent)],
        failed: &[(&str, &ImportError)],
        scheduled: bool,
    ) {
        let (suffix, failure) = if scheduled {
            (" (scheduled)", "Scheduled import")
        } else {
            ("", "Import")
        };
        if imported.len() > EVENTS_PER_TAG_UP_TO {
            let tags: Vec<&str> = imported.iter().map(|(t, _)| *t).collect();
            let message = format!(
                "Imported {} tags of {name}{suffix}: {}",
                tags.len(),
                tags.join(", ")
            );
            self.record_event(written, None, "ImportSucceeded", &message, "Normal")
                .await;
        } else {
            for (tag, event) in imported {
                let message = format!(
                    "Tag {name}:{tag} imported {}{suffix}",
                    event.docker_image_reference
                );
                self.record_event(written, Some(tag), "ImportSucceeded", &message, "Normal")
                    .await;
            }
        }
        if failed.len() > EVENTS_PER_TAG_UP_TO {
            let tags: Vec<&str> = failed.iter().map(|(t, _)| *t).collect();
            let message = format!(
                "{failure} of {} tags of {name} failed: {}",
                tags.len(),
                tags.join(", ")
            );
            self.record_event(written, None, "ImportFailed", &message, "Warning")
                .await;
        } else {
            for (tag, e) in failed {
                let message = format!(
                    "{failure} of {name}:{tag} failed ({}): {}",
                    e.reason(),
                    e.message()
                );
                self.record_event(written, Some(tag), "ImportFailed", &message, "Warning")
                    .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn outcomes_are_recorded_as_tag_by_tag_through_the_indexes() {
        let spec_tag = |name: &str, generation: i64| TagReference {
            name: name.into(),
            generation: Some(generation),
            ..Default::default()
        };
        let event = |image: &str, generation: i64| TagEvent {
            docker_image_reference: format!("registry.example/app@{image}"),
            image: image.into(),
            generation,
            ..Default::default()
        };
        let mut stream = ImageStream::default();
        stream.spec.tags = vec![spec_tag("a", 2), spec_tag("b", 3), spec_tag("c", 1)];
        stream.status.tags = vec![NamedTagEventList {
            tag: "b".into(),
            items: vec![event("sha256:old", 1)],
            conditions: vec![],
        }];
        let outcomes = vec![
            (
                "a".to_string(),
                TagOutcome::Failed(ImportError::not_found("gone")),
            ),
            (
                "b".to_string(),
                TagOutcome::Imported {
                    event: event("sha256:new", 3),
                    images: vec![],
                },
            ),
            (
                "vanished".to_string(),
                TagOutcome::Failed(ImportError::not_found("x")),
            ),
            (
                "c".to_string(),
                TagOutcome::Imported {
                    event: event("sha256:c", 1),
                    images: vec![],
                },
            ),
            (
                "a".to_string(),
                TagOutcome::Failed(ImportError::invalid("bad")),
            ),
        ];
        let now = Time(jiff::Timestamp::UNIX_EPOCH);
        // What the per-tag functions, scanning the lists, make of them.
        let mut want = stream.clone();
        for (tag, outcome) in &outcomes {
            let Some(generation) = want.spec_tag(tag).map(|t| t.generation.unwrap_or(0)) else {
                continue;
            };
            match outcome {
                TagOutcome::Imported { event, .. } => {
                    add_tag_event(&mut want, tag, event.clone());
                }
                TagOutcome::Failed(e) => {
                    set_import_failed(
                        &mut want,
                        tag,
                        e.reason(),
                        &e.message(),
                        generation,
                        now.clone(),
                    );
                }
            }
        }
        record_outcomes(&mut stream, &outcomes, &now);
        assert_eq!(stream, want);
        assert!(stream.status_tag("vanished").is_none());
        assert_eq!(stream.status_tag("b").map(|l| l.items.len()), Some(2));
    }

    #[test]
    fn errors_keep_their_cause_and_openshift_wording() {
        let fetched = FetchedManifest {
            bytes: Bytes::from_static(b"{not json"),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: Digest::sha256_of(b"{not json"),
        };
        let Err(e) = image::parse(&fetched) else {
            panic!("garbage parsed")
        };
        assert_eq!(e.reason(), reasons::INVALID);
        let cause = e.source().expect("the JSON error is kept");
        assert_eq!(
            e.message(),
            format!(
                "the manifest (application/vnd.oci.image.manifest.v1+json) cannot be parsed: {cause}"
            )
        );
        let upstream = UpstreamError::TooManyRequests {
            retry_after: Some(Duration::from_secs(7)),
        };
        let e = ImportError::from(upstream.clone());
        assert_eq!(e.reason(), upstream.reason());
        assert_eq!(e.message(), upstream.message());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(e.code(), 429);
        assert!(e.source().is_some());
        let e = ImportError::new(reasons::NOT_FOUND, "gone");
        assert!(matches!(e, ImportError::NotFound(_)));
        assert_eq!(
            (e.reason(), e.message().as_str()),
            (reasons::NOT_FOUND, "gone")
        );
        let e = ImportError::from(UpstreamError::Forbidden {
            target: "q/a:1".into(),
            message: "requested access to the resource is denied".into(),
        });
        assert_eq!((e.reason(), e.code()), (reasons::UNAUTHORIZED, 401));
        assert!(!e.is_transient());
    }
}
