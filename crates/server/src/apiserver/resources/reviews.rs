//! The review APIs tools ask before they act, answered and never stored:
//! - `authorization.k8s.io/v1` SelfSubjectAccessReview (`kubectl auth can-i`),
//!   SelfSubjectRulesReview (`can-i --list`), SubjectAccessReview and
//!   LocalSubjectAccessReview (another user's rights);
//! - `authentication.k8s.io/v1` SelfSubjectReview (`kubectl auth whoami`) and
//!   TokenReview (whose token is this).
//!
//! They ask the same authorizer and authenticators as every request.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::{
    SelfSubjectReview, SelfSubjectReviewStatus, TokenReview, TokenReviewStatus,
    UserInfo as KubeUserInfo,
};
use k8s_openapi::api::authorization::v1::{
    LocalSubjectAccessReview, NonResourceAttributes, NonResourceRule, ResourceAttributes,
    ResourceRule, SelfSubjectAccessReview, SelfSubjectRulesReview, SubjectAccessReview,
    SubjectAccessReviewStatus, SubjectRulesReviewStatus,
};
use moor_api::authz::{self, UserInfo};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::auth::rbac::Policy;
use crate::auth::{Authenticator, Authorizer};
use moor_apimachinery::codec::decode_as;
use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::*;
use moor_apimachinery::table::TableDef;

/// Which review (named as the kinds are).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
enum Kind {
    SelfSubjectAccessReview,
    SelfSubjectRulesReview,
    SubjectAccessReview,
    LocalSubjectAccessReview,
    SelfSubjectReview,
    TokenReview,
}

const AUTHORIZATION: &str = "authorization.k8s.io";
const AUTHENTICATION: &str = "authentication.k8s.io";

impl Kind {
    fn def(self) -> ResourceDef {
        let (group, kind, plural, namespaced) = match self {
            Kind::SelfSubjectAccessReview => (
                AUTHORIZATION,
                "SelfSubjectAccessReview",
                "selfsubjectaccessreviews",
                false,
            ),
            Kind::SelfSubjectRulesReview => (
                AUTHORIZATION,
                "SelfSubjectRulesReview",
                "selfsubjectrulesreviews",
                false,
            ),
            Kind::SubjectAccessReview => (
                AUTHORIZATION,
                "SubjectAccessReview",
                "subjectaccessreviews",
                false,
            ),
            Kind::LocalSubjectAccessReview => (
                AUTHORIZATION,
                "LocalSubjectAccessReview",
                "localsubjectaccessreviews",
                true,
            ),
            Kind::SelfSubjectReview => (
                AUTHENTICATION,
                "SelfSubjectReview",
                "selfsubjectreviews",
                false,
            ),
            Kind::TokenReview => (AUTHENTICATION, "TokenReview", "tokenreviews", false),
        };
        ResourceDef {
            group,
            version: "v1",
            kind,
            list_kind: "",
            plural,
            singular: "",
            short_names: &[],
            categories: &[],
            namespaced,
            verbs: &["create"],
            subresources: &[],
            selectable_fields: &[],
        }
    }
}

/// One review resource.
pub struct Review {
    kind: Kind,
    def: ResourceDef,
    policy: Arc<Policy>,
    authz: Arc<dyn Authorizer>,
    authn: Arc<dyn Authenticator>,
}

fn bad_request(message: String) -> ApiError {
    ApiError::BadRequest(message)
}

fn decode<T: DeserializeOwned + Serialize>(
    def: &ResourceDef,
    mut body: Value,
) -> Result<(Value, Vec<String>), ApiError> {
    if let Some(obj) = body.as_object_mut() {
        obj.insert("apiVersion".into(), def.api_version().into());
        obj.insert("kind".into(), def.kind.into());
    }
    decode_as::<T>(body).map_err(|e| bad_request(format!("the request is not a {}: {e}", def.kind)))
}

fn parse<T: DeserializeOwned>(obj: Value) -> Result<T, ApiError> {
    serde_json::from_value(obj).map_err(|e| bad_request(e.to_string()))
}

fn encode<T: Serialize>(mut review: T, clear: impl FnOnce(&mut T)) -> Result<Value, ApiError> {
    clear(&mut review);
    serde_json::to_value(&review).map_err(ApiError::internal)
}

/// The question a review's `spec` asks for `user`.
fn question(
    user: UserInfo,
    resource: Option<&ResourceAttributes>,
    non_resource: Option<&NonResourceAttributes>,
) -> Result<authz::Attributes, ApiError> {
    if let Some(r) = resource {
        return Ok(authz::Attributes::resource(
            user,
            r.verb.clone().unwrap_or_default(),
            authz::ResourceAttributes {
                api_group: r.group.clone().unwrap_or_default(),
                resource: r.resource.clone().unwrap_or_default(),
                subresource: r.subresource.clone().unwrap_or_default(),
                namespace: r.namespace.clone().unwrap_or_default(),
                name: r.name.clone().unwrap_or_default(),
            },
        ));
    }
    if let Some(n) = non_resource {
        return Ok(authz::Attributes::non_resource(
            user,
            n.verb.clone().unwrap_or_default(),
            n.path.clone().unwrap_or_default(),
        ));
    }
    Err(bad_request(
        "spec: exactly one of resourceAttributes or nonResourceAttributes must be set".into(),
    ))
}

fn access_status(decision: authz::Decision) -> SubjectAccessReviewStatus {
    SubjectAccessReviewStatus {
        allowed: decision.is_allowed(),
        denied: matches!(decision, authz::Decision::Deny { .. }).then_some(true),
        reason: Some(decision.reason().to_owned()).filter(|r| !r.is_empty()),
        evaluation_error: None,
    }
}

fn kube_user(user: &UserInfo) -> KubeUserInfo {
    KubeUserInfo {
        username: Some(user.name.clone()),
        uid: Some(user.uid.clone()).filter(|u| !u.is_empty()),
        groups: Some(user.groups.clone()),
        extra: Some(user.extra.clone()).filter(|e| !e.is_empty()),
    }
}

fn user_from_spec(
    user: Option<String>,
    groups: Option<Vec<String>>,
    uid: Option<String>,
    extra: Option<BTreeMap<String, Vec<String>>>,
) -> UserInfo {
    UserInfo {
        name: user.unwrap_or_default(),
        uid: uid.unwrap_or_default(),
        groups: groups.unwrap_or_default(),
        extra: extra.unwrap_or_default(),
    }
}

impl Review {
    fn caller(ctx: &RequestContext) -> UserInfo {
        ctx.user.clone().unwrap_or_else(UserInfo::anonymous)
    }

    fn rules(&self, user: &UserInfo, namespace: &str) -> SubjectRulesReviewStatus {
        let snapshot = self.policy.snapshot();
        let (rules, errors) = snapshot.rules_for(user, namespace);
        let mut resource_rules = Vec::new();
        let mut non_resource_rules = Vec::new();
        for rule in rules {
            match rule.non_resource_urls {
                Some(urls) if !urls.is_empty() => non_resource_rules.push(NonResourceRule {
                    verbs: rule.verbs,
                    non_resource_urls: Some(urls),
                }),
                _ => resource_rules.push(ResourceRule {
                    verbs: rule.verbs,
                    api_groups: rule.api_groups,
                    resources: rule.resources,
                    resource_names: rule.resource_names,
                }),
            }
        }
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        SubjectRulesReviewStatus {
            incomplete: !errors.is_empty(),
            evaluation_error: (!errors.is_empty()).then(|| errors.join(", ")),
            resource_rules,
            non_resource_rules,
        }
    }

    async fn answer(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        obj: Value,
    ) -> Result<Value, ApiError> {
        match self.kind {
            Kind::SelfSubjectAccessReview => {
                let mut review: SelfSubjectAccessReview = parse(obj)?;
                let attrs = question(
                    Self::caller(ctx),
                    review.spec.resource_attributes.as_ref(),
                    review.spec.non_resource_attributes.as_ref(),
                )?;
                review.status = Some(access_status(self.authz.authorize(&attrs).await));
                encode(review, |r| r.metadata.managed_fields = None)
            }
            Kind::SubjectAccessReview => {
                let mut review: SubjectAccessReview = parse(obj)?;
                let spec = &review.spec;
                let user = user_from_spec(
                    spec.user.clone(),
                    spec.groups.clone(),
                    spec.uid.clone(),
                    spec.extra.clone(),
                );
                let attrs = question(
                    user,
                    spec.resource_attributes.as_ref(),
                    spec.non_resource_attributes.as_ref(),
                )?;
                review.status = Some(access_status(self.authz.authorize(&attrs).await));
                encode(review, |r| r.metadata.managed_fields = None)
            }
            Kind::LocalSubjectAccessReview => {
                let mut review: LocalSubjectAccessReview = parse(obj)?;
                let ns = ns.unwrap_or_default();
                let spec = &review.spec;
                let asked = spec
                    .resource_attributes
                    .as_ref()
                    .and_then(|r| r.namespace.clone())
                    .unwrap_or_default();
                if spec.resource_attributes.is_none() || asked != ns {
                    return Err(bad_request(format!(
                        "spec.resourceAttributes.namespace must match the request's namespace {ns:?}"
                    )));
                }
                let user = user_from_spec(
                    spec.user.clone(),
                    spec.groups.clone(),
                    spec.uid.clone(),
                    spec.extra.clone(),
                );
                let attrs = question(user, spec.resource_attributes.as_ref(), None)?;
                review.status = Some(access_status(self.authz.authorize(&attrs).await));
                encode(review, |r| r.metadata.managed_fields = None)
            }
            Kind::SelfSubjectRulesReview => {
                let mut review: SelfSubjectRulesReview = parse(obj)?;
                let namespace = review.spec.namespace.clone().unwrap_or_default();
                review.status = Some(self.rules(&Self::caller(ctx), &namespace));
                encode(review, |r| r.metadata.managed_fields = None)
            }
            Kind::SelfSubjectReview => {
                let mut review: SelfSubjectReview = parse(obj)?;
                review.status = Some(SelfSubjectReviewStatus {
                    user_info: Some(kube_user(&Self::caller(ctx))),
                });
                encode(review, |r| r.metadata.managed_fields = None)
            }
            Kind::TokenReview => {
                let mut review: TokenReview = parse(obj)?;
                let token = review.spec.token.clone();
                let user = if token.is_empty() {
                    None
                } else {
                    self.authn.authenticate(&token).await
                };
                review.status = Some(match user {
                    Some(u) => TokenReviewStatus {
                        authenticated: Some(true),
                        user: Some(kube_user(&u)),
                        audiences: review.spec.audiences.clone(),
                        error: None,
                    },
                    None => TokenReviewStatus {
                        authenticated: Some(false),
                        user: None,
                        audiences: None,
                        // As kube-apiserver, no detail of why.
                        error: Some("token not valid".into()),
                    },
                });
                // The token is a secret: it is not echoed back.
                encode(review, |r| {
                    r.metadata.managed_fields = None;
                    r.spec.token = String::new();
                })
            }
        }
    }
}

#[async_trait]
impl RestStorage for Review {
    fn def(&self) -> &ResourceDef {
        &self.def
    }
    fn table(&self) -> TableDef {
        TableDef::default_columns()
    }
    fn decode(&self, body: Value) -> Result<(Value, Vec<String>), ApiError> {
        match self.kind {
            Kind::SelfSubjectAccessReview => decode::<SelfSubjectAccessReview>(&self.def, body),
            Kind::SelfSubjectRulesReview => decode::<SelfSubjectRulesReview>(&self.def, body),
            Kind::SubjectAccessReview => decode::<SubjectAccessReview>(&self.def, body),
            Kind::LocalSubjectAccessReview => decode::<LocalSubjectAccessReview>(&self.def, body),
            Kind::SelfSubjectReview => decode::<SelfSubjectReview>(&self.def, body),
            Kind::TokenReview => decode::<TokenReview>(&self.def, body),
        }
    }
    async fn create(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        obj: Value,
    ) -> Result<Value, ApiError> {
        self.answer(ctx, ns, obj).await
    }
}

/// Every review resource, answering with `authz` (the request chain's authorizer),
/// `policy` (for the rules of a user) and `authn`.
pub fn all(
    policy: Arc<Policy>,
    authz: Arc<dyn Authorizer>,
    authn: Arc<dyn Authenticator>,
) -> Vec<Arc<dyn RestStorage>> {
    [
        Kind::SelfSubjectAccessReview,
        Kind::SelfSubjectRulesReview,
        Kind::SubjectAccessReview,
        Kind::LocalSubjectAccessReview,
        Kind::SelfSubjectReview,
        Kind::TokenReview,
    ]
    .into_iter()
    .map(|kind| {
        Arc::new(Review {
            kind,
            def: kind.def(),
            policy: policy.clone(),
            authz: authz.clone(),
            authn: authn.clone(),
        }) as Arc<dyn RestStorage>
    })
    .collect()
}
