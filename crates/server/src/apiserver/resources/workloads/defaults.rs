//! Kubernetes' defaults for workloads and their pod specs, applied before storing.

use k8s_openapi::api::core::v1::PodSpec;
use moor_api::lookup::{Workload, WorkloadKind};
use serde_json::Value;

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

pub(super) fn typed(kind: WorkloadKind, v: &Value) -> Option<Workload> {
    Workload::from_value(kind, v.clone()).ok()
}

/// `obj` with the defaults of its kind applied (unchanged when it does not decode).
pub(super) fn with_defaults(kind: WorkloadKind, obj: &mut Value) {
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
