//! The workload kinds whose pod templates image lookup and triggers act on, as
//! k8s-openapi types behind one enum ([`Workload`]), with the paths of their pod spec
//! and template metadata. IO-free.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

/// A kind of object that carries a pod spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadKind {
    /// core/v1 Pod.
    Pod,
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 ReplicaSet.
    ReplicaSet,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// batch/v1 Job.
    Job,
    /// batch/v1 CronJob.
    CronJob,
}

impl WorkloadKind {
    /// Every kind, in a stable order.
    pub const ALL: [WorkloadKind; 7] = [
        WorkloadKind::Pod,
        WorkloadKind::Deployment,
        WorkloadKind::ReplicaSet,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::Job,
        WorkloadKind::CronJob,
    ];

    /// The API group (`""` for core).
    pub fn group(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "",
            WorkloadKind::Job | WorkloadKind::CronJob => "batch",
            _ => "apps",
        }
    }

    /// The version served (`v1` for all of them).
    pub fn version(self) -> &'static str {
        "v1"
    }

    /// `apiVersion`: `v1`, `apps/v1` or `batch/v1`.
    pub fn api_version(self) -> &'static str {
        match self.group() {
            "" => "v1",
            "batch" => "batch/v1",
            _ => "apps/v1",
        }
    }

    /// The kind name.
    pub fn kind(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "Pod",
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
        }
    }

    /// The plural resource name.
    pub fn plural(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "pods",
            WorkloadKind::Deployment => "deployments",
            WorkloadKind::ReplicaSet => "replicasets",
            WorkloadKind::StatefulSet => "statefulsets",
            WorkloadKind::DaemonSet => "daemonsets",
            WorkloadKind::Job => "jobs",
            WorkloadKind::CronJob => "cronjobs",
        }
    }

    /// The kind of `group` and `kind` (any version), if it is a workload.
    pub fn from_group_kind(group: &str, kind: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.group() == group && k.kind() == kind)
    }

    /// The kind of `group` and plural `resource`, if it is a workload.
    pub fn from_group_resource(group: &str, resource: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.group() == group && k.plural() == resource)
    }

    /// The dotted path of the pod spec: `spec`, `spec.template.spec` or
    /// `spec.jobTemplate.spec.template.spec`.
    pub fn pod_spec_path(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "spec",
            WorkloadKind::CronJob => "spec.jobTemplate.spec.template.spec",
            _ => "spec.template.spec",
        }
    }

    /// The JSON pointer of the pod spec (`/spec/template/spec`).
    pub fn pod_spec_pointer(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "/spec",
            WorkloadKind::CronJob => "/spec/jobTemplate/spec/template/spec",
            _ => "/spec/template/spec",
        }
    }

    /// Whether objects of this kind have a pod template (all but Pods).
    pub fn has_template(self) -> bool {
        self != WorkloadKind::Pod
    }
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

/// One object with a pod spec, typed.
// Every variant is a few KiB; boxing the largest would not make the enum small.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs, clippy::large_enum_variant)]
pub enum Workload {
    Pod(Pod),
    Deployment(Deployment),
    ReplicaSet(ReplicaSet),
    StatefulSet(StatefulSet),
    DaemonSet(DaemonSet),
    Job(Job),
    CronJob(CronJob),
}

/// Which container of a pod spec: `containers[i]` or `initContainers[i]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRef {
    /// Whether it is an init container.
    pub init: bool,
    /// Its index in its list.
    pub index: usize,
    /// Its name.
    pub name: String,
}

impl ContainerRef {
    /// `containers` or `initContainers`.
    pub fn list(&self) -> &'static str {
        if self.init {
            "initContainers"
        } else {
            "containers"
        }
    }

    /// The dotted path of this container's `image` in a `kind` object
    /// (`spec.template.spec.containers[0].image`).
    pub fn image_field(&self, kind: WorkloadKind) -> String {
        format!(
            "{}.{}[{}].image",
            kind.pod_spec_path(),
            self.list(),
            self.index
        )
    }

    /// The JSON pointer of this container's `image` (`/spec/template/spec/containers/0/image`).
    pub fn image_pointer(&self, kind: WorkloadKind) -> String {
        format!(
            "{}/{}/{}/image",
            kind.pod_spec_pointer(),
            self.list(),
            self.index
        )
    }

    /// The JSON pointer of this container's `name`.
    pub fn name_pointer(&self, kind: WorkloadKind) -> String {
        format!(
            "{}/{}/{}/name",
            kind.pod_spec_pointer(),
            self.list(),
            self.index
        )
    }
}

macro_rules! each {
    ($w:expr, $o:ident => $e:expr) => {
        match $w {
            Workload::Pod($o) => $e,
            Workload::Deployment($o) => $e,
            Workload::ReplicaSet($o) => $e,
            Workload::StatefulSet($o) => $e,
            Workload::DaemonSet($o) => $e,
            Workload::Job($o) => $e,
            Workload::CronJob($o) => $e,
        }
    };
}

impl Workload {
    /// Decodes a `kind` object from JSON.
    pub fn from_value(kind: WorkloadKind, v: Value) -> Result<Self, serde_json::Error> {
        Ok(match kind {
            WorkloadKind::Pod => Workload::Pod(serde_json::from_value(v)?),
            WorkloadKind::Deployment => Workload::Deployment(serde_json::from_value(v)?),
            WorkloadKind::ReplicaSet => Workload::ReplicaSet(serde_json::from_value(v)?),
            WorkloadKind::StatefulSet => Workload::StatefulSet(serde_json::from_value(v)?),
            WorkloadKind::DaemonSet => Workload::DaemonSet(serde_json::from_value(v)?),
            WorkloadKind::Job => Workload::Job(serde_json::from_value(v)?),
            WorkloadKind::CronJob => Workload::CronJob(serde_json::from_value(v)?),
        })
    }

    /// The object as JSON (with `apiVersion` and `kind`).
    pub fn to_value(&self) -> Value {
        each!(self, o => serde_json::to_value(o)).unwrap_or(Value::Null)
    }

    /// Which kind this is.
    pub fn kind(&self) -> WorkloadKind {
        match self {
            Workload::Pod(_) => WorkloadKind::Pod,
            Workload::Deployment(_) => WorkloadKind::Deployment,
            Workload::ReplicaSet(_) => WorkloadKind::ReplicaSet,
            Workload::StatefulSet(_) => WorkloadKind::StatefulSet,
            Workload::DaemonSet(_) => WorkloadKind::DaemonSet,
            Workload::Job(_) => WorkloadKind::Job,
            Workload::CronJob(_) => WorkloadKind::CronJob,
        }
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        each!(self, o => &o.metadata)
    }

    /// The object's metadata, mutable.
    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        each!(self, o => &mut o.metadata)
    }

    /// The pod spec, if the object has one.
    pub fn pod_spec(&self) -> Option<&PodSpec> {
        match self {
            Workload::Pod(p) => p.spec.as_ref(),
            Workload::Deployment(d) => d.spec.template.spec.as_ref(),
            Workload::ReplicaSet(r) => r.spec.template.as_ref()?.spec.as_ref(),
            Workload::StatefulSet(s) => s.spec.template.spec.as_ref(),
            Workload::DaemonSet(d) => d.spec.template.spec.as_ref(),
            Workload::Job(j) => j.spec.as_ref()?.template.spec.as_ref(),
            Workload::CronJob(c) => c.spec.job_template.spec.as_ref()?.template.spec.as_ref(),
        }
    }

    /// The pod spec, mutable.
    pub fn pod_spec_mut(&mut self) -> Option<&mut PodSpec> {
        match self {
            Workload::Pod(p) => p.spec.as_mut(),
            Workload::Deployment(d) => d.spec.template.spec.as_mut(),
            Workload::ReplicaSet(r) => r.spec.template.as_mut()?.spec.as_mut(),
            Workload::StatefulSet(s) => s.spec.template.spec.as_mut(),
            Workload::DaemonSet(d) => d.spec.template.spec.as_mut(),
            Workload::Job(j) => j.spec.as_mut()?.template.spec.as_mut(),
            Workload::CronJob(c) => c.spec.job_template.spec.as_mut()?.template.spec.as_mut(),
        }
    }

    /// The metadata of the pod template (none for a Pod).
    pub fn template_metadata(&self) -> Option<&ObjectMeta> {
        match self {
            Workload::Pod(_) => None,
            Workload::Deployment(d) => d.spec.template.metadata.as_ref(),
            Workload::ReplicaSet(r) => r.spec.template.as_ref()?.metadata.as_ref(),
            Workload::StatefulSet(s) => s.spec.template.metadata.as_ref(),
            Workload::DaemonSet(d) => d.spec.template.metadata.as_ref(),
            Workload::Job(j) => j.spec.as_ref()?.template.metadata.as_ref(),
            Workload::CronJob(c) => c
                .spec
                .job_template
                .spec
                .as_ref()?
                .template
                .metadata
                .as_ref(),
        }
    }

    /// An annotation of the object.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata()
            .annotations
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }

    /// An annotation of the pod template (of the object itself for a Pod).
    pub fn template_annotation(&self, key: &str) -> Option<&str> {
        let meta = match self {
            Workload::Pod(p) => Some(&p.metadata),
            other => other.template_metadata(),
        };
        meta?.annotations.as_ref()?.get(key).map(String::as_str)
    }

    /// Whether a controller owns this object (`ownerReferences[].controller: true`).
    pub fn has_controller_owner(&self) -> bool {
        self.metadata()
            .owner_references
            .as_ref()
            .is_some_and(|refs| refs.iter().any(|r| r.controller == Some(true)))
    }

    /// Every container with its reference: init containers first, then containers.
    pub fn containers(&self) -> Vec<(ContainerRef, &Container)> {
        let Some(spec) = self.pod_spec() else {
            return Vec::new();
        };
        let init = spec
            .init_containers
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, c)| {
                (
                    ContainerRef {
                        init: true,
                        index: i,
                        name: c.name.clone(),
                    },
                    c,
                )
            });
        let main = spec.containers.iter().enumerate().map(|(i, c)| {
            (
                ContainerRef {
                    init: false,
                    index: i,
                    name: c.name.clone(),
                },
                c,
            )
        });
        init.chain(main).collect()
    }

    /// The container `r` points at, mutable.
    pub fn container_mut(&mut self, r: &ContainerRef) -> Option<&mut Container> {
        let spec = self.pod_spec_mut()?;
        if r.init {
            spec.init_containers.as_mut()?.get_mut(r.index)
        } else {
            spec.containers.get_mut(r.index)
        }
    }

    /// The container named `name`: init containers are searched first, as OpenShift does.
    pub fn container_by_name(&self, name: &str) -> Option<(ContainerRef, &Container)> {
        self.containers().into_iter().find(|(r, _)| r.name == name)
    }

    /// The image of the container named `name` (init containers first).
    pub fn image_of(&self, name: &str) -> Option<&str> {
        self.container_by_name(name)
            .and_then(|(_, c)| c.image.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_and_paths() {
        assert_eq!(
            WorkloadKind::from_group_kind("apps", "Deployment"),
            Some(WorkloadKind::Deployment)
        );
        assert_eq!(WorkloadKind::from_group_kind("", "Deployment"), None);
        assert_eq!(
            WorkloadKind::from_group_resource("batch", "cronjobs"),
            Some(WorkloadKind::CronJob)
        );
        let r = ContainerRef {
            init: false,
            index: 1,
            name: "x".into(),
        };
        assert_eq!(
            r.image_pointer(WorkloadKind::CronJob),
            "/spec/jobTemplate/spec/template/spec/containers/1/image"
        );
        assert_eq!(r.image_field(WorkloadKind::Pod), "spec.containers[1].image");
    }

    #[test]
    fn typed_access() {
        let v = json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "c", "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "u", "controller": true}]},
            "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {
                "metadata": {"annotations": {"a": "b"}},
                "spec": {"initContainers": [{"name": "i", "image": "busybox"}],
                         "containers": [{"name": "m", "image": "keycloak:20.0"}]}}}}}});
        let w = Workload::from_value(WorkloadKind::CronJob, v).unwrap();
        assert!(w.has_controller_owner());
        assert_eq!(w.template_annotation("a"), Some("b"));
        let cs = w.containers();
        assert_eq!(cs.len(), 2);
        assert!(cs[0].0.init);
        assert_eq!(w.image_of("m"), Some("keycloak:20.0"));
        assert_eq!(w.to_value()["kind"], "CronJob");
    }
}
