//! `moor.io/v1` ScheduledImport: the scheduler's per-tag record of a scheduled
//! (`importPolicy.scheduled`) tag — where it is checked, when it was last checked, what
//! digest the registry announced, when the next check is due. The scheduler stores the
//! [`ScheduledImportStatus`] under a key of its own, never on the image stream (whose
//! `resourceVersion` must not move when nothing changed); the API server serves it
//! read-only as `scheduledimports.moor.io`, named `<stream>:<tag>` like an
//! ImageStreamTag. IO-free: data types only.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{ApiVersionField, KindField, TypeInfo};

/// The API group, `moor.io`.
pub const GROUP: &str = "moor.io";
/// The API version within the group, `v1`.
pub const VERSION: &str = "v1";
/// `apiVersion` of the types here, `moor.io/v1`.
pub const API_VERSION: &str = "moor.io/v1";

/// The store key prefix of the scheduler's records.
pub const RECORD_PREFIX: &str = "/moor/scheduler/";

/// The store key of the record of `namespace/stream:tag`:
/// `/moor/scheduler/<namespace>/<stream>/<tag>` (none of the three may hold a `/`).
pub fn record_key(namespace: &str, stream: &str, tag: &str) -> String {
    format!("{RECORD_PREFIX}{namespace}/{stream}/{tag}")
}

/// The namespace, stream and tag a record key names, if it is one.
pub fn parse_record_key(key: &str) -> Option<(&str, &str, &str)> {
    let rest = key.strip_prefix(RECORD_PREFIX)?;
    let mut parts = rest.split('/');
    let (ns, stream, tag) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || ns.is_empty() || stream.is_empty() || tag.is_empty() {
        return None;
    }
    Some((ns, stream, tag))
}

/// A list of [`ScheduledImport`]s (`kind: ScheduledImportList`).
pub type ScheduledImportList = k8s_openapi::List<ScheduledImport>;

/// One scheduled tag as the scheduler sees it (read-only).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "io.moor.v1.ScheduledImport")]
pub struct ScheduledImport {
    /// Always `ScheduledImport`.
    #[serde(default)]
    pub kind: KindField<ScheduledImport>,
    /// Always `moor.io/v1`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: ApiVersionField<ScheduledImport>,
    /// The name is `<stream>:<tag>`, in the stream's namespace.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The scheduler's record.
    #[serde(default)]
    pub status: ScheduledImportStatus,
}

/// What the last scheduled check of a tag found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "io.moor.v1.CheckResult")]
pub enum CheckResult {
    /// The registry announced the digest seen before: nothing was pulled or written.
    Unchanged,
    /// The digest changed (or could not be told without a pull) and the tag was
    /// imported; a new image becomes a new history entry.
    Updated,
    /// The check or the import failed; the tag's `ImportSuccess` condition says why.
    Failed,
    /// The registry answered 429: checks of the registry pause until `Retry-After`.
    RateLimited,
}

impl CheckResult {
    /// The name as serialized (`Unchanged`, ...), also the metric label in lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckResult::Unchanged => "Unchanged",
            CheckResult::Updated => "Updated",
            CheckResult::Failed => "Failed",
            CheckResult::RateLimited => "RateLimited",
        }
    }
}

/// The scheduler's record of one tag, as stored and as served.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.moor.v1.ScheduledImportStatus")]
pub struct ScheduledImportStatus {
    /// The image stream.
    #[serde(default)]
    pub image_stream: String,
    /// The tag of the stream.
    #[serde(default)]
    pub tag: String,
    /// The registry pull spec checked (the spec tag's `from.name`).
    #[serde(default)]
    pub from: String,
    /// The registry whose request budget the checks use (`docker.io` for Docker Hub).
    #[serde(default)]
    pub registry: String,
    /// Whether the tag is scheduled now. A tag that stopped being scheduled (rolled
    /// back to an image of its history, or tagged without `--scheduled`) keeps its
    /// record, inactive, until the tag goes away.
    #[serde(default)]
    pub active: bool,
    /// When the last check started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::meta::schema::date_time")]
    pub last_check_time: Option<Timestamp>,
    /// What the last check found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_result: Option<CheckResult>,
    /// The manifest digest the registry announced for the tag at the last successful
    /// check (for a manifest list, the list's digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_digest: Option<String>,
    /// The tag's current image (its newest history entry) when `lastDigest` was seen;
    /// an unchanged digest counts as unchanged only while the tag still has this image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// When the next check is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::meta::schema::date_time")]
    pub next_check_time: Option<Timestamp>,
    /// Failed checks in a row (0 after a success).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consecutive_failures: u32,
    /// Why the last check failed or was rate limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For a tag that follows a range: the `moor tag` flags of its policy
    /// (`--semver '>=20.0.0 <20.1.0'`), kept after a rollback to say how to resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow: Option<String>,
    /// For a tag that follows a range: the upstream tag the last check chose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub followed_tag: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl k8s_openapi::Resource for ScheduledImport {
    const API_VERSION: &'static str = API_VERSION;
    const GROUP: &'static str = GROUP;
    const KIND: &'static str = "ScheduledImport";
    const VERSION: &'static str = VERSION;
    const URL_PATH_SEGMENT: &'static str = "scheduledimports";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for ScheduledImport {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &Self::Ty {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut Self::Ty {
        &mut self.metadata
    }
}

impl k8s_openapi::ListableResource for ScheduledImport {
    const LIST_KIND: &'static str = "ScheduledImportList";
}

impl TypeInfo for ScheduledImport {
    const API_VERSION: &'static str = API_VERSION;
    const KIND: &'static str = "ScheduledImport";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn record_keys() {
        let k = record_key("default", "keycloak", "20.0");
        assert_eq!(k, "/moor/scheduler/default/keycloak/20.0");
        assert_eq!(parse_record_key(&k), Some(("default", "keycloak", "20.0")));
        assert_eq!(parse_record_key("/moor/scheduler/default/keycloak"), None);
        assert_eq!(parse_record_key("/moor/scheduler/a/b/c/d"), None);
        assert_eq!(parse_record_key("/registry/a/b/c"), None);
    }

    #[test]
    fn json_shape() {
        let status = ScheduledImportStatus {
            image_stream: "keycloak".into(),
            tag: "20.0".into(),
            from: "quay.io/keycloak/keycloak:20.0.3".into(),
            registry: "quay.io".into(),
            active: true,
            last_check_time: Some("2026-01-01T00:00:00.250Z".parse().unwrap()),
            last_check_result: Some(CheckResult::Unchanged),
            last_digest: Some("sha256:aa".into()),
            next_check_time: Some("2026-01-01T00:15:00Z".parse().unwrap()),
            ..Default::default()
        };
        let v = serde_json::to_value(&status).unwrap();
        assert_eq!(
            v,
            json!({
                "imageStream": "keycloak", "tag": "20.0",
                "from": "quay.io/keycloak/keycloak:20.0.3", "registry": "quay.io",
                "active": true, "lastCheckTime": "2026-01-01T00:00:00.25Z",
                "lastCheckResult": "Unchanged", "lastDigest": "sha256:aa",
                "nextCheckTime": "2026-01-01T00:15:00Z",
            })
        );
        let back: ScheduledImportStatus = serde_json::from_value(v).unwrap();
        assert_eq!(back, status);
        let obj = ScheduledImport {
            status,
            ..Default::default()
        };
        let v = serde_json::to_value(&obj).unwrap();
        assert_eq!(v["kind"], "ScheduledImport");
        assert_eq!(v["apiVersion"], "moor.io/v1");
    }
}
