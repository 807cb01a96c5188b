//! The command line of `moor`: the top-level [`Cli`] and [`Command`], the global flags,
//! and the argument values several verbs share. Each verb's own flags and examples live
//! with the verb, in `commands/<verb>.rs`. Parsing only: the commands live in
//! [`crate::commands`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use moor_api::image::{ImportMode, TagReferencePolicyType};

use crate::commands::auth::{AUTH_EXAMPLES, AuthArgs, WhoamiArgs};
use crate::commands::completion::{COMPLETION_EXAMPLES, CompletionArgs};
use crate::commands::create::{CREATE_EXAMPLES, CreateArgs};
use crate::commands::delete::{DELETE_EXAMPLES, DeleteArgs};
use crate::commands::describe::{DESCRIBE_EXAMPLES, DescribeArgs};
use crate::commands::get::{GET_EXAMPLES, GetArgs};
use crate::commands::import_image::{IMPORT_IMAGE_EXAMPLES, ImportImageArgs};
use crate::commands::login::{LOGIN_EXAMPLES, LoginArgs};
use crate::commands::policy::{POLICY_EXAMPLES, PolicyArgs};
use crate::commands::prune::{PRUNE_EXAMPLES, PruneArgs};
use crate::commands::registry::{REGISTRY_EXAMPLES, RegistryArgs};
use crate::commands::resolve::{RESOLVE_EXAMPLES, ResolveArgs};
use crate::commands::rollback::{ROLLBACK_EXAMPLES, RollbackArgs};
use crate::commands::rollout::{ROLLOUT_EXAMPLES, RolloutArgs};
use crate::commands::serve::{SERVE_EXAMPLES, ServeArgs};
use crate::commands::set::{SET_EXAMPLES, SetArgs};
use crate::commands::tag::{TAG_EXAMPLES, TagArgs};
use crate::commands::version::{VERSION_EXAMPLES, VersionArgs};

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
/// To add a verb: a module under `commands/` that owns its `Args` struct (help and
/// `after_help` examples included), a variant here, and one match arm in
/// `commands::run`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API server and registry (writes DATA_DIR/kubeconfig for clients)
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(Box<ServeArgs>),

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

    /// Manage authorization policy: grant and take back roles in a namespace
    #[command(after_help = POLICY_EXAMPLES)]
    Policy(PolicyArgs),

    /// Inspect authorization: what you may do, and who you are
    #[command(after_help = AUTH_EXAMPLES)]
    Auth(AuthArgs),

    /// Print the user name the current context acts as
    Whoami(WhoamiArgs),

    /// Log in to a server with a token: writes a kubeconfig context and makes it current
    #[command(after_help = LOGIN_EXAMPLES)]
    Login(LoginArgs),

    /// Log podman, skopeo and buildah in to moor's registry
    #[command(after_help = REGISTRY_EXAMPLES)]
    Registry(RegistryArgs),

    /// Print the client and server versions
    #[command(after_help = VERSION_EXAMPLES)]
    Version(VersionArgs),

    /// Print the shell completion script for moor (bash, zsh, fish, ...)
    #[command(after_help = COMPLETION_EXAMPLES)]
    Completion(CompletionArgs),

    /// Work on a data set's store offline: copy it between SQLite and etcd, verified
    #[command(after_help = crate::commands::store::STORE_EXAMPLES)]
    Store(crate::commands::store::StoreArgs),
}

/// kubectl's words for a flag the command does not know (`error: unknown flag:
/// --sort-by` and where to look), instead of clap's, whose tip "to pass '--sort-by' as
/// a value, use '-- --sort-by'" misleads for flags users bring from kubectl and oc.
/// `None` for every other parse error. `args` is the command line, program first.
pub fn unknown_flag_message(
    e: &clap::Error,
    args: impl IntoIterator<Item = String>,
) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(flag)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    if !flag.starts_with('-') {
        return None;
    }
    let what = match flag.strip_prefix("--") {
        Some(long) => format!("unknown flag: --{}", long.split('=').next().unwrap_or(long)),
        None => {
            let short = flag.chars().nth(1).unwrap_or('-');
            format!("unknown shorthand flag: '{short}' in {flag}")
        }
    };
    // The command path (`moor set triggers`): the words that name subcommands.
    let mut command = <Cli as clap::CommandFactory>::command();
    let mut path = vec!["moor".to_string()];
    for arg in args.into_iter().skip(1) {
        if arg.starts_with('-') {
            continue;
        }
        let Some(sub) = command
            .get_subcommands()
            .find(|c| c.get_name() == arg || c.get_all_aliases().any(|a| a == arg))
            .cloned()
        else {
            if command.has_subcommands() {
                continue;
            }
            break;
        };
        path.push(sub.get_name().to_string());
        command = sub;
    }
    Some(format!(
        "error: {what}\nSee '{} --help' for usage.",
        path.join(" ")
    ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::create::CreateCommand;
    use crate::commands::serve::parse_mirror;
    use crate::printers::OutputFormat;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn unknown_flags_read_as_kubectl_words_them() {
        let args = |line: &str| line.split(' ').map(str::to_string).collect::<Vec<_>>();
        for (line, want) in [
            (
                "moor describe is --watch-only",
                "error: unknown flag: --watch-only\nSee 'moor describe --help' for usage.",
            ),
            (
                "moor set triggers deploy/x --bogus=1",
                "error: unknown flag: --bogus\nSee 'moor set triggers --help' for usage.",
            ),
            (
                "moor -n team tag a b -Z",
                "error: unknown shorthand flag: 'Z' in -Z\nSee 'moor tag --help' for usage.",
            ),
        ] {
            let e = Cli::try_parse_from(args(line)).unwrap_err();
            assert_eq!(unknown_flag_message(&e, args(line)).as_deref(), Some(want));
            assert!(!e.to_string().is_empty());
        }
        let e = Cli::try_parse_from(args("moor get")).unwrap_err();
        assert_eq!(unknown_flag_message(&e, args("moor get")), None);
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
    fn tag_order_takes_one_value_and_keeps_the_positionals() {
        let cli = Cli::try_parse_from([
            "moor",
            "tag",
            "--tag-regex",
            "^v(?P<n>[0-9]+)$",
            "--order",
            "numerical:desc",
            "quay.io/org/app",
            "app:v",
        ])
        .unwrap();
        let Command::Tag(t) = cli.command else {
            panic!("not tag")
        };
        assert_eq!(t.args, vec!["quay.io/org/app", "app:v"]);
        assert_eq!(t.order.as_deref(), Some("numerical:desc"));
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
