//! OpenAPI v3: `/openapi/v3` lists one document per group-version, and each document
//! declares the operations with their `x-kubernetes-group-version-kind` and query
//! parameters. kubectl reads the PATCH operation's `fieldValidation` parameter and,
//! finding it, leaves field validation to the server (`fieldValidation=Strict`).
//! Schemas are published only for moor's own groups, so kubectl keeps its built-in
//! patch strategies for core kinds.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::resource::ResourceDef;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The group-version documents, keyed by their path (`apis/image.openshift.io/v1`).
pub fn documents<'a>(defs: impl Iterator<Item = &'a ResourceDef>) -> BTreeMap<String, Value> {
    let mut by_gv: BTreeMap<String, Vec<&ResourceDef>> = BTreeMap::new();
    for d in defs {
        by_gv
            .entry(gv_path(d.group, d.version))
            .or_default()
            .push(d);
    }
    by_gv
        .into_iter()
        .map(|(gv, defs)| (gv, document(&defs)))
        .collect()
}

/// `GET /openapi/v3`.
pub fn root(docs: &BTreeMap<String, Value>) -> Value {
    let paths: serde_json::Map<String, Value> = docs
        .iter()
        .map(|(gv, doc)| {
            let hash = hex_digest(&serde_json::to_vec(doc).unwrap_or_default());
            (
                gv.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={hash}")}),
            )
        })
        .collect();
    json!({"paths": paths})
}

fn hex_digest(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().take(16).map(|b| format!("{b:02X}")).collect()
}

fn param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn gvk(d: &ResourceDef) -> Value {
    json!({"group": d.group, "version": d.version, "kind": d.kind})
}

fn schema_name(d: &ResourceDef) -> String {
    let group = if d.group.is_empty() {
        "core".to_string()
    } else {
        d.group.split('.').rev().collect::<Vec<_>>().join(".")
    };
    format!("{group}.{}.{}", d.version, d.kind)
}

fn op(d: &ResourceDef, action: &str, id: &str, write: bool, patch: bool) -> Value {
    let mut params = vec![param(
        "pretty",
        "If 'true', then the output is pretty printed.",
    )];
    if write {
        params.push(param(
            "dryRun",
            "When present, indicates that modifications should not be persisted. Valid value: All",
        ));
        params.push(param("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."));
        params.push(param(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn (default), Strict.",
        ));
    }
    if patch {
        params.push(json!({"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true},
            "description": "Force is going to \"force\" Apply requests."}));
    }
    let schema_ref = json!({"$ref": format!("#/components/schemas/{}", schema_name(d))});
    let mut o = json!({
        "operationId": id,
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema_ref}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(d),
    });
    if write {
        o["requestBody"] = json!({"content": {"*/*": {"schema": {"$ref": format!("#/components/schemas/{}", schema_name(d))}}}, "required": true});
    }
    o
}

fn document(defs: &[&ResourceDef]) -> Value {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for d in defs {
        let base = if d.group.is_empty() {
            format!("/api/{}", d.version)
        } else {
            format!("/apis/{}/{}", d.group, d.version)
        };
        let coll = if d.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", d.plural)
        } else {
            format!("{base}/{}", d.plural)
        };
        let k = d.kind;
        paths.insert(
            coll.clone(),
            json!({
                "get": op(d, "list", &format!("list{k}"), false, false),
                "post": op(d, "post", &format!("create{k}"), true, false),
                "delete": op(d, "deletecollection", &format!("deletecollection{k}"), false, false),
            }),
        );
        paths.insert(
            format!("{coll}/{{name}}"),
            json!({
                "get": op(d, "get", &format!("read{k}"), false, false),
                "put": op(d, "put", &format!("replace{k}"), true, false),
                "patch": op(d, "patch", &format!("patch{k}"), true, true),
                "delete": op(d, "delete", &format!("delete{k}"), false, false),
            }),
        );
        for s in d.subresources {
            paths.insert(
                format!("{coll}/{{name}}/{s}"),
                json!({
                    "get": op(d, "get", &format!("read{k}Status"), false, false),
                    "put": op(d, "put", &format!("replace{k}Status"), true, false),
                    "patch": op(d, "patch", &format!("patch{k}Status"), true, true),
                }),
            );
        }
        let mut schema = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                                "description": format!("{} ({}).", d.kind, d.api_version())});
        if !d.group.is_empty() {
            schema["x-kubernetes-group-version-kind"] = json!([gvk(d)]);
        }
        schemas.insert(schema_name(d), schema);
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "moor", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}
