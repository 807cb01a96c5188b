//! `scheduledimports.moor.io/v1`: a read-only view of the scheduler's per-tag records
//! (last check, digest seen, next check), named `<stream>:<tag>` in the stream's
//! namespace. The records live under their own store keys
//! ([`moor_api::scheduled::record_key`]), written only by the scheduler, so that
//! checks never touch the image streams; `moor describe is` reads them here. Get and
//! list (with `fieldSelector=status.imageStream=NAME`); no writes, no watch.

use std::sync::Arc;

use async_trait::async_trait;
use moor_api::scheduled::{
    RECORD_PREFIX, ScheduledImport, ScheduledImportStatus, parse_record_key, record_key,
};
use moor_store::{KeyValue, Store};
use serde_json::{Value, json};

use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::*;
use moor_apimachinery::table::{Column, TableDef, name_column, name_of};

fn def() -> ResourceDef {
    ResourceDef {
        group: moor_api::scheduled::GROUP,
        version: moor_api::scheduled::VERSION,
        kind: "ScheduledImport",
        list_kind: "ScheduledImportList",
        plural: "scheduledimports",
        singular: "scheduledimport",
        short_names: &[],
        categories: &[],
        namespaced: true,
        verbs: &["get", "list"],
        subresources: &[],
        selectable_fields: &[
            "status.imageStream",
            "status.tag",
            "status.registry",
            "status.active",
        ],
    }
}

/// The view over the scheduler's records.
pub struct ScheduledImports {
    def: ResourceDef,
    store: Arc<dyn Store>,
}

impl ScheduledImports {
    /// The view over the records in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        ScheduledImports { def: def(), store }
    }

    fn object(kv: &KeyValue) -> Option<Value> {
        let (ns, stream, tag) = parse_record_key(&kv.key)?;
        let status: ScheduledImportStatus = serde_json::from_slice(&kv.value).ok()?;
        let mut obj = ScheduledImport {
            status,
            ..Default::default()
        };
        obj.metadata.name = Some(format!("{stream}:{tag}"));
        obj.metadata.namespace = Some(ns.to_string());
        obj.metadata.resource_version = Some(kv.mod_revision.to_string());
        serde_json::to_value(&obj).ok()
    }
}

/// `5 seconds ago` / `in 5 seconds` for an RFC 3339 time, or "".
fn relative(ts: Option<&str>) -> String {
    let Some(t) = ts.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return String::new();
    };
    let secs = t.as_second() - jiff::Timestamp::now().as_second();
    if secs > 0 {
        format!("in {}", moor_api::humanize::human_duration(secs))
    } else {
        format!("{} ago", moor_api::humanize::human_duration(-secs))
    }
}

fn column(name: &'static str, description: &'static str, priority: u8) -> Column {
    Column {
        name,
        kind: "string",
        format: "",
        description,
        priority,
    }
}

#[async_trait]
impl RestStorage for ScheduledImports {
    fn def(&self) -> &ResourceDef {
        &self.def
    }

    fn table(&self) -> TableDef {
        TableDef {
            columns: vec![
                name_column(),
                column("From", "The registry pull spec checked", 0),
                column("Result", "What the last check found", 0),
                column("Last Check", "When the last check started", 0),
                column("Next Check", "When the next check is due", 0),
                column("Digest", "The digest the registry announced", 1),
                column("Message", "Why the last check failed", 1),
            ],
            row: Arc::new(|o| {
                let s = |p: &str| o.pointer(p).and_then(Value::as_str).map(str::to_string);
                let active = o.pointer("/status/active").and_then(Value::as_bool) == Some(true);
                vec![
                    json!(name_of(o)),
                    json!(s("/status/from").unwrap_or_default()),
                    json!(if active {
                        s("/status/lastCheckResult").unwrap_or_else(|| "Pending".into())
                    } else {
                        "NotScheduled".into()
                    }),
                    json!(relative(s("/status/lastCheckTime").as_deref())),
                    json!(relative(s("/status/nextCheckTime").as_deref())),
                    json!(s("/status/lastDigest").unwrap_or_default()),
                    json!(s("/status/message").unwrap_or_default()),
                ]
            }),
        }
    }

    async fn get(
        &self,
        _ctx: &RequestContext,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let not_found = || ApiError::NotFound {
            gr: self.def.group_resource(),
            name: name.to_string(),
        };
        let (stream, tag) = name
            .split_once(':')
            .filter(|(s, t)| !s.is_empty() && !t.is_empty() && !s.contains('/'))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("{name:?} must be of the form <stream>:<tag>"))
            })?;
        let ns = ns.unwrap_or("default");
        let kv = self
            .store
            .get(&record_key(ns, stream, tag))
            .await?
            .ok_or_else(not_found)?;
        Self::object(&kv).ok_or_else(not_found)
    }

    async fn list(
        &self,
        _ctx: &RequestContext,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ObjectList, ApiError> {
        let stream = opts
            .field_selector
            .0
            .iter()
            .find(|r| r.field == "status.imageStream" && !r.negated)
            .map(|r| r.value.clone());
        let prefix = match (ns, &stream) {
            (Some(ns), Some(s)) => format!("{RECORD_PREFIX}{ns}/{s}/"),
            (Some(ns), None) => format!("{RECORD_PREFIX}{ns}/"),
            (None, _) => RECORD_PREFIX.to_string(),
        };
        let list = self.store.list(&prefix, Default::default()).await?;
        let items = list
            .kvs
            .iter()
            .filter_map(Self::object)
            .filter(|o| {
                opts.label_selector.matches_object(o) && opts.field_selector.matches_object(o)
            })
            .collect();
        Ok(ObjectList {
            items,
            resource_version: list.revision.to_string(),
            ..Default::default()
        })
    }
}
