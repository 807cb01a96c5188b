//! Well-known names of the image API: annotations, `from` kinds, condition reasons
//! and defaults, with OpenShift's values. IO-free constants.

/// `from.kind` of a tag that imports from a registry.
pub const KIND_DOCKER_IMAGE: &str = "DockerImage";
/// `from.kind` of a tag that follows (or copies) another tag: `stream:tag`.
pub const KIND_IMAGE_STREAM_TAG: &str = "ImageStreamTag";
/// `from.kind` of a tag that points at one image of a stream: `stream@digest`.
pub const KIND_IMAGE_STREAM_IMAGE: &str = "ImageStreamImage";
/// The `from.kind` values a spec tag accepts.
pub const TAG_FROM_KINDS: &[&str] = &[
    KIND_DOCKER_IMAGE,
    KIND_IMAGE_STREAM_IMAGE,
    KIND_IMAGE_STREAM_TAG,
];

/// The tag used when none is given.
pub const DEFAULT_IMAGE_TAG: &str = "latest";

/// The condition type of a tag's import result.
pub const CONDITION_IMPORT_SUCCESS: &str = "ImportSuccess";

/// Set (to a timestamp) on a stream once a repository import has been attempted.
pub const DOCKER_IMAGE_REPOSITORY_CHECK_ANNOTATION: &str =
    "openshift.io/image.dockerRepositoryCheck";
/// `"true"` on a stream allows insecure (HTTP or unverified TLS) registry access.
pub const INSECURE_REPOSITORY_ANNOTATION: &str = "openshift.io/image.insecureRepository";
/// `"true"` on an image stored in (pushed to) the integrated registry.
pub const MANAGED_BY_OPENSHIFT_ANNOTATION: &str = "openshift.io/image.managed";
/// On a secret: do not return it from `imagestreams/secrets`.
pub const EXCLUDE_IMAGE_SECRET_ANNOTATION: &str = "openshift.io/image.excludeSecret";
/// On an image: the order of `dockerImageLayers` (`ascending` or `descending`).
pub const DOCKER_IMAGE_LAYERS_ORDER_ANNOTATION: &str = "image.openshift.io/dockerLayersOrder";
/// [`DOCKER_IMAGE_LAYERS_ORDER_ANNOTATION`] value: base layer first.
pub const DOCKER_IMAGE_LAYERS_ORDER_ASCENDING: &str = "ascending";
/// [`DOCKER_IMAGE_LAYERS_ORDER_ANNOTATION`] value: top layer first.
pub const DOCKER_IMAGE_LAYERS_ORDER_DESCENDING: &str = "descending";
/// On an image: its manifest and config are stored in the integrated registry.
pub const IMAGE_MANIFEST_BLOB_STORED_ANNOTATION: &str = "image.openshift.io/manifestBlobStored";
/// On a tag: the architecture to pick from a manifest list in `Legacy` import mode.
pub const IMPORTER_PREFER_ARCH_ANNOTATION: &str = "importer.image.openshift.io/prefer-arch";
/// On a tag: the OS to pick from a manifest list in `Legacy` import mode.
pub const IMPORTER_PREFER_OS_ANNOTATION: &str = "importer.image.openshift.io/prefer-os";
/// On a tag: the pull spec it was created from (set by `oc new-app`).
pub const IMPORTED_FROM_ANNOTATION: &str = "openshift.io/imported-from";
/// On a workload: image triggers, a JSON list of `{from: {kind, name}, fieldPath}`.
pub const TRIGGER_ANNOTATION: &str = "image.openshift.io/triggers";
/// On a workload: which image fields lookup may rewrite (`*` for all).
pub const RESOLVE_NAMES_ANNOTATION: &str = "alpha.image.policy.openshift.io/resolve-names";
/// A human-readable name of an object.
pub const DISPLAY_NAME_ANNOTATION: &str = "openshift.io/display-name";

/// Condition and import-status reasons (Kubernetes `StatusReason` values, as
/// OpenShift's importer writes them).
pub mod reasons {
    /// The image or repository does not exist.
    pub const NOT_FOUND: &str = "NotFound";
    /// The registry refused the credentials (or anonymous access).
    pub const UNAUTHORIZED: &str = "Unauthorized";
    /// The registry forbids access, or a policy forbids the registry.
    pub const FORBIDDEN: &str = "Forbidden";
    /// The request was malformed (e.g. a bad pull spec).
    pub const BAD_REQUEST: &str = "BadRequest";
    /// The request was invalid.
    pub const INVALID: &str = "Invalid";
    /// The registry did not answer in time.
    pub const TIMEOUT: &str = "Timeout";
    /// The registry is rate limiting.
    pub const TOO_MANY_REQUESTS: &str = "TooManyRequests";
    /// The registry or the importer failed.
    pub const INTERNAL_ERROR: &str = "InternalError";
    /// The registry could not be reached.
    pub const SERVICE_UNAVAILABLE: &str = "ServiceUnavailable";
}

/// `metav1.Status.status` values.
pub mod status {
    /// The operation succeeded.
    pub const SUCCESS: &str = "Success";
    /// The operation failed.
    pub const FAILURE: &str = "Failure";
}
