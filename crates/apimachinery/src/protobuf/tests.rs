//! Each kind family encoded with k8s-pb's own prost types, decoded, and compared with
//! the JSON a JSON body gives; then the refusals.

use std::collections::BTreeMap;

use k8s_pb::api::{apps, authentication, authorization, batch, core, rbac};
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::*;
use crate::codec::decode_as;

/// A client-go protobuf body: the magic, then `runtime.Unknown` around `object`.
fn envelope<M: Message>(api_version: &str, kind: &str, object: &M) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

/// Decodes `object` sent as `(api_version, kind)`, checks the JSON equals `want`
/// and that k8s-openapi's `T` takes it without an unknown field (so every name is
/// the one the typed JSON decoding expects).
fn round_trip<M: Message, T: DeserializeOwned + Serialize>(
    api_version: &str,
    kind: &str,
    object: &M,
    want: Value,
) {
    let got = decode(
        &envelope(api_version, kind, object),
        Some((api_version, kind)),
    )
    .unwrap();
    assert_eq!(got, want);
    let (_, unknown) = decode_as::<T>(got).unwrap();
    assert!(unknown.is_empty(), "unknown fields: {unknown:?}");
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn object_meta(name: &str) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: s(name),
        namespace: s("ns"),
        labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
        creation_timestamp: Some(meta::Time {
            seconds: Some(1_700_000_000),
            nanos: Some(0),
        }),
        ..Default::default()
    })
}

fn meta_json(name: &str) -> Value {
    json!({"name": name, "namespace": "ns", "labels": {"app": "web"},
           "creationTimestamp": "2023-11-14T22:13:20Z"})
}

#[test]
fn core_kinds() {
    let secret = core::v1::Secret {
        metadata: object_meta("s"),
        immutable: Some(true),
        data: BTreeMap::from([("a".to_string(), b"b\x00".to_vec())]),
        string_data: BTreeMap::from([("c".to_string(), "d".to_string())]),
        r#type: s("Opaque"),
    };
    round_trip::<_, k8s_openapi::api::core::v1::Secret>(
        "v1",
        "Secret",
        &secret,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta_json("s"),
               "immutable": true, "data": {"a": "YgA="}, "stringData": {"c": "d"},
               "type": "Opaque"}),
    );
    let cm = core::v1::ConfigMap {
        metadata: object_meta("c"),
        data: BTreeMap::from([("k".to_string(), "v".to_string())]),
        binary_data: BTreeMap::from([("b".to_string(), vec![1, 2])]),
        ..Default::default()
    };
    round_trip::<_, k8s_openapi::api::core::v1::ConfigMap>(
        "v1",
        "ConfigMap",
        &cm,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta_json("c"),
               "data": {"k": "v"}, "binaryData": {"b": "AQI="}}),
    );
    let ns = core::v1::Namespace {
        metadata: Some(meta::ObjectMeta {
            name: s("team"),
            ..Default::default()
        }),
        spec: Some(core::v1::NamespaceSpec {
            finalizers: vec!["kubernetes".into()],
        }),
        status: None,
    };
    round_trip::<_, k8s_openapi::api::core::v1::Namespace>(
        "v1",
        "Namespace",
        &ns,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"},
               "spec": {"finalizers": ["kubernetes"]}}),
    );
    let ev = core::v1::Event {
        metadata: object_meta("e"),
        involved_object: Some(core::v1::ObjectReference {
            kind: s("Pod"),
            name: s("p"),
            field_path: s("spec.containers{a}"),
            ..Default::default()
        }),
        reason: s("Pulled"),
        count: Some(3),
        event_time: Some(meta::MicroTime {
            seconds: Some(1_700_000_000),
            nanos: Some(250_000_000),
        }),
        ..Default::default()
    };
    round_trip::<_, k8s_openapi::api::core::v1::Event>(
        "v1",
        "Event",
        &ev,
        json!({"apiVersion": "v1", "kind": "Event", "metadata": meta_json("e"),
               "involvedObject": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{a}"},
               "reason": "Pulled", "count": 3, "eventTime": "2023-11-14T22:13:20.250000Z"}),
    );
    let sa = core::v1::ServiceAccount {
        metadata: object_meta("builder"),
        secrets: vec![core::v1::ObjectReference {
            name: s("tok"),
            ..Default::default()
        }],
        image_pull_secrets: vec![core::v1::LocalObjectReference { name: s("pull") }],
        automount_service_account_token: Some(false),
    };
    round_trip::<_, k8s_openapi::api::core::v1::ServiceAccount>(
        "v1",
        "ServiceAccount",
        &sa,
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta_json("builder"),
               "secrets": [{"name": "tok"}], "imagePullSecrets": [{"name": "pull"}],
               "automountServiceAccountToken": false}),
    );
}

/// A pod template with the messages whose JSON is special: quantities, an
/// int-or-string, embedded structs (`ProbeHandler`, `VolumeSource`,
/// `LocalObjectReference`) and an acronym field name (`hostIPC`).
fn template() -> Option<core::v1::PodTemplateSpec> {
    let container = core::v1::Container {
        name: s("web"),
        image: s("keycloak:20.0"),
        ports: vec![core::v1::ContainerPort {
            container_port: Some(8080),
            protocol: s("TCP"),
            ..Default::default()
        }],
        env: vec![core::v1::EnvVar {
            name: s("PW"),
            value_from: Some(core::v1::EnvVarSource {
                secret_key_ref: Some(core::v1::SecretKeySelector {
                    local_object_reference: Some(core::v1::LocalObjectReference { name: s("s") }),
                    key: s("pw"),
                    optional: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }],
        resources: Some(core::v1::ResourceRequirements {
            limits: BTreeMap::from([("memory".to_string(), Quantity { string: s("512Mi") })]),
            ..Default::default()
        }),
        readiness_probe: Some(core::v1::Probe {
            handler: Some(core::v1::ProbeHandler {
                http_get: Some(core::v1::HttpGetAction {
                    path: s("/health"),
                    port: Some(IntOrString {
                        r#type: Some(1),
                        int_val: None,
                        str_val: s("http"),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            period_seconds: Some(5),
            ..Default::default()
        }),
        ..Default::default()
    };
    Some(core::v1::PodTemplateSpec {
        metadata: Some(meta::ObjectMeta {
            labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
            ..Default::default()
        }),
        spec: Some(core::v1::PodSpec {
            containers: vec![container],
            volumes: vec![core::v1::Volume {
                name: s("certs"),
                volume_source: Some(core::v1::VolumeSource {
                    secret: Some(core::v1::SecretVolumeSource {
                        secret_name: s("certs"),
                        default_mode: Some(0o400),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }],
            host_ipc: Some(true),
            ..Default::default()
        }),
    })
}

fn template_json() -> Value {
    json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "containers": [{
                "name": "web", "image": "keycloak:20.0",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}}],
                "resources": {"limits": {"memory": "512Mi"}},
                "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 5},
            }],
            "volumes": [{"name": "certs", "secret": {"secretName": "certs", "defaultMode": 256}}],
            "hostIPC": true,
        },
    })
}

fn selector() -> Option<meta::LabelSelector> {
    Some(meta::LabelSelector {
        match_labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
        match_expressions: vec![],
    })
}

#[test]
fn apps_and_batch_kinds() {
    let deploy = apps::v1::Deployment {
        metadata: object_meta("d"),
        spec: Some(apps::v1::DeploymentSpec {
            replicas: Some(2),
            selector: selector(),
            template: template(),
            strategy: Some(apps::v1::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::v1::RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(1),
                        str_val: None,
                    }),
                    max_surge: Some(IntOrString {
                        r#type: Some(1),
                        int_val: None,
                        str_val: s("25%"),
                    }),
                }),
            }),
            ..Default::default()
        }),
        status: Some(Default::default()),
    };
    round_trip::<_, k8s_openapi::api::apps::v1::Deployment>(
        "apps/v1",
        "Deployment",
        &deploy,
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta_json("d"),
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                        "template": template_json(),
                        "strategy": {"type": "RollingUpdate",
                                     "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}}},
               "status": {}}),
    );
    let job_spec = batch::v1::JobSpec {
        backoff_limit: Some(4),
        template: template(),
        ..Default::default()
    };
    let job = batch::v1::Job {
        metadata: object_meta("j"),
        spec: Some(job_spec.clone()),
        status: None,
    };
    round_trip::<_, k8s_openapi::api::batch::v1::Job>(
        "batch/v1",
        "Job",
        &job,
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta_json("j"),
               "spec": {"backoffLimit": 4, "template": template_json()}}),
    );
    let cron = batch::v1::CronJob {
        metadata: object_meta("c"),
        spec: Some(batch::v1::CronJobSpec {
            schedule: s("*/5 * * * *"),
            job_template: Some(batch::v1::JobTemplateSpec {
                metadata: None,
                spec: Some(job_spec),
            }),
            ..Default::default()
        }),
        status: None,
    };
    round_trip::<_, k8s_openapi::api::batch::v1::CronJob>(
        "batch/v1",
        "CronJob",
        &cron,
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta_json("c"),
               "spec": {"schedule": "*/5 * * * *",
                        "jobTemplate": {"spec": {"backoffLimit": 4, "template": template_json()}}}}),
    );
}

#[test]
fn rbac_kinds() {
    let role = rbac::v1::ClusterRole {
        metadata: Some(meta::ObjectMeta {
            name: s("metrics"),
            ..Default::default()
        }),
        rules: vec![
            rbac::v1::PolicyRule {
                verbs: vec!["get".into()],
                non_resource_ur_ls: vec!["/metrics".into()],
                ..Default::default()
            },
            rbac::v1::PolicyRule {
                verbs: vec!["get".into(), "update".into()],
                api_groups: vec!["image.openshift.io".into()],
                resources: vec!["imagestreams/layers".into()],
                resource_names: vec!["keycloak".into()],
                ..Default::default()
            },
        ],
        aggregation_rule: Some(rbac::v1::AggregationRule {
            cluster_role_selectors: vec![selector().unwrap_or_default()],
        }),
    };
    round_trip::<_, k8s_openapi::api::rbac::v1::ClusterRole>(
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        &role,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "metrics"},
               "rules": [{"verbs": ["get"], "nonResourceURLs": ["/metrics"]},
                         {"verbs": ["get", "update"], "apiGroups": ["image.openshift.io"],
                          "resources": ["imagestreams/layers"], "resourceNames": ["keycloak"]}],
               "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"app": "web"}}]}}),
    );
    let binding = rbac::v1::RoleBinding {
        metadata: object_meta("pullers"),
        subjects: vec![rbac::v1::Subject {
            kind: s("Group"),
            api_group: s("rbac.authorization.k8s.io"),
            name: s("system:serviceaccounts:ns"),
            namespace: None,
        }],
        role_ref: Some(rbac::v1::RoleRef {
            api_group: s("rbac.authorization.k8s.io"),
            kind: s("ClusterRole"),
            name: s("system:image-puller"),
        }),
    };
    round_trip::<_, k8s_openapi::api::rbac::v1::RoleBinding>(
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        &binding,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": meta_json("pullers"),
               "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io",
                             "name": "system:serviceaccounts:ns"}],
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "system:image-puller"}}),
    );
}

#[test]
fn delete_options() {
    let opts = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        preconditions: Some(meta::Preconditions {
            uid: s("u-1"),
            resource_version: s("7"),
        }),
        propagation_policy: s("Background"),
        dry_run: vec!["All".into()],
        ..Default::default()
    };
    let want = json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                      "preconditions": {"uid": "u-1", "resourceVersion": "7"},
                      "propagationPolicy": "Background", "dryRun": ["All"]});
    round_trip::<_, k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions>(
        "v1",
        "DeleteOptions",
        &opts,
        want,
    );
    // client-go sends DeleteOptions in the group version of the resource.
    let got = decode(
        &envelope("apps/v1", "DeleteOptions", &opts),
        Some(("v1", "DeleteOptions")),
    )
    .unwrap();
    assert_eq!(got["apiVersion"], "apps/v1");
    assert_eq!(got["dryRun"], json!(["All"]));
}

#[test]
fn authentication_and_authorization_kinds() {
    let tr = authentication::v1::TokenRequest {
        metadata: None,
        spec: Some(authentication::v1::TokenRequestSpec {
            audiences: vec!["moor".into()],
            expiration_seconds: Some(600),
            bound_object_ref: Some(authentication::v1::BoundObjectReference {
                kind: s("Secret"),
                api_version: s("v1"),
                name: s("s"),
                u_id: s("u"),
            }),
        }),
        status: None,
    };
    round_trip::<_, k8s_openapi::api::authentication::v1::TokenRequest>(
        "authentication.k8s.io/v1",
        "TokenRequest",
        &tr,
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
               "spec": {"audiences": ["moor"], "expirationSeconds": 600,
                        "boundObjectRef": {"kind": "Secret", "apiVersion": "v1",
                                           "name": "s", "uid": "u"}}}),
    );
    let review = authentication::v1::TokenReview {
        metadata: None,
        spec: Some(authentication::v1::TokenReviewSpec {
            token: s("abc"),
            audiences: vec![],
        }),
        status: None,
    };
    round_trip::<_, k8s_openapi::api::authentication::v1::TokenReview>(
        "authentication.k8s.io/v1",
        "TokenReview",
        &review,
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
               "spec": {"token": "abc"}}),
    );
    let whoami = authentication::v1::SelfSubjectReview::default();
    round_trip::<_, k8s_openapi::api::authentication::v1::SelfSubjectReview>(
        "authentication.k8s.io/v1",
        "SelfSubjectReview",
        &whoami,
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
    );
    let attrs = authorization::v1::ResourceAttributes {
        namespace: s("ns"),
        verb: s("get"),
        group: s("image.openshift.io"),
        resource: s("imagestreams"),
        subresource: s("layers"),
        name: s("keycloak"),
        ..Default::default()
    };
    let attrs_json = json!({"namespace": "ns", "verb": "get", "group": "image.openshift.io",
                            "resource": "imagestreams", "subresource": "layers",
                            "name": "keycloak"});
    let sar = authorization::v1::SubjectAccessReview {
        metadata: None,
        spec: Some(authorization::v1::SubjectAccessReviewSpec {
            resource_attributes: Some(attrs.clone()),
            user: s("alice"),
            groups: vec!["devs".into()],
            extra: BTreeMap::from([(
                "scopes".to_string(),
                authorization::v1::ExtraValue {
                    items: vec!["a".into(), "b".into()],
                },
            )]),
            uid: s("1"),
            ..Default::default()
        }),
        status: None,
    };
    round_trip::<_, k8s_openapi::api::authorization::v1::SubjectAccessReview>(
        "authorization.k8s.io/v1",
        "SubjectAccessReview",
        &sar,
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
               "spec": {"resourceAttributes": attrs_json.clone(), "user": "alice",
                        "groups": ["devs"], "extra": {"scopes": ["a", "b"]}, "uid": "1"}}),
    );
    let lsar = authorization::v1::LocalSubjectAccessReview {
        metadata: object_meta("x"),
        spec: sar.spec.clone(),
        status: None,
    };
    let got = decode(
        &envelope("authorization.k8s.io/v1", "LocalSubjectAccessReview", &lsar),
        None,
    )
    .unwrap();
    assert_eq!(got["spec"]["extra"], json!({"scopes": ["a", "b"]}));
    let ssar = authorization::v1::SelfSubjectAccessReview {
        metadata: None,
        spec: Some(authorization::v1::SelfSubjectAccessReviewSpec {
            resource_attributes: None,
            non_resource_attributes: Some(authorization::v1::NonResourceAttributes {
                path: s("/metrics"),
                verb: s("get"),
            }),
        }),
        status: None,
    };
    round_trip::<_, k8s_openapi::api::authorization::v1::SelfSubjectAccessReview>(
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        &ssar,
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
               "spec": {"nonResourceAttributes": {"path": "/metrics", "verb": "get"}}}),
    );
    let ssrr = authorization::v1::SelfSubjectRulesReview {
        metadata: None,
        spec: Some(authorization::v1::SelfSubjectRulesReviewSpec { namespace: s("ns") }),
        status: None,
    };
    round_trip::<_, k8s_openapi::api::authorization::v1::SelfSubjectRulesReview>(
        "authorization.k8s.io/v1",
        "SelfSubjectRulesReview",
        &ssrr,
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
               "spec": {"namespace": "ns"}}),
    );
}

#[test]
fn every_kind_in_the_table_decodes_an_empty_object() {
    for (api_version, kind, _) in generated::KINDS {
        let body = envelope(api_version, kind, &meta::Status::default());
        let got = decode(&body, Some((api_version, kind))).unwrap();
        assert_eq!(got, json!({"apiVersion": api_version, "kind": kind}));
    }
}

#[test]
fn bad_bodies_are_refused() {
    let secret = core::v1::Secret {
        metadata: object_meta("s"),
        ..Default::default()
    };
    let good = envelope("v1", "Secret", &secret);
    let expect = Some(("v1", "Secret"));
    assert!(decode(&good, expect).is_ok());
    // Wrong magic, or plain JSON sent with the protobuf media type.
    assert!(matches!(
        decode(b"k8s\x01rest", expect),
        Err(ProtobufError::Magic)
    ));
    assert!(matches!(decode(b"{}", expect), Err(ProtobufError::Magic)));
    // A truncated envelope.
    assert!(matches!(
        decode(&good[..good.len() - 3], expect),
        Err(ProtobufError::Envelope(_))
    ));
    // Garbage after the magic.
    let mut garbage = MAGIC.to_vec();
    garbage.extend([0xff; 16]);
    assert!(matches!(
        decode(&garbage, expect),
        Err(ProtobufError::Envelope(_))
    ));
    // An envelope whose object is garbage.
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s("v1"),
            kind: s("Secret"),
        }),
        raw: Some(vec![0x0a, 0x20, 1]),
        ..Default::default()
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    assert!(matches!(
        decode(&body, expect),
        Err(ProtobufError::Object { .. })
    ));
    // A kind other than the URL's.
    let e = decode(&envelope("v1", "ConfigMap", &secret), expect).unwrap_err();
    assert!(matches!(e, ProtobufError::Mismatch { .. }), "{e}");
    let e = decode(&envelope("apps/v1", "Secret", &secret), expect).unwrap_err();
    assert!(matches!(e, ProtobufError::Mismatch { .. }), "{e}");
    // A kind moor does not decode.
    let e = decode(&envelope("v1", "Node", &secret), None).unwrap_err();
    assert!(matches!(e, ProtobufError::UnknownKind { .. }), "{e}");
    // A compressed object.
    let unknown = Unknown {
        content_encoding: s("gzip"),
        ..Unknown::decode(&good[4..]).unwrap()
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    assert!(matches!(
        decode(&body, expect),
        Err(ProtobufError::ContentEncoding(_))
    ));
    // A resource whose kind moor does not decode from protobuf: 415.
    assert!(matches!(
        decode_object(&good, Some(("image.openshift.io/v1", "ImageStream"))),
        Err(ApiError::UnsupportedMediaType(_))
    ));
    // Every refusal is a 400 Status.
    let e: ApiError = decode(b"nope", expect).unwrap_err().into();
    assert!(matches!(e, ApiError::BadRequest(_)));
}

#[test]
fn an_envelope_without_type_meta_is_the_expected_kind() {
    let secret = core::v1::Secret {
        r#type: s("Opaque"),
        ..Default::default()
    };
    let unknown = Unknown {
        raw: Some(secret.encode_to_vec()),
        ..Default::default()
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    let got = decode(&body, Some(("v1", "Secret"))).unwrap();
    assert_eq!(
        got,
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque"})
    );
    // Only the kind, and no object bytes at all (every field unset).
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: None,
            kind: s("Secret"),
        }),
        ..Default::default()
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    let got = decode(&body, Some(("v1", "Secret"))).unwrap();
    assert_eq!(got, json!({"apiVersion": "v1", "kind": "Secret"}));
    assert!(matches!(
        decode(&body, None),
        Err(ProtobufError::UnknownKind { .. })
    ));
}

/// Bodies kubectl 1.32 sent (captured through a logging proxy in front of moor), with
/// the JSON the same kubectl command prints with `--dry-run=client -o json` (the Go
/// object through Go's JSON encoder), where there is one: see `kubectl/README.md`.
const KUBECTL: &[(&str, &[u8], Option<&str>)] = &[
    (
        "secret",
        include_bytes!("kubectl/secret.pb"),
        Some(include_str!("kubectl/secret.json")),
    ),
    (
        "configmap",
        include_bytes!("kubectl/configmap.pb"),
        Some(include_str!("kubectl/configmap.json")),
    ),
    (
        "namespace",
        include_bytes!("kubectl/namespace.pb"),
        Some(include_str!("kubectl/namespace.json")),
    ),
    (
        "serviceaccount",
        include_bytes!("kubectl/serviceaccount.pb"),
        Some(include_str!("kubectl/serviceaccount.json")),
    ),
    (
        "deployment",
        include_bytes!("kubectl/deployment.pb"),
        Some(include_str!("kubectl/deployment.json")),
    ),
    (
        "job",
        include_bytes!("kubectl/job.pb"),
        Some(include_str!("kubectl/job.json")),
    ),
    (
        "cronjob",
        include_bytes!("kubectl/cronjob.pb"),
        Some(include_str!("kubectl/cronjob.json")),
    ),
    (
        "role",
        include_bytes!("kubectl/role.pb"),
        Some(include_str!("kubectl/role.json")),
    ),
    (
        "clusterrole",
        include_bytes!("kubectl/clusterrole.pb"),
        Some(include_str!("kubectl/clusterrole.json")),
    ),
    (
        "rolebinding",
        include_bytes!("kubectl/rolebinding.pb"),
        Some(include_str!("kubectl/rolebinding.json")),
    ),
    (
        "clusterrolebinding",
        include_bytes!("kubectl/clusterrolebinding.pb"),
        Some(include_str!("kubectl/clusterrolebinding.json")),
    ),
    (
        "tokenrequest",
        include_bytes!("kubectl/tokenrequest.pb"),
        None,
    ),
    (
        "selfsubjectaccessreview",
        include_bytes!("kubectl/selfsubjectaccessreview.pb"),
        None,
    ),
    (
        "selfsubjectrulesreview",
        include_bytes!("kubectl/selfsubjectrulesreview.pb"),
        None,
    ),
    (
        "selfsubjectreview",
        include_bytes!("kubectl/selfsubjectreview.pb"),
        None,
    ),
];

/// Drops `null` members: Go writes a zero `metav1.Time` as `null`, which is absent.
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

#[test]
fn kubectl_bodies_decode_to_the_json_kubectl_prints() {
    for (name, body, printed) in KUBECTL {
        let got = decode(body, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = match printed {
            Some(text) => without_nulls(serde_json::from_str(text).unwrap()),
            None => match *name {
                // `kubectl create token builder --duration=10m --audience=moor`
                "tokenrequest" => json!({"apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenRequest", "metadata": {},
                    "spec": {"audiences": ["moor"], "expirationSeconds": 600},
                    "status": {"token": ""}}),
                // `kubectl auth can-i get secrets`
                "selfsubjectaccessreview" => json!({"apiVersion": "authorization.k8s.io/v1",
                    "kind": "SelfSubjectAccessReview", "metadata": {},
                    "spec": {"resourceAttributes":
                        {"namespace": "default", "verb": "get", "resource": "secrets"}},
                    "status": {"allowed": false}}),
                // `kubectl auth can-i --list`
                "selfsubjectrulesreview" => json!({"apiVersion": "authorization.k8s.io/v1",
                    "kind": "SelfSubjectRulesReview", "metadata": {},
                    "spec": {"namespace": "default"}, "status": {"incomplete": false}}),
                // `kubectl auth whoami`
                "selfsubjectreview" => json!({"apiVersion": "authentication.k8s.io/v1",
                    "kind": "SelfSubjectReview", "metadata": {},
                    "status": {"userInfo": {}}}),
                other => panic!("no expectation for {other}"),
            },
        };
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn every_truncation_of_a_real_body_is_refused_or_decoded_without_panic() {
    for (name, body, _) in KUBECTL {
        for len in 0..body.len() {
            // A prefix may still be a valid message (protobuf has no end marker);
            // what matters is an answer, never a panic.
            let _ = decode(&body[..len], None);
        }
        assert!(decode(body, None).is_ok(), "{name}");
    }
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_after_the_magic_never_panic(
        tail in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
    ) {
        let mut body = MAGIC.to_vec();
        body.extend(tail);
        let _ = decode(&body, Some(("apps/v1", "Deployment")));
        let _ = decode(&body, None);
    }

    /// Real bodies with bytes flipped: deep inside the object, not only the envelope.
    #[test]
    fn mutated_kubectl_bodies_never_panic(
        which in 0..KUBECTL.len(),
        flips in proptest::collection::vec((proptest::num::usize::ANY, 1..=255u8), 1..8),
    ) {
        let mut body = KUBECTL[which].1.to_vec();
        for (at, x) in flips {
            let at = at % body.len();
            body[at] ^= x;
        }
        let _ = decode(&body, None);
    }
}
