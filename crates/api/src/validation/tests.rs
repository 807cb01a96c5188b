//! Tests of the validation rules, all kinds in one file (long on purpose: the cases read
//! as a table).

use std::sync::LazyLock;

use super::meta::{DNS1123_LABEL_RE, IMAGE_STREAM_NAME_RE};
use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::image::{
    ApplyDefaults, ImageManifest, NamedTagEventList, RepositoryImportSpec, TagEvent,
    TagReferencePolicy,
};
use crate::image::{
    Image, ImageImportSpec, ImageStream, ImageStreamImport, ImageStreamMapping, ImageStreamTag,
    ImportMode, TagReference, TagReferencePolicyType,
};
use k8s_openapi::api::core::v1::{LocalObjectReference, ObjectReference};

const D1: &str = "sha256:1c3e4a5e5b3f5d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c";

#[test]
fn patterns_compile() {
    LazyLock::force(&IMAGE_STREAM_NAME_RE);
    LazyLock::force(&DNS1123_LABEL_RE);
}

fn meta(ns: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: (!ns.is_empty()).then(|| ns.to_owned()),
        name: (!name.is_empty()).then(|| name.to_owned()),
        ..Default::default()
    }
}

fn from(kind: &str, name: &str) -> Option<ObjectReference> {
    Some(ObjectReference {
        kind: Some(kind.to_owned()),
        name: Some(name.to_owned()),
        ..Default::default()
    })
}

fn tag(name: &str, kind: &str, from_name: &str) -> TagReference {
    let mut t = TagReference {
        name: name.to_owned(),
        from: from(kind, from_name),
        ..Default::default()
    };
    t.apply_defaults();
    t
}

fn stream(ns: &str, name: &str, tags: Vec<TagReference>) -> ImageStream {
    let mut is = ImageStream {
        metadata: meta(ns, name),
        ..Default::default()
    };
    is.spec.tags = tags;
    is
}

fn paths(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(|e| e.path.clone()).collect()
}

#[test]
fn image_stream_names() {
    assert!(validate_image_stream_name("keycloak").is_empty());
    assert!(
        validate_image_stream_name("abcdefghijklmnopqrstuvwxyz-1234567890.dot_underscore-dash")
            .is_empty()
    );
    assert_eq!(
        validate_image_stream_name("foo/bar"),
        ["may not contain '/'"]
    );
    assert_eq!(
        validate_image_stream_name("foo%bar"),
        ["may not contain '%'"]
    );
    assert_eq!(validate_image_stream_name(".."), ["may not be '..'"]);
    assert_eq!(
        validate_image_stream_name("foo bar"),
        [r#"must match "[a-z0-9]+(?:[._-][a-z0-9]+)*""#]
    );
    assert!(!validate_image_stream_name("Keycloak").is_empty());
    assert!(!validate_image_stream_name("-a").is_empty());
    assert!(!validate_image_stream_name("a..b").is_empty());
}

#[test]
fn namespaces_are_dns_labels() {
    assert!(validate_namespace_name("demo-1").is_empty());
    assert!(validate_namespace_name("f").is_empty());
    let r = validate_namespace_name("!$");
    assert_eq!(r.len(), 1);
    assert!(r[0].starts_with("a lowercase RFC 1123 label must consist of"));
    assert!(r[0].ends_with("regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"));
    assert_eq!(
        validate_namespace_name(&"a".repeat(64)),
        ["must be no more than 63 characters"]
    );
    assert!(!validate_namespace_name("Demo").is_empty());
    assert!(!validate_namespace_name("demo-").is_empty());
    assert!(!validate_namespace_name("").is_empty());
}

#[test]
fn valid_stream_passes() {
    let is = stream(
        "demo",
        "keycloak",
        vec![
            tag("20.0", "DockerImage", "quay.io/keycloak/keycloak:20.0.2"),
            tag("latest", "ImageStreamTag", "keycloak:20.0"),
            tag("old", "ImageStreamImage", &format!("keycloak@{D1}")),
            TagReference {
                name: "pushed".into(),
                reference_policy: TagReferencePolicy {
                    type_: Some(TagReferencePolicyType::Local),
                },
                ..Default::default()
            },
        ],
    );
    assert_eq!(validate_image_stream(&is), []);
}

#[test]
fn stream_metadata_errors() {
    let errs = validate_image_stream(&stream("foo", "", vec![]));
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].to_string(),
        "metadata.name: Required value: name or generateName is required"
    );
    let errs = validate_image_stream(&stream("", "foo", vec![]));
    assert_eq!(errs[0].to_string(), "metadata.namespace: Required value");
    let errs = validate_image_stream(&stream("foo", "foo bar", vec![]));
    assert_eq!(
        errs[0].to_string(),
        r#"metadata.name: Invalid value: "foo bar": must match "[a-z0-9]+(?:[._-][a-z0-9]+)*""#
    );
    let ok = validate_image_stream(&stream(&"a".repeat(63), &"b".repeat(191), vec![]));
    assert_eq!(ok, []);
    let long = "x".to_owned() + &"b".repeat(191);
    let errs = validate_image_stream(&stream(&"a".repeat(63), &long, vec![]));
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].message,
        "'namespace/name' cannot be longer than 255 characters"
    );
}

#[test]
fn docker_image_repository_rules() {
    let mut is = stream("ns", "foo", vec![]);
    for (repo, message) in [
        ("a-|///bbb", "invalid reference format"),
        ("a/b:tag", "the repository name may not contain a tag"),
        ("a/b@sha256:something", "invalid reference format"),
    ] {
        is.spec.docker_image_repository = repo.into();
        let errs = validate_image_stream(&is);
        assert_eq!(errs.len(), 1, "{repo}");
        assert_eq!(errs[0].path, "spec.dockerImageRepository");
        assert_eq!(errs[0].message, message);
    }
    is.spec.docker_image_repository = format!("a/b@{D1}");
    assert_eq!(
        validate_image_stream(&is)[0].message,
        "the repository name may not contain an ID"
    );
}

#[test]
fn tag_reference_rules() {
    let mut bad_kind = tag("a", "Deployment", "x");
    bad_kind.from.as_mut().unwrap().kind = Some("Deployment".into());
    let mut no_name = tag("b", "DockerImage", "");
    no_name.from.as_mut().unwrap().name = None;
    let bad_ref = tag("c", "DockerImage", "Quay.io/Foo:bar baz");
    let mut sched_ist = tag("d", "ImageStreamTag", "other:latest");
    sched_ist.import_policy.scheduled = true;
    let mut sched_isi = tag("e", "ImageStreamImage", &format!("other@{D1}"));
    sched_isi.import_policy.scheduled = true;
    let mut bad_policy = tag("f", "DockerImage", "abc");
    bad_policy.reference_policy.type_ = Some(TagReferencePolicyType::Other("Other".into()));
    let mut bad_mode = tag("g", "DockerImage", "abc");
    bad_mode.import_policy.import_mode = Some(ImportMode::Other("Invalid".into()));
    let mut no_policy = tag("h", "DockerImage", "abc");
    no_policy.reference_policy.type_ = None;
    let ist_no_colon = tag("i", "ImageStreamTag", "other");
    let isi_not_digest = tag("j", "ImageStreamImage", "other@latest");
    let mut sched_pushed = TagReference {
        name: "k".into(),
        ..Default::default()
    };
    sched_pushed.apply_defaults();
    sched_pushed.import_policy.scheduled = true;
    let mut sched_docker = tag("l", "DockerImage", "abc");
    sched_docker.import_policy.scheduled = true;

    let is = stream(
        "ns",
        "s",
        vec![
            bad_kind,
            no_name,
            bad_ref,
            sched_ist,
            sched_isi,
            bad_policy,
            bad_mode,
            no_policy,
            ist_no_colon,
            isi_not_digest,
            sched_pushed,
            sched_docker,
        ],
    );
    let errs = validate_image_stream(&is);
    let rendered: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        rendered,
        [
            "spec.tags[a].from.kind: Required value: valid values are 'DockerImage', 'ImageStreamImage', 'ImageStreamTag'",
            "spec.tags[b].from.name: Required value",
            r#"spec.tags[c].from.name: Invalid value: "Quay.io/Foo:bar baz": invalid reference format"#,
            "spec.tags[d].importPolicy.scheduled: Invalid value: true: only tags pointing to Docker repositories may be scheduled for background import",
            "spec.tags[e].importPolicy.scheduled: Invalid value: true: only tags pointing to Docker repositories may be scheduled for background import",
            r#"spec.tags[f].referencePolicy.type: Invalid value: "Other": valid values are "Source", "Local""#,
            r#"spec.tags[g].importPolicy.importMode: Invalid value: "Invalid": invalid import mode, valid modes are '', 'Legacy', 'PreserveOriginal'"#,
            r#"spec.tags[h].referencePolicy.type: Invalid value: "": valid values are "Source", "Local""#,
            r#"spec.tags[i].from.name: Invalid value: "other": expected exactly one : delimiter in the istag "other""#,
            r#"spec.tags[j].from.name: Invalid value: "other@latest": image ID "latest": invalid checksum digest format"#,
            "spec.tags[k].importPolicy.scheduled: Invalid value: true: only tags pointing to Docker repositories may be scheduled for background import",
        ]
    );
    assert_eq!(errs[0].kind, FieldErrorKind::Required);
    assert_eq!(errs[0].kind.cause_type(), "FieldValueRequired");
}

#[test]
fn tag_names_unique_and_valid() {
    let is = stream(
        "ns",
        "s",
        vec![
            tag("a", "DockerImage", "x"),
            tag("a", "DockerImage", "y"),
            tag("bad tag", "DockerImage", "x"),
            tag("", "DockerImage", "x"),
        ],
    );
    let errs = validate_image_stream(&is);
    assert_eq!(
        paths(&errs),
        [
            "spec.tags[a].name",
            "spec.tags[bad tag].name",
            "spec.tags[3].name"
        ]
    );
    assert_eq!(errs[0].kind, FieldErrorKind::Duplicate);
    assert_eq!(errs[0].body(), r#"Duplicate value: "a""#);
    assert_eq!(errs[2].kind, FieldErrorKind::Required);
}

#[test]
fn status_items_need_references() {
    let mut is = stream("ns", "s", vec![]);
    is.status.tags.push(NamedTagEventList {
        tag: "tag".into(),
        items: vec![
            TagEvent::default(),
            TagEvent {
                docker_image_reference: "foo/bar:latest".into(),
                ..Default::default()
            },
            TagEvent {
                docker_image_reference: "Bad Ref".into(),
                ..Default::default()
            },
        ],
        conditions: vec![],
    });
    let errs = validate_image_stream(&is);
    assert_eq!(
        paths(&errs),
        [
            "status.tags[tag].items[0].dockerImageReference",
            "status.tags[tag].items[2].dockerImageReference"
        ]
    );
    assert_eq!(errs[0].kind, FieldErrorKind::Required);
    assert_eq!(errs[1].kind, FieldErrorKind::Invalid);
}

#[test]
fn stream_update_keeps_name() {
    let old = stream("ns", "a", vec![]);
    let new = stream("ns", "b", vec![]);
    let errs = validate_image_stream_update(&new, &old);
    assert_eq!(
        errs[0].to_string(),
        r#"metadata.name: Invalid value: "b": field is immutable"#
    );
    assert_eq!(validate_image_stream_update(&old, &old), []);
}

#[test]
fn image_stream_tag_rules() {
    let mut ist = ImageStreamTag {
        metadata: meta("demo", "keycloak:20.0"),
        tag: Some(tag(
            "20.0",
            "DockerImage",
            "quay.io/keycloak/keycloak:20.0.2",
        )),
        ..Default::default()
    };
    assert_eq!(validate_image_stream_tag(&ist), []);

    ist.metadata.name = Some("keycloak".into());
    let errs = validate_image_stream_tag(&ist);
    assert_eq!(
        errs[0].to_string(),
        r#"metadata.name: Invalid value: "keycloak": expected exactly one : delimiter in the istag "keycloak""#
    );
    ist.metadata.name = Some("Key:cloak".into());
    assert_eq!(
        validate_image_stream_tag(&ist)[0].message,
        r#"image stream name "Key" must match "[a-z0-9]+(?:[._-][a-z0-9]+)*""#
    );
    ist.metadata.name = Some("keycloak:bad tag".into());
    assert_eq!(validate_image_stream_tag(&ist).len(), 1);

    ist.metadata.name = Some("keycloak:20.0".into());
    let t = ist.tag.as_mut().unwrap();
    t.annotations = Some([("a".to_owned(), "b".to_owned())].into());
    let errs = validate_image_stream_tag(&ist);
    assert_eq!(
        errs[0].to_string(),
        "tag.annotations: Invalid value: <map>: tag annotations must not be provided or must be equal to the object meta annotations"
    );
    ist.metadata.annotations = Some([("a".to_owned(), "b".to_owned())].into());
    assert_eq!(validate_image_stream_tag(&ist), []);

    ist.tag.as_mut().unwrap().from = from("Pod", "x");
    assert_eq!(paths(&validate_image_stream_tag(&ist)), ["tag.from.kind"]);
}

fn import_spec(name: &str) -> ImageImportSpec {
    let mut s = ImageImportSpec {
        from: ObjectReference {
            kind: Some("DockerImage".into()),
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    s.apply_defaults();
    s
}

#[test]
fn image_stream_import_rules() {
    let mut isi = ImageStreamImport {
        metadata: meta("demo", "keycloak"),
        ..Default::default()
    };
    isi.spec
        .images
        .push(import_spec("quay.io/keycloak/keycloak:20.0.2"));
    assert_eq!(validate_image_stream_import(&isi), []);

    let mut wrong_kind = import_spec("x");
    wrong_kind.from.kind = Some("ImageStreamTag".into());
    let mut empty_to = import_spec("x");
    empty_to.to = Some(LocalObjectReference {
        name: String::new(),
    });
    let star = import_spec("*");
    let bad = import_spec("a//b");
    let mut no_name = import_spec("x");
    no_name.from.name = None;
    isi.spec.images = vec![wrong_kind, empty_to, star, bad, no_name];
    isi.spec.repository = Some(RepositoryImportSpec {
        from: ObjectReference {
            kind: Some("DockerImage".into()),
            name: Some("quay.io/keycloak/keycloak:20".into()),
            ..Default::default()
        },
        ..Default::default()
    });
    let rendered: Vec<String> = validate_image_stream_import(&isi)
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(
        rendered,
        [
            r#"spec.images[0].from.kind: Invalid value: "ImageStreamTag": only DockerImage is supported"#,
            r#"spec.images[1].to.name: Invalid value: "": the name of the target tag must be specified"#,
            r#"spec.images[3].from.name: Invalid value: "a//b": invalid reference format"#,
            "spec.images[4].from.name: Required value",
            r#"spec.repository.from.name: Invalid value: "quay.io/keycloak/keycloak:20": you must specify an image repository, not a tag or ID"#,
        ]
    );

    let empty = ImageStreamImport {
        metadata: meta("demo", "Bad Name"),
        ..Default::default()
    };
    let rendered: Vec<String> = validate_image_stream_import(&empty)
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(
        rendered,
        [
            "spec.images: Invalid value: null: you must specify at least one image or a repository import",
            r#"metadata.name: Invalid value: "Bad Name": must match "[a-z0-9]+(?:[._-][a-z0-9]+)*""#,
        ]
    );
}

fn image(name: &str, reference: &str) -> Image {
    Image {
        metadata: meta("", name),
        docker_image_reference: reference.into(),
        ..Default::default()
    }
}

#[test]
fn image_rules() {
    assert_eq!(
        validate_image(&image(D1, &format!("quay.io/keycloak/keycloak@{D1}"))),
        []
    );
    let errs = validate_image(&image("", "ref"));
    assert_eq!(paths(&errs), ["metadata.name"]);
    let errs = validate_image(&image("foo/bar", "ref"));
    assert_eq!(errs[0].message, "may not contain '/'");
    let errs = validate_image(&image("foo", ""));
    assert_eq!(paths(&errs), ["metadata.name", "dockerImageReference"]);
    assert_eq!(
        errs[0].message,
        "must be an image digest: invalid checksum digest format"
    );
    assert_eq!(errs[1].kind, FieldErrorKind::Required);
    let mut namespaced = image(D1, "a/b");
    namespaced.metadata.namespace = Some("x".into());
    assert_eq!(
        validate_image(&namespaced)[0].to_string(),
        "metadata.namespace: Forbidden: not allowed on this type"
    );
}

#[test]
fn image_manifest_rules() {
    let mut img = image(D1, "a/b");
    let good = ImageManifest {
        digest: D1.into(),
        media_type: "foo/bar".into(),
        manifest_size: 1,
        architecture: "amd64".into(),
        os: "linux".into(),
        variant: String::new(),
    };
    img.docker_image_manifests = vec![
        good.clone(),
        ImageManifest {
            digest: "abc".into(),
            ..good.clone()
        },
        ImageManifest {
            media_type: "foobar".into(),
            ..good.clone()
        },
        ImageManifest {
            architecture: String::new(),
            ..good.clone()
        },
        ImageManifest {
            os: String::new(),
            ..good.clone()
        },
        ImageManifest {
            manifest_size: -2,
            ..good
        },
    ];
    let rendered: Vec<String> = validate_image(&img).iter().map(|e| e.to_string()).collect();
    assert_eq!(
        rendered,
        [
            r#"dockerImageManifests[1].digest: Invalid value: "abc": digest does not conform with OCI image specification"#,
            r#"dockerImageManifests[2].mediaType: Invalid value: "foobar": media type does not conform to RFC6838"#,
            "dockerImageManifests[3].architecture: Required value",
            "dockerImageManifests[4].os: Required value",
            "dockerImageManifests[5].manifestSize: Invalid value: -2: manifest size cannot be negative",
        ]
    );
}

#[test]
fn image_stream_mapping_rules() {
    let mut m = ImageStreamMapping {
        metadata: meta("default", "ruby"),
        image: image(D1, "openshift/ruby-19-centos"),
        tag: "latest".into(),
        ..Default::default()
    };
    m.image.metadata.namespace = Some("default".into());
    assert_eq!(validate_image_stream_mapping(&m), []);
    m.tag.clear();
    m.image.metadata.name = None;
    m.image.docker_image_reference = "registry/extra/openshift//ruby-19-centos".into();
    assert_eq!(
        paths(&validate_image_stream_mapping(&m)),
        ["tag", "image.metadata.name", "image.dockerImageReference"]
    );
}

#[test]
fn status_for_invalid_object() {
    let errs = vec![
        FieldError::required("spec.tags[a].from.kind", "valid values are 'DockerImage'"),
        FieldError::invalid("metadata.name", "Foo", "must match x"),
    ];
    let status = invalid_status("image.openshift.io", "ImageStream", "Foo", &errs);
    assert_eq!(status.code, Some(422));
    assert_eq!(status.reason.as_deref(), Some("Invalid"));
    assert_eq!(status.status.as_deref(), Some("Failure"));
    assert_eq!(
        status.message.as_deref(),
        Some(
            r#"ImageStream.image.openshift.io "Foo" is invalid: [spec.tags[a].from.kind: Required value: valid values are 'DockerImage', metadata.name: Invalid value: "Foo": must match x]"#
        )
    );
    let details = status.details.unwrap();
    assert_eq!(details.kind.as_deref(), Some("ImageStream"));
    assert_eq!(details.group.as_deref(), Some("image.openshift.io"));
    let causes = details.causes.unwrap();
    assert_eq!(causes[0].reason.as_deref(), Some("FieldValueRequired"));
    assert_eq!(causes[0].field.as_deref(), Some("spec.tags[a].from.kind"));
    assert_eq!(
        causes[0].message.as_deref(),
        Some("Required value: valid values are 'DockerImage'")
    );
    let one = invalid_status("image.openshift.io", "ImageStream", "x", &errs[1..]);
    assert_eq!(
        one.message.as_deref(),
        Some(
            r#"ImageStream.image.openshift.io "x" is invalid: metadata.name: Invalid value: "Foo": must match x"#
        )
    );
    // JSON shape of the Status.
    let v = serde_json::to_value(&one).unwrap();
    assert_eq!(v["kind"], "Status");
    assert_eq!(v["details"]["causes"][0]["reason"], "FieldValueInvalid");
}

#[test]
fn other_error_bodies() {
    assert_eq!(
        FieldError::not_supported("spec.x", "c", &["a", "b"]).body(),
        r#"Unsupported value: "c": supported values: "a", "b""#
    );
    assert_eq!(
        FieldError::forbidden("spec.x", "no").to_string(),
        "spec.x: Forbidden: no"
    );
    assert_eq!(
        FieldError::too_long("spec.x", "aaaa", 3).body(),
        "Too long: may not be more than 3 bytes"
    );
    let p = FieldPath::new("spec")
        .child("tags")
        .key("a")
        .child("items")
        .index(2);
    assert_eq!(p.as_str(), "spec.tags[a].items[2]");
    assert_eq!(FieldPath::new("").child("x").to_string(), "x");
}
