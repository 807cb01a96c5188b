//! Writing a response: objects, lists written from stored bytes, Tables, watch
//! streams, and `Warning` headers.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};

use super::partial::PartialMetadata;
use crate::error::ApiError;
use crate::resource::*;
use crate::table::{self, IncludeObject, TableDef};

pub(super) fn json_response(
    status: StatusCode,
    body: &Value,
    ctx: Option<&RequestContext>,
) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    if let Some(ctx) = ctx {
        for w in ctx.take_warnings() {
            if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{}\"", w.replace('"', "\\\""))) {
                resp.headers_mut().append("Warning", v);
            }
        }
    }
    resp
}

/// The form of an object response (see [`super::Call`]'s negotiation).
pub(super) enum Output<'a> {
    /// The object as stored.
    Object,
    /// A Table with this definition and `includeObject`.
    Table(&'a TableDef, IncludeObject),
    /// Metadata only (`PartialObjectMetadata`).
    Partial(PartialMetadata),
}

pub(super) fn object_response(
    status: StatusCode,
    obj: Value,
    output: Output<'_>,
    ctx: &RequestContext,
) -> Response {
    let body = match output {
        Output::Table(def, include) => {
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
            table::render(def, &[obj], include, rv.as_deref(), None)
        }
        Output::Partial(partial) => match partial.object(&obj) {
            Ok(body) => body,
            Err(e) => return e.into_response(),
        },
        Output::Object => obj,
    };
    json_response(status, &body, Some(ctx))
}

/// A `<Kind>List` written from already serialized items, without building a tree,
/// as they arrive: the head, the items page by page, then the tail. An error after
/// the head ends the body early (the status is sent already), as kube-apiserver's
/// streamed lists do.
pub(super) fn streamed_list_response(
    def: &ResourceDef,
    list: StreamedList,
    ctx: &RequestContext,
) -> Response {
    let mut meta = json!({"resourceVersion": list.resource_version});
    if let Some(c) = &list.continue_token {
        meta["continue"] = json!(c);
    }
    let head = json!({"kind": def.list_kind, "apiVersion": def.api_version(), "metadata": meta})
        .to_string();
    // `{"kind":..,"metadata":{..}` then `,"items":[...]}`.
    let mut open = head.into_bytes();
    open.pop();
    open.extend_from_slice(b",\"items\":[");
    let body = futures::stream::once(async move { Ok(Bytes::from(open)) })
        .chain(list.items.map(|chunk| {
            chunk.inspect_err(|e| tracing::warn!(error = %e, "list: the body ends early"))
        }))
        .chain(futures::stream::once(async {
            Ok(Bytes::from_static(b"]}"))
        }));
    let mut resp = Response::new(Body::from_stream(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for w in ctx.take_warnings() {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{}\"", w.replace('"', "\\\""))) {
            resp.headers_mut().append("Warning", v);
        }
    }
    resp
}

/// Streams watch events (as Tables, or metadata only, when asked for) as JSON lines.
pub(super) async fn watch(
    storage: Arc<dyn RestStorage>,
    ctx: &RequestContext,
    ns: Option<&str>,
    opts: &ListOptions,
    table: Option<(TableDef, IncludeObject)>,
    partial: Option<PartialMetadata>,
) -> Result<Response, ApiError> {
    let events = storage.watch(ctx, ns, opts).await?;
    let lines = events.map(move |ev| {
        let type_name = ev.type_name();
        let object = match (ev, partial) {
            (ev, Some(partial)) => partial_event(ev, partial),
            (ev, None) => match ev {
                WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
                    match &table {
                        Some((td, include)) => {
                            let rv = o
                                .pointer("/metadata/resourceVersion")
                                .and_then(Value::as_str)
                                .map(str::to_string);
                            table::render(td, &[o], *include, rv.as_deref(), None)
                        }
                        None => o,
                    }
                }
                WatchEvent::Bookmark(o) | WatchEvent::Error(o) => o,
            },
        };
        // Encoding a large object is taken off the async workers, as its decode was.
        let encode = || {
            let mut line = serde_json::to_vec(&json!({"type": type_name, "object": object}))
                .unwrap_or_default();
            line.push(b'\n');
            line
        };
        let line = crate::stored::cpu_bound_if(crate::stored::is_large(&object), encode);
        Ok::<_, std::convert::Infallible>(Bytes::from(line))
    });
    let mut resp = Response::new(Body::from_stream(lines));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}

/// A watch event's object as `PartialObjectMetadata`: every event but ERROR (a
/// `Status`), bookmarks included, as kube-apiserver's watch encoder transforms them,
/// so a metadata informer decodes each one. `as=PartialObjectMetadataList` watches
/// get the same (kube cannot convert an event to a list, and sends it unconverted).
fn partial_event(ev: WatchEvent, partial: PartialMetadata) -> Value {
    match ev {
        WatchEvent::Added(o)
        | WatchEvent::Modified(o)
        | WatchEvent::Deleted(o)
        | WatchEvent::Bookmark(o) => partial.item(&o),
        WatchEvent::Error(o) => o,
    }
}
