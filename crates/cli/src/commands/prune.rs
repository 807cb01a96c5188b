//! `moor prune images`: posts an ImagePrune (moor.io/v1) to the server, which prunes
//! tag history, images and registry blobs (a dry run without `--confirm`), and prints
//! the report as `oc adm prune images` does: the dry-run notice on stderr, one
//! `Deleting ...` line per change, and a `Summary:`; or the ImagePrune as YAML/JSON.
//! Exits 1 when a removal failed.

use std::time::Duration;

use clap::{Args, Subcommand};
use moor_api::humanize::human_size;
use moor_api::prune::{ImagePrune, ImagePruneSpec, ImagePruneStatus, PATH};

use super::{emit, note};
use crate::client::{ClientError, Session};
use crate::error::CliError;
use crate::printers::{to_json, to_yaml};

pub(crate) const PRUNE_EXAMPLES: &str = "\
Examples:
  # See what pruning images would remove (a dry run: nothing changes)
  moor prune images

  # Remove it
  moor prune images --confirm";

const PRUNE_IMAGES_EXAMPLES: &str = "\
Removes, in order: tag history entries beyond the limits (each tag keeps its newest
--keep-tag-revisions entries, entries younger than --keep-younger-than, and entries that
a workload pins by digest; the image a tag serves is never removed), then Images that no
image stream names any more (not in any history, not a child of a list still named, not
named by a spec tag's ImageStreamImage or DockerImage@digest of this registry), then the
registry's blobs (layers, configs, manifests) that no remaining image needs. Nothing
younger than --keep-younger-than is removed, so pushes in flight are safe.

Without --confirm it is a dry run: it prints what would be removed and changes nothing.
With -n NAMESPACE only the history of that namespace's streams is pruned; images and
blobs are left alone, since other namespaces may use them.

Examples:
  # See what would be removed if only images and history entries more than an hour old
  # and obsoleted by 3 newer revisions under the same tag were considered
  moor prune images --keep-tag-revisions=3 --keep-younger-than=60m

  # To actually remove them, add --confirm
  moor prune images --keep-tag-revisions=3 --keep-younger-than=60m --confirm

  # Keep only the current image of every tag, whatever its age (a quiet registry only:
  # a push that is under way may lose its layers)
  moor prune images --keep-tag-revisions=1 --keep-younger-than=0s --confirm

  # The full report as JSON (an ImagePrune object of moor.io/v1)
  moor prune images -o json";

/// Flags of `moor prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// What to prune.
    #[command(subcommand)]
    pub what: PruneCommand,
}

/// The `moor prune` commands.
#[derive(Debug, Subcommand)]
pub enum PruneCommand {
    /// Remove unreferenced images: old tag history, images no stream names, unused blobs
    #[command(after_help = PRUNE_IMAGES_EXAMPLES)]
    Images(PruneImagesArgs),
}

/// Flags of `moor prune images`.
#[derive(Debug, Args)]
pub struct PruneImagesArgs {
    /// Remove what is listed; without it nothing changes (a dry run)
    #[arg(long)]
    pub confirm: bool,

    /// The number of newest history entries of each tag to keep (the newest is always kept)
    #[arg(long, value_name = "N", default_value_t = moor_api::prune::DEFAULT_KEEP_TAG_REVISIONS)]
    pub keep_tag_revisions: u32,

    /// Keep history entries, images and blobs younger than this (e.g. 0s, 30m, 1h30m)
    #[arg(long, value_name = "DURATION", default_value = "60m", value_parser = moor_api::prune::parse_age)]
    pub keep_younger_than: Duration,

    /// Print the report as yaml or json (an ImagePrune object) instead of oc's lines
    #[arg(short = 'o', long, value_name = "FORMAT", value_parser = ["yaml", "json"])]
    pub output: Option<String>,
}

/// What oc prints when nothing will change.
const DRY_RUN_NOTICE: &str =
    "Dry run enabled - no modifications will be made. Add --confirm to remove images";

/// Runs `moor prune ...`; `namespace` is `-n` when given (only that namespace's history).
pub async fn run(
    session: &Session,
    namespace: Option<&str>,
    args: PruneArgs,
) -> Result<(), CliError> {
    match args.what {
        PruneCommand::Images(a) => images(session, namespace, a).await,
    }
}

async fn images(
    session: &Session,
    namespace: Option<&str>,
    args: PruneImagesArgs,
) -> Result<(), CliError> {
    let request = ImagePrune {
        spec: ImagePruneSpec {
            keep_tag_revisions: Some(args.keep_tag_revisions),
            keep_younger_than: Some(args.keep_younger_than),
            namespace: namespace.map(str::to_string),
            dry_run: !args.confirm,
        },
        ..Default::default()
    };
    let body = serde_json::to_value(&request).map_err(|e| ClientError::Decode(e.to_string()))?;
    let answer = match session.post_json(PATH, &body).await {
        Err(ClientError::Api(status)) if status.code == 404 => {
            return Err(CliError::Usage(format!(
                "the server does not prune images (POST {PATH} answered 404): is it `moor serve` with its registry?"
            )));
        }
        other => other?,
    };
    let prune: ImagePrune =
        serde_json::from_value(answer.clone()).map_err(|e| ClientError::Decode(e.to_string()))?;
    let status = prune
        .status
        .ok_or_else(|| ClientError::Decode("the ImagePrune has no status".into()))?;
    if status.dry_run && args.output.is_none() {
        note(DRY_RUN_NOTICE);
    }
    match args.output.as_deref() {
        Some("json") => emit(&to_json(&answer)?)?,
        Some(_) => emit(&to_yaml(&answer)?)?,
        None => emit(&render(&status))?,
    }
    for w in &status.warnings {
        note(&format!("Warning: {w}"));
    }
    for e in &status.errors {
        note(e);
    }
    if status.errors.is_empty() {
        Ok(())
    } else {
        Err(CliError::Reported)
    }
}

/// oc's lines for what was (or would be) removed, and its summary.
fn render(status: &ImagePruneStatus) -> String {
    let mut out = String::new();
    for (ns, stream, n) in status.updated_streams() {
        out.push_str(&format!(
            "Deleting {n} items from image stream {ns}/{stream}\n"
        ));
    }
    for i in &status.images {
        out.push_str(&format!("Deleting image {}\n", i.name));
    }
    for r in &status.repositories {
        out.push_str(&format!("Deleting repository {r}\n"));
    }
    for l in &status.links {
        out.push_str(&format!(
            "Deleting {} link {} in repository {}\n",
            l.kind, l.digest, l.repository
        ));
    }
    for b in &status.blobs {
        out.push_str(&format!("Deleting blob {}\n", b.digest));
    }
    out.push_str(&format!("Summary: {}\n", summary(status)));
    out
}

/// `deleted 2 image object(s), ...` as oc sums up, with the bytes freed; a dry run
/// says `would delete` (and `would update`, `would free`).
fn summary(status: &ImagePruneStatus) -> String {
    let (deleted, updated) = if status.dry_run {
        ("would delete", "would update")
    } else {
        ("deleted", "updated")
    };
    let count = |kind: &str| status.links.iter().filter(|l| l.kind == kind).count();
    let parts: Vec<String> = [
        (status.images.len(), "deleted {} image object(s)"),
        (
            status.history_items.len(),
            "deleted {} image stream tag item(s)",
        ),
        (status.updated_streams().len(), "updated {} image stream(s)"),
        (count("layer"), "deleted {} layer link(s)"),
        (count("manifest"), "deleted {} manifest link(s)"),
        (status.repositories.len(), "deleted {} repository record(s)"),
        (status.blobs.len(), "deleted {} blob(s)"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, text)| {
        text.replace("{}", &n.to_string())
            .replace("deleted", deleted)
            .replace("updated", updated)
    })
    .collect();
    if parts.is_empty() {
        return format!("{deleted} 0 objects");
    }
    let mut text = parts.join(", ");
    if status.bytes_freed > 0 {
        text.push_str(&format!(
            ", {} {}",
            if status.dry_run {
                "would free"
            } else {
                "freed"
            },
            human_size(i64::try_from(status.bytes_freed).unwrap_or(i64::MAX))
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use moor_api::prune::{PrunedBlob, PrunedImage, PrunedLink, PrunedTagEvent};

    use super::*;

    #[test]
    fn the_report_reads_like_oc() {
        let item = |tag: &str| PrunedTagEvent {
            namespace: "default".into(),
            image_stream: "app".into(),
            tag: tag.into(),
            image: "sha256:1".into(),
            ..Default::default()
        };
        let status = ImagePruneStatus {
            history_items: vec![item("1.0"), item("2.0")],
            images: vec![PrunedImage {
                name: "sha256:1".into(),
                ..Default::default()
            }],
            links: vec![PrunedLink {
                repository: "default/app".into(),
                kind: "manifest".into(),
                digest: "sha256:1".into(),
            }],
            blobs: vec![PrunedBlob {
                digest: "sha256:1".into(),
                size: 1500,
            }],
            bytes_freed: 1500,
            ..Default::default()
        };
        assert_eq!(
            render(&status),
            "Deleting 2 items from image stream default/app\n\
             Deleting image sha256:1\n\
             Deleting manifest link sha256:1 in repository default/app\n\
             Deleting blob sha256:1\n\
             Summary: deleted 1 image object(s), deleted 2 image stream tag item(s), \
             updated 1 image stream(s), deleted 1 manifest link(s), deleted 1 blob(s), \
             freed 1.46 KiB\n"
        );
        assert_eq!(
            render(&ImagePruneStatus::default()),
            "Summary: deleted 0 objects\n"
        );
        let dry = ImagePruneStatus {
            dry_run: true,
            ..status
        };
        assert!(
            render(&dry).ends_with(
                "Summary: would delete 1 image object(s), would delete 2 image stream tag item(s), \
                 would update 1 image stream(s), would delete 1 manifest link(s), would delete 1 blob(s), \
                 would free 1.46 KiB\n"
            ),
            "{}",
            render(&dry)
        );
        assert_eq!(
            summary(&ImagePruneStatus {
                dry_run: true,
                ..Default::default()
            }),
            "would delete 0 objects"
        );
    }
}
