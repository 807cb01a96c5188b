//! Server-side apply and `metadata.managedFields`: which manager set which field.
//!
//! Covered: apply creates; re-apply merges and removes the fields this manager set
//! before but no longer sends (unless another manager also owns them); keyed lists
//! (by the resource's [`MergeKeys`]) merge per item; a change to a field another
//! manager owns is a 409 Conflict unless `force=true`, which takes ownership;
//! non-apply writes take ownership of what they change (operation `Update`).
//! Not covered yet: ownership of list items by position in unkeyed lists (they are
//! atomic), `x-kubernetes-map-type: atomic` structs, and version conversion of
//! managed fields (moor serves one version per group). Pure functions over JSON.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::patch::MergeKeys;
use super::resource::GroupResource;

mod managed;
pub use managed::*;

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElem {
    /// `f:<name>`: a struct field or map key.
    Field(String),
    /// `k:{...}`: an item of a keyed list, by its key fields (JSON text).
    Key(String),
    /// `v:<json>`: an item of a set-like list of scalars.
    Val(String),
}

/// A field path.
pub type FieldPath = Vec<PathElem>;
/// A set of owned field paths.
pub type FieldSet = BTreeSet<FieldPath>;

/// Top-level fields no manager owns.
fn skipped(path: &[PathElem]) -> bool {
    match path {
        [PathElem::Field(f)] => f == "apiVersion" || f == "kind",
        [PathElem::Field(m), PathElem::Field(f)] if m == "metadata" => matches!(
            f.as_str(),
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "managedFields"
                | "selfLink"
                | "deletionTimestamp"
        ),
        [PathElem::Field(s), ..] => s == "status",
        _ => false,
    }
}

fn path_string(path: &[PathElem]) -> String {
    let mut s = String::new();
    for p in path {
        match p {
            PathElem::Field(f) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(f);
            }
            PathElem::Key(k) => s.push_str(&format!("[{k}]")),
            PathElem::Val(v) => s.push_str(&format!("[{v}]")),
        }
    }
    s
}

/// The dotted path used by [`MergeKeys`] (`spec.tags`, items as `[]`).
fn schema_path(path: &[PathElem]) -> String {
    let mut s = String::new();
    for p in path {
        match p {
            PathElem::Field(f) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(f);
            }
            _ => s.push_str("[]"),
        }
    }
    s
}

fn item_key(item: &Value, key: &str) -> Option<String> {
    item.get(key).map(|k| {
        let mut m = Map::new();
        m.insert(key.to_string(), k.clone());
        Value::Object(m).to_string()
    })
}

/// Every field path that `obj` sets: leaves, plus the item nodes of keyed lists.
pub fn field_set(obj: &Value, keys: MergeKeys) -> FieldSet {
    field_values(obj, keys).into_keys().collect()
}

/// Every field path that `obj` sets, with the value there: one walk, so that
/// comparing two objects field by field costs linear time however long their keyed
/// lists are (the first item of a key wins).
fn field_values(obj: &Value, keys: MergeKeys) -> HashMap<FieldPath, &Value> {
    let mut out = HashMap::new();
    walk(obj, &mut Vec::new(), keys, &mut out);
    out
}

fn walk<'a>(
    v: &'a Value,
    path: &mut FieldPath,
    keys: MergeKeys,
    out: &mut HashMap<FieldPath, &'a Value>,
) {
    if skipped(path) {
        return;
    }
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                path.push(PathElem::Field(k.clone()));
                walk(child, path, keys, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            let sp = schema_path(path);
            if let Some(key) = keys.key_for(&sp) {
                for item in items {
                    let Some(k) = item_key(item, key) else {
                        continue;
                    };
                    path.push(PathElem::Key(k));
                    if !out.contains_key(path) {
                        out.insert(path.clone(), item);
                        walk(item, path, keys, out);
                    }
                    path.pop();
                }
            } else if sp == "metadata.finalizers" {
                for item in items {
                    path.push(PathElem::Val(item.to_string()));
                    out.entry(path.clone()).or_insert(item);
                    path.pop();
                }
            } else {
                out.insert(path.clone(), v);
            }
        }
        _ => {
            if !path.is_empty() {
                out.insert(path.clone(), v);
            }
        }
    }
}

/// Adds to `out` every field path of `new` (as [`field_values`] finds them) whose value
/// differs from `old`'s at the same path. One walk of both that skips every subtree
/// they share unchanged, so a small change to a large object costs one comparison of
/// the rest, not a path per field.
fn diff(
    old: Option<&Value>,
    new: &Value,
    path: &mut FieldPath,
    keys: MergeKeys,
    out: &mut FieldSet,
) {
    if skipped(path) || old == Some(new) {
        return;
    }
    match new {
        Value::Object(m) if !m.is_empty() => {
            let old = old.and_then(Value::as_object);
            for (k, child) in m {
                path.push(PathElem::Field(k.clone()));
                diff(old.and_then(|o| o.get(k)), child, path, keys, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            let sp = schema_path(path);
            let old_items = match old {
                Some(Value::Array(o)) => o.as_slice(),
                _ => &[],
            };
            if let Some(key) = keys.key_for(&sp) {
                // Items by key, the first of a key winning, as in `field_values`.
                let mut before: HashMap<String, &Value> = HashMap::new();
                for it in old_items {
                    if let Some(k) = item_key(it, key) {
                        before.entry(k).or_insert(it);
                    }
                }
                let mut seen = HashSet::new();
                for item in items {
                    let Some(k) = item_key(item, key) else {
                        continue;
                    };
                    if !seen.insert(k.clone()) {
                        continue;
                    }
                    let was = before.get(&k).copied();
                    path.push(PathElem::Key(k));
                    if was != Some(item) {
                        out.insert(path.clone());
                        diff(was, item, path, keys, out);
                    }
                    path.pop();
                }
            } else if sp == "metadata.finalizers" {
                for item in items {
                    if !old_items.contains(item) {
                        path.push(PathElem::Val(item.to_string()));
                        out.insert(path.clone());
                        path.pop();
                    }
                }
            } else {
                out.insert(path.clone());
            }
        }
        _ => {
            if !path.is_empty() {
                out.insert(path.clone());
            }
        }
    }
}

/// The changed paths by [`diff`] and by comparing every path of both versions (the
/// definition it must agree with), for the property tests.
#[cfg(test)]
pub(super) fn changed_both_ways(
    old: Option<&Value>,
    new: &Value,
    keys: MergeKeys,
) -> (FieldSet, FieldSet) {
    let mut by_diff = FieldSet::new();
    diff(old, new, &mut Vec::new(), keys, &mut by_diff);
    let old_values = old.map(|o| field_values(o, keys)).unwrap_or_default();
    let by_maps = field_values(new, keys)
        .into_iter()
        .filter(|(p, v)| old_values.get(p) != Some(v))
        .map(|(p, _)| p)
        .collect();
    (by_diff, by_maps)
}

fn remove_at(v: &mut Value, path: &[PathElem], keys: MergeKeys) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for (i, p) in parent_path.iter().enumerate() {
        let next = match p {
            PathElem::Field(f) => cur.get_mut(f),
            PathElem::Key(k) => {
                let Some(key) = keys.key_for(&schema_path(&parent_path[..i])) else {
                    return;
                };
                let Ok(want) = serde_json::from_str::<Value>(k) else {
                    return;
                };
                cur.as_array_mut()
                    .and_then(|a| a.iter_mut().find(|it| it.get(key) == want.get(key)))
            }
            PathElem::Val(_) => None,
        };
        let Some(n) = next else { return };
        cur = n;
    }
    match last {
        PathElem::Field(f) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(f);
            }
        }
        PathElem::Key(k) => {
            let (Some(key), Ok(want)) = (
                keys.key_for(&schema_path(parent_path)),
                serde_json::from_str::<Value>(k),
            ) else {
                return;
            };
            if let Some(a) = cur.as_array_mut() {
                a.retain(|it| it.get(key) != want.get(key));
            }
        }
        PathElem::Val(val) => {
            if let (Some(a), Ok(want)) = (cur.as_array_mut(), serde_json::from_str::<Value>(val)) {
                a.retain(|it| *it != want);
            }
        }
    }
}

/// Merges an applied configuration into the live object.
fn merge_applied(live: &mut Value, applied: &Value, path: &mut FieldPath, keys: MergeKeys) {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            for (k, av) in a {
                path.push(PathElem::Field(k.clone()));
                if skipped(path) && path.len() > 1 {
                    path.pop();
                    continue;
                }
                match l.get_mut(k) {
                    Some(lv) => merge_applied(lv, av, path, keys),
                    None => {
                        l.insert(k.clone(), av.clone());
                    }
                }
                path.pop();
            }
        }
        (Value::Array(l), Value::Array(a)) => {
            let sp = schema_path(path);
            if let Some(key) = keys.key_for(&sp) {
                // Live items by key, the first of a key winning: linear, not a scan per item.
                let mut index: HashMap<String, usize> = HashMap::new();
                for (i, it) in l.iter().enumerate() {
                    if let Some(k) = item_key(it, key) {
                        index.entry(k).or_insert(i);
                    }
                }
                for item in a {
                    let Some(k) = item_key(item, key) else {
                        continue;
                    };
                    match index.get(&k) {
                        Some(&i) => {
                            path.push(PathElem::Key(k));
                            merge_applied(&mut l[i], item, path, keys);
                            path.pop();
                        }
                        None => {
                            index.insert(k, l.len());
                            l.push(item.clone());
                        }
                    }
                }
            } else {
                *l = a.clone();
            }
        }
        (l, a) => *l = a.clone(),
    }
}

/// What an apply did.
pub struct Applied {
    pub object: Value,
}

/// Who applies, and how.
pub struct ApplyRequest<'a> {
    pub manager: &'a str,
    /// Take ownership of conflicting fields instead of failing.
    pub force: bool,
    pub api_version: &'a str,
    pub keys: MergeKeys,
    pub gr: &'a GroupResource,
    pub name: &'a str,
    /// The time written into `managedFields`.
    pub now: &'a str,
}

/// Applies `applied` as `req.manager` onto `live` (or onto an empty object to create).
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    req: &ApplyRequest<'_>,
) -> Result<Applied, ApiError> {
    let ApplyRequest {
        manager,
        force,
        api_version,
        keys,
        gr,
        name,
        now,
    } = *req;
    if !applied.is_object() {
        return Err(ApiError::BadRequest(
            "an applied configuration must be an object".into(),
        ));
    }
    let mut entries = live.map(read_managed).unwrap_or_default();
    let applied_values = field_values(applied, keys);
    let applied_set: FieldSet = applied_values.keys().cloned().collect();
    let mut object = live.cloned().unwrap_or_else(|| json!({}));

    // Conflicts: a field another manager owns, to which this apply gives another value.
    let mut conflicts = Vec::new();
    let mut conflicting: BTreeSet<&FieldPath> = BTreeSet::new();
    let live_values = field_values(&object, keys);
    for (p, a) in &applied_values {
        let Some(l) = live_values.get(p) else {
            continue;
        };
        if l == a || a.is_object() {
            continue;
        }
        for e in entries
            .iter()
            .filter(|e| e.manager != manager && e.fields.contains(p))
        {
            conflicts.push((e.manager.clone(), path_string(p)));
            conflicting.insert(p);
        }
    }
    if !conflicts.is_empty() {
        if !force {
            let detail: Vec<String> = conflicts
                .iter()
                .map(|(m, p)| format!("conflict with \"{m}\": .{p}"))
                .collect();
            return Err(ApiError::Conflict {
                gr: gr.clone(),
                name: name.to_string(),
                message: format!(
                    "Apply failed with {} conflict(s): {}",
                    conflicts.len(),
                    detail.join(", ")
                ),
            });
        }
        // Forced: the other managers lose the fields whose values this apply changes.
        for e in entries.iter_mut().filter(|e| e.manager != manager) {
            e.fields.retain(|p| !conflicting.contains(p));
        }
    }
    drop(live_values);

    // Fields this manager applied before, sends no more, and nobody else owns: removed.
    let previous: FieldSet = entries
        .iter()
        .filter(|e| e.manager == manager && e.operation == "Apply")
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let others: FieldSet = entries
        .iter()
        .filter(|e| !(e.manager == manager && e.operation == "Apply"))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let dropped: BTreeSet<&FieldPath> = previous
        .iter()
        .filter(|p| !applied_set.contains(*p) && !owns_under(&others, p))
        .collect();
    // Removing a list item removes its fields: skip paths under a dropped ancestor.
    let mut removed: Vec<&FieldPath> = dropped
        .iter()
        .filter(|p| !(1..p.len()).any(|i| dropped.contains(&p[..i].to_vec())))
        .copied()
        .collect();
    removed.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in removed {
        remove_at(&mut object, p, keys);
    }
    merge_applied(&mut object, applied, &mut Vec::new(), keys);
    prune_empty_parents(&mut object);

    let fields_changed = previous != applied_set;
    let content_changed = live.is_none_or(|l| strip_managed(l) != strip_managed(&object));
    if fields_changed || content_changed {
        entries.retain(|e| !(e.manager == manager && e.operation == "Apply"));
        let new_set: HashSet<FieldPath> = field_values(&object, keys).into_keys().collect();
        for e in entries.iter_mut() {
            e.fields.retain(|p| new_set.contains(p));
        }
        entries.push(ManagedEntry {
            manager: manager.to_string(),
            operation: "Apply".into(),
            api_version: api_version.to_string(),
            time: now.to_string(),
            fields: applied_set,
            subresource: None,
        });
        if !object.get("metadata").is_some_and(Value::is_object) {
            object["metadata"] = json!({});
        }
        write_managed(&mut object, &entries);
    }
    Ok(Applied { object })
}

/// Whether `set` holds `path` or a path under it. Paths under `path` sort right
/// after it, so one ordered look-up answers.
fn owns_under(set: &FieldSet, path: &FieldPath) -> bool {
    set.range(path.clone()..)
        .next()
        .is_some_and(|o| o.starts_with(path))
}

fn strip_managed(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
        m.remove("resourceVersion");
    }
    v
}

/// Removes maps left empty by removals (`metadata.labels: {}` after the last label).
fn prune_empty_parents(v: &mut Value) {
    if let Value::Object(m) = v {
        for (k, child) in m.iter_mut() {
            if k != "status" {
                prune_empty_parents(child);
            }
        }
        if let Some(Value::Object(meta)) = m.get_mut("metadata") {
            meta.retain(|_, x| !(x.is_object() && x.as_object().is_some_and(Map::is_empty)));
        }
    }
}

#[cfg(test)]
mod tests;
