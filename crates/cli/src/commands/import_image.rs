//! `moor import-image IMAGESTREAM[:TAG]`: builds an `ImageStreamImport` as oc does
//! (one tag, every registry tag of the stream, or a whole repository with `--all`),
//! sends it, and prints the result as oc does: the imported stream's description, one
//! image description per imported tag, per-tag errors on stderr, and the tags a capped
//! repository import left out. Exits 1 when any image failed.

use std::collections::BTreeMap;

use clap::Args;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{LocalObjectReference, ObjectReference};
use kube::Api;
use kube::api::PostParams;
use moor_api::DockerImageReference;
use moor_api::image::{
    DEFAULT_IMAGE_TAG, INSECURE_REPOSITORY_ANNOTATION, ImageImportSpec, ImageStream,
    ImageStreamImport, ImportMode, KIND_DOCKER_IMAGE, KIND_IMAGE_STREAM_TAG, RepositoryImportSpec,
    TagImportPolicy, TagReference, TagReferencePolicy, join_image_stream_tag,
    split_image_stream_tag, status,
};

use super::{emit, note};
use crate::cli::{ReferencePolicy, parse_import_mode, parse_reference_policy};
use crate::client::Session;
use crate::error::CliError;
use crate::resources::IMAGE_STREAMS;
use crate::tagging::{FIELD_MANAGER, api_status, retry_on_conflict, set_spec_tag};
use moor_api::image::follow::is_followed;
use moor_api::image::{ConditionStatus, TagEventConditionType};

pub(crate) const IMPORT_IMAGE_EXAMPLES: &str = "\
Prints the imported stream and each imported image as `moor describe` does; a tag that
could not be imported is reported on stderr and makes the command exit with status 1.

Examples:
  # Import a registry image into a new stream as keycloak:latest
  moor import-image keycloak --from quay.io/keycloak/keycloak:20.0.2 --confirm

  # Import it as keycloak:20.0
  moor import-image keycloak:20.0 --from quay.io/keycloak/keycloak:20.0.2 --confirm

  # Import again whatever the registry now has for an existing tag
  moor import-image keycloak:20.0

  # Import every registry tag of an existing stream
  moor import-image keycloak --all

  # Import all tags of a repository into a new stream
  moor import-image keycloak --from quay.io/keycloak/keycloak --all --confirm

  # Look at what would be imported without changing anything
  moor import-image keycloak:20.0 --from quay.io/keycloak/keycloak:20.0.3 --dry-run";

/// Flags of `moor import-image`.
#[derive(Debug, Args)]
pub struct ImportImageArgs {
    /// The image stream, and the tag to import [default tag: latest, unless --all]
    #[arg(value_name = "IMAGESTREAM[:TAG]")]
    pub target: String,

    /// A container image repository (or pull spec) to import images from
    #[arg(long, value_name = "PULLSPEC")]
    pub from: Option<String>,

    /// Allow the stream to be created, or its import location to be set or changed
    #[arg(long)]
    pub confirm: bool,

    /// Import all tags of the source repository (on creation, or with --from)
    #[arg(long)]
    pub all: bool,

    /// Fetch information about the images without creating or changing the stream
    #[arg(long)]
    pub dry_run: bool,

    /// Import each image periodically from now on
    #[arg(long)]
    pub scheduled: bool,

    /// Allow registries served over HTTP or with invalid certificates (overrides the stream's insecure annotation)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub insecure: Option<bool>,

    /// How pull specs of the imported images are written: source or local [default: the tag's, else source; local with --mirror]
    #[arg(long, value_name = "POLICY", value_parser = parse_reference_policy)]
    pub reference_policy: Option<ReferencePolicy>,

    /// How a manifest list is imported: Legacy (one platform) or PreserveOriginal (the whole list)
    #[arg(long, value_name = "MODE", value_parser = parse_import_mode)]
    pub import_mode: Option<ImportMode>,

    /// After importing, copy every layer into moor's registry now (with a progress bar), so the image pulls when the source is offline
    #[arg(long, conflicts_with = "dry_run")]
    pub mirror: bool,
}

/// Why an import cannot be asked for, in oc's words.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportImageError {
    /// A followed tag's import did not finish in time.
    #[error("the import of followed tag {0:?} did not finish within {1} s")]
    FollowTimeout(String, u64),
    /// The argument is not a stream name or pull spec.
    #[error(
        "the image name must be a valid container image pull spec or reference to an image stream (e.g. myregistry/myteam/image:tag)"
    )]
    InvalidTarget,
    /// `stream@digest`.
    #[error("to import images by ID, use the 'tag' command")]
    ById,
    /// `stream:tag --all`.
    #[error("cannot specify a tag {0:?} as well as --all")]
    TagWithAll(String),
    /// The stream does not exist and `--confirm` is missing.
    #[error("no image stream named {0:?} exists, pass --confirm to create and import")]
    NoStream(String),
    /// `--all` on a stream with nothing to import.
    #[error("image stream does not have tags pointing to external container images")]
    NothingToImport,
    /// `--all --from` on a stream that does not import a repository.
    #[error(
        "the image stream does not currently import an entire Docker repository, pass --confirm to update"
    )]
    NotARepository,
    /// `--all --from` that changes the repository.
    #[error("the image stream has a different import spec {0:?}, pass --confirm to update")]
    DifferentRepository(String),
    /// A tag that aliases a tag that does not parse.
    #[error("tag {0:?} points to an invalid imagestreamtag")]
    InvalidReference(String),
    /// A tag that aliases a tag of another stream.
    #[error("tag {0:?} points to an imagestreamtag from another ImageStream")]
    CrossStreamReference(String),
    /// A tag that aliases itself.
    #[error("tag {0:?} on the image stream is a reference to same tag")]
    CircularReference(String),
    /// A new tag without `--from`.
    #[error(
        "the tag {0:?} does not exist on the image stream - choose an existing tag to import or use the 'tag' command to create a new tag"
    )]
    NoSuchTag(String),
    /// A tag whose source is not a registry.
    #[error("tag {tag:?} points to existing {kind} {name:?}, it cannot be re-imported")]
    NotImportable {
        /// The tag.
        tag: String,
        /// Its `from.kind`.
        kind: String,
        /// Its `from.name`.
        name: String,
    },
    /// A tag without a source.
    #[error(
        "tag {tag:?} already exists - you must use the 'tag' command if you want to change the source to {from:?}"
    )]
    NoSource {
        /// The tag.
        tag: String,
        /// The requested source.
        from: String,
    },
    /// `--from` that differs from the tag's source.
    #[error(
        "the tag {tag:?} points to {current:?} - use the 'tag' command if you want to change the source to {from:?}"
    )]
    DifferentSource {
        /// The tag.
        tag: String,
        /// Its source.
        current: String,
        /// The requested source.
        from: String,
    },
    /// `--from` that differs from the source of the tag an alias leads to.
    #[error(
        "the tag {tag:?} points to the tag {target:?} which points to {current:?} - use the 'tag' command if you want to change the source to {from:?}"
    )]
    DifferentAliasedSource {
        /// The tag.
        tag: String,
        /// The tag it aliases.
        target: String,
        /// That tag's source.
        current: String,
        /// The requested source.
        from: String,
    },
}

/// The parsed `IMAGESTREAM[:TAG]`.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// The stream name.
    name: String,
    /// The tag; `None` with `--all`.
    tag: Option<String>,
}

fn parse_target(target: &str, all: bool) -> Result<Target, ImportImageError> {
    let r = DockerImageReference::parse(target).map_err(|_| ImportImageError::InvalidTarget)?;
    if r.id().is_some() {
        return Err(ImportImageError::ById);
    }
    if r.name().is_empty() {
        return Err(ImportImageError::InvalidTarget);
    }
    let tag = match (r.tag(), all) {
        (Some(_), true) => return Err(ImportImageError::TagWithAll(target.to_string())),
        (Some(t), false) => Some(t.to_string()),
        (None, true) => None,
        (None, false) => Some(DEFAULT_IMAGE_TAG.to_string()),
    };
    Ok(Target {
        name: r.name().to_string(),
        tag,
    })
}

/// Runs `moor import-image ...`.
/// What the spinner says while an import waits: the registries asked
/// (`waiting for quay.io, registry.example:5000 ...`).
fn waiting_message(isi: &ImageStreamImport) -> String {
    let mut registries: Vec<String> = Vec::new();
    let froms = isi
        .spec
        .images
        .iter()
        .map(|i| i.from.name.as_deref().unwrap_or_default())
        .chain(
            isi.spec
                .repository
                .iter()
                .map(|r| r.from.name.as_deref().unwrap_or_default()),
        );
    for from in froms {
        let registry = match DockerImageReference::parse(from) {
            Ok(r) if !r.registry().is_empty() => r.registry().to_owned(),
            Ok(_) => "docker.io".to_owned(),
            Err(_) => continue,
        };
        if !registries.contains(&registry) {
            registries.push(registry);
        }
    }
    match registries.is_empty() {
        true => "importing ...".to_owned(),
        false => format!("waiting for {} ...", registries.join(", ")),
    }
}

pub async fn run(session: &Session, args: ImportImageArgs) -> Result<(), CliError> {
    let target = parse_target(&args.target, args.all)?;
    let api: Api<ImageStream> = Api::namespaced(session.client.clone(), &session.namespace);
    let existing = match api.get(&target.name).await {
        Ok(s) => Some(s),
        Err(e) => {
            let e = session.error(e);
            if api_status(&e).is_some_and(|(code, _)| code == 404) {
                None
            } else {
                return Err(e.into());
            }
        }
    };
    if let (Some(stream), Some(tag), None) = (&existing, &target.tag, &args.from)
        && let Some(spec) = stream.spec_tag(tag).filter(|t| is_followed(t))
    {
        return import_followed(session, &api, &target.name, spec.clone()).await;
    }
    let isi = match existing {
        None if !args.confirm => return Err(ImportImageError::NoStream(target.name).into()),
        None => new_stream_import(&args, &target),
        Some(stream) => match &target.tag {
            None => import_all(&args, &stream)?,
            Some(tag) => import_tag(&args, &stream, tag)?,
        },
    };
    let isi = ImageStreamImport {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(target.name.clone()),
            namespace: Some(session.namespace.clone()),
            ..Default::default()
        },
        ..isi
    };
    let imports: Api<ImageStreamImport> =
        Api::namespaced(session.client.clone(), &session.namespace);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    // The server answers once the registries have; until then a spinner (on a
    // terminal only) says which ones it waits for.
    let spinner = indicatif::ProgressBar::new_spinner().with_message(waiting_message(&isi));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let result = retry_on_conflict(|| async {
        imports
            .create(&params, &isi)
            .await
            .map_err(|e| session.error(e))
    })
    .await;
    spinner.finish_and_clear();
    let result = result?;
    let report = render(&result, &target.name, args.dry_run, Timestamp::now());
    emit(&report.stdout)?;
    for line in &report.errors {
        note(line);
    }
    if report.failed {
        return Err(CliError::Reported);
    }
    if args.mirror {
        let tags = match &target.tag {
            Some(t) => vec![t.clone()],
            None => api
                .get(&target.name)
                .await
                .map_err(|e| session.error(e))?
                .status
                .tags
                .iter()
                .filter(|t| !t.items.is_empty())
                .map(|t| t.tag.clone())
                .collect(),
        };
        for tag in tags {
            let m = super::mirror::mirror_tag(session, &target.name, &tag).await?;
            emit(&format!(
                "Mirrored {}:{tag} into moor's registry: {} manifests, {} blobs, {}\n",
                target.name,
                m.manifests,
                m.blobs,
                indicatif::HumanBytes(m.bytes)
            ))?;
        }
    }
    Ok(())
}

/// How long `moor import-image` waits for a followed tag's import.
const FOLLOW_WAIT_SECS: u64 = 120;

/// `moor import-image STREAM:TAG` of a tag that follows a range. An
/// ImageStreamImport would replace the spec tag (and drop its policy), so the tag's
/// generation is set to 0 instead: the import controller reads the repository's tag
/// list and imports the tag the policy picks. Waits (polling the stream) until the
/// tag's status reaches the new generation, then prints what it got.
async fn import_followed(
    session: &Session,
    api: &Api<ImageStream>,
    name: &str,
    spec: TagReference,
) -> Result<(), CliError> {
    let tag = spec.name.clone();
    set_spec_tag(session, &session.namespace, name, &spec, true).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(FOLLOW_WAIT_SECS);
    loop {
        let stream = api.get(name).await.map_err(|e| session.error(e))?;
        let generation = stream
            .spec_tag(&tag)
            .and_then(|t| t.generation)
            .unwrap_or(0);
        if let Some(status) = stream.status.tags.iter().find(|t| t.tag == tag) {
            if let Some(c) = status
                .condition(&TagEventConditionType::ImportSuccess)
                .filter(|c| c.status == ConditionStatus::False && c.generation >= generation)
            {
                note(&format!(
                    "error: tag {tag} failed: {}: {}",
                    c.reason, c.message
                ));
                return Err(CliError::Reported);
            }
            if let Some(item) = status.items.first().filter(|i| i.generation >= generation) {
                emit(&format!(
                    "Tag {name}:{tag} follows {}: now {} ({})\n",
                    spec.from_name(),
                    item.docker_image_reference,
                    item.image
                ))?;
                return Ok(());
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(
                ImportImageError::FollowTimeout(format!("{name}:{tag}"), FOLLOW_WAIT_SECS).into(),
            );
        }
        // Polling: the import controller writes the stream once, when done.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The `--insecure` to use: the flag when given, else the stream's annotation.
fn insecure(args: &ImportImageArgs, stream: Option<&ImageStream>) -> bool {
    args.insecure.unwrap_or_else(|| {
        stream
            .and_then(|s| s.metadata.annotations.as_ref())
            .and_then(|a| a.get(INSECURE_REPOSITORY_ANNOTATION))
            .is_some_and(|v| v == "true")
    })
}

fn reference_policy(args: &ImportImageArgs, old: Option<&TagReference>) -> TagReferencePolicy {
    match args.reference_policy {
        Some(p) => TagReferencePolicy {
            type_: Some(p.to_api()),
        },
        // Mirrored content is for pulling through moor: local unless said otherwise.
        None if args.mirror => TagReferencePolicy {
            type_: Some(moor_api::image::TagReferencePolicyType::Local),
        },
        // Keep the tag's policy rather than resetting it to the default.
        None => old.map(|t| t.reference_policy.clone()).unwrap_or_default(),
    }
}

fn import_spec(
    args: &ImportImageArgs,
    stream: Option<&ImageStream>,
    tag: &str,
    from: &str,
) -> ImageImportSpec {
    let old = stream.and_then(|s| s.spec_tag(tag));
    let mut insecure = insecure(args, stream);
    let mut scheduled = args.scheduled;
    let mut import_mode: Option<ImportMode> = args.import_mode.clone();
    if let Some(t) = old {
        insecure |= t.import_policy.insecure;
        scheduled |= t.import_policy.scheduled;
        if import_mode.is_none() {
            import_mode = t.import_policy.import_mode.clone();
        }
    }
    ImageImportSpec {
        from: docker(from),
        to: Some(LocalObjectReference {
            name: tag.to_string(),
        }),
        import_policy: TagImportPolicy {
            insecure,
            scheduled,
            import_mode,
        },
        reference_policy: reference_policy(args, old),
        include_manifest: false,
    }
}

fn docker(name: &str) -> ObjectReference {
    ObjectReference {
        kind: Some(KIND_DOCKER_IMAGE.into()),
        name: Some(name.to_string()),
        ..Default::default()
    }
}

fn repository_spec(
    args: &ImportImageArgs,
    stream: Option<&ImageStream>,
    from: &str,
) -> RepositoryImportSpec {
    RepositoryImportSpec {
        from: docker(from),
        import_policy: TagImportPolicy {
            insecure: insecure(args, stream),
            scheduled: args.scheduled,
            import_mode: args.import_mode.clone(),
        },
        reference_policy: reference_policy(args, None),
        include_manifest: false,
    }
}

fn with_images(dry_run: bool, images: Vec<ImageImportSpec>) -> ImageStreamImport {
    let mut isi = ImageStreamImport::default();
    isi.spec.import = !dry_run;
    isi.spec.images = images;
    isi
}

/// The import for a stream that does not exist yet (`--confirm`).
fn new_stream_import(args: &ImportImageArgs, target: &Target) -> ImageStreamImport {
    let from = args.from.clone().unwrap_or_else(|| args.target.clone());
    match &target.tag {
        None => {
            let mut isi = with_images(args.dry_run, vec![]);
            isi.spec.repository = Some(repository_spec(args, None, &from));
            isi
        }
        Some(tag) => with_images(args.dry_run, vec![import_spec(args, None, tag, &from)]),
    }
}

/// `--all` on an existing stream.
fn import_all(
    args: &ImportImageArgs,
    stream: &ImageStream,
) -> Result<ImageStreamImport, ImportImageError> {
    let repository = stream.spec.docker_image_repository.clone();
    let from = match &args.from {
        Some(f) => f.clone(),
        None if !repository.is_empty() => repository.clone(),
        None => {
            let tags: BTreeMap<String, String> = stream
                .spec
                .tags
                .iter()
                .filter(|t| t.from_kind() == KIND_DOCKER_IMAGE)
                .map(|t| (t.name.clone(), t.from_name().to_string()))
                .collect();
            if tags.is_empty() {
                return Err(ImportImageError::NothingToImport);
            }
            let images = tags
                .iter()
                .map(|(tag, from)| import_spec(args, Some(stream), tag, from))
                .collect();
            return Ok(with_images(args.dry_run, images));
        }
    };
    if from != repository && !args.confirm {
        return Err(if repository.is_empty() {
            ImportImageError::NotARepository
        } else {
            ImportImageError::DifferentRepository(repository)
        });
    }
    let mut isi = with_images(args.dry_run, vec![]);
    isi.spec.repository = Some(repository_spec(args, Some(stream), &from));
    Ok(isi)
}

/// Where following a tag's `ImageStreamTag` sources within the stream ends.
#[derive(Debug, PartialEq)]
enum Followed<'a> {
    /// A tag with another kind of source (or none): the final tag, its spec, and
    /// whether any reference was followed.
    Found(String, &'a TagReference, bool),
    /// A tag that does not exist.
    NotFound,
    /// A reference that does not parse.
    Invalid,
    /// A reference to another stream.
    CrossStream,
    /// A loop.
    Circular,
}

/// Follows `tag` through `ImageStreamTag` sources of the same stream, as oc does.
fn follow<'a>(stream: &'a ImageStream, tag: &str) -> Followed<'a> {
    let mut tag = tag.to_string();
    let mut seen = std::collections::HashSet::new();
    let mut multiple = false;
    loop {
        if !seen.insert(tag.clone()) {
            return Followed::Circular;
        }
        let Some(spec) = stream.spec_tag(&tag) else {
            return Followed::NotFound;
        };
        if spec.from_kind() != KIND_IMAGE_STREAM_TAG {
            return Followed::Found(tag, spec, multiple);
        }
        let from_ns = spec
            .from
            .as_ref()
            .and_then(|f| f.namespace.as_deref())
            .unwrap_or_default();
        if !from_ns.is_empty() && Some(from_ns) != stream.metadata.namespace.as_deref() {
            return Followed::CrossStream;
        }
        let from = spec.from_name();
        tag = if from.contains(':') {
            let (name, next, _) = split_image_stream_tag(from);
            if name.is_empty() {
                return Followed::Invalid;
            }
            if Some(name) != stream.metadata.name.as_deref() {
                return Followed::CrossStream;
            }
            next.to_string()
        } else {
            from.to_string()
        };
        multiple = true;
    }
}

/// One tag of an existing stream.
fn import_tag(
    args: &ImportImageArgs,
    stream: &ImageStream,
    tag: &str,
) -> Result<ImageStreamImport, ImportImageError> {
    let from = args.from.clone().unwrap_or_default();
    let (tag, from) = match follow(stream, tag) {
        Followed::Invalid => return Err(ImportImageError::InvalidReference(tag.into())),
        Followed::CrossStream => return Err(ImportImageError::CrossStreamReference(tag.into())),
        Followed::Circular => return Err(ImportImageError::CircularReference(tag.into())),
        Followed::NotFound => {
            let from = if from.is_empty() && tag == DEFAULT_IMAGE_TAG {
                stream.spec.docker_image_repository.clone()
            } else {
                from
            };
            if from.is_empty() {
                return Err(ImportImageError::NoSuchTag(tag.into()));
            }
            (tag.to_string(), from)
        }
        Followed::Found(final_tag, existing, multiple) => {
            if existing.from.is_some() && existing.from_kind() != KIND_DOCKER_IMAGE {
                return Err(ImportImageError::NotImportable {
                    tag: tag.into(),
                    kind: existing.from_kind().into(),
                    name: existing.from_name().into(),
                });
            }
            if existing.from.is_none() {
                return Err(ImportImageError::NoSource {
                    tag: tag.into(),
                    from,
                });
            }
            let current = existing.from_name().to_string();
            if !from.is_empty() && from != current {
                return Err(if multiple {
                    ImportImageError::DifferentAliasedSource {
                        tag: tag.into(),
                        target: final_tag,
                        current,
                        from,
                    }
                } else {
                    ImportImageError::DifferentSource {
                        tag: tag.into(),
                        current,
                        from,
                    }
                });
            }
            let tag = if multiple { final_tag } else { tag.to_string() };
            (tag, current)
        }
    };
    Ok(with_images(
        args.dry_run,
        vec![import_spec(args, Some(stream), &tag, &from)],
    ))
}

/// What `import-image` prints.
#[derive(Debug, Default, PartialEq)]
struct Report {
    /// stdout: `imagestream.image.openshift.io/NAME imported` and the descriptions.
    stdout: String,
    /// stderr lines, one per failed tag.
    errors: Vec<String>,
    /// Whether any image (or the repository) failed.
    failed: bool,
}

/// Renders an import result as oc prints it.
fn render(result: &ImageStreamImport, stream_name: &str, dry_run: bool, now: Timestamp) -> Report {
    let is_failure = |s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Status| {
        s.status.as_deref() == Some(status::FAILURE)
    };
    let repository = result.status.repository.as_ref();
    // oc counts only the listed images and the repository itself; a tag of the
    // repository that failed is a failure too.
    let failed = result.status.images.iter().any(|i| is_failure(&i.status))
        || repository.is_some_and(|r| {
            is_failure(&r.status) || r.images.iter().any(|i| is_failure(&i.status))
        });
    let mut message = String::from(if failed {
        "imported with errors"
    } else {
        "imported"
    });
    if dry_run {
        message.push_str(" (dry run)");
    }
    message.push_str("\n\n");
    let mut errors = Vec::new();
    if let Some(stream) = &result.status.import {
        message.push_str(&crate::describe::image_stream(stream, now));
        message.push('\n');
    }
    if let Some(repo) = repository {
        if is_failure(&repo.status) {
            errors.push(format!(
                "error: repository import failed: {}",
                repo.status.message.as_deref().unwrap_or_default()
            ));
        }
        for image in &repo.images {
            match &image.image {
                Some(i) => {
                    message.push_str(&crate::describe::image(
                        i,
                        &join_image_stream_tag(stream_name, &image.tag),
                        now,
                    ));
                    message.push('\n');
                }
                None => errors.push(format!(
                    "error: repository tag {} failed: {}",
                    image.tag,
                    image.status.message.as_deref().unwrap_or_default()
                )),
            }
        }
    }
    for image in &result.status.images {
        match &image.image {
            Some(i) => {
                message.push_str(&crate::describe::image(
                    i,
                    &join_image_stream_tag(stream_name, &image.tag),
                    now,
                ));
                message.push('\n');
            }
            None => errors.push(format!(
                "error: tag {} failed: {}",
                image.tag,
                image.status.message.as_deref().unwrap_or_default()
            )),
        }
    }
    if let Some(repo) = repository.filter(|r| !r.additional_tags.is_empty()) {
        message.push_str(&format!(
            "\ninfo: The remote repository contained {} additional tags which were not imported: {}\n",
            repo.additional_tags.len(),
            repo.additional_tags.join(", ")
        ));
    }
    Report {
        stdout: format!(
            "{}/{stream_name} {message}\n",
            IMAGE_STREAMS.qualified_singular()
        ),
        errors,
        failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn the_spinner_names_the_registries_waited_for() {
        let a = args(&[
            "app:1",
            "--from",
            "registry.example:5000/team/app:1",
            "--confirm",
        ]);
        let isi = new_stream_import(&a, &parse_target("app:1", false).unwrap());
        assert_eq!(
            waiting_message(&isi),
            "waiting for registry.example:5000 ..."
        );
        let a = args(&["nginx", "--from", "nginx", "--confirm", "--all"]);
        let isi = new_stream_import(&a, &parse_target("nginx", true).unwrap());
        assert_eq!(waiting_message(&isi), "waiting for docker.io ...");
    }

    fn args(line: &[&str]) -> ImportImageArgs {
        let mut full = vec!["moor", "import-image"];
        full.extend_from_slice(line);
        match Cli::try_parse_from(full).unwrap().command {
            Command::ImportImage(a) => a,
            _ => panic!("not import-image"),
        }
    }

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("keycloak", false).unwrap(),
            Target {
                name: "keycloak".into(),
                tag: Some("latest".into())
            }
        );
        assert_eq!(parse_target("keycloak", true).unwrap().tag, None);
        assert_eq!(
            parse_target("keycloak:20.0", true),
            Err(ImportImageError::TagWithAll("keycloak:20.0".into()))
        );
        assert_eq!(
            parse_target(&format!("keycloak@sha256:{}", "a".repeat(64)), false),
            Err(ImportImageError::ById)
        );
        assert_eq!(
            parse_target("Not Valid", false),
            Err(ImportImageError::InvalidTarget)
        );
        assert_eq!(
            parse_target("quay.io/keycloak/keycloak:20.0", false)
                .unwrap()
                .name,
            "keycloak"
        );
    }

    fn stream() -> ImageStream {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kc", "namespace": "default",
                         "annotations": {"openshift.io/image.insecureRepository": "true"}},
            "spec": {"tags": [
                {"name": "20.0", "from": {"kind": "DockerImage", "name": "quay.io/k/k:20.0"},
                 "importPolicy": {"scheduled": true}, "referencePolicy": {"type": "Local"}},
                {"name": "stable", "from": {"kind": "ImageStreamTag", "name": "20.0"}},
                {"name": "pinned", "from": {"kind": "ImageStreamImage", "name": "kc@sha256:x"}},
                {"name": "loop", "from": {"kind": "ImageStreamTag", "name": "kc:loop"}},
                {"name": "other", "from": {"kind": "ImageStreamTag", "name": "elsewhere:1"}}
            ]}
        }))
        .unwrap()
    }

    #[test]
    fn one_tag_follows_aliases_and_keeps_policies() {
        let s = stream();
        let isi = import_tag(&args(&["kc:stable"]), &s, "stable").unwrap();
        assert!(isi.spec.import);
        let image = &isi.spec.images[0];
        assert_eq!(image.to.as_ref().unwrap().name, "20.0");
        assert_eq!(image.from.name.as_deref(), Some("quay.io/k/k:20.0"));
        assert!(image.import_policy.scheduled);
        assert!(image.import_policy.insecure, "from the stream's annotation");
        assert_eq!(
            image.reference_policy.type_,
            Some(moor_api::image::TagReferencePolicyType::Local)
        );
        let isi = import_tag(
            &args(&["kc:20.0", "--insecure=false", "--dry-run"]),
            &s,
            "20.0",
        )
        .unwrap();
        assert!(!isi.spec.import);
        assert!(!isi.spec.images[0].import_policy.insecure);
    }

    #[test]
    fn one_tag_errors_read_like_oc() {
        let s = stream();
        let err = |tag: &str, line: &[&str]| import_tag(&args(line), &s, tag).unwrap_err();
        assert_eq!(
            err("pinned", &["kc:pinned"]).to_string(),
            "tag \"pinned\" points to existing ImageStreamImage \"kc@sha256:x\", it cannot be re-imported"
        );
        assert_eq!(
            err("loop", &["kc:loop"]),
            ImportImageError::CircularReference("loop".into())
        );
        assert_eq!(
            err("other", &["kc:other"]),
            ImportImageError::CrossStreamReference("other".into())
        );
        assert_eq!(
            err("new", &["kc:new"]).to_string(),
            "the tag \"new\" does not exist on the image stream - choose an existing tag to import or use the 'tag' command to create a new tag"
        );
        assert_eq!(
            err("20.0", &["kc:20.0", "--from", "quay.io/k/k:21"]).to_string(),
            "the tag \"20.0\" points to \"quay.io/k/k:20.0\" - use the 'tag' command if you want to change the source to \"quay.io/k/k:21\""
        );
        assert!(matches!(
            err("stable", &["kc:stable", "--from", "quay.io/k/k:21"]),
            ImportImageError::DifferentAliasedSource { .. }
        ));
        let isi = import_tag(&args(&["kc:new", "--from", "quay.io/k/k:new"]), &s, "new").unwrap();
        assert_eq!(isi.spec.images[0].to.as_ref().unwrap().name, "new");
    }

    #[test]
    fn all_tags_of_a_stream() {
        let s = stream();
        let isi = import_all(&args(&["kc", "--all"]), &s).unwrap();
        let tags: Vec<&str> = isi
            .spec
            .images
            .iter()
            .map(|i| i.to.as_ref().unwrap().name.as_str())
            .collect();
        assert_eq!(tags, vec!["20.0"]);
        assert_eq!(
            import_all(&args(&["kc", "--all", "--from", "quay.io/k/k"]), &s).unwrap_err(),
            ImportImageError::NotARepository
        );
        let isi = import_all(
            &args(&["kc", "--all", "--from", "quay.io/k/k", "--confirm"]),
            &s,
        )
        .unwrap();
        assert_eq!(
            isi.spec.repository.unwrap().from.name.as_deref(),
            Some("quay.io/k/k")
        );
    }

    #[test]
    fn results_print_like_oc() {
        let now: Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        let result: ImageStreamImport = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kc"},
            "spec": {"import": true},
            "status": {
                "repository": {
                    "status": {"status": "Success"},
                    "images": [
                        {"status": {"status": "Success"}, "tag": "1",
                         "image": {"metadata": {"name": "sha256:aa"},
                                   "dockerImageReference": "quay.io/k/k@sha256:aa",
                                   "dockerImageMetadata": {"Id": "", "Architecture": "amd64",
                                                           "Created": "2026-01-01T11:00:00Z",
                                                           "Config": {"Cmd": ["/hello.txt"]}}}},
                        {"status": {"status": "Failure", "reason": "NotFound",
                                    "message": "manifest unknown"}, "tag": "2"}
                    ],
                    "additionalTags": ["3", "4"]
                }
            }
        }))
        .unwrap();
        let report = render(&result, "kc", false, now);
        assert!(report.failed);
        assert_eq!(
            report.errors,
            vec!["error: repository tag 2 failed: manifest unknown"]
        );
        let want = "imagestream.image.openshift.io/kc imported with errors\n\n\
            Image Name:\tkc:1\n\
            Docker Image:\tquay.io/k/k@sha256:aa\n\
            Name:\t\tsha256:aa\n\
            Layer Size:\t0 B\n\
            Image Created:\tAbout an hour ago\n\
            Author:\t\t<none>\n\
            Arch:\t\tamd64\n\
            Command:\t/hello.txt\n\
            Working Dir:\t<none>\n\
            User:\t\t<none>\n\
            Exposes Ports:\t<none>\n\
            Docker Labels:\t<none>\n\
            \n\
            \n\
            info: The remote repository contained 2 additional tags which were not imported: 3, 4\n\n";
        assert_eq!(
            report.stdout, want,
            "\n--- got ---\n{}\n--- want ---\n{want}",
            report.stdout
        );
        let report = render(&ImageStreamImport::default(), "kc", true, now);
        assert!(!report.failed);
        assert_eq!(
            report.stdout,
            "imagestream.image.openshift.io/kc imported (dry run)\n\n\n"
        );
    }
}
