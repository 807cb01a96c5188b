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
/// live heap (measured: 30 MB live, 270 MB resident for 1,500 streams). The
/// `system-allocator` feature keeps the system's, for heap profilers.
#[cfg(not(feature = "system-allocator"))]
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
    let thp = if serving {
        disable_transparent_huge_pages()
    } else {
        Ok(())
    };
    logging::init(cli.global.log_format, cli.global.verbose, serving);
    if let Err(e) = thp {
        tracing::warn!(error = %e, "could not turn transparent huge pages off");
    }
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

/// Turns transparent huge pages off for this process (`prctl(PR_SET_THP_DISABLE)`),
/// unless `MIMALLOC_ALLOW_THP` is set, which then decides. mimalloc asks for huge pages
/// on its arenas (`MADV_HUGEPAGE`), so one small object touched in a 2 MiB region
/// made all of it resident: with them, `moor serve` peaked 75–100 MiB higher in the
/// `api` benchmark (docs/benchmarks.md, "Peak RSS"). Set before the server allocates
/// much; pages already faulted in stay as they are.
#[cfg(target_os = "linux")]
fn disable_transparent_huge_pages() -> std::io::Result<()> {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return Ok(());
    }
    rustix::thread::disable_transparent_huge_pages(true)?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn disable_transparent_huge_pages() -> std::io::Result<()> {
    Ok(())
}
