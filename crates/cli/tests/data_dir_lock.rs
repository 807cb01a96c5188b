//! One server per data dir: a second `moor serve` on a data dir in use exits at once
//! with `data dir DIR is in use by pid N` and changes nothing there; once the first
//! server is gone (even by SIGKILL), the dir serves again.

use crate::support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use support::*;

/// Every file under `dir` but the store's (which the first server may write at any
/// time) with its length and modification time.
fn snapshot(dir: &Path) -> BTreeMap<String, (u64, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else if !e.file_name().to_string_lossy().starts_with("moor.db") {
                out.insert(
                    e.path().display().to_string(),
                    (m.len(), m.modified().unwrap()),
                );
            }
        }
    }
    out
}

#[test]
fn a_second_server_on_the_same_data_dir_exits_at_once_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("moor-data");
    let mut first = start(&data, &[]);
    let before = snapshot(&data);
    let kubeconfig = std::fs::read_to_string(first.kubeconfig()).unwrap();

    let mut second = Command::new(moor_bin())
        .args(["serve", "--data-dir"])
        .arg(&data)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            let out = second.wait_with_output().unwrap();
            panic!(
                "a second server kept running on a data dir in use; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = second.wait_with_output().unwrap();
    assert!(!status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: data dir {} is in use by pid {}\n",
            data.display(),
            first.pid()
        )
    );
    assert_eq!(snapshot(&data), before, "nothing in the data dir changed");
    assert_eq!(
        std::fs::read_to_string(first.kubeconfig()).unwrap(),
        kubeconfig
    );
    // The first server still serves what its kubeconfig says.
    let (ok, out, err) = run(Command::new(moor_bin())
        .arg("--kubeconfig")
        .arg(first.kubeconfig())
        .args(["create", "is", "keycloak"])
        .env_remove("RUST_LOG"));
    assert!(ok, "{out}{err}");

    // SIGKILL leaves no lock behind: the dir serves again, with what was stored.
    first.kill();
    let again = start(&data, &[]);
    let (ok, out, err) = run(Command::new(moor_bin())
        .arg("--kubeconfig")
        .arg(again.kubeconfig())
        .args(["get", "is", "-o", "name"])
        .env_remove("RUST_LOG"));
    assert!(ok, "{err}");
    assert_eq!(out, "imagestream.image.openshift.io/keycloak\n");
}
