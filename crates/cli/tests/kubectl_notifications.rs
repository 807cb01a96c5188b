//! The real kubectl (/usr/bin/kubectl) on `moor.io/v1` Notifications: apply
//! (created, unchanged, configured; an unknown field refused under kubectl's strict
//! validation), get (the printer columns; `-o wide` adds Last Error), describe and
//! delete; and `moor describe notification` with the delivery status, after a tag
//! move delivered to a test kit receiver and one refused while it was down.

use crate::support;

use std::time::{Duration, Instant};

use moor_testkit::receiver::Receiver;
use serde_json::Value;
use support::*;

fn notification(url: &str, events: &str) -> String {
    format!(
        "apiVersion: moor.io/v1\nkind: Notification\nmetadata:\n  name: hook\n\
         spec:\n  url: {url}\n  streams: [app]\n  events: [{events}]\n"
    )
}

/// An ImageStreamMapping that moves `app:latest` to a made-up image `n`.
fn mapping(n: u32) -> String {
    let d = format!("sha256:{n:064x}");
    format!(
        "apiVersion: image.openshift.io/v1\nkind: ImageStreamMapping\nmetadata:\n  name: app\n\
         tag: latest\nimage:\n  metadata:\n    name: {d}\n  dockerImageReference: quay.io/team/app@{d}\n"
    )
}

/// Polls the Notification with kubectl until `pred` holds of its status.
fn wait_status(k: &Kubectl, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: Value =
            serde_json::from_str(&k.ok(&["get", "notification", "hook", "-o", "json"])).unwrap();
        if pred(&n["status"]) {
            return n;
        }
        assert!(Instant::now() < deadline, "never {what}: {n}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of the `Key:` line of describe output.
fn field<'a>(described: &'a str, key: &str) -> &'a str {
    described
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in:\n{described}"))
}

#[test]
fn kubectl_applies_lists_describes_and_deletes_notifications() {
    if peer("kubectl").is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let receiver = rt.block_on(Receiver::start());
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        &dir.path().join("data"),
        &["--allow-private-notification-targets"],
    );
    let k = Kubectl::new(&server.kubeconfig()).expect("kubectl");

    let yaml = notification(&receiver.url, "TagUpdated");
    let (out, _) = k.apply(&yaml);
    assert_eq!(out.trim(), "notification.moor.io/hook created");
    let (out, _) = k.apply(&yaml);
    assert_eq!(out.trim(), "notification.moor.io/hook unchanged");
    let (out, _) = k.apply(&notification(&receiver.url, "TagUpdated, ImagePushed"));
    assert_eq!(out.trim(), "notification.moor.io/hook configured");
    let (ok, out, err) = k.stdin(
        &["apply", "-f", "-"],
        &yaml.replace("  streams:", "  bogus: 1\n  streams:"),
    );
    assert!(!ok && err.contains("bogus"), "{out}{err}");

    // A tag move, delivered.
    k.apply("apiVersion: image.openshift.io/v1\nkind: ImageStream\nmetadata:\n  name: app\n");
    let (ok, out, err) = k.stdin(&["create", "-f", "-"], &mapping(1));
    assert!(ok, "{out}{err}");
    wait_status(&k, "delivered", |s| {
        s["delivered"] == 1 && s["pending"] == 0
    });
    let got = rt.block_on(receiver.received());
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].json["data"]["newDigest"],
        format!("sha256:{:064x}", 1)
    );

    let table = k.ok(&["get", "notifications"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "URL", "PENDING", "LAST", "SUCCESS", "AGE"],
        "{table}"
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["hook", receiver.url.as_str(), "0"], "{table}");
    assert!(table.contains(" ago"), "Last Success as an age: {table}");

    // The receiver down: the next move waits, and every view says why.
    receiver.set_up(false);
    let (ok, out, err) = k.stdin(&["create", "-f", "-"], &mapping(2));
    assert!(ok, "{out}{err}");
    wait_status(&k, "refused", |s| {
        s["pending"] == 1 && s["lastError"].as_str().is_some_and(|e| e.contains("503"))
    });
    let wide = k.ok(&["get", "notifications", "-o", "wide"]);
    assert!(
        wide.lines().next().unwrap().contains("LAST ERROR") && wide.contains("503"),
        "{wide}"
    );
    let described = k.ok(&["describe", "notification", "hook"]);
    assert_eq!(field(&described, "Name:"), "hook", "{described}");
    assert_eq!(field(&described, "Kind:"), "Notification", "{described}");
    assert_eq!(field(&described, "Pending:"), "1", "{described}");
    assert!(
        field(&described, "Last Error:").contains("503"),
        "{described}"
    );
    let ours = server.ok(&["describe", "notification", "hook"]);
    assert_eq!(field(&ours, "URL:"), receiver.url, "{ours}");
    assert_eq!(field(&ours, "Events:"), "TagUpdated,ImagePushed", "{ours}");
    assert_eq!(field(&ours, "Pending:"), "1", "{ours}");
    assert_eq!(field(&ours, "Delivered:"), "1", "{ours}");
    assert!(field(&ours, "Last Success:").ends_with("ago)"), "{ours}");
    assert!(field(&ours, "Last Error:").contains("503"), "{ours}");

    // Back up: delivered, the error cleared.
    receiver.set_up(true);
    wait_status(&k, "caught up", |s| {
        s["delivered"] == 2 && s["pending"] == 0 && s.get("lastError").is_none()
    });
    let ours = server.ok(&["describe", "notification", "hook"]);
    assert_eq!(field(&ours, "Last Error:"), "<none>", "{ours}");

    let out = k.ok(&["delete", "notification", "hook"]);
    assert_eq!(out.trim(), "notification.moor.io \"hook\" deleted");
    let err = k.fails(&["get", "notification", "hook"]);
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
}
