//! Console sessions: a token login form, an opaque random session id in an HttpOnly,
//! SameSite=Strict cookie (Secure over TLS, or when `--console-url` is https), a
//! synchronizer CSRF token per session checked on every POST, and logout.
//!
//! Sessions live in the store (`/moor/console/sessions/`), so every replica on one
//! store knows them and a logout on one ends the session on all. A record is keyed by
//! the SHA-256 of the cookie's id and holds the token sealed (AES-256-GCM) with a key
//! derived from the id: someone who reads the store (or a backup) can neither present
//! a session nor read its token; only the browser's cookie opens it. The token is never
//! put in a URL, a cookie or a log.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use axum::Form;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_server::tls::TlsInfo;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use maud::html;
use moor_store::{ListOptions, Store, StoreError};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{Console, Crumb, layout};

/// The session cookie's name.
pub(crate) const COOKIE: &str = "moor-console";
/// The cookie that ties the login form to the browser that loaded it.
const LOGIN_COOKIE: &str = "moor-console-login";
/// How long a session lasts after login (less when its token expires sooner).
pub(crate) const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// At most this many live sessions (a bound on the store; expired ones are dropped
/// first).
const MAX_SESSIONS: usize = 10_000;
/// Where session records live in the store.
const SESSIONS_PREFIX: &str = "/moor/console/sessions/";

/// A session as stored: the token sealed with a key only the cookie's id gives.
#[derive(Serialize, Deserialize)]
struct Record {
    user: String,
    csrf: String,
    /// Seconds since the epoch.
    expires: i64,
    /// AES-GCM nonce and sealed token, base64.
    nonce: String,
    sealed: String,
    /// An OIDC session's refresh token and what refreshing needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oidc: Option<OidcRecord>,
}

/// The OIDC part of a session that can be refreshed: the refresh token sealed as the
/// ID token is (same key, its own authenticated data).
#[derive(Serialize, Deserialize)]
struct OidcRecord {
    /// Index of the issuer among the console's OIDC issuers.
    issuer: usize,
    /// The ID token's `sub`: a refreshed one must name the same.
    sub: String,
    /// The ID token's `exp`, seconds since the epoch.
    token_expires: i64,
    /// AES-GCM nonce and sealed refresh token, base64.
    nonce: String,
    sealed: String,
}

/// The sessions of every replica on the store.
pub struct Sessions {
    store: Arc<dyn Store>,
    /// One lock per session being refreshed (see [`Sessions::flight`]).
    flights: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A live session, opened.
pub(crate) struct Live {
    pub user: String,
    pub token: String,
    pub csrf: String,
    /// What refreshing the session's ID token needs, when it can be refreshed.
    pub refresh: Option<Refresh>,
    /// The record's revision in the store.
    pub revision: i64,
}

/// An OIDC session's refresh token, opened.
pub(crate) struct Refresh {
    pub issuer: usize,
    pub sub: String,
    /// The ID token's `exp`.
    pub token_expires: i64,
    /// The refresh token (never rendered or logged).
    pub token: String,
}

/// The refresh token of a new OIDC session.
pub(crate) struct NewRefresh {
    pub issuer: usize,
    pub sub: String,
    pub token: String,
}

/// A session's ID token is refreshed this long before it expires.
pub(crate) const REFRESH_BEFORE: i64 = 60;

impl Live {
    /// Whether the session's ID token expires within [`REFRESH_BEFORE`] and it has a
    /// refresh token.
    pub(crate) fn needs_refresh(&self) -> bool {
        self.refresh
            .as_ref()
            .is_some_and(|r| r.token_expires - REFRESH_BEFORE <= now())
    }
}

/// The signed-in user of a request.
#[derive(Clone)]
pub(crate) struct Current {
    /// The user name the API gave at login.
    pub user: String,
    /// The bearer token (never rendered).
    pub token: String,
    /// The session's CSRF token, rendered into every form.
    pub csrf: String,
    /// Whether cookies are `Secure` (see [`secure`]).
    pub secure: bool,
}

/// 32 random bytes, hex.
pub(crate) fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Compares in time independent of where the strings differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Seconds since the epoch.
pub(crate) fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// The store key of the record `id` opens: `prefix` and the id's SHA-256.
fn record_key(prefix: &str, id: &str) -> String {
    format!("{prefix}{}", hex::encode(Sha256::digest(id.as_bytes())))
}

/// The AES-256-GCM cipher of the record `id` opens (a key derived from the id, which
/// only the browser holds; the store keeps only the id's hash).
fn cipher(id: &str) -> Aes256Gcm {
    let mut h = Sha256::new();
    h.update(b"moor console record key\0");
    h.update(id.as_bytes());
    let key = h.finalize();
    Aes256Gcm::new(&key)
}

/// `plain` sealed for the record `id` at `key`: (nonce, ciphertext), base64.
fn seal(id: &str, key: &str, plain: &[u8]) -> Option<(String, String)> {
    let mut nonce = [0u8; 12];
    rand::rng().fill_bytes(&mut nonce);
    let sealed = cipher(id)
        .encrypt(
            (&nonce).into(),
            Payload {
                msg: plain,
                aad: key.as_bytes(),
            },
        )
        .ok()?;
    Some((STANDARD.encode(nonce), STANDARD.encode(sealed)))
}

/// The authenticated data of the refresh token of the record at `key`.
fn refresh_aad(key: &str) -> String {
    format!("{key}#refresh")
}

/// What [`seal`] sealed, when `id` opens it.
fn open(id: &str, key: &str, nonce: &str, sealed: &str) -> Option<Vec<u8>> {
    let nonce: [u8; 12] = STANDARD.decode(nonce).ok()?.try_into().ok()?;
    let sealed = STANDARD.decode(sealed).ok()?;
    cipher(id)
        .decrypt(
            (&nonce).into(),
            Payload {
                msg: &sealed,
                aad: key.as_bytes(),
            },
        )
        .ok()
}

/// Deletes the expired records under `prefix` and counts the live ones (records that
/// do not parse count as expired). `expires` reads a record's expiry.
async fn sweep(
    store: &dyn Store,
    prefix: &str,
    expires: impl Fn(&[u8]) -> Option<i64>,
) -> Result<usize, StoreError> {
    let now = now();
    let mut live = 0;
    let mut after = None;
    loop {
        let page = store
            .list(
                prefix,
                ListOptions {
                    start_after: after.take(),
                    limit: Some(1000),
                    ..Default::default()
                },
            )
            .await?;
        for kv in &page.kvs {
            if expires(&kv.value).is_some_and(|e| e > now) {
                live += 1;
            } else {
                match store.delete(&kv.key, Some(kv.mod_revision)).await {
                    Ok(_) | Err(StoreError::NotFound(_) | StoreError::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if !page.more {
            return Ok(live);
        }
        after = page.kvs.last().map(|kv| kv.key.clone());
    }
}

impl Sessions {
    /// The sessions kept in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Sessions {
            store,
            flights: Default::default(),
        }
    }

    /// Starts a session for `user` holding `token` until `expires` (seconds since the
    /// epoch, capped at [`LIFETIME`] from now); `None` when too many are live. With
    /// `refresh`, the session outlives `expires` (the ID token's `exp`) while
    /// refreshes succeed: it ends [`LIFETIME`] after login or its last refresh.
    pub(crate) async fn create(
        &self,
        token: &str,
        user: String,
        expires: Option<i64>,
        refresh: Option<NewRefresh>,
    ) -> Result<Option<String>, StoreError> {
        let live = sweep(self.store.as_ref(), SESSIONS_PREFIX, |v| {
            serde_json::from_slice::<Record>(v).ok().map(|r| r.expires)
        })
        .await?;
        if live >= MAX_SESSIONS {
            return Ok(None);
        }
        let cap = now() + i64::try_from(LIFETIME.as_secs()).unwrap_or(i64::MAX);
        let id = random_hex();
        let key = record_key(SESSIONS_PREFIX, &id);
        let Some((nonce, sealed)) = seal(&id, &key, token.as_bytes()) else {
            return Ok(None);
        };
        let oidc = match refresh {
            Some(r) => {
                let Some((nonce, sealed)) = seal(&id, &refresh_aad(&key), r.token.as_bytes())
                else {
                    return Ok(None);
                };
                Some(OidcRecord {
                    issuer: r.issuer,
                    sub: r.sub,
                    token_expires: expires.unwrap_or(cap),
                    nonce,
                    sealed,
                })
            }
            None => None,
        };
        let record = Record {
            user,
            csrf: random_hex(),
            expires: match oidc {
                Some(_) => cap,
                None => expires.map_or(cap, |e| e.min(cap)),
            },
            nonce,
            sealed,
            oidc,
        };
        let value = serde_json::to_vec(&record).unwrap_or_default();
        self.store.create(&key, value.into()).await?;
        Ok(Some(id))
    }

    /// The live session `id` names; an expired one is deleted.
    pub(crate) async fn get(&self, id: &str) -> Result<Option<Live>, StoreError> {
        let key = record_key(SESSIONS_PREFIX, id);
        let Some(kv) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let Ok(r) = serde_json::from_slice::<Record>(&kv.value) else {
            return Ok(None);
        };
        if r.expires <= now() {
            match self.store.delete(&key, Some(kv.mod_revision)).await {
                Ok(_) | Err(StoreError::NotFound(_) | StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
            return Ok(None);
        }
        let Some(token) =
            open(id, &key, &r.nonce, &r.sealed).and_then(|t| String::from_utf8(t).ok())
        else {
            return Ok(None);
        };
        let refresh = match r.oidc {
            Some(o) => {
                let Some(token) = open(id, &refresh_aad(&key), &o.nonce, &o.sealed)
                    .and_then(|t| String::from_utf8(t).ok())
                else {
                    return Ok(None);
                };
                Some(Refresh {
                    issuer: o.issuer,
                    sub: o.sub,
                    token_expires: o.token_expires,
                    token,
                })
            }
            None => None,
        };
        Ok(Some(Live {
            user: r.user,
            token,
            csrf: r.csrf,
            refresh,
            revision: kv.mod_revision,
        }))
    }

    /// The lock that makes refreshes of session `id` one at a time in this process
    /// (two tabs must not spend a rotated refresh token twice). Across replicas
    /// nothing is locked: two replicas may refresh at once, and the store's
    /// compare-and-swap keeps one answer (the other replica then uses the stored
    /// session; if the issuer rotates refresh tokens and refuses the second use, that
    /// request's session ends and the user logs in again).
    pub(crate) fn flight(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        // Locks nobody holds or waits for are dropped, so the map stays small.
        flights.retain(|_, l| Arc::strong_count(l) > 1);
        flights.entry(id.to_owned()).or_default().clone()
    }

    /// Replaces the ID token of session `id` (at store revision `revision`) with
    /// `token` expiring at `token_expires`, and its refresh token with `refresh`: the
    /// session then lasts [`LIFETIME`] from now. `false` when the record changed or
    /// went meanwhile.
    pub(crate) async fn refreshed(
        &self,
        id: &str,
        revision: i64,
        token: &str,
        token_expires: i64,
        refresh: &str,
    ) -> Result<bool, StoreError> {
        let key = record_key(SESSIONS_PREFIX, id);
        let Some(kv) = self.store.get(&key).await? else {
            return Ok(false);
        };
        if kv.mod_revision != revision {
            return Ok(false);
        }
        let Ok(mut r) = serde_json::from_slice::<Record>(&kv.value) else {
            return Ok(false);
        };
        let (Some((nonce, sealed)), Some((rnonce, rsealed)), Some(o)) = (
            seal(id, &key, token.as_bytes()),
            seal(id, &refresh_aad(&key), refresh.as_bytes()),
            r.oidc.as_mut(),
        ) else {
            return Ok(false);
        };
        (r.nonce, r.sealed) = (nonce, sealed);
        (o.nonce, o.sealed, o.token_expires) = (rnonce, rsealed, token_expires);
        r.expires = now() + i64::try_from(LIFETIME.as_secs()).unwrap_or(i64::MAX);
        let value = serde_json::to_vec(&r).unwrap_or_default();
        match self.store.update(&key, value.into(), revision).await {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Ends session `id` (on every replica).
    pub(crate) async fn remove(&self, id: &str) -> Result<(), StoreError> {
        match self
            .store
            .delete(&record_key(SESSIONS_PREFIX, id), None)
            .await
        {
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The value of cookie `name` in `headers`.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// Whether the console's cookies are `Secure`, decided here only: with
/// `--console-url`, when that URL is https (browsers reach the console over TLS even
/// when a proxy speaks plain HTTP to moor); without it, when the request came over
/// TLS.
fn secure(parts: &Parts, console: &Console) -> bool {
    match &console.url {
        Some(url) => url.is_https(),
        None => parts.extensions.get::<Arc<TlsInfo>>().is_some(),
    }
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path `/console`, Secure if `secure`;
/// `None` for `max_age` deletes it.
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    secure: bool,
    max_age: Option<Duration>,
) -> String {
    set_cookie_with(name, value, secure, max_age, cookie::SameSite::Strict)
}

/// [`set_cookie`] with another SameSite policy (the OIDC flow's cookie must come
/// back on the identity provider's redirect, a cross-site top-level GET: `Lax`).
pub(crate) fn set_cookie_with(
    name: &str,
    value: &str,
    secure: bool,
    max_age: Option<Duration>,
    same_site: cookie::SameSite,
) -> String {
    let mut c = cookie::Cookie::build((name, value))
        .path("/console")
        .http_only(true)
        .secure(secure)
        .same_site(same_site);
    c = match max_age {
        Some(age) => c.max_age(cookie::time::Duration::seconds(
            i64::try_from(age.as_secs()).unwrap_or(i64::MAX),
        )),
        None => c.max_age(cookie::time::Duration::ZERO),
    };
    c.build().to_string()
}

/// Requests without a live session are sent to the login page.
impl FromRequestParts<Console> for Current {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Console) -> Result<Self, Response> {
        let Some(id) = cookie(&parts.headers, COOKIE) else {
            return Err(Redirect::to("/console/login").into_response());
        };
        let unavailable = |e: StoreError| {
            tracing::warn!(error = %e, "reading a console session");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "console sessions are unavailable: the store failed",
            )
                .into_response()
        };
        let secure = secure(parts, state);
        let live = match state.sessions.get(&id).await {
            Ok(Some(live)) if live.needs_refresh() => {
                match super::refresh::refresh(state, &id).await {
                    Ok(live) => {
                        if let Some(r) = parts.extensions.get::<super::refresh::Renewed>() {
                            r.set(session_cookie(&id, secure));
                        }
                        live
                    }
                    Err(super::refresh::RefreshError::Store(e)) => return Err(unavailable(e)),
                    Err(super::refresh::RefreshError::Ended(why)) => {
                        let mut resp = login_form_response(state, secure, Some(&why));
                        *resp.status_mut() = StatusCode::UNAUTHORIZED;
                        if let Ok(v) = set_cookie(COOKIE, "", secure, None).parse() {
                            resp.headers_mut().append(header::SET_COOKIE, v);
                        }
                        return Err(resp);
                    }
                }
            }
            Ok(Some(live)) => live,
            Ok(None) => return Err(Redirect::to("/console/login").into_response()),
            Err(e) => return Err(unavailable(e)),
        };
        Ok(Current {
            user: live.user,
            token: live.token,
            csrf: live.csrf,
            secure,
        })
    }
}

impl Current {
    /// Whether a form's CSRF token is the session's.
    pub(crate) fn csrf_ok(&self, sent: &str) -> bool {
        same(sent, &self.csrf)
    }
}

/// The answer to a POST whose CSRF token is not its session's (403).
pub(crate) fn csrf_refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        "the form's CSRF token does not match this session: reload the page and try again",
    )
        .into_response()
}

/// Whether the console's cookies are `Secure` for this request (see [`secure`]).
pub(crate) struct Secure(pub(crate) bool);

impl FromRequestParts<Console> for Secure {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        console: &Console,
    ) -> Result<Self, Self::Rejection> {
        Ok(Secure(secure(parts, console)))
    }
}

/// The login page: the token form, and a "Log in with ISSUER" link for each OIDC
/// issuer the console may log in with.
pub(crate) fn login_page(console: &Console, csrf: &str, error: Option<&str>) -> maud::Markup {
    let issuers = console
        .oidc
        .as_ref()
        .map(|o| o.labels())
        .unwrap_or_default();
    layout(
        "Log in",
        None,
        &[Crumb::here("Log in")],
        html! {
            h1 { "Log in to moor" }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            @if !issuers.is_empty() {
                ul.oidc {
                    @for (i, label) in issuers.iter().enumerate() {
                        li { a.button href=(format!("/console/oidc/start?issuer={i}")) { "Log in with " (label) } }
                    }
                }
                p.muted { "Or with a token:" }
            }
            form method="post" action="/console/login" {
                input type="hidden" name="csrf" value=(csrf);
                label for="token" { "Bearer token" }
                input #token type="password" name="token" autocomplete="off" required
                    size="50" aria-describedby="token-help";
                p #token-help .muted {
                    "The token of your kubeconfig (" code { "moor serve" } " writes the admin's to "
                    code { "DATA_DIR/kubeconfig" } "), a service account token or an OIDC ID token."
                }
                button type="submit" { "Log in" }
            }
        },
    )
}

/// `GET /console/login`: the form, with a fresh login CSRF token in a cookie.
pub(crate) async fn login_form(State(console): State<Console>, Secure(secure): Secure) -> Response {
    login_form_response(&console, secure, None)
}

/// The login page with a fresh login CSRF token in a cookie, and `error` shown.
pub(crate) fn login_form_response(
    console: &Console,
    secure: bool,
    error: Option<&str>,
) -> Response {
    let csrf = random_hex();
    (
        [(
            header::SET_COOKIE,
            set_cookie(LOGIN_COOKIE, &csrf, secure, Some(Duration::from_secs(3600))),
        )],
        login_page(console, &csrf, error),
    )
        .into_response()
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

/// Why a session could not be started, as the login page says it.
pub(crate) enum StartError {
    /// The API does not accept the token.
    Refused,
    /// Too many sessions are live.
    Full,
    /// The API or the store failed.
    Failed(String),
}

impl StartError {
    /// The status and the message shown.
    pub(crate) fn shown(&self) -> (StatusCode, String) {
        match self {
            StartError::Refused => (
                StatusCode::UNAUTHORIZED,
                "The API does not accept this token.".into(),
            ),
            StartError::Full => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many sessions are open: try again later.".into(),
            ),
            StartError::Failed(m) => (StatusCode::BAD_GATEWAY, m.clone()),
        }
    }
}

/// Checks `token` with the API (SelfSubjectReview) and starts a session holding it
/// until `expires` (at most [`LIFETIME`]): the new session id.
pub(crate) async fn start_session(
    console: &Console,
    token: &str,
    expires: Option<i64>,
    refresh: Option<NewRefresh>,
) -> Result<String, StartError> {
    let user = match console.api.whoami(token).await {
        Ok(user) => user,
        Err(e) if super::client::is_refusal(&e) => return Err(StartError::Refused),
        Err(e) => return Err(StartError::Failed(e.to_string())),
    };
    match console.sessions.create(token, user, expires, refresh).await {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Err(StartError::Full),
        Err(e) => Err(StartError::Failed(format!("storing the session: {e}"))),
    }
}

/// The `Set-Cookie` value of a new session `id`.
pub(crate) fn session_cookie(id: &str, secure: bool) -> String {
    set_cookie(COOKIE, id, secure, Some(LIFETIME))
}

/// `POST /console/login`: checks the token with the API (SelfSubjectReview) and
/// starts a session.
pub(crate) async fn login(
    State(console): State<Console>,
    Secure(secure): Secure,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same(&expected, &form.csrf) {
        return (
            StatusCode::FORBIDDEN,
            login_page(
                &console,
                &form.csrf,
                Some("This login form has expired: load the login page again."),
            ),
        )
            .into_response();
    }
    let token = form.token.trim().to_owned();
    let again = |status, message: &str| {
        (status, login_page(&console, &form.csrf, Some(message))).into_response()
    };
    if token.is_empty() {
        return again(StatusCode::BAD_REQUEST, "Enter a token.");
    }
    let id = match start_session(&console, &token, None, None).await {
        Ok(id) => id,
        Err(e) => {
            let (status, message) = e.shown();
            return again(status, &message);
        }
    };
    let mut resp = Redirect::to("/console/").into_response();
    let h = resp.headers_mut();
    if let Ok(v) = session_cookie(&id, secure).parse() {
        h.append(header::SET_COOKIE, v);
    }
    if let Ok(v) = set_cookie(LOGIN_COOKIE, "", secure, None).parse() {
        h.append(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/logout`: ends the session (its record is deleted from the store,
/// so no replica accepts the cookie any more).
pub(crate) async fn logout(
    State(console): State<Console>,
    current: Current,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !current.csrf_ok(&form.csrf) {
        return csrf_refused();
    }
    if let Some(id) = cookie(&headers, COOKIE)
        && let Err(e) = console.sessions.remove(&id).await
    {
        tracing::warn!(error = %e, "deleting a console session");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "logging out failed: the store did not delete the session; try again",
        )
            .into_response();
    }
    (
        [(
            header::SET_COOKIE,
            set_cookie(COOKIE, "", current.secure, None),
        )],
        Redirect::to("/console/login"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        Sessions::new(Arc::new(moor_store::MemoryStore::new()))
    }

    #[tokio::test]
    async fn sessions_expire_and_are_removed() {
        let s = sessions();
        let id = s
            .create("t", "u".into(), None, None)
            .await
            .unwrap()
            .expect("room");
        let live = s.get(&id).await.unwrap().expect("live");
        assert_eq!((live.user.as_str(), live.token.as_str()), ("u", "t"));
        s.remove(&id).await.unwrap();
        assert!(s.get(&id).await.unwrap().is_none(), "logged out");
        let id = s
            .create("t", "u".into(), Some(now() - 1), None)
            .await
            .unwrap()
            .expect("room");
        assert!(
            s.get(&id).await.unwrap().is_none(),
            "an expired session is gone"
        );
        let left = s
            .store
            .list(SESSIONS_PREFIX, ListOptions::default())
            .await
            .unwrap();
        assert!(left.kvs.is_empty(), "and its record deleted");
    }

    #[tokio::test]
    async fn the_store_holds_neither_the_id_nor_the_token() {
        let s = sessions();
        let refresh = NewRefresh {
            issuer: 0,
            sub: "s".into(),
            token: "secret-refresh".into(),
        };
        let id = s
            .create("secret-token", "u".into(), None, Some(refresh))
            .await
            .unwrap()
            .expect("room");
        let all = s.store.list("/", ListOptions::default()).await.unwrap();
        assert_eq!(all.kvs.len(), 1);
        let kv = &all.kvs[0];
        let text = format!("{} {}", kv.key, String::from_utf8_lossy(&kv.value));
        assert!(!text.contains(&id), "{text}");
        assert!(!text.contains("secret-token"), "{text}");
        assert!(!text.contains("secret-refresh"), "{text}");
        let live = s.get(&id).await.unwrap().expect("live");
        assert_eq!(live.refresh.expect("refresh").token, "secret-refresh");
        // Another id does not open it, even at its key.
        assert!(open(&random_hex(), &kv.key, "AAAAAAAAAAAAAAAA", "AAAA").is_none());
        // Another last character (ids are hex; "0" would be the same id a sixteenth of
        // the time).
        let last = if id.ends_with('0') { "1" } else { "0" };
        let forged = format!("{}{last}", &id[..id.len() - 1]);
        assert!(s.get(&forged).await.unwrap().is_none());
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_over_tls() {
        let c = set_cookie(COOKIE, "abc", true, Some(LIFETIME));
        for part in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/console"] {
            assert!(c.contains(part), "{c} lacks {part}");
        }
        assert!(!set_cookie(COOKIE, "abc", false, Some(LIFETIME)).contains("Secure"));
    }

    #[test]
    fn csrf_comparison() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
