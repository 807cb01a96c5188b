//! What the console's tests share: moor with users and RBAC, a stream with history,
//! and a browser-less login through the router.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use moor_testkit::server::{Builder, MoorServer, Resp};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Static tokens: alice edits team-a, carol views team-a, bob edits team-b.
pub const TOKENS: &str = "\
alice-token,alice,1001
bob-token,bob,1002
carol-token,carol,1003
";

/// The stream with history in team-a.
pub const STREAM: &str = "app";

/// A digest of `seed`.
pub fn digest(seed: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(seed.as_bytes())))
}

/// A builder with the users above (the token file is kept in the server's own dir).
pub fn builder() -> Builder {
    let b = MoorServer::builder();
    let file = b.options.data_dir.with_file_name("tokens.csv");
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).expect("server dir");
    }
    std::fs::write(&file, TOKENS).expect("token file");
    b.with(|o| o.token_auth_file = Some(file))
}

/// Namespaces team-a and team-b, each with stream `app`, the role bindings, and
/// history in team-a's `app:v1`: `first`, `second`, then `third` (current) digests.
pub async fn populate(server: &MoorServer) -> Vec<String> {
    for ns in ["team-a", "team-b"] {
        let r = server
            .post("/api/v1/namespaces", &json!({"metadata": {"name": ns}}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let r = server
            .post(
                &format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams"),
                &json!({"metadata": {"name": STREAM}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    for (ns, name, role, user) in [
        ("team-a", "alice-edit", "edit", "alice"),
        ("team-a", "carol-view", "view", "carol"),
        ("team-b", "bob-edit", "edit", "bob"),
    ] {
        let binding = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        });
        let r = server
            .post(
                &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"),
                &binding,
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let mut digests = Vec::new();
    for seed in ["first", "second", "third"] {
        let d = digest(seed);
        push(server, "team-a", "v1", &d).await;
        digests.push(d);
    }
    // The policy follows the store: wait until alice may read team-a.
    wait_until_allowed(
        server,
        "alice-token",
        "/apis/image.openshift.io/v1/namespaces/team-a/imagestreams",
    )
    .await;
    wait_until_allowed(
        server,
        "carol-token",
        "/apis/image.openshift.io/v1/namespaces/team-a/imagestreams",
    )
    .await;
    wait_until_allowed(
        server,
        "bob-token",
        "/apis/image.openshift.io/v1/namespaces/team-b/imagestreams",
    )
    .await;
    digests
}

/// Records a push of `digest` to `ns/app:tag` (an ImageStreamMapping, as the
/// registry does).
pub async fn push(server: &MoorServer, ns: &str, tag: &str, digest: &str) {
    let mapping = json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStreamMapping",
        "metadata": {"name": STREAM},
        "tag": tag,
        "image": {"metadata": {"name": digest},
                  "dockerImageReference": format!("quay.io/team/app@{digest}")},
    });
    let r = server
        .post(
            &format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreammappings"),
            &mapping,
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
}

async fn wait_until_allowed(server: &MoorServer, token: &str, path: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let req = Request::builder()
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request");
        if server.raw(req).await.status == StatusCode::OK {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{token} never may read {path}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The `value` of the first hidden `csrf` field in `html`.
pub fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a CSRF field");
    let rest = &html[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').expect("end of value")].to_owned()
}

/// The `name=value` of cookie `name` in a response's `Set-Cookie` headers.
pub fn set_cookie(r: &Resp, name: &str) -> Option<String> {
    r.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

/// A browser-less session: its cookie and CSRF token.
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

/// A request with `cookie`.
pub fn request(method: Method, path: &str, cookie: &str, form: Option<&str>) -> Request<Body> {
    let b = Request::builder()
        .method(method)
        .uri(path)
        .header(header::COOKIE, cookie);
    match form {
        Some(f) => b
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(f.to_owned())),
        None => b.body(Body::empty()),
    }
    .expect("request")
}

/// Logs in with `token` as a browser would: the form, then its POST.
pub async fn login(server: &MoorServer, token: &str) -> Result<Session, Resp> {
    let form = server
        .raw(request(Method::GET, "/console/login", "", None))
        .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    let login_cookie = set_cookie(&form, "moor-console-login").expect("login cookie");
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token)
        .append_pair("csrf", &csrf_of(&form.text))
        .finish();
    let r = server
        .raw(request(
            Method::POST,
            "/console/login",
            &login_cookie,
            Some(&body),
        ))
        .await;
    if r.status != StatusCode::SEE_OTHER {
        return Err(r);
    }
    let cookie = set_cookie(&r, "moor-console").expect("session cookie");
    let page = server
        .raw(request(Method::GET, "/console/", &cookie, None))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    Ok(Session {
        csrf: csrf_of(&page.text),
        cookie,
    })
}

impl Session {
    /// GET `path` in this session.
    pub async fn get(&self, server: &MoorServer, path: &str) -> Resp {
        server
            .raw(request(Method::GET, path, &self.cookie, None))
            .await
    }

    /// POST form `pairs` (and this session's CSRF token) to `path`.
    pub async fn post(&self, server: &MoorServer, path: &str, pairs: &[(&str, &str)]) -> Resp {
        let mut f = form_urlencoded::Serializer::new(String::new());
        f.append_pair("csrf", &self.csrf);
        for (k, v) in pairs {
            f.append_pair(k, v);
        }
        server
            .raw(request(Method::POST, path, &self.cookie, Some(&f.finish())))
            .await
    }
}

/// The stream as the admin sees it through the API.
pub async fn stream(server: &MoorServer, ns: &str) -> Value {
    let r = server
        .get(&format!(
            "/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams/{STREAM}"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}
