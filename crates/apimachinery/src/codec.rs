//! Request and response bodies: JSON or YAML in, typed decoding that names unknown
//! fields (for `fieldValidation`), canonical JSON out. Calls serde only.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;
use super::limits::{MAX_DEPTH, text_depth};

/// Decodes `body` as `T` and back to JSON: the canonical form of the object, with the
/// JSON paths (`spec.tags[0].foo`) of every field `T` does not know.
pub fn decode_as<T: DeserializeOwned + Serialize>(
    body: Value,
) -> Result<(Value, Vec<String>), String> {
    let mut unknown = Vec::new();
    let typed: T = serde_ignored::deserialize(body, |path| unknown.push(render_path(&path)))
        .map_err(|e| e.to_string())?;
    let value = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    Ok((value, unknown))
}

/// Decodes the body of a virtual `image.openshift.io/v1` resource (one that is not
/// stored, so no strategy decodes it) as `T`, whatever `apiVersion` and `kind` it
/// carries; a body that does not decode is a 400 worded as openshift-apiserver's.
pub fn decode_image_kind<T: DeserializeOwned + Serialize>(
    mut body: Value,
    kind: &str,
) -> Result<(Value, Vec<String>), ApiError> {
    if body.is_object() {
        body["apiVersion"] = Value::from("image.openshift.io/v1");
        body["kind"] = Value::from(kind);
    }
    decode_as::<T>(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "{kind} in version \"v1\" cannot be handled as a {kind}: {e}"
        ))
    })
}

fn render_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", render_path(parent)),
        Path::Map { parent, key } => {
            let p = render_path(parent);
            if p.is_empty() {
                key.clone()
            } else {
                format!("{p}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => render_path(parent),
    }
}

/// The media type of a request body, without parameters.
pub fn media_type(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Refuses a body nested deeper than [`MAX_DEPTH`] after one linear pass, before a
/// parser spends time on it.
pub fn check_depth(body: &[u8]) -> Result<(), ApiError> {
    if text_depth(body) > MAX_DEPTH {
        return Err(ApiError::BadRequest(format!(
            "the request body is nested deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok(())
}

/// Parses a JSON or YAML request body into JSON.
pub fn parse_body(media: &str, body: &[u8]) -> Result<Value, ApiError> {
    match media {
        "application/json" | "" | "*/*" => {
            check_depth(body)?;
            serde_json::from_slice(body)
                .map_err(|e| ApiError::BadRequest(format!("error decoding JSON body: {e}")))
        }
        "application/yaml"
        | "application/x-yaml"
        | "text/yaml"
        | "application/apply-patch+yaml" => parse_yaml(body),
        other => Err(ApiError::UnsupportedMediaType(other.to_string())),
    }
}

/// Parses an object body of any media type moor reads: JSON, YAML, or Kubernetes
/// protobuf for the built-in kinds [`protobuf`](crate::protobuf) decodes. `expected`
/// is the `(apiVersion, kind)` the URL's resource takes (a protobuf envelope must
/// name it; a resource whose kind has no protobuf form is 415); `None` takes any
/// kind the envelope names. For handlers outside the generic ones (review APIs).
pub fn parse_object_body(
    media: &str,
    body: &[u8],
    expected: Option<(&str, &str)>,
) -> Result<Value, ApiError> {
    if media == crate::protobuf::MEDIA_TYPE {
        return crate::protobuf::decode_object(body, expected);
    }
    parse_body(media, body)
}

/// Parses a YAML (or JSON, which is YAML) document into JSON.
pub fn parse_yaml(body: &[u8]) -> Result<Value, ApiError> {
    check_depth(body)?;
    let v: Value = serde_yaml_ng::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("error decoding YAML body: {e}")))?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Namespace;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_named_by_path() {
        let body = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "a", "bogus": 1},
            "spec": {"finalizers": [], "extra": true},
        });
        let (value, unknown) = decode_as::<Namespace>(body).unwrap();
        assert_eq!(
            unknown,
            vec!["metadata.bogus".to_string(), "spec.extra".to_string()]
        );
        assert_eq!(value["metadata"]["name"], "a");
        assert!(value["metadata"].get("bogus").is_none());
    }

    #[test]
    fn yaml_and_json_bodies() {
        assert_eq!(
            parse_body("application/yaml", b"a: 1").unwrap(),
            json!({"a": 1})
        );
        assert!(parse_body("application/json", b"{").is_err());
        assert!(matches!(
            parse_body("application/vnd.kubernetes.protobuf", b""),
            Err(ApiError::UnsupportedMediaType(_))
        ));
        assert_eq!(
            media_type(Some("application/json; charset=utf-8")),
            "application/json"
        );
    }

    #[test]
    fn object_bodies_by_media_type() {
        let pb = crate::protobuf::MEDIA_TYPE;
        assert_eq!(
            parse_object_body("application/json", b"{\"a\":1}", None).unwrap(),
            json!({"a": 1})
        );
        // No protobuf form for the resource's kind: 415, as for custom resources.
        assert!(matches!(
            parse_object_body(pb, b"k8s\0", Some(("image.openshift.io/v1", "ImageStream"))),
            Err(ApiError::UnsupportedMediaType(_))
        ));
        // A built-in kind: the body must decode.
        assert!(matches!(
            parse_object_body(pb, b"nope", Some(("v1", "Secret"))),
            Err(ApiError::BadRequest(_))
        ));
    }
}
