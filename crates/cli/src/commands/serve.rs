//! `moor serve`: turns the flags into [`ServeOptions`] and runs the server until it
//! is stopped. All serving lives in `moor_server::serve`.

use std::time::Duration;

use clap::Args;
use moor_server::registry::UploadLimits;
use moor_server::serve::{ConnectionLimits, ServeOptions};

use crate::cli::{ServeArgs, parse_duration};
use crate::error::CliError;

/// `moor serve`'s limits on what one client may hold: connections, their timeouts,
/// and registry upload sessions.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Open connections at most; more wait until one closes (lowered to fit the descriptor limit)
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Close a connection whose request headers have not all arrived this long after it opened or went idle
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = parse_duration)]
    pub request_header_timeout: Duration,

    /// Close a connection whose TLS handshake takes longer than this
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub tls_handshake_timeout: Duration,

    /// Registry upload sessions open at most, all repositories together (429 beyond)
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_upload_sessions: u32,

    /// Registry upload sessions open at most in one repository (429 beyond)
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_upload_sessions_per_repository: u32,

    /// Forget a registry upload session (and its partial blob) after this long without a request
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    pub upload_session_idle_timeout: Duration,
}

/// Runs the server.
pub async fn run(args: ServeArgs) -> Result<(), CliError> {
    moor_server::serve::run(options(args)).await?;
    Ok(())
}

/// The server options the flags ask for.
fn options(args: ServeArgs) -> ServeOptions {
    ServeOptions {
        data_dir: args.data_dir,
        listen: args.listen,
        registry_hostname: args.registry_hostname,
        store: args.store,
        insecure_registries: args.insecure_registries,
        registry_mirrors: args.registry_mirrors,
        scheduled_import_interval: args.scheduled_import_interval,
        scheduled_import_concurrency: args.scheduled_import_concurrency as usize,
        default_registry_qps: args.default_registry_qps,
        registry_qps: args.registry_qps,
        plain_http: args.plain_http,
        registry_ca: args.registry_ca,
        max_images_bulk: args.max_images_bulk,
        workload_kubeconfig: args.workload_kubeconfig,
        registry_anonymous_pull: args.registry_anonymous_pull,
        connections: ConnectionLimits {
            tls_handshake_timeout: args.limits.tls_handshake_timeout,
            request_header_timeout: args.limits.request_header_timeout,
            max_connections: args.limits.max_connections as usize,
        },
        uploads: UploadLimits {
            max_sessions: args.limits.max_upload_sessions as usize,
            max_sessions_per_repository: args.limits.max_upload_sessions_per_repository as usize,
            idle_timeout: args.limits.upload_session_idle_timeout,
        },
        ..ServeOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use std::time::Duration;

    #[test]
    fn flags_become_options() {
        let cli = Cli::try_parse_from([
            "moor",
            "serve",
            "--data-dir",
            "/tmp/x",
            "--listen",
            "0.0.0.0:9000",
            "--registry-hostname",
            "moor.local:9000",
            "--registry-mirror",
            "quay.io=m:5000",
            "--store",
            "memory://",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        let o = options(args);
        assert_eq!(o.data_dir, std::path::PathBuf::from("/tmp/x"));
        assert_eq!(o.listen, "0.0.0.0:9000");
        assert_eq!(o.registry_hostname.as_deref(), Some("moor.local:9000"));
        assert_eq!(o.store.as_deref(), Some("memory://"));
        assert_eq!(
            o.registry_mirrors,
            vec![("quay.io".into(), "m:5000".into())]
        );
        assert_eq!(o.scheduled_import_interval, Duration::from_secs(15 * 60));
    }

    #[test]
    fn defaults_match_the_server() {
        let cli = Cli::try_parse_from(["moor", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        let (o, d) = (options(args), ServeOptions::default());
        assert_eq!(o.data_dir, d.data_dir);
        assert_eq!(o.listen, d.listen);
        assert_eq!(o.scheduled_import_interval, d.scheduled_import_interval);
        assert_eq!(
            o.scheduled_import_concurrency,
            d.scheduled_import_concurrency
        );
        assert_eq!(o.default_registry_qps, d.default_registry_qps);
        assert!(o.registry_qps.is_empty());
        assert_eq!(o.plain_http, d.plain_http);
        assert_eq!(o.connections, d.connections);
        assert_eq!(o.uploads, d.uploads);
    }

    #[test]
    fn limit_flags_become_options() {
        let cli = Cli::try_parse_from([
            "moor",
            "serve",
            "--max-connections",
            "10",
            "--request-header-timeout",
            "2s",
            "--tls-handshake-timeout",
            "500ms",
            "--max-upload-sessions",
            "7",
            "--max-upload-sessions-per-repository",
            "3",
            "--upload-session-idle-timeout",
            "1m",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        let o = options(args);
        assert_eq!(o.connections.max_connections, 10);
        assert_eq!(o.connections.request_header_timeout, Duration::from_secs(2));
        assert_eq!(
            o.connections.tls_handshake_timeout,
            Duration::from_millis(500)
        );
        assert_eq!(o.uploads.max_sessions, 7);
        assert_eq!(o.uploads.max_sessions_per_repository, 3);
        assert_eq!(o.uploads.idle_timeout, Duration::from_secs(60));
    }
}
