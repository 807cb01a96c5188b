//! Image stream mappings: an image and the tag it lands on, as a push to the registry
//! or `POST .../imagestreammappings` gives them. The image is stored (when new) and a
//! tag event is added to the stream's history by OpenShift's rule; a push also creates
//! the stream when it is missing. Calls the importer's storages.

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use moor_api::image::history::add_tag_event;
use moor_api::image::{Image, ImageStream, ImageStreamMapping, TagEvent};
use serde_json::{Value, json};

use super::{Importer, ctx, typed};
use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::{RequestContext, ResourceDef, RestStorage};
use moor_apimachinery::stored::unconditional;
use moor_apimachinery::table::TableDef;

impl Importer {
    /// Stores `image` and adds it to `tag` of stream `ns/name`; with
    /// `create_stream`, a missing stream is created first (a push), else a missing
    /// stream is NotFound (the mapping API, as OpenShift). Returns the stream written.
    pub async fn map_image(
        &self,
        ns: &str,
        name: &str,
        tag: &str,
        image: &Image,
        create_stream: bool,
    ) -> Result<Value, ApiError> {
        self.store_images(std::slice::from_ref(image)).await?;
        if create_stream {
            let stream = json!({
                "apiVersion": "image.openshift.io/v1",
                "kind": "ImageStream",
                "metadata": {"name": name, "namespace": ns},
            });
            match self.streams.create(&ctx(), Some(ns), stream).await {
                Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let event = TagEvent {
            created: Some(Time(jiff::Timestamp::now())),
            docker_image_reference: image.docker_image_reference.clone(),
            image: image.metadata.name.clone().unwrap_or_default(),
            ..Default::default()
        };
        let f = |cur: Option<&Value>| -> Result<Value, ApiError> {
            let cur = cur.ok_or_else(|| super::stream_not_found(name))?;
            let mut stream: ImageStream = typed(cur)?;
            add_tag_event(&mut stream, tag, event.clone());
            Ok(unconditional(
                serde_json::to_value(&stream).map_err(ApiError::internal)?,
            ))
        };
        let (written, _) = self
            .streams
            .update(&ctx(), Some(ns), name, Some("status"), &f, false)
            .await?;
        Ok(written)
    }
}

/// `imagestreammappings`: create-only. Records `image` under `tag` of the existing
/// stream `metadata.name` and answers with a `Status` of `Success`, as OpenShift does.
pub struct ImageStreamMappings {
    def: ResourceDef,
    importer: Arc<Importer>,
}

impl ImageStreamMappings {
    /// The resource over `importer`'s storages.
    pub fn new(importer: Arc<Importer>) -> Self {
        ImageStreamMappings {
            def: ResourceDef {
                group: "image.openshift.io",
                version: "v1",
                kind: "ImageStreamMapping",
                list_kind: "ImageStreamMappingList",
                plural: "imagestreammappings",
                singular: "imagestreammapping",
                short_names: &[],
                categories: &[],
                namespaced: true,
                verbs: &["create"],
                subresources: &[],
                selectable_fields: &[],
            },
            importer,
        }
    }
}

#[async_trait]
impl RestStorage for ImageStreamMappings {
    fn def(&self) -> &ResourceDef {
        &self.def
    }
    fn table(&self) -> TableDef {
        TableDef::default_columns()
    }
    fn decode(&self, body: Value) -> Result<(Value, Vec<String>), ApiError> {
        moor_apimachinery::codec::decode_image_kind::<ImageStreamMapping>(
            body,
            "ImageStreamMapping",
        )
    }
    async fn create(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        obj: Value,
    ) -> Result<Value, ApiError> {
        let ns = ns.ok_or(ApiError::MethodNotAllowed)?;
        let mut mapping: ImageStreamMapping =
            serde_json::from_value(obj).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        mapping.metadata.namespace = Some(ns.to_string());
        let name = mapping.metadata.name.clone().unwrap_or_default();
        let errors = moor_api::validation::validate_image_stream_mapping(&mapping);
        if !errors.is_empty() {
            return Err(ApiError::invalid(
                &self.def.group_resource(),
                "ImageStreamMapping",
                &name,
                &errors,
            ));
        }
        // The stream must exist (NotFound otherwise), even for a dry run.
        self.importer.streams.get(ctx, Some(ns), &name).await?;
        if !ctx.dry_run {
            self.importer
                .map_image(ns, &name, &mapping.tag, &mapping.image, false)
                .await?;
        }
        Ok(json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
        }))
    }
}
