//! Kubernetes type metadata (`apiVersion` and `kind`) for moor's own API types, and
//! the serde helpers that give them Go's JSON shape. IO-free: pure data and serde.
//!
//! Go objects carry an inline `TypeMeta`; the apiserver fills it on the top-level object
//! only. Here every top-level type has two zero-sized fields, [`KindField`] and
//! [`ApiVersionField`], that always serialize their constant and accept a missing or
//! matching value on input (a different value is a decode error, as in Go).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer};
use serde::ser::{Serialize, Serializer};

/// The `kind` and `apiVersion` a type writes into its JSON form.
///
/// Implemented by every top-level `image.openshift.io/v1` type and by
/// [`DockerImageMetadata`](crate::image::DockerImageMetadata).
pub trait TypeInfo {
    /// The `apiVersion` value, e.g. `image.openshift.io/v1`.
    const API_VERSION: &'static str;
    /// The `kind` value, e.g. `ImageStream`.
    const KIND: &'static str;
}

/// The `apiVersion` field of `T`: zero-sized, always serializes `T::API_VERSION`.
///
/// Deserializing accepts a missing, null or empty value and `T::API_VERSION`; any other
/// value is an error.
pub struct ApiVersionField<T>(PhantomData<fn() -> T>);

/// The `kind` field of `T`: zero-sized, always serializes `T::KIND`.
///
/// Deserializing accepts a missing, null or empty value and `T::KIND`; any other value
/// is an error.
pub struct KindField<T>(PhantomData<fn() -> T>);

macro_rules! marker_impls {
    ($marker:ident, $konst:ident, $what:literal) => {
        impl<T> $marker<T> {
            /// The marker value (there is only one).
            pub const fn new() -> Self {
                Self(PhantomData)
            }
        }

        impl<T: TypeInfo> $marker<T> {
            /// The constant this field serializes.
            pub fn as_str(&self) -> &'static str {
                T::$konst
            }
        }

        impl<T> Default for $marker<T> {
            fn default() -> Self {
                Self::new()
            }
        }

        impl<T> Clone for $marker<T> {
            fn clone(&self) -> Self {
                *self
            }
        }

        impl<T> Copy for $marker<T> {}

        impl<T> PartialEq for $marker<T> {
            fn eq(&self, _: &Self) -> bool {
                true
            }
        }

        impl<T> Eq for $marker<T> {}

        impl<T: TypeInfo> fmt::Debug for $marker<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(T::$konst, f)
            }
        }

        impl<T: TypeInfo> Serialize for $marker<T> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(T::$konst)
            }
        }

        impl<'de, T: TypeInfo> Deserialize<'de> for $marker<T> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value: Option<String> = Option::deserialize(deserializer)?;
                match value.as_deref() {
                    None | Some("") => Ok(Self::new()),
                    Some(v) if v == T::$konst => Ok(Self::new()),
                    Some(v) => Err(de::Error::custom(format_args!(
                        concat!($what, " {:?} does not match {:?}"),
                        v,
                        T::$konst
                    ))),
                }
            }
        }
    };
}

/// OpenAPI schemas for fields whose Rust type says less than their JSON does (use
/// with `#[schemars(schema_with = "...")]`).
pub mod schema {
    use schemars::{Schema, SchemaGenerator, json_schema};

    /// Base64 bytes (`[]byte` in Go).
    pub fn bytes(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "format": "byte"})
    }

    /// A list of base64 blobs (`[][]byte` in Go).
    pub fn bytes_list(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "array", "items": {"type": "string", "format": "byte"}})
    }

    /// An RFC 3339 time.
    pub fn date_time(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "format": "date-time"})
    }

    /// A number or a string (Kubernetes' `IntOrString`).
    pub fn int_or_string(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"x-kubernetes-int-or-string": true})
    }
}

/// The OpenAPI schema of a marker field: a string, inlined (the standard description
/// of `kind` and `apiVersion` is added by whoever publishes the schema).
macro_rules! marker_schema {
    ($marker:ident) => {
        impl<T> schemars::JsonSchema for $marker<T> {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> std::borrow::Cow<'static, str> {
                "string".into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({"type": "string"})
            }
        }
    };
}

marker_schema!(ApiVersionField);
marker_schema!(KindField);
marker_impls!(ApiVersionField, API_VERSION, "apiVersion");
marker_impls!(KindField, KIND, "kind");

/// Serde helpers shared by the API types. Public so that other crates can give their
/// own types the same Go-compatible JSON shape.
pub mod serde_helpers {
    use super::*;
    use serde_json::Value;

    /// Serializes `value` without its top-level `apiVersion` and `kind`, as Go does for
    /// objects embedded in another object (`ImageStreamTag.image`, an import status).
    pub fn serialize_nested<T, S>(value: &T, serializer: S) -> Result<S::Ok, S::Error>
    where
        T: Serialize,
        S: Serializer,
    {
        strip_type_meta(value)
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }

    /// [`serialize_nested`] for an optional embedded object.
    pub fn serialize_nested_opt<T, S>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error>
    where
        T: Serialize,
        S: Serializer,
    {
        match value {
            Some(v) => serialize_nested(v, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// [`serialize_nested`] for a list of embedded objects.
    pub fn serialize_nested_vec<T, S>(values: &[T], serializer: S) -> Result<S::Ok, S::Error>
    where
        T: Serialize,
        S: Serializer,
    {
        let stripped = values
            .iter()
            .map(strip_type_meta)
            .collect::<Result<Vec<_>, _>>()
            .map_err(serde::ser::Error::custom)?;
        stripped.serialize(serializer)
    }

    fn strip_type_meta<T: Serialize>(value: &T) -> Result<Value, serde_json::Error> {
        let mut v = serde_json::to_value(value)?;
        if let Value::Object(map) = &mut v {
            map.shift_remove("kind");
            map.shift_remove("apiVersion");
        }
        Ok(v)
    }

    /// Serializes an empty list as `null`, as Go does for a nil slice without
    /// `omitempty` (e.g. `status.tags[].items` of a tag whose import failed).
    pub fn serialize_vec_null_if_empty<T, S>(values: &[T], serializer: S) -> Result<S::Ok, S::Error>
    where
        T: Serialize,
        S: Serializer,
    {
        if values.is_empty() {
            serializer.serialize_none()
        } else {
            values.serialize(serializer)
        }
    }

    /// Deserializes a list that may be `null` (Go's nil slice) into an empty `Vec`.
    pub fn deserialize_null_as_default<'de, T, D>(deserializer: D) -> Result<T, D::Error>
    where
        T: Deserialize<'de> + Default,
        D: Deserializer<'de>,
    {
        Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
    }

    /// Deserializes an optional string-valued type, treating `null` and `""` as `None`
    /// (Go has no difference between an empty string and an absent one).
    pub fn deserialize_opt_nonempty<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
    where
        T: From<String>,
        D: Deserializer<'de>,
    {
        let value: Option<String> = Option::deserialize(deserializer)?;
        Ok(value.filter(|s| !s.is_empty()).map(T::from))
    }

    /// Serializes an optional string-valued type, writing `""` for `None` (a Go string
    /// field without `omitempty`).
    pub fn serialize_opt_as_empty<T, S>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error>
    where
        T: AsRef<str>,
        S: Serializer,
    {
        serializer.serialize_str(value.as_ref().map_or("", |v| v.as_ref()))
    }

    /// `skip_serializing_if` predicate for `false` (Go `bool` with `omitempty`).
    pub fn is_false(b: &bool) -> bool {
        !*b
    }

    /// `skip_serializing_if` predicate for zero (Go integer with `omitempty`).
    pub fn is_zero(n: &i64) -> bool {
        *n == 0
    }
}

/// Declares a string-valued enum with known variants plus `Other(String)`, so that any
/// value round-trips and validation (not decoding) rejects unknown ones, as in Go. One
/// variant must carry `#[default]`.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this version does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// Every value this version knows, in declaration order.
            pub const KNOWN: &'static [&'static str] = &[$($text),+];

            /// The JSON string of this value.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $text, )+
                    Self::Other(s) => s.as_str(),
                }
            }

            /// Whether this is one of the values in [`Self::KNOWN`].
            pub fn is_known(&self) -> bool {
                !matches!(self, Self::Other(_))
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $( $text => Self::$variant, )+
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $( $text => Self::$variant, )+
                    _ => Self::Other(s),
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(Self::from(s))
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl schemars::JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> std::borrow::Cow<'static, str> {
                "string".into()
            }
            // A string, not an `enum`: values this version does not know round-trip.
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({"type": "string"})
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(Self::from(String::deserialize(d)?))
            }
        }
    };
}

pub(crate) use string_enum;

#[cfg(test)]
mod tests {
    use super::*;

    struct Thing;
    impl TypeInfo for Thing {
        const API_VERSION: &'static str = "example.io/v1";
        const KIND: &'static str = "Thing";
    }

    #[derive(serde::Serialize, serde::Deserialize, Debug, Default, PartialEq)]
    struct Obj {
        #[serde(default)]
        kind: KindField<Thing>,
        #[serde(rename = "apiVersion", default)]
        api_version: ApiVersionField<Thing>,
        x: i32,
    }

    #[test]
    fn markers_serialize_constants() {
        let s = serde_json::to_string(&Obj::default()).unwrap();
        assert_eq!(s, r#"{"kind":"Thing","apiVersion":"example.io/v1","x":0}"#);
    }

    #[test]
    fn markers_accept_missing_empty_and_matching() {
        for input in [
            r#"{"x":1}"#,
            r#"{"kind":"","apiVersion":null,"x":1}"#,
            r#"{"kind":"Thing","apiVersion":"example.io/v1","x":1}"#,
        ] {
            let o: Obj = serde_json::from_str(input).unwrap();
            assert_eq!(o.x, 1);
        }
    }

    #[test]
    fn markers_reject_mismatch() {
        let err = serde_json::from_str::<Obj>(r#"{"kind":"Other","x":1}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains(r#"kind "Other" does not match "Thing""#)
        );
        let err = serde_json::from_str::<Obj>(r#"{"apiVersion":"v1","x":1}"#).unwrap_err();
        assert!(err.to_string().contains("apiVersion"));
    }

    #[test]
    fn nested_strips_type_meta_and_keeps_order() {
        #[derive(serde::Serialize)]
        struct Outer {
            #[serde(serialize_with = "serde_helpers::serialize_nested")]
            inner: Obj,
        }
        let s = serde_json::to_string(&Outer {
            inner: Obj::default(),
        })
        .unwrap();
        assert_eq!(s, r#"{"inner":{"x":0}}"#);
    }
}
