//! "Who runs it": the workloads of a namespace (Deployments, StatefulSets, DaemonSets,
//! Jobs, CronJobs and Pods: moor's in standalone mode, the cluster's in cluster mode,
//! where [`super::client`] sends these lists to the cluster with the user's token)
//! whose containers are pinned to an image of the stream, by lookup or by a trigger,
//! so a person sees which still run an old digest. Read as the signed-in user: a kind
//! the user may not list is left out and named; one that is not served is left out.

use std::collections::HashMap;

use maud::{Markup, html};
use moor_api::image::ImageStream;
use serde_json::Value;

use super::Console;
use super::client::is_refusal;
use super::pages::{List, image_url, short_digest};

/// The kinds read, with their API paths (under a namespace) and the JSON path of
/// their pod spec.
const KINDS: [(&str, &str, &str, &[&str]); 6] = [
    (
        "Deployment",
        "/apis/apps/v1",
        "deployments",
        &["spec", "template", "spec"],
    ),
    (
        "StatefulSet",
        "/apis/apps/v1",
        "statefulsets",
        &["spec", "template", "spec"],
    ),
    (
        "DaemonSet",
        "/apis/apps/v1",
        "daemonsets",
        &["spec", "template", "spec"],
    ),
    (
        "Job",
        "/apis/batch/v1",
        "jobs",
        &["spec", "template", "spec"],
    ),
    (
        "CronJob",
        "/apis/batch/v1",
        "cronjobs",
        &["spec", "jobTemplate", "spec", "template", "spec"],
    ),
    ("Pod", "/api/v1", "pods", &["spec"]),
];

/// One container of a workload and the image it names.
pub(crate) struct Container {
    pub kind: &'static str,
    pub workload: String,
    pub container: String,
    pub image: String,
    /// `true` when a controller owns the object (its owner is listed instead).
    pub owned: bool,
    /// The tags the workload's `image.openshift.io/triggers` annotation follows.
    pub triggers: Vec<String>,
}

/// What the namespace's workloads run: every container, and the kinds that could not
/// be read (refused or not served).
#[derive(Default)]
pub(crate) struct Running {
    pub containers: Vec<Container>,
    pub unreadable: Vec<&'static str>,
}

/// Lists the namespace's workloads as the user, all kinds at once.
pub(crate) async fn pinning(console: &Console, token: &str, ns: &str) -> Running {
    let lists = futures::future::join_all(KINDS.iter().map(|(kind, api, plural, at)| {
        let path = format!("{api}/namespaces/{ns}/{plural}");
        async move {
            let listed = console.api.get::<List<Value>>(token, &path).await;
            (*kind, *at, listed)
        }
    }))
    .await;
    let mut running = Running::default();
    for (kind, at, listed) in lists {
        let list = match listed {
            Ok(l) => l,
            Err(e) => {
                // A kind the API does not serve (cluster mode) is no news; a refusal is.
                if is_refusal(&e) {
                    running.unreadable.push(kind);
                }
                continue;
            }
        };
        for obj in &list.items {
            containers_of(kind, at, obj, &mut running.containers);
        }
    }
    running
}

fn containers_of(kind: &'static str, at: &[&str], obj: &Value, out: &mut Vec<Container>) {
    let meta = &obj["metadata"];
    let workload = meta["name"].as_str().unwrap_or_default().to_owned();
    let owned = meta["ownerReferences"]
        .as_array()
        .is_some_and(|o| o.iter().any(|r| r["controller"] == Value::Bool(true)));
    let triggers: Vec<String> = meta["annotations"]["image.openshift.io/triggers"]
        .as_str()
        .and_then(|t| serde_json::from_str::<Vec<Value>>(t).ok())
        .unwrap_or_default()
        .iter()
        .filter_map(|t| t["from"]["name"].as_str().map(str::to_owned))
        .collect();
    let spec = at.iter().fold(obj, |v, k| &v[*k]);
    for field in ["initContainers", "containers"] {
        for c in spec[field].as_array().into_iter().flatten() {
            out.push(Container {
                kind,
                workload: workload.clone(),
                container: c["name"].as_str().unwrap_or_default().to_owned(),
                image: c["image"].as_str().unwrap_or_default().to_owned(),
                owned,
                triggers: triggers.clone(),
            });
        }
    }
}

/// Where a digest sits in a stream's history: the tag, its revision, and whether it
/// is the tag's current image.
#[derive(Clone)]
struct Place<'a> {
    tag: &'a str,
    revision: usize,
    current: bool,
}

/// The "who runs it" section: each workload container pinned to an image of the
/// stream, with the tag and revision of that image and whether it is still current.
pub(crate) fn render(ns: &str, name: &str, s: &ImageStream, running: &Running) -> Markup {
    let found = pinned(s, running);
    html! {
        @if found.is_empty() {
            p.muted { "No workload in " (ns) " runs an image of " (name) "." }
        } @else {
            div.table-wrap { table #runs-table {
                caption.visually-hidden { "Workloads running images of " (name) }
                thead { tr {
                    th scope="col" { "Workload" }
                    th scope="col" { "Container" }
                    th scope="col" { "Digest" }
                    th scope="col" { "Tag and revision" }
                    th scope="col" { "Follows (trigger)" }
                } }
                tbody { @for (c, digest, places) in &found {
                    @let old = !places.iter().any(|p| p.current);
                    tr data-workload=(format!("{}/{}", c.kind, c.workload)) data-old[old] {
                        th scope="row" { span.muted { (c.kind) } " " (c.workload) }
                        td { (c.container) }
                        td { a href=(image_url(ns, name, digest)) { code title=(digest) { (short_digest(digest)) } } }
                        td {
                            @for (i, p) in places.iter().enumerate() {
                                @if i > 0 { ", " }
                                (p.tag) " revision " (p.revision)
                                @if p.current { " (current)" }
                            }
                            @if old { " " strong.bad { "old digest" } }
                        }
                        td { @if c.triggers.is_empty() { span.muted { "—" } } @else { (c.triggers.join(", ")) } }
                    }
                } }
            } }
        }
        @if !running.unreadable.is_empty() {
            p.muted { "Not shown (you may not list them): " (running.unreadable.join(", ")) "." }
        }
    }
}

/// The containers running an image of `s`: those whose image is `REPO@DIGEST` with a
/// DIGEST of the stream's history and a REPO the stream serves or imported it from.
/// Containers of an object a controller owns are left out (their owner is listed).
fn pinned<'a>(
    s: &'a ImageStream,
    running: &'a Running,
) -> Vec<(&'a Container, &'a str, Vec<Place<'a>>)> {
    let mut places: HashMap<&str, Vec<Place<'a>>> = HashMap::new();
    let mut repos: Vec<&str> = Vec::new();
    if !s.status.docker_image_repository.is_empty() {
        repos.push(&s.status.docker_image_repository);
    }
    for t in &s.status.tags {
        for (i, e) in t.items.iter().enumerate() {
            places.entry(e.image.as_str()).or_default().push(Place {
                tag: &t.tag,
                revision: t.items.len() - i,
                current: i == 0,
            });
            if let Some((repo, _)) = e.docker_image_reference.split_once('@') {
                repos.push(repo);
            }
        }
    }
    running
        .containers
        .iter()
        .filter(|c| !c.owned)
        .filter_map(|c| {
            let (repo, digest) = c.image.split_once('@')?;
            if !repos.contains(&repo) {
                return None;
            }
            let (digest, p) = places.get_key_value(digest)?;
            Some((c, *digest, p.clone()))
        })
        .collect()
}
