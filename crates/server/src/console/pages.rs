//! The console's pages (namespaces, streams of a namespace, a stream with its tags
//! table and history timeline), the confirmation page of an action and the action
//! itself, each read or written through the API as the signed-in user.

use std::collections::HashSet;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use futures::StreamExt as _;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use maud::{Markup, html};
use moor_api::humanize::{seconds_since, short_age};
use moor_api::image::{
    ConditionStatus, ImageStream, KIND_DOCKER_IMAGE, KIND_IMAGE_STREAM_IMAGE, NamedTagEventList,
    TagEventConditionType, TagImportPolicy, TagReference,
};
use serde::Deserialize;
use serde_json::Value;

use super::client::{IMAGE_API, is_refusal};
use super::session::Current;
use super::{Console, ConsoleError, Crumb, error_page, layout, timeline};

/// A list answer's items.
#[derive(Deserialize)]
struct List<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

fn streams_path(ns: &str) -> String {
    format!("{IMAGE_API}/namespaces/{ns}/imagestreams")
}

fn stream_path(ns: &str, name: &str) -> String {
    format!("{IMAGE_API}/namespaces/{ns}/imagestreams/{name}")
}

/// Refuses a namespace or stream name that is not a plain path segment (the API
/// would refuse it too; this keeps it from reshaping the API path).
pub(crate) fn check_names(ns: &str, name: &str) -> Result<(), ConsoleError> {
    for n in [ns, name] {
        let plain = !n.is_empty()
            && n != "."
            && n != ".."
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !plain {
            return Err(ConsoleError::BadRequest(format!(
                "{n:?} is not a valid name"
            )));
        }
    }
    Ok(())
}

/// The console URL of a stream.
pub(crate) fn stream_url(ns: &str, name: &str) -> String {
    format!("/console/ns/{ns}/streams/{name}")
}

/// Whether a tag's last import failed.
fn failing(t: &NamedTagEventList) -> bool {
    t.condition(&TagEventConditionType::ImportSuccess)
        .is_some_and(|c| c.status == ConditionStatus::False)
}

/// When a stream last changed: its newest tag event.
fn last_updated(s: &ImageStream) -> Option<Timestamp> {
    s.status
        .tags
        .iter()
        .filter_map(|t| t.items.first()?.created.as_ref().map(|c| c.0))
        .max()
}

/// `2026-12-06 20:44:14Z` and its age, for a `<time>` element.
pub(crate) fn when(t: Option<&Time>) -> Markup {
    match t {
        None => html! { span.muted { "—" } },
        Some(t) => {
            let age = short_age(seconds_since(t.0, Timestamp::now()));
            html! {
                time datetime=(t.0.to_string()) title=(t.0.to_string()) { (age) " ago" }
            }
        }
    }
}

/// The short form of a digest: its algorithm and the first 12 hex digits.
pub(crate) fn short_digest(d: &str) -> &str {
    match d.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 => &d[..alg.len() + 1 + 12],
        _ => d,
    }
}

/// The namespaces the user may see: all they may list, or, when they may not list
/// namespaces, those (of the store's) in which they may list image streams.
async fn visible_namespaces(console: &Console, token: &str) -> Result<Vec<String>, ConsoleError> {
    match console
        .api
        .get::<List<Value>>(token, "/api/v1/namespaces")
        .await
    {
        Ok(list) => Ok(list
            .items
            .iter()
            .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_owned))
            .collect()),
        Err(e) if is_refusal(&e) => {
            let Some(storage) = console.server.storage("", "v1", "namespaces") else {
                return Ok(Vec::new());
            };
            let prefix = moor_apimachinery::stored::resource_prefix(storage.def());
            let listed = console
                .server
                .store
                .list(&prefix, Default::default())
                .await
                .map_err(ConsoleError::Store)?;
            let names: Vec<String> = listed
                .kvs
                .iter()
                .filter_map(|kv| kv.key.strip_prefix(&prefix).map(str::to_owned))
                .collect();
            let allowed: Vec<Option<String>> = futures::stream::iter(names)
                .map(|ns| async move {
                    console
                        .api
                        .can(token, "list", "imagestreams", &ns)
                        .await
                        .then_some(ns)
                })
                .buffered(8)
                .collect()
                .await;
            Ok(allowed.into_iter().flatten().collect())
        }
        Err(e) => Err(e),
    }
}

/// `GET /console/`: the namespaces the user can see, with counts of streams and of
/// failing tags.
pub(crate) async fn namespaces(State(console): State<Console>, current: Current) -> Response {
    let names = match visible_namespaces(&console, &current.token).await {
        Ok(n) => n,
        Err(e) => return error_page(Some(&current), &e),
    };
    let token = current.token.as_str();
    let api = &console.api;
    let rows: Vec<(String, Option<(usize, usize)>)> = futures::stream::iter(names)
        .map(|ns| async move {
            let counts = api
                .get::<List<ImageStream>>(token, &streams_path(&ns))
                .await
                .ok()
                .map(|l| {
                    let failing_tags = l
                        .items
                        .iter()
                        .map(|s| s.status.tags.iter().filter(|t| failing(t)).count())
                        .sum();
                    (l.items.len(), failing_tags)
                });
            (ns, counts)
        })
        .buffered(8)
        .collect()
        .await;
    let body = html! {
        h1 { "Namespaces" }
        @if rows.is_empty() {
            p { "You can see no namespace." }
        } @else {
            div.table-wrap {
                table {
                    caption.visually-hidden { "Namespaces you can see" }
                    thead { tr {
                        th scope="col" { "Namespace" }
                        th scope="col" { "Image streams" }
                        th scope="col" { "Failing tags" }
                    } }
                    tbody {
                        @for (ns, counts) in &rows {
                            tr {
                                th scope="row" { a href=(format!("/console/ns/{ns}/")) { (ns) } }
                                @match counts {
                                    Some((streams, bad)) => {
                                        td { (streams) }
                                        td.bad[*bad > 0] { (bad) }
                                    }
                                    None => {
                                        td.muted colspan="2" { "not readable" }
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
        "Namespaces",
        Some(&current),
        &[Crumb::here("Namespaces")],
        body,
    )
    .into_response()
}

#[derive(Deserialize, Default)]
pub(crate) struct StreamsQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    sort: String,
}

/// `GET /console/ns/{ns}/`: the streams of a namespace, searchable and sortable.
pub(crate) async fn streams(
    State(console): State<Console>,
    current: Current,
    Path(ns): Path<String>,
    Query(query): Query<StreamsQuery>,
) -> Response {
    if let Err(e) = check_names(&ns, "-") {
        return error_page(Some(&current), &e);
    }
    let list = match console
        .api
        .get::<List<ImageStream>>(&current.token, &streams_path(&ns))
        .await
    {
        Ok(l) => l,
        Err(e) => return error_page(Some(&current), &e),
    };
    let q = query.q.trim().to_lowercase();
    let mut rows: Vec<&ImageStream> = list
        .items
        .iter()
        .filter(|s| {
            q.is_empty()
                || s.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.to_lowercase().contains(&q))
        })
        .collect();
    let sort = match query.sort.as_str() {
        "updated" | "tags" | "failures" => query.sort.as_str(),
        _ => "name",
    };
    // Sort keys computed once per stream, not once per comparison.
    let mut keyed: Vec<(i64, usize, usize, &ImageStream)> = rows
        .drain(..)
        .map(|s| {
            let updated = last_updated(s).map_or(i64::MIN, |t| t.as_second());
            let failures = s.status.tags.iter().filter(|t| failing(t)).count();
            (
                updated,
                s.spec.tags.len().max(s.status.tags.len()),
                failures,
                s,
            )
        })
        .collect();
    match sort {
        "updated" => keyed.sort_by_key(|k| std::cmp::Reverse(k.0)),
        "tags" => keyed.sort_by_key(|k| std::cmp::Reverse(k.1)),
        "failures" => keyed.sort_by_key(|k| std::cmp::Reverse(k.2)),
        _ => keyed.sort_by(|a, b| a.3.metadata.name.cmp(&b.3.metadata.name)),
    }
    let body = html! {
        h1 { "Image streams in " (ns) }
        form.search method="get" role="search" {
            div {
                label for="q" { "Search by name" }
                input #q type="search" name="q" value=(query.q);
            }
            div {
                label for="sort" { "Sort by" }
                select #sort name="sort" {
                    @for (value, text) in [("name", "Name"), ("updated", "Last updated"), ("tags", "Tags"), ("failures", "Failures")] {
                        option value=(value) selected[sort == value] { (text) }
                    }
                }
            }
            button type="submit" { "Show" }
        }
        @if keyed.is_empty() {
            p { "No image stream matches." }
        } @else {
            div.table-wrap {
                table {
                    caption.visually-hidden { "Image streams" }
                    thead { tr {
                        th scope="col" { "Name" }
                        th scope="col" { "Tags" }
                        th scope="col" { "Last updated" }
                        th scope="col" { "Lookup" }
                        th scope="col" { "Scheduled tags" }
                        th scope="col" { "Failures" }
                    } }
                    tbody {
                        @for (_, tags, failures, s) in &keyed {
                            @let name = s.metadata.name.as_deref().unwrap_or_default();
                            @let updated = last_updated(s).map(Time);
                            tr {
                                th scope="row" { a href=(stream_url(&ns, name)) { (name) } }
                                td { (tags) }
                                td { (when(updated.as_ref())) }
                                td { @if s.spec.lookup_policy.local { "on" } @else { "off" } }
                                td { (s.spec.tags.iter().filter(|t| t.import_policy.scheduled).count()) }
                                td.bad[*failures > 0] { (failures) }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(
        &format!("Streams in {ns}"),
        Some(&current),
        &[
            Crumb::link("Namespaces", "/console/"),
            Crumb::here(ns.clone()),
        ],
        body,
    )
    .into_response()
}

/// The tags table of a stream (also what a live update swaps in).
pub(crate) fn tags_table(ns: &str, s: &ImageStream, can_update: bool) -> Markup {
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
                @if can_update { th scope="col" { "Actions" } }
            } }
            tbody {
                @for tag in &tags {
                    @let spec = specs.get(tag).copied();
                    @let status = s.status_tag(tag);
                    @let current = status.and_then(|t| t.items.first());
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
                        td { @if spec.is_some_and(|t| t.import_policy.scheduled) { "yes" } @else { "no" } }
                        td.status {
                            @match status.and_then(|t| t.condition(&TagEventConditionType::ImportSuccess)).filter(|c| c.status == ConditionStatus::False) {
                                Some(c) => span.bad role="status" {
                                    "Import failed: " strong { (c.reason) } " " (c.message)
                                    @if let Some(t) = &c.last_transition_time { " (since " (when(Some(t))) ")" }
                                },
                                None => @if current.is_some() { span.ok { "OK" } } @else { span.muted { "not imported yet" } },
                            }
                        }
                        @if can_update {
                            td {
                                @if spec.is_some_and(|t| t.from_kind() == KIND_DOCKER_IMAGE) {
                                    a.button href=(confirm_url(ns, name, "import", tag, "")) { "Import now" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The confirmation page's URL of an action.
fn confirm_url(ns: &str, name: &str, action: &str, tag: &str, value: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("action", action)
        .append_pair("tag", tag)
        .append_pair("value", value)
        .finish();
    format!("{}/confirm?{query}", stream_url(ns, name))
}

#[derive(Deserialize, Default)]
pub(crate) struct StreamQuery {
    #[serde(default)]
    done: String,
}

/// `GET /console/ns/{ns}/streams/{name}`: the tags table, the history timeline and
/// each tag's history with rollback.
pub(crate) async fn stream(
    State(console): State<Console>,
    current: Current,
    Path((ns, name)): Path<(String, String)>,
    Query(query): Query<StreamQuery>,
) -> Response {
    if let Err(e) = check_names(&ns, &name) {
        return error_page(Some(&current), &e);
    }
    let s: ImageStream = match console
        .api
        .get(&current.token, &stream_path(&ns, &name))
        .await
    {
        Ok(s) => s,
        Err(e) => return error_page(Some(&current), &e),
    };
    let can_update = console
        .api
        .can(&current.token, "update", "imagestreams", &ns)
        .await;
    let notice = match query.done.as_str() {
        "rollback" => {
            Some("The tag now points at the chosen image; its import adds a new history entry.")
        }
        "import" => Some("The tag will be imported again."),
        "lookup" => Some("The lookup policy was changed."),
        _ => None,
    };
    let lookup = s.spec.lookup_policy.local;
    let repository = if s.status.docker_image_repository.is_empty() {
        None
    } else {
        Some(s.status.docker_image_repository.as_str())
    };
    let events_url = format!("{}/events", stream_url(&ns, &name));
    let body = html! {
        h1 { "Image stream " (name) }
        @if let Some(n) = notice { p.notice role="status" { (n) } }
        dl {
            @if let Some(r) = repository {
                dt { "Repository" } dd { code { (r) } }
            }
            dt { "Lookup (short names in workloads)" }
            dd {
                @if lookup { "on" } @else { "off" }
                @if can_update {
                    " "
                    a.button href=(confirm_url(&ns, &name, "lookup", "", if lookup { "off" } else { "on" })) {
                        "Turn lookup " @if lookup { "off" } @else { "on" }
                    }
                }
            }
        }
        h2 #tags { "Tags" }
        div.table-wrap #tags-live hx-ext="sse" sse-connect=(events_url) sse-swap="tags" hx-swap="innerHTML" {
            (tags_table(&ns, &s, can_update))
        }
        h2 #timeline { "History" }
        (timeline::render(&ns, &s))
        @for t in s.status.tags.iter().filter(|t| !t.items.is_empty()) {
            section aria-labelledby=(format!("history-{}", t.tag)) {
                h3 id=(format!("history-{}", t.tag)) { "History of " (t.tag) }
                div.table-wrap {
                    table {
                        thead { tr {
                            th scope="col" { "Revision" }
                            th scope="col" { "Digest" }
                            th scope="col" { "Created" }
                            th scope="col" { "Pull spec" }
                            @if can_update { th scope="col" { "Actions" } }
                        } }
                        tbody {
                            @for (i, e) in t.items.iter().enumerate() {
                                tr id=(format!("rev-{}-{}", t.tag, t.items.len() - i)) {
                                    th scope="row" { (t.items.len() - i) @if i == 0 { " (current)" } }
                                    td { @if e.image.is_empty() { span.muted { "none" } } @else {
                                        a href=(image_url(&ns, &name, &e.image)) { code { (e.image) } }
                                    } }
                                    td { (when(e.created.as_ref())) }
                                    td { code { (e.docker_image_reference) } }
                                    @if can_update {
                                        td { @if i > 0 && !e.image.is_empty() {
                                            a.button href=(confirm_url(&ns, &name, "rollback", &t.tag, &e.image)) {
                                                "Roll back to revision " (t.items.len() - i)
                                            }
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

/// An action on a stream, as the confirmation page and the form name it.
#[derive(Deserialize, Default, Clone)]
pub(crate) struct ActionForm {
    #[serde(default)]
    action: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    csrf: String,
}

/// What `action` will do, in words; `None` for an unknown action.
fn describe(ns: &str, name: &str, a: &ActionForm) -> Option<String> {
    match a.action.as_str() {
        "rollback" => Some(format!(
            "Roll tag {name}:{} in {ns} back to image {}. The tag is then pinned to that image, and a scheduled import of the tag stops until it is tagged from a registry again.",
            a.tag, a.value
        )),
        "import" => Some(format!(
            "Import tag {name}:{} in {ns} from its source now.",
            a.tag
        )),
        "lookup" if a.value == "on" || a.value == "off" => Some(format!(
            "Turn lookup {} for image stream {name} in {ns}: workloads in {ns} naming {name}:TAG {} resolved to the tag's image.",
            a.value,
            if a.value == "on" {
                "get"
            } else {
                "are no longer"
            }
        )),
        _ => None,
    }
}

/// `GET .../confirm`: asks before an action; the form posts it.
pub(crate) async fn confirm(
    current: Current,
    Path((ns, name)): Path<(String, String)>,
    Query(action): Query<ActionForm>,
) -> Response {
    if let Err(e) = check_names(&ns, &name) {
        return error_page(Some(&current), &e);
    }
    let Some(what) = describe(&ns, &name, &action) else {
        return error_page(
            Some(&current),
            &ConsoleError::BadRequest(format!("unknown action {:?}", action.action)),
        );
    };
    let back = stream_url(&ns, &name);
    let body = html! {
        h1 { "Confirm" }
        p { (what) }
        form method="post" action=(format!("{back}/actions")) {
            input type="hidden" name="csrf" value=(current.csrf);
            input type="hidden" name="action" value=(action.action);
            input type="hidden" name="tag" value=(action.tag);
            input type="hidden" name="value" value=(action.value);
            button.danger #confirm type="submit" { "Confirm" }
            " "
            a href=(back) { "Cancel" }
        }
    };
    layout(
        "Confirm",
        Some(&current),
        &[
            Crumb::link("Namespaces", "/console/"),
            Crumb::link(ns.clone(), format!("/console/ns/{ns}/")),
            Crumb::link(name.clone(), back.clone()),
            Crumb::here("Confirm"),
        ],
        body,
    )
    .into_response()
}

/// Changes a stream as the user: GET, `change`, PUT with the read resourceVersion;
/// a conflict (someone wrote meanwhile) reads again, a few times.
async fn update_stream(
    console: &Console,
    token: &str,
    ns: &str,
    name: &str,
    change: impl Fn(&mut ImageStream) -> Result<(), ConsoleError>,
) -> Result<(), ConsoleError> {
    let path = stream_path(ns, name);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut s: ImageStream = console.api.get(token, &path).await?;
        change(&mut s)?;
        let body = serde_json::to_value(&s).map_err(ConsoleError::Decode)?;
        match console
            .api
            .send(token, Method::PUT, &path, Some(&body))
            .await
        {
            Ok(_) => return Ok(()),
            Err(ConsoleError::Api { status, .. })
                if status == StatusCode::CONFLICT && attempt < 3 =>
            {
                continue;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Points `tag` at image `digest` of the stream's history, as `moor rollback` does.
fn roll_back(s: &mut ImageStream, tag: &str, digest: &str) -> Result<(), ConsoleError> {
    let name = s.metadata.name.clone().unwrap_or_default();
    let known = s
        .status_tag(tag)
        .is_some_and(|t| t.items.iter().any(|e| e.image == digest));
    if !known {
        return Err(ConsoleError::BadRequest(format!(
            "{digest} is not in the history of {name}:{tag}"
        )));
    }
    let from = ObjectReference {
        kind: Some(KIND_IMAGE_STREAM_IMAGE.into()),
        name: Some(format!("{name}@{digest}")),
        ..Default::default()
    };
    let unchanged = s
        .spec_tag(tag)
        .is_some_and(|t| t.from.as_ref() == Some(&from));
    let mut spec = s.spec_tag(tag).cloned().unwrap_or_else(|| TagReference {
        name: tag.into(),
        ..Default::default()
    });
    spec.reference = false;
    spec.import_policy = TagImportPolicy::default();
    spec.from = Some(from);
    spec.generation = unchanged.then_some(0);
    match s.spec_tag_mut(tag) {
        Some(t) => *t = spec,
        None => s.spec.tags.push(spec),
    }
    Ok(())
}

/// `POST .../actions`: does a confirmed action as the user, then back to the stream.
pub(crate) async fn act(
    State(console): State<Console>,
    current: Current,
    Path((ns, name)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    if !current.csrf_ok(&form.csrf) {
        return super::session::csrf_refused();
    }
    if let Err(e) = check_names(&ns, &name) {
        return error_page(Some(&current), &e);
    }
    let token = &current.token;
    let result = match form.action.as_str() {
        "rollback" => {
            update_stream(&console, token, &ns, &name, |s| {
                roll_back(s, &form.tag, &form.value)
            })
            .await
        }
        "import" => {
            update_stream(&console, token, &ns, &name, |s| {
                match s.spec_tag_mut(&form.tag) {
                    Some(t) if t.from_kind() == KIND_DOCKER_IMAGE => {
                        // Generation 0 asks for a re-import.
                        t.generation = Some(0);
                        Ok(())
                    }
                    _ => Err(ConsoleError::BadRequest(format!(
                        "tag {:?} has no registry source to import from",
                        form.tag
                    ))),
                }
            })
            .await
        }
        "lookup" => {
            let on = match form.value.as_str() {
                "on" => true,
                "off" => false,
                v => {
                    return error_page(
                        Some(&current),
                        &ConsoleError::BadRequest(format!("lookup must be on or off, not {v:?}")),
                    );
                }
            };
            update_stream(&console, token, &ns, &name, |s| {
                s.spec.lookup_policy.local = on;
                Ok(())
            })
            .await
        }
        other => Err(ConsoleError::BadRequest(format!(
            "unknown action {other:?}"
        ))),
    };
    match result {
        Ok(()) => Redirect::to(&format!("{}?done={}", stream_url(&ns, &name), form.action))
            .into_response(),
        Err(e) => error_page(Some(&current), &e),
    }
}

/// The console URL of image `digest` of a stream.
pub(crate) fn image_url(ns: &str, name: &str, digest: &str) -> String {
    format!("{}/images/{digest}", stream_url(ns, name))
}

/// `GET .../images/{digest}`: an image of the stream (an ImageStreamImage): digest,
/// size, created, platforms of an index, layers, labels and the pull command.
pub(crate) async fn image(
    State(console): State<Console>,
    current: Current,
    Path((ns, name, digest)): Path<(String, String, String)>,
) -> Response {
    let digest_ok = digest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'+' | b'.' | b'_' | b'-'));
    if let Err(e) = check_names(&ns, &name).and_then(|()| {
        if digest_ok && !digest.is_empty() {
            Ok(())
        } else {
            Err(ConsoleError::BadRequest(format!(
                "{digest:?} is not a digest"
            )))
        }
    }) {
        return error_page(Some(&current), &e);
    }
    let token = &current.token;
    let path = format!("{IMAGE_API}/namespaces/{ns}/imagestreamimages/{name}@{digest}");
    let stream_at = stream_path(&ns, &name);
    let (found, s) = futures::join!(
        console.api.get::<Value>(token, &path),
        console.api.get::<ImageStream>(token, &stream_at),
    );
    let found = match found.and_then(|v| {
        serde_json::from_value::<moor_api::image::Image>(v["image"].clone())
            .map_err(ConsoleError::Decode)
    }) {
        Ok(i) => i,
        Err(e) => return error_page(Some(&current), &e),
    };
    let repository = s
        .ok()
        .map(|s| s.status.docker_image_repository)
        .filter(|r| !r.is_empty());
    let meta = found.docker_image_metadata.as_ref();
    let layers_size: i64 = found.docker_image_layers.iter().map(|l| l.size).sum();
    let size = meta
        .map(|m| m.size)
        .filter(|s| *s > 0)
        .unwrap_or(layers_size);
    let labels = meta
        .and_then(|m| m.config.as_ref())
        .map(|c| &c.labels)
        .filter(|l| !l.is_empty());
    let body = html! {
        h1 { "Image " (short_digest(&digest)) }
        dl {
            dt { "Digest" } dd { code { (digest) } }
            @if let Some(r) = &repository {
                dt { "Pull" } dd { code { "podman pull " (r) "@" (digest) } }
            }
            dt { "Source" } dd { code { (found.docker_image_reference) } }
            @if !found.docker_image_manifest_media_type.is_empty() {
                dt { "Media type" } dd { code { (found.docker_image_manifest_media_type) } }
            }
            dt { "Size" } dd { @if size > 0 { (moor_api::humanize::human_size(size)) } @else { span.muted { "unknown" } } }
            dt { "Created" } dd { (when(meta.and_then(|m| m.created.as_ref()))) }
            @if let Some(m) = meta.filter(|m| !m.os.is_empty()) {
                dt { "Platform" } dd { (m.os) "/" (m.architecture) }
            }
        }
        @if !found.docker_image_manifests.is_empty() {
            h2 { "Platforms" }
            div.table-wrap { table {
                thead { tr { th scope="col" { "Platform" } th scope="col" { "Digest" } th scope="col" { "Size" } } }
                tbody { @for m in &found.docker_image_manifests {
                    tr {
                        th scope="row" { (m.os) "/" (m.architecture) @if !m.variant.is_empty() { "/" (m.variant) } }
                        td { code { (m.digest) } }
                        td { (moor_api::humanize::human_size(m.manifest_size)) }
                    }
                } }
            } }
        }
        @if !found.docker_image_layers.is_empty() {
            h2 { "Layers" }
            div.table-wrap { table {
                thead { tr { th scope="col" { "#" } th scope="col" { "Digest" } th scope="col" { "Size" } th scope="col" { "Media type" } } }
                tbody { @for (i, l) in found.docker_image_layers.iter().enumerate() {
                    tr {
                        th scope="row" { (i + 1) }
                        td { code { (l.name) } }
                        td { (moor_api::humanize::human_size(l.size)) }
                        td { code { (l.media_type) } }
                    }
                } }
            } }
        }
        @if let Some(labels) = labels {
            h2 { "Labels" }
            div.table-wrap { table {
                thead { tr { th scope="col" { "Label" } th scope="col" { "Value" } } }
                tbody { @for (k, v) in labels {
                    tr { th scope="row" { code { (k) } } td { (v) } }
                } }
            } }
        }
    };
    layout(
        &format!("{ns}/{name}@{}", short_digest(&digest)),
        Some(&current),
        &[
            Crumb::link("Namespaces", "/console/"),
            Crumb::link(ns.clone(), format!("/console/ns/{ns}/")),
            Crumb::link(name.clone(), stream_url(&ns, &name)),
            Crumb::here(short_digest(&digest).to_owned()),
        ],
        body,
    )
    .into_response()
}
