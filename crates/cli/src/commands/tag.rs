//! `moor tag SOURCE DEST...` and `moor tag -d DEST...`: sets (or deletes) spec tags
//! with oc's semantics and messages. A `stream:tag` source is copied (the destination
//! gets the source's current image as `stream@sha256:...`) unless `--alias`; digest
//! prefixes are resolved before anything is written.

use clap::Args;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Api;
use moor_api::DockerImageReference;
use moor_api::image::follow::FollowPolicy;
use moor_api::image::{
    ImageStream, ImportMode, KIND_DOCKER_IMAGE, KIND_IMAGE_STREAM_IMAGE, KIND_IMAGE_STREAM_TAG,
    TagImportPolicy, TagReference, TagReferencePolicy,
};

use super::emit;
use crate::cli::{
    ReferencePolicy, SourceKind, parse_import_mode, parse_reference_policy, parse_source_kind,
};
use crate::client::Session;
use crate::error::CliError;
use crate::resources::IMAGE_STREAM_TAGS;
use crate::tagging::{
    Destination, Source, TaggingError, kind_of, object_reference, qualified, resolve_image_id,
    retry_on_conflict, set_spec_tag,
};

pub(crate) const TAG_EXAMPLES: &str = "\
The source is guessed unless --source says what it is: a pull spec with a registry
(quay.io/keycloak/keycloak:20.0.3) is a registry image, STREAM@DIGEST is an image of a
stream (a unique digest prefix is enough), and STREAM:TAG is a tag of a stream. Without
--alias a STREAM:TAG source is copied: the destination gets the image the source points
at now. With --alias the destination follows the source from then on.

Examples:
  # Point keycloak:20.0 at an image from a registry (the stream is created if missing)
  moor tag quay.io/keycloak/keycloak:20.0.3 keycloak:20.0

  # The same, re-imported periodically, and pulled through moor's registry
  moor tag quay.io/keycloak/keycloak:20.0.3 keycloak:20.0 --scheduled
  moor tag quay.io/keycloak/keycloak:20.0.3 keycloak:20.0 --reference-policy local

  # Copy the image keycloak:20.0 points at now to keycloak:prod and keycloak:stable
  moor tag keycloak:20.0 keycloak:prod keycloak:stable

  # Make keycloak:latest follow keycloak:20.0 from now on
  moor tag keycloak:20.0 keycloak:latest --alias

  # Pin a tag to one image of the stream's history (a unique digest prefix is enough)
  moor tag keycloak@sha256:4f2a keycloak:20.0

  # Follow the newest 20.0.x release (pre-releases excluded); checked periodically
  moor tag quay.io/keycloak/keycloak keycloak:20.0 --semver '>=20.0.0 <20.1.0'

  # Follow the newest main-<sha>-<timestamp> build, by timestamp
  moor tag quay.io/org/app app:main --tag-regex '^main-[a-f0-9]+-(?P<ts>[0-9]+)$' \\
      --tag-extract '$ts' --order numerical

  # A Docker Hub image without a registry in its name
  moor tag --source=docker nginx:1.27 web:1.27

  # Remove a tag (its spec and its history)
  moor tag -d keycloak:20.0";

/// Flags of `moor tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// SOURCE then one or more DEST tags ([NAMESPACE/]STREAM:TAG); with -d, only the tags to delete
    #[arg(value_name = "SOURCE DEST", required = true, num_args = 1..)]
    pub args: Vec<String>,

    /// What SOURCE is: docker (a registry pull spec), istag (STREAM:TAG) or isimage (STREAM@DIGEST) [default: guessed]
    #[arg(long, value_name = "SOURCETYPE", value_parser = parse_source_kind)]
    pub source: Option<SourceKind>,

    /// Delete the given spec tags (and their history)
    #[arg(short = 'd', long)]
    pub delete: bool,

    /// Make the destination follow the source tag whenever it changes (same stream only)
    #[arg(long)]
    pub alias: bool,

    /// Use the source as it is whenever the destination is referenced; nothing is imported
    #[arg(long)]
    pub reference: bool,

    /// Import the registry image periodically (registry sources only)
    #[arg(long)]
    pub scheduled: bool,

    /// Allow importing the registry image over HTTP or with an unverified certificate
    #[arg(long)]
    pub insecure: bool,

    /// How pull specs of the tag's images are written: source (the original registry) or local (moor's registry)
    #[arg(long, value_name = "POLICY", value_parser = parse_reference_policy, default_value = "source")]
    pub reference_policy: ReferencePolicy,

    /// How a manifest list is imported: Legacy (one platform) or PreserveOriginal (the whole list)
    #[arg(long, value_name = "MODE", value_parser = parse_import_mode)]
    pub import_mode: Option<ImportMode>,

    /// Follow the highest tag of the SOURCE repository in this semver range (checked on the scheduled interval)
    #[arg(long, value_name = "RANGE")]
    pub semver: Option<String>,

    /// Follow only tags of the SOURCE repository matching this regular expression
    #[arg(long, value_name = "REGEX")]
    pub tag_regex: Option<String>,

    /// With --tag-regex: order by this replacement of the regex's groups ($name, ${1}) instead of the tag
    #[arg(long, value_name = "TEMPLATE")]
    pub tag_extract: Option<String>,

    /// With --tag-regex: numerical or alphabetical, optionally :asc (the highest wins, the default) or :desc (the lowest wins), e.g. numerical:desc
    #[arg(long, value_name = "ORDER")]
    pub order: Option<String>,

    /// With --semver: pre-release versions count even when the range names none
    #[arg(long)]
    pub include_prereleases: bool,
}

impl TagArgs {
    /// The follow policy the flags give, if any.
    fn follow_policy(&self) -> Result<Option<FollowPolicy>, CliError> {
        if self.semver.is_none()
            && self.tag_regex.is_none()
            && self.tag_extract.is_none()
            && self.order.is_none()
            && !self.include_prereleases
        {
            return Ok(None);
        }
        // One value, so that `--order numerical SOURCE DEST` keeps SOURCE: the
        // direction follows a colon (`numerical:desc`); the policy stores it spaced.
        let order = self.order.as_deref().map(|o| o.replacen(':', " ", 1));
        FollowPolicy::new(
            self.semver.as_deref(),
            self.tag_regex.as_deref(),
            self.tag_extract.as_deref(),
            order.as_deref(),
            self.include_prereleases,
        )
        .map(Some)
        .map_err(|e| CliError::Usage(e.to_string()))
    }
}

/// A source resolved to what the spec tag will say.
struct Resolved {
    /// `from` of the spec tag (namespace filled per destination).
    kind: &'static str,
    /// `from.name`.
    name: String,
    /// The namespace the source named, if any.
    namespace: Option<String>,
    /// What oc's messages print for the source.
    display: String,
}

/// Runs `moor tag ...`.
pub async fn run(session: &Session, args: TagArgs) -> Result<(), CliError> {
    if args.delete {
        return delete(session, &args).await;
    }
    if args.args.len() < 2 {
        return Err(CliError::Usage(
            "you must specify a source and at least one destination or one or more tags to delete\nSee 'moor tag -h' for help and examples"
                .into(),
        ));
    }
    let source_arg = &args.args[0];
    let source = Source::parse(source_arg, args.source)?;
    let destinations = args.args[1..]
        .iter()
        .map(|d| Destination::parse(&session.namespace, d))
        .collect::<Result<Vec<_>, _>>()?;
    validate(session, &args, &source, &destinations)?;
    let policy = args.follow_policy()?;
    if policy.is_some() && (args.alias || args.reference || kind_of(&source) != KIND_DOCKER_IMAGE) {
        return Err(CliError::Usage(
            "--semver and --tag-regex follow a registry repository (such as quay.io/keycloak/keycloak); they do not go with --alias or --reference".into(),
        ));
    }

    let mut resolved = resolve(session, &args, source_arg, &source).await?;
    if let Source::Docker(r) = &source
        && policy.is_some()
    {
        // A followed tag names the repository; the policy picks its tag.
        resolved.name = r.as_repository().exact();
        resolved.display = resolved.name.clone();
    }
    let reference_policy = args.reference_policy.to_api();
    for dest in &destinations {
        let from_namespace = match resolved.kind {
            KIND_DOCKER_IMAGE => None,
            _ => resolved.namespace.clone().or_else(|| {
                (dest.namespace != session.namespace).then(|| session.namespace.clone())
            }),
        };
        let tag = TagReference {
            name: dest.tag.clone(),
            annotations: policy.as_ref().map(FollowPolicy::annotations),
            from: Some(ObjectReference {
                namespace: from_namespace,
                ..object_reference(resolved.kind, &resolved.name, None)
            }),
            reference: args.reference,
            generation: None,
            import_policy: TagImportPolicy {
                insecure: args.insecure,
                scheduled: args.scheduled || policy.is_some(),
                import_mode: args.import_mode.clone(),
            },
            reference_policy: TagReferencePolicy {
                type_: Some(reference_policy.clone()),
            },
        };
        // As oc: a registry source always asks for a fresh import.
        set_spec_tag(
            session,
            &dest.namespace,
            &dest.stream,
            &tag,
            resolved.kind == KIND_DOCKER_IMAGE,
        )
        .await?;
        let text = match &policy {
            Some(p) => follow_message(session, dest, &resolved.display, p),
            None => message(session, &args, dest, &resolved.display),
        };
        emit(&format!("{text}\n"))?;
    }
    Ok(())
}

/// oc's checks, made before anything is read or written.
fn validate(
    session: &Session,
    args: &TagArgs,
    source: &Source,
    destinations: &[Destination],
) -> Result<(), CliError> {
    let usage = |m: &str| Err(CliError::Usage(m.to_string()));
    if kind_of(source) != KIND_DOCKER_IMAGE && (args.scheduled || args.insecure) {
        return usage(
            "only container images can have importing flags set (--scheduled and --insecure need a registry source such as quay.io/keycloak/keycloak:20.0.3; add --source=docker for a Docker Hub name)",
        );
    }
    if args.alias {
        if args.scheduled || args.insecure {
            return usage("cannot set a container image tag as an alias and also set import flags");
        }
        let (source_ns, source_stream) = match source {
            Source::Docker(r) => (None, r.name().to_string()),
            Source::Tag {
                namespace, stream, ..
            }
            | Source::Image {
                namespace, stream, ..
            } => (namespace.clone(), stream.clone()),
        };
        let source_ns = source_ns.unwrap_or_else(|| session.namespace.clone());
        if destinations
            .iter()
            .any(|d| d.namespace != source_ns || d.stream != source_stream)
        {
            return usage("cannot set alias across different Image Streams");
        }
    }
    Ok(())
}

/// Turns the source into the spec tag's `from`: copies a tag's current image unless
/// `--alias`, and resolves digest prefixes.
async fn resolve(
    session: &Session,
    args: &TagArgs,
    source_arg: &str,
    source: &Source,
) -> Result<Resolved, CliError> {
    match source {
        Source::Docker(r) => Ok(Resolved {
            kind: KIND_DOCKER_IMAGE,
            name: r.exact(),
            namespace: None,
            display: r.exact(),
        }),
        Source::Tag {
            namespace,
            stream,
            tag,
        } if args.alias => Ok(Resolved {
            kind: KIND_IMAGE_STREAM_TAG,
            name: format!("{stream}:{tag}"),
            namespace: namespace.clone(),
            display: qualified(namespace.as_deref(), &format!("{stream}:{tag}")),
        }),
        Source::Tag {
            namespace,
            stream,
            tag,
        } => {
            let ns = namespace.as_deref().unwrap_or(&session.namespace);
            let api: Api<ImageStream> = Api::namespaced(session.client.clone(), ns);
            let found = api.get(stream).await.map_err(|e| session.error(e))?;
            let event = found
                .latest_tagged_image(tag)
                .ok_or_else(|| TaggingError::NoImage(source_arg.to_string()))?;
            if event.image.is_empty() {
                let r =
                    DockerImageReference::parse(&event.docker_image_reference).map_err(|e| {
                        TaggingError::BadPullSpec {
                            tag: source_arg.to_string(),
                            reason: e.to_string(),
                        }
                    })?;
                return Ok(Resolved {
                    kind: KIND_DOCKER_IMAGE,
                    name: r.exact(),
                    namespace: None,
                    display: r.exact(),
                });
            }
            let name = format!("{stream}@{}", event.image);
            Ok(Resolved {
                kind: KIND_IMAGE_STREAM_IMAGE,
                display: qualified(namespace.as_deref(), &name),
                name,
                namespace: namespace.clone(),
            })
        }
        Source::Image {
            namespace,
            stream,
            id,
        } => {
            let ns = namespace.as_deref().unwrap_or(&session.namespace);
            let digest = resolve_image_id(session, ns, stream, id).await?;
            let name = format!("{stream}@{digest}");
            Ok(Resolved {
                kind: KIND_IMAGE_STREAM_IMAGE,
                display: qualified(namespace.as_deref(), &name),
                name,
                namespace: namespace.clone(),
            })
        }
    }
}

/// What oc prints after setting a tag.
fn message(session: &Session, args: &TagArgs, dest: &Destination, source: &str) -> String {
    let target = if dest.namespace == session.namespace {
        dest.name_and_tag.clone()
    } else {
        format!("{}/{}", dest.namespace, dest.name_and_tag)
    };
    if args.alias {
        format!("Tag {target} set up to track {source}.")
    } else if args.scheduled {
        format!("Tag {target} set to import {source} periodically.")
    } else {
        format!("Tag {target} set to {source}.")
    }
}

/// What `moor tag` prints after setting a followed tag.
fn follow_message(session: &Session, dest: &Destination, source: &str, p: &FollowPolicy) -> String {
    let target = if dest.namespace == session.namespace {
        dest.name_and_tag.clone()
    } else {
        format!("{}/{}", dest.namespace, dest.name_and_tag)
    };
    format!(
        "Tag {target} set to follow {source} ({}), checked periodically.",
        p.summary()
    )
}

/// `moor tag -d DEST...`: deletes each tag (spec and history).
async fn delete(session: &Session, args: &TagArgs) -> Result<(), CliError> {
    let usage = |m: &str| Err(CliError::Usage(m.to_string()));
    if args.alias {
        return usage("--alias and --delete may not be both specified");
    }
    if args.source.is_some() {
        return usage("cannot specify a source kind when deleting");
    }
    if args.scheduled || args.insecure {
        return usage("cannot set flags for importing images when deleting a tag");
    }
    let destinations = args
        .args
        .iter()
        .map(|d| Destination::parse(&session.namespace, d))
        .collect::<Result<Vec<_>, _>>()?;
    for dest in &destinations {
        let name = format!("{}:{}", dest.stream, dest.tag);
        retry_on_conflict(|| session.delete(&IMAGE_STREAM_TAGS, Some(&dest.namespace), &name))
            .await?;
        emit(&format!(
            "Deleted tag {}/{}.\n",
            dest.namespace, dest.name_and_tag
        ))?;
    }
    Ok(())
}
