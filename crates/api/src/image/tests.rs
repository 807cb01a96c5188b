//! JSON round-trip and resource-trait tests for the image types, on OpenShift-shaped
//! documents.

use serde_json::{Value, json};

use super::*;

const D1: &str = "sha256:1c3e4a5e5b3f5d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c";
const D2: &str = "sha256:9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e";
const D3: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// Deserializes `doc` as `T`, serializes it back, and checks nothing was lost, added
/// or renamed.
fn roundtrip<T>(doc: &Value) -> T
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let typed: T = serde_json::from_value(doc.clone()).expect("deserialize");
    let back = serde_json::to_value(&typed).expect("serialize");
    assert_eq!(&back, doc, "round trip changed the document");
    typed
}

fn image_stream_doc() -> Value {
    json!({
        "kind": "ImageStream",
        "apiVersion": "image.openshift.io/v1",
        "metadata": {
            "name": "keycloak",
            "namespace": "demo",
            "uid": "0d2a8a4e-6c1f-4c33-9d8e-0b7a4f1d2e3c",
            "resourceVersion": "48213",
            "generation": 4,
            "creationTimestamp": "2023-01-10T08:00:00Z",
            "annotations": {
                "openshift.io/image.dockerRepositoryCheck": "2023-01-10T08:00:05Z"
            }
        },
        "spec": {
            "lookupPolicy": {"local": true},
            "tags": [
                {
                    "name": "20.0",
                    "annotations": null,
                    "from": {"kind": "DockerImage", "name": "quay.io/keycloak/keycloak:20.0.3"},
                    "generation": 3,
                    "importPolicy": {"scheduled": true, "importMode": "Legacy"},
                    "referencePolicy": {"type": "Source"}
                },
                {
                    "name": "latest",
                    "annotations": {"openshift.io/imported-from": "quay.io/keycloak/keycloak"},
                    "from": {"kind": "ImageStreamTag", "name": "keycloak:20.0"},
                    "generation": 2,
                    "importPolicy": {},
                    "referencePolicy": {"type": "Local"}
                },
                {
                    "name": "broken",
                    "annotations": null,
                    "from": {"kind": "DockerImage", "name": "quay.io/keycloak/keycloak:nope"},
                    "generation": 4,
                    "importPolicy": {"insecure": true, "importMode": "PreserveOriginal"},
                    "referencePolicy": {"type": "Source"}
                }
            ]
        },
        "status": {
            "dockerImageRepository": "127.0.0.1:8080/demo/keycloak",
            "tags": [
                {
                    "tag": "20.0",
                    "items": [
                        {
                            "created": "2023-01-10T09:00:00Z",
                            "dockerImageReference": format!("quay.io/keycloak/keycloak@{D2}"),
                            "image": D2,
                            "generation": 3
                        },
                        {
                            "created": "2023-01-10T08:00:05Z",
                            "dockerImageReference": format!("quay.io/keycloak/keycloak@{D1}"),
                            "image": D1,
                            "generation": 2
                        }
                    ]
                },
                {
                    "tag": "broken",
                    "items": null,
                    "conditions": [
                        {
                            "type": "ImportSuccess",
                            "status": "False",
                            "lastTransitionTime": "2023-01-10T09:30:00Z",
                            "reason": "NotFound",
                            "message": "dockerimage.image.openshift.io \"quay.io/keycloak/keycloak:nope\" not found",
                            "generation": 4
                        }
                    ]
                }
            ]
        }
    })
}

#[test]
fn image_stream_roundtrip() {
    let is: ImageStream = roundtrip(&image_stream_doc());
    assert_eq!(is.metadata.name.as_deref(), Some("keycloak"));
    assert!(is.spec.lookup_policy.local);
    let t = is.spec_tag("20.0").unwrap();
    assert_eq!(t.from_kind(), KIND_DOCKER_IMAGE);
    assert_eq!(t.from_name(), "quay.io/keycloak/keycloak:20.0.3");
    assert!(t.import_policy.scheduled);
    assert_eq!(t.import_policy.import_mode, Some(ImportMode::Legacy));
    assert_eq!(t.generation, Some(3));
    assert!(t.annotations.is_none());
    let latest = is.spec_tag("latest").unwrap();
    assert_eq!(
        latest.reference_policy.type_,
        Some(TagReferencePolicyType::Local)
    );
    assert_eq!(latest.import_policy, TagImportPolicy::default());
    assert_eq!(is.latest_tagged_image("20.0").unwrap().image, D2);
    let broken = is.status_tag("broken").unwrap();
    assert!(broken.items.is_empty());
    let cond = broken
        .condition(&TagEventConditionType::ImportSuccess)
        .unwrap();
    assert_eq!(cond.status, ConditionStatus::False);
    assert_eq!(cond.reason, reasons::NOT_FOUND);
    assert_eq!(cond.generation, 4);
    assert!(cond.last_transition_time.is_some());
}

#[test]
fn image_stream_serializes_go_shape_first() {
    let s =
        serde_json::to_string(&serde_json::from_value::<ImageStream>(image_stream_doc()).unwrap())
            .unwrap();
    assert!(
        s.starts_with(r#"{"kind":"ImageStream","apiVersion":"image.openshift.io/v1","metadata":"#)
    );
}

#[test]
fn empty_objects_follow_omitempty() {
    assert_eq!(
        serde_json::to_value(ImageStream::default()).unwrap(),
        json!({
            "kind": "ImageStream",
            "apiVersion": "image.openshift.io/v1",
            "metadata": {},
            "spec": {"lookupPolicy": {"local": false}},
            "status": {"dockerImageRepository": ""}
        })
    );
    // Fields without omitempty in Go are always written.
    assert_eq!(
        serde_json::to_value(TagReference {
            name: "x".into(),
            ..Default::default()
        })
        .unwrap(),
        json!({
            "name": "x",
            "annotations": null,
            "generation": null,
            "importPolicy": {},
            "referencePolicy": {"type": ""}
        })
    );
    assert_eq!(
        serde_json::to_value(NamedTagEventList {
            tag: "t".into(),
            ..Default::default()
        })
        .unwrap(),
        json!({"tag": "t", "items": null})
    );
    assert_eq!(
        serde_json::to_value(TagEvent::default()).unwrap(),
        json!({"created": null, "dockerImageReference": "", "image": "", "generation": 0})
    );
    assert_eq!(
        serde_json::to_value(ImageStreamTag::default()).unwrap(),
        json!({
            "kind": "ImageStreamTag",
            "apiVersion": "image.openshift.io/v1",
            "metadata": {},
            "tag": null,
            "generation": 0,
            "lookupPolicy": {"local": false},
            "image": {"metadata": {}}
        })
    );
}

#[test]
fn minimal_input_is_accepted() {
    // The seed's YAML shape, without status, kind-less nested parts, and
    // `importMode: ""`.
    let is: ImageStream = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1",
        "kind": "ImageStream",
        "metadata": {"name": "keycloak"},
        "spec": {
            "tags": [{
                "name": "20.0",
                "from": {"kind": "DockerImage", "name": "quay.io/keycloak/keycloak:20.0.2"},
                "importPolicy": {"importMode": ""},
                "referencePolicy": {"type": ""}
            }]
        }
    }))
    .unwrap();
    let t = &is.spec.tags[0];
    assert_eq!(t.import_policy.import_mode, None);
    assert_eq!(t.reference_policy.type_, None);
    assert_eq!(t.generation, None);
    // No kind or apiVersion at all is fine too.
    let is: ImageStream = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    assert_eq!(is.metadata.name.as_deref(), Some("x"));
    // A wrong kind is not.
    assert!(serde_json::from_value::<ImageStream>(json!({"kind": "Image"})).is_err());
}

#[test]
fn unknown_enum_values_survive_for_validation() {
    let t: TagReference = serde_json::from_value(json!({
        "name": "x",
        "importPolicy": {"importMode": "Sideways"},
        "referencePolicy": {"type": "Remote"}
    }))
    .unwrap();
    assert_eq!(
        t.import_policy.import_mode,
        Some(ImportMode::Other("Sideways".into()))
    );
    assert_eq!(
        t.reference_policy.type_,
        Some(TagReferencePolicyType::Other("Remote".into()))
    );
    let back = serde_json::to_value(&t).unwrap();
    assert_eq!(back["importPolicy"]["importMode"], "Sideways");
    assert_eq!(back["referencePolicy"]["type"], "Remote");
}

fn docker_metadata_doc() -> Value {
    json!({
        "kind": "DockerImage",
        "apiVersion": "image.openshift.io/1.0",
        "Id": "sha256:4b3f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e5d6c7b8a9f",
        "Created": "2022-11-03T14:21:08Z",
        "ContainerConfig": {},
        "Config": {
            "User": "1000",
            "ExposedPorts": {"8080/tcp": {}, "8443/tcp": {}},
            "Env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG=en_US.UTF-8"
            ],
            "Entrypoint": ["/opt/keycloak/bin/kc.sh"],
            "WorkingDir": "/opt/keycloak",
            "Labels": {
                "architecture": "x86_64",
                "io.k8s.display-name": "Keycloak"
            }
        },
        "Architecture": "amd64",
        "Size": 209715200
    })
}

fn image_doc(nested: bool) -> Value {
    let mut doc = json!({
        "kind": "Image",
        "apiVersion": "image.openshift.io/v1",
        "metadata": {
            "name": D2,
            "uid": "a6d0b1a2-8d7e-4f0a-9b1c-2d3e4f5a6b7c",
            "resourceVersion": "48200",
            "creationTimestamp": "2023-01-10T09:00:00Z",
            "annotations": {"image.openshift.io/dockerLayersOrder": "ascending"}
        },
        "dockerImageReference": format!("quay.io/keycloak/keycloak@{D2}"),
        "dockerImageMetadata": docker_metadata_doc(),
        "dockerImageMetadataVersion": "1.0",
        "dockerImageLayers": [
            {
                "name": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
                "size": 39311360,
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip"
            },
            {
                "name": "sha256:2222222222222222222222222222222222222222222222222222222222222222",
                "size": 170403840,
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip"
            }
        ],
        "dockerImageManifestMediaType": "application/vnd.docker.distribution.manifest.v2+json"
    });
    if nested {
        let map = doc.as_object_mut().unwrap();
        map.shift_remove("kind");
        map.shift_remove("apiVersion");
    }
    doc
}

#[test]
fn image_roundtrip_with_docker_metadata() {
    let image: Image = roundtrip(&image_doc(false));
    let meta = image.docker_image_metadata.as_ref().unwrap();
    assert_eq!(meta.architecture, "amd64");
    assert_eq!(meta.size, 209_715_200);
    let config = meta.config.as_ref().unwrap();
    assert_eq!(config.user, "1000");
    assert!(config.exposed_ports.contains_key("8080/tcp"));
    assert_eq!(config.entrypoint, ["/opt/keycloak/bin/kc.sh"]);
    assert_eq!(config.labels["io.k8s.display-name"], "Keycloak");
    assert_eq!(meta.container_config, DockerConfig::default());
    assert_eq!(image.docker_image_layers.len(), 2);
    assert!(!image.is_manifest_list());
}

#[test]
fn manifest_list_image_roundtrip() {
    let doc = json!({
        "kind": "Image",
        "apiVersion": "image.openshift.io/v1",
        "metadata": {"name": D3},
        "dockerImageReference": format!("quay.io/keycloak/keycloak@{D3}"),
        "dockerImageManifestMediaType": "application/vnd.oci.image.index.v1+json",
        "dockerImageManifests": [
            {"digest": D1, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "manifestSize": 1234, "architecture": "amd64", "os": "linux"},
            {"digest": D2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "manifestSize": 1240, "architecture": "arm64", "os": "linux", "variant": "v8"}
        ]
    });
    let image: Image = roundtrip(&doc);
    assert!(image.is_manifest_list());
    assert_eq!(image.docker_image_manifests[1].variant, "v8");
}

#[test]
fn image_stream_tag_roundtrip() {
    let doc = json!({
        "kind": "ImageStreamTag",
        "apiVersion": "image.openshift.io/v1",
        "metadata": {
            "name": "keycloak:20.0",
            "namespace": "demo",
            "uid": "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f",
            "resourceVersion": "48213",
            "creationTimestamp": "2023-01-10T09:00:00Z"
        },
        "tag": {
            "name": "20.0",
            "annotations": null,
            "from": {"kind": "DockerImage", "name": "quay.io/keycloak/keycloak:20.0.3"},
            "generation": 3,
            "importPolicy": {"importMode": "Legacy"},
            "referencePolicy": {"type": "Source"}
        },
        "generation": 3,
        "lookupPolicy": {"local": true},
        "image": image_doc(true)
    });
    let ist: ImageStreamTag = roundtrip(&doc);
    assert_eq!(ist.image.metadata.name.as_deref(), Some(D2));
    assert_eq!(ist.tag.as_ref().unwrap().name, "20.0");
    // The embedded image has no kind/apiVersion, as in OpenShift's output.
    let out = serde_json::to_value(&ist).unwrap();
    assert!(out["image"].get("kind").is_none());
    assert!(out["image"]["dockerImageMetadata"].get("kind").is_some());
}

#[test]
fn image_stream_tag_without_spec_tag() {
    let doc = json!({
        "kind": "ImageStreamTag",
        "apiVersion": "image.openshift.io/v1",
        "metadata": {"name": "pushed:v1", "namespace": "demo"},
        "tag": null,
        "generation": 1,
        "lookupPolicy": {"local": false},
        "conditions": [{
            "type": "ImportSuccess", "status": "True",
            "lastTransitionTime": null, "generation": 1
        }],
        "image": {"metadata": {"name": D1}}
    });
    let ist: ImageStreamTag = roundtrip(&doc);
    assert!(ist.tag.is_none());
}

#[test]
fn image_stream_image_and_mapping_roundtrip() {
    let isimage = json!({
        "kind": "ImageStreamImage",
        "apiVersion": "image.openshift.io/v1",
        "metadata": {"name": format!("keycloak@{D2}"), "namespace": "demo"},
        "image": image_doc(true)
    });
    roundtrip::<ImageStreamImage>(&isimage);
    let mapping = json!({
        "kind": "ImageStreamMapping",
        "apiVersion": "image.openshift.io/v1",
        "metadata": {"name": "keycloak", "namespace": "demo"},
        "image": {
            "metadata": {"name": D1},
            "dockerImageReference": format!("127.0.0.1:8080/demo/keycloak@{D1}")
        },
        "tag": "pushed"
    });
    roundtrip::<ImageStreamMapping>(&mapping);
}

#[test]
fn image_stream_import_roundtrip() {
    let mut imported_stream = image_stream_doc();
    let map = imported_stream.as_object_mut().unwrap();
    map.shift_remove("kind");
    map.shift_remove("apiVersion");
    let doc = json!({
        "kind": "ImageStreamImport",
        "apiVersion": "image.openshift.io/v1",
        "metadata": {"name": "keycloak", "namespace": "demo"},
        "spec": {
            "import": true,
            "images": [
                {
                    "from": {"kind": "DockerImage", "name": "quay.io/keycloak/keycloak:20.0.3"},
                    "to": {"name": "20.0"},
                    "importPolicy": {"importMode": "Legacy"},
                    "referencePolicy": {"type": "Source"}
                },
                {
                    "from": {"kind": "DockerImage", "name": "quay.io/keycloak/keycloak:nope"},
                    "importPolicy": {},
                    "referencePolicy": {"type": "Source"},
                    "includeManifest": true
                }
            ],
            "repository": {
                "from": {"kind": "DockerImage", "name": "quay.io/keycloak/keycloak"},
                "importPolicy": {"scheduled": true},
                "referencePolicy": {"type": "Local"}
            }
        },
        "status": {
            "import": imported_stream,
            "repository": {
                "status": {"metadata": {}, "status": "Success"},
                "images": [{"status": {"metadata": {}, "status": "Success"}, "tag": "20.0.3"}],
                "additionalTags": ["19.0.0", "18.0.0"]
            },
            "images": [
                {
                    "status": {"metadata": {}, "status": "Success"},
                    "image": image_doc(true),
                    "tag": "20.0.3"
                },
                {
                    "status": {
                        "metadata": {},
                        "status": "Failure",
                        "message": "dockerimage.image.openshift.io \"quay.io/keycloak/keycloak:nope\" not found",
                        "reason": "NotFound",
                        "details": {"name": "quay.io/keycloak/keycloak:nope", "kind": "dockerimage", "group": "image.openshift.io"},
                        "code": 404
                    }
                },
                {
                    "status": {"metadata": {}, "status": "Success"},
                    "image": {"metadata": {"name": D3}, "dockerImageManifests": [
                        {"digest": D1, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                         "manifestSize": 1, "architecture": "amd64", "os": "linux"}
                    ]},
                    "manifests": [{"metadata": {"name": D1}}]
                }
            ]
        }
    });
    let isi: ImageStreamImport = roundtrip(&doc);
    assert!(isi.spec.import);
    assert_eq!(isi.status.images[1].status.code, Some(404));
    assert_eq!(
        isi.status.import.as_ref().unwrap().metadata.name.as_deref(),
        Some("keycloak")
    );
}

#[test]
fn resource_traits_drive_kube() {
    use kube_core::Resource as _;
    assert_eq!(
        <ImageStream as kube_core::Resource>::plural(&()),
        "imagestreams"
    );
    assert_eq!(
        <ImageStream as kube_core::Resource>::group(&()),
        "image.openshift.io"
    );
    assert_eq!(<ImageStream as kube_core::Resource>::version(&()), "v1");
    assert_eq!(
        <ImageStream as kube_core::Resource>::kind(&()),
        "ImageStream"
    );
    assert_eq!(
        <ImageStream as kube_core::Resource>::api_version(&()),
        "image.openshift.io/v1"
    );
    assert_eq!(
        ImageStream::url_path(&(), Some("demo")),
        "/apis/image.openshift.io/v1/namespaces/demo/imagestreams"
    );
    assert_eq!(
        ImageStreamTag::url_path(&(), Some("demo")),
        "/apis/image.openshift.io/v1/namespaces/demo/imagestreamtags"
    );
    assert_eq!(
        ImageStreamImport::url_path(&(), Some("demo")),
        "/apis/image.openshift.io/v1/namespaces/demo/imagestreamimports"
    );
    assert_eq!(
        ImageStreamImage::url_path(&(), Some("demo")),
        "/apis/image.openshift.io/v1/namespaces/demo/imagestreamimages"
    );
    assert_eq!(
        ImageStreamMapping::url_path(&(), Some("demo")),
        "/apis/image.openshift.io/v1/namespaces/demo/imagestreammappings"
    );
    assert_eq!(
        Image::url_path(&(), None),
        "/apis/image.openshift.io/v1/images"
    );
    assert_eq!(
        ImageSignature::url_path(&(), None),
        "/apis/image.openshift.io/v1/imagesignatures"
    );
    let mut is = ImageStream::default();
    is.meta_mut().name = Some("keycloak".into());
    assert_eq!(is.meta().name.as_deref(), Some("keycloak"));
    fn is_namespaced<K: kube_core::Resource<Scope = k8s_openapi::NamespaceResourceScope>>() {}
    fn is_cluster<K: kube_core::Resource<Scope = k8s_openapi::ClusterResourceScope>>() {}
    is_namespaced::<ImageStream>();
    is_namespaced::<ImageStreamTag>();
    is_namespaced::<ImageStreamImport>();
    is_cluster::<Image>();
    is_cluster::<ImageSignature>();
}

#[test]
fn lists_have_list_kinds() {
    assert_eq!(
        <ImageStreamList as k8s_openapi::Resource>::KIND,
        "ImageStreamList"
    );
    assert_eq!(
        <ImageStreamTagList as k8s_openapi::Resource>::KIND,
        "ImageStreamTagList"
    );
    assert_eq!(<ImageList as k8s_openapi::Resource>::KIND, "ImageList");
    let list = ImageStreamList {
        items: vec![ImageStream::default()],
        metadata: Default::default(),
    };
    let v = serde_json::to_value(&list).unwrap();
    assert_eq!(v["kind"], "ImageStreamList");
    assert_eq!(v["apiVersion"], "image.openshift.io/v1");
    assert_eq!(v["items"][0]["kind"], "ImageStream");
    let back: ImageStreamList = serde_json::from_value(v).unwrap();
    assert_eq!(back, list);
    let empty: ImageStreamList = serde_json::from_value(json!({
        "kind": "ImageStreamList", "apiVersion": "image.openshift.io/v1",
        "metadata": {"resourceVersion": "7"}, "items": []
    }))
    .unwrap();
    assert!(empty.items.is_empty());
}

#[test]
fn tag_index_answers_as_the_stream_lookups_do() {
    use super::history::{TagIndex, import_failure, needs_import};
    let mut stream: ImageStream = serde_json::from_value(image_stream_doc()).unwrap();
    // A tag with no spec, and a spec tag whose generation is past its history.
    stream.spec.tags[0].generation = Some(99);
    let index = TagIndex::new(&stream);
    let names: Vec<String> = stream
        .spec
        .tags
        .iter()
        .map(|t| t.name.clone())
        .chain(stream.status.tags.iter().map(|t| t.tag.clone()))
        .chain(["missing".to_string()])
        .collect();
    for tag in &names {
        assert_eq!(index.needs_import(tag), needs_import(&stream, tag), "{tag}");
        assert_eq!(
            index.import_failure(tag),
            import_failure(&stream, tag),
            "{tag}"
        );
        assert_eq!(
            index.latest_tagged_image(tag),
            stream.latest_tagged_image(tag),
            "{tag}"
        );
        assert_eq!(index.spec_tag(tag), stream.spec_tag(tag), "{tag}");
    }
    assert!(index.needs_import("20.0"));
}
