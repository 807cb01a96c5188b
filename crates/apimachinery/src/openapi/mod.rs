//! OpenAPI, as kube-apiserver serves it: `/openapi/v3` lists one document per
//! group-version (`?hash=` links, which kubectl caches by), each with the operations
//! (`x-kubernetes-group-version-kind`, the `fieldValidation` parameter that tells
//! kubectl to leave validation to the server) and the full schemas of its kinds;
//! `/openapi/v2` is one Swagger 2.0 document with every path and definition, in JSON
//! or in gnostic's protobuf (what client-go asks for; see [`v2proto`]). Schemas come from a [`SchemaCatalog`] (see [`schemas`]); a kind without one
//! gets an open stub. Every document is serialized once, when the server is built.

pub mod k8s_extensions;
pub mod schemas;
mod v2proto;

use std::collections::BTreeMap;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use self::schemas::V3_REF_PREFIX;
pub use self::schemas::{FieldExtensions, SchemaCatalog, SchemaSet};
use super::error::ApiError;
use super::resource::ResourceDef;

/// The patch and list extensions of built-in types' fields (generated).
pub use self::k8s_extensions::K8S_EXTENSIONS;

/// One served document: its bytes and their hash (the `ETag`, and `?hash=` of v3).
#[derive(Clone, Debug)]
pub struct Served {
    pub body: Bytes,
    pub hash: String,
}

impl Served {
    fn new(doc: &Value) -> Self {
        Self::from_bytes(serde_json::to_vec(doc).unwrap_or_default())
    }

    fn from_bytes(body: Vec<u8>) -> Self {
        let hash = hex_digest(&body);
        Served {
            body: Bytes::from(body),
            hash,
        }
    }

    /// The document as a JSON response, or 304 when `If-None-Match` names its hash.
    pub fn response(&self, headers: &HeaderMap) -> Response {
        self.response_as(headers, "application/json")
    }

    fn response_as(&self, headers: &HeaderMap, content_type: &'static str) -> Response {
        let etag = format!("\"{}\"", self.hash);
        let unchanged = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
        let etag = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""));
        if unchanged {
            return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
        }
        (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (header::ETAG, etag),
            ],
            self.body.clone(),
        )
            .into_response()
    }
}

/// Every OpenAPI document of a server, built once.
#[derive(Clone, Debug)]
pub struct OpenApi {
    /// `/openapi/v3/<gv>` by `<gv>` (`apis/image.openshift.io/v1`).
    pub v3: BTreeMap<String, Served>,
    /// `/openapi/v3`.
    pub v3_root: Served,
    /// `/openapi/v2`, JSON.
    pub v2: Served,
    /// `/openapi/v2`, protobuf.
    pub v2_protobuf: Served,
}

impl OpenApi {
    /// The documents of `defs`, with the schemas of `catalog`.
    pub fn build<'a>(defs: impl Iterator<Item = &'a ResourceDef>, catalog: &SchemaCatalog) -> Self {
        let defs: Vec<&ResourceDef> = defs.collect();
        let v3_docs = documents(defs.iter().copied(), catalog);
        let v3: BTreeMap<String, Served> = v3_docs
            .iter()
            .map(|(gv, doc)| (gv.clone(), Served::new(doc)))
            .collect();
        let v3_root = Served::new(&root_of(&v3));
        let swagger = swagger(&defs, catalog);
        let v2 = Served::new(&swagger);
        let v2_protobuf = Served::from_bytes(v2proto::encode(&swagger));
        OpenApi {
            v3,
            v3_root,
            v2,
            v2_protobuf,
        }
    }

    /// `GET /openapi/v2`: the first form the `Accept` header names (JSON when it names
    /// none), 406 when it names only others, as kube-apiserver answers.
    pub fn v2_response(&self, headers: &HeaderMap) -> Response {
        let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
            return self.v2.response(headers);
        };
        for part in accept.split(',') {
            match part.split(';').next().unwrap_or("").trim() {
                "" | "*/*" | "application/*" | "application/json" => {
                    return self.v2.response(headers);
                }
                V2_PROTOBUF | V2_PROTOBUF_DEPRECATED => {
                    return self.v2_protobuf.response_as(headers, V2_PROTOBUF);
                }
                _ => {}
            }
        }
        ApiError::NotAcceptable(format!(
            "only application/json and {V2_PROTOBUF} are served for /openapi/v2"
        ))
        .into_response()
    }
}

/// The protobuf media type of `/openapi/v2`, as the response names it.
const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
/// Its deprecated spelling, which client-go still asks for. Not a valid media type
/// (`@`), so a response never names it: Go's `mime.ParseMediaType` would refuse it.
const V2_PROTOBUF_DEPRECATED: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The group-version documents (OpenAPI v3), keyed by their path
/// (`apis/image.openshift.io/v1`).
pub fn documents<'a>(
    defs: impl Iterator<Item = &'a ResourceDef>,
    catalog: &SchemaCatalog,
) -> BTreeMap<String, Value> {
    let mut by_gv: BTreeMap<String, Vec<&ResourceDef>> = BTreeMap::new();
    for d in defs {
        by_gv
            .entry(gv_path(d.group, d.version))
            .or_default()
            .push(d);
    }
    by_gv
        .into_iter()
        .map(|(gv, defs)| (gv, document(&defs, catalog)))
        .collect()
}

/// `GET /openapi/v3` of `docs`.
pub fn root(docs: &BTreeMap<String, Value>) -> Value {
    root_of(
        &docs
            .iter()
            .map(|(gv, d)| (gv.clone(), Served::new(d)))
            .collect(),
    )
}

fn root_of(docs: &BTreeMap<String, Served>) -> Value {
    let paths: Map<String, Value> = docs
        .iter()
        .map(|(gv, doc)| {
            (
                gv.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={}", doc.hash)}),
            )
        })
        .collect();
    json!({"paths": paths})
}

fn hex_digest(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().take(16).map(|b| format!("{b:02X}")).collect()
}

/// Which OpenAPI flavour a document is written in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavour {
    V2,
    V3,
}

impl Flavour {
    fn ref_to(self, name: &str) -> Value {
        match self {
            Flavour::V2 => json!({"$ref": format!("#/definitions/{name}")}),
            Flavour::V3 => json!({"$ref": format!("{V3_REF_PREFIX}{name}")}),
        }
    }
}

fn param(flavour: Flavour, name: &str, ty: &str, description: &str) -> Value {
    match flavour {
        Flavour::V2 => {
            json!({"name": name, "in": "query", "description": description, "type": ty, "uniqueItems": true})
        }
        Flavour::V3 => {
            json!({"name": name, "in": "query", "description": description, "schema": {"type": ty, "uniqueItems": true}})
        }
    }
}

fn gvk(d: &ResourceDef) -> Value {
    json!({"group": d.group, "version": d.version, "kind": d.kind})
}

/// The definition name of a kind without a schema in the catalog (an open stub).
fn stub_name(d: &ResourceDef) -> String {
    let group = if d.group.is_empty() {
        "core".to_string()
    } else {
        d.group.split('.').rev().collect::<Vec<_>>().join(".")
    };
    format!("{group}.{}.{}", d.version, d.kind)
}

fn schema_name(d: &ResourceDef, catalog: &SchemaCatalog) -> String {
    catalog
        .kind(d.group, d.version, d.kind)
        .map(str::to_string)
        .unwrap_or_else(|| stub_name(d))
}

fn stub(d: &ResourceDef) -> Value {
    let mut schema = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                            "description": format!("{} ({}).", d.kind, d.api_version())});
    // A core kind without a schema is not claimed, so kubectl keeps its built-in
    // patch strategies for it.
    if !d.group.is_empty() {
        schema["x-kubernetes-group-version-kind"] = json!([gvk(d)]);
    }
    schema
}

/// The patch content types every served kind takes (moor's strategic merge patch is
/// generic, driven by each resource's merge keys).
const PATCH_TYPES: [&str; 4] = [
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

const PATCH_DESCRIPTION: &str =
    "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.";

/// One operation: `action` (kube's `x-kubernetes-action`), `write` for verbs with a
/// body and write options, `patch` for PATCH.
struct Op<'a> {
    def: &'a ResourceDef,
    schema: &'a str,
    action: &'a str,
    id: String,
    write: bool,
    patch: bool,
}

fn op(flavour: Flavour, o: &Op<'_>) -> Value {
    let mut params = vec![param(
        flavour,
        "pretty",
        "string",
        "If 'true', then the output is pretty printed.",
    )];
    if o.write {
        params.push(param(
            flavour,
            "dryRun",
            "string",
            "When present, indicates that modifications should not be persisted. Valid value: All",
        ));
        params.push(param(flavour, "fieldManager", "string", "fieldManager is a name associated with the actor or entity that is making these changes."));
        params.push(param(
            flavour,
            "fieldValidation",
            "string",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn (default), Strict.",
        ));
    }
    if o.patch {
        params.push(param(
            flavour,
            "force",
            "boolean",
            "Force is going to \"force\" Apply requests.",
        ));
    }
    let schema_ref = flavour.ref_to(o.schema);
    let mut out = json!({
        "operationId": o.id,
        "x-kubernetes-action": o.action,
        "x-kubernetes-group-version-kind": gvk(o.def),
    });
    match flavour {
        Flavour::V2 => {
            if o.write {
                params.push(
                    json!({"name": "body", "in": "body", "required": true, "schema": schema_ref}),
                );
            }
            out["consumes"] = if o.patch {
                json!(PATCH_TYPES)
            } else {
                json!(["*/*"])
            };
            out["produces"] = json!(["application/json", "application/yaml"]);
            out["responses"] = json!({"200": {"description": "OK", "schema": schema_ref}});
        }
        Flavour::V3 => {
            if o.patch {
                // kubectl computes a strategic merge patch from this document only when
                // the PATCH operation takes that content type.
                let patch = json!({"schema": {"type": "object", "description": PATCH_DESCRIPTION}});
                let content: Map<String, Value> = PATCH_TYPES
                    .iter()
                    .map(|t| (t.to_string(), patch.clone()))
                    .collect();
                out["requestBody"] = json!({"content": content, "required": true});
            } else if o.write {
                out["requestBody"] =
                    json!({"content": {"*/*": {"schema": schema_ref.clone()}}, "required": true});
            }
            out["responses"] = json!({"200": {"description": "OK", "content": {"application/json": {"schema": schema_ref}}}});
        }
    }
    out["parameters"] = Value::Array(params);
    out
}

/// The paths of one served resource.
fn paths_of(flavour: Flavour, d: &ResourceDef, schema: &str, paths: &mut Map<String, Value>) {
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
    let o = |action: &str, id: String, write: bool, patch: bool| {
        op(
            flavour,
            &Op {
                def: d,
                schema,
                action,
                id,
                write,
                patch,
            },
        )
    };
    paths.insert(
        coll.clone(),
        json!({
            "get": o("list", format!("list{k}"), false, false),
            "post": o("post", format!("create{k}"), true, false),
            "delete": o("deletecollection", format!("deletecollection{k}"), false, false),
        }),
    );
    paths.insert(
        format!("{coll}/{{name}}"),
        json!({
            "get": o("get", format!("read{k}"), false, false),
            "put": o("put", format!("replace{k}"), true, false),
            "patch": o("patch", format!("patch{k}"), true, true),
            "delete": o("delete", format!("delete{k}"), false, false),
        }),
    );
    for s in d.subresources {
        paths.insert(
            format!("{coll}/{{name}}/{s}"),
            json!({
                "get": o("get", format!("read{k}Status"), false, false),
                "put": o("put", format!("replace{k}Status"), true, false),
                "patch": o("patch", format!("patch{k}Status"), true, true),
            }),
        );
    }
}

/// The definitions of `defs`' kinds and all they reference, in `flavour`'s form: v3
/// wraps a `$ref` that has siblings (a field's description) in `allOf`, as
/// kube-openapi does; v2 keeps the siblings and points `$ref` at `#/definitions/`.
fn definitions(
    flavour: Flavour,
    defs: &[&ResourceDef],
    catalog: &SchemaCatalog,
) -> Map<String, Value> {
    let mut out = Map::new();
    let roots: Vec<String> = defs
        .iter()
        .filter_map(|d| catalog.kind(d.group, d.version, d.kind).map(str::to_string))
        .collect();
    for (name, mut schema) in catalog.closure(roots.iter().map(String::as_str)) {
        rewrite_refs(flavour, &mut schema);
        out.insert(name, schema);
    }
    for d in defs {
        if catalog.kind(d.group, d.version, d.kind).is_none() {
            out.insert(stub_name(d), stub(d));
        }
    }
    out
}

fn rewrite_refs(flavour: Flavour, v: &mut Value) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                let name = r.strip_prefix(V3_REF_PREFIX).unwrap_or(r).to_string();
                match flavour {
                    Flavour::V2 => {
                        o.insert("$ref".into(), Value::from(format!("#/definitions/{name}")));
                    }
                    Flavour::V3 if o.len() > 1 => {
                        o.remove("$ref");
                        o.insert(
                            "allOf".into(),
                            json!([{"$ref": format!("{V3_REF_PREFIX}{name}")}]),
                        );
                    }
                    Flavour::V3 => {}
                }
            }
            o.values_mut().for_each(|v| rewrite_refs(flavour, v));
        }
        Value::Array(a) => a.iter_mut().for_each(|v| rewrite_refs(flavour, v)),
        _ => {}
    }
}

fn document(defs: &[&ResourceDef], catalog: &SchemaCatalog) -> Value {
    let mut paths = Map::new();
    for d in defs {
        paths_of(Flavour::V3, d, &schema_name(d, catalog), &mut paths);
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "moor", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"schemas": definitions(Flavour::V3, defs, catalog)},
    })
}

fn swagger(defs: &[&ResourceDef], catalog: &SchemaCatalog) -> Value {
    let mut paths = Map::new();
    for d in defs {
        paths_of(Flavour::V2, d, &schema_name(d, catalog), &mut paths);
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "moor", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "definitions": definitions(Flavour::V2, defs, catalog),
    })
}

#[cfg(test)]
mod tests;
