//! Who a request is by its client certificate, in cluster mode, as
//! k8s.io/apiserver's delegating authenticator decides it:
//!
//! 1. the aggregator's front proxy: a client certificate that verifies against the
//!    requestheader CA (`requestheader-client-ca-file`), whose CommonName is in
//!    `requestheader-allowed-names` (empty: any), vouches for the user its headers
//!    name (`requestheader-username-headers`, `-uid-headers`, `-group-headers`,
//!    `-extra-headers-prefix`: by default `X-Remote-User`, `X-Remote-Group`,
//!    `X-Remote-Extra-*`); without a user header it vouches for nobody;
//! 2. any other client certificate that verifies against `client-ca-file` is its
//!    own user (CommonName the name, Organizations the groups, as `x509`).
//!
//! All of these come from the `kube-system/extension-apiserver-authentication`
//! ConfigMap, read at start and watched ([`run_watch`]), so CA rotation takes effect
//! without a restart: the listener's handshake verifier ([`HandshakeVerifier`])
//! asks for (never requires) a certificate and accepts either CA; each request's
//! chain is verified again here against the CA its use calls for.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::extract::Request;
use axum::http::HeaderMap;
use axum_server::tls::TlsInfo;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use moor_api::authz::names;
use moor_apimachinery::resource::UserInfo;

use crate::auth::RequestAuthenticator;

/// The ConfigMap kube-apiserver publishes its client authentication settings in.
pub const CONFIG_MAP_NAMESPACE: &str = "kube-system";
/// See [`CONFIG_MAP_NAMESPACE`].
pub const CONFIG_MAP_NAME: &str = "extension-apiserver-authentication";

/// A ConfigMap or CA that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RequestHeaderError {
    #[error("{key}: not a JSON list of strings: {source}")]
    List {
        key: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}: {source}")]
    Pem {
        what: &'static str,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{what}: {source}")]
    Certificate {
        what: &'static str,
        #[source]
        source: rustls::Error,
    },
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// What the ConfigMap says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthenticationConfig {
    /// `client-ca-file`: CAs of client certificates that are their own users.
    pub client_ca: Option<String>,
    /// `requestheader-client-ca-file`: CAs of the front proxy's certificate.
    pub requestheader_ca: Option<String>,
    /// `requestheader-allowed-names`: CommonNames the front proxy may have (empty: any).
    pub allowed_names: Vec<String>,
    /// `requestheader-username-headers`.
    pub username_headers: Vec<String>,
    /// `requestheader-uid-headers`.
    pub uid_headers: Vec<String>,
    /// `requestheader-group-headers`.
    pub group_headers: Vec<String>,
    /// `requestheader-extra-headers-prefix`.
    pub extra_prefixes: Vec<String>,
}

impl AuthenticationConfig {
    /// Reads the ConfigMap's `data`.
    pub fn from_data(data: &BTreeMap<String, String>) -> Result<Self, RequestHeaderError> {
        let list = |key: &'static str| -> Result<Vec<String>, RequestHeaderError> {
            match data.get(key).map(|s| s.trim()).filter(|s| !s.is_empty()) {
                None => Ok(Vec::new()),
                Some(text) => serde_json::from_str(text)
                    .map_err(|source| RequestHeaderError::List { key, source }),
            }
        };
        let pem = |key: &str| data.get(key).filter(|s| !s.trim().is_empty()).cloned();
        Ok(AuthenticationConfig {
            client_ca: pem("client-ca-file"),
            requestheader_ca: pem("requestheader-client-ca-file"),
            allowed_names: list("requestheader-allowed-names")?,
            username_headers: list("requestheader-username-headers")?,
            uid_headers: list("requestheader-uid-headers")?,
            group_headers: list("requestheader-group-headers")?,
            extra_prefixes: list("requestheader-extra-headers-prefix")?,
        })
    }

    /// The user the headers of an authenticated front-proxy request name (`None`
    /// without a user name).
    pub fn user_from_headers(&self, headers: &HeaderMap) -> Option<UserInfo> {
        let first = |names: &[String]| {
            names.iter().find_map(|h| {
                headers
                    .get_all(h.as_str())
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find(|v| !v.is_empty())
                    .map(str::to_owned)
            })
        };
        let name = first(&self.username_headers)?;
        let mut user = UserInfo::new(name, Vec::<String>::new());
        user.uid = first(&self.uid_headers).unwrap_or_default();
        for h in &self.group_headers {
            for v in headers.get_all(h.as_str()) {
                if let Ok(g) = v.to_str() {
                    user.groups.push(g.to_owned());
                }
            }
        }
        let prefixes: Vec<String> = self
            .extra_prefixes
            .iter()
            .map(|p| p.to_ascii_lowercase())
            .collect();
        for (name, value) in headers {
            let name = name.as_str();
            let Some(key) = prefixes.iter().find_map(|p| name.strip_prefix(p.as_str())) else {
                continue;
            };
            if let Ok(v) = value.to_str() {
                user.extra
                    .entry(unescape(key).to_ascii_lowercase())
                    .or_default()
                    .push(v.to_owned());
            }
        }
        if !user.in_group(names::AUTHENTICATED) {
            user.groups.push(names::AUTHENTICATED.to_owned());
        }
        Some(user)
    }
}

/// An extra key with its `%XX` escapes decoded (kube's `url.PathUnescape`).
fn unescape(key: &str) -> String {
    form_urlencoded::parse(format!("x={}", key.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A verifier of client certificates against the CAs in `pems` (`None`: no CA).
fn verifier(
    pems: &[(&'static str, &str)],
) -> Result<Option<Arc<dyn ClientCertVerifier>>, RequestHeaderError> {
    let mut roots = rustls::RootCertStore::empty();
    for (what, pem) in pems {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|source| RequestHeaderError::Pem { what, source })?;
            roots
                .add(cert)
                .map_err(|source| RequestHeaderError::Certificate { what, source })?;
        }
    }
    if roots.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .allow_unauthenticated()
            .build()?,
    ))
}

/// The verifiers one configuration makes.
struct Verifiers {
    config: AuthenticationConfig,
    front_proxy: Option<Arc<dyn ClientCertVerifier>>,
    client: Option<Arc<dyn ClientCertVerifier>>,
    /// `--client-ca-file`'s alone: the admission webhook's trusted callers.
    admission: Option<Arc<dyn ClientCertVerifier>>,
    handshake: Arc<dyn ClientCertVerifier>,
}

impl Verifiers {
    fn new(
        config: AuthenticationConfig,
        extra_client_ca: Option<&str>,
    ) -> Result<Self, RequestHeaderError> {
        let mut client = Vec::new();
        if let Some(pem) = &config.client_ca {
            client.push(("client-ca-file", pem.as_str()));
        }
        let mut admission = Vec::new();
        if let Some(pem) = extra_client_ca {
            client.push(("--client-ca-file", pem));
            admission.push(("--client-ca-file", pem));
        }
        let mut front = Vec::new();
        if let Some(pem) = &config.requestheader_ca {
            front.push(("requestheader-client-ca-file", pem.as_str()));
        }
        let both: Vec<_> = client.iter().chain(&front).copied().collect();
        let handshake = verifier(&both)?.unwrap_or_else(WebPkiClientVerifier::no_client_auth);
        Ok(Verifiers {
            front_proxy: verifier(&front)?,
            client: verifier(&client)?,
            admission: verifier(&admission)?,
            handshake,
            config,
        })
    }
}

/// Whether the chain `certs` (end entity first) verifies with `verifier`.
fn verifies(verifier: &dyn ClientCertVerifier, certs: &[Vec<u8>]) -> bool {
    let Some((end, rest)) = certs.split_first() else {
        return false;
    };
    let end = CertificateDer::from(end.as_slice());
    let rest: Vec<CertificateDer<'_>> = rest
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    verifier
        .verify_client_cert(&end, &rest, UnixTime::now())
        .is_ok()
}

fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    Some(cn.to_owned())
}

/// The listener's client certificate check: the current CAs, swapped on rotation.
/// It asks every client for a certificate but lets those without one in (they
/// present tokens); it sends no CA hints, so clients offer their certificate
/// whichever CA signed it.
#[derive(Debug)]
pub struct HandshakeVerifier(RwLock<Arc<dyn ClientCertVerifier>>);

impl HandshakeVerifier {
    fn current(&self) -> Arc<dyn ClientCertVerifier> {
        match self.0.read() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl ClientCertVerifier for HandshakeVerifier {
    fn offer_client_auth(&self) -> bool {
        self.current().offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current()
            .verify_client_cert(end_entity, intermediates, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().supported_verify_schemes()
    }
}

/// Cluster mode's certificate authentication (front proxy, then client CA), on the
/// ConfigMap's current contents.
pub struct ClusterCertificates {
    current: RwLock<Arc<Verifiers>>,
    handshake: Arc<HandshakeVerifier>,
    extra_client_ca: Option<String>,
}

impl ClusterCertificates {
    /// From the ConfigMap's `config`, with `--client-ca-file`'s CAs (`extra_client_ca`)
    /// also accepted for client certificates.
    pub fn new(
        config: AuthenticationConfig,
        extra_client_ca: Option<String>,
    ) -> Result<Self, RequestHeaderError> {
        let verifiers = Verifiers::new(config, extra_client_ca.as_deref())?;
        let handshake = Arc::new(HandshakeVerifier(RwLock::new(verifiers.handshake.clone())));
        Ok(ClusterCertificates {
            current: RwLock::new(Arc::new(verifiers)),
            handshake,
            extra_client_ca,
        })
    }

    /// The listener's verifier (it follows [`update`](Self::update)s).
    pub fn handshake_verifier(&self) -> Arc<HandshakeVerifier> {
        self.handshake.clone()
    }

    /// The configuration in force.
    pub fn config(&self) -> AuthenticationConfig {
        self.verifiers().config.clone()
    }

    fn verifiers(&self) -> Arc<Verifiers> {
        match self.current.read() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Uses `config` from now on (a bad one is refused and the old one kept).
    pub fn update(&self, config: AuthenticationConfig) -> Result<(), RequestHeaderError> {
        if self.verifiers().config == config {
            return Ok(());
        }
        let verifiers = Arc::new(Verifiers::new(config, self.extra_client_ca.as_deref())?);
        if let Ok(mut h) = self.handshake.0.write() {
            *h = verifiers.handshake.clone();
        }
        if let Ok(mut c) = self.current.write() {
            *c = verifiers;
        }
        Ok(())
    }

    /// The user of a chain and headers (see the module's rules).
    pub fn authenticate(&self, certs: &[Vec<u8>], headers: &HeaderMap) -> Option<UserInfo> {
        let end = certs.first()?;
        let v = self.verifiers();
        if let Some(front) = &v.front_proxy
            && verifies(front.as_ref(), certs)
        {
            let allowed = v.config.allowed_names.is_empty()
                || common_name(end).is_some_and(|cn| v.config.allowed_names.contains(&cn));
            if !allowed {
                tracing::debug!("a front-proxy certificate whose CommonName is not allowed");
            } else if let Some(user) = v.config.user_from_headers(headers) {
                return Some(user);
            }
        }
        match &v.client {
            Some(client) if verifies(client.as_ref(), certs) => crate::auth::x509::user_of(end),
            _ => None,
        }
    }
}

impl RequestAuthenticator for ClusterCertificates {
    fn authenticate_request(&self, req: &Request) -> Option<UserInfo> {
        let info = req.extensions().get::<Arc<TlsInfo>>()?;
        self.authenticate(&info.peer_certificates, req.headers())
    }

    fn admission_client(&self, req: &Request) -> bool {
        let Some(info) = req.extensions().get::<Arc<TlsInfo>>() else {
            return false;
        };
        self.verifiers()
            .admission
            .as_ref()
            .is_some_and(|v| verifies(v.as_ref(), &info.peer_certificates))
    }
}

/// Follows the ConfigMap, applying each version to `certificates` until the
/// watch ends (never, unless the runtime stops).
pub async fn run_watch(client: kube::Client, certificates: Arc<ClusterCertificates>) {
    use kube::runtime::{WatchStreamExt, watcher};
    let api = kube::Api::<ConfigMap>::namespaced(client, CONFIG_MAP_NAMESPACE);
    let config = watcher::Config::default().fields(&format!("metadata.name={CONFIG_MAP_NAME}"));
    let mut events = std::pin::pin!(watcher::watcher(api, config).default_backoff());
    while let Some(event) = events.next().await {
        let map = match event {
            Ok(watcher::Event::Apply(map) | watcher::Event::InitApply(map)) => map,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "watching {CONFIG_MAP_NAMESPACE}/{CONFIG_MAP_NAME}");
                continue;
            }
        };
        let applied = AuthenticationConfig::from_data(&map.data.unwrap_or_default())
            .and_then(|config| certificates.update(config));
        match applied {
            Ok(()) => tracing::info!("client authentication settings of the cluster applied"),
            Err(e) => {
                tracing::warn!(error = %e, "{CONFIG_MAP_NAMESPACE}/{CONFIG_MAP_NAME} refused")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_name_the_user_groups_and_extra() {
        let data: BTreeMap<String, String> = [
            ("requestheader-username-headers", r#"["X-Remote-User"]"#),
            ("requestheader-group-headers", r#"["X-Remote-Group"]"#),
            (
                "requestheader-extra-headers-prefix",
                r#"["X-Remote-Extra-"]"#,
            ),
            ("requestheader-allowed-names", r#"["front-proxy-client"]"#),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let config = AuthenticationConfig::from_data(&data).unwrap();
        assert_eq!(config.allowed_names, ["front-proxy-client"]);
        let mut h = HeaderMap::new();
        assert_eq!(config.user_from_headers(&h), None);
        h.append("x-remote-user", "alice".parse().unwrap());
        h.append("x-remote-group", "dev".parse().unwrap());
        h.append("x-remote-group", "ops".parse().unwrap());
        h.append("x-remote-extra-scopes", "a".parse().unwrap());
        h.append("x-remote-extra-acme.com%2Fteam", "b".parse().unwrap());
        let user = config.user_from_headers(&h).unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(user.groups, ["dev", "ops", names::AUTHENTICATED]);
        assert_eq!(user.extra["scopes"], ["a"]);
        assert_eq!(user.extra["acme.com/team"], ["b"]);
        let bad: BTreeMap<String, String> =
            [("requestheader-allowed-names".to_owned(), "nope".to_owned())].into();
        assert!(AuthenticationConfig::from_data(&bad).is_err());
    }
}
