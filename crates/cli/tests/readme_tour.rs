//! The README's tour, run verbatim: the `sh` block under "A short tour" is extracted
//! from README.md and each line is run with `sh -c` from a folder holding a copy of
//! `examples/`, against a fresh `moor serve` whose quay.io is a local CNCF distribution
//! (`--registry-mirror`). Between lines the test waits for what a person at a prompt
//! would see settle (imports observed, triggered Deployments rolled), then checks the
//! claims the README's comments make. So the README cannot drift from what works.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const TIMEOUT: Duration = Duration::from_secs(30);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The lines of the first ```sh block after the "A short tour" heading.
fn tour_lines(readme: &str) -> Vec<String> {
    let after = readme
        .split_once("## A short tour")
        .map(|(_, rest)| rest)
        .expect("README.md has a \"## A short tour\" section");
    let block = after
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .map(|(block, _)| block)
        .expect("the tour section has a ```sh block");
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// The environment a tour line runs in: `moor` first on `PATH`, the server's
/// kubeconfig, a scratch `HOME` (kubectl's discovery cache), no proxy for loopback and
/// a dead one for everything else.
struct Shell {
    cwd: PathBuf,
    home: PathBuf,
    kubeconfig: PathBuf,
}

impl Shell {
    fn command(&self, program: &str) -> Command {
        let bin_dir = Path::new(moor_bin()).parent().unwrap().to_path_buf();
        let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )))
        .unwrap();
        let mut c = Command::new(program);
        c.current_dir(&self.cwd)
            .env("PATH", path)
            .env("HOME", &self.home)
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("RUST_LOG")
            .env_remove("KUBERNETES_SERVICE_HOST");
        c
    }

    fn sh(&self, line: &str) -> (bool, String, String) {
        run(self.command("sh").args(["-c", line]))
    }

    fn json(&self, args: &[&str]) -> Option<Value> {
        let (ok, out, _) = run(self.command("moor").args(args).args(["-o", "json"]));
        ok.then(|| serde_json::from_str(&out).expect("JSON"))
    }
}

/// Polls `probe` until it gives `Some`; panics naming `what` after the timeout.
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether every spec tag of `stream` has been acted on: its generation is observed
/// by the newest history entry or by a condition.
fn imports_settled(stream: &Value) -> bool {
    let spec_tags = stream["spec"]["tags"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let status_tags = stream["status"]["tags"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    spec_tags.iter().all(|spec| {
        let Some(generation) = spec["generation"].as_i64() else {
            return true;
        };
        let Some(status) = status_tags.iter().find(|s| s["tag"] == spec["name"]) else {
            return false;
        };
        let observed = |v: &Value| v["generation"].as_i64().unwrap_or(0) >= generation;
        status["items"].get(0).is_some_and(observed)
            || status["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(observed))
    })
}

/// `(image, dockerImageReference)` of each history entry of `tag`, newest first.
fn history(stream: &Value, tag: &str) -> Vec<(String, String)> {
    let status_tags = stream["status"]["tags"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    status_tags
        .iter()
        .find(|t| t["tag"] == tag)
        .and_then(|t| t["items"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|i| {
            (
                i["image"].as_str().unwrap_or_default().to_string(),
                i["dockerImageReference"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

fn containers(deploy: &Value) -> Vec<Value> {
    deploy["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Whether the Deployment has an image trigger that is not paused.
fn follows_a_tag(deploy: &Value) -> bool {
    deploy["metadata"]["annotations"]["image.openshift.io/triggers"]
        .as_str()
        .and_then(|t| serde_json::from_str::<Vec<Value>>(t).ok())
        .is_some_and(|t| t.iter().any(|t| t["paused"] != true))
}

#[test]
fn the_readme_tour_runs_verbatim_on_a_fresh_data_dir() {
    if !require(&["kubectl"]) {
        return;
    }
    let Some(dist) = Distribution::start() else {
        return;
    };
    let (d1, d2) = two_keycloaks(&dist);

    let dir = tempfile::tempdir().unwrap();
    let offline = [
        ("HTTPS_PROXY", "http://127.0.0.1:1"),
        ("HTTP_PROXY", "http://127.0.0.1:1"),
        ("https_proxy", "http://127.0.0.1:1"),
        ("http_proxy", "http://127.0.0.1:1"),
        ("NO_PROXY", "127.0.0.1,localhost"),
        ("no_proxy", "127.0.0.1,localhost"),
    ];
    let mirror = format!("quay.io={}", dist.host);
    let server = MoorProcess::start_with_env(
        moor_bin(),
        &dir.path().join("moor-data"),
        &[
            "--registry-mirror",
            &mirror,
            "--insecure-registry",
            &dist.host,
        ],
        &offline,
    );
    let cwd = dir.path().join("repo");
    copy_dir(&repo_root().join("examples"), &cwd.join("examples"));
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let shell = Shell {
        cwd: cwd.clone(),
        home,
        kubeconfig: server.kubeconfig(),
    };

    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let lines = tour_lines(&readme);
    assert!(lines.len() >= 20, "the tour is there: {lines:?}");

    // The pins the Deployment was seen at while it followed the tag.
    let mut rolled_to: Vec<String> = Vec::new();
    for line in &lines {
        let (ok, out, err) = shell.sh(line);
        assert!(ok, "tour line failed: {line}\nstdout: {out}\nstderr: {err}");

        // What a person at the prompt waits for: the stream's imports done...
        let stream = wait_for(&format!("imports after `{line}`"), || {
            match shell.json(&["get", "is", "keycloak"]) {
                Some(s) if !imports_settled(&s) => None,
                other => Some(other),
            }
        });
        // ...and a Deployment that follows a tag at the tag's image.
        let deploy = shell.json(&["get", "deploy", "mykeycloak"]);
        let deploy = match (&stream, deploy) {
            (Some(s), Some(d)) if follows_a_tag(&d) => {
                let current = history(s, "20.0")[0].1.clone();
                let d = wait_for(
                    &format!("the deployment at {current} after `{line}`"),
                    || {
                        shell
                            .json(&["get", "deploy", "mykeycloak"])
                            .filter(|d| containers(d)[0]["image"] == current.as_str())
                    },
                );
                rolled_to.push(current);
                Some(d)
            }
            (_, d) => d,
        };

        // The claims of the comments.
        if line.starts_with("moor tag quay.io/keycloak/keycloak:20.0.3 keycloak:20.0  ") {
            let s = stream.as_ref().expect("the stream");
            if rolled_to.is_empty() {
                let h = history(s, "20.0");
                assert_eq!(h.len(), 2, "history now has 2 entries: {h:?}");
                assert_eq!(
                    (h[0].0.as_str(), h[1].0.as_str()),
                    (d2.as_str(), d1.as_str())
                );
            }
        }
        if let Some(d) = &deploy {
            let cs = containers(d);
            assert_eq!(cs.len(), 1, "one container after `{line}`: {d}");
            let image = cs[0]["image"].as_str().unwrap_or_default();
            assert!(
                image.starts_with("quay.io/keycloak/keycloak@sha256:"),
                "pinned after `{line}`: {image}"
            );
        }
        if line.starts_with("kubectl apply -f examples/deployment.yaml") {
            let d = deploy.as_ref().expect("the seed's Deployment");
            assert_eq!(containers(d)[0]["name"], "mykeycloak");
            assert_eq!(d["spec"]["replicas"], 2);
        }
        if line.starts_with("moor set triggers") {
            let d = deploy.as_ref().expect("the Deployment");
            assert!(follows_a_tag(d), "{d}");
        }
        if line.starts_with("moor rollout history") {
            assert!(out.contains("REVISION"), "{out}");
        }
        if line.starts_with("moor rollout undo") {
            // As `oc rollback`: the trigger is paused (else it would re-pin at once).
            assert!(
                err.contains(
                    "Warning: the following images triggers were disabled: keycloak:20.0\n  You can re-enable them with: moor set triggers deploy/mykeycloak --auto"
                ),
                "{err}"
            );
            let d = deploy.as_ref().expect("the Deployment");
            assert!(!follows_a_tag(d), "{d}");
            assert_eq!(
                containers(d)[0]["image"],
                format!("quay.io/keycloak/keycloak@{d1}"),
                "back at the previous revision"
            );
        }
        if line.starts_with("moor prune images --keep") {
            assert!(out.contains("Summary: would delete"), "a dry run: {out}");
        }
    }
    // The undo held: later commands ran, the trigger stayed paused and the image put.
    let d = shell
        .json(&["get", "deploy", "mykeycloak"])
        .expect("the Deployment");
    assert!(!follows_a_tag(&d), "{d}");
    assert_eq!(
        containers(&d)[0]["image"],
        format!("quay.io/keycloak/keycloak@{d1}")
    );
    // The trigger rolled the Deployment back and forward with the tag.
    let (at1, at2) = (
        format!("quay.io/keycloak/keycloak@{d1}"),
        format!("quay.io/keycloak/keycloak@{d2}"),
    );
    assert!(
        rolled_to.windows(2).any(|w| w[0] == at1 && w[1] == at2),
        "rolled back to 20.0.2, then forward to 20.0.3: {rolled_to:?}"
    );
    // `resolve` wrote the pinned manifests.
    let pinned = std::fs::read_to_string(cwd.join("pinned.yaml")).unwrap();
    assert!(
        pinned.contains("image: quay.io/keycloak/keycloak@sha256:"),
        "{pinned}"
    );
}
