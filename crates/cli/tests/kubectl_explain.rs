//! The real kubectl against moor's published OpenAPI: `kubectl explain` of moor's and
//! built-in kinds, and client-side `apply` computing strategic merge patches from the
//! published schemas (lists merged by their keys, as against kube-apiserver), with
//! server-side apply still working; `kubectl replace -f` of a `List` validated from
//! `/openapi/v2` (protobuf).

use crate::support;

use support::*;

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: registry.example/app:1
        env:
        - {name: A, value: "1"}
"#;

/// kubectl's log line when the v3 document does not let it build a strategic merge
/// patch (it then falls back to its compiled-in types, or to a JSON merge patch).
const NO_V3_PATCH: &str = "OpenAPI V3 path does not";

#[test]
fn kubectl_explain_shows_openshift_and_kube_descriptions() {
    if peer("kubectl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), &[]);
    let k = Kubectl::new(&server.kubeconfig()).expect("kubectl");

    let out = k.ok(&["explain", "imagestream.spec.tags.importPolicy"]);
    assert!(out.contains("KIND:       ImageStream"), "{out}");
    assert!(out.contains("scheduled\t<boolean>"), "{out}");
    assert!(
        out.contains("Scheduled indicates to the server that this tag should be periodically"),
        "{out}"
    );
    let out = k.ok(&["explain", "imagestream"]);
    assert!(
        out.contains("An ImageStream stores a mapping of tags to images"),
        "{out}"
    );
    let out = k.ok(&["explain", "is.spec"]);
    assert!(out.contains("lookupPolicy\t<ImageLookupPolicy>"), "{out}");

    let out = k.ok(&["explain", "deployment.spec.template"]);
    assert!(out.contains("FIELD: template <PodTemplateSpec>"), "{out}");
    let out = k.ok(&["explain", "deployment.spec.template.spec.containers"]);
    assert!(out.contains("FIELD: containers <[]Container>"), "{out}");
    assert!(
        out.contains("List of containers belonging to the pod."),
        "{out}"
    );
    assert!(out.contains("image\t<string>"), "{out}");

    // The same from /openapi/v2, which client-go reads as protobuf.
    let out = k.ok(&[
        "explain",
        "--output=plaintext-openapiv2",
        "imagestream.spec.tags.importPolicy",
    ]);
    assert!(out.contains("scheduled\t<boolean>"), "{out}");
    assert!(out.contains("tag should be periodically"), "{out}");
    let out = k.ok(&[
        "explain",
        "--output=plaintext-openapiv2",
        "deployment.spec.template.spec.containers.env",
    ]);
    assert!(
        out.contains("List of environment variables to set in the container."),
        "{out}"
    );
}

#[test]
fn kubectl_replace_of_a_list_validates_without_flags() {
    if peer("kubectl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), &[]);
    let k = Kubectl::new(&server.kubeconfig()).expect("kubectl");
    let (ok, out, err) = k.stdin(&["create", "-f", "-"], DEPLOYMENT);
    assert!(ok, "{out}{err}");
    let stream = "apiVersion: image.openshift.io/v1\nkind: ImageStream\nmetadata:\n  name: app\n";
    let (ok, out, err) = k.stdin(&["create", "-f", "-"], stream);
    assert!(ok, "{out}{err}");
    // A `List` is no served kind, so kubectl validates its items on the client side
    // from /openapi/v2; without that document it asked for `--validate=false`.
    let indent = |y: &str| {
        y.lines()
            .enumerate()
            .map(|(i, l)| {
                if i == 0 {
                    format!("- {l}")
                } else {
                    format!("  {l}")
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n{}\n{}\n",
        indent(&format!("{stream}spec:\n  lookupPolicy: {{local: true}}")),
        indent(&DEPLOYMENT.replace("app:1", "app:5")),
    );
    let (ok, out, err) = k.stdin(&["replace", "-f", "-"], &list);
    assert!(ok, "{list}\n{out}{err}");
    assert!(
        out.contains("imagestream.image.openshift.io/app replaced"),
        "{out}"
    );
    assert!(out.contains("deployment.apps/web replaced"), "{out}");
    let got = k.ok(&[
        "get",
        "is",
        "app",
        "-o",
        "jsonpath={.spec.lookupPolicy.local}",
    ]);
    assert_eq!(got, "true");
    // Client-side validation still refuses what the schema does not know.
    let bad = list.replace(
        "lookupPolicy: {local: true}",
        "lookupPolicy: {local: true, bogus: 1}",
    );
    let (ok, out, err) = k.stdin(&["replace", "-f", "-"], &bad);
    assert!(!ok, "{out}{err}");
    assert!(err.contains("bogus"), "{err}");
}

#[test]
fn kubectl_apply_merges_lists_by_the_published_patch_keys() {
    if peer("kubectl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), &[]);
    let k = Kubectl::new(&server.kubeconfig()).expect("kubectl");

    // Deployment: apply, another writer adds a sidecar, re-apply with a new image and a
    // second env var. kube-apiserver's schema merges containers by name and env by
    // name: the sidecar stays, `app` changes in place.
    let (ok, out, err) = k.stdin(&["apply", "-f", "-"], DEPLOYMENT);
    assert!(ok, "{out}{err}");
    k.ok(&[
        "patch",
        "deployment",
        "web",
        "--type",
        "strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"registry.example/side:1"}]}}}}"#,
    ]);
    let changed = DEPLOYMENT.replace("app:1", "app:2").replace(
        "        - {name: A, value: \"1\"}\n",
        "        - {name: A, value: \"1\"}\n        - {name: B, value: \"2\"}\n",
    );
    let (ok, out, err) = k.stdin(&["apply", "-v=5", "-f", "-"], &changed);
    assert!(ok, "{out}{err}");
    assert!(!err.contains(NO_V3_PATCH), "{err}");
    let got = k.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        r#"jsonpath={range .spec.template.spec.containers[*]}{.name}={.image} {range .env[*]}{.name}{end};{end}"#,
    ]);
    assert_eq!(
        got,
        "app=registry.example/app:2 AB;sidecar=registry.example/side:1 ;"
    );

    // ImageStream (not compiled into kubectl): before the schema was published kubectl
    // sent a JSON merge patch, replacing spec.tags whole and dropping a tag added by
    // another writer. Now tags merge by name, as against OpenShift.
    let stream = "apiVersion: image.openshift.io/v1\nkind: ImageStream\nmetadata:\n  name: app\nspec:\n  tags:\n  - name: one\n    from: {kind: DockerImage, name: registry.example/app:1}\n    reference: true\n";
    let (ok, out, err) = k.stdin(&["apply", "-f", "-"], stream);
    assert!(ok, "{out}{err}");
    k.ok(&[
        "patch",
        "is",
        "app",
        "--type",
        "strategic",
        "-p",
        r#"{"spec":{"tags":[{"name":"two","from":{"kind":"DockerImage","name":"registry.example/app:2"},"reference":true}]}}"#,
    ]);
    let (ok, out, err) = k.stdin(
        &["apply", "-v=5", "-f", "-"],
        &stream.replace("app:1", "app:3"),
    );
    assert!(ok, "{out}{err}");
    assert!(!err.contains(NO_V3_PATCH), "{err}");
    let got = k.ok(&[
        "get",
        "is",
        "app",
        "-o",
        r#"jsonpath={range .spec.tags[*]}{.name}={.from.name};{end}"#,
    ]);
    assert_eq!(
        got,
        "one=registry.example/app:3;two=registry.example/app:2;"
    );

    // Server-side apply keeps working next to the published schemas.
    let ssa = changed.replace("name: web", "name: web-ssa");
    let (ok, out, err) = k.stdin(&["apply", "--server-side", "-f", "-"], &ssa);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("deployment.apps/web-ssa serverside-applied"),
        "{out}"
    );
    let (ok, out, err) = k.stdin(
        &["apply", "--server-side", "-f", "-"],
        &ssa.replace("app:2", "app:4"),
    );
    assert!(ok, "{out}{err}");
    let got = k.ok(&[
        "get",
        "deployment",
        "web-ssa",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(got, "registry.example/app:4");
}
