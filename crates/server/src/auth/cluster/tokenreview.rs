//! Bearer tokens checked by the cluster: a `TokenReview` to kube-apiserver, its
//! answer cached (k8s.io/apiserver's delegating authenticator: `--authentication-
//! token-webhook-cache-ttl`, 10 s, for both authenticated and unauthenticated
//! answers; a failed call is not cached, so the next request asks again).
//!
//! Concurrent requests with the same uncached token wait for one review (kube's
//! cached token authenticator does the same): a registry client pulling layers in
//! parallel costs the cluster one TokenReview.
//!
//! Registry clients, the moor CLI and webhook callers present the cluster's tokens
//! (user and ServiceAccount tokens) directly; the aggregator's proxied requests
//! carry no token (see `requestheader`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::PostParams;

use moor_api::authz::names;
use moor_apimachinery::resource::UserInfo;

use super::cache::TtlCache;
use crate::auth::Authenticator;
use crate::clock::Clock;

/// k8s.io/apiserver's default TTL of cached TokenReview answers.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(10);

/// Why a TokenReview gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum TokenReviewError {
    #[error("TokenReview: {0}")]
    Call(#[source] kube::Error),
}

/// A review in flight, shared by the requests that wait for it.
type InFlight = Shared<BoxFuture<'static, Result<Option<UserInfo>, String>>>;

/// The cluster's tokens, through TokenReview.
pub struct TokenReviewAuthenticator {
    client: kube::Client,
    ttl: Duration,
    cache: TtlCache<Option<UserInfo>>,
    in_flight: Mutex<HashMap<[u8; 32], InFlight>>,
}

impl TokenReviewAuthenticator {
    /// Asks the cluster `client` talks to; answers kept for `ttl` on `clock`.
    pub fn new(client: kube::Client, ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        TokenReviewAuthenticator {
            client,
            ttl,
            cache: TtlCache::new(clock),
            in_flight: Mutex::default(),
        }
    }

    /// The cluster's answer: the user, or `None` for a token it does not accept.
    pub async fn review(&self, token: &str) -> Result<Option<UserInfo>, TokenReviewError> {
        Self::review_with(self.client.clone(), token.to_owned()).await
    }

    async fn review_with(
        client: kube::Client,
        token: String,
    ) -> Result<Option<UserInfo>, TokenReviewError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token,
                audiences: None,
            },
            ..Default::default()
        };
        let api = kube::Api::<TokenReview>::all(client);
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(TokenReviewError::Call)?;
        let Some(status) = answer.status.filter(|s| s.authenticated == Some(true)) else {
            return Ok(None);
        };
        let Some(user) = status.user else {
            return Ok(None);
        };
        let name = user.username.unwrap_or_default();
        if name.is_empty() {
            return Ok(None);
        }
        let mut info = UserInfo::new(name, user.groups.unwrap_or_default());
        info.uid = user.uid.unwrap_or_default();
        info.extra = user.extra.unwrap_or_default();
        if !info.in_group(names::AUTHENTICATED) {
            info.groups.push(names::AUTHENTICATED.to_owned());
        }
        Ok(Some(info))
    }
}

#[async_trait]
impl Authenticator for TokenReviewAuthenticator {
    async fn authenticate(&self, token: &str) -> Option<UserInfo> {
        let key = TtlCache::<()>::key(token.as_bytes());
        if let Some(answer) = self.cache.get(&key) {
            return answer;
        }
        let review = {
            let Ok(mut in_flight) = self.in_flight.lock() else {
                return None;
            };
            in_flight
                .entry(key)
                .or_insert_with(|| {
                    Self::review_with(self.client.clone(), token.to_owned())
                        .map(|r| r.map_err(|e| e.to_string()))
                        .boxed()
                        .shared()
                })
                .clone()
        };
        let answer = review.clone().await;
        if let Ok(mut in_flight) = self.in_flight.lock()
            && in_flight.get(&key).is_some_and(|f| f.ptr_eq(&review))
        {
            in_flight.remove(&key);
        }
        match answer {
            Ok(answer) => {
                self.cache.insert(key, answer.clone(), self.ttl);
                answer
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not check a token with the cluster");
                None
            }
        }
    }
}
