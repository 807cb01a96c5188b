//! `metadata.managedFields`: field sets as `fieldsV1` trees, the managers' entries,
//! and what a non-apply write records (`record_update`), in place when the trees are
//! in the form moor writes, else by field sets.

use super::*;

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
pub(super) struct UpdateRecord<'a> {
    manager: &'a str,
    api_version: &'a str,
    keys: MergeKeys,
    now: &'a str,
}

/// [`record_update`] on decoded field sets: the entries lose the paths `new` no longer
/// has and, but for the writer's own, the paths it changed; the writer's `Update`
/// entry gains them.
pub(super) fn record_update_by_sets(
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
pub(super) struct TreeEntry {
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
pub(super) fn record_update_in_place(
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
pub(super) enum Step {
    Field,
    Key,
    Val,
}

pub(super) fn step_of(k: &str) -> Option<(Step, &str)> {
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
pub(super) fn canonical_tree(v: &Value) -> bool {
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
pub(super) fn keyed_index<'a>(items: &'a [Value], key: &str) -> HashMap<String, &'a Value> {
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
pub(super) fn prune_tree(
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
pub(super) fn leaf_at(v: &Value, path: &[PathElem], keys: MergeKeys) -> bool {
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
pub(super) fn insert_path(root: &mut Map<String, Value>, path: &[PathElem]) -> bool {
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
pub(super) fn sort_tree(m: &mut Map<String, Value>) {
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
pub(crate) fn record_update_both_ways(
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
