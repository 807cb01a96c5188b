//! Encryption at rest: `--encryption-provider-config FILE`, kube-apiserver's
//! `EncryptionConfiguration` (`apiserver.config.k8s.io/v1`), with the `aesgcm`,
//! `secretbox` and `identity` providers.
//!
//! Semantics are kube's: for each `resources[]` entry the first key of the first
//! provider encrypts every write; every listed key decrypts, found by the prefix the
//! stored value carries (`k8s:enc:aesgcm:v1:<key>:`, `k8s:enc:secretbox:v1:<key>:`).
//! So a new key listed first, then a rewrite of every object, rotates keys. Unlike
//! kube, a value without a `k8s:enc:` prefix always reads as plaintext (written
//! before encryption was enabled), whether or not `identity` is listed.
//!
//! [`EncryptedStore`] applies the configuration below the API server, to every value
//! whose store key lies under a configured resource's prefix. Calls the store trait
//! and RustCrypto's AEADs only.

mod store;

use std::path::Path;
use std::sync::Arc;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::aes::Aes192;
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crypto_secretbox::XSalsa20Poly1305;
use serde::Deserialize;

pub use store::EncryptedStore;

/// What every encrypted value starts with.
const ENCRYPTED_MARK: &[u8] = b"k8s:enc:";
/// AES-GCM's and XSalsa20-Poly1305's nonce sizes.
const GCM_NONCE: usize = 12;
const SECRETBOX_NONCE: usize = 24;

/// Errors of the configuration file and of encrypting or decrypting a value.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file is not an `EncryptionConfiguration` (syntax, unknown fields).
    #[error("not an EncryptionConfiguration: {0}")]
    Syntax(#[source] serde_yaml_ng::Error),
    /// A field holds a value moor refuses; `field` is its path in the file.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A value could not be encrypted.
    #[error("encrypt {key}: {reason}")]
    Encrypt { key: String, reason: String },
    /// A stored value could not be decrypted (wrong or missing key, tampered data).
    #[error("decrypt {key}: {reason}")]
    Decrypt { key: String, reason: String },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> EncryptionError {
    EncryptionError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------
// The file format (kube's apiserver.config.k8s.io/v1 EncryptionConfiguration).

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileConfig {
    api_version: String,
    kind: String,
    #[serde(default)]
    resources: Vec<ResourceConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceConfig {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    providers: Vec<ProviderConfig>,
}

/// One provider: exactly one field set. `aescbc` and `kms` are kube's too, and
/// named in the error rather than reported as unknown fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderConfig {
    aesgcm: Option<KeysConfig>,
    secretbox: Option<KeysConfig>,
    identity: Option<IdentityConfig>,
    aescbc: Option<serde_yaml_ng::Value>,
    kms: Option<serde_yaml_ng::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysConfig {
    #[serde(default)]
    keys: Vec<KeyConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyConfig {
    name: String,
    secret: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityConfig {}

// ---------------------------------------------------------------------------------------
// The parsed configuration.

/// One `resources[]` entry: the store keys it covers and its keys.
#[derive(Clone)]
pub struct Rule {
    /// Store keys starting with this are transformed (e.g. `/registry/core/secrets/`).
    pub prefix: String,
    /// The keys: the first writes, all read.
    pub transformer: Arc<Transformer>,
}

/// A parsed `EncryptionConfiguration`: the rules in file order; the first whose prefix
/// matches a key applies to it.
#[derive(Clone, Default)]
pub struct EncryptionConfig {
    pub rules: Vec<Rule>,
}

impl std::fmt::Debug for EncryptionConfig {
    /// Prefixes and key names only: never key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        for r in &self.rules {
            let keys: Vec<String> = r
                .transformer
                .keys
                .iter()
                .map(|k| format!("{}:{}", k.provider, k.name))
                .collect();
            list.entry(&(&r.prefix, keys));
        }
        list.finish()
    }
}

impl EncryptionConfig {
    /// Reads and checks `--encryption-provider-config FILE`.
    pub fn load(path: &Path) -> Result<Self, EncryptionError> {
        let text = std::fs::read_to_string(path).map_err(|source| EncryptionError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses and checks an `EncryptionConfiguration` (YAML or JSON).
    pub fn parse(text: &str) -> Result<Self, EncryptionError> {
        let file: FileConfig = serde_yaml_ng::from_str(text).map_err(EncryptionError::Syntax)?;
        if file.api_version != "apiserver.config.k8s.io/v1" {
            return Err(invalid(
                "apiVersion",
                format!(
                    "{:?} is not supported: use apiserver.config.k8s.io/v1",
                    file.api_version
                ),
            ));
        }
        if file.kind != "EncryptionConfiguration" {
            return Err(invalid(
                "kind",
                format!("{:?}: expected EncryptionConfiguration", file.kind),
            ));
        }
        let mut rules = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, rc) in file.resources.iter().enumerate() {
            let at = format!("resources[{i}]");
            if rc.resources.is_empty() {
                return Err(invalid(format!("{at}.resources"), "must name a resource"));
            }
            if rc.providers.is_empty() {
                return Err(invalid(format!("{at}.providers"), "must list a provider"));
            }
            let transformer = Arc::new(Transformer::from_providers(&at, &rc.providers)?);
            for (j, name) in rc.resources.iter().enumerate() {
                let field = format!("{at}.resources[{j}]");
                let prefix = resource_prefix(name).map_err(|m| invalid(&field, m))?;
                if !seen.insert(prefix.clone()) {
                    return Err(invalid(field, format!("{name:?} is listed twice")));
                }
                rules.push(Rule {
                    prefix,
                    transformer: transformer.clone(),
                });
            }
        }
        Ok(EncryptionConfig { rules })
    }

    /// The transformer for store key `key`, if a rule covers it.
    pub fn transformer(&self, key: &str) -> Option<&Transformer> {
        self.rules
            .iter()
            .find(|r| key.starts_with(&r.prefix))
            .map(|r| &*r.transformer)
    }
}

/// The store key prefix of a configured resource name, laid out as the API server's
/// keys are (`moor_apimachinery::stored::resource_prefix`: `/registry/<group|core>/
/// <plural>/`): `secrets` (core), `imagestreams.image.openshift.io`, `*.apps` (a whole
/// group), `*.` (the core group), `*.*` (everything).
fn resource_prefix(name: &str) -> Result<String, String> {
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    };
    let (resource, group) = match name.split_once('.') {
        Some((r, g)) => (r, Some(g)),
        None => (name, None),
    };
    let dir = |g: &str| {
        if g.is_empty() {
            "core".to_string()
        } else {
            g.to_string()
        }
    };
    match (resource, group) {
        ("*", Some("*")) => Ok("/registry/".into()),
        ("*", Some(g)) if g.is_empty() || valid(g) => Ok(format!("/registry/{}/", dir(g))),
        (r, g) if r.contains('*') || g.is_some_and(|g| g.contains('*')) => Err(format!(
            "{name:?}: only whole groups (\"*.GROUP\", \"*.\") or \"*.*\" may be wildcards"
        )),
        (r, g) if valid(r) && g.is_none_or(|g| g.is_empty() || valid(g)) => {
            Ok(format!("/registry/{}/{r}/", dir(g.unwrap_or(""))))
        }
        _ => Err(format!(
            "{name:?} is not a resource name (RESOURCE[.GROUP])"
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Keys.

/// An AES-GCM key of any of the three sizes.
enum Gcm {
    A128(Box<Aes128Gcm>),
    A192(Box<AesGcm<Aes192, aes_gcm::aead::consts::U12>>),
    A256(Box<Aes256Gcm>),
}

enum Cipher {
    Identity,
    AesGcm(Gcm),
    SecretBox(Box<XSalsa20Poly1305>),
}

/// One key of a provider.
struct Key {
    provider: &'static str,
    name: String,
    /// `k8s:enc:<provider>:v1:<name>:` (empty for identity).
    prefix: Vec<u8>,
    cipher: Cipher,
}

/// The keys of one `resources[]` entry, in order: the first encrypts, all decrypt.
pub struct Transformer {
    keys: Vec<Key>,
}

impl Transformer {
    fn from_providers(at: &str, providers: &[ProviderConfig]) -> Result<Self, EncryptionError> {
        let mut keys = Vec::new();
        for (i, p) in providers.iter().enumerate() {
            let at = format!("{at}.providers[{i}]");
            let set = [
                p.aesgcm.is_some(),
                p.secretbox.is_some(),
                p.identity.is_some(),
                p.aescbc.is_some(),
                p.kms.is_some(),
            ];
            match set.iter().filter(|s| **s).count() {
                0 => {
                    return Err(invalid(
                        at,
                        "names no provider (aesgcm, secretbox or identity)",
                    ));
                }
                1 => {}
                _ => {
                    return Err(invalid(
                        at,
                        "more than one provider in one element: split them into list elements",
                    ));
                }
            }
            if p.aescbc.is_some() || p.kms.is_some() {
                let which = if p.aescbc.is_some() { "aescbc" } else { "kms" };
                return Err(invalid(
                    format!("{at}.{which}"),
                    "provider not supported by moor: use aesgcm, secretbox or identity",
                ));
            }
            if p.identity.is_some() {
                keys.push(Key {
                    provider: "identity",
                    name: String::new(),
                    prefix: Vec::new(),
                    cipher: Cipher::Identity,
                });
                continue;
            }
            let (provider, config) = match (&p.aesgcm, &p.secretbox) {
                (Some(c), _) => ("aesgcm", c),
                (_, Some(c)) => ("secretbox", c),
                _ => unreachable!("exactly one provider is set"),
            };
            let at = format!("{at}.{provider}");
            if config.keys.is_empty() {
                return Err(invalid(format!("{at}.keys"), "must list a key"));
            }
            let mut names = std::collections::HashSet::new();
            for (j, k) in config.keys.iter().enumerate() {
                let at = format!("{at}.keys[{j}]");
                if k.name.is_empty() || k.name.contains(':') {
                    return Err(invalid(
                        format!("{at}.name"),
                        "must be a non-empty name without ':'",
                    ));
                }
                if !names.insert(k.name.as_str()) {
                    return Err(invalid(
                        format!("{at}.name"),
                        format!("{:?} is listed twice", k.name),
                    ));
                }
                let secret = STANDARD
                    .decode(k.secret.trim())
                    .map_err(|_| invalid(format!("{at}.secret"), "is not valid standard base64"))?;
                let cipher = key_cipher(provider, &secret).map_err(|expected| {
                    invalid(
                        format!("{at}.secret"),
                        format!("is {} bytes long, expected {expected} bytes", secret.len()),
                    )
                })?;
                keys.push(Key {
                    provider,
                    prefix: format!("k8s:enc:{provider}:v1:{}:", k.name).into_bytes(),
                    name: k.name.clone(),
                    cipher,
                });
            }
        }
        Ok(Transformer { keys })
    }

    /// Encrypts `plain`, the value of store key `key`, with the first key.
    pub fn seal(&self, key: &str, plain: &[u8]) -> Result<Vec<u8>, EncryptionError> {
        let Some(k) = self.keys.first() else {
            return Ok(plain.to_vec());
        };
        let failed = |_| EncryptionError::Encrypt {
            key: key.to_string(),
            reason: format!("{} key {:?} failed", k.provider, k.name),
        };
        // The store key is AES-GCM's associated data, as in kube: a value copied to
        // another key does not decrypt.
        let payload = Payload {
            msg: plain,
            aad: key.as_bytes(),
        };
        let mut out = k.prefix.clone();
        match &k.cipher {
            Cipher::Identity => return Ok(plain.to_vec()),
            Cipher::AesGcm(gcm) => {
                let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
                let sealed = match gcm {
                    Gcm::A128(c) => c.encrypt(&nonce, payload),
                    Gcm::A192(c) => c.encrypt(&nonce, payload),
                    Gcm::A256(c) => c.encrypt(&nonce, payload),
                }
                .map_err(failed)?;
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
            }
            Cipher::SecretBox(c) => {
                let nonce = XSalsa20Poly1305::generate_nonce(&mut OsRng);
                let sealed = c.encrypt(&nonce, plain).map_err(failed)?;
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
            }
        }
        Ok(out)
    }

    /// Whether stored `data` is not what [`seal`](Self::seal) writes now: encrypted
    /// with another key, or plaintext while the first provider encrypts (or
    /// encrypted while it is `identity`).
    pub fn is_stale(&self, data: &[u8]) -> bool {
        match self.keys.first() {
            None => false,
            Some(k) if k.prefix.is_empty() => data.starts_with(ENCRYPTED_MARK),
            Some(k) => !data.starts_with(&k.prefix),
        }
    }

    /// Decrypts `data`, the stored value of `key`, with the key its prefix names; a
    /// value without the `k8s:enc:` mark is plaintext.
    pub fn open(&self, key: &str, data: &[u8]) -> Result<Vec<u8>, EncryptionError> {
        if !data.starts_with(ENCRYPTED_MARK) {
            return Ok(data.to_vec());
        }
        let fail = |reason: String| EncryptionError::Decrypt {
            key: key.to_string(),
            reason,
        };
        let Some(k) = self
            .keys
            .iter()
            .find(|k| !k.prefix.is_empty() && data.starts_with(&k.prefix))
        else {
            return Err(fail(format!(
                "no configured key matches the value's prefix {:?} (was the key removed \
                 from --encryption-provider-config before every object was rewritten?)",
                prefix_of(data)
            )));
        };
        let body = &data[k.prefix.len()..];
        let tampered = |_| {
            fail(format!(
                "{} key {:?} does not authenticate the value (wrong key or tampered data)",
                k.provider, k.name
            ))
        };
        let short = || fail(format!("{} value is truncated", k.provider));
        match &k.cipher {
            Cipher::Identity => Ok(data.to_vec()),
            Cipher::AesGcm(gcm) => {
                if body.len() < GCM_NONCE {
                    return Err(short());
                }
                let (nonce, sealed) = body.split_at(GCM_NONCE);
                let nonce = aes_gcm::Nonce::from_slice(nonce);
                let payload = Payload {
                    msg: sealed,
                    aad: key.as_bytes(),
                };
                match gcm {
                    Gcm::A128(c) => c.decrypt(nonce, payload),
                    Gcm::A192(c) => c.decrypt(nonce, payload),
                    Gcm::A256(c) => c.decrypt(nonce, payload),
                }
                .map_err(tampered)
            }
            Cipher::SecretBox(c) => {
                if body.len() < SECRETBOX_NONCE {
                    return Err(short());
                }
                let (nonce, sealed) = body.split_at(SECRETBOX_NONCE);
                c.decrypt(crypto_secretbox::Nonce::from_slice(nonce), sealed)
                    .map_err(tampered)
            }
        }
    }
}

/// `k8s:enc:<provider>:v1:<name>:` of an encrypted value, for messages.
fn prefix_of(data: &[u8]) -> String {
    let mut colons = 0;
    let end = data
        .iter()
        .take(256)
        .position(|b| {
            colons += usize::from(*b == b':');
            colons == 5
        })
        .map_or(data.len().min(64), |i| i + 1);
    String::from_utf8_lossy(&data[..end]).into_owned()
}

/// The cipher of a `provider` key, or the sizes it must have.
fn key_cipher(provider: &str, secret: &[u8]) -> Result<Cipher, &'static str> {
    Ok(match (provider, secret.len()) {
        ("aesgcm", 16) => Cipher::AesGcm(Gcm::A128(Box::new(
            Aes128Gcm::new_from_slice(secret).map_err(|_| "16, 24 or 32")?,
        ))),
        ("aesgcm", 24) => Cipher::AesGcm(Gcm::A192(Box::new(
            AesGcm::new_from_slice(secret).map_err(|_| "16, 24 or 32")?,
        ))),
        ("aesgcm", 32) => Cipher::AesGcm(Gcm::A256(Box::new(
            Aes256Gcm::new_from_slice(secret).map_err(|_| "16, 24 or 32")?,
        ))),
        ("aesgcm", _) => return Err("16, 24 or 32"),
        ("secretbox", 32) => Cipher::SecretBox(Box::new(
            XSalsa20Poly1305::new_from_slice(secret).map_err(|_| "32")?,
        )),
        _ => return Err("32"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    fn config(providers: &str) -> String {
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n\
             resources:\n- resources: [secrets]\n  providers:\n{providers}"
        )
    }

    fn aesgcm(name: &str, secret: &[u8]) -> String {
        format!(
            "  - aesgcm:\n      keys:\n      - name: {name}\n        secret: {}\n",
            b64(secret)
        )
    }

    fn secretbox(name: &str, secret: &[u8]) -> String {
        format!(
            "  - secretbox:\n      keys:\n      - name: {name}\n        secret: {}\n",
            b64(secret)
        )
    }

    const KEY: &str = "/registry/core/secrets/ns/s";

    fn transformer(providers: &str) -> Arc<Transformer> {
        let c = EncryptionConfig::parse(&config(providers)).unwrap();
        assert_eq!(c.rules[0].prefix, "/registry/core/secrets/");
        c.rules[0].transformer.clone()
    }

    #[test]
    fn every_provider_and_key_size_round_trips_with_kube_prefixes() {
        for (providers, prefix) in [
            (aesgcm("k1", &[1; 16]), "k8s:enc:aesgcm:v1:k1:"),
            (aesgcm("k2", &[2; 24]), "k8s:enc:aesgcm:v1:k2:"),
            (aesgcm("k3", &[3; 32]), "k8s:enc:aesgcm:v1:k3:"),
            (secretbox("k4", &[4; 32]), "k8s:enc:secretbox:v1:k4:"),
        ] {
            let t = transformer(&providers);
            let sealed = t.seal(KEY, b"hunter2").unwrap();
            assert!(sealed.starts_with(prefix.as_bytes()), "{prefix}");
            assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
            // A fresh nonce each time.
            assert_ne!(sealed, t.seal(KEY, b"hunter2").unwrap());
            assert_eq!(t.open(KEY, &sealed).unwrap(), b"hunter2");
        }
    }

    #[test]
    fn the_first_key_writes_and_every_key_reads() {
        let old = transformer(&aesgcm("old", &[1; 32]));
        let sealed_old = old.seal(KEY, b"v").unwrap();
        let both = transformer(&format!(
            "{}{}",
            secretbox("new", &[2; 32]),
            aesgcm("old", &[1; 32])
        ));
        assert_eq!(both.open(KEY, &sealed_old).unwrap(), b"v");
        let sealed_new = both.seal(KEY, b"v").unwrap();
        assert!(sealed_new.starts_with(b"k8s:enc:secretbox:v1:new:"));
        assert!(both.is_stale(&sealed_old) && both.is_stale(b"{}"));
        assert!(!both.is_stale(&sealed_new));
        let new_only = transformer(&secretbox("new", &[2; 32]));
        assert_eq!(new_only.open(KEY, &sealed_new).unwrap(), b"v");
        let err = new_only.open(KEY, &sealed_old).unwrap_err().to_string();
        assert!(err.starts_with("decrypt "), "{err}");
        assert!(err.contains("k8s:enc:aesgcm:v1:old:"), "{err}");
    }

    #[test]
    fn identity_first_writes_plaintext_and_plaintext_always_reads() {
        let t = transformer(&format!("  - identity: {{}}\n{}", aesgcm("k", &[1; 16])));
        assert_eq!(t.seal(KEY, b"{}").unwrap(), b"{}");
        let enc = transformer(&aesgcm("k", &[1; 16]));
        assert!(!t.is_stale(b"{}"));
        assert!(t.is_stale(&enc.seal(KEY, b"x").unwrap()));
        assert_eq!(
            enc.open(KEY, b"{\"kind\":\"Secret\"}").unwrap(),
            b"{\"kind\":\"Secret\"}"
        );
        assert_eq!(t.open(KEY, &enc.seal(KEY, b"x").unwrap()).unwrap(), b"x");
    }

    #[test]
    fn wrong_keys_tampering_truncation_and_moved_values_are_errors() {
        let t = transformer(&aesgcm("k", &[1; 32]));
        let same_name = transformer(&aesgcm("k", &[9; 32]));
        let sealed = t.seal(KEY, b"secret").unwrap();
        for (what, result) in [
            ("wrong key", same_name.open(KEY, &sealed)),
            (
                "other store key",
                t.open("/registry/core/secrets/ns/other", &sealed),
            ),
            ("truncated", t.open(KEY, &sealed[..25])),
            ("tampered", {
                let mut bad = sealed.clone();
                let last = bad.len() - 1;
                bad[last] ^= 1;
                t.open(KEY, &bad)
            }),
        ] {
            let err = result.expect_err(what).to_string();
            assert!(
                err.starts_with(&format!("decrypt {}", &KEY[..10])),
                "{what}: {err}"
            );
        }
        let sb = transformer(&secretbox("k", &[1; 32]));
        let mut bad = sb.seal(KEY, b"secret").unwrap();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(sb.open(KEY, &bad).is_err());
    }

    #[test]
    fn bad_configurations_name_the_field() {
        let cases = [
            (
                config(&aesgcm("k", &[1; 20])),
                "resources[0].providers[0].aesgcm.keys[0].secret",
            ),
            (
                config(&secretbox("k", &[1; 16])),
                "resources[0].providers[0].secretbox.keys[0].secret",
            ),
            (
                config("  - aescbc:\n      keys: []\n"),
                "resources[0].providers[0].aescbc",
            ),
            (
                config("  - aesgcm:\n      keys:\n      - name: k\n        secret: '%%%'\n"),
                "resources[0].providers[0].aesgcm.keys[0].secret",
            ),
            (
                config("  - aesgcm:\n      keys: []\n"),
                "resources[0].providers[0].aesgcm.keys",
            ),
            (
                config(&format!(
                    "{}{}",
                    aesgcm("k", &[1; 16]),
                    "  - identity: {}\n    secretbox: {keys: []}\n"
                )),
                "resources[0].providers[1]",
            ),
            (
                config("  - aesgcm:\n      keys: []\n      extra: 1\n"),
                "extra",
            ),
            (config("  - rot13: {}\n"), "rot13"),
            (
                config(&aesgcm("k", &[1; 16])).replace("[secrets]", "[\"*\"]"),
                "resources[0].resources[0]",
            ),
            (
                config(&aesgcm("k", &[1; 16])).replace("[secrets]", "[secrets, secrets]"),
                "resources[0].resources[1]",
            ),
            (
                config(&aesgcm("k", &[1; 16])).replace("config.k8s.io/v1", "config.k8s.io/v2"),
                "apiVersion",
            ),
        ];
        for (text, field) in cases {
            let err = EncryptionConfig::parse(&text).unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn resource_names_map_to_store_prefixes() {
        for (name, prefix) in [
            ("secrets", "/registry/core/secrets/"),
            (
                "imagestreams.image.openshift.io",
                "/registry/image.openshift.io/imagestreams/",
            ),
            ("*.apps", "/registry/apps/"),
            ("*.", "/registry/core/"),
            ("*.*", "/registry/"),
        ] {
            assert_eq!(resource_prefix(name).unwrap(), prefix, "{name}");
        }
        for bad in ["*", "sec*", "Secrets", "", "s.*"] {
            assert!(resource_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_output_holds_no_key_material() {
        let c = EncryptionConfig::parse(&config(&aesgcm("k", &[7; 32]))).unwrap();
        let shown = format!("{c:?}");
        assert!(shown.contains("aesgcm:k"), "{shown}");
        assert!(!shown.contains(&b64(&[7; 32])), "{shown}");
    }
}
