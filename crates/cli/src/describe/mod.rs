//! `moor describe is|istag`: an image stream in oc's describe layout (metadata,
//! repository, lookup policy, then one block per tag with its source, import errors
//! and history), and an image as oc's image describer prints it (for image stream tags
//! and `import-image`), tab-aligned as oc's tabwriter does. Pure functions of the
//! objects and the time.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use moor_api::DockerImageReference;
use moor_api::humanize::{human_duration, human_size, seconds_since, short_age};
use moor_api::image::follow::{FollowPolicy, is_followed};
use moor_api::image::{
    ConditionStatus, DockerConfig, Image, ImageStream, KIND_DOCKER_IMAGE, KIND_IMAGE_STREAM_IMAGE,
    KIND_IMAGE_STREAM_TAG, NamedTagEventList, TagEventConditionType, TagReferencePolicyType,
};
use moor_api::scheduled::{CheckResult, ScheduledImportStatus};

use crate::printers::tabwriter::TabWriter;

/// What oc prints for an empty value.
const NONE: &str = "<none>";

/// Describes an image stream as `oc describe is` does, relative to `now`.
pub fn image_stream(stream: &ImageStream, now: Timestamp) -> String {
    describe_stream(stream, None, now)
}

/// [`image_stream`] with the scheduler's records of the stream's tags (by tag name):
/// a scheduled tag shows its last and next check, a tag whose schedule stopped (a
/// rollback) says how to resume it.
pub fn image_stream_with_schedules(
    stream: &ImageStream,
    schedules: &BTreeMap<String, ScheduledImportStatus>,
    now: Timestamp,
) -> String {
    describe_stream(stream, Some(schedules), now)
}

fn describe_stream(
    stream: &ImageStream,
    schedules: Option<&BTreeMap<String, ScheduledImportStatus>>,
    now: Timestamp,
) -> String {
    let mut out = String::new();
    format_meta(&mut out, &stream.metadata, now);
    let repo = if stream.status.public_docker_image_repository.is_empty() {
        &stream.status.docker_image_repository
    } else {
        &stream.status.public_docker_image_repository
    };
    format_field(&mut out, "Image Repository", repo);
    format_field(
        &mut out,
        "Image Lookup",
        &format!("local={}", stream.spec.lookup_policy.local),
    );
    format_tags(&mut out, stream, schedules, now);
    TabWriter::OC_DESCRIBE.format(&out)
}

/// The `Events:` block kubectl's and oc's describers end with: the events about the
/// object, oldest first, with `Type`, `Reason`, `Age` (`3m (x5 over 10m)` for a
/// repeated one), `From` and `Message`; `Events:  <none>` when there are none.
pub fn events(list: &[serde_json::Value], now: Timestamp) -> String {
    /// kubectl's describe writer: `tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)`.
    const DESCRIBE: TabWriter = TabWriter {
        minwidth: 0,
        tabwidth: 8,
        padding: 2,
        padchar: ' ',
    };
    if list.is_empty() {
        return DESCRIBE.format("Events:\t<none>\n");
    }
    let time = |e: &serde_json::Value, field: &str| -> Option<Timestamp> {
        e.get(field)?.as_str()?.parse().ok()
    };
    let age = |t: Option<Timestamp>| match t {
        Some(t) => short_age(seconds_since(t, now)),
        None => "<unknown>".to_string(),
    };
    let mut sorted: Vec<&serde_json::Value> = list.iter().collect();
    sorted.sort_by_key(|e| time(e, "lastTimestamp").or_else(|| time(e, "eventTime")));
    let mut text = String::from(
        "Events:\n  Type\tReason\tAge\tFrom\tMessage\n  ----\t------\t----\t----\t-------\n",
    );
    for e in sorted {
        let first = time(e, "eventTime").or_else(|| time(e, "firstTimestamp"));
        let count = e["count"].as_i64().unwrap_or(0);
        let interval = if let Some(series) = e.get("series").filter(|s| s.is_object()) {
            format!(
                "{} (x{} over {})",
                age(time(series, "lastObservedTime")),
                series["count"].as_i64().unwrap_or(0),
                age(first)
            )
        } else if count > 1 {
            format!(
                "{} (x{count} over {})",
                age(time(e, "lastTimestamp")),
                age(first)
            )
        } else {
            age(first)
        };
        let source = e["source"]["component"]
            .as_str()
            .filter(|s| !s.is_empty())
            .or_else(|| e["reportingComponent"].as_str())
            .unwrap_or_default();
        text.push_str(&format!(
            "  {}\t{}\t{interval}\t{source}\t{}\n",
            e["type"].as_str().unwrap_or_default(),
            e["reason"].as_str().unwrap_or_default(),
            e["message"].as_str().unwrap_or_default().trim()
        ));
    }
    DESCRIBE.format(&text)
}

/// The Events of image stream `stream` that concern its tag `tag`, for `describe
/// istag`: those whose `involvedObject.fieldPath` is `spec.tags{TAG}` (as moor's
/// importer records them), and, from recorders that set no field path, those whose
/// message names `STREAM:TAG` or lists the tag in a summary (`Import of 5 tags of
/// STREAM failed: a, b, ...`).
pub fn events_about_tag(
    list: &[serde_json::Value],
    stream: &str,
    tag: &str,
) -> Vec<serde_json::Value> {
    let path = format!("spec.tags{{{tag}}}");
    let named = format!("{stream}:{tag}");
    let summary = format!(" tags of {stream}");
    let names_tag = |message: &str| {
        let mut rest = message;
        while let Some(i) = rest.find(&named) {
            let before = rest[..i].chars().next_back();
            let after = rest[i + named.len()..].chars().next();
            let part = |c: Option<char>| {
                c.is_some_and(|c| c.is_ascii_alphanumeric() || "_.-/:".contains(c))
            };
            if !part(before) && !part(after) {
                return true;
            }
            rest = &rest[i + named.len()..];
        }
        message
            .split_once(&summary)
            .and_then(|(_, tail)| tail.split_once(": "))
            .is_some_and(|(_, tags)| tags.split(", ").any(|t| t.trim() == tag))
    };
    list.iter()
        .filter(|e| match e["involvedObject"]["fieldPath"].as_str() {
            Some(p) if !p.is_empty() => p == path,
            _ => e["message"].as_str().is_some_and(names_tag),
        })
        .cloned()
        .collect()
}

/// `5 seconds ago` or `in 5 seconds`.
fn relative(t: Timestamp, now: Timestamp) -> String {
    let secs = t.as_second() - now.as_second();
    if secs > 0 {
        format!("in {}", human_duration(secs))
    } else {
        format!("{} ago", human_duration(-secs))
    }
}

/// The scheduler's lines of a tag (moor's addition to oc's layout): the last and the
/// next check of a scheduled tag; for a tag whose schedule stopped (a rollback), the
/// source it was checked from and how to resume.
fn format_schedule(
    out: &mut String,
    stream: &ImageStream,
    tag: &str,
    scheduled: bool,
    record: Option<&ScheduledImportStatus>,
    now: Timestamp,
) {
    let last = record.and_then(|r| r.last_check_time).map(|t| {
        let result = match (
            record.and_then(|r| r.last_check_result),
            record.and_then(|r| r.message.as_deref()),
        ) {
            (Some(CheckResult::Unchanged), _) => " (unchanged)".to_string(),
            (Some(CheckResult::Updated), _) => " (new image imported)".to_string(),
            (Some(r), Some(m)) => format!(" ({}: {m})", r.as_str()),
            (Some(r), None) => format!(" ({})", r.as_str()),
            (None, _) => String::new(),
        };
        format!("{}{result}", relative(t, now))
    });
    if scheduled {
        let last = last.as_deref().unwrap_or("never");
        out.push_str(&format!("    last check: {last}\n"));
        let next = match record.and_then(|r| r.next_check_time) {
            Some(next) if next > now => relative(next, now),
            Some(_) => "due now".to_string(),
            None => "not planned yet".to_string(),
        };
        out.push_str(&format!("    next check: {next}\n"));
        if let Some(chosen) = record.and_then(|r| r.followed_tag.as_deref()) {
            out.push_str(&format!("    chosen tag: {chosen}\n"));
        }
        return;
    }
    let Some(r) = record.filter(|r| !r.active && !r.from.is_empty()) else {
        return;
    };
    let name = stream.metadata.name.as_deref().unwrap_or_default();
    let last = last
        .map(|l| format!(" (last check {l})"))
        .unwrap_or_default();
    if let Some(flags) = &r.follow {
        let chosen = r
            .followed_tag
            .as_deref()
            .map(|t| format!(", last chosen {t}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "    following registry {} is paused{last}{chosen}\n",
            r.from
        ));
        out.push_str(&format!(
            "    resume it with: moor tag {} {name}:{tag} {flags}\n",
            r.from
        ));
        return;
    }
    out.push_str(&format!(
        "    scheduled import from registry {} is off{last}\n",
        r.from
    ));
    out.push_str(&format!(
        "    resume it with: moor tag {} {name}:{tag} --scheduled\n",
        r.from
    ));
}

/// Describes an image as oc's `DescribeImage` does (what `oc describe istag` and
/// `oc import-image` print): `image_name` heads it when not empty. Manifest lists,
/// which have no layers of their own, list their platforms under `Manifests`.
pub fn image(image: &Image, image_name: &str, now: Timestamp) -> String {
    let mut out = String::new();
    if !image_name.is_empty() {
        format_field(&mut out, "Image Name", image_name);
    }
    format_field(&mut out, "Docker Image", &image.docker_image_reference);
    format_field(
        &mut out,
        "Name",
        image.metadata.name.as_deref().unwrap_or_default(),
    );
    if let Some(created) = &image.metadata.creation_timestamp {
        out.push_str(&format!("Created:\t{}\n", ago(Some(created), now)));
    }
    if image
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| !l.is_empty())
    {
        format_map(&mut out, "Labels", image.metadata.labels.as_ref());
    }
    if let Some(annotations) = image
        .metadata
        .annotations
        .as_ref()
        .filter(|a| !a.is_empty())
    {
        let mut annotations = annotations.clone();
        if let Some(d) = annotations.remove("description").filter(|d| !d.is_empty()) {
            format_field(&mut out, "Description", &d);
        }
        format_map(&mut out, "Annotations", Some(&annotations));
    }
    let metadata = image.docker_image_metadata.clone().unwrap_or_default();
    let layers = &image.docker_image_layers;
    if image.is_manifest_list() {
        let manifests: Vec<String> = image
            .docker_image_manifests
            .iter()
            .map(|m| {
                let mut platform = format!("{}/{}", m.os, m.architecture);
                if !m.variant.is_empty() {
                    platform = format!("{platform}/{}", m.variant);
                }
                format!("{platform}\t{}", m.digest)
            })
            .collect();
        format_field(&mut out, "Manifests", &manifests.join("\n"));
    } else if layers.is_empty() {
        format_field(&mut out, "Layer Size", &human_size(metadata.size));
    } else {
        format_field(
            &mut out,
            "Image Size",
            &format!("{} in {} layers", human_size(metadata.size), layers.len()),
        );
        let lines: Vec<String> = layers
            .iter()
            .map(|l| format!("{}\t{}", human_size(l.size), l.name))
            .collect();
        format_field(&mut out, "Layers", &lines.join("\n"));
    }
    format_field(
        &mut out,
        "Image Created",
        &ago(metadata.created.as_ref(), now),
    );
    format_field(&mut out, "Author", &metadata.author);
    format_field(&mut out, "Arch", &metadata.architecture);
    format_docker_config(&mut out, &metadata.config.unwrap_or_default());
    TabWriter::OC_DESCRIBE.format(&out)
}

/// The runtime config part of oc's image describe.
fn format_docker_config(out: &mut String, config: &DockerConfig) {
    let mut has_command = false;
    if !config.entrypoint.is_empty() {
        has_command = true;
        format_field(out, "Entrypoint", &config.entrypoint.join(" "));
    }
    if !config.cmd.is_empty() {
        has_command = true;
        format_field(out, "Command", &config.cmd.join(" "));
    }
    if !has_command {
        format_field(out, "Command", "");
    }
    format_field(out, "Working Dir", &config.working_dir);
    format_field(out, "User", &config.user);
    let ports: Vec<&str> = config.exposed_ports.keys().map(String::as_str).collect();
    format_field(out, "Exposes Ports", &ports.join(", "));
    format_map(out, "Docker Labels", Some(&config.labels));
    for (i, env) in config.env.iter().enumerate() {
        if i == 0 {
            format_field(out, "Environment", env);
        } else {
            out.push_str(&format!("\t{env}\n"));
        }
    }
    for (i, volume) in config.volumes.keys().enumerate() {
        if i == 0 {
            format_field(out, "Volumes", volume);
        } else {
            out.push_str(&format!("\t{volume}\n"));
        }
    }
}

/// `Label:\tvalue`, one value line per line of `value`, `<none>` when empty.
fn format_field(out: &mut String, label: &str, value: &str) {
    let value = if value.is_empty() { NONE } else { value };
    out.push_str(label);
    out.push(':');
    for line in value.split('\n') {
        out.push('\t');
        out.push_str(line);
        out.push('\n');
    }
}

/// `Label:\tk=v`, then `\tk=v` for each further key, sorted; `<none>` when empty.
fn format_map(out: &mut String, label: &str, map: Option<&BTreeMap<String, String>>) {
    let mut entries = map.into_iter().flatten();
    let Some((k, v)) = entries.next() else {
        format_field(out, label, "");
        return;
    };
    format_field(out, label, &format!("{k}={v}"));
    for (k, v) in entries {
        out.push_str(&format!("\t{k}={v}\n"));
    }
}

fn format_meta(out: &mut String, meta: &ObjectMeta, now: Timestamp) {
    format_field(out, "Name", meta.name.as_deref().unwrap_or_default());
    if let Some(ns) = meta.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        format_field(out, "Namespace", ns);
    }
    if let Some(created) = &meta.creation_timestamp {
        out.push_str(&format!("Created:\t{}\n", ago(Some(created), now)));
    }
    format_map(out, "Labels", meta.labels.as_ref());
    let mut annotations = meta.annotations.clone().unwrap_or_default();
    if let Some(description) = annotations.remove("description").filter(|d| !d.is_empty()) {
        format_field(out, "Description", &description);
    }
    format_map(out, "Annotations", Some(&annotations));
}

/// `<duration> ago`, as oc prints times in describe.
fn ago(t: Option<&Time>, now: Timestamp) -> String {
    match t {
        Some(t) => format!("{} ago", human_duration(seconds_since(t.0, now))),
        None => "<unknown>".to_string(),
    }
}

fn format_tags(
    out: &mut String,
    stream: &ImageStream,
    schedules: Option<&BTreeMap<String, ScheduledImportStatus>>,
    now: Timestamp,
) {
    if stream.status.tags.is_empty() && stream.spec.tags.is_empty() {
        out.push_str("Tags:\t<none>\n");
        return;
    }

    // Images named by the history, counted as oc counts them (entries without an
    // image ID count once, under the empty ID).
    let mut images: HashSet<&str> = HashSet::new();
    for tag in &stream.status.tags {
        for item in &tag.items {
            let counted = !item.image.is_empty()
                || (!item.docker_image_reference.is_empty()
                    && !images.contains(item.docker_image_reference.as_str()));
            if counted {
                images.insert(&item.image);
            }
        }
    }

    let mut tags: Vec<&str> = stream.status.tags.iter().map(|t| t.tag.as_str()).collect();
    let mut aliases: HashSet<&str> = HashSet::new();
    let mut aliases_of: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for spec_tag in &stream.spec.tags {
        if let Some((target, true)) = follow_tag_reference(stream, &spec_tag.name) {
            aliases.insert(&spec_tag.name);
            aliases_of.entry(target).or_default().insert(&spec_tag.name);
        }
        if stream.status_tag(&spec_tag.name).is_none() {
            tags.push(&spec_tag.name);
        }
    }
    out.push_str(&format!(
        "Unique Images:\t{}\nTags:\t{}\n\n",
        images.len(),
        tags.len()
    ));

    prioritize_tags(&mut tags);
    let empty = NamedTagEventList::default();
    let mut first = true;
    for tag in tags {
        if aliases.contains(tag) {
            continue;
        }
        if !first {
            out.push('\n');
        }
        first = false;

        match aliases_of.get(tag) {
            Some(refs) if !refs.is_empty() => {
                let mut refs: Vec<&str> = refs.iter().copied().collect();
                prioritize_tags(&mut refs);
                out.push_str(&format!("{tag} ({})\n", refs.join(", ")));
            }
            _ => out.push_str(&format!("{tag}\n")),
        }

        let history = stream.status_tag(tag).unwrap_or(&empty);
        let spec = stream.spec_tag(tag);
        match spec {
            None => out.push_str("  no spec tag\n"),
            Some(s) if s.from.is_none() => out.push_str("  tag without source image\n"),
            Some(s) => {
                let from = s.from.as_ref();
                let from_ns = from
                    .and_then(|f| f.namespace.as_deref())
                    .unwrap_or_default();
                let name = if !from_ns.is_empty()
                    && Some(from_ns) != stream.metadata.namespace.as_deref()
                {
                    format!("{from_ns}/{}", s.from_name())
                } else {
                    s.from_name().to_string()
                };
                let scheduled = s.import_policy.scheduled;
                let line = match s.from_kind() {
                    KIND_IMAGE_STREAM_TAG if s.reference => format!("reference to {name}"),
                    KIND_IMAGE_STREAM_TAG if scheduled => {
                        format!("updates automatically from {name}")
                    }
                    KIND_IMAGE_STREAM_TAG => format!("tagged from {name}"),
                    KIND_DOCKER_IMAGE if s.reference => format!("reference to registry {name}"),
                    KIND_DOCKER_IMAGE if is_followed(s) => match FollowPolicy::of_tag(s) {
                        Ok(Some(p)) => format!("follows registry {name}: {}", p.summary()),
                        Ok(None) => format!("tagged from {name}"),
                        Err(e) => format!("follows registry {name}: {e}"),
                    },
                    KIND_DOCKER_IMAGE if scheduled => {
                        format!("updates automatically from registry {name}")
                    }
                    KIND_DOCKER_IMAGE => format!("tagged from {name}"),
                    KIND_IMAGE_STREAM_IMAGE if s.reference => format!("reference to image {name}"),
                    KIND_IMAGE_STREAM_IMAGE => format!("tagged from {name}"),
                    kind if s.reference => format!("reference to {kind} {name}"),
                    kind => format!("updates from {kind} {name}"),
                };
                out.push_str(&format!("  {line}\n"));
                if s.import_policy.insecure {
                    out.push_str("    will use insecure HTTPS or HTTP connections\n");
                }
            }
        }
        if spec.and_then(|s| s.reference_policy.type_.as_ref())
            == Some(&TagReferencePolicyType::Local)
        {
            out.push_str("    prefer registry pullthrough when referencing this tag\n");
        }
        if let (Some(s), Some(schedules)) = (spec.filter(|s| s.from.is_some()), schedules) {
            let scheduled =
                s.import_policy.scheduled && !s.reference && s.from_kind() == KIND_DOCKER_IMAGE;
            format_schedule(out, stream, tag, scheduled, schedules.get(tag), now);
        }
        out.push('\n');

        let annotations = spec.and_then(|s| s.annotations.as_ref());
        let annotation = |k: &str| annotations.and_then(|a| a.get(k)).filter(|v| !v.is_empty());
        let mut extra = false;
        if let Some(d) = annotation("description") {
            out.push_str(&format!("  {d}\n"));
            extra = true;
        }
        if let Some(t) = annotation("tags") {
            out.push_str(&format!(
                "  Tags: {}\n",
                t.split(',').collect::<Vec<_>>().join(", ")
            ));
            extra = true;
        }
        if let Some(t) = annotation("supports") {
            out.push_str(&format!(
                "  Supports: {}\n",
                t.split(',').collect::<Vec<_>>().join(", ")
            ));
            extra = true;
        }
        if let Some(t) = annotation("sampleRepo") {
            out.push_str(&format!("  Example Repo: {t}\n"));
            extra = true;
        }
        if extra {
            out.push('\n');
        }

        if let Some(s) = spec {
            let importing = !s.reference
                && s.generation
                    .is_some_and(|g| g > latest_observed_generation(history));
            if importing {
                out.push_str("  ~ importing latest image ...\n");
            }
        }

        for c in &history.conditions {
            if c.type_ == TagEventConditionType::ImportSuccess && c.status == ConditionStatus::False
            {
                out.push_str(&format!(
                    "  ! error: Import failed ({}): {}\n      {}\n",
                    c.reason,
                    c.message,
                    ago(c.last_transition_time.as_ref(), now)
                ));
                // What to run once the cause is fixed (a secret, a mirror, a CA).
                let stream_name = stream.metadata.name.as_deref().unwrap_or_default();
                out.push_str(&format!(
                    "      retry it now: moor import-image {stream_name}:{tag}\n"
                ));
            }
        }

        for (i, item) in history.items.iter().enumerate() {
            let star = if i == 0 { "*" } else { " " };
            out.push_str(&format!("  {star} {}\n", item.docker_image_reference));
            let id_in_reference = DockerImageReference::parse(&item.docker_image_reference)
                .ok()
                .map(|r| r.id().map(ToString::to_string).unwrap_or_default());
            let age = ago(item.created.as_ref(), now);
            match id_in_reference {
                Some(id) if !item.image.is_empty() && id != item.image => {
                    out.push_str(&format!("      {age}\t{}\n", item.image));
                }
                _ => out.push_str(&format!("      {age}\n")),
            }
        }
    }
}

/// The newest generation the importer has acted on for a tag: that of the newest
/// history entry or of the ImportSuccess condition, whichever is larger.
fn latest_observed_generation(history: &NamedTagEventList) -> i64 {
    let from_items = history.items.first().map_or(0, |i| i.generation.max(0));
    let from_condition = history
        .conditions
        .iter()
        .find(|c| c.type_ == TagEventConditionType::ImportSuccess)
        .map_or(0, |c| c.generation);
    from_items.max(from_condition)
}

/// Follows spec tags of kind ImageStreamTag within the stream to the tag that has a
/// real source. Returns the target and whether any reference was followed; `None` on
/// a dangling, circular or cross-stream reference.
fn follow_tag_reference(stream: &ImageStream, tag: &str) -> Option<(String, bool)> {
    let mut tag = tag.to_string();
    let mut seen = HashSet::new();
    let mut followed = false;
    loop {
        if !seen.insert(tag.clone()) {
            return None;
        }
        let spec = stream.spec_tag(&tag)?;
        if spec.from_kind() != KIND_IMAGE_STREAM_TAG {
            return Some((tag, followed));
        }
        let from_ns = spec
            .from
            .as_ref()
            .and_then(|f| f.namespace.as_deref())
            .unwrap_or_default();
        if !from_ns.is_empty() && Some(from_ns) != stream.metadata.namespace.as_deref() {
            return None;
        }
        let from = spec.from_name();
        tag = match from.split_once(':') {
            Some((name, t)) => {
                if Some(name) != stream.metadata.name.as_deref() {
                    return None;
                }
                if t.is_empty() {
                    "latest".to_string()
                } else {
                    t.to_string()
                }
            }
            None => from.to_string(),
        };
        followed = true;
    }
}

/// How a tag ranks in oc's ordering.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TagRank {
    Latest,
    Minor,
    Full,
    Other,
}

/// Orders tags as oc does: `latest`, then minor versions (`5.1`, `v5.1-rc1`) newest
/// first, then full semantic versions newest first, then the rest alphabetically.
pub fn prioritize_tags(tags: &mut [&str]) {
    tags.sort_by(|a, b| {
        let (ra, va, pa) = rank(a);
        let (rb, vb, pb) = rank(b);
        ra.cmp(&rb).then_with(|| match ra {
            TagRank::Latest => Ordering::Equal,
            TagRank::Other => a.cmp(b),
            _ => compare_versions(&vb, &va).then_with(|| pa.cmp(pb)),
        })
    });
}

/// Compares by semantic-version precedence (build metadata ignored).
fn compare_versions(a: &Option<semver::Version>, b: &Option<semver::Version>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp_precedence(b),
        _ => Ordering::Equal,
    }
}

fn rank(tag: &str) -> (TagRank, Option<semver::Version>, &str) {
    if tag == "latest" {
        return (TagRank::Latest, None, "");
    }
    let (prefix, short) = match tag.strip_prefix('v') {
        Some(rest) => ("v", rest),
        None => ("", tag),
    };
    if let Ok(v) = semver::Version::parse(short) {
        return (TagRank::Full, Some(v), prefix);
    }
    let is_num = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // 5.1
    if let Some((major, minor)) = short.split_once('.')
        && is_num(major)
        && is_num(minor)
        && let Ok(v) = semver::Version::parse(&format!("{short}.0"))
    {
        return (TagRank::Minor, Some(v), prefix);
    }
    // 5.1-rc1
    if let Some((version, suffix)) = short.split_once('-')
        && !suffix.is_empty()
        && suffix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        && let Some((major, minor)) = version.split_once('.')
        && is_num(major)
        && is_num(minor)
        && let Ok(v) = semver::Version::parse(&format!("{version}.0-{suffix}"))
    {
        return (TagRank::Minor, Some(v), prefix);
    }
    (TagRank::Other, None, prefix)
}

#[cfg(test)]
mod tests;

pub mod notification;
