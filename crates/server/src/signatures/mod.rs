//! Signature policy enforcement: which `ImagePolicy` or `ClusterImagePolicy` covers an
//! image, and whether the image carries a cosign/sigstore signature that the policy's
//! root of trust verifies for the identity the policy asks for. The importer calls
//! [`Gate::verify`] before a tag event is written; the registry calls
//! [`push::check_push`] before a push by tag writes one. Reads the policies through their API
//! storages and signatures through the importer's [`Source`] port; writes nothing.
//!
//! The signature format is cosign's "simple signing" (what `cosign sign` and
//! `skopeo copy --sign-by-sigstore-private-key` write): an OCI manifest under the tag
//! `sha256-<hex>.sig` of the image's repository, one layer per signature of media type
//! `application/vnd.dev.cosign.simplesigning.v1+json` whose blob is the signed payload
//! and whose `dev.cosignproject.cosign/signature` annotation is the base64 signature
//! over it ([`keys`] says which key types verify).
//!
//! The `sigstore` crate (0.15, `rustls-tls` only: aws-lc-rs, no HTTP stack) verifies
//! the signatures themselves ([`keys`]). Its cosign-level checks (`cosign` feature:
//! signature layers, Rekor bundles, Fulcio certificate pools) come only with its
//! registry client, Fulcio/OAuth and Rekor HTTP clients, so the formats around the
//! signatures (the `.sig` manifest, the payload, keyless material) are read here.

pub mod keyless;
pub mod keys;
pub mod mirror;
pub mod push;

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use moor_api::config::{
    ClusterImagePolicy, ImagePolicy, ImagePolicySpec, POLICY_TYPE_FULCIO, POLICY_TYPE_PUBLIC_KEY,
    PolicyIdentity, PolicyRootOfTrust, most_specific,
};
use moor_api::image::{ConditionStatus, ImageSignature, SignatureCondition, SignatureSubject};
use moor_api::{Digest, DockerImageReference};
use serde::Deserialize;
use serde_json::Value;

use keys::{KeyError, PublicKey};

use crate::importer::{FetchedManifest, ImportError, PullOptions, Source};
use moor_apimachinery::resource::{RequestContext, RestStorage};

/// The layer media type of a cosign simple signing payload.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The `ImportFailed` reason of an image without a signature the policy asks for.
pub const SIGNATURE_MISSING: &str = "SignatureMissing";
/// The `ImportFailed` reason of an image whose signatures do not verify.
pub const SIGNATURE_INVALID: &str = "SignatureInvalid";

/// Why one signature does not verify (or a policy cannot be used).
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The policy's key cannot be used.
    #[error("the policy's public key cannot be used")]
    Key(#[source] KeyError),
    /// The policy asks for a root of trust moor does not verify yet.
    #[error("root of trust {0:?} is not supported")]
    Unsupported(String),
    /// The signature annotation is not base64.
    #[error("the signature is not base64")]
    Encoding,
    /// The signature is not the key's over the payload.
    #[error("the signature does not verify with the key")]
    Mismatch(#[source] KeyError),
    /// The payload is not a simple signing payload.
    #[error("the signed payload does not parse")]
    Payload(#[source] serde_json::Error),
    /// The payload signs another image.
    #[error("the signature is for {0}, not this image")]
    OtherImage(String),
    /// A keyless signature (or a Rekor bundle) is refused.
    #[error("keyless verification failed")]
    Keyless(#[from] keyless::KeylessError),
    /// The payload names an identity the policy does not accept.
    #[error("the signature is for identity {signed}, not {wanted}")]
    OtherIdentity { signed: String, wanted: String },
}

/// A policy that applies to an image: its kind and name, and its spec.
#[derive(Clone, Debug)]
pub struct Applied {
    /// `ImagePolicy <namespace>/<name>` or `ClusterImagePolicy <name>`.
    pub name: String,
    /// The policy.
    pub spec: ImagePolicySpec,
}

/// The policies, read through their API storages.
pub struct Verifier {
    namespaced: Arc<dyn RestStorage>,
    cluster: Arc<dyn RestStorage>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier")
    }
}

/// The verifier bound to the namespace an import writes into.
#[derive(Clone, Debug)]
pub struct Gate {
    pub verifier: Arc<Verifier>,
    pub namespace: String,
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    identity: PayloadIdentity,
    image: PayloadImage,
}

#[derive(Deserialize)]
struct PayloadIdentity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Deserialize)]
struct PayloadImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// `registry/namespace/name` of a reference with Docker's defaults, no tag or digest.
fn repository(r: &DockerImageReference) -> String {
    r.docker_client_defaults()
        .without_tag()
        .without_id()
        .exact()
}

/// Whether `signed` (the payload's `docker-reference`) is an identity `policy` accepts
/// for `image` (containers-policy.json's `signedIdentity` rules).
pub fn identity_matches(
    policy: Option<&PolicyIdentity>,
    image: &DockerImageReference,
    signed: &str,
) -> bool {
    let Ok(signed) = DockerImageReference::parse(signed) else {
        return false;
    };
    let repo_digest_or_exact = |image: &DockerImageReference| {
        if image.id().is_some() {
            repository(&signed) == repository(image)
        } else {
            signed.docker_client_defaults().exact() == image.docker_client_defaults().exact()
        }
    };
    match policy.map(|p| p.match_policy.as_str()) {
        None | Some("MatchRepoDigestOrExact") => repo_digest_or_exact(image),
        Some("MatchRepository") => repository(&signed) == repository(image),
        Some("ExactRepository") => policy
            .and_then(|p| p.exact_repository.as_ref())
            .is_some_and(|e| repository(&signed) == e.repository),
        Some("RemapIdentity") => {
            let Some(remap) = policy.and_then(|p| p.remap_identity.as_ref()) else {
                return false;
            };
            let full = image.docker_client_defaults().exact();
            let remapped = match full.strip_prefix(&remap.prefix) {
                Some(rest) if rest.is_empty() || rest.starts_with(['/', ':', '@']) => {
                    format!("{}{rest}", remap.signed_prefix)
                }
                _ => full,
            };
            DockerImageReference::parse(&remapped).is_ok_and(|r| repo_digest_or_exact(&r))
        }
        Some(_) => false,
    }
}

/// Verifies one signature of `payload` with `key`, and that the payload names
/// `digest` and an identity `identity` accepts for `image`.
pub fn verify_one(
    key: &PublicKey,
    payload: &[u8],
    signature_b64: &str,
    digest: &Digest,
    image: &DockerImageReference,
    identity: Option<&PolicyIdentity>,
) -> Result<String, SignatureError> {
    let raw = STANDARD
        .decode(signature_b64.trim())
        .map_err(|_| SignatureError::Encoding)?;
    key.verify(payload, &raw)
        .map_err(SignatureError::Mismatch)?;
    let p: Payload = serde_json::from_slice(payload).map_err(SignatureError::Payload)?;
    if p.critical.image.docker_manifest_digest != digest.to_string() {
        return Err(SignatureError::OtherImage(
            p.critical.image.docker_manifest_digest,
        ));
    }
    let signed = p.critical.identity.docker_reference;
    if !identity_matches(identity, image, &signed) {
        return Err(SignatureError::OtherIdentity {
            signed,
            wanted: image.docker_client_defaults().exact(),
        });
    }
    Ok(signed)
}

/// An error and its sources, `: `-joined: what a condition message says.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(e) = next {
        s.push_str(": ");
        s.push_str(&e.to_string());
        next = e.source();
    }
    s
}

fn ctx() -> RequestContext {
    RequestContext::default()
}

impl Verifier {
    /// A verifier over the `imagepolicies` and `clusterimagepolicies` storages.
    pub fn new(namespaced: Arc<dyn RestStorage>, cluster: Arc<dyn RestStorage>) -> Self {
        Verifier {
            namespaced,
            cluster,
        }
    }

    /// The policy that covers `image` (fully expanded) for a stream in `ns`: a
    /// ClusterImagePolicy covering it wins, else the most specific ImagePolicy of `ns`.
    pub async fn applicable(&self, ns: &str, image: &str) -> Result<Option<Applied>, ImportError> {
        let internal = |e| ImportError::internal("reading signature policies", e);
        let cluster = self
            .cluster
            .list(&ctx(), None, &Default::default())
            .await
            .map_err(internal)?;
        let cluster: Vec<(String, ImagePolicySpec)> = cluster
            .items
            .iter()
            .filter_map(|o| ClusterImagePolicy::deserialize(o).ok())
            .map(|p| {
                (
                    format!("ClusterImagePolicy {}", p.metadata.name.unwrap_or_default()),
                    p.spec,
                )
            })
            .collect();
        if let Some((name, _)) = most_specific(cluster.iter().map(|(n, s)| (n.as_str(), s)), image)
        {
            let spec = cluster
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| s.clone())
                .unwrap_or_default();
            return Ok(Some(Applied {
                name: name.to_string(),
                spec,
            }));
        }
        let local = self
            .namespaced
            .list(&ctx(), Some(ns), &Default::default())
            .await
            .map_err(internal)?;
        let local: Vec<(String, ImagePolicySpec)> = local
            .items
            .iter()
            .filter_map(|o| ImagePolicy::deserialize(o).ok())
            .map(|p| {
                (
                    format!("ImagePolicy {ns}/{}", p.metadata.name.unwrap_or_default()),
                    p.spec,
                )
            })
            .collect();
        Ok(
            most_specific(local.iter().map(|(n, s)| (n.as_str(), s)), image).map(|(name, _)| {
                Applied {
                    name: name.to_string(),
                    spec: local
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, s)| s.clone())
                        .unwrap_or_default(),
                }
            }),
        )
    }
}

/// A policy's root of trust, parsed.
#[derive(Debug)]
pub enum Trust {
    /// `PublicKey`: the key, and the Rekor key when `rekorKeyData` asks for bundles.
    Key {
        key: PublicKey,
        rekor: Option<PublicKey>,
    },
    /// `FulcioCAWithRekor`.
    Fulcio(keyless::FulcioRoot),
}

impl Trust {
    /// Parses a policy's root of trust; `Err` says why it cannot be used, and `name`
    /// how messages name it either way (`key SHA256:...`, `Fulcio CA SHA256:... (...)`).
    pub fn parse(root: &PolicyRootOfTrust) -> (String, Result<Trust, String>) {
        match (
            &root.policy_type[..],
            &root.public_key,
            &root.fulcio_ca_with_rekor,
        ) {
            (POLICY_TYPE_PUBLIC_KEY, Some(k), _) => {
                let key = PublicKey::from_pem(&k.key_data.0);
                let name = format!(
                    "key {}",
                    key.as_ref()
                        .map(PublicKey::fingerprint)
                        .unwrap_or_else(|_| keys::fingerprint_of(&k.key_data.0))
                );
                let rekor = k
                    .rekor_key_data
                    .as_ref()
                    .map(|r| PublicKey::from_pem(&r.0).map_err(keyless::KeylessError::RekorKey))
                    .transpose()
                    .map_err(|e| chain(&e));
                let trust = key
                    .map_err(|e| chain(&SignatureError::Key(e)))
                    .and_then(|key| Ok(Trust::Key { key, rekor: rekor? }));
                (name, trust)
            }
            (POLICY_TYPE_FULCIO, _, Some(f)) => match keyless::FulcioRoot::new(f) {
                Ok(root) => (root.name().to_string(), Ok(Trust::Fulcio(root))),
                Err(e) => (
                    format!(
                        "Fulcio CA ({} {})",
                        f.fulcio_subject.oidc_issuer, f.fulcio_subject.signed_email
                    ),
                    Err(chain(&e)),
                ),
            },
            (other, _, _) => (
                format!("root of trust {other}"),
                Err(SignatureError::Unsupported(other.to_string()).to_string()),
            ),
        }
    }

    /// Verifies one signature layer: the signature over `payload` by the trusted key
    /// (or the certificate a Fulcio CA vouches for, logged in Rekor), and that the
    /// payload names `digest` and an identity `identity` accepts for `image`.
    pub fn verify(
        &self,
        layer: &Layer,
        payload: &[u8],
        digest: &Digest,
        image: &DockerImageReference,
        identity: Option<&PolicyIdentity>,
    ) -> Result<String, SignatureError> {
        let material = keyless::Material {
            certificate: layer.annotation(keyless::CERTIFICATE_ANNOTATION),
            chain: layer.annotation(keyless::CHAIN_ANNOTATION),
            bundle: layer.annotation(keyless::BUNDLE_ANNOTATION),
        };
        match self {
            Trust::Key { key, rekor } => {
                if let Some(rekor) = rekor {
                    let bundle = material.bundle.ok_or(keyless::KeylessError::NoBundle)?;
                    keyless::verify_bundle(
                        rekor,
                        bundle,
                        key.spki_der(),
                        &layer.signature,
                        payload,
                    )?;
                }
                verify_one(key, payload, &layer.signature, digest, image, identity)
            }
            Trust::Fulcio(root) => {
                let key = root.verify(&material, &layer.signature, payload)?;
                verify_one(&key, payload, &layer.signature, digest, image, identity)
            }
        }
    }
}

/// One signature layer of a signature manifest.
#[derive(Clone, Debug)]
pub struct Layer {
    /// The repository holding the signature manifest and its blobs.
    pub repository: DockerImageReference,
    /// The payload blob.
    pub digest: Digest,
    /// The base64 signature annotation.
    pub signature: String,
    /// The layer's annotations.
    pub annotations: serde_json::Map<String, Value>,
}

impl Layer {
    fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).and_then(Value::as_str)
    }

    /// The simple signing layers of an OCI signature manifest read from `repository`.
    pub fn from_manifest(repository: &DockerImageReference, manifest: &Value) -> Vec<Layer> {
        manifest["layers"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|l| l["mediaType"] == SIMPLE_SIGNING)
            .filter_map(|l| {
                Some(Layer {
                    repository: repository.clone(),
                    digest: Digest::parse(l["digest"].as_str()?).ok()?,
                    signature: l["annotations"][SIGNATURE_ANNOTATION].as_str()?.to_string(),
                    annotations: l["annotations"].as_object()?.clone(),
                })
            })
            .collect()
    }
}

/// How a signature manifest is attached to the image it signs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attached {
    /// Under cosign's tag (`sha256-<hex>.sig`) of the image's repository.
    Tag(String),
    /// As an OCI 1.1 referrer (its `subject` is the image).
    Referrer,
}

/// A signature manifest read from a registry, with its simple signing layers.
#[derive(Clone, Debug)]
pub struct SignatureManifest {
    /// Where it was found.
    pub attached: Attached,
    /// The repository holding it and its blobs.
    pub repository: DockerImageReference,
    /// Its bytes, as the registry served them.
    pub manifest: FetchedManifest,
    /// Its simple signing layers.
    pub layers: Vec<Layer>,
}

/// cosign's signature tag of the image `digest`: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Digest) -> String {
    format!("{}-{}.sig", digest.algorithm(), digest.hex())
}

/// The manifest under the `sha256-<hex>.sig` tag of the image `digest` in `from`'s
/// repository, if there is one.
pub async fn signature_manifest(
    source: &dyn Source,
    from: &DockerImageReference,
    pull: &PullOptions,
    digest: &Digest,
) -> Result<Option<SignatureManifest>, ImportError> {
    let sig_tag = signature_tag(digest);
    let sig_ref = from
        .clone()
        .without_id()
        .with_tag(&sig_tag)
        .map_err(|e| ImportError::invalid(format!("signature tag {sig_tag}: {e}")))?;
    let manifest = match source.manifest(&sig_ref, pull).await {
        Ok(m) => m,
        Err(e) if e.reason() == moor_api::image::reasons::NOT_FOUND => return Ok(None),
        Err(e) => return Err(e),
    };
    let parsed: Value = serde_json::from_slice(&manifest.bytes)
        .map_err(|e| ImportError::invalid_because("the signature manifest does not parse", e))?;
    let repository = sig_ref.without_tag();
    Ok(Some(SignatureManifest {
        attached: Attached::Tag(sig_tag),
        layers: Layer::from_manifest(&repository, &parsed),
        repository,
        manifest,
    }))
}

/// The signature layers of the image `digest` in `from`'s repository: those of the
/// `sha256-<hex>.sig` tag's manifest. Empty when there is none.
pub async fn signature_layers(
    source: &dyn Source,
    from: &DockerImageReference,
    pull: &PullOptions,
    digest: &Digest,
) -> Result<Vec<Layer>, ImportError> {
    Ok(signature_manifest(source, from, pull, digest)
        .await?
        .map(|m| m.layers)
        .unwrap_or_default())
}

/// The `artifactType` of a cosign signature attached as an OCI 1.1 referrer.
pub const SIGNATURE_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

/// The signature manifests attached to the image `digest` as OCI 1.1 referrers
/// (manifests whose `subject` is the image and `artifactType` cosign's): listed by the
/// referrers API, or, where the registry has none (distribution 2.8 answers 404), by
/// the referrers tag schema's `sha256-<hex>` index. Empty when there are none.
pub async fn referrer_manifests(
    source: &dyn Source,
    from: &DockerImageReference,
    pull: &PullOptions,
    digest: &Digest,
) -> Result<Vec<SignatureManifest>, ImportError> {
    let repo = from.clone().without_id().without_tag();
    let index = match source
        .referrers(&repo, digest, SIGNATURE_ARTIFACT, pull)
        .await?
    {
        Some(index) => index,
        None => {
            let tag = format!("{}-{}", digest.algorithm(), digest.hex());
            let tagged = repo
                .clone()
                .with_tag(&tag)
                .map_err(|e| ImportError::invalid(format!("referrers tag {tag}: {e}")))?;
            match source.manifest(&tagged, pull).await {
                Ok(m) => m.bytes,
                Err(e) if e.reason() == moor_api::image::reasons::NOT_FOUND => {
                    return Ok(vec![]);
                }
                Err(e) => return Err(e),
            }
        }
    };
    let index: Value = serde_json::from_slice(&index)
        .map_err(|e| ImportError::invalid_because("the referrers index does not parse", e))?;
    let mut out = Vec::new();
    let referrers = index["manifests"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for r in referrers
        .iter()
        .filter(|r| r["artifactType"] == SIGNATURE_ARTIFACT)
    {
        let Some(d) = r["digest"].as_str().and_then(|d| Digest::parse(d).ok()) else {
            continue;
        };
        let at = repo.clone().with_id(d);
        let fetched = source.manifest(&at, pull).await?;
        let m: Value = serde_json::from_slice(&fetched.bytes).map_err(|e| {
            ImportError::invalid_because("a referrer signature manifest does not parse", e)
        })?;
        // Another image's signature listed here (a wrong tag schema index) is skipped.
        if m["subject"]["digest"]
            .as_str()
            .is_some_and(|s| s != digest.as_str())
        {
            continue;
        }
        out.push(SignatureManifest {
            attached: Attached::Referrer,
            layers: Layer::from_manifest(&repo, &m),
            repository: repo.clone(),
            manifest: fetched,
        });
    }
    Ok(out)
}

/// The signature layers of the image `digest` attached to it as OCI 1.1 referrers
/// (see [`referrer_manifests`]). Empty when there are none.
pub async fn referrer_layers(
    source: &dyn Source,
    from: &DockerImageReference,
    pull: &PullOptions,
    digest: &Digest,
) -> Result<Vec<Layer>, ImportError> {
    Ok(referrer_manifests(source, from, pull, digest)
        .await?
        .into_iter()
        .flat_map(|m| m.layers)
        .collect())
}

/// A signature manifest of which at least one signature verified, with the blobs
/// read to verify them (the payloads, digest-checked by the [`Source`]).
#[derive(Clone, Debug)]
pub struct VerifiedManifest {
    /// The manifest.
    pub manifest: SignatureManifest,
    /// Its payload blobs, by digest.
    pub payloads: Vec<(Digest, Bytes)>,
}

/// What a verification found: the signatures to record on the Image, and the
/// manifests they came in (what a Local reference policy mirrors).
#[derive(Clone, Debug, Default)]
pub struct Verified {
    /// OpenShift's `ImageSignature` records.
    pub signatures: Vec<ImageSignature>,
    /// The manifests holding at least one verified signature.
    pub manifests: Vec<VerifiedManifest>,
}

impl Gate {
    /// Verifies the image `from` names (manifest `digest`) against the policy that
    /// covers it, if any: the verified signatures (to record on the Image) and their
    /// manifests, or an `ImportError` with reason [`SIGNATURE_MISSING`] or
    /// [`SIGNATURE_INVALID`] that names the policy and the key (or Fulcio CA).
    pub async fn verify(
        &self,
        source: &dyn Source,
        from: &DockerImageReference,
        pull: &PullOptions,
        digest: &Digest,
    ) -> Result<Verified, ImportError> {
        let identity = from.docker_client_defaults().exact();
        let Some(policy) = self.verifier.applicable(&self.namespace, &identity).await? else {
            return Ok(Verified::default());
        };
        let invalid = |why: String| ImportError::new(SIGNATURE_INVALID, why);
        let (who, trust) = Trust::parse(&policy.spec.policy.root_of_trust);
        let trust = trust.map_err(|why| {
            invalid(format!(
                "{identity} is refused by {} ({who}): {why}",
                policy.name
            ))
        })?;
        let missing = || {
            ImportError::new(
                SIGNATURE_MISSING,
                format!(
                    "{identity} ({digest}) has no signature: {} requires one by {who}",
                    policy.name
                ),
            )
        };
        // The `.sig` tag first; the referrers only when it holds no valid signature.
        let check = Check {
            source,
            pull,
            trust: &trust,
            digest,
            from,
            policy: &policy,
            who: &who,
        };
        let mut failures = Vec::new();
        let mut verified = Verified::default();
        for stage in 0..2 {
            let manifests = if stage == 0 {
                signature_manifest(source, from, pull, digest)
                    .await?
                    .into_iter()
                    .collect()
            } else if verified.signatures.is_empty() {
                referrer_manifests(source, from, pull, digest).await?
            } else {
                break;
            };
            for m in manifests {
                check.manifest(m, &mut verified, &mut failures).await?;
            }
        }
        if !verified.signatures.is_empty() {
            return Ok(verified);
        }
        if failures.is_empty() {
            return Err(missing());
        }
        Err(invalid(format!(
            "{identity} ({digest}) is refused by {} ({who}): {}",
            policy.name,
            failures.join("; ")
        )))
    }
}

/// One verification's fixed inputs.
struct Check<'a> {
    source: &'a dyn Source,
    pull: &'a PullOptions,
    trust: &'a Trust,
    digest: &'a Digest,
    from: &'a DockerImageReference,
    policy: &'a Applied,
    who: &'a str,
}

impl Check<'_> {
    /// Verifies the layers of `manifest`, adding to `verified` (with the manifest,
    /// when one of them verifies) and `failures`.
    async fn manifest(
        &self,
        manifest: SignatureManifest,
        verified: &mut Verified,
        failures: &mut Vec<String>,
    ) -> Result<(), ImportError> {
        let mut payloads = Vec::new();
        let mut any = false;
        for layer in &manifest.layers {
            let payload = self
                .source
                .blob(&layer.repository, &layer.digest, self.pull)
                .await?;
            match self.trust.verify(
                layer,
                &payload,
                self.digest,
                self.from,
                self.policy.spec.policy.signed_identity.as_ref(),
            ) {
                Ok(signed_identity) => {
                    any = true;
                    verified.signatures.push(record(
                        self.digest,
                        &layer.digest,
                        &payload,
                        &signed_identity,
                        &self.policy.name,
                        self.who,
                    ));
                }
                Err(e) => failures.push(chain(&e)),
            }
            payloads.push((layer.digest.clone(), payload));
        }
        if any {
            verified
                .manifests
                .push(VerifiedManifest { manifest, payloads });
        }
        Ok(())
    }
}

/// The Image's record of a verified signature (OpenShift's `ImageSignature`, named
/// `<image>@<payload digest hex>` as OpenShift names signatures).
fn record(
    image: &Digest,
    payload_digest: &Digest,
    payload: &[u8],
    identity: &str,
    policy: &str,
    key: &str,
) -> ImageSignature {
    let now = Time(jiff::Timestamp::now());
    let mut s = ImageSignature {
        type_: "sigstore".into(),
        content: ByteString(payload.to_vec()),
        image_identity: identity.to_string(),
        signed_claims: BTreeMap::from([("policy".to_string(), policy.to_string())]),
        conditions: vec![SignatureCondition {
            type_: "Trusted".into(),
            status: ConditionStatus::True,
            last_probe_time: Some(now.clone()),
            last_transition_time: Some(now.clone()),
            reason: "Verified".into(),
            message: format!("verified with {key} of {policy}"),
        }],
        created: Some(now),
        issued_to: Some(SignatureSubject {
            public_key_id: key.strip_prefix("key ").unwrap_or(key).to_string(),
            ..Default::default()
        }),
        ..Default::default()
    };
    s.metadata.name = Some(format!("{image}@{}", payload_digest.hex()));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use moor_api::config::{PolicyMatchExactRepository, PolicyMatchRemapIdentity};

    fn r(s: &str) -> DockerImageReference {
        DockerImageReference::parse(s).unwrap()
    }

    #[test]
    fn identities_match_as_containers_policy_says() {
        let img = r("quay.io/keycloak/keycloak:20.0");
        assert!(identity_matches(
            None,
            &img,
            "quay.io/keycloak/keycloak:20.0"
        ));
        assert!(!identity_matches(
            None,
            &img,
            "quay.io/keycloak/keycloak:21.0"
        ));
        assert!(!identity_matches(None, &img, "quay.io/other/keycloak:20.0"));
        let by_digest = r(
            "quay.io/keycloak/keycloak@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        );
        assert!(identity_matches(
            None,
            &by_digest,
            "quay.io/keycloak/keycloak:anything"
        ));
        let repo = PolicyIdentity {
            match_policy: "MatchRepository".into(),
            ..Default::default()
        };
        assert!(identity_matches(
            Some(&repo),
            &img,
            "quay.io/keycloak/keycloak:21.0"
        ));
        let exact = PolicyIdentity {
            match_policy: "ExactRepository".into(),
            exact_repository: Some(PolicyMatchExactRepository {
                repository: "quay.io/signed/keycloak".into(),
            }),
            ..Default::default()
        };
        assert!(identity_matches(
            Some(&exact),
            &img,
            "quay.io/signed/keycloak:1"
        ));
        assert!(!identity_matches(
            Some(&exact),
            &img,
            "quay.io/keycloak/keycloak:20.0"
        ));
        let remap = PolicyIdentity {
            match_policy: "RemapIdentity".into(),
            remap_identity: Some(PolicyMatchRemapIdentity {
                prefix: "quay.io/keycloak".into(),
                signed_prefix: "registry.example.com/upstream".into(),
            }),
            ..Default::default()
        };
        assert!(identity_matches(
            Some(&remap),
            &img,
            "registry.example.com/upstream/keycloak:20.0"
        ));
        assert!(!identity_matches(
            Some(&remap),
            &img,
            "quay.io/keycloak/keycloak:20.0"
        ));
        assert!(identity_matches(
            None,
            &r("busybox:1"),
            "docker.io/library/busybox:1"
        ));
    }
}
