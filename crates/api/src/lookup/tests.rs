//! Unit tests of the resolver and the triggers annotation.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::image::history::{add_tag_event, set_import_failed};
use crate::image::{
    ImageStream, TagEvent, TagReference, TagReferencePolicy, TagReferencePolicyType,
};

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn event(repo: &str, d: &str) -> TagEvent {
    TagEvent {
        docker_image_reference: format!("{repo}@{d}"),
        image: d.to_string(),
        generation: 1,
        ..Default::default()
    }
}

/// A stream `keycloak` in `default` with lookup on, tag 20.0 at d1 then d2.
fn keycloak(local: bool) -> ImageStream {
    let mut s = ImageStream::default();
    s.metadata.name = Some("keycloak".into());
    s.metadata.namespace = Some("default".into());
    s.spec.lookup_policy.local = local;
    s.status.docker_image_repository = "moor.local:8443/default/keycloak".into();
    s.spec.tags.push(TagReference {
        name: "20.0".into(),
        ..Default::default()
    });
    add_tag_event(
        &mut s,
        "20.0",
        event("quay.io/keycloak/keycloak", &digest('1')),
    );
    add_tag_event(
        &mut s,
        "20.0",
        event("quay.io/keycloak/keycloak", &digest('2')),
    );
    s
}

fn streams(list: Vec<ImageStream>) -> BTreeMap<String, ImageStream> {
    list.into_iter()
        .map(|s| (s.metadata.name.clone().unwrap(), s))
        .collect()
}

fn deployment(images: &[&str]) -> Workload {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, im)| json!({"name": format!("c{i}"), "image": im}))
        .collect();
    Workload::from_value(
        WorkloadKind::Deployment,
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "default"},
               "spec": {"selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": containers}}}}),
    )
    .unwrap()
}

#[test]
fn short_names_resolve_to_the_pinned_pull_spec() {
    let s = streams(vec![keycloak(true)]);
    let want = format!("quay.io/keycloak/keycloak@{}", digest('2'));
    assert_eq!(
        resolve_image("keycloak:20.0", "default", &s, false),
        Lookup::Resolved(want.clone())
    );
    // A digest from the history resolves too, whichever tag has it.
    assert_eq!(
        resolve_image(&format!("keycloak@{}", digest('1')), "default", &s, false),
        Lookup::Resolved(format!("quay.io/keycloak/keycloak@{}", digest('1')))
    );
    assert!(matches!(
        resolve_image(&format!("keycloak@{}", digest('9')), "default", &s, false),
        Lookup::Failed(m) if m.contains("has no image sha256:9999")
    ));
    // Names with a registry or a namespace, and names of no stream, are left alone.
    for other in ["quay.io/keycloak/keycloak:20.0", "library/keycloak:20.0"] {
        assert_eq!(
            resolve_image(other, "default", &s, false),
            Lookup::Skipped(Skip::NotShortName)
        );
    }
    assert_eq!(
        resolve_image("postgres:16", "default", &s, false),
        Lookup::Skipped(Skip::NoStream)
    );
    assert!(matches!(
        resolve_image("Bad Name", "default", &s, false),
        Lookup::Skipped(Skip::Unparsable(_))
    ));
}

#[test]
fn reference_policy_local_names_moors_registry() {
    let mut stream = keycloak(true);
    stream.spec.tags[0].reference_policy = TagReferencePolicy {
        type_: Some(TagReferencePolicyType::Local),
    };
    let s = streams(vec![stream]);
    assert_eq!(
        resolve_image("keycloak:20.0", "default", &s, false),
        Lookup::Resolved(format!("moor.local:8443/default/keycloak@{}", digest('2')))
    );
}

#[test]
fn lookup_off_unless_the_workload_asks() {
    let s = streams(vec![keycloak(false)]);
    assert_eq!(
        resolve_image("keycloak:20.0", "default", &s, false),
        Lookup::Skipped(Skip::LookupOff)
    );
    assert!(matches!(
        resolve_image("keycloak:20.0", "default", &s, true),
        Lookup::Resolved(_)
    ));
    let mut w = deployment(&["keycloak:20.0"]);
    let r = resolve_workload(&mut w, None, "default", &s);
    assert!(r.rewrites.is_empty());
    assert_eq!(r.unresolved.len(), 1);
    assert!(
        r.unresolved[0]
            .message
            .contains("moor set image-lookup keycloak")
    );
    // The resolve-names annotation on the template turns it on for this workload.
    if let Workload::Deployment(d) = &mut w {
        d.spec.template.metadata.as_mut().unwrap().annotations = Some(
            [(
                crate::image::RESOLVE_NAMES_ANNOTATION.to_string(),
                "*".to_string(),
            )]
            .into(),
        );
    }
    let r = resolve_workload(&mut w, None, "default", &s);
    assert_eq!(r.rewrites.len(), 1);
}

#[test]
fn missing_tags_and_tags_without_images() {
    let mut stream = keycloak(true);
    stream.spec.tags.push(TagReference {
        name: "pending".into(),
        ..Default::default()
    });
    stream.spec.tags.push(TagReference {
        name: "broken".into(),
        ..Default::default()
    });
    set_import_failed(
        &mut stream,
        "broken",
        "NotFound",
        "manifest unknown",
        2,
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-01-01T00:00:00Z".parse().unwrap(),
        ),
    );
    let s = streams(vec![stream]);
    // No such tag: the stream's own repository, as OpenShift does.
    assert_eq!(
        resolve_image("keycloak:21.0", "default", &s, false),
        Lookup::Resolved("moor.local:8443/default/keycloak:21.0".into())
    );
    assert_eq!(
        resolve_image("keycloak", "default", &s, false),
        Lookup::Resolved("moor.local:8443/default/keycloak:latest".into())
    );
    // A tag that exists but has no image fails closed, saying why.
    assert_eq!(
        resolve_image("keycloak:pending", "default", &s, false),
        Lookup::Failed(
            "image stream tag default/keycloak:pending has no image yet (its import has not finished)"
                .into()
        )
    );
    assert_eq!(
        resolve_image("keycloak:broken", "default", &s, false),
        Lookup::Failed(
            "image stream tag default/keycloak:broken has no image: its import failed (NotFound): manifest unknown"
                .into()
        )
    );
}

#[test]
fn workloads_resolve_containers_and_init_containers() {
    let s = streams(vec![keycloak(true)]);
    let mut w = deployment(&["keycloak:20.0", "nginx:1.27", "quay.io/x/y:1"]);
    if let Workload::Deployment(d) = &mut w {
        d.spec.template.spec.as_mut().unwrap().init_containers =
            Some(vec![k8s_openapi::api::core::v1::Container {
                name: "init".into(),
                image: Some("keycloak:20.0".into()),
                ..Default::default()
            }]);
    }
    assert_eq!(
        candidate_streams(&w).into_iter().collect::<Vec<_>>(),
        vec!["keycloak", "nginx"]
    );
    let r = resolve_workload(&mut w, None, "default", &s);
    let want = format!("quay.io/keycloak/keycloak@{}", digest('2'));
    assert_eq!(r.rewrites.len(), 2);
    assert_eq!(
        r.rewrites[0].pointer,
        "/spec/template/spec/initContainers/0/image"
    );
    assert_eq!(
        r.rewrites[1].field,
        "spec.template.spec.containers[0].image"
    );
    assert_eq!(r.rewrites[1].to, want);
    assert_eq!(w.image_of("c0"), Some(want.as_str()));
    assert_eq!(w.image_of("init"), Some(want.as_str()));
    assert_eq!(w.image_of("c1"), Some("nginx:1.27"));
    assert_eq!(r.unresolved.len(), 1, "nginx has no stream");
    assert!(r.failures.is_empty());
}

#[test]
fn owners_jobs_and_unchanged_images_are_left_alone() {
    let s = streams(vec![keycloak(true)]);
    let mut w = deployment(&["keycloak:20.0"]);
    w.metadata_mut().owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "X".into(),
            name: "x".into(),
            uid: "u".into(),
            controller: Some(true),
            ..Default::default()
        },
    ]);
    let r = resolve_workload(&mut w, None, "default", &s);
    assert_eq!(r.skipped, Some("it has a controller owner"));
    assert_eq!(w.image_of("c0"), Some("keycloak:20.0"));

    // On update, a container whose image did not change is not looked at again.
    let old = deployment(&["keycloak:20.0"]);
    let mut new = deployment(&["keycloak:20.0"]);
    let r = resolve_workload(&mut new, Some(&old), "default", &s);
    assert!(r.rewrites.is_empty());
    let old = deployment(&["other"]);
    let r = resolve_workload(&mut new, Some(&old), "default", &s);
    assert_eq!(r.rewrites.len(), 1);

    let job = |image: &str| {
        Workload::from_value(
            WorkloadKind::Job,
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                   "spec": {"template": {"spec": {"restartPolicy": "Never",
                            "containers": [{"name": "j", "image": image}]}}}}),
        )
        .unwrap()
    };
    let mut j = job("keycloak:20.0");
    assert_eq!(
        resolve_workload(&mut j, None, "default", &s).rewrites.len(),
        1
    );
    let mut j2 = job("keycloak:20.0");
    let r = resolve_workload(&mut j2, Some(&job("x")), "default", &s);
    assert!(r.skipped.is_some());
}

fn with_triggers(mut w: Workload, triggers: &str) -> Workload {
    w.metadata_mut().annotations = Some(
        [(
            crate::image::TRIGGER_ANNOTATION.to_string(),
            triggers.to_string(),
        )]
        .into(),
    );
    w
}

#[test]
fn trigger_field_paths() {
    let w = deployment(&["a", "b"]);
    let r = container_for_field_path(&w, "spec.template.spec.containers[?(@.name==\"c1\")].image")
        .unwrap();
    assert_eq!((r.index, r.init), (1, false));
    let r = container_for_field_path(&w, "spec.template.spec.containers[0].image").unwrap();
    assert_eq!(r.name, "c0");
    for (bad, why) in [
        (
            "spec.template.spec.containers[?(@.name==\"zz\")].image",
            "names no container",
        ),
        (
            "spec.template.spec.containers[5].image",
            "names no container",
        ),
        (
            "spec.containers[0].image",
            "starts with spec.template.spec.",
        ),
        (
            "spec.template.spec.containers[?(@.name==\"c0\")]",
            "only the image field",
        ),
        (
            "spec.template.spec.containers[?(@.name==\"c0\").image",
            "container selector",
        ),
        ("spec.template.spec.volumes[0].image", "expected containers"),
    ] {
        let e = container_for_field_path(&w, bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
    assert_eq!(
        field_path_for(WorkloadKind::CronJob, "x"),
        "spec.jobTemplate.spec.template.spec.containers[?(@.name==\"x\")].image"
    );
}

#[test]
fn triggers_are_validated() {
    let good = r#"[{"from":{"kind":"ImageStreamTag","name":"keycloak:20.0"},"fieldPath":"spec.template.spec.containers[?(@.name==\"c0\")].image"}]"#;
    assert!(validate_triggers(&with_triggers(deployment(&["a"]), good)).is_empty());
    let errs = validate_triggers(&with_triggers(deployment(&["a"]), "{not json"));
    assert_eq!(errs.len(), 1);
    assert!(errs[0].to_string().starts_with(
        "metadata.annotations[image.openshift.io/triggers]: Invalid value: \"{not json\": must be a JSON list of image triggers"
    ));
    let dup = r#"[{"from":{"kind":"ImageStreamTag","name":"a:1"},"fieldPath":"spec.template.spec.containers[?(@.name==\"c0\")].image"},
                  {"from":{"kind":"ImageStreamTag","name":"b:1"},"fieldPath":"spec.template.spec.containers[0].image"}]"#;
    let errs = validate_triggers(&with_triggers(deployment(&["a"]), dup));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].to_string().contains("[1].fieldPath"));
    assert!(errs[0].message.contains("duplicate"));
    let bad = r#"[{"from":{"kind":"DockerImage","name":"nope"},"fieldPath":"spec.template.spec.containers[?(@.name==\"zz\")].image"}]"#;
    let errs = validate_triggers(&with_triggers(deployment(&["a"]), bad));
    let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert_eq!(errs.len(), 3, "{text:?}");
    assert!(text[0].contains("from.kind: Unsupported value: \"DockerImage\""));
    assert!(text[1].contains("from.name"));
    assert!(text[2].contains("names no container of this Deployment"));
}

#[test]
fn trigger_updates_follow_tags_and_skip_paused() {
    let triggers = r#"[{"from":{"kind":"ImageStreamTag","name":"keycloak:20.0"},"fieldPath":"spec.template.spec.containers[?(@.name==\"c0\")].image"},
                       {"from":{"kind":"ImageStreamTag","name":"other:1","namespace":"shared"},"fieldPath":"spec.template.spec.containers[1].image"},
                       {"from":{"kind":"ImageStreamTag","name":"keycloak:20.0"},"fieldPath":"spec.template.spec.containers[2].image","paused":true}]"#;
    let w = with_triggers(deployment(&["a", "b", "c"]), triggers);
    let spec = |ns: &str, tag: &str| -> Option<String> {
        match (ns, tag) {
            ("default", "keycloak:20.0") => Some("q/k@sha256:2".into()),
            ("shared", "other:1") => Some("b".into()),
            _ => None,
        }
    };
    let ups = trigger_updates(&w, spec);
    assert_eq!(ups.len(), 1, "{ups:?}");
    assert_eq!(ups[0].rewrite.container.name, "c0");
    assert_eq!(ups[0].rewrite.to, "q/k@sha256:2");
    assert_eq!(
        ups[0].rewrite.pointer,
        "/spec/template/spec/containers/0/image"
    );
    assert_eq!(
        (ups[0].namespace.as_str(), ups[0].tag.as_str()),
        ("default", "keycloak:20.0")
    );
    // Nothing when the tags are unknown.
    assert!(trigger_updates(&w, |_, _| None).is_empty());
    let parsed: Vec<ObjectFieldTrigger> = parse_triggers(triggers).unwrap();
    assert!(parsed[2].paused);
    assert_eq!(
        serde_json::to_value(&parsed[1]).unwrap()["from"],
        json!({"kind": "ImageStreamTag", "name": "other:1", "namespace": "shared"})
    );
}
