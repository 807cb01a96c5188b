//! `moor version`: the client's version and the server's, as `oc version` prints them
//! (the server's from `GET /version`; `--client` asks nothing of a server).

use clap::Args;
use serde_json::Value;

use super::emit;
use crate::client::Session;
use crate::error::CliError;

pub(crate) const VERSION_EXAMPLES: &str = "\
Examples:
  # The client's and the server's versions
  moor version

  # Only the client's (no server needed)
  moor version --client

  # As JSON
  moor version -o json";

/// Flags of `moor version`.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Print the client's version only
    #[arg(long)]
    pub client: bool,

    /// Output format: json or yaml [default: lines of text]
    #[arg(short = 'o', long, value_name = "FORMAT", value_parser = ["json", "yaml"])]
    pub output: Option<String>,
}

/// This binary's version.
pub const CLIENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The moor version in a `/version` `gitVersion` (`v1.32.0+moor-0.1.0`), if any.
fn moor_version(git_version: &str) -> Option<&str> {
    git_version.split_once("+moor-").map(|(_, v)| v)
}

/// Runs `moor version`; `connect` is called only when the server is asked.
pub async fn run<F, Fut>(args: VersionArgs, connect: F) -> Result<(), CliError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Session, CliError>>,
{
    let mut doc = serde_json::json!({"clientVersion": CLIENT_VERSION});
    let mut text = format!("Client Version: {CLIENT_VERSION}\n");
    let mut failure = None;
    if !args.client {
        match server_version(connect).await {
            Ok(v) => {
                let git = v["gitVersion"].as_str().unwrap_or_default();
                if let Some(m) = moor_version(git) {
                    text.push_str(&format!("Server Version: {m}\n"));
                    doc["serverVersion"] = Value::from(m);
                }
                text.push_str(&format!("Kubernetes Version: {git}\n"));
                doc["kubernetesVersion"] = Value::from(git);
            }
            // kubectl prints what it knows, then the error.
            Err(e) => failure = Some(e),
        }
    }
    let out = match args.output.as_deref() {
        Some("json") => format!(
            "{}\n",
            serde_json::to_string_pretty(&doc).map_err(|e| CliError::Usage(e.to_string()))?
        ),
        Some(_) => serde_yaml_ng::to_string(&doc).map_err(|e| CliError::Usage(e.to_string()))?,
        None => text,
    };
    emit(&out)?;
    failure.map_or(Ok(()), Err)
}

async fn server_version<F, Fut>(connect: F) -> Result<Value, CliError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Session, CliError>>,
{
    let session = connect().await?;
    Ok(session.get_path_json("/version").await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_moor_version_is_read_from_git_version() {
        assert_eq!(moor_version("v1.32.0+moor-0.1.0"), Some("0.1.0"));
        assert_eq!(moor_version("v1.32.3"), None);
    }
}
