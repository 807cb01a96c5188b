//! kubectl's imperative creates of built-in kinds send protobuf bodies
//! (`application/vnd.kubernetes.protobuf`): each is created with the real kubectl
//! (/usr/bin/kubectl), then read back with `kubectl get -o json` and compared with
//! what was asked for. `kubectl -v=8` shows the content type each create sent.

use crate::support;

use serde_json::{Value, json};
use support::*;

fn get_json(k: &Kubectl, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&k.ok(&all)).expect("kubectl get -o json")
}

/// `kubectl create ... -v=8` logs the request's content type: protobuf, so the
/// test exercises what it claims to.
fn create_logs_protobuf(k: &Kubectl, args: &[&str]) -> String {
    let mut all = vec!["-v=8", "create"];
    all.extend_from_slice(args);
    let (ok, out, err) = run(k.cmd().args(&all));
    assert!(ok, "kubectl {all:?} failed:\n{out}\n{err}");
    assert!(
        err.contains("Content-Type: application/vnd.kubernetes.protobuf"),
        "kubectl {all:?} sent no protobuf body:\n{err}"
    );
    out
}

#[test]
fn kubectl_creates_built_in_kinds_with_protobuf_bodies() {
    if peer("kubectl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), &[]);
    let k = Kubectl::new(&server.kubeconfig()).expect("kubectl");

    let out = create_logs_protobuf(
        &k,
        &[
            "secret",
            "generic",
            "s",
            "--from-literal=a=b",
            "--from-literal=user=admin",
        ],
    );
    assert!(out.contains("secret/s created"), "{out}");
    let secret = get_json(&k, &["secret", "s"]);
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["type"], "Opaque");
    // base64 of "b" and "admin".
    assert_eq!(secret["data"], json!({"a": "Yg==", "user": "YWRtaW4="}));

    let out = create_logs_protobuf(&k, &["namespace", "team"]);
    assert!(out.contains("namespace/team created"), "{out}");
    let ns = get_json(&k, &["namespace", "team"]);
    assert_eq!(ns["metadata"]["name"], "team");

    let out = create_logs_protobuf(
        &k,
        &[
            "deployment",
            "web",
            "--image=quay.io/keycloak/keycloak:20.0.2",
            "--replicas=2",
            "--port=8080",
            "-n",
            "team",
        ],
    );
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let d = get_json(&k, &["deployment", "web", "-n", "team"]);
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["selector"]["matchLabels"], json!({"app": "web"}));
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["name"], "keycloak");
    assert_eq!(c["image"], "quay.io/keycloak/keycloak:20.0.2");
    assert_eq!(c["ports"][0]["containerPort"], 8080);

    let out = create_logs_protobuf(
        &k,
        &[
            "job",
            "once",
            "--image=quay.io/keycloak/keycloak:20.0.2",
            "--",
            "echo",
            "hi",
        ],
    );
    assert!(out.contains("job.batch/once created"), "{out}");
    let j = get_json(&k, &["job", "once"]);
    let c = &j["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["command"], json!(["echo", "hi"]));
    assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "Never");

    let out = create_logs_protobuf(
        &k,
        &[
            "cronjob",
            "nightly",
            "--image=quay.io/keycloak/keycloak:20.0.2",
            "--schedule=0 3 * * *",
        ],
    );
    assert!(out.contains("cronjob.batch/nightly created"), "{out}");
    let cj = get_json(&k, &["cronjob", "nightly"]);
    assert_eq!(cj["spec"]["schedule"], "0 3 * * *");

    // Deleting sends DeleteOptions (as JSON); the object is gone after.
    let out = k.ok(&["delete", "secret", "s"]);
    assert!(out.contains("secret \"s\" deleted"), "{out}");
    let err = k.fails(&["get", "secret", "s"]);
    assert!(err.contains("NotFound"), "{err}");
}

#[test]
fn kubectl_creates_a_serviceaccount_with_a_protobuf_body() {
    if peer("kubectl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), &[]);
    let k = Kubectl::new(&server.kubeconfig()).expect("kubectl");
    let out = create_logs_protobuf(&k, &["serviceaccount", "builder"]);
    assert!(out.contains("serviceaccount/builder created"), "{out}");
    let sa = get_json(&k, &["serviceaccount", "builder"]);
    assert_eq!(sa["kind"], "ServiceAccount");
    assert_eq!(sa["metadata"]["name"], "builder");
}

#[test]
fn kubectl_creates_a_rolebinding_with_a_protobuf_body() {
    if peer("kubectl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), &[]);
    let k = Kubectl::new(&server.kubeconfig()).expect("kubectl");
    let out = create_logs_protobuf(
        &k,
        &[
            "rolebinding",
            "pullers",
            "--clusterrole=system:image-puller",
            "--group=system:serviceaccounts:default",
            "--user=alice",
        ],
    );
    assert!(
        out.contains("rolebinding.rbac.authorization.k8s.io/pullers created"),
        "{out}"
    );
    let rb = get_json(&k, &["rolebinding", "pullers"]);
    assert_eq!(
        rb["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
               "name": "system:image-puller"})
    );
    let subjects = rb["subjects"].as_array().cloned().unwrap_or_default();
    assert!(
        subjects.contains(
            &json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                  "name": "system:serviceaccounts:default"})
        ),
        "{rb}"
    );
    assert!(
        subjects.contains(
            &json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                  "name": "alice"})
        ),
        "{rb}"
    );
}

#[test]
fn kubectl_auth_reviews_are_sent_in_protobuf() {
    if peer("kubectl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), &[]);
    let k = Kubectl::new(&server.kubeconfig()).expect("kubectl");
    // The admin token is in system:masters: allowed everything.
    assert_eq!(k.ok(&["auth", "can-i", "get", "secrets"]).trim(), "yes");
    let list = k.ok(&["auth", "can-i", "--list"]);
    assert!(list.contains("*.*"), "{list}");
    let whoami = k.ok(&["auth", "whoami"]);
    assert!(whoami.contains("system:masters"), "{whoami}");
}

#[test]
fn kubectl_create_token_sends_a_protobuf_token_request() {
    if peer("kubectl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), &[]);
    let k = Kubectl::new(&server.kubeconfig()).expect("kubectl");
    k.ok(&["create", "serviceaccount", "builder"]);
    let (ok, out, err) = run(k.cmd().args([
        "-v=8",
        "create",
        "token",
        "builder",
        "--duration=10m",
        "--audience=moor",
    ]));
    assert!(ok, "{out}{err}");
    assert!(
        err.contains("Content-Type: application/vnd.kubernetes.protobuf"),
        "{err}"
    );
    assert_eq!(out.trim().split('.').count(), 3, "a JWT: {out}");
}
