//! Registry authentication, the way container clients expect it: a request without
//! valid credentials gets 401 with `WWW-Authenticate: Bearer realm=".../openshift/token"`;
//! the client asks that endpoint for a token with Basic auth (any user name, moor's
//! token as password) and gets moor's token back, which it then sends as a bearer
//! token. Basic auth on `/v2/` requests works as well. Without credentials the token
//! endpoint hands out an anonymous token, which acts as `system:anonymous`: it pulls
//! from the namespaces where RBAC lets `system:unauthenticated` pull. Calls the API's
//! authenticator and authorizer.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Registry;
use super::error::{Code, RegistryError};
use super::repos::RepoName;
use crate::auth::Refusal;
use moor_api::authz::registry::{
    OnDeny, RegistryAction, RegistryChecks, Repository, registry_checks,
};
use moor_apimachinery::resource::UserInfo;

/// The token endpoint (OpenShift's registry serves the same path).
pub const TOKEN_PATH: &str = "/openshift/token";
/// The token the endpoint gives to clients without credentials.
pub const ANONYMOUS_TOKEN: &str = "anonymous";
/// What the token endpoint says a token lasts (moor's tokens do not expire).
const TOKEN_LIFETIME_SECS: u64 = 24 * 3600;

/// Who is calling the registry: an authenticated user, or `system:anonymous`.
#[derive(Clone, Debug)]
pub struct Caller(pub UserInfo);

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

/// What a `/v2/` request asks of which repository, as RBAC questions (`None`: a path
/// that names no repository action, such as `/v2/` itself or an unknown route).
async fn action_checks(
    reg: &Registry,
    user: &UserInfo,
    method: &Method,
    path: &str,
) -> Option<RegistryChecks> {
    let path = path.trim_start_matches("/v2/");
    let segs: Vec<String> = path.split('/').map(super::percent_decode).collect();
    let seg: Vec<&str> = segs.iter().map(String::as_str).collect();
    let action = match seg.as_slice() {
        ["_catalog"] => RegistryAction::Catalog,
        [ns, name, kind, rest @ ..]
            if matches!(*kind, "manifests" | "blobs" | "tags" | "referrers") =>
        {
            let repository = Repository {
                namespace: ns,
                name,
            };
            let upload = *kind == "blobs" && rest.first() == Some(&"uploads");
            if is_read(method) {
                RegistryAction::Pull(repository)
            } else if *method == Method::DELETE && !upload {
                RegistryAction::Delete
            } else {
                // Whether the stream exists matters only to a caller who may not
                // create streams: ask RBAC (a cached answer) before the catalog.
                let may_create = reg
                    .auth
                    .authorize(&moor_api::authz::Attributes::resource(
                        user.clone(),
                        "create",
                        moor_api::authz::ResourceAttributes::new(
                            moor_api::authz::registry::IMAGE_GROUP,
                            "imagestreams",
                        )
                        .namespace(*ns),
                    ))
                    .await
                    .is_ok();
                let stream_exists = may_create
                    || match RepoName::parse(ns, name) {
                        Ok(repo) => matches!(reg.repos.stream(&repo).await, Ok(Some(_))),
                        Err(_) => true,
                    };
                RegistryAction::Push {
                    repository,
                    stream_exists,
                }
            }
        }
        _ => return None,
    };
    Some(registry_checks(user, action))
}

/// Middleware on `/v2/`: authenticates the caller (a token or Basic password; none,
/// or the anonymous token, is `system:anonymous`), then asks RBAC what OpenShift's
/// registry asks: pulls need `get imagestreams/layers` on the stream, pushes
/// `update` (and `create imagestreams` for a new stream), deletes `delete images`,
/// the catalog `list imagestreams` cluster-wide. A refused anonymous caller gets the
/// 401 challenge; a refused user 403 DENIED. `/v2/` itself always challenges a
/// request without credentials, so that clients holding some send them.
pub async fn require(State(reg): State<Arc<Registry>>, mut req: Request, next: Next) -> Response {
    let presented = crate::auth::presented_token(&req);
    let token = presented.as_deref().filter(|t| *t != ANONYMOUS_TOKEN);
    let certificate = reg.auth.identify(&req);
    let user = match reg.auth.authenticate_either(token, certificate).await {
        Ok(user) => user,
        Err(_) => return unauthorized(&reg, &req, "invalid credentials"),
    };
    let base = matches!(req.uri().path(), "/v2/" | "/v2");
    if base && presented.is_none() {
        return unauthorized(&reg, &req, "authentication required");
    }
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    if let Some(checks) = action_checks(&reg, &user, &method, &path).await {
        for attrs in checks.attributes {
            match reg.auth.authorize(&attrs).await {
                Ok(()) => {}
                Err(Refusal::Unauthenticated) => {
                    return unauthorized(&reg, &req, "authentication required");
                }
                Err(Refusal::Forbidden(e)) => {
                    return RegistryError::new(Code::Denied, e.to_string()).into_response();
                }
            }
        }
    }
    req.extensions_mut().insert(Caller(user));
    next.run(req).await
}

/// Whether `caller` may pull from `source`, the check a cross-repository mount makes
/// (a refusal makes the mount an ordinary upload, never an error).
pub async fn may_mount_from(reg: &Registry, caller: &Caller, source: Repository<'_>) -> bool {
    let checks = registry_checks(&caller.0, RegistryAction::MountFrom(source));
    debug_assert_eq!(checks.on_deny, OnDeny::PlainUpload);
    for attrs in &checks.attributes {
        if reg.auth.authorize(attrs).await.is_err() {
            return false;
        }
    }
    true
}

/// `GET /openshift/token`: moor's token for valid Basic credentials (or the bearer
/// token presented), the anonymous token without credentials, 401 for wrong ones.
pub async fn token(State(reg): State<Arc<Registry>>, req: Request) -> Response {
    let token = match crate::auth::presented_token(&req) {
        None => ANONYMOUS_TOKEN.to_string(),
        Some(t) if t == ANONYMOUS_TOKEN => t,
        Some(t) => {
            if reg.auth.authenticate(Some(&t)).await.is_err() {
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
