//! The import verbs end to end — `create istag`, `tag`, `import-image`, `rollback`,
//! `describe is|istag` — with the real `moor` binary against a real `moor serve` child
//! and a real CNCF distribution holding images built by umoci and pushed by skopeo.
//! quay.io is served by that distribution through `--registry-mirror`; the server runs
//! with a dead HTTP(S) proxy for everything but loopback, so an attempt to reach the
//! real quay.io fails the test instead of going out.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// How long the import controller may take to write history.
const IMPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// A `moor serve` whose quay.io is `dist`, and which cannot reach anything else.
fn serve(dir: &std::path::Path, dist: &Distribution) -> MoorProcess {
    let mirror = format!("quay.io={}", dist.host);
    start_with_env(
        &dir.join("data"),
        &[
            "--registry-mirror",
            &mirror,
            "--insecure-registry",
            &dist.host,
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

/// The stream as `moor get is NAME -o json` prints it, or `None` when it is missing.
fn stream(server: &MoorProcess, name: &str) -> Option<Value> {
    let (success, out, _) = server.moor(&["get", "is", name, "-o", "json"]);
    success.then(|| serde_json::from_str(&out).expect("stream JSON"))
}

/// `(image, dockerImageReference)` of each history entry of `tag`, newest first.
fn history(stream: &Value, tag: &str) -> Vec<(String, String)> {
    let tags = stream["status"]["tags"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    tags.iter()
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

/// The spec tag `tag` of a stream.
fn spec_tag(stream: &Value, tag: &str) -> Option<Value> {
    stream["spec"]["tags"]
        .as_array()?
        .iter()
        .find(|t| t["name"] == tag)
        .cloned()
}

/// Polls the stream until `done` holds; panics with the last state after the timeout.
fn wait_for(server: &MoorProcess, name: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + IMPORT_TIMEOUT;
    loop {
        let last = stream(server, name);
        if let Some(s) = &last
            && done(s)
        {
            return s.clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last state of {name}: {}\nserver log: {}",
            serde_json::to_string_pretty(&last).unwrap_or_default(),
            std::fs::read_to_string(server.data_dir.with_extension("log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the newest history entry of `tag` is `digest`; returns the history.
fn wait_for_image(
    server: &MoorProcess,
    name: &str,
    tag: &str,
    digest: &str,
    len: usize,
) -> Vec<(String, String)> {
    let s = wait_for(
        server,
        name,
        &format!("{name}:{tag} -> {digest} ({len} entries)"),
        |s| {
            let h = history(s, tag);
            h.len() == len && h[0].0 == digest
        },
    );
    history(&s, tag)
}

#[test]
fn seed_walkthrough_tag_and_rollback() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let (d1, d2) = two_keycloaks(&dist);
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &dist);
    let started = Instant::now();

    // The seed's commands, verbatim.
    let out = server.ok(&[
        "create",
        "istag",
        "keycloak:20.0",
        "--from-image",
        "quay.io/keycloak/keycloak:20.0.2",
    ]);
    assert_eq!(
        out,
        "imagestreamtag.image.openshift.io/keycloak:20.0 created\n"
    );
    let h = wait_for_image(&server, "keycloak", "20.0", &d1, 1);
    assert_eq!(h[0].1, format!("quay.io/keycloak/keycloak@{d1}"));

    let out = server.ok(&["tag", "quay.io/keycloak/keycloak:20.0.3", "keycloak:20.0"]);
    assert_eq!(
        out,
        "Tag keycloak:20.0 set to quay.io/keycloak/keycloak:20.0.3.\n"
    );
    let h = wait_for_image(&server, "keycloak", "20.0", &d2, 2);
    assert_eq!(
        h,
        vec![
            (d2.clone(), format!("quay.io/keycloak/keycloak@{d2}")),
            (d1.clone(), format!("quay.io/keycloak/keycloak@{d1}")),
        ]
    );
    eprintln!("two history entries after {:?}", started.elapsed());

    // get istag and describe istag show the current image.
    let ist: Value =
        serde_json::from_str(&server.ok(&["get", "istag", "keycloak:20.0", "-o", "json"])).unwrap();
    assert_eq!(ist["image"]["metadata"]["name"], d2.as_str());
    let out = server.ok(&["describe", "istag", "keycloak:20.0"]);
    for want in [
        format!("Image Name:\t{d2}\n"),
        format!("Docker Image:\tquay.io/keycloak/keycloak@{d2}\n"),
        format!("Name:\t\t{d2}\n"),
        "Arch:\t\tamd64\n".to_string(),
        "Command:\t/hello.txt\n".to_string(),
        "Working Dir:\t/srv\n".to_string(),
        "Exposes Ports:\t8080/tcp\n".to_string(),
        "Docker Labels:\torg.example.version=1\n".to_string(),
        "Environment:\tGREETING=hello\n".to_string(),
    ] {
        assert!(out.contains(&want), "no {want:?} in:\n{out}");
    }
    assert!(out.contains("Image Size:\t"), "{out}");
    // It ends with the stream's Events about this tag (recorded just after the
    // status write that wait_for_image saw).
    let want = format!("Tag keycloak:20.0 imported quay.io/keycloak/keycloak@{d2}");
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    let mut out = out;
    while !out.contains(&want) {
        assert!(Instant::now() < deadline, "no {want:?} in:\n{out}");
        std::thread::sleep(std::time::Duration::from_millis(100));
        out = server.ok(&["describe", "istag", "keycloak:20.0"]);
    }
    let events = out.split_once("\nEvents:\n").map(|(_, e)| e).unwrap_or("");
    assert!(
        events.contains("  Normal  ImportSucceeded  ")
            && events.contains(&format!("quay.io/keycloak/keycloak@{d1}")),
        "{out}"
    );

    // describe is: source line, history with ages, image IDs only where the pull spec
    // does not name them.
    let out = server.ok(&["describe", "is", "keycloak"]);
    let block = format!(
        "20.0\n  tagged from quay.io/keycloak/keycloak:20.0.3\n\n  * quay.io/keycloak/keycloak@{d2}\n      "
    );
    assert!(out.contains(&block), "no {block:?} in:\n{out}");
    assert!(
        out.contains(&format!("    quay.io/keycloak/keycloak@{d1}\n      ")),
        "{out}"
    );
    assert!(out.contains("Unique Images:\t\t2\n"), "{out}");

    // Rollback restores the first entry.
    let out = server.ok(&["rollback", "keycloak:20.0"]);
    assert_eq!(
        out,
        format!("Rolled back keycloak:20.0 to revision 1 of 2: quay.io/keycloak/keycloak@{d1}\n")
    );
    let h = wait_for_image(&server, "keycloak", "20.0", &d1, 3);
    assert_eq!(h[0].1, format!("quay.io/keycloak/keycloak@{d1}"));
    let s = stream(&server, "keycloak").unwrap();
    let spec = spec_tag(&s, "20.0").unwrap();
    assert_eq!(spec["from"]["kind"], "ImageStreamImage");
    assert_eq!(spec["from"]["name"], format!("keycloak@{d1}"));
    let out = server.ok(&["describe", "is", "keycloak"]);
    assert!(
        out.contains(&format!("20.0\n  tagged from keycloak@{d1}\n")),
        "{out}"
    );

    // Scheduled import, then a rollback by digest prefix turns it off and says so.
    let out = server.ok(&[
        "tag",
        "quay.io/keycloak/keycloak:20.0.3",
        "keycloak:20.0",
        "--scheduled",
    ]);
    assert_eq!(
        out,
        "Tag keycloak:20.0 set to import quay.io/keycloak/keycloak:20.0.3 periodically.\n"
    );
    wait_for_image(&server, "keycloak", "20.0", &d2, 4);
    let prefix = &d1["sha256:".len()..][..12];
    let out = server.ok(&["rollback", "keycloak:20.0", "--to-image", prefix]);
    assert_eq!(
        out,
        format!(
            "Rolled back keycloak:20.0 to revision 3 of 4: quay.io/keycloak/keycloak@{d1}\n\
             Scheduled import of keycloak:20.0 is off until it is tagged again from a registry \
             (moor tag quay.io/keycloak/keycloak:20.0.3 keycloak:20.0 --scheduled).\n"
        )
    );
    let h = wait_for_image(&server, "keycloak", "20.0", &d1, 5);
    assert_eq!(h[1].0, d2);
    let spec = spec_tag(&stream(&server, "keycloak").unwrap(), "20.0").unwrap();
    assert_ne!(spec["importPolicy"]["scheduled"], true, "{spec}");

    // --to-revision counts from the oldest entry.
    let out = server.ok(&["rollback", "keycloak:20.0", "--to-revision", "4"]);
    assert_eq!(
        out,
        format!("Rolled back keycloak:20.0 to revision 4 of 5: quay.io/keycloak/keycloak@{d2}\n")
    );
    wait_for_image(&server, "keycloak", "20.0", &d2, 6);

    // Refusals write nothing.
    let err = server.fails(&["rollback", "keycloak:20.0", "--to-revision", "99"]);
    assert_eq!(
        err,
        "error: keycloak:20.0 has no revision 99: its history has 6 entries (1 is the oldest, 6 the current image)\n"
    );
    server.ok(&[
        "create",
        "istag",
        "keycloak:single",
        "--from-image",
        "quay.io/keycloak/keycloak:20.0.2",
    ]);
    wait_for_image(&server, "keycloak", "single", &d1, 1);
    let err = server.fails(&["rollback", "keycloak:single"]);
    assert_eq!(
        err,
        "error: keycloak:single has no earlier image to roll back to: its history has only the current entry\n"
    );
    let err = server.fails(&["rollback", "keycloak:none"]);
    assert!(
        err.contains("keycloak:none has no history to roll back"),
        "{err}"
    );
    eprintln!("walkthrough done after {:?}", started.elapsed());
}

/// Two images whose digests start with the same hex digit, so that one digit is an
/// ambiguous prefix (found by relabelling one image until two digests collide; at
/// most 17 tries).
fn colliding_images(layout: &OciLayout) -> (String, String, String, String) {
    layout.add_image("base", &ImageSpec::app("base\n"));
    let mut seen: Vec<(String, String)> = Vec::new();
    for i in 0..17 {
        let tag = format!("c{i}");
        let digest = layout.relabel("base", &tag, &i.to_string()).digest;
        let first = digest["sha256:".len()..][..1].to_string();
        if let Some((other_tag, other)) = seen
            .iter()
            .find(|(_, d)| d["sha256:".len()..][..1] == first)
        {
            return (other_tag.clone(), other.clone(), tag, digest);
        }
        seen.push((tag, digest));
    }
    unreachable!("17 digests always share a first hex digit")
}

#[test]
fn tag_sources_and_prefixes() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let layout = OciLayout::new();
    let (tag_a, built_a, tag_b, built_b) = colliding_images(&layout);
    let a = dist
        .push(&layout, &tag_a, "keycloak/keycloak:a", Format::Oci)
        .digest;
    let b = dist
        .push(&layout, &tag_b, "keycloak/keycloak:b", Format::Oci)
        .digest;
    assert_eq!((&a, &b), (&built_a, &built_b));
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &dist);

    server.ok(&["tag", "quay.io/keycloak/keycloak:a", "amb:a", "amb:a2"]);
    server.ok(&[
        "create",
        "istag",
        "amb:b",
        "--from-image",
        "quay.io/keycloak/keycloak:b",
    ]);
    wait_for_image(&server, "amb", "a", &a, 1);
    wait_for_image(&server, "amb", "b", &b, 1);
    let unchanged = |server: &MoorProcess| {
        let s = stream(server, "amb").unwrap();
        let names: Vec<String> = s["spec"]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, vec!["a", "a2", "b"], "nothing may be written");
    };

    // An ambiguous prefix fails before anything is written.
    let shared = format!("sha256:{}", &a["sha256:".len()..][..1]);
    let ambiguous = |err: &str| {
        assert!(
            err.contains("ambiguous") || err.contains("multiple images match"),
            "{err}"
        );
        assert!(
            err.contains(&a) && err.contains(&b),
            "both digests named: {err}"
        );
    };
    ambiguous(&server.fails(&["tag", &format!("amb@{shared}"), "amb:x"]));
    unchanged(&server);
    ambiguous(&server.fails(&[
        "create",
        "istag",
        "amb:x",
        "--from",
        &format!("amb@{shared}"),
    ]));
    unchanged(&server);
    ambiguous(&server.fails(&["rollback", "amb:a", "--to-image", &shared]));
    unchanged(&server);

    // So does an unknown one.
    let unused = "0123456789abcdef"
        .chars()
        .find(|c| !a[7..].starts_with(*c) && !b[7..].starts_with(*c))
        .unwrap();
    let err = server.fails(&["tag", &format!("amb@sha256:{unused}"), "amb:x"]);
    assert!(
        err.contains("not found") || err.contains("no image"),
        "{err}"
    );
    unchanged(&server);

    // --scheduled and --insecure need a registry source.
    let err = server.fails(&["tag", "amb:a", "amb:x", "--scheduled"]);
    assert!(
        err.starts_with("error: only container images can have importing flags set"),
        "{err}"
    );
    let err = server.fails(&["tag", &format!("amb@{b}"), "amb:x", "--insecure"]);
    assert!(err.starts_with("error: only container images can have importing flags set"));
    unchanged(&server);

    // Other refusals, in oc's words.
    let err = server.fails(&["tag", "amb:nothing", "amb:x"]);
    assert_eq!(
        err,
        "error: \"amb:nothing\" is not currently pointing to an image, cannot use it as the source of a tag\n"
    );
    let err = server.fails(&["tag", "amb:a", "other:x", "--alias"]);
    assert_eq!(
        err,
        "error: cannot set alias across different Image Streams\n"
    );
    let err = server.fails(&["tag", "amb:a", "amb"]);
    assert_eq!(
        err,
        "error: \"amb\" must be of the form <stream_name>:<tag>\n"
    );
    unchanged(&server);

    // A unique prefix (with or without the algorithm) resolves to the full digest.
    let unique = &a["sha256:".len()..][..10];
    let out = server.ok(&["tag", &format!("amb@{unique}"), "amb:pinned"]);
    assert_eq!(out, format!("Tag amb:pinned set to amb@{a}.\n"));
    wait_for_image(&server, "amb", "pinned", &a, 1);
    let out = server.ok(&[
        "create",
        "istag",
        "amb:frozen",
        "--from",
        &format!("amb@sha256:{}", &b[7..17]),
    ]);
    assert_eq!(
        out,
        "imagestreamtag.image.openshift.io/amb:frozen created\n"
    );
    let s = wait_for(&server, "amb", "amb:frozen", |s| {
        history(s, "frozen").first().is_some_and(|e| e.0 == b)
    });
    assert_eq!(
        spec_tag(&s, "frozen").unwrap()["from"]["name"],
        format!("amb@{b}")
    );

    // A tag source is copied: the destination gets its current image.
    let out = server.ok(&["tag", "amb:b", "amb:copy", "amb:copy2"]);
    assert_eq!(
        out,
        format!("Tag amb:copy set to amb@{b}.\nTag amb:copy2 set to amb@{b}.\n")
    );
    let s = wait_for(&server, "amb", "amb:copy", |s| {
        history(s, "copy").first().is_some_and(|e| e.0 == b)
    });
    let spec = spec_tag(&s, "copy").unwrap();
    assert_eq!(spec["from"]["kind"], "ImageStreamImage");
    assert_eq!(spec["from"]["name"], format!("amb@{b}"));

    // --alias tracks instead.
    let out = server.ok(&["tag", "amb:a", "amb:latest", "--alias"]);
    assert_eq!(out, "Tag amb:latest set up to track amb:a.\n");
    let s = wait_for(&server, "amb", "amb:latest", |s| {
        history(s, "latest").first().is_some_and(|e| e.0 == a)
    });
    let spec = spec_tag(&s, "latest").unwrap();
    assert_eq!(spec["from"]["kind"], "ImageStreamTag");
    assert_eq!(spec["from"]["name"], "amb:a");
    let out = server.ok(&["describe", "is", "amb"]);
    assert!(
        out.contains("\na (latest)\n"),
        "alias shown with its target:\n{out}"
    );

    // Tagging the same registry source again asks for a re-import (generation 0 sent;
    // the server gives the tag a new generation).
    let generation = |s: &Value| spec_tag(s, "a").unwrap()["generation"].as_i64().unwrap();
    let before = generation(&stream(&server, "amb").unwrap());
    server.ok(&["tag", "quay.io/keycloak/keycloak:a", "amb:a"]);
    assert!(generation(&stream(&server, "amb").unwrap()) > before);

    // -d deletes.
    let out = server.ok(&["tag", "-d", "amb:copy2"]);
    assert_eq!(out, "Deleted tag default/amb:copy2.\n");
    assert!(spec_tag(&stream(&server, "amb").unwrap(), "copy2").is_none());
    let err = server.fails(&["tag", "-d", "amb:copy2"]);
    assert!(err.starts_with("Error from server (NotFound): "), "{err}");
}

#[test]
fn import_image_new_stream_all_and_errors() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let (d1, d2) = two_keycloaks(&dist);
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &dist);

    let err = server.fails(&["import-image", "kc"]);
    assert_eq!(
        err,
        "error: no image stream named \"kc\" exists, pass --confirm to create and import\n"
    );

    // --confirm creates the stream; the output is the stream and the image described.
    let out = server.ok(&[
        "import-image",
        "kc",
        "--from",
        "quay.io/keycloak/keycloak:20.0.2",
        "--confirm",
    ]);
    assert!(
        out.starts_with("imagestream.image.openshift.io/kc imported\n\nName:\t\t\tkc\n"),
        "{out}"
    );
    for want in [
        format!(
            "latest\n  tagged from quay.io/keycloak/keycloak:20.0.2\n\n  * quay.io/keycloak/keycloak@{d1}\n"
        ),
        format!(
            "Image Name:\tkc:latest\nDocker Image:\tquay.io/keycloak/keycloak@{d1}\nName:\t\t{d1}\n"
        ),
        "Command:\t/hello.txt\n".to_string(),
    ] {
        assert!(out.contains(&want), "no {want:?} in:\n{out}");
    }
    assert_eq!(history(&stream(&server, "kc").unwrap(), "latest")[0].0, d1);

    // Re-import of an existing tag, and a new tag with --from.
    let out = server.ok(&["import-image", "kc"]);
    assert!(
        out.starts_with("imagestream.image.openshift.io/kc imported\n"),
        "{out}"
    );
    server.ok(&[
        "import-image",
        "kc:20.0.3",
        "--from",
        "quay.io/keycloak/keycloak:20.0.3",
    ]);
    assert_eq!(history(&stream(&server, "kc").unwrap(), "20.0.3")[0].0, d2);

    // A failed tag: exit 1, the error on stderr. (Named on the distribution itself:
    // a quay.io tag the mirror lacks would next be looked for at quay.io.)
    let missing = dist.reference("keycloak/keycloak:99.9");
    let (success, out, err) = server.moor(&["import-image", "kc:missing", "--from", &missing]);
    assert!(!success);
    assert!(
        out.starts_with("imagestream.image.openshift.io/kc imported with errors\n"),
        "{out}"
    );
    assert!(err.starts_with("error: tag missing failed: "), "{err}");
    assert!(err.contains("manifest unknown"), "{err}");
    let err = server.fails(&[
        "import-image",
        "kc:latest",
        "--from",
        "quay.io/keycloak/keycloak:20.0.3",
    ]);
    assert_eq!(
        err,
        "error: the tag \"latest\" points to \"quay.io/keycloak/keycloak:20.0.2\" - use the 'tag' command if you want to change the source to \"quay.io/keycloak/keycloak:20.0.3\"\n"
    );
    let err = server.fails(&["import-image", "kc:1", "--all"]);
    assert_eq!(
        err,
        "error: cannot specify a tag \"kc:1\" as well as --all\n"
    );

    // --all imports every tag of the repository.
    let out = server.ok(&[
        "import-image",
        "all",
        "--from",
        "quay.io/keycloak/keycloak",
        "--all",
        "--confirm",
    ]);
    assert!(out.contains("Image Name:\tall:20.0.2\n"), "{out}");
    assert!(out.contains("Image Name:\tall:20.0.3\n"), "{out}");
    let s = stream(&server, "all").unwrap();
    assert_eq!(history(&s, "20.0.2")[0].0, d1);
    assert_eq!(history(&s, "20.0.3")[0].0, d2);
    // ...and again for an existing stream: its registry tags.
    let out = server.ok(&["import-image", "all", "--all"]);
    assert!(
        out.starts_with("imagestream.image.openshift.io/all imported\n"),
        "{out}"
    );

    // --dry-run reports without writing.
    let out = server.ok(&[
        "import-image",
        "dry",
        "--from",
        "quay.io/keycloak/keycloak:20.0.3",
        "--confirm",
        "--dry-run",
    ]);
    assert!(
        out.starts_with(&format!(
            "imagestream.image.openshift.io/dry imported (dry run)\n\nImage Name:\tdry:latest\nDocker Image:\tquay.io/keycloak/keycloak@{d2}\n"
        )),
        "{out}"
    );
    assert!(
        stream(&server, "dry").is_none(),
        "a dry run creates nothing"
    );
}

#[test]
fn failed_import_is_described() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let (d1, _) = two_keycloaks(&dist);
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &dist);

    server.ok(&["tag", "quay.io/keycloak/keycloak:20.0.2", "keycloak:20.0"]);
    wait_for_image(&server, "keycloak", "20.0", &d1, 1);
    // A tag the registry does not have. Named on the distribution itself: a quay.io
    // tag the mirror lacks would next be looked for at quay.io.
    let missing = dist.reference("keycloak/keycloak:99.9");
    let out = server.ok(&["tag", &missing, "keycloak:broken"]);
    assert_eq!(out, format!("Tag keycloak:broken set to {missing}.\n"));
    wait_for(&server, "keycloak", "a failed import condition", |s| {
        s["status"]["tags"].as_array().is_some_and(|tags| {
            tags.iter().any(|t| {
                t["tag"] == "broken"
                    && t["conditions"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c["status"] == "False"))
            })
        })
    });
    let out = server.ok(&["describe", "is", "keycloak"]);
    assert!(
        out.contains(&format!(
            "broken\n  tagged from {missing}\n\n  ! error: Import failed (NotFound): "
        )),
        "{out}"
    );
    assert!(
        out.contains("      retry it now: moor import-image keycloak:broken\n"),
        "describe says how to retry: {out}"
    );
    // The good tag is untouched.
    assert!(
        out.contains(&format!("20.0\n  tagged from quay.io/keycloak/keycloak:20.0.2\n\n  * quay.io/keycloak/keycloak@{d1}\n")),
        "{out}"
    );
    // A failed tag has no image: describe istag says so as the server does.
    let err = server.fails(&["describe", "istag", "keycloak:broken"]);
    assert!(err.starts_with("Error from server (NotFound): "), "{err}");
}
