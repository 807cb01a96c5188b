//! Decisions by the cluster: a `SubjectAccessReview` to kube-apiserver for each
//! question, answers cached as k8s.io/apiserver's delegating authorizer does
//! (`--authorization-webhook-cache-authorized-ttl` and `-unauthorized-ttl`, 10 s
//! each; a failed call is not cached). Two things are decided here without asking,
//! as there: members of `system:masters` may do anything, and `/healthz`, `/readyz`
//! and `/livez` (non-resource paths) are open to all.
//!
//! The registry's questions (`get imagestreams/layers`, ...) are asked the same way,
//! so the cluster's RBAC decides who pulls and pushes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;

use moor_api::authz::{self, Decision, names};

use super::cache::TtlCache;
use crate::auth::Authorizer;
use crate::clock::Clock;

/// Why a SubjectAccessReview gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum SubjectAccessReviewError {
    #[error("SubjectAccessReview: {0}")]
    Call(#[source] kube::Error),
    #[error("SubjectAccessReview spec: {0}")]
    Encode(#[source] serde_json::Error),
}

/// How long answers are kept, and what is decided without asking.
#[derive(Clone, Debug)]
pub struct SarOptions {
    /// Allowed answers are kept this long.
    pub allow_ttl: Duration,
    /// Refused answers (denied or no opinion) are kept this long.
    pub deny_ttl: Duration,
    /// Non-resource paths anyone may get (`/p` exactly, or `/p/*` a prefix).
    pub always_allow_paths: Vec<String>,
    /// Groups whose members may do anything.
    pub always_allow_groups: Vec<String>,
}

impl Default for SarOptions {
    /// k8s.io/apiserver's `DelegatingAuthorizationOptions` defaults.
    fn default() -> Self {
        SarOptions {
            allow_ttl: Duration::from_secs(10),
            deny_ttl: Duration::from_secs(10),
            always_allow_paths: ["/healthz", "/readyz", "/livez"].map(String::from).into(),
            always_allow_groups: vec![names::SYSTEM_MASTERS.to_owned()],
        }
    }
}

struct Inner {
    client: kube::Client,
    options: SarOptions,
    cache: TtlCache<Decision>,
}

/// The cluster's RBAC (or whatever authorizes there), through SubjectAccessReview.
#[derive(Clone)]
pub struct SubjectAccessReviewAuthorizer(Arc<Inner>);

/// The review spec of a question.
pub fn spec(attrs: &authz::Attributes) -> SubjectAccessReviewSpec {
    let user = &attrs.user;
    let mut spec = SubjectAccessReviewSpec {
        user: Some(user.name.clone()),
        groups: Some(user.groups.clone()),
        uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
        extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
        ..Default::default()
    };
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    match &attrs.request {
        authz::Request::Resource(r) => {
            spec.resource_attributes = Some(ResourceAttributes {
                verb: Some(attrs.verb.clone()),
                group: Some(r.api_group.clone()),
                resource: some(&r.resource),
                subresource: some(&r.subresource),
                namespace: some(&r.namespace),
                name: some(&r.name),
                ..Default::default()
            });
        }
        authz::Request::NonResource(r) => {
            spec.non_resource_attributes = Some(NonResourceAttributes {
                path: Some(r.path.clone()),
                verb: Some(attrs.verb.clone()),
            });
        }
    }
    spec
}

fn path_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

impl SubjectAccessReviewAuthorizer {
    /// Asks the cluster `client` talks to; answers kept on `clock`.
    pub fn new(client: kube::Client, options: SarOptions, clock: Arc<dyn Clock>) -> Self {
        SubjectAccessReviewAuthorizer(Arc::new(Inner {
            client,
            options,
            cache: TtlCache::new(clock),
        }))
    }

    /// What is decided without asking (always-allowed groups and paths).
    fn local(&self, attrs: &authz::Attributes) -> Option<Decision> {
        let o = &self.0.options;
        if let Some(g) = o
            .always_allow_groups
            .iter()
            .find(|g| attrs.user.in_group(g))
        {
            return Some(Decision::Allow {
                reason: format!("always allowed group {g:?}"),
            });
        }
        if let authz::Request::NonResource(r) = &attrs.request
            && o.always_allow_paths
                .iter()
                .any(|p| path_matches(p, &r.path))
        {
            return Some(Decision::Allow {
                reason: "always allowed path".into(),
            });
        }
        None
    }

    fn key(spec: &SubjectAccessReviewSpec) -> Result<[u8; 32], SubjectAccessReviewError> {
        let bytes = serde_json::to_vec(spec).map_err(SubjectAccessReviewError::Encode)?;
        Ok(TtlCache::<()>::key(&bytes))
    }

    /// The cluster's answer to `attrs`, asked now and cached.
    pub async fn review(
        &self,
        attrs: &authz::Attributes,
    ) -> Result<Decision, SubjectAccessReviewError> {
        let spec = spec(attrs);
        let key = Self::key(&spec)?;
        let review = SubjectAccessReview {
            spec,
            ..Default::default()
        };
        let api = kube::Api::<SubjectAccessReview>::all(self.0.client.clone());
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(SubjectAccessReviewError::Call)?;
        let status = answer.status.unwrap_or_default();
        let reason = status.reason.unwrap_or_default();
        let (decision, ttl) = if status.allowed {
            (Decision::Allow { reason }, self.0.options.allow_ttl)
        } else if status.denied == Some(true) {
            (Decision::Deny { reason }, self.0.options.deny_ttl)
        } else {
            (Decision::NoOpinion { reason }, self.0.options.deny_ttl)
        };
        self.0.cache.insert(key, decision.clone(), ttl);
        Ok(decision)
    }

    fn cached(&self, attrs: &authz::Attributes) -> Option<Decision> {
        self.local(attrs).or_else(|| {
            let key = Self::key(&spec(attrs)).ok()?;
            self.0.cache.get(&key)
        })
    }
}

#[async_trait]
impl Authorizer for SubjectAccessReviewAuthorizer {
    async fn authorize(&self, attrs: &authz::Attributes) -> Decision {
        if let Some(decision) = self.cached(attrs) {
            return decision;
        }
        self.review(attrs).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not ask the cluster for a decision");
            Decision::NoOpinion {
                reason: format!("error contacting the cluster: {e}"),
            }
        })
    }

    /// The cached answer; on a miss, the review is started in the background, so
    /// that the caller's retry finds the answer (see `auth::Authorizer`).
    fn authorize_now(&self, attrs: &authz::Attributes) -> Option<Decision> {
        let decision = self.cached(attrs);
        if decision.is_none()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let (me, attrs) = (self.clone(), attrs.clone());
            runtime.spawn(async move {
                if let Err(e) = me.review(&attrs).await {
                    tracing::warn!(error = %e, "could not ask the cluster for a decision");
                }
            });
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_carries_the_user_and_the_question() {
        let mut user = authz::UserInfo::new("alice", ["dev"]);
        user.extra.insert("scopes".into(), vec!["a".into()]);
        let attrs = authz::Attributes::resource(
            user,
            "get",
            authz::ResourceAttributes::new("image.openshift.io", "imagestreams")
                .subresource("layers")
                .namespace("ns")
                .name("is"),
        );
        let spec = serde_json::to_value(spec(&attrs)).unwrap();
        assert_eq!(
            spec,
            serde_json::json!({
                "extra": {"scopes": ["a"]},
                "groups": ["dev"],
                "resourceAttributes": {"group": "image.openshift.io", "name": "is",
                    "namespace": "ns", "resource": "imagestreams", "subresource": "layers",
                    "verb": "get"},
                "user": "alice"
            })
        );
        assert!(path_matches("/healthz", "/healthz"));
        assert!(!path_matches("/healthz", "/healthz/x"));
        assert!(path_matches("/openapi/*", "/openapi/v3"));
    }
}
