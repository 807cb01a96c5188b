//! Cosign signing keys and cosign signatures for signature tests: key pairs (ECDSA
//! P-256 and P-384, RSA, Ed25519) made with `openssl`, and signatures in cosign's simple signing format (a payload
//! naming the identity and the manifest digest, signed with `openssl dgst -sha256
//! -sign`, pushed as the `sha256-<hex>.sig` manifest of the image's repository with
//! the base64 signature in the layer's `dev.cosignproject.cosign/signature`
//! annotation), exactly what `cosign sign --key` writes. Debian's skopeo, podman and
//! buildah 1.9 are built with sigstore signing removed ("Debian-local change:
//! sigstore disabled"), so the kit signs itself, with openssl rather than moor's own
//! verifier code.

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use sha2::Digest as _;

use crate::distribution::Distribution;
use crate::peers::run_ok;

/// The key types cosign signs with, and how the kit signs with each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA P-256 with SHA-256 (cosign's default).
    P256,
    /// ECDSA P-384 with SHA-256 (as cosign and containers/image verify it).
    P384,
    /// RSA 2048 with PKCS#1 v1.5 and SHA-256.
    Rsa,
    /// RSA 2048 with PSS (the longest salt, openssl's default) and SHA-256.
    RsaPss,
    /// Ed25519 over the payload itself.
    Ed25519,
}

impl KeyType {
    /// Every type.
    pub const ALL: [KeyType; 5] = [
        KeyType::P256,
        KeyType::P384,
        KeyType::Rsa,
        KeyType::RsaPss,
        KeyType::Ed25519,
    ];

    fn genpkey_args(self) -> &'static [&'static str] {
        match self {
            KeyType::P256 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            KeyType::P384 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            KeyType::Rsa | KeyType::RsaPss => {
                &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
            }
            KeyType::Ed25519 => &["-algorithm", "ED25519"],
        }
    }
}

/// A signing key pair in a temporary folder.
pub struct CosignKey {
    dir: tempfile::TempDir,
    kind: KeyType,
    /// The public key, PEM (`-----BEGIN PUBLIC KEY-----`), as a policy's `keyData`.
    pub public_pem: String,
}

impl CosignKey {
    /// A new P-256 key pair (needs `openssl`).
    pub fn generate() -> Self {
        Self::generate_type(KeyType::P256)
    }

    /// A new key pair of type `kind` (needs `openssl`).
    pub fn generate_type(kind: KeyType) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let der = dir.path().join("key.der");
        run_ok(
            Command::new("openssl")
                .arg("genpkey")
                .args(kind.genpkey_args())
                .args(["-outform", "DER", "-out"])
                .arg(&der),
        );
        let public = run_ok(
            Command::new("openssl")
                .args(["pkey", "-inform", "DER", "-pubout", "-in"])
                .arg(&der),
        );
        CosignKey {
            public_pem: String::from_utf8(public.stdout).expect("PEM is text"),
            kind,
            dir,
        }
    }

    /// The private key, PEM (PKCS#8).
    pub fn private_pem(&self) -> String {
        let out = run_ok(
            Command::new("openssl")
                .args(["pkey", "-inform", "DER", "-in"])
                .arg(self.dir.path().join("key.der")),
        );
        String::from_utf8(out.stdout).expect("PEM is text")
    }

    /// The signature of `data` with this key, as cosign makes it: DER ECDSA or RSA
    /// over SHA-256, or Ed25519 over the data.
    pub fn sign_bytes(&self, data: &[u8]) -> Vec<u8> {
        let file = self.dir.path().join("payload");
        std::fs::write(&file, data).expect("write payload");
        let key = self.dir.path().join("key.der");
        let mut cmd = Command::new("openssl");
        match self.kind {
            KeyType::Ed25519 => {
                cmd.args(["pkeyutl", "-sign", "-rawin", "-keyform", "DER", "-inkey"])
                    .arg(&key)
                    .arg("-in")
                    .arg(&file);
            }
            KeyType::RsaPss => {
                cmd.args([
                    "dgst",
                    "-sha256",
                    "-sigopt",
                    "rsa_padding_mode:pss",
                    "-sigopt",
                    "rsa_pss_saltlen:max",
                    "-keyform",
                    "DER",
                    "-sign",
                ])
                .arg(&key)
                .arg(&file);
            }
            _ => {
                cmd.args(["dgst", "-sha256", "-keyform", "DER", "-sign"])
                    .arg(&key)
                    .arg(&file);
            }
        }
        run_ok(&mut cmd).stdout
    }

    /// The simple signing payload cosign signs for `digest` as `identity`.
    pub fn payload(digest: &str, identity: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "critical": {
                "identity": {"docker-reference": identity},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": null,
        }))
        .expect("payload JSON")
    }

    /// Signs the manifest `digest` of `repo` (`team/app`) in `dist` for `identity` (a
    /// full reference such as `127.0.0.1:5000/team/app:1.0`): pushes the payload and
    /// the `sha256-<hex>.sig` manifest, as `cosign sign` does.
    pub async fn sign(&self, dist: &Distribution, repo: &str, digest: &str, identity: &str) {
        self.sign_at(&dist.url(), None, repo, digest, identity)
            .await;
    }

    /// [`sign`](Self::sign) into the registry at `base` (`http://HOST`), with Basic
    /// credentials when given.
    pub async fn sign_at(
        &self,
        base: &str,
        creds: Option<(&str, &str)>,
        repo: &str,
        digest: &str,
        identity: &str,
    ) {
        let payload = Self::payload(digest, identity);
        let signature = STANDARD.encode(self.sign_bytes(&payload));
        push_signature(
            base,
            creds,
            repo,
            digest,
            &payload,
            json!({"dev.cosignproject.cosign/signature": signature}),
        )
        .await;
    }
}

/// Pushes `payload` as the one signature layer (with `annotations`) of the
/// `sha256-<hex>.sig` manifest of image `digest` in `repo` at `base`, as cosign does.
pub async fn push_signature(
    base: &str,
    creds: Option<(&str, &str)>,
    repo: &str,
    digest: &str,
    payload: &[u8],
    annotations: serde_json::Value,
) {
    let config =
        br#"{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let payload_digest = upload_blob(base, creds, repo, payload).await;
    let config_digest = upload_blob(base, creds, repo, config).await;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "digest": payload_digest, "size": payload.len(),
            "annotations": annotations,
        }],
    });
    let tag = digest.replacen(':', "-", 1) + ".sig";
    let status = put_manifest(base, creds, repo, &tag, manifest.to_string().into_bytes()).await;
    assert_eq!(status, 201, "put signature manifest");
}

fn with_creds(
    req: reqwest::RequestBuilder,
    creds: Option<(&str, &str)>,
) -> reqwest::RequestBuilder {
    match creds {
        Some((user, password)) => req.basic_auth(user, Some(password)),
        None => req,
    }
}

/// Uploads `blob` to `repo` of the registry at `base` (POST then PUT); its digest.
pub async fn upload_blob(
    base: &str,
    creds: Option<(&str, &str)>,
    repo: &str,
    blob: &[u8],
) -> String {
    let client = reqwest::Client::new();
    let d = format!("sha256:{}", hex::encode(sha2::Sha256::digest(blob)));
    let r = with_creds(
        client.post(format!("{base}/v2/{repo}/blobs/uploads/")),
        creds,
    )
    .send()
    .await
    .expect("start upload");
    assert_eq!(r.status().as_u16(), 202, "start upload");
    let loc = r.headers()["location"]
        .to_str()
        .expect("Location")
        .to_string();
    let loc = if loc.starts_with("http") {
        loc
    } else {
        format!("{base}{loc}")
    };
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = with_creds(client.put(format!("{loc}{sep}digest={d}")), creds)
        .body(blob.to_vec())
        .send()
        .await
        .expect("finish upload");
    assert_eq!(r.status().as_u16(), 201, "finish upload");
    d
}

/// PUTs an OCI image manifest as `reference` (tag or digest) of `repo`; the status.
pub async fn put_manifest(
    base: &str,
    creds: Option<(&str, &str)>,
    repo: &str,
    reference: &str,
    manifest: Vec<u8>,
) -> u16 {
    let client = reqwest::Client::new();
    with_creds(
        client.put(format!("{base}/v2/{repo}/manifests/{reference}")),
        creds,
    )
    .header("content-type", "application/vnd.oci.image.manifest.v1+json")
    .body(manifest)
    .send()
    .await
    .expect("put manifest")
    .status()
    .as_u16()
}

/// Fulcio's issuer extensions: 1.3.6.1.4.1.57264.1.1 (raw) and .1.8 (UTF8String).
const OID_ISSUER_V1: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 1];
const OID_ISSUER_V2: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 8];

/// A local Fulcio (a root CA and an intermediate, as the public one has) and a Rekor
/// key, for keyless signatures made offline.
pub struct FulcioCa {
    intermediate: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    /// The root certificate, PEM: a policy's `fulcioCAData`.
    pub root_pem: String,
    /// The chain a signature carries: the intermediate, then the root.
    pub chain_pem: String,
    /// The Rekor log's key: `rekor.public_pem` is a policy's `rekorKeyData`.
    pub rekor: CosignKey,
}

/// What a Fulcio certificate says and when it is valid.
#[derive(Clone, Debug)]
pub struct Subject {
    /// The SAN email.
    pub email: String,
    /// The OIDC issuer in the issuer extensions.
    pub issuer: String,
    /// Unix seconds from which the certificate is valid (for 10 minutes, as Fulcio's).
    pub not_before: i64,
}

/// A keyless signer: an ephemeral key and its Fulcio certificate.
pub struct KeylessSigner {
    /// The ephemeral key (P-256, as cosign's).
    pub key: CosignKey,
    /// The leaf certificate, PEM.
    pub cert_pem: String,
}

fn unix(t: i64) -> std::time::Duration {
    std::time::Duration::from_secs(u64::try_from(t).expect("time after 1970"))
}

impl FulcioCa {
    /// A new root, intermediate and Rekor key.
    pub fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let ca = |cn: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
            p.distinguished_name
                .push(DnType::OrganizationName, "sigstore.dev");
            p.distinguished_name.push(DnType::CommonName, cn);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            p
        };
        let root =
            rcgen::CertifiedIssuer::self_signed(ca("sigstore"), KeyPair::generate().expect("key"))
                .expect("root");
        let intermediate = rcgen::CertifiedIssuer::signed_by(
            ca("sigstore-intermediate"),
            KeyPair::generate().expect("key"),
            &root,
        )
        .expect("intermediate");
        FulcioCa {
            root_pem: root.pem(),
            chain_pem: intermediate.pem() + &root.pem(),
            intermediate,
            rekor: CosignKey::generate(),
        }
    }

    /// A certificate for `subject`, issued by the intermediate, for a new key.
    pub fn issue(&self, subject: &Subject) -> KeylessSigner {
        use rcgen::{
            CertificateParams, CustomExtension, DistinguishedName, ExtendedKeyUsagePurpose,
            KeyPair, KeyUsagePurpose, SanType,
        };
        let key = CosignKey::generate();
        let public = KeyPair::from_pem(&key.private_pem()).expect("rcgen reads the key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name = DistinguishedName::new();
        p.subject_alt_names = vec![SanType::Rfc822Name(
            subject.email.as_str().try_into().expect("an IA5 email"),
        )];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        p.not_before = rcgen::date_time_ymd(1970, 1, 1) + unix(subject.not_before);
        p.not_after = rcgen::date_time_ymd(1970, 1, 1) + unix(subject.not_before + 600);
        let issuer = subject.issuer.as_bytes();
        let mut v2 = vec![0x0c, u8::try_from(issuer.len()).expect("a short issuer")];
        v2.extend_from_slice(issuer);
        p.custom_extensions = vec![
            CustomExtension::from_oid_content(OID_ISSUER_V1, issuer.to_vec()),
            CustomExtension::from_oid_content(OID_ISSUER_V2, v2),
        ];
        let cert = p.signed_by(&public, &self.intermediate).expect("leaf");
        KeylessSigner {
            key,
            cert_pem: cert.pem(),
        }
    }

    /// The Rekor bundle of `signature` over `payload` by the certificate (or key)
    /// `signer_pem`, logged at `integrated_time` and signed with the Rekor key (cosign's
    /// `dev.sigstore.cosign/bundle`).
    pub fn bundle(
        &self,
        signer_pem: &str,
        signature: &[u8],
        payload: &[u8],
        integrated_time: i64,
    ) -> String {
        let body = json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256",
                                  "value": hex::encode(sha2::Sha256::digest(payload))}},
                "signature": {"content": STANDARD.encode(signature),
                              "publicKey": {"content": STANDARD.encode(signer_pem)}},
            },
        });
        let body = STANDARD.encode(body.to_string());
        let log_id = hex::encode(sha2::Sha256::digest(self.rekor.public_pem.as_bytes()));
        // RFC 8785 canonical JSON of the payload: sorted keys, no spaces.
        let canonical = format!(
            r#"{{"body":"{body}","integratedTime":{integrated_time},"logID":"{log_id}","logIndex":7}}"#
        );
        let set = STANDARD.encode(self.rekor.sign_bytes(canonical.as_bytes()));
        json!({
            "SignedEntryTimestamp": set,
            "Payload": {"body": body, "integratedTime": integrated_time,
                        "logIndex": 7, "logID": log_id},
        })
        .to_string()
    }
}

impl Default for FulcioCa {
    fn default() -> Self {
        Self::new()
    }
}

impl KeylessSigner {
    /// The layer annotations of a keyless signature of `payload` by this signer, logged
    /// by `ca`'s Rekor at `integrated_time`: signature, certificate, chain, bundle.
    pub fn annotations(
        &self,
        ca: &FulcioCa,
        payload: &[u8],
        integrated_time: i64,
    ) -> serde_json::Value {
        let signature = self.key.sign_bytes(payload);
        json!({
            "dev.cosignproject.cosign/signature": STANDARD.encode(&signature),
            "dev.sigstore.cosign/certificate": self.cert_pem,
            "dev.sigstore.cosign/chain": ca.chain_pem,
            "dev.sigstore.cosign/bundle": ca.bundle(&self.cert_pem, &signature, payload, integrated_time),
        })
    }

    /// Signs the manifest `digest` of `repo` at `base` for `identity` keylessly, as
    /// `cosign sign` with Fulcio and Rekor does.
    pub async fn sign_at(
        &self,
        ca: &FulcioCa,
        base: &str,
        repo: &str,
        digest: &str,
        identity: &str,
        integrated_time: i64,
    ) {
        let payload = CosignKey::payload(digest, identity);
        let annotations = self.annotations(ca, &payload, integrated_time);
        push_signature(base, None, repo, digest, &payload, annotations).await;
    }
}

/// The `artifactType` of a cosign signature attached as an OCI 1.1 referrer.
pub const SIGNATURE_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

/// Attaches `payload` (with `annotations`) to image `digest` of `repo` as an OCI 1.1
/// referrer, as `cosign sign --registry-referrers-mode=oci-1-1` does: a manifest with
/// `artifactType` and `subject`, pushed by digest. With `tag_schema`, also writes the
/// referrers tag schema's `sha256-<hex>` index listing it (what clients do where the
/// registry has no referrers API). The referrer manifest's digest.
pub async fn push_referrer_signature(
    base: &str,
    creds: Option<(&str, &str)>,
    repo: &str,
    digest: &str,
    payload: &[u8],
    annotations: serde_json::Value,
    tag_schema: bool,
) -> String {
    let client = reqwest::Client::new();
    let subject = with_creds(
        client.get(format!("{base}/v2/{repo}/manifests/{digest}")),
        creds,
    )
    .header(
        "accept",
        "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
    )
    .send()
    .await
    .expect("get subject");
    assert!(subject.status().is_success(), "get subject");
    let subject_type = subject.headers()["content-type"]
        .to_str()
        .expect("content type")
        .to_string();
    let subject_size = subject.bytes().await.expect("subject").len();
    let empty = b"{}";
    let payload_digest = upload_blob(base, creds, repo, payload).await;
    let config_digest = upload_blob(base, creds, repo, empty).await;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": SIGNATURE_ARTIFACT,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": config_digest, "size": empty.len()},
        "layers": [{
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "digest": payload_digest, "size": payload.len(),
            "annotations": annotations,
        }],
        "subject": {"mediaType": subject_type, "digest": digest, "size": subject_size},
    })
    .to_string()
    .into_bytes();
    let manifest_digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&manifest)));
    let size = manifest.len();
    assert_eq!(
        put_manifest(base, creds, repo, &manifest_digest, manifest).await,
        201,
        "put referrer manifest"
    );
    if tag_schema {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest, "size": size,
                "artifactType": SIGNATURE_ARTIFACT,
            }],
        });
        let tag = digest.replacen(':', "-", 1);
        let r = with_creds(
            client.put(format!("{base}/v2/{repo}/manifests/{tag}")),
            creds,
        )
        .header("content-type", "application/vnd.oci.image.index.v1+json")
        .body(index.to_string())
        .send()
        .await
        .expect("put referrers tag");
        assert_eq!(r.status().as_u16(), 201, "put referrers tag schema index");
    }
    manifest_digest
}
