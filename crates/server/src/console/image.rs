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
    let referrers_at = format!("/v2/{ns}/{name}/referrers/{digest}");
    let (found, s, referrers) = futures::join!(
        console.api.get::<Value>(token, &path),
        console.api.get::<ImageStream>(token, &stream_at),
        console.api.get::<Value>(token, &referrers_at),
    );
    // No registry (API only) or no referrers: nothing to show.
    let referrers: Vec<Referrer> = referrers
        .ok()
        .and_then(|index| index["manifests"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(Referrer::of)
        .collect();
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
        @if !referrers.is_empty() {
            h2 #referrers { "Referrers" }
            p.muted { "Artifacts pushed with this image as their subject: signatures, SBOMs, attestations." }
            div.table-wrap { table #referrers-table {
                thead { tr {
                    th scope="col" { "Kind" } th scope="col" { "Artifact type" }
                    th scope="col" { "Digest" } th scope="col" { "Size" } th scope="col" { "Created" }
                } }
                tbody { @for r in &referrers {
                    tr data-kind=(r.kind) {
                        th scope="row" { span class=(format!("kind kind-{}", r.kind.to_lowercase())) { (r.kind) } }
                        td { code { (r.artifact_type) } }
                        td { code title=(r.digest) { (short_digest(&r.digest)) } }
                        td { (moor_api::humanize::human_size(r.size)) }
                        td { @if r.created.is_empty() { span.muted { "—" } } @else { time datetime=(r.created) { (r.created) } } }
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

/// A manifest of the registry's referrers index of an image.
struct Referrer {
    /// `Signature`, `SBOM`, `Attestation` or `Artifact`, told from the artifact type.
    kind: &'static str,
    artifact_type: String,
    digest: String,
    size: i64,
    /// The `org.opencontainers.image.created` annotation, when set.
    created: String,
}

impl Referrer {
    fn of(d: &Value) -> Referrer {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let artifact_type = text(&d["artifactType"]);
        Referrer {
            kind: referrer_kind(&artifact_type),
            digest: text(&d["digest"]),
            size: d["size"].as_i64().unwrap_or_default(),
            created: text(&d["annotations"]["org.opencontainers.image.created"]),
            artifact_type,
        }
    }
}

/// What an artifact type says a referrer is: cosign, sigstore bundles and Notary
/// signatures are signatures; SPDX and CycloneDX documents are SBOMs; in-toto
/// statements are attestations.
fn referrer_kind(artifact_type: &str) -> &'static str {
    let t = artifact_type.to_ascii_lowercase();
    if t.contains("signature") || t.contains(".sig.") || t.contains("sigstore.bundle") {
        "Signature"
    } else if t.contains("spdx") || t.contains("cyclonedx") || t.contains("sbom") {
        "SBOM"
    } else if t.contains("in-toto") || t.contains("attestation") {
        "Attestation"
    } else {
        "Artifact"
    }
}

#[cfg(test)]
mod tests {
    use super::referrer_kind;

    #[test]
    fn referrers_are_told_by_artifact_type() {
        for (t, kind) in [
            (
                "application/vnd.dev.cosign.artifact.sig.v1+json",
                "Signature",
            ),
            ("application/vnd.dev.sigstore.bundle.v0.3+json", "Signature"),
            ("application/vnd.cncf.notary.signature", "Signature"),
            ("application/spdx+json", "SBOM"),
            ("application/vnd.cyclonedx+json", "SBOM"),
            ("application/vnd.in-toto+json", "Attestation"),
            ("application/vnd.example.thing", "Artifact"),
        ] {
            assert_eq!(referrer_kind(t), kind, "{t}");
        }
    }
}
