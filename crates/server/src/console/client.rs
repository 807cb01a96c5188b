//! The console's API client: requests sent with the user's bearer token through the
//! API router in process (tower `oneshot`), so every check is the API's own.
//!
//! In cluster mode moor serves only its own groups (`image.openshift.io`, `moor.io`);
//! namespaces, workloads and the self-reviews are the cluster's. Requests for those go
//! to the cluster's API server with the user's own bearer token (the one the cluster's
//! TokenReview accepted at login) on a client that carries no credentials of moor's,
//! so the cluster's RBAC decides what the user sees, and moor needs no right to
//! impersonate anyone.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::ConsoleError;

/// Calls the API router (and, in cluster mode, the cluster) as a user.
#[derive(Clone)]
pub(crate) struct ApiClient {
    router: Router,
    /// Cluster mode: the cluster's API server, without credentials of its own.
    cluster: Option<kube::Client>,
}

/// Whether moor serves `path` itself in cluster mode (its own groups).
fn served_by_moor(path: &str) -> bool {
    ["/apis/image.openshift.io/", "/apis/moor.io/"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// The group-version path of the image API.
pub(crate) const IMAGE_API: &str = "/apis/image.openshift.io/v1";

impl ApiClient {
    pub(crate) fn new(router: Router, cluster: Option<kube::Client>) -> Self {
        ApiClient { router, cluster }
    }

    /// Whether this is cluster mode (the cluster checks tokens and answers the
    /// self-reviews).
    pub(crate) fn in_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// Sends `req` where `path` is served: the router, or the cluster.
    async fn dispatch(
        &self,
        path: &str,
        req: Request<Body>,
    ) -> Result<axum::response::Response, ConsoleError> {
        let Some(cluster) = self.cluster.as_ref().filter(|_| !served_by_moor(path)) else {
            return Ok(self
                .router
                .clone()
                .oneshot(req)
                .await
                .unwrap_or_else(|never| match never {}));
        };
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20)
            .await
            .map_err(ConsoleError::Body)?;
        let req = Request::from_parts(parts, kube::client::Body::from(bytes.to_vec()));
        let resp = cluster.send(req).await.map_err(|e| ConsoleError::Api {
            status: StatusCode::BAD_GATEWAY,
            message: format!("the cluster's API server: {e}"),
        })?;
        Ok(resp.map(Body::new))
    }

    /// Sends one request as the holder of `token`; a non-2xx answer becomes
    /// [`ConsoleError::Api`] with the `Status` message. Returns the body (unread).
    pub(crate) async fn send(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Body, ConsoleError> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::ACCEPT, "application/json");
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let req = req
            .body(body)
            .map_err(|e| ConsoleError::BadRequest(format!("bad API path {path:?}: {e}")))?;
        let resp = self.dispatch(path, req).await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp.into_body());
        }
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .map_err(ConsoleError::Body)?;
        let message = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        Err(ConsoleError::Api { status, message })
    }

    /// [`send`](Self::send), decoding the JSON answer.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, ConsoleError> {
        let body = self.send(token, method, path, body).await?;
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .map_err(ConsoleError::Body)?;
        serde_json::from_slice(&bytes).map_err(ConsoleError::Decode)
    }

    /// GET `path`, decoded.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        token: &str,
        path: &str,
    ) -> Result<T, ConsoleError> {
        self.json(token, Method::GET, path, None).await
    }

    /// Whether the holder of `token` may `verb` `resource` (of the image API) in `ns`:
    /// a SelfSubjectAccessReview. A failed review counts as "no".
    pub(crate) async fn can(&self, token: &str, verb: &str, resource: &str, ns: &str) -> bool {
        let review = json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {
                "group": "image.openshift.io", "resource": resource,
                "verb": verb, "namespace": ns,
            }},
        });
        let answer: Result<Value, _> = self
            .json(
                token,
                Method::POST,
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                Some(&review),
            )
            .await;
        answer.is_ok_and(|v| v["status"]["allowed"] == json!(true))
    }

    /// Who holds `token` (a SelfSubjectReview): the user name.
    pub(crate) async fn whoami(&self, token: &str) -> Result<String, ConsoleError> {
        let review = json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "SelfSubjectReview",
        });
        let v: Value = self
            .json(
                token,
                Method::POST,
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                Some(&review),
            )
            .await?;
        Ok(v["status"]["userInfo"]["username"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }
}

/// Whether an API error is a refusal of who asked (401/403).
pub(crate) fn is_refusal(e: &ConsoleError) -> bool {
    matches!(e, ConsoleError::Api { status, .. }
        if *status == StatusCode::FORBIDDEN || *status == StatusCode::UNAUTHORIZED)
}
