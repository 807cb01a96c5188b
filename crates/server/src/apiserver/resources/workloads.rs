//! Workloads in standalone mode: apps/v1 deployments, replicasets, statefulsets and
//! daemonsets, batch/v1 jobs and cronjobs, core/v1 pods. moor does not run containers:
//! these are records of what should run, kept so that `image: keycloak:20.0` can be
//! resolved, triggered and rolled back. On create and update the resolver
//! (`moor_api::lookup`) pins short names; the triggers annotation is validated; every
//! change of a Deployment's pod template records a revision (the
//! `deployment.kubernetes.io/revision` annotation and a ReplicaSet per template, as the
//! Kubernetes deployment controller keeps them). Strategies plus a storage wrapper.

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use moor_api::lookup::{
    Resolution, Workload, WorkloadKind, candidate_streams, resolve_workload, validate_triggers,
};
use moor_api::validation::FieldError;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::apiserver::codec::decode_as;
use crate::apiserver::error::ApiError;
use crate::apiserver::patch::MergeKeys;
use crate::apiserver::resource::*;
use crate::apiserver::stored::{StoredResource, Strategy};
use crate::apiserver::table::{Column, TableDef, age_column, age_of, name_column, name_of};

/// The annotation that numbers a Deployment's pod template revisions.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a ReplicaSet's template had (comma-separated), after a rollback.
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
/// Deployment annotations the ReplicaSets of its revisions do not take.
const ANNOTATIONS_NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];
/// The label that ties a ReplicaSet and its pods to one pod template.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// The resource definition of a workload kind.
pub fn workload_def(kind: WorkloadKind) -> ResourceDef {
    let (list_kind, singular, short_names): (&str, &str, &'static [&'static str]) = match kind {
        WorkloadKind::Pod => ("PodList", "pod", &["po"]),
        WorkloadKind::Deployment => ("DeploymentList", "deployment", &["deploy"]),
        WorkloadKind::ReplicaSet => ("ReplicaSetList", "replicaset", &["rs"]),
        WorkloadKind::StatefulSet => ("StatefulSetList", "statefulset", &["sts"]),
        WorkloadKind::DaemonSet => ("DaemonSetList", "daemonset", &["ds"]),
        WorkloadKind::Job => ("JobList", "job", &[]),
        WorkloadKind::CronJob => ("CronJobList", "cronjob", &["cj"]),
    };
    ResourceDef {
        group: kind.group(),
        version: kind.version(),
        kind: kind.kind(),
        list_kind,
        plural: kind.plural(),
        singular,
        short_names,
        categories: &["all"],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &["status"],
        selectable_fields: if kind == WorkloadKind::Pod {
            &[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "status.phase",
            ]
        } else {
            &[]
        },
    }
}

/// Strategic-merge keys of a pod spec at `$p`, as Kubernetes declares them.
macro_rules! pod_spec_keys {
    ($p:literal) => {
        MergeKeys(&[
            (concat!($p, ".containers"), "name"),
            (concat!($p, ".containers[].ports"), "containerPort"),
            (concat!($p, ".containers[].env"), "name"),
            (concat!($p, ".containers[].volumeMounts"), "mountPath"),
            (concat!($p, ".containers[].volumeDevices"), "devicePath"),
            (concat!($p, ".initContainers"), "name"),
            (concat!($p, ".initContainers[].ports"), "containerPort"),
            (concat!($p, ".initContainers[].env"), "name"),
            (concat!($p, ".initContainers[].volumeMounts"), "mountPath"),
            (concat!($p, ".initContainers[].volumeDevices"), "devicePath"),
            (concat!($p, ".ephemeralContainers"), "name"),
            (concat!($p, ".ephemeralContainers[].ports"), "containerPort"),
            (concat!($p, ".ephemeralContainers[].env"), "name"),
            (
                concat!($p, ".ephemeralContainers[].volumeMounts"),
                "mountPath",
            ),
            (
                concat!($p, ".ephemeralContainers[].volumeDevices"),
                "devicePath",
            ),
            (concat!($p, ".volumes"), "name"),
            (concat!($p, ".imagePullSecrets"), "name"),
            (concat!($p, ".hostAliases"), "ip"),
            (concat!($p, ".topologySpreadConstraints"), "topologyKey"),
            (concat!($p, ".resourceClaims"), "name"),
            (concat!($p, ".schedulingGates"), "name"),
            ("status.conditions", "type"),
        ])
    };
}

const POD_KEYS: MergeKeys = pod_spec_keys!("spec");
const TEMPLATE_KEYS: MergeKeys = pod_spec_keys!("spec.template.spec");
const CRONJOB_KEYS: MergeKeys = pod_spec_keys!("spec.jobTemplate.spec.template.spec");

/// The strategy of one workload kind.
pub struct Workloads {
    def: ResourceDef,
    kind: WorkloadKind,
}

impl Workloads {
    /// The strategy of `kind`.
    pub fn new(kind: WorkloadKind) -> Self {
        Workloads {
            def: workload_def(kind),
            kind,
        }
    }
}

fn col(name: &'static str, kind: &'static str, description: &'static str, priority: u8) -> Column {
    Column {
        name,
        kind,
        format: "",
        description,
        priority,
    }
}

fn int_at(o: &Value, ptr: &str) -> i64 {
    o.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn pod_spec_value(o: &Value, kind: WorkloadKind) -> Option<&Value> {
    o.pointer(kind.pod_spec_pointer())
}

fn container_cells(o: &Value, kind: WorkloadKind) -> (String, String) {
    let containers = pod_spec_value(o, kind)
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let images: Vec<&str> = containers
        .iter()
        .filter_map(|c| c.get("image").and_then(Value::as_str))
        .collect();
    (names.join(","), images.join(","))
}

fn selector_cell(o: &Value) -> String {
    o.pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn workload_table(kind: WorkloadKind) -> TableDef {
    let containers = col(
        "Containers",
        "string",
        "Names of each container in the template.",
        1,
    );
    let images = col(
        "Images",
        "string",
        "Images referenced by each container in the template.",
        1,
    );
    let selector = col("Selector", "string", "Label selector for pods.", 1);
    let (columns, row): (Vec<Column>, crate::apiserver::table::RowFn) = match kind {
        WorkloadKind::Deployment => (
            vec![
                name_column(),
                col("Ready", "string", "Number of the pod with ready state", 0),
                col(
                    "Up-to-date",
                    "integer",
                    "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                    0,
                ),
                col(
                    "Available",
                    "integer",
                    "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                    0,
                ),
                age_column(),
                containers,
                images,
                selector,
            ],
            Arc::new(move |o| {
                let (c, i) = container_cells(o, kind);
                vec![
                    json!(name_of(o)),
                    json!(format!(
                        "{}/{}",
                        int_at(o, "/status/readyReplicas"),
                        o.pointer("/spec/replicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(1)
                    )),
                    json!(int_at(o, "/status/updatedReplicas")),
                    json!(int_at(o, "/status/availableReplicas")),
                    json!(age_of(o)),
                    json!(c),
                    json!(i),
                    json!(selector_cell(o)),
                ]
            }),
        ),
        WorkloadKind::ReplicaSet => (
            vec![
                name_column(),
                col("Desired", "integer", "Number of desired pods.", 0),
                col("Current", "integer", "Number of actual replicas.", 0),
                col(
                    "Ready",
                    "integer",
                    "The number of ready replicas for this replica set.",
                    0,
                ),
                age_column(),
                containers,
                images,
                selector,
            ],
            Arc::new(move |o| {
                let (c, i) = container_cells(o, kind);
                vec![
                    json!(name_of(o)),
                    json!(
                        o.pointer("/spec/replicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(1)
                    ),
                    json!(int_at(o, "/status/replicas")),
                    json!(int_at(o, "/status/readyReplicas")),
                    json!(age_of(o)),
                    json!(c),
                    json!(i),
                    json!(selector_cell(o)),
                ]
            }),
        ),
        WorkloadKind::StatefulSet => (
            vec![
                name_column(),
                col("Ready", "string", "Number of the pod with ready state", 0),
                age_column(),
                containers,
                images,
            ],
            Arc::new(move |o| {
                let (c, i) = container_cells(o, kind);
                vec![
                    json!(name_of(o)),
                    json!(format!(
                        "{}/{}",
                        int_at(o, "/status/readyReplicas"),
                        o.pointer("/spec/replicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(1)
                    )),
                    json!(age_of(o)),
                    json!(c),
                    json!(i),
                ]
            }),
        ),
        WorkloadKind::DaemonSet => (
            vec![
                name_column(),
                col(
                    "Desired",
                    "integer",
                    "The total number of nodes that should be running the daemon pod.",
                    0,
                ),
                col(
                    "Current",
                    "integer",
                    "The number of nodes that are running at least 1 daemon pod.",
                    0,
                ),
                col(
                    "Ready",
                    "integer",
                    "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
                    0,
                ),
                col(
                    "Up-to-date",
                    "integer",
                    "The total number of nodes that are running updated daemon pod",
                    0,
                ),
                col(
                    "Available",
                    "integer",
                    "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.",
                    0,
                ),
                col(
                    "Node Selector",
                    "string",
                    "NodeSelector is a selector which must be true for the pod to fit on a node.",
                    0,
                ),
                age_column(),
                containers,
                images,
                selector,
            ],
            Arc::new(move |o| {
                let (c, i) = container_cells(o, kind);
                let node_selector = o
                    .pointer("/spec/template/spec/nodeSelector")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "<none>".into());
                vec![
                    json!(name_of(o)),
                    json!(int_at(o, "/status/desiredNumberScheduled")),
                    json!(int_at(o, "/status/currentNumberScheduled")),
                    json!(int_at(o, "/status/numberReady")),
                    json!(int_at(o, "/status/updatedNumberScheduled")),
                    json!(int_at(o, "/status/numberAvailable")),
                    json!(node_selector),
                    json!(age_of(o)),
                    json!(c),
                    json!(i),
                    json!(selector_cell(o)),
                ]
            }),
        ),
        WorkloadKind::Job => (
            vec![
                name_column(),
                col(
                    "Completions",
                    "string",
                    "The desired number of successfully finished pods the job should be run with.",
                    0,
                ),
                col(
                    "Duration",
                    "string",
                    "Time required to complete the job.",
                    0,
                ),
                age_column(),
                containers,
                images,
                selector,
            ],
            Arc::new(move |o| {
                let (c, i) = container_cells(o, kind);
                vec![
                    json!(name_of(o)),
                    json!(format!(
                        "{}/{}",
                        int_at(o, "/status/succeeded"),
                        o.pointer("/spec/completions")
                            .and_then(Value::as_i64)
                            .unwrap_or(1)
                    )),
                    json!(""),
                    json!(age_of(o)),
                    json!(c),
                    json!(i),
                    json!(selector_cell(o)),
                ]
            }),
        ),
        WorkloadKind::CronJob => (
            vec![
                name_column(),
                col("Schedule", "string", "The schedule in Cron format.", 0),
                col(
                    "Timezone",
                    "string",
                    "The time zone name for the given schedule.",
                    0,
                ),
                col(
                    "Suspend",
                    "boolean",
                    "Whether subsequent executions are suspended.",
                    0,
                ),
                col("Active", "integer", "The number of active jobs.", 0),
                col(
                    "Last Schedule",
                    "string",
                    "When the job was last scheduled.",
                    0,
                ),
                age_column(),
                containers,
                images,
            ],
            Arc::new(move |o| {
                let (c, i) = container_cells(o, kind);
                vec![
                    json!(name_of(o)),
                    o.pointer("/spec/schedule").cloned().unwrap_or(json!("")),
                    json!(
                        o.pointer("/spec/timeZone")
                            .and_then(Value::as_str)
                            .unwrap_or("<none>")
                    ),
                    json!(
                        o.pointer("/spec/suspend")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                    ),
                    json!(
                        o.pointer("/status/active")
                            .and_then(Value::as_array)
                            .map(|a| a.len())
                            .unwrap_or(0)
                    ),
                    json!("<none>"),
                    json!(age_of(o)),
                    json!(c),
                    json!(i),
                ]
            }),
        ),
        WorkloadKind::Pod => (
            vec![
                name_column(),
                col(
                    "Ready",
                    "string",
                    "The aggregate readiness state of this pod for accepting traffic.",
                    0,
                ),
                col(
                    "Status",
                    "string",
                    "The aggregate status of the containers in this pod.",
                    0,
                ),
                col(
                    "Restarts",
                    "string",
                    "The number of times the containers in this pod have been restarted.",
                    0,
                ),
                age_column(),
                col("IP", "string", "The IP address assigned to the pod", 1),
                col(
                    "Node",
                    "string",
                    "The name of the node this pod is scheduled to",
                    1,
                ),
            ],
            Arc::new(|o| {
                let total = o
                    .pointer("/spec/containers")
                    .and_then(Value::as_array)
                    .map(|a| a.len())
                    .unwrap_or(0);
                vec![
                    json!(name_of(o)),
                    json!(format!("0/{total}")),
                    o.pointer("/status/phase")
                        .cloned()
                        .unwrap_or(json!("Pending")),
                    json!("0"),
                    json!(age_of(o)),
                    json!("<none>"),
                    json!(
                        o.pointer("/spec/nodeName")
                            .and_then(Value::as_str)
                            .unwrap_or("<none>")
                    ),
                ]
            }),
        ),
    };
    TableDef { columns, row }
}

/// Kubernetes' defaults for a pod spec and its containers (the subset clients see most).
fn default_pod_spec(spec: &mut PodSpec, restart_policy: Option<&str>) {
    if spec.restart_policy.is_none()
        && let Some(p) = restart_policy
    {
        spec.restart_policy = Some(p.to_string());
    }
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.scheduler_name
        .get_or_insert_with(|| "default-scheduler".into());
    spec.security_context.get_or_insert_with(Default::default);
    spec.termination_grace_period_seconds.get_or_insert(30);
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for c in containers {
        c.termination_message_path
            .get_or_insert_with(|| "/dev/termination-log".into());
        c.termination_message_policy
            .get_or_insert_with(|| "File".into());
        c.resources.get_or_insert_with(Default::default);
        if c.image_pull_policy.is_none() {
            let latest = c
                .image
                .as_deref()
                .and_then(|i| moor_api::DockerImageReference::parse(i).ok())
                .is_some_and(|r| r.id().is_none() && r.tag().is_none_or(|t| t == "latest"));
            c.image_pull_policy = Some(if latest { "Always" } else { "IfNotPresent" }.into());
        }
        for p in c.ports.iter_mut().flatten() {
            p.protocol.get_or_insert_with(|| "TCP".into());
        }
    }
}

/// Kubernetes' defaults for `w` (server-side, as kube-apiserver applies them on decode).
fn apply_defaults(w: &mut Workload) {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let restart = match w.kind() {
        WorkloadKind::Job | WorkloadKind::CronJob => None,
        _ => Some("Always"),
    };
    if let Some(spec) = w.pod_spec_mut() {
        default_pod_spec(spec, restart);
    }
    match w {
        Workload::Deployment(d) => {
            let s = &mut d.spec;
            s.replicas.get_or_insert(1);
            s.revision_history_limit.get_or_insert(10);
            s.progress_deadline_seconds.get_or_insert(600);
            let strategy = s.strategy.get_or_insert_with(Default::default);
            let ty = strategy.type_.get_or_insert_with(|| "RollingUpdate".into());
            if ty == "RollingUpdate" {
                let ru = strategy.rolling_update.get_or_insert_with(Default::default);
                ru.max_surge
                    .get_or_insert(IntOrString::String("25%".into()));
                ru.max_unavailable
                    .get_or_insert(IntOrString::String("25%".into()));
            }
        }
        Workload::ReplicaSet(r) => {
            r.spec.replicas.get_or_insert(1);
        }
        Workload::StatefulSet(s) => {
            let s = &mut s.spec;
            s.replicas.get_or_insert(1);
            s.revision_history_limit.get_or_insert(10);
            s.pod_management_policy
                .get_or_insert_with(|| "OrderedReady".into());
            let us = s.update_strategy.get_or_insert_with(Default::default);
            let ty = us.type_.get_or_insert_with(|| "RollingUpdate".into());
            if ty == "RollingUpdate" {
                us.rolling_update
                    .get_or_insert_with(Default::default)
                    .partition
                    .get_or_insert(0);
            }
        }
        Workload::DaemonSet(d) => {
            let s = &mut d.spec;
            s.revision_history_limit.get_or_insert(10);
            let us = s.update_strategy.get_or_insert_with(Default::default);
            let ty = us.type_.get_or_insert_with(|| "RollingUpdate".into());
            if ty == "RollingUpdate" {
                let ru = us.rolling_update.get_or_insert_with(Default::default);
                ru.max_unavailable.get_or_insert(IntOrString::Int(1));
                ru.max_surge.get_or_insert(IntOrString::Int(0));
            }
        }
        Workload::Job(j) => {
            if let Some(s) = j.spec.as_mut() {
                s.parallelism.get_or_insert(1);
                s.completions.get_or_insert(1);
                s.backoff_limit.get_or_insert(6);
                s.completion_mode.get_or_insert_with(|| "NonIndexed".into());
                s.suspend.get_or_insert(false);
            }
        }
        Workload::CronJob(c) => {
            let s = &mut c.spec;
            s.concurrency_policy.get_or_insert_with(|| "Allow".into());
            s.suspend.get_or_insert(false);
            s.successful_jobs_history_limit.get_or_insert(3);
            s.failed_jobs_history_limit.get_or_insert(1);
        }
        Workload::Pod(p) => {
            if p.status.is_none() {
                p.status = Some(k8s_openapi::api::core::v1::PodStatus {
                    phase: Some("Pending".into()),
                    ..Default::default()
                });
            }
        }
    }
}

fn typed(kind: WorkloadKind, v: &Value) -> Option<Workload> {
    Workload::from_value(kind, v.clone()).ok()
}

/// `obj` with the defaults of its kind applied (unchanged when it does not decode).
fn with_defaults(kind: WorkloadKind, obj: &mut Value) {
    let Some(mut w) = typed(kind, obj) else {
        return;
    };
    apply_defaults(&mut w);
    let mut v = w.to_value();
    // Keep metadata exactly as it was (server-managed fields included).
    if let (Some(meta), Some(slot)) = (obj.get("metadata").cloned(), v.get_mut("metadata")) {
        *slot = meta;
    }
    *obj = v;
}

fn set_annotation(obj: &mut Value, key: &str, value: Option<String>) {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    let meta = &mut obj["metadata"];
    match value {
        Some(v) => {
            if !meta.get("annotations").is_some_and(Value::is_object) {
                meta["annotations"] = json!({});
            }
            meta["annotations"][key] = json!(v);
        }
        None => {
            if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                a.remove(key);
                if a.is_empty() {
                    meta.as_object_mut().map(|m| m.remove("annotations"));
                }
            }
        }
    }
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

fn revision_of(obj: &Value) -> i64 {
    annotation(obj, REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// A DNS-1123 subdomain check with Kubernetes' message.
fn dns1123_subdomain(name: &str) -> Vec<String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Vec::new()
    } else {
        vec!["a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into()]
    }
}

fn validate_workload(w: &Workload) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let kind = w.kind();
    let name = w.metadata().name.clone().unwrap_or_default();
    for reason in dns1123_subdomain(&name) {
        errs.push(FieldError::invalid("metadata.name", &name, reason));
    }
    let spec_path = kind.pod_spec_path();
    match w.pod_spec() {
        None => errs.push(FieldError::required(spec_path, "")),
        Some(spec) => {
            if spec.containers.is_empty() {
                errs.push(FieldError::required(format!("{spec_path}.containers"), ""));
            }
            let mut seen: Vec<&str> = Vec::new();
            for (r, c) in w.containers() {
                let at = format!("{spec_path}.{}[{}]", r.list(), r.index);
                if c.name.is_empty() {
                    errs.push(FieldError::required(format!("{at}.name"), ""));
                } else if seen.contains(&c.name.as_str()) {
                    errs.push(FieldError::duplicate(format!("{at}.name"), &c.name));
                } else {
                    seen.push(&c.name);
                }
                if c.image.as_deref().unwrap_or("").trim().is_empty() {
                    errs.push(FieldError::required(format!("{at}.image"), ""));
                }
            }
            if matches!(kind, WorkloadKind::Job | WorkloadKind::CronJob)
                && !matches!(spec.restart_policy.as_deref(), Some("OnFailure" | "Never"))
            {
                errs.push(FieldError::not_supported(
                    format!("{spec_path}.restartPolicy"),
                    spec.restart_policy.clone().unwrap_or_default(),
                    &["OnFailure", "Never"],
                ));
            }
        }
    }
    let selector = match w {
        Workload::Deployment(d) => Some(&d.spec.selector),
        Workload::ReplicaSet(r) => Some(&r.spec.selector),
        Workload::StatefulSet(s) => Some(&s.spec.selector),
        Workload::DaemonSet(d) => Some(&d.spec.selector),
        _ => None,
    };
    if let Some(sel) = selector {
        let match_labels = sel.match_labels.clone().unwrap_or_default();
        let empty =
            match_labels.is_empty() && sel.match_expressions.as_ref().is_none_or(Vec::is_empty);
        if empty {
            errs.push(FieldError::required("spec.selector", ""));
        } else {
            let labels = w
                .template_metadata()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            let matches = match_labels.iter().all(|(k, v)| labels.get(k) == Some(v));
            if !matches {
                let rendered = labels
                    .iter()
                    .map(|(k, v)| format!("{k}:{v}"))
                    .collect::<Vec<_>>()
                    .join(",");
                errs.push(FieldError::invalid(
                    "spec.template.metadata.labels",
                    format!("map[{rendered}]"),
                    "`selector` does not match template `labels`",
                ));
            }
        }
    }
    if let Workload::CronJob(c) = w
        && c.spec.schedule.trim().is_empty()
    {
        errs.push(FieldError::required("spec.schedule", ""));
    }
    errs.extend(validate_triggers(w));
    errs
}

impl Strategy for Workloads {
    fn def(&self) -> &ResourceDef {
        &self.def
    }
    fn decode(&self, body: Value) -> Result<(Value, Vec<String>), String> {
        match self.kind {
            WorkloadKind::Pod => decode_as::<Pod>(body),
            WorkloadKind::Deployment => decode_as::<Deployment>(body),
            WorkloadKind::ReplicaSet => decode_as::<ReplicaSet>(body),
            WorkloadKind::StatefulSet => decode_as::<StatefulSet>(body),
            WorkloadKind::DaemonSet => decode_as::<DaemonSet>(body),
            WorkloadKind::Job => decode_as::<Job>(body),
            WorkloadKind::CronJob => decode_as::<CronJob>(body),
        }
    }
    fn table(&self) -> TableDef {
        workload_table(self.kind)
    }
    fn tracks_generation(&self) -> bool {
        self.kind != WorkloadKind::Pod
    }
    fn merge_keys(&self) -> MergeKeys {
        match self.kind {
            WorkloadKind::Pod => POD_KEYS,
            WorkloadKind::CronJob => CRONJOB_KEYS,
            _ => TEMPLATE_KEYS,
        }
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        with_defaults(self.kind, obj);
        if self.kind == WorkloadKind::Deployment {
            set_annotation(obj, REVISION_ANNOTATION, Some("1".into()));
        }
    }
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        with_defaults(self.kind, new);
        if self.kind == WorkloadKind::Deployment {
            // The revision is the server's: it moves when the pod template does.
            let old_rev = revision_of(old);
            let changed = new.pointer("/spec/template") != old.pointer("/spec/template");
            let rev = match (changed, annotation(old, REVISION_ANNOTATION)) {
                (true, _) => Some((old_rev + 1).to_string()),
                (false, Some(r)) => Some(r.to_string()),
                (false, None) => None,
            };
            set_annotation(new, REVISION_ANNOTATION, rev);
        }
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        match typed(self.kind, obj) {
            Some(w) => validate_workload(&w),
            None => vec![FieldError::invalid(
                "",
                "",
                format!("not a valid {}", self.kind),
            )],
        }
    }
}

/// A pod template's hash, as the `pod-template-hash` label carries it: a 32-bit hash of
/// the template (without that label) in Kubernetes' "safe" alphabet. The value differs
/// from the deployment controller's (which hashes Go's printing of the struct).
pub fn pod_template_hash(template: &Value) -> String {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    let bytes = serde_json::to_vec(&t).unwrap_or_default();
    let d = Sha256::digest(&bytes);
    let n = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    n.to_string()
        .bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

/// Whether `obj` names `uid` as its controller.
pub fn controlled_by(obj: &Value, uid: &str) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter().any(|r| {
                r.get("uid").and_then(Value::as_str) == Some(uid)
                    && r.get("controller").and_then(Value::as_bool) == Some(true)
            })
        })
}

/// Whether `a` and `b` differ at most in `managedFields` and `resourceVersion`.
fn same_but_bookkeeping(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("managedFields");
            m.remove("resourceVersion");
        }
        v
    };
    strip(a) == strip(b)
}

/// A workload kind served through [`StoredResource`], with the resolver run on create
/// and update and, for Deployments, the revision history kept as ReplicaSets.
pub struct WorkloadStorage {
    kind: WorkloadKind,
    inner: Arc<StoredResource>,
    streams: Arc<dyn RestStorage>,
    /// ReplicaSets, where Deployments keep their revisions.
    history: Option<Arc<StoredResource>>,
}

impl WorkloadStorage {
    /// Serves `kind` from `inner`, resolving through `streams`; Deployments record
    /// their revisions in `history`.
    pub fn new(
        kind: WorkloadKind,
        inner: Arc<StoredResource>,
        streams: Arc<dyn RestStorage>,
        history: Option<Arc<StoredResource>>,
    ) -> Self {
        WorkloadStorage {
            kind,
            inner,
            streams,
            history,
        }
    }

    fn refuse(&self, obj: &Value, res: &Resolution) -> Result<(), ApiError> {
        if res.failures.is_empty() {
            return Ok(());
        }
        let errors: Vec<FieldError> = res
            .failures
            .iter()
            .map(|f| FieldError::invalid(&f.field, &f.image, &f.message))
            .collect();
        Err(ApiError::invalid(
            &self.inner.def().group_resource(),
            self.kind.kind(),
            name_of(obj),
            &errors,
        ))
    }

    /// Runs the resolver over `obj` (old: `old`) and writes its rewrites into `obj`.
    fn resolve(
        &self,
        obj: &mut Value,
        old: Option<&Value>,
        namespace: &str,
        streams: &std::collections::HashMap<String, moor_api::image::ImageStream>,
    ) -> Result<(), ApiError> {
        let Some(mut w) = typed(self.kind, obj) else {
            return Ok(()); // validation reports it
        };
        let old_w = old.and_then(|o| typed(self.kind, o));
        let res = resolve_workload(&mut w, old_w.as_ref(), namespace, streams);
        if let Some(why) = res.skipped {
            tracing::debug!(kind = %self.kind, name = name_of(obj), why, "image lookup skipped");
        }
        self.refuse(obj, &res)?;
        let name = name_of(obj).to_string();
        for rw in &res.rewrites {
            if let Some(slot) = obj.pointer_mut(&rw.pointer) {
                tracing::info!(kind = %self.kind, %name, from = %rw.from, to = %rw.to, "image resolved");
                *slot = json!(rw.to);
            }
        }
        Ok(())
    }

    /// Records the current pod template of Deployment `deploy` as a revision: the
    /// ReplicaSet of that template carries the Deployment's revision; the others are
    /// scaled to 0; beyond `revisionHistoryLimit` the oldest are deleted.
    async fn record_revision(&self, deploy: &Value) -> Result<(), ApiError> {
        let Some(history) = &self.history else {
            return Ok(());
        };
        let (Some(ns), Some(uid)) = (
            deploy
                .pointer("/metadata/namespace")
                .and_then(Value::as_str),
            deploy.pointer("/metadata/uid").and_then(Value::as_str),
        ) else {
            return Ok(());
        };
        let name = name_of(deploy);
        let ctx = RequestContext::default();
        let template = deploy
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(json!({}));
        let hash = pod_template_hash(&template);
        let rs_name = format!("{name}-{hash}");
        let revision = annotation(deploy, REVISION_ANNOTATION)
            .unwrap_or("1")
            .to_string();
        let replicas = deploy
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let owned: Vec<Value> = history
            .list(&ctx, Some(ns), &ListOptions::default())
            .await?
            .items
            .into_iter()
            .filter(|rs| controlled_by(rs, uid))
            .collect();
        // The current revision carries the Deployment's annotations, as the deployment
        // controller copies them, so that a rollback brings them back too.
        let mut copied = serde_json::Map::new();
        if let Some(a) = deploy
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
        {
            for (k, v) in a {
                if !ANNOTATIONS_NOT_COPIED.contains(&k.as_str()) {
                    copied.insert(k.clone(), v.clone());
                }
            }
        }
        copied.insert(REVISION_ANNOTATION.into(), json!(revision));
        copied.insert(
            "deployment.kubernetes.io/desired-replicas".into(),
            json!(replicas.to_string()),
        );
        copied.insert(
            "deployment.kubernetes.io/max-replicas".into(),
            json!(replicas.to_string()),
        );
        let copied = Value::Object(copied);
        if !owned.iter().any(|rs| name_of(rs) == rs_name) {
            let mut t = template.clone();
            t["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL] = json!(hash);
            let mut selector = deploy
                .pointer("/spec/selector")
                .cloned()
                .unwrap_or(json!({}));
            selector["matchLabels"][POD_TEMPLATE_HASH_LABEL] = json!(hash);
            let rs = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name, "namespace": ns,
                    "labels": t["metadata"]["labels"].clone(),
                    "annotations": copied.clone(),
                    "ownerReferences": [{
                        "apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": uid,
                        "controller": true, "blockOwnerDeletion": true,
                    }],
                },
                "spec": {"replicas": replicas, "selector": selector, "template": t},
            });
            match history.create(&ctx, Some(ns), rs).await {
                Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        for rs in &owned {
            let current = name_of(rs) == rs_name;
            let revision = revision.clone();
            let copied = copied.clone();
            let step = move |cur: Option<Value>| -> Result<Value, ApiError> {
                let mut v = cur.ok_or_else(|| ApiError::internal("replica set vanished"))?;
                v["spec"]["replicas"] = json!(if current { replicas } else { 0 });
                if current {
                    let old = annotation(&v, REVISION_ANNOTATION)
                        .unwrap_or("")
                        .to_string();
                    let history = annotation(&v, REVISION_HISTORY_ANNOTATION).map(str::to_string);
                    v["metadata"]["annotations"] = copied.clone();
                    if let Some(h) = history {
                        set_annotation(&mut v, REVISION_HISTORY_ANNOTATION, Some(h));
                    }
                    set_annotation(&mut v, REVISION_ANNOTATION, Some(old.clone()));
                    if old != revision {
                        if !old.is_empty() {
                            let mut hist: Vec<String> = annotation(&v, REVISION_HISTORY_ANNOTATION)
                                .map(|h| h.split(',').map(str::to_string).collect())
                                .unwrap_or_default();
                            hist.push(old);
                            set_annotation(
                                &mut v,
                                REVISION_HISTORY_ANNOTATION,
                                Some(hist.join(",")),
                            );
                        }
                        set_annotation(&mut v, REVISION_ANNOTATION, Some(revision.clone()));
                    }
                }
                Ok(crate::apiserver::stored::unconditional(v))
            };
            match history
                .update(&ctx, Some(ns), name_of(rs), None, &step, false)
                .await
            {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        // Old revisions beyond the limit go, oldest first.
        let limit = deploy
            .pointer("/spec/revisionHistoryLimit")
            .and_then(Value::as_i64)
            .unwrap_or(10)
            .max(0) as usize;
        let mut old: Vec<&Value> = owned.iter().filter(|rs| name_of(rs) != rs_name).collect();
        old.sort_by_key(|rs| revision_of(rs));
        let excess = old.len().saturating_sub(limit);
        for rs in old.into_iter().take(excess) {
            match history
                .delete(&ctx, Some(ns), name_of(rs), &DeletePreconditions::default())
                .await
            {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn after_write(&self, ctx: &RequestContext, obj: &Value) {
        if self.kind != WorkloadKind::Deployment || ctx.dry_run {
            return;
        }
        if let Err(e) = self.record_revision(obj).await {
            tracing::warn!(deployment = name_of(obj), error = %e, "recording the revision failed");
        }
    }
}

#[async_trait]
impl RestStorage for WorkloadStorage {
    fn def(&self) -> &ResourceDef {
        self.inner.def()
    }
    fn table(&self) -> TableDef {
        self.inner.table()
    }
    fn merge_keys(&self) -> MergeKeys {
        self.inner.merge_keys()
    }
    fn decode(&self, body: Value) -> Result<(Value, Vec<String>), ApiError> {
        self.inner.decode(body)
    }
    async fn get(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.inner.get(ctx, ns, name).await
    }
    async fn list(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ObjectList, ApiError> {
        self.inner.list(ctx, ns, opts).await
    }
    async fn create(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        let namespace = ns.unwrap_or("default");
        if let Some(w) = typed(self.kind, &obj) {
            let names = candidate_streams(&w);
            if !names.is_empty() {
                let streams =
                    crate::lookup::named_streams(self.streams.as_ref(), namespace, &names).await?;
                self.resolve(&mut obj, None, namespace, &streams)?;
            }
        }
        let created = self.inner.create(ctx, ns, obj).await?;
        self.after_write(ctx, &created).await;
        Ok(created)
    }
    async fn update(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        update: &UpdateFn<'_>,
        create_if_missing: bool,
    ) -> Result<(Value, bool), ApiError> {
        if subresource.is_some() {
            return self
                .inner
                .update(ctx, ns, name, subresource, update, create_if_missing)
                .await;
        }
        let namespace = ns.unwrap_or("default");
        // The step below is synchronous; the namespace's streams are read first.
        let streams = crate::lookup::namespace_streams(self.streams.as_ref(), namespace).await?;
        let step = |cur: Option<Value>| -> Result<Value, ApiError> {
            let mut new = update(cur.clone())?;
            self.resolve(&mut new, cur.as_ref(), namespace, &streams)?;
            // Managed fields were recorded before the resolver ran: a short name that
            // resolves to the image already stored is no change, not a new owner entry.
            if let Some(cur) = &cur
                && same_but_bookkeeping(&new, cur)
                && let Some(mf) = cur.pointer("/metadata/managedFields")
            {
                new["metadata"]["managedFields"] = mf.clone();
            }
            Ok(new)
        };
        let (out, created) = self
            .inner
            .update(ctx, ns, name, None, &step, create_if_missing)
            .await?;
        self.after_write(ctx, &out).await;
        Ok((out, created))
    }
    async fn delete(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        name: &str,
        pre: &DeletePreconditions,
    ) -> Result<Value, ApiError> {
        let out = self.inner.delete(ctx, ns, name, pre).await?;
        // Deleting a Deployment deletes its ReplicaSets (Kubernetes' garbage collector).
        if let (Some(history), Some(uid), false) = (
            &self.history,
            out.pointer("/metadata/uid").and_then(Value::as_str),
            ctx.dry_run,
        ) {
            let owned = history.list(ctx, ns, &ListOptions::default()).await?.items;
            for rs in owned.iter().filter(|rs| controlled_by(rs, uid)) {
                match history
                    .delete(ctx, ns, name_of(rs), &DeletePreconditions::default())
                    .await
                {
                    Ok(_) | Err(ApiError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }
    async fn watch(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<WatchEvents, ApiError> {
        self.inner.watch(ctx, ns, opts).await
    }
}

/// Every workload storage; `streams` is where the resolver reads image streams.
pub fn all(
    store: Arc<dyn moor_store::Store>,
    config: &crate::apiserver::ApiConfig,
    streams: Arc<dyn RestStorage>,
) -> Vec<Arc<dyn RestStorage>> {
    let stored = |kind: WorkloadKind| {
        Arc::new(StoredResource::new(
            store.clone(),
            Arc::new(Workloads::new(kind)),
            config.serving.clone(),
        ))
    };
    let replicasets = stored(WorkloadKind::ReplicaSet);
    WorkloadKind::ALL
        .into_iter()
        .map(|kind| {
            let inner = if kind == WorkloadKind::ReplicaSet {
                replicasets.clone()
            } else {
                stored(kind)
            };
            let history = (kind == WorkloadKind::Deployment).then(|| replicasets.clone());
            Arc::new(WorkloadStorage::new(kind, inner, streams.clone(), history))
                as Arc<dyn RestStorage>
        })
        .collect()
}
