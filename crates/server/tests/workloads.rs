//! In-process router tests of workloads in standalone mode: apps/v1 Deployments (and
//! the other pod-template kinds) served through the generic machinery, the resolver on
//! create and update, fail-closed refusals, triggers annotation validation, strategic
//! merge patches with Kubernetes' merge keys, revisions kept as ReplicaSets.

use axum::http::StatusCode;
use moor_testkit::server::*;
use serde_json::{Value, json};

const DEPLOY: &str = "/apis/apps/v1/namespaces/default/deployments";
const RS: &str = "/apis/apps/v1/namespaces/default/replicasets";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// Creates stream `name` (lookup `local`) whose tag `tag` has `images` as history
/// (newest first), written through the status subresource.
async fn stream_with_history(
    h: &MoorServer,
    name: &str,
    local: bool,
    tag: &str,
    images: &[String],
) {
    let r = h
        .post(
            IS,
            &json!({"metadata": {"name": name},
                    "spec": {"lookupPolicy": {"local": local},
                             "tags": [{"name": tag, "from": {"kind": "DockerImage", "name": format!("quay.io/keycloak/{name}:{tag}")}}]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    set_history(h, name, tag, images).await;
}

async fn set_history(h: &MoorServer, name: &str, tag: &str, images: &[String]) {
    let mut s = h.get(&format!("{IS}/{name}")).await.body;
    let items: Vec<Value> = images
        .iter()
        .map(|d| json!({"created": "2026-01-01T00:00:00Z", "dockerImageReference": format!("quay.io/keycloak/{name}@{d}"), "image": d, "generation": 1}))
        .collect();
    s["status"]["tags"] = json!([{"tag": tag, "items": items}]);
    let r = h.put(&format!("{IS}/{name}/status"), &s).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

fn seed_deployment(image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "mykeycloak"},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "mykeycloak"}},
                    "template": {"metadata": {"labels": {"app": "mykeycloak"}},
                                 "spec": {"containers": [{"name": "mykeycloak", "image": image,
                                                          "ports": [{"containerPort": 8080}]}]}}}})
}

fn image(d: &Value) -> &str {
    d.pointer("/spec/template/spec/containers/0/image")
        .and_then(Value::as_str)
        .unwrap_or("")
}

async fn owned_replicasets(h: &MoorServer, uid: &str) -> Vec<Value> {
    let list = h.get(RS).await.body;
    let mut out: Vec<Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|rs| rs["metadata"]["ownerReferences"][0]["uid"] == uid)
        .cloned()
        .collect();
    out.sort_by_key(|rs| {
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
    });
    out
}

#[tokio::test]
async fn deployments_pin_short_names_and_record_revisions() {
    let h = MoorServer::start().await;
    let (d1, d2) = (digest('1'), digest('2'));
    stream_with_history(&h, "keycloak", true, "20.0", std::slice::from_ref(&d1)).await;

    let mut seed = seed_deployment("keycloak:20.0");
    seed["metadata"]["annotations"] = json!({"team": "a"});
    let r = h.post(DEPLOY, &seed).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let d = r.body;
    assert_eq!(image(&d), format!("quay.io/keycloak/keycloak@{d1}"));
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(d["metadata"]["generation"], 1);
    // Kubernetes' defaults.
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
    let uid = d["metadata"]["uid"].as_str().unwrap().to_string();
    let rs = owned_replicasets(&h, &uid).await;
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0]["spec"]["replicas"], 2);
    assert_eq!(image(&rs[0]), format!("quay.io/keycloak/keycloak@{d1}"));
    let hash = rs[0]["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap();
    assert_eq!(rs[0]["metadata"]["name"], format!("mykeycloak-{hash}"));
    // The revision keeps the Deployment's annotations (a rollback restores them).
    assert_eq!(rs[0]["metadata"]["annotations"]["team"], "a");

    // The tag moves; a strategic merge patch as kubectl sends it sets the short name
    // again, which resolves to the new image and records revision 2.
    set_history(&h, "keycloak", "20.0", &[d2.clone(), d1.clone()]).await;
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "mykeycloak"}],
        "containers": [{"name": "mykeycloak", "image": "keycloak:20.0"}]}}}});
    let r = h
        .patch(
            &format!("{DEPLOY}/mykeycloak"),
            "application/strategic-merge-patch+json",
            &patch,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(image(&r.body), format!("quay.io/keycloak/keycloak@{d2}"));
    assert_eq!(
        r.body["spec"]["template"]["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 8080, "protocol": "TCP"}]),
        "merged by name, not replaced"
    );
    assert_eq!(
        r.body["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    assert_eq!(r.body["metadata"]["generation"], 2);
    let rs = owned_replicasets(&h, &uid).await;
    assert_eq!(rs.len(), 2);
    assert_eq!(
        rs[0]["spec"]["replicas"], 0,
        "the old revision is scaled down"
    );
    assert_eq!(rs[1]["spec"]["replicas"], 2);

    // A change outside the template keeps the revision.
    let r = h
        .patch(
            &format!("{DEPLOY}/mykeycloak"),
            "application/merge-patch+json",
            &json!({"spec": {"replicas": 3}}),
        )
        .await;
    assert_eq!(
        r.body["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    // The client cannot set the revision.
    let r = h
        .patch(
            &format!("{DEPLOY}/mykeycloak"),
            "application/merge-patch+json",
            &json!({"metadata": {"annotations": {"deployment.kubernetes.io/revision": "9"}}}),
        )
        .await;
    assert_eq!(
        r.body["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );

    // Going back to the first template reuses its ReplicaSet as revision 3.
    let first = format!("quay.io/keycloak/keycloak@{d1}");
    let r = h
        .patch(
            &format!("{DEPLOY}/mykeycloak"),
            "application/json-patch+json",
            &json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": first}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    let rs = owned_replicasets(&h, &uid).await;
    assert_eq!(rs.len(), 2);
    assert_eq!(image(&rs[1]), first);
    assert_eq!(
        rs[1]["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"],
        "1"
    );
    assert_eq!(rs[1]["spec"]["replicas"], 3);

    // Deleting the deployment deletes its revisions.
    assert_eq!(
        h.delete(&format!("{DEPLOY}/mykeycloak")).await.status,
        StatusCode::OK
    );
    assert!(owned_replicasets(&h, &uid).await.is_empty());
}

#[tokio::test]
async fn lookup_off_leaves_names_alone_unless_the_template_asks() {
    let h = MoorServer::start().await;
    stream_with_history(&h, "keycloak", false, "20.0", &[digest('1')]).await;
    let r = h.post(DEPLOY, &seed_deployment("keycloak:20.0")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(image(&r.body), "keycloak:20.0");

    // `moor set image-lookup deploy/NAME` sets the template annotation: resolved.
    let r = h
        .patch(
            &format!("{DEPLOY}/mykeycloak"),
            "application/merge-patch+json",
            &json!({"spec": {"template": {"metadata": {"annotations": {"alpha.image.policy.openshift.io/resolve-names": "*"}}}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        image(&r.body),
        format!("quay.io/keycloak/keycloak@{}", digest('1'))
    );

    // Names of no stream, and names with a registry, are never touched.
    let mut other = seed_deployment("postgres:16");
    other["metadata"]["name"] = json!("pg");
    assert_eq!(image(&h.post(DEPLOY, &other).await.body), "postgres:16");
}

#[tokio::test]
async fn a_stream_without_a_usable_image_fails_closed() {
    let h = MoorServer::start().await;
    let r = h
        .post(
            IS,
            &json!({"metadata": {"name": "keycloak"}, "spec": {"lookupPolicy": {"local": true},
                    "tags": [{"name": "20.0", "from": {"kind": "DockerImage", "name": "quay.io/keycloak/keycloak:20.0.2"}}]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = h.post(DEPLOY, &seed_deployment("keycloak:20.0")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["reason"], "Invalid");
    let cause = &r.body["details"]["causes"][0];
    assert_eq!(cause["field"], "spec.template.spec.containers[0].image");
    assert!(
        cause["message"]
            .as_str()
            .unwrap()
            .contains("image stream tag default/keycloak:20.0 has no image yet"),
        "{}",
        r.text
    );
    assert_eq!(
        h.get(&format!("{DEPLOY}/mykeycloak")).await.status,
        StatusCode::NOT_FOUND,
        "nothing written"
    );
    // A tag the stream does not have points at the stream's repository, as in OpenShift.
    let r = h.post(DEPLOY, &seed_deployment("keycloak:21.0")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(image(&r.body), "registry.test:5000/default/keycloak:21.0");
}

fn with_triggers(mut d: Value, triggers: &str) -> Value {
    d["metadata"]["annotations"] = json!({"image.openshift.io/triggers": triggers});
    d
}

#[tokio::test]
async fn bad_triggers_are_refused_and_nothing_is_written() {
    let h = MoorServer::start().await;
    for (triggers, want) in [
        ("[{not json", "must be a JSON list of image triggers"),
        (
            r#"[{"from":{"kind":"ImageStreamTag","name":"keycloak:20.0"},"fieldPath":"spec.template.spec.containers[?(@.name==\"nope\")].image"}]"#,
            "names no container of this Deployment",
        ),
        (
            r#"[{"from":{"kind":"ImageStreamTag","name":"a:1"},"fieldPath":"spec.template.spec.containers[0].image"},
                {"from":{"kind":"ImageStreamTag","name":"b:1"},"fieldPath":"spec.template.spec.containers[?(@.name==\"mykeycloak\")].image"}]"#,
            "duplicate",
        ),
        (
            r#"[{"from":{"kind":"ImageStreamTag","name":"notag"},"fieldPath":"spec.template.spec.containers[0].image"}]"#,
            "from.name",
        ),
    ] {
        let r = h
            .post(DEPLOY, &with_triggers(seed_deployment("nginx:1"), triggers))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{triggers}: {}",
            r.text
        );
        assert!(r.text.contains(want), "{want}: {}", r.text);
        assert!(
            r.text
                .contains("metadata.annotations[image.openshift.io/triggers]"),
            "{}",
            r.text
        );
        assert_eq!(
            h.get(&format!("{DEPLOY}/mykeycloak")).await.status,
            StatusCode::NOT_FOUND
        );
    }
    // A good one is stored; breaking it by an update is refused and changes nothing.
    let good = r#"[{"from":{"kind":"ImageStreamTag","name":"keycloak:20.0"},"fieldPath":"spec.template.spec.containers[?(@.name==\"mykeycloak\")].image"}]"#;
    let r = h
        .post(DEPLOY, &with_triggers(seed_deployment("nginx:1"), good))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let rv = r.body["metadata"]["resourceVersion"].clone();
    let r = h
        .patch(
            &format!("{DEPLOY}/mykeycloak"),
            "application/merge-patch+json",
            &json!({"metadata": {"annotations": {"image.openshift.io/triggers": "nope"}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let now = h.get(&format!("{DEPLOY}/mykeycloak")).await.body;
    assert_eq!(now["metadata"]["resourceVersion"], rv);
}

#[tokio::test]
async fn pods_cronjobs_and_owned_objects() {
    let h = MoorServer::start().await;
    let d1 = digest('1');
    stream_with_history(&h, "keycloak", true, "20.0", std::slice::from_ref(&d1)).await;
    let pinned = format!("quay.io/keycloak/keycloak@{d1}");

    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                     "spec": {"initContainers": [{"name": "i", "image": "keycloak:20.0"}],
                              "containers": [{"name": "c", "image": "keycloak:20.0"}]}});
    let r = h.post("/api/v1/namespaces/default/pods", &pod).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["spec"]["containers"][0]["image"], pinned.as_str());
    assert_eq!(
        r.body["spec"]["initContainers"][0]["image"],
        pinned.as_str()
    );
    assert_eq!(r.body["status"]["phase"], "Pending");

    let cj = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
                    "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {
                        "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "keycloak:20.0"}]}}}}}});
    let r = h
        .post("/apis/batch/v1/namespaces/default/cronjobs", &cj)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        r.body["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"],
        pinned.as_str()
    );

    // A pod owned by a controller is left as it is.
    let mut owned = pod.clone();
    owned["metadata"] = json!({"name": "owned", "ownerReferences": [{"apiVersion": "apps/v1",
        "kind": "ReplicaSet", "name": "x", "uid": "u-1", "controller": true}]});
    let r = h.post("/api/v1/namespaces/default/pods", &owned).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["spec"]["containers"][0]["image"], "keycloak:20.0");

    for (kind, path, body) in [
        (
            "StatefulSet",
            "/apis/apps/v1/namespaces/default/statefulsets",
            json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "serviceName": "s",
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "keycloak:20.0"}]}}}}),
        ),
        (
            "DaemonSet",
            "/apis/apps/v1/namespaces/default/daemonsets",
            json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "keycloak:20.0"}]}}}}),
        ),
        (
            "Job",
            "/apis/batch/v1/namespaces/default/jobs",
            json!({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "keycloak:20.0"}]}}}}),
        ),
    ] {
        let r = h.post(path, &body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{kind}: {}", r.text);
        assert_eq!(image(&r.body), pinned, "{kind}");
    }

    // Basic validation, with Kubernetes' messages.
    let mut bad = seed_deployment("x");
    bad["spec"]["selector"] = json!({"matchLabels": {"app": "other"}});
    let r = h.post(DEPLOY, &bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.text
            .contains("`selector` does not match template `labels`"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn discovery_tables_and_strict_decoding() {
    let h = MoorServer::start().await;
    let r = h.get("/apis/apps/v1").await;
    let resources = r.body["resources"].as_array().unwrap();
    let deploy = resources
        .iter()
        .find(|r| r["name"] == "deployments")
        .unwrap();
    assert_eq!(deploy["shortNames"], json!(["deploy"]));
    assert_eq!(deploy["kind"], "Deployment");
    assert!(h.get("/apis/batch/v1").await.text.contains("cronjobs"));
    assert!(h.get("/api/v1").await.text.contains("\"pods\""));
    assert_eq!(
        h.get("/openapi/v3/apis/apps/v1").await.status,
        StatusCode::OK
    );

    h.post(DEPLOY, &seed_deployment("nginx:1.27")).await;
    let r = h
        .call(
            axum::http::Method::GET,
            DEPLOY,
            "application/json",
            axum::body::Body::empty(),
        )
        .await;
    assert_eq!(r.body["items"][0]["metadata"]["name"], "mykeycloak");
    let req = axum::http::Request::get(DEPLOY)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(axum::body::Body::empty())
        .unwrap();
    let t = h.raw(req).await.body;
    let names: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(t["rows"][0]["cells"][1], "0/2");
    assert_eq!(t["rows"][0]["cells"][6], "nginx:1.27");

    let mut unknown = seed_deployment("nginx:1.27");
    unknown["metadata"]["name"] = json!("strict");
    unknown["spec"]["bogus"] = json!(1);
    let r = h
        .call(
            axum::http::Method::POST,
            &format!("{DEPLOY}?fieldValidation=Strict"),
            "application/json",
            unknown.to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text.contains("unknown field \\\"spec.bogus\\\""),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn patches_keep_resource_version_preconditions_only_when_sent() {
    let h = MoorServer::start().await;
    let r = h.post(DEPLOY, &seed_deployment("nginx:1.27")).await;
    let rv = r.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("{DEPLOY}/mykeycloak");
    let merge = "application/merge-patch+json";
    let r = h
        .patch(&path, merge, &json!({"spec": {"replicas": 3}}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = h
        .patch(
            &path,
            merge,
            &json!({"metadata": {"resourceVersion": rv}, "spec": {"replicas": 4}}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "a stale version sent is a precondition"
    );
    let now = r.body["metadata"]["resourceVersion"].clone();
    let current = h.get(&path).await.body["metadata"]["resourceVersion"].clone();
    assert!(now.is_null());
    let r = h
        .patch(
            &path,
            merge,
            &json!({"metadata": {"resourceVersion": current}, "spec": {"replicas": 4}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["spec"]["replicas"], 4);
}

/// Polls deployment `name` until its first container runs `want` (a positive signal;
/// the deadline only turns a hang into a failure).
async fn wait_for_image(h: &MoorServer, name: &str, want: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let d = h.get(&format!("{DEPLOY}/{name}")).await.body;
        if image(&d) == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the trigger never set {want}; the deployment runs {}",
            image(&d)
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The trigger controller reads streams in process (the storage's watch of stored
/// bytes, not an HTTP watch): a tag that moves, and moves back, rolls the workload
/// that follows it.
#[tokio::test]
async fn triggers_follow_tags_read_in_process() {
    let h = MoorServer::builder()
        .loops(moor_server::serve::Loops {
            triggers: true,
            ..moor_server::serve::Loops::NONE
        })
        .start()
        .await;
    let (d1, d2) = (digest('1'), digest('2'));
    stream_with_history(&h, "app", false, "v1", std::slice::from_ref(&d1)).await;
    let triggers = r#"[{"from":{"kind":"ImageStreamTag","name":"app:v1"},"fieldPath":"spec.template.spec.containers[?(@.name==\"mykeycloak\")].image"}]"#;
    let r = h
        .post(DEPLOY, &with_triggers(seed_deployment("busybox"), triggers))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    wait_for_image(&h, "mykeycloak", &format!("quay.io/keycloak/app@{d1}")).await;
    set_history(&h, "app", "v1", &[d2.clone(), d1.clone()]).await;
    wait_for_image(&h, "mykeycloak", &format!("quay.io/keycloak/app@{d2}")).await;
    // A rollback moves it back.
    set_history(&h, "app", "v1", &[d1.clone(), d2.clone()]).await;
    wait_for_image(&h, "mykeycloak", &format!("quay.io/keycloak/app@{d1}")).await;
}
