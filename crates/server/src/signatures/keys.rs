//! Public keys that verify cosign signatures: ECDSA P-256 and P-384, RSA (PKCS#1 v1.5
//! and PSS) and Ed25519, read from a PEM `SubjectPublicKeyInfo` (a policy's `keyData`,
//! a Rekor key) or a certificate's key (keyless). Pure: no I/O.
//!
//! What is verified is what cosign and containers/image (CRI-O's verifier) verify:
//! a signature over the payload bytes with SHA-256 whatever the key (sigstore's
//! `LoadVerifier(key, crypto.SHA256)`); P-384 also accepts SHA-384, what newer sigstore
//! clients pick for that curve by default; RSA accepts PKCS#1 v1.5 and PSS with any salt
//! length (Go's `PSSSaltLengthAuto`); Ed25519 is pure Ed25519 over the payload.
//! ECDSA and Ed25519 go through `ring` (already the TLS provider), RSA through `rsa`
//! (already in the tree through jsonwebtoken), since ring's PSS only accepts a salt as
//! long as the digest.

use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, ED25519,
    UnparsedPublicKey, VerificationAlgorithm,
};
use rsa::pkcs8::DecodePublicKey as _;
use rsa::signature::Verifier as _;
use sha2::Digest as _;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Why a key cannot be used, or a signature does not verify with it.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key data is not PEM (`-----BEGIN PUBLIC KEY-----`).
    #[error("the key is not a PEM public key")]
    Pem,
    /// The key is not a DER `SubjectPublicKeyInfo`.
    #[error("the public key does not parse")]
    Der,
    /// The key's algorithm or curve is not one cosign signs with.
    #[error("unsupported key type {0} (supported: ECDSA P-256 and P-384, RSA, Ed25519)")]
    Unsupported(String),
    /// An RSA key that `rsa` refuses (too small, malformed).
    #[error("the RSA public key does not parse")]
    Rsa(#[source] rsa::pkcs8::spki::Error),
    /// The signature is not the key's over the data.
    #[error("not a signature of the data by this {0} key")]
    Mismatch(&'static str),
}

#[derive(Clone, Debug)]
enum Kind {
    /// The uncompressed point.
    P256(Vec<u8>),
    /// The uncompressed point.
    P384(Vec<u8>),
    Rsa(Box<rsa::PublicKey>),
    /// The 32 key bytes.
    Ed25519(Vec<u8>),
}

/// A parsed public key and its DER `SubjectPublicKeyInfo`.
#[derive(Clone, Debug)]
pub struct PublicKey {
    kind: Kind,
    spki: Vec<u8>,
}

impl PublicKey {
    /// The first `PUBLIC KEY` block of `pem`.
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let der = x509_parser::pem::Pem::iter_from_buffer(pem)
            .filter_map(Result::ok)
            .find(|p| p.label == "PUBLIC KEY")
            .ok_or(KeyError::Pem)?;
        Self::from_spki_der(&der.contents)
    }

    /// A DER `SubjectPublicKeyInfo`.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let (_, spki) = SubjectPublicKeyInfo::from_der(der).map_err(|_| KeyError::Der)?;
        Self::from_spki(&spki)
    }

    /// A parsed `SubjectPublicKeyInfo` (a certificate's key).
    pub fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<Self, KeyError> {
        let alg = &spki.algorithm.algorithm;
        let bits = spki.subject_public_key.data.to_vec();
        let kind = if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            match curve {
                Some(c) if c == OID_EC_P256 => Kind::P256(bits),
                Some(c) if c == OID_NIST_EC_P384 => Kind::P384(bits),
                Some(c) => return Err(KeyError::Unsupported(format!("ECDSA curve {c}"))),
                None => return Err(KeyError::Unsupported("ECDSA without a named curve".into())),
            }
        } else if *alg == OID_PKCS1_RSAENCRYPTION {
            Kind::Rsa(Box::new(
                rsa::PublicKey::from_public_key_der(spki.raw).map_err(KeyError::Rsa)?,
            ))
        } else if *alg == OID_SIG_ED25519 {
            Kind::Ed25519(bits)
        } else {
            return Err(KeyError::Unsupported(alg.to_id_string()));
        };
        Ok(PublicKey {
            kind,
            spki: spki.raw.to_vec(),
        })
    }

    /// The key type, for messages (`ECDSA P-256`, `RSA`, ...).
    pub fn kind(&self) -> &'static str {
        match self.kind {
            Kind::P256(_) => "ECDSA P-256",
            Kind::P384(_) => "ECDSA P-384",
            Kind::Rsa(_) => "RSA",
            Kind::Ed25519(_) => "Ed25519",
        }
    }

    /// The DER `SubjectPublicKeyInfo`.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// `SHA256:<16 hex digits>` of the DER key: how messages name a key.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(&self.spki)
    }

    /// Verifies `signature` (DER for ECDSA) over `data`, as cosign does.
    pub fn verify(&self, data: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        let ring_ok = |alg: &'static dyn VerificationAlgorithm, key: &[u8]| {
            UnparsedPublicKey::new(alg, key)
                .verify(data, signature)
                .is_ok()
        };
        let ok = match &self.kind {
            Kind::P256(k) => ring_ok(&ECDSA_P256_SHA256_ASN1, k),
            Kind::P384(k) => {
                ring_ok(&ECDSA_P384_SHA256_ASN1, k) || ring_ok(&ECDSA_P384_SHA384_ASN1, k)
            }
            Kind::Ed25519(k) => ring_ok(&ED25519, k),
            Kind::Rsa(k) => rsa_verify(k, data, signature),
        };
        if ok {
            Ok(())
        } else {
            Err(KeyError::Mismatch(self.kind()))
        }
    }

    /// Whether this is an ECDSA key (Rekor's keys are).
    pub fn is_ecdsa(&self) -> bool {
        matches!(self.kind, Kind::P256(_) | Kind::P384(_))
    }
}

/// RSA with SHA-256: PKCS#1 v1.5, else PSS with the salt length read from the
/// signature. (`sha2_hmac` is sha2 0.11, the digest version `rsa` 0.10 takes.)
fn rsa_verify(key: &rsa::PublicKey, data: &[u8], signature: &[u8]) -> bool {
    let pkcs1 = rsa::pkcs1v15::Signature::try_from(signature).is_ok_and(|s| {
        rsa::pkcs1v15::VerifyingKey::<sha2_hmac::Sha256>::new(key.clone())
            .verify(data, &s)
            .is_ok()
    });
    pkcs1
        || rsa::pss::Signature::try_from(signature).is_ok_and(|s| {
            rsa::pss::VerifyingKey::<sha2_hmac::Sha256>::new_with_auto_salt_len(key.clone())
                .verify(data, &s)
                .is_ok()
        })
}

/// `SHA256:<16 hex digits>` of `der` (a key's DER, or key data that does not parse).
pub fn fingerprint_of(der: &[u8]) -> String {
    let sum = sha2::Sha256::digest(der);
    format!("SHA256:{}", &hex::encode(sum)[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_and_malformed_keys_say_so() {
        assert!(matches!(
            PublicKey::from_pem(b"not pem"),
            Err(KeyError::Pem)
        ));
        // An X25519 key (1.3.101.110): a key cosign cannot sign with.
        let x25519 = "-----BEGIN PUBLIC KEY-----\n\
            MCowBQYDK2VuAyEAhYVZ9YUx3Zb6Tt7Ynr9nRZKxT7q9cPqjZIG5lM3tR1Q=\n\
            -----END PUBLIC KEY-----\n";
        let e = PublicKey::from_pem(x25519.as_bytes()).unwrap_err();
        assert!(matches!(e, KeyError::Unsupported(_)), "{e}");
        assert!(e.to_string().contains("1.3.101.110"), "{e}");
    }
}
