//! `notifications.moor.io/v1`: namespaced subscriptions to image stream events (see
//! [`moor_api::notification`]). A stored resource with a `status` subresource that
//! only the delivery controller ([`crate::notify`]) writes. Strategy only.

use std::sync::Arc;

use moor_api::notification::{Notification, validate_spec};
use moor_api::validation::{FieldError, is_dns1123_label};
use serde_json::{Value, json};

use moor_apimachinery::codec::decode_as;
use moor_apimachinery::resource::{ALL_VERBS, ResourceDef};
use moor_apimachinery::stored::Strategy;
use moor_apimachinery::table::{Column, TableDef, age_column, age_of, name_column, name_of};

/// The resource's definition (also what the RBAC roles and the CLI name).
pub fn def() -> ResourceDef {
    ResourceDef {
        group: moor_api::scheduled::GROUP,
        version: moor_api::scheduled::VERSION,
        kind: "Notification",
        list_kind: "NotificationList",
        plural: "notifications",
        singular: "notification",
        short_names: &[],
        categories: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &["status"],
        selectable_fields: &[],
    }
}

/// Notifications: validated spec, server-owned status.
pub struct Notifications(ResourceDef);

impl Notifications {
    /// The notifications strategy.
    pub fn new() -> Arc<Self> {
        Arc::new(Notifications(def()))
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

/// The Last Success cell: how long ago (`5 seconds ago`, as the streams' Updated
/// column), or `<none>`.
fn last_success(o: &Value) -> String {
    match o.pointer("/status/lastSuccessTime").and_then(Value::as_str) {
        Some(t) => super::image::ago(Some(t)),
        None => "<none>".into(),
    }
}

impl Strategy for Notifications {
    fn def(&self) -> &ResourceDef {
        &self.0
    }
    fn decode(&self, body: Value) -> Result<(Value, Vec<String>), String> {
        decode_as::<Notification>(body)
    }
    fn tracks_generation(&self) -> bool {
        true
    }
    fn table(&self) -> TableDef {
        TableDef {
            columns: vec![
                name_column(),
                column("URL", "Where events are POSTed", 0),
                Column {
                    kind: "integer",
                    ..column("Pending", "Events not delivered yet", 0)
                },
                column("Last Success", "When an event was last delivered", 0),
                column("Last Error", "Why the last attempt failed", 1),
                age_column(),
            ],
            row: Arc::new(|o| {
                vec![
                    json!(name_of(o)),
                    o.pointer("/spec/url").cloned().unwrap_or(json!("")),
                    o.pointer("/status/pending").cloned().unwrap_or(json!(0)),
                    json!(last_success(o)),
                    o.pointer("/status/lastError").cloned().unwrap_or(json!("")),
                    json!(age_of(o)),
                ]
            }),
        }
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        // The server owns the status.
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let name = name_of(obj);
        if name.is_empty() {
            errs.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        } else {
            for r in is_dns1123_label(name) {
                errs.push(FieldError::invalid("metadata.name", name, r));
            }
        }
        match serde_json::from_value::<Notification>(obj.clone()) {
            Ok(n) => errs.extend(validate_spec(&n.spec)),
            Err(e) => errs.push(FieldError::invalid("spec", "", e.to_string())),
        }
        errs
    }
}
