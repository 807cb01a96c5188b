//! Registry mirrors (`--registry-mirror SOURCE=MIRROR`) and the list of endpoints a
//! request tries: matching mirrors first, most specific source first, then the
//! source itself. Pure functions over references: may call moor-api only.

use std::fmt;

use moor_api::DockerImageReference;
use moor_api::reference::{is_registry_docker_hub, is_valid_registry, is_valid_repository_path};

use super::UpstreamError;

/// One mirror: content under `source` (a registry host, or `host/repository-prefix`)
/// may be fetched from `mirror` (likewise), with the rest of the repository path
/// appended. As in an ImageDigestMirrorSet, the caller keeps seeing the source name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirror {
    /// Normalized source prefix: `quay.io`, `quay.io/keycloak`, `docker.io/library`.
    source: String,
    /// Mirror prefix: `mirror.local:5000`, `mirror.local:5000/quay`.
    mirror: String,
}

impl Mirror {
    /// Parses `SOURCE=MIRROR`, each a registry host with an optional repository
    /// prefix (`quay.io=mirror.local:5000/quay`).
    pub fn parse(spec: &str) -> Result<Self, UpstreamError> {
        let invalid = |why: &str| UpstreamError::InvalidConfig {
            message: format!("registry mirror {spec:?}: {why}; expected SOURCE=MIRROR"),
        };
        let (source, mirror) = spec.split_once('=').ok_or_else(|| invalid("no '='"))?;
        Self::new(source, mirror).map_err(|e| invalid(&e))
    }

    /// A mirror of `source` at `mirror` (see [`parse`](Self::parse)).
    pub fn new(source: &str, mirror: &str) -> Result<Self, String> {
        let source = normalize_prefix(source.trim()).map_err(|e| format!("source: {e}"))?;
        let mirror = normalize_prefix(mirror.trim()).map_err(|e| format!("mirror: {e}"))?;
        Ok(Self { source, mirror })
    }

    /// The source prefix, normalized (`docker.io` for Docker Hub's names).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The mirror prefix.
    pub fn mirror(&self) -> &str {
        &self.mirror
    }
}

impl fmt::Display for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.source, self.mirror)
    }
}

fn normalize_prefix(prefix: &str) -> Result<String, String> {
    let prefix = prefix.trim_end_matches('/');
    let (host, path) = prefix.split_once('/').unwrap_or((prefix, ""));
    if host.is_empty() || !is_valid_registry(host) {
        return Err(format!("{host:?} is not a registry host"));
    }
    if !path.is_empty() && !is_valid_repository_path(path) {
        return Err(format!("{path:?} is not a repository path"));
    }
    let host = normalize_host(host);
    Ok(if path.is_empty() {
        host
    } else {
        format!("{host}/{path}")
    })
}

fn normalize_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    if is_registry_docker_hub(&host) {
        "docker.io".to_owned()
    } else {
        host
    }
}

/// One place a request can go: a registry host (as contacted) and a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// Host with optional port, as contacted (`registry-1.docker.io` for Docker Hub).
    pub registry: String,
    /// Repository path.
    pub repository: String,
    /// Whether this is a mirror (else the source).
    pub mirror: bool,
}

impl Target {
    /// `registry/repository`, for messages.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

/// The endpoints for `reference`, in the order to try them: mirrors whose source
/// matches (longest source first, then configuration order), then the source.
pub(crate) fn targets(mirrors: &[Mirror], reference: &DockerImageReference) -> Vec<Target> {
    let source = Target {
        registry: reference.registry_api_host().to_owned(),
        repository: reference.effective_repository(),
        mirror: false,
    };
    let full = format!(
        "{}/{}",
        normalize_host(reference.effective_registry()),
        source.repository
    );
    let mut matching: Vec<(usize, usize, &Mirror)> = mirrors
        .iter()
        .enumerate()
        .filter(|(_, m)| {
            full == m.source
                || full
                    .strip_prefix(m.source.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .map(|(i, m)| (m.source.len(), i, m))
        .collect();
    // Most specific source first; equal lengths keep configuration order.
    matching.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut out = Vec::with_capacity(matching.len() + 1);
    for (len, _, m) in matching {
        let rewritten = format!("{}{}", m.mirror, &full[len..]);
        let Some((host, repo)) = rewritten.split_once('/') else {
            tracing::warn!(mirror = %m, image = %reference, "mirror maps the image to a registry without repository; skipped");
            continue;
        };
        let registry = if host == "docker.io" {
            moor_api::reference::DOCKER_DEFAULT_V2_REGISTRY.to_owned()
        } else {
            host.to_owned()
        };
        let target = Target {
            registry,
            repository: repo.to_owned(),
            mirror: true,
        };
        let same_as_source =
            target.registry == source.registry && target.repository == source.repository;
        if !same_as_source && !out.contains(&target) {
            out.push(target);
        }
    }
    out.push(source);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> DockerImageReference {
        DockerImageReference::parse(s).unwrap()
    }

    fn names(ts: &[Target]) -> Vec<String> {
        ts.iter().map(Target::name).collect()
    }

    #[test]
    fn parse_specs() {
        let m = Mirror::parse("quay.io=127.0.0.1:5000").unwrap();
        assert_eq!(m.source(), "quay.io");
        assert_eq!(m.mirror(), "127.0.0.1:5000");
        assert_eq!(m.to_string(), "quay.io=127.0.0.1:5000");
        let m = Mirror::parse("index.docker.io/library=mirror.local/hub/").unwrap();
        assert_eq!(m.source(), "docker.io/library");
        assert_eq!(m.mirror(), "mirror.local/hub");
        for bad in [
            "quay.io",
            "=x",
            "quay.io=",
            "quay.io=bad host",
            "quay.io=m/UPPER",
        ] {
            let e = Mirror::parse(bad).unwrap_err();
            assert_eq!(e.reason(), "InternalError", "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn endpoint_order() {
        let mirrors = vec![
            Mirror::parse("quay.io=m1.local").unwrap(),
            Mirror::parse("quay.io/keycloak=m2.local:5000/kc").unwrap(),
            Mirror::parse("quay.io=m3.local/q").unwrap(),
            Mirror::parse("quay.io/keycloakx=never.local").unwrap(),
            Mirror::parse("docker.io=hub-mirror.local").unwrap(),
        ];
        let t = targets(&mirrors, &r("quay.io/keycloak/keycloak:20.0.2"));
        assert_eq!(
            names(&t),
            [
                "m2.local:5000/kc/keycloak",
                "m1.local/keycloak/keycloak",
                "m3.local/q/keycloak/keycloak",
                "quay.io/keycloak/keycloak"
            ]
        );
        assert!(t[0].mirror && !t[3].mirror);

        let t = targets(&mirrors, &r("busybox"));
        assert_eq!(
            names(&t),
            [
                "hub-mirror.local/library/busybox",
                "registry-1.docker.io/library/busybox"
            ]
        );
        let t = targets(&mirrors, &r("gcr.io/a/b"));
        assert_eq!(names(&t), ["gcr.io/a/b"]);
    }

    #[test]
    fn whole_repository_mirror() {
        let mirrors = vec![
            Mirror::parse("quay.io/keycloak/keycloak=127.0.0.1:5000/kc").unwrap(),
            Mirror::parse("quay.io/a/b=127.0.0.1:5000").unwrap(),
        ];
        let t = targets(
            &mirrors,
            &r(
                "quay.io/keycloak/keycloak@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            ),
        );
        assert_eq!(
            names(&t),
            ["127.0.0.1:5000/kc", "quay.io/keycloak/keycloak"]
        );
        // A mirror that leaves no repository is skipped.
        let t = targets(&mirrors, &r("quay.io/a/b:1"));
        assert_eq!(names(&t), ["quay.io/a/b"]);
    }
}
