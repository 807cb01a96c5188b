//! `moor serve`: opens the store, makes the admin token, binds the listener, writes
//! `<data-dir>/kubeconfig`, then serves [`app`](crate::app::app) until SIGTERM or
//! Ctrl-C. Readiness (`/readyz`) turns on only after the kubeconfig is written.
//!
//! [`build`] is the one composition root: [`run`] serves what it builds, and the test
//! kit (`crates/testkit`) builds through it too, supplying fakes as [`Overrides`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use moor_store::{MemoryStore, SqliteStore, Store};

use crate::apiserver::ApiConfig;
use crate::app::{AppState, app};
use crate::auth::{AdminToken, AuthLayer, ensure_admin_token, token_from_kubeconfig};
use crate::idle::IdleClose;
use crate::listener::{BoundedListener, Peer, StatusBodies};
use crate::metrics::Metrics;

/// How often store history is compacted (kube-apiserver's default).
pub const COMPACTION_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Errors that stop `moor serve` from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("data dir {} is in use by pid {pid}", path.display())]
    InUse { path: PathBuf, pid: String },
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "unsupported --store {0:?}: use sqlite://PATH, etcd://HOST:PORT[,...], kine://HOST:PORT[,...] or memory://"
    )]
    StoreUrl(String),
    #[error("{0}")]
    EtcdFlags(String),
    #[error("--store etcd: {0}")]
    Etcd(#[from] moor_store::EtcdError),
    #[error("opening the store: {0}")]
    Store(#[from] moor_store::StoreError),
    #[error("admin token: {0}")]
    Auth(#[from] crate::auth::AuthError),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bootstrap: {0}")]
    Bootstrap(String),
    #[error("server: {0}")]
    Serve(std::io::Error),
    #[error("upstream client: {0}")]
    Upstream(#[from] crate::upstream::UpstreamError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("--client-ca-file {0}")]
    ClientCa(String),
    #[error("--token-auth-file {0}")]
    TokenFile(String),
    #[error("registry storage: {0}")]
    Registry(String),
    #[error("{0}")]
    Triggers(#[from] crate::lookup::triggers::TriggerError),
    #[error("{0}")]
    ServiceAccount(#[from] crate::auth::serviceaccount::ServiceAccountError),
    #[error("--authentication-config {0}")]
    Oidc(#[from] crate::auth::oidc::OidcError),
    #[error(transparent)]
    ConsoleOidc(#[from] crate::console::oidc::OidcLoginError),
    #[error("{0}")]
    Audit(#[from] crate::audit::AuditError),
    #[error("--encryption-provider-config: {0}")]
    Encryption(#[from] crate::encryption::EncryptionError),
    #[error("{0}")]
    Identity(#[from] crate::identity::IdentityError),
    #[error("leader election: {0}")]
    Election(#[from] crate::election::ElectionError),
    #[error("cluster mode: {0}")]
    Cluster(#[source] Box<crate::auth::cluster::ClusterError>),
    #[error("cluster mode: {0}")]
    ClusterNamespaces(#[source] Box<crate::auth::cluster::namespaces::NamespaceMirrorError>),
}

impl From<crate::auth::cluster::ClusterError> for ServeError {
    fn from(e: crate::auth::cluster::ClusterError) -> Self {
        ServeError::Cluster(Box::new(e))
    }
}

impl From<crate::auth::cluster::namespaces::NamespaceMirrorError> for ServeError {
    fn from(e: crate::auth::cluster::namespaces::NamespaceMirrorError) -> Self {
        ServeError::ClusterNamespaces(Box::new(e))
    }
}

/// Everything `moor serve` is told.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub data_dir: PathBuf,
    /// `host:port`; port 0 picks a free one (the kubeconfig names the real one).
    pub listen: String,
    /// What `status.dockerImageRepository` names; default: the bound address.
    pub registry_hostname: Option<String>,
    /// `sqlite://PATH`, `etcd://HOST:PORT[,HOST:PORT...][/PREFIX]`, the same with
    /// `kine://` (etcd's API served by kine: single-key transactions only) or
    /// `memory://`; default: SQLite at `<data-dir>/moor.db`.
    pub store: Option<String>,
    /// `--blob-store`: `file://PATH` or `s3://BUCKET?endpoint=URL&region=R`; default:
    /// files under `<data-dir>/registry`.
    pub blob_store: Option<String>,
    /// S3 credentials (access key id, secret) for `blob_store`, for embedders and
    /// tests; `None` (the CLI): the AWS environment's.
    pub s3_credentials: Option<(String, String)>,
    /// `--watch-cache-bytes`: the watch cache's window of recent events (0: no cache).
    pub watch_cache_bytes: usize,
    /// `--allow-private-notification-targets`: Notifications may POST to private,
    /// loopback and link-local addresses.
    pub allow_private_notification_targets: bool,
    /// `--etcd-cafile`, `--etcd-certfile`, `--etcd-keyfile`: TLS to etcd.
    pub etcd_tls: moor_store::EtcdTls,
    pub insecure_registries: Vec<String>,
    pub registry_mirrors: Vec<(String, String)>,
    pub scheduled_import_interval: Duration,
    /// `--scheduled-import-concurrency`: scheduled checks in flight at most.
    pub scheduled_import_concurrency: usize,
    /// `--import-concurrency`, `--import-concurrency-per-registry`: spec-tag imports in
    /// flight at most, overall and per registry.
    pub import_limits: crate::importer::queue::ImportLimits,
    /// `--default-registry-qps`: the request budget of registries not listed in
    /// `registry_qps` (0: unlimited).
    pub default_registry_qps: f64,
    /// `--registry-qps HOST=N`: per-registry request budgets.
    pub registry_qps: Vec<(String, f64)>,
    /// Bookmark period of watches that ask for bookmarks.
    pub bookmark_interval: Duration,
    /// Serve plain HTTP instead of TLS (behind a TLS-terminating proxy). kubectl
    /// sends no bearer token over plain HTTP.
    pub plain_http: bool,
    /// `--max-images-bulk-imported-per-repository`.
    pub max_images_bulk: usize,
    /// `--registry-ca FILE`: CAs trusted for upstream registries besides system roots.
    pub registry_ca: Vec<PathBuf>,
    /// `--workload-kubeconfig FILE`: the API whose workloads image triggers update
    /// (default: moor's own).
    pub workload_kubeconfig: Option<PathBuf>,
    /// `--registry-anonymous-pull` (deprecated): anonymous callers may pull from every
    /// stream, whatever RBAC says. Bind `system:image-puller` to
    /// `system:unauthenticated` in a namespace instead.
    pub registry_anonymous_pull: bool,
    /// `--token-auth-file FILE`: kube-apiserver's static token CSV
    /// (`token,user,uid,"group1,group2"`), kept only as hashes.
    pub token_auth_file: Option<PathBuf>,
    /// `--registry-connect-timeout`, `--registry-request-timeout`: how long a request
    /// to an upstream registry may take to connect, and in all.
    pub registry_timeouts: crate::upstream::Timeouts,
    /// `--client-ca-file FILE`: CAs whose client certificates authenticate (CommonName
    /// the user, Organizations the groups), as kube-apiserver's flag; such callers
    /// may also call the admission webhook.
    pub client_ca_file: Option<PathBuf>,
    /// `--tls-cert-file` and `--tls-private-key-file`: the serving certificate (chain)
    /// and key to use instead of the one moor issues from its own CA.
    pub serving_cert: Option<(PathBuf, PathBuf)>,
    /// `--tls-san NAME`: more DNS names or IP addresses for the certificate moor
    /// issues from its own CA (for example `moor.moor.svc`, the name kube-apiserver's
    /// aggregator and webhook client check); unused with `serving_cert`.
    pub tls_sans: Vec<String>,
    /// The listener's connection bound and timeouts.
    pub connections: ConnectionLimits,
    /// Caps and idle expiry of registry upload sessions.
    pub uploads: crate::registry::UploadLimits,
    /// ServiceAccount tokens and OIDC login.
    pub token_authn: TokenAuthnOptions,
    /// `--encryption-provider-config FILE`: kube's `EncryptionConfiguration`, applied
    /// to the store's values.
    pub encryption_provider_config: Option<PathBuf>,
    /// `--audit-log-path` and its rotation.
    pub audit: crate::audit::AuditOptions,
    /// `--cluster-kubeconfig FILE` or `--in-cluster`: cluster mode (see
    /// [`crate::auth::cluster`]).
    pub cluster: Option<crate::auth::cluster::ClusterSource>,
    /// Cluster mode's cache TTLs (TokenReview, SubjectAccessReview).
    pub cluster_caches: crate::auth::cluster::CacheTtls,
    /// The console's OIDC client (`--console-oidc-*`).
    pub console_oidc: crate::console::oidc::OidcClientOptions,
    /// `--console-url`: where browsers reach the console (behind a TLS-terminating
    /// proxy or an Ingress); default: what each request says (`Host`, TLS or not).
    pub console_url: Option<crate::console::ConsoleUrl>,
}

/// kube-apiserver's flags for ServiceAccount tokens and JWT/OIDC login.
#[derive(Clone, Debug)]
pub struct TokenAuthnOptions {
    /// `--service-account-signing-key-file`: PEM, RSA or EC; default: a key
    /// made under the data dir.
    pub signing_key_file: Option<PathBuf>,
    /// `--service-account-issuer`: `iss` of ServiceAccount tokens; default: moor's URL.
    pub issuer: Option<String>,
    /// `--api-audiences`: audiences ServiceAccount tokens are accepted for, and get
    /// by default; default: the issuer.
    pub api_audiences: Vec<String>,
    /// `--service-account-max-token-expiration`: TokenRequests are capped at this.
    pub max_token_expiration: Duration,
    /// `--authentication-config`: `AuthenticationConfiguration` with `jwt[]` issuers.
    pub authentication_config: Option<PathBuf>,
}

impl Default for TokenAuthnOptions {
    fn default() -> Self {
        TokenAuthnOptions {
            signing_key_file: None,
            issuer: None,
            api_audiences: Vec::new(),
            max_token_expiration: Duration::from_secs(24 * 3600),
            authentication_config: None,
        }
    }
}

/// The ServiceAccount token minter and verifier of `opts` (the key loaded or made).
fn service_account_tokens(
    opts: &ServeOptions,
    url: &str,
    store: Arc<dyn Store>,
) -> Result<Arc<crate::auth::serviceaccount::ServiceAccountTokens>, ServeError> {
    use crate::auth::serviceaccount::{ServiceAccountTokens, SigningKey};
    let t = &opts.token_authn;
    let key = SigningKey::load_or_generate(t.signing_key_file.as_deref(), &opts.data_dir)?;
    Ok(Arc::new(ServiceAccountTokens::new(
        key,
        t.issuer.clone().unwrap_or_else(|| url.to_owned()),
        t.api_audiences.clone(),
        t.max_token_expiration,
        store,
    )))
}

/// The console's OIDC login, when `--authentication-config` names issuers.
type ConsoleOidc = Option<crate::console::oidc::OidcLogin>;

/// `--authentication-config`'s JWT issuers and the console's OIDC login over them
/// (`None` without the flag). Standalone, the issuers also join the API's
/// authenticators; in cluster mode they only configure the console's login, as the
/// cluster's TokenReview checks every token, the console's ID tokens included.
fn jwt_issuers(
    opts: &ServeOptions,
) -> Result<Option<(Arc<crate::auth::oidc::JwtAuthenticators>, ConsoleOidc)>, ServeError> {
    let Some(path) = &opts.token_authn.authentication_config else {
        return Ok(None);
    };
    let config = crate::auth::oidc::AuthenticationConfiguration::load(path)?;
    let jwt = Arc::new(crate::auth::oidc::JwtAuthenticators::new(&config)?);
    let login = crate::console::oidc::OidcLogin::new(&jwt, &opts.console_oidc)?;
    Ok(Some((jwt, login)))
}

/// The admin token, then ServiceAccount tokens, then `--authentication-config`'s
/// JWT issuers (kube's union order: static tokens before JWTs); and the console's
/// OIDC login over those issuers.
fn token_authenticators(
    opts: &ServeOptions,
    admin: AdminToken,
    service_accounts: Arc<crate::auth::serviceaccount::ServiceAccountTokens>,
) -> Result<(crate::auth::Authenticators, ConsoleOidc), ServeError> {
    let mut chain = crate::auth::Authenticators::default().with(Arc::new(admin));
    if let Some(path) = &opts.token_auth_file {
        chain = chain.with(Arc::new(read_token_file(path)?));
    }
    chain = chain.with(service_accounts);
    let mut console_oidc = None;
    if let Some((jwt, login)) = jwt_issuers(opts)? {
        console_oidc = login;
        chain = chain.with(jwt);
    }
    Ok((chain, console_oidc))
}

/// With `--tls-cert-file`, the listener serves the files' certificate as they change
/// (a renewal needs no restart): `config` resolves it through a [`ReloadingCert`]
/// that a task keeps up to date.
///
/// [`ReloadingCert`]: crate::tls::ReloadingCert
fn reload_given_certificate(
    opts: &ServeOptions,
    material: Option<&crate::tls::TlsMaterial>,
    config: Option<Arc<rustls::ServerConfig>>,
) -> Result<Option<Arc<rustls::ServerConfig>>, ServeError> {
    let (Some((cert, key)), Some(material), Some(mut config)) =
        (&opts.serving_cert, material, config.clone())
    else {
        return Ok(config);
    };
    let reloading = crate::tls::ReloadingCert::new(cert, key, material)?;
    Arc::make_mut(&mut config).cert_resolver = reloading.clone();
    tokio::spawn(reloading.watch());
    Ok(Some(config))
}

/// Cluster mode's delegated authentication and authorization (the cluster client,
/// the ConfigMap read). `--client-ca-file`'s CAs are accepted besides the cluster's.
async fn cluster_auth(
    opts: &ServeOptions,
    source: &crate::auth::cluster::ClusterSource,
    client_ca: Option<String>,
    clock: Option<Arc<dyn crate::clock::Clock>>,
) -> Result<crate::auth::cluster::ClusterAuth, ServeError> {
    if opts.plain_http {
        tracing::warn!(
            "cluster mode with --plain-http: no client certificates, so no front-proxy requests"
        );
    }
    if opts.registry_anonymous_pull {
        tracing::warn!(
            "--registry-anonymous-pull has no effect in cluster mode: the cluster's RBAC decides"
        );
    }
    let client = crate::auth::cluster::client(source).await?;
    let clock = clock.unwrap_or_else(|| Arc::new(crate::clock::SystemClock));
    Ok(crate::auth::cluster::ClusterAuth::start(
        client,
        client_ca,
        opts.cluster_caches.clone(),
        clock,
    )
    .await?)
}

/// The listener's TLS in cluster mode: client certificates asked for and checked
/// against the cluster's CAs as they rotate.
fn cluster_tls_config(
    material: &crate::tls::TlsMaterial,
    cluster: &crate::auth::cluster::ClusterAuth,
) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    Ok(Arc::new(
        crate::auth::x509::server_config_with_verifier(
            &material.cert_pem,
            &material.key_pem,
            cluster.certificates.handshake_verifier(),
        )
        .map_err(|e| ServeError::ClientCa(e.to_string()))?,
    ))
}

/// The admin token (and `--token-auth-file`), then the cluster's TokenReview; and
/// the console's OIDC login over `--authentication-config`'s issuers, whose ID tokens
/// the cluster must accept (moor adds no JWT authenticator of its own here).
fn cluster_authenticators(
    opts: &ServeOptions,
    admin: AdminToken,
    cluster: &crate::auth::cluster::ClusterAuth,
) -> Result<(crate::auth::Authenticators, ConsoleOidc), ServeError> {
    let mut chain = crate::auth::Authenticators::default().with(Arc::new(admin));
    if let Some(path) = &opts.token_auth_file {
        chain = chain.with(Arc::new(read_token_file(path)?));
    }
    let console_oidc = jwt_issuers(opts)?.and_then(|(_, login)| login);
    if let Some(login) = &console_oidc {
        tracing::info!(
            issuers = ?login.labels(),
            "cluster mode: --authentication-config gives the console its OIDC login only; \
             the cluster's TokenReview must accept the issuers' ID tokens"
        );
    }
    Ok((chain.with(cluster.tokens.clone()), console_oidc))
}

/// What cluster mode serves: the image API and moor's own; namespaces, Secrets,
/// ServiceAccounts, RBAC, workloads, Events and the reviews are the cluster's.
fn served_in_cluster_mode(def: &moor_apimachinery::resource::ResourceDef) -> bool {
    def.group == moor_api::authz::registry::IMAGE_GROUP || def.group == moor_api::scheduled::GROUP
}

/// Mirrors the cluster's namespaces (the first listing before serving) and follows
/// them and the authentication ConfigMap.
async fn start_cluster_followers(
    cluster: &crate::auth::cluster::ClusterAuth,
    api: Arc<moor_apimachinery::ApiServer>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, ServeError> {
    use crate::auth::cluster::namespaces::{NamespaceMirror, watch};
    crate::auth::cluster::bootstrap::apply_and_log(cluster.client.clone()).await;
    let mut events = watch(cluster.client.clone());
    let mut mirror = NamespaceMirror::new(api);
    mirror.first_listing(&mut events).await?;
    Ok(vec![
        tokio::spawn(cluster.watch()),
        tokio::spawn(mirror.run(events)),
    ])
}

/// What one client may hold of the listener: the bound on open connections and the
/// time a connection may take before its request headers have arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `--tls-handshake-timeout`: a TLS handshake must finish within this.
    pub tls_handshake_timeout: Duration,
    /// `--request-header-timeout`: a request's headers must have arrived this long
    /// after the connection opened (after TLS) or went idle after a response; else
    /// the connection is closed. One line every few seconds (slowloris) does not
    /// extend it, and it is also the idle timeout of kept-alive HTTP/1 connections.
    pub request_header_timeout: Duration,
    /// `--max-connections`: open connections at most; more wait in the kernel's
    /// backlog. Lowered at start to fit the descriptor limit.
    pub max_connections: usize,
    /// `--idle-connection-timeout`: a connection with no request in flight for this
    /// long is closed (what bounds idle HTTP/2 connections; see [`crate::idle`]).
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            tls_handshake_timeout: Duration::from_secs(10),
            request_header_timeout: Duration::from_secs(20),
            max_connections: 4096,
            idle_timeout: Duration::from_secs(180),
        }
    }
}

/// HTTP/2 keep-alive pings: a peer that does not answer one within
/// [`H2_PING_TIMEOUT`] is disconnected.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// Descriptors kept for the store, blobs, uploads and upstream connections when
/// `--max-connections` is fitted to the descriptor limit.
const RESERVED_DESCRIPTORS: u64 = 256;

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            data_dir: PathBuf::from("moor-data"),
            listen: "127.0.0.1:8443".into(),
            registry_hostname: None,
            store: None,
            blob_store: None,
            s3_credentials: None,
            watch_cache_bytes: moor_store::DEFAULT_WATCH_CACHE_BYTES,
            allow_private_notification_targets: false,
            insecure_registries: Vec::new(),
            registry_mirrors: Vec::new(),
            scheduled_import_interval: Duration::from_secs(15 * 60),
            scheduled_import_concurrency: 16,
            import_limits: Default::default(),
            default_registry_qps: crate::scheduler::budget::DEFAULT_REGISTRY_QPS,
            registry_qps: Vec::new(),
            bookmark_interval: Duration::from_secs(30),
            plain_http: false,
            max_images_bulk: 50,
            registry_ca: Vec::new(),
            workload_kubeconfig: None,
            registry_anonymous_pull: false,
            token_auth_file: None,
            registry_timeouts: Default::default(),
            client_ca_file: None,
            serving_cert: None,
            tls_sans: Vec::new(),
            connections: ConnectionLimits::default(),
            uploads: crate::registry::UploadLimits::default(),
            token_authn: TokenAuthnOptions::default(),
            encryption_provider_config: None,
            audit: Default::default(),
            cluster: None,
            cluster_caches: Default::default(),
            console_oidc: Default::default(),
            console_url: None,
            etcd_tls: Default::default(),
        }
    }
}

/// The names moor's own certificate carries: the listen address, the registry
/// hostname and every `--tls-san`.
fn serving_names(opts: &ServeOptions, registry_hostname: &str) -> Vec<String> {
    let mut names = vec![opts.listen.clone(), registry_hostname.to_owned()];
    names.extend(opts.tls_sans.iter().cloned());
    names
}

/// Reads `--token-auth-file`.
fn read_token_file(path: &Path) -> Result<moor_api::authz::tokenfile::TokenFile, ServeError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ServeError::TokenFile(format!("{}: {e}", path.display())))?;
    moor_api::authz::tokenfile::TokenFile::parse(&text)
        .map_err(|e| ServeError::TokenFile(format!("{}: {e}", path.display())))
}

/// Opens the store a `--store` URL names. A SQLite database and its `-wal` and
/// `-shm` files are made 0600 (SQLite gives the latter the database's mode).
/// The `--blob-store` URL, parsed; `None` for the default (files under the data dir).
fn blob_store_url(
    url: Option<&str>,
) -> Result<Option<crate::registry::driver::BlobStoreUrl>, ServeError> {
    url.map(str::parse)
        .transpose()
        .map_err(|e: crate::registry::driver::DriverError| ServeError::Registry(e.to_string()))
}

pub fn open_store(url: Option<&str>, data_dir: &Path) -> Result<Arc<dyn Store>, ServeError> {
    let sqlite = |path: &Path| -> Result<Arc<dyn Store>, ServeError> {
        private_database(path).map_err(|source| ServeError::DataDir {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Arc::new(SqliteStore::open(path)?))
    };
    match url {
        None => sqlite(&data_dir.join("moor.db")),
        Some(u) if u.starts_with("sqlite://") => sqlite(Path::new(&u["sqlite://".len()..])),
        Some("memory://") => Ok(Arc::new(MemoryStore::new())),
        Some(other) => Err(ServeError::StoreUrl(other.to_string())),
    }
}

/// Opens the store `--store` names: etcd (connected, over TLS when `--etcd-*` files are
/// given), else what [`open_store`] opens; with how replicas on it elect their leader
/// (an etcd lease, a lock next to the SQLite database, or none for memory).
async fn open_configured_store(
    opts: &ServeOptions,
) -> Result<(Arc<dyn Store>, crate::election::Backend), ServeError> {
    use crate::election::Backend;
    match opts.store.as_deref() {
        Some(url) if moor_store::EtcdOptions::is_url(url) => {
            let options = moor_store::EtcdOptions::from_url(url, opts.etcd_tls.clone())?;
            let endpoints = options.endpoints.join(",");
            let kind = if options.kine { "kine" } else { "etcd" };
            let store = Arc::new(moor_store::EtcdStore::connect(options).await?);
            tracing::info!(%endpoints, "store: {kind}");
            Ok((store.clone(), Backend::Etcd(store)))
        }
        _ if opts.etcd_tls.is_set() => Err(ServeError::EtcdFlags(
            "--etcd-cafile, --etcd-certfile and --etcd-keyfile need --store etcd://... or kine://..."
                .into(),
        )),
        url => {
            let backend = match url {
                Some("memory://") => Backend::Single,
                Some(u) if u.starts_with("sqlite://") => {
                    Backend::FileLock(leader_lock_path(Path::new(&u["sqlite://".len()..])))
                }
                _ => Backend::FileLock(leader_lock_path(&opts.data_dir.join("moor.db"))),
            };
            Ok((open_store(url, &opts.data_dir)?, backend))
        }
    }
}

/// The lock file of the SQLite election: `<database>.leader`.
fn leader_lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".leader");
    PathBuf::from(name)
}

/// `--encryption-provider-config`, read and checked (`None` without the flag).
fn encryption_config(
    opts: &ServeOptions,
) -> Result<Option<crate::encryption::EncryptionConfig>, ServeError> {
    Ok(match &opts.encryption_provider_config {
        Some(path) => Some(crate::encryption::EncryptionConfig::load(path)?),
        None => None,
    })
}

/// `store` behind a watch cache of the API's objects (kube-apiserver's cacher; see
/// `moor_store::cache`), above encryption so that values are decrypted once per write.
/// Events are left out, as kube-apiserver leaves them: many, short-lived, rarely listed.
/// `window_bytes` 0: no cache.
fn watch_cached(
    store: Arc<dyn Store>,
    window_bytes: usize,
) -> (Arc<dyn Store>, Option<Arc<moor_store::CachedStore>>) {
    if window_bytes == 0 {
        return (store, None);
    }
    let options = moor_store::CacheOptions {
        prefixes: vec!["/registry/".into()],
        exclude: vec!["/registry/core/events/".into()],
        window_bytes,
        ..Default::default()
    };
    let cache = Arc::new(moor_store::CachedStore::new(store, options));
    (cache.clone(), Some(cache))
}

/// `store` with the configured resources' values encrypted at rest.
fn encrypted(
    store: Arc<dyn Store>,
    config: Option<crate::encryption::EncryptionConfig>,
) -> Arc<dyn Store> {
    match config {
        Some(config) => {
            tracing::info!(rules = ?config, "encrypting resources at rest");
            Arc::new(crate::encryption::EncryptedStore::new(store, config))
        }
        None => store,
    }
}

/// The kubeconfig moor writes for its admin; `ca_pem` is the CA that signed the
/// serving certificate (none for plain HTTP).
pub fn kubeconfig_yaml(server: &str, token: &str, ca_pem: Option<&str>) -> String {
    use base64::Engine;
    let ca = ca_pem
        .map(|pem| {
            let data = base64::engine::general_purpose::STANDARD.encode(pem);
            format!("    certificate-authority-data: {data}\n")
        })
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: moor\n  cluster:\n{ca}    server: {server}\ncontexts:\n- name: moor\n  context:\n    cluster: moor\n    namespace: default\n    user: admin\ncurrent-context: moor\npreferences: {{}}\nusers:\n- name: admin\n  user:\n    token: {token}\n"
    )
}

/// Creates the SQLite database `path` empty and 0600 when missing (an empty file is
/// an empty database), and makes an existing one and its `-wal` and `-shm` 0600.
fn private_database(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            set_mode(Path::new(&name), 0o600)?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Makes the data directory 0700 (creating it), and the files moor keeps at its top
/// and under `tls/` 0600, fixing what an older moor or another umask left.
fn private_data_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        set_mode(dir, 0o700)?;
        for sub in [dir.to_path_buf(), dir.join("tls")] {
            let Ok(entries) = std::fs::read_dir(&sub) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_file()) {
                    set_mode(&e.path(), 0o600)?;
                }
            }
        }
        for sub in ["tls", "registry"] {
            set_mode(&dir.join(sub), 0o700)?;
        }
    }
    Ok(())
}

/// Sets `path`'s permission bits, if it exists.
#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o777 != mode => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The upstream client's settings from the server flags.
pub fn upstream_config(opts: &ServeOptions) -> Result<crate::upstream::UpstreamConfig, ServeError> {
    let mut mirrors = Vec::new();
    for (source, mirror) in &opts.registry_mirrors {
        let m = crate::upstream::Mirror::new(source, mirror).map_err(|message| {
            crate::upstream::UpstreamError::InvalidConfig {
                message: format!("--registry-mirror {source}={mirror}: {message}"),
            }
        })?;
        mirrors.push(m);
    }
    Ok(crate::upstream::UpstreamConfig {
        insecure_registries: opts.insecure_registries.clone(),
        mirrors,
        ca_files: opts.registry_ca.clone(),
        timeouts: opts.registry_timeouts.clone(),
        ..Default::default()
    })
}

/// The lock file in the data dir: one server per data dir.
pub const LOCK_FILE: &str = "moor.lock";

/// Takes the data dir's advisory lock (an exclusive `flock` on `DIR/moor.lock`, the
/// std API), creating the dir if needed, and writes this process's id into the file.
/// Another server holding it fails this at once with [`ServeError::InUse`], before
/// anything else in the dir is touched. The lock lasts as long as the returned file
/// is open, and the kernel drops it when the process dies, even by SIGKILL.
pub fn lock_data_dir(dir: &Path) -> Result<std::fs::File, ServeError> {
    use std::io::{Read, Seek, Write};
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| ServeError::DataDir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut opts = std::fs::OpenOptions::new();
    // Not truncated on open: the holder's pid stays readable until the lock is ours.
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut file = opts.open(dir.join(LOCK_FILE)).map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = match pid.trim() {
                "" => "unknown".to_string(),
                p => p.to_string(),
            };
            return Err(ServeError::InUse {
                path: dir.to_path_buf(),
                pid,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(file)
}

/// Runs the server until a shutdown signal (SIGTERM or Ctrl-C).
pub async fn run(opts: ServeOptions) -> Result<(), ServeError> {
    build(&opts, Overrides::default())
        .await?
        .serve(shutdown_signal())
        .await
}

/// Which background loops [`build`] starts. `moor serve` starts all of them; a test
/// that drives the API alone may start none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loops {
    /// The import controller (spec tags to history).
    pub imports: bool,
    /// The scheduler of scheduled imports.
    pub scheduler: bool,
    /// The image trigger controller (workloads follow their tags).
    pub triggers: bool,
    /// Store history compaction.
    pub compactor: bool,
    /// Notification delivery (the outbox's controller).
    pub notifications: bool,
}

impl Loops {
    /// Every loop, as `moor serve` runs.
    pub const ALL: Loops = Loops {
        imports: true,
        scheduler: true,
        triggers: true,
        compactor: true,
        notifications: true,
    };
    /// No loop: the API and the registry answer requests, nothing runs by itself.
    pub const NONE: Loops = Loops {
        imports: false,
        scheduler: false,
        triggers: false,
        compactor: false,
        notifications: false,
    };
}

impl Default for Loops {
    fn default() -> Self {
        Loops::ALL
    }
}

/// Parts of the wiring a caller supplies instead of those [`build`] makes from
/// [`ServeOptions`] (tests supply fakes). The default is exactly `moor serve`'s.
#[derive(Default)]
pub struct Overrides {
    /// The store, instead of opening `--store`.
    pub store: Option<Arc<dyn Store>>,
    /// Where imports and scheduled checks read registries, instead of the upstream
    /// client (pull-through keeps the upstream client).
    pub source: Option<Arc<dyn crate::importer::Source>>,
    /// The admin token, instead of the kubeconfig's or a new one.
    pub admin_token: Option<String>,
    /// Who leads the scheduler, instead of who leads the controllers.
    pub leadership: Option<Arc<dyn crate::scheduler::Leadership>>,
    /// Who leads the controllers (importer, scheduler, triggers, compactor, stream
    /// cleanup), instead of the election on the store (always this process when
    /// [`store`](Self::store) is given).
    pub election: Option<Arc<dyn crate::scheduler::Leadership>>,
    /// The import controller's retry backoff, instead of its default.
    pub import_backoff: Option<crate::importer::controller::Backoff>,
    /// The upstream client ignores `HTTPS_PROXY` and friends.
    pub ignore_proxy_environment: bool,
    /// The loops to start.
    pub loops: Loops,
    /// Serve the API alone: no registry under `/v2/`, no `imageprunes`.
    pub api_only: bool,
    /// The clock of cluster mode's caches, instead of the system's.
    pub clock: Option<Arc<dyn crate::clock::Clock>>,
    /// How notifications are delivered (backoff, timeout), instead of the defaults
    /// (`allow_private_targets` still comes from the options).
    pub notification_delivery: Option<crate::notify::DeliveryConfig>,
}

/// moor wired with its loops started, bound but not yet serving: [`Built::serve`]
/// serves it; an in-process test may route requests to [`Built::router`] instead.
pub struct Built {
    /// What the router serves.
    pub state: AppState,
    /// The admin token.
    pub token: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// `https://ADDR` (or `http://` with `plain_http`).
    pub url: String,
    /// The background loops started.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    listener: std::net::TcpListener,
    tls: Option<crate::tls::TlsMaterial>,
    /// The listener's TLS configuration (with client CAs when given).
    tls_config: Option<Arc<rustls::ServerConfig>>,
    connections: ConnectionLimits,
    kubeconfig: PathBuf,
    /// The data dir's lock, held until the server stops.
    data_dir_lock: std::fs::File,
    /// The election this process started, resigned on a clean shutdown.
    election: Option<Arc<crate::election::Election>>,
}

/// Opens the store, binds the listener, makes the TLS material and the admin token,
/// wires the API server, the registry and the upstream client, and starts the loops:
/// everything `moor serve` does before it serves.
pub async fn build(opts: &ServeOptions, overrides: Overrides) -> Result<Built, ServeError> {
    let data_dir_lock = lock_data_dir(&opts.data_dir)?;
    private_data_dir(&opts.data_dir).map_err(|source| ServeError::DataDir {
        path: opts.data_dir.clone(),
        source,
    })?;
    let encryption = encryption_config(opts)?;
    // Replicas share their identity through the store; an in-process store is not
    // shared.
    let share_identity = overrides.store.is_none();
    let (store, election_backend) = match overrides.store {
        Some(store) => (store, crate::election::Backend::Single),
        None => open_configured_store(opts).await?,
    };
    let store = encrypted(store, encryption);
    let (store, watch_cache) = watch_cached(store, opts.watch_cache_bytes);
    let listener =
        std::net::TcpListener::bind(&opts.listen).map_err(|source| ServeError::Listen {
            addr: opts.listen.clone(),
            source,
        })?;
    listener.set_nonblocking(true).map_err(ServeError::Serve)?;
    let addr: SocketAddr = listener.local_addr().map_err(ServeError::Serve)?;
    let (leadership, election): (Arc<dyn crate::scheduler::Leadership>, _) =
        match overrides.election {
            Some(leadership) => (leadership, None),
            None => {
                let election = crate::election::Election::start(
                    election_backend,
                    format!("{addr} pid={}", std::process::id()),
                )?;
                (election.clone(), Some(election))
            }
        };
    let registry_hostname = if share_identity {
        let given = opts.registry_hostname.as_deref();
        crate::identity::registry_hostname(&store, given, &addr.to_string()).await?
    } else {
        opts.registry_hostname
            .clone()
            .unwrap_or_else(|| addr.to_string())
    };
    // Every writer of image streams below records its notification events here.
    let store = crate::notify::OutboxStore::wrap(store, &registry_hostname);
    let tls = match (&opts.serving_cert, opts.plain_http) {
        (_, true) => None,
        (Some((cert, key)), false) => Some(crate::tls::load(cert, key)?),
        (None, false) => {
            let dir = opts.data_dir.join("tls");
            if share_identity {
                crate::identity::ca(&store, &dir).await?;
            }
            Some(crate::tls::ensure(
                &dir,
                &serving_names(opts, &registry_hostname),
            )?)
        }
    };
    let client_ca = match &opts.client_ca_file {
        Some(path) if tls.is_some() => Some(
            std::fs::read_to_string(path)
                .map_err(|e| ServeError::ClientCa(format!("{}: {e}", path.display())))?,
        ),
        Some(_) => {
            tracing::warn!("--client-ca-file has no effect with --plain-http");
            None
        }
        None => None,
    };
    let cluster = match &opts.cluster {
        Some(source) => {
            Some(cluster_auth(opts, source, client_ca.clone(), overrides.clock.clone()).await?)
        }
        None => None,
    };
    let tls_config = match (&tls, &cluster) {
        (Some(m), Some(cluster)) => Some(cluster_tls_config(m, cluster)?),
        (Some(m), None) => Some(Arc::new(
            crate::auth::x509::server_config(&m.cert_pem, &m.key_pem, client_ca.as_deref())
                .map_err(|e| ServeError::ClientCa(e.to_string()))?,
        )),
        (None, _) => None,
    };
    let tls_config = reload_given_certificate(opts, tls.as_ref(), tls_config)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{addr}");
    if share_identity && opts.token_authn.signing_key_file.is_none() {
        let path = opts.data_dir.join(crate::auth::serviceaccount::KEY_FILE);
        crate::identity::service_account_key(&store, &path).await?;
    }
    let service_account_tokens = service_account_tokens(opts, &url, store.clone())?;
    let config = ApiConfig {
        registry_hostname: registry_hostname.clone(),
        server_address: addr.to_string(),
        max_images_bulk: opts.max_images_bulk,
        serving: moor_apimachinery::stored::ServingConfig {
            bookmark_interval: opts.bookmark_interval,
            ..Default::default()
        },
        service_account_tokens: Some(service_account_tokens.clone()),
    };
    let metrics = Metrics::new();
    let mut upstream_config = upstream_config(opts)?;
    if overrides.ignore_proxy_environment {
        upstream_config.use_environment_proxy = false;
    }
    let upstream = crate::upstream::UpstreamClient::new(upstream_config)?;
    upstream.register_metrics(&metrics);
    let registry_client = upstream.clone();
    let upstream: Arc<dyn crate::importer::Source> = match overrides.source {
        Some(source) => source,
        None => Arc::new(upstream),
    };
    let budgets = Arc::new(crate::scheduler::Budgets::new(
        crate::scheduler::BudgetConfig {
            default_qps: opts.default_registry_qps,
            registry_qps: opts.registry_qps.clone(),
            ..Default::default()
        },
    ));
    // Imports users wait for are not throttled, but a 429 they meet pauses the
    // scheduler's checks of that registry too.
    let api_source = Arc::new(crate::scheduler::BudgetedSource {
        inner: upstream.clone(),
        budgets: budgets.clone(),
        throttle: false,
    });
    let cluster_secrets = cluster
        .as_ref()
        .map(|c| crate::auth::cluster::secrets::ClusterSecrets::storage(c.client.clone()));
    let mut resources = crate::apiserver::Resources::with_pull_secrets(
        store.clone(),
        &config,
        api_source,
        cluster_secrets,
    );
    let importer = resources.importer.clone();
    let kubeconfig = opts.data_dir.join("kubeconfig");
    let (token, authn) = match overrides.admin_token {
        Some(token) => {
            let authn = AdminToken::for_token(&token);
            (token, authn)
        }
        None if share_identity => {
            crate::identity::admin_token(&store, token_from_kubeconfig(&kubeconfig)).await?
        }
        None => {
            let existing = token_from_kubeconfig(&kubeconfig);
            ensure_admin_token(&store, existing.as_deref()).await?
        }
    };
    let audit = crate::audit::Audit::start(&opts.audit)?;
    audit.register_metrics(&metrics);
    let (authenticators, console_oidc) = match &cluster {
        Some(cluster) => cluster_authenticators(opts, authn, cluster)?,
        None => token_authenticators(opts, authn, service_account_tokens)?,
    };
    // A login started on one replica finishes on any: they seal with one key.
    let console_oidc = match console_oidc {
        Some(login) if share_identity => {
            let key = crate::identity::console_sealing_key(&store).await?;
            Some(Arc::new(login.with_sealing_key(&key)))
        }
        other => other.map(Arc::new),
    };
    let console_cluster = match &opts.cluster {
        Some(source) => Some(crate::auth::cluster::client_without_credentials(source).await?),
        None => None,
    };
    let policy = Arc::new(crate::auth::rbac::Policy::default());
    if cluster.is_none() {
        for storage in
            crate::apiserver::resources::rbac::all(store.clone(), &config.serving, policy.clone())
        {
            resources.register(storage);
        }
    }
    let authz: Arc<dyn crate::auth::Authorizer> = if let Some(cluster) = &cluster {
        cluster.authorizer.clone()
    } else if opts.registry_anonymous_pull {
        tracing::warn!(
            "--registry-anonymous-pull is deprecated: bind the ClusterRole system:image-puller \
             to the group system:unauthenticated in the namespaces to make public"
        );
        Arc::new(crate::auth::AnonymousPull(policy.clone()))
    } else {
        policy.clone()
    };
    let authn: Arc<dyn crate::auth::Authenticator> = Arc::new(authenticators);
    if cluster.is_none() {
        for storage in
            crate::apiserver::resources::reviews::all(policy.clone(), authz.clone(), authn.clone())
        {
            resources.register(storage);
        }
    }
    let tag_source_guard = if cluster.is_some() {
        crate::apiserver::resources::image::tag_sources::TagSourceAccess::guard_delegated
    } else {
        crate::apiserver::resources::image::tag_sources::TagSourceAccess::guard
    };
    for plural in ["imagestreams", "imagestreamtags"] {
        resources.guard(moor_api::authz::registry::IMAGE_GROUP, plural, |s| {
            tag_source_guard(s, authz.clone())
        });
    }
    let auth = AuthLayer {
        authn,
        authz,
        certificates: cluster.as_ref().map(|c| {
            let certificates: Arc<dyn crate::auth::RequestAuthenticator> = c.certificates.clone();
            certificates
        }),
    };
    let registry = if overrides.api_only {
        None
    } else {
        let registry = crate::registry::Registry::new(
            crate::registry::RegistryConfig {
                root: opts.data_dir.join("registry"),
                blob_store: blob_store_url(opts.blob_store.as_deref())?,
                s3_credentials: opts.s3_credentials.clone(),
                hostname: config.registry_hostname.clone(),
                tls: tls.is_some(),
                anonymous_pull: opts.registry_anonymous_pull,
                uploads: opts.uploads.clone(),
            },
            importer.clone(),
            registry_client,
            auth.clone(),
        )
        .map_err(|e| ServeError::Registry(e.to_string()))?
        .share_through(store.clone());
        registry.register_metrics(&metrics);
        let registry = Arc::new(registry);
        importer.set_signature_mirror(Arc::new(crate::registry::sigmirror::RegistryMirror::new(
            &registry,
        )));
        registry.spawn_upload_reaper();
        resources.register(Arc::new(crate::registry::prune::ImagePrunes::new(
            registry.clone(),
            resources.workloads(),
        )));
        Some(registry)
    };
    if cluster.is_some() {
        resources.retain(served_in_cluster_mode);
    }
    let api = resources.into_server(store.clone(), &config);
    let mut cluster_tasks = Vec::new();
    if let Some(cluster) = &cluster {
        cluster_tasks = start_cluster_followers(cluster, api.clone()).await?;
    } else {
        crate::apiserver::bootstrap(&api)
            .await
            .map_err(|e| ServeError::Bootstrap(e.to_string()))?;
        crate::auth::rbac::reconcile_bootstrap(store.as_ref())
            .await
            .map_err(|e| ServeError::Bootstrap(format!("RBAC policy: {e}")))?;
        crate::auth::rbac::refresh(store.as_ref(), &policy).await?;
    }
    // Namespaces created from here on get their bindings from the follower.
    let namespaces_from = store.current_revision().await?;
    register_leadership_metrics(&metrics, leadership.clone());
    if let Some(cache) = watch_cache {
        metrics.register_collector(Box::new(crate::metrics::WatchCacheCollector(cache)));
    }
    let state = AppState {
        api,
        auth,
        metrics,
        ready: Arc::new(AtomicBool::new(false)),
        registry,
        audit,
        leadership: Some(leadership.clone()),
        console: crate::console::Setup {
            oidc: console_oidc,
            cluster: console_cluster,
            url: opts.console_url.clone(),
        },
    };
    let loops = overrides.loops;
    let mut tasks = cluster_tasks;
    if cluster.is_none() {
        tasks.push(tokio::spawn(crate::auth::rbac::run_policy_watch(
            store.clone(),
            policy.clone(),
        )));
        tasks.push(tokio::spawn(crate::auth::rbac::run_namespace_bindings(
            store.clone(),
            namespaces_from,
        )));
    }
    use crate::election::fence::{FencedStorage, FencedStore, fence_layer};
    use crate::election::while_leading;
    if loops.compactor {
        let fenced = FencedStore::wrap(store.clone(), leadership.clone());
        tasks.push(tokio::spawn(while_leading(
            leadership.clone(),
            "compactor",
            move || crate::compactor::run(fenced.clone(), COMPACTION_INTERVAL),
        )));
    }
    if let Some(registry) = &state.registry {
        let registry = registry.clone();
        tasks.push(tokio::spawn(while_leading(
            leadership.clone(),
            "stream-cleanup",
            move || registry.stream_cleanup(),
        )));
    }
    let import_metrics = crate::importer::ImportMetrics::default();
    import_metrics.register(&state.metrics);
    if loops.imports {
        let fenced =
            Arc::new(importer.with_storages(|s| FencedStorage::wrap(s, leadership.clone())));
        let backoff = overrides.import_backoff.unwrap_or_default();
        let (limits, import_metrics) = (opts.import_limits, import_metrics.clone());
        tasks.push(tokio::spawn(while_leading(
            leadership.clone(),
            "imports",
            move || {
                crate::importer::controller::ImportController::new(fenced.clone(), backoff.clone())
                    .with_limits(limits)
                    .with_metrics(import_metrics.clone())
                    .run()
            },
        )));
    }
    if loops.notifications {
        start_notifications(
            &mut tasks,
            opts,
            overrides.notification_delivery.clone(),
            &state.metrics,
            FencedStore::wrap(store.clone(), leadership.clone()),
            leadership.clone(),
            &url,
            &registry_hostname,
        );
    }
    let scheduler_leadership = overrides.leadership.unwrap_or_else(|| leadership.clone());
    let scheduler = crate::scheduler::Scheduler::new(
        Arc::new(importer.with_storages(|s| FencedStorage::wrap(s, scheduler_leadership.clone()))),
        upstream,
        FencedStore::wrap(store.clone(), scheduler_leadership.clone()),
        budgets,
        crate::scheduler::SchedulerConfig {
            interval: opts.scheduled_import_interval,
            concurrency: opts.scheduled_import_concurrency,
            ..Default::default()
        },
    )
    .with_import_metrics(import_metrics);
    scheduler.register_metrics(&state.metrics);
    if loops.scheduler {
        tasks.push(tokio::spawn(scheduler.run(scheduler_leadership)));
    }
    if loops.triggers {
        // Its writes to moor's own API are fenced; to another cluster's, only gated.
        // Streams are read in process (no HTTP watch of them).
        let workloads = match (&opts.workload_kubeconfig, &cluster) {
            (Some(path), _) => crate::lookup::triggers::kubeconfig_client(path).await?,
            (None, Some(cluster)) => cluster.client.clone(),
            (None, None) => kube::Client::new(
                fence_layer(
                    moor_apimachinery::router(state.api.clone()),
                    leadership.clone(),
                ),
                "default",
            ),
        };
        let streams: Arc<dyn crate::catalog::StreamStore> = importer.clone();
        tasks.push(tokio::spawn(while_leading(
            leadership.clone(),
            "triggers",
            move || {
                crate::lookup::triggers::TriggerController::new(streams.clone(), workloads.clone())
                    .run()
            },
        )));
    }
    Ok(Built {
        state,
        token,
        addr,
        url,
        tasks,
        listener,
        tls,
        tls_config,
        connections: opts.connections.clone(),
        kubeconfig,
        data_dir_lock,
        election,
    })
}

impl Built {
    /// The router over [`state`](Self::state), for in-process requests.
    pub fn router(&self) -> axum::Router {
        app(self.state.clone())
    }

    /// Serves on the bound listener, writes `<data-dir>/kubeconfig` and turns
    /// readiness on; returns when `shutdown` completes (after a graceful shutdown of
    /// at most 10 s).
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Built {
            state,
            token,
            addr,
            url,
            tasks: _,
            listener,
            tls,
            tls_config,
            connections,
            kubeconfig,
            data_dir_lock,
            election,
        } = self;
        // Held until the server has stopped.
        let _data_dir_lock = data_dir_lock;
        let handle = axum_server::Handle::new();
        let stop = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            // Another replica takes the controllers over at once, not after a TTL.
            if let Some(election) = election {
                election.resign().await;
            }
            stop.graceful_shutdown(Some(Duration::from_secs(10)));
        });
        let ready = state.ready.clone();
        let audit = state.audit.clone();
        let service = app(state).into_make_service_with_connect_info::<SocketAddr>();
        let limits = fit_connection_bound(&connections);
        let listener = tokio::net::TcpListener::from_std(listener).map_err(ServeError::Serve)?;
        let mut server = axum_server::Server::<Peer>::from_listener(BoundedListener::new(
            listener,
            limits.max_connections,
        ))
        .first_request_timeout(limits.request_header_timeout)
        .handle(handle);
        server
            .http_builder()
            .http1()
            .header_read_timeout(limits.request_header_timeout);
        server
            .http_builder()
            .http2()
            .keep_alive_interval(H2_PING_INTERVAL)
            .keep_alive_timeout(H2_PING_TIMEOUT);
        let server = match tls_config {
            Some(config) => {
                let config = axum_server::tls_rustls::RustlsConfig::from_config(config);
                let tls = axum_server::tls_rustls::RustlsAcceptor::new(config)
                    .handshake_timeout(limits.tls_handshake_timeout);
                let server =
                    server.acceptor(IdleClose::new(StatusBodies::new(tls), limits.idle_timeout));
                tokio::spawn(async move { server.serve(service).await })
            }
            None => {
                let server = server.acceptor(IdleClose::new(
                    StatusBodies::new(axum_server::accept::DefaultAcceptor),
                    limits.idle_timeout,
                ));
                tokio::spawn(async move { server.serve(service).await })
            }
        };
        write_private(
            &kubeconfig,
            &kubeconfig_yaml(&url, &token, tls.as_ref().map(|m| m.ca_pem.as_str())),
        )
        .map_err(|source| ServeError::Kubeconfig {
            path: kubeconfig.clone(),
            source,
        })?;
        ready.store(true, Ordering::SeqCst);
        tracing::info!(%addr, url = %url, kubeconfig = %kubeconfig.display(), "moor is serving");
        let served = server.await;
        audit.flush(Duration::from_secs(5)).await;
        match served {
            Ok(result) => result.map_err(ServeError::Serve),
            Err(e) => Err(ServeError::Serve(std::io::Error::other(e))),
        }
    }
}

/// Starts the notification delivery controller on the leader (its writes fenced by
/// `fenced`), with its metrics, and where the store has no multi-key transactions
/// (kine) the recorder that writes the outbox from the streams' watch.
#[allow(clippy::too_many_arguments)]
fn start_notifications(
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
    opts: &ServeOptions,
    delivery: Option<crate::notify::DeliveryConfig>,
    metrics: &Metrics,
    fenced: Arc<dyn Store>,
    leadership: Arc<dyn crate::scheduler::Leadership>,
    url: &str,
    registry_hostname: &str,
) {
    if !fenced.multi_key_txn() {
        let recorder_metrics = crate::notify::RecorderMetrics::default();
        recorder_metrics.register(metrics);
        let (store, registry) = (fenced.clone(), registry_hostname.to_owned());
        tasks.push(tokio::spawn(crate::election::while_leading(
            leadership.clone(),
            "notification-recorder",
            move || {
                crate::notify::recorder::run(
                    store.clone(),
                    registry.clone(),
                    recorder_metrics.clone(),
                )
            },
        )));
    }
    let mut config = delivery.unwrap_or_default();
    config.allow_private_targets = opts.allow_private_notification_targets;
    config.source = url.to_owned();
    let notification_metrics = crate::notify::NotificationMetrics::default();
    notification_metrics.register(metrics);
    tasks.push(tokio::spawn(crate::election::while_leading(
        leadership,
        "notifications",
        move || {
            crate::notify::deliver::run(
                fenced.clone(),
                config.clone(),
                notification_metrics.clone(),
            )
        },
    )));
}

/// `moor_is_leader`: 1 while this process leads the controllers, else 0.
fn register_leadership_metrics(
    metrics: &Metrics,
    leadership: Arc<dyn crate::scheduler::Leadership>,
) {
    let gauge = prometheus_client::metrics::gauge::Gauge::<i64>::default();
    metrics.register(
        "is_leader",
        "1 while this replica leads the controllers (importer, scheduler, triggers, compactor, stream cleanup)",
        gauge.clone(),
    );
    let mut rx = leadership.subscribe();
    gauge.set(i64::from(*rx.borrow_and_update()));
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            gauge.set(i64::from(*rx.borrow_and_update()));
        }
    });
}

/// `limits` with `max_connections` lowered to fit the process's descriptor limit
/// (raised to its hard limit first), keeping [`RESERVED_DESCRIPTORS`] for the rest.
fn fit_connection_bound(limits: &ConnectionLimits) -> ConnectionLimits {
    let mut limits = limits.clone();
    if let Some(nofile) = raise_descriptor_limit() {
        let fits = nofile.saturating_sub(RESERVED_DESCRIPTORS).max(16);
        if (limits.max_connections as u64) > fits {
            tracing::warn!(
                requested = limits.max_connections,
                allowed = fits,
                descriptor_limit = nofile,
                "--max-connections lowered to fit the descriptor limit"
            );
            limits.max_connections = usize::try_from(fits).unwrap_or(usize::MAX);
        }
    }
    limits
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; the soft limit in force after
/// (`None`: unlimited or unknown).
#[cfg(unix)]
fn raise_descriptor_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    // An unlimited hard limit cannot be the soft one on Linux (nr_open caps it).
    let target = limit.maximum.unwrap_or(1 << 20);
    if limit.current.is_some_and(|c| c < target) {
        let raised = Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => return Some(target),
            Err(e) => tracing::debug!(error = %e, "could not raise the descriptor limit"),
        }
    }
    limit.current
}

#[cfg(not(unix))]
fn raise_descriptor_limit() -> Option<u64> {
    None
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
