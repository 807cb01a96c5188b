//! `moor completion SHELL`: the shell completion script for `moor`, from the clap
//! definition (clap_complete), as `oc completion` prints its own.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::Cli;
use crate::error::CliError;

pub(crate) const COMPLETION_EXAMPLES: &str = "\
Examples:
  # Load completions in this bash session, or for every session
  source <(moor completion bash)
  moor completion bash > /etc/bash_completion.d/moor

  # zsh: a file named _moor in a folder of $fpath
  moor completion zsh > \"${fpath[1]}/_moor\"

  # fish
  moor completion fish > ~/.config/fish/completions/moor.fish";

/// Flags of `moor completion`.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to write the script for
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// Writes the completion script to stdout.
pub fn run(args: CompletionArgs) -> Result<(), CliError> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "moor", &mut out);
    super::emit(&String::from_utf8_lossy(&out))
}
