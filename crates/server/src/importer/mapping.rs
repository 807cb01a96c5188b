//! Image stream mappings: an image and the tag it lands on, as a push to the registry
//! or `POST .../imagestreammappings` gives them. The image is stored (when new) and a
//! tag event is added to the stream's history by OpenShift's rule; a push also creates
//! the stream when it is missing. Calls the importer's storages.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use moor_api::image::history::add_tag_event;
use moor_api::image::{Image, ImageStream, TagEvent};
use serde_json::{Value, json};

use super::{Importer, ctx, typed};
use crate::apiserver::error::ApiError;
use crate::apiserver::stored::unconditional;

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
        let f = |cur: Option<Value>| -> Result<Value, ApiError> {
            let cur = cur.ok_or_else(|| ApiError::NotFound {
                gr: crate::apiserver::resource::GroupResource::new(
                    "image.openshift.io",
                    "imagestreams",
                ),
                name: name.to_string(),
            })?;
            let mut stream: ImageStream = typed(&cur)?;
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
