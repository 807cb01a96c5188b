//! The server's TLS identity: a private CA made at first start under
//! `<data-dir>/tls/` (kept across restarts) and a serving certificate issued by it at
//! every start for the names the server answers to. The kubeconfig carries the CA, so
//! kubectl and moor verify the server; kubectl sends bearer tokens only over TLS.
//! A certificate given by flags is served instead, and read again when its files
//! change ([`ReloadingCert`]). Calls rcgen, rustls and the filesystem only.

use std::path::Path;
use std::sync::Arc;

use rustls::server::ResolvesServerCert;
use rustls::sign::CertifiedKey;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Errors making or reading the TLS files.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
}

/// PEM texts of the CA and the serving certificate.
pub struct TlsMaterial {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "moor local CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    Ok(params)
}

/// A new CA of the kind [`ensure`] makes: its key and its certificate, PEM.
pub fn new_ca() -> Result<(String, String), TlsError> {
    let key = KeyPair::generate()?;
    let cert = ca_params()?.self_signed(&key)?;
    Ok((key.serialize_pem(), cert.pem()))
}

fn read(path: &Path) -> Result<Option<String>, TlsError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TlsError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Writes `path` readable by moor's user only (0600, whatever the umask), as every
/// file under the data directory; the certificates too, though they are public.
fn write(path: &Path, contents: &str) -> Result<(), TlsError> {
    use std::io::Write;
    let err = |source| TlsError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(contents.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)
}

/// Loads (or makes) the CA under `dir` and issues a serving certificate for `names`
/// (DNS names or IP addresses; `localhost` and `127.0.0.1` are always included).
pub fn ensure(dir: &Path, names: &[String]) -> Result<TlsMaterial, TlsError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| TlsError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let (ca_key_path, ca_cert_path) = (dir.join("ca.key"), dir.join("ca.crt"));
    let (ca_key, ca_pem) = match (read(&ca_key_path)?, read(&ca_cert_path)?) {
        (Some(k), Some(c)) => (KeyPair::from_pem(&k)?, c),
        _ => {
            let key = KeyPair::generate()?;
            let cert = ca_params()?.self_signed(&key)?;
            write(&ca_key_path, &key.serialize_pem())?;
            write(&ca_cert_path, &cert.pem())?;
            (key, cert.pem())
        }
    };
    let issuer = Issuer::new(ca_params()?, ca_key);
    let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
    for n in names {
        let host = host_of(n);
        if !host.is_empty() && !sans.iter().any(|s| s == host) {
            sans.push(host.to_string());
        }
    }
    let mut params = CertificateParams::new(sans)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "moor");
    params.distinguished_name = dn;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
    write(&dir.join("server.crt"), &cert_pem)?;
    write(&dir.join("server.key"), &key_pem)?;
    Ok(TlsMaterial {
        ca_pem,
        cert_pem,
        key_pem,
    })
}

/// The serving certificate and key given by `--tls-cert-file` and
/// `--tls-private-key-file` (a cert-manager or cluster CA certificate, say), read once
/// at start. The chain's last certificate stands for the CA in the kubeconfig moor
/// writes (the leaf itself when the file holds only the leaf).
pub fn load(cert: &Path, key: &Path) -> Result<TlsMaterial, TlsError> {
    let missing = |path: &Path| TlsError::Io {
        path: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
    };
    let cert_pem = read(cert)?.ok_or_else(|| missing(cert))?;
    let key_pem = read(key)?.ok_or_else(|| missing(key))?;
    let last = cert_pem
        .rfind("-----BEGIN CERTIFICATE-----")
        .ok_or_else(|| TlsError::Io {
            path: cert.display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "no PEM certificate in the file",
            ),
        })?;
    Ok(TlsMaterial {
        ca_pem: cert_pem[last..].to_owned(),
        cert_pem,
        key_pem,
    })
}

/// The serving certificate of `--tls-cert-file`/`--tls-private-key-file`, read again
/// when the files change (cert-manager renews into the same Secret, and the kubelet
/// swaps the mounted files): new handshakes get the new certificate, no restart
/// needed. A change that does not load (a half-written pair) keeps the old one.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    /// The PEM texts the current certificate was made from, and the certificate.
    current: std::sync::RwLock<(String, String, Arc<CertifiedKey>)>,
}

/// How often [`ReloadingCert::watch`] looks at the files.
pub const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

fn certified(cert_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: String| TlsError::Io {
        path: what,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "unreadable PEM"),
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("serving certificate ({e})")))?;
    if chain.is_empty() {
        return Err(bad("serving certificate (no certificate)".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| bad(format!("serving key ({e})")))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider)
        .map(Arc::new)
        .map_err(|e| bad(format!("serving certificate and key ({e})")))
}

impl ReloadingCert {
    /// The certificate in `cert` and `key`, as [`load`] read them (`material`).
    pub fn new(cert: &Path, key: &Path, material: &TlsMaterial) -> Result<Arc<Self>, TlsError> {
        let current = certified(&material.cert_pem, &material.key_pem)?;
        Ok(Arc::new(ReloadingCert {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: std::sync::RwLock::new((
                material.cert_pem.clone(),
                material.key_pem.clone(),
                current,
            )),
        }))
    }

    /// Reads the files again; returns whether the served certificate changed.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let fresh = load(&self.cert, &self.key)?;
        {
            let current = self.current.read().unwrap_or_else(|e| e.into_inner());
            if current.0 == fresh.cert_pem && current.1 == fresh.key_pem {
                return Ok(false);
            }
        }
        let key = certified(&fresh.cert_pem, &fresh.key_pem)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) =
            (fresh.cert_pem, fresh.key_pem, key);
        Ok(true)
    }

    /// Looks at the files every [`RELOAD_EVERY`] for as long as the server runs.
    pub async fn watch(self: Arc<Self>) {
        let mut tick = tokio::time::interval(RELOAD_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let me = self.clone();
            match tokio::task::spawn_blocking(move || me.reload()).await {
                Ok(Ok(true)) => {
                    tracing::info!(cert = %self.cert.display(), "serving certificate reloaded")
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "serving certificate not reloaded; keeping the current one")
                }
                Err(e) => tracing::warn!(error = %e, "serving certificate reload failed"),
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .2
                .clone(),
        )
    }
}

/// The host part of `host:port`, `[v6]:port` or a bare host.
pub fn host_of(hostport: &str) -> &str {
    if let Some(rest) = hostport.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => h,
        _ => hostport,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_files_are_served_and_the_chain_end_stands_for_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let made = ensure(&dir.path().join("made"), &[]).unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert, format!("{}{}", made.cert_pem, made.ca_pem)).unwrap();
        std::fs::write(&key, &made.key_pem).unwrap();
        let loaded = load(&cert, &key).unwrap();
        assert_eq!(loaded.ca_pem, made.ca_pem);
        assert_eq!(loaded.key_pem, made.key_pem);
        std::fs::write(&cert, &made.cert_pem).unwrap();
        assert_eq!(load(&cert, &key).unwrap().ca_pem, made.cert_pem);
        let e = load(&dir.path().join("absent.crt"), &key).err().unwrap();
        assert!(e.to_string().contains("absent.crt"), "{e}");
        std::fs::write(&cert, "not a certificate").unwrap();
        assert!(load(&cert, &key).is_err());
    }

    #[test]
    fn a_renewed_certificate_is_served_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            ensure(&dir.path().join("a"), &[]).unwrap(),
            ensure(&dir.path().join("b"), &[]).unwrap(),
        );
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert, &a.cert_pem).unwrap();
        std::fs::write(&key, &a.key_pem).unwrap();
        let reloading = ReloadingCert::new(&cert, &key, &load(&cert, &key).unwrap()).unwrap();
        let served = |r: &ReloadingCert| r.current.read().unwrap().2.cert[0].to_vec();
        let first = served(&reloading);
        assert!(!reloading.reload().unwrap(), "unchanged files");
        // Half a renewal (the new certificate, the old key) keeps the old pair.
        std::fs::write(&cert, &b.cert_pem).unwrap();
        assert!(reloading.reload().is_err());
        assert_eq!(served(&reloading), first);
        std::fs::write(&key, &b.key_pem).unwrap();
        assert!(reloading.reload().unwrap());
        assert_ne!(served(&reloading), first);
        assert_eq!(reloading.current.read().unwrap().0, b.cert_pem);
    }

    #[test]
    fn ca_is_kept_and_certificates_cover_the_names() {
        let dir = tempfile::tempdir().unwrap();
        let a = ensure(
            dir.path(),
            &["moor.example:8443".into(), "10.0.0.5:443".into()],
        )
        .unwrap();
        let b = ensure(dir.path(), &[]).unwrap();
        assert_eq!(a.ca_pem, b.ca_pem, "the CA survives restarts");
        assert!(a.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_ne!(a.cert_pem, b.cert_pem);
        assert_eq!(host_of("moor.example:8443"), "moor.example");
        assert_eq!(host_of("[::1]:8443"), "::1");
        assert_eq!(host_of("plain"), "plain");
    }
}
