//! `moor serve`: turns the flags into [`ServeOptions`] and runs the server until it
//! is stopped. All serving lives in `moor_server::serve`.

use moor_server::serve::ServeOptions;

use crate::cli::ServeArgs;
use crate::error::CliError;

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
        import_limits: moor_server::importer::queue::ImportLimits {
            max_in_flight: args.import_concurrency as usize,
            per_registry: args.import_concurrency_per_registry as usize,
        },
        default_registry_qps: args.default_registry_qps,
        registry_qps: args.registry_qps,
        plain_http: args.plain_http,
        registry_ca: args.registry_ca,
        max_images_bulk: args.max_images_bulk,
        workload_kubeconfig: args.workload_kubeconfig,
        registry_anonymous_pull: args.registry_anonymous_pull,
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
        assert_eq!(o.import_limits, d.import_limits);
        assert_eq!(o.default_registry_qps, d.default_registry_qps);
        assert!(o.registry_qps.is_empty());
        assert_eq!(o.plain_http, d.plain_http);
    }
}
