//! Cluster mode (`--cluster-kubeconfig`) against the kube double (a stand-in for
//! kube-apiserver, see `moor_testkit::kube_double`), through moor's real TLS
//! listener: front-proxy requests with real client certificates, TokenReview and
//! SubjectAccessReview with their caches (expired by a hand-moved clock), the
//! ConfigMap's CA rotation, the served groups, and the mirrored namespaces.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moor_testkit::kube_double::FRONT_PROXY_CN;
use moor_testkit::{KubeDouble, ManualClock, MoorServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The double with namespace `team-a`, and moor in cluster mode on it.
async fn cluster() -> (KubeDouble, MoorServer, Arc<ManualClock>) {
    cluster_with(|_| {}).await
}

/// [`cluster`], with more options.
async fn cluster_with(
    configure: impl FnOnce(&mut moor_server::serve::ServeOptions),
) -> (KubeDouble, MoorServer, Arc<ManualClock>) {
    let double = KubeDouble::start().await;
    double.add_namespace("team-a");
    let kubeconfig = double.kubeconfig();
    let clock = Arc::new(ManualClock::new());
    let mut builder = MoorServer::builder().with(|o| {
        o.plain_http = false;
        o.cluster = Some(moor_server::auth::cluster::ClusterSource::Kubeconfig(
            kubeconfig,
        ));
        configure(o);
    });
    builder.overrides.clock = Some(clock.clone());
    let moor = builder.listen().await;
    (double, moor, clock)
}

/// An HTTPS client trusting moor's CA, presenting `identity` (PEM cert and key).
fn https(moor: &MoorServer, identity: Option<&str>) -> reqwest::Client {
    let ca = std::fs::read(moor.data_dir().join("tls/ca.crt")).unwrap();
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap());
    if let Some(id) = identity {
        b = b.identity(reqwest::Identity::from_pem(id.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

fn streams_url(moor: &MoorServer, ns: &str) -> String {
    format!(
        "https://{}/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams",
        moor.host
    )
}

async fn get_as_alice_via_front_proxy(moor: &MoorServer, identity: &str) -> StatusCode {
    https(moor, Some(identity))
        .get(streams_url(moor, "team-a"))
        .header("X-Remote-User", "alice")
        .header("X-Remote-Group", "dev")
        .header("X-Remote-Extra-Scopes", "s1")
        .send()
        .await
        .unwrap()
        .status()
}

/// The last SubjectAccessReview's spec the double answered is not observable, but the
/// double's rule matching is: alice is allowed only as herself (user rule).
#[tokio::test]
async fn front_proxy_requests_act_as_the_headers_user_only_with_the_requestheader_ca() {
    let (double, moor, _clock) = cluster().await;
    double.allow("alice", "list", "imagestreams", "team-a");
    let front = double.front_proxy_identity(FRONT_PROXY_CN);
    assert_eq!(
        get_as_alice_via_front_proxy(&moor, &front).await,
        StatusCode::OK
    );
    // Headers without the certificate are nobody's word: anonymous, refused (401).
    let r = https(&moor, None)
        .get(streams_url(&moor, "team-a"))
        .header("X-Remote-User", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The requestheader CA, but a CommonName not in requestheader-allowed-names.
    let stranger = double.front_proxy_identity("not-the-aggregator");
    assert_eq!(
        get_as_alice_via_front_proxy(&moor, &stranger).await,
        StatusCode::UNAUTHORIZED
    );
    // The client CA's certificate with the allowed CommonName is its own user, not
    // a front proxy: the headers are ignored.
    let impostor = double.client_ca.client_identity(FRONT_PROXY_CN, &[]);
    let r = https(&moor, Some(&impostor))
        .get(streams_url(&moor, "team-a"))
        .header("X-Remote-User", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let text = r.text().await.unwrap();
    assert!(text.contains(FRONT_PROXY_CN), "{text}");
    // A client-CA user allowed by the cluster.
    double.allow("bob", "list", "imagestreams", "team-a");
    let bob = double.client_ca.client_identity("bob", &["dev"]);
    let r = https(&moor, Some(&bob))
        .get(streams_url(&moor, "team-a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn tokens_are_reviewed_once_per_ttl_and_failures_too() {
    let (double, moor, clock) = cluster().await;
    double.add_token("alice-token", "alice", &["dev"]);
    double.allow("dev", "list", "imagestreams", "team-a");
    let get = |token: &'static str| {
        https(&moor, None)
            .get(streams_url(&moor, "team-a"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(get("alice-token").await.unwrap().status(), StatusCode::OK);
    assert_eq!(get("alice-token").await.unwrap().status(), StatusCode::OK);
    assert_eq!(double.count("tokenreviews"), 1, "the second is cached");
    double.revoke_token("alice-token");
    clock.advance(Duration::from_secs(9));
    assert_eq!(get("alice-token").await.unwrap().status(), StatusCode::OK);
    assert_eq!(double.count("tokenreviews"), 1);
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        get("alice-token").await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "reviewed again after 10 s: revoked"
    );
    assert_eq!(double.count("tokenreviews"), 2);
    // Unknown tokens are cached as such (a retry storm costs one review per TTL).
    assert_eq!(
        get("forged").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get("forged").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(double.count("tokenreviews"), 3);
}

#[tokio::test]
async fn decisions_are_reviewed_once_per_ttl_and_masters_are_not_asked() {
    let (double, moor, clock) = cluster().await;
    double.add_token("alice-token", "alice", &["dev"]);
    double.allow("alice", "list", "imagestreams", "team-a");
    let get = || {
        https(&moor, None)
            .get(streams_url(&moor, "team-a"))
            .bearer_auth("alice-token")
            .send()
    };
    assert_eq!(get().await.unwrap().status(), StatusCode::OK);
    assert_eq!(get().await.unwrap().status(), StatusCode::OK);
    assert_eq!(double.count("subjectaccessreviews"), 1);
    double.clear_rules();
    clock.advance(Duration::from_secs(9));
    assert_eq!(get().await.unwrap().status(), StatusCode::OK, "cached");
    clock.advance(Duration::from_secs(1));
    let r = get().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "asked again: refused");
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("User \\\"alice\\\" cannot list")
    );
    assert_eq!(double.count("subjectaccessreviews"), 2);
    // Refusals are cached too.
    assert_eq!(get().await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(double.count("subjectaccessreviews"), 2);
    // moor's admin (system:masters) is never asked about.
    let r = https(&moor, None)
        .get(streams_url(&moor, "team-a"))
        .bearer_auth(&moor.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(double.count("subjectaccessreviews"), 2);
}

#[tokio::test]
async fn the_registry_asks_the_cluster_who_may_pull() {
    let (double, moor, _clock) = cluster().await;
    double.add_token("sa-token", "system:serviceaccount:team-a:builder", &[]);
    double.add_token("mallory-token", "mallory", &[]);
    double.allow(
        "system:serviceaccount:team-a:builder",
        "get",
        "imagestreams/layers",
        "team-a",
    );
    let pull = |token: &'static str| {
        https(&moor, None)
            .get(format!(
                "https://{}/v2/team-a/app/manifests/latest",
                moor.host
            ))
            .basic_auth("anyone", Some(token))
            .send()
    };
    let r = pull("sa-token").await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "allowed; no such stream");
    let r = pull("mallory-token").await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("DENIED"));
}

#[tokio::test]
async fn a_rotated_requestheader_ca_is_taken_from_the_config_map() {
    let (double, moor, _clock) = cluster().await;
    double.allow("alice", "list", "imagestreams", "team-a");
    let old = double.front_proxy_identity(FRONT_PROXY_CN);
    assert_eq!(
        get_as_alice_via_front_proxy(&moor, &old).await,
        StatusCode::OK
    );
    double.rotate_front_proxy_ca();
    let new = double.front_proxy_identity(FRONT_PROXY_CN);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let sent = https(&moor, Some(&new))
            .get(streams_url(&moor, "team-a"))
            .header("X-Remote-User", "alice")
            .send()
            .await;
        if sent.is_ok_and(|r| r.status() == StatusCode::OK) {
            break;
        }
        assert!(Instant::now() < deadline, "the new CA was never accepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The old CA is gone: its certificate fails the handshake or vouches for nobody.
    let sent = https(&moor, Some(&old))
        .get(streams_url(&moor, "team-a"))
        .header("X-Remote-User", "alice")
        .send()
        .await;
    assert!(sent.is_err() || sent.is_ok_and(|r| r.status() == StatusCode::UNAUTHORIZED));
}

#[tokio::test]
async fn cluster_mode_serves_its_groups_in_the_clusters_namespaces() {
    let (double, moor, _clock) = cluster().await;
    let admin = |m: reqwest::Method, url: String| {
        https(&moor, None).request(m, url).bearer_auth(&moor.token)
    };
    let groups: Value = admin(reqwest::Method::GET, format!("https://{}/apis", moor.host))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(names, ["image.openshift.io", "moor.io"], "{groups}");
    for path in ["/api/v1/namespaces", "/api/v1/namespaces/team-a/secrets"] {
        let r = admin(reqwest::Method::GET, format!("https://{}{path}", moor.host))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let stream = |name: &str| json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream", "metadata": {"name": name}});
    // A namespace the cluster does not have.
    let r = admin(reqwest::Method::POST, streams_url(&moor, "team-b"))
        .json(&stream("app"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["details"]["kind"], "namespaces", "{body}");
    assert_eq!(body["details"]["name"], "team-b", "{body}");
    // Once the cluster has it, it can hold streams.
    double.add_namespace("team-b");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = admin(reqwest::Method::POST, streams_url(&moor, "team-b"))
            .json(&stream("app"))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::CREATED {
            break;
        }
        assert!(Instant::now() < deadline, "team-b never appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its deletion in the cluster takes the streams with it.
    double.delete_namespace("team-b");
    let url = format!("{}/app", streams_url(&moor, "team-b"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = admin(reqwest::Method::GET, url.clone())
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stream outlived its namespace"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And a stream in team-a was left alone.
    let r = admin(reqwest::Method::GET, streams_url(&moor, "team-a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// The webhook trusts certificates of `--client-ca-file` (kube-apiserver's, from its
/// AdmissionConfiguration kubeconfig); the cluster's client CA signs every node's and
/// user's certificate, so those callers, like token holders, need `create
/// admissionreviews`; strangers get 401.
#[tokio::test]
async fn the_webhook_answers_its_client_ca_and_callers_the_cluster_allows() {
    let webhook_ca = moor_testkit::TestCa::new("webhook client CA");
    let ca_file = double_dir_file(&webhook_ca);
    let (double, moor, clock) =
        cluster_with(|o| o.client_ca_file = Some(ca_file.path().to_path_buf())).await;
    let url = format!("https://{}/admission/image-policy", moor.host);
    let path = format!(
        "{}/tests/fixtures/admission/pod-create.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let review: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let post = |identity: Option<String>, token: Option<&str>| {
        let mut r = https(&moor, identity.as_deref()).post(&url).json(&review);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move { r.send().await.unwrap().status() }
    };
    assert_eq!(
        post(None, None).await,
        StatusCode::UNAUTHORIZED,
        "a stranger"
    );
    let apiserver = webhook_ca.client_identity("kube-apiserver", &[]);
    assert_eq!(post(Some(apiserver), None).await, StatusCode::OK);
    let node = double
        .client_ca
        .client_identity("system:node:n1", &["system:nodes"]);
    assert_eq!(post(Some(node.clone()), None).await, StatusCode::FORBIDDEN);
    double.add_token("webhook-caller", "system:serviceaccount:x:caller", &[]);
    assert_eq!(
        post(None, Some("webhook-caller")).await,
        StatusCode::FORBIDDEN
    );
    double.allow(
        "system:serviceaccount:x:caller",
        "create",
        "admissionreviews",
        "*",
    );
    double.allow("system:node:n1", "create", "admissionreviews", "*");
    // The refusals above are cached for 10 s.
    clock.advance(Duration::from_secs(10));
    assert_eq!(post(None, Some("webhook-caller")).await, StatusCode::OK);
    assert_eq!(post(Some(node), None).await, StatusCode::OK);
}

/// `ca`'s certificate in a temporary file.
fn double_dir_file(ca: &moor_testkit::TestCa) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), ca.pem()).unwrap();
    file
}

/// Tagging from another namespace needs pull there, asked of the cluster before the
/// write (the check inside the update step cannot wait for it), so the first try of
/// an allowed create or patch succeeds and a refused one is a 422.
#[tokio::test]
async fn tagging_from_another_namespace_is_asked_of_the_cluster_before_the_write() {
    let (double, moor, _clock) = cluster().await;
    double.add_namespace("team-src");
    for (token, user) in [("alice-token", "alice"), ("mallory-token", "mallory")] {
        double.add_token(token, user, &[]);
        double.allow(user, "*", "imagestreams", "team-a");
    }
    double.allow("alice", "get", "imagestreams/layers", "team-src");
    let tagged = |name: &str, tag: &str| {
        json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
               "metadata": {"name": name},
               "spec": {"tags": [{"name": tag, "from": {"kind": "ImageStreamTag",
                                  "namespace": "team-src", "name": "base:1"}}]}})
    };
    let create = |token: &'static str, body: Value| {
        https(&moor, None)
            .post(streams_url(&moor, "team-a"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let r = create("alice-token", tagged("app", "1")).await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let r = create("mallory-token", tagged("other", "1")).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("team-src/base"));
    // A patch adding a tag from there: its new object is predicted and asked first.
    let r = https(&moor, None)
        .patch(format!("{}/app", streams_url(&moor, "team-a")))
        .bearer_auth("alice-token")
        .header("content-type", "application/merge-patch+json")
        .json(&json!({"spec": {"tags": [
            {"name": "1", "from": {"kind": "ImageStreamTag", "namespace": "team-src", "name": "base:1"}},
            {"name": "2", "from": {"kind": "ImageStreamTag", "namespace": "team-src", "name": "other:2"}}]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

/// Concurrent requests with one uncached token cost one TokenReview.
#[tokio::test]
async fn concurrent_requests_with_a_new_token_share_one_review() {
    let (double, moor, _clock) = cluster().await;
    double.add_token("alice-token", "alice", &[]);
    double.allow("alice", "list", "imagestreams", "team-a");
    let client = https(&moor, None);
    let sends = (0..16).map(|_| {
        client
            .get(streams_url(&moor, "team-a"))
            .bearer_auth("alice-token")
            .send()
    });
    for r in futures::future::join_all(sends).await {
        assert_eq!(r.unwrap().status(), StatusCode::OK);
    }
    assert_eq!(double.count("tokenreviews"), 1);
}

/// moor in cluster mode on `double`, over `store`.
async fn cluster_over(double: &KubeDouble, store: Arc<dyn moor_store::Store>) -> MoorServer {
    let kubeconfig = double.kubeconfig();
    MoorServer::builder()
        .store(store)
        .with(|o| {
            o.plain_http = false;
            o.cluster = Some(moor_server::auth::cluster::ClusterSource::Kubeconfig(
                kubeconfig,
            ));
        })
        .listen()
        .await
}

/// A namespace missing from the first listing loses its streams only when it was
/// mirrored from that same cluster (deleted while moor was down); pointed at another
/// cluster by mistake, moor keeps them.
#[tokio::test]
async fn a_listing_deletes_streams_only_of_namespaces_mirrored_from_that_cluster() {
    let store: Arc<dyn moor_store::Store> = Arc::new(moor_store::MemoryStore::new());
    let first = KubeDouble::start().await;
    first.add_namespace("team-a");
    first.add_namespace("team-b");
    let admin = |moor: &MoorServer, m: reqwest::Method, url: String| {
        https(moor, None).request(m, url).bearer_auth(&moor.token)
    };
    let stream = |name: &str| {
        json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
               "metadata": {"name": name}})
    };
    let moor = cluster_over(&first, store.clone()).await;
    for ns in ["team-a", "team-b"] {
        let r = admin(&moor, reqwest::Method::POST, streams_url(&moor, ns))
            .json(&stream("app"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    moor.stop().await;

    // team-a is deleted while moor is down.
    first.delete_namespace("team-a");
    let moor = cluster_over(&first, store.clone()).await;
    let get = |moor: &MoorServer, ns: &str| {
        admin(
            moor,
            reqwest::Method::GET,
            format!("{}/app", streams_url(moor, ns)),
        )
        .send()
    };
    assert_eq!(
        get(&moor, "team-a").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(&moor, "team-b").await.unwrap().status(), StatusCode::OK);
    moor.stop().await;

    // Another cluster, without team-b: its stream is kept, new ones refused.
    let other = KubeDouble::start().await;
    let moor = cluster_over(&other, store.clone()).await;
    assert_eq!(
        get(&moor, "team-b").await.unwrap().status(),
        StatusCode::OK,
        "kept"
    );
    let r = admin(&moor, reqwest::Method::POST, streams_url(&moor, "team-b"))
        .json(&stream("more"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "no new streams there");
    moor.stop().await;
}

/// In cluster mode, imports use the cluster's pull secrets: a tag from a registry that
/// needs credentials fails `Unauthorized`, and once the cluster has a
/// `kubernetes.io/dockerconfigjson` Secret in the stream's namespace, its creation
/// (seen through the cluster's watch) retries the tag, which imports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_use_the_clusters_pull_secrets() {
    use moor_testkit::{DistributionOptions, Format, ImageSpec, OciLayout};
    let Some(dist) = moor_testkit::Distribution::start_with(DistributionOptions {
        htpasswd: Some(("moor".into(), "s3cret".into())),
        ..Default::default()
    }) else {
        return;
    };
    let layout = OciLayout::new();
    layout.add_image("1.0", &ImageSpec::new("amd64"));
    let pushed = dist.push(&layout, "1.0", "private/app:1.0", Format::Oci);

    let double = KubeDouble::start().await;
    double.add_namespace("team-a");
    let kubeconfig = double.kubeconfig();
    let mut builder = MoorServer::builder()
        .with(|o| {
            o.plain_http = false;
            o.cluster = Some(moor_server::auth::cluster::ClusterSource::Kubeconfig(
                kubeconfig,
            ));
        })
        .upstream(&[&dist.host])
        .imports(moor_server::importer::controller::Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(1),
            max_retries: 50,
        });
    builder.overrides.ignore_proxy_environment = true;
    let moor = builder.listen().await;
    let admin = |m: reqwest::Method, url: String| {
        https(&moor, None).request(m, url).bearer_auth(&moor.token)
    };
    let r = admin(reqwest::Method::POST, streams_url(&moor, "team-a"))
        .json(&json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
                      "metadata": {"name": "private"},
                      "spec": {"tags": [{"name": "1.0", "from": {"kind": "DockerImage", "name": pushed.reference}}]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let tag_status = || async {
        let s: Value = admin(
            reqwest::Method::GET,
            format!("{}/private", streams_url(&moor, "team-a")),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        s["status"]["tags"][0].clone()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let failed = loop {
        let t = tag_status().await;
        if t["conditions"][0]["reason"] == "Unauthorized" {
            break t;
        }
        assert!(Instant::now() < deadline, "no Unauthorized failure: {t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        failed["items"].is_null() || failed["items"] == json!([]),
        "{failed}"
    );

    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode("moor:s3cret");
    double.add_pull_secret(
        "team-a",
        "pull",
        &json!({"auths": {dist.host.as_str(): {"auth": auth}}}).to_string(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = tag_status().await;
        if t["items"][0]["image"] == pushed.digest.as_str() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not imported with the cluster's secret: {t}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(double.count("/secrets") >= 2, "read from the cluster");
}

/// Without `--tls-cert-file`, moor's own certificate names every `--tls-san`: the
/// aggregator proxies to `https://SERVICE.NAMESPACE.svc` and checks that name.
#[tokio::test]
async fn the_own_certificate_names_the_tls_sans() {
    let (_double, moor, _clock) =
        cluster_with(|o| o.tls_sans = vec!["moor.moor.svc".into(), "10.0.0.7".into()]).await;
    let addr: std::net::SocketAddr = moor.host.parse().unwrap();
    let ca = std::fs::read(moor.data_dir().join("tls/ca.crt")).unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .resolve("moor.moor.svc", addr)
        .build()
        .unwrap();
    let r = client
        .get(format!("https://moor.moor.svc:{}/healthz", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let pem = std::fs::read(moor.data_dir().join("tls/server.crt")).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    let names = &cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    let ip = x509_parser::extensions::GeneralName::IPAddress(&[10, 0, 0, 7]);
    assert!(names.contains(&ip), "{names:?}");
}

/// moor applies its bootstrap ClusterRoles into the cluster at start when its identity
/// may write them; the chart's least-privilege identity may not, and moor starts anyway
/// after one refused write.
#[tokio::test]
async fn bootstrap_roles_are_applied_when_permitted() {
    let (double, _moor, _clock) = cluster().await;
    assert_eq!(double.count("clusterroles"), 1, "stops at the first 403");
    assert!(double.cluster_role("system:image-puller").is_none());

    let double = KubeDouble::start().await;
    double.allow_rbac_writes();
    let kubeconfig = double.kubeconfig();
    let _moor = MoorServer::builder()
        .with(|o| {
            o.plain_http = false;
            o.cluster = Some(moor_server::auth::cluster::ClusterSource::Kubeconfig(
                kubeconfig,
            ));
        })
        .listen()
        .await;
    let puller = double.cluster_role("system:image-puller").expect("applied");
    assert_eq!(puller["kind"], "ClusterRole", "{puller}");
    let rules = puller["rules"].to_string();
    assert!(rules.contains("imagestreams/layers"), "{rules}");
    let edit = double
        .cluster_role("moor:aggregate-to-edit")
        .expect("applied");
    assert_eq!(
        edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"], "true",
        "{edit}"
    );
    for call in double.calls() {
        if call.path.contains("clusterroles") {
            assert_eq!(call.method, reqwest::Method::PATCH);
            assert!(call.path.contains("fieldManager=moor"), "{}", call.path);
        }
    }
}
