//! `moor prune images` end to end: three revisions of a tag pushed into moor's registry
//! with skopeo (images built by umoci; the last two share their layer), a dry run that
//! changes nothing, then `--confirm`, after which the old history entries, their Images
//! and the blobs only they used are gone, the shared layer stays, and the current image
//! still pulls byte for byte. Real `moor` binary against a real `moor serve` child.

use crate::support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::*;

fn skopeo(args: &[&str]) -> (bool, String, String) {
    run(Command::new("skopeo").arg("--insecure-policy").args(args))
}

/// Pushes `tag` of `layout` to `default/app:latest` in moor's registry.
fn push(server: &MoorProcess, layout: &OciLayout, tag: &str) {
    let creds = format!("u:{}", server.token);
    let (success, out, err) = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &format!("oci:{}:{tag}", layout.path().display()),
        &format!("docker://{}/default/app:latest", server.host()),
    ]);
    assert!(success, "skopeo push of {tag} failed:\n{out}\n{err}");
}

/// The digests of the blobs in moor's blob store.
fn stored_blobs(server: &MoorProcess) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let root = server.data_dir.join("registry/blobs/sha256");
    for prefix in std::fs::read_dir(&root).expect("blob store").flatten() {
        for f in std::fs::read_dir(prefix.path())
            .expect("blob dir")
            .flatten()
        {
            out.insert(format!("sha256:{}", f.file_name().to_string_lossy()));
        }
    }
    out
}

fn blob_path(layout_dir: &Path, digest: &str) -> PathBuf {
    layout_dir
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// The config and layer digests of manifest `digest` in an OCI layout.
fn parts(layout_dir: &Path, digest: &str) -> (String, Vec<String>) {
    let m: Value = serde_json::from_slice(
        &std::fs::read(blob_path(layout_dir, digest)).expect("manifest in layout"),
    )
    .expect("manifest JSON");
    let config = m["config"]["digest"].as_str().expect("config").to_string();
    let layers = m["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("layer digest").to_string())
        .collect();
    (config, layers)
}

/// The images of `app:latest`'s history, newest first.
fn history(server: &MoorProcess) -> Vec<String> {
    let (out, _) = server.cli().ok_both(&["get", "is", "app", "-o", "json"]);
    let s: Value = serde_json::from_str(&out).expect("stream JSON");
    s["status"]["tags"][0]["items"]
        .as_array()
        .expect("history")
        .iter()
        .map(|e| e["image"].as_str().expect("image").to_string())
        .collect()
}

#[test]
fn prune_images_removes_old_revisions_and_their_blobs_only() {
    if !require(&["skopeo", "umoci"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start(&dir.path().join("data"), &[]);

    let layout = OciLayout::new();
    let v1 = layout.add_image("v1", &ImageSpec::app("one")).digest;
    let v2 = layout.add_image("v2", &ImageSpec::app("two")).digest;
    let v3 = layout.relabel("v2", "v3", "three").digest; // v2's layer, its own config
    let (c1, l1) = parts(&layout.path(), &v1);
    let (c2, l2) = parts(&layout.path(), &v2);
    let (c3, l3) = parts(&layout.path(), &v3);
    assert_eq!(l2, l3, "v3 shares v2's layer");
    assert_ne!(l1, l2);
    for tag in ["v1", "v2", "v3"] {
        push(&server, &layout, tag);
    }
    assert_eq!(history(&server), [v3.as_str(), &v2, &v1]);
    let before = stored_blobs(&server);
    let only_old: BTreeSet<String> = [&v1, &c1, &l1[0], &v2, &c2].into_iter().cloned().collect();
    let kept: BTreeSet<String> = [&v3, &c3, &l3[0]].into_iter().cloned().collect();
    assert!(
        only_old.is_subset(&before) && kept.is_subset(&before),
        "every pushed blob is stored: {before:?}"
    );
    // Everything must be older than the prune's start, with a second of doubt.
    std::thread::sleep(std::time::Duration::from_millis(2200));

    let args = [
        "prune",
        "images",
        "--keep-tag-revisions=1",
        "--keep-younger-than=0s",
    ];
    let (out, err) = server.cli().ok_both(&args);
    assert!(
        err.contains(
            "Dry run enabled - no modifications will be made. Add --confirm to remove images"
        ),
        "{err}"
    );
    assert!(
        out.contains("Deleting 2 items from image stream default/app"),
        "{out}"
    );
    for d in &only_old {
        assert!(out.contains(&format!("Deleting blob {d}")), "{d} in\n{out}");
    }
    for d in &kept {
        assert!(
            !out.contains(&format!("Deleting blob {d}")),
            "{d} kept in\n{out}"
        );
    }
    assert_eq!(
        history(&server),
        [v3.as_str(), &v2, &v1],
        "a dry run changes nothing"
    );
    assert_eq!(stored_blobs(&server), before, "a dry run removes no blob");
    server.ok(&["get", "image", &v1]);

    let mut confirm = args.to_vec();
    confirm.push("--confirm");
    let (out, err) = server.cli().ok_both(&confirm);
    assert!(!err.contains("Dry run"), "{err}");
    assert!(out.contains(&format!("Deleting image {v1}")), "{out}");
    assert!(out.contains(&format!("Deleting image {v2}")), "{out}");
    assert!(
        out.contains(
            "Summary: deleted 2 image object(s), deleted 2 image stream tag item(s), updated 1 image stream(s)"
        ),
        "{out}"
    );
    assert_eq!(history(&server), [v3.as_str()]);
    for gone in [&v1, &v2] {
        let (found, _, err) = server.moor(&["get", "image", gone]);
        assert!(!found && err.contains("NotFound"), "image {gone}: {err}");
    }
    let after = stored_blobs(&server);
    assert_eq!(after, &before - &only_old, "exactly the old blobs are gone");
    assert!(kept.is_subset(&after), "the shared layer and v3 stay");

    // The current image still pulls, byte for byte; the old ones do not.
    let creds = format!("u:{}", server.token);
    let pulled = dir.path().join("pulled");
    let (success, o, e) = skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        &creds,
        &format!("docker://{}/default/app:latest", server.host()),
        &format!("oci:{}:latest", pulled.display()),
    ]);
    assert!(success, "pull after prune failed:\n{o}\n{e}");
    for d in &kept {
        assert_eq!(
            std::fs::read(blob_path(&pulled, d)).expect("pulled blob"),
            std::fs::read(blob_path(&layout.path(), d)).expect("built blob"),
            "{d} is byte-identical"
        );
    }
    let (found, _, _) = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        &creds,
        &format!("docker://{}/default/app@{v1}", server.host()),
    ]);
    assert!(!found, "the pruned manifest is not served");

    // Nothing is left to prune.
    let (out, _) = server.cli().ok_both(&confirm);
    assert!(out.contains("Summary: deleted 0 objects"), "{out}");
}
