//! Who is asking and whether they may: the seam every request passes.
//!
//! - [`authn`]: authenticators (the admin token, `--token-auth-file`, and more to
//!   come) turn a presented credential into a [`UserInfo`].
//! - [`Authorizer`]: decides on the request's attributes (kube's `RequestInfo`).
//!
//! Requests carry credentials as a bearer token or as the password of Basic auth (any
//! user name), as registries expect. Calls the store; knows nothing of resources.

pub mod authn;
pub mod cluster;
pub mod oidc;
pub mod rbac;
pub mod serviceaccount;
pub mod token_cache;
pub mod x509;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use moor_api::authz::{self, Decision};
use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::GroupResource;
pub use moor_apimachinery::resource::UserInfo;

pub use authn::{
    AdminToken, AuthError, Authenticator, Authenticators, ensure_admin_token, generate_token,
    is_admin_token, set_admin_token, token_from_kubeconfig,
};

/// What a request asks to do (the attributes an authorizer decides on): kube's
/// `RequestInfo`, read from the method and path.
pub use moor_apimachinery::request_info::RequestInfo as Attributes;

/// Whether a user may do what it asks (kube's `authorizer.Authorizer`).
///
/// The seam is async because a delegated authorizer (cluster mode's
/// SubjectAccessReview, [`cluster::sar`]) asks the cluster. Local authorizers (RBAC
/// over the followed store) decide at once, so [`authorize_now`](Self::authorize_now)
/// is the one method they implement. The one caller that cannot wait, the
/// tag-source admission that runs inside an update's retry loop (a sync closure),
/// uses `authorize_now` and treats "not known yet" as a refusal; making that closure
/// async would touch the whole update path for one check.
#[async_trait::async_trait]
pub trait Authorizer: Send + Sync {
    /// The decision on one question, asking whoever decides.
    async fn authorize(&self, attrs: &authz::Attributes) -> Decision {
        self.authorize_now(attrs).unwrap_or_else(|| Decision::Deny {
            reason: "authorization is not known yet".into(),
        })
    }
    /// The decision without waiting: `None` when only a call can tell (a delegated
    /// authorizer's cache miss).
    fn authorize_now(&self, attrs: &authz::Attributes) -> Option<Decision>;
}

/// Allows everything (the in-process tests' default).
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize_now(&self, _attrs: &authz::Attributes) -> Option<Decision> {
        Some(Decision::Allow {
            reason: String::new(),
        })
    }
}

impl Authorizer for rbac::Policy {
    fn authorize_now(&self, attrs: &authz::Attributes) -> Option<Decision> {
        Some(rbac::Policy::authorize(self, attrs))
    }
}

/// `--registry-anonymous-pull` (deprecated): anonymous callers may also pull
/// (`get imagestreams/layers`) from every stream.
pub struct AnonymousPull(pub Arc<rbac::Policy>);

impl Authorizer for AnonymousPull {
    fn authorize_now(&self, attrs: &authz::Attributes) -> Option<Decision> {
        let pull = matches!(&attrs.request, authz::Request::Resource(r)
            if r.api_group == authz::registry::IMAGE_GROUP
                && r.resource == "imagestreams"
                && r.subresource == "layers")
            && attrs.verb == "get";
        if pull && attrs.user.in_group(authz::names::UNAUTHENTICATED) {
            return Some(Decision::Allow {
                reason: "--registry-anonymous-pull".into(),
            });
        }
        Some(rbac::Policy::authorize(&self.0, attrs))
    }
}

/// The authorizer's question for `user` asking what `info` says.
pub fn question(user: &UserInfo, info: &Attributes) -> authz::Attributes {
    if !info.is_resource_request {
        return authz::Attributes::non_resource(user.clone(), info.verb.clone(), info.path.clone());
    }
    authz::Attributes::resource(
        user.clone(),
        info.verb.clone(),
        authz::ResourceAttributes {
            api_group: info.api_group.clone(),
            resource: info.resource.clone(),
            subresource: info.subresource.clone().unwrap_or_default(),
            namespace: info.namespace.clone().unwrap_or_default(),
            name: info.name.clone().unwrap_or_default(),
        },
    )
}

/// kube-apiserver's 403 for a refused question: `User "u" cannot VERB resource "r" in
/// API group "g" in the namespace "ns"` (or `at the cluster scope`, or `path "/p"`),
/// then the authorizer's reason.
pub fn forbidden(attrs: &authz::Attributes, reason: &str) -> ApiError {
    let user = &attrs.user.name;
    let (gr, name, mut message) = match &attrs.request {
        authz::Request::NonResource(r) => (
            GroupResource::new("", ""),
            String::new(),
            format!("User {user:?} cannot {} path {:?}", attrs.verb, r.path),
        ),
        authz::Request::Resource(r) => {
            let resource = match r.subresource.as_str() {
                "" => r.resource.clone(),
                sub => format!("{}/{sub}", r.resource),
            };
            let scope = match r.namespace.as_str() {
                "" => "at the cluster scope".to_owned(),
                ns => format!("in the namespace {ns:?}"),
            };
            (
                GroupResource::new(&r.api_group, &r.resource),
                r.name.clone(),
                format!(
                    "User {user:?} cannot {} resource {resource:?} in API group {:?} {scope}",
                    attrs.verb, r.api_group
                ),
            )
        }
    };
    if !reason.is_empty() {
        message.push_str(": ");
        message.push_str(reason);
    }
    ApiError::ForbiddenOn { gr, name, message }
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

/// Who a request is by what its connection proved (a client certificate), and the
/// headers a proxy that proved itself so set: cluster mode's
/// [`cluster::requestheader::ClusterCertificates`].
pub trait RequestAuthenticator: Send + Sync {
    /// The user, or `None` when the request is nobody this way.
    fn authenticate_request(&self, req: &Request) -> Option<UserInfo>;
    /// Whether the request's client certificate verifies against `--client-ca-file`
    /// (the CA the admission webhook's callers are trusted by, unlike the cluster's
    /// client CA, which signs every node's and user's certificate).
    fn admission_client(&self, req: &Request) -> bool;
}

/// Authentication and authorization in one place.
#[derive(Clone)]
pub struct AuthLayer {
    pub authn: Arc<dyn Authenticator>,
    pub authz: Arc<dyn Authorizer>,
    /// Certificate authentication; `None`: the listener's `--client-ca-file`
    /// ([`x509::identity`]).
    pub certificates: Option<Arc<dyn RequestAuthenticator>>,
}

/// Why a request was refused.
#[derive(Debug)]
pub enum Refusal {
    /// No valid credential: an unknown token, or an anonymous request that anonymous
    /// users may not make (401).
    Unauthenticated,
    /// The user may not do this (403): kube's Status.
    Forbidden(Box<ApiError>),
}

impl Refusal {
    /// The API's answer.
    pub fn into_api_error(self) -> ApiError {
        match self {
            Refusal::Unauthenticated => ApiError::Unauthorized,
            Refusal::Forbidden(e) => *e,
        }
    }
}

impl AuthLayer {
    /// The layer of the in-process tests: one admin token, everything allowed.
    pub fn admin_only(token: &str) -> Self {
        AuthLayer {
            authn: Arc::new(AdminToken::for_token(token)),
            authz: Arc::new(AllowAll),
            certificates: None,
        }
    }

    /// Whether `req`'s client certificate verifies against `--client-ca-file`.
    pub fn admission_client(&self, req: &Request) -> bool {
        match &self.certificates {
            Some(c) => c.admission_client(req),
            None => x509::identity(req).is_some(),
        }
    }

    /// The user `req`'s client certificate (and, for a front proxy, its headers)
    /// names, if any.
    pub fn identify(&self, req: &Request) -> Option<UserInfo> {
        match &self.certificates {
            Some(c) => c.authenticate_request(req),
            None => x509::identity(req),
        }
    }

    /// Who presents `token` (`None`: the anonymous user); 401 for an unknown token.
    pub async fn authenticate(&self, token: Option<&str>) -> Result<UserInfo, Refusal> {
        match token {
            None => Ok(UserInfo::anonymous()),
            Some(token) => {
                let user = self.authn.authenticate(token).await;
                user.inspect(crate::audit::note_user)
                    .ok_or(Refusal::Unauthenticated)
            }
        }
    }

    /// Who the request is: the bearer token's user if it sends one, else its verified
    /// client certificate's, else anonymous.
    pub async fn authenticate_either(
        &self,
        token: Option<&str>,
        certificate: Option<UserInfo>,
    ) -> Result<UserInfo, Refusal> {
        match (token, certificate) {
            (None, Some(user)) => {
                crate::audit::note_user(&user);
                Ok(user)
            }
            (token, _) => self.authenticate(token).await,
        }
    }

    /// Whether `user` may do what `attrs` asks: 401 for a refused anonymous user (so
    /// clients send credentials), else 403 naming who could not do what.
    pub async fn authorize(&self, attrs: &authz::Attributes) -> Result<(), Refusal> {
        let decision = self.authz.authorize(attrs).await;
        if decision.is_allowed() {
            return Ok(());
        }
        if attrs.user.name == authz::names::ANONYMOUS {
            return Err(Refusal::Unauthenticated);
        }
        Err(Refusal::Forbidden(Box::new(forbidden(
            attrs,
            decision.reason(),
        ))))
    }

    /// The user presenting `token`, if it may do what `info` asks.
    pub async fn check(&self, token: Option<&str>, info: &Attributes) -> Result<UserInfo, Refusal> {
        let user = self.authenticate(token).await?;
        self.authorize(&question(&user, info)).await?;
        Ok(user)
    }

    /// The user a request acts as: `user` itself, or whom its `Impersonate-User` and
    /// `Impersonate-Group` headers name, when `user` may `impersonate` them (kube's
    /// impersonation filter).
    pub async fn impersonate(
        &self,
        user: UserInfo,
        headers: &HeaderMap,
    ) -> Result<UserInfo, Refusal> {
        let Some(name) = headers.get(IMPERSONATE_USER) else {
            if headers.contains_key(IMPERSONATE_GROUP) {
                return Err(Refusal::Forbidden(Box::new(ApiError::Forbidden(
                    "requested impersonation of groups without impersonating a user".into(),
                ))));
            }
            return Ok(user);
        };
        let name = name
            .to_str()
            .map_err(|_| Refusal::Unauthenticated)?
            .to_owned();
        let groups: Vec<String> = headers
            .get_all(IMPERSONATE_GROUP)
            .iter()
            .filter_map(|g| g.to_str().ok().map(str::to_owned))
            .collect();
        let check = |resource: authz::ResourceAttributes| {
            let question = authz::Attributes::resource(user.clone(), "impersonate", resource);
            async move { self.authorize(&question).await }
        };
        let mut as_user = match authz::attributes::split_service_account_username(&name) {
            Some((ns, sa)) => {
                check(
                    authz::ResourceAttributes::new("", "serviceaccounts")
                        .namespace(ns)
                        .name(sa),
                )
                .await?;
                let mut u = UserInfo::service_account(ns, sa, "");
                if !groups.is_empty() {
                    u.groups = Vec::new();
                }
                u
            }
            None => {
                check(authz::ResourceAttributes::new("", "users").name(name.clone())).await?;
                UserInfo::new(name, Vec::<String>::new())
            }
        };
        for g in groups {
            check(authz::ResourceAttributes::new("", "groups").name(g.clone())).await?;
            if !as_user.in_group(&g) {
                as_user.groups.push(g);
            }
        }
        let group = if as_user.name == authz::names::ANONYMOUS {
            authz::names::UNAUTHENTICATED
        } else {
            authz::names::AUTHENTICATED
        };
        if !as_user.in_group(group) {
            as_user.groups.push(group.to_owned());
        }
        Ok(as_user)
    }
}

/// The API group and resource whose `create` lets a bearer token call the
/// admission webhook (`POST /admission/image-policy`).
pub const ADMISSION_GROUP: &str = "admission.k8s.io";
/// See [`ADMISSION_GROUP`].
pub const ADMISSION_RESOURCE: &str = "admissionreviews";

/// Middleware of the admission webhook: callers with a client certificate verified
/// against `--client-ca-file` (what kube-apiserver presents), or with a token (or, in
/// cluster mode, another client certificate) whose user may `create`
/// `admissionreviews.admission.k8s.io`. Anyone else gets 401 (or
/// 403), so the webhook reveals no digest to strangers.
pub async fn require_admission_caller(
    State(auth): State<AuthLayer>,
    req: Request,
    next: Next,
) -> Response {
    let token = presented_token(&req);
    if token.is_none() && auth.admission_client(&req) {
        return next.run(req).await;
    }
    // Other certificates (cluster mode's client CA) are users like token holders.
    let certificate = auth.identify(&req);
    let user = match auth
        .authenticate_either(token.as_deref(), certificate)
        .await
    {
        Ok(user) => user,
        Err(refusal) => return refusal.into_api_error().into_response(),
    };
    let question = authz::Attributes::resource(
        user,
        "create",
        authz::ResourceAttributes::new(ADMISSION_GROUP, ADMISSION_RESOURCE),
    );
    if let Err(refusal) = auth.authorize(&question).await {
        return refusal.into_api_error().into_response();
    }
    next.run(req).await
}

/// The header naming the user to act as.
pub const IMPERSONATE_USER: &str = "impersonate-user";
/// A header naming a group to act in (repeatable).
pub const IMPERSONATE_GROUP: &str = "impersonate-group";

/// Middleware: 401 without a valid credential (or anonymously asking what anonymous
/// users may not), 403 when the authorizer refuses; the user, after impersonation, is
/// put in the request's extensions.
pub async fn require_auth(State(auth): State<AuthLayer>, mut req: Request, next: Next) -> Response {
    let info = request_attributes(&req);
    let token = presented_token(&req);
    let certificate = auth.identify(&req);
    let user = match auth
        .authenticate_either(token.as_deref(), certificate)
        .await
    {
        Ok(user) => user,
        Err(refusal) => return refusal.into_api_error().into_response(),
    };
    let acting = req.headers().contains_key(IMPERSONATE_USER);
    let user = match auth.impersonate(user, req.headers()).await {
        Ok(user) => {
            if acting {
                crate::audit::note_impersonated(&user);
            }
            user
        }
        Err(refusal) => return refusal.into_api_error().into_response(),
    };
    if let Err(refusal) = auth.authorize(&question(&user, &info)).await {
        return refusal.into_api_error().into_response();
    }
    req.extensions_mut().insert(user);
    next.run(req).await
}
