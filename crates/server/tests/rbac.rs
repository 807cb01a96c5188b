//! Authorization end to end, in process: who may do what, through the API and the
//! registry, as RBAC and OpenShift's registry mapping say. The matrix test holds one
//! row per (subject, endpoint) so a regression names its cell; the CVE tests name the
//! attack they replay.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use moor_testkit::oidc::OidcIssuer;
use moor_testkit::server::{MoorServer, Resp};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Static tokens, kube-apiserver's CSV.
const TOKENS: &str = "\
alice-token,alice,1001,\"team-a-devs\"
bob-token,bob,1002
carol-token,carol,1003
dave-token,dave,1004
erin-token,erin,1005
";

/// moor with the users above and two namespaces: alice edits team-a (through her
/// group), bob edits team-b, carol views team-a, dave administers team-a; each
/// namespace has a stream `app`.
async fn server() -> MoorServer {
    setup(None).await
}

/// [`server`], also trusting `issuer`'s OIDC tokens for audience `moor`; its group
/// `oidc:team-b-devs` edits team-b.
async fn setup(issuer: Option<&OidcIssuer>) -> MoorServer {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("tokens.csv");
    std::fs::write(&file, TOKENS).expect("token file");
    let authn = dir.path().join("authn.yaml");
    if let Some(issuer) = issuer {
        std::fs::write(&authn, issuer.authentication_config("moor")).expect("authn config");
    }
    let server = MoorServer::builder()
        .with(|o| {
            o.token_auth_file = Some(file.clone());
            if issuer.is_some() {
                o.token_authn.authentication_config = Some(authn.clone());
            }
        })
        .start()
        .await;
    // The file is read at start.
    drop(dir);
    for ns in ["team-a", "team-b", "openshift"] {
        if ns != "openshift" {
            let r = server
                .post("/api/v1/namespaces", &json!({"metadata": {"name": ns}}))
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        }
        let r = server
            .post(
                &format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams"),
                &json!({"metadata": {"name": "app"}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    // Each new namespace gets its image bindings from a follower: wait for them.
    for ns in ["team-a", "team-b"] {
        let path = format!(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings/system:image-builders"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while server.get(&path).await.status != StatusCode::OK {
            assert!(
                std::time::Instant::now() < deadline,
                "{ns} has no image bindings"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    for (ns, name, role, kind, subject) in [
        ("team-a", "devs-edit", "edit", "Group", "team-a-devs"),
        ("team-b", "bob-edit", "edit", "User", "bob"),
        ("team-a", "carol-view", "view", "User", "carol"),
        ("team-a", "dave-admin", "admin", "User", "dave"),
        ("team-a", "erin-push", "system:image-pusher", "User", "erin"),
        (
            "team-b",
            "oidc-devs-edit",
            "edit",
            "Group",
            "oidc:team-b-devs",
        ),
    ] {
        let r = server
            .post(
                &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"),
                &binding(name, role, kind, subject),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    server
}

/// A token of ServiceAccount `name` in `ns` (created first), as `kubectl create token`.
async fn service_account_token(server: &MoorServer, ns: &str, name: &str) -> String {
    let r = server
        .post(
            &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
            &json!({"metadata": {"name": name}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = server
        .post(
            &format!("/api/v1/namespaces/{ns}/serviceaccounts/{name}/token"),
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["status"]["token"]
        .as_str()
        .expect("token")
        .to_owned()
}

fn binding(name: &str, cluster_role: &str, kind: &str, subject: &str) -> Value {
    json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject}],
    })
}

/// A request as `token` (`None`: anonymous).
async fn as_user(
    server: &MoorServer,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Resp {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    server.raw(req.body(body).expect("request")).await
}

/// What a request came to, as far as authorization goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Past authorization (any status but 401 and 403).
    Allowed,
    /// 401.
    Unauthorized,
    /// 403.
    Forbidden,
}
use Outcome::*;

fn outcome(r: &Resp) -> Outcome {
    match r.status {
        StatusCode::UNAUTHORIZED => Unauthorized,
        StatusCode::FORBIDDEN => Forbidden,
        _ => Allowed,
    }
}

const IS_A: &str = "/apis/image.openshift.io/v1/namespaces/team-a/imagestreams";
const IS_B: &str = "/apis/image.openshift.io/v1/namespaces/team-b/imagestreams";

#[derive(Clone, Copy)]
enum Endpoint {
    ListStreamsA,
    ListStreamsB,
    ListStreamsAll,
    WatchStreamsA,
    CreateStreamA,
    PatchStatusA,
    ReadSecretsA,
    Metrics,
    Version,
    PullA,
    PushA,
    PushNewStreamA,
    Catalog,
    DeleteManifestA,
    Webhook,
    PullOpenshift,
    PushOpenshift,
}
use Endpoint::*;

impl Endpoint {
    fn request(self) -> (Method, String, Option<Value>) {
        let digest = format!("sha256:{}", "0".repeat(64));
        match self {
            ListStreamsA => (Method::GET, IS_A.into(), None),
            ListStreamsB => (Method::GET, IS_B.into(), None),
            ListStreamsAll => (
                Method::GET,
                "/apis/image.openshift.io/v1/imagestreams".into(),
                None,
            ),
            WatchStreamsA => (
                Method::GET,
                format!("{IS_A}?watch=true&timeoutSeconds=1"),
                None,
            ),
            CreateStreamA => (
                Method::POST,
                IS_A.into(),
                Some(json!({"metadata": {"generateName": "s-"}})),
            ),
            PatchStatusA => (
                Method::PUT,
                format!("{IS_A}/app/status"),
                Some(json!({"metadata": {"name": "app"}})),
            ),
            ReadSecretsA => (
                Method::GET,
                "/api/v1/namespaces/team-a/secrets".into(),
                None,
            ),
            Metrics => (Method::GET, "/metrics".into(), None),
            Version => (Method::GET, "/version".into(), None),
            PullA => (Method::GET, "/v2/team-a/app/tags/list".into(), None),
            PushA => (Method::POST, "/v2/team-a/app/blobs/uploads/".into(), None),
            PushNewStreamA => (Method::POST, "/v2/team-a/fresh/blobs/uploads/".into(), None),
            Catalog => (Method::GET, "/v2/_catalog".into(), None),
            DeleteManifestA => (
                Method::DELETE,
                format!("/v2/team-a/app/manifests/{digest}"),
                None,
            ),
            PullOpenshift => (Method::GET, "/v2/openshift/app/tags/list".into(), None),
            PushOpenshift => (
                Method::POST,
                "/v2/openshift/app/blobs/uploads/".into(),
                None,
            ),
            Webhook => (
                Method::POST,
                "/admission/image-policy".into(),
                Some(json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"})),
            ),
        }
    }
}

#[tokio::test]
async fn subjects_namespaces_and_endpoints_matrix() {
    let issuer = OidcIssuer::start().await;
    let server = setup(Some(&issuer)).await;
    let mut claims = issuer.claims("dora", "moor");
    claims["groups"] = json!(["team-b-devs"]);
    let dora = issuer.mint(&claims);
    let dora = Some(dora.as_str());
    let admin = Some(moor_testkit::server::TOKEN);
    let alice = Some("alice-token");
    let bob = Some("bob-token");
    let carol = Some("carol-token");
    let anon: Option<&str> = None;
    let forged = Some("no-such-token");
    let erin = Some("erin-token");
    // ServiceAccounts of team-a: any may pull there (system:image-pullers); `builder`
    // may push (system:image-builders).
    let robot = service_account_token(&server, "team-a", "robot").await;
    let builder = service_account_token(&server, "team-a", "builder").await;
    let robot = Some(robot.as_str());
    let builder = Some(builder.as_str());
    #[rustfmt::skip]
    let matrix: &[(&str, Option<&str>, Endpoint, Outcome)] = &[
        ("admin", admin, ListStreamsA, Allowed),
        ("admin", admin, ListStreamsAll, Allowed),
        ("admin", admin, PatchStatusA, Allowed),
        ("admin", admin, Metrics, Allowed),
        ("admin", admin, Catalog, Allowed),
        ("admin", admin, DeleteManifestA, Allowed),
        ("alice", alice, ListStreamsA, Allowed),
        ("alice", alice, WatchStreamsA, Allowed),
        ("alice", alice, CreateStreamA, Allowed),
        ("alice", alice, ReadSecretsA, Allowed),
        ("alice", alice, PullA, Allowed),
        ("alice", alice, PushA, Allowed),
        ("alice", alice, PushNewStreamA, Allowed),
        ("alice", alice, ListStreamsB, Forbidden),
        ("alice", alice, ListStreamsAll, Forbidden),
        ("alice", alice, PatchStatusA, Forbidden),
        ("alice", alice, Metrics, Forbidden),
        ("alice", alice, Version, Allowed),
        ("alice", alice, Catalog, Forbidden),
        ("alice", alice, DeleteManifestA, Forbidden),
        ("bob", bob, ListStreamsA, Forbidden),
        ("bob", bob, WatchStreamsA, Forbidden),
        ("bob", bob, ListStreamsB, Allowed),
        ("bob", bob, PullA, Forbidden),
        ("bob", bob, PushA, Forbidden),
        ("carol", carol, ListStreamsA, Allowed),
        ("carol", carol, PullA, Allowed),
        ("carol", carol, CreateStreamA, Forbidden),
        ("carol", carol, ReadSecretsA, Forbidden),
        ("carol", carol, PushA, Forbidden),
        ("carol", carol, PushNewStreamA, Forbidden),
        ("anonymous", anon, ListStreamsA, Unauthorized),
        ("anonymous", anon, Metrics, Unauthorized),
        ("anonymous", anon, Version, Allowed),
        ("anonymous", anon, PullA, Unauthorized),
        ("anonymous", anon, PushA, Unauthorized),
        ("anonymous", anon, Catalog, Unauthorized),
        ("robot", robot, PullA, Allowed),
        ("robot", robot, PushA, Forbidden),
        ("robot", robot, ListStreamsA, Forbidden),
        ("robot", robot, ListStreamsB, Forbidden),
        ("robot", robot, Version, Allowed),
        ("builder", builder, PushA, Allowed),
        ("builder", builder, PushNewStreamA, Allowed),
        ("builder", builder, PullA, Allowed),
        ("builder", builder, Catalog, Forbidden),
        ("admin", admin, Webhook, Allowed),
        ("alice", alice, Webhook, Forbidden),
        ("robot", robot, Webhook, Forbidden),
        ("anonymous", anon, Webhook, Unauthorized),
        // A pusher may push to streams that exist, not create new ones.
        ("erin", erin, PullA, Allowed),
        ("erin", erin, PushA, Allowed),
        ("erin", erin, PushNewStreamA, Forbidden),
        // An OIDC user, through its group's binding in team-b only.
        ("dora (OIDC)", dora, ListStreamsB, Allowed),
        ("dora (OIDC)", dora, ListStreamsA, Forbidden),
        ("dora (OIDC)", dora, PullA, Forbidden),
        ("dora (OIDC)", dora, Metrics, Forbidden),
        // The openshift namespace: every authenticated user pulls, nobody else.
        ("alice", alice, PullOpenshift, Allowed),
        ("robot", robot, PullOpenshift, Allowed),
        ("dora (OIDC)", dora, PullOpenshift, Allowed),
        ("alice", alice, PushOpenshift, Forbidden),
        ("anonymous", anon, PullOpenshift, Unauthorized),
        ("forged", forged, ListStreamsA, Unauthorized),
        ("forged", forged, PullA, Unauthorized),
    ];
    let mut failures = Vec::new();
    for (who, token, endpoint, want) in matrix {
        let (method, path, body) = endpoint.request();
        let r = as_user(&server, *token, method.clone(), &path, body).await;
        let got = outcome(&r);
        if got != *want {
            failures.push(format!(
                "{who} {method} {path}: want {want:?}, got {} {}",
                r.status, r.text
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "cells that failed:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn a_refusal_is_kubes_status_naming_user_verb_resource_and_namespace() {
    let server = server().await;
    let r = as_user(
        &server,
        Some("alice-token"),
        Method::GET,
        &format!("{IS_B}/app"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["kind"], "Status");
    assert_eq!(r.body["reason"], "Forbidden");
    assert_eq!(
        r.body["message"],
        "imagestreams.image.openshift.io \"app\" is forbidden: User \"alice\" cannot get \
         resource \"imagestreams\" in API group \"image.openshift.io\" in the namespace \"team-b\""
    );
    assert_eq!(r.body["details"]["name"], "app");
    assert_eq!(r.body["details"]["kind"], "imagestreams");
    let r = as_user(
        &server,
        Some("alice-token"),
        Method::GET,
        "/apis/image.openshift.io/v1/imagestreams",
        None,
    )
    .await;
    assert!(
        r.body["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("at the cluster scope")),
        "{}",
        r.text
    );
    let r = as_user(&server, Some("alice-token"), Method::GET, "/metrics", None).await;
    assert_eq!(
        r.body["message"],
        "forbidden: User \"alice\" cannot get path \"/metrics\""
    );
}

#[tokio::test]
async fn a_binding_applies_to_the_very_next_request_and_its_deletion_too() {
    let server = server().await;
    let list = || as_user(&server, Some("erin-token"), Method::GET, IS_B, None);
    assert_eq!(outcome(&list().await), Forbidden);
    let r = server
        .post(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/team-b/rolebindings",
            &binding("erin-view", "view", "User", "erin"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(outcome(&list().await), Allowed);
    let r = server
        .delete("/apis/rbac.authorization.k8s.io/v1/namespaces/team-b/rolebindings/erin-view")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(outcome(&list().await), Forbidden);
}

/// Harbor CVE-2019-16097 in RBAC's terms: a namespace admin binds a role it does not
/// hold (cluster-admin) to itself, or edits a Role to hold more than it has.
#[tokio::test]
async fn cve_self_escalation_through_a_role_binding_is_refused() {
    let server = server().await;
    let dave = Some("dave-token");
    let r = as_user(
        &server,
        dave,
        Method::POST,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings",
        Some(binding("dave-root", "cluster-admin", "User", "dave")),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(
        r.text
            .contains("is attempting to grant RBAC permissions not currently held"),
        "{}",
        r.text
    );
    let role = json!({
        "metadata": {"name": "everything"},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
    });
    let r = as_user(
        &server,
        dave,
        Method::POST,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/roles",
        Some(role),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    // What dave holds he may grant: edit in team-a, to erin.
    let r = as_user(
        &server,
        dave,
        Method::POST,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings",
        Some(binding("erin-edit", "edit", "User", "erin")),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // And in a namespace he does not administer, nothing.
    let r = as_user(
        &server,
        dave,
        Method::POST,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/team-b/rolebindings",
        Some(binding("erin-edit", "edit", "User", "erin")),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}

#[tokio::test]
async fn acting_on_another_namespaces_object_by_name_is_refused() {
    let server = server().await;
    let bob = Some("bob-token");
    for (method, body) in [
        (Method::GET, None),
        (Method::DELETE, None),
        (
            Method::PUT,
            Some(json!({"metadata": {"name": "app", "namespace": "team-a"}})),
        ),
    ] {
        let r = as_user(&server, bob, method.clone(), &format!("{IS_A}/app"), body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method}: {}", r.text);
    }
    let r = server.get(&format!("{IS_A}/app")).await;
    assert_eq!(r.status, StatusCode::OK, "the stream is untouched");
}

fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Uploads `data` as one blob into `repo` as the admin; returns its digest.
async fn push_blob(server: &MoorServer, repo: &str, data: &'static [u8]) -> String {
    let digest = sha256_digest(data);
    let r = server
        .call(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            "application/octet-stream",
            Body::from(data),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    digest
}

/// origin #9819, zot CVE-2024-39897: a blob read through a repository the caller may
/// pull, when the blob belongs to one it may not; and a mount from a foreign stream.
#[tokio::test]
async fn cve_blobs_of_another_namespace_are_not_reachable() {
    let server = server().await;
    let digest = push_blob(&server, "team-a/app", b"team-a's secret layer").await;
    let bob = Some("bob-token");
    // Straight at team-a: refused before anything is looked up.
    let r = as_user(
        &server,
        bob,
        Method::HEAD,
        &format!("/v2/team-a/app/blobs/{digest}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Through bob's own stream: the blob is not linked there.
    let r = as_user(
        &server,
        bob,
        Method::GET,
        &format!("/v2/team-b/app/blobs/{digest}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    // A mount from team-a is an ordinary upload for bob...
    let mount = format!("/v2/team-b/app/blobs/uploads/?mount={digest}&from=team-a/app");
    let r = as_user(&server, bob, Method::POST, &mount, None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = as_user(
        &server,
        bob,
        Method::GET,
        &format!("/v2/team-b/app/blobs/{digest}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "nothing was mounted");
    // ...and a mount for the admin, who may pull from team-a.
    let r = server
        .call(Method::POST, &mount, "application/json", Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[tokio::test]
async fn a_namespace_made_public_by_rbac_serves_anonymous_pulls_only() {
    let server = server().await;
    let anon_pull = || as_user(&server, None, Method::GET, "/v2/team-b/app/tags/list", None);
    assert_eq!(outcome(&anon_pull().await), Unauthorized);
    let r = server
        .post(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/team-b/rolebindings",
            &binding(
                "public",
                "system:image-puller",
                "Group",
                "system:unauthenticated",
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(outcome(&anon_pull().await), Allowed);
    let r = as_user(
        &server,
        None,
        Method::POST,
        "/v2/team-b/app/blobs/uploads/",
        None,
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "pushes still need rights"
    );
    let r = as_user(&server, None, Method::GET, "/v2/team-a/app/tags/list", None).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "other namespaces stay closed"
    );
}

#[tokio::test]
async fn impersonation_needs_the_impersonate_verb() {
    let server = server().await;
    let req = |token: &str, as_user: &str| {
        Request::get(IS_B)
            .header("authorization", format!("Bearer {token}"))
            .header("impersonate-user", as_user)
            .body(Body::empty())
            .expect("request")
    };
    // The admin acting as alice is alice: team-b is closed to her.
    let r = server.raw(req(moor_testkit::server::TOKEN, "alice")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.text.contains("User \\\"alice\\\""), "{}", r.text);
    // As bob, it is open.
    let r = server.raw(req(moor_testkit::server::TOKEN, "bob")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // alice may not impersonate bob.
    let r = server.raw(req("alice-token", "bob")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.text.contains("impersonate"), "{}", r.text);
}

#[tokio::test]
async fn review_apis_answer_for_the_caller() {
    let server = server().await;
    let ssar = |ns: &str| {
        json!({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": ns, "verb": "create",
                     "group": "image.openshift.io", "resource": "imagestreams"}},
        })
    };
    let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let r = as_user(
        &server,
        Some("alice-token"),
        Method::POST,
        path,
        Some(ssar("team-a")),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["status"]["allowed"], true, "{}", r.text);
    let r = as_user(
        &server,
        Some("alice-token"),
        Method::POST,
        path,
        Some(ssar("team-b")),
    )
    .await;
    assert_eq!(r.body["status"]["allowed"], false, "{}", r.text);

    let r = as_user(
        &server,
        Some("alice-token"),
        Method::POST,
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["status"]["userInfo"]["username"], "alice");
    let groups = r.body["status"]["userInfo"]["groups"].to_string();
    assert!(groups.contains("team-a-devs") && groups.contains("system:authenticated"));

    let r = as_user(
        &server,
        Some("carol-token"),
        Method::POST,
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        Some(json!({"spec": {"namespace": "team-a"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let rules = r.body["status"]["resourceRules"].to_string();
    assert!(rules.contains("imagestreams"), "{rules}");

    // Another user's rights: only for those who may create SubjectAccessReviews.
    let sar = json!({
        "spec": {"user": "bob", "resourceAttributes": {"namespace": "team-b", "verb": "list",
                 "group": "image.openshift.io", "resource": "imagestreams"}},
    });
    let path = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    let r = as_user(
        &server,
        Some("alice-token"),
        Method::POST,
        path,
        Some(sar.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = server.post(path, &sar).await;
    assert_eq!(r.body["status"]["allowed"], true, "{}", r.text);

    // TokenReview: whose token, never echoing it.
    let r = server
        .post(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            &json!({"spec": {"token": "bob-token"}}),
        )
        .await;
    assert_eq!(r.body["status"]["authenticated"], true, "{}", r.text);
    assert_eq!(r.body["status"]["user"]["username"], "bob");
    assert!(!r.text.contains("bob-token"), "{}", r.text);
    let r = server
        .post(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            &json!({"spec": {"token": "forged"}}),
        )
        .await;
    assert_eq!(r.body["status"]["authenticated"], false, "{}", r.text);
}

#[tokio::test]
async fn the_bootstrap_policy_is_stored_and_reconciled_without_undoing_edits() {
    let server = server().await;
    let r = server
        .get("/apis/rbac.authorization.k8s.io/v1/clusterroles/system:image-puller")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A new namespace gets its bindings from a follower, as on OpenShift: soon.
    for ns in ["team-a", "team-b", "default"] {
        let path = format!(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings/system:image-pullers"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let r = server.get(&path).await;
            if r.status == StatusCode::OK {
                assert_eq!(r.body["roleRef"]["name"], "system:image-puller");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{ns}: {}", r.text);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    // Aggregated roles show their rules, as kube's aggregation controller stores them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = server
            .get("/apis/rbac.authorization.k8s.io/v1/clusterroles/view")
            .await;
        let rules = r.body["rules"].to_string();
        if rules.contains("imagestreams/layers") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "view aggregates registry-viewer: {rules}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_restart_keeps_edits_of_bootstrap_roles_marked_autoupdate_false_and_restores_others() {
    let store: std::sync::Arc<dyn moor_store::Store> =
        std::sync::Arc::new(moor_store::MemoryStore::new());
    let server = MoorServer::over(store.clone()).await;
    let path = |name: &str| format!("/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}");
    for (name, autoupdate) in [
        ("system:image-puller", "false"),
        ("system:image-pusher", "true"),
    ] {
        let r = server.get(&path(name)).await;
        let mut role = r.body.clone();
        role["rules"] = json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]);
        role["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] =
            autoupdate.into();
        let r = server.put(&path(name), &role).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    server.stop().await;
    let server = MoorServer::over(store).await;
    let puller = server.get(&path("system:image-puller")).await.body["rules"].to_string();
    assert!(
        !puller.contains("imagestreams"),
        "the user's edit stays: {puller}"
    );
    let pusher = server.get(&path("system:image-pusher")).await.body["rules"].to_string();
    assert!(
        pusher.contains("imagestreams/layers") && pusher.contains("configmaps"),
        "rules are added back, the user's kept: {pusher}"
    );
}

#[tokio::test]
async fn invalid_rbac_objects_are_refused_and_a_binding_to_a_missing_role_grants_nothing() {
    let server = server().await;
    let rb = "/apis/rbac.authorization.k8s.io/v1/namespaces/team-b/rolebindings";
    let r = server
        .post(
            rb,
            &json!({"metadata": {"name": "x"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Nope", "name": "y"},
                    "subjects": [{"kind": "Robot", "name": "z"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(
        r.text.contains("roleRef.kind") && r.text.contains("subjects[0].kind"),
        "{}",
        r.text
    );
    let r = server
        .post(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/team-b/roles",
            &json!({"metadata": {"name": "r"}, "rules": [{"verbs": []}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let mut b = binding("ghost", "no-such-role", "User", "erin");
    b["roleRef"]["kind"] = "Role".into();
    let r = server.post(rb, &b).await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "stored as kube does: {}",
        r.text
    );
    let r = as_user(&server, Some("erin-token"), Method::GET, IS_B, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    // roleRef cannot change.
    let changed = binding("ghost", "view", "User", "erin");
    let r = server.put(&format!("{rb}/ghost"), &changed).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("cannot change roleRef"), "{}", r.text);
}

/// OpenShift's tag verifier: `oc tag team-a/app:1 app:1` in team-b needs the right to
/// pull from team-a/app, whether through an ImageStreamTag or the stream's spec.
#[tokio::test]
async fn tagging_from_another_namespace_needs_pull_rights_there() {
    let server = server().await;
    let bob = Some("bob-token");
    let istag = |kind: &str, name: &str| {
        json!({"metadata": {"name": "app:copy"},
               "tag": {"from": {"kind": kind, "namespace": "team-a", "name": name}}})
    };
    let path = "/apis/image.openshift.io/v1/namespaces/team-b/imagestreamtags";
    for (kind, name) in [
        ("ImageStreamTag", "app:1"),
        (
            "ImageStreamImage",
            &*format!("app@sha256:{}", "1".repeat(64)),
        ),
    ] {
        let r = as_user(&server, bob, Method::POST, path, Some(istag(kind, name))).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{kind}: {}",
            r.text
        );
        assert!(
            r.text.contains("Forbidden") && r.text.contains("team-a/app"),
            "{}",
            r.text
        );
    }
    let mut stream = server.get(&format!("{IS_B}/app")).await.body;
    stream["spec"]["tags"] = json!([{"name": "copy",
        "from": {"kind": "ImageStreamTag", "namespace": "team-a", "name": "app:1"}}]);
    let r = as_user(
        &server,
        bob,
        Method::PUT,
        &format!("{IS_B}/app"),
        Some(stream.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("spec.tags[copy].from"), "{}", r.text);
    // Same namespace needs nothing more.
    let mut own = stream.clone();
    own["spec"]["tags"][0]["from"]["namespace"] = "team-b".into();
    let r = as_user(&server, bob, Method::PUT, &format!("{IS_B}/app"), Some(own)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // With pull rights in team-a, the cross-namespace tag is allowed.
    let r = server
        .post(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings",
            &binding("bob-pull", "system:image-puller", "User", "bob"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let mut stream = server.get(&format!("{IS_B}/app")).await.body;
    stream["spec"]["tags"][0]["from"]["namespace"] = "team-a".into();
    let r = as_user(
        &server,
        bob,
        Method::PUT,
        &format!("{IS_B}/app"),
        Some(stream),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}
