//! `moor rollback STREAM:TAG [--to-revision N | --to-image DIGEST]`: points a tag back
//! at an earlier image of its history by setting its source to that image
//! (`stream@sha256:...`), as OpenShift rolls back: the import controller then copies
//! the image, which becomes the tag's newest history entry, and scheduled import stops
//! for the tag until it is tagged from a registry again.

use clap::Args;
use kube::Api;
use moor_api::DockerImageReference;
use moor_api::image::follow::{FOLLOW_ANNOTATIONS, FollowPolicy};
use moor_api::image::{
    ImageStream, KIND_DOCKER_IMAGE, KIND_IMAGE_STREAM_IMAGE, TagEvent, TagImportPolicy,
    TagReference, split_image_stream_tag,
};

use super::emit;
use crate::client::Session;
use crate::error::CliError;
use crate::tagging::{object_reference, resolve_image_id, set_spec_tag};

pub(crate) const ROLLBACK_EXAMPLES: &str = "\
Revisions number a tag's history as `moor describe is` lists it, from the bottom: 1 is
the oldest entry, the highest number is the image the tag points at now. Rolling back
pins the tag to that image (STREAM@sha256:...), which adds a new history entry; so a
second `moor rollback` without options undoes the first. A tag that was imported
periodically (--scheduled) stops being imported until it is tagged from a registry again.

Examples:
  # Point keycloak:20.0 back at the image it had before the current one
  moor rollback keycloak:20.0

  # Point it at the oldest image of its history
  moor rollback keycloak:20.0 --to-revision 1

  # Point it at an image of the stream by digest (a unique prefix is enough)
  moor rollback keycloak:20.0 --to-image sha256:4f2a

  # Resume periodic imports afterwards
  moor tag quay.io/keycloak/keycloak:20.0.3 keycloak:20.0 --scheduled";

/// Flags of `moor rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The tag to roll back, STREAM:TAG
    #[arg(value_name = "STREAM:TAG")]
    pub tag: String,

    /// The history entry to go back to: 1 is the oldest, the highest number is the current image
    #[arg(long, value_name = "N", conflicts_with = "to_image", value_parser = clap::value_parser!(u32).range(1..))]
    pub to_revision: Option<u32>,

    /// The image of the stream to go back to, by digest or unique digest prefix (sha256:4f2a or 4f2a)
    #[arg(long, value_name = "DIGEST")]
    pub to_image: Option<String>,
}

/// Why a rollback cannot be done.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RollbackError {
    /// The tag has no history at all.
    #[error("{0} has no history to roll back: it has never pointed at an image")]
    NoHistory(String),
    /// The tag's history has only the current entry.
    #[error("{0} has no earlier image to roll back to: its history has only the current entry")]
    NoEarlier(String),
    /// `--to-revision` beyond the history.
    #[error(
        "{tag} has no revision {revision}: its history has {len} entries (1 is the oldest, {len} the current image)"
    )]
    NoRevision {
        /// The tag.
        tag: String,
        /// The revision asked for.
        revision: u32,
        /// How many entries the history has.
        len: usize,
    },
    /// A history entry whose pull spec does not parse.
    #[error("the history entry of {tag} has an invalid pull spec {spec:?}: {reason}")]
    BadPullSpec {
        /// The tag.
        tag: String,
        /// The pull spec.
        spec: String,
        /// Why it does not parse.
        reason: String,
    },
}

/// The image a rollback goes to.
#[derive(Clone, Debug, PartialEq)]
struct Target {
    /// The history entry, when the image is in this tag's history.
    event: Option<TagEvent>,
    /// The image's digest (empty for an entry recorded without one).
    image: String,
    /// 1-based revision (1 = oldest), when in this tag's history.
    revision: Option<usize>,
}

/// Runs `moor rollback ...`.
pub async fn run(session: &Session, args: RollbackArgs) -> Result<(), CliError> {
    let (stream_name, tag, _) = split_image_stream_tag(&args.tag);
    if stream_name.is_empty() {
        return Err(CliError::Usage(format!(
            "{:?} must be of the form <stream_name>:<tag>",
            args.tag
        )));
    }
    let display = format!("{stream_name}:{tag}");
    let api: Api<ImageStream> = Api::namespaced(session.client.clone(), &session.namespace);
    let stream = api.get(stream_name).await.map_err(|e| session.error(e))?;
    let history: Vec<TagEvent> = stream
        .status_tag(tag)
        .map(|t| t.items.clone())
        .unwrap_or_default();
    if history.is_empty() {
        return Err(RollbackError::NoHistory(display).into());
    }

    let target = match (&args.to_revision, &args.to_image) {
        (Some(revision), _) => by_revision(&display, &history, *revision)?,
        (None, Some(id)) => {
            let digest = resolve_image_id(session, &session.namespace, stream_name, id).await?;
            let index = history.iter().position(|e| e.image == digest);
            Target {
                event: index.map(|i| history[i].clone()),
                image: digest,
                revision: index.map(|i| history.len() - i),
            }
        }
        (None, None) => {
            if history.len() < 2 {
                return Err(RollbackError::NoEarlier(display).into());
            }
            by_revision(&display, &history, (history.len() - 1) as u32)?
        }
    };

    let previous = stream.spec_tag(tag).cloned();
    let mut spec = previous.clone().unwrap_or_else(|| TagReference {
        name: tag.to_string(),
        ..Default::default()
    });
    spec.name = tag.to_string();
    spec.reference = false;
    // Pinned to one image: nothing is imported from a registry any more, and a
    // followed range is no longer followed (the message says how to resume).
    spec.import_policy = TagImportPolicy::default();
    if let Some(a) = spec.annotations.as_mut() {
        for k in FOLLOW_ANNOTATIONS {
            a.remove(k);
        }
    }
    spec.from = Some(if target.image.is_empty() {
        // An entry recorded without a digest: go back to its pull spec.
        let pull_spec = target
            .event
            .as_ref()
            .map(|e| e.docker_image_reference.clone())
            .unwrap_or_default();
        let r =
            DockerImageReference::parse(&pull_spec).map_err(|e| RollbackError::BadPullSpec {
                tag: display.clone(),
                spec: pull_spec.clone(),
                reason: e.to_string(),
            })?;
        object_reference(KIND_DOCKER_IMAGE, &r.exact(), None)
    } else {
        object_reference(
            KIND_IMAGE_STREAM_IMAGE,
            &format!("{stream_name}@{}", target.image),
            None,
        )
    });
    let replaced = set_spec_tag(session, &session.namespace, stream_name, &spec, false).await?;

    let pull_spec = target
        .event
        .as_ref()
        .map(|e| e.docker_image_reference.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("{stream_name}@{}", target.image));
    let mut text = match target.revision {
        Some(r) => format!(
            "Rolled back {display} to revision {r} of {}: {pull_spec}\n",
            history.len()
        ),
        None => format!("Rolled back {display} to {pull_spec}\n"),
    };
    let followed = replaced
        .as_ref()
        .filter(|p| p.from_kind() == KIND_DOCKER_IMAGE)
        .and_then(|p| FollowPolicy::of_tag(p).ok().flatten().map(|f| (p, f)));
    if let Some((p, f)) = followed {
        text.push_str(&format!(
            "Following {} ({}) is paused for {display}; resume it with: moor tag {} {display} {}\n",
            p.from_name(),
            f.summary(),
            p.from_name(),
            f.flags()
        ));
    } else if let Some(p) = replaced.filter(|p| p.import_policy.scheduled) {
        let source = if p.from_kind() == KIND_DOCKER_IMAGE {
            p.from_name().to_string()
        } else {
            "SRC".to_string()
        };
        text.push_str(&format!(
            "Scheduled import of {display} is off until it is tagged again from a registry (moor tag {source} {display} --scheduled).\n"
        ));
    }
    emit(&text)
}

/// The entry of revision `revision` (1 = oldest) of `history` (newest first).
fn by_revision(tag: &str, history: &[TagEvent], revision: u32) -> Result<Target, RollbackError> {
    let len = history.len();
    let r = revision as usize;
    if r == 0 || r > len {
        return Err(RollbackError::NoRevision {
            tag: tag.to_string(),
            revision,
            len,
        });
    }
    let event = history[len - r].clone();
    Ok(Target {
        image: event.image.clone(),
        event: Some(event),
        revision: Some(r),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history() -> Vec<TagEvent> {
        ["sha256:c", "sha256:b", "sha256:a"]
            .iter()
            .map(|d| TagEvent {
                image: d.to_string(),
                docker_image_reference: format!("quay.io/k/k@{d}"),
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn revisions_count_from_the_oldest() {
        let h = history();
        assert_eq!(by_revision("k:1", &h, 1).unwrap().image, "sha256:a");
        assert_eq!(by_revision("k:1", &h, 3).unwrap().image, "sha256:c");
        assert_eq!(by_revision("k:1", &h, 2).unwrap().revision, Some(2));
        let err = by_revision("k:1", &h, 4).unwrap_err();
        assert_eq!(
            err.to_string(),
            "k:1 has no revision 4: its history has 3 entries (1 is the oldest, 3 the current image)"
        );
    }
}
