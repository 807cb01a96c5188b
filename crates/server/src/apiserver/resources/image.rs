//! image.openshift.io/v1: imagestreams (stored, with `status`), images (stored,
//! cluster-scoped, named by digest) and imagestreamtags (a view over a stream and its
//! images, as openshift-apiserver serves it). Strategies and the istag view only.

use std::sync::Arc;

use async_trait::async_trait;
use moor_api::image::{
    ApplyDefaults, Image, ImageStream, ImageStreamTag, TagReference, join_image_stream_tag,
    parse_image_stream_tag_name, set_image_stream_defaults,
};
use moor_api::validation::{self, FieldError};
use moor_store::Store;
use serde_json::{Value, json};

use crate::apiserver::ApiConfig;
use crate::apiserver::codec::decode_as;
use crate::apiserver::error::ApiError;
use crate::apiserver::patch::MergeKeys;
use crate::apiserver::resource::*;
use crate::apiserver::stored::{StoredResource, Strategy, object_key, unconditional};
use crate::apiserver::table::{Column, TableDef, name_column, name_of};

/// Strategic-merge keys OpenShift declares for image streams.
pub const IMAGE_STREAM_MERGE_KEYS: MergeKeys =
    MergeKeys(&[("spec.tags", "name"), ("status.tags", "tag")]);

/// The served image.openshift.io resources and the importer that writes to them.
pub fn all(
    store: Arc<dyn Store>,
    config: &ApiConfig,
    source: Arc<dyn crate::importer::Source>,
    events: Arc<dyn RestStorage>,
    secrets: Arc<dyn RestStorage>,
) -> (Vec<Arc<dyn RestStorage>>, Arc<crate::importer::Importer>) {
    let streams = Arc::new(StoredResource::new(
        store.clone(),
        Arc::new(ImageStreams::new(&config.registry_hostname)),
        config.serving.clone(),
    ));
    let images = Arc::new(StoredResource::new(
        store.clone(),
        Arc::new(Images::new()),
        config.serving.clone(),
    ));
    let tags = Arc::new(ImageStreamTags {
        def: istag_def(),
        streams: streams.clone(),
        store,
    });
    let importer = Arc::new(crate::importer::Importer {
        source,
        streams: streams.clone(),
        images: images.clone(),
        events,
        secrets,
    });
    let imports = Arc::new(crate::importer::imports::ImageStreamImports::new(
        importer.clone(),
        config.max_images_bulk,
    ));
    let isimages = Arc::new(ImageStreamImages::new(tags.clone()));
    let mappings = Arc::new(crate::importer::mapping::ImageStreamMappings::new(
        importer.clone(),
    ));
    (
        vec![streams, images, tags, isimages, imports, mappings],
        importer,
    )
}

/// `"<duration> ago"` for an RFC 3339 time, or "" when absent.
pub fn ago(ts: Option<&str>) -> String {
    let Some(t) = ts.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return String::new();
    };
    let secs = jiff::Timestamp::now().as_second() - t.as_second();
    format!("{} ago", moor_api::humanize::human_duration(secs.max(0)))
}

/// The spec tags of `stream` whose ImageStreamImage source names this same stream by
/// a digest prefix, with the history entries that match it.
fn own_image_prefixes(
    stream: &ImageStream,
) -> Vec<(usize, String, Vec<moor_api::image::TagEvent>)> {
    let name = stream.metadata.name.as_deref().unwrap_or("");
    let mut out = Vec::new();
    for (i, t) in stream.spec.tags.iter().enumerate() {
        if t.from_kind() != moor_api::image::KIND_IMAGE_STREAM_IMAGE {
            continue;
        }
        let other_ns = t
            .from
            .as_ref()
            .and_then(|f| f.namespace.as_deref())
            .is_some_and(|n| !n.is_empty() && Some(n) != stream.metadata.namespace.as_deref());
        let Some((s, id)) = t.from_name().split_once('@') else {
            continue;
        };
        if s != name || other_ns || moor_api::Digest::parse(id).is_ok() {
            continue;
        }
        out.push((i, id.to_string(), matching_images(stream, id)));
    }
    out
}

/// Rollback by prefix (`stream@1a2b3c`): a prefix that names exactly one image of
/// this stream's own history becomes its full digest, as OpenShift resolves it.
fn resolve_own_image_prefixes(stream: &mut ImageStream) {
    let name = stream.metadata.name.clone().unwrap_or_default();
    for (i, _, matches) in own_image_prefixes(stream) {
        if let [one] = matches.as_slice()
            && let Some(from) = stream.spec.tags[i].from.as_mut()
        {
            from.name = Some(format!("{name}@{}", one.image));
        }
    }
}

/// Clear errors for own-history prefixes that match no image or several.
fn own_image_prefix_errors(stream: &ImageStream) -> Vec<FieldError> {
    own_image_prefixes(stream)
        .into_iter()
        .filter(|(_, _, m)| m.len() != 1)
        .map(|(i, id, m)| {
            let tag = &stream.spec.tags[i];
            let path = format!("spec.tags[{}].from.name", tag.name);
            let message = if m.is_empty() {
                format!("no image in the history of this stream matches {id:?}")
            } else {
                format!(
                    "multiple images match the prefix {id:?}: {}",
                    m.iter()
                        .map(|e| e.image.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            FieldError::invalid(path, tag.from_name(), message)
        })
        .collect()
}

/// Image streams.
pub struct ImageStreams {
    def: ResourceDef,
    registry_hostname: String,
}

impl ImageStreams {
    /// The strategy; `registry_hostname` feeds `status.dockerImageRepository`.
    pub fn new(registry_hostname: &str) -> Self {
        ImageStreams {
            def: ResourceDef {
                group: "image.openshift.io",
                version: "v1",
                kind: "ImageStream",
                list_kind: "ImageStreamList",
                plural: "imagestreams",
                singular: "imagestream",
                short_names: &["is"],
                categories: &["all"],
                namespaced: true,
                verbs: ALL_VERBS,
                subresources: &["status"],
                selectable_fields: &[],
            },
            registry_hostname: registry_hostname.to_string(),
        }
    }
}

fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> Option<T> {
    serde_json::from_value(v.clone()).ok()
}

fn write_back<T: serde::Serialize>(v: &mut Value, t: &T) {
    if let Ok(mut nv) = serde_json::to_value(t) {
        // Keep the server-managed metadata fields exactly as they were.
        if let (Some(old_meta), Some(new_meta)) =
            (v.get("metadata").cloned(), nv.get_mut("metadata"))
        {
            *new_meta = old_meta;
        }
        *v = nv;
    }
}

/// Sorts tags as oc does: `latest` first, then the rest in order.
fn sorted_tags(stream: &ImageStream) -> Vec<String> {
    let mut tags: Vec<String> = stream.status.tags.iter().map(|t| t.tag.clone()).collect();
    tags.sort();
    if let Some(i) = tags.iter().position(|t| t == "latest") {
        let latest = tags.remove(i);
        tags.insert(0, latest);
    }
    tags
}

fn tags_up_to_width(tags: &[String], width: usize) -> String {
    let mut out = String::new();
    for (i, t) in tags.iter().enumerate() {
        if !out.is_empty() && out.len() + t.len() + 1 > width {
            return format!("{out} + {} more...", tags.len() - i);
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(t);
    }
    out
}

impl Strategy for ImageStreams {
    fn def(&self) -> &ResourceDef {
        &self.def
    }
    fn decode(&self, body: Value) -> Result<(Value, Vec<String>), String> {
        decode_as::<ImageStream>(body)
    }
    fn merge_keys(&self) -> MergeKeys {
        IMAGE_STREAM_MERGE_KEYS
    }
    fn tracks_generation(&self) -> bool {
        true
    }
    fn table(&self) -> TableDef {
        TableDef {
            columns: vec![
                name_column(),
                Column {
                    name: "Image Repository",
                    kind: "string",
                    format: "",
                    description: "Where the stream's images are pulled from",
                    priority: 0,
                },
                Column {
                    name: "Tags",
                    kind: "string",
                    format: "",
                    description: "The tags of the stream",
                    priority: 0,
                },
                Column {
                    name: "Updated",
                    kind: "string",
                    format: "",
                    description: "When the stream last changed",
                    priority: 0,
                },
            ],
            row: Arc::new(|o| {
                let Some(s) = typed::<ImageStream>(o) else {
                    return vec![json!(name_of(o)), json!(""), json!(""), json!("")];
                };
                let latest = s
                    .status
                    .tags
                    .iter()
                    .filter_map(|t| {
                        t.items
                            .first()
                            .and_then(|e| e.created.as_ref())
                            .map(|c| c.0)
                    })
                    .max();
                let repo = if s.status.public_docker_image_repository.is_empty() {
                    s.status.docker_image_repository.clone()
                } else {
                    s.status.public_docker_image_repository.clone()
                };
                vec![
                    json!(name_of(o)),
                    json!(repo),
                    json!(tags_up_to_width(&sorted_tags(&s), 40)),
                    json!(
                        latest
                            .map(|t| ago(Some(&t.to_string())))
                            .unwrap_or_default()
                    ),
                ]
            }),
        }
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        let Some(mut s) = typed::<ImageStream>(obj) else {
            return;
        };
        set_image_stream_defaults(&mut s);
        s.status = Default::default();
        for t in s.spec.tags.iter_mut() {
            t.generation = Some(1);
        }
        write_back(obj, &s);
    }
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        let (Some(mut s), Some(o)) = (typed::<ImageStream>(new), typed::<ImageStream>(old)) else {
            return;
        };
        set_image_stream_defaults(&mut s);
        s.status = o.status.clone();
        resolve_own_image_prefixes(&mut s);
        // Users may set a tag's generation only to 0 (asking for a re-import).
        for t in s.spec.tags.iter_mut() {
            if let Some(old_tag) = o.spec_tag(&t.name)
                && t.generation != Some(0)
            {
                t.generation = old_tag.generation;
            }
        }
        write_back(new, &s);
    }
    fn finish_update(&self, new: &mut Value, old: &Value) {
        let (Some(mut s), Some(o)) = (typed::<ImageStream>(new), typed::<ImageStream>(old)) else {
            return;
        };
        let generation = s.metadata.generation.unwrap_or(1);
        // A changed (or new) tag takes the stream's new generation.
        for t in s.spec.tags.iter_mut() {
            if o.spec_tag(&t.name) != Some(t) {
                t.generation = Some(generation);
            }
        }
        write_back(new, &s);
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        match typed::<ImageStream>(obj) {
            Some(s) => {
                let mut errors = own_image_prefix_errors(&s);
                if errors.is_empty() {
                    errors = validation::validate_image_stream(&s);
                }
                errors
            }
            None => vec![FieldError::invalid("", "", "not a valid ImageStream")],
        }
    }
    fn raw_is_decorated(&self, raw: &[u8], ns: Option<&str>, name: &str) -> bool {
        let want = format!(
            "\"dockerImageRepository\":\"{}/{}/{name}\"",
            self.registry_hostname,
            ns.unwrap_or("")
        );
        memchr::memmem::find(raw, want.as_bytes()).is_some()
    }
    fn decorate(&self, obj: &mut Value) {
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let repo = format!("{}/{ns}/{}", self.registry_hostname, name_of(obj));
        if !obj.get("status").is_some_and(Value::is_object) {
            obj["status"] = json!({});
        }
        obj["status"]["dockerImageRepository"] = json!(repo);
    }
}

/// Images: cluster-scoped, named by digest.
pub struct Images(ResourceDef);

impl Default for Images {
    fn default() -> Self {
        Self::new()
    }
}

impl Images {
    /// The images strategy.
    pub fn new() -> Self {
        Images(ResourceDef {
            group: "image.openshift.io",
            version: "v1",
            kind: "Image",
            list_kind: "ImageList",
            plural: "images",
            singular: "image",
            short_names: &[],
            categories: &[],
            namespaced: false,
            verbs: ALL_VERBS,
            subresources: &[],
            selectable_fields: &[],
        })
    }
}

impl Strategy for Images {
    fn def(&self) -> &ResourceDef {
        &self.0
    }
    fn decode(&self, body: Value) -> Result<(Value, Vec<String>), String> {
        decode_as::<Image>(body)
    }
    fn table(&self) -> TableDef {
        TableDef {
            columns: vec![
                name_column(),
                Column {
                    name: "Image Reference",
                    kind: "string",
                    format: "",
                    description: "Where the image can be pulled from",
                    priority: 0,
                },
            ],
            row: Arc::new(|o| {
                vec![
                    json!(name_of(o)),
                    o.get("dockerImageReference").cloned().unwrap_or(json!("")),
                ]
            }),
        }
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        match typed::<Image>(obj) {
            Some(i) => validation::validate_image(&i),
            None => vec![FieldError::invalid("", "", "not a valid Image")],
        }
    }
}

fn istag_def() -> ResourceDef {
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
    def: ResourceDef,
    streams: Arc<StoredResource>,
    store: Arc<dyn Store>,
}

impl ImageStreamTags {
    fn gr(&self) -> GroupResource {
        self.def.group_resource()
    }

    fn split<'a>(&self, name: &'a str) -> Result<(&'a str, &'a str), ApiError> {
        parse_image_stream_tag_name(name).map_err(|e| ApiError::BadRequest(e.to_string()))
    }

    async fn image(&self, name: &str) -> Option<Image> {
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

    async fn stream(
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
            .ok_or_else(|| ApiError::internal("stream does not decode"))?;
        let ist = self
            .view(&stream, tag, true)
            .await
            .ok_or_else(|| ApiError::internal("tag vanished"))?;
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
        crate::apiserver::codec::decode_image_kind::<ImageStreamTag>(body, "ImageStreamTag")
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
        let f = move |cur: Option<Value>| -> Result<Value, ApiError> {
            let mut stream = match &cur {
                Some(v) => typed::<ImageStream>(v)
                    .ok_or_else(|| ApiError::internal("stored stream does not decode"))?,
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
        let new_value = update(Some(current_value.clone()))?;
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
        let f = move |cur: Option<Value>| -> Result<Value, ApiError> {
            let cur = cur.ok_or_else(|| ApiError::NotFound {
                gr: gr.clone(),
                name: name_owned.clone(),
            })?;
            let mut stream = typed::<ImageStream>(&cur)
                .ok_or_else(|| ApiError::internal("stored stream does not decode"))?;
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
        let f = move |cur: Option<Value>| -> Result<Value, ApiError> {
            let cur = cur.ok_or_else(|| ApiError::NotFound {
                gr: gr.clone(),
                name: name_owned.clone(),
            })?;
            let mut stream = typed::<ImageStream>(&cur)
                .ok_or_else(|| ApiError::internal("stored stream does not decode"))?;
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
        let no_precondition = |cur: Option<Value>| -> Result<Value, ApiError> {
            let mut v = cur.ok_or_else(|| ApiError::NotFound {
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
