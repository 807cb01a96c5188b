//! HTTP to registries: TLS (system roots plus extra CAs), insecure registries (HTTPS
//! without verification, then plain HTTP), per-registry concurrency limits, timeouts,
//! the 401 challenge dance (Basic and Bearer tokens), error mapping with the
//! registry's own messages and `Retry-After`, size-capped body reads, and request
//! metrics. May call reqwest, the auth cache and the credentials; knows nothing about
//! manifests.
//!
//! Requests go through reqwest directly rather than oci-client, because oci-client's
//! public calls cannot do what moor needs here: they read whole bodies with no size
//! cap, drop the response headers (no `Content-Type`, no `Retry-After`, so a 429 is
//! indistinguishable from any client error), turn a HEAD without
//! `Docker-Content-Digest` into a GET, use one fixed protocol per client (no HTTPS then
//! HTTP fallback for insecure registries), and keep credentials per registry host
//! for the client's lifetime (see `auth.rs`).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use oci_client::secrets::RegistryAuth;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::auth::{AuthCache, CachedToken, Challenge, TokenKey, TokenResponse, parse_challenges};
use super::credentials::{Credentials, fingerprint};
use super::error::registry_message;
use super::mirrors::Target;
use super::{Timeouts, UpstreamConfig, UpstreamError};

/// The largest token server answer read.
const MAX_TOKEN_BYTES: u64 = 1024 * 1024;

/// How a registry was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// HTTPS with certificate verification.
    Https,
    /// HTTPS without certificate verification (an insecure registry).
    HttpsUnverified,
    /// Plain HTTP (an insecure registry that does not speak TLS).
    Http,
}

impl Scheme {
    fn url_scheme(self) -> &'static str {
        match self {
            Self::Https | Self::HttpsUnverified => "https",
            Self::Http => "http",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Https => "https",
            Self::HttpsUnverified => "https (unverified)",
            Self::Http => "http",
        })
    }
}

/// Labels of the upstream request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamRequestLabels {
    /// The registry host contacted (or the token server's host).
    pub registry: String,
    /// `GET` or `HEAD`.
    pub method: String,
    /// The HTTP status, or `error` when no response came.
    pub code: String,
}

/// One request to make.
pub(crate) struct Call<'a> {
    pub target: &'a Target,
    /// The caller's `insecure` flag (importPolicy.insecure): applies to the source.
    pub insecure: bool,
    pub credentials: &'a Credentials,
    pub method: Method,
    /// Path and query, starting with `/v2/`.
    pub path_and_query: String,
    pub accept: Option<&'a str>,
    /// The image or repository named in errors (the source name).
    pub what: &'a str,
    /// Whether the overall request timeout applies (not for streamed blobs, which
    /// only have the idle read timeout).
    pub overall_timeout: bool,
    /// An `If-None-Match` validator (an ETag seen before): a conditional GET.
    pub if_none_match: Option<&'a str>,
}

/// A response, with the scheme that worked and the concurrency permit to hold while
/// its body is read.
pub(crate) struct Sent {
    pub response: reqwest::Response,
    pub scheme: Scheme,
    pub permit: OwnedSemaphorePermit,
}

/// The HTTP side of the client, shared by all clones.
pub(crate) struct Transport {
    secure: reqwest::Client,
    unverified: reqwest::Client,
    insecure_registries: Vec<String>,
    timeouts: Timeouts,
    per_registry: usize,
    semaphores: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// For insecure registries: the scheme that worked last.
    schemes: Mutex<HashMap<String, Scheme>>,
    auth: AuthCache,
    pub(crate) requests: Family<UpstreamRequestLabels, Counter>,
}

impl Transport {
    pub(crate) fn new(config: &UpstreamConfig) -> Result<Self, UpstreamError> {
        let mut roots = Vec::new();
        for path in &config.ca_files {
            let bytes = std::fs::read(path).map_err(|e| UpstreamError::InvalidConfig {
                message: format!("reading CA file {}: {e}", path.display()),
            })?;
            let certs = match reqwest::Certificate::from_pem_bundle(&bytes) {
                Ok(certs) if !certs.is_empty() => certs,
                _ => vec![reqwest::Certificate::from_der(&bytes).map_err(|e| {
                    UpstreamError::InvalidConfig {
                        message: format!(
                            "CA file {} holds no PEM or DER certificate: {e}",
                            path.display()
                        ),
                    }
                })?],
            };
            roots.extend(certs);
        }
        let build = |verify: bool| {
            let mut b = reqwest::Client::builder()
                .user_agent(config.user_agent.clone())
                .connect_timeout(config.timeouts.connect)
                .read_timeout(config.timeouts.read_idle)
                .redirect(reqwest::redirect::Policy::limited(10))
                .tls_built_in_root_certs(true)
                .danger_accept_invalid_certs(!verify);
            if !config.use_environment_proxy {
                b = b.no_proxy();
            }
            for cert in &roots {
                b = b.add_root_certificate(cert.clone());
            }
            for (host, addr) in &config.dns_overrides {
                b = b.resolve(host, *addr);
            }
            b.build().map_err(|e| UpstreamError::InvalidConfig {
                message: format!("building the HTTP client: {}", error_chain(&e)),
            })
        };
        Ok(Self {
            secure: build(true)?,
            unverified: build(false)?,
            insecure_registries: config
                .insecure_registries
                .iter()
                .map(|r| r.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|r| !r.is_empty())
                .collect(),
            timeouts: config.timeouts.clone(),
            per_registry: config.per_registry_concurrency.max(1),
            semaphores: Mutex::default(),
            schemes: Mutex::default(),
            auth: AuthCache::new(config.clock.clone()),
            requests: Family::default(),
        })
    }

    /// Whether `registry` is in the configured insecure list. An entry without a port
    /// matches the host on any port.
    pub(crate) fn is_listed_insecure(&self, registry: &str) -> bool {
        let registry = registry.to_ascii_lowercase();
        let host = host_without_port(&registry);
        self.insecure_registries
            .iter()
            .any(|e| *e == registry || (host_without_port(e) == e.as_str() && e == host))
    }

    fn semaphore(&self, registry: &str) -> Arc<Semaphore> {
        let mut map = self.semaphores.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(registry.to_ascii_lowercase())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_registry)))
            .clone()
    }

    fn schemes_for(&self, registry: &str, insecure: bool) -> Vec<Scheme> {
        if !insecure {
            return vec![Scheme::Https];
        }
        let remembered = self
            .schemes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(registry)
            .copied();
        match remembered {
            Some(Scheme::Http) => vec![Scheme::Http, Scheme::HttpsUnverified],
            _ => vec![Scheme::HttpsUnverified, Scheme::Http],
        }
    }

    fn remember_scheme(&self, registry: &str, scheme: Scheme) {
        self.schemes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(registry.to_owned(), scheme);
    }

    fn count(&self, registry: &str, method: &Method, code: Option<StatusCode>) {
        self.requests
            .get_or_create(&UpstreamRequestLabels {
                registry: registry.to_owned(),
                method: method.to_string(),
                code: code.map_or_else(|| "error".to_owned(), |c| c.as_u16().to_string()),
            })
            .inc();
    }

    /// The timeout that ended `call` with `e`: connecting, the whole request, or
    /// (for streamed answers, which have no overall limit) the idle read.
    fn limit(&self, e: &reqwest::Error, call: &Call<'_>) -> std::time::Duration {
        if e.is_connect() {
            self.timeouts.connect
        } else if call.overall_timeout {
            self.timeouts.request
        } else {
            self.timeouts.read_idle
        }
    }

    /// Sends `call`, trying the schemes the registry allows, answering one
    /// authentication challenge. The response may have any status; see
    /// [`status_error`] for turning failures into errors.
    pub(crate) async fn send(&self, call: &Call<'_>) -> Result<Sent, UpstreamError> {
        let target = call.target;
        let insecure =
            (call.insecure && !target.mirror) || self.is_listed_insecure(&target.registry);
        let schemes = self.schemes_for(&target.registry, insecure);
        let permit = self
            .semaphore(&target.registry)
            .acquire_owned()
            .await
            .map_err(|_| UpstreamError::Transport {
                target: call.what.to_owned(),
                message: "the client is shutting down".to_owned(),
            })?;
        let auth = call
            .credentials
            .for_repository(&target.registry, &target.repository);
        let key = TokenKey {
            registry: target.registry.clone(),
            repository: target.repository.clone(),
            scope: format!("repository:{}:pull", target.repository),
            credential: fingerprint(auth),
        };

        let mut failures = Vec::new();
        for (i, scheme) in schemes.iter().copied().enumerate() {
            let header = self.auth_header(auth, &key).await;
            let response = match self.send_once(call, scheme, header.as_deref()).await {
                Ok(r) => r,
                Err(e) => {
                    let err =
                        send_error(&e, call.what, &url_for(call, scheme), self.limit(&e, call));
                    if i + 1 < schemes.len() {
                        tracing::debug!(registry = %target.registry, %scheme, error = %err, "insecure registry: trying the next scheme");
                        failures.push(err.message());
                        continue;
                    }
                    return Err(if failures.is_empty() {
                        err
                    } else {
                        err.with_note(&format!("also tried: {}", failures.join("; ")))
                    });
                }
            };
            if insecure {
                self.remember_scheme(&target.registry, scheme);
            }
            let response = if response.status() == StatusCode::UNAUTHORIZED {
                self.answer_challenge(call, scheme, insecure, auth, &key, header, response)
                    .await?
            } else {
                response
            };
            return Ok(Sent {
                response,
                scheme,
                permit,
            });
        }
        // `schemes` is never empty; this is the loop's fall-through.
        Err(UpstreamError::Transport {
            target: call.what.to_owned(),
            message: format!("no way to reach {}", target.registry),
        })
    }

    /// The `Authorization` header to send up front: a given bearer token, Basic
    /// credentials for registries that asked for them, or a cached token.
    async fn auth_header(&self, auth: &RegistryAuth, key: &TokenKey) -> Option<String> {
        match auth {
            RegistryAuth::Bearer(t) => Some(format!("Bearer {t}")),
            RegistryAuth::Basic(u, p) if self.auth.is_basic(&key.registry, &key.credential) => {
                Some(basic_header(u, p))
            }
            _ => self.auth.current(key).await.map(|t| format!("Bearer {t}")),
        }
    }

    async fn send_once(
        &self,
        call: &Call<'_>,
        scheme: Scheme,
        authorization: Option<&str>,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let client = match scheme {
            Scheme::HttpsUnverified => &self.unverified,
            Scheme::Https | Scheme::Http => &self.secure,
        };
        let mut rb = client.request(call.method.clone(), url_for(call, scheme));
        if let Some(accept) = call.accept {
            rb = rb.header(ACCEPT, accept);
        }
        if let Some(a) = authorization {
            rb = rb.header(AUTHORIZATION, a);
        }
        if let Some(etag) = call.if_none_match {
            rb = rb.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        if call.overall_timeout {
            rb = rb.timeout(self.timeouts.request);
        }
        let result = rb.send().await;
        self.count(
            &call.target.registry,
            &call.method,
            result.as_ref().ok().map(|r| r.status()),
        );
        result
    }

    /// Handles a 401: gets a token (Bearer) or switches to Basic, then retries once.
    /// Returns the original response when there is nothing to try.
    #[allow(clippy::too_many_arguments)]
    async fn answer_challenge(
        &self,
        call: &Call<'_>,
        scheme: Scheme,
        insecure: bool,
        auth: &RegistryAuth,
        key: &TokenKey,
        sent: Option<String>,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, UpstreamError> {
        let challenges = parse_challenges(
            response
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        let header = match (challenges.first(), auth) {
            // A bearer token given by the caller was refused: nothing else to try.
            (_, RegistryAuth::Bearer(_)) | (None, _) => return Ok(response),
            (Some(Challenge::Basic), RegistryAuth::Basic(u, p)) => {
                let header = basic_header(u, p);
                if sent.as_deref() == Some(header.as_str()) {
                    return Ok(response);
                }
                self.auth.set_basic(&key.registry, &key.credential);
                header
            }
            (Some(Challenge::Basic), RegistryAuth::Anonymous) => return Ok(response),
            (
                Some(Challenge::Bearer {
                    realm,
                    service,
                    scope: _,
                }),
                _,
            ) => {
                let stale = sent.as_deref().and_then(|s| s.strip_prefix("Bearer "));
                let token = self
                    .auth
                    .refresh(key, stale, || {
                        self.fetch_token(call, insecure, realm, service.as_deref(), key, auth)
                    })
                    .await?;
                format!("Bearer {token}")
            }
        };
        self.send_once(call, scheme, Some(&header))
            .await
            .map_err(|e| send_error(&e, call.what, &url_for(call, scheme), self.limit(&e, call)))
    }

    /// Asks the token server at `realm` for a pull token.
    async fn fetch_token(
        &self,
        call: &Call<'_>,
        insecure: bool,
        realm: &str,
        service: Option<&str>,
        key: &TokenKey,
        auth: &RegistryAuth,
    ) -> Result<CachedToken, UpstreamError> {
        let url = reqwest::Url::parse(realm).map_err(|e| UpstreamError::InvalidContent {
            target: call.what.to_owned(),
            message: format!("the registry's token realm {realm:?} is not a URL: {e}"),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UpstreamError::InvalidContent {
                target: call.what.to_owned(),
                message: format!("the registry's token realm {realm:?} is not an HTTP URL"),
            });
        }
        let realm_host = url.host_str().unwrap_or_default().to_owned();
        let client = if insecure {
            &self.unverified
        } else {
            &self.secure
        };
        let mut query: Vec<(&str, &str)> = vec![("scope", key.scope.as_str())];
        if let Some(s) = service {
            query.push(("service", s));
        }
        let mut rb = client.get(url).timeout(self.timeouts.request).query(&query);
        if let RegistryAuth::Basic(u, p) = auth {
            rb = rb.query(&[("account", u.as_str())]).basic_auth(u, Some(p));
        }
        let result = rb.send().await;
        self.count(
            &realm_host,
            &Method::GET,
            result.as_ref().ok().map(|r| r.status()),
        );
        let response = result.map_err(|e| {
            let limit = if e.is_connect() {
                self.timeouts.connect
            } else {
                self.timeouts.request
            };
            send_error(&e, call.what, realm, limit)
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_capped(response, MAX_TOKEN_BYTES, call.what, "token response").await?;
        if !status.is_success() {
            let err = status_error(status, &headers, &body, call.what, "token");
            return Err(match err {
                UpstreamError::Forbidden { target, message }
                | UpstreamError::Unauthorized { target, message } => UpstreamError::Unauthorized {
                    target,
                    message: format!("token server refused access: {message}"),
                },
                other => other,
            });
        }
        let answer: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| UpstreamError::InvalidContent {
                target: call.what.to_owned(),
                message: format!("invalid token server answer: {e}"),
            })?;
        answer
            .into_cached(self.auth.now())
            .ok_or_else(|| UpstreamError::InvalidContent {
                target: call.what.to_owned(),
                message: "the token server answered without a token".to_owned(),
            })
    }
}

fn url_for(call: &Call<'_>, scheme: Scheme) -> String {
    format!(
        "{}://{}{}",
        scheme.url_scheme(),
        call.target.registry,
        call.path_and_query
    )
}

fn basic_header(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// `host` of `host:port` (IPv6 brackets kept); the input when there is no port.
fn host_without_port(registry: &str) -> &str {
    match registry.rsplit_once(':') {
        Some((h, p))
            if !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (!h.starts_with('[') || h.ends_with(']')) =>
        {
            h
        }
        _ => registry,
    }
}

/// The error's message with its causes (`error sending request: connection refused`).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// The registry's `host[:port]` in `url` (the URL itself when it does not parse).
fn host_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => url.to_owned(),
        },
        Err(_) => url.to_owned(),
    }
}

/// A request that got no answer, as an [`UpstreamError`]: as [`transport_error`],
/// and a timeout says how long moor waited and for which registry (`limit`: the
/// timeout that applied).
pub(crate) fn send_error(
    e: &reqwest::Error,
    what: &str,
    url: &str,
    limit: std::time::Duration,
) -> UpstreamError {
    if !e.is_timeout() {
        return transport_error(e, what, url);
    }
    let url = url.split('?').next().unwrap_or(url);
    let phase = if e.is_connect() { " to connect" } else { "" };
    UpstreamError::Timeout {
        target: what.to_owned(),
        message: format!(
            "timed out after {} s waiting{phase} for {} ({url})",
            limit.as_secs(),
            host_of(url)
        ),
    }
}

/// A reqwest failure (no HTTP answer, or a broken body) as an [`UpstreamError`].
pub(crate) fn transport_error(e: &reqwest::Error, what: &str, url: &str) -> UpstreamError {
    let url = url.split('?').next().unwrap_or(url);
    // reqwest's own text repeats the URL; keep the causes.
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !causes.iter().any(|c: &String| c.contains(&text)) {
            causes.push(text);
        }
        source = s.source();
    }
    let cause = if causes.is_empty() {
        e.to_string()
    } else {
        causes.join(": ")
    };
    if e.is_timeout() {
        UpstreamError::Timeout {
            target: what.to_owned(),
            message: format!("request to {url} timed out: {cause}"),
        }
    } else if e.is_connect() {
        UpstreamError::Transport {
            target: what.to_owned(),
            message: format!("cannot connect to {url}: {cause}"),
        }
    } else {
        UpstreamError::Transport {
            target: what.to_owned(),
            message: format!("request to {url} failed: {cause}"),
        }
    }
}

/// The error for a non-success `status`, with the registry's own message from
/// `body` when it sent one. `kind` names what was asked for (`manifest`, `blob`,
/// `repository`), used when the registry says nothing.
pub(crate) fn status_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    what: &str,
    kind: &str,
) -> UpstreamError {
    let message = registry_message(body).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if !text.is_empty() && text.len() <= 200 && !text.starts_with('<') {
            return text.to_owned();
        }
        match status {
            StatusCode::UNAUTHORIZED => "authentication required".to_owned(),
            StatusCode::FORBIDDEN => "requested access to the resource is denied".to_owned(),
            StatusCode::NOT_FOUND => format!("{kind} unknown"),
            s => s
                .canonical_reason()
                .map_or_else(|| format!("HTTP {}", s.as_u16()), str::to_lowercase),
        }
    });
    let target = what.to_owned();
    match status {
        StatusCode::UNAUTHORIZED => UpstreamError::Unauthorized { target, message },
        StatusCode::FORBIDDEN => UpstreamError::Forbidden { target, message },
        StatusCode::NOT_FOUND => UpstreamError::NotFound { target, message },
        StatusCode::TOO_MANY_REQUESTS => UpstreamError::TooManyRequests {
            retry_after: headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now())),
        },
        s => UpstreamError::Registry {
            target,
            status: s.as_u16(),
            message,
        },
    }
}

/// `Retry-After`: delay seconds, or an HTTP date (a date in the past gives zero).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The `Content-Length` header, when present and valid (also for HEAD answers).
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Reads the whole body, refusing more than `limit` bytes (checked against
/// `Content-Length` first, then while reading).
pub(crate) async fn read_capped(
    response: reqwest::Response,
    limit: u64,
    what: &str,
    kind: &'static str,
) -> Result<Bytes, UpstreamError> {
    let too_large = || UpstreamError::TooLarge {
        target: what.to_owned(),
        kind,
        limit,
    };
    if content_length(response.headers()).is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let url = response.url().to_string();
    let mut buf = BytesMut::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| transport_error(&e, what, &url))?;
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn status_errors() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        let e = status_error(
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
            b"",
            "x",
            "manifest",
        );
        assert_eq!(
            e,
            UpstreamError::TooManyRequests {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        let e = status_error(
            StatusCode::NOT_FOUND,
            &HeaderMap::new(),
            b"",
            "a/b:1",
            "manifest",
        );
        assert_eq!(e.to_string(), "a/b:1: manifest unknown");
        let body = br#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;
        let e = status_error(
            StatusCode::FORBIDDEN,
            &HeaderMap::new(),
            body,
            "a",
            "manifest",
        );
        assert_eq!(e.reason(), "Forbidden");
        assert_eq!(e.message(), "requested access to the resource is denied");
        let e = status_error(
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            b"",
            "a",
            "manifest",
        );
        assert_eq!(e.message(), "authentication required");
        let e = status_error(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            b"<html>bad gateway</html>",
            "a",
            "manifest",
        );
        assert_eq!(e.reason(), "ServiceUnavailable");
        assert_eq!(e.message(), "bad gateway");
        let e = status_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &HeaderMap::new(),
            b"boom",
            "a",
            "blob",
        );
        assert_eq!(e.to_string(), "a: boom (HTTP 500)");
    }

    #[test]
    fn insecure_list_matching() {
        let config = UpstreamConfig {
            insecure_registries: vec![
                "localhost".into(),
                "127.0.0.1:5000".into(),
                "Reg.Example:8443/".into(),
                "[::1]".into(),
            ],
            ..UpstreamConfig::default()
        };
        let t = Transport::new(&config).unwrap();
        assert!(t.is_listed_insecure("localhost"));
        assert!(t.is_listed_insecure("localhost:5000"));
        assert!(t.is_listed_insecure("127.0.0.1:5000"));
        assert!(!t.is_listed_insecure("127.0.0.1:5001"));
        assert!(!t.is_listed_insecure("127.0.0.1"));
        assert!(t.is_listed_insecure("reg.example:8443"));
        assert!(!t.is_listed_insecure("reg.example"));
        assert!(t.is_listed_insecure("[::1]:5000"));
        assert!(!t.is_listed_insecure("quay.io"));
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
        assert_eq!(host_without_port("[::1]"), "[::1]");
    }
}
