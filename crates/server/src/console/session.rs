//! Console sessions: a token login form, an opaque random session id in an HttpOnly,
//! SameSite=Strict cookie (Secure over TLS) mapped in memory to the token, with an
//! expiry; a synchronizer CSRF token per session checked on every POST; logout.
//!
//! The token is never put in a URL, a cookie or a log. Sessions live in this process:
//! a restart (or another replica) asks the user to log in again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_server::tls::TlsInfo;
use maud::html;
use rand::RngCore as _;
use serde::Deserialize;

use super::{Console, Crumb, layout};

/// The session cookie's name.
pub(crate) const COOKIE: &str = "moor-console";
/// The cookie that ties the login form to the browser that loaded it.
const LOGIN_COOKIE: &str = "moor-console-login";
/// How long a session lasts after login.
const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// At most this many live sessions (a bound on memory; expired ones are dropped first).
const MAX_SESSIONS: usize = 10_000;

struct Session {
    token: String,
    user: String,
    csrf: String,
    expires: Instant,
}

/// The live sessions, by id.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
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
    /// Whether the request came over TLS (cookies are then `Secure`).
    pub secure: bool,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Compares in time independent of where the strings differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock leaves the map usable.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session; `None` when too many are live.
    fn create(&self, token: String, user: String) -> Option<String> {
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| s.expires > now);
            if map.len() >= MAX_SESSIONS {
                return None;
            }
        }
        let id = random_hex();
        map.insert(
            id.clone(),
            Session {
                token,
                user,
                csrf: random_hex(),
                expires: now + LIFETIME,
            },
        );
        Some(id)
    }

    fn get(&self, id: &str) -> Option<(String, String, String)> {
        let mut map = self.lock();
        let s = map.get(id)?;
        if s.expires <= Instant::now() {
            map.remove(id);
            return None;
        }
        Some((s.user.clone(), s.token.clone(), s.csrf.clone()))
    }

    fn remove(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// The value of cookie `name` in `headers`.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

fn is_tls(parts: &Parts) -> bool {
    parts.extensions.get::<Arc<TlsInfo>>().is_some()
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path `/console`, Secure over TLS;
/// `None` for `max_age` deletes it.
fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<Duration>) -> String {
    let mut c = cookie::Cookie::build((name, value))
        .path("/console")
        .http_only(true)
        .secure(secure)
        .same_site(cookie::SameSite::Strict);
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
        let found = cookie(&parts.headers, COOKIE).and_then(|id| state.sessions.get(&id));
        match found {
            Some((user, token, csrf)) => Ok(Current {
                user,
                token,
                csrf,
                secure: is_tls(parts),
            }),
            None => Err(Redirect::to("/console/login").into_response()),
        }
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

/// Whether the request came over TLS.
pub(crate) struct Tls(bool);

impl<S: Send + Sync> FromRequestParts<S> for Tls {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Tls(is_tls(parts)))
    }
}

fn login_page(csrf: &str, error: Option<&str>) -> maud::Markup {
    layout(
        "Log in",
        None,
        &[Crumb::here("Log in")],
        html! {
            h1 { "Log in to moor" }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
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
pub(crate) async fn login_form(Tls(secure): Tls) -> Response {
    let csrf = random_hex();
    (
        [(
            header::SET_COOKIE,
            set_cookie(LOGIN_COOKIE, &csrf, secure, Some(Duration::from_secs(3600))),
        )],
        login_page(&csrf, None),
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

/// `POST /console/login`: checks the token with the API (SelfSubjectReview) and
/// starts a session.
pub(crate) async fn login(
    State(console): State<Console>,
    Tls(secure): Tls,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same(&expected, &form.csrf) {
        return (
            StatusCode::FORBIDDEN,
            login_page(
                &form.csrf,
                Some("This login form has expired: load the login page again."),
            ),
        )
            .into_response();
    }
    let token = form.token.trim().to_owned();
    let again =
        |status, message: &str| (status, login_page(&form.csrf, Some(message))).into_response();
    if token.is_empty() {
        return again(StatusCode::BAD_REQUEST, "Enter a token.");
    }
    let user = match console.api.whoami(&token).await {
        Ok(user) => user,
        Err(e) if super::client::is_refusal(&e) => {
            return again(
                StatusCode::UNAUTHORIZED,
                "The API does not accept this token.",
            );
        }
        Err(e) => return again(StatusCode::BAD_GATEWAY, &e.to_string()),
    };
    let Some(id) = console.sessions.create(token, user) else {
        return again(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many sessions are open: try again later.",
        );
    };
    let mut resp = Redirect::to("/console/").into_response();
    let h = resp.headers_mut();
    if let Ok(v) = set_cookie(COOKIE, &id, secure, Some(LIFETIME)).parse() {
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

/// `POST /console/logout`: ends the session.
pub(crate) async fn logout(
    State(console): State<Console>,
    current: Current,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !current.csrf_ok(&form.csrf) {
        return csrf_refused();
    }
    if let Some(id) = cookie(&headers, COOKIE) {
        console.sessions.remove(&id);
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

    #[test]
    fn sessions_expire_and_are_removed() {
        let s = Sessions::default();
        let id = s.create("t".into(), "u".into()).expect("room");
        assert_eq!(
            s.get(&id).map(|(u, t, _)| (u, t)),
            Some(("u".into(), "t".into()))
        );
        s.lock().get_mut(&id).expect("live").expires = Instant::now();
        assert!(s.get(&id).is_none(), "an expired session is gone");
        assert!(s.lock().is_empty());
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
