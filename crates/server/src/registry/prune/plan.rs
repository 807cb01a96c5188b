//! Planning a prune, IO-free: what history, which Images and which blobs and links go.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use moor_api::image::{Image, ImageStream, KIND_DOCKER_IMAGE, KIND_IMAGE_STREAM_IMAGE, TagEvent};
use moor_api::prune::ImagePruneSpec;
use moor_api::{Digest, DockerImageReference};

use crate::registry::storage::{Link, LinkKind, ReferrerRecord};

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
