//! Client certificates, as kube-apiserver's `--client-ca-file` takes them: the TLS
//! listener asks every client for a certificate (optional), verifies a presented one
//! against the client CAs during the handshake, and the certificate's subject is
//! the user: CommonName the name, each Organization a group.
//!
//! The listener puts what the handshake saw into each request
//! (`axum_server::tls::TlsInfo`); [`identity`] reads the user from it.

use std::sync::Arc;

use axum::extract::Request;
use axum_server::tls::TlsInfo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use moor_api::authz::{UserInfo, names};

/// A TLS configuration that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum X509Error {
    #[error("{what}: {source}")]
    Pem {
        what: &'static str,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("--client-ca-file holds no certificate")]
    NoClientCa,
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// ALPN protocols the listener offers (what `axum_server`'s own configs set).
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The listener's TLS configuration: the serving certificate and key, and, with
/// `client_ca_pem`, optional client certificates verified against those CAs.
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: Option<&str>,
) -> Result<rustls::ServerConfig, X509Error> {
    let verifier = match client_ca_pem {
        None => None,
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|source| X509Error::Pem {
                    what: "--client-ca-file",
                    source,
                })?;
                roots.add(cert)?;
            }
            if roots.is_empty() {
                return Err(X509Error::NoClientCa);
            }
            let verifier: Arc<dyn rustls::server::danger::ClientCertVerifier> =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                    .allow_unauthenticated()
                    .build()?;
            Some(verifier)
        }
    };
    build(cert_pem, key_pem, verifier)
}

/// The listener's TLS configuration with client certificates checked by `verifier`
/// (cluster mode's, which follows CA rotation).
pub fn server_config_with_verifier(
    cert_pem: &str,
    key_pem: &str,
    verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
) -> Result<rustls::ServerConfig, X509Error> {
    build(cert_pem, key_pem, Some(verifier))
}

/// ring's suites with AES-128-GCM first (ring's own order puts AES-256-GCM first).
/// With [`rustls::ServerConfig::ignore_client_order`], the listener picks it whenever
/// the client offers it, as Go's crypto/tls does on CPUs with AES instructions: four
/// fewer AES rounds per block than AES-256 (10 against 14), which is most of the CPU a
/// large blob costs over TLS (see docs/benchmarks.md, "Profiles").
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::CipherSuite as C;
    let mut provider = rustls::crypto::ring::default_provider();
    // A stable sort: the order among the others stays ring's.
    provider.cipher_suites.sort_by_key(|s| {
        !matches!(
            s.suite(),
            C::TLS13_AES_128_GCM_SHA256
                | C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    Arc::new(provider)
}

/// The serving certificate and key, client certificates checked by `verifier` (none
/// asked for without one), and the ALPN protocols.
fn build(
    cert_pem: &str,
    key_pem: &str,
    verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
) -> Result<rustls::ServerConfig, X509Error> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| X509Error::Pem {
            what: "serving certificate",
            source,
        })?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|source| X509Error::Pem {
            what: "serving key",
            source,
        })?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    let builder = match verifier {
        None => builder.with_no_client_auth(),
        Some(v) => builder.with_client_cert_verifier(v),
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    // The server's order (AES-128-GCM first, see `provider`), not the client's.
    config.ignore_client_order = true;
    Ok(config)
}

/// The user a verified client certificate names: CommonName, Organizations as
/// groups, and `system:authenticated` (kube's x509 authenticator).
pub fn user_of(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    if name.is_empty() {
        return None;
    }
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    groups.push(names::AUTHENTICATED.to_owned());
    Some(UserInfo::new(name, groups))
}

/// The user of the client certificate `req`'s connection presented, if any. Only
/// a listener with `--client-ca-file` asks for certificates, and its handshake
/// refuses any that does not verify, so one that is here has been verified.
pub fn identity(req: &Request) -> Option<UserInfo> {
    let info = req.extensions().get::<Arc<TlsInfo>>()?;
    user_of(info.peer_certificates.first()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands every TLS byte `from` has to send to `to`.
    fn pass(from: &mut rustls::Connection, to: &mut rustls::Connection) {
        let mut bytes = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut bytes).expect("write TLS");
        }
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            to.read_tls(&mut rest).expect("read TLS");
            to.process_new_packets().expect("process TLS");
        }
    }

    #[test]
    fn aes_128_gcm_wins_over_a_client_that_prefers_aes_256() {
        let dir = tempfile::tempdir().unwrap();
        let m = crate::tls::ensure(dir.path(), &[]).unwrap();
        let config = server_config(&m.cert_pem, &m.key_pem, None).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(m.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        // ring's own order, as rustls clients (and OpenSSL's) offer: AES-256-GCM first.
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        assert_eq!(
            client.crypto_provider().cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
        );
        let name = "localhost".try_into().unwrap();
        let mut client: rustls::Connection = rustls::ClientConnection::new(Arc::new(client), name)
            .unwrap()
            .into();
        let mut server: rustls::Connection = rustls::ServerConnection::new(Arc::new(config))
            .unwrap()
            .into();
        for _ in 0..8 {
            if !client.is_handshaking() && !server.is_handshaking() {
                break;
            }
            pass(&mut client, &mut server);
            pass(&mut server, &mut client);
        }
        assert!(!server.is_handshaking(), "the handshake did not finish");
        assert_eq!(
            server.negotiated_cipher_suite().map(|s| s.suite()),
            Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
        );
    }
}
