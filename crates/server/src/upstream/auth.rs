//! Registry authentication state: `WWW-Authenticate` challenge parsing and the token
//! cache (per registry, repository, scope and credential identity, honouring the token
//! server's `expires_in`), with one token request in flight per key. No IO of its own:
//! may call http-auth for parsing and tokio for locks; the token request itself is
//! made by the transport.
//!
//! oci-client has a token cache and challenge handling, but they do not fit: its
//! cache ignores `expires_in` (it reads a JWT `exp` claim or assumes a default), its
//! credentials are stored once per registry host (the first caller's credentials would
//! then serve every namespace's pulls from that registry), and a failed token request
//! is silently turned into an anonymous request. The challenge parser is private to
//! oci-client, so we use the crate it uses, http-auth.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// How long a token lives when the token server does not say (the Docker token
/// specification's default).
pub(crate) const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Entries kept before expired tokens are swept.
const SWEEP_THRESHOLD: usize = 4096;

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Basic realm=...`
    Basic,
    /// `Bearer realm=...,service=...,scope=...`
    Bearer {
        /// The token server URL.
        realm: String,
        /// The `service` to ask the token server for.
        service: Option<String>,
        /// The scope the registry asked for, when given.
        scope: Option<String>,
    },
}

/// The challenges in `values` (every `WWW-Authenticate` header), Bearer first.
/// Unparsable headers and other schemes are ignored.
pub(crate) fn parse_challenges<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    let mut out = Vec::new();
    for value in values {
        for challenge in http_auth::ChallengeParser::new(value).flatten() {
            let param = |name: &str| {
                challenge
                    .params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_unescaped())
            };
            if challenge.scheme.eq_ignore_ascii_case("bearer") {
                if let Some(realm) = param("realm").filter(|r| !r.is_empty()) {
                    out.push(Challenge::Bearer {
                        realm,
                        service: param("service"),
                        scope: param("scope"),
                    });
                }
            } else if challenge.scheme.eq_ignore_ascii_case("basic") {
                out.push(Challenge::Basic);
            }
        }
    }
    out.sort_by_key(|c| matches!(c, Challenge::Basic));
    out
}

/// A token server's answer (Docker token specification; `access_token` is the OAuth2
/// spelling).
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token and when to stop using it, or `None` when the answer has no token.
    pub(crate) fn into_cached(self, now: Instant) -> Option<CachedToken> {
        let value = self
            .token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))?;
        let lifetime = self
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        // Stop using a token a little before the server would refuse it.
        let margin = (lifetime / 10).min(Duration::from_secs(30));
        Some(CachedToken {
            value,
            expires: now + (lifetime - margin),
        })
    }
}

/// A bearer token and its expiry.
#[derive(Clone, Debug)]
pub(crate) struct CachedToken {
    /// The token.
    pub value: String,
    /// When to stop sending it.
    pub expires: Instant,
}

impl CachedToken {
    fn is_valid(&self, now: Instant) -> bool {
        now < self.expires
    }
}

/// What a token was issued for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TokenKey {
    /// Registry host as contacted.
    pub registry: String,
    /// Repository path.
    pub repository: String,
    /// The scope asked for (`repository:a/b:pull`).
    pub scope: String,
    /// A fingerprint of the credentials used to get the token.
    pub credential: String,
}

type Slot = Arc<tokio::sync::Mutex<Option<CachedToken>>>;

/// Tokens by key, and which registries asked for Basic auth.
#[derive(Default)]
pub(crate) struct AuthCache {
    /// What decides whether a token expired.
    clock: Clock,
    tokens: Mutex<HashMap<TokenKey, Slot>>,
    /// (registry, credential fingerprint) pairs that answered with a Basic challenge,
    /// so that later requests send Basic credentials up front.
    basic: Mutex<HashSet<(String, String)>>,
}

/// The clock of an [`AuthCache`] (the system's by default).
#[derive(Clone, Debug)]
struct Clock(Arc<dyn crate::clock::Clock>);

impl Default for Clock {
    fn default() -> Self {
        Clock(Arc::new(crate::clock::SystemClock))
    }
}

impl AuthCache {
    /// An empty cache whose tokens expire by `clock`.
    pub(crate) fn new(clock: Arc<dyn crate::clock::Clock>) -> Self {
        AuthCache {
            clock: Clock(clock),
            ..Default::default()
        }
    }

    /// Now, by the cache's clock.
    pub(crate) fn now(&self) -> Instant {
        self.clock.0.now()
    }

    fn slot(&self, key: &TokenKey) -> Slot {
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= SWEEP_THRESHOLD {
            let now = self.now();
            map.retain(|_, slot| {
                slot.try_lock()
                    .map(|t| t.as_ref().is_some_and(|t| t.is_valid(now)))
                    .unwrap_or(true)
            });
        }
        map.entry(key.clone()).or_default().clone()
    }

    /// A valid cached token for `key`, waiting for a request for one in flight.
    pub(crate) async fn current(&self, key: &TokenKey) -> Option<String> {
        let slot = self.slot(key);
        let guard = slot.lock().await;
        guard
            .as_ref()
            .filter(|t| t.is_valid(self.now()))
            .map(|t| t.value.clone())
    }

    /// A fresh token for `key`: the cached one if another task replaced `stale` (the
    /// token the registry just refused, if any) meanwhile, else the result of
    /// `fetch`, which is cached. Only one `fetch` per key runs at a time.
    pub(crate) async fn refresh<F, Fut, E>(
        &self,
        key: &TokenKey,
        stale: Option<&str>,
        fetch: F,
    ) -> Result<String, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<CachedToken, E>>,
    {
        let slot = self.slot(key);
        let mut guard = slot.lock().await;
        if let Some(t) = guard.as_ref()
            && t.is_valid(self.now())
            && Some(t.value.as_str()) != stale
        {
            return Ok(t.value.clone());
        }
        let token = fetch().await?;
        let value = token.value.clone();
        *guard = Some(token);
        Ok(value)
    }

    /// Remembers that `registry` asks for Basic auth.
    pub(crate) fn set_basic(&self, registry: &str, credential: &str) {
        self.basic
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((registry.to_owned(), credential.to_owned()));
    }

    /// Whether `registry` asked for Basic auth before.
    pub(crate) fn is_basic(&self, registry: &str, credential: &str) -> bool {
        self.basic
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(registry.to_owned(), credential.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn challenges() {
        let c = parse_challenges([
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        ]);
        assert_eq!(
            c,
            [Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull".into()),
            }]
        );
        let c = parse_challenges([
            r#"Basic realm="r""#,
            r#"bearer realm="http://127.0.0.1:1/t""#,
        ]);
        assert_eq!(c.len(), 2);
        assert!(matches!(c[0], Challenge::Bearer { ref service, .. } if service.is_none()));
        assert_eq!(c[1], Challenge::Basic);
        assert!(parse_challenges(["Negotiate", "garbage ,,, =", "Bearer service=x"]).is_empty());
    }

    #[test]
    fn token_lifetimes() {
        let now = Instant::now();
        let t: TokenResponse = serde_json::from_str(r#"{"token":"a","expires_in":300}"#).unwrap();
        let t = t.into_cached(now).unwrap();
        assert_eq!(t.value, "a");
        assert_eq!(t.expires - now, Duration::from_secs(270));
        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"b"}"#).unwrap();
        let t = t.into_cached(now).unwrap();
        assert_eq!(t.value, "b");
        assert_eq!(t.expires - now, Duration::from_secs(54));
        let t: TokenResponse = serde_json::from_str(r#"{"token":"c","expires_in":3600}"#).unwrap();
        assert_eq!(
            t.into_cached(now).unwrap().expires - now,
            Duration::from_secs(3570)
        );
        let t: TokenResponse = serde_json::from_str(r#"{"token":""}"#).unwrap();
        assert!(t.into_cached(now).is_none());
    }

    fn key(cred: &str) -> TokenKey {
        TokenKey {
            registry: "r".into(),
            repository: "a/b".into(),
            scope: "repository:a/b:pull".into(),
            credential: cred.into(),
        }
    }

    #[tokio::test]
    async fn cache_is_keyed_and_expires() {
        let cache = AuthCache::default();
        let calls = AtomicUsize::new(0);
        let fetch = |lifetime: u64| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok::<_, ()>(CachedToken {
                    value: format!("t{n}"),
                    expires: Instant::now() + Duration::from_millis(lifetime),
                })
            }
        };
        assert_eq!(cache.current(&key("x")).await, None);
        let t = cache
            .refresh(&key("x"), None, || fetch(60_000))
            .await
            .unwrap();
        assert_eq!(t, "t0");
        assert_eq!(cache.current(&key("x")).await.as_deref(), Some("t0"));
        // Another credential does not see it.
        assert_eq!(cache.current(&key("y")).await, None);
        // A refresh without a stale token reuses the valid one.
        let t = cache
            .refresh(&key("x"), None, || fetch(60_000))
            .await
            .unwrap();
        assert_eq!(t, "t0");
        // Refused by the registry: fetched again.
        let t = cache
            .refresh(&key("x"), Some("t0"), || fetch(1))
            .await
            .unwrap();
        assert_eq!(t, "t1");
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(cache.current(&key("x")).await, None);
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        cache.set_basic("r", "x");
        assert!(cache.is_basic("r", "x"));
        assert!(!cache.is_basic("r", "y"));
    }
}
