//! OIDC login for the console: the authorization-code flow with PKCE (S256) against
//! the `jwt[]` issuers of `--authentication-config`, ending in the same session as
//! the token login, holding the ID token (which the API's JWT authenticator accepts).
//!
//! `/console/oidc/start` makes a one-use login record in the store (state, nonce, the
//! PKCE verifier sealed, the redirect URI), bound to the browser by a short-lived
//! HttpOnly cookie holding the record's id (SameSite=Lax: it must come back on the
//! identity provider's redirect), and sends the browser to the issuer.
//! `/console/oidc/callback` takes the record (deleting it: a replayed callback finds
//! nothing), checks `state`, exchanges the code with the verifier, verifies the ID
//! token with the API's own [`JwtIssuer`] (signature, issuer, audience, expiry, claim
//! mappings) and its `nonce`, and starts the session. The record lives in the store,
//! so the callback may reach another replica than the start.
//!
//! Written by hand on reqwest rather than with `oauth2`/`openidconnect`: neither is in
//! the lock, `openidconnect` would bring a second JOSE stack beside jsonwebtoken, and
//! the ID token must be checked by exactly the code that checks the API's bearer
//! tokens. The flow itself is one redirect and one form POST.
//!
//! Calls the store (login records), the issuer (discovery, token endpoint) and
//! [`super::session`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use maud::html;
use moor_store::StoreError;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::session::{
    self, Tls, cookie, now, open, random_hex, record_key, same, seal, set_cookie, set_cookie_with,
    sweep,
};
use super::{Console, Crumb, layout};
use crate::auth::oidc::{JwtAuthenticators, JwtIssuer};

/// The cookie naming the browser's login record.
const FLOW_COOKIE: &str = "moor-console-oidc";
/// Where login records live in the store.
const LOGINS_PREFIX: &str = "/moor/console/logins/";
/// How long a browser has to come back from the identity provider.
const FLOW_LIFETIME: Duration = Duration::from_secs(600);
/// At most this many pending logins (a bound on the store).
const MAX_LOGINS: usize = 10_000;
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
        Ok(Some(OidcLogin {
            clients,
            secret,
            scopes: options
                .scopes
                .clone()
                .unwrap_or_else(|| DEFAULT_SCOPES.to_owned()),
        }))
    }

    /// The issuers' names, as the login page offers them.
    pub(crate) fn labels(&self) -> Vec<String> {
        self.clients
            .iter()
            .map(|c| c.issuer.url().to_owned())
            .collect()
    }
}

/// A pending login, as stored.
#[derive(Serialize, Deserialize)]
struct Flow {
    issuer: usize,
    state: String,
    nonce: String,
    redirect_uri: String,
    /// Seconds since the epoch.
    expires: i64,
    /// The PKCE verifier, sealed with the cookie's id (see [`session::seal`]).
    verifier_nonce: String,
    verifier_sealed: String,
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

#[derive(Deserialize)]
pub(crate) struct StartQuery {
    #[serde(default)]
    issuer: usize,
}

/// `GET /console/oidc/start?issuer=N`: a login record and the redirect to the issuer.
pub(crate) async fn start(
    State(console): State<Console>,
    Tls(secure): Tls,
    headers: HeaderMap,
    Query(q): Query<StartQuery>,
) -> Response {
    let Some(oidc) = console.oidc.clone() else {
        return (StatusCode::NOT_FOUND, "no OIDC issuer is configured").into_response();
    };
    let Some(client) = oidc.clients.get(q.issuer) else {
        return failed(&console, secure, StatusCode::BAD_REQUEST, "No such issuer.");
    };
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['/', '?', '#', '@']))
    else {
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
    let store = console.server.store.clone();
    let pending = sweep(store.as_ref(), LOGINS_PREFIX, |v| {
        serde_json::from_slice::<Flow>(v).ok().map(|f| f.expires)
    })
    .await;
    match pending {
        Ok(n) if n < MAX_LOGINS => {}
        Ok(_) => {
            return failed(
                &console,
                secure,
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many logins are under way: try again later.",
            );
        }
        Err(e) => return store_failed(&console, secure, e),
    }
    let scheme = if secure { "https" } else { "http" };
    let redirect_uri = format!("{scheme}://{host}/console/oidc/callback");
    let id = random_hex();
    let key = record_key(LOGINS_PREFIX, &id);
    let (verifier, challenge) = pkce();
    let Some((verifier_nonce, verifier_sealed)) = seal(&id, &key, verifier.as_bytes()) else {
        return failed(
            &console,
            secure,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Sealing the login failed.",
        );
    };
    let flow = Flow {
        issuer: q.issuer,
        state: random_hex(),
        nonce: random_hex(),
        redirect_uri,
        expires: now() + FLOW_LIFETIME.as_secs() as i64,
        verifier_nonce,
        verifier_sealed,
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
    let value = serde_json::to_vec(&flow).unwrap_or_default();
    if let Err(e) = store.create(&key, value.into()).await {
        return store_failed(&console, secure, e);
    }
    (
        [(
            header::SET_COOKIE,
            set_cookie_with(
                FLOW_COOKIE,
                &id,
                secure,
                Some(FLOW_LIFETIME),
                cookie::SameSite::Lax,
            ),
        )],
        Redirect::to(url.as_str()),
    )
        .into_response()
}

fn store_failed(console: &Console, secure: bool, e: StoreError) -> Response {
    tracing::warn!(error = %e, "console login record");
    failed(
        console,
        secure,
        StatusCode::SERVICE_UNAVAILABLE,
        "The login could not be recorded: the store failed. Try again.",
    )
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
    Tls(secure): Tls,
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
    let Some(id) = cookie(&headers, FLOW_COOKIE) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "This login has expired or was started in another browser: log in again.",
        );
    };
    // Take the record: whatever happens next, it is used once.
    let store = console.server.store.clone();
    let key = record_key(LOGINS_PREFIX, &id);
    let flow = match store.get(&key).await {
        Ok(Some(kv)) => match store.delete(&key, Some(kv.mod_revision)).await {
            Ok(_) => serde_json::from_slice::<Flow>(&kv.value).ok(),
            Err(StoreError::NotFound(_) | StoreError::Conflict { .. }) => None,
            Err(e) => return store_failed(&console, secure, e),
        },
        Ok(None) => None,
        Err(e) => return store_failed(&console, secure, e),
    };
    let Some(flow) = flow else {
        return fail(
            StatusCode::BAD_REQUEST,
            "This login was already used or has expired: log in again.",
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
    let Some(verifier) = open(&id, &key, &flow.verifier_nonce, &flow.verifier_sealed)
        .and_then(|v| String::from_utf8(v).ok())
    else {
        return fail(
            StatusCode::BAD_REQUEST,
            "This login's record does not open.",
        );
    };
    let id_token = match exchange(&oidc, client, code, &flow.redirect_uri, &verifier).await {
        Ok(t) => t,
        Err((status, message)) => return fail(status, &message),
    };
    let (user, exp) = match client.issuer.verify_id_token(&id_token, &flow.nonce).await {
        Ok(v) => v,
        Err(why) => {
            tracing::warn!(issuer = %client.issuer.url(), why, "console OIDC login refused");
            return fail(
                StatusCode::UNAUTHORIZED,
                &format!("The identity provider's answer is not accepted: {why}."),
            );
        }
    };
    let session = match session::start_session(&console, &id_token, Some(exp)).await {
        Ok(id) => id,
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

/// Exchanges `code` for the ID token at the issuer's token endpoint, with the PKCE
/// `verifier` (and the client secret, when there is one, as HTTP Basic).
async fn exchange(
    oidc: &OidcLogin,
    client: &Client,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<String, (StatusCode, String)> {
    let unreachable = |e: String| {
        tracing::warn!(issuer = %client.issuer.url(), error = %e, "OIDC code exchange");
        (
            StatusCode::BAD_GATEWAY,
            format!("The identity provider cannot be reached: {e}"),
        )
    };
    let endpoints = client.issuer.endpoints().await.map_err(unreachable)?;
    let body = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_verifier", verifier);
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
                "The identity provider refused the login: {}{}. Log in again.",
                e.error,
                e.error_description
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
            Err(_) => format!("The identity provider refused the login ({status}). Log in again."),
        };
        return Err((StatusCode::UNAUTHORIZED, message));
    }
    serde_json::from_slice::<TokenAnswer>(&body)
        .ok()
        .and_then(|a| a.id_token)
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
}
