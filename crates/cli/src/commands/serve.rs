//! `moor serve`: turns the flags into [`ServeOptions`] and runs the server until it
//! is stopped. All serving lives in `moor_server::serve`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use moor_server::registry::UploadLimits;
use moor_server::serve::{ConnectionLimits, ServeOptions};

use crate::cli::parse_duration;
use crate::error::CliError;

pub(crate) const SERVE_EXAMPLES: &str = "\
Examples:
  # Serve on the default address with SQLite under ./moor-data
  moor serve --data-dir ./moor-data

  # Serve on all interfaces; image streams name the registry as moor.example:8443
  moor serve --data-dir ./moor-data --listen 0.0.0.0:8443 --registry-hostname moor.example:8443

  # Import from a plain-HTTP registry, fetch quay.io content from a mirror, re-import every 5 minutes
  moor serve --insecure-registry localhost:5000 --registry-mirror quay.io=mirror.local:5000 \\
      --scheduled-import-interval 5m

  # Check scheduled tags on Docker Hub at most 2 requests a second, other registries 20
  moor serve --registry-qps docker.io=2 --default-registry-qps 20

  # Behind an Ingress terminating TLS for moor.example.com: the console's OIDC login comes back there
  moor serve --plain-http --authentication-config authn.yaml --console-url https://moor.example.com";

/// Flags of `moor serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory for the store, the cached content and the admin kubeconfig
    #[arg(long, value_name = "DIR", default_value = "moor-data")]
    pub data_dir: PathBuf,

    /// Address to serve the API and the registry on (port 0 picks a free port)
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8443")]
    pub listen: String,

    /// Registry host that image streams name in status.dockerImageRepository; stored in the store and used by replicas started without it [default: the stored one, else the listen address]
    #[arg(long, value_name = "HOST:PORT")]
    pub registry_hostname: Option<String>,

    /// Registry reached over plain HTTP or unverified TLS (repeatable)
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]", value_parser = parse_registry_host)]
    pub insecure_registries: Vec<String>,

    /// Fetch SOURCE/... from MIRROR/... while recording SOURCE (repeatable)
    #[arg(long = "registry-mirror", value_name = "SOURCE=MIRROR", value_parser = parse_mirror)]
    pub registry_mirrors: Vec<(String, String)>,

    /// How often scheduled tags are checked (HEAD) and re-imported when changed, e.g. 15m, 30s, 1h30m (at least 1s)
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_interval)]
    pub scheduled_import_interval: Duration,

    /// Scheduled checks in flight at most, all registries together
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub scheduled_import_concurrency: u32,

    /// Imports of spec tags in flight at most, all registries together (fair across namespaces)
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub import_concurrency: u32,

    /// Imports of spec tags in flight at most from one registry, so that a hanging registry holds only these
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub import_concurrency_per_registry: u32,

    /// Requests per second the scheduler may send to a registry not named by --registry-qps (0: no limit)
    #[arg(long, value_name = "N", default_value_t = 10.0, value_parser = parse_qps)]
    pub default_registry_qps: f64,

    /// Requests per second the scheduler may send to one registry, e.g. docker.io=2 (repeatable)
    #[arg(long = "registry-qps", value_name = "HOST=N", value_parser = parse_registry_qps)]
    pub registry_qps: Vec<(String, f64)>,

    /// Where objects are stored: sqlite://PATH, etcd://HOST:PORT[,HOST:PORT...][/PREFIX] (prefix default /moor), kine://... (the same, served by kine) or memory:// [default: SQLite under DATA_DIR]
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,

    /// Where blob content is stored: file://PATH, or s3://BUCKET[/PREFIX]?endpoint=URL&region=R with credentials from the AWS environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) [default: files under DATA_DIR/registry]
    #[arg(long, value_name = "URL")]
    pub blob_store: Option<String>,

    /// Bytes of recent events the watch cache keeps for watches that resume (0: no watch cache; lists and watches read the store)
    #[arg(long, value_name = "BYTES", default_value_t = moor_store::DEFAULT_WATCH_CACHE_BYTES)]
    pub watch_cache_bytes: usize,

    /// Let Notifications POST to private, loopback and link-local addresses (refused by default, so that users cannot make the server probe internal networks)
    #[arg(long)]
    pub allow_private_notification_targets: bool,

    /// Serve plain HTTP instead of TLS, e.g. behind a TLS-terminating proxy (kubectl then sends no token)
    #[arg(long)]
    pub plain_http: bool,

    /// A CA certificate (PEM) trusted for upstream registries besides the system roots (repeatable)
    #[arg(long = "registry-ca", value_name = "FILE")]
    pub registry_ca: Vec<PathBuf>,

    /// At most this many tags of a repository are imported by `import-image --all`; the rest are listed
    #[arg(
        long = "max-images-bulk-imported-per-repository",
        value_name = "N",
        default_value_t = 50
    )]
    pub max_images_bulk: usize,

    /// The Kubernetes API whose workloads image triggers update [default: moor's own API]
    #[arg(long, value_name = "FILE")]
    pub workload_kubeconfig: Option<PathBuf>,

    /// Deprecated: let anyone pull from every stream without credentials. Prefer RBAC:
    /// `moor policy add-role-to-group system:image-puller system:unauthenticated -n NS`
    #[arg(long)]
    pub registry_anonymous_pull: bool,

    /// Static bearer tokens, kube-apiserver's CSV format: token,user,uid,"group1,group2".
    /// The tokens are kept in memory only as hashes; the file is read at start
    #[arg(long, value_name = "FILE")]
    pub token_auth_file: Option<PathBuf>,

    /// How long connecting to an upstream registry may take
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub registry_connect_timeout: Duration,

    /// How long one request to an upstream registry may take in all, connecting included (a
    /// streamed blob instead has its idle-read limit); a registry that never answers fails the
    /// import with "timed out after N s waiting for REGISTRY"
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub registry_request_timeout: Duration,

    /// CA certificates (PEM) whose client certificates authenticate, as kube-apiserver's
    /// flag: CommonName is the user, each Organization a group. kube-apiserver calling the
    /// admission webhook presents one
    #[arg(long, value_name = "FILE")]
    pub client_ca_file: Option<PathBuf>,

    /// The serving certificate (PEM, the chain after the leaf) to use instead of the one
    /// moor issues from its own CA under DATA_DIR/tls, as kube-apiserver's flag: for
    /// example a cert-manager Certificate naming SERVICE.NAMESPACE.svc. Read again when the files change (checked every 10 s)
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_private_key_file",
        conflicts_with = "plain_http"
    )]
    pub tls_cert_file: Option<PathBuf>,

    /// A DNS name or IP address for the certificate moor issues from its own CA, besides
    /// the listen address and the registry hostname (repeatable): for example
    /// moor.moor.svc, the name kube-apiserver checks when it proxies to moor
    #[arg(long = "tls-san", value_name = "NAME", conflicts_with_all = ["tls_cert_file", "plain_http"])]
    pub tls_sans: Vec<String>,

    /// The private key (PEM) of --tls-cert-file
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    pub token_authn: TokenAuthnArgs,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten)]
    pub at_rest: AtRestArgs,

    #[command(flatten)]
    pub etcd: EtcdArgs,
}

/// `moor serve`'s cluster mode: moor as an aggregated API server of a Kubernetes
/// cluster, which authenticates and authorizes its requests (k8s.io/apiserver's
/// delegating flag names for the caches).
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Cluster mode, with the cluster this kubeconfig names: serve image.openshift.io and
    /// moor.io only, authenticate with the cluster (front-proxy certificates, TokenReview),
    /// authorize with SubjectAccessReview, mirror its namespaces, update its workloads
    #[arg(long, value_name = "FILE", conflicts_with = "in_cluster")]
    pub cluster_kubeconfig: Option<PathBuf>,

    /// Cluster mode with the pod's service account (KUBERNETES_SERVICE_HOST/PORT, its
    /// token and CA), as --cluster-kubeconfig otherwise
    #[arg(long)]
    pub in_cluster: bool,

    /// Cluster mode: how long TokenReview answers are cached
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub authentication_token_webhook_cache_ttl: Duration,

    /// Cluster mode: how long allowed SubjectAccessReview answers are cached
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub authorization_webhook_cache_authorized_ttl: Duration,

    /// Cluster mode: how long refused SubjectAccessReview answers are cached
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub authorization_webhook_cache_unauthorized_ttl: Duration,
}

impl ClusterArgs {
    /// Where the cluster is, if in cluster mode.
    fn source(&self) -> Option<moor_server::auth::cluster::ClusterSource> {
        use moor_server::auth::cluster::ClusterSource;
        match (&self.cluster_kubeconfig, self.in_cluster) {
            (Some(path), _) => Some(ClusterSource::Kubeconfig(path.clone())),
            (None, true) => Some(ClusterSource::InCluster),
            (None, false) => None,
        }
    }

    /// The caches' TTLs.
    fn caches(&self) -> moor_server::auth::cluster::CacheTtls {
        moor_server::auth::cluster::CacheTtls {
            token_review: self.authentication_token_webhook_cache_ttl,
            authorization: moor_server::auth::cluster::sar::SarOptions {
                allow_ttl: self.authorization_webhook_cache_authorized_ttl,
                deny_ttl: self.authorization_webhook_cache_unauthorized_ttl,
                ..Default::default()
            },
        }
    }
}

/// `moor serve`'s ServiceAccount token and JWT/OIDC flags (kube-apiserver's names).
#[derive(Debug, Args)]
pub struct TokenAuthnArgs {
    /// PEM private key that signs ServiceAccount tokens: RSA (PKCS#1 or PKCS#8) or EC P-256/P-384 (PKCS#8) [default: an EC key made as DATA_DIR/sa-signing-key.pem]
    #[arg(long, value_name = "FILE")]
    pub service_account_signing_key_file: Option<PathBuf>,

    /// The `iss` of ServiceAccount tokens, and the only one accepted [default: moor's URL, https://LISTEN]
    #[arg(long, value_name = "URL")]
    pub service_account_issuer: Option<String>,

    /// Audiences ServiceAccount tokens are accepted for, and get when a TokenRequest names none (comma-separated) [default: the issuer]
    #[arg(long, value_name = "AUD,...", value_delimiter = ',')]
    pub api_audiences: Vec<String>,

    /// The longest lifetime a requested ServiceAccount token gets (longer requests are capped)
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    pub service_account_max_token_expiration: Duration,

    /// kube-apiserver AuthenticationConfiguration (YAML) whose jwt[] issuers users log in with (OIDC)
    ///
    /// Standalone, moor accepts the issuers' JWTs as bearer tokens, and the web console offers "Log in with ISSUER" (authorization code with PKCE; see --console-oidc-* and --console-url).
    ///
    /// In cluster mode (--cluster-kubeconfig, --in-cluster) the file only configures the console's OIDC login (issuers, audiences as client ids, claim mappings for the name shown): moor adds no JWT authenticator there, and every token, the console's ID token included, is checked by the cluster's TokenReview. The cluster's API server must therefore trust the issuer for the console's client id.
    #[arg(long, value_name = "FILE")]
    pub authentication_config: Option<PathBuf>,

    /// The web console's OIDC client id at the --authentication-config issuers [default: each issuer's first audience]
    #[arg(long, value_name = "ID")]
    pub console_oidc_client_id: Option<String>,

    /// File holding the console's OIDC client secret (a confidential client); without it the console is a public client using PKCE
    #[arg(long, value_name = "FILE")]
    pub console_oidc_client_secret_file: Option<PathBuf>,

    /// Scopes the console asks the issuer for (space-separated) [default: "openid profile email"]
    #[arg(long, value_name = "SCOPES")]
    pub console_oidc_scopes: Option<String>,

    /// The URL browsers reach the web console at, when moor sits behind a TLS-terminating proxy or an Ingress [default: each request's Host, https when moor serves TLS]
    ///
    /// The console's OIDC login sends the identity provider URL/console/oidc/callback as its redirect_uri whatever the request's Host header says, and the console's cookies are Secure when URL is https, even though moor itself serves plain HTTP behind the proxy. Register that callback at the identity provider. URL is an absolute http or https URL of the host moor is served at the root of: no path (the console lives at /console/ of that host), query or fragment.
    ///
    /// Example: --plain-http --console-url https://moor.example.com behind an Ingress terminating TLS for moor.example.com.
    ///
    /// Without it, the redirect_uri is built from each request's Host header (https when moor serves TLS itself, http with --plain-http) and cookies are Secure only over moor's own TLS: right when browsers reach moor directly, wrong behind a proxy.
    #[arg(long, value_name = "URL")]
    pub console_url: Option<moor_server::console::ConsoleUrl>,
}

/// `moor serve`'s records and secrets at rest: encryption and the audit log, with
/// kube-apiserver's flag names.
#[derive(Debug, Args)]
pub struct AtRestArgs {
    /// Encrypt resources at rest as this kube-apiserver EncryptionConfiguration says (aesgcm, secretbox, identity)
    #[arg(long, value_name = "FILE")]
    pub encryption_provider_config: Option<PathBuf>,

    /// Write an audit.k8s.io/v1 Event (Metadata level) per mutating API request and registry push or delete to FILE ("-": stdout)
    #[arg(long, value_name = "FILE")]
    pub audit_log_path: Option<PathBuf>,

    /// Rotate the audit log before it grows past this many megabytes (0: never)
    #[arg(long = "audit-log-maxsize", value_name = "MB", default_value_t = 0)]
    pub audit_log_maxsize: u64,

    /// Rotated audit log files to keep, FILE.1 newest (0: keep all)
    #[arg(long = "audit-log-maxbackup", value_name = "N", default_value_t = 0)]
    pub audit_log_maxbackup: usize,
}

/// TLS to etcd, with kube-apiserver's flag names (for `--store etcd://...`).
#[derive(Debug, Args)]
pub struct EtcdArgs {
    /// CA certificates (PEM) that sign the etcd members' certificates; given any --etcd-* file, moor speaks TLS to etcd
    #[arg(long, value_name = "FILE")]
    pub etcd_cafile: Option<PathBuf>,

    /// Client certificate (PEM) moor presents to etcd, with --etcd-keyfile
    #[arg(long, value_name = "FILE", requires = "etcd_keyfile")]
    pub etcd_certfile: Option<PathBuf>,

    /// Private key (PEM) of --etcd-certfile
    #[arg(long, value_name = "FILE", requires = "etcd_certfile")]
    pub etcd_keyfile: Option<PathBuf>,
}

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

    /// Close a connection that has had no request in flight for this long (HTTP/2 and kept-alive HTTP/1)
    #[arg(long, value_name = "DURATION", default_value = "3m", value_parser = parse_duration)]
    pub idle_connection_timeout: Duration,

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

/// Parses `--scheduled-import-interval`: a duration of at least one second.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err(format!("invalid interval {s:?}: must be at least 1s"));
    }
    Ok(d)
}

/// Parses a requests-per-second budget: a number, 0 or more (0: no limit).
pub fn parse_qps(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(q) if q.is_finite() && q >= 0.0 => Ok(q),
        _ => Err(format!(
            "invalid requests per second {s:?}: expected a number, 0 or more (0: no limit)"
        )),
    }
}

/// Parses `--registry-qps HOST=N`.
pub fn parse_registry_qps(s: &str) -> Result<(String, f64), String> {
    let Some((host, qps)) = s.split_once('=') else {
        return Err(format!(
            "invalid registry budget {s:?}: expected HOST=N, e.g. docker.io=2"
        ));
    };
    let host = parse_registry_host(host)?;
    Ok((host.to_ascii_lowercase(), parse_qps(qps)?))
}

/// Parses `SOURCE=MIRROR` of `--registry-mirror`.
pub fn parse_mirror(s: &str) -> Result<(String, String), String> {
    let hint = "expected SOURCE=MIRROR, e.g. quay.io=mirror.local:5000 or docker.io/library=mirror.local:5000/library";
    let Some((source, mirror)) = s.split_once('=') else {
        return Err(format!("invalid registry mirror {s:?}: {hint}"));
    };
    let (source, mirror) = (source.trim(), mirror.trim());
    if source.is_empty() || mirror.is_empty() || mirror.contains('=') {
        return Err(format!("invalid registry mirror {s:?}: {hint}"));
    }
    for part in [source, mirror] {
        if part.contains("://") {
            return Err(format!(
                "invalid registry mirror {s:?}: {part:?} must be a registry host (and path), without a scheme"
            ));
        }
        if part.chars().any(char::is_whitespace) {
            return Err(format!(
                "invalid registry mirror {s:?}: {part:?} contains spaces"
            ));
        }
    }
    Ok((source.to_string(), mirror.to_string()))
}

/// Parses the `HOST[:PORT]` of `--insecure-registry`.
pub fn parse_registry_host(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || s.contains("://") || s.contains('/') || s.chars().any(char::is_whitespace) {
        return Err(format!(
            "invalid registry {s:?}: expected HOST or HOST:PORT, e.g. localhost:5000"
        ));
    }
    Ok(s.to_string())
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
        blob_store: args.blob_store,
        s3_credentials: None,
        watch_cache_bytes: args.watch_cache_bytes,
        allow_private_notification_targets: args.allow_private_notification_targets,
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
        token_auth_file: args.token_auth_file.clone(),
        client_ca_file: args.client_ca_file.clone(),
        serving_cert: args
            .tls_cert_file
            .clone()
            .zip(args.tls_private_key_file.clone()),
        tls_sans: args.tls_sans.clone(),
        registry_timeouts: moor_server::upstream::Timeouts {
            connect: args.registry_connect_timeout,
            request: args.registry_request_timeout,
            ..Default::default()
        },
        connections: ConnectionLimits {
            tls_handshake_timeout: args.limits.tls_handshake_timeout,
            request_header_timeout: args.limits.request_header_timeout,
            max_connections: args.limits.max_connections as usize,
            idle_timeout: args.limits.idle_connection_timeout,
        },
        uploads: UploadLimits {
            max_sessions: args.limits.max_upload_sessions as usize,
            max_sessions_per_repository: args.limits.max_upload_sessions_per_repository as usize,
            idle_timeout: args.limits.upload_session_idle_timeout,
        },
        token_authn: moor_server::serve::TokenAuthnOptions {
            signing_key_file: args.token_authn.service_account_signing_key_file,
            issuer: args.token_authn.service_account_issuer,
            api_audiences: args.token_authn.api_audiences,
            max_token_expiration: args.token_authn.service_account_max_token_expiration,
            authentication_config: args.token_authn.authentication_config,
        },
        console_oidc: moor_server::console::oidc::OidcClientOptions {
            client_id: args.token_authn.console_oidc_client_id,
            client_secret_file: args.token_authn.console_oidc_client_secret_file,
            scopes: args.token_authn.console_oidc_scopes,
        },
        console_url: args.token_authn.console_url,
        encryption_provider_config: args.at_rest.encryption_provider_config,
        etcd_tls: moor_store::EtcdTls {
            ca_file: args.etcd.etcd_cafile,
            cert_file: args.etcd.etcd_certfile,
            key_file: args.etcd.etcd_keyfile,
        },
        audit: moor_server::audit::AuditOptions {
            path: args.at_rest.audit_log_path,
            max_size_bytes: args.at_rest.audit_log_maxsize.saturating_mul(1024 * 1024),
            max_backups: args.at_rest.audit_log_maxbackup,
        },
        cluster: args.cluster.source(),
        cluster_caches: args.cluster.caches(),
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
    fn cluster_flags_become_options() {
        use moor_server::auth::cluster::ClusterSource;
        let parse = |extra: &[&str]| {
            let mut argv = vec!["moor", "serve"];
            argv.extend_from_slice(extra);
            let cli = Cli::try_parse_from(argv)?;
            let Command::Serve(args) = cli.command else {
                panic!("not serve")
            };
            Ok::<_, clap::Error>(options(*args))
        };
        let o = parse(&[]).unwrap();
        assert_eq!(o.cluster, None);
        assert_eq!(o.cluster_caches.token_review, Duration::from_secs(10));
        assert_eq!(
            o.cluster_caches.authorization.allow_ttl,
            Duration::from_secs(10)
        );
        assert_eq!(
            o.cluster_caches.authorization.deny_ttl,
            Duration::from_secs(10)
        );
        let o = parse(&[
            "--cluster-kubeconfig",
            "/k",
            "--authentication-token-webhook-cache-ttl",
            "2s",
            "--authorization-webhook-cache-authorized-ttl",
            "5m",
            "--authorization-webhook-cache-unauthorized-ttl",
            "3s",
        ])
        .unwrap();
        assert_eq!(o.cluster, Some(ClusterSource::Kubeconfig("/k".into())));
        assert_eq!(o.cluster_caches.token_review, Duration::from_secs(2));
        assert_eq!(
            o.cluster_caches.authorization.allow_ttl,
            Duration::from_secs(300)
        );
        assert_eq!(
            o.cluster_caches.authorization.deny_ttl,
            Duration::from_secs(3)
        );
        assert_eq!(
            parse(&["--in-cluster"]).unwrap().cluster,
            Some(ClusterSource::InCluster)
        );
        assert!(parse(&["--in-cluster", "--cluster-kubeconfig", "/k"]).is_err());
    }

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
        let o = options(*args);
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
        let (o, d) = (options(*args), ServeOptions::default());
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
        assert_eq!(o.connections, d.connections);
        assert_eq!(o.uploads, d.uploads);
        assert_eq!(o.encryption_provider_config, d.encryption_provider_config);
        assert_eq!(o.audit, d.audit);
        assert_eq!(o.console_url, d.console_url);
        assert_eq!(
            o.token_authn.max_token_expiration,
            d.token_authn.max_token_expiration
        );
    }

    #[test]
    fn token_authn_flags_become_options() {
        let cli = Cli::try_parse_from([
            "moor",
            "serve",
            "--service-account-signing-key-file",
            "/k.pem",
            "--service-account-issuer",
            "https://moor.example",
            "--api-audiences",
            "a,b",
            "--service-account-max-token-expiration",
            "2h",
            "--authentication-config",
            "/authn.yaml",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        let t = options(*args).token_authn;
        assert_eq!(t.signing_key_file, Some("/k.pem".into()));
        assert_eq!(t.issuer.as_deref(), Some("https://moor.example"));
        assert_eq!(t.api_audiences, vec!["a", "b"]);
        assert_eq!(t.max_token_expiration, Duration::from_secs(7200));
        assert_eq!(t.authentication_config, Some("/authn.yaml".into()));
    }

    #[test]
    fn console_url_becomes_an_option_or_refuses_to_parse() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["moor", "serve"];
            argv.extend(extra);
            let cli = Cli::try_parse_from(argv)?;
            let Command::Serve(args) = cli.command else {
                panic!("not serve")
            };
            Ok::<_, clap::Error>(options(*args).console_url)
        };
        assert_eq!(parse(&[]).unwrap(), None);
        let url = parse(&["--console-url", "https://moor.example.com/"])
            .unwrap()
            .expect("set");
        assert_eq!(
            url.redirect_uri(),
            "https://moor.example.com/console/oidc/callback"
        );
        let e = parse(&["--console-url", "ftp://x"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("invalid value 'ftp://x' for '--console-url <URL>'")
                && e.contains("not ftp"),
            "{e}"
        );
    }

    #[test]
    fn at_rest_flags_become_options() {
        let cli = Cli::try_parse_from([
            "moor",
            "serve",
            "--encryption-provider-config",
            "/etc/moor/enc.yaml",
            "--audit-log-path",
            "-",
            "--audit-log-maxsize",
            "100",
            "--audit-log-maxbackup",
            "5",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        let o = options(*args);
        assert_eq!(
            o.encryption_provider_config.as_deref(),
            Some(std::path::Path::new("/etc/moor/enc.yaml"))
        );
        assert_eq!(o.audit.path.as_deref(), Some(std::path::Path::new("-")));
        assert_eq!(o.audit.max_size_bytes, 100 << 20);
        assert_eq!(o.audit.max_backups, 5);
    }

    #[test]
    fn etcd_flags_become_options() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["moor", "serve", "--store", "etcd://a:2379,b:2379"];
            argv.extend(extra);
            Cli::try_parse_from(argv)
        };
        let cli = parse(&[
            "--etcd-cafile",
            "/ca.pem",
            "--etcd-certfile",
            "/c.pem",
            "--etcd-keyfile",
            "/k.pem",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        let o = options(*args);
        assert_eq!(o.store.as_deref(), Some("etcd://a:2379,b:2379"));
        let path = |p: &str| Some(std::path::PathBuf::from(p));
        assert_eq!(o.etcd_tls.ca_file, path("/ca.pem"));
        assert_eq!(o.etcd_tls.cert_file, path("/c.pem"));
        assert_eq!(o.etcd_tls.key_file, path("/k.pem"));
        // A client certificate needs its key, and the other way round.
        assert!(parse(&["--etcd-certfile", "/c.pem"]).is_err());
        assert!(parse(&["--etcd-keyfile", "/k.pem"]).is_err());
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
            "--idle-connection-timeout",
            "90s",
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
        let o = options(*args);
        assert_eq!(o.connections.max_connections, 10);
        assert_eq!(o.connections.request_header_timeout, Duration::from_secs(2));
        assert_eq!(
            o.connections.tls_handshake_timeout,
            Duration::from_millis(500)
        );
        assert_eq!(o.connections.idle_timeout, Duration::from_secs(90));
        assert_eq!(o.uploads.max_sessions, 7);
        assert_eq!(o.uploads.max_sessions_per_repository, 3);
        assert_eq!(o.uploads.idle_timeout, Duration::from_secs(60));
    }
}
