//! Content digests and container image references (pull specs), validated on parse.
//! IO-free: string parsing, formatting and hashing of in-memory bytes only.
//!
//! [`DockerImageReference`] follows OpenShift's `library-go` `reference.Parse`: the
//! docker/distribution grammar, then a split into registry, namespace and name where the
//! first path component is a registry only if it contains `.` or `:` or is `localhost`,
//! and everything after the namespace (the first remaining component) is the name:
//!
//! | input | registry | namespace | name | tag | id |
//! |---|---|---|---|---|---|
//! | `keycloak:20.0` | | | `keycloak` | `20.0` | |
//! | `quay.io/keycloak/keycloak:20.0.2` | `quay.io` | `keycloak` | `keycloak` | `20.0.2` | |
//! | `localhost:5000/a/b@sha256:…` | `localhost:5000` | `a` | `b` | | `sha256:…` |
//! | `quay.io/a/b/c` | `quay.io` | `a` | `b/c` | | |
//! | `bar/foo/baz` | | `bar` | `foo/baz` | | |
//!
//! Where moor is stricter than library-go, the method docs say so.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

/// Errors from parsing a digest or an image reference. The messages are those of
/// docker/distribution and go-digest, which OpenShift shows in validation errors.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The reference string is empty.
    #[error("repository name must have at least one component")]
    NameEmpty,
    /// The reference would be valid if it were lowercase.
    #[error("repository name must be lowercase")]
    NameContainsUppercase,
    /// The registry plus repository path is longer than [`NAME_TOTAL_LENGTH_MAX`].
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    /// The string does not follow the reference grammar (bad characters, empty path
    /// components, a `:` or `@` in the wrong place, a scheme such as `https://`).
    #[error("invalid reference format")]
    InvalidFormat,
    /// A tag does not match `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    #[error("invalid tag format")]
    InvalidTag,
    /// A registry is not a host name or IP address with an optional numeric port.
    #[error("invalid registry format")]
    InvalidRegistry,
    /// A digest is not `algorithm:hex` with lowercase hex.
    #[error("invalid checksum digest format")]
    DigestInvalidFormat,
    /// A digest's hex part has the wrong length for its algorithm.
    #[error("invalid checksum digest length")]
    DigestInvalidLength,
    /// A digest uses an algorithm other than `sha256` or `sha512`.
    #[error("unsupported digest algorithm")]
    DigestUnsupported,
}

/// The maximum length of a registry plus repository path.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// The registry assumed when a reference names none.
pub const DOCKER_DEFAULT_REGISTRY: &str = "docker.io";
/// The host name of Docker Hub's v1 registry.
pub const DOCKER_DEFAULT_V1_REGISTRY: &str = "index.docker.io";
/// The host name of Docker Hub's v2 registry API.
pub const DOCKER_DEFAULT_V2_REGISTRY: &str = "registry-1.docker.io";
/// The namespace Docker Hub assumes for single-component names.
pub const DOCKER_DEFAULT_NAMESPACE: &str = "library";
/// The tag assumed when a reference names neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

// The docker/distribution reference grammar, written as regex fragments.
const PATH_COMPONENT: &str = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const DOMAIN_COMPONENT: &str = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const IPV6: &str = r"\[[a-fA-F0-9:]+\]";
const TAG: &str = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
const DIGEST: &str = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";

fn domain_pattern() -> String {
    format!(r"(?:{DOMAIN_COMPONENT}(?:\.{DOMAIN_COMPONENT})*|{IPV6})(?::[0-9]+)?")
}

fn compile(pattern: &str) -> Regex {
    // The patterns are constants of this module; the unit tests compile every one.
    Regex::new(pattern).expect("constant regex must compile")
}

static REFERENCE_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(&format!(
        r"^((?:{domain}/)?{PATH_COMPONENT}(?:/{PATH_COMPONENT})*)(?::({TAG}))?(?:@({DIGEST}))?$",
        domain = domain_pattern()
    ))
});
static DOMAIN_RE: LazyLock<Regex> = LazyLock::new(|| compile(&format!("^{}$", domain_pattern())));
static PATH_RE: LazyLock<Regex> =
    LazyLock::new(|| compile(&format!("^{PATH_COMPONENT}(?:/{PATH_COMPONENT})*$")));
static TAG_RE: LazyLock<Regex> = LazyLock::new(|| compile(&format!("^{TAG}$")));
static GENERIC_DIGEST_RE: LazyLock<Regex> = LazyLock::new(|| compile(&format!("^{DIGEST}$")));

/// Whether `tag` is a valid image tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    TAG_RE.is_match(tag)
}

/// Whether `path` is a valid repository path (`a`, `a/b`, `my-org/my_app.v2`):
/// lowercase components joined by `/`, no registry.
pub fn is_valid_repository_path(path: &str) -> bool {
    PATH_RE.is_match(path)
}

/// Whether `registry` is a valid registry host: a DNS name, IPv4 or bracketed IPv6
/// address, with an optional numeric port.
pub fn is_valid_registry(registry: &str) -> bool {
    DOMAIN_RE.is_match(registry)
}

/// Whether `registry` names Docker Hub (`docker.io`, `index.docker.io`,
/// `registry-1.docker.io`).
pub fn is_registry_docker_hub(registry: &str) -> bool {
    matches!(
        registry,
        DOCKER_DEFAULT_REGISTRY | DOCKER_DEFAULT_V1_REGISTRY | DOCKER_DEFAULT_V2_REGISTRY
    )
}

// ---------------------------------------------------------------------------------------
// Digest
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// DockerImageReference
// ---------------------------------------------------------------------------------------

/// A container image pull spec split as OpenShift splits it: registry, namespace, name,
/// tag and digest (`id`). Empty strings mean "not given".
///
/// Built only by [`parse`](Self::parse) and the validating `with_*` methods, so every
/// value formats back into a parsable pull spec. Displays as [`exact`](Self::exact);
/// serializes as that string.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DockerImageReference {
    registry: String,
    namespace: String,
    name: String,
    tag: String,
    id: Option<Digest>,
}

impl DockerImageReference {
    /// Parses a pull spec with OpenShift's rules (see the module docs).
    ///
    /// Stricter than library-go: a first component without `.`/`:` that is not
    /// `localhost` must be lowercase (library-go lets `Foo/bar` through); a registry
    /// alone (`quay.io`, `localhost:5000`) may only carry a numeric port, not a
    /// digest; and only `localhost` exactly (not any name starting with it) is a
    /// registry when alone.
    pub fn parse(spec: &str) -> Result<Self, ReferenceError> {
        let Some(caps) = REFERENCE_RE.captures(spec) else {
            if spec.is_empty() {
                return Err(ReferenceError::NameEmpty);
            }
            if REFERENCE_RE.is_match(&spec.to_ascii_lowercase()) {
                return Err(ReferenceError::NameContainsUppercase);
            }
            return Err(ReferenceError::InvalidFormat);
        };
        let full_name = caps.get(1).map_or("", |m| m.as_str());
        if full_name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong);
        }
        let tag = caps.get(2).map_or("", |m| m.as_str());
        let id = caps.get(3).map(|m| Digest::parse(m.as_str())).transpose()?;

        let mut reference = Self {
            registry: String::new(),
            namespace: String::new(),
            name: String::new(),
            tag: String::new(),
            id,
        };
        match full_name.find('/') {
            None if full_name.contains('.') || full_name == "localhost" => {
                // A registry alone: `quay.io`, `localhost:5000` (parsed as name + tag).
                if reference.id.is_some() {
                    return Err(ReferenceError::InvalidFormat);
                }
                if !tag.is_empty() && !tag.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ReferenceError::InvalidFormat);
                }
                reference.registry = if tag.is_empty() {
                    full_name.to_owned()
                } else {
                    format!("{full_name}:{tag}")
                };
                return Ok(reference);
            }
            None => reference.name = full_name.to_owned(),
            Some(i) => {
                let first = &full_name[..i];
                if first.contains(['.', ':']) || first == "localhost" {
                    reference.registry = first.to_owned();
                    reference.name = full_name[i + 1..].to_owned();
                } else {
                    reference.name = full_name.to_owned();
                }
            }
        }
        if reference.registry.is_empty() && reference.name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::NameContainsUppercase);
        }
        if let Some(i) = reference.name.find('/') {
            reference.namespace = reference.name[..i].to_owned();
            reference.name = reference.name[i + 1..].to_owned();
        }
        reference.tag = tag.to_owned();
        Ok(reference)
    }

    /// A reference from its parts, each validated: `registry` may be empty or a
    /// registry host, `namespace` empty or one path component, `name` one or more path
    /// components.
    pub fn from_parts(registry: &str, namespace: &str, name: &str) -> Result<Self, ReferenceError> {
        if name.is_empty() {
            return Err(ReferenceError::NameEmpty);
        }
        if !registry.is_empty() && !is_valid_registry(registry) {
            return Err(ReferenceError::InvalidRegistry);
        }
        if namespace.contains('/') {
            return Err(ReferenceError::InvalidFormat);
        }
        if !namespace.is_empty() && !is_valid_repository_path(namespace) {
            return Err(path_error(namespace));
        }
        if !is_valid_repository_path(name) {
            return Err(path_error(name));
        }
        let reference = Self {
            registry: registry.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            tag: String::new(),
            id: None,
        };
        if reference.repository_full_name().len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong);
        }
        Ok(reference)
    }

    /// The registry host (with port), or `""` when none was given.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The namespace (the first path component when there are two or more), or `""`.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The name: every path component after the namespace (`b/c` in `quay.io/a/b/c`).
    /// Empty only for a registry-only reference such as `quay.io`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tag, or `None`.
    pub fn tag(&self) -> Option<&str> {
        (!self.tag.is_empty()).then_some(self.tag.as_str())
    }

    /// The digest (OpenShift's `ID`), or `None`.
    pub fn id(&self) -> Option<&Digest> {
        self.id.as_ref()
    }

    /// Whether this names a registry only, with no repository.
    pub fn is_registry_only(&self) -> bool {
        self.name.is_empty()
    }

    /// Whether this is a short name: no registry and no namespace (`keycloak:20.0`),
    /// the form image stream lookup resolves.
    pub fn is_short_name(&self) -> bool {
        self.registry.is_empty() && self.namespace.is_empty() && !self.name.is_empty()
    }

    /// This reference with `tag` (validated).
    pub fn with_tag(mut self, tag: &str) -> Result<Self, ReferenceError> {
        if !is_valid_tag(tag) {
            return Err(ReferenceError::InvalidTag);
        }
        self.tag = tag.to_owned();
        Ok(self)
    }

    /// This reference without a tag.
    pub fn without_tag(mut self) -> Self {
        self.tag.clear();
        self
    }

    /// This reference with digest `id`.
    pub fn with_id(mut self, id: Digest) -> Self {
        self.id = Some(id);
        self
    }

    /// This reference without a digest.
    pub fn without_id(mut self) -> Self {
        self.id = None;
        self
    }

    /// This reference with another registry (validated; `""` removes it).
    pub fn with_registry(mut self, registry: &str) -> Result<Self, ReferenceError> {
        if !registry.is_empty() && !is_valid_registry(registry) {
            return Err(ReferenceError::InvalidRegistry);
        }
        self.registry = registry.to_owned();
        Ok(self)
    }

    /// The name with its digest (`name@sha256:…`) or else its tag (`name:tag`), as
    /// OpenShift's `NameString`: a digest hides the tag.
    pub fn name_string(&self) -> String {
        match (&self.id, self.tag.is_empty()) {
            _ if self.name.is_empty() => String::new(),
            (Some(id), _) => format!("{}@{id}", self.name),
            (None, false) => format!("{}:{}", self.name, self.tag),
            (None, true) => self.name.clone(),
        }
    }

    /// The pull spec with exactly the parts that are set, no defaults
    /// (`quay.io/keycloak/keycloak@sha256:…`). A digest hides the tag, as in OpenShift.
    pub fn exact(&self) -> String {
        let mut s = String::new();
        if !self.registry.is_empty() {
            s.push_str(&self.registry);
            if self.name.is_empty() {
                return s;
            }
            s.push('/');
        }
        if !self.namespace.is_empty() {
            s.push_str(&self.namespace);
            s.push('/');
        }
        s.push_str(&self.name_string());
        s
    }

    /// OpenShift's `String()`: [`exact`](Self::exact), with `library/` added to a
    /// one-component Docker Hub name that names its registry (`docker.io/library/x`).
    pub fn string(&self) -> String {
        if self.namespace.is_empty() && is_registry_docker_hub(&self.registry) {
            let mut r = self.clone();
            r.namespace = DOCKER_DEFAULT_NAMESPACE.to_owned();
            return r.exact();
        }
        self.exact()
    }

    /// The repository path relative to its registry: `namespace/name`, or `name`.
    pub fn repository_name(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }

    fn repository_full_name(&self) -> String {
        match (self.registry.is_empty(), self.name.is_empty()) {
            (true, _) => self.repository_name(),
            (false, true) => self.registry.clone(),
            (false, false) => format!("{}/{}", self.registry, self.repository_name()),
        }
    }

    /// This reference without tag and digest.
    pub fn as_repository(&self) -> Self {
        self.clone().without_tag().without_id()
    }

    /// The defaults a Docker client applies: registry `docker.io`, namespace `library`
    /// on Docker Hub, tag `latest`.
    pub fn docker_client_defaults(&self) -> Self {
        let mut r = self.clone();
        if r.registry.is_empty() {
            r.registry = DOCKER_DEFAULT_REGISTRY.to_owned();
        }
        if r.namespace.is_empty() && is_registry_docker_hub(&r.registry) {
            r.namespace = DOCKER_DEFAULT_NAMESPACE.to_owned();
        }
        if r.tag.is_empty() {
            r.tag = DEFAULT_TAG.to_owned();
        }
        r
    }

    /// This reference with a `latest` tag removed.
    pub fn minimal(&self) -> Self {
        let mut r = self.clone();
        if r.tag == DEFAULT_TAG {
            r.tag.clear();
        }
        r
    }

    /// The shortest form a Docker daemon would accept: Docker Hub host names folded to
    /// `docker.io`, `library/` removed on Docker Hub, `latest` removed.
    pub fn daemon_minimal(&self) -> Self {
        let mut r = self.clone();
        if matches!(
            r.registry.as_str(),
            DOCKER_DEFAULT_V1_REGISTRY | DOCKER_DEFAULT_V2_REGISTRY
        ) {
            r.registry = DOCKER_DEFAULT_REGISTRY.to_owned();
        }
        if is_registry_docker_hub(&r.registry) && r.namespace == DOCKER_DEFAULT_NAMESPACE {
            r.namespace.clear();
        }
        r.minimal()
    }

    /// This reference with Docker Hub's registry rewritten to the host that serves the
    /// v2 API (`registry-1.docker.io`). An empty registry stays empty.
    pub fn as_v2(&self) -> Self {
        let mut r = self.clone();
        if matches!(
            r.registry.as_str(),
            DOCKER_DEFAULT_REGISTRY | DOCKER_DEFAULT_V1_REGISTRY
        ) {
            r.registry = DOCKER_DEFAULT_V2_REGISTRY.to_owned();
        }
        r
    }

    /// The most specific form: with a digest, the tag is dropped.
    pub fn most_specific(&self) -> Self {
        if self.id.is_some() {
            self.clone().without_tag()
        } else {
            self.clone()
        }
    }

    /// Whether two references name the same thing once Docker client defaults are
    /// applied (`foo` equals `docker.io/library/foo:latest`).
    pub fn equivalent(&self, other: &Self) -> bool {
        self.docker_client_defaults() == other.docker_client_defaults()
    }

    /// Whether the effective registry is Docker Hub (including no registry at all).
    pub fn is_docker_hub(&self) -> bool {
        self.registry.is_empty() || is_registry_docker_hub(&self.registry)
    }

    /// The registry as a user would name it: the given one, else `docker.io`.
    pub fn effective_registry(&self) -> &str {
        if self.registry.is_empty() {
            DOCKER_DEFAULT_REGISTRY
        } else {
            &self.registry
        }
    }

    /// The host (with port) to send registry API requests to: the given registry, or
    /// `registry-1.docker.io` for Docker Hub.
    pub fn registry_api_host(&self) -> &str {
        if self.is_docker_hub() {
            DOCKER_DEFAULT_V2_REGISTRY
        } else {
            &self.registry
        }
    }

    /// The repository path for registry API requests: [`repository_name`](Self::repository_name),
    /// with `library/` added to one-component Docker Hub names (`keycloak` →
    /// `library/keycloak`).
    pub fn effective_repository(&self) -> String {
        if self.namespace.is_empty() && self.is_docker_hub() {
            format!("{DOCKER_DEFAULT_NAMESPACE}/{}", self.name)
        } else {
            self.repository_name()
        }
    }

    /// What to ask the registry for in `/v2/<repo>/manifests/<reference>`: the
    /// digest if there is one, else the tag, else `latest`.
    pub fn manifest_reference(&self) -> &str {
        match (&self.id, self.tag.is_empty()) {
            (Some(id), _) => id.as_str(),
            (None, false) => &self.tag,
            (None, true) => DEFAULT_TAG,
        }
    }

    /// The registry host and port to connect to: Docker Hub becomes
    /// `registry-1.docker.io` (also when no registry is given, where library-go would
    /// answer `docker.io`); the port defaults to 443, or 80 when `insecure`. IPv6 hosts
    /// keep their brackets.
    pub fn registry_host_port(&self, insecure: bool) -> (String, String) {
        let host = self.docker_client_defaults().as_v2().registry;
        if let Some((h, p)) = split_host_port(&host) {
            return (h.to_owned(), p.to_owned());
        }
        let port = if insecure { "80" } else { "443" };
        (host, port.to_owned())
    }
}

fn split_host_port(host: &str) -> Option<(&str, &str)> {
    let (h, p) = host.rsplit_once(':')?;
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if h.starts_with('[') && !h.ends_with(']') {
        return None;
    }
    Some((h, p))
}

fn path_error(path: &str) -> ReferenceError {
    if is_valid_repository_path(&path.to_ascii_lowercase()) {
        ReferenceError::NameContainsUppercase
    } else {
        ReferenceError::InvalidFormat
    }
}

impl fmt::Display for DockerImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.exact())
    }
}

impl fmt::Debug for DockerImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerImageReference")
            .field("registry", &self.registry)
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("tag", &self.tag)
            .field("id", &self.id.as_ref().map(Digest::as_str))
            .finish()
    }
}

impl FromStr for DockerImageReference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for DockerImageReference {
    type Error = ReferenceError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl Serialize for DockerImageReference {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.exact())
    }
}

impl<'de> Deserialize<'de> for DockerImageReference {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "3c87c572822935df60f0f5d3665bd376841a7fcfeb806b5f212de6a00e9a7b25";

    fn sha() -> String {
        format!("sha256:{HEX}")
    }

    #[test]
    fn regexes_compile() {
        LazyLock::force(&REFERENCE_RE);
        LazyLock::force(&DOMAIN_RE);
        LazyLock::force(&PATH_RE);
        LazyLock::force(&TAG_RE);
        LazyLock::force(&GENERIC_DIGEST_RE);
    }

    // --- Digest -----------------------------------------------------------------------

    #[test]
    fn digest_parses_sha256_and_sha512() {
        let d = Digest::parse(&sha()).unwrap();
        assert_eq!(d.algorithm(), DigestAlgorithm::Sha256);
        assert_eq!(d.hex(), HEX);
        assert_eq!(d.to_string(), sha());
        let long = format!("sha512:{}", "ab".repeat(64));
        let d = Digest::parse(&long).unwrap();
        assert_eq!(d.algorithm(), DigestAlgorithm::Sha512);
        assert_eq!(d.hex().len(), 128);
    }

    #[test]
    fn digest_rejects_bad_values() {
        use ReferenceError::*;
        let cases: &[(&str, ReferenceError)] = &[
            ("", DigestInvalidFormat),
            ("sha256", DigestInvalidFormat),
            ("sha256:", DigestInvalidFormat),
            (":abc", DigestInvalidFormat),
            ("sha256:abc", DigestInvalidLength),
            ("sha512:abc", DigestInvalidLength),
            (
                &format!("sha256:{}", HEX.to_uppercase()),
                DigestInvalidFormat,
            ),
            (&format!("sha256:{}g", &HEX[..63]), DigestInvalidFormat),
            (&format!("md5:{HEX}"), DigestUnsupported),
            (&format!("sha384:{}", "a".repeat(96)), DigestUnsupported),
            ("bad digest:xyz", DigestInvalidFormat),
        ];
        for (input, expected) in cases {
            assert_eq!(Digest::parse(input).unwrap_err(), *expected, "{input}");
        }
    }

    #[test]
    fn digest_of_bytes() {
        // sha256("") is well known.
        let d = Digest::sha256_of(b"");
        assert_eq!(
            d.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(d.matches(b""));
        assert!(!d.matches(b"x"));
        let d512 = Digest::sha512_of(b"abc");
        assert!(d512.as_str().starts_with("sha512:ddaf35a193617aba"));
        assert!(Digest::parse(d512.as_str()).is_ok());
    }

    #[test]
    fn digest_hasher_streams() {
        let mut h = DigestHasher::new(DigestAlgorithm::Sha256);
        h.update(b"hello ");
        h.update(b"world");
        assert_eq!(h.finish(), Digest::sha256_of(b"hello world"));
    }

    #[test]
    fn digest_serde_is_a_validated_string() {
        let d = Digest::parse(&sha()).unwrap();
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{}\"", sha()));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"sha256:nope\"").is_err());
    }

    // --- DockerImageReference: OpenShift library-go cases ----------------------------

    struct Case {
        from: String,
        registry: &'static str,
        namespace: String,
        name: String,
        tag: String,
        id: &'static str,
    }

    fn ok(from: &str, registry: &'static str, namespace: &str, name: &str, tag: &str) -> Case {
        Case {
            from: from.to_owned(),
            registry,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            tag: tag.to_owned(),
            id: "",
        }
    }

    fn with_id(mut c: Case) -> Case {
        c.id = "id";
        c
    }

    #[test]
    fn parse_matches_library_go() {
        let s = sha();
        let cases = vec![
            ok("foo", "", "", "foo", ""),
            ok("foo:tag", "", "", "foo", "tag"),
            ok(&s, "", "", "sha256", HEX),
            with_id(ok(&format!("foo@{s}"), "", "", "foo", "")),
            ok("bar/foo", "", "bar", "foo", ""),
            ok("bar/foo:tag", "", "bar", "foo", "tag"),
            with_id(ok(&format!("bar/foo@{s}"), "", "bar", "foo", "")),
            ok("bar/foo/baz", "", "bar", "foo/baz", ""),
            ok("bar/library/baz", "", "bar", "library/baz", ""),
            ok("bar/foo/baz:tag", "", "bar", "foo/baz", "tag"),
            with_id(ok(&format!("bar/foo/baz@{s}"), "", "bar", "foo/baz", "")),
            ok("bar:5000/foo/baz", "bar:5000", "foo", "baz", ""),
            ok("bar:5000/library/baz", "bar:5000", "library", "baz", ""),
            ok("bar:5000/baz", "bar:5000", "", "baz", ""),
            ok("bar:5000/foo/baz:tag", "bar:5000", "foo", "baz", "tag"),
            with_id(ok(
                &format!("bar:5000/foo/baz@{s}"),
                "bar:5000",
                "foo",
                "baz",
                "",
            )),
            ok("myregistry.io/foo", "myregistry.io", "", "foo", ""),
            ok("localhost/bar", "localhost", "", "bar", ""),
            ok(
                "docker.io/library/myapp",
                "docker.io",
                "library",
                "myapp",
                "",
            ),
            ok("docker.io/myapp", "docker.io", "", "myapp", ""),
            ok("docker.io/user/myapp", "docker.io", "user", "myapp", ""),
            ok(
                "docker.io/user/project/myapp",
                "docker.io",
                "user",
                "project/myapp",
                "",
            ),
            ok("index.docker.io/bar", "index.docker.io", "", "bar", ""),
            ok(
                &format!("bar:5000/{}/{}:tag", "a".repeat(63), "b".repeat(182)),
                "bar:5000",
                &"a".repeat(63),
                &"b".repeat(182),
                "tag",
            ),
            ok(
                &format!("docker.io/library/{}:tag", "b".repeat(231)),
                "docker.io",
                "library",
                &"b".repeat(231),
                "tag",
            ),
            ok("quay.io", "quay.io", "", "", ""),
            ok("quay.io/org", "quay.io", "", "org", ""),
            ok("localhost:5000", "localhost:5000", "", "", ""),
            ok("localhost:5000/org", "localhost:5000", "", "org", ""),
            ok("bar/foo/baz/biz", "", "bar", "foo/baz/biz", ""),
            // The seed's walkthrough.
            ok("keycloak:20.0", "", "", "keycloak", "20.0"),
            ok(
                "quay.io/keycloak/keycloak:20.0.2",
                "quay.io",
                "keycloak",
                "keycloak",
                "20.0.2",
            ),
            with_id(ok(
                &format!("localhost:5000/a/b@{s}"),
                "localhost:5000",
                "a",
                "b",
                "",
            )),
            ok(
                "127.0.0.1:5000/ns/n:tag",
                "127.0.0.1:5000",
                "ns",
                "n",
                "tag",
            ),
            ok("quay.io/a/b/c", "quay.io", "a", "b/c", ""),
            ok("[::1]:5000/ns/n", "[::1]:5000", "ns", "n", ""),
            ok(
                "Registry.Example.COM/ns/n",
                "Registry.Example.COM",
                "ns",
                "n",
                "",
            ),
            ok("my_org/app-x.y__z", "", "my_org", "app-x.y__z", ""),
            ok("a/b:Tag_1.2-x", "", "a", "b", "Tag_1.2-x"),
        ];
        for c in cases {
            let r = DockerImageReference::parse(&c.from)
                .unwrap_or_else(|e| panic!("{}: unexpected error {e}", c.from));
            assert_eq!(r.registry(), c.registry, "{}: registry", c.from);
            assert_eq!(r.namespace(), c.namespace, "{}: namespace", c.from);
            assert_eq!(r.name(), c.name, "{}: name", c.from);
            assert_eq!(r.tag().unwrap_or(""), c.tag, "{}: tag", c.from);
            let id = r.id().map(|d| d.to_string()).unwrap_or_default();
            assert_eq!(
                id,
                if c.id.is_empty() {
                    String::new()
                } else {
                    sha()
                },
                "{}",
                c.from
            );
        }
    }

    #[test]
    fn parse_rejects_like_library_go() {
        use ReferenceError::*;
        let s = sha();
        let cases: Vec<(String, ReferenceError)> = vec![
            (
                format!("bar:5000/{}/{}:tag", "a".repeat(63), "b".repeat(183)),
                NameTooLong,
            ),
            (format!("docker.io/{}:tag", "b".repeat(246)), NameTooLong),
            ("registry.io/foo/bar/:Tag".into(), InvalidFormat),
            ("https://bar:5000/foo/baz".into(), InvalidFormat),
            (format!("http://bar:5000/foo/baz@{s}"), InvalidFormat),
            (
                "registry:3000/integration/imageStream:success".into(),
                NameContainsUppercase,
            ),
            (
                "registry:5000/integration/test-image-stream@sha256:00000000000000000000000000000001"
                    .into(),
                DigestInvalidLength,
            ),
            ("abc@badid".into(), InvalidFormat),
            ("index.docker.io/mysql@sha256:bad".into(), InvalidFormat),
            (format!("@{s}"), InvalidFormat),
            (":tag".into(), InvalidFormat),
            ("bar/foo/baz////biz".into(), InvalidFormat),
            ("//foo/baz/biz".into(), InvalidFormat),
            ("ftp://baz/baz/biz".into(), InvalidFormat),
            ("".into(), NameEmpty),
            // More invalid shapes.
            ("Keycloak:20.0".into(), NameContainsUppercase),
            ("Foo/bar".into(), NameContainsUppercase),
            ("quay.io/Keycloak/keycloak".into(), NameContainsUppercase),
            ("foo:".into(), InvalidFormat),
            ("foo:bad tag".into(), InvalidFormat),
            ("foo:-tag".into(), InvalidFormat),
            (format!("foo:{}", "t".repeat(129)), InvalidFormat),
            ("foo:a:b".into(), InvalidFormat),
            ("foo/:tag".into(), InvalidFormat),
            ("foo/".into(), InvalidFormat),
            ("/foo".into(), InvalidFormat),
            ("a//b".into(), InvalidFormat),
            ("foo..bar".into(), InvalidFormat),
            ("-foo".into(), InvalidFormat),
            ("foo bar".into(), InvalidFormat),
            ("quay.io:5000:6000/a".into(), InvalidFormat),
            (format!("foo@sha256:{}", HEX.to_uppercase()), DigestInvalidFormat),
            (format!("foo@md5:{HEX}"), DigestUnsupported),
            (format!("quay.io@{s}"), InvalidFormat),
            ("quay.io:latest".into(), InvalidFormat),
        ];
        for (input, expected) in cases {
            let got = DockerImageReference::parse(&input);
            assert_eq!(got.as_ref().err(), Some(&expected), "{input}: got {got:?}");
        }
    }

    #[test]
    fn error_messages_match_openshift() {
        assert_eq!(
            DockerImageReference::parse("abc@badid")
                .unwrap_err()
                .to_string(),
            "invalid reference format"
        );
        assert_eq!(
            DockerImageReference::parse("a/B").unwrap_err().to_string(),
            "repository name must be lowercase"
        );
        assert_eq!(
            DockerImageReference::parse("").unwrap_err().to_string(),
            "repository name must have at least one component"
        );
    }

    #[test]
    fn exact_and_string_forms() {
        let s = sha();
        let cases: &[(&str, &str, &str)] = &[
            ("keycloak:20.0", "keycloak:20.0", "keycloak:20.0"),
            (
                "docker.io/busybox",
                "docker.io/busybox",
                "docker.io/library/busybox",
            ),
            (
                "quay.io/keycloak/keycloak:20.0.2",
                "quay.io/keycloak/keycloak:20.0.2",
                "quay.io/keycloak/keycloak:20.0.2",
            ),
            ("quay.io", "quay.io", "quay.io"),
            ("localhost:5000", "localhost:5000", "localhost:5000"),
            ("quay.io/a/b/c:t", "quay.io/a/b/c:t", "quay.io/a/b/c:t"),
        ];
        for (input, exact, string) in cases {
            let r = DockerImageReference::parse(input).unwrap();
            assert_eq!(r.exact(), *exact, "{input}");
            assert_eq!(r.to_string(), *exact, "{input}");
            assert_eq!(r.string(), *string, "{input}");
            // exact() always parses back to the same reference.
            assert_eq!(
                DockerImageReference::parse(&r.exact()).unwrap(),
                r,
                "{input}"
            );
        }
        // A digest hides the tag.
        let r = DockerImageReference::parse(&format!("quay.io/a/b:1.0@{s}")).unwrap();
        assert_eq!(r.tag(), Some("1.0"));
        assert_eq!(r.exact(), format!("quay.io/a/b@{s}"));
        assert_eq!(r.most_specific().tag(), None);
    }

    #[test]
    fn docker_hub_defaults() {
        let r = DockerImageReference::parse("keycloak").unwrap();
        assert!(r.is_short_name());
        assert!(r.is_docker_hub());
        assert_eq!(r.effective_registry(), "docker.io");
        assert_eq!(r.registry_api_host(), "registry-1.docker.io");
        assert_eq!(r.effective_repository(), "library/keycloak");
        assert_eq!(r.manifest_reference(), "latest");
        assert_eq!(r.registry(), "");
        assert_eq!(
            r.docker_client_defaults().exact(),
            "docker.io/library/keycloak:latest"
        );
        let d = r.docker_client_defaults();
        assert_eq!(d.daemon_minimal().exact(), "docker.io/keycloak");
        assert!(r.equivalent(
            &DockerImageReference::parse("docker.io/library/keycloak:latest").unwrap()
        ));
        assert!(!r.equivalent(&DockerImageReference::parse("quay.io/keycloak").unwrap()));

        let r = DockerImageReference::parse("bitnami/redis:7").unwrap();
        assert!(!r.is_short_name());
        assert_eq!(r.effective_repository(), "bitnami/redis");
        assert_eq!(r.manifest_reference(), "7");

        let r = DockerImageReference::parse("quay.io/keycloak/keycloak:20.0.2").unwrap();
        assert!(!r.is_docker_hub());
        assert_eq!(r.registry_api_host(), "quay.io");
        assert_eq!(r.effective_repository(), "keycloak/keycloak");
        assert_eq!(r.repository_name(), "keycloak/keycloak");
        assert_eq!(r.as_repository().exact(), "quay.io/keycloak/keycloak");

        let r = DockerImageReference::parse("index.docker.io/foo").unwrap();
        assert_eq!(r.as_v2().registry(), "registry-1.docker.io");
        assert_eq!(r.daemon_minimal().registry(), "docker.io");
    }

    #[test]
    fn manifest_reference_prefers_digest() {
        let r = DockerImageReference::parse(&format!("a/b:t@{}", sha())).unwrap();
        assert_eq!(r.manifest_reference(), sha());
    }

    #[test]
    fn registry_host_port() {
        let hp = |s: &str, insecure| {
            DockerImageReference::parse(s)
                .unwrap()
                .registry_host_port(insecure)
        };
        assert_eq!(
            hp("foo", false),
            ("registry-1.docker.io".into(), "443".into())
        );
        assert_eq!(hp("quay.io/a", true), ("quay.io".into(), "80".into()));
        assert_eq!(
            hp("localhost:5000/a", false),
            ("localhost".into(), "5000".into())
        );
        assert_eq!(hp("[::1]:5000/a", false), ("[::1]".into(), "5000".into()));
    }

    #[test]
    fn builders_validate() {
        let r = DockerImageReference::from_parts("quay.io", "keycloak", "keycloak").unwrap();
        assert_eq!(r.exact(), "quay.io/keycloak/keycloak");
        let r = r.with_tag("20.0").unwrap();
        assert_eq!(r.exact(), "quay.io/keycloak/keycloak:20.0");
        let d = Digest::parse(&sha()).unwrap();
        let r = r.with_id(d.clone());
        assert_eq!(r.id(), Some(&d));
        assert_eq!(
            r.clone().with_registry("127.0.0.1:8080").unwrap().exact(),
            format!("127.0.0.1:8080/keycloak/keycloak@{}", sha())
        );
        assert_eq!(
            DockerImageReference::from_parts("", "", "a/b/c")
                .unwrap()
                .exact(),
            "a/b/c"
        );
        assert_eq!(
            DockerImageReference::from_parts("", "Ns", "x").unwrap_err(),
            ReferenceError::NameContainsUppercase
        );
        assert_eq!(
            DockerImageReference::from_parts("bad host!", "", "x").unwrap_err(),
            ReferenceError::InvalidRegistry
        );
        assert_eq!(
            DockerImageReference::from_parts("", "a/b", "x").unwrap_err(),
            ReferenceError::InvalidFormat
        );
        assert_eq!(
            DockerImageReference::from_parts("", "", "").unwrap_err(),
            ReferenceError::NameEmpty
        );
        assert_eq!(
            r.with_tag("bad tag").unwrap_err(),
            ReferenceError::InvalidTag
        );
        assert_eq!(
            DockerImageReference::from_parts("", "", &"a".repeat(256)).unwrap_err(),
            ReferenceError::NameTooLong
        );
    }

    #[test]
    fn tag_and_path_helpers() {
        assert!(is_valid_tag("20.0"));
        assert!(is_valid_tag("latest"));
        assert!(is_valid_tag("_x"));
        assert!(is_valid_tag(&"a".repeat(128)));
        assert!(!is_valid_tag(&"a".repeat(129)));
        assert!(!is_valid_tag(".x"));
        assert!(!is_valid_tag("-x"));
        assert!(!is_valid_tag(""));
        assert!(!is_valid_tag("a:b"));
        assert!(!is_valid_tag("é"));
        assert!(is_valid_repository_path("a/b-c/d_e.f"));
        assert!(!is_valid_repository_path("A"));
        assert!(is_valid_registry("quay.io:443"));
        assert!(is_valid_registry("[fe80::1]"));
        assert!(!is_valid_registry("quay.io:"));
        assert!(is_registry_docker_hub("index.docker.io"));
    }

    #[test]
    fn reference_serde_roundtrip() {
        let r = DockerImageReference::parse("quay.io/a/b:1").unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, "\"quay.io/a/b:1\"");
        assert_eq!(
            serde_json::from_str::<DockerImageReference>(&json).unwrap(),
            r
        );
        assert!(serde_json::from_str::<DockerImageReference>("\"A\"").is_err());
    }
}
