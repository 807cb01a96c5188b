//! The `moor` verbs end to end: a real `moor serve` child, the real `moor` binary as
//! the client, checking stdout, stderr and exit codes against what oc prints.

use crate::support;

use std::process::Command;

use support::*;

#[test]
fn create_get_describe_delete() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        &dir.path().join("data"),
        &["--registry-hostname", "registry.test:5000"],
    );

    let (ok, out, err) = server.moor(&["create", "is", "keycloak"]);
    assert!(ok, "{err}");
    assert_eq!(out, "imagestream.image.openshift.io/keycloak created\n");

    let (ok, _, err) = server.moor(&["create", "is", "keycloak"]);
    assert!(!ok);
    assert_eq!(
        err,
        "Error from server (AlreadyExists): imagestreams.image.openshift.io \"keycloak\" already exists\n"
    );

    let (ok, out, _) = server.moor(&["get", "is"]);
    assert!(ok);
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("NAME       IMAGE REPOSITORY"), "{out}");
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("keycloak   registry.test:5000/default/keycloak"),
        "{out}"
    );

    let (ok, out, _) = server.moor(&[
        "get",
        "is",
        "keycloak",
        "-o",
        "jsonpath={.status.dockerImageRepository}",
    ]);
    assert!(ok);
    assert_eq!(out, "registry.test:5000/default/keycloak");

    let (ok, out, _) = server.moor(&["get", "is", "-o", "name"]);
    assert!(ok);
    assert_eq!(out, "imagestream.image.openshift.io/keycloak\n");

    let (ok, out, _) = server.moor(&["get", "is", "keycloak", "-o", "yaml"]);
    assert!(ok);
    assert!(
        out.starts_with("apiVersion: image.openshift.io/v1\nkind: ImageStream\n"),
        "{out}"
    );

    let (ok, out, err) = server.moor(&["get", "istag"]);
    assert!(ok);
    assert_eq!(out, "");
    assert_eq!(err, "No resources found in default namespace.\n");

    let (ok, out, _) = server.moor(&["describe", "is", "keycloak"]);
    assert!(ok);
    assert!(
        out.starts_with("Name:\t\t\tkeycloak\nNamespace:\t\tdefault\nCreated:\t\t"),
        "{out}"
    );
    assert!(
        out.contains("Image Repository:\tregistry.test:5000/default/keycloak\n"),
        "{out}"
    );
    assert!(
        out.ends_with("Tags:\t\t\t<none>\nEvents:  <none>\n"),
        "{out}"
    );

    let (ok, _, err) = server.moor(&["get", "is", "nope"]);
    assert!(!ok);
    assert_eq!(
        err,
        "Error from server (NotFound): imagestreams.image.openshift.io \"nope\" not found\n"
    );

    let (ok, out, _) = server.moor(&["create", "namespace", "team-a"]);
    assert!(ok);
    assert_eq!(out, "namespace/team-a created\n");
    let (ok, out, _) = server.moor(&["-n", "team-a", "create", "is", "web", "--lookup-local"]);
    assert!(ok, "{out}");
    let (ok, out, _) = server.moor(&["get", "is", "-A", "--no-headers"]);
    assert!(ok);
    let namespaces: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(namespaces, vec!["default", "team-a"], "{out}");

    let (ok, out, _) = server.moor(&["delete", "is", "keycloak"]);
    assert!(ok);
    assert_eq!(out, "imagestream.image.openshift.io \"keycloak\" deleted\n");
    let (ok, _, err) = server.moor(&["delete", "istag", "keycloak:1"]);
    assert!(!ok);
    assert!(err.starts_with("Error from server (NotFound): "), "{err}");
}

#[test]
fn client_errors() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &kubeconfig,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n"),
    )
    .unwrap();
    let (ok, out, err) = run(Command::new(moor_bin())
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "is"])
        .env_remove("RUST_LOG"));
    assert!(!ok);
    assert_eq!(out, "");
    assert!(
        err.starts_with(&format!(
            "error: The connection to the server 127.0.0.1:{port} was refused"
        )),
        "{err}"
    );

    let (ok, _, err) = run(Command::new(moor_bin())
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "routes"]));
    assert!(!ok);
    assert_eq!(
        err,
        "error: the server doesn't have a resource type \"routes\"\n"
    );

    let (ok, _, err) =
        run(Command::new(moor_bin()).args(["serve", "--registry-mirror", "quay.io"]));
    assert!(!ok);
    assert!(err.contains("expected SOURCE=MIRROR"), "{err}");
}
