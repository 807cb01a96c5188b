//! `moor.io/v1` Notification: where to POST a CloudEvent when a tag moves, an import
//! fails, an image is pushed or a signature is refused, and how delivery went. Also
//! the event types, the selectors (names or `*`/`?` globs), the validation, and the
//! outbox entry the server stores with each change. IO-free: data types and checks.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{ApiVersionField, KindField, TypeInfo};
use crate::validation::FieldError;

/// The store key prefix of the outbox: `/moor/outbox/<namespace>/<notification>/<id>`.
pub const OUTBOX_PREFIX: &str = "/moor/outbox/";

/// The outbox prefix of one Notification's pending events.
pub fn outbox_prefix(namespace: &str, notification: &str) -> String {
    format!("{OUTBOX_PREFIX}{namespace}/{notification}/")
}

/// A list of [`Notification`]s (`kind: NotificationList`).
pub type NotificationList = k8s_openapi::List<Notification>;

/// A subscription: events of this namespace's image streams POSTed to `spec.url`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "io.moor.v1.Notification")]
pub struct Notification {
    /// Always `Notification`.
    #[serde(default)]
    pub kind: KindField<Notification>,
    /// Always `moor.io/v1`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: ApiVersionField<Notification>,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What to deliver, and where.
    #[serde(default)]
    pub spec: NotificationSpec,
    /// How delivery went. Set by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<NotificationStatus>,
}

impl k8s_openapi::Resource for Notification {
    const API_VERSION: &'static str = crate::scheduled::API_VERSION;
    const GROUP: &'static str = crate::scheduled::GROUP;
    const KIND: &'static str = "Notification";
    const VERSION: &'static str = crate::scheduled::VERSION;
    const URL_PATH_SEGMENT: &'static str = "notifications";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for Notification {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &Self::Ty {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut Self::Ty {
        &mut self.metadata
    }
}

impl k8s_openapi::ListableResource for Notification {
    const LIST_KIND: &'static str = "NotificationList";
}

impl TypeInfo for Notification {
    const API_VERSION: &'static str = crate::scheduled::API_VERSION;
    const KIND: &'static str = "Notification";
}

/// What a Notification delivers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "io.moor.v1.NotificationSpec")]
pub struct NotificationSpec {
    /// The receiver: an `http://` or `https://` URL. Private and loopback addresses
    /// are refused unless the server runs with `--allow-private-notification-targets`.
    #[serde(default)]
    pub url: String,
    /// Image streams whose events are sent: names or globs (`*` any run, `?` one
    /// character, matched against the whole name). Empty: every stream.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<String>,
    /// Tags whose events are sent: names or globs, as `streams`. Empty: every tag.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// A key of a Secret in this namespace: when set, each POST carries
    /// `X-Moor-Signature: sha256=<hex HMAC-SHA256 of the body under the key's value>`.
    #[serde(rename = "secretRef", default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// The events sent: `TagUpdated`, `ImportFailed`, `ImagePushed`,
    /// `SignatureRefused`. Empty: every one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventKind>,
}

/// A key of a Secret in the Notification's namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "io.moor.v1.SecretKeyRef")]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[serde(default)]
    pub name: String,
    /// The key in its `data`.
    #[serde(default)]
    pub key: String,
}

/// How delivery went.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "io.moor.v1.NotificationStatus")]
pub struct NotificationStatus {
    /// When an event was last accepted (a 2xx answer).
    #[serde(
        rename = "lastSuccessTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub last_success_time: Option<Time>,
    /// Why the last failed attempt failed; cleared by a success.
    #[serde(rename = "lastError", default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the last attempt failed.
    #[serde(
        rename = "lastErrorTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub last_error_time: Option<Time>,
    /// Events recorded and not delivered yet.
    #[serde(default)]
    pub pending: u64,
    /// Events delivered since the Notification was created.
    #[serde(default)]
    pub delivered: u64,
    /// Times the server resumed recording after the store's history was compacted
    /// (kine only, when no replica led for longer than kine keeps history), with
    /// changes of this Notification's streams in between, which were not recorded.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gaps: u64,
    /// The last gap: which store revisions were not recorded.
    #[serde(rename = "lastGap", default, skip_serializing_if = "Option::is_none")]
    pub last_gap: Option<String>,
    /// When the last gap was found.
    #[serde(
        rename = "lastGapTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub last_gap_time: Option<Time>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What happened, as `spec.events` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "io.moor.v1.NotificationEventKind")]
pub enum EventKind {
    /// A tag now points at another image (an import, a `moor tag`, a rollback, a push).
    TagUpdated,
    /// An import of a tag failed (`ImportSuccess=False`).
    ImportFailed,
    /// An image was pushed to a tag through moor's registry.
    ImagePushed,
    /// An image was refused because of its signatures (the signature policy).
    SignatureRefused,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 4] = [
        EventKind::TagUpdated,
        EventKind::ImportFailed,
        EventKind::ImagePushed,
        EventKind::SignatureRefused,
    ];

    /// The CloudEvents `type`.
    pub fn cloudevent_type(self) -> &'static str {
        match self {
            EventKind::TagUpdated => "io.moor.imagestreamtag.updated",
            EventKind::ImportFailed => "io.moor.imagestreamtag.importfailed",
            EventKind::ImagePushed => "io.moor.image.pushed",
            EventKind::SignatureRefused => "io.moor.image.signaturerefused",
        }
    }
}

/// The event's payload (the CloudEvent's `data`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "io.moor.v1.NotificationEventData")]
pub struct EventData {
    /// The stream's namespace.
    pub namespace: String,
    /// The image stream.
    #[serde(rename = "imageStream")]
    pub image_stream: String,
    /// The tag.
    pub tag: String,
    /// The image the tag pointed at before (its digest), if any.
    #[serde(rename = "oldDigest", default, skip_serializing_if = "Option::is_none")]
    pub old_digest: Option<String>,
    /// The image the tag points at now (or, for a failure, was asked for), if known.
    #[serde(rename = "newDigest", default, skip_serializing_if = "Option::is_none")]
    pub new_digest: Option<String>,
    /// The pull spec of the new image (`items[0].dockerImageReference`).
    #[serde(rename = "pullSpec", default, skip_serializing_if = "Option::is_none")]
    pub pull_spec: Option<String>,
    /// The failure's reason and message (ImportFailed, SignatureRefused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The failure's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One pending delivery, as the outbox keeps it: the CloudEvent's attributes and data,
/// fixed when the change was written (so a retry sends the same `id`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The CloudEvent `id` (unique per event; the same on every retry).
    pub id: String,
    /// What happened.
    pub kind: EventKind,
    /// When (RFC 3339).
    pub time: String,
    /// The payload.
    pub data: EventData,
}

impl OutboxEntry {
    /// The CloudEvents 1.0 structured-mode JSON of this entry, from `source` (the
    /// server's URL).
    pub fn cloudevent(&self, source: &str) -> serde_json::Value {
        serde_json::json!({
            "specversion": "1.0",
            "id": self.id,
            "source": source,
            "type": self.kind.cloudevent_type(),
            "subject": format!("{}/{}:{}", self.data.namespace, self.data.image_stream, self.data.tag),
            "time": self.time,
            "datacontenttype": "application/json",
            "data": self.data,
        })
    }
}

impl NotificationSpec {
    /// Whether an event of `kind` on `stream:tag` is sent.
    pub fn selects(&self, kind: EventKind, stream: &str, tag: &str) -> bool {
        (self.events.is_empty() || self.events.contains(&kind))
            && (self.streams.is_empty() || self.streams.iter().any(|g| glob_match(g, stream)))
            && (self.tags.is_empty() || self.tags.iter().any(|g| glob_match(g, tag)))
    }
}

/// Whether `name` matches the shell-style `pattern` as a whole (`*`: any run, `?`: one
/// character, nothing else special). Hand-written: twenty lines, where a glob crate
/// would bring path semantics selectors do not have.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    // The last `*` seen and the name position it was tried at (greedy with backtrack).
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The spec's errors: a URL that is not http(s) with a host, empty selectors, a
/// secretRef without name or key.
pub fn validate_spec(spec: &NotificationSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if spec.url.is_empty() {
        errs.push(FieldError::required(
            "spec.url",
            "a receiver URL is required",
        ));
    } else if let Err(why) = check_url(&spec.url) {
        errs.push(FieldError::invalid("spec.url", &spec.url, why));
    }
    for (field, list) in [("spec.streams", &spec.streams), ("spec.tags", &spec.tags)] {
        for (i, g) in list.iter().enumerate() {
            if g.is_empty() || g.contains('/') {
                errs.push(FieldError::invalid(
                    format!("{field}[{i}]"),
                    g,
                    "a name or a glob (`*`, `?`), without `/`",
                ));
            }
        }
    }
    if let Some(r) = &spec.secret_ref {
        if r.name.is_empty() {
            errs.push(FieldError::required(
                "spec.secretRef.name",
                "the Secret's name",
            ));
        }
        if r.key.is_empty() {
            errs.push(FieldError::required(
                "spec.secretRef.key",
                "the key in the Secret",
            ));
        }
    }
    errs
}

/// Checks the URL's shape: `http` or `https`, a host, no user info. Where the host
/// points is checked by the server when it delivers.
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = if let Some(r) = url.strip_prefix("https://") {
        r
    } else if let Some(r) = url.strip_prefix("http://") {
        r
    } else {
        return Err("only http:// and https:// URLs are supported".into());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("user information in the URL is not supported".into());
    }
    if authority.is_empty() || authority.starts_with(':') {
        return Err("the URL has no host".into());
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the URL holds whitespace".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        assert!(glob_match("keycloak", "keycloak"));
        assert!(!glob_match("keycloak", "keycloak2"));
        assert!(glob_match("key*", "keycloak"));
        assert!(glob_match("*", ""));
        assert!(glob_match("20.?", "20.0"));
        assert!(!glob_match("20.?", "20.10"));
        assert!(glob_match("*.0*", "20.0.3"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(!glob_match("a*b*c", "aXbYbZ"));
    }

    #[test]
    fn urls_are_http_or_https_with_a_host() {
        assert!(check_url("https://hooks.example.com/moor").is_ok());
        assert!(check_url("http://10.0.0.1:8080").is_ok());
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("file:///etc/passwd").is_err());
        assert!(check_url("http://").is_err());
        assert!(check_url("http://user:pw@host/").is_err());
    }

    #[test]
    fn selection_by_kind_stream_and_tag() {
        let spec = NotificationSpec {
            streams: vec!["key*".into()],
            tags: vec!["20.*".into()],
            events: vec![EventKind::TagUpdated],
            ..Default::default()
        };
        assert!(spec.selects(EventKind::TagUpdated, "keycloak", "20.0"));
        assert!(!spec.selects(EventKind::ImportFailed, "keycloak", "20.0"));
        assert!(!spec.selects(EventKind::TagUpdated, "app", "20.0"));
        assert!(!spec.selects(EventKind::TagUpdated, "keycloak", "latest"));
        assert!(NotificationSpec::default().selects(EventKind::ImagePushed, "a", "b"));
    }
}
