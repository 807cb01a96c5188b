//! The OpenAPI schemas of every kind moor serves, for `/openapi/v2` and `/openapi/v3`
//! (and so for `kubectl explain` and kubectl's strategic merge patches): built-in kinds
//! from k8s-openapi's `schemars` impls, image.openshift.io and moor.io kinds from the
//! API types' derives (their doc comments carry OpenShift's field descriptions). Built
//! once, when the server is made. Calls only `moor_api` and `moor_apimachinery`.

use k8s_openapi::api::{apps, authentication, authorization, batch, core, rbac};
use moor_api::image;
use moor_apimachinery::openapi::{K8S_EXTENSIONS, SchemaCatalog, SchemaSet};

/// The schema catalog of every kind moor may serve.
pub fn catalog() -> SchemaCatalog {
    let mut s = SchemaSet::new();
    s.add_resource::<core::v1::Namespace>();
    s.add_resource::<core::v1::Secret>();
    s.add_resource::<core::v1::ConfigMap>();
    s.add_resource::<core::v1::Event>();
    s.add_resource::<core::v1::ServiceAccount>();
    s.add_resource::<core::v1::Pod>();
    s.add_resource::<apps::v1::Deployment>();
    s.add_resource::<apps::v1::ReplicaSet>();
    s.add_resource::<apps::v1::StatefulSet>();
    s.add_resource::<apps::v1::DaemonSet>();
    s.add_resource::<batch::v1::Job>();
    s.add_resource::<batch::v1::CronJob>();
    s.add_resource::<rbac::v1::Role>();
    s.add_resource::<rbac::v1::ClusterRole>();
    s.add_resource::<rbac::v1::RoleBinding>();
    s.add_resource::<rbac::v1::ClusterRoleBinding>();
    s.add_resource::<authorization::v1::SubjectAccessReview>();
    s.add_resource::<authorization::v1::SelfSubjectAccessReview>();
    s.add_resource::<authorization::v1::LocalSubjectAccessReview>();
    s.add_resource::<authorization::v1::SelfSubjectRulesReview>();
    s.add_resource::<authentication::v1::TokenReview>();
    s.add_resource::<authentication::v1::SelfSubjectReview>();
    s.add_resource::<image::ImageStream>();
    s.add_resource::<image::ImageStreamTag>();
    s.add_resource::<image::ImageStreamImage>();
    s.add_resource::<image::ImageStreamImport>();
    s.add_resource::<image::ImageStreamMapping>();
    s.add_resource::<image::Image>();
    s.add_resource::<moor_api::scheduled::ScheduledImport>();
    s.add_resource::<moor_api::config::ImagePolicy>();
    s.add_resource::<moor_api::config::ClusterImagePolicy>();
    s.add_resource::<moor_api::notification::Notification>();
    s.add::<moor_api::prune::ImagePrune>(
        moor_api::scheduled::GROUP,
        moor_api::scheduled::VERSION,
        "ImagePrune",
    );
    s.finish(&[K8S_EXTENSIONS])
}
