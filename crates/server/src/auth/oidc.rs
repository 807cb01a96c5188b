//! OIDC/JWT login (`--authentication-config FILE`): kube-apiserver's
//! `AuthenticationConfiguration` (`apiserver.config.k8s.io/v1beta1` and `v1`), its
//! `jwt[]` authenticators with `issuer.{url,discoveryURL,audiences,
//! certificateAuthority}` and `claimMappings.{username,groups,uid}` by claim and
//! prefix. CEL expressions and validation rules are refused at start, as is any field
//! this file does not know.
//!
//! Keys come from the issuer's JWKS, found through
//! `{issuer}/.well-known/openid-configuration` → `jwks_uri`, fetched lazily, cached,
//! and fetched again when a token names an unknown `kid` (at most once per
//! [`MIN_REFRESH`]). A key is never taken from the token: its `jwk`, `jku`, `x5u` and
//! `x5c` headers are ignored (distribution CVE-2025-24976). Tokens must carry `exp`,
//! `iss` and `aud`; `alg: none`, HMAC algorithms and wrongly typed claims are
//! refused.
//!
//! A verified token is remembered until its `exp` ([`TokenCache`]), so its signature
//! is checked once. Calls reqwest (the issuer's discovery and JWKS) and jsonwebtoken.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::authn::Authenticator;
use super::token_cache::TokenCache;
use moor_api::authz::names;
use moor_apimachinery::resource::UserInfo;

/// The shortest time between two JWKS fetches of one issuer caused by unknown keys.
pub const MIN_REFRESH: Duration = Duration::from_secs(10);
/// Timeout of discovery and JWKS requests.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Leeway for `exp` and `nbf`: clock skew between moor and the issuer.
const LEEWAY_SECONDS: u64 = 60;
/// The algorithms accepted: asymmetric only.
const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Errors of the authentication configuration, found at start.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("jwt[{index}]: HTTP client: {source}")]
    Client {
        index: usize,
        #[source]
        source: reqwest::Error,
    },
}

/// `AuthenticationConfiguration`, the parts moor serves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthenticationConfiguration {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub jwt: Vec<JwtAuthenticator>,
}

/// One `jwt[]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtAuthenticator {
    pub issuer: Issuer,
    #[serde(default)]
    pub claim_mappings: ClaimMappings,
    /// CEL rules: not supported; refused when non-empty.
    #[serde(default)]
    pub claim_validation_rules: Vec<Value>,
    /// CEL rules: not supported; refused when non-empty.
    #[serde(default)]
    pub user_validation_rules: Vec<Value>,
}

/// `issuer`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Issuer {
    pub url: String,
    /// Where discovery is fetched, when not under `url`.
    #[serde(default, rename = "discoveryURL")]
    pub discovery_url: Option<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
    /// `MatchAny` (the only policy kube has).
    #[serde(default)]
    pub audience_match_policy: Option<String>,
    /// PEM CA bundle trusted for the issuer's HTTPS (instead of the system roots).
    #[serde(default)]
    pub certificate_authority: Option<String>,
}

/// `claimMappings`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClaimMappings {
    #[serde(default)]
    pub username: PrefixedClaim,
    #[serde(default)]
    pub groups: PrefixedClaim,
    #[serde(default)]
    pub uid: PrefixedClaim,
    /// Not supported; refused when non-empty.
    #[serde(default)]
    pub extra: Vec<Value>,
}

/// A claim and the prefix its values get.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PrefixedClaim {
    #[serde(default)]
    pub claim: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    /// CEL: not supported; refused when set.
    #[serde(default)]
    pub expression: Option<String>,
}

impl AuthenticationConfiguration {
    /// Reads and checks `path`; `path` names it in errors.
    pub fn load(path: &Path) -> Result<Self, OidcError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| OidcError::Read {
            path: p.clone(),
            source,
        })?;
        Self::parse(&text, &p)
    }

    /// Parses and checks a configuration text.
    pub fn parse(text: &str, path: &str) -> Result<Self, OidcError> {
        let config: AuthenticationConfiguration =
            serde_yaml_ng::from_str(text).map_err(|source| OidcError::Parse {
                path: path.to_owned(),
                source,
            })?;
        config.validate().map_err(|message| OidcError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if !matches!(
            self.api_version.as_str(),
            "apiserver.config.k8s.io/v1beta1" | "apiserver.config.k8s.io/v1"
        ) || self.kind != "AuthenticationConfiguration"
        {
            return Err(format!(
                "expected kind AuthenticationConfiguration of apiserver.config.k8s.io/v1 or v1beta1, got {} {}",
                self.kind, self.api_version
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, j) in self.jwt.iter().enumerate() {
            let at = |field: &str| format!("jwt[{i}].{field}");
            let url = reqwest::Url::parse(&j.issuer.url)
                .map_err(|e| format!("{}: {e}", at("issuer.url")))?;
            if url.scheme() != "https" {
                return Err(format!("{}: must use the https scheme", at("issuer.url")));
            }
            if !seen.insert(j.issuer.url.clone()) {
                return Err(format!("{}: duplicate issuer", at("issuer.url")));
            }
            if j.issuer.audiences.is_empty() {
                return Err(format!(
                    "{}: at least one audience is required",
                    at("issuer.audiences")
                ));
            }
            if let Some(p) = &j.issuer.audience_match_policy
                && p != "MatchAny"
            {
                return Err(format!(
                    "{}: only MatchAny is supported",
                    at("issuer.audienceMatchPolicy")
                ));
            }
            if let Some(pem) = &j.issuer.certificate_authority {
                reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                    .map_err(|e| format!("{}: {e}", at("issuer.certificateAuthority")))?;
            }
            let m = &j.claim_mappings;
            for (name, c) in [
                ("username", &m.username),
                ("groups", &m.groups),
                ("uid", &m.uid),
            ] {
                if c.expression.is_some() {
                    return Err(format!(
                        "{}: CEL expressions are not supported; use claim and prefix",
                        at(&format!("claimMappings.{name}.expression"))
                    ));
                }
            }
            match (&m.username.claim, &m.username.prefix) {
                (None, _) => {
                    return Err(format!("{}: required", at("claimMappings.username.claim")));
                }
                (Some(_), None) => {
                    return Err(format!(
                        "{}: required when claim is set (it may be \"\")",
                        at("claimMappings.username.prefix")
                    ));
                }
                _ => {}
            }
            if m.groups.claim.is_some() && m.groups.prefix.is_none() {
                return Err(format!(
                    "{}: required when claim is set (it may be \"\")",
                    at("claimMappings.groups.prefix")
                ));
            }
            if m.uid.prefix.is_some() {
                return Err(format!(
                    "{}: uid has no prefix",
                    at("claimMappings.uid.prefix")
                ));
            }
            if !m.extra.is_empty() {
                return Err(format!("{}: not supported", at("claimMappings.extra")));
            }
            if !j.claim_validation_rules.is_empty() || !j.user_validation_rules.is_empty() {
                return Err(format!(
                    "{}: CEL validation rules are not supported",
                    at("claimValidationRules")
                ));
            }
        }
        Ok(())
    }
}

/// The parts of an issuer's discovery document moor reads.
#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
    #[serde(default)]
    authorization_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint: Option<String>,
}

/// Where a browser logs in and where the code is exchanged.
#[derive(Clone, Debug)]
pub struct Endpoints {
    pub authorization: String,
    pub token: String,
}

/// The keys of one issuer, as last fetched.
#[derive(Default)]
struct KeyCache {
    keys: Vec<Jwk>,
    fetched: Option<Instant>,
}

/// One `jwt[]` authenticator: an issuer, its keys and its claim mappings.
pub struct JwtIssuer {
    config: JwtAuthenticator,
    client: reqwest::Client,
    keys: Mutex<KeyCache>,
    /// The shortest time between fetches caused by unknown keys.
    min_refresh: Duration,
}

impl JwtIssuer {
    /// The authenticator of `config`, fetching with a client that trusts the issuer's
    /// CA (or the system roots).
    pub fn new(config: JwtAuthenticator, index: usize) -> Result<Self, OidcError> {
        let mut builder = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3));
        if let Some(pem) = &config.issuer.certificate_authority {
            builder = builder.tls_built_in_root_certs(false);
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|source| OidcError::Client { index, source })?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = builder
            .build()
            .map_err(|source| OidcError::Client { index, source })?;
        Ok(JwtIssuer {
            config,
            client,
            keys: Mutex::new(KeyCache::default()),
            min_refresh: MIN_REFRESH,
        })
    }

    /// The issuer URL tokens name in `iss`.
    pub fn url(&self) -> &str {
        &self.config.issuer.url
    }

    /// GETs `url` with the issuer's client: the body of a 2xx answer.
    async fn get(&self, url: &str) -> Result<bytes::Bytes, String> {
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("GET {url}: {}", resp.status()));
        }
        resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))
    }

    /// The issuer's discovery document, checked to name this issuer.
    async fn discover(&self) -> Result<Discovery, String> {
        let issuer = &self.config.issuer;
        let discovery_url = match &issuer.discovery_url {
            Some(u) => u.clone(),
            None => format!(
                "{}/.well-known/openid-configuration",
                issuer.url.trim_end_matches('/')
            ),
        };
        let body = self.get(&discovery_url).await?;
        let d: Discovery =
            serde_json::from_slice(&body).map_err(|e| format!("discovery document: {e}"))?;
        if d.issuer != issuer.url {
            return Err(format!(
                "discovery names issuer {:?}, not {:?}",
                d.issuer, issuer.url
            ));
        }
        Ok(d)
    }

    /// Discovery, then the JWKS it names.
    async fn fetch_keys(&self) -> Result<Vec<Jwk>, String> {
        let d = self.discover().await?;
        let body = self.get(&d.jwks_uri).await?;
        #[derive(Deserialize)]
        struct Set {
            keys: Vec<Value>,
        }
        let set: Set = serde_json::from_slice(&body).map_err(|e| format!("JWKS: {e}"))?;
        // Keys of kinds this build cannot use are skipped, not fatal.
        Ok(set
            .keys
            .into_iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
            .filter(|k| k.common.key_algorithm.is_none() || k.is_supported())
            .collect())
    }

    /// Keys that may have signed a token with `kid` (any key when `None`): from the
    /// cache, or fetched when the cache has none (rate-limited).
    async fn keys_for(&self, kid: Option<&str>) -> Vec<Jwk> {
        let matching = |keys: &[Jwk]| -> Vec<Jwk> {
            keys.iter()
                .filter(|k| kid.is_none() || k.common.key_id.as_deref() == kid)
                .cloned()
                .collect()
        };
        let mut cache = self.keys.lock().await;
        let found = matching(&cache.keys);
        if !found.is_empty() {
            return found;
        }
        if cache
            .fetched
            .is_some_and(|t| t.elapsed() < self.min_refresh)
        {
            return found;
        }
        cache.fetched = Some(Instant::now());
        match self.fetch_keys().await {
            Ok(keys) => {
                tracing::debug!(issuer = %self.url(), keys = keys.len(), "fetched the issuer's JWKS");
                cache.keys = keys;
            }
            Err(e) => {
                tracing::warn!(issuer = %self.url(), error = %e, "fetching the issuer's keys failed")
            }
        }
        matching(&cache.keys)
    }

    /// The claims of `token` when it verifies: signed by a key of the issuer's JWKS
    /// with an asymmetric algorithm, this issuer, one of its audiences, not expired.
    async fn verified_claims(&self, token: &str) -> Option<Map<String, Value>> {
        // Only `alg` and `kid` are read from the header: a key is never taken from it.
        let header = jsonwebtoken::decode_header(token).ok()?;
        if !ALGORITHMS.contains(&header.alg) {
            return None;
        }
        let mut validation = Validation::new(header.alg);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&[&self.config.issuer.url]);
        validation.set_audience(&self.config.issuer.audiences);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        let keys = self.keys_for(header.kid.as_deref()).await;
        keys.iter().find_map(|jwk| {
            if jwk
                .common
                .key_algorithm
                .is_some_and(|a| a != jsonwebtoken::jwk::KeyAlgorithm::from(header.alg))
            {
                return None;
            }
            let key = DecodingKey::from_jwk(jwk).ok()?;
            jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
                .ok()
                .map(|d| d.claims)
        })
    }

    /// The user `token` names and its `exp`, when it verifies.
    async fn verify(&self, token: &str) -> Option<(UserInfo, i64)> {
        let claims = self.verified_claims(token).await?;
        let exp = claims.get("exp")?.as_i64()?;
        Some((self.user(&claims)?, exp))
    }

    /// An ID token of the console's OIDC login, checked as the API checks bearer
    /// tokens (signature, issuer, audience, expiry, claim mappings) and carrying
    /// `nonce`: the user, the token's `exp` and its `sub`.
    pub async fn verify_id_token(
        &self,
        token: &str,
        nonce: &str,
    ) -> Result<(UserInfo, i64, String), &'static str> {
        let claims = self
            .verified_claims(token)
            .await
            .ok_or("the ID token does not verify (signature, issuer, audience or expiry)")?;
        if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
            return Err("the ID token's nonce is not this login's");
        }
        self.id_token_user(&claims)
    }

    /// An ID token from a refresh of the console's session of `sub`, checked as at
    /// login (signature, issuer, audience, expiry, claim mappings) but with no nonce
    /// (OIDC Core 12.2: a refreshed ID token need not carry one), and for the same
    /// `sub`: the user, the token's `exp` and its `sub`.
    pub async fn verify_refreshed_id_token(
        &self,
        token: &str,
        sub: &str,
    ) -> Result<(UserInfo, i64, String), &'static str> {
        let claims = self.verified_claims(token).await.ok_or(
            "the refreshed ID token does not verify (signature, issuer, audience or expiry)",
        )?;
        let found = self.id_token_user(&claims)?;
        if found.2 != sub {
            return Err("the refreshed ID token is for another user (sub)");
        }
        Ok(found)
    }

    /// The user, `exp` and `sub` of verified ID token `claims`.
    fn id_token_user(
        &self,
        claims: &Map<String, Value>,
    ) -> Result<(UserInfo, i64, String), &'static str> {
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or("the ID token has no sub")?
            .to_owned();
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or("the ID token has no exp")?;
        let user = self
            .user(claims)
            .ok_or("the ID token lacks the claims the user name and groups come from")?;
        Ok((user, exp, sub))
    }

    /// The audiences tokens must name (the first is the console's default client id).
    pub fn audiences(&self) -> &[String] {
        &self.config.issuer.audiences
    }

    /// The HTTP client trusting the issuer's CA (or the system roots).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The issuer's authorization and token endpoints, from its discovery document.
    pub async fn endpoints(&self) -> Result<Endpoints, String> {
        let d = self.discover().await?;
        match (d.authorization_endpoint, d.token_endpoint) {
            (Some(authorization), Some(token)) => Ok(Endpoints {
                authorization,
                token,
            }),
            _ => Err(format!(
                "{}: discovery names no authorization_endpoint or token_endpoint",
                self.url()
            )),
        }
    }

    /// The user the verified `claims` map to; `None` when a mapped claim is missing
    /// or of the wrong type.
    fn user(&self, claims: &Map<String, Value>) -> Option<UserInfo> {
        let m = &self.config.claim_mappings;
        // Registered claims that jsonwebtoken does not type-check.
        for numeric in ["iat"] {
            if claims.get(numeric).is_some_and(|v| !v.is_number()) {
                return None;
            }
        }
        let username_claim = m.username.claim.as_deref()?;
        let username = claims.get(username_claim)?.as_str()?;
        if username.is_empty() {
            return None;
        }
        // kube: an `email` user name needs `email_verified` true when present.
        if username_claim == "email"
            && let Some(v) = claims.get("email_verified")
            && v.as_bool() != Some(true)
        {
            return None;
        }
        let mut user = UserInfo::new(
            format!("{}{username}", m.username.prefix.as_deref().unwrap_or("")),
            Vec::<String>::new(),
        );
        if let Some(claim) = &m.groups.claim {
            let prefix = m.groups.prefix.as_deref().unwrap_or("");
            let groups: Vec<&str> = match claims.get(claim) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::String(g)) => vec![g.as_str()],
                Some(Value::Array(a)) => a.iter().map(Value::as_str).collect::<Option<Vec<_>>>()?,
                Some(_) => return None,
            };
            user.groups = groups.into_iter().map(|g| format!("{prefix}{g}")).collect();
        }
        if let Some(claim) = &m.uid.claim {
            user.uid = claims.get(claim)?.as_str()?.to_owned();
        }
        if !user.in_group(names::AUTHENTICATED) {
            user.groups.push(names::AUTHENTICATED.to_owned());
        }
        Some(user)
    }
}

/// The `iss` a JWT claims, read without verifying: only to pick which issuer's keys
/// to verify it with (and to leave other issuers' tokens alone cheaply).
pub(crate) fn claimed_issuer(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (_, payload) = (parts.next()?, parts.next()?);
    let raw = URL_SAFE_NO_PAD.decode(payload).ok()?;
    #[derive(Deserialize)]
    struct Iss {
        iss: String,
    }
    serde_json::from_slice::<Iss>(&raw).ok().map(|i| i.iss)
}

/// Every `jwt[]` issuer of `--authentication-config`, and the tokens they verified.
pub struct JwtAuthenticators(Vec<Arc<JwtIssuer>>, TokenCache<UserInfo>);

impl JwtAuthenticators {
    /// The authenticators of `config`.
    pub fn new(config: &AuthenticationConfiguration) -> Result<Self, OidcError> {
        let issuers = config
            .jwt
            .iter()
            .enumerate()
            .map(|(i, j)| JwtIssuer::new(j.clone(), i).map(Arc::new))
            .collect::<Result<_, _>>()?;
        Ok(JwtAuthenticators(issuers, TokenCache::default()))
    }

    /// The same issuers, refetching keys for unknown `kid`s at most once per
    /// `interval` (default [`MIN_REFRESH`]).
    pub fn with_min_refresh(
        config: &AuthenticationConfiguration,
        interval: Duration,
    ) -> Result<Self, OidcError> {
        let issuers = config
            .jwt
            .iter()
            .enumerate()
            .map(|(i, j)| {
                JwtIssuer::new(j.clone(), i).map(|mut issuer| {
                    issuer.min_refresh = interval;
                    Arc::new(issuer)
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(JwtAuthenticators(issuers, TokenCache::default()))
    }
}

impl JwtAuthenticators {
    /// The issuers, in the configuration's order.
    pub fn issuers(&self) -> &[Arc<JwtIssuer>] {
        &self.0
    }
}

#[async_trait]
impl Authenticator for JwtAuthenticators {
    async fn authenticate(&self, token: &str) -> Option<UserInfo> {
        let now = jiff::Timestamp::now().as_second();
        if let Some(user) = self.1.get(token, now) {
            return Some(user);
        }
        let iss = claimed_issuer(token)?;
        let issuer = self.0.iter().find(|i| i.url() == iss)?;
        let (user, exp) = issuer.verify(token).await?;
        self.1.insert(token, user.clone(), exp, now);
        Some(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
apiVersion: apiserver.config.k8s.io/v1beta1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: https://issuer.test
    audiences: [moor]
  claimMappings:
    username: {claim: sub, prefix: "oidc:"}
    groups: {claim: groups, prefix: "oidc:"}
"#;

    #[test]
    fn config_parses_and_refuses_what_it_does_not_know() {
        let c = AuthenticationConfiguration::parse(GOOD, "f").unwrap();
        assert_eq!(c.jwt[0].issuer.audiences, vec!["moor"]);
        let v1 = GOOD.replace("v1beta1", "v1");
        AuthenticationConfiguration::parse(&v1, "f").unwrap();
        for (bad, why) in [
            (GOOD.replace("audiences:", "audiencez:"), "unknown field"),
            (GOOD.replace("kind: Auth", "kind: Xuth"), "kind"),
            (GOOD.replace("https://", "http://"), "https"),
            (
                GOOD.replace(", prefix: \"oidc:\"}\n    groups", "}\n    groups"),
                "prefix",
            ),
            (GOOD.replace("[moor]", "[]"), "audience"),
            (
                GOOD.replace(
                    "{claim: sub, prefix: \"oidc:\"}",
                    "{expression: claims.sub}",
                ),
                "CEL",
            ),
        ] {
            let err = AuthenticationConfiguration::parse(&bad, "f")
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{why}: {err}");
        }
    }

    #[test]
    fn claims_map_with_prefixes_and_wrong_types_fail() {
        let c = AuthenticationConfiguration::parse(GOOD, "f").unwrap();
        let issuer = JwtIssuer::new(c.jwt[0].clone(), 0).unwrap();
        let claims = |v: Value| v.as_object().unwrap().clone();
        let u = issuer
            .user(&claims(
                serde_json::json!({"sub": "alice", "groups": ["dev"]}),
            ))
            .unwrap();
        assert_eq!(u.name, "oidc:alice");
        assert_eq!(u.groups, vec!["oidc:dev", names::AUTHENTICATED]);
        for bad in [
            serde_json::json!({"sub": 7}),
            serde_json::json!({"sub": "a", "groups": 1}),
            serde_json::json!({"sub": "a", "groups": ["x", 2]}),
            serde_json::json!({"sub": "a", "iat": "now"}),
            serde_json::json!({"groups": ["x"]}),
        ] {
            assert!(issuer.user(&claims(bad.clone())).is_none(), "{bad}");
        }
    }
}
