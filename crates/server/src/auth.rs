//! Authentication and the seam for authorization. The admin bearer token is made at
//! first start; only its SHA-256 is kept in the store. Requests carry it as a bearer
//! token or as the password of Basic auth (any user name), as registries expect.
//! Calls the store; knows nothing of resources.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use moor_store::{Store, StoreError};
use sha2::{Digest, Sha256};

use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::UserInfo;

/// Store key of the admin token's hash.
const ADMIN_TOKEN_KEY: &str = "/moor/auth/admin-token-sha256";

/// Errors of token management.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Who a request is, from its `Authorization` header.
pub trait Authenticator: Send + Sync {
    /// The user a token belongs to, or `None`.
    fn authenticate(&self, token: &str) -> Option<UserInfo>;
}

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

/// Accepts tokens whose SHA-256 matches a stored hash.
pub struct TokenHashes {
    admin: [u8; 32],
}

fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenHashes {
    /// An authenticator for the given admin token (tests).
    pub fn for_token(token: &str) -> Self {
        TokenHashes {
            admin: sha256(token),
        }
    }
}

impl Authenticator for TokenHashes {
    fn authenticate(&self, token: &str) -> Option<UserInfo> {
        // Comparing digests, not tokens, keeps the comparison's timing independent
        // of how much of the secret a guess got right.
        (sha256(token) == self.admin).then(|| UserInfo {
            name: "admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        })
    }
}

/// A new random token.
pub fn generate_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("moor_{}", hex::encode(bytes))
}

/// Makes sure an admin token exists. Returns the token to write into the kubeconfig:
/// the one in `existing` when it still matches the stored hash, else a new one
/// (whose hash replaces the old).
pub async fn ensure_admin_token(
    store: &Arc<dyn Store>,
    existing: Option<&str>,
) -> Result<(String, TokenHashes), AuthError> {
    let stored = store.get(ADMIN_TOKEN_KEY).await?;
    if let (Some(kv), Some(tok)) = (&stored, existing)
        && kv.value.as_ref() == hex::encode(sha256(tok)).as_bytes()
    {
        return Ok((tok.to_string(), TokenHashes::for_token(tok)));
    }
    let token = generate_token();
    let hash = bytes::Bytes::from(hex::encode(sha256(&token)));
    match stored {
        Some(kv) => {
            store.update(ADMIN_TOKEN_KEY, hash, kv.mod_revision).await?;
        }
        None => {
            store.create(ADMIN_TOKEN_KEY, hash).await?;
        }
    }
    Ok((token.clone(), TokenHashes::for_token(&token)))
}

/// Reads the admin token back from a kubeconfig moor wrote.
pub fn token_from_kubeconfig(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_yaml_ng::from_str(&text).ok()?;
    v.get("users")?
        .as_array()?
        .iter()
        .find_map(|u| u.pointer("/user/token")?.as_str().map(str::to_string))
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
    pub fn check(&self, token: &str, req: &Request) -> Result<UserInfo, Refusal> {
        let user = self
            .authn
            .authenticate(token)
            .ok_or(Refusal::Unauthenticated)?;
        let attrs = moor_apimachinery::request_info::request_info(req.method(), req.uri());
        self.authz
            .authorize(&user, &attrs)
            .map_err(Refusal::Forbidden)?;
        Ok(user)
    }
}

/// Middleware: 401 without a valid credential, 403 when the authorizer refuses.
pub async fn require_auth(State(auth): State<AuthLayer>, mut req: Request, next: Next) -> Response {
    let checked = match presented_token(&req) {
        Some(token) => auth.check(&token, &req),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn token_is_kept_while_it_matches_and_rotated_otherwise() {
        let store: Arc<dyn Store> = Arc::new(moor_store::MemoryStore::new());
        let (t1, authn) = ensure_admin_token(&store, None).await.unwrap();
        assert!(authn.authenticate(&t1).is_some());
        assert!(authn.authenticate("nope").is_none());
        let (t2, _) = ensure_admin_token(&store, Some(&t1)).await.unwrap();
        assert_eq!(t1, t2);
        let (t3, authn3) = ensure_admin_token(&store, Some("forged")).await.unwrap();
        assert_ne!(t3, t1);
        assert!(authn3.authenticate(&t1).is_none());
        let raw = store.get(ADMIN_TOKEN_KEY).await.unwrap().unwrap();
        assert!(
            !String::from_utf8_lossy(&raw.value).contains(&t3),
            "only the hash is stored"
        );
    }
}
