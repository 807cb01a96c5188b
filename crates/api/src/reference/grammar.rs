//! The docker/distribution reference grammar as regexes, and the validity checks built
//! on it.

use std::sync::LazyLock;

use regex::Regex;

use super::{DOCKER_DEFAULT_REGISTRY, DOCKER_DEFAULT_V1_REGISTRY, DOCKER_DEFAULT_V2_REGISTRY};

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

pub(super) static REFERENCE_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(&format!(
        r"^((?:{domain}/)?{PATH_COMPONENT}(?:/{PATH_COMPONENT})*)(?::({TAG}))?(?:@({DIGEST}))?$",
        domain = domain_pattern()
    ))
});
pub(super) static DOMAIN_RE: LazyLock<Regex> =
    LazyLock::new(|| compile(&format!("^{}$", domain_pattern())));
pub(super) static PATH_RE: LazyLock<Regex> =
    LazyLock::new(|| compile(&format!("^{PATH_COMPONENT}(?:/{PATH_COMPONENT})*$")));
pub(super) static TAG_RE: LazyLock<Regex> = LazyLock::new(|| compile(&format!("^{TAG}$")));
pub(super) static GENERIC_DIGEST_RE: LazyLock<Regex> =
    LazyLock::new(|| compile(&format!("^{DIGEST}$")));

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
