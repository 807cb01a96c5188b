//! Workloads in standalone mode: apps/v1 deployments, replicasets, statefulsets and
//! daemonsets, batch/v1 jobs and cronjobs, core/v1 pods. moor does not run containers:
//! these are records of what should run, kept so that `image: keycloak:20.0` can be
//! resolved, triggered and rolled back. On create and update the resolver
//! (`moor_api::lookup`) pins short names; the triggers annotation is validated; every
//! change of a Deployment's pod template records a revision (the
//! `deployment.kubernetes.io/revision` annotation and a ReplicaSet per template, as the
//! Kubernetes deployment controller keeps them). Strategies plus a storage wrapper.
//!
//! By concept: the strategy and wiring here, Table columns (`table`), defaulting
//! (`defaults`), validation (`validation`), and Deployment revisions kept as
//! ReplicaSets (`revisions`).

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use moor_api::lookup::WorkloadKind;
use moor_api::validation::FieldError;
use serde_json::Value;

use moor_apimachinery::codec::decode_as;
use moor_apimachinery::patch::MergeKeys;
use moor_apimachinery::resource::*;
use moor_apimachinery::stored::{StoredResource, Strategy};
use moor_apimachinery::table::TableDef;

mod defaults;
mod revisions;
mod table;
mod validation;

use defaults::{typed, with_defaults};
pub use revisions::{WorkloadStorage, controlled_by, pod_template_hash};
use revisions::{annotation, revision_of, set_annotation};
use table::workload_table;
use validation::validate_workload;

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
