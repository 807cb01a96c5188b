//! Checking and classifying fetched manifests: digest verification against the
//! request and the `Docker-Content-Digest` header, media type detection, schema 1
//! refusal, parsing with oci-spec. Pure functions over bytes: may call moor-api,
//! oci-spec and serde_json.

use bytes::Bytes;
use moor_api::Digest;
use moor_api::media_types::{
    self, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED, DOCKER_MANIFEST_V2,
    OCI_INDEX, OCI_MANIFEST,
};
use oci_spec::image::{ImageIndex, ImageManifest};

use serde::Deserialize;

use super::UpstreamError;

/// The largest manifest accepted, as containers/image and OpenShift use: 4 MiB.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// A parsed manifest: a single-platform image (OCI manifest or Docker schema 2; the
/// Docker form parses into the same structure) or a multi-platform list (OCI index or
/// Docker manifest list).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestContent {
    /// An OCI image manifest or Docker schema 2 manifest.
    Image(Box<ImageManifest>),
    /// An OCI image index or Docker manifest list.
    Index(Box<ImageIndex>),
}

/// The fields every manifest kind may carry, read before choosing a parser.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Versioned {
    #[serde(default)]
    schema_version: Option<i64>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
    #[serde(default)]
    signatures: Option<serde_json::Value>,
    #[serde(default)]
    fs_layers: Option<serde_json::Value>,
}

/// What [`check_manifest`] found.
#[derive(Debug)]
pub(crate) struct Checked {
    /// The sha256 of the exact bytes.
    pub digest: Digest,
    /// The media type without parameters.
    pub media_type: String,
    /// The parsed manifest.
    pub content: ManifestContent,
}

/// Verifies and classifies manifest `bytes` fetched for `target`.
///
/// - With `requested` (fetched by digest), the bytes must hash to it.
/// - Fetched by tag, a `Docker-Content-Digest` header (`header_digest`), if present,
///   must match the bytes.
/// - The media type is the body's `mediaType` when present (it is covered by the
///   digest), else the `Content-Type` when that names a manifest, else guessed from
///   the body's shape. Schema 1 is refused, and so is any kind other than OCI
///   manifest/index and Docker schema 2/manifest list.
pub(crate) fn check_manifest(
    target: &str,
    bytes: &Bytes,
    content_type: Option<&str>,
    requested: Option<&Digest>,
    header_digest: Option<&str>,
) -> Result<Checked, UpstreamError> {
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(UpstreamError::TooLarge {
            target: target.to_owned(),
            kind: "manifest",
            limit: MAX_MANIFEST_BYTES,
        });
    }
    if let Some(expected) = requested {
        if !expected.matches(bytes) {
            let actual = expected.of_same_algorithm(bytes);
            return Err(UpstreamError::DigestMismatch {
                target: target.to_owned(),
                expected: expected.to_string(),
                message: format!(
                    "manifest verification failed: requested digest {expected}, the content is {actual}"
                ),
                actual,
            });
        }
    } else if let Some(header) = header_digest.map(str::trim).filter(|h| !h.is_empty()) {
        let announced = Digest::parse(header).map_err(|e| UpstreamError::InvalidContent {
            target: target.to_owned(),
            message: format!("invalid Docker-Content-Digest header {header:?}: {e}"),
        })?;
        if !announced.matches(bytes) {
            let actual = announced.of_same_algorithm(bytes);
            return Err(UpstreamError::DigestMismatch {
                target: target.to_owned(),
                expected: announced.to_string(),
                message: format!(
                    "manifest verification failed: the registry announced digest {announced} (Docker-Content-Digest), the content is {actual}"
                ),
                actual,
            });
        }
    }

    let versioned: Versioned =
        serde_json::from_slice(bytes).map_err(|e| UpstreamError::InvalidContent {
            target: target.to_owned(),
            message: format!("manifest is not valid JSON: {e}"),
        })?;
    let header_type = content_type
        .map(media_types::essence)
        .filter(|t| media_types::is_manifest(t));
    let body_type = versioned
        .media_type
        .as_deref()
        .map(media_types::essence)
        .filter(|t| !t.is_empty());

    // Schema 1 in any form: by header, by body, or by shape.
    let schema1 = [header_type, body_type]
        .into_iter()
        .flatten()
        .find(|t| media_types::is_schema1(t))
        .map(str::to_owned)
        .or_else(|| {
            (versioned.schema_version == Some(1) || versioned.fs_layers.is_some()).then(|| {
                if versioned.signatures.is_some() {
                    DOCKER_MANIFEST_V1_SIGNED.to_owned()
                } else {
                    DOCKER_MANIFEST_V1.to_owned()
                }
            })
        });
    if let Some(media_type) = schema1 {
        return Err(UpstreamError::UnsupportedSchema1 {
            target: target.to_owned(),
            media_type,
        });
    }

    if let (Some(h), Some(b)) = (header_type, body_type)
        && !h.eq_ignore_ascii_case(b)
    {
        tracing::warn!(%target, content_type = h, media_type = b, "Content-Type and the manifest's mediaType differ; using mediaType");
    }
    let media_type = match body_type.or(header_type) {
        Some(t) => canonical(t),
        None if versioned.manifests.is_some() => OCI_INDEX.to_owned(),
        None if versioned.config.is_some() => OCI_MANIFEST.to_owned(),
        None => {
            return Err(UpstreamError::UnsupportedMediaType {
                target: target.to_owned(),
                media_type: content_type.unwrap_or_default().to_owned(),
            });
        }
    };

    let parse_error = |e: serde_json::Error| UpstreamError::InvalidContent {
        target: target.to_owned(),
        message: format!("invalid {media_type} manifest: {e}"),
    };
    let content = if media_types::is_image_manifest(&media_type) {
        ManifestContent::Image(serde_json::from_slice(bytes).map_err(parse_error)?)
    } else if media_types::is_manifest_list(&media_type) {
        ManifestContent::Index(serde_json::from_slice(bytes).map_err(parse_error)?)
    } else {
        return Err(UpstreamError::UnsupportedMediaType {
            target: target.to_owned(),
            media_type,
        });
    };
    Ok(Checked {
        digest: Digest::sha256_of(bytes),
        media_type,
        content,
    })
}

/// The media type spelled as the constants spell it when it is one of them (registries
/// vary in case), else as given.
fn canonical(media_type: &str) -> String {
    [
        OCI_MANIFEST,
        OCI_INDEX,
        DOCKER_MANIFEST_V2,
        DOCKER_MANIFEST_LIST,
    ]
    .into_iter()
    .find(|c| c.eq_ignore_ascii_case(media_type))
    .unwrap_or(media_type)
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OCI: &str = r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:5061228a56e717ecd0bfee630aaba6ceccbccc86143003c141b92d3aa1267f6e","size":404},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:e4df027bf440a146ad6f87ca58fc15b0b0578194c1579e56dfcca6c86c4fedeb","size":144}]}"#;
    const INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:d12a3dfda194e0af3a95e27dd5908d0ac79a7c47038d4d4eb527ca57fe9b098e","size":345,"platform":{"architecture":"amd64","os":"linux"}}]}"#;
    const DOCKER_LIST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:d12a3dfda194e0af3a95e27dd5908d0ac79a7c47038d4d4eb527ca57fe9b098e","size":345,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}"#;
    const SCHEMA1: &str = r#"{"schemaVersion":1,"name":"a/b","tag":"1","architecture":"amd64","fsLayers":[],"history":[],"signatures":[]}"#;

    fn check(
        body: &str,
        ct: Option<&str>,
        req: Option<&Digest>,
        hdr: Option<&str>,
    ) -> Result<Checked, UpstreamError> {
        check_manifest("t", &Bytes::copy_from_slice(body.as_bytes()), ct, req, hdr)
    }

    #[test]
    fn media_type_from_header_body_or_shape() {
        let c = check(
            OCI,
            Some("application/vnd.oci.image.manifest.v1+json"),
            None,
            None,
        )
        .unwrap();
        assert_eq!(c.media_type, OCI_MANIFEST);
        assert!(matches!(c.content, ManifestContent::Image(_)));
        assert_eq!(c.digest, Digest::sha256_of(OCI.as_bytes()));
        // No useful header, no mediaType: guessed from the shape.
        let c = check(OCI, Some("application/json"), None, None).unwrap();
        assert_eq!(c.media_type, OCI_MANIFEST);
        let c = check(INDEX, Some("text/plain"), None, None).unwrap();
        assert_eq!(c.media_type, OCI_INDEX);
        let c = check(DOCKER_LIST, None, None, None).unwrap();
        assert_eq!(c.media_type, DOCKER_MANIFEST_LIST);
        let ManifestContent::Index(idx) = c.content else {
            panic!("not an index")
        };
        assert_eq!(idx.manifests().len(), 1);
        // The body wins over a disagreeing header.
        let c = check(INDEX, Some(DOCKER_MANIFEST_LIST), None, None).unwrap();
        assert_eq!(c.media_type, OCI_INDEX);
        // Case and parameters are normalized.
        let c = check(
            OCI,
            Some("Application/VND.OCI.image.manifest.v1+json; charset=utf-8"),
            None,
            None,
        )
        .unwrap();
        assert_eq!(c.media_type, OCI_MANIFEST);
    }

    #[test]
    fn digests_are_verified() {
        let good = Digest::sha256_of(OCI.as_bytes());
        let other = Digest::sha256_of(b"other");
        assert!(check(OCI, None, Some(&good), None).is_ok());
        let e = check(OCI, None, Some(&other), None).unwrap_err();
        assert_eq!(e.reason(), "Invalid");
        let UpstreamError::DigestMismatch { actual, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(actual, &good);
        // sha512 requests are checked with sha512; the recorded digest is sha256.
        let s512 = Digest::sha512_of(OCI.as_bytes());
        assert_eq!(check(OCI, None, Some(&s512), None).unwrap().digest, good);
        // By tag: the header must match.
        assert!(check(OCI, None, None, Some(good.as_str())).is_ok());
        let e = check(OCI, None, None, Some(other.as_str())).unwrap_err();
        assert!(e.message().contains("Docker-Content-Digest"), "{e}");
        let e = check(OCI, None, None, Some("md5:abc")).unwrap_err();
        assert_eq!(e.reason(), "BadRequest");
    }

    #[test]
    fn refusals() {
        let e = check(SCHEMA1, Some("application/json"), None, None).unwrap_err();
        assert!(
            matches!(e, UpstreamError::UnsupportedSchema1 { ref media_type, .. } if media_type == DOCKER_MANIFEST_V1_SIGNED)
        );
        let e = check(OCI, Some(DOCKER_MANIFEST_V1), None, None).unwrap_err();
        assert!(matches!(e, UpstreamError::UnsupportedSchema1 { .. }));
        let e = check("{\"schemaVersion\":2}", None, None, None).unwrap_err();
        assert!(matches!(e, UpstreamError::UnsupportedMediaType { .. }));
        let artifact =
            r#"{"mediaType":"application/vnd.oci.artifact.manifest.v1+json","blobs":[]}"#;
        let e = check(artifact, None, None, None).unwrap_err();
        assert!(matches!(e, UpstreamError::UnsupportedMediaType { .. }));
        let e = check("nope", None, None, None).unwrap_err();
        assert!(matches!(e, UpstreamError::InvalidContent { .. }));
        let e = check(
            r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
            None,
            None,
            None,
        )
        .unwrap_err();
        assert!(
            e.message()
                .starts_with("invalid application/vnd.oci.image.manifest.v1+json manifest"),
            "{e}"
        );
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_MANIFEST_BYTES as usize));
        let e = check(&big, None, None, None).unwrap_err();
        assert!(matches!(e, UpstreamError::TooLarge { .. }));
    }
}

/// Property tests (the stand-in for `cargo fuzz`): no manifest bytes, content type
/// or digest header make the decoder panic, and what it accepts hashes to what was
/// asked for.
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// Manifest-shaped JSON with fields in and out of place.
    fn manifest_like() -> impl Strategy<Value = Vec<u8>> {
        let media = prop_oneof![
            Just(OCI_MANIFEST),
            Just(OCI_INDEX),
            Just(DOCKER_MANIFEST_V2),
            Just(DOCKER_MANIFEST_LIST),
            Just(DOCKER_MANIFEST_V1),
            Just("text/plain"),
        ];
        let descriptor = (media.clone(), "[0-9a-f]{0,64}", any::<i64>()).prop_map(|(m, h, size)| {
            serde_json::json!({"mediaType": m, "digest": format!("sha256:{h}"), "size": size})
        });
        (
            prop::option::of(any::<i64>()),
            prop::option::of(media),
            prop::option::of(descriptor.clone()),
            prop::collection::vec(descriptor, 0..4),
            any::<bool>(),
        )
            .prop_map(|(version, media, config, list, layers)| {
                let mut m = serde_json::Map::new();
                if let Some(v) = version {
                    m.insert("schemaVersion".into(), v.into());
                }
                if let Some(t) = media {
                    m.insert("mediaType".into(), t.into());
                }
                if let Some(c) = config {
                    m.insert("config".into(), c);
                }
                let key = if layers { "layers" } else { "manifests" };
                m.insert(key.into(), serde_json::Value::Array(list));
                serde_json::to_vec(&m).unwrap_or_default()
            })
    }

    proptest! {
        #[test]
        fn any_bytes_are_checked_without_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..512),
            content_type in prop::option::of("[a-z./+-]{0,40}"),
            header in prop::option::of("[a-z0-9:]{0,80}"),
        ) {
            let bytes = Bytes::from(bytes);
            let _ = check_manifest("r/x:1", &bytes, content_type.as_deref(), None, header.as_deref());
        }

        #[test]
        fn manifest_shaped_json_is_classified_without_panic(bytes in manifest_like()) {
            let bytes = Bytes::from(bytes);
            let digest = Digest::sha256_of(&bytes);
            if check_manifest("r/x:1", &bytes, None, Some(&digest), None).is_ok() {
                prop_assert!(digest.matches(&bytes));
            }
            let header = digest.to_string();
            let _ = check_manifest("r/x:1", &bytes, Some(OCI_MANIFEST), None, Some(header.as_str()));
        }
    }
}
