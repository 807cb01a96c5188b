//! `imagestreamimages`: `stream@digest`, an image of a stream's history.

use std::sync::Arc;

use async_trait::async_trait;
use moor_api::image::ImageStream;
use serde_json::Value;

use super::imagestreamtags::ImageStreamTags;
use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::*;
use moor_apimachinery::table::TableDef;

fn isimage_def() -> ResourceDef {
    ResourceDef {
        group: "image.openshift.io",
        version: "v1",
        kind: "ImageStreamImage",
        list_kind: "ImageStreamImageList",
        plural: "imagestreamimages",
        singular: "imagestreamimage",
        short_names: &["isimage"],
        categories: &[],
        namespaced: true,
        verbs: &["get"],
        subresources: &[],
        selectable_fields: &[],
    }
}

/// ImageStreamImages: `<stream>@<digest or unique digest prefix>`, an image from the
/// stream's history. An ambiguous prefix is a 409 Conflict naming the matches, as in
/// OpenShift.
pub struct ImageStreamImages {
    def: ResourceDef,
    tags: Arc<ImageStreamTags>,
}

impl ImageStreamImages {
    /// The view over `tags`' streams and images.
    pub fn new(tags: Arc<ImageStreamTags>) -> Self {
        ImageStreamImages {
            def: isimage_def(),
            tags,
        }
    }
}

/// The history entries of `stream` whose image matches `id` (a digest or a prefix,
/// with or without `sha256:`), one per distinct image.
pub fn matching_images(stream: &ImageStream, id: &str) -> Vec<moor_api::image::TagEvent> {
    let mut out: Vec<moor_api::image::TagEvent> = Vec::new();
    for e in stream.status.tags.iter().flat_map(|t| t.items.iter()) {
        let hex = e.image.split_once(':').map(|(_, h)| h).unwrap_or(&e.image);
        let matches = e.image.starts_with(id) || (!id.contains(':') && hex.starts_with(id));
        if matches && !e.image.is_empty() && !out.iter().any(|o| o.image == e.image) {
            out.push(e.clone());
        }
    }
    out
}

#[async_trait]
impl RestStorage for ImageStreamImages {
    fn def(&self) -> &ResourceDef {
        &self.def
    }
    fn table(&self) -> TableDef {
        TableDef::default_columns()
    }
    async fn get(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let gr = self.def.group_resource();
        let (stream_name, id) = name
            .split_once('@')
            .filter(|(s, i)| !s.is_empty() && i.len() >= 3)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{name:?} must be <stream>@<image digest or a prefix of at least 3 characters>"
                ))
            })?;
        let not_found = || ApiError::NotFound {
            gr: gr.clone(),
            name: name.to_string(),
        };
        let stream = self
            .tags
            .stream(ctx, ns, stream_name)
            .await?
            .ok_or_else(not_found)?;
        let found = matching_images(&stream, id);
        let event = match found.as_slice() {
            [] => return Err(not_found()),
            [one] => one.clone(),
            many => {
                return Err(ApiError::Conflict {
                    gr,
                    name: name.to_string(),
                    message: format!(
                        "multiple images match the prefix {id:?}: {}",
                        many.iter()
                            .map(|e| e.image.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        };
        let mut image = self.tags.image(&event.image).await.unwrap_or_default();
        image.metadata.name = Some(event.image.clone());
        image.docker_image_manifest = String::new();
        image.docker_image_config = String::new();
        image.docker_image_reference = event.docker_image_reference.clone();
        let mut isi = moor_api::image::ImageStreamImage::default();
        isi.metadata.name = Some(format!("{stream_name}@{}", event.image));
        isi.metadata.namespace = stream.metadata.namespace.clone();
        isi.metadata.uid = stream.metadata.uid.clone();
        isi.metadata.creation_timestamp = event.created.clone();
        isi.image = image;
        serde_json::to_value(&isi).map_err(ApiError::internal)
    }
}
