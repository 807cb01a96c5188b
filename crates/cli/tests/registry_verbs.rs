//! The registry from the CLI's side, with the real `moor` binary, a real `moor serve`
//! child (TLS, its own CA), a real distribution and skopeo: `moor tag ...
//! --reference-policy local` makes the tag name moor's registry, and `moor
//! import-image ... --mirror` copies every layer in, so that the image still pulls
//! through moor once the upstream is gone.

use crate::support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

fn wait_istag(server: &MoorProcess, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, out, _) = server.moor(&["get", "istag", name, "-o", "json"]);
        if ok {
            return serde_json::from_str(&out).unwrap();
        }
        assert!(Instant::now() < deadline, "{name} never appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn skopeo_copy(server: &MoorProcess, reference: &str, dest: &std::path::Path) -> (bool, String) {
    let (ok, _, err) = run(Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--src-tls-verify=false"])
        .args(["--src-creds", &format!("u:{}", server.token)])
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:x", dest.display())));
    (ok, err)
}

#[test]
fn import_image_mirror_copies_the_layers_so_pulls_survive_the_upstream() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let layout = OciLayout::new();
    layout.add_image("v1", &ImageSpec::app(&"x".repeat(200_000)));
    let digest = dist
        .push(&layout, "v1", "team/offline:1", Format::Oci)
        .digest;
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        &dir.path().join("data"),
        &["--insecure-registry", &dist.host],
    );
    let host = server.host();

    // `tag --reference-policy local`: the istag names moor's registry.
    server.ok(&[
        "tag",
        &dist.reference("team/offline:1"),
        "viatag:1",
        "--reference-policy",
        "local",
        "--insecure",
    ]);
    let istag = wait_istag(&server, "viatag:1");
    assert_eq!(
        istag["image"]["dockerImageReference"],
        format!("{host}/default/viatag@{digest}")
    );

    // `import-image --mirror`: imported, then every layer copied into moor.
    let out = server.ok(&[
        "import-image",
        "offline:1",
        "--from",
        &dist.reference("team/offline:1"),
        "--confirm",
        "--insecure",
        "--mirror",
    ]);
    assert!(
        out.contains("Mirrored offline:1 into moor's registry"),
        "{out}"
    );
    let istag = wait_istag(&server, "offline:1");
    assert_eq!(
        istag["image"]["dockerImageReference"],
        format!("{host}/default/offline@{digest}"),
        "--mirror makes the policy local"
    );
    let blobs = walk(&dir.path().join("data/registry/blobs"));
    assert!(
        blobs >= 3,
        "the manifest, config and layer are cached: {blobs}"
    );

    drop(dist);
    for reference in [
        format!("{host}/default/offline:1"),
        format!("{host}/default/offline@{digest}"),
    ] {
        let dest = tempfile::tempdir().unwrap();
        let (ok, err) = skopeo_copy(&server, &reference, &dest.path().join("oci"));
        assert!(ok, "pull {reference} with the upstream gone: {err}");
    }
    // A tag never pulled itself, naming the same image: what --mirror cached serves
    // it too, with the upstream gone.
    let dest = tempfile::tempdir().unwrap();
    let (ok, err) = skopeo_copy(
        &server,
        &format!("{host}/default/viatag:1"),
        &dest.path().join("oci"),
    );
    assert!(ok, "{err}");
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_pushed_image_survives_kill_9() {
    if !require(&["skopeo", "umoci"]) {
        return;
    }
    let layout = OciLayout::new();
    let digest = layout.add_image("v1", &ImageSpec::app("durable")).digest;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = start(&data, &[]);
    let host = server.host();
    let (ok, _, err) = run(Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--dest-tls-verify=false"])
        .args(["--dest-creds", &format!("u:{}", server.token)])
        .arg(format!("oci:{}:v1", layout.path().display()))
        .arg(format!("docker://{host}/default/durable:1")));
    assert!(ok, "{err}");
    // No goodbye: SIGKILL right after the push was acknowledged.
    server.kill();
    let server = start(&data, &[]);
    let host = server.host();
    let dest = tempfile::tempdir().unwrap();
    let (ok, err) = skopeo_copy(
        &server,
        &format!("{host}/default/durable@{digest}"),
        &dest.path().join("oci"),
    );
    assert!(ok, "the pushed image after kill -9: {err}");
    let istag = wait_istag(&server, "durable:1");
    assert_eq!(istag["image"]["metadata"]["name"], digest.as_str());
}
