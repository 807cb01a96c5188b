//! The console's actions, each through the API as the signed-in user and each asked
//! for before it changes anything: roll a tag back, move it to another source or
//! digest, import it now, turn its scheduled import or the stream's lookup on or off,
//! create a stream.
//!
//! Without JavaScript an action is a link to a confirmation page (which says what will
//! happen) whose form posts it; with htmx the same link posts at once after a confirm
//! dialog, and the answer sends the browser on (`HX-Redirect`) or swaps in the
//! API's refusal. Every POST carries the session's CSRF token.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use k8s_openapi::api::core::v1::ObjectReference;
use maud::{Markup, html};
use moor_api::DockerImageReference;
use moor_api::image::{
    ImageStream, KIND_DOCKER_IMAGE, KIND_IMAGE_STREAM_IMAGE, KIND_IMAGE_STREAM_TAG,
    TagImportPolicy, TagReference,
};
use serde::Deserialize;
use serde_json::json;

use super::pages::{check_names, stream_path, stream_url, streams_path};
use super::session::{Current, csrf_refused};
use super::{Console, ConsoleError, Crumb, error_page, layout};

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

/// The confirmation page's URL of an action.
fn confirm_url(ns: &str, name: &str, action: &str, tag: &str, value: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("action", action)
        .append_pair("tag", tag)
        .append_pair("value", value)
        .finish();
    format!("{}/confirm?{query}", stream_url(ns, name))
}

/// The htmx attributes that post a form or link into `#main` (the answer's `main`
/// replaces it, so a refusal shows in the page).
const HX_TARGET: &str = "#main";

/// An action button for an editor: a link to the confirmation page, which htmx turns
/// into a POST after a confirm dialog saying the same.
pub(crate) fn button(
    ns: &str,
    name: &str,
    csrf: &str,
    action: &str,
    tag: &str,
    value: &str,
    text: Markup,
) -> Markup {
    let form = ActionForm {
        action: action.into(),
        tag: tag.into(),
        value: value.into(),
        csrf: String::new(),
    };
    let what = describe(ns, name, &form).unwrap_or_default();
    let vals = json!({"action": action, "tag": tag, "value": value, "csrf": csrf}).to_string();
    html! {
        a.button href=(confirm_url(ns, name, action, tag, value))
            hx-post=(format!("{}/actions", stream_url(ns, name))) hx-vals=(vals)
            hx-confirm=(what) hx-target=(HX_TARGET) hx-select=(HX_TARGET) hx-swap="outerHTML" { (text) }
    }
}

/// A link to the form that moves `tag` to another source.
pub(crate) fn move_link(ns: &str, name: &str, tag: &str) -> Markup {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("tag", tag)
        .finish();
    html! { a.button href=(format!("{}/move?{query}", stream_url(ns, name))) { "Move…" } }
}

/// A new source for a tag, as a user types it: a registry pull spec (it has a `/`:
/// `quay.io/org/app:1.0`, `docker.io/library/nginx@sha256:...`), a tag of a stream in
/// the namespace (`app:1.0`), an image of a stream (`app@sha256:...`), or an image of
/// this stream (`sha256:...`), as `moor tag` reads its source.
fn parse_source(stream: &str, value: &str) -> Result<ObjectReference, ConsoleError> {
    let v = value.trim();
    let bad = |why: &str| {
        ConsoleError::BadRequest(format!(
            "{v:?} is not a source: {why}; name a registry image (quay.io/org/app:1.0), a tag of a stream here (app:1.0), or an image of this stream (sha256:...)"
        ))
    };
    let reference = |kind: &str, name: String| ObjectReference {
        kind: Some(kind.into()),
        name: Some(name),
        ..Default::default()
    };
    if v.is_empty() {
        return Err(bad("it is empty"));
    }
    if v.contains('/') {
        DockerImageReference::parse(v).map_err(|e| bad(&e.to_string()))?;
        return Ok(reference(KIND_DOCKER_IMAGE, v.to_owned()));
    }
    let digest_ok = |d: &str| moor_api::Digest::parse(d).is_ok();
    let name_ok = |n: &str| check_names(n, "-").is_ok();
    if v.starts_with("sha256:") {
        return if digest_ok(v) {
            Ok(reference(KIND_IMAGE_STREAM_IMAGE, format!("{stream}@{v}")))
        } else {
            Err(bad("not a digest"))
        };
    }
    if let Some((s, d)) = v.split_once('@') {
        return if name_ok(s) && digest_ok(d) {
            Ok(reference(KIND_IMAGE_STREAM_IMAGE, v.to_owned()))
        } else {
            Err(bad("not STREAM@DIGEST"))
        };
    }
    match v.split_once(':') {
        Some((s, t)) if name_ok(s) && name_ok(t) => {
            Ok(reference(KIND_IMAGE_STREAM_TAG, v.to_owned()))
        }
        _ => Err(bad("not STREAM:TAG")),
    }
}

/// A source's kind and name in words.
fn source_words(from: &ObjectReference) -> String {
    let name = from.name.as_deref().unwrap_or_default();
    match from.kind.as_deref().unwrap_or_default() {
        KIND_DOCKER_IMAGE => format!("the registry image {name}"),
        KIND_IMAGE_STREAM_TAG => format!("the stream tag {name} (its image now)"),
        _ => format!("the image {name}"),
    }
}

/// What `action` will do, in words.
fn describe(ns: &str, name: &str, a: &ActionForm) -> Result<String, ConsoleError> {
    let tag = &a.tag;
    let on_off = || match a.value.as_str() {
        "on" | "off" => Ok(a.value.as_str()),
        v => Err(ConsoleError::BadRequest(format!(
            "the value must be on or off, not {v:?}"
        ))),
    };
    Ok(match a.action.as_str() {
        "rollback" => format!(
            "Roll tag {name}:{tag} in {ns} back to image {}. The tag is then pinned to that image, and a scheduled import of the tag stops until it is tagged from a registry again.",
            a.value
        ),
        "import" => format!("Import tag {name}:{tag} in {ns} from its source now."),
        "lookup" => {
            let v = on_off()?;
            format!(
                "Turn lookup {v} for image stream {name} in {ns}: workloads in {ns} naming {name}:TAG {} resolved to the tag's image.",
                if v == "on" { "get" } else { "are no longer" }
            )
        }
        "schedule" => {
            let v = on_off()?;
            if v == "on" {
                format!(
                    "Turn scheduled import on for tag {name}:{tag} in {ns}: its registry source is checked periodically and a new image there becomes a new history entry."
                )
            } else {
                format!(
                    "Turn scheduled import off for tag {name}:{tag} in {ns}: the tag keeps its image until it is imported or moved."
                )
            }
        }
        "move" => {
            let from = parse_source(name, &a.value)?;
            let scheduled = if from.kind.as_deref() == Some(KIND_DOCKER_IMAGE) {
                ""
            } else {
                " Its scheduled import stops: only a registry source is checked."
            };
            format!(
                "Move tag {name}:{tag} in {ns} to {}. The tag is imported from there and the image becomes a new history entry.{scheduled}",
                source_words(&from)
            )
        }
        other => {
            return Err(ConsoleError::BadRequest(format!(
                "unknown action {other:?}"
            )));
        }
    })
}

fn crumbs(ns: &str, name: &str, here: &str) -> Vec<Crumb> {
    vec![
        Crumb::link("Namespaces", "/console/"),
        Crumb::link(ns, format!("/console/ns/{ns}/")),
        Crumb::link(name, stream_url(ns, name)),
        Crumb::here(here),
    ]
}

/// `GET .../confirm`: asks before an action; the form posts it.
pub(crate) async fn confirm(
    current: Current,
    Path((ns, name)): Path<(String, String)>,
    Query(action): Query<ActionForm>,
) -> Response {
    let what = match check_names(&ns, &name).and_then(|()| describe(&ns, &name, &action)) {
        Ok(w) => w,
        Err(e) => return error_page(Some(&current), &e),
    };
    let back = stream_url(&ns, &name);
    let body = html! {
        h1 { "Confirm" }
        p #what { (what) }
        form method="post" action=(format!("{back}/actions")) {
            input type="hidden" name="csrf" value=(current.csrf);
            input type="hidden" name="action" value=(action.action);
            input type="hidden" name="tag" value=(action.tag);
            input type="hidden" name="value" value=(action.value);
            button.danger #confirm type="submit" aria-describedby="what" { "Confirm" }
            " "
            a href=(back) { "Cancel" }
        }
    };
    layout(
        "Confirm",
        Some(&current),
        &crumbs(&ns, &name, "Confirm"),
        body,
    )
    .into_response()
}

#[derive(Deserialize, Default)]
pub(crate) struct MoveQuery {
    #[serde(default)]
    tag: String,
}

/// `GET .../move?tag=T`: the form that asks for a tag's new source; it leads to the
/// confirmation page (with htmx, it posts after a confirm dialog).
pub(crate) async fn move_form(
    current: Current,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<MoveQuery>,
) -> Response {
    if let Err(e) = check_names(&ns, &name).and_then(|()| check_names(&q.tag, "-")) {
        return error_page(Some(&current), &e);
    }
    let back = stream_url(&ns, &name);
    let tag = &q.tag;
    let body = html! {
        h1 { "Move " (name) ":" (tag) }
        form.stacked method="get" action=(format!("{back}/confirm"))
            hx-post=(format!("{back}/actions")) hx-confirm=(format!("Move tag {name}:{tag} to the source entered?"))
            hx-target=(HX_TARGET) hx-select=(HX_TARGET) hx-swap="outerHTML" {
            input type="hidden" name="csrf" value=(current.csrf);
            input type="hidden" name="action" value="move";
            input type="hidden" name="tag" value=(tag);
            label for="value" { "New source" }
            input #value type="text" name="value" required autocomplete="off" spellcheck="false"
                aria-describedby="value-help" placeholder="quay.io/org/app:1.0";
            p #value-help.muted {
                "A registry image (" code { "quay.io/org/app:1.0" } "), a tag of a stream in "
                (ns) " (" code { "app:1.0" } "), or an image of this stream ("
                code { "sha256:…" } ")."
            }
            button type="submit" { "Continue" }
            " "
            a href=(back) { "Cancel" }
        }
    };
    layout(
        "Move a tag",
        Some(&current),
        &crumbs(&ns, &name, "Move"),
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

/// Points `tag` at `from`: a new import follows (a re-import when it already pointed
/// there); only a registry source keeps its scheduled import.
fn point_at(s: &mut ImageStream, tag: &str, from: ObjectReference) {
    let unchanged = s
        .spec_tag(tag)
        .is_some_and(|t| t.from.as_ref() == Some(&from));
    let mut spec = s.spec_tag(tag).cloned().unwrap_or_else(|| TagReference {
        name: tag.into(),
        ..Default::default()
    });
    if from.kind.as_deref() != Some(KIND_DOCKER_IMAGE) {
        spec.import_policy = TagImportPolicy::default();
    }
    spec.reference = false;
    spec.from = Some(from);
    spec.generation = unchanged.then_some(0);
    match s.spec_tag_mut(tag) {
        Some(t) => *t = spec,
        None => s.spec.tags.push(spec),
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
    point_at(s, tag, from);
    Ok(())
}

/// The spec tag `tag` if its source is a registry (what import and scheduling need).
fn registry_tag<'a>(
    s: &'a mut ImageStream,
    tag: &str,
) -> Result<&'a mut TagReference, ConsoleError> {
    match s.spec_tag_mut(tag) {
        Some(t) if t.from_kind() == KIND_DOCKER_IMAGE => Ok(t),
        _ => Err(ConsoleError::BadRequest(format!(
            "tag {tag:?} has no registry source"
        ))),
    }
}

/// Where a done action sends the browser: a redirect, or for htmx an `HX-Redirect`.
fn go_to(headers: &HeaderMap, to: &str) -> Response {
    if headers.contains_key("hx-request") {
        match HeaderValue::from_str(to) {
            Ok(v) => (
                StatusCode::OK,
                [(HeaderName::from_static("hx-redirect"), v)],
            )
                .into_response(),
            Err(_) => Redirect::to(to).into_response(),
        }
    } else {
        Redirect::to(to).into_response()
    }
}

/// `POST .../actions`: does a confirmed action as the user, then back to the stream.
pub(crate) async fn act(
    State(console): State<Console>,
    current: Current,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    if !current.csrf_ok(&form.csrf) {
        return csrf_refused();
    }
    // Checks the names and the form (an unknown action, a bad source) before any
    // request.
    if let Err(e) = check_names(&ns, &name).and_then(|()| describe(&ns, &name, &form)) {
        return error_page(Some(&current), &e);
    }
    let token = &current.token;
    let on = form.value == "on";
    let result = match form.action.as_str() {
        "rollback" => {
            update_stream(&console, token, &ns, &name, |s| {
                roll_back(s, &form.tag, &form.value)
            })
            .await
        }
        "move" => {
            update_stream(&console, token, &ns, &name, |s| {
                let from = parse_source(&name, &form.value)?;
                point_at(s, &form.tag, from);
                Ok(())
            })
            .await
        }
        "import" => {
            update_stream(&console, token, &ns, &name, |s| {
                // Generation 0 asks for a re-import.
                registry_tag(s, &form.tag)?.generation = Some(0);
                Ok(())
            })
            .await
        }
        "schedule" => {
            update_stream(&console, token, &ns, &name, |s| {
                registry_tag(s, &form.tag)?.import_policy.scheduled = on;
                Ok(())
            })
            .await
        }
        // `describe` let only these through.
        _ => {
            update_stream(&console, token, &ns, &name, |s| {
                s.spec.lookup_policy.local = on;
                Ok(())
            })
            .await
        }
    };
    match result {
        Ok(()) => go_to(
            &headers,
            &format!("{}?done={}", stream_url(&ns, &name), form.action),
        ),
        Err(e) => error_page(Some(&current), &e),
    }
}

/// The create-a-stream form and its confirmation.
#[derive(Deserialize, Default)]
pub(crate) struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    lookup: String,
    #[serde(default)]
    csrf: String,
}

/// `GET /console/ns/{ns}/new`: the form for a new stream; with `?name=` filled in,
/// the confirmation page that posts it.
pub(crate) async fn create_form(
    current: Current,
    Path(ns): Path<String>,
    Query(q): Query<CreateForm>,
) -> Response {
    if let Err(e) = check_names(&ns, "-") {
        return error_page(Some(&current), &e);
    }
    let url = format!("/console/ns/{ns}/new");
    let lookup = q.lookup == "on";
    let crumbs = [
        Crumb::link("Namespaces", "/console/"),
        Crumb::link(ns.clone(), format!("/console/ns/{ns}/")),
        Crumb::here("New image stream"),
    ];
    let body = if q.name.is_empty() {
        html! {
            h1 { "New image stream in " (ns) }
            form.stacked method="get" action=(url)
                hx-post=(url) hx-confirm=(format!("Create this image stream in {ns}?"))
                hx-target=(HX_TARGET) hx-select=(HX_TARGET) hx-swap="outerHTML" {
                input type="hidden" name="csrf" value=(current.csrf);
                label for="name" { "Name" }
                input #name type="text" name="name" required autocomplete="off" spellcheck="false"
                    pattern="[a-z0-9]([-a-z0-9._]*[a-z0-9])?" aria-describedby="name-help";
                p #name-help.muted { "Lower-case letters, digits, '-', '.' and '_'." }
                div {
                    input #lookup type="checkbox" name="lookup" value="on";
                    " "
                    label for="lookup" { "Lookup on: workloads in " (ns) " may name its tags by short name" }
                }
                button type="submit" { "Continue" }
                " "
                a href=(format!("/console/ns/{ns}/")) { "Cancel" }
            }
        }
    } else {
        if let Err(e) = check_names(&q.name, "-") {
            return error_page(Some(&current), &e);
        }
        html! {
            h1 { "Confirm" }
            p #what {
                "Create image stream " (q.name) " in " (ns) ", lookup "
                @if lookup { "on" } @else { "off" } "."
            }
            form method="post" action=(url) {
                input type="hidden" name="csrf" value=(current.csrf);
                input type="hidden" name="name" value=(q.name);
                @if lookup { input type="hidden" name="lookup" value="on"; }
                button.danger #confirm type="submit" aria-describedby="what" { "Confirm" }
                " "
                a href=(format!("/console/ns/{ns}/")) { "Cancel" }
            }
        }
    };
    layout("New image stream", Some(&current), &crumbs, body).into_response()
}

/// `POST /console/ns/{ns}/new`: creates the stream as the user, then shows it.
pub(crate) async fn create(
    State(console): State<Console>,
    current: Current,
    headers: HeaderMap,
    Path(ns): Path<String>,
    Form(form): Form<CreateForm>,
) -> Response {
    if !current.csrf_ok(&form.csrf) {
        return csrf_refused();
    }
    if let Err(e) = check_names(&ns, &form.name) {
        return error_page(Some(&current), &e);
    }
    let body = json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": form.name},
        "spec": {"lookupPolicy": {"local": form.lookup == "on"}},
    });
    match console
        .api
        .send(
            &current.token,
            Method::POST,
            &streams_path(&ns),
            Some(&body),
        )
        .await
    {
        Ok(_) => go_to(
            &headers,
            &format!("{}?done=create", stream_url(&ns, &form.name)),
        ),
        Err(e) => error_page(Some(&current), &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_read_as_moor_tag_reads_them() {
        let kind = |v: &str| {
            parse_source("app", v).map(|r| (r.kind.unwrap_or_default(), r.name.unwrap_or_default()))
        };
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            kind("quay.io/org/app:1.0").ok(),
            Some((KIND_DOCKER_IMAGE.into(), "quay.io/org/app:1.0".into()))
        );
        assert_eq!(
            kind(&d).ok(),
            Some((KIND_IMAGE_STREAM_IMAGE.into(), format!("app@{d}")))
        );
        assert_eq!(
            kind(&format!("other@{d}")).ok(),
            Some((KIND_IMAGE_STREAM_IMAGE.into(), format!("other@{d}")))
        );
        assert_eq!(
            kind("other:2").ok(),
            Some((KIND_IMAGE_STREAM_TAG.into(), "other:2".into()))
        );
        for bad in ["", "plain", "sha256:zz", "a/b:c:d:e", "x@y", "../x:y"] {
            assert!(kind(bad).is_err(), "{bad:?}");
        }
    }
}
