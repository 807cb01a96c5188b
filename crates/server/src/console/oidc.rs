//! OIDC login for the console: the authorization-code flow with PKCE (S256) against
//! the `jwt[]` issuers of `--authentication-config`, ending in the same session as
//! the token login, holding the ID token as the user's bearer token (which the API's
//! JWT authenticator accepts; in cluster mode, the cluster's TokenReview, as moor adds
//! no JWT authenticator there, and the cluster's own API server).
//!
//! `/console/oidc/start` seals the pending login (state, nonce, PKCE verifier, redirect
//! URI, expiry) with AES-256-GCM under a key the replicas share (the store's shared
//! identity) into a short-lived HttpOnly cookie (SameSite=Lax: it must come back on
//! the identity provider's redirect), and sends the browser to the issuer. Nothing is
//! written anywhere before a user has logged in, so unauthenticated starts cost no
//! store writes and cannot fill a table; the cookie cannot be forged or read, and any
//! replica opens it. `/console/oidc/callback` opens the cookie, checks `state`,
//! exchanges the code with the verifier (a code is single-use at the issuer, so a
//! replayed callback is refused there), verifies the ID token with the API's own
//! [`JwtIssuer`] (signature, issuer, audience, expiry, claim mappings) and its
//! `nonce`, starts the session, and clears the cookie.
//!
//! Written by hand on reqwest rather than with `oauth2`/`openidconnect`: neither is in
//! the lock, `openidconnect` would bring a second JOSE stack beside jsonwebtoken, and
//! the ID token must be checked by exactly the code that checks the API's bearer
//! tokens. The flow itself is one redirect and one form POST.
//!
//! When the token endpoint also answers a `refresh_token`, the session keeps it
//! (sealed like the ID token) and `OidcLogin::refresh` renews the ID token with it
//! (see `super::refresh`).
//!
//! Calls the issuer (discovery, token endpoint) and [`super::session`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use maud::html;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use rand::RngCore as _;

use super::session::{self, Secure, cookie, now, random_hex, same, set_cookie, set_cookie_with};
use super::{Console, Crumb, layout};
use crate::auth::oidc::{JwtAuthenticators, JwtIssuer};

/// The cookie holding the browser's pending login, sealed.
const FLOW_COOKIE: &str = "moor-console-oidc";
/// Authenticated data of a sealed login: a key used for anything else opens nothing.
const FLOW_AAD: &[u8] = b"moor console oidc login";
/// How long a browser has to come back from the identity provider.
const FLOW_LIFETIME: Duration = Duration::from_secs(600);
/// Timeout of the code exchange.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// The scopes asked for unless told otherwise.
pub const DEFAULT_SCOPES: &str = "openid profile email";

/// Errors of setting up the console's OIDC login.
#[derive(Debug, thiserror::Error)]
pub enum OidcLoginError {
    #[error("--console-oidc-client-secret-file {path}: {source}")]
    Secret {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// `moor serve`'s flags of the console's OIDC client.
#[derive(Clone, Debug, Default)]
pub struct OidcClientOptions {
    /// `--console-oidc-client-id`: default, each issuer's first audience.
    pub client_id: Option<String>,
    /// `--console-oidc-client-secret-file`: a confidential client's secret (sent with
    /// HTTP Basic); without it the console is a public client (PKCE alone).
    pub client_secret_file: Option<PathBuf>,
    /// `--console-oidc-scopes`: space-separated; default [`DEFAULT_SCOPES`].
    pub scopes: Option<String>,
}

/// One issuer the console logs in with.
struct Client {
    issuer: Arc<JwtIssuer>,
    client_id: String,
}

/// The console's OIDC login: its issuers and client.
pub struct OidcLogin {
    clients: Vec<Client>,
    secret: Option<String>,
    scopes: String,
    /// Seals pending logins into the browser's cookie.
    sealing: Aes256Gcm,
}

impl OidcLogin {
    /// The login over `authenticators`' issuers (`None` when there are none).
    pub fn new(
        authenticators: &JwtAuthenticators,
        options: &OidcClientOptions,
    ) -> Result<Option<Self>, OidcLoginError> {
        let clients: Vec<Client> = authenticators
            .issuers()
            .iter()
            .filter_map(|issuer| {
                let client_id = options
                    .client_id
                    .clone()
                    .or_else(|| issuer.audiences().first().cloned())?;
                Some(Client {
                    issuer: issuer.clone(),
                    client_id,
                })
            })
            .collect();
        if clients.is_empty() {
            return Ok(None);
        }
        let secret = match &options.client_secret_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|source| OidcLoginError::Secret {
                        path: path.display().to_string(),
                        source,
                    })?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Ok(Some(OidcLogin {
            clients,
            secret,
            sealing: Aes256Gcm::new(&key.into()),
            scopes: options
                .scopes
                .clone()
                .unwrap_or_else(|| DEFAULT_SCOPES.to_owned()),
        }))
    }

    /// Seals pending logins with `key` (32 bytes: the replicas' shared one, so a login
    /// started on one replica finishes on any) instead of this process's random key.
    pub fn with_sealing_key(mut self, key: &[u8; 32]) -> Self {
        self.sealing = Aes256Gcm::new(key.into());
        self
    }

    /// `flow` sealed: base64url of a random 96-bit nonce and the AES-GCM ciphertext.
    fn seal(&self, flow: &Flow) -> Option<String> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let plain = serde_json::to_vec(flow).ok()?;
        let sealed = self
            .sealing
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: &plain,
                    aad: FLOW_AAD,
                },
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Some(URL_SAFE_NO_PAD.encode(out))
    }

    /// The login [`Self::seal`] sealed into `value`, if this key sealed it unchanged.
    fn open(&self, value: &str) -> Option<Flow> {
        let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        let plain = self
            .sealing
            .decrypt(
                (&nonce).into(),
                Payload {
                    msg: sealed,
                    aad: FLOW_AAD,
                },
            )
            .ok()?;
        serde_json::from_slice(&plain).ok()
    }

    /// The issuers' names, as the login page offers them.
    pub(crate) fn labels(&self) -> Vec<String> {
        self.clients
            .iter()
            .map(|c| c.issuer.url().to_owned())
            .collect()
    }
}

/// A pending login, as sealed into the browser's cookie.
#[derive(Serialize, Deserialize)]
struct Flow {
    issuer: usize,
    state: String,
    nonce: String,
    redirect_uri: String,
    /// Seconds since the epoch.
    expires: i64,
    /// The PKCE verifier.
    verifier: String,
}

/// A random PKCE verifier (43 characters of base64url: 256 bits) and its S256
/// challenge.
fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(hex::decode(random_hex()).unwrap_or_default());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The login page again, with `message` (and a new login form cookie).
fn failed(console: &Console, secure: bool, status: StatusCode, message: &str) -> Response {
    let mut resp = session::login_form_response(console, secure, Some(message));
    *resp.status_mut() = status;
    resp
}

/// Where the identity provider sends the browser back: `--console-url`'s callback
/// whatever the request says; without it (the fallback), the request's `Host` with
/// https when cookies are `Secure` (the request came over TLS), else http.
fn redirect_uri(console: &Console, secure: bool, headers: &HeaderMap) -> Option<String> {
    if let Some(url) = &console.url {
        return Some(url.redirect_uri());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['/', '?', '#', '@']))?;
    let scheme = if secure { "https" } else { "http" };
    Some(format!("{scheme}://{host}/console/oidc/callback"))
}

#[derive(Deserialize)]
pub(crate) struct StartQuery {
    #[serde(default)]
    issuer: usize,
}

/// `GET /console/oidc/start?issuer=N`: the sealed login cookie and the redirect to the
/// issuer.
pub(crate) async fn start(
    State(console): State<Console>,
    Secure(secure): Secure,
    headers: HeaderMap,
    Query(q): Query<StartQuery>,
) -> Response {
    let Some(oidc) = console.oidc.clone() else {
        return (StatusCode::NOT_FOUND, "no OIDC issuer is configured").into_response();
    };
    let Some(client) = oidc.clients.get(q.issuer) else {
        return failed(&console, secure, StatusCode::BAD_REQUEST, "No such issuer.");
    };
    let Some(redirect_uri) = redirect_uri(&console, secure, &headers) else {
        return failed(
            &console,
            secure,
            StatusCode::BAD_REQUEST,
            "The request names no host to come back to.",
        );
    };
    let endpoints = match client.issuer.endpoints().await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(issuer = %client.issuer.url(), error = %e, "OIDC discovery");
            return failed(
                &console,
                secure,
                StatusCode::BAD_GATEWAY,
                &format!("The identity provider cannot be reached: {e}"),
            );
        }
    };
    let (verifier, challenge) = pkce();
    let flow = Flow {
        issuer: q.issuer,
        state: random_hex(),
        nonce: random_hex(),
        redirect_uri,
        expires: now() + FLOW_LIFETIME.as_secs() as i64,
        verifier,
    };
    let Some(sealed) = oidc.seal(&flow) else {
        return failed(
            &console,
            secure,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Sealing the login failed.",
        );
    };
    let Ok(mut url) = reqwest::Url::parse(&endpoints.authorization) else {
        return failed(
            &console,
            secure,
            StatusCode::BAD_GATEWAY,
            "The identity provider's authorization endpoint is not a URL.",
        );
    };
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.client_id)
        .append_pair("redirect_uri", &flow.redirect_uri)
        .append_pair("scope", &oidc.scopes)
        .append_pair("state", &flow.state)
        .append_pair("nonce", &flow.nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    (
        [(
            header::SET_COOKIE,
            set_cookie_with(
                FLOW_COOKIE,
                &sealed,
                secure,
                Some(FLOW_LIFETIME),
                cookie::SameSite::Lax,
            ),
        )],
        Redirect::to(url.as_str()),
    )
        .into_response()
}

#[derive(Deserialize)]
pub(crate) struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// The token endpoint's answer, the parts read.
#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    id_token: Option<String>,
    /// Sent when the issuer lets this client refresh (and, on a refresh, when it
    /// rotates refresh tokens).
    #[serde(default)]
    refresh_token: Option<String>,
}

/// An OAuth error answer.
#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// `GET /console/oidc/callback`: the identity provider's answer; on success a
/// session and a page that moves on to the console.
pub(crate) async fn callback(
    State(console): State<Console>,
    Secure(secure): Secure,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(oidc) = console.oidc.clone() else {
        return (StatusCode::NOT_FOUND, "no OIDC issuer is configured").into_response();
    };
    let fail = |status, message: &str| {
        let mut resp = failed(&console, secure, status, message);
        if let Ok(v) = set_cookie(FLOW_COOKIE, "", secure, None).parse() {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        resp
    };
    let Some(flow) = cookie(&headers, FLOW_COOKIE).and_then(|v| oidc.open(&v)) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "This login has expired or was started in another browser: log in again.",
        );
    };
    if flow.expires <= now() {
        return fail(
            StatusCode::BAD_REQUEST,
            "This login took too long: log in again.",
        );
    }
    if !q.state.as_deref().is_some_and(|s| same(s, &flow.state)) {
        return fail(
            StatusCode::BAD_REQUEST,
            "This answer does not belong to the login this browser started (wrong state): log in again.",
        );
    }
    if let Some(error) = &q.error {
        let detail = q
            .error_description
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        return fail(
            StatusCode::UNAUTHORIZED,
            &format!("The identity provider did not log you in: {error}{detail}."),
        );
    }
    let Some(code) = q.code.as_deref().filter(|c| !c.is_empty()) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "The identity provider sent no code.",
        );
    };
    let Some(client) = oidc.clients.get(flow.issuer) else {
        return fail(StatusCode::BAD_REQUEST, "No such issuer.");
    };
    let (id_token, refresh_token) =
        match exchange(&oidc, client, code, &flow.redirect_uri, &flow.verifier).await {
            Ok(t) => t,
            Err((status, message)) => return fail(status, &message),
        };
    let (user, exp, sub) = match client.issuer.verify_id_token(&id_token, &flow.nonce).await {
        Ok(v) => v,
        Err(why) => {
            tracing::warn!(issuer = %client.issuer.url(), why, "console OIDC login refused");
            return fail(
                StatusCode::UNAUTHORIZED,
                &format!("The identity provider's answer is not accepted: {why}."),
            );
        }
    };
    // The session holds the ID token as the user's bearer token (for moor's API and,
    // in cluster mode, the cluster's) and ends no later than the token's `exp`, unless
    // the issuer gave a refresh token (see `super::refresh`).
    let refresh = refresh_token.map(|token| session::NewRefresh {
        issuer: flow.issuer,
        sub,
        token,
    });
    let session = match session::start_session(&console, &id_token, Some(exp), refresh).await {
        Ok(id) => id,
        Err(session::StartError::Refused) => {
            tracing::warn!(user = %user.name, issuer = %client.issuer.url(), "console OIDC login: the API refused the ID token");
            return fail(StatusCode::UNAUTHORIZED, &refused(&console, client));
        }
        Err(e) => {
            let (status, message) = e.shown();
            return fail(status, &message);
        }
    };
    tracing::info!(user = %user.name, issuer = %client.issuer.url(), "console OIDC login");
    // A page rather than a redirect: the browser arrived here from the identity
    // provider (a cross-site navigation), and a redirect would carry that on, so the
    // SameSite=Strict session cookie would not be sent with it. The refresh is a
    // navigation of this page's own.
    let page = layout(
        "Logged in",
        None,
        &[Crumb::here("Logged in")],
        html! {
            meta http-equiv="refresh" content="0;url=/console/";
            h1 { "Logged in" }
            p { "Signed in as " strong { (user.name) } ". " a href="/console/" { "Continue to the console" } "." }
        },
    );
    let mut resp = page.into_response();
    let h = resp.headers_mut();
    for c in [
        session::session_cookie(&session, secure),
        set_cookie(FLOW_COOKIE, "", secure, None),
    ] {
        if let Ok(v) = c.parse() {
            h.append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// Why a verified ID token started no session: the API (in cluster mode, the
/// cluster's TokenReview) does not accept it.
fn refused(console: &Console, client: &Client) -> String {
    if console.api.in_cluster() {
        format!(
            "The cluster does not accept the ID token of {} for client {}: its API server \
             must trust this issuer with this audience. Log in with a token the cluster accepts.",
            client.issuer.url(),
            client.client_id
        )
    } else {
        format!(
            "The API does not accept the ID token of {} for client {}.",
            client.issuer.url(),
            client.client_id
        )
    }
}

/// Exchanges `code` for the ID token (and the refresh token, if any) at the issuer's
/// token endpoint, with the PKCE `verifier` (and the client secret, when there is
/// one, as HTTP Basic).
async fn exchange(
    oidc: &OidcLogin,
    client: &Client,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<(String, Option<String>), (StatusCode, String)> {
    token_request(
        oidc,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ],
        "login",
    )
    .await
}

/// A session refreshed at the issuer: the new ID token, verified, and the refresh
/// token to keep.
pub(crate) struct Refreshed {
    pub id_token: String,
    /// The new ID token's `exp`.
    pub expires: i64,
    /// The rotated refresh token, or the one used when the issuer did not rotate.
    pub refresh_token: String,
}

impl OidcLogin {
    /// Refreshes the session of `sub` at issuer `issuer` with `refresh_token`
    /// (`grant_type=refresh_token`, the client authenticated as at login), and
    /// verifies the new ID token as at login and that it names the same `sub`. The
    /// error is the reason shown on the login page.
    pub(crate) async fn refresh(
        &self,
        issuer: usize,
        sub: &str,
        refresh_token: &str,
    ) -> Result<Refreshed, String> {
        let client = self
            .clients
            .get(issuer)
            .ok_or("The session's identity provider is no longer configured: log in again.")?;
        let (id_token, rotated) = token_request(
            self,
            client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
            "refresh",
        )
        .await
        .map_err(|(_, message)| message)?;
        let (_, expires, _) = client
            .issuer
            .verify_refreshed_id_token(&id_token, sub)
            .await
            .map_err(|why| {
                tracing::warn!(issuer = %client.issuer.url(), why, "console OIDC refresh refused");
                format!("Your session could not be renewed: {why}. Log in again.")
            })?;
        Ok(Refreshed {
            id_token,
            expires,
            refresh_token: rotated.unwrap_or_else(|| refresh_token.to_owned()),
        })
    }
}

/// A request to the issuer's token endpoint with `pairs` (and the client id, or the
/// client secret as HTTP Basic): the ID token and refresh token of the answer. `what`
/// names the request in messages ("login", "refresh").
async fn token_request(
    oidc: &OidcLogin,
    client: &Client,
    pairs: &[(&str, &str)],
    what: &str,
) -> Result<(String, Option<String>), (StatusCode, String)> {
    let unreachable = |e: String| {
        tracing::warn!(issuer = %client.issuer.url(), error = %e, what, "OIDC token request");
        (
            StatusCode::BAD_GATEWAY,
            format!("The identity provider cannot be reached: {e}"),
        )
    };
    let endpoints = client.issuer.endpoints().await.map_err(unreachable)?;
    let body = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.extend_pairs(pairs);
        if oidc.secret.is_none() {
            form.append_pair("client_id", &client.client_id);
        }
        form.finish()
    };
    // The issuer's own client: it trusts the issuer's CA as the JWKS fetches do.
    let mut req = client
        .issuer
        .client()
        .post(&endpoints.token)
        .timeout(EXCHANGE_TIMEOUT)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(body);
    if let Some(secret) = &oidc.secret {
        // RFC 6749 §2.3.1: both parts form-encoded before Basic.
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        req = req.basic_auth(enc(&client.client_id), Some(enc(secret)));
    }
    let resp = req.send().await.map_err(|e| unreachable(e.to_string()))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| unreachable(e.to_string()))?;
    if !status.is_success() {
        let message = match serde_json::from_slice::<OAuthError>(&body) {
            Ok(e) => format!(
                "The identity provider refused the {what}: {}{}. Log in again.",
                e.error,
                e.error_description
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
            Err(_) => format!("The identity provider refused the {what} ({status}). Log in again."),
        };
        return Err((StatusCode::UNAUTHORIZED, message));
    }
    serde_json::from_slice::<TokenAnswer>(&body)
        .ok()
        .and_then(|a| Some((a.id_token?, a.refresh_token.filter(|t| !t.is_empty()))))
        .ok_or((
            StatusCode::BAD_GATEWAY,
            "The identity provider's answer has no ID token.".to_owned(),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_is_s256_of_the_verifier() {
        let (v, c) = pkce();
        assert_eq!(v.len(), 43);
        assert_eq!(c, URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())));
        assert_ne!(pkce().0, v);
    }

    fn login() -> OidcLogin {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        OidcLogin {
            clients: Vec::new(),
            secret: None,
            scopes: DEFAULT_SCOPES.to_owned(),
            sealing: Aes256Gcm::new(&key.into()),
        }
    }

    #[test]
    fn a_sealed_login_opens_only_unchanged_and_with_its_key() {
        let (one, other) = (login(), login());
        let flow = Flow {
            issuer: 0,
            state: "s".into(),
            nonce: "n".into(),
            redirect_uri: "https://moor.example/console/oidc/callback".into(),
            expires: 1,
            verifier: "secret-verifier".into(),
        };
        let sealed = one.seal(&flow).expect("sealed");
        assert!(!sealed.contains("secret-verifier"));
        let opened = one.open(&sealed).expect("opens");
        assert_eq!(opened.verifier, "secret-verifier");
        assert!(other.open(&sealed).is_none(), "another key opens nothing");
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(
            one.open(&URL_SAFE_NO_PAD.encode(bytes)).is_none(),
            "tampered"
        );
        assert!(one.open("not-base64!").is_none());
        let shared = [7u8; 32];
        let (a, b) = (
            login().with_sealing_key(&shared),
            login().with_sealing_key(&shared),
        );
        assert!(
            b.open(&a.seal(&flow).unwrap()).is_some(),
            "replicas share the key"
        );
    }
}
