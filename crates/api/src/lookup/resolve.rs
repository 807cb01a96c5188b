//! The resolver: which images of a pod spec are short names of image stream tags, and
//! what they become. One pure function used by the API server (on create and update of
//! workloads), the admission webhook and `moor resolve`; it reads only the streams it is
//! given and never calls a registry. Rules follow OpenShift's ImagePolicy plugin.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;

use super::workload::{ContainerRef, Workload, WorkloadKind};
use crate::image::history::{import_failure, resolve_tag_reference};
use crate::image::{
    DEFAULT_IMAGE_TAG, ImageStream, RESOLVE_NAMES_ANNOTATION, TagReferencePolicyType,
};
use crate::{Digest, DockerImageReference};

/// The image streams of one namespace, by name, as the resolver reads them.
pub trait StreamSource {
    /// The stream named `name`, if it exists.
    fn stream(&self, name: &str) -> Option<&ImageStream>;
}

impl<S: BuildHasher> StreamSource for HashMap<String, ImageStream, S> {
    fn stream(&self, name: &str) -> Option<&ImageStream> {
        self.get(name)
    }
}

impl<S: BuildHasher> StreamSource for HashMap<String, std::sync::Arc<ImageStream>, S> {
    fn stream(&self, name: &str) -> Option<&ImageStream> {
        self.get(name).map(|s| s.as_ref())
    }
}

impl StreamSource for BTreeMap<String, ImageStream> {
    fn stream(&self, name: &str) -> Option<&ImageStream> {
        self.get(name)
    }
}

/// Why an image was left as it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// It names a registry or a namespace: not a short name.
    NotShortName,
    /// It does not parse as an image reference.
    Unparsable(String),
    /// No image stream of that name exists in the namespace.
    NoStream,
    /// The stream exists, but neither it (`lookupPolicy.local`) nor the object (the
    /// `resolve-names` annotation) asks for lookup.
    LookupOff,
}

/// What one image resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Left alone.
    Skipped(Skip),
    /// Rewritten to this pull spec.
    Resolved(String),
    /// The stream asks for lookup but has no usable image: refuse (fail closed).
    Failed(String),
}

/// The pull spec a tag resolves to now, under its reference policy, pinned to the
/// image's digest when it has one; `None` when the tag has no usable image.
pub fn tag_pull_spec(stream: &ImageStream, tag: &str) -> Option<String> {
    let event = stream.latest_tagged_image(tag)?;
    if event.docker_image_reference.is_empty() {
        return None;
    }
    let spec = resolve_tag_reference(stream, tag)?;
    Some(pin(&spec, &event.image))
}

/// `spec` without its tag and with `image` as its digest, when `image` is a digest.
fn pin(spec: &str, image: &str) -> String {
    match (DockerImageReference::parse(spec), Digest::parse(image)) {
        (Ok(r), Ok(d)) => r.without_tag().with_id(d).exact(),
        _ => spec.to_string(),
    }
}

/// The pull spec of image `id` from the stream's history (any tag), under the reference
/// policy of the tag that has it.
fn image_pull_spec(stream: &ImageStream, id: &Digest) -> Option<String> {
    for list in &stream.status.tags {
        let Some(event) = list.items.iter().find(|e| e.image == id.as_str()) else {
            continue;
        };
        let local = stream
            .spec_tag(&list.tag)
            .and_then(|t| t.reference_policy.type_.as_ref())
            .is_some_and(|p| *p == TagReferencePolicyType::Local);
        if local && let Ok(r) = DockerImageReference::parse(&stream.status.docker_image_repository)
        {
            return Some(r.without_tag().with_id(id.clone()).exact());
        }
        if !event.docker_image_reference.is_empty() {
            return Some(pin(&event.docker_image_reference, id.as_str()));
        }
    }
    None
}

/// Resolves one image of a workload in `namespace`. `resolve_all` is set when the
/// workload carries the `resolve-names: "*"` annotation.
pub fn resolve_image(
    image: &str,
    namespace: &str,
    streams: &impl StreamSource,
    resolve_all: bool,
) -> Lookup {
    // A short name has no `/` (no registry, no namespace): skip the full parse.
    if image.contains('/') {
        return Lookup::Skipped(Skip::NotShortName);
    }
    let r = match DockerImageReference::parse(image) {
        Ok(r) => r,
        Err(e) => return Lookup::Skipped(Skip::Unparsable(e.to_string())),
    };
    if !r.is_short_name() {
        return Lookup::Skipped(Skip::NotShortName);
    }
    let name = r.name();
    let Some(stream) = streams.stream(name) else {
        return Lookup::Skipped(Skip::NoStream);
    };
    if !(stream.spec.lookup_policy.local || resolve_all) {
        return Lookup::Skipped(Skip::LookupOff);
    }
    if let Some(id) = r.id() {
        return match image_pull_spec(stream, id) {
            Some(spec) => Lookup::Resolved(spec),
            None => Lookup::Failed(format!(
                "image stream {namespace}/{name} has no image {id} in its history"
            )),
        };
    }
    let tag = r.tag().unwrap_or(DEFAULT_IMAGE_TAG);
    if let Some(spec) = tag_pull_spec(stream, tag) {
        return Lookup::Resolved(spec);
    }
    if stream.spec_tag(tag).is_some() || stream.status_tag(tag).is_some() {
        let why = match import_failure(stream, tag) {
            Some(c) => format!(
                "has no image: its import failed ({}): {}",
                c.reason, c.message
            ),
            None => "has no image yet (its import has not finished)".to_string(),
        };
        return Lookup::Failed(format!("image stream tag {namespace}/{name}:{tag} {why}"));
    }
    // The stream exists but the tag does not: point at the stream's own repository, so
    // the pull never goes to the name's original location (as OpenShift does).
    match DockerImageReference::parse(&stream.status.docker_image_repository) {
        Ok(repo) => match repo.without_id().with_tag(tag) {
            Ok(r) => Lookup::Resolved(r.exact()),
            Err(_) => Lookup::Skipped(Skip::NoStream),
        },
        Err(_) => Lookup::Skipped(Skip::NoStream),
    }
}

/// One image rewritten by the resolver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrite {
    /// The container whose image changed.
    pub container: ContainerRef,
    /// Its dotted path (`spec.template.spec.containers[0].image`).
    pub field: String,
    /// Its JSON pointer (`/spec/template/spec/containers/0/image`).
    pub pointer: String,
    /// The image before.
    pub from: String,
    /// The image after.
    pub to: String,
}

/// A short name that did not resolve, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolved {
    /// The container.
    pub container: ContainerRef,
    /// Its dotted path.
    pub field: String,
    /// The image as written.
    pub image: String,
    /// Why.
    pub message: String,
}

/// What the resolver did to one workload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Images rewritten (already applied to the workload).
    pub rewrites: Vec<Rewrite>,
    /// Short names of streams that ask for lookup but have no usable image: the write
    /// must be refused.
    pub failures: Vec<Unresolved>,
    /// Short names left alone (no such stream, lookup off), for `moor resolve --strict`.
    pub unresolved: Vec<Unresolved>,
    /// Why the workload was not looked at, when it was not.
    pub skipped: Option<&'static str>,
}

/// Whether the workload asks for every short name to be resolved
/// (`alpha.image.policy.openshift.io/resolve-names: "*"` on it or on its template).
pub fn resolves_all_names(w: &Workload) -> bool {
    w.template_annotation(RESOLVE_NAMES_ANNOTATION) == Some("*")
        || w.annotation(RESOLVE_NAMES_ANNOTATION) == Some("*")
}

/// The stream names the short-name images of `w` could refer to (what the resolver
/// will ask `streams` for).
pub fn candidate_streams(w: &Workload) -> BTreeSet<String> {
    w.containers()
        .into_iter()
        .filter_map(|(_, c)| c.image.as_deref())
        .filter(|i| !i.contains('/'))
        .filter_map(|i| DockerImageReference::parse(i).ok())
        .filter(|r| r.is_short_name())
        .map(|r| r.name().to_string())
        .collect()
}

/// Resolves the images of `w` (in `namespace`) in place and reports what it did.
///
/// Left alone: objects with a controller owner, Job updates (their template is
/// immutable), and on update every container whose image is the same as in `old`
/// (unless the resolve-names annotation changed), as OpenShift does.
pub fn resolve_workload(
    w: &mut Workload,
    old: Option<&Workload>,
    namespace: &str,
    streams: &impl StreamSource,
) -> Resolution {
    let mut out = Resolution::default();
    if w.has_controller_owner() {
        out.skipped = Some("it has a controller owner");
        return out;
    }
    if old.is_some() && w.kind() == WorkloadKind::Job {
        out.skipped = Some("the pod template of a Job cannot change");
        return out;
    }
    let resolve_all = resolves_all_names(w);
    let annotation_changed = old.is_none_or(|o| {
        o.template_annotation(RESOLVE_NAMES_ANNOTATION)
            != w.template_annotation(RESOLVE_NAMES_ANNOTATION)
            || o.annotation(RESOLVE_NAMES_ANNOTATION) != w.annotation(RESOLVE_NAMES_ANNOTATION)
    });
    let kind = w.kind();
    let targets: Vec<(ContainerRef, String)> = w
        .containers()
        .into_iter()
        .filter_map(|(r, c)| Some((r, c.image.clone().filter(|i| !i.is_empty())?)))
        .collect();
    for (r, image) in targets {
        if !annotation_changed
            && let Some(o) = old
            && o.image_of(&r.name) == Some(image.as_str())
        {
            continue;
        }
        let field = r.image_field(kind);
        match resolve_image(&image, namespace, streams, resolve_all) {
            Lookup::Resolved(to) => {
                if to != image
                    && let Some(c) = w.container_mut(&r)
                {
                    c.image = Some(to.clone());
                    out.rewrites.push(Rewrite {
                        pointer: r.image_pointer(kind),
                        container: r,
                        field,
                        from: image,
                        to,
                    });
                }
            }
            Lookup::Failed(message) => out.failures.push(Unresolved {
                container: r,
                field,
                image,
                message,
            }),
            Lookup::Skipped(skip) => {
                let name = DockerImageReference::parse(&image)
                    .map(|r| r.name().to_string())
                    .unwrap_or_default();
                let message = match skip {
                    Skip::NotShortName | Skip::Unparsable(_) => continue,
                    Skip::NoStream => {
                        format!("no image stream {name:?} in namespace {namespace:?}")
                    }
                    Skip::LookupOff => format!(
                        "image stream {namespace}/{name} does not resolve local names (moor set image-lookup {name})"
                    ),
                };
                out.unresolved.push(Unresolved {
                    container: r,
                    field,
                    image,
                    message,
                });
            }
        }
    }
    out
}
