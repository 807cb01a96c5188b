//! The verbs of `moor`, one module each; [`run`] dispatches a parsed command line.
//! Commands call the client, the printers and the describers, and write to
//! stdout/stderr; they return a [`CliError`] for `main` to print.

pub(crate) mod completion;
pub(crate) mod create;
pub(crate) mod delete;
pub(crate) mod describe;
pub(crate) mod get;
pub(crate) mod import_image;
pub(crate) mod mirror;
pub(crate) mod prune;
pub(crate) mod resolve;
pub(crate) mod rollback;
pub(crate) mod rollout;
pub(crate) mod serve;
pub(crate) mod set;
pub(crate) mod tag;
pub(crate) mod version;

pub use import_image::ImportImageError;
pub use mirror::MirrorError;
pub use rollback::RollbackError;

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
        Command::Version(args) => version::run(args, || connect(&global)).await,
        Command::Completion(args) => completion::run(args),
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
