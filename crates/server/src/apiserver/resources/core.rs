//! core/v1 resources moor serves: namespaces, secrets (the importer's pull
//! credentials) and events (what `describe` lists). Strategies only; storage is generic.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::{Event, Namespace, Secret};
use moor_api::validation::{FieldError, is_dns1123_label, validate_path_segment_name};
use serde_json::{Value, json};

use moor_apimachinery::codec::decode_as;
use moor_apimachinery::resource::{ALL_VERBS, ResourceDef};
use moor_apimachinery::stored::Strategy;
use moor_apimachinery::table::{
    Column, TableDef, age_column, age_of, creation_timestamp, name_column, name_of,
};

/// A new, active namespace object.
pub fn new_namespace(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "uid": uuid::Uuid::new_v4().to_string(),
                     "creationTimestamp": moor_apimachinery::stored::now_rfc3339(),
                     "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

fn name_errors(obj: &Value, dns_label: bool) -> Vec<FieldError> {
    let name = name_of(obj);
    if name.is_empty() {
        return vec![FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )];
    }
    let reasons = if dns_label {
        is_dns1123_label(name)
    } else {
        validate_path_segment_name(name)
    };
    reasons
        .into_iter()
        .map(|r| FieldError::invalid("metadata.name", name, r))
        .collect()
}

/// Namespaces: cluster-scoped; deleting one deletes its objects.
pub struct Namespaces(ResourceDef);

impl Namespaces {
    /// The namespaces strategy.
    pub fn new() -> Arc<Self> {
        Arc::new(Namespaces(ResourceDef {
            group: "",
            version: "v1",
            kind: "Namespace",
            list_kind: "NamespaceList",
            plural: "namespaces",
            singular: "namespace",
            short_names: &["ns"],
            categories: &[],
            namespaced: false,
            verbs: &[
                "create", "delete", "get", "list", "patch", "update", "watch",
            ],
            subresources: &["status"],
            selectable_fields: &["status.phase"],
        }))
    }
}

impl Strategy for Namespaces {
    fn def(&self) -> &ResourceDef {
        &self.0
    }
    fn decode(&self, body: Value) -> Result<(Value, Vec<String>), String> {
        decode_as::<Namespace>(body)
    }
    fn table(&self) -> TableDef {
        TableDef {
            columns: vec![
                name_column(),
                Column {
                    name: "Status",
                    kind: "string",
                    format: "",
                    description: "The status of the namespace",
                    priority: 0,
                },
                age_column(),
            ],
            row: Arc::new(|o| {
                vec![
                    json!(name_of(o)),
                    o.pointer("/status/phase")
                        .cloned()
                        .unwrap_or(json!("Active")),
                    json!(age_of(o)),
                ]
            }),
        }
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        let name = name_of(obj).to_string();
        obj["status"] = json!({"phase": "Active"});
        if obj.pointer("/spec/finalizers").is_none() {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
        }
        obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
    }
    fn prepare_for_update(&self, new: &mut Value, _old: &Value) {
        let name = name_of(new).to_string();
        new["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        name_errors(obj, true)
    }
}

/// Secrets: `kubernetes.io/dockerconfigjson` and `Opaque`; `stringData` folds into `data`.
pub struct Secrets(ResourceDef);

impl Secrets {
    /// The secrets strategy.
    pub fn new() -> Arc<Self> {
        Arc::new(Secrets(ResourceDef {
            group: "",
            version: "v1",
            kind: "Secret",
            list_kind: "SecretList",
            plural: "secrets",
            singular: "secret",
            short_names: &[],
            categories: &[],
            namespaced: true,
            verbs: ALL_VERBS,
            subresources: &[],
            selectable_fields: &["type"],
        }))
    }
}

fn fold_string_data(obj: &mut Value) {
    let Some(Value::Object(sd)) = obj.as_object_mut().and_then(|o| o.remove("stringData")) else {
        return;
    };
    if !obj.get("data").is_some_and(Value::is_object) {
        obj["data"] = json!({});
    }
    for (k, v) in sd {
        if let Some(s) = v.as_str() {
            obj["data"][k] = json!(STANDARD.encode(s));
        }
    }
}

impl Strategy for Secrets {
    fn def(&self) -> &ResourceDef {
        &self.0
    }
    fn decode(&self, body: Value) -> Result<(Value, Vec<String>), String> {
        decode_as::<Secret>(body)
    }
    fn table(&self) -> TableDef {
        TableDef {
            columns: vec![
                name_column(),
                Column {
                    name: "Type",
                    kind: "string",
                    format: "",
                    description: "The type of the secret",
                    priority: 0,
                },
                Column {
                    name: "Data",
                    kind: "string",
                    format: "",
                    description: "The number of entries in the secret",
                    priority: 0,
                },
                age_column(),
            ],
            row: Arc::new(|o| {
                let n = o
                    .get("data")
                    .and_then(Value::as_object)
                    .map(|m| m.len())
                    .unwrap_or(0);
                vec![
                    json!(name_of(o)),
                    o.get("type").cloned().unwrap_or(json!("Opaque")),
                    json!(n),
                    json!(age_of(o)),
                ]
            }),
        }
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        fold_string_data(obj);
        if obj.get("type").is_none_or(|t| t.as_str() == Some("")) {
            obj["type"] = json!("Opaque");
        }
    }
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        fold_string_data(new);
        if new.get("type").is_none_or(|t| t.as_str() == Some("")) {
            new["type"] = old.get("type").cloned().unwrap_or(json!("Opaque"));
        }
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = name_errors(obj, false);
        let ty = obj.get("type").and_then(Value::as_str).unwrap_or("Opaque");
        if let Some(old_ty) = old.and_then(|o| o.get("type")).and_then(Value::as_str)
            && old_ty != ty
        {
            errs.push(FieldError::invalid("type", ty, "field is immutable"));
        }
        if ty == "kubernetes.io/dockerconfigjson" {
            match obj
                .pointer("/data/.dockerconfigjson")
                .and_then(Value::as_str)
            {
                None => errs.push(FieldError::required("data[.dockerconfigjson]", "")),
                Some(b64) => {
                    let ok = STANDARD
                        .decode(b64)
                        .ok()
                        .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
                        .is_some_and(|v| v.is_object());
                    if !ok {
                        errs.push(FieldError::invalid(
                            "data[.dockerconfigjson]",
                            "<secret contents redacted>",
                            "must be a valid JSON object",
                        ));
                    }
                }
            }
        }
        errs
    }
}

/// Events, listable by `involvedObject.*` for `describe`.
pub struct Events(ResourceDef);

impl Events {
    /// The events strategy.
    pub fn new() -> Arc<Self> {
        Arc::new(Events(ResourceDef {
            group: "",
            version: "v1",
            kind: "Event",
            list_kind: "EventList",
            plural: "events",
            singular: "event",
            short_names: &["ev"],
            categories: &[],
            namespaced: true,
            verbs: ALL_VERBS,
            subresources: &[],
            selectable_fields: &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
        }))
    }
}

impl Strategy for Events {
    fn def(&self) -> &ResourceDef {
        &self.0
    }
    fn decode(&self, body: Value) -> Result<(Value, Vec<String>), String> {
        decode_as::<Event>(body)
    }
    fn table(&self) -> TableDef {
        TableDef {
            columns: vec![
                Column {
                    name: "Last Seen",
                    kind: "string",
                    format: "",
                    description: "Time of the last occurrence",
                    priority: 0,
                },
                Column {
                    name: "Type",
                    kind: "string",
                    format: "",
                    description: "Type of this event",
                    priority: 0,
                },
                Column {
                    name: "Reason",
                    kind: "string",
                    format: "",
                    description: "Why the event was raised",
                    priority: 0,
                },
                Column {
                    name: "Object",
                    kind: "string",
                    format: "",
                    description: "The object this event is about",
                    priority: 0,
                },
                Column {
                    name: "Message",
                    kind: "string",
                    format: "",
                    description: "A human-readable description",
                    priority: 0,
                },
            ],
            row: Arc::new(|o| {
                let last = o
                    .get("lastTimestamp")
                    .and_then(Value::as_str)
                    .unwrap_or(creation_timestamp(o));
                let obj = format!(
                    "{}/{}",
                    o.pointer("/involvedObject/kind")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_lowercase(),
                    o.pointer("/involvedObject/name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                );
                vec![
                    json!(moor_apimachinery::table::human_age(
                        last,
                        jiff::Timestamp::now()
                    )),
                    o.get("type").cloned().unwrap_or(json!("Normal")),
                    o.get("reason").cloned().unwrap_or(json!("")),
                    json!(obj),
                    o.get("message").cloned().unwrap_or(json!("")),
                ]
            }),
        }
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = name_errors(obj, false);
        if obj
            .pointer("/involvedObject/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
            && obj
                .pointer("/involvedObject/kind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
        {
            errs.push(FieldError::required(
                "involvedObject",
                "the object this event is about is required",
            ));
        }
        errs
    }
}
