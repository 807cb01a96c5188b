//! The upstream registry client: what the importer, the scheduler and the registry's
//! pull-through use to talk to any OCI/Docker registry. Manifests (OCI manifest and
//! index, Docker schema 2 and manifest list; schema 1 refused) verified against their
//! digests, HEAD for digests without a pull, size-capped config blobs, streamed
//! verified blobs, paginated tag lists; anonymous, Basic and Bearer-token auth with a
//! token cache; insecure registries; mirrors; timeouts; 429 with `Retry-After`; a
//! concurrency limit per registry. May call the network (through `transport`), the
//! metrics registry, moor-api, oci-spec and oci-client types; never the store.
//!
//! ```text
//! let client = UpstreamClient::new(UpstreamConfig::default())?;
//! let image = DockerImageReference::parse("quay.io/keycloak/keycloak:20.0.2")?;
//! let manifest = client.fetch_manifest(&image, &FetchOptions::default()).await?;
//! // manifest.digest is the sha256 of manifest.bytes; manifest.source is the name asked
//! // for even when manifest.served_by is a mirror.
//! ```

mod answers;
mod auth;
mod client;
mod credentials;
mod error;
mod manifest;
mod mirrors;
mod transport;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use answers::{Blob, BlobStream, ImageConfig, Manifest, ManifestHead, TagList};
pub use client::{TagListAnswer, UpstreamClient};
pub use credentials::{
    Credentials, CredentialsError, SECRET_TYPE_DOCKER_CONFIG_JSON, SECRET_TYPE_DOCKERCFG,
};
pub use error::UpstreamError;
pub use manifest::{MAX_MANIFEST_BYTES, ManifestContent};
pub use mirrors::Mirror;
/// What to send to a registry: anonymous, Basic or a bearer token (oci-client's type).
pub use oci_client::secrets::RegistryAuth;
pub use transport::{Scheme, UpstreamRequestLabels};

use mirrors::Target;

/// The largest image config blob [`UpstreamClient::fetch_config`] reads (the limit
/// containers/image uses): 4 MiB.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;
/// The largest page of a tag list read.
pub const MAX_TAG_PAGE_BYTES: u64 = 16 * 1024 * 1024;
/// The most tag list pages followed.
pub const MAX_TAG_PAGES: usize = 10_000;
/// The most of an error body read, for its message.
const MAX_ERROR_BODY_BYTES: u64 = 64 * 1024;

/// Timeouts of upstream requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection (TCP and TLS).
    pub connect: Duration,
    /// A whole request, from connecting to the last body byte (not for streamed blobs).
    pub request: Duration,
    /// The longest wait for the next bytes of a response, streamed blobs included.
    pub read_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(30),
            read_idle: Duration::from_secs(60),
        }
    }
}

/// How the client reaches registries. Built once from server flags.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// Registries (`HOST[:PORT]`, from `--insecure-registry`) reached over HTTPS
    /// without certificate verification, falling back to plain HTTP. An entry without
    /// a port matches the host on any port. `localhost` is not special: list it.
    pub insecure_registries: Vec<String>,
    /// Mirrors (from `--registry-mirror SOURCE=MIRROR`), tried before the source.
    pub mirrors: Vec<Mirror>,
    /// PEM (or DER) files of CA certificates trusted besides the system roots (from
    /// `--registry-ca FILE`).
    pub ca_files: Vec<PathBuf>,
    /// Connect, request and idle-read timeouts.
    pub timeouts: Timeouts,
    /// Requests in flight to one registry host at most (a streamed blob counts until
    /// it is dropped).
    pub per_registry_concurrency: usize,
    /// The `n` asked for per tag list page; `None` lets the registry choose.
    pub tag_page_size: Option<u32>,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Whether to honour `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` from the environment.
    pub use_environment_proxy: bool,
    /// Host names resolved to fixed addresses instead of DNS (like curl's
    /// `--resolve`), for tests and closed networks. With port 0 the URL's port is
    /// used; a non-zero port replaces the default port of URLs without one.
    pub dns_overrides: Vec<(String, SocketAddr)>,
    /// The clock that expires cached registry tokens.
    pub clock: std::sync::Arc<dyn crate::clock::Clock>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            insecure_registries: Vec::new(),
            mirrors: Vec::new(),
            ca_files: Vec::new(),
            timeouts: Timeouts::default(),
            per_registry_concurrency: 8,
            tag_page_size: None,
            user_agent: format!("moor/{}", env!("CARGO_PKG_VERSION")),
            use_environment_proxy: true,
            dns_overrides: Vec::new(),
            clock: std::sync::Arc::new(crate::clock::SystemClock),
        }
    }
}

/// Per-call options: the import's `insecure` flag and the credentials usable for it.
#[derive(Clone, Debug, Default)]
pub struct FetchOptions {
    /// importPolicy.insecure: reach the source registry over unverified HTTPS or plain
    /// HTTP. Mirrors are insecure only when listed in
    /// [`UpstreamConfig::insecure_registries`].
    pub insecure: bool,
    /// Credentials, matched by the registry actually contacted (a mirror's host for a
    /// mirror).
    pub credentials: Credentials,
}

impl FetchOptions {
    /// Options with these credentials, secure.
    pub fn with_credentials(credentials: Credentials) -> Self {
        Self {
            insecure: false,
            credentials,
        }
    }

    /// The same options with `insecure` set.
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }
}

/// The registry and repository that answered, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Host with optional port, as contacted (`registry-1.docker.io` for Docker Hub).
    pub registry: String,
    /// Repository path at that registry.
    pub repository: String,
    /// Whether it is a mirror rather than the source.
    pub mirror: bool,
    /// The scheme that worked.
    pub scheme: Scheme,
}

impl Endpoint {
    fn new(target: &Target, scheme: Scheme) -> Self {
        Self {
            registry: target.registry.clone(),
            repository: target.repository.clone(),
            mirror: target.mirror,
            scheme,
        }
    }

    /// `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}
