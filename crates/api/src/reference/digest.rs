//! Content digests (`sha256:…`, `sha512:…`) and incremental hashing into them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

use super::ReferenceError;
use super::grammar::GENERIC_DIGEST_RE;

/// A digest algorithm that moor accepts (those registered by the OCI image spec).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestAlgorithm {
    /// SHA-256, 64 hex characters.
    Sha256,
    /// SHA-512, 128 hex characters.
    Sha512,
}

impl DigestAlgorithm {
    /// The algorithm's name as written before the `:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    /// The length of the hex-encoded hash.
    pub fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(Self::Sha256),
            "sha512" => Some(Self::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A content digest, `sha256:<64 lowercase hex>` or `sha512:<128 lowercase hex>`.
///
/// Only [`Digest::parse`] and the hashing constructors make one, so a `Digest` is
/// always valid. Serializes as its string.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    text: String,
    algorithm: DigestAlgorithm,
}

impl Digest {
    /// Parses and validates `s`, with go-digest's error order: format, algorithm,
    /// length, then hex characters.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        let Some((alg, hex)) = s.split_once(':') else {
            return Err(ReferenceError::DigestInvalidFormat);
        };
        if alg.is_empty() || hex.is_empty() {
            return Err(ReferenceError::DigestInvalidFormat);
        }
        let Some(algorithm) = DigestAlgorithm::from_name(alg) else {
            return Err(if GENERIC_DIGEST_RE.is_match(s) {
                ReferenceError::DigestUnsupported
            } else {
                ReferenceError::DigestInvalidFormat
            });
        };
        if hex.len() != algorithm.hex_len() {
            return Err(ReferenceError::DigestInvalidLength);
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ReferenceError::DigestInvalidFormat);
        }
        Ok(Self {
            text: s.to_owned(),
            algorithm,
        })
    }

    /// The SHA-256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        let mut hasher = DigestHasher::new(DigestAlgorithm::Sha256);
        hasher.update(bytes);
        hasher.finish()
    }

    /// The SHA-512 digest of `bytes`.
    pub fn sha512_of(bytes: &[u8]) -> Self {
        let mut hasher = DigestHasher::new(DigestAlgorithm::Sha512);
        hasher.update(bytes);
        hasher.finish()
    }

    /// The digest of `bytes` with this digest's algorithm.
    pub fn of_same_algorithm(&self, bytes: &[u8]) -> Self {
        let mut hasher = DigestHasher::new(self.algorithm);
        hasher.update(bytes);
        hasher.finish()
    }

    /// Whether `bytes` hash to this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        self.of_same_algorithm(bytes) == *self
    }

    /// The algorithm.
    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    /// The hex-encoded hash, after the `:`.
    pub fn hex(&self) -> &str {
        &self.text[self.algorithm.as_str().len() + 1..]
    }

    /// The whole digest, `algorithm:hex`.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.text)
    }
}

impl FromStr for Digest {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for Digest {
    type Error = ReferenceError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Digest {
    type Error = ReferenceError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> Self {
        d.text
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Incremental hashing into a [`Digest`], for verifying content as it streams.
#[derive(Clone)]
pub struct DigestHasher {
    inner: HasherInner,
}

#[derive(Clone)]
enum HasherInner {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl DigestHasher {
    /// A hasher for `algorithm`.
    pub fn new(algorithm: DigestAlgorithm) -> Self {
        let inner = match algorithm {
            DigestAlgorithm::Sha256 => HasherInner::Sha256(sha2::Sha256::new()),
            DigestAlgorithm::Sha512 => HasherInner::Sha512(sha2::Sha512::new()),
        };
        Self { inner }
    }

    /// A hasher with the algorithm of `expected`, to check content against it.
    pub fn for_digest(expected: &Digest) -> Self {
        Self::new(expected.algorithm())
    }

    /// The algorithm hashed with.
    pub fn algorithm(&self) -> DigestAlgorithm {
        match self.inner {
            HasherInner::Sha256(_) => DigestAlgorithm::Sha256,
            HasherInner::Sha512(_) => DigestAlgorithm::Sha512,
        }
    }

    /// Feeds more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.inner {
            HasherInner::Sha256(h) => h.update(bytes),
            HasherInner::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of all bytes fed so far.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self.inner {
            HasherInner::Sha256(h) => (DigestAlgorithm::Sha256, hex::encode(h.finalize())),
            HasherInner::Sha512(h) => (DigestAlgorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest {
            text: format!("{}:{hex}", algorithm.as_str()),
            algorithm,
        }
    }
}

impl fmt::Debug for DigestHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alg = match self.inner {
            HasherInner::Sha256(_) => DigestAlgorithm::Sha256,
            HasherInner::Sha512(_) => DigestAlgorithm::Sha512,
        };
        write!(f, "DigestHasher({alg})")
    }
}
