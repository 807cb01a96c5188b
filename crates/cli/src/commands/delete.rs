//! `moor delete TYPE NAME...`: deletes objects by name and prints
//! `<resource>.<group> "NAME" deleted` for each, as oc does.

use clap::Args;

use super::{emit, finish};
use crate::client::Session;
use crate::error::CliError;
use crate::resources::resolve_args;

pub(crate) const DELETE_EXAMPLES: &str = "\
Examples:
  # Delete a stream with all its tags and history
  moor delete is keycloak

  # Delete one tag of a stream
  moor delete istag keycloak:20.0";

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

/// Runs `moor delete ...`.
pub async fn run(session: &Session, args: DeleteArgs) -> Result<(), CliError> {
    let (ty, names) = resolve_args(&args.resource, &args.names)?;
    if names.is_empty() {
        return Err(CliError::Usage(
            "resource(s) were provided, but no name was specified".into(),
        ));
    }
    let namespace = session.namespace_for(ty);
    let mut errors = Vec::new();
    for name in &names {
        match session.delete(ty, namespace, name).await {
            Ok(_) => emit(&format!("{} \"{name}\" deleted\n", ty.qualified_singular()))?,
            Err(e) => errors.push(e.into()),
        }
    }
    finish(errors)
}
