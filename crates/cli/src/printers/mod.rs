//! Output of `get` and friends as oc and kubectl print it: server Tables, YAML and JSON
//! (keys sorted, lists wrapped in `kind: List`), `-o name`, and JSONPath templates.
//! Pure functions from JSON values to text; the commands do the IO.

pub mod jsonpath;
pub mod table;
pub mod tabwriter;

use serde_json::{Map, Value};

use crate::resources::ResourceType;
use jsonpath::{Template, TemplateError};

/// Errors from choosing or using an output format.
#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    /// `-o` named no known format.
    #[error(
        "unable to match a printer suitable for the output format {0:?}, allowed formats are: json, jsonpath, name, wide, yaml"
    )]
    UnknownFormat(String),
    /// The JSONPath template is wrong.
    #[error("{0}")]
    Template(#[from] TemplateError),
    /// YAML encoding failed.
    #[error("encoding YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    /// JSON encoding failed.
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The `-o` formats of `get`.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputFormat {
    /// The server's Table with all columns.
    Wide,
    /// YAML of the object, or of a `List` of them.
    Yaml,
    /// JSON of the object, or of a `List` of them.
    Json,
    /// `<resource>.<group>/<name>` per object.
    Name,
    /// A kubectl JSONPath template.
    JsonPath(Template),
}

impl OutputFormat {
    /// Parses `yaml`, `json`, `wide`, `name`, `jsonpath=TEMPLATE` (also
    /// `jsonpath='TEMPLATE'`).
    pub fn parse(s: &str) -> Result<OutputFormat, PrintError> {
        match s {
            "wide" => return Ok(OutputFormat::Wide),
            "yaml" => return Ok(OutputFormat::Yaml),
            "json" => return Ok(OutputFormat::Json),
            "name" => return Ok(OutputFormat::Name),
            _ => {}
        }
        let Some(template) = s.strip_prefix("jsonpath=") else {
            return Err(PrintError::UnknownFormat(s.to_string()));
        };
        let template = template
            .strip_prefix('\'')
            .and_then(|t| t.strip_suffix('\''))
            .unwrap_or(template);
        Ok(OutputFormat::JsonPath(Template::parse(template)?))
    }
}

/// Prints objects in one of the structured formats (everything but tables).
///
/// `single` is true when the user named exactly one object: then YAML, JSON and
/// JSONPath see that object; otherwise they see a `kind: List` of all of them.
pub fn print_objects(
    format: &OutputFormat,
    ty: &ResourceType,
    objects: Vec<Value>,
    single: bool,
) -> Result<String, PrintError> {
    let objects: Vec<Value> = objects.into_iter().map(|o| with_type_meta(o, ty)).collect();
    let data = || match (single, objects.first()) {
        (true, Some(one)) if objects.len() == 1 => one.clone(),
        _ => list_of(objects.clone()),
    };
    Ok(match format {
        OutputFormat::Yaml => to_yaml(&data())?,
        OutputFormat::Json => to_json(&data())?,
        OutputFormat::JsonPath(t) => t.render(&data())?,
        OutputFormat::Name => objects
            .iter()
            .map(|o| format!("{}\n", name_of(ty, o)))
            .collect(),
        OutputFormat::Wide => String::new(),
    })
}

/// `<resource>.<group>/<name>`, as `-o name` and `created` print it.
pub fn name_of(ty: &ResourceType, object: &Value) -> String {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    format!("{}/{}", ty.qualified_singular(), name)
}

/// The `kind: List` kubectl wraps several objects in.
pub fn list_of(items: Vec<Value>) -> Value {
    let mut list = Map::new();
    list.insert("apiVersion".into(), Value::from("v1"));
    list.insert("items".into(), Value::Array(items));
    list.insert("kind".into(), Value::from("List"));
    let mut meta = Map::new();
    meta.insert("resourceVersion".into(), Value::from(""));
    list.insert("metadata".into(), Value::Object(meta));
    Value::Object(list)
}

/// Sets `kind` and `apiVersion` where a list item left them out.
fn with_type_meta(mut object: Value, ty: &ResourceType) -> Value {
    if let Some(map) = object.as_object_mut() {
        let missing = |v: Option<&Value>| v.and_then(Value::as_str).is_none_or(str::is_empty);
        if missing(map.get("kind")) {
            map.insert("kind".into(), Value::from(ty.kind));
        }
        if missing(map.get("apiVersion")) {
            map.insert("apiVersion".into(), Value::from(ty.api_version()));
        }
    }
    object
}

/// YAML with keys sorted, as kubectl prints it.
pub fn to_yaml(value: &Value) -> Result<String, PrintError> {
    Ok(serde_yaml_ng::to_string(&sorted(value))?)
}

/// JSON indented by four spaces with keys sorted, as kubectl prints it.
pub fn to_json(value: &Value) -> Result<String, PrintError> {
    use serde::Serialize;
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    sorted(value).serialize(&mut ser)?;
    buf.push(b'\n');
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// A copy of `value` with the keys of every object in sorted order.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{IMAGE_STREAMS, NAMESPACES};
    use serde_json::json;

    fn stream(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"lookupPolicy": {"local": false}}})
    }

    #[test]
    fn formats_parse() {
        assert_eq!(OutputFormat::parse("wide").unwrap(), OutputFormat::Wide);
        assert!(matches!(
            OutputFormat::parse("jsonpath={.a}").unwrap(),
            OutputFormat::JsonPath(_)
        ));
        assert!(matches!(
            OutputFormat::parse("jsonpath='{.a}'").unwrap(),
            OutputFormat::JsonPath(_)
        ));
        assert!(matches!(
            OutputFormat::parse("xml"),
            Err(PrintError::UnknownFormat(_))
        ));
        assert!(matches!(
            OutputFormat::parse("jsonpath={.a"),
            Err(PrintError::Template(_))
        ));
    }

    #[test]
    fn names() {
        let out = print_objects(
            &OutputFormat::Name,
            &IMAGE_STREAMS,
            vec![stream("a"), stream("b")],
            false,
        )
        .unwrap();
        assert_eq!(
            out,
            "imagestream.image.openshift.io/a\nimagestream.image.openshift.io/b\n"
        );
        assert_eq!(
            name_of(&NAMESPACES, &json!({"metadata": {"name": "default"}})),
            "namespace/default"
        );
    }

    #[test]
    fn yaml_of_one_object_is_sorted_and_typed() {
        let out = print_objects(
            &OutputFormat::Yaml,
            &IMAGE_STREAMS,
            vec![stream("keycloak")],
            true,
        )
        .unwrap();
        assert_eq!(
            out,
            "apiVersion: image.openshift.io/v1\nkind: ImageStream\nmetadata:\n  name: keycloak\n  namespace: default\nspec:\n  lookupPolicy:\n    local: false\n"
        );
    }

    #[test]
    fn lists_are_wrapped_like_kubectl() {
        let out = print_objects(&OutputFormat::Yaml, &IMAGE_STREAMS, vec![], false).unwrap();
        assert_eq!(
            out,
            "apiVersion: v1\nitems: []\nkind: List\nmetadata:\n  resourceVersion: ''\n"
        );
        let out = print_objects(
            &OutputFormat::Json,
            &IMAGE_STREAMS,
            vec![stream("a")],
            false,
        )
        .unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["kind"], "List");
        assert_eq!(v["items"][0]["kind"], "ImageStream");
        assert!(out.starts_with("{\n    \"apiVersion\": \"v1\",\n    \"items\": ["));
    }

    #[test]
    fn jsonpath_sees_the_object_or_the_list() {
        let t = OutputFormat::parse("jsonpath={.metadata.name}").unwrap();
        assert_eq!(
            print_objects(&t, &IMAGE_STREAMS, vec![stream("a")], true).unwrap(),
            "a"
        );
        let t = OutputFormat::parse("jsonpath={.items[*].metadata.name}").unwrap();
        assert_eq!(
            print_objects(&t, &IMAGE_STREAMS, vec![stream("a"), stream("b")], false).unwrap(),
            "a b"
        );
    }
}
