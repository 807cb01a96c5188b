//! Docker client defaults and registry normalisation: Docker Hub's names, the
//! registry API host, and host and port to connect to.

use super::grammar::is_registry_docker_hub;
use super::{
    DEFAULT_TAG, DOCKER_DEFAULT_NAMESPACE, DOCKER_DEFAULT_REGISTRY, DOCKER_DEFAULT_V1_REGISTRY,
    DOCKER_DEFAULT_V2_REGISTRY, DockerImageReference,
};

impl DockerImageReference {
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
