use super::*;

fn now() -> Timestamp {
    "2026-01-01T12:00:00Z".parse().unwrap()
}

const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn fixture() -> ImageStream {
    let json = serde_json::json!({
        "kind": "ImageStream",
        "apiVersion": "image.openshift.io/v1",
        "metadata": {
            "name": "keycloak",
            "namespace": "default",
            "creationTimestamp": "2026-01-01T11:58:00Z",
            "generation": 4,
            "annotations": {"openshift.io/image.dockerRepositoryCheck": "2026-01-01T11:58:01Z"}
        },
        "spec": {
            "lookupPolicy": {"local": true},
            "tags": [
                {"name": "20.0", "annotations": null,
                 "from": {"kind": "DockerImage", "name": "quay.io/keycloak/keycloak:20.0.3"},
                 "generation": 3, "importPolicy": {"scheduled": true},
                 "referencePolicy": {"type": "Local"}},
                {"name": "stable", "annotations": null,
                 "from": {"kind": "ImageStreamTag", "name": "20.0"},
                 "generation": 2, "importPolicy": {}, "referencePolicy": {"type": "Source"}},
                {"name": "broken", "annotations": null,
                 "from": {"kind": "DockerImage", "name": "quay.io/keycloak/nope:1"},
                 "generation": 4, "importPolicy": {}, "referencePolicy": {"type": "Source"}}
            ]
        },
        "status": {
            "dockerImageRepository": "127.0.0.1:8443/default/keycloak",
            "tags": [
                {"tag": "20.0", "items": [
                    {"created": "2026-01-01T11:59:00Z",
                     "dockerImageReference": format!("quay.io/keycloak/keycloak@{B}"),
                     "image": B, "generation": 3},
                    {"created": "2026-01-01T11:58:00Z",
                     "dockerImageReference": "quay.io/keycloak/keycloak:20.0.2",
                     "image": A, "generation": 2}
                ]},
                {"tag": "broken", "items": null, "conditions": [
                    {"type": "ImportSuccess", "status": "False",
                     "lastTransitionTime": "2026-01-01T11:57:00Z",
                     "reason": "NotFound", "message": "manifest unknown", "generation": 4}
                ]}
            ]
        }
    });
    serde_json::from_value(json).unwrap()
}

#[test]
fn describe_layout_matches_oc() {
    let got = image_stream(&fixture(), now());
    let want = [
        "Name:\t\t\tkeycloak",
        "Namespace:\t\tdefault",
        "Created:\t\t2 minutes ago",
        "Labels:\t\t\t<none>",
        "Annotations:\t\topenshift.io/image.dockerRepositoryCheck=2026-01-01T11:58:01Z",
        "Image Repository:\t127.0.0.1:8443/default/keycloak",
        "Image Lookup:\t\tlocal=true",
        "Unique Images:\t\t2",
        "Tags:\t\t\t3",
        "",
        "20.0 (stable)",
        "  updates automatically from registry quay.io/keycloak/keycloak:20.0.3",
        "    prefer registry pullthrough when referencing this tag",
        "",
        &format!("  * quay.io/keycloak/keycloak@{B}"),
        "      About a minute ago",
        "    quay.io/keycloak/keycloak:20.0.2",
        &format!("      2 minutes ago\t{A}"),
        "",
        "broken",
        "  tagged from quay.io/keycloak/nope:1",
        "",
        "  ! error: Import failed (NotFound): manifest unknown",
        "      3 minutes ago",
        "      retry it now: moor import-image keycloak:broken",
        "",
    ]
    .join("\n");
    assert_eq!(got, want, "\n--- got ---\n{got}\n--- want ---\n{want}");
}

#[test]
fn describe_shows_the_schedule_and_how_to_resume_a_rollback() {
    let mut stream = fixture();
    // `broken` was scheduled from a registry, then rolled back to an image.
    let broken = stream
        .spec
        .tags
        .iter_mut()
        .find(|t| t.name == "broken")
        .unwrap();
    broken.from = Some(k8s_openapi::api::core::v1::ObjectReference {
        kind: Some("ImageStreamImage".into()),
        name: Some(format!("keycloak@{A}")),
        ..Default::default()
    });
    let record = |tag: &str, from: &str| ScheduledImportStatus {
        image_stream: "keycloak".into(),
        tag: tag.into(),
        from: from.into(),
        registry: "quay.io".into(),
        ..Default::default()
    };
    let schedules: BTreeMap<String, ScheduledImportStatus> = [
        (
            "20.0".to_string(),
            ScheduledImportStatus {
                active: true,
                last_check_time: Some("2026-01-01T11:59:50Z".parse().unwrap()),
                last_check_result: Some(CheckResult::Unchanged),
                next_check_time: Some("2026-01-01T12:14:50Z".parse().unwrap()),
                ..record("20.0", "quay.io/keycloak/keycloak:20.0.3")
            },
        ),
        (
            "broken".to_string(),
            ScheduledImportStatus {
                active: false,
                last_check_time: Some("2026-01-01T11:57:00Z".parse().unwrap()),
                last_check_result: Some(CheckResult::Failed),
                message: Some("NotFound: manifest unknown".into()),
                ..record("broken", "quay.io/keycloak/nope:1")
            },
        ),
    ]
    .into_iter()
    .collect();
    let got = image_stream_with_schedules(&stream, &schedules, now());
    let scheduled = [
        "  updates automatically from registry quay.io/keycloak/keycloak:20.0.3",
        "    prefer registry pullthrough when referencing this tag",
        "    last check: 10 seconds ago (unchanged)",
        "    next check: in 14 minutes",
        "",
    ]
    .join("\n");
    let stopped = [
        format!("  tagged from keycloak@{A}"),
        "    scheduled import from registry quay.io/keycloak/nope:1 is off \
         (last check 3 minutes ago (Failed: NotFound: manifest unknown))"
            .to_string(),
        "    resume it with: moor tag quay.io/keycloak/nope:1 keycloak:broken --scheduled"
            .to_string(),
        String::new(),
    ]
    .join("\n");
    for want in [&scheduled, &stopped] {
        assert!(got.contains(want.as_str()), "{want:?} missing in\n{got}");
    }
    // Scheduled, but not seen by the scheduler yet.
    let got = image_stream_with_schedules(&fixture(), &BTreeMap::new(), now());
    assert!(
        got.contains("    last check: never\n    next check: not planned yet\n"),
        "{got}"
    );
}

#[test]
fn followed_tags_show_their_policy_the_chosen_tag_and_how_to_resume() {
    let mut stream = fixture();
    let policy = moor_api::image::follow::FollowPolicy::new(
        Some(">=20.0.0 <20.1.0"),
        None,
        None,
        None,
        false,
    )
    .unwrap();
    let tag = stream
        .spec
        .tags
        .iter_mut()
        .find(|t| t.name == "20.0")
        .unwrap();
    tag.annotations = Some(policy.annotations());
    if let Some(from) = tag.from.as_mut() {
        from.name = Some("quay.io/keycloak/keycloak".into());
    }
    let broken = stream
        .spec
        .tags
        .iter_mut()
        .find(|t| t.name == "broken")
        .unwrap();
    broken.from = Some(k8s_openapi::api::core::v1::ObjectReference {
        kind: Some("ImageStreamImage".into()),
        name: Some(format!("keycloak@{A}")),
        ..Default::default()
    });
    let record = |tag: &str, active: bool| ScheduledImportStatus {
        image_stream: "keycloak".into(),
        tag: tag.into(),
        from: "quay.io/keycloak/keycloak".into(),
        registry: "quay.io".into(),
        active,
        last_check_time: Some("2026-01-01T11:59:50Z".parse().unwrap()),
        last_check_result: Some(CheckResult::Unchanged),
        next_check_time: active.then(|| "2026-01-01T12:14:50Z".parse().unwrap()),
        follow: Some(policy.flags()),
        followed_tag: Some("20.0.3".into()),
        ..Default::default()
    };
    let schedules: BTreeMap<String, ScheduledImportStatus> = [
        ("20.0".to_string(), record("20.0", true)),
        ("broken".to_string(), record("broken", false)),
    ]
    .into_iter()
    .collect();
    let got = image_stream_with_schedules(&stream, &schedules, now());
    let following = [
        "  follows registry quay.io/keycloak/keycloak: semver >=20.0.0 <20.1.0",
        "    prefer registry pullthrough when referencing this tag",
        "    last check: 10 seconds ago (unchanged)",
        "    next check: in 14 minutes",
        "    chosen tag: 20.0.3",
        "",
    ]
    .join("\n");
    let paused = [
        "    following registry quay.io/keycloak/keycloak is paused \
         (last check 10 seconds ago (unchanged)), last chosen 20.0.3",
        "    resume it with: moor tag quay.io/keycloak/keycloak keycloak:broken \
         --semver '>=20.0.0 <20.1.0'",
        "",
    ]
    .join("\n");
    for want in [&following, &paused] {
        assert!(got.contains(want.as_str()), "{want:?} missing in\n{got}");
    }
}

#[test]
fn image_layout_matches_oc() {
    let image: Image = serde_json::from_value(serde_json::json!({
        "metadata": {"name": A, "creationTimestamp": "2026-01-01T11:58:00Z",
                     "annotations": {"image.openshift.io/dockerLayersOrder": "ascending"}},
        "dockerImageReference": format!("quay.io/keycloak/keycloak@{A}"),
        "dockerImageLayers": [
            {"name": B, "size": 1234, "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"},
            {"name": A, "size": 251234567, "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"}
        ],
        "dockerImageMetadata": {
            "kind": "DockerImage", "apiVersion": "image.openshift.io/1.0", "Id": "",
            "Created": "2025-12-18T12:00:00Z", "Architecture": "amd64", "Size": 251235801,
            "Config": {"Entrypoint": ["/opt/keycloak/bin/kc.sh"], "Cmd": ["start"],
                       "User": "1000", "WorkingDir": "/opt/keycloak",
                       "ExposedPorts": {"8443/tcp": {}, "8080/tcp": {}},
                       "Labels": {"vendor": "keycloak", "a": "b"},
                       "Env": ["PATH=/usr/bin", "LANG=en_US.UTF-8"],
                       "Volumes": {"/data": {}}}
        }
    }))
    .unwrap();
    let got = super::image(&image, A, now());
    let want = [
        format!("Image Name:\t{A}"),
        format!("Docker Image:\tquay.io/keycloak/keycloak@{A}"),
        format!("Name:\t\t{A}"),
        "Created:\t2 minutes ago".into(),
        "Annotations:\timage.openshift.io/dockerLayersOrder=ascending".into(),
        "Image Size:\t239.60 MiB in 2 layers".into(),
        format!("Layers:\t\t1.21 KiB\t{B}"),
        format!("\t\t239.60 MiB\t{A}"),
        "Image Created:\t2 weeks ago".into(),
        "Author:\t\t<none>".into(),
        "Arch:\t\tamd64".into(),
        "Entrypoint:\t/opt/keycloak/bin/kc.sh".into(),
        "Command:\tstart".into(),
        "Working Dir:\t/opt/keycloak".into(),
        "User:\t\t1000".into(),
        "Exposes Ports:\t8080/tcp, 8443/tcp".into(),
        "Docker Labels:\ta=b".into(),
        "\t\tvendor=keycloak".into(),
        "Environment:\tPATH=/usr/bin".into(),
        "\t\tLANG=en_US.UTF-8".into(),
        "Volumes:\t/data".into(),
        "".into(),
    ]
    .join("\n");
    assert_eq!(got, want, "\n--- got ---\n{got}\n--- want ---\n{want}");
}

#[test]
fn sizes_read_as_the_progress_bars_print_them() {
    for n in [0u64, 512, 1234, 60_010_000, 251_234_567, 2_000_000_000] {
        assert_eq!(
            human_size(n as i64),
            indicatif::HumanBytes(n).to_string(),
            "{n}"
        );
    }
}

#[test]
fn events_print_as_kubectl_describes_them() {
    assert_eq!(events(&[], now()), "Events:  <none>\n");
    let list = vec![
        serde_json::json!({"type": "Warning", "reason": "ImportFailed",
            "message": "NotFound: manifest unknown ", "count": 3,
            "firstTimestamp": "2026-01-01T11:50:00Z", "lastTimestamp": "2026-01-01T11:59:00Z",
            "source": {"component": "moor-importer"}}),
        serde_json::json!({"type": "Normal", "reason": "Imported", "message": "ok",
            "firstTimestamp": "2026-01-01T11:40:00Z", "lastTimestamp": "2026-01-01T11:40:00Z",
            "reportingComponent": "moor"}),
    ];
    assert_eq!(
        events(&list, now()),
        "Events:\n\
         \x20 Type     Reason        Age                From           Message\n\
         \x20 ----     ------        ----               ----           -------\n\
         \x20 Normal   Imported      20m                moor           ok\n\
         \x20 Warning  ImportFailed  60s (x3 over 10m)  moor-importer  NotFound: manifest unknown\n"
    );
}

#[test]
fn empty_stream() {
    let mut s = fixture();
    s.spec.tags.clear();
    s.status.tags.clear();
    s.metadata.annotations = None;
    s.metadata.labels = Some(
        [
            ("app".to_string(), "kc".to_string()),
            ("b".to_string(), "2".to_string()),
        ]
        .into(),
    );
    let got = image_stream(&s, now());
    assert_eq!(
        got,
        "Name:\t\t\tkeycloak\nNamespace:\t\tdefault\nCreated:\t\t2 minutes ago\nLabels:\t\t\tapp=kc\n\t\t\tb=2\nAnnotations:\t\t<none>\nImage Repository:\t127.0.0.1:8443/default/keycloak\nImage Lookup:\t\tlocal=true\nTags:\t\t\t<none>\n"
    );
}

#[test]
fn pending_imports_and_spec_only_tags() {
    let mut s = fixture();
    s.status.tags.retain(|t| t.tag == "20.0");
    let got = image_stream(&s, now());
    assert!(
        got.contains(
            "broken\n  tagged from quay.io/keycloak/nope:1\n\n  ~ importing latest image ...\n"
        ),
        "{got}"
    );
}

#[test]
fn tags_are_prioritized_like_oc() {
    let mut tags = vec![
        "other", "5.1.3", "v5.2", "latest", "5.1", "abc", "5.10-rc1", "1.0.0",
    ];
    prioritize_tags(&mut tags);
    assert_eq!(
        tags,
        vec![
            "latest", "5.10-rc1", "v5.2", "5.1", "5.1.3", "1.0.0", "abc", "other"
        ]
    );
}

#[test]
fn tag_references_are_followed_within_the_stream() {
    let s = fixture();
    assert_eq!(
        follow_tag_reference(&s, "stable"),
        Some(("20.0".to_string(), true))
    );
    assert_eq!(
        follow_tag_reference(&s, "20.0"),
        Some(("20.0".to_string(), false))
    );
    assert_eq!(follow_tag_reference(&s, "missing"), None);
}

#[test]
fn istag_events_are_those_about_the_tag() {
    let ev = |path: Option<&str>, message: &str| {
        let mut e = serde_json::json!({"type": "Warning", "reason": "ImportFailed",
            "message": message, "involvedObject": {"kind": "ImageStream", "name": "kc"}});
        if let Some(p) = path {
            e["involvedObject"]["fieldPath"] = p.into();
        }
        e
    };
    let list = vec![
        ev(
            Some("spec.tags{20.0}"),
            "Import of kc:20.0 failed (NotFound): manifest unknown",
        ),
        ev(
            Some("spec.tags{20.0.1}"),
            "Import of kc:20.0.1 failed (NotFound): x",
        ),
        ev(None, "Tag kc:20.0 imported quay.io/k/k@sha256:1"),
        ev(None, "Tag kc:20.0.1 imported quay.io/k/k@sha256:2"),
        ev(None, "Import of 4 tags of kc failed: 1, 20.0, 3, 4"),
        ev(None, "Imported 4 tags of kc: 1, 2, 3, 4"),
        ev(None, "Tag kcx:20.0 imported q/k@sha256:3"),
    ];
    let messages = |tag: &str| -> Vec<String> {
        events_about_tag(&list, "kc", tag)
            .iter()
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        messages("20.0"),
        [
            "Import of kc:20.0 failed (NotFound): manifest unknown",
            "Tag kc:20.0 imported quay.io/k/k@sha256:1",
            "Import of 4 tags of kc failed: 1, 20.0, 3, 4",
        ]
    );
    assert_eq!(
        messages("2"),
        ["Imported 4 tags of kc: 1, 2, 3, 4"],
        "a summary lists the tag"
    );
}
