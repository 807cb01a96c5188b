//! The verbs of `moor`, one module each; [`run`] dispatches a parsed command line.
//! Commands call the client, the printers and the describers, and write to
//! stdout/stderr; they return a [`CliError`] for `main` to print.

pub(crate) mod auth;
pub(crate) mod completion;
pub(crate) mod create;
pub(crate) mod delete;
pub(crate) mod describe;
pub(crate) mod get;
pub(crate) mod import_image;
pub(crate) mod login;
pub(crate) mod mirror;
pub(crate) mod policy;
pub(crate) mod prune;
pub(crate) mod registry;
pub(crate) mod resolve;
pub(crate) mod rollback;
pub(crate) mod rollout;
pub(crate) mod serve;
pub(crate) mod set;
pub(crate) mod store;
pub(crate) mod tag;
pub(crate) mod version;

pub use import_image::ImportImageError;
pub use login::LoginError;
pub use mirror::MirrorError;
pub use policy::PolicyError;
pub use registry::RegistryLoginError;
pub use rollback::RollbackError;
pub use store::StoreCopyError;

use std::io::Write;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::client::Session;
use crate::error::CliError;

/// Runs one command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let Cli { global, command } = cli;
    match command {
        Command::Serve(args) => serve::run(*args).await,
        Command::Create(args) => create::run(&connect(&global).await?, args).await,
        Command::Get(args) => get::run(&connect(&global).await?, args).await,
        Command::Describe(args) => describe::run(&connect(&global).await?, args).await,
        Command::Delete(args) => delete::run(&connect(&global).await?, args).await,
        Command::Tag(args) => tag::run(&connect(&global).await?, args).await,
        Command::ImportImage(args) => import_image::run(&connect(&global).await?, args).await,
        Command::Rollback(args) => rollback::run(&connect(&global).await?, args).await,
        Command::Set(args) => set::run(&connect(&global).await?, args).await,
        Command::Rollout(args) => rollout::run(&connect(&global).await?, args).await,
        Command::Resolve(args) => resolve::run(&connect(&global).await?, args).await,
        Command::Prune(args) => {
            let session = connect(&global).await?;
            prune::run(&session, global.namespace.as_deref(), args).await
        }
        Command::Policy(args) => policy::run(&connect(&global).await?, args).await,
        Command::Auth(args) => auth::run(&connect(&global).await?, args).await,
        Command::Whoami(args) => auth::run_whoami(&connect(&global).await?, args).await,
        Command::Login(args) => {
            login::run(
                global.kubeconfig.as_deref(),
                global.namespace.as_deref(),
                args,
            )
            .await
        }
        Command::Registry(args) => registry::run(&connect(&global).await?, args).await,
        Command::Version(args) => version::run(args, || connect(&global)).await,
        Command::Completion(args) => completion::run(args),
        Command::Store(args) => store::run(args).await,
    }
}

async fn connect(global: &GlobalArgs) -> Result<Session, CliError> {
    Ok(Session::connect(global.kubeconfig.as_deref(), global.namespace.as_deref()).await?)
}

/// Writes `text` to stdout; a closed pipe (`moor get is | head -1`) is not an error.
pub(crate) fn emit(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Writes `bytes` to `path` readable by its owner only (0600), creating its folder:
/// through a temporary file in the same folder and a rename, so readers never see half
/// a file.
pub(crate) fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Writes a line to stderr (messages that are not output, such as "No resources
/// found").
pub(crate) fn note(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// "No resources found ..." as kubectl words it.
pub(crate) fn no_resources_message(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("No resources found in {ns} namespace."),
        None => "No resources found".to_string(),
    }
}

/// Ends a command that handled several names: nothing, the one error, or all of them.
pub(crate) fn finish(mut errors: Vec<CliError>) -> Result<(), CliError> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(CliError::Many(errors)),
    }
}
