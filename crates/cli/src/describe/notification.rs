//! `moor describe notification`: a Notification's receiver, selectors, signing secret
//! and delivery status (pending, delivered, last success, last error), tab-aligned as
//! kubectl's describers are. A pure function of the object and the time.

use jiff::Timestamp;
use moor_api::notification::{EventKind, Notification};

use crate::printers::tabwriter::TabWriter;

/// `<none>` for an empty list, else the items joined by `,`.
fn list(items: &[String], none: &str) -> String {
    if items.is_empty() {
        none.to_owned()
    } else {
        items.join(",")
    }
}

fn ago(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>, now: Timestamp) -> String {
    match t {
        Some(t) => format!(
            "{} ({} ago)",
            t.0,
            moor_api::humanize::human_duration(now.as_second() - t.0.as_second())
        ),
        None => "<none>".into(),
    }
}

/// Describes `n` relative to `now`.
pub fn notification(n: &Notification, now: Timestamp) -> String {
    let events: Vec<String> = if n.spec.events.is_empty() {
        EventKind::ALL.iter().map(|k| format!("{k:?}")).collect()
    } else {
        n.spec.events.iter().map(|k| format!("{k:?}")).collect()
    };
    let status = n.status.clone().unwrap_or_default();
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k}:\t{v}\n"));
    line("Name", n.metadata.name.clone().unwrap_or_default());
    line(
        "Namespace",
        n.metadata.namespace.clone().unwrap_or_default(),
    );
    line("Created", ago(n.metadata.creation_timestamp.as_ref(), now));
    line("URL", n.spec.url.clone());
    line("Streams", list(&n.spec.streams, "<all>"));
    line("Tags", list(&n.spec.tags, "<all>"));
    line("Events", events.join(","));
    line(
        "Signed With",
        n.spec
            .secret_ref
            .as_ref()
            .map(|r| format!("secret {}, key {}", r.name, r.key))
            .unwrap_or_else(|| "<unsigned>".into()),
    );
    line("Pending", status.pending.to_string());
    line("Delivered", status.delivered.to_string());
    line("Last Success", ago(status.last_success_time.as_ref(), now));
    line(
        "Last Error",
        match &status.last_error {
            Some(e) => format!("{e} ({})", ago(status.last_error_time.as_ref(), now)),
            None => "<none>".into(),
        },
    );
    if status.gaps > 0 {
        line(
            "Gaps",
            format!(
                "{}, last: {} ({})",
                status.gaps,
                status.last_gap.as_deref().unwrap_or("<unknown>"),
                ago(status.last_gap_time.as_ref(), now)
            ),
        );
    }
    TabWriter::OC_DESCRIBE.format(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_the_receiver_selectors_and_delivery() {
        let n: Notification = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "hook", "namespace": "ns"},
            "spec": {"url": "https://h.example/x", "tags": ["20.*"], "events": ["TagUpdated"],
                     "secretRef": {"name": "s", "key": "k"}},
            "status": {"pending": 3, "delivered": 7, "lastError": "POST https://h.example/x: 503 Service Unavailable",
                       "lastErrorTime": "2026-01-01T00:00:00Z"},
        }))
        .unwrap();
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let text = notification(&n, now);
        for want in [
            "URL:",
            "https://h.example/x",
            "Streams:",
            "<all>",
            "20.*",
            "TagUpdated",
            "secret s, key k",
            "Pending:",
            "3",
            "Delivered:",
            "7",
            "503 Service Unavailable",
            "minute ago",
        ] {
            assert!(text.contains(want), "{want:?} missing in:\n{text}");
        }
        assert!(!text.contains("Gaps:"), "{text}");
    }

    #[test]
    fn a_gap_is_shown() {
        let n: Notification = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "hook", "namespace": "ns"},
            "spec": {"url": "https://h.example/x"},
            "status": {"gaps": 2, "lastGap": "store revisions 5 to 900 were compacted",
                       "lastGapTime": "2026-01-01T00:00:00Z"},
        }))
        .unwrap();
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let text = notification(&n, now);
        assert!(
            text.contains("Gaps:") && text.contains("2, last: store revisions 5 to 900"),
            "{text}"
        );
    }
}
