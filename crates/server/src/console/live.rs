//! Live updates: a server-sent event stream per stream page, fed by the API's watch of
//! that one image stream (as the user); each change sends the re-rendered tags table
//! as event `tags`, which htmx's SSE extension swaps into the page. When the watch
//! ends (a compaction's 410, a restart), the stream ends and the browser reconnects.

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::http::Method;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use moor_api::image::ImageStream;
use serde_json::Value;

use super::client::IMAGE_API;
use super::session::Current;
use super::stream::{TagsView, checks_of, tags_table};
use super::{Console, error_page, pages};

/// A watch event line longer than this ends the stream (a bound on memory).
const MAX_LINE: usize = 64 << 20;

/// The lines of a newline-delimited body.
fn lines<S>(body: S) -> impl Stream<Item = Vec<u8>>
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Unpin,
{
    futures::stream::unfold((body, Vec::new()), |(mut body, mut buf)| async move {
        loop {
            if let Some(end) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                return Some((line, (body, buf)));
            }
            match body.next().await {
                Some(Ok(chunk)) if buf.len() + chunk.len() <= MAX_LINE => {
                    buf.extend_from_slice(&chunk)
                }
                _ => return None,
            }
        }
    })
}

/// `GET .../events`: the tags table of the stream each time it changes.
pub(crate) async fn events(
    State(console): State<Console>,
    current: Current,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    if let Err(e) = pages::check_names(&ns, &name) {
        return error_page(Some(&current), &e);
    }
    let can_update = console
        .api
        .can(&current.token, "update", "imagestreams", &ns)
        .await;
    let path = format!(
        "{IMAGE_API}/namespaces/{ns}/imagestreams?watch=true&fieldSelector=metadata.name%3D{name}"
    );
    let body = match console
        .api
        .send(&current.token, Method::GET, &path, None)
        .await
    {
        Ok(b) => b,
        Err(e) => return error_page(Some(&current), &e),
    };
    let csrf = can_update.then(|| current.csrf.clone());
    let updates = lines(body.into_data_stream()).filter_map(move |line| {
        let (ns, name, csrf) = (ns.clone(), name.clone(), csrf.clone());
        let (console, token) = (console.clone(), current.token.clone());
        async move {
            let event: Value = serde_json::from_slice(&line).ok()?;
            let kind = event["type"].as_str()?;
            if kind != "ADDED" && kind != "MODIFIED" {
                return None;
            }
            let stream: ImageStream = serde_json::from_value(event["object"].clone()).ok()?;
            // SSE data cannot carry a carriage return.
            // The scheduler's records move with the stream: read them again.
            let checks = checks_of(&console, &token, &ns, &name).await;
            let view = TagsView {
                csrf: csrf.as_deref(),
                checks: &checks,
            };
            let html = tags_table(&ns, &stream, &view)
                .into_string()
                .replace('\r', " ");
            Some(Ok::<_, Infallible>(
                Event::default().event("tags").data(html),
            ))
        }
    });
    Sse::new(updates)
        .keep_alive(KeepAlive::default())
        .into_response()
}
