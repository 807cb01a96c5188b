//! The generic, store-backed [`RestStorage`]: kube-apiserver's `registry/generic` in
//! small. A per-kind [`Strategy`] supplies decoding, defaults, validation and tables;
//! this module does keys, resourceVersions, uids, generations, preconditions, dry runs,
//! paging and watches. Calls the store and the strategy, nothing else.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures::StreamExt;
use moor_api::validation::FieldError;
use moor_store::{EventKind, KeyValue, Revision, Store, StoreError};
use serde_json::{Value, json};

use super::error::ApiError;
use super::patch::MergeKeys;
use super::resource::*;
use super::table::TableDef;

mod list;
mod rest;
mod turns;

/// Per-kind behaviour plugged into [`StoredResource`].
pub trait Strategy: Send + Sync + 'static {
    /// The resource this strategy serves.
    fn def(&self) -> &ResourceDef;
    /// Decodes a body into canonical JSON plus the paths of unknown fields.
    fn decode(&self, body: Value) -> Result<(Value, Vec<String>), String>;
    /// Columns for Table output.
    fn table(&self) -> TableDef {
        TableDef::default_columns()
    }
    /// Whether `metadata.generation` follows spec changes.
    fn tracks_generation(&self) -> bool {
        false
    }
    /// Defaults and server-owned fields on create.
    fn prepare_for_create(&self, _obj: &mut Value) {}
    /// Defaults and server-owned fields on update of the main resource.
    fn prepare_for_update(&self, _new: &mut Value, _old: &Value) {}
    /// Runs after the generation was bumped (when the spec changed).
    fn finish_update(&self, _new: &mut Value, _old: &Value) {}
    /// Validation; an empty list accepts.
    fn validate(&self, _obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        Vec::new()
    }
    /// Computed fields added on every read (never stored).
    fn decorate(&self, _obj: &mut Value) {}
    /// Merge keys of lists, for strategic merge patch and server-side apply.
    fn merge_keys(&self) -> MergeKeys {
        MergeKeys::default()
    }
    /// Whether stored bytes already carry what [`decorate`](Self::decorate) adds, so a
    /// list may serve them without parsing. The default decorates nothing.
    fn raw_is_decorated(&self, _raw: &[u8], _ns: Option<&str>, _name: &str) -> bool {
        true
    }
}

/// Items examined per store page while filling a selector-filtered list.
const SCAN_PAGE: usize = 500;
/// How long a read-modify-write keeps retrying when other writers win the race.
/// Every lost race means another write landed, so the loop makes progress; like
/// kube-apiserver's `GuaranteedUpdate` it is bounded by time, not by attempts.
const UPDATE_RETRY_DEADLINE: Duration = Duration::from_secs(30);

/// Serving knobs shared by every stored resource.
#[derive(Clone, Debug)]
pub struct ServingConfig {
    /// How often a watch that asked for bookmarks gets one.
    pub bookmark_interval: Duration,
    /// How long a watch lasts when the client gives no `timeoutSeconds`.
    pub default_watch_timeout: Duration,
}

impl Default for ServingConfig {
    fn default() -> Self {
        ServingConfig {
            bookmark_interval: Duration::from_secs(30),
            default_watch_timeout: Duration::from_secs(1800),
        }
    }
}

/// A resource kept in the store, one key per object.
pub struct StoredResource {
    store: Arc<dyn Store>,
    strategy: Arc<dyn Strategy>,
    config: ServingConfig,
    turns: turns::WriteTurns,
}

/// The store key prefix of a resource: `/registry/<group|core>/<plural>/`.
pub fn resource_prefix(def: &ResourceDef) -> String {
    let group = if def.group.is_empty() {
        "core"
    } else {
        def.group
    };
    format!("/registry/{group}/{}/", def.plural)
}

/// The store key of one object.
pub fn object_key(def: &ResourceDef, ns: Option<&str>, name: &str) -> String {
    match (def.namespaced, ns) {
        (true, Some(ns)) => format!("{}{ns}/{name}", resource_prefix(def)),
        _ => format!("{}{name}", resource_prefix(def)),
    }
}

/// The store key of a namespace object.
pub fn namespace_key(ns: &str) -> String {
    format!("/registry/core/namespaces/{ns}")
}

/// Kubernetes' checks of `metadata.labels` and `metadata.annotations`, which hold for
/// every kind.
pub fn validate_labels_and_annotations(obj: &Value) -> Vec<moor_api::validation::FieldError> {
    use moor_api::validation::FieldPath;
    let map = |field: &str| -> std::collections::BTreeMap<String, String> {
        obj.pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let meta = FieldPath::new("metadata");
    let mut errors = moor_api::labels::validate_labels(&map("labels"), &meta.child("labels"));
    errors.extend(moor_api::labels::validate_annotations(
        &map("annotations"),
        &meta.child("annotations"),
    ));
    errors
}

/// What one read-modify-write step produced.
enum NextVersion {
    /// The update changed nothing: no write.
    Unchanged(Value),
    /// A dry run's result, not written.
    DryRun(Value),
    /// The object to write, its stored bytes, and the client's resourceVersion
    /// precondition if it set one.
    Write {
        object: Value,
        bytes: Bytes,
        precondition: Option<String>,
    },
}

/// Runs CPU-heavy request work (decoding, patching, validating and encoding a large
/// object) without holding an async worker: on the multi-threaded runtime the worker
/// hands its other tasks to another thread meanwhile (`block_in_place`), so health
/// checks and small requests keep being answered. Elsewhere (a current-thread
/// runtime in tests) it just runs.
pub fn cpu_bound<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Stored bytes beyond which decoding an object is taken off the async workers
/// ([`cpu_bound`]): below it, handing the worker over costs more than the decode.
pub const LARGE_OBJECT_BYTES: usize = 64 * 1024;

/// JSON values (objects, arrays and scalars) beyond which [`is_large`] calls a decoded
/// object large: about as many as [`LARGE_OBJECT_BYTES`] of JSON hold.
const LARGE_OBJECT_VALUES: usize = 4_096;

/// Whether `v` is large enough that encoding it, or decoding it into a typed value,
/// belongs off the async workers. Counts its values up to [`LARGE_OBJECT_VALUES`] and
/// stops there, so the check costs little next to what it guards.
pub fn is_large(v: &Value) -> bool {
    let mut budget = LARGE_OBJECT_VALUES;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        budget = match budget.checked_sub(1) {
            Some(b) => b,
            None => return true,
        };
        match v {
            Value::Object(m) => stack.extend(m.values()),
            Value::Array(a) => stack.extend(a.iter()),
            _ => {}
        }
    }
    false
}

/// Whether a request body is large enough that parsing it, and the write step it
/// asks for, belong off the async workers ([`cpu_bound`]): over
/// [`LARGE_OBJECT_BYTES`]. Smaller bodies are parsed and written on the worker, since
/// `block_in_place` hands the worker's core to another thread each time (the
/// blocking pool grew to a thread per concurrent client, each with its own
/// allocator pages). What a small body can make the server build is bounded apart
/// (`limits`: JSON patch operations, copies and depth).
pub fn is_large_body(body: &[u8]) -> bool {
    body.len() > LARGE_OBJECT_BYTES
}

/// [`cpu_bound`] when `heavy`, else `f` right here: for work whose cost follows the
/// size of an object, most of which are small.
pub fn cpu_bound_if<T>(heavy: bool, f: impl FnOnce() -> T) -> T {
    if heavy { cpu_bound(f) } else { f() }
}

/// `metadata.resourceVersion` as a store revision.
pub fn parse_resource_version(rv: &str) -> Result<Revision, ApiError> {
    rv.parse::<Revision>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::BadRequest(format!("invalid resource version {rv:?}")))
}

/// `obj` without `metadata.resourceVersion`: a read-modify-write step returns this
/// so the write is not conditional on the version it read (the store's
/// compare-and-swap still guards it, and a lost race retries the step).
pub fn unconditional(mut obj: Value) -> Value {
    remove_meta(&mut obj, "resourceVersion");
    obj
}

/// The current time as Kubernetes writes timestamps.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or(jiff::Timestamp::now())
        .to_string()
}

/// A copy of `obj` with `status` (if any) left `null` in its place, for a status write
/// to fill in: the stored status is not copied only to be replaced (a failing
/// 10,000-tag stream's status is a large part of it).
fn copy_but_status(obj: &Value) -> Value {
    match obj {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if k == "status" {
                        Value::Null
                    } else {
                        v.clone()
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

fn set_meta(obj: &mut Value, field: &str, v: Value) {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"][field] = v;
}

fn remove_meta(obj: &mut Value, field: &str) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove(field);
    }
}

/// Serializes an object as it is stored: `metadata` without the fields the store
/// itself supplies (`resourceVersion`) or nobody keeps (`selfLink`).
struct StoredForm<'a>(&'a Value);

impl serde::Serialize for StoredForm<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        /// `metadata` without the two fields.
        struct Meta<'a>(&'a serde_json::Map<String, Value>);
        impl serde::Serialize for Meta<'_> {
            fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                let kept = self
                    .0
                    .iter()
                    .filter(|(k, _)| *k != "resourceVersion" && *k != "selfLink");
                let mut map = ser.serialize_map(None)?;
                for (k, v) in kept {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
        let Value::Object(top) = self.0 else {
            return self.0.serialize(ser);
        };
        let mut map = ser.serialize_map(Some(top.len()))?;
        for (k, v) in top {
            match (k.as_str(), v) {
                ("metadata", Value::Object(m)) => map.serialize_entry(k, &Meta(m))?,
                _ => map.serialize_entry(k, v)?,
            }
        }
        map.end()
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct ContinueToken {
    rv: Revision,
    start: String,
}

impl StoredResource {
    /// A stored resource with the given strategy.
    pub fn new(store: Arc<dyn Store>, strategy: Arc<dyn Strategy>, config: ServingConfig) -> Self {
        StoredResource {
            store,
            strategy,
            config,
            turns: turns::WriteTurns::default(),
        }
    }

    fn gr(&self) -> GroupResource {
        self.strategy.def().group_resource()
    }

    fn key(&self, ns: Option<&str>, name: &str) -> String {
        object_key(self.strategy.def(), ns, name)
    }

    fn prefix(&self, ns: Option<&str>) -> String {
        let p = resource_prefix(self.strategy.def());
        match (self.strategy.def().namespaced, ns) {
            (true, Some(ns)) => format!("{p}{ns}/"),
            _ => p,
        }
    }

    /// Turns a stored value into the object clients see.
    fn materialize(&self, kv: &KeyValue) -> Result<Value, ApiError> {
        let mut obj: Value = serde_json::from_slice(&kv.value).map_err(ApiError::internal)?;
        set_meta(
            &mut obj,
            "resourceVersion",
            json!(kv.mod_revision.to_string()),
        );
        self.strategy.decorate(&mut obj);
        Ok(obj)
    }

    /// One read-modify-write step on the stored `kv`: the caller's update, then the
    /// checks, defaults and encoding of the result. CPU-bound (a large object is
    /// decoded, patched and validated here), so the caller runs it off the runtime.
    fn next_version(
        &self,
        kv: &KeyValue,
        ns: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        update: &UpdateFn<'_>,
        dry_run: bool,
    ) -> Result<NextVersion, ApiError> {
        let old = self.materialize(kv)?;
        let old_rv = kv.mod_revision.to_string();
        let mut new = update(Some(&old))?;
        if meta_str(&new, "name").is_some_and(|n| n != name) {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&new, "name").unwrap_or("")
            )));
        }
        if self.def().namespaced
            && let (Some(body_ns), Some(ns)) = (meta_str(&new, "namespace"), ns)
            && body_ns != ns
            && !body_ns.is_empty()
        {
            return Err(ApiError::BadRequest(
                        "the namespace of the provided object does not match the namespace sent on the request".into(),
                    ));
        }
        // A resourceVersion in the new object is a precondition set by the client.
        let precondition = meta_str(&new, "resourceVersion")
            .filter(|rv| !rv.is_empty())
            .map(str::to_string);
        if let Some(rv) = &precondition {
            parse_resource_version(rv)?;
            if *rv != old_rv {
                return Err(ApiError::stale(&self.gr(), name));
            }
        }
        set_meta(&mut new, "name", json!(name));
        self.prepare_update(&mut new, &old, subresource)?;
        self.validate(&new, Some(&old))?;
        set_meta(&mut new, "resourceVersion", json!(old_rv));
        self.strategy.decorate(&mut new);
        if new == old {
            // No change: no write, no new resourceVersion, no watch event.
            return Ok(NextVersion::Unchanged(old));
        }
        if dry_run {
            return Ok(NextVersion::DryRun(new));
        }
        let bytes = Self::encode(&new)?;
        Ok(NextVersion::Write {
            object: new,
            bytes,
            precondition,
        })
    }

    /// The stored bytes of `obj`: all of it but `metadata.resourceVersion` and
    /// `metadata.selfLink`, serialized without copying the object.
    fn encode(obj: &Value) -> Result<Bytes, ApiError> {
        let encoded = serde_json::to_vec(&StoredForm(obj)).map_err(ApiError::internal)?;
        // Copied into a buffer of its exact size: the watch cache keeps these bytes as
        // long as the object lives, and `to_vec`'s doubling leaves up to half of its
        // buffer unused (an allocator's shrinking realloc may keep the whole block).
        Ok(Bytes::copy_from_slice(&encoded))
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
        let mut errors = validate_labels_and_annotations(obj);
        errors.extend(self.strategy.validate(obj, old));
        if errors.is_empty() {
            return Ok(());
        }
        let name = meta_str(obj, "name").unwrap_or("");
        Err(ApiError::invalid(
            &self.gr(),
            self.strategy.def().kind,
            name,
            &errors,
        ))
    }

    async fn ensure_namespace(&self, ns: Option<&str>) -> Result<(), ApiError> {
        let (true, Some(ns)) = (self.strategy.def().namespaced, ns) else {
            return Ok(());
        };
        if self.store.get(&namespace_key(ns)).await?.is_none() {
            return Err(ApiError::NotFound {
                gr: GroupResource::new("", "namespaces"),
                name: ns.into(),
            });
        }
        Ok(())
    }

    /// Fills the fields the server owns on a new object.
    fn stamp_new(&self, obj: &mut Value, ns: Option<&str>) {
        let def = self.strategy.def();
        obj["apiVersion"] = json!(def.api_version());
        obj["kind"] = json!(def.kind);
        if def.namespaced {
            if let Some(ns) = ns {
                set_meta(obj, "namespace", json!(ns));
            }
        } else {
            remove_meta(obj, "namespace");
        }
        set_meta(obj, "uid", json!(uuid::Uuid::new_v4().to_string()));
        set_meta(obj, "creationTimestamp", json!(now_rfc3339()));
        remove_meta(obj, "resourceVersion");
        remove_meta(obj, "deletionTimestamp");
        if self.strategy.tracks_generation() {
            set_meta(obj, "generation", json!(1));
        } else {
            remove_meta(obj, "generation");
        }
        self.strategy.prepare_for_create(obj);
    }

    async fn create_inner(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        self.ensure_namespace(ns).await?;
        if meta_str(&obj, "name").unwrap_or("").is_empty() {
            match meta_str(&obj, "generateName").filter(|g| !g.is_empty()) {
                Some(prefix) => {
                    let suffix: String = uuid::Uuid::new_v4().simple().to_string()[..5].to_string();
                    let name = format!("{prefix}{suffix}");
                    set_meta(&mut obj, "name", json!(name));
                }
                None => {
                    return Err(ApiError::invalid(
                        &self.gr(),
                        self.strategy.def().kind,
                        "",
                        &[FieldError::required(
                            "metadata.name",
                            "name or generateName is required",
                        )],
                    ));
                }
            }
        }
        self.stamp_new(&mut obj, ns);
        self.validate(&obj, None)?;
        let name = meta_str(&obj, "name").unwrap_or_default().to_string();
        let key = self.key(ns, &name);
        if ctx.dry_run {
            if self.store.get(&key).await?.is_some() {
                return Err(ApiError::AlreadyExists {
                    gr: self.gr(),
                    name,
                });
            }
            self.strategy.decorate(&mut obj);
            return Ok(obj);
        }
        self.strategy.decorate(&mut obj);
        match self.store.create(&key, Self::encode(&obj)?).await {
            Ok(rev) => {
                set_meta(&mut obj, "resourceVersion", json!(rev.to_string()));
                self.strategy.decorate(&mut obj);
                Ok(obj)
            }
            Err(StoreError::AlreadyExists(_)) => Err(ApiError::AlreadyExists {
                gr: self.gr(),
                name,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Applies the rules of an update to `new` given the stored `old`.
    fn prepare_update(
        &self,
        new: &mut Value,
        old: &Value,
        subresource: Option<&str>,
    ) -> Result<(), ApiError> {
        let def = self.strategy.def();
        if let Some(sub) = subresource {
            if sub != "status" || !def.subresources.contains(&"status") {
                return Err(ApiError::NoRoute);
            }
            // Only status changes through the status subresource.
            let status = new.as_object_mut().and_then(|o| o.remove("status"));
            // The step's result goes first, so that it and the copy are not alive
            // together.
            *new = Value::Null;
            *new = copy_but_status(old);
            match status {
                Some(s) => new["status"] = s,
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            return Ok(());
        }
        new["apiVersion"] = json!(def.api_version());
        new["kind"] = json!(def.kind);
        for field in [
            "uid",
            "creationTimestamp",
            "namespace",
            "generation",
            "deletionTimestamp",
        ] {
            match old.get("metadata").and_then(|m| m.get(field)) {
                Some(v) => set_meta(new, field, v.clone()),
                None => remove_meta(new, field),
            }
        }
        if def.subresources.contains(&"status") {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
        self.strategy.prepare_for_update(new, old);
        if self.strategy.tracks_generation() && new.get("spec") != old.get("spec") {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            set_meta(new, "generation", json!(g + 1));
        }
        self.strategy.finish_update(new, old);
        Ok(())
    }

    /// Scans the objects of a list, in key order, paging through the store and
    /// honouring `limit`/`continue`; `emit` turns a stored key-value into an item, or
    /// `None` when the selectors drop it.
    async fn scan<T>(
        &self,
        ns: Option<&str>,
        opts: &ListOptions,
        mut emit: impl FnMut(&KeyValue) -> Result<Option<T>, ApiError>,
    ) -> Result<(Vec<T>, String, Option<String>), ApiError> {
        let prefix = self.prefix(ns);
        let (read, mut start_after) = list::read_at(opts, &prefix)?;
        let mut revision = read.revision();
        // A name pinned by the field selector narrows the scan to one key.
        if let (Some(name), Some(ns)) = (opts.field_selector.pinned_name(), ns)
            && start_after.is_none()
        {
            let kv = self.store.get(&self.key(Some(ns), name)).await?;
            let rev = self.store.current_revision().await?;
            let mut items = Vec::new();
            if let Some(kv) = kv
                && let Some(item) = emit(&kv)?
            {
                items.push(item);
            }
            return Ok((items, rev.to_string(), None));
        }
        let limit = opts.limit.filter(|l| *l > 0);
        let mut items = Vec::new();
        let mut last_key: Option<String> = None;
        let mut more = false;
        loop {
            let want = limit.map(|l| l - items.len()).unwrap_or(usize::MAX);
            let store_opts = moor_store::ListOptions {
                revision,
                start_after: start_after.clone(),
                // Pages even without a limit: memory stays one page deep.
                limit: Some(want.clamp(1, SCAN_PAGE)),
            };
            let page = match revision {
                Some(_) => self.store.list(&prefix, store_opts).await?,
                None => list::first_page(self.store.as_ref(), &prefix, &read, store_opts).await?,
            };
            revision = Some(page.revision);
            for kv in &page.kvs {
                last_key = Some(kv.key.clone());
                if let Some(item) = emit(kv)? {
                    items.push(item);
                }
                if limit.is_some_and(|l| items.len() >= l) {
                    break;
                }
            }
            let consumed_all = last_key.as_ref() == page.kvs.last().map(|kv| &kv.key);
            if limit.is_some_and(|l| items.len() >= l) {
                more = page.more || !consumed_all;
                break;
            }
            if !page.more {
                break;
            }
            start_after = last_key.clone();
        }
        let rev = revision.unwrap_or(0);
        let continue_token = match (more, last_key) {
            (true, Some(start)) => {
                let raw = serde_json::to_vec(&ContinueToken { rv: rev, start })
                    .map_err(ApiError::internal)?;
                Some(URL_SAFE_NO_PAD.encode(raw))
            }
            _ => None,
        };
        Ok((items, rev.to_string(), continue_token))
    }

    async fn list_inner(
        &self,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ObjectList, ApiError> {
        let (items, resource_version, continue_token) = self
            .scan(ns, opts, |kv| {
                let obj = self.materialize(kv)?;
                let keep = opts.label_selector.matches_object(&obj)
                    && opts.field_selector.matches_object(&obj);
                Ok(keep.then_some(obj))
            })
            .await?;
        Ok(ObjectList {
            items,
            resource_version,
            continue_token,
            remaining: None,
        })
    }

    /// Appends the client's view of a stored value to `out`, without parsing it when
    /// possible: the resourceVersion is spliced into `metadata`, and the strategy
    /// confirms that its computed fields are already in place.
    fn encode_stored_into(&self, kv: &KeyValue, out: &mut Vec<u8>) -> Result<(), ApiError> {
        const META: &[u8] = b"\"metadata\":{";
        let name = kv.key.rsplit('/').next().unwrap_or("");
        let ns = if self.strategy.def().namespaced {
            kv.key.rsplit('/').nth(1)
        } else {
            None
        };
        let raw = kv.value.as_ref();
        // The first `"metadata":{` of a stored object is the top-level one: stored
        // objects are serialized kind, apiVersion, metadata first, and the pattern
        // cannot occur inside a JSON string (its quotes would be escaped).
        match memchr::memmem::find(raw, META) {
            Some(at) if self.strategy.raw_is_decorated(raw, ns, name) => {
                let insert = at + META.len();
                out.extend_from_slice(&raw[..insert]);
                out.extend_from_slice(b"\"resourceVersion\":\"");
                out.extend_from_slice(kv.mod_revision.to_string().as_bytes());
                out.push(b'"');
                if raw.get(insert) != Some(&b'}') {
                    out.push(b',');
                }
                out.extend_from_slice(&raw[insert..]);
                Ok(())
            }
            _ => serde_json::to_writer(out, &self.materialize(kv)?).map_err(ApiError::internal),
        }
    }
}

/// Decoded large objects ([`LARGE_OBJECT_BYTES`]) a watch may hold for its reader: a
/// reader slower than the decodes (a client reading a 1 MB stream's events as they
/// are written) then pins one decoded copy ahead, not a channel's worth of them.
pub const LARGE_EVENTS_AHEAD: usize = 1;

/// The producer side of [`async_stream_events`].
pub struct EventSender {
    tx: tokio::sync::mpsc::Sender<(WatchEvent, Option<tokio::sync::OwnedSemaphorePermit>)>,
    ahead: Arc<tokio::sync::Semaphore>,
}

/// Leave to decode one large object for the reader ([`EventSender::large_slot`]):
/// sent along with its event, given back when the reader takes that event.
pub struct LargeSlot(tokio::sync::OwnedSemaphorePermit);

/// The reader of a watch is gone.
#[derive(Debug)]
pub struct ReaderGone;

impl EventSender {
    /// Sends `ev`.
    pub async fn send(&self, ev: WatchEvent) -> Result<(), ReaderGone> {
        self.send_with(ev, None).await
    }

    /// Waits until fewer than [`LARGE_EVENTS_AHEAD`] decoded large objects wait for
    /// the reader. Taken before decoding one, and sent with it.
    pub async fn large_slot(&self) -> Result<LargeSlot, ReaderGone> {
        let permit = self.ahead.clone().acquire_owned().await;
        permit.map(LargeSlot).map_err(|_| ReaderGone)
    }

    /// Sends `ev`, holding `slot` until the reader takes it.
    pub async fn send_with(
        &self,
        ev: WatchEvent,
        slot: Option<LargeSlot>,
    ) -> Result<(), ReaderGone> {
        let held = slot.map(|s| s.0);
        self.tx.send((ev, held)).await.map_err(|_| ReaderGone)
    }
}

/// Runs `producer` on a task and streams what it sends; the task ends when the
/// receiver is dropped.
pub fn async_stream_events<F, Fut>(producer: F) -> WatchEvents
where
    F: FnOnce(EventSender) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    // Few decoded objects wait here: a client that stops reading holds at most these
    // (of which at most [`LARGE_EVENTS_AHEAD`] large ones) plus its store watcher's
    // byte budget, after which the watch ends.
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let ahead = Arc::new(tokio::sync::Semaphore::new(LARGE_EVENTS_AHEAD));
    tokio::spawn(producer(EventSender { tx, ahead }));
    // The slot goes back as the reader takes its event.
    tokio_stream::wrappers::ReceiverStream::new(rx)
        .map(|(ev, _slot)| ev)
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static DEF: ResourceDef = ResourceDef {
        group: "test.moor.io",
        version: "v1",
        kind: "Thing",
        list_kind: "ThingList",
        plural: "things",
        singular: "thing",
        short_names: &[],
        categories: &[],
        namespaced: false,
        verbs: &[],
        subresources: &[],
        selectable_fields: &[],
    };

    /// A strategy whose `decorate` of a large object asks a task of the runtime to
    /// answer: on the runtime's only worker, that task could not run until it returns.
    #[derive(Default)]
    struct Probe {
        large: AtomicUsize,
        starved: AtomicUsize,
    }

    impl Strategy for Arc<Probe> {
        fn def(&self) -> &ResourceDef {
            &DEF
        }
        fn decode(&self, body: Value) -> Result<(Value, Vec<String>), String> {
            Ok((body, vec![]))
        }
        fn decorate(&self, obj: &mut Value) {
            if !is_large(obj) {
                return;
            }
            self.large.fetch_add(1, Ordering::SeqCst);
            let (tx, rx) = std::sync::mpsc::channel();
            tokio::spawn(async move {
                let _ = tx.send(());
            });
            // Not a timing check: the wait ends at once unless the worker is held,
            // when it would never end; the bound only turns that hang into a failure.
            if rx.recv_timeout(Duration::from_secs(20)).is_err() {
                self.starved.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    #[test]
    fn a_large_watch_event_is_decoded_off_the_async_workers() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let probe = Arc::new(Probe::default());
        let res = StoredResource::new(
            Arc::new(moor_store::MemoryStore::new()),
            Arc::new(probe.clone()),
            ServingConfig::default(),
        );
        rt.block_on(async {
            let ctx = RequestContext::default();
            let first = res
                .create(&ctx, None, json!({"metadata": {"name": "small"}}))
                .await
                .unwrap();
            let opts = ListOptions {
                resource_version: first["metadata"]["resourceVersion"]
                    .as_str()
                    .map(str::to_string),
                ..Default::default()
            };
            let mut events = res.watch(&ctx, None, &opts).await.unwrap();
            let items: Vec<String> = (0..20_000).map(|i| format!("item-{i}")).collect();
            let big = json!({"metadata": {"name": "big"}, "spec": {"items": items}});
            assert!(is_large(&big));
            // The watch's producer, a task on the only worker, decodes the event, maybe
            // before `create` returns: counted from before the create, which decorates
            // its object twice (before it is stored and after).
            let before = probe.large.load(Ordering::SeqCst);
            res.create(&ctx, None, big).await.unwrap();
            let Some(WatchEvent::Added(obj)) = events.next().await else {
                panic!("no ADDED event");
            };
            assert_eq!(obj["metadata"]["name"], "big");
            assert_eq!(probe.large.load(Ordering::SeqCst), before + 3);
        });
        assert_eq!(probe.starved.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_status_write_copies_the_stored_object_but_its_status() {
        let conditions: Vec<Value> = (0..1000)
            .map(|i| json!({"type": format!("c{i}")}))
            .collect();
        let old = json!({"kind": "Thing", "status": {"conditions": conditions}, "spec": {"a": 1}});
        let copy = copy_but_status(&old);
        assert_eq!(
            copy,
            json!({"kind": "Thing", "status": null, "spec": {"a": 1}})
        );
        // In the stored object's key order, so the write changes the status only.
        let keys: Vec<&String> = copy.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["kind", "status", "spec"]);
    }

    /// Whether the caller runs on an async worker of a multi-threaded runtime (where
    /// `Handle::block_on` refuses to run) rather than inside `block_in_place`.
    fn on_async_worker() -> bool {
        let handle = tokio::runtime::Handle::current();
        std::panic::catch_unwind(move || handle.block_on(async {})).is_err()
    }

    /// A strategy that records, for each validated object, whether the write step ran
    /// on an async worker.
    #[derive(Default)]
    struct WhereProbe {
        on_worker: std::sync::Mutex<Vec<bool>>,
    }

    impl Strategy for Arc<WhereProbe> {
        fn def(&self) -> &ResourceDef {
            &DEF
        }
        fn decode(&self, body: Value) -> Result<(Value, Vec<String>), String> {
            Ok((body, vec![]))
        }
        fn validate(&self, _obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
            if old.is_some() {
                self.on_worker.lock().unwrap().push(on_async_worker());
            }
            vec![]
        }
    }

    #[test]
    fn only_large_writes_leave_the_async_workers() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let probe = Arc::new(WhereProbe::default());
        let res = StoredResource::new(
            Arc::new(moor_store::MemoryStore::new()),
            Arc::new(probe.clone()),
            ServingConfig::default(),
        );
        rt.block_on(async {
            let mut ctx = RequestContext::default();
            let set = |items: Value| {
                move |cur: Option<&Value>| -> Result<Value, ApiError> {
                    let mut new = cur.cloned().unwrap_or_default();
                    new["spec"] = json!({ "items": items });
                    Ok(new)
                }
            };
            res.create(&ctx, None, json!({"metadata": {"name": "a"}}))
                .await
                .unwrap();
            // A small object, a small request: on the worker.
            res.update(&ctx, None, "a", None, &set(json!(["x"])), false)
                .await
                .unwrap();
            // A small object, a large request: off the workers.
            ctx.large_body = true;
            let items: Vec<String> = (0..20_000).map(|i| format!("item-{i}")).collect();
            res.update(&ctx, None, "a", None, &set(json!(items)), false)
                .await
                .unwrap();
            // A large stored object, a small request: off the workers.
            ctx.large_body = false;
            res.update(&ctx, None, "a", None, &set(json!(["y"])), false)
                .await
                .unwrap();
        });
        assert_eq!(*probe.on_worker.lock().unwrap(), [true, false, false]);
    }

    #[tokio::test]
    async fn a_watch_decodes_a_large_object_only_once_the_reader_took_the_last() {
        use futures::FutureExt;
        let (waited_tx, waited_rx) = tokio::sync::oneshot::channel();
        let mut events = async_stream_events(move |tx| async move {
            let first = tx.large_slot().await.expect("reader");
            let ev = WatchEvent::Added(json!({"n": 1}));
            tx.send_with(ev, Some(first)).await.expect("reader");
            // Small events pass meanwhile.
            tx.send(WatchEvent::Added(json!({"n": "small"})))
                .await
                .expect("reader");
            // The first large one has not been taken: no leave to decode a second.
            let _ = waited_tx.send(tx.large_slot().now_or_never().is_none());
            let second = tx.large_slot().await.expect("reader");
            let ev = WatchEvent::Added(json!({"n": 2}));
            tx.send_with(ev, Some(second)).await.expect("reader");
        });
        assert!(waited_rx.await.unwrap(), "a second large decode went ahead");
        for n in [json!(1), json!("small"), json!(2)] {
            let Some(WatchEvent::Added(obj)) = events.next().await else {
                panic!("no event");
            };
            assert_eq!(obj["n"], n);
        }
    }

    #[test]
    fn is_large_counts_values_and_stops_at_its_bound() {
        assert!(!is_large(
            &json!({"metadata": {"name": "a"}, "spec": [1, 2, 3]})
        ));
        let many: Vec<u32> = (0..LARGE_OBJECT_VALUES as u32).collect();
        assert!(is_large(&json!({"spec": many})));
        let few: Vec<u32> = (0..LARGE_OBJECT_VALUES as u32 - 10).collect();
        assert!(!is_large(&json!({"spec": few})));
    }

    #[test]
    fn stored_bytes_leave_out_resource_version_and_self_link_only() {
        let obj = json!({
            "kind": "K", "apiVersion": "v1",
            "metadata": {"name": "a", "resourceVersion": "7", "uid": "u", "selfLink": "/x", "labels": {"l": "v"}},
            "spec": {"metadata": {"resourceVersion": "kept below the top level"}},
        });
        let bytes = StoredResource::encode(&obj).unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"kind":"K","apiVersion":"v1","metadata":{"name":"a","uid":"u","labels":{"l":"v"}},"spec":{"metadata":{"resourceVersion":"kept below the top level"}}}"#
        );
        // The object itself is left as it was.
        assert_eq!(obj["metadata"]["resourceVersion"], "7");
    }
}
