//! A stream's page: the tags table (source, current digest, reference policy, the
//! scheduler's last and next check, a failed import's reason and its retry), the
//! history timeline, each tag's history with what made each entry (imported, pushed,
//! rolled back, scheduled), the workloads that run its images, and the actions an
//! editor may take. Read through the API as the signed-in user.

use std::collections::{HashMap, HashSet};

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use maud::{Markup, html};
use moor_api::humanize::short_age;
use moor_api::image::{
    ConditionStatus, ImageStream, KIND_DOCKER_IMAGE, NamedTagEventList, TagEventConditionType,
    reasons,
};
use moor_api::scheduled::{ScheduledImport, ScheduledImportStatus};
use serde::Deserialize;

use super::actions::{button, move_link};
use super::pages::{List, check_names, image_url, short_digest, stream_path, stream_url, when};
use super::session::Current;
use super::{Console, Crumb, error_page, layout, timeline, workloads};

/// The scheduler's records of a stream's tags, by tag, as the user may read them
/// (none when they may not, or the API has none).
pub(crate) async fn checks_of(
    console: &Console,
    token: &str,
    ns: &str,
    name: &str,
) -> HashMap<String, ScheduledImportStatus> {
    let path = format!(
        "/apis/moor.io/v1/namespaces/{ns}/scheduledimports?fieldSelector=status.imageStream%3D{name}"
    );
    console
        .api
        .get::<List<ScheduledImport>>(token, &path)
        .await
        .map(|l| {
            l.items
                .into_iter()
                .map(|r| (r.status.tag.clone(), r.status))
                .collect()
        })
        .unwrap_or_default()
}

/// What the tags table shows beside the stream.
pub(crate) struct TagsView<'a> {
    /// The session's CSRF token when the user may update the stream (actions are
    /// offered only then).
    pub csrf: Option<&'a str>,
    /// The scheduler's records by tag.
    pub checks: &'a HashMap<String, ScheduledImportStatus>,
}

/// `in 12m` for a time to come, `due` for one past.
fn until(t: Timestamp) -> Markup {
    let secs = t.as_second() - Timestamp::now().as_second();
    html! {
        time datetime=(t.to_string()) title=(t.to_string()) {
            @if secs > 0 { "in " (short_age(secs)) } @else { "due now" }
        }
    }
}

fn ago(t: Timestamp) -> Markup {
    when(Some(&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        t,
    )))
}

/// Whether a failed import's reason is one that may pass by itself (retried with
/// backoff), as the import controller treats it.
fn transient(reason: &str) -> bool {
    matches!(
        reason,
        reasons::TIMEOUT
            | reasons::TOO_MANY_REQUESTS
            | reasons::INTERNAL_ERROR
            | reasons::SERVICE_UNAVAILABLE
    )
}

/// The tags table of a stream (also what a live update swaps in).
pub(crate) fn tags_table(ns: &str, s: &ImageStream, view: &TagsView<'_>) -> Markup {
    let name = s.metadata.name.as_deref().unwrap_or_default();
    let specs = s.spec_tags_by_name();
    let mut tags: Vec<&str> = s.spec.tags.iter().map(|t| t.name.as_str()).collect();
    let mut seen: HashSet<&str> = tags.iter().copied().collect();
    for t in &s.status.tags {
        if seen.insert(t.tag.as_str()) {
            tags.push(t.tag.as_str());
        }
    }
    tags.sort_unstable();
    html! {
        table #tags-table {
            caption.visually-hidden { "Tags of " (name) }
            thead { tr {
                th scope="col" { "Tag" }
                th scope="col" { "From" }
                th scope="col" { "Current digest" }
                th scope="col" { "Last updated" }
                th scope="col" { "Reference policy" }
                th scope="col" { "Scheduled" }
                th scope="col" { "Status" }
                @if view.csrf.is_some() { th scope="col" { "Actions" } }
            } }
            tbody {
                @for tag in &tags {
                    @let spec = specs.get(tag).copied();
                    @let status = s.status_tag(tag);
                    @let current = status.and_then(|t| t.items.first());
                    @let scheduled = spec.is_some_and(|t| t.import_policy.scheduled && t.from_kind() == KIND_DOCKER_IMAGE);
                    @let check = view.checks.get(*tag).filter(|c| c.active && scheduled);
                    @let registry = spec.is_some_and(|t| t.from_kind() == KIND_DOCKER_IMAGE);
                    tr data-tag=(tag) {
                        th scope="row" { (tag) }
                        td { @match spec.and_then(|t| t.from.as_ref()) {
                            Some(from) => { span.muted { (from.kind.as_deref().unwrap_or_default()) } " " code { (from.name.as_deref().unwrap_or_default()) } }
                            None => span.muted { "pushed" },
                        } }
                        td.digest { @match current.filter(|e| !e.image.is_empty()) {
                            Some(e) => code title=(e.image) { (short_digest(&e.image)) },
                            None => span.muted { "none" },
                        } }
                        td { (when(current.and_then(|e| e.created.as_ref()))) }
                        td { @match spec.and_then(|t| t.reference_policy.type_.as_ref()) {
                            Some(p) => (p.as_str()),
                            None => "Source",
                        } }
                        td.scheduled {
                            @if scheduled {
                                "yes"
                                @if let Some(c) = check {
                                    @if let Some(t) = c.last_check_time {
                                        br; span.muted { "last check " } (ago(t))
                                        @if let Some(r) = c.last_check_result { " (" (r.as_str()) ")" }
                                    }
                                    @if let Some(t) = c.next_check_time {
                                        br; span.muted { "next check " } (until(t))
                                    }
                                }
                            } @else { "no" }
                        }
                        td.status {
                            @match status.and_then(|t| t.condition(&TagEventConditionType::ImportSuccess)).filter(|c| c.status == ConditionStatus::False) {
                                Some(c) => span.bad role="status" {
                                    "Import failed: " strong { (c.reason) } " " (c.message)
                                    @if let Some(t) = &c.last_transition_time { " (since " (when(Some(t))) ")" }
                                    br;
                                    @if let Some(t) = check.and_then(|c| c.next_check_time) {
                                        "Retried at the next check, " (until(t)) "."
                                    } @else if !registry {
                                        "Not retried: the tag has no registry source."
                                    } @else if transient(&c.reason) {
                                        "Retried with backoff (1 s, doubling, up to 10 min)."
                                    } @else {
                                        "Retried when the namespace's pull secrets or the tag's source change."
                                    }
                                },
                                None => @if current.is_some() { span.ok { "OK" } } @else { span.muted { "not imported yet" } },
                            }
                        }
                        @if let Some(csrf) = view.csrf {
                            td.actions {
                                (move_link(ns, name, tag))
                                @if registry {
                                    " " (button(ns, name, csrf, "import", tag, "", html! { "Import now" }))
                                    " " (button(ns, name, csrf, "schedule", tag, if scheduled { "off" } else { "on" },
                                        html! { @if scheduled { "Stop scheduled import" } @else { "Schedule import" } }))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What made each history entry of `t` (newest first, as `items`), as far as the
/// stream tells: `pushed` (its pull spec is moor's own registry, or the tag has no
/// source: an ImageStreamMapping put it there), `rolled back` (an image the tag had
/// before), `scheduled` (a new image at the spec generation of the entry before it, on
/// a scheduled tag: no one changed the spec, a periodic check found it), else
/// `imported`. Linear in the entries: one pass from the oldest.
pub(crate) fn entry_kinds(s: &ImageStream, t: &NamedTagEventList) -> Vec<&'static str> {
    let repository = s.status.docker_image_repository.as_str();
    let spec = s.spec_tag(&t.tag).filter(|t| t.from.is_some());
    let scheduled = spec.is_some_and(|t| t.import_policy.scheduled);
    let mut seen: HashSet<&str> = HashSet::with_capacity(t.items.len());
    let mut kinds = vec!["imported"; t.items.len()];
    for (index, e) in t.items.iter().enumerate().rev() {
        let own = !repository.is_empty()
            && e.docker_image_reference
                .strip_prefix(repository)
                .is_some_and(|rest| rest.starts_with('@') || rest.starts_with(':'));
        let before = t.items.get(index + 1);
        kinds[index] = if own || spec.is_none() {
            "pushed"
        } else if !e.image.is_empty() && seen.contains(e.image.as_str()) {
            "rolled back"
        } else if scheduled && before.is_some_and(|o| o.generation == e.generation) {
            "scheduled"
        } else {
            "imported"
        };
        seen.insert(&e.image);
    }
    kinds
}

#[derive(Deserialize, Default)]
pub(crate) struct StreamQuery {
    #[serde(default)]
    done: String,
}

/// `GET /console/ns/{ns}/streams/{name}`: the tags table, the history timeline, each
/// tag's history with rollback, and who runs its images.
pub(crate) async fn stream(
    State(console): State<Console>,
    current: Current,
    Path((ns, name)): Path<(String, String)>,
    Query(query): Query<StreamQuery>,
) -> Response {
    if let Err(e) = check_names(&ns, &name) {
        return error_page(Some(&current), &e);
    }
    let token = current.token.as_str();
    let path = stream_path(&ns, &name);
    let (s, can_update, checks, runs) = futures::join!(
        console.api.get::<ImageStream>(token, &path),
        console.api.can(token, "update", "imagestreams", &ns),
        checks_of(&console, token, &ns, &name),
        workloads::pinning(&console, token, &ns),
    );
    let s = match s {
        Ok(s) => s,
        Err(e) => return error_page(Some(&current), &e),
    };
    let csrf = can_update.then_some(current.csrf.as_str());
    let notice = match query.done.as_str() {
        "rollback" => {
            Some("The tag now points at the chosen image; its import adds a new history entry.")
        }
        "move" => {
            Some("The tag now points at its new source; its import adds a new history entry.")
        }
        "import" => Some("The tag will be imported again."),
        "schedule" => Some("The tag's scheduled import was changed."),
        "lookup" => Some("The lookup policy was changed."),
        "create" => Some("The image stream was created."),
        _ => None,
    };
    let lookup = s.spec.lookup_policy.local;
    let repository = s.status.docker_image_repository.as_str();
    let events_url = format!("{}/events", stream_url(&ns, &name));
    let body = html! {
        h1 { "Image stream " (name) }
        @if let Some(n) = notice { p.notice role="status" { (n) } }
        dl {
            @if !repository.is_empty() {
                dt { "Repository" } dd { code { (repository) } }
            }
            dt { "Lookup (short names in workloads)" }
            dd {
                @if lookup { "on" } @else { "off" }
                @if let Some(csrf) = csrf {
                    " "
                    (button(&ns, &name, csrf, "lookup", "", if lookup { "off" } else { "on" },
                        html! { "Turn lookup " @if lookup { "off" } @else { "on" } }))
                }
            }
        }
        h2 #tags { "Tags" }
        div.table-wrap #tags-live hx-ext="sse" sse-connect=(events_url) sse-swap="tags" hx-swap="innerHTML" {
            (tags_table(&ns, &s, &TagsView { csrf, checks: &checks }))
        }
        h2 #timeline { "History" }
        (timeline::render(&ns, &s))
        h2 #runs { "Who runs it" }
        (workloads::render(&ns, &name, &s, &runs))
        @for t in s.status.tags.iter().filter(|t| !t.items.is_empty()) {
            section aria-labelledby=(format!("history-{}", t.tag)) {
                h3 id=(format!("history-{}", t.tag)) { "History of " (t.tag) }
                div.table-wrap {
                    table {
                        thead { tr {
                            th scope="col" { "Revision" }
                            th scope="col" { "Digest" }
                            th scope="col" { "Created" }
                            th scope="col" { "How" }
                            th scope="col" { "Pull spec" }
                            @if csrf.is_some() { th scope="col" { "Actions" } }
                        } }
                        tbody {
                            @let kinds = entry_kinds(&s, t);
                            @for (i, (e, kind)) in t.items.iter().zip(kinds).enumerate() {
                                tr id=(format!("rev-{}-{}", t.tag, t.items.len() - i)) data-kind=(kind) {
                                    th scope="row" { (t.items.len() - i) @if i == 0 { " (current)" } }
                                    td { @if e.image.is_empty() { span.muted { "none" } } @else {
                                        a href=(image_url(&ns, &name, &e.image)) { code { (e.image) } }
                                    } }
                                    td { (when(e.created.as_ref())) }
                                    td { span class=(format!("kind kind-{}", kind.replace(' ', "-"))) { (kind) } }
                                    td { code { (e.docker_image_reference) } }
                                    @if let Some(csrf) = csrf {
                                        td { @if i > 0 && !e.image.is_empty() {
                                            (button(&ns, &name, csrf, "rollback", &t.tag, &e.image,
                                                html! { "Roll back to revision " (t.items.len() - i) }))
                                        } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(
        &format!("{ns}/{name}"),
        Some(&current),
        &[
            Crumb::link("Namespaces", "/console/"),
            Crumb::link(ns.clone(), format!("/console/ns/{ns}/")),
            Crumb::here(name.clone()),
        ],
        body,
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use moor_api::image::{TagEvent, TagReference};

    fn event(image: &str, reference: &str, generation: i64) -> TagEvent {
        TagEvent {
            image: image.into(),
            docker_image_reference: reference.into(),
            generation,
            ..Default::default()
        }
    }

    #[test]
    fn entries_say_what_made_them() {
        let mut s = ImageStream::default();
        s.status.docker_image_repository = "moor.local:5000/ns/app".into();
        // Newest first: a rollback to b, a scheduled check's c, an import of b (spec
        // generation 2), a push of a.
        let t = NamedTagEventList {
            tag: "v1".into(),
            items: vec![
                event("b", "quay.io/x@b", 4),
                event("c", "quay.io/x@c", 2),
                event("b", "quay.io/x@b", 2),
                event("a", "moor.local:5000/ns/app@a", 1),
            ],
            ..Default::default()
        };
        // No source: every entry was put there (an ImageStreamMapping).
        assert_eq!(entry_kinds(&s, &t), ["pushed"; 4]);
        let mut spec = TagReference {
            name: "v1".into(),
            from: Some(k8s_openapi::api::core::v1::ObjectReference {
                kind: Some(KIND_DOCKER_IMAGE.into()),
                name: Some("quay.io/x:1".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        spec.import_policy.scheduled = true;
        s.spec.tags.push(spec);
        assert_eq!(
            entry_kinds(&s, &t),
            ["rolled back", "scheduled", "imported", "pushed"]
        );
        // Not scheduled: a new image at the same generation is an import.
        s.spec.tags[0].import_policy.scheduled = false;
        assert_eq!(entry_kinds(&s, &t)[1], "imported");
    }
}
