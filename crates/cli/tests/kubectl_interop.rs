//! Interop with the real kubectl (/usr/bin/kubectl): the seed's ImageStream YAML with
//! client-side and server-side apply, get (oc's columns), describe, watch, unknown
//! fields under default validation, stale resourceVersions, and delete.

use crate::support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use support::*;

#[test]
fn kubectl_drives_image_streams_like_on_openshift() {
    if peer("kubectl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), &[]);
    let k = Kubectl::new(&server.kubeconfig()).expect("kubectl");
    let seed = seed_yaml("kind: ImageStream");
    assert!(seed.contains("local: true"), "{seed}");

    // Client-side apply: created, then unchanged, then configured.
    let (ok, out, err) = k.stdin(&["apply", "-f", "-"], &seed);
    assert!(ok, "{out}{err}");
    assert_eq!(
        out.trim(),
        "imagestream.image.openshift.io/keycloak created",
        "{err}"
    );
    let (ok, out, _) = k.stdin(&["apply", "-f", "-"], &seed);
    assert!(ok);
    assert_eq!(
        out.trim(),
        "imagestream.image.openshift.io/keycloak unchanged"
    );
    let changed = seed.replace("local: true", "local: false");
    let (ok, out, err) = k.stdin(&["apply", "-f", "-"], &changed);
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        "imagestream.image.openshift.io/keycloak configured"
    );

    let json: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "is", "keycloak", "-o", "json"])).unwrap();
    assert_eq!(json["kind"], "ImageStream");
    assert_eq!(json["spec"]["lookupPolicy"]["local"], false);
    assert!(
        json["status"]["dockerImageRepository"]
            .as_str()
            .unwrap()
            .ends_with("/default/keycloak")
    );

    let table = k.ok(&["get", "is"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        vec!["NAME", "IMAGE", "REPOSITORY", "TAGS", "UPDATED"],
        "{table}"
    );
    assert!(table.lines().nth(1).unwrap().starts_with("keycloak"));
    let short = k.ok(&[
        "get",
        "imagestreams.image.openshift.io",
        "keycloak",
        "-o",
        "name",
    ]);
    assert_eq!(short.trim(), "imagestream.image.openshift.io/keycloak");

    let described = k.ok(&["describe", "is", "keycloak"]);
    assert!(
        described.contains("Name:") && described.contains("keycloak"),
        "{described}"
    );

    // Server-side apply: first of the live state (kubectl then migrates the
    // client-side manager's fields to its own), then of the seed, which changes a field.
    let (ok, out, err) = k.stdin(&["apply", "--server-side", "-f", "-"], &changed);
    assert!(ok, "{out}{err}");
    assert_eq!(
        out.trim(),
        "imagestream.image.openshift.io/keycloak serverside-applied"
    );
    let (ok, out, err) = k.stdin(&["apply", "--server-side", "-f", "-"], &seed);
    assert!(ok, "{out}{err}");
    assert_eq!(
        out.trim(),
        "imagestream.image.openshift.io/keycloak serverside-applied"
    );
    let json: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "is", "keycloak", "-o", "json"])).unwrap();
    assert_eq!(json["spec"]["lookupPolicy"]["local"], true);
    let (ok, out, err) = k.stdin(
        &["apply", "--server-side", "-f", "-"],
        &seed.replace("keycloak", "keycloak-ssa"),
    );
    assert!(ok, "{out}{err}");

    // Unknown fields are refused under kubectl's default (strict) validation.
    let bogus = format!("{}\n  bogusField: 1\n", seed.trim_end());
    let (ok, out, err) = k.stdin(&["apply", "-f", "-"], &bogus);
    assert!(!ok, "{out}");
    assert!(
        err.contains("unknown field") && err.contains("bogusField"),
        "{err}"
    );

    // A stale resourceVersion is a 409 Conflict.
    let mut stale = json.clone();
    k.ok(&["label", "is", "keycloak", "touched=yes"]);
    stale["metadata"]["labels"] = serde_json::json!({"stale": "yes"});
    let (ok, _, err) = k.stdin(&["replace", "-f", "-"], &stale.to_string());
    assert!(!ok);
    assert!(
        err.contains("Conflict") || err.contains("the object has been modified"),
        "{err}"
    );

    // Watch sees a change.
    let mut watch = k
        .cmd()
        .args(["get", "is", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The initial listing arrives first.
    let first = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("watch prints the list");
    assert!(first.contains("EVENT") || first.contains("NAME"), "{first}");
    std::thread::sleep(Duration::from_millis(500));
    k.ok(&["label", "is", "keycloak", "seen=watch"]);
    let mut saw_modified = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) if line.contains("MODIFIED") && line.contains("keycloak") => {
                saw_modified = true;
                break;
            }
            _ => {}
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(saw_modified, "kubectl get -w did not see the change");

    let out = k.ok(&["delete", "is", "keycloak"]);
    assert_eq!(
        out.trim(),
        "imagestream.image.openshift.io \"keycloak\" deleted"
    );
    let err = k.fails(&["get", "is", "keycloak"]);
    assert!(
        err.contains("NotFound") && err.contains("\"keycloak\" not found"),
        "{err}"
    );
}
