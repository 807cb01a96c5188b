//! Structured logs on stderr through `tracing-subscriber`: text or JSON lines, with
//! a level chosen by `-v` (or by `RUST_LOG` when it is set).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// The filter `-v` asks for: `serve` logs at info by default, client commands only
/// warn, and each `-v` goes one level further.
pub fn filter(verbose: u8, serving: bool) -> String {
    const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
    let base = if serving { 2 } else { 1 };
    let level = LEVELS[(base + usize::from(verbose)).min(LEVELS.len() - 1)];
    // kube logs refused connections at error level; the command already says so.
    let kube = if serving || verbose > 0 {
        ""
    } else {
        ",kube_client=off"
    };
    format!("{level},hyper=warn,h2=warn,rustls=warn,tower=warn{kube}")
}

/// Installs the global subscriber; later calls do nothing.
pub fn init(format: LogFormat, verbose: u8, serving: bool) {
    let env = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(filter(verbose, serving)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_verbosity() {
        assert!(filter(0, false).starts_with("warn,"));
        assert!(filter(0, false).ends_with(",kube_client=off"));
        assert!(!filter(1, false).contains("kube_client"));
        assert!(filter(1, false).starts_with("info,"));
        assert!(filter(0, true).starts_with("info,"));
        assert!(filter(1, true).starts_with("debug,"));
        assert!(filter(9, true).starts_with("trace,"));
    }
}
