//! A test double that stands in for kube-apiserver in cluster mode's tests: no
//! kube-apiserver package exists for these machines, so this serves the part of its
//! API that moor in cluster mode calls, over TLS on a loopback port:
//!
//! - `TokenReview` (tokens added with [`KubeDouble::add_token`], and the JWTs of
//!   issuers trusted with [`KubeDouble::trust_issuer`], as a cluster with a
//!   structured `AuthenticationConfiguration` verifies them);
//! - `SubjectAccessReview` (allowed by rules added with [`KubeDouble::allow`]);
//! - the `kube-system/extension-apiserver-authentication` ConfigMap, get, list and
//!   watch, naming a client CA and a front-proxy (requestheader) CA of its own, both
//!   real CAs whose client certificates [`TestCa::client_identity`] mints;
//! - namespaces list and watch (moor's own token, the kubeconfig's, always; a user's
//!   token only when a rule allows `list namespaces`); Secrets get, list and watch (a
//!   namespace's, or all);
//! - ClusterRoles written with server-side apply: refused (403), as moor's
//!   least-privilege identity is, until [`KubeDouble::allow_rbac_writes`];
//! - as the caller's bearer token (401 for unknown ones): `SelfSubjectReview`,
//!   `SelfSubjectAccessReview`, and lists of the workloads added with
//!   [`KubeDouble::add_workload`] (Deployments, StatefulSets, DaemonSets, Jobs,
//!   CronJobs, Pods), refused (403) unless a rule allows `list` of that resource.
//!
//! Every request is recorded with its bearer token ([`KubeDouble::calls`]), and every
//! token a TokenReview asked about ([`KubeDouble::reviewed_tokens`]), so tests can
//! assert caching and as whom the cluster was asked.
//! [`KubeDouble::kubeconfig`] names it for `--cluster-kubeconfig`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// The front proxy's CommonName the ConfigMap allows.
pub const FRONT_PROXY_CN: &str = "front-proxy-client";

/// A certificate authority for tests.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl TestCa {
    /// A new self-signed CA named `cn`.
    pub fn new(cn: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, cn);
        let pem = params.self_signed(&key).expect("CA").pem();
        TestCa {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// The CA certificate (PEM).
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A client certificate and its key (PEM, for `reqwest::Identity::from_pem`):
    /// CommonName `cn`, an Organization for each of `orgs`.
    pub fn client_identity(&self, cn: &str, orgs: &[&str]) -> String {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        for o in orgs {
            params.distinguished_name.push(DnType::OrganizationName, *o);
        }
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        format!("{}{}", cert.pem(), key.serialize_pem())
    }

    /// A serving certificate for `names` and its key (PEM).
    pub fn serving(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = CertificateParams::new(names)
            .expect("params")
            .signed_by(&key, &self.issuer)
            .expect("certificate");
        (cert.pem(), key.serialize_pem())
    }
}

/// The bearer token of moor's own kubeconfig ([`KubeDouble::kubeconfig`]).
pub const MOOR_TOKEN: &str = "moor-service-account";

/// One request the double answered: method, path (with query) and bearer token.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: Method,
    pub path: String,
    /// The `Authorization: Bearer` token, if any.
    pub bearer: Option<String>,
}

/// A JWT issuer TokenReview trusts: tokens it signed (ES256) for `audience`, unexpired,
/// name the user `oidc:SUB` in groups `oidc:GROUP` (the claim mappings of
/// [`crate::oidc::OidcIssuer::authentication_config`]).
struct TrustedIssuer {
    url: String,
    key: jsonwebtoken::DecodingKey,
    audience: String,
}

/// A SubjectAccessReview rule: `subject` (a user or a group) may `verb` on
/// `resource` (`plural` or `plural/subresource`, or a non-resource path) in
/// `namespace`; `*` matches anything.
#[derive(Clone, Debug)]
struct Rule {
    subject: String,
    verb: String,
    resource: String,
    namespace: String,
}

struct Shared {
    tokens: Mutex<HashMap<String, Value>>,
    issuers: Mutex<Vec<TrustedIssuer>>,
    /// The tokens TokenReviews asked about, in order.
    reviewed: Mutex<Vec<String>>,
    rules: Mutex<Vec<Rule>>,
    /// Objects by kind (`configmaps`, `namespaces`, `secrets`) and `ns/name`.
    objects: Mutex<BTreeMap<(&'static str, String), Value>>,
    /// Every change, for watches from a resourceVersion: (rv, kind, type, object).
    history: Mutex<Vec<(u64, &'static str, &'static str, Value)>>,
    revision: Mutex<u64>,
    events: broadcast::Sender<(u64, &'static str, &'static str, Value)>,
    calls: Mutex<Vec<Call>>,
    /// Whether ClusterRole writes are allowed.
    rbac_writes: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// The user (kube's `user` object of a TokenReview) `token` names: one added with
    /// [`KubeDouble::add_token`], or a JWT a trusted issuer signed.
    fn user(&self, token: &str) -> Option<Value> {
        if let Some(user) = self.tokens.lock().expect("tokens").get(token) {
            return Some(user.clone());
        }
        let issuers = self.issuers.lock().expect("issuers");
        issuers.iter().find_map(|issuer| {
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
            validation.set_issuer(&[&issuer.url]);
            validation.set_audience(&[&issuer.audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            let claims = jsonwebtoken::decode::<Value>(token, &issuer.key, &validation)
                .ok()?
                .claims;
            let sub = claims["sub"].as_str()?;
            let mut groups: Vec<String> = claims["groups"]
                .as_array()
                .map(|g| {
                    g.iter()
                        .filter_map(Value::as_str)
                        .map(|g| format!("oidc:{g}"))
                        .collect()
                })
                .unwrap_or_default();
            groups.push("system:authenticated".into());
            Some(json!({"username": format!("oidc:{sub}"),
                        "uid": format!("uid-{sub}"), "groups": groups}))
        })
    }

    /// Stores (or, with `DELETED`, removes) `obj` and tells the watchers.
    fn change(&self, kind: &'static str, ty: &'static str, mut obj: Value) {
        let mut revision = self.revision.lock().expect("revision");
        *revision += 1;
        let rv = *revision;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let key = (kind, format!("{ns}/{name}"));
        {
            let mut objects = self.objects.lock().expect("objects");
            if ty == "DELETED" {
                objects.remove(&key);
            } else {
                objects.insert(key, obj.clone());
            }
        }
        self.history
            .lock()
            .expect("history")
            .push((rv, kind, ty, obj.clone()));
        let _ = self.events.send((rv, kind, ty, obj));
    }
}

/// The double, serving until dropped.
pub struct KubeDouble {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The CA of its serving certificate.
    pub serving_ca: TestCa,
    /// The ConfigMap's `client-ca-file`.
    pub client_ca: TestCa,
    front_proxy_ca: Mutex<TestCa>,
    shared: Arc<Shared>,
    dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KubeDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The ConfigMap's data for these CAs, with kube's default header names.
fn authentication_data(client_ca: &str, front_proxy_ca: &str) -> Value {
    json!({
        "client-ca-file": client_ca,
        "requestheader-client-ca-file": front_proxy_ca,
        "requestheader-allowed-names": format!("[\"{FRONT_PROXY_CN}\"]"),
        "requestheader-username-headers": "[\"X-Remote-User\"]",
        "requestheader-group-headers": "[\"X-Remote-Group\"]",
        "requestheader-extra-headers-prefix": "[\"X-Remote-Extra-\"]",
    })
}

impl KubeDouble {
    /// Starts the double with the ConfigMap, namespaces `default` and
    /// `kube-system`, and no tokens or rules.
    pub async fn start() -> KubeDouble {
        let serving_ca = TestCa::new("kube double serving CA");
        let client_ca = TestCa::new("kube double client CA");
        let front_proxy_ca = TestCa::new("kube double front-proxy CA");
        let (cert, key) = serving_ca.serving(&["127.0.0.1", "localhost"]);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("https://{}", listener.local_addr().expect("addr"));
        let shared = Arc::new(Shared {
            tokens: Mutex::default(),
            issuers: Mutex::default(),
            reviewed: Mutex::default(),
            rules: Mutex::default(),
            objects: Mutex::default(),
            history: Mutex::default(),
            revision: Mutex::new(100),
            events: broadcast::channel(1024).0,
            calls: Mutex::default(),
            rbac_writes: Default::default(),
        });
        shared.change(
            "configmaps",
            "ADDED",
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "extension-apiserver-authentication",
                             "namespace": "kube-system"},
                "data": authentication_data(client_ca.pem(), front_proxy_ca.pem()),
            }),
        );
        for ns in ["default", "kube-system"] {
            shared.change("namespaces", "ADDED", namespace(ns));
        }
        let app = Router::new()
            .route(
                "/apis/authentication.k8s.io/v1/tokenreviews",
                post(token_review),
            )
            .route(
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                post(access_review),
            )
            .route("/api/v1/namespaces", get(list_namespaces))
            .route("/api/v1/namespaces/{ns}/configmaps", get(list_config_maps))
            .route(
                "/api/v1/namespaces/{ns}/configmaps/{name}",
                get(get_config_map),
            )
            .route("/api/v1/secrets", get(list_all_secrets))
            .route("/api/v1/namespaces/{ns}/secrets", get(list_secrets))
            .route("/api/v1/namespaces/{ns}/secrets/{name}", get(get_secret))
            .route(
                "/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}",
                axum::routing::patch(apply_cluster_role),
            )
            .route(
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                post(self_subject_review),
            )
            .route(
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                post(self_access_review),
            )
            .route("/api/v1/namespaces/{ns}/pods", get(list_pods))
            .route(
                "/apis/{group}/v1/namespaces/{ns}/{plural}",
                get(list_workloads),
            )
            .fallback(|| async { status(StatusCode::NOT_FOUND, "NotFound", "no such path") })
            .layer(axum::middleware::from_fn_with_state(shared.clone(), record))
            .with_state(shared.clone());
        let config =
            axum_server::tls_rustls::RustlsConfig::from_pem(cert.into_bytes(), key.into_bytes())
                .await
                .expect("TLS config");
        let server = axum_server::from_tcp_rustls(listener, config).expect("server");
        let task = tokio::spawn(async move {
            let _ = server.serve(app.into_make_service()).await;
        });
        KubeDouble {
            url,
            serving_ca,
            client_ca,
            front_proxy_ca: Mutex::new(front_proxy_ca),
            shared,
            dir: tempfile::tempdir().expect("temp dir"),
            task,
        }
    }

    /// A kubeconfig naming the double (its CA, a token of moor's own), written once.
    pub fn kubeconfig(&self) -> PathBuf {
        let path = self.dir.path().join("kubeconfig");
        let ca = base64::engine::general_purpose::STANDARD.encode(self.serving_ca.pem());
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: double\n  cluster:\n    \
             certificate-authority-data: {ca}\n    server: {}\ncontexts:\n- name: double\n  \
             context:\n    cluster: double\n    user: moor\ncurrent-context: double\n\
             users:\n- name: moor\n  user:\n    token: {MOOR_TOKEN}\n",
            self.url
        );
        std::fs::write(&path, text).expect("kubeconfig");
        path
    }

    /// TokenReview accepts `token` as `user` in `groups`.
    pub fn add_token(&self, token: &str, user: &str, groups: &[&str]) {
        self.shared.tokens.lock().expect("tokens").insert(
            token.to_owned(),
            json!({"username": user, "uid": format!("uid-{user}"), "groups": groups}),
        );
    }

    /// TokenReview (and the double's own API) accepts the JWTs `issuer` signs for
    /// `audience` (ES256 with its key, its `iss`, unexpired) as user `oidc:SUB` in
    /// groups `oidc:GROUP` and `system:authenticated`: a cluster whose
    /// `AuthenticationConfiguration` trusts the issuer for that audience.
    pub fn trust_issuer(&self, issuer: &crate::oidc::OidcIssuer, audience: &str) {
        let key = jsonwebtoken::DecodingKey::from_ec_pem(issuer.key.public_pem.as_bytes())
            .expect("the issuer's public key");
        self.shared
            .issuers
            .lock()
            .expect("issuers")
            .push(TrustedIssuer {
                url: issuer.url.clone(),
                key,
                audience: audience.to_owned(),
            });
    }

    /// The tokens TokenReviews asked about so far, in order.
    pub fn reviewed_tokens(&self) -> Vec<String> {
        self.shared.reviewed.lock().expect("reviewed").clone()
    }

    /// TokenReview no longer accepts `token`.
    pub fn revoke_token(&self, token: &str) {
        self.shared.tokens.lock().expect("tokens").remove(token);
    }

    /// SubjectAccessReview allows `subject` (a user or group name) to `verb`
    /// `resource` (`plural`, `plural/subresource`, or a path) in `namespace` (`*`:
    /// anything, for each of the three).
    pub fn allow(&self, subject: &str, verb: &str, resource: &str, namespace: &str) {
        self.shared.rules.lock().expect("rules").push(Rule {
            subject: subject.into(),
            verb: verb.into(),
            resource: resource.into(),
            namespace: namespace.into(),
        });
    }

    /// Forgets every SubjectAccessReview rule.
    pub fn clear_rules(&self) {
        self.shared.rules.lock().expect("rules").clear();
    }

    /// The front proxy's client certificate and key (PEM), from the current
    /// requestheader CA, with CommonName `cn`.
    pub fn front_proxy_identity(&self, cn: &str) -> String {
        self.front_proxy_ca
            .lock()
            .expect("CA")
            .client_identity(cn, &[])
    }

    /// Replaces the requestheader CA with a new one (a rotation: the ConfigMap is
    /// updated and watchers told).
    pub fn rotate_front_proxy_ca(&self) {
        let ca = TestCa::new("kube double front-proxy CA (rotated)");
        let data = authentication_data(self.client_ca.pem(), ca.pem());
        *self.front_proxy_ca.lock().expect("CA") = ca;
        self.shared.change(
            "configmaps",
            "MODIFIED",
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "extension-apiserver-authentication",
                             "namespace": "kube-system"},
                "data": data,
            }),
        );
    }

    /// Lets ClusterRoles be written (a cluster-admin's kubeconfig); refused by default.
    pub fn allow_rbac_writes(&self) {
        self.shared
            .rbac_writes
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The ClusterRole `name`, as last applied.
    pub fn cluster_role(&self, name: &str) -> Option<Value> {
        let objects = self.shared.objects.lock().expect("objects");
        objects.get(&("clusterroles", format!("/{name}"))).cloned()
    }

    /// Creates namespace `name`.
    pub fn add_namespace(&self, name: &str) {
        self.shared.change("namespaces", "ADDED", namespace(name));
    }

    /// Deletes namespace `name`.
    pub fn delete_namespace(&self, name: &str) {
        self.shared.change("namespaces", "DELETED", namespace(name));
    }

    /// Creates a `kubernetes.io/dockerconfigjson` Secret holding `dockerconfigjson`.
    pub fn add_pull_secret(&self, ns: &str, name: &str, dockerconfigjson: &str) {
        let data = base64::engine::general_purpose::STANDARD.encode(dockerconfigjson);
        self.shared.change(
            "secrets",
            "ADDED",
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": ns},
                "type": "kubernetes.io/dockerconfigjson",
                "data": {".dockerconfigjson": data},
            }),
        );
    }

    /// Stores workload `obj` (its `metadata.namespace` and `.name` set) as a
    /// `plural` (`deployments`, `statefulsets`, `daemonsets`, `jobs`, `cronjobs`,
    /// `pods`).
    pub fn add_workload(&self, plural: &str, obj: Value) {
        let kind = workload_kind(plural).expect("a workload plural");
        self.shared.change(kind, "ADDED", obj);
    }

    /// Every request answered so far.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().expect("calls").clone()
    }

    /// How many requests so far had a path containing `part`
    /// (`"tokenreviews"`, `"subjectaccessreviews"`, ...).
    pub fn count(&self, part: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.path.contains(part))
            .count()
    }
}

/// A namespace with a UID of its own (each double's `kube-system` differs, as each
/// cluster's does).
fn namespace(name: &str) -> Value {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": name, "uid": format!("{name}-{n}")},
           "status": {"phase": "Active"}})
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                      "status": "Failure", "message": message, "reason": reason,
                      "code": code.as_u16()});
    (code, axum::Json(body)).into_response()
}

async fn record(
    State(s): State<Arc<Shared>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let bearer = bearer(req.headers()).map(str::to_owned);
    s.calls.lock().expect("calls").push(Call {
        method: req.method().clone(),
        path,
        bearer,
    });
    next.run(req).await
}

/// Server-side apply of a ClusterRole (stored as sent), or 403.
async fn apply_cluster_role(
    State(s): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !s.rbac_writes.load(std::sync::atomic::Ordering::SeqCst) {
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!("clusterroles.rbac.authorization.k8s.io \"{name}\" is forbidden"),
        );
    }
    let apply = headers
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/apply-patch"));
    let Ok(role) = serde_json::from_slice::<Value>(&body) else {
        return status(StatusCode::BAD_REQUEST, "BadRequest", "not JSON");
    };
    if !apply || role["metadata"]["name"] != name.as_str() {
        return status(StatusCode::BAD_REQUEST, "BadRequest", "not an apply of it");
    }
    s.change("clusterroles", "ADDED", role.clone());
    axum::Json(role).into_response()
}

async fn token_review(
    State(s): State<Arc<Shared>>,
    axum::Json(mut review): axum::Json<Value>,
) -> Response {
    let token = review["spec"]["token"].as_str().unwrap_or("").to_owned();
    s.reviewed.lock().expect("reviewed").push(token.clone());
    let user = s.user(&token);
    review["status"] = match user {
        Some(user) => json!({"authenticated": true, "user": user}),
        None => json!({"authenticated": false, "error": "invalid bearer token"}),
    };
    axum::Json(review).into_response()
}

fn matches(pattern: &str, value: &str) -> bool {
    pattern == "*" || pattern == value
}

async fn access_review(
    State(s): State<Arc<Shared>>,
    axum::Json(mut review): axum::Json<Value>,
) -> Response {
    let spec = &review["spec"];
    let user = spec["user"].as_str().unwrap_or("").to_owned();
    let groups: Vec<String> = spec["groups"]
        .as_array()
        .map(|g| {
            g.iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let (verb, resource, namespace) = if let Some(r) = spec.get("resourceAttributes") {
        let field = |f: &str| r[f].as_str().unwrap_or("").to_owned();
        let resource = match field("subresource").as_str() {
            "" => field("resource"),
            sub => format!("{}/{sub}", field("resource")),
        };
        (field("verb"), resource, field("namespace"))
    } else {
        let r = &spec["nonResourceAttributes"];
        (
            r["verb"].as_str().unwrap_or("").to_owned(),
            r["path"].as_str().unwrap_or("").to_owned(),
            String::new(),
        )
    };
    let allowed = s.rules.lock().expect("rules").iter().any(|rule| {
        (rule.subject == user || groups.contains(&rule.subject))
            && matches(&rule.verb, &verb)
            && matches(&rule.resource, &resource)
            && matches(&rule.namespace, &namespace)
    });
    review["status"] = if allowed {
        json!({"allowed": true, "reason": "allowed by the kube double"})
    } else {
        json!({"allowed": false})
    };
    axum::Json(review).into_response()
}

/// A list or, with `watch`, a watch of `kind`'s objects `keep` accepts.
fn list_or_watch(
    s: &Arc<Shared>,
    kind: &'static str,
    list_kind: &str,
    query: &HashMap<String, String>,
    keep: impl Fn(&Value) -> bool + Send + Sync + 'static,
) -> Response {
    let selected_name = query
        .get("fieldSelector")
        .and_then(|f| f.strip_prefix("metadata.name="))
        .map(str::to_owned);
    let keep = move |o: &Value| {
        keep(o)
            && selected_name
                .as_deref()
                .is_none_or(|n| o["metadata"]["name"].as_str() == Some(n))
    };
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    if !watching {
        let revision = *s.revision.lock().expect("revision");
        let items: Vec<Value> = s
            .objects
            .lock()
            .expect("objects")
            .iter()
            .filter(|((k, _), o)| *k == kind && keep(o))
            .map(|(_, o)| o.clone())
            .collect();
        return axum::Json(json!({
            "apiVersion": "v1", "kind": list_kind,
            "metadata": {"resourceVersion": revision.to_string()},
            "items": items,
        }))
        .into_response();
    }
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Subscribed before the history is read, so nothing falls between the two.
    let live = s.events.subscribe();
    let past: Vec<_> = s
        .history
        .lock()
        .expect("history")
        .iter()
        .filter(|(rv, k, _, o)| *rv > from && *k == kind && keep(o))
        .cloned()
        .collect();
    let last = past.last().map(|e| e.0).unwrap_or(from);
    let line = |ty: &str, o: &Value| {
        Ok::<_, std::io::Error>(bytes::Bytes::from(format!(
            "{}\n",
            json!({"type": ty, "object": o})
        )))
    };
    let past = futures::stream::iter(past.into_iter().map(move |(_, _, ty, o)| line(ty, &o)));
    let future = futures::stream::unfold((live, keep), move |(mut live, keep)| async move {
        loop {
            match live.recv().await {
                Ok((rv, k, ty, o)) if rv > last && k == kind && keep(&o) => {
                    return Some((line(ty, &o), (live, keep)));
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    use futures::StreamExt;
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(past.chain(future)))
        .unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "body"))
}

async fn list_namespaces(
    State(s): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if bearer(&headers) != Some(MOOR_TOKEN) {
        let Some(user) = caller(&s, &headers) else {
            return unauthorized();
        };
        if !allowed(&s, &user, "list", "namespaces", "") {
            let name = user["username"].as_str().unwrap_or("");
            return status(
                StatusCode::FORBIDDEN,
                "Forbidden",
                &format!(
                    "namespaces is forbidden: User \"{name}\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
                ),
            );
        }
    }
    list_or_watch(&s, "namespaces", "NamespaceList", &q, |_| true)
}

async fn list_config_maps(
    State(s): State<Arc<Shared>>,
    Path(ns): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    list_or_watch(&s, "configmaps", "ConfigMapList", &q, move |o| {
        o["metadata"]["namespace"].as_str() == Some(ns.as_str())
    })
}

async fn list_secrets(
    State(s): State<Arc<Shared>>,
    Path(ns): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    list_or_watch(&s, "secrets", "SecretList", &q, move |o| {
        o["metadata"]["namespace"].as_str() == Some(ns.as_str())
    })
}

async fn list_all_secrets(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    list_or_watch(&s, "secrets", "SecretList", &q, |_| true)
}

fn get_object(s: &Shared, kind: &'static str, ns: &str, name: &str, uri: &Uri) -> Response {
    match s
        .objects
        .lock()
        .expect("objects")
        .get(&(kind, format!("{ns}/{name}")))
    {
        Some(o) => axum::Json(o.clone()).into_response(),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{kind} {name:?} not found ({uri})"),
        ),
    }
}

async fn get_config_map(
    State(s): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    get_object(&s, "configmaps", &ns, &name, &uri)
}

async fn get_secret(
    State(s): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    get_object(&s, "secrets", &ns, &name, &uri)
}

/// The workload plurals the double serves, as static names, with their group.
fn workload_kind(plural: &str) -> Option<&'static str> {
    [
        "deployments",
        "statefulsets",
        "daemonsets",
        "jobs",
        "cronjobs",
        "pods",
    ]
    .into_iter()
    .find(|k| *k == plural)
}

/// The request's bearer token.
fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// The user the request's bearer token names (kube's `user` object of a TokenReview).
fn caller(s: &Shared, headers: &axum::http::HeaderMap) -> Option<Value> {
    s.user(bearer(headers)?)
}

fn unauthorized() -> Response {
    status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
}

/// Whether a rule lets `user` (a TokenReview user) `verb` `resource` in `namespace`.
fn allowed(s: &Shared, user: &Value, verb: &str, resource: &str, namespace: &str) -> bool {
    let name = user["username"].as_str().unwrap_or("");
    let groups: Vec<&str> = user["groups"]
        .as_array()
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    s.rules.lock().expect("rules").iter().any(|rule| {
        (rule.subject == name || groups.contains(&rule.subject.as_str()))
            && matches(&rule.verb, verb)
            && matches(&rule.resource, resource)
            && matches(&rule.namespace, namespace)
    })
}

async fn self_subject_review(
    State(s): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    axum::Json(mut review): axum::Json<Value>,
) -> Response {
    let Some(user) = caller(&s, &headers) else {
        return unauthorized();
    };
    review["status"] = json!({"userInfo": user});
    (StatusCode::CREATED, axum::Json(review)).into_response()
}

async fn self_access_review(
    State(s): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    axum::Json(mut review): axum::Json<Value>,
) -> Response {
    let Some(user) = caller(&s, &headers) else {
        return unauthorized();
    };
    let r = &review["spec"]["resourceAttributes"];
    let field = |f: &str| r[f].as_str().unwrap_or("").to_owned();
    let ok = allowed(
        &s,
        &user,
        &field("verb"),
        &field("resource"),
        &field("namespace"),
    );
    review["status"] = json!({"allowed": ok});
    (StatusCode::CREATED, axum::Json(review)).into_response()
}

/// A namespace's workloads of `plural`, as the caller.
fn list_workloads_as(
    s: &Arc<Shared>,
    headers: &axum::http::HeaderMap,
    group: &str,
    plural: &str,
    ns: String,
) -> Response {
    let Some(kind) = workload_kind(plural) else {
        return status(StatusCode::NOT_FOUND, "NotFound", "no such resource");
    };
    let Some(user) = caller(s, headers) else {
        return unauthorized();
    };
    if !allowed(s, &user, "list", plural, &ns) {
        let name = user["username"].as_str().unwrap_or("");
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "{plural} is forbidden: User \"{name}\" cannot list resource \"{plural}\" in API group \"{group}\" in the namespace \"{ns}\""
            ),
        );
    }
    list_or_watch(s, kind, "List", &HashMap::new(), move |o| {
        o["metadata"]["namespace"].as_str() == Some(ns.as_str())
    })
}

async fn list_pods(
    State(s): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    Path(ns): Path<String>,
) -> Response {
    list_workloads_as(&s, &headers, "", "pods", ns)
}

async fn list_workloads(
    State(s): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    Path((group, ns, plural)): Path<(String, String, String)>,
) -> Response {
    let served = matches!(
        (group.as_str(), plural.as_str()),
        ("apps", "deployments" | "statefulsets" | "daemonsets") | ("batch", "jobs" | "cronjobs")
    );
    if !served {
        return status(StatusCode::NOT_FOUND, "NotFound", "no such resource");
    }
    list_workloads_as(&s, &headers, &group, &plural, ns)
}
