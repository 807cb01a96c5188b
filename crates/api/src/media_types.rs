//! Media types of OCI and Docker manifests, indexes, configs and layers, and helpers
//! to classify them. IO-free string constants and predicates.
//!
//! The predicates ignore media type parameters (`; charset=utf-8`) and ASCII case, as
//! registries are not consistent about either.

use std::sync::LazyLock;

use regex::Regex;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (a multi-platform manifest list).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layer, uncompressed tar.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI layer, gzip-compressed tar.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI layer, zstd-compressed tar.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI non-distributable layer, uncompressed tar (deprecated by the spec).
pub const OCI_LAYER_NONDISTRIBUTABLE: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// OCI non-distributable layer, gzip-compressed tar (deprecated by the spec).
pub const OCI_LAYER_NONDISTRIBUTABLE_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// OCI non-distributable layer, zstd-compressed tar (deprecated by the spec).
pub const OCI_LAYER_NONDISTRIBUTABLE_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
/// The OCI empty descriptor (`{}`), used as config of artifacts.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (schema 2, multi-platform).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config (schema 2).
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker layer, gzip-compressed tar.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker foreign layer (fetched from elsewhere, e.g. Windows base layers).
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker manifest, schema 1 (unsigned).
pub const DOCKER_MANIFEST_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker manifest, schema 1, signed (JWS).
pub const DOCKER_MANIFEST_V1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Manifest media types moor imports and serves, most preferred first: the value of
/// an `Accept` header for manifest requests.
pub const ACCEPTED_MANIFESTS: &[&str] = &[
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST_V2,
];

/// [`ACCEPTED_MANIFESTS`] joined for an `Accept` header.
pub fn accept_header() -> String {
    ACCEPTED_MANIFESTS.join(", ")
}

/// The media type without parameters, trimmed (`"a/b; charset=utf-8"` → `"a/b"`).
pub fn essence(media_type: &str) -> &str {
    media_type.split(';').next().unwrap_or("").trim()
}

fn is_one_of(media_type: &str, candidates: &[&str]) -> bool {
    let e = essence(media_type);
    candidates.iter().any(|c| c.eq_ignore_ascii_case(e))
}

/// Whether this is a multi-platform list: an OCI index or a Docker manifest list.
pub fn is_manifest_list(media_type: &str) -> bool {
    is_one_of(media_type, &[OCI_INDEX, DOCKER_MANIFEST_LIST])
}

/// Whether this is a Docker schema 1 manifest (signed or not).
pub fn is_schema1(media_type: &str) -> bool {
    is_one_of(media_type, &[DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED])
}

/// Whether this is a single-platform image manifest (OCI or Docker schema 2).
pub fn is_image_manifest(media_type: &str) -> bool {
    is_one_of(media_type, &[OCI_MANIFEST, DOCKER_MANIFEST_V2])
}

/// Whether this is any manifest kind moor knows: image manifest, list, or schema 1.
pub fn is_manifest(media_type: &str) -> bool {
    is_image_manifest(media_type) || is_manifest_list(media_type) || is_schema1(media_type)
}

/// Whether this is an image config media type (OCI or Docker).
pub fn is_config(media_type: &str) -> bool {
    is_one_of(media_type, &[OCI_CONFIG, DOCKER_CONFIG])
}

/// Whether this is a layer media type (OCI, Docker, or foreign/non-distributable).
pub fn is_layer(media_type: &str) -> bool {
    is_one_of(
        media_type,
        &[
            OCI_LAYER,
            OCI_LAYER_GZIP,
            OCI_LAYER_ZSTD,
            OCI_LAYER_NONDISTRIBUTABLE,
            OCI_LAYER_NONDISTRIBUTABLE_GZIP,
            OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
            DOCKER_LAYER,
            DOCKER_FOREIGN_LAYER,
        ],
    )
}

/// Whether a layer must not be copied (foreign or non-distributable).
pub fn is_foreign_layer(media_type: &str) -> bool {
    is_one_of(
        media_type,
        &[
            DOCKER_FOREIGN_LAYER,
            OCI_LAYER_NONDISTRIBUTABLE,
            OCI_LAYER_NONDISTRIBUTABLE_GZIP,
            OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
        ],
    )
}

static RFC6838_RE: LazyLock<Regex> = LazyLock::new(|| {
    // A constant pattern; `rfc6838_pattern_compiles` compiles it.
    Regex::new(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")
        .expect("constant regex must compile")
});

/// Whether `media_type` is a syntactically valid `type/subtype` per RFC 6838 (no
/// parameters), the check OpenShift applies to `dockerImageManifests[].mediaType`.
pub fn is_valid_media_type(media_type: &str) -> bool {
    RFC6838_RE.is_match(media_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6838_pattern_compiles() {
        LazyLock::force(&RFC6838_RE);
    }

    #[test]
    fn classifies() {
        assert!(is_manifest_list(OCI_INDEX));
        assert!(is_manifest_list(DOCKER_MANIFEST_LIST));
        assert!(is_manifest_list(
            "application/vnd.oci.image.index.v1+json; charset=utf-8"
        ));
        assert!(!is_manifest_list(OCI_MANIFEST));
        assert!(is_schema1(DOCKER_MANIFEST_V1));
        assert!(is_schema1(DOCKER_MANIFEST_V1_SIGNED));
        assert!(!is_schema1(DOCKER_MANIFEST_V2));
        assert!(is_image_manifest(DOCKER_MANIFEST_V2));
        assert!(is_image_manifest(
            "Application/VND.OCI.Image.Manifest.v1+JSON"
        ));
        assert!(is_manifest(DOCKER_MANIFEST_V1));
        assert!(!is_manifest(OCI_CONFIG));
        assert!(is_config(DOCKER_CONFIG));
        assert!(is_layer(OCI_LAYER_ZSTD));
        assert!(is_layer(DOCKER_LAYER));
        assert!(!is_layer(OCI_MANIFEST));
        assert!(is_foreign_layer(DOCKER_FOREIGN_LAYER));
        assert!(!is_foreign_layer(DOCKER_LAYER));
        assert_eq!(essence(" a/b ; x=y"), "a/b");
    }

    #[test]
    fn accept_header_lists_all() {
        let h = accept_header();
        for mt in ACCEPTED_MANIFESTS {
            assert!(h.contains(mt));
        }
    }

    #[test]
    fn media_type_syntax() {
        assert!(is_valid_media_type(OCI_MANIFEST));
        assert!(is_valid_media_type("foo/bar"));
        assert!(!is_valid_media_type("foobar"));
        assert!(!is_valid_media_type("foo/bar; charset=utf-8"));
        assert!(!is_valid_media_type("/bar"));
    }
}
