//! Scheduled import end to end with the real `moor` binary: a `moor serve` child with
//! `--scheduled-import-interval 2s` in front of a real CNCF distribution (as quay.io,
//! through `--registry-mirror`). `moor tag ... --scheduled` follows the registry,
//! `moor describe is` shows the last and next check, `moor get scheduledimports`
//! lists them, a rollback stops the schedule (describe says how to resume) and
//! `moor tag ... --scheduled` resumes it; a SIGKILLed server restarted on the same
//! data directory goes on from its records.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const TIMEOUT: Duration = Duration::from_secs(30);
const INTERVAL: Duration = Duration::from_secs(2);
const SOURCE: &str = "quay.io/keycloak/keycloak:nightly";

fn serve(data: &std::path::Path, dist: &Distribution) -> MoorProcess {
    let mirror = format!("quay.io={}", dist.host);
    start_with_env(
        data,
        &[
            "--registry-mirror",
            &mirror,
            "--insecure-registry",
            &dist.host,
            "--scheduled-import-interval",
            "2s",
        ],
        &[
            ("HTTPS_PROXY", "http://127.0.0.1:1"),
            ("HTTP_PROXY", "http://127.0.0.1:1"),
            ("https_proxy", "http://127.0.0.1:1"),
            ("http_proxy", "http://127.0.0.1:1"),
            ("NO_PROXY", "127.0.0.1,localhost"),
            ("no_proxy", "127.0.0.1,localhost"),
        ],
    )
}

/// The images of the history of `keycloak:nightly`, newest first.
fn history(server: &MoorProcess) -> Vec<String> {
    let (success, out, _) = server.moor(&["get", "is", "keycloak", "-o", "json"]);
    if !success {
        return Vec::new();
    }
    let s: Value = serde_json::from_str(&out).expect("stream JSON");
    s["status"]["tags"]
        .as_array()
        .and_then(|tags| tags.iter().find(|t| t["tag"] == "nightly"))
        .and_then(|t| t["items"].as_array())
        .map(|items| {
            items
                .iter()
                .map(|i| i["image"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `f` every 200 ms until it returns `Some`, or panics after `timeout`.
fn wait<T>(
    server: &MoorProcess,
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\nserver log: {}",
            std::fs::read_to_string(server.data_dir.with_extension("log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `moor describe is keycloak`, once it contains every one of `wanted`.
fn describe_with(server: &MoorProcess, wanted: &[&str]) -> String {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (_, out, _) = server.moor(&["describe", "is", "keycloak"]);
        if wanted.iter().all(|w| out.contains(w)) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "describe never showed {wanted:?}; last:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The `lastCheckTime` of the record of `keycloak:nightly`.
fn last_check(server: &MoorProcess) -> Option<String> {
    last_check_of(server, "keycloak:nightly")
}

/// The `lastCheckTime` of the record of `stream_tag`.
fn last_check_of(server: &MoorProcess, stream_tag: &str) -> Option<String> {
    let (success, out, _) = server.moor(&["get", "scheduledimports", stream_tag, "-o", "json"]);
    if !success {
        return None;
    }
    let v: Value = serde_json::from_str(&out).ok()?;
    v["status"]["lastCheckTime"].as_str().map(str::to_string)
}

#[test]
fn scheduled_tag_follows_its_registry_and_rollback_pauses_it() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let layout = OciLayout::new();
    let d1 = layout
        .add_image("v1", &ImageSpec::app("keycloak nightly 1\n"))
        .digest;
    let d2 = layout
        .add_image("v2", &ImageSpec::app("keycloak nightly 2\n"))
        .digest;
    dist.push(&layout, "v1", "keycloak/keycloak:nightly", Format::Oci);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = serve(&data, &dist);

    let out = server.ok(&["tag", SOURCE, "keycloak:nightly", "--scheduled"]);
    assert!(out.contains("keycloak:nightly"), "{out}");
    wait(&server, "the first import", TIMEOUT, || {
        (history(&server) == [d1.clone()]).then_some(())
    });
    let described = describe_with(
        &server,
        &[
            &format!("updates automatically from registry {SOURCE}"),
            "(unchanged)",
            "next check: ",
        ],
    );
    assert!(described.contains("    last check: "), "{described}");

    let table = server.ok(&["get", "scheduledimports"]);
    let header = table.lines().next().unwrap_or_default();
    for column in ["NAME", "FROM", "RESULT", "LAST CHECK", "NEXT CHECK"] {
        assert!(header.contains(column), "{table}");
    }
    assert!(
        table.contains("keycloak:nightly") && table.contains(SOURCE),
        "{table}"
    );

    // A new image upstream is followed.
    dist.push(&layout, "v2", "keycloak/keycloak:nightly", Format::Oci);
    let pushed = Instant::now();
    wait(&server, "the scheduled import", TIMEOUT, || {
        (history(&server) == [d2.clone(), d1.clone()]).then_some(())
    });
    let took = pushed.elapsed();
    assert!(
        took <= 2 * INTERVAL + Duration::from_secs(2),
        "the new image took {took:?}"
    );

    // A sentinel tag scheduled from the same source: its checks show the scheduler
    // at work while keycloak:nightly is rolled back.
    server.ok(&["tag", SOURCE, "sentinel:nightly", "--scheduled"]);
    wait(&server, "the sentinel's first check", TIMEOUT, || {
        last_check_of(&server, "sentinel:nightly")
    });

    // A rollback pins the tag to an image of its history: no more checks.
    server.ok(&["rollback", "keycloak:nightly"]);
    wait(&server, "the rollback", TIMEOUT, || {
        (history(&server).first() == Some(&d1)).then_some(())
    });
    let described = describe_with(
        &server,
        &[&format!("scheduled import from registry {SOURCE} is off")],
    );
    assert!(
        described.contains(&format!(
            "resume it with: moor tag {SOURCE} keycloak:nightly --scheduled"
        )),
        "{described}"
    );
    assert!(!described.contains("next check:"), "{described}");
    let stopped_at = last_check(&server);
    // Three checks of the sentinel later (at least two intervals), a check of
    // keycloak:nightly would have come had it stayed scheduled.
    let mut sentinel = last_check_of(&server, "sentinel:nightly");
    for _ in 0..3 {
        let before = sentinel.clone();
        sentinel = Some(wait(&server, "a check of the sentinel", TIMEOUT, || {
            last_check_of(&server, "sentinel:nightly").filter(|t| Some(t) != before.as_ref())
        }));
    }
    assert_eq!(
        last_check(&server),
        stopped_at,
        "no check while rolled back"
    );
    assert_eq!(history(&server).first(), Some(&d1), "the rollback holds");

    // Tagging from the registry again resumes the schedule.
    server.ok(&["tag", SOURCE, "keycloak:nightly", "--scheduled"]);
    wait(&server, "the registry's image again", TIMEOUT, || {
        (history(&server).first() == Some(&d2)).then_some(())
    });
    describe_with(
        &server,
        &[
            &format!("updates automatically from registry {SOURCE}"),
            "next check: ",
        ],
    );
    let resumed = wait(&server, "a check after resuming", TIMEOUT, || {
        last_check(&server).filter(|t| Some(t) != stopped_at.as_ref())
    });

    // SIGKILL and restart on the same data: the record survives and checks go on.
    server.kill();
    let server = serve(&data, &dist);
    assert!(
        last_check(&server).is_some_and(|t| t >= resumed),
        "the record survived the restart"
    );
    let before = last_check(&server);
    wait(
        &server,
        "a check after the restart",
        INTERVAL * 3 + Duration::from_secs(5),
        || last_check(&server).filter(|t| Some(t) != before.as_ref()),
    );
    assert_eq!(
        history(&server).len(),
        4,
        "restarting imported nothing new: {:?}",
        history(&server)
    );
}
