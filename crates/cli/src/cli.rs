//! The command line of `moor`: clap definitions of every command and flag, with help
//! text that teaches by example. Parsing only: the commands live in [`crate::commands`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use moor_api::image::{ImportMode, TagReferencePolicyType};

use crate::printers::OutputFormat;

const ROOT_EXAMPLES: &str = "\
Examples:
  # Start the server (API + registry) with an embedded store; it writes ./moor-data/kubeconfig
  moor serve --data-dir ./moor-data
  export KUBECONFIG=$PWD/moor-data/kubeconfig

  # Make an image stream and look at it
  moor create is keycloak
  moor create istag keycloak:20.0 --from-image quay.io/keycloak/keycloak:20.0.2
  moor get is
  moor get istag
  moor describe is keycloak

  # Move the tag to a newer image, look at it, and go back
  moor tag quay.io/keycloak/keycloak:20.0.3 keycloak:20.0
  moor describe istag keycloak:20.0
  moor rollback keycloak:20.0

  # Let workloads say keycloak:20.0: pinned to the tag's digest, rolled when it moves
  moor set image-lookup keycloak
  moor create deployment mykeycloak --image keycloak:20.0
  moor set triggers deploy/mykeycloak --from-image keycloak:20.0
  moor rollout history deploy/mykeycloak";

const SERVE_EXAMPLES: &str = "\
Examples:
  # Serve on the default address with SQLite under ./moor-data
  moor serve --data-dir ./moor-data

  # Serve on all interfaces; image streams name the registry as moor.example:8443
  moor serve --data-dir ./moor-data --listen 0.0.0.0:8443 --registry-hostname moor.example:8443

  # Import from a plain-HTTP registry, fetch quay.io content from a mirror, re-import every 5 minutes
  moor serve --insecure-registry localhost:5000 --registry-mirror quay.io=mirror.local:5000 \\
      --scheduled-import-interval 5m

  # Check scheduled tags on Docker Hub at most 2 requests a second, other registries 20
  moor serve --registry-qps docker.io=2 --default-registry-qps 20";

const CREATE_EXAMPLES: &str = "\
Examples:
  moor create is keycloak
  moor create is keycloak --lookup-local
  moor create istag keycloak:20.0 --from-image quay.io/keycloak/keycloak:20.0.2
  moor create deployment mykeycloak --image keycloak:20.0
  moor create namespace team-a";

const CREATE_DEPLOYMENT_EXAMPLES: &str = "\
The object is the one `kubectl create deployment` builds: labels and selector app=NAME,
one container per --image named after the image. moor does not run it: it stores it,
pins short image names of streams with lookup on (keycloak:20.0 -> ...@sha256:...), and
records a revision for every change of its pod template.

Examples:
  # A deployment of the image stream tag keycloak:20.0 (after `moor set image-lookup keycloak`)
  moor create deployment mykeycloak --image keycloak:20.0

  # Two replicas, a container port, and a command
  moor create deployment web --image nginx:1.27 --replicas 2 --port 80 -- nginx -g 'daemon off;'";

const SET_EXAMPLES: &str = "\
Examples:
  moor set image-lookup keycloak
  moor set triggers deploy/mykeycloak --from-image keycloak:20.0";

const SET_IMAGE_LOOKUP_EXAMPLES: &str = "\
With lookup on, a workload of the namespace that names an image by a short name of the
stream (keycloak:20.0, keycloak@sha256:...) is pinned to the tag's current pull spec when it
is created or changed. On a workload, the resolve-names annotation asks for every short
name of it to be resolved, whatever the streams say.

Examples:
  # Print the image streams of the namespace and whether they resolve local names
  moor set image-lookup

  # Use local name lookup on image stream keycloak
  moor set image-lookup keycloak

  # Force a deployment to use local name lookup
  moor set image-lookup deploy/mykeycloak

  # Show the current status of the deployment lookup
  moor set image-lookup deploy/mykeycloak --list

  # Disable local name lookup on image stream keycloak
  moor set image-lookup keycloak --enabled=false

  # Set local name lookup on all image streams
  moor set image-lookup --all";

const SET_TRIGGERS_EXAMPLES: &str = "\
An image trigger sets a container's image to the pull spec of an image stream tag, and
again each time the tag moves to another image (a rollback of the tag moves it back).
Deployments, stateful sets, daemon sets and cron jobs take triggers; they are kept in the
image.openshift.io/triggers annotation. For a deployment, the config trigger is the
opposite of spec.paused.

Examples:
  # Print the triggers of deployment mykeycloak
  moor set triggers deploy/mykeycloak

  # Follow keycloak:20.0 in the deployment's only container (or name it with -c)
  moor set triggers deploy/mykeycloak --from-image keycloak:20.0
  moor set triggers deploy/mykeycloak --from-image keycloak:20.0 -c mykeycloak

  # Follow a tag of another namespace
  moor set triggers statefulset/db --from-image shared/postgres:16 -c main

  # Stop acting on all triggers (and pause the deployment), then resume
  moor set triggers deploy/mykeycloak --manual
  moor set triggers deploy/mykeycloak --auto

  # Remove one trigger, or all of them
  moor set triggers deploy/mykeycloak --from-image keycloak:20.0 --remove
  moor set triggers deploy/mykeycloak --remove-all";

const ROLLOUT_EXAMPLES: &str = "\
Revisions count the changes of a deployment's pod template (a trigger moving an image is
one); each is kept as a ReplicaSet, as Kubernetes keeps them.

Examples:
  moor rollout history deploy/mykeycloak
  moor rollout history deploy/mykeycloak --revision 2
  moor rollout undo deploy/mykeycloak
  moor rollout undo deploy/mykeycloak --to-revision 1";

const RESOLVE_EXAMPLES: &str = "\
Reads Kubernetes manifests (multi-document YAML, or a List), pins every image that names
an image stream tag of the namespace by a short name the way the server would (lookup on
for the stream, or the resolve-names annotation on the workload), and writes the
manifests as YAML to stdout. Nothing is written to the server; the streams are read
from it.

Examples:
  # Pin the images of a manifest before applying it anywhere
  moor resolve -f deployment.yaml > pinned.yaml

  # From stdin, failing (and naming them) when short names do not resolve
  cat k8s/*.yaml | moor resolve -f - --strict -n team-a";

const CREATE_ISTAG_EXAMPLES: &str = "\
Examples:
  # A tag that imports an image from a registry (the stream is created if missing)
  moor create istag keycloak:20.0 --from-image quay.io/keycloak/keycloak:20.0.2

  # Re-import it every 15 minutes, and let pulls go through moor's registry
  moor create istag keycloak:nightly --from-image quay.io/keycloak/keycloak:nightly \\
      --scheduled --reference-policy local

  # A tag that follows another tag of the same stream, and one pinned to an image of it
  moor create istag keycloak:stable --from keycloak:20.0
  moor create istag keycloak:pinned --from keycloak@sha256:4f2a

  # Import every platform of a multi-arch image, with an annotation on the tag
  moor create istag keycloak:multi --from-image quay.io/keycloak/keycloak:20.0.2 \\
      --import-mode PreserveOriginal -A description='Keycloak 20'";

const TAG_EXAMPLES: &str = "\
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

  # A Docker Hub image without a registry in its name
  moor tag --source=docker nginx:1.27 web:1.27

  # Remove a tag (its spec and its history)
  moor tag -d keycloak:20.0";

const IMPORT_IMAGE_EXAMPLES: &str = "\
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

const PRUNE_EXAMPLES: &str = "\
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

const ROLLBACK_EXAMPLES: &str = "\
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

const CREATE_IS_EXAMPLES: &str = "\
Examples:
  # An empty image stream named keycloak in the current namespace
  moor create is keycloak

  # One whose tags workloads of this namespace may use by short name (keycloak:20.0)
  moor create is keycloak --lookup-local";

const CREATE_NS_EXAMPLES: &str = "\
Examples:
  moor create namespace team-a
  moor create ns team-b";

const GET_EXAMPLES: &str = "\
Resource types: imagestreams (is), imagestreamtags (istag), images, namespaces (ns),
secrets, events (ev), deployments (deploy), replicasets (rs), statefulsets (sts),
daemonsets (ds), jobs, cronjobs (cj), pods (po). A name may also be given as TYPE/NAME.

Examples:
  # The image streams of the current namespace, and of every namespace
  moor get is
  moor get is -A

  # The tags of every stream, with the image digest column
  moor get istag -o wide

  # One tag as YAML, one stream's name only
  moor get istag keycloak:20.0 -o yaml
  moor get is keycloak -o name

  # Fields picked with a kubectl-style JSONPath template
  moor get is keycloak -o jsonpath='{.status.dockerImageRepository}'
  moor get is -o jsonpath='{.items[*].metadata.name}'
  moor get istag -o jsonpath='{range .items[*]}{.metadata.name}{\"\\n\"}{end}'";

const DESCRIBE_EXAMPLES: &str = "\
Resource types: imagestreams (is), imagestreamtags (istag).

Examples:
  # Tags, where each comes from, and the history of images each has pointed at
  moor describe is keycloak

  # Every image stream of the namespace
  moor describe is

  # The image a tag points at: digest, size, layers, entrypoint, labels, environment
  moor describe istag keycloak:20.0";

const DELETE_EXAMPLES: &str = "\
Examples:
  # Delete a stream with all its tags and history
  moor delete is keycloak

  # Delete one tag of a stream
  moor delete istag keycloak:20.0";

/// `moor`: image streams (short names pinned to digests, with history) as one program.
#[derive(Debug, Parser)]
#[command(
    name = "moor",
    version,
    about = "Image streams: stable short names for container images, pinned to digests, with history and rollback",
    long_about = "Image streams: stable short names for container images, pinned to digests, with history and rollback.\n\n\
`moor serve` runs the API server and registry; every other command talks to it (or to any\n\
server with the image.openshift.io API) through a kubeconfig, with the verbs and output of `oc`.",
    after_help = ROOT_EXAMPLES,
    propagate_version = true
)]
pub struct Cli {
    /// Flags every command accepts.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Namespace to work in [default: the kubeconfig context's namespace, else "default"]
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// Kubeconfig file to use [default: $KUBECONFIG, else ~/.kube/config]
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Format of the logs written to stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// More logs on stderr: -v, -vv, -vvv (RUST_LOG, when set, decides instead)
    #[arg(short = 'v', long = "verbose", global = true, action = ArgAction::Count)]
    pub verbose: u8,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Every `moor` command.
///
/// To add a verb: add a variant here with its `Args` struct (help and `after_help`
/// examples included), a module under `commands/`, and one match arm in
/// `commands::run`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API server and registry (writes DATA_DIR/kubeconfig for clients)
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),

    /// Create a resource: an image stream, an image stream tag, a deployment or a namespace
    #[command(after_help = CREATE_EXAMPLES)]
    Create(CreateArgs),

    /// Show resources as a table, or as YAML, JSON, names or JSONPath picks
    #[command(after_help = GET_EXAMPLES)]
    Get(GetArgs),

    /// Show the details of image streams (tags, sources, history) or image stream tags (the image)
    #[command(after_help = DESCRIBE_EXAMPLES)]
    Describe(DescribeArgs),

    /// Delete resources by name
    #[command(after_help = DELETE_EXAMPLES)]
    Delete(DeleteArgs),

    /// Tag existing images into image streams
    #[command(
        override_usage = "moor tag [--source=SOURCETYPE] SOURCE DEST [DEST ...]\n       moor tag -d DEST [DEST ...]",
        after_help = TAG_EXAMPLES
    )]
    Tag(TagArgs),

    /// Import images from a container image registry
    #[command(name = "import-image", after_help = IMPORT_IMAGE_EXAMPLES)]
    ImportImage(ImportImageArgs),

    /// Point a tag back at an earlier image of its history
    #[command(after_help = ROLLBACK_EXAMPLES)]
    Rollback(RollbackArgs),

    /// Change how workloads use image streams: image lookup and image triggers
    #[command(after_help = SET_EXAMPLES)]
    Set(SetArgs),

    /// Look at a deployment's revisions and go back to one
    #[command(after_help = ROLLOUT_EXAMPLES)]
    Rollout(RolloutArgs),

    /// Pin short image names in manifests to image stream tags' digests (like kbld)
    #[command(after_help = RESOLVE_EXAMPLES)]
    Resolve(ResolveArgs),

    /// Remove old image stream history, unused images and the registry blobs they held
    #[command(after_help = PRUNE_EXAMPLES)]
    Prune(PruneArgs),
}

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

/// Flags of `moor set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// What to set.
    #[command(subcommand)]
    pub what: SetCommand,
}

/// The `moor set` commands.
#[derive(Debug, Subcommand)]
pub enum SetCommand {
    /// Change how images are resolved when deploying applications
    #[command(name = "image-lookup", after_help = SET_IMAGE_LOOKUP_EXAMPLES)]
    ImageLookup(SetImageLookupArgs),

    /// Update the triggers on one or more objects
    #[command(
        override_usage = "moor set triggers RESOURCE/NAME [--from-config|--from-image=IS:TAG [-c CONTAINER]] [--auto|--manual|--remove|--remove-all]",
        after_help = SET_TRIGGERS_EXAMPLES
    )]
    Triggers(SetTriggersArgs),
}

/// Flags of `moor set image-lookup`.
#[derive(Debug, Args)]
pub struct SetImageLookupArgs {
    /// Image streams by name, or workloads as TYPE/NAME (deploy/mykeycloak)
    #[arg(value_name = "STREAMNAME|TYPE/NAME")]
    pub names: Vec<String>,

    /// Mark the image stream as resolving tagged images in this namespace (--enabled=false turns it off)
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub enabled: bool,

    /// Display the current states of the requested resources
    #[arg(long)]
    pub list: bool,

    /// Select all image streams in the namespace
    #[arg(long)]
    pub all: bool,

    /// Only image streams whose labels match this selector
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
}

/// Flags of `moor set triggers`.
#[derive(Debug, Args)]
pub struct SetTriggersArgs {
    /// The objects: TYPE/NAME (deploy/mykeycloak), or TYPE NAME...
    #[arg(value_name = "RESOURCE/NAME", required = true, num_args = 1..)]
    pub resources: Vec<String>,

    /// An image stream tag to trigger off of: [NAMESPACE/]STREAM:TAG
    #[arg(long, value_name = "IS:TAG")]
    pub from_image: Option<String>,

    /// Comma-separated container names this trigger applies to [default: the only container]
    #[arg(short = 'c', long = "containers", value_name = "NAMES")]
    pub containers: Option<String>,

    /// Configuration changes result in a rollout (for a deployment: not paused)
    #[arg(long)]
    pub from_config: bool,

    /// Remove the specified trigger(s)
    #[arg(long)]
    pub remove: bool,

    /// Remove all triggers
    #[arg(long)]
    pub remove_all: bool,

    /// Enable all triggers, or just the specified one
    #[arg(long)]
    pub auto: bool,

    /// Set all triggers to manual, or just the specified one
    #[arg(long)]
    pub manual: bool,
}

/// Flags of `moor rollout`.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// What to do.
    #[command(subcommand)]
    pub what: RolloutCommand,
}

/// The `moor rollout` commands.
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// View the revisions of a deployment
    History(RolloutHistoryArgs),
    /// Go back to an earlier revision of a deployment
    Undo(RolloutUndoArgs),
}

/// Flags of `moor rollout history`.
#[derive(Debug, Args)]
pub struct RolloutHistoryArgs {
    /// The deployment: deploy/NAME, or deploy NAME
    #[arg(value_name = "RESOURCE/NAME", required = true, num_args = 1..=2)]
    pub resource: Vec<String>,

    /// Show the details of this revision
    #[arg(long, value_name = "N")]
    pub revision: Option<i64>,
}

/// Flags of `moor rollout undo`.
#[derive(Debug, Args)]
pub struct RolloutUndoArgs {
    /// The deployment: deploy/NAME, or deploy NAME
    #[arg(value_name = "RESOURCE/NAME", required = true, num_args = 1..=2)]
    pub resource: Vec<String>,

    /// The revision to go back to [default: the one before the current]
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub to_revision: i64,
}

/// Flags of `moor resolve`.
#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The manifests to read: a file, a directory (its .yaml/.yml/.json files) or `-` for stdin (repeatable)
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,

    /// Exit with an error, naming each one, when a short name does not resolve
    #[arg(long)]
    pub strict: bool,
}

/// Flags of `moor serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory for the store, the cached content and the admin kubeconfig
    #[arg(long, value_name = "DIR", default_value = "moor-data")]
    pub data_dir: PathBuf,

    /// Address to serve the API and the registry on (port 0 picks a free port)
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8443")]
    pub listen: String,

    /// Registry host that image streams name in status.dockerImageRepository [default: the listen address]
    #[arg(long, value_name = "HOST:PORT")]
    pub registry_hostname: Option<String>,

    /// Registry reached over plain HTTP or unverified TLS (repeatable)
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]", value_parser = parse_registry_host)]
    pub insecure_registries: Vec<String>,

    /// Fetch SOURCE/... from MIRROR/... while recording SOURCE (repeatable)
    #[arg(long = "registry-mirror", value_name = "SOURCE=MIRROR", value_parser = parse_mirror)]
    pub registry_mirrors: Vec<(String, String)>,

    /// How often scheduled tags are checked (HEAD) and re-imported when changed, e.g. 15m, 30s, 1h30m (at least 1s)
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_interval)]
    pub scheduled_import_interval: Duration,

    /// Scheduled checks in flight at most, all registries together
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub scheduled_import_concurrency: u32,

    /// Imports of spec tags in flight at most, all registries together (fair across namespaces)
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub import_concurrency: u32,

    /// Imports of spec tags in flight at most from one registry, so that a hanging registry holds only these
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub import_concurrency_per_registry: u32,

    /// Requests per second the scheduler may send to a registry not named by --registry-qps (0: no limit)
    #[arg(long, value_name = "N", default_value_t = 10.0, value_parser = parse_qps)]
    pub default_registry_qps: f64,

    /// Requests per second the scheduler may send to one registry, e.g. docker.io=2 (repeatable)
    #[arg(long = "registry-qps", value_name = "HOST=N", value_parser = parse_registry_qps)]
    pub registry_qps: Vec<(String, f64)>,

    /// Where objects are stored: sqlite://PATH or memory:// [default: SQLite under DATA_DIR]
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,

    /// Serve plain HTTP instead of TLS, e.g. behind a TLS-terminating proxy (kubectl then sends no token)
    #[arg(long)]
    pub plain_http: bool,

    /// A CA certificate (PEM) trusted for upstream registries besides the system roots (repeatable)
    #[arg(long = "registry-ca", value_name = "FILE")]
    pub registry_ca: Vec<PathBuf>,

    /// At most this many tags of a repository are imported by `import-image --all`; the rest are listed
    #[arg(
        long = "max-images-bulk-imported-per-repository",
        value_name = "N",
        default_value_t = 50
    )]
    pub max_images_bulk: usize,

    /// The Kubernetes API whose workloads image triggers update [default: moor's own API]
    #[arg(long, value_name = "FILE")]
    pub workload_kubeconfig: Option<PathBuf>,

    /// Let the registry serve pulls (GET/HEAD under /v2/) without credentials; pushes always need the token
    #[arg(long)]
    pub registry_anonymous_pull: bool,
}

/// Flags of `moor create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// What to create.
    #[command(subcommand)]
    pub what: CreateCommand,
}

/// The kinds `moor create` makes.
#[derive(Debug, Subcommand)]
pub enum CreateCommand {
    /// Create an empty image stream
    #[command(name = "imagestream", visible_alias = "is", after_help = CREATE_IS_EXAMPLES)]
    ImageStream(CreateImageStreamArgs),

    /// Create a namespace
    #[command(name = "namespace", visible_alias = "ns", after_help = CREATE_NS_EXAMPLES)]
    Namespace(CreateNamespaceArgs),

    /// Create an image stream tag (and its stream, if missing)
    #[command(name = "imagestreamtag", visible_alias = "istag", after_help = CREATE_ISTAG_EXAMPLES)]
    ImageStreamTag(CreateImageStreamTagArgs),

    /// Create a deployment with the specified name
    #[command(name = "deployment", visible_alias = "deploy", after_help = CREATE_DEPLOYMENT_EXAMPLES)]
    Deployment(CreateDeploymentArgs),
}

/// Flags of `moor create deployment`.
#[derive(Debug, Args)]
pub struct CreateDeploymentArgs {
    /// Name of the deployment
    pub name: String,

    /// Image name to run: a pull spec or a short name of an image stream tag (repeatable)
    #[arg(long = "image", value_name = "IMAGE", required = true)]
    pub images: Vec<String>,

    /// Number of replicas to create
    #[arg(short = 'r', long, value_name = "N", default_value_t = 1)]
    pub replicas: i32,

    /// The containerPort the first container exposes
    #[arg(long, value_name = "PORT")]
    pub port: Option<i32>,

    /// The command the containers run instead of the image's entrypoint
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Flags of `moor create imagestream`.
#[derive(Debug, Args)]
pub struct CreateImageStreamArgs {
    /// Name of the image stream
    pub name: String,

    /// Let workloads in this namespace use the stream's tags by short name (keycloak:20.0)
    #[arg(long)]
    pub lookup_local: bool,
}

/// Flags of `moor create imagestreamtag`.
#[derive(Debug, Args)]
pub struct CreateImageStreamTagArgs {
    /// The tag to create, STREAM:TAG
    #[arg(value_name = "STREAM:TAG")]
    pub name: String,

    /// Use the provided remote image with this tag
    #[arg(long, value_name = "PULLSPEC", conflicts_with = "from")]
    pub from_image: Option<String>,

    /// Use the provided image stream tag or image stream image as the source: [NAMESPACE/]STREAM[:TAG|@DIGEST]
    #[arg(long, value_name = "SOURCE")]
    pub from: Option<String>,

    /// Check the remote source of this image periodically for new images (registry sources only)
    #[arg(long)]
    pub scheduled: bool,

    /// Allow importing from registries that are not fully secured by HTTPS
    #[arg(long)]
    pub insecure: bool,

    /// How pull specs of this tag's images are written: source (the original registry) or local (moor's registry)
    #[arg(long, value_name = "POLICY", value_parser = parse_reference_policy)]
    pub reference_policy: Option<ReferencePolicy>,

    /// How a manifest list is imported: Legacy (one platform) or PreserveOriginal (the whole list)
    #[arg(long, value_name = "MODE", value_parser = parse_import_mode)]
    pub import_mode: Option<ImportMode>,

    /// Use the tag's value as it is whenever the tag is referenced; nothing is imported
    #[arg(long)]
    pub reference: bool,

    /// Set an annotation on this image stream tag (repeatable, or comma-separated)
    #[arg(
        short = 'A',
        long = "annotation",
        value_name = "KEY=VALUE",
        value_delimiter = ','
    )]
    pub annotations: Vec<String>,
}

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
}

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

/// `--reference-policy`: where consumers pull a tag's images from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReferencePolicy {
    /// The image's original registry (`Source`).
    Source,
    /// moor's registry, pulling through (`Local`).
    Local,
}

impl ReferencePolicy {
    /// The API value.
    pub fn to_api(self) -> TagReferencePolicyType {
        match self {
            ReferencePolicy::Source => TagReferencePolicyType::Source,
            ReferencePolicy::Local => TagReferencePolicyType::Local,
        }
    }
}

/// `moor tag --source`: what kind of source SOURCE names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// A registry pull spec (`DockerImage`).
    Docker,
    /// A tag of a stream, `STREAM:TAG` (`ImageStreamTag`).
    ImageStreamTag,
    /// An image of a stream, `STREAM@DIGEST` (`ImageStreamImage`).
    ImageStreamImage,
}

/// Flags of `moor create namespace`.
#[derive(Debug, Args)]
pub struct CreateNamespaceArgs {
    /// Name of the namespace
    pub name: String,
}

/// Flags of `moor get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Resource type (is, istag, images, ns, ...), or TYPE/NAME
    #[arg(value_name = "TYPE[/NAME]")]
    pub resource: String,

    /// Names of the resources to show [default: all in the namespace]
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,

    /// Output format: yaml, json, wide, name or jsonpath=TEMPLATE [default: a table]
    #[arg(short = 'o', long, value_name = "FORMAT", value_parser = parse_output)]
    pub output: Option<OutputFormat>,

    /// List the resources of every namespace (adds a NAMESPACE column)
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,

    /// Only resources whose labels match this selector, e.g. app=web,tier!=db
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Print the table without its header line
    #[arg(long)]
    pub no_headers: bool,
}

/// Flags of `moor describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Resource type: is (imagestream) or istag (imagestreamtag), or TYPE/NAME
    #[arg(value_name = "TYPE[/NAME]")]
    pub resource: String,

    /// Names of the resources to describe [default: all in the namespace]
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
}

/// Flags of `moor delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Resource type (is, istag, ns, ...), or TYPE/NAME
    #[arg(value_name = "TYPE[/NAME]")]
    pub resource: String,

    /// Names of the resources to delete (STREAM:TAG for istag)
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
}

/// Parses a duration such as `15m`, `30s`, `1h30m` or `2h 5m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let signed: jiff::SignedDuration = s.trim().parse().map_err(|_| {
        format!("invalid duration {s:?}: use a number with a unit, e.g. 30s, 15m, 1h30m")
    })?;
    if signed.is_zero() {
        return Err(format!("invalid duration {s:?}: must be greater than zero"));
    }
    Duration::try_from(signed).map_err(|_| format!("invalid duration {s:?}: must not be negative"))
}

/// Parses `--scheduled-import-interval`: a duration of at least one second.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err(format!("invalid interval {s:?}: must be at least 1s"));
    }
    Ok(d)
}

/// Parses a requests-per-second budget: a number, 0 or more (0: no limit).
pub fn parse_qps(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(q) if q.is_finite() && q >= 0.0 => Ok(q),
        _ => Err(format!(
            "invalid requests per second {s:?}: expected a number, 0 or more (0: no limit)"
        )),
    }
}

/// Parses `--registry-qps HOST=N`.
pub fn parse_registry_qps(s: &str) -> Result<(String, f64), String> {
    let Some((host, qps)) = s.split_once('=') else {
        return Err(format!(
            "invalid registry budget {s:?}: expected HOST=N, e.g. docker.io=2"
        ));
    };
    let host = parse_registry_host(host)?;
    Ok((host.to_ascii_lowercase(), parse_qps(qps)?))
}

/// Parses `--reference-policy` (`source` or `local`, any case).
pub fn parse_reference_policy(s: &str) -> Result<ReferencePolicy, String> {
    match s.to_ascii_lowercase().as_str() {
        "source" => Ok(ReferencePolicy::Source),
        "local" => Ok(ReferencePolicy::Local),
        _ => Err("reference policy must be set to 'source' or 'local'".into()),
    }
}

/// Parses `--import-mode` (`Legacy` or `PreserveOriginal`, any case).
pub fn parse_import_mode(s: &str) -> Result<ImportMode, String> {
    match s.to_ascii_lowercase().as_str() {
        "legacy" => Ok(ImportMode::Legacy),
        "preserveoriginal" => Ok(ImportMode::PreserveOriginal),
        _ => Err("valid ImportMode values are Legacy or PreserveOriginal".into()),
    }
}

/// Parses `moor tag --source` with the names oc accepts.
pub fn parse_source_kind(s: &str) -> Result<SourceKind, String> {
    match s.to_ascii_lowercase().as_str() {
        "docker" | "dockerimage" => Ok(SourceKind::Docker),
        "istag" | "imagestreamtag" | "imagestreamtags" => Ok(SourceKind::ImageStreamTag),
        "isimage" | "imagestreamimage" | "imagestreamimages" => Ok(SourceKind::ImageStreamImage),
        _ => Err(format!(
            "invalid source {s:?}; valid values are docker, dockerimage, imagestreamimage, imagestreamtag, isimage, istag"
        )),
    }
}

/// Parses `SOURCE=MIRROR` of `--registry-mirror`.
pub fn parse_mirror(s: &str) -> Result<(String, String), String> {
    let hint = "expected SOURCE=MIRROR, e.g. quay.io=mirror.local:5000 or docker.io/library=mirror.local:5000/library";
    let Some((source, mirror)) = s.split_once('=') else {
        return Err(format!("invalid registry mirror {s:?}: {hint}"));
    };
    let (source, mirror) = (source.trim(), mirror.trim());
    if source.is_empty() || mirror.is_empty() || mirror.contains('=') {
        return Err(format!("invalid registry mirror {s:?}: {hint}"));
    }
    for part in [source, mirror] {
        if part.contains("://") {
            return Err(format!(
                "invalid registry mirror {s:?}: {part:?} must be a registry host (and path), without a scheme"
            ));
        }
        if part.chars().any(char::is_whitespace) {
            return Err(format!(
                "invalid registry mirror {s:?}: {part:?} contains spaces"
            ));
        }
    }
    Ok((source.to_string(), mirror.to_string()))
}

/// Parses the `HOST[:PORT]` of `--insecure-registry`.
pub fn parse_registry_host(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || s.contains("://") || s.contains('/') || s.chars().any(char::is_whitespace) {
        return Err(format!(
            "invalid registry {s:?}: expected HOST or HOST:PORT, e.g. localhost:5000"
        ));
    }
    Ok(s.to_string())
}

/// Parses the `-o` flag of `get`.
pub fn parse_output(s: &str) -> Result<OutputFormat, String> {
    OutputFormat::parse(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("-5m").is_err());
    }

    #[test]
    fn mirrors() {
        assert_eq!(
            parse_mirror("quay.io=mirror.local:5000"),
            Ok(("quay.io".into(), "mirror.local:5000".into()))
        );
        assert!(
            parse_mirror("quay.io")
                .unwrap_err()
                .contains("expected SOURCE=MIRROR")
        );
        assert!(parse_mirror("=x").is_err());
        assert!(parse_mirror("a=b=c").is_err());
        assert!(parse_mirror("https://quay.io=x").is_err());
    }

    #[test]
    fn serve_flags_parse() {
        let cli = Cli::try_parse_from([
            "moor",
            "serve",
            "--data-dir",
            "/tmp/d",
            "--listen",
            "127.0.0.1:0",
            "--insecure-registry",
            "localhost:5000",
            "--insecure-registry",
            "r:1",
            "--registry-mirror",
            "quay.io=m:5000",
            "--scheduled-import-interval",
            "2s",
        ])
        .unwrap();
        let Command::Serve(s) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(s.insecure_registries, vec!["localhost:5000", "r:1"]);
        assert_eq!(
            s.registry_mirrors,
            vec![("quay.io".to_string(), "m:5000".to_string())]
        );
        assert_eq!(s.scheduled_import_interval, Duration::from_secs(2));
    }

    #[test]
    fn scheduler_flags() {
        let cli = Cli::try_parse_from([
            "moor",
            "serve",
            "--scheduled-import-interval",
            "1s",
            "--registry-qps",
            "Docker.io=2",
            "--registry-qps",
            "127.0.0.1:5000=0.5",
            "--default-registry-qps",
            "0",
            "--scheduled-import-concurrency",
            "4",
        ])
        .unwrap();
        let Command::Serve(s) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(s.scheduled_import_interval, Duration::from_secs(1));
        assert_eq!(
            s.registry_qps,
            vec![
                ("docker.io".to_string(), 2.0),
                ("127.0.0.1:5000".to_string(), 0.5)
            ]
        );
        assert_eq!(s.default_registry_qps, 0.0);
        assert_eq!(s.scheduled_import_concurrency, 4);
        for bad in [
            ["--scheduled-import-interval", "500ms"],
            ["--registry-qps", "docker.io"],
            ["--registry-qps", "docker.io=-1"],
            ["--default-registry-qps", "fast"],
            ["--scheduled-import-concurrency", "0"],
        ] {
            let mut args = vec!["moor", "serve"];
            args.extend(bad);
            assert!(Cli::try_parse_from(&args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn global_flags_work_after_the_verb() {
        let cli =
            Cli::try_parse_from(["moor", "get", "is", "-n", "team", "-o", "wide", "-vv"]).unwrap();
        assert_eq!(cli.global.namespace.as_deref(), Some("team"));
        assert_eq!(cli.global.verbose, 2);
        let Command::Get(g) = cli.command else {
            panic!("not get")
        };
        assert_eq!(g.output, Some(OutputFormat::Wide));
    }

    #[test]
    fn create_aliases() {
        for alias in ["is", "imagestream"] {
            let cli = Cli::try_parse_from(["moor", "create", alias, "keycloak", "--lookup-local"])
                .unwrap();
            let Command::Create(CreateArgs {
                what: CreateCommand::ImageStream(a),
            }) = cli.command
            else {
                panic!("not create is")
            };
            assert_eq!(a.name, "keycloak");
            assert!(a.lookup_local);
        }
        let cli = Cli::try_parse_from(["moor", "create", "ns", "team"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Create(CreateArgs {
                what: CreateCommand::Namespace(_)
            })
        ));
    }
}
