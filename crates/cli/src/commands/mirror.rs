//! `moor import-image ... --mirror`: after the import, pulls every manifest and blob of
//! the tag's image through moor's registry, so that moor caches them (pull-through)
//! and the image keeps pulling once the source is out of reach. Shows a progress bar
//! of the bytes. Talks to the server only (the API for the image, `/v2/` for content).

use http_body_util::BodyExt;
use indicatif::{ProgressBar, ProgressStyle};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use moor_api::image::{Image, ImageStreamTag};

use crate::client::Session;
use crate::error::CliError;

/// What `--mirror` fetched.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Mirrored {
    pub manifests: usize,
    pub blobs: usize,
    pub bytes: u64,
}

/// Errors of mirroring.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("{0} has no image to mirror")]
    NoImage(String),
    #[error("mirroring {what}: the registry answered {status}: {body}")]
    Registry {
        what: String,
        status: u16,
        body: String,
    },
    #[error("mirroring {what}: {message}")]
    Transfer { what: String, message: String },
}

/// The blobs and manifests an image needs, children of a list included.
async fn contents(
    session: &Session,
    image: &Image,
) -> Result<(Vec<String>, Vec<(String, i64)>), CliError> {
    let images: Api<Image> = Api::all(session.client.clone());
    let mut manifests = vec![image.metadata.name.clone().unwrap_or_default()];
    let mut blobs = Vec::new();
    let add = |i: &Image, blobs: &mut Vec<(String, i64)>| {
        if let Some(m) = &i.docker_image_metadata
            && !m.id.is_empty()
        {
            blobs.push((m.id.clone(), 0));
        }
        for l in &i.docker_image_layers {
            blobs.push((l.name.clone(), l.size));
        }
    };
    add(image, &mut blobs);
    for child in &image.docker_image_manifests {
        manifests.push(child.digest.clone());
        let c = images
            .get(&child.digest)
            .await
            .map_err(|e| session.error(e))?;
        add(&c, &mut blobs);
    }
    blobs.sort();
    blobs.dedup_by(|a, b| a.0 == b.0);
    Ok((manifests, blobs))
}

/// GETs `path` through the server, counting (and dropping) the body's bytes.
async fn fetch(session: &Session, path: &str, bar: &ProgressBar) -> Result<u64, CliError> {
    let req = http::Request::get(path)
        .header("accept", moor_api::media_types::accept_header())
        .body(kube::client::Body::empty())
        .map_err(|e| MirrorError::Transfer {
            what: path.to_string(),
            message: e.to_string(),
        })?;
    let resp = session
        .client
        .send(req)
        .await
        .map_err(|e| session.error(e))?;
    let status = resp.status();
    let mut body = resp.into_body();
    if !status.is_success() {
        let bytes = body.collect_bytes().await.unwrap_or_default();
        return Err(MirrorError::Registry {
            what: path.to_string(),
            status: status.as_u16(),
            body: String::from_utf8_lossy(&bytes).trim().to_string(),
        }
        .into());
    }
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| MirrorError::Transfer {
            what: path.to_string(),
            message: e.to_string(),
        })?;
        if let Some(data) = frame.data_ref() {
            total += data.len() as u64;
            bar.inc(data.len() as u64);
        }
    }
    Ok(total)
}

/// Pulls every manifest and blob of `stream:tag` through the registry.
pub async fn mirror_tag(session: &Session, stream: &str, tag: &str) -> Result<Mirrored, CliError> {
    let istags: Api<ImageStreamTag> = Api::namespaced(session.client.clone(), &session.namespace);
    let istag = istags
        .get(&format!("{stream}:{tag}"))
        .await
        .map_err(|e| session.error(e))?;
    if istag
        .image
        .metadata
        .name
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        return Err(MirrorError::NoImage(format!("{stream}:{tag}")).into());
    }
    let images: Api<Image> = Api::all(session.client.clone());
    let image = images
        .get(istag.image.metadata.name.as_deref().unwrap_or_default())
        .await
        .map_err(|e| session.error(e))?;
    let (manifests, blobs) = contents(session, &image).await?;
    // Make sure the namespace is readable (a clearer error than a registry 404).
    let _ = Api::<Namespace>::all(session.client.clone())
        .get(&session.namespace)
        .await
        .map_err(|e| session.error(e))?;
    let known: u64 = blobs.iter().map(|(_, s)| (*s).max(0) as u64).sum();
    let bar = ProgressBar::new(known);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(format!("Mirroring {stream}:{tag}"));
    let repo = format!("/v2/{}/{stream}", session.namespace);
    let mut out = Mirrored::default();
    for m in &manifests {
        fetch(
            session,
            &format!("{repo}/manifests/{m}"),
            &ProgressBar::hidden(),
        )
        .await?;
        out.manifests += 1;
    }
    for (digest, size) in &blobs {
        let n = fetch(session, &format!("{repo}/blobs/{digest}"), &bar).await?;
        if *size <= 0 {
            // Configs have no size in the Image: counted as they come.
            bar.inc_length(n);
        }
        out.blobs += 1;
        out.bytes += n;
    }
    bar.finish_and_clear();
    Ok(out)
}
