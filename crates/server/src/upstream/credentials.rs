//! Registry credentials: what the caller may send to which registry, built by hand or
//! from `kubernetes.io/dockerconfigjson` / `kubernetes.io/dockercfg` secret contents.
//! Pure data and parsing: may call serde_json and base64, no IO.
//!
//! Matching follows the kubelet and OpenShift keyrings: a key is a registry host
//! (`quay.io`, `localhost:5000`), optionally with a repository prefix
//! (`quay.io/keycloak`), or a URL (`https://index.docker.io/v1/`) whose host is used.
//! Docker Hub's names (`docker.io`, `index.docker.io`, `registry-1.docker.io`,
//! `registry.hub.docker.com`) are one registry. The first matching entry wins, in the
//! order the entries were added (within one secret, the order of its JSON document).

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;
use sha2::Digest as _;

/// The secret type holding a `.dockerconfigjson` key.
pub const SECRET_TYPE_DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
/// The legacy secret type holding a `.dockercfg` key.
pub const SECRET_TYPE_DOCKERCFG: &str = "kubernetes.io/dockercfg";

/// Errors from reading credentials out of a docker config document or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// The document is not JSON of the expected shape.
    #[error("invalid docker config JSON: {0}")]
    InvalidJson(String),
    /// An `auth` field is not base64 of `user:password`.
    #[error("invalid auth field for registry {registry:?}: {reason}")]
    InvalidAuth {
        /// The `auths` key of the entry.
        registry: String,
        /// What is wrong.
        reason: String,
    },
    /// A secret of a docker config type lacks its data key.
    #[error("secret {name:?} of type {secret_type} has no {key} key")]
    MissingKey {
        /// The secret's name.
        name: String,
        /// The secret's type.
        secret_type: String,
        /// The data key expected.
        key: &'static str,
    },
}

/// A docker config document parser.
type ParseFn = fn(&[u8]) -> Result<Credentials, CredentialsError>;

/// One credential: where it applies and what to send.
#[derive(Clone, PartialEq, Eq)]
struct Entry {
    /// Normalized registry host with optional port (`docker.io` for Docker Hub).
    registry: String,
    /// Optional repository prefix the entry is limited to (`keycloak` for a key
    /// `quay.io/keycloak`).
    path: String,
    auth: RegistryAuth,
}

/// Credentials for upstream registries, cheap to clone. The default value is
/// anonymous access everywhere.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    entries: Arc<Vec<Entry>>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secrets: registries and the kind of auth only.
        let mut list = f.debug_list();
        for e in self.entries.iter() {
            let kind = match e.auth {
                RegistryAuth::Anonymous => "anonymous",
                RegistryAuth::Basic(..) => "basic",
                RegistryAuth::Bearer(..) => "bearer",
            };
            if e.path.is_empty() {
                list.entry(&format_args!("{}: {kind}", e.registry));
            } else {
                list.entry(&format_args!("{}/{}: {kind}", e.registry, e.path));
            }
        }
        list.finish()
    }
}

/// One entry of a docker config `auths` map.
#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    /// A bearer token to send as is.
    #[serde(default, rename = "registrytoken")]
    registry_token: Option<String>,
}

/// A `.dockerconfigjson` document. `serde_json` is built with `preserve_order`, so the
/// map keeps the document's order, which "first match wins" depends on.
#[derive(Deserialize)]
struct DockerConfigJson {
    #[serde(default)]
    auths: serde_json::Map<String, serde_json::Value>,
}

impl Credentials {
    /// Anonymous access everywhere (the same as `Credentials::default()`).
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// Whether there are no credentials at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Basic credentials for one registry (`quay.io`, `localhost:5000`, or a
    /// `host/repository-prefix` key).
    pub fn basic(registry: &str, username: &str, password: &str) -> Self {
        Self::default().with(
            registry,
            RegistryAuth::Basic(username.to_owned(), password.to_owned()),
        )
    }

    /// A bearer token sent as is to one registry.
    pub fn bearer(registry: &str, token: &str) -> Self {
        Self::default().with(registry, RegistryAuth::Bearer(token.to_owned()))
    }

    /// These credentials plus `auth` for `registry`, checked after the existing ones.
    pub fn with(mut self, registry: &str, auth: RegistryAuth) -> Self {
        let (registry, path) = normalize_key(registry);
        Arc::make_mut(&mut self.entries).push(Entry {
            registry,
            path,
            auth,
        });
        self
    }

    /// These credentials followed by `other`'s (first match wins, so ours come first).
    pub fn chain(mut self, other: &Credentials) -> Self {
        Arc::make_mut(&mut self.entries).extend(other.entries.iter().cloned());
        self
    }

    /// Reads a `.dockerconfigjson` document (`{"auths": {KEY: {...}}}`). Entries give
    /// `auth` (base64 `user:password`), or `username` and `password`, or
    /// `registrytoken` (a bearer token). Entries with none of these are skipped.
    pub fn from_dockerconfigjson(json: &[u8]) -> Result<Self, CredentialsError> {
        let doc: DockerConfigJson = serde_json::from_slice(json)
            .map_err(|e| CredentialsError::InvalidJson(e.to_string()))?;
        Self::from_auths(doc.auths)
    }

    /// Reads a legacy `.dockercfg` document (the `auths` map without the wrapper).
    pub fn from_dockercfg(json: &[u8]) -> Result<Self, CredentialsError> {
        let auths: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(json)
            .map_err(|e| CredentialsError::InvalidJson(e.to_string()))?;
        Self::from_auths(auths)
    }

    /// Reads a Kubernetes secret of type `kubernetes.io/dockerconfigjson` (key
    /// `.dockerconfigjson`) or `kubernetes.io/dockercfg` (key `.dockercfg`). Other
    /// secret types give `Ok(None)`.
    pub fn from_secret(secret: &Secret) -> Result<Option<Self>, CredentialsError> {
        let secret_type = secret.type_.as_deref().unwrap_or("");
        let (key, parse): (&'static str, ParseFn) = match secret_type {
            SECRET_TYPE_DOCKER_CONFIG_JSON => (".dockerconfigjson", Self::from_dockerconfigjson),
            SECRET_TYPE_DOCKERCFG => (".dockercfg", Self::from_dockercfg),
            _ => return Ok(None),
        };
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.as_slice())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .map(|s| s.as_bytes())
            })
            .ok_or_else(|| CredentialsError::MissingKey {
                name: secret.metadata.name.clone().unwrap_or_default(),
                secret_type: secret_type.to_owned(),
                key,
            })?;
        parse(bytes).map(Some)
    }

    fn from_auths(
        auths: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, CredentialsError> {
        let mut creds = Self::default();
        for (key, value) in auths {
            let entry: AuthEntry = serde_json::from_value(value)
                .map_err(|e| CredentialsError::InvalidJson(format!("auths[{key:?}]: {e}")))?;
            let auth = if let Some(token) = entry.registry_token.filter(|t| !t.is_empty()) {
                RegistryAuth::Bearer(token)
            } else if let Some(encoded) = entry.auth.filter(|a| !a.trim().is_empty()) {
                let (user, pass) =
                    decode_auth(&encoded).map_err(|reason| CredentialsError::InvalidAuth {
                        registry: key.clone(),
                        reason,
                    })?;
                RegistryAuth::Basic(user, pass)
            } else if let (Some(user), Some(pass)) = (entry.username, entry.password) {
                RegistryAuth::Basic(user, pass)
            } else {
                // An entry with only an email or an identity token: nothing we can send.
                tracing::debug!(registry = %key, "docker config entry without usable credentials skipped");
                continue;
            };
            creds = creds.with(&key, auth);
        }
        Ok(creds)
    }

    /// What to send to `registry` (a host with optional port, as contacted) for
    /// `repository`: the first matching entry's auth, else anonymous.
    pub fn for_repository(&self, registry: &str, repository: &str) -> &RegistryAuth {
        static ANONYMOUS: RegistryAuth = RegistryAuth::Anonymous;
        let registry = normalize_host(registry);
        self.entries
            .iter()
            .find(|e| {
                e.registry == registry
                    && (e.path.is_empty()
                        || repository == e.path
                        || repository
                            .strip_prefix(e.path.as_str())
                            .is_some_and(|rest| rest.starts_with('/')))
            })
            .map_or(&ANONYMOUS, |e| &e.auth)
    }
}

/// A stable, non-reversible identity of `auth`, so that caches keyed by it never
/// hand one caller's token to another caller with other credentials.
pub(crate) fn fingerprint(auth: &RegistryAuth) -> String {
    let material = match auth {
        RegistryAuth::Anonymous => return "anonymous".to_owned(),
        RegistryAuth::Basic(u, p) => format!("basic\0{u}\0{p}"),
        RegistryAuth::Bearer(t) => format!("bearer\0{t}"),
    };
    hex::encode(&sha2::Sha256::digest(material.as_bytes())[..16])
}

fn decode_auth(encoded: &str) -> Result<(String, String), String> {
    let cleaned: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cleaned.as_bytes())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(cleaned.as_bytes()))
        .map_err(|e| format!("not base64: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
    let (user, pass) = text
        .split_once(':')
        .ok_or_else(|| "not of the form user:password".to_owned())?;
    Ok((user.to_owned(), pass.to_owned()))
}

/// Docker Hub's names, all one registry.
fn normalize_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_owned()
        }
        _ => host,
    }
}

/// Splits a docker config key into a normalized registry host and a repository
/// prefix: `https://index.docker.io/v1/` → (`docker.io`, ``), `quay.io/org` →
/// (`quay.io`, `org`), `http://localhost:5000` → (`localhost:5000`, ``).
fn normalize_key(key: &str) -> (String, String) {
    let key = key.trim();
    let (is_url, rest) = match key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
    {
        Some(rest) => (true, rest),
        None => (false, key),
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    // A URL's path is an API path (`/v1/`, `/v2/`), never a repository prefix.
    let path = if is_url {
        ""
    } else {
        path.trim_end_matches('/')
    };
    (normalize_host(host), path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn dockerconfigjson_matching() {
        let json = format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "{}"}},
                "quay.io/keycloak": {{"username": "kc", "password": "kcpass"}},
                "quay.io": {{"auth": "{}", "email": "x@y"}},
                "localhost:5000": {{"registrytoken": "tok"}},
                "email-only.io": {{"email": "a@b"}}
            }}}}"#,
            b64("hub:hubpass"),
            b64("q:qpass\n")
        );
        let c = Credentials::from_dockerconfigjson(json.as_bytes()).unwrap();
        let basic = |u: &str, p: &str| RegistryAuth::Basic(u.into(), p.into());
        assert_eq!(
            c.for_repository("registry-1.docker.io", "library/x"),
            &basic("hub", "hubpass")
        );
        assert_eq!(
            c.for_repository("docker.io", "a/b"),
            &basic("hub", "hubpass")
        );
        assert_eq!(
            c.for_repository("quay.io", "keycloak/keycloak"),
            &basic("kc", "kcpass")
        );
        assert_eq!(
            c.for_repository("quay.io", "keycloak"),
            &basic("kc", "kcpass")
        );
        assert_eq!(
            c.for_repository("quay.io", "keycloakx/a"),
            &basic("q", "qpass\n")
        );
        assert_eq!(
            c.for_repository("Quay.IO", "other/a"),
            &basic("q", "qpass\n")
        );
        assert_eq!(
            c.for_repository("localhost:5000", "a"),
            &RegistryAuth::Bearer("tok".into())
        );
        assert_eq!(c.for_repository("localhost", "a"), &RegistryAuth::Anonymous);
        assert_eq!(
            c.for_repository("email-only.io", "a"),
            &RegistryAuth::Anonymous
        );
        assert_eq!(c.for_repository("gcr.io", "a"), &RegistryAuth::Anonymous);
        // Debug never shows secrets.
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("pass"), "{dbg}");
        assert!(dbg.contains("quay.io/keycloak: basic"), "{dbg}");
    }

    #[test]
    fn first_match_wins_across_chains() {
        let a = Credentials::basic("quay.io", "a", "1");
        let b =
            Credentials::basic("quay.io", "b", "2").chain(&Credentials::basic("gcr.io", "g", "3"));
        let c = a.chain(&b);
        assert_eq!(
            c.for_repository("quay.io", "x/y"),
            &RegistryAuth::Basic("a".into(), "1".into())
        );
        assert_eq!(
            c.for_repository("gcr.io", "x/y"),
            &RegistryAuth::Basic("g".into(), "3".into())
        );
    }

    #[test]
    fn errors() {
        assert!(matches!(
            Credentials::from_dockerconfigjson(b"not json"),
            Err(CredentialsError::InvalidJson(_))
        ));
        let bad = br#"{"auths": {"quay.io": {"auth": "%%%"}}}"#;
        assert!(matches!(
            Credentials::from_dockerconfigjson(bad),
            Err(CredentialsError::InvalidAuth { .. })
        ));
        let no_colon = format!(
            r#"{{"auths": {{"quay.io": {{"auth": "{}"}}}}}}"#,
            b64("nocolon")
        );
        assert!(matches!(
            Credentials::from_dockerconfigjson(no_colon.as_bytes()),
            Err(CredentialsError::InvalidAuth { .. })
        ));
        assert!(
            Credentials::from_dockerconfigjson(b"{}")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn from_secrets() {
        let json = format!(r#"{{"quay.io": {{"auth": "{}"}}}}"#, b64("u:p"));
        let mut data = BTreeMap::new();
        data.insert(
            ".dockercfg".to_owned(),
            k8s_openapi::ByteString(json.into_bytes()),
        );
        let secret = Secret {
            type_: Some(SECRET_TYPE_DOCKERCFG.into()),
            data: Some(data),
            ..Default::default()
        };
        let c = Credentials::from_secret(&secret).unwrap().unwrap();
        assert_eq!(
            c.for_repository("quay.io", "a/b"),
            &RegistryAuth::Basic("u".into(), "p".into())
        );
        let opaque = Secret {
            type_: Some("Opaque".into()),
            ..Default::default()
        };
        assert_eq!(Credentials::from_secret(&opaque).unwrap(), None);
        let empty = Secret {
            type_: Some(SECRET_TYPE_DOCKER_CONFIG_JSON.into()),
            ..Default::default()
        };
        assert!(matches!(
            Credentials::from_secret(&empty),
            Err(CredentialsError::MissingKey { .. })
        ));
    }

    #[test]
    fn fingerprints_differ_by_secret() {
        let a = fingerprint(&RegistryAuth::Basic("u".into(), "p".into()));
        let b = fingerprint(&RegistryAuth::Basic("u".into(), "q".into()));
        assert_ne!(a, b);
        assert_eq!(fingerprint(&RegistryAuth::Anonymous), "anonymous");
        assert!(!a.contains('p'));
    }
}
