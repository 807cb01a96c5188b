//! kubectl and oc habits of the `moor` CLI against a real `moor serve`: `version`,
//! `completion`, `get -w`, `--sort-by`, `-l`, `--field-selector`, `describe` ending with
//! the object's Events, kubectl's words for an unknown flag, `set image-lookup`
//! saying a stream is already enabled, and `serve` refusing a bad `--console-url`.

use crate::support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

fn moor(server: &MoorProcess, args: &[&str]) -> (bool, String, String) {
    run(Command::new(moor_bin())
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args(args)
        .env_remove("RUST_LOG"))
}

fn ok(server: &MoorProcess, args: &[&str]) -> String {
    let (success, out, err) = moor(server, args);
    assert!(
        success,
        "moor {args:?} failed:\nstdout: {out}\nstderr: {err}"
    );
    out
}

#[test]
fn version_and_completion() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), &[]);
    let v = env!("CARGO_PKG_VERSION");
    let out = ok(&server, &["version"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], format!("Client Version: {v}"));
    assert_eq!(lines[1], format!("Server Version: {v}"));
    assert!(
        lines[2].starts_with("Kubernetes Version: v1.")
            && lines[2].ends_with(&format!("+moor-{v}")),
        "{out}"
    );
    // --client needs no server.
    let (success, out, err) = run(Command::new(moor_bin())
        .args(["version", "--client"])
        .env("KUBECONFIG", dir.path().join("missing")));
    assert!(success, "{err}");
    assert_eq!(out, format!("Client Version: {v}\n"));
    let doc: serde_json::Value =
        serde_json::from_str(&ok(&server, &["version", "-o", "json"])).unwrap();
    assert_eq!(doc["clientVersion"], v);
    assert_eq!(doc["serverVersion"], v);

    for (shell, marker) in [
        ("bash", "complete -F _moor"),
        ("zsh", "#compdef moor"),
        ("fish", "complete -c moor"),
    ] {
        let (success, out, err) = run(Command::new(moor_bin()).args(["completion", shell]));
        assert!(success, "{err}");
        assert!(out.contains(marker), "{shell}: {out}");
        assert!(out.contains("image-lookup"), "{shell} knows the verbs");
    }
}

#[test]
fn get_selects_sorts_and_watches() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), &[]);
    let http = server.client();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (name, rank) in [("a", "3"), ("b", "1"), ("c", "2")] {
        let resp = rt
            .block_on(
                http.post(format!(
                    "{}/apis/image.openshift.io/v1/namespaces/default/imagestreams",
                    server.url
                ))
                .bearer_auth(&server.token)
                .json(&json!({"metadata": {"name": name, "labels": {"rank": rank}}}))
                .send(),
            )
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
    }

    // --sort-by, on a table and on names; numbers would sort by value, these are text.
    let out = ok(&server, &["get", "is", "--sort-by=.metadata.labels.rank"]);
    let names: Vec<&str> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert_eq!(names, ["b", "c", "a"], "{out}");
    let out = ok(
        &server,
        &[
            "get",
            "is",
            "-o",
            "name",
            "--sort-by",
            "{.metadata.labels.rank}",
        ],
    );
    assert_eq!(
        out,
        "imagestream.image.openshift.io/b\nimagestream.image.openshift.io/c\nimagestream.image.openshift.io/a\n"
    );
    // -l and --field-selector.
    assert_eq!(
        ok(&server, &["get", "is", "-l", "rank=1", "-o", "name"]),
        "imagestream.image.openshift.io/b\n"
    );
    assert_eq!(
        ok(
            &server,
            &[
                "get",
                "is",
                "--field-selector",
                "metadata.name=c",
                "-o",
                "name"
            ]
        ),
        "imagestream.image.openshift.io/c\n"
    );
    let out = ok(&server, &["get", "is", "--field-selector=metadata.name!=c"]);
    assert!(
        out.contains("\na ") && out.contains("\nb ") && !out.contains("\nc "),
        "{out}"
    );

    // -w: the listing, then a row for each change.
    let mut child = Command::new(moor_bin())
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args(["get", "is", "-w"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen: Vec<String> = Vec::new();
    let mut wait_line = |want: &dyn Fn(&str) -> bool, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if seen.iter().any(|l| want(l)) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(_) => panic!("no {what} from get -w; saw {seen:?}"),
            }
        }
    };
    wait_line(&|l| l.starts_with("NAME"), "header");
    wait_line(&|l| l.starts_with("c "), "listing");
    ok(&server, &["create", "is", "d"]);
    wait_line(&|l| l.starts_with("d "), "row for the new stream");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn describe_ends_with_events_and_unknown_flags_read_like_kubectl() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), &[]);
    ok(&server, &["create", "is", "keycloak"]);
    ok(&server, &["create", "is", "quiet"]);
    let http = server.client();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let now = "2026-01-01T00:00:00Z";
    let resp = rt
        .block_on(
            http.post(format!("{}/api/v1/namespaces/default/events", server.url))
                .bearer_auth(&server.token)
                .json(&json!({
                    "metadata": {"name": "keycloak.1"},
                    "involvedObject": {"kind": "ImageStream", "name": "keycloak", "namespace": "default",
                                       "apiVersion": "image.openshift.io/v1"},
                    "type": "Warning", "reason": "ImportFailed", "message": "manifest unknown",
                    "count": 2, "firstTimestamp": now, "lastTimestamp": now,
                    "source": {"component": "moor-importer"}
                }))
                .send(),
        )
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let out = ok(&server, &["describe", "is", "keycloak"]);
    let events = out.split_once("Events:\n").map(|(_, e)| e).unwrap_or("");
    let lines: Vec<&str> = events.lines().collect();
    assert!(
        lines.len() == 3
            && lines[0].starts_with("  Type     Reason        Age")
            && lines[2].starts_with("  Warning  ImportFailed  ")
            && lines[2].contains(" (x2 over ")
            && lines[2].ends_with("  moor-importer  manifest unknown"),
        "{out}"
    );
    let out = ok(&server, &["describe", "is", "quiet"]);
    assert!(out.ends_with("Events:  <none>\n"), "{out}");

    // A kubectl flag moor does not take: kubectl's words, not clap's tip.
    let (success, out, err) = moor(
        &server,
        &["describe", "is", "keycloak", "--show-events=false"],
    );
    assert!(!success);
    assert_eq!(out, "");
    assert_eq!(
        err,
        "error: unknown flag: --show-events\nSee 'moor describe --help' for usage.\n"
    );

    // set image-lookup on a stream that has it: oc's "already enabled".
    assert_eq!(
        ok(&server, &["set", "image-lookup", "keycloak"]),
        "imagestream.image.openshift.io/keycloak image lookup updated\n"
    );
    assert_eq!(
        ok(&server, &["set", "image-lookup", "keycloak"]),
        "imagestream.image.openshift.io/keycloak image lookup already enabled\n"
    );
}

/// A `--console-url` that is not an http(s) origin stops `moor serve` before it
/// touches anything, saying why; `--help` explains the flag.
#[test]
fn serve_refuses_a_bad_console_url_and_explains_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (url, why) in [
        ("ftp://x", "the scheme must be https or http, not ftp"),
        ("https://x/?a=b", "must not have a query"),
        ("https://x/moor", "a path (/moor) is not supported"),
        ("moor.example.com", "not an absolute URL"),
    ] {
        let (ok, out, err) = run(Command::new(moor_bin())
            .arg("serve")
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", "127.0.0.1:0", "--console-url", url])
            .env_remove("RUST_LOG"));
        assert!(!ok, "{url} started: {out}");
        assert!(
            err.starts_with(&format!(
                "error: invalid value '{url}' for '--console-url <URL>': "
            )) && err.contains(why),
            "{url}: {err}"
        );
        assert!(!data.exists(), "{url}: nothing is written");
    }
    let (ok, help, err) = run(Command::new(moor_bin()).args(["serve", "--help"]));
    assert!(ok, "{err}");
    // Wrapped at the terminal's width: compare the words.
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for part in [
        "--console-url <URL>",
        "TLS-terminating proxy",
        "/console/oidc/callback",
        "--console-url https://moor.example.com",
        "Without it, the redirect_uri is built from each request's Host header",
    ] {
        assert!(help.contains(part), "--help lacks {part:?}: {help}");
    }
}
