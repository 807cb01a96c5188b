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
//! Calls the API server's storages (image streams, images, workloads) and the blob
//! store.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use moor_api::image::{Image, ImageStream, KIND_DOCKER_IMAGE, KIND_IMAGE_STREAM_IMAGE, TagEvent};
use moor_api::lookup::{Workload, WorkloadKind};
use moor_api::prune::{
    ImagePrune, ImagePruneSpec, ImagePruneStatus, PrunedBlob, PrunedImage, PrunedLink,
    PrunedTagEvent,
};
use moor_api::{Digest, DockerImageReference};
use serde_json::Value;

use super::Registry;
use super::storage::{BlobStore, Link, LinkKind, ReferrerRecord, StorageError};
use crate::apiserver::ApiServer;
use crate::apiserver::error::ApiError;
use crate::apiserver::resource::{ListOptions, RequestContext};
use crate::apiserver::stored::unconditional;

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
}

impl From<PruneError> for ApiError {
    fn from(e: PruneError) -> Self {
        match e {
            PruneError::BadRequest(m) => ApiError::BadRequest(m),
            PruneError::Api(e) => e,
            PruneError::Storage(e) => {
                // The cause names server paths: the log has it, the client does not.
                tracing::error!(error = %e, "prune: registry storage failed");
                ApiError::internal("the registry's storage failed; the server log has the cause")
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Planning (IO-free)
// ---------------------------------------------------------------------------------

/// What a prune keeps whatever else is true.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The newest entries of each tag's history kept (the first always is).
    pub keep_tag_revisions: usize,
    /// Things made at or after this instant are kept: `start - keepYoungerThan`.
    pub cutoff: jiff::Timestamp,
}

impl Policy {
    /// The policy of `spec` for a prune starting at `start`.
    pub fn new(spec: &ImagePruneSpec, start: jiff::Timestamp) -> Self {
        let age = jiff::SignedDuration::try_from(spec.keep_younger_than())
            .unwrap_or(jiff::SignedDuration::MAX);
        Policy {
            keep_tag_revisions: spec.keep_tag_revisions() as usize,
            cutoff: start.checked_sub(age).unwrap_or(jiff::Timestamp::MIN),
        }
    }

    /// Whether an API object made at `t` is older than the cutoff. API times have
    /// whole seconds (rounded or cut), so one second of doubt counts as young; no
    /// time at all counts as old, as in oc.
    pub fn is_old(&self, t: Option<&Time>) -> bool {
        match t {
            None => true,
            Some(Time(t)) => t
                .checked_add(jiff::SignedDuration::from_secs(1))
                .is_ok_and(|t| t < self.cutoff),
        }
    }

    /// Whether a file last changed at `t` is older than the cutoff.
    pub fn is_old_file(&self, t: SystemTime) -> bool {
        jiff::Timestamp::try_from(t).is_ok_and(|t| t < self.cutoff)
    }
}

/// Images that workloads name by digest through a stream, as
/// `(namespace, stream, digest)`: their history entries are kept.
pub type Pins = HashSet<(String, String, String)>;

/// The pins of workload container images: `<registry>/<ns>/<stream>@<digest>` (any
/// registry, as oc reads them; a pull spec that names a stream tag pins nothing, the
/// tag's newest entry is always kept).
pub fn workload_pins<'a>(images: impl IntoIterator<Item = &'a str>) -> Pins {
    images
        .into_iter()
        .filter_map(|spec| {
            let r = DockerImageReference::parse(spec).ok()?;
            let id = r.id()?;
            if r.registry().is_empty() || r.namespace().is_empty() || r.name().contains('/') {
                return None;
            }
            Some((
                r.namespace().to_string(),
                r.name().to_string(),
                id.to_string(),
            ))
        })
        .collect()
}

/// Removes from `stream`'s history the entries `policy` does not keep and returns them
/// as `(tag, entry)`. Kept: each tag's newest entry, the `keep_tag_revisions` newest,
/// entries younger than the cutoff, entries pinned by workloads, and every entry of a
/// stream younger than the cutoff.
pub fn prune_history(
    stream: &mut ImageStream,
    policy: &Policy,
    pins: &Pins,
) -> Vec<(String, TagEvent)> {
    let mut removed = Vec::new();
    if !policy.is_old(stream.metadata.creation_timestamp.as_ref()) {
        return removed;
    }
    let ns = stream.metadata.namespace.clone().unwrap_or_default();
    let name = stream.metadata.name.clone().unwrap_or_default();
    for list in &mut stream.status.tags {
        let mut revision = 0;
        list.items.retain(|event| {
            let keep = revision == 0
                || revision < policy.keep_tag_revisions
                || !policy.is_old(event.created.as_ref())
                || pins.contains(&(ns.clone(), name.clone(), event.image.clone()));
            revision += 1;
            if !keep {
                removed.push((list.tag.clone(), event.clone()));
            }
            keep
        });
    }
    removed
}

/// The digest an image stream's spec tag names directly: `from` of kind
/// ImageStreamImage (`stream@digest`), or DockerImage `<this registry>/...@digest`.
fn spec_tag_image(stream: &ImageStream, registry_hostname: &str) -> Vec<String> {
    stream
        .spec
        .tags
        .iter()
        .filter_map(|t| match t.from_kind() {
            KIND_IMAGE_STREAM_IMAGE => t.from_name().split_once('@').map(|(_, d)| d.to_string()),
            KIND_DOCKER_IMAGE => DockerImageReference::parse(t.from_name())
                .ok()
                .filter(|r| r.registry() == registry_hostname)
                .and_then(|r| r.id().map(ToString::to_string)),
            _ => None,
        })
        .collect()
}

/// The images something still names: any stream's history, spec tags' `from` (see
/// [`spec_tag_image`]), the extra `roots` (manifests pushed lately), and, closing over
/// these, the children of lists and the manifests pushed with one of them as subject.
pub fn referenced_images<'a>(
    streams: impl IntoIterator<Item = &'a ImageStream>,
    images: &HashMap<&str, &Image>,
    referrers: &[ReferrerRecord],
    registry_hostname: &str,
    roots: impl IntoIterator<Item = String>,
) -> HashSet<String> {
    let mut todo: Vec<String> = roots.into_iter().collect();
    for s in streams {
        todo.extend(
            s.status
                .tags
                .iter()
                .flat_map(|t| t.items.iter().map(|e| e.image.clone())),
        );
        todo.extend(spec_tag_image(s, registry_hostname));
    }
    let mut by_subject: HashMap<&str, Vec<&str>> = HashMap::new();
    for r in referrers {
        by_subject
            .entry(r.subject.as_str())
            .or_default()
            .push(r.manifest.as_str());
    }
    let mut seen = HashSet::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(image) = images.get(name.as_str()) {
            todo.extend(
                image
                    .docker_image_manifests
                    .iter()
                    .map(|m| m.digest.clone()),
            );
        }
        if let Some(refs) = by_subject.get(name.as_str()) {
            todo.extend(refs.iter().map(|m| m.to_string()));
        }
    }
    seen
}

/// Which Images to delete.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImagePlan {
    /// Images nothing names that are older than the cutoff, by name.
    pub remove: Vec<String>,
    /// Images nothing names that are kept for being young.
    pub young: usize,
}

/// Plans the Images to delete: those `referenced` does not hold, older than the cutoff.
pub fn plan_images(images: &[Image], referenced: &HashSet<String>, policy: &Policy) -> ImagePlan {
    let mut plan = ImagePlan::default();
    for image in images {
        let Some(name) = image.metadata.name.as_deref() else {
            continue;
        };
        if referenced.contains(name) {
            continue;
        }
        if policy.is_old(image.metadata.creation_timestamp.as_ref()) {
            plan.remove.push(name.to_string());
        } else {
            plan.young += 1;
        }
    }
    plan.remove.sort();
    plan
}

/// Which blobs, links and repository records to delete.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BlobPlan {
    /// Blobs with their sizes.
    pub blobs: Vec<(Digest, u64)>,
    /// Links of repositories that stay.
    pub links: Vec<Link>,
    /// Records of repositories whose stream is gone (with all their links).
    pub repositories: Vec<(String, String)>,
}

/// Every digest an image needs from the blob store: its manifest, config and layers,
/// and its children's manifests (the children's own blobs come with their Images).
fn image_needs(image: &Image) -> impl Iterator<Item = &str> {
    image
        .metadata
        .name
        .as_deref()
        .into_iter()
        .chain(image.docker_image_metadata.as_ref().map(|m| m.id.as_str()))
        .chain(image.docker_image_layers.iter().map(|l| l.name.as_str()))
        .chain(
            image
                .docker_image_manifests
                .iter()
                .map(|m| m.digest.as_str()),
        )
}

/// Plans the blobs to delete: those no `remaining` image needs, unless the blob or a
/// link to it is younger than the cutoff (a push may be in flight). Links to deleted
/// blobs, and manifest links of `removed_images`, go too; the records of a repository
/// whose stream is not in `live` go whole once none of its links is young.
pub fn plan_blobs<'a>(
    blobs: &[(Digest, u64, SystemTime)],
    remaining: impl IntoIterator<Item = &'a Image>,
    links: &[Link],
    repositories: &[(String, String)],
    live: &HashSet<(String, String)>,
    removed_images: &HashSet<String>,
    policy: &Policy,
) -> BlobPlan {
    let mut keep: HashSet<&str> = HashSet::new();
    for image in remaining {
        keep.extend(image_needs(image));
    }
    let mut young_repos: HashSet<(&str, &str)> = HashSet::new();
    for l in links.iter().filter(|l| !policy.is_old_file(l.modified)) {
        keep.insert(l.digest.as_str());
        young_repos.insert((&l.namespace, &l.stream));
    }
    let mut plan = BlobPlan::default();
    for (digest, size, modified) in blobs {
        if !keep.contains(digest.as_str()) && policy.is_old_file(*modified) {
            plan.blobs.push((digest.clone(), *size));
        }
    }
    plan.blobs.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    let removed: HashSet<&str> = plan.blobs.iter().map(|(d, _)| d.as_str()).collect();
    plan.repositories = repositories
        .iter()
        .filter(|(ns, s)| {
            !live.contains(&(ns.clone(), s.clone())) && !young_repos.contains(&(ns, s))
        })
        .cloned()
        .collect();
    plan.repositories.sort();
    let dead: HashSet<&(String, String)> = plan.repositories.iter().collect();
    plan.links = links
        .iter()
        .filter(|l| !dead.contains(&(l.namespace.clone(), l.stream.clone())))
        .filter(|l| {
            removed.contains(l.digest.as_str())
                || (l.kind == LinkKind::Manifest && removed_images.contains(l.digest.as_str()))
        })
        .filter(|l| policy.is_old_file(l.modified))
        .cloned()
        .collect();
    plan.links.sort_by(|a, b| {
        (&a.namespace, &a.stream, a.kind.as_str(), a.digest.as_str()).cmp(&(
            &b.namespace,
            &b.stream,
            b.kind.as_str(),
            b.digest.as_str(),
        ))
    });
    plan
}

// ---------------------------------------------------------------------------------
// The prune (IO)
// ---------------------------------------------------------------------------------

fn ctx() -> RequestContext {
    RequestContext::default()
}

fn all() -> ListOptions {
    ListOptions::default()
}

/// Runs a prune as `spec` asks (`dry_run` also when the request asked for it in its
/// query): every step is planned the same way, and only applied when not a dry run.
pub async fn run(
    reg: &Registry,
    api: &ApiServer,
    spec: &ImagePruneSpec,
    dry_run: bool,
) -> Result<ImagePruneStatus, PruneError> {
    let started = jiff::Timestamp::now();
    let policy = Policy::new(spec, started);
    let mut status = ImagePruneStatus {
        dry_run,
        start_time: Some(Time(started)),
        ..Default::default()
    };
    tracing::info!(
        keep_tag_revisions = policy.keep_tag_revisions,
        cutoff = %policy.cutoff,
        dry_run,
        "prune: starting"
    );

    // 1. History.
    let pins = workload_pins_of(api).await?;
    let mut streams = list_streams(reg).await?;
    prune_histories(
        reg,
        &mut streams,
        spec,
        &policy,
        &pins,
        dry_run,
        &mut status,
    )
    .await;
    if spec.namespace.is_some() {
        status.warnings.push(
            "only image stream history was pruned: images and blobs are pruned without a namespace, since any namespace may use them"
                .into(),
        );
        status.completion_time = Some(Time(jiff::Timestamp::now()));
        return Ok(status);
    }

    // 2. Images, decided after the history change and with pushes held off.
    let _gc = if dry_run {
        None
    } else {
        Some(reg.gc.write().await)
    };
    if !dry_run {
        streams = list_streams(reg).await?;
    }
    let images = list_images(reg, &mut status).await?;
    let store = reg.blobs.clone();
    let (links, referrers, repositories) = blocking(move || {
        (
            store.list_links(),
            store.list_referrers(),
            store.list_repositories(),
        )
    })
    .await?;
    let young_manifests = links
        .iter()
        .filter(|l| l.kind == LinkKind::Manifest && !policy.is_old_file(l.modified))
        .map(|l| l.digest.to_string());
    let by_name: HashMap<&str, &Image> = images
        .iter()
        .filter_map(|i| Some((i.metadata.name.as_deref()?, i)))
        .collect();
    let referenced = referenced_images(
        &streams,
        &by_name,
        &referrers,
        reg.repos.registry_hostname(),
        young_manifests,
    );
    let plan = plan_images(&images, &referenced, &policy);
    let mut removed_images: HashSet<String> = HashSet::new();
    for name in &plan.remove {
        if dry_run || delete_image(reg, name, &mut status).await {
            removed_images.insert(name.clone());
        }
    }
    if !dry_run && !removed_images.is_empty() {
        restore_named_again(reg, &by_name, &referrers, &mut removed_images, &mut status).await?;
    }
    status.images = plan
        .remove
        .iter()
        .filter(|n| removed_images.contains(*n))
        .map(|n| PrunedImage {
            name: n.clone(),
            docker_image_reference: by_name
                .get(n.as_str())
                .map(|i| i.docker_image_reference.clone())
                .unwrap_or_default(),
        })
        .collect();

    // 3. Blobs, links and records of gone repositories.
    let live: HashSet<(String, String)> = streams
        .iter()
        .map(|s| {
            (
                s.metadata.namespace.clone().unwrap_or_default(),
                s.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect();
    let remaining: Vec<&Image> = images
        .iter()
        .filter(|i| {
            !i.metadata
                .name
                .as_ref()
                .is_some_and(|n| removed_images.contains(n))
        })
        .collect();
    let inputs = BlobPlanInputs {
        links,
        repositories,
        live,
        removed_images,
    };
    prune_blobs(reg, &remaining, inputs, &policy, dry_run, &mut status).await?;
    status.completion_time = Some(Time(jiff::Timestamp::now()));
    tracing::info!(
        dry_run,
        history_items = status.history_items.len(),
        images = status.images.len(),
        links = status.links.len(),
        blobs = status.blobs.len(),
        bytes = status.bytes_freed,
        errors = status.errors.len(),
        "prune: done"
    );
    Ok(status)
}

/// Step 1: prunes each stream's history (in `spec.namespace` only, when set); in a dry
/// run, `streams` are changed in memory only, for the later steps to plan on.
async fn prune_histories(
    reg: &Registry,
    streams: &mut [ImageStream],
    spec: &ImagePruneSpec,
    policy: &Policy,
    pins: &Pins,
    dry_run: bool,
    status: &mut ImagePruneStatus,
) {
    for stream in streams {
        let ns = stream.metadata.namespace.clone().unwrap_or_default();
        let name = stream.metadata.name.clone().unwrap_or_default();
        if spec.namespace.as_ref().is_some_and(|only| *only != ns) {
            continue;
        }
        let planned = prune_history(stream, policy, pins);
        if planned.is_empty() {
            continue;
        }
        let removed = if dry_run {
            planned
        } else {
            match write_history(reg, &ns, &name, policy, pins).await {
                Ok(removed) => removed,
                Err(e) => {
                    status.errors.push(format!(
                        "error updating image stream {ns}/{name} to remove history: {e}"
                    ));
                    Vec::new()
                }
            }
        };
        status
            .history_items
            .extend(removed.into_iter().map(|(tag, e)| PrunedTagEvent {
                namespace: ns.clone(),
                image_stream: name.clone(),
                tag,
                image: e.image,
                docker_image_reference: e.docker_image_reference,
                created: e.created,
            }));
    }
}

/// What step 3 plans on besides the blobs and remaining images.
struct BlobPlanInputs {
    links: Vec<Link>,
    repositories: Vec<(String, String)>,
    /// The streams that exist, as `(namespace, name)`.
    live: HashSet<(String, String)>,
    removed_images: HashSet<String>,
}

/// Step 3: plans and (unless a dry run) deletes blobs, links and repository records.
async fn prune_blobs(
    reg: &Registry,
    remaining: &[&Image],
    inputs: BlobPlanInputs,
    policy: &Policy,
    dry_run: bool,
    status: &mut ImagePruneStatus,
) -> Result<(), PruneError> {
    let store = reg.blobs.clone();
    let blobs = blocking(move || store.list_blobs()).await??;
    let plan = plan_blobs(
        &blobs,
        remaining.iter().copied(),
        &inputs.links,
        &inputs.repositories,
        &inputs.live,
        &inputs.removed_images,
        policy,
    );
    let applied = if dry_run {
        plan
    } else {
        let store = reg.blobs.clone();
        let p = policy.clone();
        let (applied, errors) = blocking(move || apply_blob_plan(&store, plan, &p)).await?;
        status.errors.extend(errors);
        applied
    };
    status.repositories = applied
        .repositories
        .iter()
        .map(|(ns, s)| format!("{ns}/{s}"))
        .collect();
    status.links = applied
        .links
        .iter()
        .map(|l| PrunedLink {
            repository: format!("{}/{}", l.namespace, l.stream),
            kind: l.kind.as_str().to_string(),
            digest: l.digest.to_string(),
        })
        .collect();
    status.bytes_freed = applied.blobs.iter().map(|(_, s)| s).sum();
    status.blobs = applied
        .blobs
        .into_iter()
        .map(|(d, size)| PrunedBlob {
            digest: d.to_string(),
            size,
        })
        .collect();
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PruneError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PruneError::Api(ApiError::internal(e)))
}

/// The pins of every workload the API server stores.
async fn workload_pins_of(api: &ApiServer) -> Result<Pins, PruneError> {
    let mut images: Vec<String> = Vec::new();
    for kind in WorkloadKind::ALL {
        let Some(storage) = api.storage(kind.group(), kind.version(), kind.plural()) else {
            continue;
        };
        for v in storage.list(&ctx(), None, &all()).await?.items {
            if let Ok(w) = Workload::from_value(kind, v) {
                images.extend(
                    w.containers()
                        .into_iter()
                        .filter_map(|(_, c)| c.image.clone()),
                );
            }
        }
    }
    Ok(workload_pins(images.iter().map(String::as_str)))
}

async fn list_streams(reg: &Registry) -> Result<Vec<ImageStream>, PruneError> {
    let list = reg
        .repos
        .importer()
        .streams
        .list(&ctx(), None, &all())
        .await?;
    list.items
        .into_iter()
        .map(|v| serde_json::from_value(v).map_err(|e| PruneError::Api(ApiError::internal(e))))
        .collect()
}

/// Every Image; one that does not decode is left alone (and reported).
async fn list_images(
    reg: &Registry,
    status: &mut ImagePruneStatus,
) -> Result<Vec<Image>, PruneError> {
    let list = reg
        .repos
        .importer()
        .images
        .list(&ctx(), None, &all())
        .await?;
    let mut out = Vec::new();
    for v in list.items {
        match serde_json::from_value::<Image>(v.clone()) {
            Ok(i) => out.push(i),
            Err(e) => status.warnings.push(format!(
                "keeping image {}: it does not decode: {e}",
                v.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            )),
        }
    }
    Ok(out)
}

/// Prunes the history of `ns/name` as it is now (a read-modify-write that retries on
/// conflicts); returns what it removed.
async fn write_history(
    reg: &Registry,
    ns: &str,
    name: &str,
    policy: &Policy,
    pins: &Pins,
) -> Result<Vec<(String, TagEvent)>, ApiError> {
    let removed = Mutex::new(Vec::new());
    let f = |cur: Option<Value>| -> Result<Value, ApiError> {
        let cur = cur.ok_or_else(|| crate::importer::stream_not_found(name))?;
        let mut stream: ImageStream = serde_json::from_value(cur).map_err(ApiError::internal)?;
        *removed.lock().unwrap_or_else(|p| p.into_inner()) =
            prune_history(&mut stream, policy, pins);
        Ok(unconditional(
            serde_json::to_value(&stream).map_err(ApiError::internal)?,
        ))
    };
    match reg
        .repos
        .importer()
        .streams
        .update(&ctx(), Some(ns), name, Some("status"), &f, false)
        .await
    {
        Ok(_) => Ok(removed.into_inner().unwrap_or_else(|p| p.into_inner())),
        Err(ApiError::NotFound { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Deletes Image `name`; whether it is gone.
async fn delete_image(reg: &Registry, name: &str, status: &mut ImagePruneStatus) -> bool {
    let r = reg
        .repos
        .importer()
        .images
        .delete(&ctx(), None, name, &Default::default())
        .await;
    reg.repos.forget_image(name);
    match r {
        Ok(_) | Err(ApiError::NotFound { .. }) => true,
        Err(e) => {
            status
                .errors
                .push(format!("error deleting image {name}: {e}"));
            false
        }
    }
}

/// Puts back the deleted Images that a stream names again (an import tagged one while
/// it was being deleted), so that no history names a missing Image.
async fn restore_named_again(
    reg: &Registry,
    by_name: &HashMap<&str, &Image>,
    referrers: &[ReferrerRecord],
    removed: &mut HashSet<String>,
    status: &mut ImagePruneStatus,
) -> Result<(), PruneError> {
    let streams = list_streams(reg).await?;
    let named = referenced_images(
        &streams,
        by_name,
        referrers,
        reg.repos.registry_hostname(),
        std::iter::empty(),
    );
    let again: Vec<String> = removed.intersection(&named).cloned().collect();
    for name in again {
        let Some(image) = by_name.get(name.as_str()) else {
            continue;
        };
        let mut image = (*image).clone();
        image.metadata.resource_version = None;
        image.metadata.uid = None;
        match reg.repos.importer().store_images(&[image]).await {
            Ok(()) => {
                removed.remove(&name);
                status.warnings.push(format!(
                    "image {name} was tagged while it was pruned: restored"
                ));
            }
            Err(e) => status.errors.push(format!(
                "error restoring image {name}, tagged while pruned: {e}"
            )),
        }
    }
    Ok(())
}

/// Deletes what `plan` says, checking each blob's age again just before; returns what
/// was deleted and the errors.
fn apply_blob_plan(store: &BlobStore, plan: BlobPlan, policy: &Policy) -> (BlobPlan, Vec<String>) {
    let mut done = BlobPlan::default();
    let mut errors = Vec::new();
    for (ns, stream) in plan.repositories {
        match store.remove_repository(&ns, &stream) {
            Ok(()) => done.repositories.push((ns, stream)),
            Err(e) => errors.push(format!("error removing repository {ns}/{stream}: {e}")),
        }
    }
    for l in plan.links {
        if l.kind == LinkKind::Manifest {
            store.remove_referrer(&l.namespace, &l.stream, &l.digest);
        }
        match store.unlink(&l.namespace, &l.stream, l.kind, &l.digest) {
            Ok(true) => done.links.push(l),
            Ok(false) => {}
            Err(e) => errors.push(format!(
                "error deleting {} link {} in repository {}/{}: {e}",
                l.kind.as_str(),
                l.digest,
                l.namespace,
                l.stream
            )),
        }
    }
    for (digest, size) in plan.blobs {
        let modified = std::fs::metadata(store.blob_path(&digest)).and_then(|m| m.modified());
        if modified.is_ok_and(|t| !policy.is_old_file(t)) {
            continue; // written again since it was planned
        }
        match store.remove_blob(&digest) {
            Ok(true) => done.blobs.push((digest, size)),
            Ok(false) => {}
            Err(e) => errors.push(format!("error deleting blob {digest}: {e}")),
        }
    }
    (done, errors)
}

// ---------------------------------------------------------------------------------
// The endpoint
// ---------------------------------------------------------------------------------

/// `POST /apis/moor.io/v1/imageprunes` over the API server and the registry. The
/// caller applies authentication.
pub fn router(api: Arc<ApiServer>, registry: Arc<Registry>) -> Router {
    Router::new()
        .route(
            moor_api::prune::PATH,
            axum::routing::post(create).fallback(|| async { ApiError::MethodNotAllowed }),
        )
        .with_state((api, registry))
}

/// Whether the query asks for a dry run as Kubernetes spells it (`dryRun=All`).
fn query_dry_run(uri: &Uri) -> bool {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .any(|(k, v)| k == "dryRun" && v == "All")
}

async fn create(
    State((api, reg)): State<(Arc<ApiServer>, Arc<Registry>)>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let mut prune: ImagePrune = if body.iter().all(u8::is_ascii_whitespace) {
        ImagePrune::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(p) => p,
            Err(e) => {
                return ApiError::from(PruneError::BadRequest(format!(
                    "the request is not an ImagePrune: {e}"
                )))
                .into_response();
            }
        }
    };
    let dry_run = prune.spec.dry_run || query_dry_run(&uri);
    match run(&reg, &api, &prune.spec, dry_run).await {
        Ok(status) => {
            prune.status = Some(status);
            (StatusCode::CREATED, axum::Json(prune)).into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use moor_api::image::{
        DockerImageMetadata, ImageLayer, ImageManifest, NamedTagEventList, TagReference,
    };

    const NOW: i64 = 1_800_000_000;

    fn at(secs_ago: i64) -> Time {
        Time(jiff::Timestamp::from_second(NOW - secs_ago).unwrap())
    }

    fn policy(revisions: usize, keep_younger_secs: u64) -> Policy {
        Policy::new(
            &ImagePruneSpec {
                keep_tag_revisions: Some(revisions as u32),
                keep_younger_than: Some(Duration::from_secs(keep_younger_secs)),
                ..Default::default()
            },
            jiff::Timestamp::from_second(NOW).unwrap(),
        )
    }

    fn digest(n: u8) -> String {
        Digest::sha256_of(&[n]).to_string()
    }

    fn event(n: u8, secs_ago: i64) -> TagEvent {
        TagEvent {
            created: Some(at(secs_ago)),
            image: digest(n),
            docker_image_reference: format!("quay.io/a/b@{}", digest(n)),
            ..Default::default()
        }
    }

    fn stream(ns: &str, name: &str, tags: Vec<(&str, Vec<TagEvent>)>) -> ImageStream {
        let mut s = ImageStream {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                creation_timestamp: Some(at(100_000)),
                ..Default::default()
            },
            ..Default::default()
        };
        s.status.tags = tags
            .into_iter()
            .map(|(t, items)| NamedTagEventList {
                tag: t.into(),
                items,
                conditions: vec![],
            })
            .collect();
        s
    }

    fn image(n: u8, secs_ago: i64, layers: &[u8]) -> Image {
        Image {
            metadata: ObjectMeta {
                name: Some(digest(n)),
                creation_timestamp: Some(at(secs_ago)),
                ..Default::default()
            },
            docker_image_metadata: Some(DockerImageMetadata {
                id: digest(100 + n),
                ..Default::default()
            }),
            docker_image_layers: layers
                .iter()
                .map(|l| ImageLayer {
                    name: digest(200 + l),
                    size: 10,
                    media_type: String::new(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn images_of(s: &ImageStream) -> Vec<&str> {
        s.status.tags[0]
            .items
            .iter()
            .map(|e| e.image.as_str())
            .collect()
    }

    #[test]
    fn history_keeps_revisions_young_entries_and_the_newest() {
        let items = vec![
            event(1, 7200),
            event(2, 7200),
            event(3, 60), // young
            event(4, 7200),
            event(5, 7200),
        ];
        let mut s = stream("ns", "app", vec![("1.0", items)]);
        let removed = prune_history(&mut s, &policy(2, 3600), &Pins::new());
        assert_eq!(images_of(&s), [digest(1), digest(2), digest(3)]);
        let gone: Vec<String> = removed.iter().map(|(_, e)| e.image.clone()).collect();
        assert_eq!(gone, [digest(4), digest(5)]);
        assert!(removed.iter().all(|(t, _)| t == "1.0"));
    }

    #[test]
    fn the_newest_entry_stays_even_with_zero_revisions() {
        let mut s = stream(
            "ns",
            "app",
            vec![("t", vec![event(1, 9000), event(2, 9000)])],
        );
        let removed = prune_history(&mut s, &policy(0, 0), &Pins::new());
        assert_eq!(images_of(&s), [digest(1)]);
        assert_eq!(removed.len(), 1);
    }

    #[test]
    fn pinned_entries_and_young_streams_are_kept() {
        let items = vec![event(1, 9000), event(2, 9000), event(3, 9000)];
        let mut s = stream("ns", "app", vec![("t", items.clone())]);
        let pins = workload_pins([
            format!("moor.local:8443/ns/app@{}", digest(3)).as_str(),
            format!("moor.local:8443/other/app@{}", digest(2)).as_str(),
            "keycloak:20.0",
            "not a reference",
        ]);
        assert_eq!(pins.len(), 2);
        prune_history(&mut s, &policy(1, 0), &pins);
        assert_eq!(images_of(&s), [digest(1), digest(3)]);

        let mut young = stream("ns", "app", vec![("t", items)]);
        young.metadata.creation_timestamp = Some(at(10));
        assert!(prune_history(&mut young, &policy(1, 3600), &Pins::new()).is_empty());
    }

    #[test]
    fn one_second_of_doubt_counts_as_young() {
        let p = policy(1, 0);
        assert!(!p.is_old(Some(&at(0))));
        assert!(!p.is_old(Some(&at(1))));
        assert!(p.is_old(Some(&at(2))));
        assert!(p.is_old(None));
    }

    fn by_name(images: &[Image]) -> HashMap<&str, &Image> {
        images
            .iter()
            .map(|i| (i.metadata.name.as_deref().unwrap(), i))
            .collect()
    }

    #[test]
    fn images_named_by_history_spec_tags_lists_and_referrers_are_kept() {
        let mut list = image(10, 9000, &[]);
        list.docker_image_manifests = vec![ImageManifest {
            digest: digest(11),
            ..Default::default()
        }];
        let images = vec![
            image(1, 9000, &[1]), // in history
            image(2, 9000, &[2]), // unreferenced, old: removed
            image(3, 10, &[3]),   // unreferenced, young: kept
            list,                 // in history
            image(11, 9000, &[]), // child of the list
            image(4, 9000, &[]),  // spec tag ImageStreamImage
            image(5, 9000, &[]),  // spec tag DockerImage of this registry
            image(6, 9000, &[]),  // spec tag DockerImage elsewhere: removed
            image(7, 9000, &[]),  // referrer of image 1
            image(8, 9000, &[]),  // a root (pushed lately)
        ];
        let mut s = stream(
            "ns",
            "app",
            vec![("a", vec![event(1, 9000), event(10, 9000)])],
        );
        let from = |kind: &str, name: String| TagReference {
            name: "x".into(),
            from: Some(ObjectReference {
                kind: Some(kind.into()),
                name: Some(name),
                ..Default::default()
            }),
            ..Default::default()
        };
        s.spec.tags = vec![
            from(KIND_IMAGE_STREAM_IMAGE, format!("other@{}", digest(4))),
            from(
                KIND_DOCKER_IMAGE,
                format!("moor.local:8443/ns/app@{}", digest(5)),
            ),
            from(KIND_DOCKER_IMAGE, format!("quay.io/ns/app@{}", digest(6))),
        ];
        let referrers = vec![ReferrerRecord {
            namespace: "ns".into(),
            stream: "app".into(),
            subject: Digest::parse(&digest(1)).unwrap(),
            manifest: Digest::parse(&digest(7)).unwrap(),
        }];
        let referenced = referenced_images(
            [&s],
            &by_name(&images),
            &referrers,
            "moor.local:8443",
            [digest(8)],
        );
        let plan = plan_images(&images, &referenced, &policy(1, 3600));
        let mut expected = vec![digest(2), digest(6)];
        expected.sort();
        assert_eq!(plan.remove, expected);
        assert_eq!(plan.young, 1);
    }

    fn link(stream: &str, kind: LinkKind, d: &str, modified: SystemTime) -> Link {
        Link {
            namespace: "ns".into(),
            stream: stream.into(),
            kind,
            digest: Digest::parse(d).unwrap(),
            modified,
        }
    }

    #[test]
    fn blobs_of_remaining_images_and_young_blobs_and_links_are_kept() {
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW as u64 - 9000);
        let young = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW as u64 - 10);
        // Image 1 stays; image 2 (layers 2 and 3, layer 2 shared) was removed.
        let kept = image(1, 9000, &[1, 2]);
        let blob = |d: String, t: SystemTime| (Digest::parse(&d).unwrap(), 10u64, t);
        let blobs = vec![
            blob(digest(1), old),   // manifest of kept
            blob(digest(101), old), // config of kept
            blob(digest(201), old),
            blob(digest(202), old),  // shared layer
            blob(digest(2), old),    // manifest of removed
            blob(digest(102), old),  // config of removed
            blob(digest(203), old),  // layer of removed
            blob(digest(50), young), // written lately
            blob(digest(51), old),   // linked lately
            blob(digest(52), old),   // only in a gone repository
        ];
        let links = vec![
            link("app", LinkKind::Layer, &digest(203), old),
            link("app", LinkKind::Layer, &digest(202), old),
            link("app", LinkKind::Manifest, &digest(2), old),
            link("app", LinkKind::Layer, &digest(51), young),
            link("gone", LinkKind::Layer, &digest(52), old),
        ];
        let repos = vec![
            ("ns".to_string(), "app".to_string()),
            ("ns".into(), "gone".into()),
        ];
        let live: HashSet<(String, String)> = [("ns".to_string(), "app".to_string())].into();
        let removed_images: HashSet<String> = [digest(2)].into();
        let plan = plan_blobs(
            &blobs,
            [&kept],
            &links,
            &repos,
            &live,
            &removed_images,
            &policy(1, 3600),
        );
        let mut expected: Vec<String> = vec![digest(2), digest(102), digest(203), digest(52)];
        expected.sort();
        let got: Vec<String> = plan.blobs.iter().map(|(d, _)| d.to_string()).collect();
        assert_eq!(got, expected);
        assert_eq!(plan.repositories, [("ns".to_string(), "gone".to_string())]);
        let unlinked: Vec<(&str, String)> = plan
            .links
            .iter()
            .map(|l| (l.kind.as_str(), l.digest.to_string()))
            .collect();
        assert_eq!(unlinked, [("layer", digest(203)), ("manifest", digest(2))]);
    }

    #[test]
    fn a_gone_repository_with_a_young_link_stays() {
        let young = SystemTime::now();
        let links = vec![link("new", LinkKind::Layer, &digest(1), young)];
        let plan = plan_blobs(
            &[],
            std::iter::empty(),
            &links,
            &[("ns".into(), "new".into())],
            &HashSet::new(),
            &HashSet::new(),
            &Policy::new(&ImagePruneSpec::default(), jiff::Timestamp::now()),
        );
        assert!(plan.repositories.is_empty());
    }

    #[test]
    fn a_blob_written_again_after_planning_stays() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let (fresh, stale) = (Digest::sha256_of(b"fresh"), Digest::sha256_of(b"stale"));
        store.put(&fresh, b"fresh").unwrap();
        store.put(&stale, b"stale").unwrap();
        store.link("ns", "app", LinkKind::Layer, &stale).unwrap();
        let plan = BlobPlan {
            blobs: vec![(fresh.clone(), 5), (stale.clone(), 5)],
            links: store.list_links(),
            repositories: vec![],
        };
        // The prune started a minute ago; `stale` is made to look older than that.
        let policy = Policy::new(
            &ImagePruneSpec {
                keep_younger_than: Some(Duration::ZERO),
                ..Default::default()
            },
            jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60),
        );
        let old = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(store.blob_path(&stale))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let (done, errors) = apply_blob_plan(&store, plan, &policy);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(done.blobs, [(stale.clone(), 5)]);
        assert_eq!(done.links.len(), 1);
        assert!(store.blob_path(&fresh).exists(), "written after the start");
        assert!(!store.blob_path(&stale).exists());
        assert!(!store.is_linked("ns", "app", LinkKind::Layer, &stale));
    }

    #[test]
    fn the_query_may_ask_for_a_dry_run() {
        assert!(query_dry_run(&"/x?dryRun=All".parse().unwrap()));
        assert!(!query_dry_run(&"/x".parse().unwrap()));
    }
}
