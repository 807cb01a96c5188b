//! Refreshing OIDC sessions: a session whose ID token expires within a minute (or has
//! expired) and that holds a refresh token is renewed at the issuer on its next
//! request, before the request is served. The new ID token is verified as at login
//! (signature, issuer, audience, expiry, claim mappings, the same `sub`) and accepted
//! by the API (in cluster mode, the cluster's TokenReview) as the same user; it then
//! becomes the session's bearer token, and the session lasts [`LIFETIME`](super::session::LIFETIME)
//! from the refresh. A failed refresh (revoked, `invalid_grant`, issuer down, another
//! user) ends the session and shows the login page with the reason.
//!
//! One refresh per session at a time in this process ([`Sessions::flight`]); the
//! others wait and use the session as the first left it.
//!
//! Calls [`super::oidc`] (the issuer), the API (whoami) and [`super::session`].
//!
//! [`Sessions::flight`]: super::session::Sessions::flight

use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use moor_store::StoreError;

use super::Console;
use super::session::{COOKIE, Live};

/// Where a request's session extractor leaves the session cookie to set again after
/// a refresh (the cookie's `Max-Age` then counts from the refresh, as the session's
/// lifetime does).
#[derive(Clone, Default)]
pub(crate) struct Renewed(Arc<Mutex<Option<String>>>);

impl Renewed {
    /// The answer sets `cookie` (a `Set-Cookie` value).
    pub(crate) fn set(&self, cookie: String) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(cookie);
    }
}

/// Middleware: gives each request a [`Renewed`] and appends its cookie to the answer,
/// unless the answer sets the session cookie itself (a logout clears it).
pub(crate) async fn renew_cookie(mut req: Request, next: Next) -> Response {
    let renewed = Renewed::default();
    req.extensions_mut().insert(renewed.clone());
    let mut resp = next.run(req).await;
    let cookie = renewed.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    let prefix = format!("{COOKIE}=");
    let sets_it = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.as_bytes().starts_with(prefix.as_bytes()));
    if let Some(v) = cookie.filter(|_| !sets_it).and_then(|c| c.parse().ok()) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// Why a session could not be refreshed.
pub(crate) enum RefreshError {
    /// The session ended (it is removed): the reason shown on the login page.
    Ended(String),
    /// The store failed: the session is kept.
    Store(StoreError),
}

/// Session `id` with an ID token good for more than [`REFRESH_BEFORE`](super::session::REFRESH_BEFORE):
/// refreshed here unless another request of this process just did.
pub(crate) async fn refresh(console: &Console, id: &str) -> Result<Live, RefreshError> {
    let flight = console.sessions.flight(id);
    let _one = flight.lock().await;
    let live = match console.sessions.get(id).await {
        Ok(Some(live)) => live,
        Ok(None) => {
            return Err(RefreshError::Ended(
                "Your session has ended: log in again.".into(),
            ));
        }
        Err(e) => return Err(RefreshError::Store(e)),
    };
    if !live.needs_refresh() {
        return Ok(live);
    }
    match renew(console, id, &live).await {
        Ok(live) => Ok(live),
        Err(RefreshError::Ended(why)) => {
            if let Err(e) = console.sessions.remove(id).await {
                tracing::warn!(error = %e, "deleting a console session whose refresh failed");
            }
            Err(RefreshError::Ended(why))
        }
        Err(e) => Err(e),
    }
}

/// Refreshes `live` at its issuer and stores the new tokens.
async fn renew(console: &Console, id: &str, live: &Live) -> Result<Live, RefreshError> {
    let ended = |why: String| {
        RefreshError::Ended(format!(
            "Your session expired and could not be renewed. {why}"
        ))
    };
    let (Some(oidc), Some(r)) = (console.oidc.as_ref(), live.refresh.as_ref()) else {
        return Err(ended(
            "No identity provider is configured: log in again.".into(),
        ));
    };
    let new = oidc
        .refresh(r.issuer, &r.sub, &r.token)
        .await
        .map_err(ended)?;
    // As at login, the API (the cluster's, in cluster mode) must accept the token, and
    // as the same user.
    match console.api.whoami(&new.id_token).await {
        Ok(user) if user == live.user => {}
        Ok(user) => {
            tracing::warn!(was = %live.user, now = %user, "console OIDC refresh: another user");
            return Err(ended(format!(
                "The renewed token is for {user}, not {}: log in again.",
                live.user
            )));
        }
        Err(e) => {
            tracing::warn!(user = %live.user, error = %e, "console OIDC refresh: the API refused the renewed token");
            return Err(ended(format!(
                "The API does not accept the renewed token ({e}): log in again."
            )));
        }
    }
    match console
        .sessions
        .refreshed(
            id,
            live.revision,
            &new.id_token,
            new.expires,
            &new.refresh_token,
        )
        .await
    {
        Ok(true) => {}
        // Another replica changed the session meanwhile: use what it stored.
        Ok(false) => {}
        Err(e) => return Err(RefreshError::Store(e)),
    }
    tracing::info!(user = %live.user, "console OIDC session refreshed");
    match console.sessions.get(id).await {
        Ok(Some(live)) => Ok(live),
        Ok(None) => Err(RefreshError::Ended(
            "Your session has ended: log in again.".into(),
        )),
        Err(e) => Err(RefreshError::Store(e)),
    }
}
