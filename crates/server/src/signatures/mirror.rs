//! Mirroring verified signatures into moor's registry, for tags whose reference
//! policy is `Local`: nodes pulling `<registry-hostname>/<ns>/<stream>@<digest>`
//! then find the signatures next to the image, as cosign and containers/image look
//! for them (the `sha256-<hex>.sig` tag, the referrers API), without the upstream.
//!
//! Only manifests holding at least one signature that verified at this import are
//! mirrored, byte for byte as the upstream served them, with every blob they name
//! (the payloads read to verify them, the config and any other layer read here).
//! The importer calls [`mirror`] before the tag event is written; the registry
//! implements [`MirrorStore`], storing each blob digest-checked before the records
//! that make the signature visible.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use moor_api::{Digest, DockerImageReference};
use serde_json::Value;

use super::{Attached, VerifiedManifest};
use crate::importer::{FetchedManifest, ImportError, PullOptions, Source};

/// One signature manifest to mirror, with every blob it names.
#[derive(Clone, Debug)]
pub struct Mirrored {
    /// How it is attached to the image.
    pub attached: Attached,
    /// The image it signs.
    pub subject: Digest,
    /// The upstream repository it was read from.
    pub repository: DockerImageReference,
    /// Its bytes, as the upstream served them.
    pub manifest: FetchedManifest,
    /// The blobs it names (config and layers), by digest.
    pub blobs: Vec<(Digest, Bytes)>,
}

/// Where signatures are mirrored: moor's registry.
#[async_trait]
pub trait MirrorStore: Send + Sync {
    /// Stores `signatures` in the repository `namespace/stream`: blobs and manifests
    /// (digest-checked), then what makes them visible there.
    async fn mirror(
        &self,
        namespace: &str,
        stream: &str,
        signatures: &[Mirrored],
    ) -> Result<(), ImportError>;
}

/// The repository an import mirrors signatures into.
#[derive(Clone)]
pub struct MirrorTarget {
    /// The registry.
    pub store: Arc<dyn MirrorStore>,
    /// The stream's namespace.
    pub namespace: String,
    /// The stream.
    pub stream: String,
}

impl std::fmt::Debug for MirrorTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MirrorTarget({}/{})", self.namespace, self.stream)
    }
}

/// The digests a manifest names: its config and layers.
fn named_blobs(manifest: &Value) -> Vec<Digest> {
    std::iter::once(&manifest["config"])
        .chain(
            manifest["layers"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default(),
        )
        .filter_map(|d| d["digest"].as_str())
        .filter_map(|d| Digest::parse(d).ok())
        .collect()
}

/// Mirrors the `verified` signature manifests of image `subject` into `target`:
/// reads the blobs they name that verification did not (the config, other layers),
/// then hands everything to the registry. A referrer whose `subject` is not the image
/// is not mirrored (moor's referrers API would list it under the wrong image).
pub async fn mirror(
    source: &dyn Source,
    pull: &PullOptions,
    target: &MirrorTarget,
    subject: &Digest,
    verified: &[VerifiedManifest],
) -> Result<(), ImportError> {
    let mut out = Vec::new();
    for v in verified {
        let m = &v.manifest;
        let parsed: Value = serde_json::from_slice(&m.manifest.bytes).map_err(|e| {
            ImportError::invalid_because("the signature manifest does not parse", e)
        })?;
        if m.attached == Attached::Referrer
            && parsed["subject"]["digest"].as_str() != Some(subject.as_str())
        {
            continue;
        }
        let mut blobs = v.payloads.clone();
        for d in named_blobs(&parsed) {
            if blobs.iter().any(|(have, _)| *have == d) {
                continue;
            }
            let bytes = source.blob(&m.repository, &d, pull).await?;
            blobs.push((d, bytes));
        }
        out.push(Mirrored {
            attached: m.attached.clone(),
            subject: subject.clone(),
            repository: m.repository.clone(),
            manifest: m.manifest.clone(),
            blobs,
        });
    }
    if out.is_empty() {
        return Ok(());
    }
    target
        .store
        .mirror(&target.namespace, &target.stream, &out)
        .await
}
