//! Registry authentication, the way container clients expect it: a request without
//! valid credentials gets 401 with `WWW-Authenticate: Bearer realm=".../openshift/token"`;
//! the client asks that endpoint for a token with Basic auth (any user name, moor's
//! token as password) and gets moor's token back, which it then sends as a bearer
//! token. Basic auth on `/v2/` requests works as well. Without credentials the token
//! endpoint hands out an anonymous token, which only pulls, and only when
//! `--registry-anonymous-pull` is set. Calls the API's authenticator.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Registry;
use super::error::{Code, RegistryError};
use crate::auth::Refusal;
use moor_apimachinery::resource::UserInfo;

/// The token endpoint (OpenShift's registry serves the same path).
pub const TOKEN_PATH: &str = "/openshift/token";
/// The token the endpoint gives to clients without credentials.
pub const ANONYMOUS_TOKEN: &str = "anonymous";
/// What the token endpoint says a token lasts (moor's tokens do not expire).
const TOKEN_LIFETIME_SECS: u64 = 24 * 3600;

/// Who is calling the registry.
#[derive(Clone, Debug)]
pub enum Caller {
    User(UserInfo),
    Anonymous,
}

fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// The challenge for a request to `path` (with the repository's pull/push scope).
fn challenge(reg: &Registry, headers: &HeaderMap, path: &str, method: &Method) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['"', '\\']))
        .unwrap_or(&reg.config.hostname);
    let scheme = if reg.config.tls { "https" } else { "http" };
    let mut value = format!("Bearer realm=\"{scheme}://{host}{TOKEN_PATH}\",service=\"{host}\"");
    let parts: Vec<&str> = path.trim_start_matches("/v2/").split('/').collect();
    if parts.len() >= 3 && !parts[0].starts_with('_') {
        let actions = if is_read(method) { "pull" } else { "pull,push" };
        value.push_str(&format!(
            ",scope=\"repository:{}/{}:{actions}\"",
            parts[0], parts[1]
        ));
    }
    value
}

/// 401 UNAUTHORIZED with the challenge.
fn unauthorized(reg: &Registry, req: &Request, message: &str) -> Response {
    RegistryError::new(Code::Unauthorized, message)
        .header(
            header::WWW_AUTHENTICATE,
            &challenge(reg, req.headers(), req.uri().path(), req.method()),
        )
        .into_response()
}

/// Middleware on `/v2/`: a valid token or Basic password, or, with anonymous pulls
/// allowed, a read without one (except `/v2/` itself, which always challenges so that
/// clients holding credentials send them).
pub async fn require(State(reg): State<Arc<Registry>>, mut req: Request, next: Next) -> Response {
    let presented = crate::auth::presented_token(&req);
    let caller = match presented.as_deref() {
        Some(ANONYMOUS_TOKEN) | None => {
            let base = matches!(req.uri().path(), "/v2/" | "/v2");
            let anonymous_ok = reg.config.anonymous_pull
                && is_read(req.method())
                && (!base || presented.is_some());
            if !anonymous_ok {
                let message = if presented.is_some() && is_read(req.method()) {
                    "anonymous pulls are not allowed (moor serve --registry-anonymous-pull)"
                } else {
                    "authentication required"
                };
                return unauthorized(&reg, &req, message);
            }
            Caller::Anonymous
        }
        Some(token) => match reg
            .auth
            .check(token, &crate::auth::request_attributes(&req))
            .await
        {
            Ok(user) => Caller::User(user),
            Err(Refusal::Forbidden(reason)) => {
                return RegistryError::new(Code::Denied, reason).into_response();
            }
            Err(Refusal::Unauthenticated) => {
                return unauthorized(&reg, &req, "invalid credentials");
            }
        },
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// `GET /openshift/token`: moor's token for valid Basic credentials (or the bearer
/// token presented), the anonymous token without credentials, 401 for wrong ones.
pub async fn token(State(reg): State<Arc<Registry>>, req: Request) -> Response {
    let token = match crate::auth::presented_token(&req) {
        None => ANONYMOUS_TOKEN.to_string(),
        Some(t) if t == ANONYMOUS_TOKEN => t,
        Some(t) => {
            if reg.auth.authn.authenticate(&t).await.is_none() {
                return RegistryError::new(Code::Unauthorized, "invalid credentials")
                    .status(StatusCode::UNAUTHORIZED)
                    .into_response();
            }
            t
        }
    };
    let issued = jiff::Timestamp::now().to_string();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        json!({
            "token": token,
            "access_token": token,
            "expires_in": TOKEN_LIFETIME_SECS,
            "issued_at": issued,
        })
        .to_string(),
    )
        .into_response()
}
