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

fn main() -> ExitCode {
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
    // Before any thread starts: on success this process becomes the new image.
    let reexec = if serving {
        reexec_with_allocator_options()
    } else {
        Ok(())
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(cli, serving, reexec))
}

async fn run(cli: Cli, serving: bool, reexec: std::io::Result<()>) -> ExitCode {
    let thp = if serving {
        disable_transparent_huge_pages()
    } else {
        Ok(())
    };
    logging::init(cli.global.log_format, cli.global.verbose, serving);
    if let Err(e) = thp {
        tracing::warn!(error = %e, "could not turn transparent huge pages off");
    }
    if let Err(e) = reexec {
        tracing::warn!(error = %e, "could not restart with the allocator's options ({PURGE_DELAY_VAR}={PURGE_DELAY_MS})");
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

/// mimalloc's option for how long freed memory stays committed before it is given
/// back to the system.
const PURGE_DELAY_VAR: &str = "MIMALLOC_PURGE_DELAY";
/// `moor serve`'s purge delay, in milliseconds. mimalloc 3's default is 1,000: a
/// server that builds and drops large JSON trees (a write of a 10,000-tag stream)
/// kept up to a second's worth of freed memory resident, and peaked 280-340 MiB over
/// its baseline in `bench/large_stream_patch.py` instead of 205-225 MiB with 0 or 1
/// (docs/benchmarks.md, "Allocator").
const PURGE_DELAY_MS: &str = "1";

/// Runs this program again, in place (`execve`: same process id), with
/// [`PURGE_DELAY_VAR`] set to [`PURGE_DELAY_MS`], unless it is set already (by the
/// user, or by this). mimalloc reads its options from the environment when the
/// process starts, before `main`; the other way to set them, `mi_option_set`, is an
/// unsafe foreign call, and moor has no `unsafe`. Returns only if the exec failed.
#[cfg(all(unix, not(feature = "system-allocator")))]
fn reexec_with_allocator_options() -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    if std::env::var_os(PURGE_DELAY_VAR).is_some() {
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    Err(std::process::Command::new(&exe)
        .arg0(arg0)
        .args(args)
        .env(PURGE_DELAY_VAR, PURGE_DELAY_MS)
        .exec())
}

#[cfg(not(all(unix, not(feature = "system-allocator"))))]
fn reexec_with_allocator_options() -> std::io::Result<()> {
    Ok(())
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
