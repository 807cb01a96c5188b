//! The `moor` binary: parses the command line, sets up logging, runs the command and
//! turns its error into oc-style messages on stderr and an exit code.

mod cli;
mod client;
mod commands;
mod describe;
mod error;
mod logging;
mod printers;
mod resources;
mod tagging;

use std::process::ExitCode;

/// mimalloc instead of the system allocator: glibc's per-thread arenas keep freed
/// memory, so a server that briefly handles large lists stayed at several times its
/// live heap (measured: 30 MB live, 270 MB resident for 1,500 streams).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

use crate::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match cli::unknown_flag_message(&e, std::env::args()) {
            Some(text) => {
                eprintln!("{text}");
                return ExitCode::from(1);
            }
            None => e.exit(),
        },
    };
    let serving = matches!(cli.command, Command::Serve(_));
    logging::init(cli.global.log_format, cli.global.verbose, serving);
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::debug!(error = ?e, "command failed");
            let text = e.render();
            if !text.is_empty() {
                eprintln!("{text}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}
