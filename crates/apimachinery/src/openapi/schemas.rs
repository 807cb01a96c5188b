//! The schemas `/openapi/v2` and `/openapi/v3` publish, built once at start-up from
//! `schemars::JsonSchema`: k8s-openapi's for built-in kinds (feature `schemars`), the API
//! types' own derive for moor's kinds. schemars emits JSON Schema; [`SchemaSet::finish`]
//! turns it into what kube-openapi publishes: no `null` types, kube's definition names,
//! `x-kubernetes-group-version-kind` on each kind, the standard `apiVersion`/`kind`/
//! `metadata` descriptions, and the patch and list extensions of built-in fields
//! ([`K8S_EXTENSIONS`](super::k8s_extensions::K8S_EXTENSIONS), generated from the Go
//! types' tags, since k8s-openapi's schemas carry none). Pure data; calls nothing.

use std::collections::{BTreeMap, BTreeSet};

use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

/// Where definitions are referenced from while building (OpenAPI v3's place).
pub(super) const V3_REF_PREFIX: &str = "#/components/schemas/";

/// The patch and list extensions kube-apiserver publishes on one field of a type.
/// Empty strings and lists stand for "not set".
#[derive(Clone, Copy, Debug)]
pub struct FieldExtensions {
    /// The definition (`io.k8s.api.core.v1.PodSpec`).
    pub definition: &'static str,
    /// The JSON field name (`containers`).
    pub property: &'static str,
    /// `x-kubernetes-patch-strategy` (`merge`, `merge,retainKeys`, `replace`).
    pub patch_strategy: &'static str,
    /// `x-kubernetes-patch-merge-key`.
    pub patch_merge_key: &'static str,
    /// `x-kubernetes-list-type` (`atomic`, `set`, `map`).
    pub list_type: &'static str,
    /// `x-kubernetes-list-map-keys`.
    pub list_map_keys: &'static [&'static str],
}

/// A kind: group, version, kind.
pub type Gvk = (String, String, String);

/// Collects the schemas of the served kinds (see [`SchemaSet::add`]).
pub struct SchemaSet {
    generator: SchemaGenerator,
    kinds: BTreeMap<Gvk, String>,
}

impl Default for SchemaSet {
    fn default() -> Self {
        Self::new()
    }
}

impl SchemaSet {
    /// An empty set.
    pub fn new() -> Self {
        let settings = SchemaSettings::draft07().with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
            // Our own normalisation below replaces schemars' transforms.
            s.transforms.clear();
        });
        SchemaSet {
            generator: settings.into_generator(),
            kinds: BTreeMap::new(),
        }
    }

    /// Publishes `T`'s schema as the schema of `group/version` `kind`.
    pub fn add<T: schemars::JsonSchema>(&mut self, group: &str, version: &str, kind: &str) {
        let schema = self.generator.subschema_for::<T>();
        let name = schema
            .as_object()
            .and_then(|o| o.get("$ref"))
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix(V3_REF_PREFIX))
            .map(str::to_string)
            .unwrap_or_else(|| T::schema_name().into_owned());
        self.kinds.insert(
            (group.to_string(), version.to_string(), kind.to_string()),
            name,
        );
    }

    /// Publishes `T`'s schema for its own group, version and kind.
    pub fn add_resource<T: schemars::JsonSchema + k8s_openapi::Resource>(&mut self) {
        self.add::<T>(T::GROUP, T::VERSION, T::KIND);
    }

    /// The finished catalog, with kube's conventions applied (see the module doc).
    pub fn finish(mut self, extensions: &[&[FieldExtensions]]) -> SchemaCatalog {
        let mut definitions: BTreeMap<String, Value> = self
            .generator
            .take_definitions(false)
            .into_iter()
            .map(|(name, mut schema)| {
                normalize(&mut schema);
                if !name.starts_with("io.k8s.") {
                    join_doc_lines(&mut schema);
                }
                (name, schema)
            })
            .collect();
        for table in extensions {
            for ext in *table {
                apply_extensions(&mut definitions, ext);
            }
        }
        let mut gvks: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for ((g, v, k), name) in &self.kinds {
            gvks.entry(name)
                .or_default()
                .push(json!({"group": g, "version": v, "kind": k}));
        }
        for (name, list) in gvks {
            if let Some(Value::Object(def)) = definitions.get_mut(name) {
                def.insert("x-kubernetes-group-version-kind".into(), Value::Array(list));
                standard_type_meta(def);
            }
        }
        SchemaCatalog {
            definitions,
            kinds: self.kinds,
        }
    }
}

/// The finished schemas: definitions (referencing each other under
/// `#/components/schemas/`, a `$ref` keeping its sibling `description`) and the
/// definition of each kind.
#[derive(Clone, Debug, Default)]
pub struct SchemaCatalog {
    definitions: BTreeMap<String, Value>,
    kinds: BTreeMap<Gvk, String>,
}

impl SchemaCatalog {
    /// The definition name of a kind's schema.
    pub fn kind(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.kinds
            .get(&(group.to_string(), version.to_string(), kind.to_string()))
            .map(String::as_str)
    }

    /// A definition.
    pub fn definition(&self, name: &str) -> Option<&Value> {
        self.definitions.get(name)
    }

    /// The definitions `roots` reach through `$ref`s, themselves included.
    pub fn closure<'a>(&self, roots: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        let mut todo: Vec<String> = roots.into_iter().map(str::to_string).collect();
        while let Some(name) = todo.pop() {
            if out.contains_key(&name) {
                continue;
            }
            let Some(def) = self.definitions.get(&name) else {
                continue;
            };
            let mut refs = BTreeSet::new();
            collect_refs(def, &mut refs);
            todo.extend(refs.into_iter().filter(|r| !out.contains_key(r)));
            out.insert(name, def.clone());
        }
        out
    }
}

/// The definition names a schema refers to.
pub(super) fn collect_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        let name = r
                            .strip_prefix(V3_REF_PREFIX)
                            .or_else(|| r.strip_prefix("#/definitions/"))
                            .unwrap_or(r);
                        out.insert(name.to_string());
                    }
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// kube-openapi's shape: `Option<T>` is `T` (no `null` type, no `anyOf` with null), no
/// `default` values (kube publishes none for these types), no `$schema`/`title`.
fn normalize(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for k in ["default", "$schema", "title"] {
                o.remove(k);
            }
            if let Some(Value::Array(types)) = o.get("type") {
                let rest: Vec<Value> = types
                    .iter()
                    .filter(|t| t.as_str() != Some("null"))
                    .cloned()
                    .collect();
                match rest.len() {
                    0 => {
                        o.remove("type");
                    }
                    1 => {
                        o.insert("type".into(), rest[0].clone());
                    }
                    _ => {
                        o.insert("type".into(), Value::Array(rest));
                    }
                }
            }
            if let Some(Value::Array(any)) = o.get("anyOf") {
                let rest: Vec<Value> = any
                    .iter()
                    .filter(|s| s.get("type").and_then(Value::as_str) != Some("null"))
                    .cloned()
                    .collect();
                if rest.len() == 1 && rest.len() < any.len() {
                    o.remove("anyOf");
                    if let Value::Object(inner) = rest[0].clone() {
                        for (k, v) in inner {
                            o.entry(k).or_insert(v);
                        }
                    }
                }
            }
            o.values_mut().for_each(normalize);
        }
        Value::Array(a) => a.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// Rust doc comments reach schemars one source line per line: join the lines of a
/// paragraph with spaces, as kube-openapi does with Go comments (k8s-openapi's own
/// descriptions are left alone: their single line breaks are meant).
fn join_doc_lines(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(d)) = o.get_mut("description") {
                *d = d
                    .split("\n\n")
                    .map(|p| p.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
                    .collect::<Vec<_>>()
                    .join("\n\n");
            }
            o.values_mut().for_each(join_doc_lines);
        }
        Value::Array(a) => a.iter_mut().for_each(join_doc_lines),
        _ => {}
    }
}

fn apply_extensions(definitions: &mut BTreeMap<String, Value>, ext: &FieldExtensions) {
    let Some(prop) = definitions
        .get_mut(ext.definition)
        .and_then(|d| d.get_mut("properties"))
        .and_then(|p| p.get_mut(ext.property))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let mut set = |k: &str, v: &str| {
        if !v.is_empty() {
            prop.insert(k.into(), Value::from(v));
        }
    };
    set("x-kubernetes-patch-strategy", ext.patch_strategy);
    set("x-kubernetes-patch-merge-key", ext.patch_merge_key);
    set("x-kubernetes-list-type", ext.list_type);
    if !ext.list_map_keys.is_empty() {
        prop.insert(
            "x-kubernetes-list-map-keys".into(),
            json!(ext.list_map_keys),
        );
    }
}

/// The descriptions kube-openapi gives a kind's `TypeMeta` fields (always: they are the
/// same for every kind) and `metadata` (where the type's own schema has none).
fn standard_type_meta(def: &mut Map<String, Value>) {
    const STANDARD: [(&str, &str); 3] = [
        (
            "apiVersion",
            "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
        ),
        (
            "kind",
            "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
        ),
        (
            "metadata",
            "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
        ),
    ];
    let Some(Value::Object(props)) = def.get_mut("properties") else {
        return;
    };
    for (field, text) in STANDARD {
        if let Some(Value::Object(p)) = props.get_mut(field) {
            if field == "metadata" {
                p.entry("description").or_insert_with(|| Value::from(text));
            } else {
                p.insert("description".into(), Value::from(text));
            }
        }
    }
}
