//! Who is asking and whether they may: the seam every request passes.
//!
//! - [`authn`]: authenticators (the admin token, `--token-auth-file`, and more to
//!   come) turn a presented credential into a [`UserInfo`].
//! - [`Authorizer`]: decides on the request's attributes (kube's `RequestInfo`).
//!
//! Requests carry credentials as a bearer token or as the password of Basic auth (any
//! user name), as registries expect. Calls the store; knows nothing of resources.

pub mod authn;
pub mod oidc;
pub mod serviceaccount;
pub mod token_cache;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use moor_apimachinery::error::ApiError;
pub use moor_apimachinery::resource::UserInfo;

pub use authn::{
    AdminToken, AuthError, Authenticator, Authenticators, ensure_admin_token, generate_token,
    token_from_kubeconfig,
};

/// What a request asks to do (the attributes an authorizer decides on): kube's
/// `RequestInfo`, read from the method and path.
pub use moor_apimachinery::request_info::RequestInfo as Attributes;

/// Whether a user may do what it asks. Roles and namespaces plug in here later.
pub trait Authorizer: Send + Sync {
    /// `Ok(())` to allow, `Err(reason)` to refuse with 403.
    fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Result<(), String>;
}

/// Allows every authenticated user everything (the single-admin default).
pub struct AllowAuthenticated;

impl Authorizer for AllowAuthenticated {
    fn authorize(&self, _user: &UserInfo, _attrs: &Attributes) -> Result<(), String> {
        Ok(())
    }
}

/// The credential a request presents: a bearer token or a Basic password.
pub fn presented_token(req: &Request) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Some(rest.trim().to_string()),
        "basic" => {
            let raw = STANDARD.decode(rest.trim()).ok()?;
            let text = String::from_utf8(raw).ok()?;
            text.split_once(':').map(|(_, pw)| pw.to_string())
        }
        _ => None,
    }
}

/// What `req` asks to do.
pub fn request_attributes(req: &Request) -> Attributes {
    moor_apimachinery::request_info::request_info(req.method(), req.uri())
}

/// Authentication and authorization in one place.
#[derive(Clone)]
pub struct AuthLayer {
    pub authn: Arc<dyn Authenticator>,
    pub authz: Arc<dyn Authorizer>,
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The token is unknown (401).
    Unauthenticated,
    /// The user may not do this (403), and why.
    Forbidden(String),
}

impl AuthLayer {
    /// The user holding `token`, if it may do what `req` asks.
    pub async fn check(&self, token: &str, attrs: &Attributes) -> Result<UserInfo, Refusal> {
        let user = self
            .authn
            .authenticate(token)
            .await
            .ok_or(Refusal::Unauthenticated)?;
        self.authz
            .authorize(&user, attrs)
            .map_err(Refusal::Forbidden)?;
        Ok(user)
    }
}

/// Middleware: 401 without a valid credential, 403 when the authorizer refuses.
pub async fn require_auth(State(auth): State<AuthLayer>, mut req: Request, next: Next) -> Response {
    let attrs = request_attributes(&req);
    let checked = match presented_token(&req) {
        Some(token) => auth.check(&token, &attrs).await,
        None => Err(Refusal::Unauthenticated),
    };
    let user = match checked {
        Ok(user) => user,
        Err(Refusal::Unauthenticated) => return ApiError::Unauthorized.into_response(),
        Err(Refusal::Forbidden(reason)) => return ApiError::Forbidden(reason).into_response(),
    };
    req.extensions_mut().insert(user);
    next.run(req).await
}
