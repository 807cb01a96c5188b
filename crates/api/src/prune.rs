//! `moor.io/v1` ImagePrune: a request to garbage-collect image stream history, images
//! and registry blobs (`moor prune images`, after `oc adm prune images`), and its
//! report. An ImagePrune is created, never stored: the server answers the POST with the
//! object and its `status` filled in, as Kubernetes answers a TokenReview. IO-free:
//! data types and the parsing of ages only.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{ApiVersionField, KindField, TypeInfo};

/// The path the server takes ImagePrunes at (POST).
pub const PATH: &str = "/apis/moor.io/v1/imageprunes";
/// `keepTagRevisions` when the request does not say (as oc).
pub const DEFAULT_KEEP_TAG_REVISIONS: u32 = 3;
/// `keepYoungerThan` when the request does not say: 60 minutes (as oc).
pub const DEFAULT_KEEP_YOUNGER_THAN: Duration = Duration::from_secs(3600);

/// A garbage collection, asked for (`spec`) and done (`status`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "io.moor.v1.ImagePrune")]
pub struct ImagePrune {
    /// Always `ImagePrune`.
    #[serde(default)]
    pub kind: KindField<ImagePrune>,
    /// Always `moor.io/v1`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: ApiVersionField<ImagePrune>,
    /// Unused: an ImagePrune is not stored.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What to keep.
    #[serde(default)]
    pub spec: ImagePruneSpec,
    /// What was removed (or, in a dry run, would be). Set by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ImagePruneStatus>,
}

impl TypeInfo for ImagePrune {
    const API_VERSION: &'static str = crate::scheduled::API_VERSION;
    const KIND: &'static str = "ImagePrune";
}

/// What a prune keeps.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "io.moor.v1.ImagePruneSpec")]
pub struct ImagePruneSpec {
    /// How many of the newest entries of each tag's history to keep (default 3). The
    /// newest entry, the image the tag serves, is always kept.
    #[serde(
        rename = "keepTagRevisions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub keep_tag_revisions: Option<u32>,
    /// History entries, images and blobs younger than this are kept (default 60m). A
    /// duration (`"60m"`, `"1h30m"`, `"0s"`) or a number of seconds.
    #[serde(
        rename = "keepYoungerThan",
        default,
        skip_serializing_if = "Option::is_none",
        with = "age_field"
    )]
    #[schemars(schema_with = "crate::meta::schema::int_or_string")]
    pub keep_younger_than: Option<Duration>,
    /// Only prune the history of streams in this namespace; images and blobs are then
    /// left alone, since other namespaces may use them (as `oc adm prune images -n`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Report what would be removed, remove nothing.
    #[serde(rename = "dryRun", default, skip_serializing_if = "is_false")]
    pub dry_run: bool,
}

impl ImagePruneSpec {
    /// `keepTagRevisions` or its default.
    pub fn keep_tag_revisions(&self) -> u32 {
        self.keep_tag_revisions
            .unwrap_or(DEFAULT_KEEP_TAG_REVISIONS)
    }

    /// `keepYoungerThan` or its default.
    pub fn keep_younger_than(&self) -> Duration {
        self.keep_younger_than.unwrap_or(DEFAULT_KEEP_YOUNGER_THAN)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What a prune removed, in the order it removes: history entries, then images, then
/// repository links and records, then blobs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "io.moor.v1.ImagePruneStatus")]
pub struct ImagePruneStatus {
    /// Nothing was removed: the lists say what would have been.
    #[serde(rename = "dryRun", default)]
    pub dry_run: bool,
    /// When the prune started: nothing written after it is removed.
    #[serde(rename = "startTime", default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the prune finished.
    #[serde(
        rename = "completionTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub completion_time: Option<Time>,
    /// Tag history entries removed.
    #[serde(
        rename = "historyItems",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub history_items: Vec<PrunedTagEvent>,
    /// Image objects removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<PrunedImage>,
    /// Links of repositories (what a push put there) removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<PrunedLink>,
    /// Registry records of repositories whose image stream is gone, removed whole
    /// (`namespace/stream`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<String>,
    /// Blobs (layers, configs, manifests) removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blobs: Vec<PrunedBlob>,
    /// The size of the removed blobs.
    #[serde(rename = "bytesFreed", default)]
    pub bytes_freed: u64,
    /// Things kept on purpose that a reader may wonder about.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Removals that failed; the prune went on with the rest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl ImagePruneStatus {
    /// `(namespace, stream, entries removed)` per stream whose history changed, in
    /// the order of `history_items`.
    pub fn updated_streams(&self) -> Vec<(&str, &str, usize)> {
        let mut out: Vec<(&str, &str, usize)> = Vec::new();
        for item in &self.history_items {
            match out.last_mut() {
                Some((ns, s, n)) if *ns == item.namespace && *s == item.image_stream => *n += 1,
                _ => out.push((&item.namespace, &item.image_stream, 1)),
            }
        }
        out
    }
}

/// A tag history entry removed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "io.moor.v1.PrunedTagEvent")]
pub struct PrunedTagEvent {
    /// The stream's namespace.
    #[serde(default)]
    pub namespace: String,
    /// The stream.
    #[serde(rename = "imageStream", default)]
    pub image_stream: String,
    /// The tag.
    #[serde(default)]
    pub tag: String,
    /// The entry's image (its digest).
    #[serde(default)]
    pub image: String,
    /// The entry's pull spec.
    #[serde(rename = "dockerImageReference", default)]
    pub docker_image_reference: String,
    /// When the entry was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Time>,
}

/// An Image object removed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "io.moor.v1.PrunedImage")]
pub struct PrunedImage {
    /// The image's name: its manifest digest.
    #[serde(default)]
    pub name: String,
    /// Where it came from.
    #[serde(rename = "dockerImageReference", default)]
    pub docker_image_reference: String,
}

/// A repository link removed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "io.moor.v1.PrunedLink")]
pub struct PrunedLink {
    /// `namespace/stream`.
    #[serde(default)]
    pub repository: String,
    /// `layer` (a blob pushed or mounted) or `manifest` (a manifest pushed).
    #[serde(default)]
    pub kind: String,
    /// The digest linked.
    #[serde(default)]
    pub digest: String,
}

/// A blob removed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "io.moor.v1.PrunedBlob")]
pub struct PrunedBlob {
    /// Its digest.
    #[serde(default)]
    pub digest: String,
    /// Its size in bytes.
    #[serde(default)]
    pub size: u64,
}

/// Parses an age such as `60m`, `1h30m`, `90s` or `0s` (zero allowed, negative not).
pub fn parse_age(s: &str) -> Result<Duration, String> {
    let signed: jiff::SignedDuration = s.trim().parse().map_err(|_| {
        format!("invalid duration {s:?}: use a number with a unit, e.g. 0s, 30m, 1h30m")
    })?;
    Duration::try_from(signed).map_err(|_| format!("invalid duration {s:?}: must not be negative"))
}

/// An age as Go prints a `time.Duration` (`1h0m0s`, `1m30s`, `0s`), whole seconds.
pub fn format_age(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// `keepYoungerThan` on the wire: written as a Go duration, read as one or as seconds.
mod age_field {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&super::format_age(*d)),
            None => s.serialize_none(),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Seconds(u64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<Wire>::deserialize(d)? {
            None => Ok(None),
            Some(Wire::Seconds(n)) => Ok(Some(Duration::from_secs(n))),
            Some(Wire::Text(t)) => super::parse_age(&t).map(Some).map_err(de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ages_parse_and_print_like_go() {
        assert_eq!(parse_age("60m"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_age("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_age("1h0m0s"), Ok(Duration::from_secs(3600)));
        assert!(parse_age("-5m").is_err());
        assert!(parse_age("soon").is_err());
        assert_eq!(format_age(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format_age(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_age(Duration::ZERO), "0s");
    }

    #[test]
    fn spec_takes_seconds_or_durations_and_has_oc_defaults() {
        let p: ImagePrune = serde_json::from_value(json!({
            "apiVersion": "moor.io/v1", "kind": "ImagePrune",
            "spec": {"keepTagRevisions": 1, "keepYoungerThan": 90, "dryRun": true}
        }))
        .unwrap();
        assert_eq!(p.spec.keep_younger_than(), Duration::from_secs(90));
        assert_eq!(p.spec.keep_tag_revisions(), 1);
        assert!(p.spec.dry_run);
        let p: ImagePrune =
            serde_json::from_value(json!({"spec": {"keepYoungerThan": "2h"}})).unwrap();
        assert_eq!(p.spec.keep_younger_than(), Duration::from_secs(7200));
        assert_eq!(
            serde_json::to_value(&p).unwrap()["spec"],
            json!({"keepYoungerThan": "2h0m0s"})
        );
        let d = ImagePruneSpec::default();
        assert_eq!(d.keep_tag_revisions(), 3);
        assert_eq!(d.keep_younger_than(), Duration::from_secs(3600));
        assert!(serde_json::from_value::<ImagePrune>(json!({"kind": "Other"})).is_err());
        assert!(
            serde_json::from_value::<ImagePrune>(json!({"spec": {"keepYoungerThan": "-1m"}}))
                .is_err()
        );
    }

    #[test]
    fn updated_streams_group_consecutive_items() {
        let item = |ns: &str, s: &str| PrunedTagEvent {
            namespace: ns.into(),
            image_stream: s.into(),
            ..Default::default()
        };
        let status = ImagePruneStatus {
            history_items: vec![item("a", "x"), item("a", "x"), item("b", "x")],
            ..Default::default()
        };
        assert_eq!(status.updated_streams(), vec![("a", "x", 2), ("b", "x", 1)]);
    }
}
