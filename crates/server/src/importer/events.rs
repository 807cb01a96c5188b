//! The importer's core/v1 Events about image streams, counted as Kubernetes' event
//! recorder counts them: an Event identical to one recorded before (same stream, tag,
//! type, reason and message) bumps that Event's `count`, `lastTimestamp` and `series`
//! instead of adding one more. Calls the events storage only.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde_json::{Value, json};

use super::{Importer, ctx};
use moor_apimachinery::error::ApiError;
use moor_apimachinery::stored::{now_rfc3339, unconditional};

/// How many distinct Events are remembered for counting (client-go's event cache
/// holds 4096 as well).
const REMEMBERED: usize = 4096;

/// The Events recorded lately: identity → the Event's name. Bounded, oldest first
/// out. Hand-written: a map and a queue are all a 4096-entry FIFO needs, and an LRU
/// crate would be a dependency for one struct.
#[derive(Default)]
pub(super) struct EventLog {
    inner: Mutex<(HashMap<String, String>, VecDeque<String>)>,
}

impl EventLog {
    fn get(&self, key: &str) -> Option<String> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.0.get(key).cloned()
    }

    fn put(&self, key: String, name: String) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (names, order) = &mut *inner;
        if names.insert(key.clone(), name).is_none() {
            order.push_back(key);
        }
        while order.len() > REMEMBERED {
            if let Some(old) = order.pop_front() {
                names.remove(&old);
            }
        }
    }
}

/// `spec.tags{TAG}`: the `involvedObject.fieldPath` of an Event about one tag, in the
/// form Kubernetes uses for a container (`spec.containers{name}`).
pub fn tag_field_path(tag: &str) -> String {
    format!("spec.tags{{{tag}}}")
}

/// `now` as a `MicroTime` (`series.lastObservedTime`).
fn micro_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

impl Importer {
    /// Records a core/v1 Event about `stream` (about its tag `tag`, when given), or
    /// counts it on the identical Event recorded before. Best effort.
    pub async fn record_event(
        &self,
        stream: &Value,
        tag: Option<&str>,
        reason: &str,
        message: &str,
        ty: &str,
    ) {
        let ns = stream
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default");
        let name = stream
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let uid = stream
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        let field_path = tag.map(tag_field_path).unwrap_or_default();
        // client-go's key: source, involved object (without its resourceVersion),
        // type, reason and message.
        let key = [ns, name, uid, &field_path, ty, reason, message].join("\u{0}");
        if let Some(event) = self.event_log.get(&key) {
            match self.count_again(ns, &event).await {
                Ok(()) => return,
                Err(ApiError::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "counting an event failed");
                    return;
                }
            }
        }
        let now = now_rfc3339();
        let mut involved = json!({
            "kind": "ImageStream", "apiVersion": "image.openshift.io/v1", "name": name, "namespace": ns,
            "uid": stream.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
            "resourceVersion": stream.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null),
        });
        if !field_path.is_empty() {
            involved["fieldPath"] = json!(field_path);
        }
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": format!("{name}."), "namespace": ns},
            "involvedObject": involved,
            "reason": reason, "message": message, "type": ty,
            "source": {"component": "moor-importer"},
            "reportingComponent": "moor-importer",
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        });
        match self.events.create(&ctx(), Some(ns), event).await {
            Ok(created) => {
                if let Some(event) = created.pointer("/metadata/name").and_then(Value::as_str) {
                    self.event_log.put(key, event.to_string());
                }
            }
            Err(e) => tracing::warn!(error = %e, "recording an event failed"),
        }
    }

    /// Bumps the `count` of Event `event` (read-modify-write, so that concurrent
    /// recorders add up), its `lastTimestamp` and its `series`.
    async fn count_again(&self, ns: &str, event: &str) -> Result<(), ApiError> {
        let f = |cur: Option<&Value>| -> Result<Value, ApiError> {
            let mut cur = cur.cloned().ok_or_else(|| ApiError::NotFound {
                gr: moor_apimachinery::resource::GroupResource::new("", "events"),
                name: event.to_string(),
            })?;
            let count = cur.get("count").and_then(Value::as_i64).unwrap_or(1) + 1;
            cur["count"] = json!(count);
            cur["lastTimestamp"] = json!(now_rfc3339());
            cur["series"] = json!({"count": count, "lastObservedTime": micro_now()});
            Ok(unconditional(cur))
        };
        self.events
            .update(&ctx(), Some(ns), event, None, &f, false)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_forgets_the_oldest_beyond_its_bound() {
        let log = EventLog::default();
        for i in 0..=REMEMBERED {
            log.put(format!("k{i}"), format!("e{i}"));
        }
        assert_eq!(log.get("k0"), None);
        assert_eq!(log.get("k1").as_deref(), Some("e1"));
        log.put("k1".into(), "again".into());
        assert_eq!(log.get("k1").as_deref(), Some("again"));
        assert_eq!(tag_field_path("20.0"), "spec.tags{20.0}");
        assert!(micro_now().ends_with('Z'));
    }
}
