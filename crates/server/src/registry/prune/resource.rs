//! `imageprunes.moor.io/v1` as an ordinary resource of the API server: create only,
//! never stored (the answer is the ImagePrune with its `status`, as Kubernetes answers
//! a TokenReview). Registered by the composition root when the registry runs, so it
//! is in discovery and OpenAPI like every other resource.

use std::sync::Arc;

use async_trait::async_trait;
use moor_api::lookup::WorkloadKind;
use moor_api::prune::ImagePrune;
use serde_json::Value;

use super::{PruneError, run};
use crate::registry::Registry;
use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::*;
use moor_apimachinery::table::TableDef;

fn def() -> ResourceDef {
    ResourceDef {
        group: moor_api::scheduled::GROUP,
        version: moor_api::scheduled::VERSION,
        kind: "ImagePrune",
        list_kind: "ImagePruneList",
        plural: "imageprunes",
        singular: "imageprune",
        short_names: &[],
        categories: &[],
        namespaced: false,
        verbs: &["create"],
        subresources: &[],
        selectable_fields: &[],
    }
}

/// Garbage collection over `registry`; the workloads' images are pinned.
pub struct ImagePrunes {
    def: ResourceDef,
    registry: Arc<Registry>,
    workloads: Vec<(WorkloadKind, Arc<dyn RestStorage>)>,
}

impl ImagePrunes {
    /// Prunes `registry`, keeping what the objects of `workloads` (Deployments, Pods,
    /// ...) name.
    pub fn new(
        registry: Arc<Registry>,
        workloads: Vec<(WorkloadKind, Arc<dyn RestStorage>)>,
    ) -> Self {
        ImagePrunes {
            def: def(),
            registry,
            workloads,
        }
    }
}

#[async_trait]
impl RestStorage for ImagePrunes {
    fn def(&self) -> &ResourceDef {
        &self.def
    }
    fn table(&self) -> TableDef {
        TableDef::default_columns()
    }
    fn decode(&self, mut body: Value) -> Result<(Value, Vec<String>), ApiError> {
        if body.is_object() {
            body["apiVersion"] = Value::from(moor_api::scheduled::API_VERSION);
            body["kind"] = Value::from("ImagePrune");
        }
        moor_apimachinery::codec::decode_as::<ImagePrune>(body).map_err(|e| {
            ApiError::from(PruneError::BadRequest(format!(
                "the request is not an ImagePrune: {e}"
            )))
        })
    }
    async fn create(
        &self,
        ctx: &RequestContext,
        _ns: Option<&str>,
        obj: Value,
    ) -> Result<Value, ApiError> {
        let mut prune: ImagePrune = serde_json::from_value(obj).map_err(|e| {
            ApiError::from(PruneError::BadRequest(format!(
                "the request is not an ImagePrune: {e}"
            )))
        })?;
        // Not stored, so nothing is managed.
        prune.metadata.managed_fields = None;
        let dry_run = prune.spec.dry_run || ctx.dry_run;
        let status = run(&self.registry, &self.workloads, &prune.spec, dry_run).await?;
        prune.status = Some(status);
        serde_json::to_value(&prune).map_err(ApiError::internal)
    }
}
