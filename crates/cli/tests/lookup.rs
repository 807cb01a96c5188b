//! Image lookup, workloads and triggers end to end with the real `moor` binary against
//! `moor serve` children: the seed's last steps with kubectl and a real CNCF
//! distribution upstream (quay.io mirrored to it), lookup turned off, image triggers
//! rolling a deployment forward and back, revisions and `rollout undo`, a second moor
//! as the "cluster" behind `--workload-kubeconfig`, and `moor resolve` on manifests.
//! Servers run with a dead proxy for everything but loopback.

use crate::support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const TIMEOUT: Duration = Duration::from_secs(30);

fn offline_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("HTTPS_PROXY", "http://127.0.0.1:1"),
        ("HTTP_PROXY", "http://127.0.0.1:1"),
        ("https_proxy", "http://127.0.0.1:1"),
        ("http_proxy", "http://127.0.0.1:1"),
        ("NO_PROXY", "127.0.0.1,localhost"),
        ("no_proxy", "127.0.0.1,localhost"),
    ]
}

/// A `moor serve` whose quay.io is `dist` (when given), plus `extra` flags.
fn serve(dir: &Path, dist: Option<&Distribution>, extra: &[&str]) -> MoorProcess {
    let mut flags: Vec<String> = Vec::new();
    if let Some(d) = dist {
        flags.extend([
            "--registry-mirror".into(),
            format!("quay.io={}", d.host),
            "--insecure-registry".into(),
            d.host.clone(),
        ]);
    }
    flags.extend(extra.iter().map(|s| s.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    start_with_env(dir, &flags, &offline_env())
}

/// A `moor serve` without a registry whose `keycloak:20.0` is a reference tag
/// (recorded as given, nothing imported) with image lookup on.
fn serve_with_reference_tag(dir: &Path) -> MoorProcess {
    let server = serve(&dir.join("data"), None, &[]);
    server.ok(&[
        "tag",
        "--source=docker",
        "--reference",
        "quay.io/keycloak/keycloak:20.0.2",
        "keycloak:20.0",
    ]);
    // The import controller records the reference tag's event a moment later.
    let kc = server.kubeconfig();
    wait(
        "the reference tag's history",
        || get_json(&kc, &["is", "keycloak"])["status"]["tags"].clone(),
        |tags| {
            tags.as_array()
                .is_some_and(|t| t.iter().any(|t| t["tag"] == "20.0"))
        },
    );
    server.ok(&["set", "image-lookup", "keycloak"]);
    server
}

fn get_json(kubeconfig: &Path, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend(["-o", "json"]);
    serde_json::from_str(&cli(kubeconfig).ok(&all)).expect("JSON")
}

fn image_of(deploy: &Value) -> String {
    deploy["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Polls `what` until `done` holds; panics with the last value after the timeout.
fn wait<T: std::fmt::Debug>(
    what: &str,
    mut probe: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let v = probe();
        if done(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last: {v:?}"
        );
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// The current image of `stream:tag`, once history has `len` entries.
fn wait_tag(kubeconfig: &Path, stream: &str, tag: &str, digest: &str, len: usize) {
    wait(
        &format!("{stream}:{tag} at {digest}"),
        || {
            let (ok, out, _) = cli(kubeconfig).run(&["get", "is", stream, "-o", "json"]);
            let s: Value = if ok {
                serde_json::from_str(&out).unwrap()
            } else {
                Value::Null
            };
            s["status"]["tags"]
                .as_array()
                .and_then(|t| t.iter().find(|t| t["tag"] == tag))
                .and_then(|t| t["items"].as_array().cloned())
                .unwrap_or_default()
        },
        |items| items.len() == len && items[0]["image"] == digest,
    );
}

fn wait_image(kubeconfig: &Path, deploy: &str, want: &str) -> Value {
    wait(
        &format!("deployment {deploy} to run {want}"),
        || get_json(kubeconfig, &["deploy", deploy]),
        |d| image_of(d) == want,
    )
}

#[test]
fn seed_image_lookup_end_to_end_with_kubectl() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    if peer("kubectl").is_none() {
        return;
    }
    let started = Instant::now();
    let (d1, d2) = two_keycloaks(&dist);
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("data"), Some(&dist), &[]);
    let kc = server.kubeconfig();
    let pinned1 = format!("quay.io/keycloak/keycloak@{d1}");

    // 1-2: the stream and the tag, as the seed says.
    assert_eq!(
        server.ok(&["create", "is", "keycloak"]),
        "imagestream.image.openshift.io/keycloak created\n"
    );
    server.ok(&[
        "create",
        "istag",
        "keycloak:20.0",
        "--from-image",
        "quay.io/keycloak/keycloak:20.0.2",
    ]);
    wait_tag(&kc, "keycloak", "20.0", &d1, 1);

    // 3: set image-lookup, and its list.
    assert_eq!(
        server.ok(&["set", "image-lookup"]),
        "NAME      LOCAL\nkeycloak  false\n"
    );
    assert_eq!(
        server.ok(&["set", "image-lookup", "keycloak"]),
        "imagestream.image.openshift.io/keycloak image lookup updated\n"
    );
    assert_eq!(
        server.ok(&["set", "image-lookup", "keycloak"]),
        "imagestream.image.openshift.io/keycloak image lookup already enabled\n",
        "nothing to change, as oc says it"
    );
    assert_eq!(
        server.ok(&["set", "image-lookup", "--list"]),
        "NAME      LOCAL\nkeycloak  true\n"
    );
    let out = server.ok(&["describe", "is", "keycloak"]);
    assert!(out.contains("keycloak"), "{out}");

    // 4: create deployment with the short name: the template is pinned.
    assert_eq!(
        server.ok(&[
            "create",
            "deployment",
            "mykeycloak",
            "--image",
            "keycloak:20.0"
        ]),
        "deployment.apps/mykeycloak created\n"
    );
    let d = get_json(&kc, &["deploy", "mykeycloak"]);
    assert_eq!(image_of(&d), pinned1);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["name"],
        "keycloak"
    );
    let out = server.ok(&["get", "deploy"]);
    assert!(out.starts_with("NAME         READY   UP-TO-DATE   AVAILABLE   AGE\nmykeycloak   0/1     0            0           "), "{out}");
    assert!(
        server
            .ok(&["get", "deploy", "-o", "wide"])
            .contains(&pinned1)
    );

    // 5: the seed's Deployment YAML, unmodified, through kubectl: pinned too.
    let k = Kubectl::new(&kc).expect("kubectl");
    assert_eq!(
        server.ok(&["delete", "deploy", "mykeycloak"]),
        "deployment.apps \"mykeycloak\" deleted\n"
    );
    let seed = seed_yaml("kind: Deployment");
    assert!(seed.contains("image: keycloak:20.0"), "{seed}");
    let (out, _) = k.apply(&seed);
    assert_eq!(out, "deployment.apps/mykeycloak created\n");
    let d: Value =
        serde_json::from_str(&k.ok(&["get", "deploy", "mykeycloak", "-o", "json"])).unwrap();
    assert_eq!(image_of(&d), pinned1);
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    // Applying it again sends the short name again (kubectl diffs it against the live,
    // pinned image): it resolves to the same pin, so nothing is written.
    let rv = d["metadata"]["resourceVersion"].clone();
    // A second later, so that a new managedFields time would show as a write.
    std::thread::sleep(Duration::from_millis(1100));
    let (out, _) = k.apply(&seed);
    assert_eq!(out, "deployment.apps/mykeycloak configured\n");
    let d = get_json(&kc, &["deploy", "mykeycloak"]);
    assert_eq!(image_of(&d), pinned1);
    assert_eq!(d["metadata"]["resourceVersion"], rv, "no write");
    // kubectl's own views of it work against moor: get, and rollout history.
    let out = k.ok(&["get", "deploy"]);
    assert!(out.contains("mykeycloak   0/2"), "{out}");
    let out = k.ok(&["rollout", "history", "deploy/mykeycloak"]);
    assert!(
        out.contains("REVISION  CHANGE-CAUSE\n1         <none>\n"),
        "{out}"
    );
    // A server-side apply of the same YAML, with another replica count, keeps the pin.
    let ssa = seed.replace("replicas: 2", "replicas: 3");
    let mut child = k
        .cmd()
        .args(["apply", "--server-side", "--force-conflicts", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ssa.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = get_json(&kc, &["deploy", "mykeycloak"]);
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(image_of(&d), pinned1);

    // The tag moves; `kubectl set image` with the short name pins the new image as
    // revision 2; `moor rollout` and `kubectl rollout` go back and forth.
    server.ok(&["tag", "quay.io/keycloak/keycloak:20.0.3", "keycloak:20.0"]);
    wait_tag(&kc, "keycloak", "20.0", &d2, 2);
    let pinned2 = format!("quay.io/keycloak/keycloak@{d2}");
    assert_eq!(
        k.ok(&[
            "set",
            "image",
            "deploy/mykeycloak",
            "mykeycloak=keycloak:20.0"
        ]),
        "deployment.apps/mykeycloak image updated\n"
    );
    let d = get_json(&kc, &["deploy", "mykeycloak"]);
    assert_eq!(image_of(&d), pinned2);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    assert_eq!(
        server.ok(&["rollout", "history", "deploy/mykeycloak"]),
        "deployment.apps/mykeycloak\nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n\n"
    );
    assert_eq!(
        server.ok(&["rollout", "undo", "deploy/mykeycloak"]),
        "deployment.apps/mykeycloak rolled back\n"
    );
    let d = get_json(&kc, &["deploy", "mykeycloak"]);
    assert_eq!(image_of(&d), pinned1);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    let out = server.ok(&["rollout", "history", "deploy/mykeycloak", "--revision", "2"]);
    assert!(
        out.starts_with("deployment.apps/mykeycloak with revision #2\nPod Template:\n"),
        "{out}"
    );
    assert!(out.contains(&pinned2), "{out}");
    assert_eq!(
        server.ok(&["rollout", "undo", "deploy/mykeycloak", "--to-revision", "2"]),
        "deployment.apps/mykeycloak rolled back\n"
    );
    assert_eq!(image_of(&get_json(&kc, &["deploy", "mykeycloak"])), pinned2);
    assert_eq!(
        server.ok(&["rollout", "undo", "deploy/mykeycloak", "--to-revision", "4"]),
        "deployment.apps/mykeycloak skipped rollback (current template already matches revision 4)\n"
    );
    let err = server.fails(&[
        "rollout",
        "undo",
        "deploy/mykeycloak",
        "--to-revision",
        "99",
    ]);
    assert_eq!(
        err,
        "error: unable to find specified revision 99 in history\n"
    );
    // kubectl's own undo reads the same revisions.
    assert_eq!(
        k.ok(&["rollout", "undo", "deploy/mykeycloak"]),
        "deployment.apps/mykeycloak rolled back\n"
    );
    assert_eq!(image_of(&get_json(&kc, &["deploy", "mykeycloak"])), pinned1);
    eprintln!("seed end to end in {:?}", started.elapsed());
}

#[test]
fn lookup_off_leaves_names_alone() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with_reference_tag(dir.path());
    let kc = server.kubeconfig();
    server.ok(&["create", "deployment", "on", "--image", "keycloak:20.0"]);
    assert_eq!(
        image_of(&get_json(&kc, &["deploy", "on"])),
        "quay.io/keycloak/keycloak:20.0.2"
    );

    assert_eq!(
        server.ok(&["set", "image-lookup", "keycloak", "--enabled=false"]),
        "imagestream.image.openshift.io/keycloak image lookup updated\n"
    );
    server.ok(&["create", "deployment", "off", "--image", "keycloak:20.0"]);
    assert_eq!(
        image_of(&get_json(&kc, &["deploy", "off"])),
        "keycloak:20.0"
    );

    // On the workload instead: the template annotation resolves its names again.
    assert_eq!(
        server.ok(&["set", "image-lookup", "deploy/off", "--list"]),
        "NAME             LOCAL\ndeployments/off  false\n"
    );
    assert_eq!(
        server.ok(&["set", "image-lookup", "deploy/off"]),
        "deployment.apps/off image lookup updated\n"
    );
    assert_eq!(
        image_of(&get_json(&kc, &["deploy", "off"])),
        "quay.io/keycloak/keycloak:20.0.2"
    );
    assert_eq!(
        server.ok(&["set", "image-lookup", "deploy/off", "--list"]),
        "NAME             LOCAL\ndeployments/off  true\n"
    );
    let err = server.fails(&["set", "image-lookup", "secret/x"]);
    assert!(
        err.contains("not found") || err.contains("does not support"),
        "{err}"
    );
}

#[test]
fn triggers_roll_deployments_forward_and_back() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let started = Instant::now();
    let (d1, d2) = two_keycloaks(&dist);
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("data"), Some(&dist), &[]);
    let kc = server.kubeconfig();
    let (p1, p2) = (
        format!("quay.io/keycloak/keycloak@{d1}"),
        format!("quay.io/keycloak/keycloak@{d2}"),
    );
    server.ok(&["create", "is", "keycloak", "--lookup-local"]);
    server.ok(&[
        "create",
        "istag",
        "keycloak:20.0",
        "--from-image",
        "quay.io/keycloak/keycloak:20.0.2",
    ]);
    wait_tag(&kc, "keycloak", "20.0", &d1, 1);
    server.ok(&[
        "create",
        "deployment",
        "mykeycloak",
        "--image",
        "keycloak:20.0",
    ]);
    assert_eq!(image_of(&get_json(&kc, &["deploy", "mykeycloak"])), p1);

    // Triggers: printed, set, printed again.
    assert_eq!(
        server.ok(&["set", "triggers", "deploy/mykeycloak"]),
        "NAME                    TYPE    VALUE  AUTO\ndeployments/mykeycloak  config         true\n"
    );
    assert_eq!(
        server.ok(&[
            "set",
            "triggers",
            "deploy/mykeycloak",
            "--from-image",
            "keycloak:20.0"
        ]),
        "deployment.apps/mykeycloak triggers updated\n"
    );
    assert_eq!(
        server.ok(&["set", "triggers", "deploy/mykeycloak"]),
        "NAME                    TYPE    VALUE                     AUTO\ndeployments/mykeycloak  config                            true\ndeployments/mykeycloak  image   keycloak:20.0 (keycloak)  true\n"
    );
    let err = server.fails(&[
        "set",
        "triggers",
        "deploy/mykeycloak",
        "--from-image",
        "keycloak:20.0",
        "-c",
        "nope",
    ]);
    assert_eq!(
        err,
        "error: deployments/mykeycloak: not all container names exist: nope (accepts: keycloak)\n"
    );

    // The tag moves: the deployment rolls to the new digest (revision 2).
    server.ok(&["tag", "quay.io/keycloak/keycloak:20.0.3", "keycloak:20.0"]);
    let d = wait_image(&kc, "mykeycloak", &p2);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    eprintln!("rolled forward after {:?}", started.elapsed());

    // Rolling the tag back rolls the deployment back (revision 3, the first template).
    assert!(
        server
            .ok(&["rollback", "keycloak:20.0"])
            .starts_with("Rolled back keycloak:20.0")
    );
    let d = wait_image(&kc, "mykeycloak", &p1);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    assert_eq!(
        server.ok(&["rollout", "history", "deploy/mykeycloak"]),
        "deployment.apps/mykeycloak\nREVISION  CHANGE-CAUSE\n2         <none>\n3         <none>\n\n"
    );

    // A sentinel deployment follows keycloak:sentinel. The controller handles stream
    // events in order, so once a later move of that tag has patched the sentinel, an
    // earlier event of keycloak:20.0 has been decided: the positive signal the
    // "nothing written" checks below wait for.
    server.ok(&[
        "create",
        "istag",
        "keycloak:sentinel",
        "--from-image",
        "quay.io/keycloak/keycloak:20.0.2",
    ]);
    wait_tag(&kc, "keycloak", "sentinel", &d1, 1);
    server.ok(&[
        "create",
        "deployment",
        "zz-sentinel",
        "--image",
        "keycloak:sentinel",
    ]);
    server.ok(&[
        "set",
        "triggers",
        "deploy/zz-sentinel",
        "--from-image",
        "keycloak:sentinel",
    ]);
    // Moves the sentinel's tag to `version` and waits until the sentinel runs `pinned`.
    let sentinel = |version: &str, pinned: &str| {
        server.ok(&[
            "tag",
            &format!("quay.io/keycloak/keycloak:{version}"),
            "keycloak:sentinel",
        ]);
        wait_image(&kc, "zz-sentinel", pinned);
    };

    // The same digest again (a re-import of 20.0.2 lands on d1): nothing changes.
    let d = get_json(&kc, &["deploy", "mykeycloak"]);
    let rv = d["metadata"]["resourceVersion"].clone();
    server.ok(&["tag", "quay.io/keycloak/keycloak:20.0.2", "keycloak:20.0"]);
    wait(
        "the re-import to be recorded",
        || get_json(&kc, &["is", "keycloak"]),
        |s| {
            let generation = s["spec"]["tags"][0]["generation"].as_i64().unwrap_or(0);
            s["status"]["tags"][0]["items"][0]["generation"].as_i64() == Some(generation)
                && s["status"]["tags"][0]["items"][0]["image"] == d1.as_str()
        },
    );
    sentinel("20.0.3", &p2);
    let d = get_json(&kc, &["deploy", "mykeycloak"]);
    assert_eq!(
        d["metadata"]["resourceVersion"], rv,
        "same digest: the deployment was not written"
    );

    // Paused (--manual pauses the deployment too): a move of the tag is not followed.
    server.ok(&["set", "triggers", "deploy/mykeycloak", "--manual"]);
    let d = get_json(&kc, &["deploy", "mykeycloak"]);
    assert_eq!(d["spec"]["paused"], true);
    server.ok(&["tag", "quay.io/keycloak/keycloak:20.0.3", "keycloak:20.0"]);
    wait_tag(&kc, "keycloak", "20.0", &d2, 4);
    sentinel("20.0.2", &p1);
    assert_eq!(
        image_of(&get_json(&kc, &["deploy", "mykeycloak"])),
        p1,
        "paused trigger skipped"
    );
    let err = server.fails(&["rollout", "undo", "deploy/mykeycloak"]);
    assert!(
        err.contains("you cannot rollback a paused deployment"),
        "{err}"
    );
    // --auto resumes: the deployment catches up with the tag.
    server.ok(&["set", "triggers", "deploy/mykeycloak", "--auto"]);
    wait_image(&kc, "mykeycloak", &p2);

    // Without triggers, `rollout undo` goes back one revision, then to a chosen one.
    assert_eq!(
        server.ok(&["set", "triggers", "deploy/mykeycloak", "--remove-all"]),
        "deployment.apps/mykeycloak triggers updated\n"
    );
    // As in oc, removing all triggers removes the config trigger too: paused.
    assert_eq!(
        get_json(&kc, &["deploy", "mykeycloak"])["spec"]["paused"],
        true
    );
    assert_eq!(
        server.ok(&["set", "triggers", "deploy/mykeycloak", "--from-config"]),
        "deployment.apps/mykeycloak triggers updated\n"
    );
    assert_eq!(
        get_json(&kc, &["deploy", "mykeycloak"])["spec"]["paused"],
        false
    );
    assert_eq!(
        get_json(&kc, &["deploy", "mykeycloak"])["metadata"]["annotations"]
            .get("image.openshift.io/triggers"),
        None
    );
    // `rollout undo` restores the previous revision's template and annotations: its
    // trigger comes back and follows the tag (now at d2) again.
    assert_eq!(
        server.ok(&["rollout", "undo", "deploy/mykeycloak"]),
        "deployment.apps/mykeycloak rolled back\n"
    );
    let d = wait_image(&kc, "mykeycloak", &p2);
    assert!(
        d["metadata"]["annotations"]
            .get("image.openshift.io/triggers")
            .is_some(),
        "{d}"
    );
    eprintln!("triggers and revisions done after {:?}", started.elapsed());
}

#[test]
fn triggers_patch_workloads_of_another_server() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let (d1, d2) = two_keycloaks(&dist);
    let dir = tempfile::tempdir().unwrap();
    // The "cluster": a second moor, holding the workloads.
    let cluster = serve(&dir.path().join("cluster"), None, &[]);
    let cluster_kc = cluster.kubeconfig();
    let images = serve(
        &dir.path().join("images"),
        Some(&dist),
        &["--workload-kubeconfig", cluster_kc.to_str().unwrap()],
    );
    let images_kc = images.kubeconfig();
    images.ok(&[
        "create",
        "istag",
        "keycloak:20.0",
        "--from-image",
        "quay.io/keycloak/keycloak:20.0.2",
    ]);
    wait_tag(&images_kc, "keycloak", "20.0", &d1, 1);

    cli(&cluster_kc).ok(&[
        "create",
        "deployment",
        "web",
        "--image",
        "quay.io/keycloak/keycloak:20.0.2",
    ]);
    cli(&cluster_kc).ok(&[
        "set",
        "triggers",
        "deploy/web",
        "--from-image",
        "keycloak:20.0",
    ]);
    wait_image(
        &cluster_kc,
        "web",
        &format!("quay.io/keycloak/keycloak@{d1}"),
    );

    images.ok(&["tag", "quay.io/keycloak/keycloak:20.0.3", "keycloak:20.0"]);
    let d = wait_image(
        &cluster_kc,
        "web",
        &format!("quay.io/keycloak/keycloak@{d2}"),
    );
    assert_eq!(
        d["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["manager"] == "moor-image-trigger")
            .count(),
        1
    );
    // Each patch left an Event on the workload, in the cluster that holds it, naming
    // the tag and both images.
    let events = wait(
        "the trigger's Events on deploy/web",
        || {
            get_json(
                &cluster_kc,
                &[
                    "events",
                    "--field-selector",
                    "involvedObject.name=web,reason=ImageTriggerUpdated",
                ],
            )["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        },
        |items| items.len() == 2,
    );
    let moved = events
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.ends_with(d2.as_str()))
        })
        .expect("the event of the move to d2");
    assert_eq!(
        moved["message"],
        format!(
            "Image trigger updated container \"keycloak\" follows default/keycloak:20.0: quay.io/keycloak/keycloak@{d1} -> quay.io/keycloak/keycloak@{d2}"
        )
    );
    assert_eq!(moved["involvedObject"]["kind"], "Deployment");
    assert_eq!(moved["involvedObject"]["uid"], d["metadata"]["uid"]);
    assert_eq!(moved["source"]["component"], "moor-image-trigger");
    // The image server holds no workloads: its own API was not touched.
    let (_, out, _) = cli(&images_kc).run(&["get", "deploy"]);
    assert_eq!(out, "");
    let (_, out, _) = cli(&images_kc).run(&[
        "get",
        "events",
        "--field-selector",
        "reason=ImageTriggerUpdated",
    ]);
    assert_eq!(out, "");
}

#[test]
fn resolve_pins_manifests_and_strict_names_what_did_not_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with_reference_tag(dir.path());
    let manifests = dir.path().join("app.yaml");
    std::fs::write(
        &manifests,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n---\n".to_string()
            + &seed_yaml("kind: Deployment")
            + "---\napiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: export\nspec:\n  schedule: \"0 3 * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers:\n          - name: export\n            image: keycloak:20.0\n          - name: tool\n            image: tools:1.0\n",
    )
    .unwrap();
    let out = server.ok(&["resolve", "-f", manifests.to_str().unwrap()]);
    let docs: Vec<&str> = out.split("---\n").collect();
    assert_eq!(docs.len(), 3, "{out}");
    assert!(docs[0].contains("kind: Service"), "{out}");
    assert!(
        docs[1].contains("image: quay.io/keycloak/keycloak:20.0.2"),
        "{out}"
    );
    assert!(
        docs[1].contains("containerPort: 8080"),
        "the rest is kept: {out}"
    );
    assert!(
        docs[2].contains("image: quay.io/keycloak/keycloak:20.0.2"),
        "{out}"
    );
    assert!(docs[2].contains("image: tools:1.0"), "{out}");
    // A directory reads its manifests in name order.
    let folder = dir.path().join("k8s");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(&manifests, folder.join("b.yaml")).unwrap();
    std::fs::write(folder.join("a.yml"), "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  containers:\n  - name: c\n    image: keycloak:20.0\n").unwrap();
    std::fs::write(folder.join("notes.txt"), "not a manifest").unwrap();
    let out = server.ok(&["resolve", "-f", folder.to_str().unwrap()]);
    assert_eq!(out.split("---\n").count(), 4, "{out}");
    assert!(
        out.starts_with("apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n"),
        "{out}"
    );
    // Nothing was written to the server.
    let (_, out, _) = cli(&server.kubeconfig()).run(&["get", "deploy"]);
    assert_eq!(out, "");

    // --strict: exit 1, print nothing, name each name that did not resolve.
    let (success, out, err) =
        cli(&server.kubeconfig()).run(&["resolve", "-f", manifests.to_str().unwrap(), "--strict"]);
    assert!(!success);
    assert_eq!(out, "");
    assert_eq!(
        err,
        "error: cronjob/export: spec.jobTemplate.spec.template.spec.containers[1].image: \"tools:1.0\" did not resolve: no image stream \"tools\" in namespace \"default\"\n"
    );

    // From stdin, as a List.
    let mut child = Command::new(moor_bin())
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args(["resolve", "-f", "-", "--strict"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: p\n  spec:\n    containers:\n    - name: c\n      image: keycloak:20.0\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("image: quay.io/keycloak/keycloak:20.0.2")
    );
}
