//! The server's TLS identity: a private CA made at first start under
//! `<data-dir>/tls/` (kept across restarts) and a serving certificate issued by it at
//! every start for the names the server answers to. The kubeconfig carries the CA, so
//! kubectl and moor verify the server; kubectl sends bearer tokens only over TLS.
//! Calls rcgen and the filesystem only.

use std::path::Path;

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
