//! Public keys that verify cosign signatures: ECDSA P-256 and P-384, RSA (PKCS#1 v1.5
//! and PSS) and Ed25519, read from a PEM `SubjectPublicKeyInfo` (a policy's `keyData`,
//! a Rekor key) or a certificate's key (keyless). Pure: no I/O.
//!
//! What is verified is what cosign and containers/image (CRI-O's verifier) verify:
//! a signature over the payload bytes with SHA-256 whatever the key (sigstore's
//! `LoadVerifier(key, crypto.SHA256)`); P-384 also accepts SHA-384, what newer sigstore
//! clients pick for that curve by default; RSA accepts PKCS#1 v1.5 and PSS with any salt
//! length (Go's `PSSSaltLengthAuto`); Ed25519 is pure Ed25519 over the payload.
//!
//! The `sigstore` crate's [`CosignVerificationKey`] verifies P-256, P-384 with SHA-384,
//! Ed25519, RSA PKCS#1 v1.5 and RSA PSS with a salt as long as the digest. Two cases it
//! has no scheme for are verified here, as Go's cosign accepts them: P-384 with
//! SHA-256 (with `ring`, rustls's provider) and RSA PSS with another salt length (or an
//! RSA key under the 2048 bits aws-lc accepts) with `rsa` (jsonwebtoken's). The key
//! type is read with x509-parser first, so that a key cosign does not sign with (P-521
//! included, as before) is refused with a message naming it.

use ring::signature::{ECDSA_P384_SHA256_ASN1, UnparsedPublicKey};
use rsa::pkcs8::DecodePublicKey as _;
use rsa::signature::Verifier as _;
use sha2::Digest as _;
use sigstore::crypto::{CosignVerificationKey, Signature, SigningScheme};
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
    /// A key that the `sigstore` crate refuses.
    #[error("the public key does not parse")]
    Sigstore(#[source] sigstore::errors::SigstoreError),
    /// An RSA key that `rsa` refuses (too small, malformed).
    #[error("the RSA public key does not parse")]
    Rsa(#[source] rsa::pkcs8::spki::Error),
    /// The signature is not the key's over the data.
    #[error("not a signature of the data by this {0} key")]
    Mismatch(&'static str),
}

/// What verifies beside the crate's key, by key type.
#[derive(Clone, Debug)]
enum Kind {
    P256,
    /// The uncompressed point, for SHA-256 signatures (the crate's P-384 is SHA-384).
    P384(Vec<u8>),
    /// The key as a PSS key for the crate (the main key is PKCS#1 v1.5), and as an
    /// `rsa` key for PSS signatures with any salt length.
    Rsa {
        pss: Box<CosignVerificationKey>,
        any_salt: Box<rsa::PublicKey>,
    },
    Ed25519,
}

/// A parsed public key and its DER `SubjectPublicKeyInfo`.
#[derive(Clone, Debug)]
pub struct PublicKey {
    key: CosignVerificationKey,
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
        let kind = if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            match curve {
                Some(c) if c == OID_EC_P256 => Kind::P256,
                Some(c) if c == OID_NIST_EC_P384 => {
                    Kind::P384(spki.subject_public_key.data.to_vec())
                }
                Some(c) => return Err(KeyError::Unsupported(format!("ECDSA curve {c}"))),
                None => return Err(KeyError::Unsupported("ECDSA without a named curve".into())),
            }
        } else if *alg == OID_PKCS1_RSAENCRYPTION {
            Kind::Rsa {
                pss: Box::new(
                    CosignVerificationKey::from_der(spki.raw, &SigningScheme::RSA_PSS_SHA256(0))
                        .map_err(KeyError::Sigstore)?,
                ),
                any_salt: Box::new(
                    rsa::PublicKey::from_public_key_der(spki.raw).map_err(KeyError::Rsa)?,
                ),
            }
        } else if *alg == OID_SIG_ED25519 {
            Kind::Ed25519
        } else {
            return Err(KeyError::Unsupported(alg.to_id_string()));
        };
        Ok(PublicKey {
            key: CosignVerificationKey::try_from_der(spki.raw).map_err(KeyError::Sigstore)?,
            kind,
            spki: spki.raw.to_vec(),
        })
    }

    /// The key type, for messages (`ECDSA P-256`, `RSA`, ...).
    pub fn kind(&self) -> &'static str {
        match self.kind {
            Kind::P256 => "ECDSA P-256",
            Kind::P384(_) => "ECDSA P-384",
            Kind::Rsa { .. } => "RSA",
            Kind::Ed25519 => "Ed25519",
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

    /// Verifies `signature` (DER for ECDSA) over `data`, as cosign does: with the
    /// `sigstore` crate, then the schemes it lacks (see the module's comment).
    pub fn verify(&self, data: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        let ok = self.verify_by_crate(data, signature)
            || match &self.kind {
                Kind::P384(point) => UnparsedPublicKey::new(&ECDSA_P384_SHA256_ASN1, point)
                    .verify(data, signature)
                    .is_ok(),
                Kind::Rsa { any_salt, .. } => rsa_verify(any_salt, data, signature),
                Kind::P256 | Kind::Ed25519 => false,
            };
        if ok {
            Ok(())
        } else {
            Err(KeyError::Mismatch(self.kind()))
        }
    }

    /// Whether the `sigstore` crate verifies `signature` over `data` (an RSA key as
    /// PKCS#1 v1.5, then as PSS).
    fn verify_by_crate(&self, data: &[u8], signature: &[u8]) -> bool {
        let by = |key: &CosignVerificationKey| {
            key.verify_signature(Signature::Raw(signature), data)
                .is_ok()
        };
        by(&self.key) || matches!(&self.kind, Kind::Rsa { pss, .. } if by(pss))
    }

    /// Whether this is an ECDSA key (Rekor's keys are).
    pub fn is_ecdsa(&self) -> bool {
        matches!(self.kind, Kind::P256 | Kind::P384(_))
    }
}

/// RSA with SHA-256 where aws-lc refuses: PKCS#1 v1.5 (a key under 2048 bits), else
/// PSS with the salt length read from the signature. (`sha2_hmac` is sha2 0.11, the
/// digest version `rsa` 0.10 takes.)
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

#[cfg(test)]
mod schemes {
    //! Each way a key verifies: the `sigstore` crate's schemes and the fallbacks beside
    //! it, signed with `openssl` as other signers do.

    use std::process::Command;

    use super::PublicKey;

    /// A key from `openssl genpkey <args>`, and a signer over `openssl dgst`.
    struct Key {
        dir: tempfile::TempDir,
        public: PublicKey,
    }

    impl Key {
        fn new(args: &[&str]) -> Key {
            let dir = tempfile::tempdir().unwrap();
            let key = dir.path().join("key.pem");
            let out = Command::new("openssl")
                .arg("genpkey")
                .args(args)
                .arg("-out")
                .arg(&key)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            let pem = Command::new("openssl")
                .args(["pkey", "-pubout", "-in"])
                .arg(&key)
                .output()
                .unwrap()
                .stdout;
            Key {
                public: PublicKey::from_pem(&pem).unwrap(),
                dir,
            }
        }

        /// `openssl dgst <args> -sign key` over `data`.
        fn sign(&self, data: &[u8], args: &[&str]) -> Vec<u8> {
            let file = self.dir.path().join("data");
            std::fs::write(&file, data).unwrap();
            let out = Command::new("openssl")
                .arg("dgst")
                .args(args)
                .arg("-sign")
                .arg(self.dir.path().join("key.pem"))
                .arg(&file)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            out.stdout
        }
    }

    #[test]
    fn crate_schemes_and_fallbacks_verify() {
        if !moor_testkit::require(&["openssl"]) {
            return;
        }
        let data = b"{\"critical\":{}}";
        let p384 = Key::new(&["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]);
        let rsa = Key::new(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
        let pss = |salt: &str| {
            rsa.sign(
                data,
                &[
                    "-sha256",
                    "-sigopt",
                    "rsa_padding_mode:pss",
                    "-sigopt",
                    salt,
                ],
            )
        };
        // What the crate verifies, and what cosign accepts beside it (the fallbacks).
        let cases: [(&str, &Key, Vec<u8>, bool); 5] = [
            ("P-384 SHA-384", &p384, p384.sign(data, &["-sha384"]), true),
            ("RSA PKCS#1 v1.5", &rsa, rsa.sign(data, &["-sha256"]), true),
            (
                "RSA PSS digest salt",
                &rsa,
                pss("rsa_pss_saltlen:digest"),
                true,
            ),
            ("P-384 SHA-256", &p384, p384.sign(data, &["-sha256"]), false),
            (
                "RSA PSS 20-byte salt",
                &rsa,
                pss("rsa_pss_saltlen:20"),
                false,
            ),
        ];
        for (what, key, sig, by_crate) in cases {
            assert_eq!(
                key.public.verify_by_crate(data, &sig),
                by_crate,
                "{what} by the crate"
            );
            key.public
                .verify(data, &sig)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let e = key.public.verify(b"other data", &sig).unwrap_err();
            assert!(
                e.to_string().starts_with("not a signature of the data"),
                "{what}: {e}"
            );
        }
    }
}
