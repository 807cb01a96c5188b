//! An image's page: digest, size, created, platform and the platforms of an index,
//! layers, labels, referrers (signatures, SBOMs) when the registry has them, and the
//! pull command, read through the API as the signed-in user.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use moor_api::image::ImageStream;
use serde_json::Value;

use super::client::IMAGE_API;
use super::pages::{check_names, short_digest, stream_path, stream_url, when};
use super::session::Current;
use super::{Console, ConsoleError, Crumb, error_page, layout};

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
