//! Keyless (`FulcioCAWithRekor`) verification, offline: the signing certificate chains
//! to the policy's Fulcio CA at the time Rekor logged the signature, names the
//! policy's OIDC issuer and email, and the Rekor bundle is signed by the policy's Rekor
//! key and records this very signature, payload and certificate. Also the Rekor check
//! of a `PublicKey` policy with `rekorKeyData`. Pure: no I/O.
//!
//! The formats are sigstore's, read from cosign and containers/image
//! (`signature/fulcio_cert.go`, `internal/rekor_set.go`). The `sigstore` crate has
//! these checks (`cosign::bundle`, its certificate pool) only behind its `cosign`
//! feature, which brings its registry, Fulcio, OAuth and Rekor HTTP clients (and its
//! certificate pool is private), so they are written here; the signatures themselves
//! (the SET by the Rekor key, the payload by the certificate's key) are verified with
//! the crate, through [`PublicKey`]:
//! - the layer annotations `dev.sigstore.cosign/certificate` (PEM leaf),
//!   `dev.sigstore.cosign/chain` (PEM intermediates then the root, which is ignored:
//!   only the policy's CA is trusted) and `dev.sigstore.cosign/bundle`;
//! - the bundle `{"SignedEntryTimestamp": <base64 DER ECDSA>, "Payload": {"body",
//!   "integratedTime", "logIndex", "logID"}}`, the SET signing the payload's canonical
//!   JSON (RFC 8785: sorted keys, no spaces) with SHA-256;
//! - the body, base64 JSON of a `hashedrekord` 0.0.1 entry: the SHA-256 of the signed
//!   payload, the signature, and the PEM certificate (or key) that made it;
//! - the Fulcio issuer in extension 1.3.6.1.4.1.57264.1.1 (the raw string) or .1.8 (a
//!   DER UTF8String), the email in the SAN. The chain is checked with rustls-webpki
//!   at `integratedTime` for the code signing usage, as containers/image does.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use moor_api::config::FulcioCAWithRekor;
use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};
use serde::Deserialize;
use sha2::Digest as _;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::keys::{KeyError, PublicKey};

/// The layer annotation with the PEM signing certificate.
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// The layer annotation with the PEM chain (intermediates, then the root).
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// The layer annotation with the Rekor bundle.
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";

/// Fulcio's issuer extension (the raw issuer URL as the extension value).
const OID_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
/// Fulcio's issuer extension, DER UTF8String.
const OID_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
/// id-kp-codeSigning (1.3.6.1.5.5.7.3.3), DER contents.
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// Why a keyless signature (or a Rekor bundle) is refused.
#[derive(Debug, thiserror::Error)]
pub enum KeylessError {
    /// The policy's Fulcio CA has no usable certificate.
    #[error("the policy's fulcioCAData holds no usable CA certificate")]
    CaData,
    /// The policy's Rekor key cannot be used.
    #[error("the policy's rekorKeyData cannot be used")]
    RekorKey(#[source] KeyError),
    /// The signature carries no certificate.
    #[error("the signature has no Fulcio certificate ({CERTIFICATE_ANNOTATION})")]
    NoCertificate,
    /// The certificate annotation is not exactly one PEM certificate.
    #[error("the signing certificate does not parse: {0}")]
    Certificate(String),
    /// The certificate does not chain to the policy's CA at the logged time.
    #[error("the signing certificate does not chain to the policy's Fulcio CA at {at}: {why:?}")]
    Chain { at: String, why: webpki::Error },
    /// The logged time lies outside the certificate's validity.
    #[error(
        "Rekor's integratedTime {at} is outside the certificate's validity ({from} to {until})"
    )]
    OutsideValidity {
        at: String,
        from: String,
        until: String,
    },
    /// The certificate names another OIDC issuer (or none).
    #[error("the certificate's OIDC issuer is {got:?}, the policy wants {wanted:?}")]
    Issuer { got: String, wanted: String },
    /// The certificate is not for the policy's email.
    #[error("the certificate is for {got:?}, the policy wants email {wanted:?}")]
    Email { got: Vec<String>, wanted: String },
    /// The certificate's key cannot verify signatures.
    #[error("the certificate's key cannot be used")]
    CertificateKey(#[source] KeyError),
    /// The signature carries no Rekor bundle.
    #[error("the signature has no Rekor bundle ({BUNDLE_ANNOTATION})")]
    NoBundle,
    /// The bundle (or its body) is not what cosign writes.
    #[error("the Rekor bundle does not parse: {0}")]
    Bundle(String),
    /// The SET is not the Rekor key's signature of the bundle's payload.
    #[error("the Rekor bundle's SignedEntryTimestamp does not verify with the policy's Rekor key")]
    Set(#[source] KeyError),
    /// The logged entry is for another signature, payload or signer.
    #[error("the Rekor entry is for another {0}")]
    EntryMismatch(&'static str),
}

/// One signature's keyless material, from its layer's annotations.
#[derive(Clone, Copy, Debug, Default)]
pub struct Material<'a> {
    /// The PEM signing certificate.
    pub certificate: Option<&'a str>,
    /// The PEM chain.
    pub chain: Option<&'a str>,
    /// The Rekor bundle JSON.
    pub bundle: Option<&'a str>,
}

/// A `FulcioCAWithRekor` root of trust, parsed.
#[derive(Debug)]
pub struct FulcioRoot {
    anchors: Vec<CertificateDer<'static>>,
    rekor: PublicKey,
    issuer: String,
    email: String,
    name: String,
}

impl FulcioRoot {
    /// Parses the policy's CA bundle (every certificate in it is trusted, as
    /// containers/image does) and Rekor key.
    pub fn new(spec: &FulcioCAWithRekor) -> Result<Self, KeylessError> {
        let anchors: Vec<CertificateDer<'static>> =
            pem_blocks(&spec.fulcio_ca_data.0, "CERTIFICATE")
                .into_iter()
                .map(CertificateDer::from)
                .filter(|d| webpki::anchor_from_trusted_cert(d).is_ok())
                .collect();
        let first = anchors.first().ok_or(KeylessError::CaData)?;
        let name = format!(
            "Fulcio CA {} ({} {})",
            super::keys::fingerprint_of(first),
            spec.fulcio_subject.oidc_issuer,
            spec.fulcio_subject.signed_email
        );
        Ok(FulcioRoot {
            rekor: PublicKey::from_pem(&spec.rekor_key_data.0).map_err(KeylessError::RekorKey)?,
            anchors,
            issuer: spec.fulcio_subject.oidc_issuer.clone(),
            email: spec.fulcio_subject.signed_email.clone(),
            name,
        })
    }

    /// How messages name this root of trust.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Verifies the certificate, chain and bundle of a signature (`signature_b64`
    /// over `payload`): the certificate's key, which the caller then verifies the
    /// signature with.
    pub fn verify(
        &self,
        m: &Material<'_>,
        signature_b64: &str,
        payload: &[u8],
    ) -> Result<PublicKey, KeylessError> {
        let cert_pem = m.certificate.ok_or(KeylessError::NoCertificate)?;
        let leaf =
            single_pem(cert_pem.as_bytes(), "CERTIFICATE").map_err(KeylessError::Certificate)?;
        let bundle = m.bundle.ok_or(KeylessError::NoBundle)?;
        let at = verify_bundle(&self.rekor, bundle, &leaf, signature_b64, payload)?;
        let (_, cert) = X509Certificate::from_der(&leaf)
            .map_err(|e| KeylessError::Certificate(e.to_string()))?;
        let validity = cert.validity();
        if at < validity.not_before.timestamp() || at > validity.not_after.timestamp() {
            return Err(KeylessError::OutsideValidity {
                at: rfc3339(at),
                from: rfc3339(validity.not_before.timestamp()),
                until: rfc3339(validity.not_after.timestamp()),
            });
        }
        let anchors: Vec<TrustAnchor<'_>> = self
            .anchors
            .iter()
            .filter_map(|d| webpki::anchor_from_trusted_cert(d).ok())
            .collect();
        // The chain's last certificate is the root: only the policy's are trusted.
        let mut chain: Vec<CertificateDer<'_>> = m
            .chain
            .map(|c| pem_blocks(c.as_bytes(), "CERTIFICATE"))
            .unwrap_or_default()
            .into_iter()
            .map(CertificateDer::from)
            .collect();
        chain.pop();
        let leaf_der = CertificateDer::from(leaf.as_slice());
        let ee = webpki::EndEntityCert::try_from(&leaf_der)
            .map_err(|e| KeylessError::Certificate(format!("{e:?}")))?;
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(at).unwrap_or(0),
        ));
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &chain,
            time,
            // webpki applies this to every certificate of the path; Go (cosign,
            // containers/image) lets a CA without the extension pass, so the path
            // needs code signing where it says, and the leaf is checked below.
            webpki::KeyUsage::required_if_present(CODE_SIGNING),
            None,
            None,
        )
        .map_err(|why| KeylessError::Chain {
            at: rfc3339(at),
            why,
        })?;
        let code_signing = cert
            .extended_key_usage()
            .ok()
            .flatten()
            .is_some_and(|e| e.value.code_signing);
        if !code_signing {
            return Err(KeylessError::Certificate(
                "the certificate is not for code signing (extended key usage)".into(),
            ));
        }
        let issuer = fulcio_issuer(&cert)?;
        if issuer != self.issuer {
            return Err(KeylessError::Issuer {
                got: issuer,
                wanted: self.issuer.clone(),
            });
        }
        let emails = emails(&cert);
        if !emails.contains(&self.email) {
            return Err(KeylessError::Email {
                got: emails,
                wanted: self.email.clone(),
            });
        }
        PublicKey::from_spki(cert.public_key()).map_err(KeylessError::CertificateKey)
    }
}

/// The OIDC issuer Fulcio recorded: extension .1.8 (DER UTF8String) or .1.1 (raw);
/// refused when absent, duplicated, or when the two disagree.
fn fulcio_issuer(cert: &X509Certificate<'_>) -> Result<String, KeylessError> {
    let (mut v1, mut v2) = (None, None);
    for ext in cert.extensions() {
        let oid = ext.oid.to_id_string();
        let slot = if oid == OID_ISSUER_V1 {
            &mut v1
        } else if oid == OID_ISSUER_V2 {
            &mut v2
        } else {
            continue;
        };
        let value = if oid == OID_ISSUER_V1 {
            String::from_utf8_lossy(ext.value).into_owned()
        } else {
            x509_parser::der_parser::der::parse_der_utf8string(ext.value)
                .ok()
                .and_then(|(_, o)| o.as_str().ok().map(str::to_string))
                .ok_or_else(|| {
                    KeylessError::Certificate(
                        "the Fulcio issuer extension (.1.8) is not a UTF8String".into(),
                    )
                })?
        };
        if slot.replace(value).is_some() {
            return Err(KeylessError::Certificate(format!(
                "duplicate Fulcio issuer extension {oid}"
            )));
        }
    }
    match (v1, v2) {
        (Some(a), Some(b)) if a != b => Err(KeylessError::Certificate(format!(
            "the Fulcio issuer extensions disagree ({a:?}, {b:?})"
        ))),
        (Some(a), _) | (None, Some(a)) => Ok(a),
        (None, None) => Err(KeylessError::Certificate(
            "the certificate has no Fulcio issuer extension".into(),
        )),
    }
}

/// The rfc822Name entries of the certificate's SAN.
fn emails(cert: &X509Certificate<'_>) -> Vec<String> {
    cert.extensions()
        .iter()
        .filter_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => Some(san),
            _ => None,
        })
        .flat_map(|san| san.general_names.iter())
        .filter_map(|n| match n {
            GeneralName::RFC822Name(e) => Some(e.to_string()),
            _ => None,
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Bundle {
    #[serde(rename = "SignedEntryTimestamp")]
    set: String,
    #[serde(rename = "Payload")]
    payload: BundlePayload,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BundlePayload {
    body: String,
    #[serde(rename = "integratedTime")]
    integrated_time: i64,
    #[serde(rename = "logIndex")]
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    spec: EntrySpec,
}

#[derive(Deserialize)]
struct EntrySpec {
    data: EntryData,
    signature: EntrySignature,
}

#[derive(Deserialize)]
struct EntryData {
    hash: EntryHash,
}

#[derive(Deserialize)]
struct EntryHash {
    algorithm: String,
    value: String,
}

#[derive(Deserialize)]
struct EntrySignature {
    content: String,
    #[serde(rename = "publicKey")]
    public_key: EntryKey,
}

#[derive(Deserialize)]
struct EntryKey {
    content: String,
}

/// The canonical JSON (RFC 8785) of a bundle payload: what the SET signs. The fields
/// are strings and integers, so canonical form is sorted keys without spaces.
pub fn canonical_payload(body: &str, integrated_time: i64, log_index: i64, log_id: &str) -> String {
    let s = |v: &str| serde_json::Value::from(v).to_string();
    format!(
        r#"{{"body":{},"integratedTime":{integrated_time},"logID":{},"logIndex":{log_index}}}"#,
        s(body),
        s(log_id)
    )
}

/// Verifies a Rekor bundle: the SET with `rekor`, and that the logged `hashedrekord`
/// entry is this signature (`signature_b64`), of this payload, by `signer_der` (the
/// DER of the certificate or public key that made it). Its `integratedTime`.
pub fn verify_bundle(
    rekor: &PublicKey,
    bundle: &str,
    signer_der: &[u8],
    signature_b64: &str,
    payload: &[u8],
) -> Result<i64, KeylessError> {
    let bad = |what: &str| KeylessError::Bundle(what.to_string());
    let b: Bundle =
        serde_json::from_str(bundle).map_err(|e| KeylessError::Bundle(e.to_string()))?;
    let p = &b.payload;
    let canonical = canonical_payload(&p.body, p.integrated_time, p.log_index, &p.log_id);
    let set = STANDARD
        .decode(b.set.trim())
        .map_err(|_| bad("SignedEntryTimestamp is not base64"))?;
    rekor
        .verify(canonical.as_bytes(), &set)
        .map_err(KeylessError::Set)?;
    let body = STANDARD
        .decode(&p.body)
        .map_err(|_| bad("body is not base64"))?;
    let entry: Entry =
        serde_json::from_slice(&body).map_err(|e| KeylessError::Bundle(format!("body: {e}")))?;
    if entry.kind != "hashedrekord" || entry.api_version != "0.0.1" {
        return Err(KeylessError::Bundle(format!(
            "unsupported entry {} {}",
            entry.kind, entry.api_version
        )));
    }
    let logged_signer = STANDARD
        .decode(&entry.spec.signature.public_key.content)
        .map_err(|_| bad("publicKey is not base64"))?;
    let logged_signer = pem_blocks(&logged_signer, "")
        .into_iter()
        .next()
        .ok_or_else(|| bad("publicKey is not PEM"))?;
    if logged_signer != signer_der {
        return Err(KeylessError::EntryMismatch("certificate or key"));
    }
    let logged_sig = STANDARD
        .decode(&entry.spec.signature.content)
        .map_err(|_| bad("signature is not base64"))?;
    let sig = STANDARD
        .decode(signature_b64.trim())
        .map_err(|_| bad("the signature annotation is not base64"))?;
    if logged_sig != sig {
        return Err(KeylessError::EntryMismatch("signature"));
    }
    let hash = &entry.spec.data.hash;
    if hash.algorithm != "sha256" {
        return Err(KeylessError::Bundle(format!(
            "unsupported hash algorithm {:?}",
            hash.algorithm
        )));
    }
    if hash.value != hex::encode(sha2::Sha256::digest(payload)) {
        return Err(KeylessError::EntryMismatch("payload"));
    }
    Ok(p.integrated_time)
}

/// The DER contents of the PEM blocks of `pem` labelled `label` (any label when
/// empty).
pub fn pem_blocks(pem: &[u8], label: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem)
        .map_while(Result::ok)
        .filter(|p| label.is_empty() || p.label == label)
        .map(|p| p.contents)
        .collect()
}

/// The one `label` block of `pem`.
fn single_pem(pem: &[u8], label: &str) -> Result<Vec<u8>, String> {
    let mut blocks = pem_blocks(pem, label);
    match blocks.len() {
        1 => Ok(blocks.remove(0)),
        0 => Err("no PEM certificate".into()),
        n => Err(format!("{n} certificates where one is expected")),
    }
}

fn rfc3339(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| t.to_string())
}
