//! PATCH bodies: JSON merge patch and JSON patch (through the `json-patch` crate) and
//! Kubernetes strategic merge patch. No Rust crate implements strategic merge patch,
//! so it is written here against a small table of list merge keys per resource
//! ([`MergeKeys`]); it covers the directives kubectl sends (`$patch`, `$retainKeys`,
//! `$setElementOrder/`, `$deleteFromPrimitiveList/`). Pure functions over JSON.

use serde_json::{Map, Value};

use super::error::ApiError;
use super::limits::{
    MAX_DEPTH, MAX_JSON_PATCH_COPY_BYTES, MAX_JSON_PATCH_OPERATIONS, MAX_JSON_PATCH_WALK, shape,
};

/// The patch flavours of the `Content-Type` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchType {
    /// Parses a media type; `None` for one that is not a patch type.
    pub fn from_media_type(mt: &str) -> Option<Self> {
        match mt {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// Which lists merge by which key, by JSON path with `[]` for "every item"
/// (`spec.tags` → `name`). Lists not named here are replaced whole, as for CRDs.
#[derive(Clone, Copy, Debug, Default)]
pub struct MergeKeys(pub &'static [(&'static str, &'static str)]);

/// Lists of scalars that merge as sets (`metadata.finalizers`).
const SET_LISTS: &[&str] = &["metadata.finalizers"];

impl MergeKeys {
    /// The merge key of the list at `path`.
    pub fn key_for(&self, path: &str) -> Option<&'static str> {
        if path == "metadata.ownerReferences" {
            return Some("uid");
        }
        self.0.iter().find(|(p, _)| *p == path).map(|(_, k)| *k)
    }
}

/// Applies an RFC 7386 merge patch.
pub fn merge_patch(doc: &mut Value, patch: &Value) -> Result<(), ApiError> {
    if !patch.is_object() {
        return Err(ApiError::BadRequest(
            "a merge patch must be a JSON object".into(),
        ));
    }
    json_patch::merge(doc, patch);
    Ok(())
}

/// Applies an RFC 6902 JSON patch, within Kubernetes' bounds: at most
/// [`MAX_JSON_PATCH_OPERATIONS`] operations, `copy` operations that add at most
/// [`MAX_JSON_PATCH_COPY_BYTES`] in all, and no value nested deeper than
/// [`MAX_DEPTH`] at any step (so neither memory nor the stack can be exhausted by a
/// patch that copies or moves a value into itself again and again).
pub fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), ApiError> {
    if let Some(n) = patch.as_array().map(Vec::len)
        && n > MAX_JSON_PATCH_OPERATIONS
    {
        return Err(ApiError::EntityTooLarge(format!(
            "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {n}"
        )));
    }
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::BadRequest(format!("error decoding json patch: {e}")))?;
    let mut budget = PatchBudget::default();
    for op in ops.iter() {
        budget.admit(doc, op)?;
        // Each step works on the caller's copy, which an error discards whole, so the
        // crate's undo log (`patch`) is not needed.
        json_patch::patch_unsafe(doc, std::slice::from_ref(op))
            .map_err(|e| invalid_patch(format!("the json patch could not be applied: {e}")))?;
    }
    Ok(())
}

fn invalid_patch(message: String) -> ApiError {
    ApiError::Invalid {
        gr: super::resource::GroupResource::new("", ""),
        kind: String::new(),
        name: String::new(),
        causes: vec![super::error::Cause {
            reason: "FieldValueInvalid".into(),
            message,
            field: String::new(),
        }],
    }
}

/// What a JSON patch has spent so far of its bounds.
#[derive(Default)]
struct PatchBudget {
    copied: usize,
    walked: usize,
}

impl PatchBudget {
    /// Refuses `op` if it would pass a bound on `doc`.
    fn admit(&mut self, doc: &Value, op: &json_patch::PatchOperation) -> Result<(), ApiError> {
        use json_patch::PatchOperation as Op;
        let tokens = |p: &json_patch::jsonptr::Pointer| p.count();
        let (path, depth) = match op {
            Op::Add(o) => (&o.path, shape(&o.value, usize::MAX, MAX_DEPTH).depth),
            Op::Replace(o) => (&o.path, shape(&o.value, usize::MAX, MAX_DEPTH).depth),
            Op::Copy(o) => {
                let Some(from) = doc.pointer(o.from.as_str()) else {
                    return Ok(()); // The crate reports the missing source.
                };
                let left = MAX_JSON_PATCH_COPY_BYTES.saturating_sub(self.copied);
                let s = shape(from, left, MAX_DEPTH);
                self.copied += s.bytes;
                if self.copied > MAX_JSON_PATCH_COPY_BYTES {
                    return Err(ApiError::EntityTooLarge(format!(
                        "the json patch's copy operations would add more than {MAX_JSON_PATCH_COPY_BYTES} bytes"
                    )));
                }
                (&o.path, s.depth)
            }
            Op::Move(o) if tokens(&o.path) > tokens(&o.from) => {
                let Some(from) = doc.pointer(o.from.as_str()) else {
                    return Ok(());
                };
                let s = shape(from, usize::MAX, MAX_DEPTH);
                self.walked += s.values;
                if self.walked > MAX_JSON_PATCH_WALK {
                    return Err(invalid_patch(
                        "the json patch is too complex: its moves walk too many values".into(),
                    ));
                }
                (&o.path, s.depth)
            }
            Op::Move(_) | Op::Remove(_) | Op::Test(_) => return Ok(()),
        };
        if tokens(path) + depth > MAX_DEPTH {
            return Err(invalid_patch(format!(
                "the json patch would nest {path} deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(())
    }
}

/// Applies a strategic merge patch.
pub fn strategic_merge_patch(
    doc: &mut Value,
    patch: &Value,
    keys: MergeKeys,
) -> Result<(), ApiError> {
    if !patch.is_object() {
        return Err(ApiError::BadRequest(
            "a strategic merge patch must be a JSON object".into(),
        ));
    }
    let merged = merge_value(doc.take(), patch, "", keys)?;
    *doc = merged.unwrap_or(Value::Object(Map::new()));
    Ok(())
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Merges `patch` into `orig`; `None` means "delete this value".
fn merge_value(
    orig: Value,
    patch: &Value,
    path: &str,
    keys: MergeKeys,
) -> Result<Option<Value>, ApiError> {
    let Some(pmap) = patch.as_object() else {
        return Ok(Some(patch.clone()));
    };
    match pmap.get("$patch").and_then(Value::as_str) {
        Some("delete") => return Ok(None),
        Some("replace") => {
            let mut p = pmap.clone();
            p.remove("$patch");
            return Ok(Some(strip_directives(Value::Object(p))));
        }
        Some(other) if other != "merge" => {
            return Err(ApiError::BadRequest(format!(
                "unknown patch directive {other:?} at {path}"
            )));
        }
        _ => {}
    }
    let mut omap = match orig {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    if let Some(retain) = pmap.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        omap.retain(|k, _| keep.contains(&k.as_str()));
    }
    let mut orders: Vec<(String, &Vec<Value>)> = Vec::new();
    for (k, v) in pmap {
        if k == "$patch" || k == "$retainKeys" {
            continue;
        }
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            if let Some(order) = v.as_array() {
                orders.push((field.to_string(), order));
            }
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(del)) = (omap.get_mut(field), v.as_array()) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        let p = child(path, k);
        if v.is_null() {
            omap.remove(k);
            continue;
        }
        let existing = omap.remove(k).unwrap_or(Value::Null);
        let merged = match (existing, v) {
            (Value::Array(o), Value::Array(pl)) => Some(merge_list(o, pl, &p, keys)?),
            (o @ Value::Object(_), pv @ Value::Object(_)) => merge_value(o, pv, &p, keys)?,
            (_, pv @ Value::Object(_)) => merge_value(Value::Null, pv, &p, keys)?,
            (_, pv) => Some(strip_directives(pv.clone())),
        };
        if let Some(m) = merged {
            omap.insert(k.clone(), m);
        }
    }
    for (field, order) in orders {
        let p = child(path, &field);
        if let Some(Value::Array(list)) = omap.get_mut(&field) {
            reorder(list, order, keys.key_for(&p));
        }
    }
    Ok(Some(Value::Object(omap)))
}

fn merge_list(
    orig: Vec<Value>,
    patch: &[Value],
    path: &str,
    keys: MergeKeys,
) -> Result<Value, ApiError> {
    if let Some(key) = keys.key_for(path) {
        let mut out = orig;
        let item_path = format!("{path}[]");
        for p in patch {
            let Some(pk) = p.get(key) else {
                if p.get("$patch").and_then(Value::as_str) == Some("replace") {
                    // `[{"$patch": "replace"}, ...]` replaces the whole list.
                    return Ok(Value::Array(
                        patch
                            .iter()
                            .filter(|x| x.get("$patch").is_none())
                            .cloned()
                            .map(strip_directives)
                            .collect(),
                    ));
                }
                out.push(strip_directives(p.clone()));
                continue;
            };
            match out.iter().position(|o| o.get(key) == Some(pk)) {
                Some(i) => {
                    let existing = out.remove(i);
                    if let Some(m) = merge_value(existing, p, &item_path, keys)? {
                        out.insert(i, m);
                    }
                }
                None => {
                    if p.get("$patch").and_then(Value::as_str) != Some("delete")
                        && let Some(m) = merge_value(Value::Null, p, &item_path, keys)?
                    {
                        out.push(m);
                    }
                }
            }
        }
        Ok(Value::Array(out))
    } else if SET_LISTS.contains(&path) {
        let mut out = orig;
        for p in patch {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        Ok(Value::Array(out))
    } else {
        Ok(Value::Array(
            patch.iter().cloned().map(strip_directives).collect(),
        ))
    }
}

fn reorder(list: &mut [Value], order: &[Value], key: Option<&str>) {
    let ident = |v: &Value| -> Value {
        match key {
            Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        }
    };
    let position = |v: &Value| -> usize {
        let id = ident(v);
        order
            .iter()
            .position(|o| match key {
                Some(k) => o.get(k) == Some(&id),
                None => *o == id,
            })
            .unwrap_or(usize::MAX)
    };
    list.sort_by_key(|v| position(v));
}

/// Removes `$...` directive keys from a value that is being inserted as is.
fn strip_directives(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k, strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_directives).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const IS_KEYS: MergeKeys = MergeKeys(&[("spec.tags", "name"), ("status.tags", "tag")]);

    #[test]
    fn strategic_merges_tags_by_name() {
        let mut doc = json!({"spec": {"tags": [
            {"name": "a", "from": {"kind": "DockerImage", "name": "x:1"}},
            {"name": "b", "from": {"kind": "DockerImage", "name": "y:1"}},
        ]}});
        let patch = json!({"spec": {"tags": [
            {"name": "b", "from": {"name": "y:2"}},
            {"name": "c", "from": {"kind": "DockerImage", "name": "z:1"}},
        ]}});
        strategic_merge_patch(&mut doc, &patch, IS_KEYS).unwrap();
        let tags = doc["spec"]["tags"].as_array().unwrap();
        assert_eq!(tags.len(), 3);
        assert_eq!(
            tags[1]["from"],
            json!({"kind": "DockerImage", "name": "y:2"})
        );
        assert_eq!(tags[2]["name"], "c");
    }

    #[test]
    fn strategic_delete_directive_and_nulls() {
        let mut doc = json!({"metadata": {"labels": {"a": "1", "b": "2"}},
                             "spec": {"tags": [{"name": "a"}, {"name": "b"}]}});
        let patch = json!({"metadata": {"labels": {"a": null}},
                           "spec": {"tags": [{"name": "a", "$patch": "delete"}]}});
        strategic_merge_patch(&mut doc, &patch, IS_KEYS).unwrap();
        assert_eq!(doc["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(doc["spec"]["tags"], json!([{"name": "b"}]));
    }

    #[test]
    fn strategic_set_element_order_and_unkeyed_lists_replace() {
        let mut doc = json!({"spec": {"tags": [{"name": "a"}, {"name": "b"}], "other": [1, 2]}});
        let patch = json!({"spec": {"$setElementOrder/tags": [{"name": "b"}, {"name": "a"}], "other": [3]}});
        strategic_merge_patch(&mut doc, &patch, IS_KEYS).unwrap();
        assert_eq!(doc["spec"]["tags"], json!([{"name": "b"}, {"name": "a"}]));
        assert_eq!(doc["spec"]["other"], json!([3]));
    }

    #[test]
    fn merge_and_json_patches() {
        let mut doc = json!({"a": {"b": 1, "c": 2}});
        merge_patch(&mut doc, &json!({"a": {"b": null, "d": 3}})).unwrap();
        assert_eq!(doc, json!({"a": {"c": 2, "d": 3}}));
        json_patch(
            &mut doc,
            &json!([{"op": "replace", "path": "/a/c", "value": 9}]),
        )
        .unwrap();
        assert_eq!(doc["a"]["c"], 9);
        assert!(json_patch(&mut doc, &json!([{"op": "remove", "path": "/nope"}])).is_err());
        assert!(json_patch(&mut doc, &json!({"op": "bad"})).is_err());
    }
}
