//! The registry's side: a push by tag into a stream whose identity
//! (`<registry-hostname>/<namespace>/<stream>:<tag>`) a policy covers is refused with
//! OCI `DENIED`, naming the policy and key, unless the stream already holds a
//! signature of the pushed digest that verifies (push by digest, sign, then tag:
//! cosign's `sha256-<hex>.sig` tag is pushed into moor like any tag; a signature
//! mirrored into the stream at import counts too). Signature
//! artifacts' own tags (`.sig`, `.att`, `.sbom`) are not checked. Reads the stream
//! and blobs through the registry's catalog and `content_read` (local or S3).

use async_trait::async_trait;
use bytes::Bytes;
use moor_api::image::ImageStream;
use moor_api::{Digest, DockerImageReference};

use crate::importer::{FetchedManifest, ImportError, PullOptions, Source};
use crate::registry::Registry;
use crate::registry::error::{Code, RegistryError};

/// Tags of signature artifacts, never checked themselves.
const ARTIFACT_SUFFIXES: &[&str] = &[".sig", ".att", ".sbom"];

/// A [`Source`] over what moor's registry holds for one stream: its tags' current
/// manifests, the signatures mirrored into it at import (by their `.sig` tag and as
/// referrers), and the stored blobs.
struct Local<'a> {
    reg: &'a Registry,
    namespace: &'a str,
    name: &'a str,
    stream: Option<ImageStream>,
}

#[async_trait]
impl Source for Local<'_> {
    async fn manifest(
        &self,
        reference: &DockerImageReference,
        _opts: &PullOptions,
    ) -> Result<FetchedManifest, ImportError> {
        let not_found = || ImportError::not_found(format!("{} not found", reference.exact()));
        let digest = match (reference.id(), reference.tag()) {
            (Some(d), _) => d.clone(),
            (None, Some(tag)) => match self
                .stream
                .as_ref()
                .and_then(|s| s.latest_tagged_image(tag))
                .and_then(|e| Digest::parse(&e.image).ok())
            {
                Some(d) => d,
                None => {
                    crate::registry::sigmirror::tagged(self.reg, self.namespace, self.name, tag)
                        .await
                        .map_err(|e| ImportError::internal("reading mirrored signatures", e))?
                        .ok_or_else(not_found)?
                }
            },
            (None, None) => return Err(not_found()),
        };
        let bytes = self.blob(reference, &digest, _opts).await?;
        Ok(FetchedManifest {
            bytes,
            media_type: String::new(),
            digest,
        })
    }

    async fn blob(
        &self,
        _repository: &DockerImageReference,
        digest: &Digest,
        _opts: &PullOptions,
    ) -> Result<Bytes, ImportError> {
        // Wherever blobs live: with `--blob-store s3://` the local store no longer
        // holds them once published.
        self.reg
            .content_read(digest)
            .await
            .map_err(|e| ImportError::internal("reading a signature blob", e))?
            .ok_or_else(|| ImportError::not_found(format!("blob {digest} not found")))
    }

    async fn tags(
        &self,
        _repository: &DockerImageReference,
        _opts: &PullOptions,
    ) -> Result<Vec<String>, ImportError> {
        Ok(vec![])
    }

    async fn referrers(
        &self,
        _repository: &DockerImageReference,
        digest: &Digest,
        artifact_type: &str,
        _opts: &PullOptions,
    ) -> Result<Option<Bytes>, ImportError> {
        let manifests = crate::registry::sigmirror::referrers(
            self.reg,
            self.namespace,
            self.name,
            digest,
            Some(artifact_type),
        )
        .await
        .map_err(|e| ImportError::internal("reading mirrored signatures", e))?;
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": moor_api::media_types::OCI_INDEX,
            "manifests": manifests,
        });
        Ok(Some(index.to_string().into()))
    }
}

/// Checks a push of manifest `digest` as `ns/stream:tag` against the signature
/// policies: `DENIED` naming the policy and key when a policy covers it and no stored
/// signature of the digest verifies.
pub async fn check_push(
    reg: &Registry,
    ns: &str,
    stream: &str,
    tag: &str,
    digest: &Digest,
) -> Result<(), RegistryError> {
    if ARTIFACT_SUFFIXES.iter().any(|s| tag.ends_with(s)) {
        return Ok(());
    }
    let catalog = reg.repos.catalog();
    let Some(gate) = catalog.signature_gate(ns) else {
        return Ok(());
    };
    let identity = format!("{}/{ns}/{stream}:{tag}", reg.repos.registry_hostname());
    let from = DockerImageReference::parse(&identity)
        .map_err(|e| RegistryError::new(Code::NameInvalid, e.to_string()))?;
    // Most pushes are covered by no policy: answer those without reading the stream.
    let covered = gate
        .verifier
        .applicable(ns, &from.docker_client_defaults().exact())
        .await
        .map_err(|e| RegistryError::internal(e.message()))?;
    if covered.is_none() {
        return Ok(());
    }
    let local = Local {
        reg,
        namespace: ns,
        name: stream,
        stream: catalog
            .stream(ns, stream)
            .await
            .map_err(RegistryError::internal)?,
    };
    match gate
        .verify(&local, &from, &PullOptions::default(), digest)
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.reason() == super::SIGNATURE_MISSING || e.reason() == super::SIGNATURE_INVALID =>
        {
            Err(RegistryError::new(Code::Denied, e.message()))
        }
        Err(e) => Err(RegistryError::internal(e.message())),
    }
}
