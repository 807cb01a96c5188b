//! Signatures mirrored at import into a repository whose tag's reference policy is
//! `Local` ([`crate::signatures::mirror`]), and how the registry finds them.
//!
//! A mirrored signature manifest is kept as a push by digest keeps a manifest: its
//! blobs stored (digest-checked) and linked into the repository, the manifest stored
//! and linked, its Image created; then a referrer record of the image it signs makes
//! it visible. The record of a cosign `.sig` manifest (which has no `subject`)
//! carries [`SIG_TAG_FIELD`], its tag: the referrers API leaves such records out, and
//! a GET of `sha256-<hex>.sig` finds the manifest there. Neither kind becomes a tag of
//! the stream. Being referrers of the image, they live as long as it does (prune
//! keeps the referrers of the images it keeps).

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use moor_api::image::Image;
use moor_api::{Digest, media_types};
use serde_json::{Value, json};

use super::Registry;
use super::error::RegistryError;
use super::storage::LinkKind;
use crate::importer::ImportError;
use crate::importer::image::{self as images, Parsed};
use crate::signatures::Attached;
use crate::signatures::mirror::{MirrorStore, Mirrored};

/// The field of a referrer record that names the cosign tag of a mirrored `.sig`
/// manifest (moor's own: referrers API answers never carry it).
pub(super) const SIG_TAG_FIELD: &str = "moor.io/signatureTag";

/// The registry as the importer's [`MirrorStore`] (weakly: the registry holds the
/// importer, as its catalog).
pub struct RegistryMirror(Weak<Registry>);

impl RegistryMirror {
    /// Mirrors into `registry`.
    pub fn new(registry: &Arc<Registry>) -> Self {
        RegistryMirror(Arc::downgrade(registry))
    }
}

#[async_trait]
impl MirrorStore for RegistryMirror {
    async fn mirror(
        &self,
        namespace: &str,
        stream: &str,
        signatures: &[Mirrored],
    ) -> Result<(), ImportError> {
        let internal = |e: RegistryError| ImportError::internal("mirroring signatures", e);
        let reg = self
            .0
            .upgrade()
            .ok_or_else(|| internal(RegistryError::internal("the registry is stopping")))?;
        // From the first blob to the record, a prune waits (as for a push).
        let _gc = reg.gc.read().await;
        for s in signatures {
            mirror_one(&reg, namespace, stream, s)
                .await
                .map_err(internal)?;
        }
        Ok(())
    }
}

/// Stores one signature manifest and what it names, then its referrer record.
async fn mirror_one(
    reg: &Registry,
    ns: &str,
    stream: &str,
    s: &Mirrored,
) -> Result<(), RegistryError> {
    for (digest, bytes) in &s.blobs {
        reg.content_put(digest, bytes.clone()).await?;
        reg.links.link(ns, stream, LinkKind::Layer, digest).await?;
    }
    let m = &s.manifest;
    reg.content_put(&m.digest, m.bytes.clone()).await?;
    reg.links
        .link(ns, stream, LinkKind::Manifest, &m.digest)
        .await?;
    let image = signature_image(s).map_err(|e| RegistryError::internal(e.message()))?;
    reg.repos
        .catalog()
        .store_images(std::slice::from_ref(&image))
        .await
        .map_err(RegistryError::internal)?;
    let media_type = images::effective_media_type(m);
    let mut descriptor = super::manifests::referrer_descriptor(&m.bytes, &media_type, &m.digest);
    let replaced = match &s.attached {
        Attached::Tag(tag) => {
            descriptor[SIG_TAG_FIELD] = json!(tag);
            records(reg, ns, stream, &s.subject)
                .await?
                .into_iter()
                .filter(|d| d[SIG_TAG_FIELD] == tag.as_str())
                .filter_map(|d| digest_of(&d))
                .filter(|d| *d != m.digest)
                .collect()
        }
        Attached::Referrer => vec![],
    };
    reg.links
        .add_referrer(
            ns,
            stream,
            &s.subject,
            &m.digest,
            descriptor.to_string().as_bytes(),
        )
        .await?;
    // The tag names the newest mirror only (an older one goes with the next prune).
    for old in replaced {
        reg.links.remove_referrer(ns, stream, &old).await?;
    }
    Ok(())
}

/// The Image of a mirrored signature manifest, as a push by digest makes it.
fn signature_image(s: &Mirrored) -> Result<Image, ImportError> {
    match images::parse(&s.manifest)? {
        Parsed::Image(m) => {
            let config = images::config_digest(&m)?;
            let config_bytes = s.blobs.iter().find(|(d, _)| *d == config);
            if media_types::is_config(m.config().media_type().as_ref())
                && let Some((_, bytes)) = config_bytes
                && let Ok(image) =
                    images::image_from_manifest(&s.repository, &s.manifest, &m, bytes)
            {
                return Ok(image);
            }
            Ok(images::image_from_artifact(&s.repository, &s.manifest, &m))
        }
        Parsed::List(_) => Err(ImportError::invalid("a signature manifest is an index")),
    }
}

/// The referrer records (descriptors) of `subject` in `ns/stream`.
async fn records(
    reg: &Registry,
    ns: &str,
    stream: &str,
    subject: &Digest,
) -> Result<Vec<Value>, RegistryError> {
    Ok(reg
        .links
        .referrers(ns, stream, subject)
        .await?
        .into_iter()
        .filter_map(|d| serde_json::from_slice(&d).ok())
        .collect())
}

fn digest_of(descriptor: &Value) -> Option<Digest> {
    Digest::parse(descriptor["digest"].as_str()?).ok()
}

/// The descriptors the referrers API lists for `subject` in `ns/stream` (records of
/// mirrored `.sig` manifests left out), with `artifact_type` only when given.
pub(crate) async fn referrers(
    reg: &Registry,
    ns: &str,
    stream: &str,
    subject: &Digest,
    artifact_type: Option<&str>,
) -> Result<Vec<Value>, RegistryError> {
    let mut out = records(reg, ns, stream, subject).await?;
    out.retain(|d| {
        d.get(SIG_TAG_FIELD).is_none()
            && artifact_type.is_none_or(|t| d["artifactType"].as_str() == Some(t))
    });
    Ok(out)
}

/// The mirrored signature manifest `tag` names in `ns/stream`, when `tag` is a cosign
/// signature tag (`sha256-<hex>.sig`) that a mirror recorded.
pub(crate) async fn tagged(
    reg: &Registry,
    ns: &str,
    stream: &str,
    tag: &str,
) -> Result<Option<Digest>, RegistryError> {
    let Some((algorithm, hex)) = tag.strip_suffix(".sig").and_then(|t| t.split_once('-')) else {
        return Ok(None);
    };
    let Ok(subject) = Digest::parse(&format!("{algorithm}:{hex}")) else {
        return Ok(None);
    };
    Ok(records(reg, ns, stream, &subject)
        .await?
        .into_iter()
        .filter(|d| d[SIG_TAG_FIELD] == tag)
        .find_map(|d| digest_of(&d)))
}
