//! The prune (IO): reads the streams, images, workloads, the repositories' links and
//! the blobs (files, or the bucket with `--blob-store s3://`), then deletes what the
//! plans say, in order.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use moor_api::image::{Image, ImageStream, TagEvent};
use moor_api::lookup::{Workload, WorkloadKind};
use moor_api::prune::{
    ImagePruneSpec, ImagePruneStatus, PrunedBlob, PrunedImage, PrunedLink, PrunedTagEvent,
};

use super::PruneError;
use super::plan::{
    BlobPlan, Pins, Policy, plan_blobs, plan_images, prune_history, referenced_images,
    workload_pins,
};
use crate::catalog::StreamPart;
use crate::registry::Registry;
use crate::registry::driver::BlobDriver;
use crate::registry::driver::file::FileBlobs;
use crate::registry::links::Links;
use crate::registry::storage::{Link, LinkKind, ReferrerRecord};
use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::{ListOptions, RequestContext, RestStorage};

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
    workloads: &[(WorkloadKind, Arc<dyn RestStorage>)],
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
    let pins = workload_pins_of(workloads).await?;
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
    let records = reg.links.list().await?;
    let (links, referrers, repositories) = (records.links, records.referrers, records.repositories);
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
    let content = content_of(reg);
    let blobs = content.list_dated().await?;
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
        let (applied, errors) = apply_blob_plan(&reg.links, &*content, plan, policy).await;
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

/// Where the registry's blobs live: the bucket (`--blob-store s3://`) or its files.
fn content_of(reg: &Registry) -> Arc<dyn BlobDriver> {
    match &reg.remote {
        Some(remote) => remote.clone(),
        None => Arc::new(FileBlobs::new(reg.blobs.clone())),
    }
}

/// The pins of every workload in `storages`.
async fn workload_pins_of(
    storages: &[(WorkloadKind, Arc<dyn RestStorage>)],
) -> Result<Pins, PruneError> {
    let mut images: Vec<String> = Vec::new();
    for &(kind, ref storage) in storages {
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

/// Every stream; one that does not decode stops the prune (what it names is unknown).
async fn list_streams(reg: &Registry) -> Result<Vec<ImageStream>, PruneError> {
    let list = reg.repos.catalog().list_streams().await?;
    if let Some(bad) = list.undecodable.first() {
        return Err(PruneError::Api(ApiError::internal_message(format!(
            "image stream {bad} does not decode; nothing was pruned"
        ))));
    }
    Ok(list.streams)
}

/// Every Image; one that does not decode is left alone (and reported).
async fn list_images(
    reg: &Registry,
    status: &mut ImagePruneStatus,
) -> Result<Vec<Image>, PruneError> {
    let list = reg.repos.catalog().list_images().await?;
    for (name, e) in list.undecodable {
        status
            .warnings
            .push(format!("keeping image {name}: it does not decode: {e}"));
    }
    Ok(list.images)
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
    let f = |stream: &mut ImageStream| {
        *removed.lock().unwrap_or_else(|p| p.into_inner()) = prune_history(stream, policy, pins);
        Ok(())
    };
    let found = reg
        .repos
        .catalog()
        .modify_stream(ns, name, StreamPart::Status, &f)
        .await?;
    if !found {
        return Ok(Vec::new());
    }
    Ok(removed.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// Deletes Image `name`; whether it is gone.
async fn delete_image(reg: &Registry, name: &str, status: &mut ImagePruneStatus) -> bool {
    let r = reg.repos.catalog().delete_image(name).await;
    reg.repos.forget_image(name);
    match r {
        Ok(()) => true,
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
        match reg.repos.catalog().store_images(&[image]).await {
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
/// was deleted and the errors. With links in the shared store (other replicas push
/// without this replica's `gc` lock), the links are read again before the blobs go,
/// and a blob linked since the plan (a young link) stays.
pub(super) async fn apply_blob_plan(
    links: &Links,
    content: &dyn BlobDriver,
    plan: BlobPlan,
    policy: &Policy,
) -> (BlobPlan, Vec<String>) {
    let mut done = BlobPlan::default();
    let mut errors = Vec::new();
    for (ns, stream) in plan.repositories {
        match links.remove_repository(&ns, &stream).await {
            Ok(()) => done.repositories.push((ns, stream)),
            Err(e) => errors.push(format!("error removing repository {ns}/{stream}: {e}")),
        }
    }
    for l in plan.links {
        if l.kind == LinkKind::Manifest
            && let Err(e) = links
                .remove_referrer(&l.namespace, &l.stream, &l.digest)
                .await
        {
            errors.push(format!(
                "error deleting the referrer {} in repository {}/{}: {e}",
                l.digest, l.namespace, l.stream
            ));
            continue;
        }
        match links
            .unlink(&l.namespace, &l.stream, l.kind, &l.digest)
            .await
        {
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
    let linked_since: HashSet<String> = if links.is_shared() && !plan.blobs.is_empty() {
        match links.list().await {
            Ok(records) => records
                .links
                .into_iter()
                .filter(|l| !policy.is_old_file(l.modified))
                .map(|l| l.digest.to_string())
                .collect(),
            Err(e) => {
                errors.push(format!(
                    "error reading the repositories' links again; no blob was deleted: {e}"
                ));
                return (done, errors);
            }
        }
    } else {
        HashSet::new()
    };
    for (digest, size) in plan.blobs {
        if linked_since.contains(digest.as_str()) {
            continue; // pushed into a repository since it was planned
        }
        match content.modified(&digest).await {
            Ok(Some(t)) if !policy.is_old_file(t) => continue, // written again since
            Ok(_) => {}
            Err(e) => {
                errors.push(format!("error reading blob {digest}: {e}"));
                continue;
            }
        }
        match content.delete(&digest).await {
            Ok(true) => done.blobs.push((digest, size)),
            Ok(false) => {}
            Err(e) => errors.push(format!("error deleting blob {digest}: {e}")),
        }
    }
    (done, errors)
}
