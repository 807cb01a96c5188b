//! What changed between two stored versions of an image stream, as notification
//! events: a tag whose newest history entry names another image (`TagUpdated`, and
//! `ImagePushed` when the entry is a push to moor's registry), a tag whose
//! `ImportSuccess=False` condition is new or changed (`ImportFailed`, and
//! `SignatureRefused` when its reason is a signature one). Pure: JSON in, events out.

use moor_api::notification::{EventData, EventKind};
use serde_json::Value;

/// Reasons of an `ImportSuccess=False` condition that mean the signature policy
/// refused the image (set by the signature policy at import).
pub const SIGNATURE_REASONS: &[&str] = &["SignatureInvalid", "SignatureMissing"];

/// One event found in a change.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    /// What happened.
    pub kind: EventKind,
    /// Its payload.
    pub data: EventData,
}

fn status_tag<'a>(stream: Option<&'a Value>, tag: &str) -> Option<&'a Value> {
    stream?
        .pointer("/status/tags")?
        .as_array()?
        .iter()
        .find(|t| t.get("tag").and_then(Value::as_str) == Some(tag))
}

fn top(tag: Option<&Value>) -> Option<&Value> {
    tag?.pointer("/items/0")
}

fn str_of<'a>(v: Option<&'a Value>, field: &str) -> Option<&'a str> {
    v?.get(field)?.as_str()
}

fn import_failure(tag: Option<&Value>) -> Option<&Value> {
    tag?.get("conditions")?.as_array()?.iter().find(|c| {
        c.get("type").and_then(Value::as_str) == Some("ImportSuccess")
            && c.get("status").and_then(Value::as_str) == Some("False")
    })
}

/// The events of the change from `old` (none: the stream was created) to `new`, in
/// the order of `new`'s status tags. `registry` is `<registry-hostname>`, to tell a
/// push (whose pull spec is `<registry>/<ns>/<stream>@<digest>`) from an import.
pub fn events(old: Option<&Value>, new: &Value, registry: &str) -> Vec<Found> {
    let ns = new
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let stream = new
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let pushed_prefix = format!("{registry}/{ns}/{stream}@");
    let mut out = Vec::new();
    let Some(tags) = new.pointer("/status/tags").and_then(Value::as_array) else {
        return out;
    };
    for tag in tags {
        let Some(name) = tag.get("tag").and_then(Value::as_str) else {
            continue;
        };
        let before = status_tag(old, name);
        let data = |new_digest: Option<&str>, pull_spec: Option<&str>| EventData {
            namespace: ns.to_owned(),
            image_stream: stream.to_owned(),
            tag: name.to_owned(),
            old_digest: str_of(top(before), "image").map(str::to_owned),
            new_digest: new_digest.map(str::to_owned),
            pull_spec: pull_spec.map(str::to_owned),
            reason: None,
            message: None,
        };
        let (now, was) = (top(Some(tag)), top(before));
        let image = str_of(now, "image");
        if image.is_some() && image != str_of(was, "image") {
            let pull_spec = str_of(now, "dockerImageReference");
            out.push(Found {
                kind: EventKind::TagUpdated,
                data: data(image, pull_spec),
            });
            if pull_spec.is_some_and(|p| p.starts_with(&pushed_prefix)) {
                out.push(Found {
                    kind: EventKind::ImagePushed,
                    data: data(image, pull_spec),
                });
            }
        }
        if let Some(failed) = import_failure(Some(tag))
            && import_failure(before) != Some(failed)
        {
            let reason = str_of(Some(failed), "reason");
            let mut d = data(None, None);
            d.new_digest = None;
            d.reason = reason.map(str::to_owned);
            d.message = str_of(Some(failed), "message").map(str::to_owned);
            if reason.is_some_and(|r| SIGNATURE_REASONS.contains(&r)) {
                out.push(Found {
                    kind: EventKind::SignatureRefused,
                    data: d.clone(),
                });
            }
            out.push(Found {
                kind: EventKind::ImportFailed,
                data: d,
            });
        }
    }
    out
}

/// What [`events`] reads of a stream as the old version: each status tag's name, its
/// newest history entry's image and pull spec, and its `ImportSuccess=False`
/// condition. The recorder keeps this instead of whole streams.
pub fn slim(stream: &Value) -> Value {
    let tags: Vec<Value> = stream
        .pointer("/status/tags")
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .map(|t| {
                    let mut out = serde_json::Map::new();
                    if let Some(name) = t.get("tag") {
                        out.insert("tag".into(), name.clone());
                    }
                    if let Some(entry) = top(Some(t)) {
                        let mut item = serde_json::Map::new();
                        for field in ["image", "dockerImageReference"] {
                            if let Some(v) = entry.get(field) {
                                item.insert(field.into(), v.clone());
                            }
                        }
                        out.insert("items".into(), Value::Array(vec![Value::Object(item)]));
                    }
                    if let Some(failed) = import_failure(Some(t)) {
                        out.insert("conditions".into(), Value::Array(vec![failed.clone()]));
                    }
                    Value::Object(out)
                })
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({"status": {"tags": tags}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stream(tags: Value) -> Value {
        json!({"metadata": {"namespace": "ns", "name": "app"}, "status": {"tags": tags}})
    }

    #[test]
    fn a_new_top_entry_is_a_tag_update_and_the_same_image_is_not() {
        let old = stream(
            json!([{"tag": "1", "items": [{"image": "sha256:a", "dockerImageReference": "r/app@sha256:a"}]}]),
        );
        let new = stream(json!([{"tag": "1", "items": [
            {"image": "sha256:b", "dockerImageReference": "r/app@sha256:b"},
            {"image": "sha256:a", "dockerImageReference": "r/app@sha256:a"}]}]));
        let found = events(Some(&old), &new, "moor:5000");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, EventKind::TagUpdated);
        assert_eq!(found[0].data.old_digest.as_deref(), Some("sha256:a"));
        assert_eq!(found[0].data.new_digest.as_deref(), Some("sha256:b"));
        assert_eq!(found[0].data.pull_spec.as_deref(), Some("r/app@sha256:b"));
        assert!(events(Some(&new), &new, "moor:5000").is_empty());
    }

    #[test]
    fn a_push_is_also_an_image_pushed_and_a_first_tag_has_no_old_digest() {
        let new = stream(json!([{"tag": "1", "items": [
            {"image": "sha256:b", "dockerImageReference": "moor:5000/ns/app@sha256:b"}]}]));
        let kinds: Vec<_> = events(None, &new, "moor:5000")
            .into_iter()
            .map(|f| (f.kind, f.data.old_digest))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (EventKind::TagUpdated, None),
                (EventKind::ImagePushed, None)
            ]
        );
    }

    #[test]
    fn a_slimmed_old_stream_gives_the_same_events() {
        let cond = |msg: &str| {
            json!([{"type": "ImportSuccess", "status": "False", "reason": "X", "message": msg,
                    "lastTransitionTime": "2026-01-01T00:00:00Z", "generation": 2},
                   {"type": "Other", "status": "True"}])
        };
        let old = stream(json!([
            {"tag": "1", "items": [
                {"image": "sha256:a", "dockerImageReference": "r/app@sha256:a", "created": "x"},
                {"image": "sha256:0", "dockerImageReference": "r/app@sha256:0"}]},
            {"tag": "2", "items": [], "conditions": cond("down")},
            {"tag": "3", "items": [{"image": "sha256:c", "dockerImageReference": "r/app@sha256:c"}]}]));
        let new = stream(json!([
            {"tag": "1", "items": [
                {"image": "sha256:b", "dockerImageReference": "moor:5000/ns/app@sha256:b"},
                {"image": "sha256:a", "dockerImageReference": "r/app@sha256:a"}]},
            {"tag": "2", "items": [], "conditions": cond("still down")},
            {"tag": "3", "items": [{"image": "sha256:c", "dockerImageReference": "r/app@sha256:c"}],
             "conditions": cond("down")},
            {"tag": "4", "items": [{"image": "sha256:d", "dockerImageReference": "r/app@sha256:d"}]}]));
        let full = events(Some(&old), &new, "moor:5000");
        assert_eq!(full.len(), 5, "{full:?}");
        assert_eq!(events(Some(&slim(&old)), &new, "moor:5000"), full);
        assert!(events(Some(&slim(&new)), &new, "moor:5000").is_empty());
    }

    #[test]
    fn a_new_or_changed_import_failure_is_reported_once() {
        let failed = |msg: &str, reason: &str| {
            stream(json!([{"tag": "1", "items": [], "conditions": [
                {"type": "ImportSuccess", "status": "False", "reason": reason, "message": msg}]}]))
        };
        let a = failed("down", "InternalError");
        let found = events(None, &a, "m");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, EventKind::ImportFailed);
        assert_eq!(found[0].data.message.as_deref(), Some("down"));
        assert!(events(Some(&a), &a, "m").is_empty());
        let sig = failed("no signature", "SignatureMissing");
        let kinds: Vec<_> = events(Some(&a), &sig, "m")
            .into_iter()
            .map(|f| f.kind)
            .collect();
        assert_eq!(
            kinds,
            vec![EventKind::SignatureRefused, EventKind::ImportFailed]
        );
    }
}
