//! The importer against a real CNCF distribution (images pushed by umoci + skopeo):
//! digests as skopeo sees them (OCI and Docker schema2), manifest lists in Legacy and
//! PreserveOriginal modes, pull secrets, NotFound with history kept, a stopped
//! upstream retried with backoff, a mirror's definite answer reported as it is and not
//! retried (identical failures counted on one Event), a lying registry refused, ImageStreamImport (dry run,
//! import, capped repository import), and tags resolved without a registry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use moor_server::upstream::{UpstreamClient, UpstreamConfig};
use moor_testkit::server::*;
use moor_testkit::{Distribution, DistributionOptions, Format, ImageSpec, OciLayout};
use serde_json::{Value, json};

fn upstream(insecure: &[&str]) -> Arc<UpstreamClient> {
    Arc::new(
        UpstreamClient::new(UpstreamConfig {
            insecure_registries: insecure.iter().map(|s| s.to_string()).collect(),
            use_environment_proxy: false,
            ..Default::default()
        })
        .unwrap(),
    )
}

fn tag(name: &str, from: &str) -> Value {
    json!({"name": name, "from": {"kind": "DockerImage", "name": from}})
}

async fn create_stream(h: &MoorServer, name: &str, tags: Vec<Value>) {
    let r = h
        .post(
            IS,
            &json!({"metadata": {"name": name}, "spec": {"tags": tags}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// Polls the stream until `pred` holds for status tag `tag`, or panics after 30 s.
async fn wait_tag(h: &MoorServer, stream: &str, tag: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = h.get(&format!("{IS}/{stream}")).await.body;
        let t = s["status"]["tags"]
            .as_array()
            .and_then(|a| a.iter().find(|t| t["tag"] == tag))
            .cloned()
            .unwrap_or(Value::Null);
        if pred(&t) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "tag {stream}:{tag} never satisfied the condition; last: {t}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn imported(t: &Value) -> bool {
    t["items"].as_array().is_some_and(|a| !a.is_empty())
}

/// A distribution that needs Basic auth (`moor`/`s3cret`), holding
/// `private/app:1.0`; `None` without the peer.
fn protected_registry() -> Option<(Distribution, moor_testkit::Pushed)> {
    let dist = Distribution::start_with(DistributionOptions {
        htpasswd: Some(("moor".into(), "s3cret".into())),
        ..Default::default()
    })?;
    let layout = OciLayout::new();
    layout.add_image("1.0", &ImageSpec::new("amd64"));
    let pushed = dist.push(&layout, "1.0", "private/app:1.0", Format::Oci);
    Some((dist, pushed))
}

/// A `kubernetes.io/dockerconfigjson` Secret `pull` with the protected registry's
/// credentials for `host`.
fn pull_secret(host: &str) -> Value {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode("moor:s3cret");
    let cfg = json!({"auths": {host: {"auth": auth}}}).to_string();
    json!({"metadata": {"name": "pull"}, "type": "kubernetes.io/dockerconfigjson",
           "stringData": {".dockerconfigjson": cfg}})
}

fn failed_with(reason: &'static str) -> impl Fn(&Value) -> bool {
    move |t: &Value| {
        t["conditions"].as_array().is_some_and(|c| {
            c.iter().any(|c| {
                c["type"] == "ImportSuccess" && c["status"] == "False" && c["reason"] == reason
            })
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_equal_skopeo_for_oci_and_docker_schema2() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let layout = OciLayout::new();
    layout.add_image("1.0", &ImageSpec::new("amd64"));
    let oci = dist.push(&layout, "1.0", "app/oci:1.0", Format::Oci);
    let docker = dist.push(&layout, "1.0", "app/docker:1.0", Format::DockerV2S2);
    assert_ne!(oci.digest, docker.digest);
    let h = MoorServer::importing(upstream(&[&dist.host])).await;
    create_stream(
        &h,
        "app",
        vec![tag("oci", &oci.reference), tag("docker", &docker.reference)],
    )
    .await;
    for (t, pushed, mt) in [
        ("oci", &oci, "application/vnd.oci.image.manifest.v1+json"),
        (
            "docker",
            &docker,
            "application/vnd.docker.distribution.manifest.v2+json",
        ),
    ] {
        let status = wait_tag(&h, "app", t, imported).await;
        let item = &status["items"][0];
        assert_eq!(item["image"], pushed.digest.as_str());
        let repo = pushed.reference.rsplit_once(':').unwrap().0;
        assert_eq!(
            item["dockerImageReference"],
            format!("{repo}@{}", pushed.digest)
        );
        assert_eq!(item["generation"], 1);
        let image = h
            .get(&format!(
                "/apis/image.openshift.io/v1/images/{}",
                pushed.digest
            ))
            .await;
        assert_eq!(image.status, StatusCode::OK, "{}", image.text);
        let meta = &image.body["dockerImageMetadata"];
        assert_eq!(meta["Architecture"], "amd64");
        assert_eq!(meta["Os"], "linux");
        assert_eq!(meta["Config"]["Cmd"], json!(["/hello.txt"]));
        assert_eq!(image.body["dockerImageManifestMediaType"], mt);
        assert!(
            !image.body["dockerImageLayers"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        let istag = h.get(&format!("{ISTAG}/app:{t}")).await;
        assert_eq!(
            istag.body["image"]["metadata"]["name"],
            pushed.digest.as_str()
        );
    }
    let events = h
        .get("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dapp")
        .await;
    assert!(
        events.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == "ImportSucceeded"),
        "{}",
        events.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_platform_index_imports_in_both_modes() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let layout = OciLayout::new();
    let amd = layout.add_image("amd", &ImageSpec::new("amd64"));
    let arm = layout.add_image("arm", &ImageSpec::new("arm64"));
    layout.add_index("multi", &["amd", "arm"]);
    let pushed = dist.push(&layout, "multi", "multi/app:1", Format::Oci);
    let h = MoorServer::importing(upstream(&[&dist.host])).await;
    let mut preserve = tag("preserve", &pushed.reference);
    preserve["importPolicy"] = json!({"importMode": "PreserveOriginal"});
    let mut prefer = tag("prefer", &pushed.reference);
    prefer["annotations"] = json!({"importer.image.openshift.io/prefer-arch": "arm64"});
    create_stream(
        &h,
        "multi",
        vec![tag("legacy", &pushed.reference), preserve, prefer],
    )
    .await;

    let legacy = wait_tag(&h, "multi", "legacy", imported).await;
    assert_eq!(
        legacy["items"][0]["image"],
        amd.digest.as_str(),
        "Legacy picks linux/amd64"
    );
    let prefer = wait_tag(&h, "multi", "prefer", imported).await;
    assert_eq!(
        prefer["items"][0]["image"],
        arm.digest.as_str(),
        "prefer-arch wins"
    );
    let preserve = wait_tag(&h, "multi", "preserve", imported).await;
    assert_eq!(
        preserve["items"][0]["image"],
        pushed.digest.as_str(),
        "PreserveOriginal keeps the index"
    );
    let list = h
        .get(&format!(
            "/apis/image.openshift.io/v1/images/{}",
            pushed.digest
        ))
        .await
        .body;
    let manifests = list["dockerImageManifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2);
    assert!(
        manifests
            .iter()
            .any(|m| m["architecture"] == "arm64" && m["digest"] == arm.digest.as_str())
    );
    for child in [&amd.digest, &arm.digest] {
        let r = h
            .get(&format!("/apis/image.openshift.io/v1/images/{child}"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "child image {child} exists");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_secrets_unlock_a_protected_registry() {
    let Some((dist, pushed)) = protected_registry() else {
        return;
    };
    let h = MoorServer::importing(upstream(&[&dist.host])).await;
    create_stream(&h, "private", vec![tag("1.0", &pushed.reference)]).await;
    let status = wait_tag(&h, "private", "1.0", failed_with("Unauthorized")).await;
    assert!(!imported(&status));

    let r = h
        .post(
            "/api/v1/namespaces/default/secrets",
            &pull_secret(&dist.host),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // Ask for a re-import (generation 0), as `moor tag` does.
    let r = h
        .patch(
            &format!("{IS}/private"),
            "application/json-patch+json",
            &json!([{"op": "replace", "path": "/spec/tags/0/generation", "value": 0}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let status = wait_tag(&h, "private", "1.0", imported).await;
    assert_eq!(status["items"][0]["image"], pushed.digest.as_str());
    assert!(
        status["conditions"].as_array().is_none_or(|c| c.is_empty()),
        "success clears the condition"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_tag_is_not_found_and_history_is_kept() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let layout = OciLayout::new();
    layout.add_image("1.0", &ImageSpec::new("amd64"));
    let pushed = dist.push(&layout, "1.0", "app/x:1.0", Format::Oci);
    let h = MoorServer::importing(upstream(&[&dist.host])).await;
    create_stream(&h, "x", vec![tag("t", &pushed.reference)]).await;
    wait_tag(&h, "x", "t", imported).await;
    let r = h
        .patch(
            &format!("{IS}/x"),
            "application/strategic-merge-patch+json",
            &json!({"spec": {"tags": [tag("t", &dist.reference("app/x:nope"))]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let status = wait_tag(&h, "x", "t", failed_with("NotFound")).await;
    assert_eq!(status["items"].as_array().unwrap().len(), 1, "history kept");
    assert_eq!(status["items"][0]["image"], pushed.digest.as_str());
    let cond = &status["conditions"][0];
    assert_eq!(cond["generation"], 2);
    assert!(
        cond["message"].as_str().unwrap().contains("nope")
            || cond["message"].as_str().unwrap().contains("unknown"),
        "{cond}"
    );
    let events = h
        .get("/api/v1/namespaces/default/events?fieldSelector=reason%3DImportFailed")
        .await;
    assert!(!events.body["items"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_upstream_sets_a_condition_and_the_retry_imports_later() {
    let Some(mut dist) = Distribution::start() else {
        return;
    };
    let layout = OciLayout::new();
    layout.add_image("1.0", &ImageSpec::new("amd64"));
    let pushed = dist.push(&layout, "1.0", "app/down:1.0", Format::Oci);
    dist.stop();
    let h = MoorServer::importing(upstream(&[&dist.host])).await;
    create_stream(&h, "down", vec![tag("t", &pushed.reference)]).await;
    let status = wait_tag(&h, "down", "t", |t| {
        t["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["status"] == "False"))
    })
    .await;
    assert!(!imported(&status));
    dist.restart();
    let status = wait_tag(&h, "down", "t", imported).await;
    assert_eq!(status["items"][0]["image"], pushed.digest.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_registry_is_refused_and_nothing_is_recorded() {
    use axum::Router;
    use axum::routing::get;
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2,
                   "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
        "layers": []})
    .to_string();
    let lie = format!("sha256:{}", "0".repeat(64));
    let app = Router::new().route("/v2/", get(|| async { "{}" })).route(
        "/v2/lie/app/manifests/{reference}",
        get(move || {
            let (manifest, lie) = (manifest.clone(), lie.clone());
            async move {
                (
                    [
                        (
                            "content-type",
                            "application/vnd.oci.image.manifest.v1+json".to_string(),
                        ),
                        ("docker-content-digest", lie),
                    ],
                    manifest,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let h = MoorServer::importing(upstream(&[&addr])).await;
    create_stream(
        &h,
        "lie",
        vec![
            tag("t", &format!("{addr}/lie/app:1")),
            tag("d", &format!("{addr}/lie/app@sha256:{}", "1".repeat(64))),
        ],
    )
    .await;
    for t in ["t", "d"] {
        let status = wait_tag(&h, "lie", t, |t| {
            t["conditions"].as_array().is_some_and(|c| !c.is_empty())
        })
        .await;
        assert!(!imported(&status), "nothing recorded for {t}");
        assert_eq!(status["conditions"][0]["reason"], "Invalid", "{status}");
    }
    let images = h.get("/apis/image.openshift.io/v1/images").await;
    assert!(
        images.body["items"].as_array().unwrap().is_empty(),
        "no Image was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_stream_imports_dry_run_import_and_capped_repositories() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let layout = OciLayout::new();
    layout.add_image("a", &ImageSpec::new("amd64"));
    layout.add_image("b", &ImageSpec::new("amd64").with_file("b.txt", "b"));
    let v1 = dist.push(&layout, "a", "repo/app:1.0", Format::Oci);
    for t in ["latest", "2.0", "3.0", "edge"] {
        dist.push(&layout, "b", &format!("repo/app:{t}"), Format::Oci);
    }
    let h = MoorServer::importing(upstream(&[&dist.host])).await;
    let isi = "/apis/image.openshift.io/v1/namespaces/default/imagestreamimports";
    let body = |import: bool| {
        json!({"metadata": {"name": "imp"}, "spec": {"import": import, "images": [
            {"from": {"kind": "DockerImage", "name": v1.reference}, "to": {"name": "one"}},
            {"from": {"kind": "DockerImage", "name": dist.reference("repo/app:missing")}, "to": {"name": "bad"}},
        ]}})
    };
    let r = h.post(isi, &body(false)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["status"]["images"][0]["status"]["status"], "Success");
    assert_eq!(
        r.body["status"]["images"][0]["image"]["metadata"]["name"],
        v1.digest.as_str()
    );
    assert_eq!(
        r.body["status"]["images"][1]["status"]["reason"],
        "NotFound"
    );
    assert_eq!(
        h.get(&format!("{IS}/imp")).await.status,
        StatusCode::NOT_FOUND,
        "a dry run writes nothing"
    );

    let r = h.post(isi, &body(true)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let stream = &r.body["status"]["import"];
    let one = stream["status"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == "one")
        .unwrap();
    assert_eq!(one["items"][0]["image"], v1.digest.as_str());
    let spec_gen = stream["spec"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "one")
        .unwrap()["generation"]
        .clone();
    assert_eq!(one["items"][0]["generation"], spec_gen);
    let bad = stream["status"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == "bad")
        .unwrap();
    assert_eq!(bad["conditions"][0]["reason"], "NotFound");

    let repo = json!({"metadata": {"name": "all"}, "spec": {"import": true, "repository": {"from": {"kind": "DockerImage", "name": dist.reference("repo/app")}}}});
    let r = h.post(isi, &repo).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let status = &r.body["status"]["repository"];
    let tags: Vec<&str> = status["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["tag"].as_str().unwrap())
        .collect();
    assert_eq!(
        tags,
        vec!["latest", "3.0", "2.0"],
        "latest first, then semver descending, capped at 3"
    );
    assert_eq!(status["additionalTags"], json!(["1.0", "edge"]));
    let stream = h.get(&format!("{IS}/all")).await.body;
    assert_eq!(stream["spec"]["tags"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_from_other_tags_resolve_without_a_registry_and_roll_back() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let layout = OciLayout::new();
    layout.add_image("a", &ImageSpec::new("amd64"));
    layout.add_image("b", &ImageSpec::new("amd64").with_file("b.txt", "b"));
    let v1 = dist.push(&layout, "a", "kc/kc:1", Format::Oci);
    let v2 = dist.push(&layout, "b", "kc/kc:2", Format::Oci);
    let h = MoorServer::importing(upstream(&[&dist.host])).await;
    create_stream(&h, "kc", vec![tag("20.0", &v1.reference)]).await;
    wait_tag(&h, "kc", "20.0", imported).await;
    // A tracking tag (ImageStreamTag source) and a copy (ImageStreamImage source).
    let r = h
        .patch(
            &format!("{IS}/kc"),
            "application/strategic-merge-patch+json",
            &json!({"spec": {"tags": [
                {"name": "stable", "from": {"kind": "ImageStreamTag", "name": "kc:20.0"}},
                {"name": "pinned", "from": {"kind": "ImageStreamImage", "name": format!("kc@{}", v1.digest)}},
            ]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let stable = wait_tag(&h, "kc", "stable", imported).await;
    assert_eq!(stable["items"][0]["image"], v1.digest.as_str());
    let pinned = wait_tag(&h, "kc", "pinned", imported).await;
    assert_eq!(pinned["items"][0]["image"], v1.digest.as_str());
    // The source moves: the tracking tag follows, the copy stays.
    h.patch(
        &format!("{IS}/kc"),
        "application/strategic-merge-patch+json",
        &json!({"spec": {"tags": [tag("20.0", &v2.reference)]}}),
    )
    .await;
    let main = wait_tag(&h, "kc", "20.0", |t| {
        t["items"].as_array().is_some_and(|a| a.len() == 2)
    })
    .await;
    assert_eq!(main["items"][0]["image"], v2.digest.as_str());
    assert_eq!(main["items"][1]["image"], v1.digest.as_str());
    let stable = wait_tag(&h, "kc", "stable", |t| {
        t["items"][0]["image"] == v2.digest.as_str()
    })
    .await;
    assert_eq!(stable["items"].as_array().unwrap().len(), 2);
    let pinned = wait_tag(&h, "kc", "pinned", imported).await;
    assert_eq!(pinned["items"][0]["image"], v1.digest.as_str());
    // An ambiguous prefix of this stream's history is refused; nothing changes.
    let r = h
        .patch(
            &format!("{IS}/kc"),
            "application/strategic-merge-patch+json",
            &json!({"spec": {"tags": [{"name": "20.0", "from": {"kind": "ImageStreamImage", "name": "kc@sha256:"}}]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("multiple images match"),
        "{}",
        r.text
    );
    // Rolling back 20.0 is tagging its older entry onto it (a unique prefix will do).
    let prefix = &v1.digest["sha256:".len().."sha256:".len() + 10];
    let r = h
        .patch(
            &format!("{IS}/kc"),
            "application/strategic-merge-patch+json",
            &json!({"spec": {"tags": [{"name": "20.0", "from": {"kind": "ImageStreamImage", "name": format!("kc@{prefix}")}}]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let spec = r.body["spec"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "20.0")
        .unwrap()
        .clone();
    assert_eq!(
        spec["from"]["name"],
        format!("kc@{}", v1.digest),
        "the prefix is stored as the full digest"
    );
    let main = wait_tag(&h, "kc", "20.0", |t| {
        t["items"][0]["image"] == v1.digest.as_str()
    })
    .await;
    assert_eq!(
        main["items"].as_array().unwrap().len(),
        3,
        "a rollback adds an entry"
    );
    wait_tag(&h, "kc", "stable", |t| {
        t["items"][0]["image"] == v1.digest.as_str()
    })
    .await;
    // imagestreamimages resolve a unique digest prefix and refuse an ambiguous one.
    let isimages = "/apis/image.openshift.io/v1/namespaces/default/imagestreamimages";
    let short = &v2.digest["sha256:".len().."sha256:".len() + 12];
    let r = h.get(&format!("{isimages}/kc@{short}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["image"]["metadata"]["name"], v2.digest.as_str());
    assert_eq!(r.body["metadata"]["name"], format!("kc@{}", v2.digest));
    let r = h.get(&format!("{isimages}/kc@sha256:")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("multiple images match")
    );
    let r = h.get(&format!("{isimages}/kc@sha256:ffffffffffff")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// A registry that accepts connections and never answers; counts what it accepted.
struct HangingRegistry {
    host: String,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl HangingRegistry {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming().flatten() {
                held.push(conn);
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        HangingRegistry { host, accepted }
    }

    async fn wait_accepted(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.accepted.load(std::sync::atomic::Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "fewer than {n} connections");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_registry_delays_no_import_from_another() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let layout = OciLayout::new();
    layout.add_image("1.0", &ImageSpec::new("amd64"));
    let pushed = dist.push(&layout, "1.0", "app/healthy:1.0", Format::Oci);
    let hanging = HangingRegistry::start();
    let h = MoorServer::importing(upstream(&[&dist.host, &hanging.host])).await;
    for i in 0..5 {
        create_stream(
            &h,
            &format!("stuck{i}"),
            vec![tag("1.0", &format!("{}/app/stuck:{i}", hanging.host))],
        )
        .await;
    }
    // All five are in flight (the upstream client has no answer and, here, no
    // timeout shorter than the test).
    hanging.wait_accepted(5).await;
    let started = Instant::now();
    create_stream(&h, "healthy", vec![tag("1.0", &pushed.reference)]).await;
    let status = wait_tag(&h, "healthy", "1.0", imported).await;
    let elapsed = started.elapsed();
    assert_eq!(status["items"][0]["image"], pushed.digest.as_str());
    assert!(
        elapsed < Duration::from_secs(3),
        "the healthy import took {elapsed:?} behind a hanging registry"
    );
    for i in 0..5 {
        let s = h.get(&format!("{IS}/stuck{i}")).await.body;
        assert!(
            s["status"]["tags"].as_array().is_none_or(|t| t.is_empty()),
            "{s}"
        );
    }
}

/// A registry (`hang.example`) whose `slow/...` manifests never come, counting the
/// requests that started and those dropped (cancelled); `fast/...` is NotFound at once.
#[derive(Default)]
struct SlowSource {
    started: std::sync::atomic::AtomicUsize,
    dropped: Arc<std::sync::atomic::AtomicUsize>,
}

struct CountDrop(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl moor_server::importer::Source for SlowSource {
    async fn manifest(
        &self,
        r: &moor_api::DockerImageReference,
        o: &moor_server::importer::PullOptions,
    ) -> Result<moor_server::importer::FetchedManifest, moor_server::importer::ImportError> {
        if r.exact().contains("/slow:") {
            self.started
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _guard = CountDrop(self.dropped.clone());
            std::future::pending::<()>().await;
        }
        NoRegistry.manifest(r, o).await
    }
    async fn blob(
        &self,
        r: &moor_api::DockerImageReference,
        d: &moor_api::Digest,
        o: &moor_server::importer::PullOptions,
    ) -> Result<bytes::Bytes, moor_server::importer::ImportError> {
        NoRegistry.blob(r, d, o).await
    }
    async fn tags(
        &self,
        r: &moor_api::DockerImageReference,
        o: &moor_server::importer::PullOptions,
    ) -> Result<Vec<String>, moor_server::importer::ImportError> {
        NoRegistry.tags(r, o).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_stream_cancels_its_queued_and_running_imports() {
    use std::sync::atomic::Ordering::SeqCst;
    let source = Arc::new(SlowSource::default());
    let h = MoorServer::importing(source.clone()).await;
    let tags = (0..500)
        .map(|i| tag(&format!("t{i}"), &format!("hang.example/slow:{i}")))
        .collect();
    create_stream(&h, "big", tags).await;
    // The registry's share of the slots (8 by default) is taken; the rest is queued.
    let per_registry = moor_server::importer::queue::DEFAULT_PER_REGISTRY;
    let deadline = Instant::now() + Duration::from_secs(30);
    while source.started.load(SeqCst) < per_registry {
        assert!(Instant::now() < deadline, "the imports never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = h.delete(&format!("{IS}/big")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Every running import is dropped...
    while source.dropped.load(SeqCst) < per_registry {
        assert!(
            Instant::now() < deadline,
            "the running imports were not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...and a tag of the same namespace and registry, queued behind the deleted
    // stream's 492 others had they stayed, imports now.
    create_stream(&h, "small", vec![tag("1", "hang.example/fast:1")]).await;
    wait_tag(&h, "small", "1", failed_with("NotFound")).await;
    assert_eq!(source.started.load(SeqCst), per_registry);
}

/// CVE list of issue 16: importing with another namespace's secret. A pull secret
/// in namespace `other` never unlocks an import into `default`; the same secret in
/// `default` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_namespaces_pull_secret_is_never_used() {
    let Some((dist, pushed)) = protected_registry() else {
        return;
    };
    let h = MoorServer::importing(upstream(&[&dist.host])).await;
    let secret = pull_secret(&dist.host);
    let r = h
        .post(
            "/api/v1/namespaces",
            &json!({"metadata": {"name": "other"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = h.post("/api/v1/namespaces/other/secrets", &secret).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    create_stream(&h, "private", vec![tag("1.0", &pushed.reference)]).await;
    let status = wait_tag(&h, "private", "1.0", failed_with("Unauthorized")).await;
    assert!(!imported(&status), "other's secret was used: {status}");
    let r = h.post("/api/v1/namespaces/default/secrets", &secret).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = h
        .patch(
            &format!("{IS}/private"),
            "application/json-patch+json",
            &json!([{"op": "replace", "path": "/spec/tags/0/generation", "value": 0}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let status = wait_tag(&h, "private", "1.0", imported).await;
    assert_eq!(status["items"][0]["image"], pushed.digest.as_str());
}

/// Issue 15 §3: a registry that accepts connections and never answers fails the
/// import within the request timeout, and the condition says how long moor waited
/// and for which registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_never_answers_times_out_naming_it() {
    // Accepts and holds every connection, answering nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let source = Arc::new(
        UpstreamClient::new(UpstreamConfig {
            insecure_registries: vec![host.clone()],
            use_environment_proxy: false,
            timeouts: moor_server::upstream::Timeouts {
                connect: Duration::from_secs(1),
                request: Duration::from_secs(2),
                read_idle: Duration::from_secs(2),
            },
            ..Default::default()
        })
        .unwrap(),
    );
    let h = MoorServer::importing(source).await;
    create_stream(&h, "hangs", vec![tag("1", &format!("{host}/app:1"))]).await;
    let t = wait_tag(&h, "hangs", "1", failed_with("Timeout")).await;
    let message = t["conditions"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("timed out after 2 s waiting for {host}")),
        "{message}"
    );
}

/// Issue 15 §3: a tag that failed before a restart is retried within seconds of the
/// start, when the new configuration works (here: the registry became listed as
/// insecure, so plain HTTP is tried), not left failed until it is touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_that_failed_before_a_restart_heals_at_start() {
    let Some(dist) = Distribution::start_with(DistributionOptions::default()) else {
        return;
    };
    let layout = OciLayout::new();
    layout.add_image("1.0", &ImageSpec::new("amd64"));
    let pushed = dist.push(&layout, "1.0", "heal/app:1.0", Format::Oci);
    let store: Arc<dyn moor_store::Store> = Arc::new(moor_store::MemoryStore::new());
    let backoff = moor_server::importer::controller::Backoff {
        initial: Duration::from_secs(600),
        max: Duration::from_secs(600),
        max_retries: 1,
    };
    // Not listed as insecure: HTTPS to a plain-HTTP registry fails.
    let h = MoorServer::builder()
        .store(store.clone())
        .source(upstream(&[]))
        .imports(backoff.clone())
        .start()
        .await;
    create_stream(&h, "heal", vec![tag("1.0", &pushed.reference)]).await;
    let failed = |t: &Value| {
        t["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["status"] == "False"))
    };
    wait_tag(&h, "heal", "1.0", failed).await;
    h.stop().await;
    // Restarted with the registry listed: the failed tag is imported, with no edit.
    let h = MoorServer::builder()
        .store(store)
        .source(upstream(&[&dist.host]))
        .imports(backoff)
        .start()
        .await;
    let status = wait_tag(&h, "heal", "1.0", imported).await;
    assert_eq!(status["items"][0]["image"], pushed.digest.as_str());
}

/// Issue 15 §3: creating (or changing) a pull secret retries the namespace's failed
/// imports at once, though their backoff has ten minutes to run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_pull_secret_retries_failed_imports_at_once() {
    let Some((dist, pushed)) = protected_registry() else {
        return;
    };
    let h = MoorServer::builder()
        .source(upstream(&[&dist.host]))
        .imports(moor_server::importer::controller::Backoff {
            initial: Duration::from_secs(600),
            max: Duration::from_secs(600),
            max_retries: 3,
        })
        .start()
        .await;
    create_stream(&h, "private", vec![tag("1.0", &pushed.reference)]).await;
    wait_tag(&h, "private", "1.0", failed_with("Unauthorized")).await;
    let r = h
        .post(
            "/api/v1/namespaces/default/secrets",
            &pull_secret(&dist.host),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let status = wait_tag(&h, "private", "1.0", imported).await;
    assert_eq!(status["items"][0]["image"], pushed.digest.as_str());
}

/// The Events of stream `stream` in `default` with `reason`, about tag `tag`.
async fn tag_events(h: &MoorServer, stream: &str, tag: &str, reason: &str) -> Vec<Value> {
    let r = h
        .get(&format!(
            "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3D{stream},reason%3D{reason}"
        ))
        .await;
    r.body["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["involvedObject"]["fieldPath"] == format!("spec.tags{{{tag}}}"))
        .collect()
}

/// Issue 15 §3: a mirror's definite `manifest unknown`, with the source unreachable,
/// fails the tag as NotFound, naming the mirror first; it is not retried on the
/// transient schedule (one Event, counted once), while a transient failure is, its
/// identical failures counted on one Event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirrors_definite_answer_is_reported_as_it_is_and_not_retried() {
    use moor_server::upstream::Mirror;
    let Some(dist) = Distribution::start() else {
        return;
    };
    let closed = moor_testkit::closed_addr();
    let source = Arc::new(
        UpstreamClient::new(UpstreamConfig {
            mirrors: vec![Mirror::parse(&format!("quay.io={}", dist.host)).unwrap()],
            insecure_registries: vec![dist.host.clone(), closed.to_string()],
            dns_overrides: vec![("quay.io".to_owned(), moor_testkit::closed_addr())],
            use_environment_proxy: false,
            ..Default::default()
        })
        .unwrap(),
    );
    let h = MoorServer::builder()
        .source(source)
        .imports(moor_server::importer::controller::Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(200),
            max_retries: 50,
        })
        .start()
        .await;
    create_stream(
        &h,
        "mirrored",
        vec![tag("20.0", "quay.io/keycloak/keycloak:20.0.99")],
    )
    .await;
    let t = wait_tag(&h, "mirrored", "20.0", failed_with("NotFound")).await;
    let message = t["conditions"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            "mirror {}/keycloak/keycloak: manifest unknown; also tried: source quay.io/keycloak/keycloak: ",
            dist.host
        )),
        "{message}"
    );
    // A transient failure meanwhile: retried, and its identical failures are one
    // Event with a count.
    create_stream(&h, "down", vec![tag("1", &format!("{closed}/app/down:1"))]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = tag_events(&h, "down", "1", "ImportFailed").await;
        assert!(
            events.len() <= 1,
            "identical failures are one Event: {events:?}"
        );
        if let Some(e) = events.first()
            && e["count"].as_i64().unwrap_or(0) >= 3
        {
            assert_eq!(e["series"]["count"], e["count"], "{e}");
            assert!(e["lastTimestamp"].is_string(), "{e}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the transient failure was not retried"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The definite answer, with the same backoff, was not retried meanwhile.
    let events = tag_events(&h, "mirrored", "20.0", "ImportFailed").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["count"], 1, "{}", events[0]);
    assert!(
        events[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("failed (NotFound): mirror ")),
        "{}",
        events[0]
    );
}

/// Reference tags are recorded as named without any registry (this one does not
/// exist): the import controller resolves them in place, without queued jobs, for a
/// burst of a hundred streams of five tags each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_tags_are_recorded_in_place_without_a_registry() {
    let h = MoorServer::importing(upstream(&[])).await;
    for i in 0..100 {
        let tags = (0..5)
            .map(|t| {
                json!({"name": format!("v{t}"), "reference": true,
                    "from": {"kind": "DockerImage", "name": format!("registry.invalid/app{i}:v{t}")}})
            })
            .collect();
        create_stream(&h, &format!("ref-{i:03}"), tags).await;
    }
    for i in [0, 57, 99] {
        for t in 0..5 {
            let tag = wait_tag(&h, &format!("ref-{i:03}"), &format!("v{t}"), imported).await;
            assert_eq!(
                tag["items"][0]["dockerImageReference"],
                format!("registry.invalid/app{i}:v{t}")
            );
            assert_eq!(tag["items"][0]["image"], "");
        }
    }
}
