//! `imagestreamtags`: a view over a stream and its images, as openshift-apiserver
//! serves it.

use std::sync::Arc;

use async_trait::async_trait;
use moor_api::image::{
    ApplyDefaults, Image, ImageStream, ImageStreamTag, TagReference, join_image_stream_tag,
    parse_image_stream_tag_name,
};
use moor_api::validation::{self, FieldError};
use moor_store::Store;
use serde_json::{Value, json};

use super::images::Images;
use super::{ago, sorted_tags, typed};
use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::*;
use moor_apimachinery::stored::{StoredResource, object_key, unconditional};
use moor_apimachinery::table::{Column, TableDef, name_column, name_of};

pub(super) fn istag_def() -> ResourceDef {
    ResourceDef {
        group: "image.openshift.io",
        version: "v1",
        kind: "ImageStreamTag",
        list_kind: "ImageStreamTagList",
        plural: "imagestreamtags",
        singular: "imagestreamtag",
        short_names: &["istag"],
        categories: &[],
        namespaced: true,
        verbs: &["create", "delete", "get", "list", "patch", "update"],
        subresources: &[],
        selectable_fields: &[],
    }
}

/// ImageStreamTags: `<stream>:<tag>`, a view over the stream's spec and status tag
/// and the tag's current Image. Writes change the stream's spec tag.
pub struct ImageStreamTags {
    pub(super) def: ResourceDef,
    pub(super) streams: Arc<StoredResource>,
    pub(super) store: Arc<dyn Store>,
}

impl ImageStreamTags {
    fn gr(&self) -> GroupResource {
        self.def.group_resource()
    }

    fn split<'a>(&self, name: &'a str) -> Result<(&'a str, &'a str), ApiError> {
        parse_image_stream_tag_name(name).map_err(|e| ApiError::BadRequest(e.to_string()))
    }

    pub(super) async fn image(&self, name: &str) -> Option<Image> {
        let def = Images::new();
        let kv = self
            .store
            .get(&object_key(&def.0, None, name))
            .await
            .ok()??;
        serde_json::from_slice(&kv.value).ok()
    }

    /// Builds the istag view of `tag` in `stream`; `None` when the tag has no image
    /// and `allow_empty` is false.
    async fn view(
        &self,
        stream: &ImageStream,
        tag: &str,
        allow_empty: bool,
    ) -> Option<ImageStreamTag> {
        let event = stream
            .latest_tagged_image(tag)
            .filter(|e| !e.image.is_empty())
            .cloned();
        if event.is_none() && !allow_empty {
            return None;
        }
        let mut ist = ImageStreamTag::default();
        ist.metadata.name = Some(join_image_stream_tag(
            stream.metadata.name.as_deref().unwrap_or(""),
            tag,
        ));
        ist.metadata.namespace = stream.metadata.namespace.clone();
        ist.metadata.resource_version = stream.metadata.resource_version.clone();
        ist.metadata.uid = stream.metadata.uid.clone();
        ist.metadata.labels = stream.metadata.labels.clone();
        ist.metadata.creation_timestamp = event
            .as_ref()
            .and_then(|e| e.created.clone())
            .or_else(|| stream.metadata.creation_timestamp.clone());
        ist.lookup_policy = stream.spec.lookup_policy.clone();
        ist.conditions = stream
            .status_tag(tag)
            .map(|t| t.conditions.clone())
            .unwrap_or_default();
        ist.generation = event.as_ref().map(|e| e.generation).unwrap_or(0);
        if let Some(spec) = stream.spec_tag(tag) {
            ist.tag = Some(spec.clone());
            if let Some(ann) = &spec.annotations {
                ist.metadata.annotations = Some(ann.clone());
            }
        }
        if let Some(e) = &event {
            let mut image = self.image(&e.image).await.unwrap_or_default();
            image.metadata.name = Some(e.image.clone());
            image.docker_image_manifest = String::new();
            image.docker_image_config = String::new();
            // Under referencePolicy Local the image is pulled through moor's registry.
            image.docker_image_reference = local_reference(stream, tag, &e.image)
                .unwrap_or_else(|| e.docker_image_reference.clone());
            ist.image = image;
        }
        Some(ist)
    }

    pub(super) async fn stream(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Option<ImageStream>, ApiError> {
        match self.streams.get(ctx, ns, name).await {
            Ok(v) => Ok(typed::<ImageStream>(&v)),
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The istag view of `tag` in a stream just written through the streams storage.
    async fn written_view(&self, stream_value: &Value, tag: &str) -> Result<Value, ApiError> {
        let stream = typed::<ImageStream>(stream_value)
            .ok_or_else(|| ApiError::internal_message("stream does not decode"))?;
        let ist = self
            .view(&stream, tag, true)
            .await
            .ok_or_else(|| ApiError::internal_message("tag vanished"))?;
        Self::to_value(&ist)
    }

    fn to_value(ist: &ImageStreamTag) -> Result<Value, ApiError> {
        serde_json::to_value(ist).map_err(ApiError::internal)
    }
}

#[async_trait]
impl RestStorage for ImageStreamTags {
    fn def(&self) -> &ResourceDef {
        &self.def
    }

    fn table(&self) -> TableDef {
        TableDef {
            columns: vec![
                name_column(),
                Column {
                    name: "Image Reference",
                    kind: "string",
                    format: "",
                    description: "The pull spec of the tag's image",
                    priority: 0,
                },
                Column {
                    name: "Updated",
                    kind: "string",
                    format: "",
                    description: "When the tag last changed",
                    priority: 0,
                },
                Column {
                    name: "Image Name",
                    kind: "string",
                    format: "",
                    description: "The image's digest",
                    priority: 1,
                },
            ],
            row: Arc::new(|o| {
                vec![
                    json!(name_of(o)),
                    o.pointer("/image/dockerImageReference")
                        .cloned()
                        .unwrap_or(json!("")),
                    json!(ago(o
                        .pointer("/metadata/creationTimestamp")
                        .and_then(Value::as_str))),
                    o.pointer("/image/metadata/name")
                        .cloned()
                        .unwrap_or(json!("")),
                ]
            }),
        }
    }

    fn decode(&self, body: Value) -> Result<(Value, Vec<String>), ApiError> {
        moor_apimachinery::codec::decode_image_kind::<ImageStreamTag>(body, "ImageStreamTag")
    }

    async fn get(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let (stream_name, tag) = self.split(name)?;
        let not_found = || ApiError::NotFound {
            gr: self.gr(),
            name: name.into(),
        };
        let stream = self
            .stream(ctx, ns, stream_name)
            .await?
            .ok_or_else(not_found)?;
        let ist = self.view(&stream, tag, false).await.ok_or_else(not_found)?;
        Self::to_value(&ist)
    }

    async fn list(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ObjectList, ApiError> {
        let streams = self
            .streams
            .list(
                ctx,
                ns,
                &ListOptions {
                    label_selector: opts.label_selector.clone(),
                    ..Default::default()
                },
            )
            .await?;
        let mut items = Vec::new();
        for v in &streams.items {
            let Some(stream) = typed::<ImageStream>(v) else {
                continue;
            };
            for t in sorted_tags(&stream) {
                if let Some(ist) = self.view(&stream, &t, false).await {
                    let value = Self::to_value(&ist)?;
                    if opts.field_selector.matches_object(&value) {
                        items.push(value);
                    }
                }
            }
        }
        Ok(ObjectList {
            items,
            resource_version: streams.resource_version,
            ..Default::default()
        })
    }

    async fn create(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        obj: Value,
    ) -> Result<Value, ApiError> {
        let ist: ImageStreamTag =
            serde_json::from_value(obj).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let name = ist.metadata.name.clone().unwrap_or_default();
        let (stream_name, tag) = self.split(&name)?;
        let Some(mut tag_ref) = ist.tag.clone() else {
            return Err(ApiError::invalid(
                &self.gr(),
                "ImageStreamTag",
                &name,
                &[FieldError::required("tag", "tag is required")],
            ));
        };
        tag_ref.name = tag.to_string();
        tag_ref.apply_defaults();
        let tag_errors =
            validation::validate_tag_reference(&tag_ref, &validation::FieldPath::new("tag"));
        if !tag_errors.is_empty() {
            return Err(ApiError::invalid(
                &self.gr(),
                "ImageStreamTag",
                &name,
                &tag_errors,
            ));
        }
        let lookup = ist.lookup_policy.clone();
        let gr = self.gr();
        let name2 = name.clone();
        let f = move |cur: Option<&Value>| -> Result<Value, ApiError> {
            let mut stream = match cur {
                Some(v) => typed::<ImageStream>(v)
                    .ok_or_else(|| ApiError::internal_message("stored stream does not decode"))?,
                None => {
                    let mut s = ImageStream::default();
                    s.metadata.name = Some(stream_name.to_string());
                    s
                }
            };
            if stream.spec_tag(tag).is_some() {
                return Err(ApiError::AlreadyExists {
                    gr: gr.clone(),
                    name: name2.clone(),
                });
            }
            stream.spec.tags.push(tag_ref.clone());
            if lookup.local {
                stream.spec.lookup_policy = lookup.clone();
            }
            Ok(unconditional(
                serde_json::to_value(&stream).map_err(ApiError::internal)?,
            ))
        };
        let (stream_value, _) = self
            .streams
            .update(ctx, ns, stream_name, None, &f, true)
            .await?;
        self.written_view(&stream_value, tag).await
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
            return Err(ApiError::NoRoute);
        }
        let (stream_name, tag) = self.split(name)?;
        let current = match self.stream(ctx, ns, stream_name).await? {
            Some(s) => self.view(&s, tag, true).await.filter(|ist| {
                ist.tag.is_some() || !ist.image.metadata.name.as_deref().unwrap_or("").is_empty()
            }),
            None => None,
        };
        let Some(current) = current else {
            if !create_if_missing {
                return Err(ApiError::NotFound {
                    gr: self.gr(),
                    name: name.into(),
                });
            }
            let obj = update(None)?;
            return self.create(ctx, ns, obj).await.map(|v| (v, true));
        };
        let current_value = Self::to_value(&current)?;
        let new_value = update(Some(&current_value))?;
        let new: ImageStreamTag =
            serde_json::from_value(new_value).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let precondition = new
            .metadata
            .resource_version
            .clone()
            .filter(|rv| !rv.is_empty());
        let gr = self.gr();
        let name_owned = name.to_string();
        let tag_ref: Option<TagReference> = new.tag.clone().map(|mut t| {
            t.name = tag.to_string();
            t.apply_defaults();
            t
        });
        if let Some(t) = &tag_ref {
            let errs = validation::validate_tag_reference(t, &validation::FieldPath::new("tag"));
            if !errs.is_empty() {
                return Err(ApiError::invalid(&gr, "ImageStreamTag", name, &errs));
            }
        }
        let lookup = new.lookup_policy.clone();
        let f = move |cur: Option<&Value>| -> Result<Value, ApiError> {
            let cur = cur.ok_or_else(|| ApiError::NotFound {
                gr: gr.clone(),
                name: name_owned.clone(),
            })?;
            let mut stream = typed::<ImageStream>(cur)
                .ok_or_else(|| ApiError::internal_message("stored stream does not decode"))?;
            if let Some(rv) = &precondition
                && stream.metadata.resource_version.as_ref() != Some(rv)
            {
                return Err(ApiError::stale(&gr, &name_owned));
            }
            match &tag_ref {
                Some(t) => match stream.spec_tag_mut(tag) {
                    Some(existing) => *existing = t.clone(),
                    None => stream.spec.tags.push(t.clone()),
                },
                None => stream.spec.tags.retain(|t| t.name != tag),
            }
            stream.spec.lookup_policy = lookup.clone();
            Ok(unconditional(
                serde_json::to_value(&stream).map_err(ApiError::internal)?,
            ))
        };
        let (stream_value, _) = self
            .streams
            .update(ctx, ns, stream_name, None, &f, false)
            .await?;
        Ok((self.written_view(&stream_value, tag).await?, false))
    }

    async fn delete(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        name: &str,
        pre: &DeletePreconditions,
    ) -> Result<Value, ApiError> {
        let (stream_name, tag) = self.split(name)?;
        let exists = self
            .stream(ctx, ns, stream_name)
            .await?
            .is_some_and(|s| s.spec_tag(tag).is_some() || s.status_tag(tag).is_some());
        if !exists {
            return Err(ApiError::NotFound {
                gr: self.gr(),
                name: name.into(),
            });
        }
        let gr = self.gr();
        let name_owned = name.to_string();
        let rv = pre.resource_version.clone();
        let f = move |cur: Option<&Value>| -> Result<Value, ApiError> {
            let cur = cur.ok_or_else(|| ApiError::NotFound {
                gr: gr.clone(),
                name: name_owned.clone(),
            })?;
            let mut stream = typed::<ImageStream>(cur)
                .ok_or_else(|| ApiError::internal_message("stored stream does not decode"))?;
            if let Some(rv) = &rv
                && stream.metadata.resource_version.as_ref() != Some(rv)
            {
                return Err(ApiError::stale(&gr, &name_owned));
            }
            stream.spec.tags.retain(|t| t.name != tag);
            stream.status.tags.retain(|t| t.tag != tag);
            Ok(unconditional(
                serde_json::to_value(&stream).map_err(ApiError::internal)?,
            ))
        };
        // Spec and status both change: write the spec through the main resource and the
        // status through the status subresource, in that order.
        self.streams
            .update(ctx, ns, stream_name, None, &f, false)
            .await?;
        let no_precondition = |cur: Option<&Value>| -> Result<Value, ApiError> {
            let mut v = cur.cloned().ok_or_else(|| ApiError::NotFound {
                gr: self.gr(),
                name: name.into(),
            })?;
            if let Some(tags) = v.pointer_mut("/status/tags").and_then(Value::as_array_mut) {
                tags.retain(|t| t.get("tag").and_then(Value::as_str) != Some(tag));
            }
            Ok(v)
        };
        self.streams
            .update(
                ctx,
                ns,
                stream_name,
                Some("status"),
                &no_precondition,
                false,
            )
            .await?;
        Ok(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                  "details": {"name": name, "group": "image.openshift.io", "kind": "imagestreamtags"}}),
        )
    }

    async fn watch(
        &self,
        _ctx: &RequestContext,
        _ns: Option<&str>,
        _opts: &ListOptions,
    ) -> Result<WatchEvents, ApiError> {
        Err(ApiError::MethodNotAllowed)
    }
}

/// `<registry>/<ns>/<stream>@<image>` when `tag` has referencePolicy Local.
fn local_reference(stream: &ImageStream, tag: &str, image: &str) -> Option<String> {
    let local = stream
        .spec_tag(tag)
        .and_then(|t| t.reference_policy.type_.as_ref())
        .is_some_and(|p| *p == moor_api::image::TagReferencePolicyType::Local);
    if !local || stream.status.docker_image_repository.is_empty() {
        return None;
    }
    Some(format!("{}@{image}", stream.status.docker_image_repository))
}
