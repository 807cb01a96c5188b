//! Cluster mode's delegated authentication and authorization: moor, as an
//! aggregated API server, lets the cluster say who a request is and what it may do.
//!
//! - [`requestheader`]: the aggregator's front-proxy certificate and its
//!   `X-Remote-*` headers, and client certificates, on the CAs of the
//!   `kube-system/extension-apiserver-authentication` ConfigMap (watched);
//! - [`tokenreview`]: bearer tokens checked with TokenReview;
//! - [`sar`]: every decision asked with SubjectAccessReview;
//! - [`cache`]: the answers' TTL cache;
//! - [`namespaces`]: the cluster's namespaces, mirrored (streams go with theirs);
//! - [`bootstrap`]: moor's ClusterRoles for users, applied at start when permitted.
//!
//! Calls the cluster through kube-rs; knows nothing of moor's resources.

pub mod bootstrap;
pub mod cache;
pub mod namespaces;
pub mod requestheader;
pub mod sar;
pub mod secrets;
pub mod tokenreview;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;

use crate::clock::Clock;
use requestheader::{AuthenticationConfig, CONFIG_MAP_NAME, CONFIG_MAP_NAMESPACE};

/// Where the cluster is: `--cluster-kubeconfig FILE` or `--in-cluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterSource {
    /// A kubeconfig file.
    Kubeconfig(PathBuf),
    /// The pod's service account (`KUBERNETES_SERVICE_HOST`/`_PORT`, its token and CA).
    InCluster,
}

/// Why cluster mode cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("--cluster-kubeconfig: {0}")]
    Kubeconfig(#[source] crate::lookup::triggers::TriggerError),
    #[error("--in-cluster: {0}")]
    InCluster(#[source] kube::config::InClusterError),
    #[error("cluster client: {0}")]
    Client(#[source] kube::Error),
    #[error("reading {CONFIG_MAP_NAMESPACE}/{CONFIG_MAP_NAME}: {0}")]
    ConfigMap(#[source] kube::Error),
    #[error("{CONFIG_MAP_NAMESPACE}/{CONFIG_MAP_NAME}: {0}")]
    Settings(#[from] requestheader::RequestHeaderError),
}

/// A client of the cluster `source` names.
pub async fn client(source: &ClusterSource) -> Result<kube::Client, ClusterError> {
    match source {
        ClusterSource::Kubeconfig(path) => crate::lookup::triggers::kubeconfig_client(path)
            .await
            .map_err(ClusterError::Kubeconfig),
        ClusterSource::InCluster => {
            let config = kube::Config::incluster().map_err(ClusterError::InCluster)?;
            kube::Client::try_from(config).map_err(ClusterError::Client)
        }
    }
}

/// A client of the cluster `source` names that sends no credentials of moor's own:
/// the console sends each request with the signed-in user's bearer token, so the
/// cluster authorizes the user, not moor.
pub async fn client_without_credentials(
    source: &ClusterSource,
) -> Result<kube::Client, ClusterError> {
    let mut config = match source {
        ClusterSource::Kubeconfig(path) => crate::lookup::triggers::kubeconfig_config(path)
            .await
            .map_err(ClusterError::Kubeconfig)?,
        ClusterSource::InCluster => kube::Config::incluster().map_err(ClusterError::InCluster)?,
    };
    config.auth_info = Default::default();
    kube::Client::try_from(config).map_err(ClusterError::Client)
}

/// The cache TTLs of delegated authentication and authorization.
#[derive(Clone, Debug)]
pub struct CacheTtls {
    /// TokenReview answers (k8s.io/apiserver: 10 s).
    pub token_review: Duration,
    /// SubjectAccessReview answers, allowed and refused.
    pub authorization: sar::SarOptions,
}

impl Default for CacheTtls {
    fn default() -> Self {
        CacheTtls {
            token_review: tokenreview::DEFAULT_CACHE_TTL,
            authorization: sar::SarOptions::default(),
        }
    }
}

/// Delegated authentication and authorization, ready to wire.
pub struct ClusterAuth {
    /// The client of the cluster.
    pub client: kube::Client,
    /// Certificates (front proxy, client CA).
    pub certificates: Arc<requestheader::ClusterCertificates>,
    /// Bearer tokens.
    pub tokens: Arc<tokenreview::TokenReviewAuthenticator>,
    /// Decisions.
    pub authorizer: Arc<sar::SubjectAccessReviewAuthorizer>,
}

impl ClusterAuth {
    /// Reads the ConfigMap (missing: no certificate authentication until it
    /// appears) and makes the authenticators and the authorizer;
    /// `extra_client_ca` is `--client-ca-file`'s PEM. The ConfigMap's watch is
    /// [`watch`](Self::watch), for the caller to spawn.
    pub async fn start(
        client: kube::Client,
        extra_client_ca: Option<String>,
        ttls: CacheTtls,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ClusterError> {
        let api = kube::Api::<ConfigMap>::namespaced(client.clone(), CONFIG_MAP_NAMESPACE);
        let config = match api.get_opt(CONFIG_MAP_NAME).await {
            Ok(Some(map)) => AuthenticationConfig::from_data(&map.data.unwrap_or_default())?,
            Ok(None) => {
                tracing::warn!(
                    "{CONFIG_MAP_NAMESPACE}/{CONFIG_MAP_NAME} does not exist: no front-proxy \
                     or client certificate authentication until it does"
                );
                AuthenticationConfig::default()
            }
            Err(e) => return Err(ClusterError::ConfigMap(e)),
        };
        let certificates = Arc::new(requestheader::ClusterCertificates::new(
            config,
            extra_client_ca,
        )?);
        Ok(ClusterAuth {
            tokens: Arc::new(tokenreview::TokenReviewAuthenticator::new(
                client.clone(),
                ttls.token_review,
                clock.clone(),
            )),
            authorizer: Arc::new(sar::SubjectAccessReviewAuthorizer::new(
                client.clone(),
                ttls.authorization,
                clock,
            )),
            certificates,
            client,
        })
    }

    /// The ConfigMap's follower (CA rotation, header changes).
    pub fn watch(&self) -> impl Future<Output = ()> + Send + 'static {
        requestheader::run_watch(self.client.clone(), self.certificates.clone())
    }
}
