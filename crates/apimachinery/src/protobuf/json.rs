//! The JSON form of k8s-pb (prost) messages: [`ToJson`] for scalars, lists, maps and
//! the messages whose JSON is not an object of their fields (times, quantities,
//! int-or-string, raw extensions, `ExtraValue`); every other message's impl is
//! generated (`generated.rs`). Field presence follows the wire: an absent optional
//! field, an empty list and an empty map are left out, as Kubernetes' `omitempty`.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_pb::api::{authentication, authorization};
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1::{Duration, FieldsV1, MicroTime, Time};
use k8s_pb::apimachinery::pkg::runtime::RawExtension;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Map, Value};

use crate::limits::{MAX_DEPTH, text_depth};

/// A value with a JSON form; `None` is "leave the field out".
pub(super) trait ToJson {
    fn to_json(&self) -> Value;
    /// Whether the field holding this value is left out of its object.
    fn is_absent(&self) -> bool {
        false
    }
}

/// Decodes `raw` as `M` and gives its JSON.
pub(super) fn decode<M: prost::Message + Default + ToJson>(
    raw: &[u8],
) -> Result<Value, prost::DecodeError> {
    M::decode(raw).map(|m| m.to_json())
}

/// A JSON object being filled field by field.
#[derive(Default)]
pub(super) struct Obj(Map<String, Value>);

impl Obj {
    /// Sets `name` unless the value is absent or `null` (a zero `metav1.Time`).
    pub(super) fn put<T: ToJson>(&mut self, name: &str, v: &T) {
        if !v.is_absent() {
            let j = v.to_json();
            if !j.is_null() {
                self.0.insert(name.to_string(), j);
            }
        }
    }

    /// Sets a scalar unless it is absent or zero (`""`, `0`, `false`): Go writes a
    /// non-pointer field to protobuf even when zero, and its JSON leaves the zero
    /// out (`omitempty`).
    pub(super) fn omitzero<T: ToJson + Default + PartialEq>(&mut self, name: &str, v: &Option<T>) {
        if let Some(x) = v.as_ref().filter(|x| **x != T::default()) {
            self.0.insert(name.to_string(), x.to_json());
        }
    }

    /// Sets a `bytes` field: base64, as Go's encoding/json writes `[]byte`.
    pub(super) fn bytes<T: Bytes>(&mut self, name: &str, v: &T) {
        if let Some(j) = v.bytes_json() {
            self.0.insert(name.to_string(), j);
        }
    }

    /// Merges the fields of an embedded Go struct (`json:",inline"`).
    pub(super) fn inline<T: ToJson>(&mut self, v: &Option<T>) {
        if let Some(Value::Object(m)) = v.as_ref().map(ToJson::to_json) {
            self.0.extend(m);
        }
    }
}

impl From<Obj> for Value {
    fn from(o: Obj) -> Value {
        Value::Object(o.0)
    }
}

/// The shapes a protobuf `bytes` field takes in k8s-pb.
pub(super) trait Bytes {
    fn bytes_json(&self) -> Option<Value>;
}

impl Bytes for Option<Vec<u8>> {
    fn bytes_json(&self) -> Option<Value> {
        self.as_ref().map(|b| Value::String(STANDARD.encode(b)))
    }
}

impl Bytes for BTreeMap<String, Vec<u8>> {
    fn bytes_json(&self) -> Option<Value> {
        (!self.is_empty()).then(|| {
            Value::Object(
                self.iter()
                    .map(|(k, v)| (k.clone(), Value::String(STANDARD.encode(v))))
                    .collect(),
            )
        })
    }
}

impl ToJson for String {
    fn to_json(&self) -> Value {
        Value::String(self.clone())
    }
}

impl ToJson for bool {
    fn to_json(&self) -> Value {
        Value::Bool(*self)
    }
}

impl ToJson for i32 {
    fn to_json(&self) -> Value {
        Value::from(*self)
    }
}

impl ToJson for i64 {
    fn to_json(&self) -> Value {
        Value::from(*self)
    }
}

impl ToJson for f64 {
    fn to_json(&self) -> Value {
        // NaN and infinities have no JSON form; Go's encoder refuses them too.
        serde_json::Number::from_f64(*self).map_or(Value::Null, Value::Number)
    }
}

impl<T: ToJson> ToJson for Option<T> {
    fn to_json(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToJson::to_json)
    }
    fn is_absent(&self) -> bool {
        self.is_none()
    }
}

impl<T: ToJson> ToJson for Box<T> {
    fn to_json(&self) -> Value {
        (**self).to_json()
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn to_json(&self) -> Value {
        Value::Array(self.iter().map(ToJson::to_json).collect())
    }
    fn is_absent(&self) -> bool {
        self.is_empty()
    }
}

impl<T: ToJson> ToJson for BTreeMap<String, T> {
    fn to_json(&self) -> Value {
        Value::Object(self.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
    }
    fn is_absent(&self) -> bool {
        self.is_empty()
    }
}

/// `metav1.Time`: RFC 3339 in UTC, whole seconds (Go's `Time.MarshalJSON`); the
/// zero time (Go writes it for a non-pointer `Time`) is `null`, as in Go's JSON.
impl ToJson for Time {
    fn to_json(&self) -> Value {
        timestamp(self.seconds, self.nanos, false)
    }
}

/// `metav1.MicroTime`: RFC 3339 in UTC with microseconds; the zero time is `null`.
impl ToJson for MicroTime {
    fn to_json(&self) -> Value {
        timestamp(self.seconds, self.nanos, true)
    }
}

fn timestamp(seconds: Option<i64>, nanos: Option<i32>, micro: bool) -> Value {
    let (seconds, nanos) = (seconds.unwrap_or(0), nanos.unwrap_or(0));
    if seconds == 0 && nanos == 0 {
        return Value::Null;
    }
    let (nanos, format) = if micro {
        (nanos, "%Y-%m-%dT%H:%M:%S%.6fZ")
    } else {
        (0, "%Y-%m-%dT%H:%M:%SZ")
    };
    match jiff::Timestamp::new(seconds, nanos) {
        Ok(t) => Value::String(t.strftime(format).to_string()),
        // Out of range: a string the typed decoding then refuses with a message.
        Err(_) => Value::String(format!("invalid time: {seconds} s")),
    }
}

/// `metav1.Duration`: Go's `time.Duration.String()` (`1h2m3.5s`).
impl ToJson for Duration {
    fn to_json(&self) -> Value {
        Value::String(go_duration(self.duration.unwrap_or(0)))
    }
}

/// Formats nanoseconds as Go's `time.Duration.String()` does.
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000_000_000 {
        let (unit, div) = match n {
            0..1_000 => ("ns", 1),
            1_000..1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{sign}{}{unit}", fraction(n, div));
    }
    let (h, rest) = (n / 3_600_000_000_000, n % 3_600_000_000_000);
    let (m, s) = (rest / 60_000_000_000, rest % 60_000_000_000);
    let secs = format!("{}s", fraction(s, 1_000_000_000));
    match (h, m) {
        (0, 0) => format!("{sign}{secs}"),
        (0, m) => format!("{sign}{m}m{secs}"),
        (h, m) => format!("{sign}{h}h{m}m{secs}"),
    }
}

/// `n / div` with its fraction, trailing zeros dropped (`1.5`, `2`).
fn fraction(n: u64, div: u64) -> String {
    let (whole, frac) = (n / div, n % div);
    if frac == 0 {
        return whole.to_string();
    }
    let width = div.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// `resource.Quantity`: its canonical string.
impl ToJson for Quantity {
    fn to_json(&self) -> Value {
        Value::String(self.string.clone().unwrap_or_default())
    }
}

/// `intstr.IntOrString`: the int (type 0) or the string (type 1).
impl ToJson for IntOrString {
    fn to_json(&self) -> Value {
        match self.r#type {
            Some(1) => Value::String(self.str_val.clone().unwrap_or_default()),
            _ => Value::from(self.int_val.unwrap_or(0)),
        }
    }
}

/// `runtime.RawExtension` and `metav1.FieldsV1` hold JSON bytes.
fn raw_json(raw: Option<&[u8]>) -> Value {
    let raw = raw.unwrap_or(b"{}");
    if text_depth(raw) > MAX_DEPTH {
        return Value::Null;
    }
    serde_json::from_slice(raw).unwrap_or(Value::Null)
}

impl ToJson for RawExtension {
    fn to_json(&self) -> Value {
        raw_json(self.raw.as_deref())
    }
}

impl ToJson for FieldsV1 {
    fn to_json(&self) -> Value {
        raw_json(self.raw.as_deref())
    }
}

/// `ExtraValue` is Go's `[]string`; protobuf wraps the list in `items`.
impl ToJson for authentication::v1::ExtraValue {
    fn to_json(&self) -> Value {
        self.items.to_json()
    }
}

impl ToJson for authorization::v1::ExtraValue {
    fn to_json(&self) -> Value {
        self.items.to_json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        for (n, s) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (2_000_000, "2ms"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (-3_723_000_000_000, "-1h2m3s"),
        ] {
            assert_eq!(go_duration(n), s, "{n}");
        }
    }

    #[test]
    fn times_are_rfc3339_utc() {
        let t = Time {
            seconds: Some(1_700_000_000),
            nanos: Some(5),
        };
        assert_eq!(t.to_json(), "2023-11-14T22:13:20Z");
        let t = MicroTime {
            seconds: Some(1_700_000_000),
            nanos: Some(123_456_789),
        };
        assert_eq!(t.to_json(), "2023-11-14T22:13:20.123456Z");
    }
}
