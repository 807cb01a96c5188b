//! Authenticators: a presented credential (a bearer token, or the password of Basic
//! auth) becomes a [`UserInfo`]. [`Authenticators`] asks each in turn, as
//! kube-apiserver's union authenticator does; the first that knows the token wins.
//!
//! The admin token is made at first start; only its SHA-256 is kept in the store, and
//! its holder is `admin` in `system:masters`.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use moor_store::{Store, StoreError};
use sha2::{Digest, Sha256};

use moor_api::authz::names;
use moor_apimachinery::resource::UserInfo;

/// Errors of token management.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Turns a token into the user it belongs to.
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// The user `token` belongs to, or `None` when this authenticator does not know it
    /// (or it is invalid: expired, wrongly signed, for another audience).
    async fn authenticate(&self, token: &str) -> Option<UserInfo>;
}

/// Several authenticators, asked in order (kube's union authenticator).
#[derive(Clone, Default)]
pub struct Authenticators(Vec<Arc<dyn Authenticator>>);

impl Authenticators {
    /// With one more authenticator, asked after the others.
    pub fn with(mut self, authenticator: Arc<dyn Authenticator>) -> Self {
        self.0.push(authenticator);
        self
    }
}

#[async_trait]
impl Authenticator for Authenticators {
    async fn authenticate(&self, token: &str) -> Option<UserInfo> {
        for authenticator in &self.0 {
            if let Some(user) = authenticator.authenticate(token).await {
                return Some(user);
            }
        }
        None
    }
}

/// The admin token: accepted when its SHA-256 matches the stored hash.
pub struct AdminToken {
    hash: [u8; 32],
}

fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl AdminToken {
    /// An authenticator for the given admin token.
    pub fn for_token(token: &str) -> Self {
        AdminToken {
            hash: sha256(token),
        }
    }
}

#[async_trait]
impl Authenticator for AdminToken {
    async fn authenticate(&self, token: &str) -> Option<UserInfo> {
        // Comparing digests, not tokens, keeps the comparison's timing independent
        // of how much of the secret a guess got right.
        (sha256(token) == self.hash)
            .then(|| UserInfo::new("admin", [names::SYSTEM_MASTERS, names::AUTHENTICATED]))
    }
}

/// `--token-auth-file`: kube-apiserver's static tokens, kept as hashes.
#[async_trait]
impl Authenticator for moor_api::authz::tokenfile::TokenFile {
    async fn authenticate(&self, token: &str) -> Option<UserInfo> {
        let mut user = moor_api::authz::tokenfile::TokenFile::authenticate(self, token)?.clone();
        if !user.in_group(names::AUTHENTICATED) {
            user.groups.push(names::AUTHENTICATED.to_owned());
        }
        Some(user)
    }
}

/// Store key of the admin token's hash.
const ADMIN_TOKEN_KEY: &str = "/moor/auth/admin-token-sha256";

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
) -> Result<(String, AdminToken), AuthError> {
    let stored = store.get(ADMIN_TOKEN_KEY).await?;
    if let (Some(kv), Some(tok)) = (&stored, existing)
        && kv.value.as_ref() == hex::encode(sha256(tok)).as_bytes()
    {
        return Ok((tok.to_string(), AdminToken::for_token(tok)));
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
    Ok((token.clone(), AdminToken::for_token(&token)))
}

/// Makes `token` the admin token (the replicas' shared one): stores its hash unless
/// the store already holds it.
pub async fn set_admin_token(store: &Arc<dyn Store>, token: &str) -> Result<AdminToken, AuthError> {
    let hash = bytes::Bytes::from(hex::encode(sha256(token)));
    loop {
        let written = match store.get(ADMIN_TOKEN_KEY).await? {
            Some(kv) if kv.value == hash => break,
            Some(kv) => {
                store
                    .update(ADMIN_TOKEN_KEY, hash.clone(), kv.mod_revision)
                    .await
            }
            None => store.create(ADMIN_TOKEN_KEY, hash.clone()).await,
        };
        match written {
            Ok(_) => break,
            // Another replica wrote it meanwhile: look again.
            Err(StoreError::Conflict { .. } | StoreError::AlreadyExists(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(AdminToken::for_token(token))
}

/// Whether `token` is the admin token the store holds the hash of.
pub async fn is_admin_token(store: &Arc<dyn Store>, token: &str) -> Result<bool, AuthError> {
    let hash = hex::encode(sha256(token));
    Ok(store
        .get(ADMIN_TOKEN_KEY)
        .await?
        .is_some_and(|kv| kv.value.as_ref() == hash.as_bytes()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn token_is_kept_while_it_matches_and_rotated_otherwise() {
        let store: Arc<dyn Store> = Arc::new(moor_store::MemoryStore::new());
        let (t1, authn) = ensure_admin_token(&store, None).await.unwrap();
        assert!(authn.authenticate(&t1).await.is_some());
        assert!(authn.authenticate("nope").await.is_none());
        let (t2, _) = ensure_admin_token(&store, Some(&t1)).await.unwrap();
        assert_eq!(t1, t2);
        let (t3, authn3) = ensure_admin_token(&store, Some("forged")).await.unwrap();
        assert_ne!(t3, t1);
        assert!(authn3.authenticate(&t1).await.is_none());
        let raw = store.get(ADMIN_TOKEN_KEY).await.unwrap().unwrap();
        assert!(
            !String::from_utf8_lossy(&raw.value).contains(&t3),
            "only the hash is stored"
        );
    }
}
