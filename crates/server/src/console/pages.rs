//! The console's list pages (namespaces, streams of a namespace) and the helpers the
//! other pages share, each read through the API as the signed-in user.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

use futures::StreamExt as _;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use maud::{Markup, html};
use moor_api::humanize::{seconds_since, short_age};
use serde::Deserialize;
use serde_json::Value;

use super::client::{IMAGE_API, is_refusal};
use super::session::Current;
use super::{Console, ConsoleError, Crumb, error_page, layout};

/// A list answer's items.
#[derive(Deserialize)]
pub(crate) struct List<T> {
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
}

pub(crate) fn streams_path(ns: &str) -> String {
    format!("{IMAGE_API}/namespaces/{ns}/imagestreams")
}

pub(crate) fn stream_path(ns: &str, name: &str) -> String {
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

/// Whether a tag's conditions say its last import failed.
fn failing(conditions: &[SummaryCondition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == "ImportSuccess" && c.status == "False")
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
            let names = match console.server.storage("", "v1", "namespaces") {
                Some(storage) => {
                    let prefix = moor_apimachinery::stored::resource_prefix(storage.def());
                    let listed = console
                        .server
                        .store
                        .list(&prefix, Default::default())
                        .await
                        .map_err(ConsoleError::Store)?;
                    listed
                        .kvs
                        .iter()
                        .filter_map(|kv| kv.key.strip_prefix(&prefix).map(str::to_owned))
                        .collect()
                }
                // Cluster mode: the namespaces are the cluster's; those that hold
                // image streams are moor's to tell.
                None => stream_namespaces(console).await?,
            };
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

/// The namespaces that hold image streams in moor's store: one read of one key per
/// namespace (each read starts past the previous namespace's keys), not a list of
/// every stream.
async fn stream_namespaces(console: &Console) -> Result<Vec<String>, ConsoleError> {
    let Some(storage) = console
        .server
        .storage("image.openshift.io", "v1", "imagestreams")
    else {
        return Ok(Vec::new());
    };
    let prefix = moor_apimachinery::stored::resource_prefix(storage.def());
    let mut names = Vec::new();
    let mut start_after = None;
    loop {
        let listed = console
            .server
            .store
            .list(
                &prefix,
                moor_store::ListOptions {
                    start_after: start_after.take(),
                    limit: Some(1),
                    ..Default::default()
                },
            )
            .await
            .map_err(ConsoleError::Store)?;
        let Some(ns) = listed
            .kvs
            .first()
            .and_then(|kv| kv.key.strip_prefix(&prefix))
            .and_then(|rest| rest.split_once('/'))
            .map(|(ns, _)| ns.to_owned())
        else {
            return Ok(names);
        };
        // Past every `ns/...` key: '0' follows '/'.
        start_after = Some(format!("{prefix}{ns}0"));
        names.push(ns);
    }
}

/// How many rows a list page shows.
pub(crate) const PAGE_SIZE: usize = 100;

/// Page `page` (1-based, clamped) of `items`, and the number of pages.
pub(crate) fn page_of<T>(items: &[T], page: usize) -> (&[T], usize, usize) {
    let pages = items.len().div_ceil(PAGE_SIZE).max(1);
    let page = page.clamp(1, pages);
    let start = (page - 1) * PAGE_SIZE;
    let end = (start + PAGE_SIZE).min(items.len());
    (&items[start..end], page, pages)
}

/// The previous/next links of a paged list; `url(n)` is page `n`'s address.
pub(crate) fn pager(page: usize, pages: usize, url: impl Fn(usize) -> String) -> Markup {
    html! {
        @if pages > 1 {
            nav.pages aria-label="Pages" {
                @if page > 1 { a rel="prev" href=(url(page - 1)) { "← Previous" } }
                span { "Page " (page) " of " (pages) }
                @if page < pages { a rel="next" href=(url(page + 1)) { "Next →" } }
            }
        }
    }
}

/// What the namespaces page needs of a stream: its namespace and its tags'
/// conditions (the history and the rest are skipped while parsing).
#[derive(Deserialize)]
struct StreamSummary {
    #[serde(default)]
    metadata: SummaryMeta,
    #[serde(default)]
    status: SummaryStatus,
}

#[derive(Deserialize, Default)]
struct SummaryMeta {
    #[serde(default)]
    namespace: String,
}

#[derive(Deserialize, Default)]
struct SummaryStatus {
    #[serde(default)]
    tags: Vec<SummaryTag>,
}

#[derive(Deserialize)]
struct SummaryTag {
    #[serde(default)]
    conditions: Vec<SummaryCondition>,
}

#[derive(Deserialize)]
struct SummaryCondition {
    #[serde(rename = "type", default)]
    type_: String,
    #[serde(default)]
    status: String,
}

impl StreamSummary {
    fn failing_tags(&self) -> usize {
        self.status
            .tags
            .iter()
            .filter(|t| failing(&t.conditions))
            .count()
    }
}

/// What the streams page shows of a stream, parsed from the list without the tags'
/// histories (only each tag's newest entry's time is kept): decoding every stream of
/// a 10,000-stream namespace whole, to show a hundred, was most of the page's time.
#[derive(Deserialize, Default)]
struct StreamRow {
    #[serde(default)]
    metadata: RowMeta,
    #[serde(default)]
    spec: RowSpec,
    #[serde(default)]
    status: RowStatus,
}

#[derive(Deserialize, Default)]
struct RowMeta {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize, Default)]
struct RowSpec {
    #[serde(default)]
    tags: Vec<RowSpecTag>,
    #[serde(rename = "lookupPolicy", default)]
    lookup_policy: RowLookup,
}

#[derive(Deserialize, Default)]
struct RowSpecTag {
    #[serde(rename = "importPolicy", default)]
    import_policy: RowImportPolicy,
}

#[derive(Deserialize, Default)]
struct RowImportPolicy {
    #[serde(default)]
    scheduled: bool,
}

#[derive(Deserialize, Default)]
struct RowLookup {
    #[serde(default)]
    local: bool,
}

#[derive(Deserialize, Default)]
struct RowStatus {
    #[serde(default)]
    tags: Vec<RowTag>,
}

#[derive(Deserialize)]
struct RowTag {
    #[serde(default)]
    conditions: Vec<SummaryCondition>,
    /// The newest entry's `created` (the history's first); the rest is skipped.
    #[serde(default)]
    items: NewestCreated,
}

/// The `created` of a history's first (newest) entry; the other entries are skipped
/// unparsed.
#[derive(Default)]
struct NewestCreated(Option<Timestamp>);

impl<'de> Deserialize<'de> for NewestCreated {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Entry {
            #[serde(default)]
            created: Option<Time>,
        }
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = NewestCreated;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of tag events")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<NewestCreated, A::Error> {
                let first = seq.next_element::<Entry>()?;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(NewestCreated(first.and_then(|e| e.created).map(|t| t.0)))
            }
            fn visit_unit<E>(self) -> Result<NewestCreated, E> {
                Ok(NewestCreated(None))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl StreamRow {
    /// When the stream last changed: its newest tag event.
    fn last_updated(&self) -> Option<Timestamp> {
        self.status.tags.iter().filter_map(|t| t.items.0).max()
    }

    fn failing_tags(&self) -> usize {
        self.status
            .tags
            .iter()
            .filter(|t| failing(&t.conditions))
            .count()
    }
}

/// Streams and failing tags by namespace: one list across namespaces when the user
/// may, else one list per namespace of `shown` (`None`: not readable).
async fn counts(
    console: &Console,
    token: &str,
    shown: &[String],
) -> HashMap<String, Option<(usize, usize)>> {
    let all = format!("{IMAGE_API}/imagestreams");
    if let Ok(list) = console.api.get::<List<StreamSummary>>(token, &all).await {
        let mut by_ns: HashMap<String, Option<(usize, usize)>> =
            shown.iter().map(|n| (n.clone(), Some((0, 0)))).collect();
        for s in &list.items {
            if let Some(Some((streams, bad))) = by_ns.get_mut(&s.metadata.namespace) {
                *streams += 1;
                *bad += s.failing_tags();
            }
        }
        return by_ns;
    }
    let api = &console.api;
    futures::stream::iter(shown.iter().cloned())
        .map(|ns| async move {
            let counts = api
                .get::<List<StreamSummary>>(token, &streams_path(&ns))
                .await
                .ok()
                .map(|l| {
                    let bad = l.items.iter().map(StreamSummary::failing_tags).sum();
                    (l.items.len(), bad)
                });
            (ns, counts)
        })
        .buffered(8)
        .collect()
        .await
}

#[derive(Deserialize, Default)]
pub(crate) struct PageQuery {
    #[serde(default)]
    page: Option<usize>,
}

/// `GET /console/`: the namespaces the user can see, a page at a time, with counts of
/// streams and of failing tags.
pub(crate) async fn namespaces(
    State(console): State<Console>,
    current: Current,
    Query(query): Query<PageQuery>,
) -> Response {
    let mut names = match visible_namespaces(&console, &current.token).await {
        Ok(n) => n,
        Err(e) => return error_page(Some(&current), &e),
    };
    names.sort_unstable();
    let (shown, page, pages) = page_of(&names, query.page.unwrap_or(1));
    let counts = counts(&console, &current.token, shown).await;
    let body = html! {
        h1 { "Namespaces" }
        @if shown.is_empty() {
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
                        @for ns in shown {
                            tr {
                                th scope="row" { a href=(format!("/console/ns/{ns}/")) { (ns) } }
                                @match counts.get(ns).copied().flatten() {
                                    Some((streams, bad)) => {
                                        td { (streams) }
                                        td.bad[bad > 0] { (bad) }
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
            (pager(page, pages, |n| format!("/console/?page={n}")))
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
    #[serde(default)]
    page: Option<usize>,
}

/// `GET /console/ns/{ns}/`: the streams of a namespace, searchable and sortable, a
/// page at a time.
pub(crate) async fn streams(
    State(console): State<Console>,
    current: Current,
    Path(ns): Path<String>,
    Query(query): Query<StreamsQuery>,
) -> Response {
    if let Err(e) = check_names(&ns, "-") {
        return error_page(Some(&current), &e);
    }
    let path = streams_path(&ns);
    let (list, can_create) = futures::join!(
        console.api.get::<List<StreamRow>>(&current.token, &path),
        console
            .api
            .can(&current.token, "create", "imagestreams", &ns),
    );
    let list = match list {
        Ok(l) => l,
        Err(e) => return error_page(Some(&current), &e),
    };
    let q = query.q.trim().to_lowercase();
    let mut rows: Vec<&StreamRow> = list
        .items
        .iter()
        .filter(|s| q.is_empty() || s.metadata.name.to_lowercase().contains(&q))
        .collect();
    let sort = match query.sort.as_str() {
        "updated" | "tags" | "failures" => query.sort.as_str(),
        _ => "name",
    };
    // Sort keys computed once per stream, not once per comparison.
    let mut keyed: Vec<(i64, usize, usize, &StreamRow)> = rows
        .drain(..)
        .map(|s| {
            let updated = s.last_updated().map_or(i64::MIN, |t| t.as_second());
            let failures = s.failing_tags();
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
    let (shown, page, pages) = page_of(&keyed, query.page.unwrap_or(1));
    let body = html! {
        h1 { "Image streams in " (ns) }
        @if can_create {
            p { a.button href=(format!("/console/ns/{ns}/new")) { "Create image stream" } }
        }
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
            p.muted { (keyed.len()) " image streams" }
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
                        @for (_, tags, failures, s) in shown {
                            @let name = s.metadata.name.as_str();
                            @let updated = s.last_updated().map(Time);
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
            (pager(page, pages, |n| {
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair("q", &query.q)
                    .append_pair("sort", sort)
                    .append_pair("page", &n.to_string())
                    .finish();
                format!("/console/ns/{ns}/?{query}")
            }))
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

/// The console URL of image `digest` of a stream.
pub(crate) fn image_url(ns: &str, name: &str, digest: &str) -> String {
    format!("{}/images/{digest}", stream_url(ns, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_row_keeps_each_tags_newest_time_and_what_the_page_shows() {
        let row: StreamRow = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "app", "managedFields": [{"manager": "x"}]},
            "spec": {"lookupPolicy": {"local": true},
                     "tags": [{"name": "a", "importPolicy": {"scheduled": true}}, {"name": "b"}]},
            "status": {"tags": [
                {"tag": "a", "items": [
                    {"created": "2026-12-07T10:00:00Z", "image": "sha256:1"},
                    {"created": "2026-12-01T10:00:00Z", "image": "sha256:0", "extra": [1, {"x": 2}]}]},
                {"tag": "b", "items": null,
                 "conditions": [{"type": "ImportSuccess", "status": "False"}]},
                {"tag": "c", "items": [{"created": "2026-12-07T11:00:00Z"}]},
                {"tag": "d"}]}
        }))
        .unwrap();
        assert_eq!(row.metadata.name, "app");
        assert!(row.spec.lookup_policy.local);
        assert_eq!(
            row.spec
                .tags
                .iter()
                .filter(|t| t.import_policy.scheduled)
                .count(),
            1
        );
        assert_eq!(
            row.last_updated(),
            Some("2026-12-07T11:00:00Z".parse().unwrap())
        );
        assert_eq!(row.failing_tags(), 1);
        assert_eq!(row.status.tags[1].items.0, None);
    }
}
