//! `imagestreams`: stored, with `status`; spec tags that name this stream by a digest
//! prefix are resolved on write.

use std::collections::HashMap;
use std::sync::Arc;

use moor_api::image::{ImageStream, ImageStreamSpec, TagReference, set_image_stream_defaults};
use moor_api::validation::{self, FieldError};
use serde_json::{Value, json};

use super::imagestreamimages::matching_images;
use super::{ago, sorted_tags, typed, write_back};
use moor_apimachinery::codec::decode_as;
use moor_apimachinery::patch::MergeKeys;
use moor_apimachinery::resource::*;
use moor_apimachinery::stored::Strategy;
use moor_apimachinery::table::{Column, TableDef, name_column, name_of};

/// Strategic-merge keys OpenShift declares for image streams.
pub const IMAGE_STREAM_MERGE_KEYS: MergeKeys =
    MergeKeys(&[("spec.tags", "name"), ("status.tags", "tag")]);

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

/// `v` as an [`ImageStream`] for the write hooks, without `metadata.managedFields`:
/// no hook reads them, [`write_back`] keeps the metadata as it was, and on a large
/// stream they are about as big as the spec, so decoding them doubled the cost of
/// each hook. Otherwise decodes as `typed` does (unknown fields ignored, absent
/// ones defaulted, `None` when a part does not decode).
fn stream_view(v: &Value) -> Option<ImageStream> {
    if !v.is_object() {
        return None;
    }
    count_decode();
    crate::catalog::slim_stream(v).ok()
}

#[cfg(test)]
thread_local! {
    /// How many typed decodes of a stream the write hooks made on this thread (tests
    /// count them: an update decodes the new stream once, the old one's spec only).
    static HOOK_DECODES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn count_decode() {
    #[cfg(test)]
    HOOK_DECODES.with(|n| n.set(n.get() + 1));
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
    /// One pass over the new stream, decoded once, and the old one's spec: defaults,
    /// the status kept, own-history prefixes resolved, tag generations kept, and each
    /// changed (or new) tag given the stream's next generation, the one the update
    /// bumps to as the spec changed (the generic update compares the specs as JSON,
    /// this as typed values: both tell the same change of a stored canonical spec).
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        use serde::Deserialize;
        let Some(mut s) = stream_view(new) else {
            return;
        };
        count_decode();
        let Ok(old_spec) = ImageStreamSpec::deserialize(old.get("spec").unwrap_or(&Value::Null))
        else {
            return;
        };
        set_image_stream_defaults(&mut s);
        // The generic update copied the stored status into `new` already.
        resolve_own_image_prefixes(&mut s);
        // Users may set a tag's generation only to 0 (asking for a re-import).
        let old_tags: HashMap<&str, &TagReference> = old_spec
            .tags
            .iter()
            .rev()
            .map(|t| (t.name.as_str(), t))
            .collect();
        for t in s.spec.tags.iter_mut() {
            if let Some(old_tag) = old_tags.get(t.name.as_str())
                && t.generation != Some(0)
            {
                t.generation = old_tag.generation;
            }
        }
        if s.spec != old_spec {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            for t in s.spec.tags.iter_mut() {
                if old_tags.get(t.name.as_str()).copied() != Some(&*t) {
                    t.generation = Some(generation);
                }
            }
        }
        write_back(new, &s);
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        match stream_view(obj) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use moor_apimachinery::stored::{ServingConfig, StoredResource, namespace_key, unconditional};
    use moor_store::{MemoryStore, Store};

    #[tokio::test]
    async fn an_update_decodes_the_stream_once_and_of_the_old_one_its_spec() {
        let store = Arc::new(MemoryStore::new());
        let ns = serde_json::to_vec(&json!({"metadata": {"name": "ns"}})).unwrap();
        store.create(&namespace_key("ns"), ns.into()).await.unwrap();
        let streams = StoredResource::new(
            store,
            Arc::new(ImageStreams::new("reg")),
            ServingConfig::default(),
        );
        let ctx = RequestContext::default();
        let tag = |name: &str, from: &str| json!({"name": name, "from": {"kind": "DockerImage", "name": from}});
        let body = json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": "s"},
            "spec": {"tags": [tag("a", "r/a:1"), tag("b", "r/b:1")]},
        });
        let (obj, _) = streams.decode(body).unwrap();
        streams.create(&ctx, Some("ns"), obj).await.unwrap();
        HOOK_DECODES.with(|n| n.set(0));
        let change = |cur: Option<&Value>| {
            let mut v = cur.cloned().unwrap_or_default();
            v["spec"]["tags"][1]["from"]["name"] = json!("r/b:2");
            if let Some(tags) = v["spec"]["tags"].as_array_mut() {
                tags.push(tag("c", "r/c:1"));
            }
            Ok(unconditional(v))
        };
        let (out, _) = streams
            .update(&ctx, Some("ns"), "s", None, &change, false)
            .await
            .unwrap();
        // The new stream in `prepare_for_update` and `validate`, the old one's spec.
        assert_eq!(HOOK_DECODES.with(|n| n.get()), 3);
        assert_eq!(out["metadata"]["generation"], 2);
        let generations: Vec<&Value> = (0..3)
            .map(|i| &out["spec"]["tags"][i]["generation"])
            .collect();
        assert_eq!(generations, [&json!(1), &json!(2), &json!(2)]);
        // No change: no new generation.
        let (same, _) = streams
            .update(
                &ctx,
                Some("ns"),
                "s",
                None,
                &|cur| Ok(unconditional(cur.cloned().unwrap_or_default())),
                false,
            )
            .await
            .unwrap();
        assert_eq!(same["metadata"]["generation"], 2);
        assert_eq!(
            same["metadata"]["resourceVersion"],
            out["metadata"]["resourceVersion"]
        );
    }
}
