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

/// Encodes a field set as `fieldsV1`.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for p in path {
            let k = match p {
                PathElem::Field(f) => format!("f:{f}"),
                PathElem::Key(k) => format!("k:{k}"),
                PathElem::Val(v) => format!("v:{v}"),
            };
            let entry = cur.entry(k).or_insert_with(|| json!({}));
            if !entry.is_object() {
                *entry = json!({});
            }
            cur = entry.as_object_mut().expect("object just ensured");
        }
        if matches!(path.last(), Some(PathElem::Key(_))) {
            cur.insert(".".into(), json!({}));
        }
    }
    Value::Object(root)
}

/// Decodes `fieldsV1` into a field set (leaves and `.` nodes).
pub fn from_fields_v1(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    fn rec(v: &Value, path: &mut FieldPath, out: &mut FieldSet) {
        let Some(m) = v.as_object() else { return };
        if m.is_empty() && !path.is_empty() {
            out.insert(path.clone());
            return;
        }
        for (k, child) in m {
            if k == "." {
                out.insert(path.clone());
                continue;
            }
            let elem = if let Some(f) = k.strip_prefix("f:") {
                PathElem::Field(f.to_string())
            } else if let Some(x) = k.strip_prefix("k:") {
                PathElem::Key(x.to_string())
            } else if let Some(x) = k.strip_prefix("v:") {
                PathElem::Val(x.to_string())
            } else {
                continue;
            };
            path.push(elem);
            rec(child, path, out);
            path.pop();
        }
    }
    rec(v, &mut Vec::new(), &mut out);
    out
}

/// One `managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedEntry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub fields: FieldSet,
    /// `subresource`, when the write went through one.
    pub subresource: Option<String>,
}

/// Reads `metadata.managedFields`.
pub fn read_managed(obj: &Value) -> Vec<ManagedEntry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| ManagedEntry {
                    manager: e["manager"].as_str().unwrap_or("").into(),
                    operation: e["operation"].as_str().unwrap_or("").into(),
                    api_version: e["apiVersion"].as_str().unwrap_or("").into(),
                    time: e["time"].as_str().unwrap_or("").into(),
                    fields: from_fields_v1(&e["fieldsV1"]),
                    subresource: e["subresource"].as_str().map(str::to_string),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Writes `metadata.managedFields`.
pub fn write_managed(obj: &mut Value, entries: &[ManagedEntry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&e.fields),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            m.remove("managedFields");
        } else {
            m.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Records a non-apply write by `manager`: it takes the fields it changed.
///
/// Works on the `fieldsV1` trees in place when they are in the canonical form
/// [`to_fields_v1`] writes (see [`record_update_in_place`]), so that a small change
/// to a large object costs the walk of its managed fields, not a decoded field set
/// per manager and a hashed path per field; other trees go the way of
/// [`record_update_by_sets`], whose result is the definition.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    keys: MergeKeys,
    now: &str,
) {
    let mut changed = FieldSet::new();
    diff(old, new, &mut Vec::new(), keys, &mut changed);
    let req = UpdateRecord {
        manager,
        api_version,
        keys,
        now,
    };
    if !record_update_in_place(old, new, &req, &changed) {
        record_update_by_sets(old, new, &req, changed);
    }
}

/// Who made a non-apply write, for [`record_update`].
struct UpdateRecord<'a> {
    manager: &'a str,
    api_version: &'a str,
    keys: MergeKeys,
    now: &'a str,
}

/// [`record_update`] on decoded field sets: the entries lose the paths `new` no longer
/// has and, but for the writer's own, the paths it changed; the writer's `Update`
/// entry gains them.
fn record_update_by_sets(
    old: Option<&Value>,
    new: &mut Value,
    req: &UpdateRecord<'_>,
    changed: FieldSet,
) {
    let UpdateRecord {
        manager,
        api_version,
        keys,
        now,
    } = *req;
    let mut entries = match old {
        Some(o) if new.pointer("/metadata/managedFields").is_none() => read_managed(o),
        _ => read_managed(new),
    };
    let new_set: HashSet<FieldPath> = field_values(new, keys).into_keys().collect();
    let mut touched = false;
    for e in entries.iter_mut() {
        let before = e.fields.len();
        e.fields
            .retain(|p| new_set.contains(p) && (e.manager == manager || !changed.contains(p)));
        touched |= before != e.fields.len();
    }
    if !changed.is_empty() {
        touched = true;
        match entries
            .iter_mut()
            .find(|e| e.manager == manager && e.operation == "Update")
        {
            Some(e) => {
                e.fields.extend(changed);
                e.time = now.to_string();
            }
            None => entries.push(ManagedEntry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: api_version.to_string(),
                time: now.to_string(),
                fields: changed,
                subresource: None,
            }),
        }
    }
    if touched || new.pointer("/metadata/managedFields").is_none() {
        write_managed(new, &entries);
    }
}

/// A `managedFields` entry whose `fieldsV1` stays JSON, edited in place.
struct TreeEntry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    fields: Map<String, Value>,
}

/// [`record_update_by_sets`] done on the `fieldsV1` trees themselves, when every
/// tree is canonical (as [`to_fields_v1`] writes it); returns `false`, having changed
/// nothing, when one is not. Same result: each tree loses the paths `new` does not
/// have (found by walking the tree along `new`) and the changed ones the writer does
/// not own, the writer's tree gains the changed paths, and the entries are written
/// as [`write_managed`] writes them.
fn record_update_in_place(
    old: Option<&Value>,
    new: &mut Value,
    req: &UpdateRecord<'_>,
    changed: &FieldSet,
) -> bool {
    const POINTER: &str = "/metadata/managedFields";
    let from_old = old.is_some() && new.pointer(POINTER).is_none();
    let source = if from_old {
        old.and_then(|o| o.pointer(POINTER))
    } else {
        new.pointer(POINTER)
    };
    let list = source
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    if !list
        .iter()
        .all(|e| e.get("fieldsV1").is_none_or(canonical_tree))
    {
        return false;
    }
    let text = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
    let mut entries: Vec<TreeEntry> = list
        .iter()
        .map(|e| TreeEntry {
            manager: text(e, "manager").unwrap_or_default(),
            operation: text(e, "operation").unwrap_or_default(),
            api_version: text(e, "apiVersion").unwrap_or_default(),
            time: text(e, "time").unwrap_or_default(),
            subresource: text(e, "subresource"),
            fields: Map::new(),
        })
        .collect();
    // The trees: copied from `old`, or taken out of `new` (and put back if unchanged).
    if from_old {
        for (entry, e) in entries.iter_mut().zip(list) {
            if let Some(Value::Object(m)) = e.get("fieldsV1") {
                entry.fields = m.clone();
            }
        }
    } else if let Some(Value::Array(list)) = new.pointer_mut(POINTER) {
        for (entry, e) in entries.iter_mut().zip(list.iter_mut()) {
            if let Some(Value::Object(m)) = e.get_mut("fieldsV1") {
                entry.fields = std::mem::take(m);
            }
        }
    }
    let mut touched = false;
    for e in entries.iter_mut() {
        let drop_changed = (e.manager != req.manager).then_some(changed);
        touched |= prune_tree(
            &mut e.fields,
            Some(&*new),
            &mut Vec::new(),
            req.keys,
            drop_changed,
        );
    }
    if !changed.is_empty() {
        touched = true;
        match entries
            .iter_mut()
            .find(|e| e.manager == req.manager && e.operation == "Update")
        {
            Some(e) => {
                let mut unsorted = false;
                for p in changed {
                    unsorted |= insert_path(&mut e.fields, p);
                }
                if unsorted {
                    sort_tree(&mut e.fields);
                }
                e.time = req.now.to_string();
            }
            None => entries.push(TreeEntry {
                manager: req.manager.to_string(),
                operation: "Update".into(),
                api_version: req.api_version.to_string(),
                time: req.now.to_string(),
                subresource: None,
                fields: match to_fields_v1(changed) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                },
            }),
        }
    }
    if touched || new.pointer(POINTER).is_none() {
        let list: Vec<Value> = entries
            .into_iter()
            .filter(|e| !e.fields.is_empty())
            .map(|e| {
                let mut v = json!({
                    "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                    "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": Value::Object(e.fields),
                });
                if let Some(s) = e.subresource {
                    v["subresource"] = json!(s);
                }
                v
            })
            .collect();
        if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut) {
            if list.is_empty() {
                m.remove("managedFields");
            } else {
                m.insert("managedFields".into(), Value::Array(list));
            }
        }
    } else if let Some(Value::Array(list)) = new.pointer_mut(POINTER) {
        // Nothing changed: the trees go back where they were taken from.
        for (entry, e) in entries.into_iter().zip(list.iter_mut()) {
            if let Some(Value::Object(m)) = e.get_mut("fieldsV1") {
                *m = entry.fields;
            }
        }
    }
    true
}

/// Which kind of path step a `fieldsV1` key is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Field,
    Key,
    Val,
}

fn step_of(k: &str) -> Option<(Step, &str)> {
    if let Some(f) = k.strip_prefix("f:") {
        Some((Step::Field, f))
    } else if let Some(x) = k.strip_prefix("k:") {
        Some((Step::Key, x))
    } else {
        k.strip_prefix("v:").map(|x| (Step::Val, x))
    }
}

/// Whether `v` is a `fieldsV1` tree exactly as [`to_fields_v1`] writes its own
/// decoding: objects all the way down, keys sorted, `.` (an empty object) only in
/// the nodes of keyed items, empty objects only as the leaves of field and value
/// paths, and no paths below a value.
fn canonical_tree(v: &Value) -> bool {
    fn node(m: &Map<String, Value>, last: Option<Step>) -> bool {
        let mut prev: Option<&str> = None;
        for (k, child) in m {
            if prev.is_some_and(|p| p >= k.as_str()) {
                return false;
            }
            prev = Some(k);
            let Value::Object(c) = child else {
                return false;
            };
            if k == "." {
                if last != Some(Step::Key) || !c.is_empty() {
                    return false;
                }
                continue;
            }
            let Some((step, _)) = step_of(k) else {
                return false;
            };
            let ok = match (step, c.is_empty()) {
                (Step::Key, true) => false,
                (_, true) => true,
                (Step::Val, false) => false,
                (_, false) => node(c, Some(step)),
            };
            if !ok {
                return false;
            }
        }
        true
    }
    match v {
        Value::Object(m) => node(m, None),
        _ => false,
    }
}

/// The key text of `item` in a list keyed by `key` (as [`item_key`] writes it), for
/// every item, the first of a key winning.
fn keyed_index<'a>(items: &'a [Value], key: &str) -> HashMap<String, &'a Value> {
    let mut index = HashMap::with_capacity(items.len());
    for it in items {
        if let Some(k) = item_key(it, key) {
            index.entry(k).or_insert(it);
        }
    }
    index
}

/// Removes from the canonical tree `t` of the paths under `path` those that
/// [`field_values`] does not find in the new object, where `at` is the value it
/// reaches at `path` (`None`: it reaches nothing there), and those in `drop`.
/// Returns whether it removed any; nodes left empty go too.
fn prune_tree(
    t: &mut Map<String, Value>,
    at: Option<&Value>,
    path: &mut FieldPath,
    keys: MergeKeys,
    drop: Option<&FieldSet>,
) -> bool {
    let dropped = |p: &FieldPath| drop.is_some_and(|d| d.contains(p));
    let items = match at {
        Some(Value::Array(a)) => Some(a.as_slice()),
        _ => None,
    };
    let list_key = items.and_then(|_| keys.key_for(&schema_path(path)));
    let finalizers =
        items.is_some() && list_key.is_none() && schema_path(path) == "metadata.finalizers";
    let mut index: Option<HashMap<String, &Value>> = None;
    let mut removed = false;
    t.retain(|k, child| {
        if k == "." {
            // The keyed item at `path` itself.
            let keep = at.is_some() && !dropped(path);
            removed |= !keep;
            return keep;
        }
        let Some((step, name)) = step_of(k) else {
            removed = true;
            return false;
        };
        let next = match step {
            Step::Field => match at {
                Some(Value::Object(m)) if !m.is_empty() => m.get(name),
                _ => None,
            },
            Step::Key => match (items, list_key) {
                (Some(items), Some(key)) => index
                    .get_or_insert_with(|| keyed_index(items, key))
                    .get(name)
                    .copied(),
                _ => None,
            },
            Step::Val => items.filter(|_| finalizers).and_then(|a| {
                // The item whose JSON text the key is, as `walk` names it.
                a.iter()
                    .find(|it| serde_json::to_string(it).is_ok_and(|t| t == name))
            }),
        };
        path.push(match step {
            Step::Field => PathElem::Field(name.to_string()),
            Step::Key => PathElem::Key(name.to_string()),
            Step::Val => PathElem::Val(name.to_string()),
        });
        let next = next.filter(|_| !skipped(path));
        let keep = match child.as_object_mut() {
            Some(c) if c.is_empty() => {
                // A leaf: a path of its own.
                let present = next.is_some_and(|n| step != Step::Field || leaf_at(n, path, keys));
                let keep = present && !dropped(path);
                removed |= !keep;
                keep
            }
            Some(c) => {
                removed |= prune_tree(c, next, path, keys, drop);
                !c.is_empty()
            }
            None => {
                removed = true;
                false
            }
        };
        path.pop();
        keep
    });
    removed
}

/// Whether [`field_values`], reaching `v` at the field path `path`, records `path`
/// itself (rather than only paths below it).
fn leaf_at(v: &Value, path: &[PathElem], keys: MergeKeys) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(_) => {
            let sp = schema_path(path);
            keys.key_for(&sp).is_none() && sp != "metadata.finalizers"
        }
        _ => true,
    }
}

/// Adds `path` to the canonical tree `root` as [`to_fields_v1`] would; returns
/// whether a key went in out of order (the tree then needs [`sort_tree`]).
fn insert_path(root: &mut Map<String, Value>, path: &[PathElem]) -> bool {
    fn put(m: &mut Map<String, Value>, k: String) -> (bool, &mut Map<String, Value>) {
        let mut unsorted = false;
        if !m.contains_key(&k) {
            unsorted = m.keys().next_back().is_some_and(|last| *last > k);
        }
        let entry = m.entry(k).or_insert_with(|| json!({}));
        if !entry.is_object() {
            *entry = json!({});
        }
        match entry {
            Value::Object(c) => (unsorted, c),
            _ => unreachable!("an object was just put there"),
        }
    }
    let mut unsorted = false;
    let mut cur = root;
    for p in path {
        let k = match p {
            PathElem::Field(f) => format!("f:{f}"),
            PathElem::Key(k) => format!("k:{k}"),
            PathElem::Val(v) => format!("v:{v}"),
        };
        let (u, next) = put(cur, k);
        unsorted |= u;
        cur = next;
    }
    if matches!(path.last(), Some(PathElem::Key(_))) {
        unsorted |= put(cur, ".".into()).0;
    }
    unsorted
}

/// Sorts the keys of every node of a tree that is out of order.
fn sort_tree(m: &mut Map<String, Value>) {
    let sorted = m.keys().zip(m.keys().skip(1)).all(|(a, b)| a < b);
    if !sorted {
        m.sort_keys();
    }
    for child in m.values_mut() {
        if let Value::Object(c) = child {
            sort_tree(c);
        }
    }
}

/// The managed fields `record_update` writes both ways, for the property tests:
/// in place (when it applies) and by field sets.
#[cfg(test)]
pub(super) fn record_update_both_ways(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    keys: MergeKeys,
) -> (Option<Value>, Value) {
    let mut changed = FieldSet::new();
    diff(old, new, &mut Vec::new(), keys, &mut changed);
    let req = UpdateRecord {
        manager,
        api_version: "v1",
        keys,
        now: "2026-01-01T00:00:00Z",
    };
    let mut in_place = new.clone();
    let applied = record_update_in_place(old, &mut in_place, &req, &changed);
    let mut by_sets = new.clone();
    record_update_by_sets(old, &mut by_sets, &req, changed);
    (applied.then_some(in_place), by_sets)
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
mod tests {
    use super::*;

    const KEYS: MergeKeys = MergeKeys(&[("spec.tags", "name")]);

    fn gr() -> GroupResource {
        GroupResource::new("image.openshift.io", "imagestreams")
    }

    fn run(
        live: Option<&Value>,
        applied: &Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, ApiError> {
        let gr = gr();
        let req = ApplyRequest {
            manager,
            force,
            api_version: "image.openshift.io/v1",
            keys: KEYS,
            gr: &gr,
            name: "is",
            now: "2026-01-01T00:00:00Z",
        };
        apply(live, applied, &req).map(|a| a.object)
    }

    #[test]
    fn create_then_remove_a_field_the_manager_dropped() {
        let a1 = json!({"metadata": {"name": "is", "labels": {"a": "1", "b": "2"}},
                        "spec": {"lookupPolicy": {"local": true}, "tags": [{"name": "t1"}, {"name": "t2"}]}});
        let live = run(None, &a1, "kubectl", false).unwrap();
        assert_eq!(live["metadata"]["managedFields"][0]["operation"], "Apply");
        let fv1 = &live["metadata"]["managedFields"][0]["fieldsV1"];
        assert!(fv1["f:spec"]["f:tags"].get("k:{\"name\":\"t1\"}").is_some());
        let a2 = json!({"metadata": {"name": "is", "labels": {"a": "1"}},
                        "spec": {"lookupPolicy": {"local": true}, "tags": [{"name": "t1"}]}});
        let live2 = run(Some(&live), &a2, "kubectl", false).unwrap();
        assert_eq!(live2["metadata"]["labels"], json!({"a": "1"}));
        assert_eq!(live2["spec"]["tags"], json!([{"name": "t1"}]));
    }

    #[test]
    fn reapply_unchanged_changes_nothing() {
        let a1 = json!({"metadata": {"name": "is"}, "spec": {"lookupPolicy": {"local": true}}});
        let live = run(None, &a1, "kubectl", false).unwrap();
        let again = run(Some(&live), &a1, "kubectl", false).unwrap();
        assert_eq!(live, again);
    }

    #[test]
    fn conflicting_managers_need_force() {
        let live = run(
            None,
            &json!({"spec": {"lookupPolicy": {"local": true}}}),
            "a",
            false,
        )
        .unwrap();
        let err = run(
            Some(&live),
            &json!({"spec": {"lookupPolicy": {"local": false}}}),
            "b",
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("conflict with \"a\""), "{err}");
        let forced = run(
            Some(&live),
            &json!({"spec": {"lookupPolicy": {"local": false}}}),
            "b",
            true,
        )
        .unwrap();
        assert_eq!(forced["spec"]["lookupPolicy"]["local"], false);
        let managers: Vec<&str> = forced["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, vec!["b"]);
    }

    #[test]
    fn shared_fields_survive_one_manager_dropping_them() {
        let live = run(
            None,
            &json!({"metadata": {"labels": {"x": "1"}}}),
            "a",
            false,
        )
        .unwrap();
        let live = run(
            Some(&live),
            &json!({"metadata": {"labels": {"x": "1"}}}),
            "b",
            false,
        )
        .unwrap();
        let live = run(Some(&live), &json!({"metadata": {}}), "a", false).unwrap();
        assert_eq!(live["metadata"]["labels"]["x"], "1");
    }

    #[test]
    fn updates_take_ownership_of_changed_fields() {
        let live = run(
            None,
            &json!({"spec": {"lookupPolicy": {"local": true}}}),
            "a",
            false,
        )
        .unwrap();
        let mut new = live.clone();
        new["spec"]["lookupPolicy"]["local"] = json!(false);
        record_update(Some(&live), &mut new, "editor", "v1", KEYS, "t");
        let entries = read_managed(&new);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].manager, "editor");
        // And an apply of the old value by "a" now conflicts with "editor".
        let err = run(
            Some(&new),
            &json!({"spec": {"lookupPolicy": {"local": true}}}),
            "a",
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("editor"));
    }

    #[test]
    fn fields_v1_round_trip() {
        let set = field_set(
            &json!({"metadata": {"labels": {"a": "b"}}, "spec": {"tags": [{"name": "x", "from": {"name": "y"}}]}}),
            KEYS,
        );
        assert_eq!(from_fields_v1(&to_fields_v1(&set)), set);
    }
}
