//! Spec tags as `moor tag`, `moor create istag` and `moor rollback` write them: parsing
//! a tag's source (registry pull spec, `stream:tag`, `stream@digest`) and destination
//! (`[namespace/]stream:tag`) with oc's rules and messages, resolving digest prefixes
//! against a stream's history, and replacing one spec tag of a stream with optimistic
//! concurrency. Talks to the API through [`Session`] only.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Api;
use kube::api::PostParams;
use moor_api::DockerImageReference;
use moor_api::image::{
    ApplyDefaults, ImageStream, ImageStreamImage, KIND_DOCKER_IMAGE, KIND_IMAGE_STREAM_IMAGE,
    KIND_IMAGE_STREAM_TAG, TagReference, split_image_stream_tag,
};

use crate::cli::SourceKind;
use crate::client::{ClientError, Session};
use crate::error::CliError;

/// The field manager moor's writes are recorded under in `managedFields`.
pub const FIELD_MANAGER: &str = "moor";

/// How often a read-modify-write of a stream is tried before giving up on conflicts
/// (client-go's `retry.DefaultRetry` has 5 steps).
const ATTEMPTS: usize = 5;

/// Errors of parsing sources and destinations and of resolving images, worded as oc
/// words them where oc has the same error.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TaggingError {
    /// SOURCE is not a pull spec.
    #[error("invalid SOURCE: {0}")]
    InvalidSource(String),
    /// A registry in a stream source.
    #[error("server in SOURCE is only allowed when providing a container image")]
    RegistryNotAllowed,
    /// `--source=istag` without a tag.
    #[error("--source=ImageStreamTag requires a valid <name>:<tag> in SOURCE")]
    TagRequired,
    /// `--source=isimage` without a digest.
    #[error("--source=ImageStreamImage requires a valid <name>@<id> in SOURCE")]
    IdRequired,
    /// A digest (prefix) with characters a digest cannot have.
    #[error("invalid image ID {0:?}: expected a digest such as sha256:4f2a... or a prefix of one")]
    InvalidId(String),
    /// A source tag without an image yet.
    #[error("{0:?} is not currently pointing to an image, cannot use it as the source of a tag")]
    NoImage(String),
    /// A source tag whose current image has a bad pull spec.
    #[error(
        "the image stream tag {tag:?} has an invalid pull spec and cannot be used to tag: {reason}"
    )]
    BadPullSpec {
        /// The source as typed.
        tag: String,
        /// Why the pull spec does not parse.
        reason: String,
    },
    /// No image of the stream has the digest (prefix).
    #[error("image stream {stream:?} has no image whose digest starts with {id:?}")]
    ImageNotFound {
        /// The stream.
        stream: String,
        /// The digest or prefix.
        id: String,
    },
    /// Several images of the stream have the digest prefix.
    #[error(
        "the digest prefix {id:?} is ambiguous: {} images of image stream {stream:?} match ({}); give more digits",
        .matches.len(), .matches.join(", ")
    )]
    Ambiguous {
        /// The stream.
        stream: String,
        /// The prefix.
        id: String,
        /// The digests that match, sorted.
        matches: Vec<String>,
    },
    /// `ns/stream` with the wrong number of parts.
    #[error("invalid image stream {0:?}")]
    InvalidStream(String),
    /// `/stream`.
    #[error("invalid namespace {namespace:?} for image stream {stream:?}")]
    InvalidNamespace {
        /// The empty namespace.
        namespace: String,
        /// The argument.
        stream: String,
    },
    /// `ns/`.
    #[error("invalid name {name:?} for image stream {stream:?}")]
    InvalidName {
        /// The empty name.
        name: String,
        /// The argument.
        stream: String,
    },
    /// A destination without `:`.
    #[error("{0:?} must be of the form <stream_name>:<tag>")]
    NotStreamTag(String),
    /// The stream kept changing under a read-modify-write.
    #[error(
        "image stream {0:?} kept changing while moor was updating it (conflicts on every attempt); try again"
    )]
    Conflict(String),
}

/// A source of a spec tag as the user gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A registry image (`DockerImage`).
    Docker(DockerImageReference),
    /// A tag of a stream (`ImageStreamTag`).
    Tag {
        /// The namespace given in SOURCE, if any.
        namespace: Option<String>,
        /// The stream.
        stream: String,
        /// The tag.
        tag: String,
    },
    /// An image of a stream by digest or digest prefix (`ImageStreamImage`).
    Image {
        /// The namespace given in SOURCE, if any.
        namespace: Option<String>,
        /// The stream.
        stream: String,
        /// The digest, or a prefix of it.
        id: String,
    },
}

impl Source {
    /// Parses SOURCE as `oc tag` does: `hint` says what it is; without one, a pull spec
    /// with a registry is a registry image, one with `@` an image of a stream, one with
    /// `:` a tag of a stream, and anything else a registry image (Docker Hub).
    pub fn parse(input: &str, hint: Option<SourceKind>) -> Result<Source, TaggingError> {
        let (name_part, id) = match input.split_once('@') {
            Some((name, id)) => (name, Some(id)),
            None => (input, None),
        };
        let reference = DockerImageReference::parse(name_part)
            .map_err(|e| TaggingError::InvalidSource(e.to_string()))?;
        let kind = hint.unwrap_or(if !reference.registry().is_empty() {
            SourceKind::Docker
        } else if id.is_some() {
            SourceKind::ImageStreamImage
        } else if reference.tag().is_some() {
            SourceKind::ImageStreamTag
        } else {
            SourceKind::Docker
        });
        if kind == SourceKind::Docker {
            let full = DockerImageReference::parse(input)
                .map_err(|e| TaggingError::InvalidSource(e.to_string()))?;
            return Ok(Source::Docker(full));
        }
        if !reference.registry().is_empty() {
            return Err(TaggingError::RegistryNotAllowed);
        }
        let namespace = Some(reference.namespace().to_string()).filter(|n| !n.is_empty());
        let stream = reference.name().to_string();
        if kind == SourceKind::ImageStreamTag {
            let tag = reference.tag().ok_or(TaggingError::TagRequired)?;
            return Ok(Source::Tag {
                namespace,
                stream,
                tag: tag.to_string(),
            });
        }
        let id = id
            .filter(|i| !i.is_empty())
            .ok_or(TaggingError::IdRequired)?;
        check_id(id)?;
        Ok(Source::Image {
            namespace,
            stream,
            id: id.to_string(),
        })
    }
}

/// Checks that `id` can be a digest or a prefix of one: `algorithm:hex...` or `hex...`.
pub fn check_id(id: &str) -> Result<(), TaggingError> {
    let hex = match id.split_once(':') {
        Some((alg, hex)) if !alg.is_empty() && alg.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            hex
        }
        Some(_) => return Err(TaggingError::InvalidId(id.to_string())),
        None => id,
    };
    if id.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(TaggingError::InvalidId(id.to_string()));
    }
    Ok(())
}

/// A destination tag, `[namespace/]stream:tag`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// The namespace (the session's unless given).
    pub namespace: String,
    /// The stream.
    pub stream: String,
    /// The tag (`latest` for `stream:`).
    pub tag: String,
    /// `stream:tag` as typed, without the namespace (what oc's messages print).
    pub name_and_tag: String,
}

impl Destination {
    /// Parses a DEST of `moor tag` with oc's rules and messages.
    pub fn parse(default_namespace: &str, arg: &str) -> Result<Destination, TaggingError> {
        let (namespace, name_and_tag) = match arg.split_once('/') {
            None => (default_namespace, arg),
            Some((ns, rest)) => {
                if rest.contains('/') {
                    return Err(TaggingError::InvalidStream(arg.to_string()));
                }
                if ns.is_empty() {
                    return Err(TaggingError::InvalidNamespace {
                        namespace: ns.to_string(),
                        stream: arg.to_string(),
                    });
                }
                if rest.is_empty() {
                    return Err(TaggingError::InvalidName {
                        name: rest.to_string(),
                        stream: arg.to_string(),
                    });
                }
                (ns, rest)
            }
        };
        let (stream, tag, has_colon) = split_image_stream_tag(name_and_tag);
        if !has_colon || stream.is_empty() {
            return Err(TaggingError::NotStreamTag(name_and_tag.to_string()));
        }
        Ok(Destination {
            namespace: namespace.to_string(),
            stream: stream.to_string(),
            tag: tag.to_string(),
            name_and_tag: name_and_tag.to_string(),
        })
    }
}

/// `from` of a spec tag.
pub fn object_reference(kind: &str, name: &str, namespace: Option<&str>) -> ObjectReference {
    ObjectReference {
        kind: Some(kind.to_string()),
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        ..Default::default()
    }
}

/// `ns/name` when a namespace is given, else `name`.
pub fn qualified(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// Whether digest `image` matches `id`: `id` is a prefix of the whole digest or of its
/// hex part (as OpenShift resolves `stream@id`).
pub fn id_matches(image: &str, id: &str) -> bool {
    image.starts_with(id)
        || image
            .split_once(':')
            .is_some_and(|(_, hex)| hex.starts_with(id))
}

/// The distinct images of `stream`'s history that match `id`, sorted.
pub fn matching_images(stream: &ImageStream, id: &str) -> Vec<String> {
    let set: BTreeSet<&str> = stream
        .status
        .tags
        .iter()
        .flat_map(|t| t.items.iter())
        .map(|e| e.image.as_str())
        .filter(|image| !image.is_empty() && id_matches(image, id))
        .collect();
    set.into_iter().map(str::to_string).collect()
}

/// The one image of `stream` whose digest is or starts with `id`.
pub fn unique_image(stream: &ImageStream, id: &str) -> Result<String, TaggingError> {
    let name = stream.metadata.name.clone().unwrap_or_default();
    let mut matches = matching_images(stream, id);
    match matches.len() {
        0 => Err(TaggingError::ImageNotFound {
            stream: name,
            id: id.to_string(),
        }),
        1 => Ok(matches.remove(0)),
        _ => Err(TaggingError::Ambiguous {
            stream: name,
            id: id.to_string(),
            matches,
        }),
    }
}

/// The HTTP code and reason of a server error.
pub fn api_status(e: &ClientError) -> Option<(u16, &str)> {
    match e {
        ClientError::Api(s) => Some((s.code, s.reason.as_str())),
        _ => None,
    }
}

/// Resolves `id` (a digest or a unique prefix) to the full digest of an image in
/// `stream`'s history: asks the server (`imagestreamimages`, which resolves
/// prefixes), and scans the stream's history itself when the server does not serve
/// that resource. Fails, writing nothing, when no image or several match.
pub async fn resolve_image_id(
    session: &Session,
    namespace: &str,
    stream: &str,
    id: &str,
) -> Result<String, CliError> {
    check_id(id)?;
    let images: Api<ImageStreamImage> = Api::namespaced(session.client.clone(), namespace);
    match images.get(&format!("{stream}@{id}")).await {
        Ok(isi) => {
            let name = isi.image.metadata.name.unwrap_or_default();
            if name.contains(':') && id_matches(&name, id) {
                return Ok(name);
            }
            tracing::debug!(%name, "imagestreamimages answered an unexpected name; scanning the stream");
        }
        Err(e) => {
            let e = session.error(e);
            match api_status(&e) {
                // Not served here (or not found): the stream's history decides.
                Some((404 | 405, _)) => {
                    tracing::debug!(error = %e, "imagestreamimages lookup failed; scanning the stream")
                }
                _ => return Err(e.into()),
            }
        }
    }
    let streams: Api<ImageStream> = Api::namespaced(session.client.clone(), namespace);
    let found = streams.get(stream).await.map_err(|e| session.error(e))?;
    Ok(unique_image(&found, id)?)
}

/// Runs `request` again (up to [`ATTEMPTS`] times in all) while the server answers
/// 409 Conflict, which a write of an image stream tag can meet when the import
/// controller writes the same stream at the same moment. (`AlreadyExists`, also a
/// 409, is not retried.)
pub async fn retry_on_conflict<T, F, Fut>(mut request: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let mut attempt = 1;
    loop {
        match request().await {
            Err(e)
                if attempt < ATTEMPTS
                    && api_status(&e)
                        .is_some_and(|(code, reason)| code == 409 && reason == "Conflict") =>
            {
                tracing::debug!(attempt, error = %e, "conflict; retrying");
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Whether two spec tags ask for the same thing (defaults applied, generation ignored).
pub fn same_spec(a: &TagReference, b: &TagReference) -> bool {
    fn normalized(t: &TagReference) -> TagReference {
        let mut t = t.clone();
        t.apply_defaults();
        t.generation = None;
        if t.annotations.as_ref().is_some_and(BTreeMap::is_empty) {
            t.annotations = None;
        }
        if let Some(from) = &mut t.from
            && from.namespace.as_deref() == Some("")
        {
            from.namespace = None;
        }
        t
    }
    normalized(a) == normalized(b)
}

/// Sets spec tag `tag.name` of `stream` in `namespace` (creating the stream when it is
/// missing) by GET and PUT with the stream's resourceVersion, retrying on conflicts.
/// The tag's generation is set to 0, which asks for a new import, when the new spec
/// equals the old one or when `reimport` is true; otherwise the server gives it the
/// stream's next generation. Returns the spec tag it replaced, if any.
pub async fn set_spec_tag(
    session: &Session,
    namespace: &str,
    stream: &str,
    tag: &TagReference,
    reimport: bool,
) -> Result<Option<TagReference>, CliError> {
    let api: Api<ImageStream> = Api::namespaced(session.client.clone(), namespace);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    for attempt in 1..=ATTEMPTS {
        let current = api.get_opt(stream).await.map_err(|e| session.error(e))?;
        let Some(mut current) = current else {
            let mut created = ImageStream::default();
            created.metadata.name = Some(stream.to_string());
            created.metadata.namespace = Some(namespace.to_string());
            let mut t = tag.clone();
            t.generation = None;
            created.spec.tags.push(t);
            match api.create(&params, &created).await {
                Ok(_) => return Ok(None),
                Err(e) => {
                    let e = session.error(e);
                    if api_status(&e).is_some_and(|(code, _)| code == 409) {
                        tracing::debug!(attempt, "stream appeared meanwhile; retrying");
                        continue;
                    }
                    return Err(e.into());
                }
            }
        };
        let previous = current.spec_tag(&tag.name).cloned();
        let mut t = tag.clone();
        let unchanged = previous.as_ref().is_some_and(|p| same_spec(p, tag));
        t.generation = (unchanged || reimport).then_some(0);
        match current.spec_tag_mut(&tag.name) {
            Some(existing) => *existing = t,
            None => current.spec.tags.push(t),
        }
        match api.replace(stream, &params, &current).await {
            Ok(_) => return Ok(previous),
            Err(e) => {
                let e = session.error(e);
                if api_status(&e).is_some_and(|(code, _)| code == 409) {
                    tracing::debug!(attempt, "conflict writing the stream; retrying");
                    continue;
                }
                return Err(e.into());
            }
        }
    }
    Err(TaggingError::Conflict(stream.to_string()).into())
}

/// The `from.kind` of a [`Source`].
pub fn kind_of(source: &Source) -> &'static str {
    match source {
        Source::Docker(_) => KIND_DOCKER_IMAGE,
        Source::Tag { .. } => KIND_IMAGE_STREAM_TAG,
        Source::Image { .. } => KIND_IMAGE_STREAM_IMAGE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moor_api::image::{NamedTagEventList, TagEvent, TagImportPolicy};

    const A: &str = "sha256:aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111";
    const A2: &str = "sha256:aaaa2222aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111";
    const B: &str = "sha256:bbbb1111aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111";

    #[test]
    fn sources_are_guessed_like_oc() {
        let s = Source::parse("quay.io/keycloak/keycloak:20.0.3", None).unwrap();
        assert!(matches!(&s, Source::Docker(r) if r.exact() == "quay.io/keycloak/keycloak:20.0.3"));
        assert_eq!(
            Source::parse("keycloak:20.0", None).unwrap(),
            Source::Tag {
                namespace: None,
                stream: "keycloak".into(),
                tag: "20.0".into()
            }
        );
        assert_eq!(
            Source::parse("team/keycloak:20.0", None).unwrap(),
            Source::Tag {
                namespace: Some("team".into()),
                stream: "keycloak".into(),
                tag: "20.0".into()
            }
        );
        assert_eq!(
            Source::parse("keycloak@sha256:4f2a", None).unwrap(),
            Source::Image {
                namespace: None,
                stream: "keycloak".into(),
                id: "sha256:4f2a".into()
            }
        );
        assert_eq!(
            Source::parse("keycloak@4f2a", None).unwrap(),
            Source::Image {
                namespace: None,
                stream: "keycloak".into(),
                id: "4f2a".into()
            }
        );
        // No registry, tag or digest: Docker Hub.
        assert!(matches!(
            Source::parse("nginx", None).unwrap(),
            Source::Docker(_)
        ));
        // The hint wins.
        assert!(matches!(
            Source::parse("nginx:1.27", Some(SourceKind::Docker)).unwrap(),
            Source::Docker(_)
        ));
        assert!(matches!(
            Source::parse(&format!("quay.io/k/k@{A}"), None).unwrap(),
            Source::Docker(_)
        ));
    }

    #[test]
    fn bad_sources_say_why() {
        assert_eq!(
            Source::parse("quay.io/k/k:1", Some(SourceKind::ImageStreamTag)),
            Err(TaggingError::RegistryNotAllowed)
        );
        assert_eq!(
            Source::parse("keycloak", Some(SourceKind::ImageStreamTag)),
            Err(TaggingError::TagRequired)
        );
        assert_eq!(
            Source::parse("keycloak:1", Some(SourceKind::ImageStreamImage)),
            Err(TaggingError::IdRequired)
        );
        assert!(matches!(
            Source::parse("keycloak@xyz!", None),
            Err(TaggingError::InvalidId(_))
        ));
        assert!(matches!(
            Source::parse("Bad Name:1", None),
            Err(TaggingError::InvalidSource(_))
        ));
        assert!(matches!(
            Source::parse("quay.io/k/k@sha256:4f2a", None),
            Err(TaggingError::InvalidSource(_))
        ));
    }

    #[test]
    fn destinations() {
        let d = Destination::parse("default", "keycloak:20.0").unwrap();
        assert_eq!(
            (d.namespace.as_str(), d.stream.as_str(), d.tag.as_str()),
            ("default", "keycloak", "20.0")
        );
        let d = Destination::parse("default", "team/keycloak:").unwrap();
        assert_eq!(
            (
                d.namespace.as_str(),
                d.tag.as_str(),
                d.name_and_tag.as_str()
            ),
            ("team", "latest", "keycloak:")
        );
        assert_eq!(
            Destination::parse("default", "keycloak")
                .unwrap_err()
                .to_string(),
            "\"keycloak\" must be of the form <stream_name>:<tag>"
        );
        assert!(matches!(
            Destination::parse("default", "a/b/c:1"),
            Err(TaggingError::InvalidStream(_))
        ));
        assert!(matches!(
            Destination::parse("default", "/c:1"),
            Err(TaggingError::InvalidNamespace { .. })
        ));
    }

    fn stream() -> ImageStream {
        let mut s = ImageStream::default();
        s.metadata.name = Some("keycloak".into());
        let event = |image: &str| TagEvent {
            image: image.into(),
            docker_image_reference: format!("quay.io/k/k@{image}"),
            ..Default::default()
        };
        s.status.tags = vec![
            NamedTagEventList {
                tag: "1".into(),
                items: vec![event(A), event(B)],
                conditions: vec![],
            },
            NamedTagEventList {
                tag: "2".into(),
                items: vec![event(A2), event(A)],
                conditions: vec![],
            },
        ];
        s
    }

    #[test]
    fn prefixes_resolve_uniquely_or_not_at_all() {
        let s = stream();
        assert_eq!(unique_image(&s, "bbbb").unwrap(), B);
        assert_eq!(unique_image(&s, "sha256:bb").unwrap(), B);
        assert_eq!(unique_image(&s, A).unwrap(), A);
        assert_eq!(unique_image(&s, "aaaa1").unwrap(), A);
        let err = unique_image(&s, "sha256:aaaa").unwrap_err();
        assert_eq!(
            err,
            TaggingError::Ambiguous {
                stream: "keycloak".into(),
                id: "sha256:aaaa".into(),
                matches: vec![A.into(), A2.into()],
            }
        );
        assert!(err.to_string().contains("is ambiguous: 2 images"), "{err}");
        assert!(matches!(
            unique_image(&s, "cccc"),
            Err(TaggingError::ImageNotFound { .. })
        ));
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_id("sha256:4f2a").is_ok());
        assert!(check_id("4f2a").is_ok());
        assert!(check_id("sha256:").is_ok());
        assert!(check_id("").is_err());
        assert!(check_id(":4f").is_err());
        assert!(check_id("sha256:xyz").is_err());
    }

    #[test]
    fn specs_compare_with_defaults_and_without_generation() {
        let a = TagReference {
            name: "1".into(),
            from: Some(object_reference(KIND_DOCKER_IMAGE, "quay.io/k/k:1", None)),
            generation: Some(3),
            ..Default::default()
        };
        let mut b = a.clone();
        b.generation = Some(7);
        b.apply_defaults();
        b.annotations = Some(BTreeMap::new());
        assert!(same_spec(&a, &b));
        b.import_policy = TagImportPolicy {
            scheduled: true,
            ..Default::default()
        };
        assert!(!same_spec(&a, &b));
    }
}
