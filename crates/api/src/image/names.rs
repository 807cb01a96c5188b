//! Splitting and joining the names of `ImageStreamTag` (`stream:tag`) and
//! `ImageStreamImage` (`stream@digest`) objects, with OpenShift's error messages.
//! IO-free string functions.

use super::DEFAULT_IMAGE_TAG;

/// Errors from splitting an image stream tag or image name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// An image stream tag name contains `@`.
    #[error("{0:?} is an image stream image, not an image stream tag")]
    IsImageStreamImage(String),
    /// An image stream tag name does not contain exactly one `:`.
    #[error("expected exactly one : delimiter in the istag {0:?}")]
    TagDelimiter(String),
    /// An image stream tag name has an empty stream or tag.
    #[error("image stream tag name {0:?} must have a name and a tag")]
    TagMissingPart(String),
    /// An image stream image name does not contain exactly one `@`.
    #[error("expected exactly one @ in the isimage name {0:?}")]
    ImageDelimiter(String),
    /// An image stream image name has an empty stream or ID.
    #[error("image stream image name {0:?} must have a name and ID")]
    ImageMissingPart(String),
}

/// Splits `stream:tag` strictly: exactly one `:`, no `@`, both parts non-empty.
pub fn parse_image_stream_tag_name(name: &str) -> Result<(&str, &str), NameError> {
    if name.contains('@') {
        return Err(NameError::IsImageStreamImage(name.to_owned()));
    }
    let mut parts = name.split(':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(stream), Some(tag), None) => {
            if stream.is_empty() || tag.is_empty() {
                Err(NameError::TagMissingPart(name.to_owned()))
            } else {
                Ok((stream, tag))
            }
        }
        _ => Err(NameError::TagDelimiter(name.to_owned())),
    }
}

/// Splits `stream@id` strictly: exactly one `@`, both parts non-empty. The ID is not
/// checked here (OpenShift resolves digest prefixes against the stream's history).
pub fn parse_image_stream_image_name(name: &str) -> Result<(&str, &str), NameError> {
    let mut parts = name.split('@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(stream), Some(id), None) => {
            if stream.is_empty() || id.is_empty() {
                Err(NameError::ImageMissingPart(name.to_owned()))
            } else {
                Ok((stream, id))
            }
        }
        _ => Err(NameError::ImageDelimiter(name.to_owned())),
    }
}

/// Splits `stream[:tag]` leniently, as `oc` does for user input: the tag defaults to
/// `latest`; the flag says whether a `:` was present.
pub fn split_image_stream_tag(name: &str) -> (&str, &str, bool) {
    match name.split_once(':') {
        Some((stream, tag)) if !tag.is_empty() => (stream, tag, true),
        Some((stream, _)) => (stream, DEFAULT_IMAGE_TAG, true),
        None => (name, DEFAULT_IMAGE_TAG, false),
    }
}

/// `stream:tag`, with `latest` for an empty tag.
pub fn join_image_stream_tag(stream: &str, tag: &str) -> String {
    let tag = if tag.is_empty() {
        DEFAULT_IMAGE_TAG
    } else {
        tag
    };
    format!("{stream}:{tag}")
}

/// `stream@id`.
pub fn join_image_stream_image(stream: &str, id: &str) -> String {
    format!("{stream}@{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istag_names() {
        assert_eq!(
            parse_image_stream_tag_name("keycloak:20.0"),
            Ok(("keycloak", "20.0"))
        );
        assert_eq!(
            parse_image_stream_tag_name("keycloak")
                .unwrap_err()
                .to_string(),
            r#"expected exactly one : delimiter in the istag "keycloak""#
        );
        assert_eq!(
            parse_image_stream_tag_name("a:b:c"),
            Err(NameError::TagDelimiter("a:b:c".into()))
        );
        assert_eq!(
            parse_image_stream_tag_name(":x").unwrap_err().to_string(),
            r#"image stream tag name ":x" must have a name and a tag"#
        );
        assert_eq!(
            parse_image_stream_tag_name("a@sha256:x")
                .unwrap_err()
                .to_string(),
            r#""a@sha256:x" is an image stream image, not an image stream tag"#
        );
    }

    #[test]
    fn isimage_names() {
        assert_eq!(
            parse_image_stream_image_name("keycloak@sha256:abc"),
            Ok(("keycloak", "sha256:abc"))
        );
        assert!(matches!(
            parse_image_stream_image_name("keycloak"),
            Err(NameError::ImageDelimiter(_))
        ));
        assert!(matches!(
            parse_image_stream_image_name("a@b@c"),
            Err(NameError::ImageDelimiter(_))
        ));
        assert!(matches!(
            parse_image_stream_image_name("@x"),
            Err(NameError::ImageMissingPart(_))
        ));
    }

    #[test]
    fn lenient_split_and_join() {
        assert_eq!(split_image_stream_tag("a"), ("a", "latest", false));
        assert_eq!(split_image_stream_tag("a:"), ("a", "latest", true));
        assert_eq!(split_image_stream_tag("a:1"), ("a", "1", true));
        assert_eq!(join_image_stream_tag("a", ""), "a:latest");
        assert_eq!(join_image_stream_tag("a", "1"), "a:1");
        assert_eq!(join_image_stream_image("a", "sha256:x"), "a@sha256:x");
    }
}
