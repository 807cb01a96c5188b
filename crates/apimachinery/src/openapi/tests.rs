use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use schemars::JsonSchema;
use serde_json::{Value, json};

use super::*;
use crate::resource::{ALL_VERBS, ResourceDef};

/// A kind with a described field, an optional field, a list and a nested type.
#[derive(JsonSchema)]
#[schemars(rename = "io.example.v1.Thing")]
#[allow(dead_code)]
struct Thing {
    /// Always `Thing`.
    kind: String,
    /// The parts,
    /// one line per source line.
    parts: Vec<Part>,
    /// Maybe a number.
    count: Option<i64>,
}

/// A part.
#[derive(JsonSchema)]
#[schemars(rename = "io.example.v1.Part")]
#[allow(dead_code)]
struct Part {
    /// Its name.
    name: String,
}

const DEF: ResourceDef = ResourceDef {
    group: "example.io",
    version: "v1",
    kind: "Thing",
    list_kind: "ThingList",
    plural: "things",
    singular: "thing",
    short_names: &[],
    categories: &[],
    namespaced: true,
    verbs: ALL_VERBS,
    subresources: &[],
    selectable_fields: &[],
};

const EXT: &[FieldExtensions] = &[FieldExtensions {
    definition: "io.example.v1.Thing",
    property: "parts",
    patch_strategy: "merge",
    patch_merge_key: "name",
    list_type: "map",
    list_map_keys: &["name"],
}];

fn catalog() -> SchemaCatalog {
    let mut s = SchemaSet::new();
    s.add::<Thing>("example.io", "v1", "Thing");
    s.finish(&[EXT])
}

#[test]
fn schemas_take_kube_shape() {
    let c = catalog();
    assert_eq!(
        c.kind("example.io", "v1", "Thing"),
        Some("io.example.v1.Thing")
    );
    let thing = c.definition("io.example.v1.Thing").unwrap();
    assert_eq!(
        thing["x-kubernetes-group-version-kind"],
        json!([{"group": "example.io", "version": "v1", "kind": "Thing"}])
    );
    let props = &thing["properties"];
    // Option<T> is T, doc lines are joined, kind gets kube's standard description.
    assert_eq!(props["count"]["type"], "integer");
    assert_eq!(
        props["parts"]["description"],
        "The parts, one line per source line."
    );
    assert!(
        props["kind"]["description"]
            .as_str()
            .unwrap()
            .starts_with("Kind is a string value")
    );
    assert_eq!(props["parts"]["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(
        props["parts"]["x-kubernetes-list-map-keys"],
        json!(["name"])
    );
    assert_eq!(c.closure(["io.example.v1.Thing"]).len(), 2);
}

#[test]
fn v3_wraps_described_refs_and_v2_points_at_definitions() {
    let c = catalog();
    let docs = documents([DEF].iter(), &c);
    let doc = &docs["apis/example.io/v1"];
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["io.example.v1.Part"].is_object());
    let patch = &doc["paths"]["/apis/example.io/v1/namespaces/{namespace}/things/{name}"]["patch"];
    assert!(patch["requestBody"]["content"]["application/strategic-merge-patch+json"].is_object());
    let v2 = swagger(&[&DEF], &c);
    let items = &v2["definitions"]["io.example.v1.Thing"]["properties"]["parts"]["items"];
    assert_eq!(items["$ref"], "#/definitions/io.example.v1.Part");
}

#[test]
fn v2_answers_json_protobuf_or_406() {
    let api = OpenApi::build([DEF].iter(), &catalog());
    let with = |accept: &str| {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
        api.v2_response(&h)
    };
    let pb = with("application/com.github.proto-openapi.spec.v2@v1.0+protobuf");
    assert_eq!(pb.status(), StatusCode::OK);
    assert_eq!(
        pb.headers()[header::CONTENT_TYPE],
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    );
    assert_eq!(with("application/json").status(), StatusCode::OK);
    assert_eq!(with("text/html").status(), StatusCode::NOT_ACCEPTABLE);
    let v: Value = serde_json::from_slice(&api.v2.body).unwrap();
    assert_eq!(v["swagger"], "2.0");
}
