//! OpenShift's defaulting of `image.openshift.io/v1` objects, applied by the server
//! before validation and storage. IO-free: mutates values in place.
//!
//! OpenShift defaults on decode: an empty `referencePolicy.type` becomes `Source`, an
//! empty `importPolicy.importMode` becomes `Legacy`, and an `ImageImportSpec` without
//! `to` takes the tag of its `from` pull spec.

use k8s_openapi::api::core::v1::LocalObjectReference;

use crate::reference::DockerImageReference;

use super::{
    ImageImportSpec, ImageStream, ImageStreamImport, ImageStreamTag, ImportMode,
    RepositoryImportSpec, TagImportPolicy, TagReference, TagReferencePolicy,
    TagReferencePolicyType,
};

/// Applies OpenShift's defaults to a value and everything inside it.
pub trait ApplyDefaults {
    /// Fills the fields OpenShift defaults and that are empty.
    fn apply_defaults(&mut self);
}

/// Applies OpenShift's defaults to an image stream: every spec tag gets
/// `referencePolicy.type: Source` and `importPolicy.importMode: Legacy` when empty.
pub fn set_image_stream_defaults(stream: &mut ImageStream) {
    stream.apply_defaults();
}

impl ApplyDefaults for TagReferencePolicy {
    fn apply_defaults(&mut self) {
        if self.type_.is_none() {
            self.type_ = Some(TagReferencePolicyType::Source);
        }
    }
}

impl ApplyDefaults for TagImportPolicy {
    fn apply_defaults(&mut self) {
        if self.import_mode.is_none() {
            self.import_mode = Some(ImportMode::Legacy);
        }
    }
}

impl ApplyDefaults for TagReference {
    fn apply_defaults(&mut self) {
        self.import_policy.apply_defaults();
        self.reference_policy.apply_defaults();
    }
}

impl ApplyDefaults for ImageStream {
    fn apply_defaults(&mut self) {
        for tag in &mut self.spec.tags {
            tag.apply_defaults();
        }
    }
}

impl ApplyDefaults for ImageStreamTag {
    fn apply_defaults(&mut self) {
        if let Some(tag) = &mut self.tag {
            tag.apply_defaults();
        }
    }
}

impl ApplyDefaults for ImageImportSpec {
    fn apply_defaults(&mut self) {
        if self.to.is_none() {
            let tag = self
                .from
                .name
                .as_deref()
                .and_then(|name| DockerImageReference::parse(name).ok())
                .and_then(|r| r.tag().map(str::to_owned));
            if let Some(tag) = tag {
                self.to = Some(LocalObjectReference { name: tag });
            }
        }
        self.import_policy.apply_defaults();
        self.reference_policy.apply_defaults();
    }
}

impl ApplyDefaults for RepositoryImportSpec {
    fn apply_defaults(&mut self) {
        self.import_policy.apply_defaults();
        self.reference_policy.apply_defaults();
    }
}

impl ApplyDefaults for ImageStreamImport {
    fn apply_defaults(&mut self) {
        if let Some(repo) = &mut self.spec.repository {
            repo.apply_defaults();
        }
        for image in &mut self.spec.images {
            image.apply_defaults();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;

    #[test]
    fn stream_defaults_fill_only_empty_fields() {
        let mut is = ImageStream::default();
        is.spec.tags.push(TagReference {
            name: "a".into(),
            ..Default::default()
        });
        is.spec.tags.push(TagReference {
            name: "b".into(),
            import_policy: TagImportPolicy {
                import_mode: Some(ImportMode::PreserveOriginal),
                ..Default::default()
            },
            reference_policy: TagReferencePolicy {
                type_: Some(TagReferencePolicyType::Local),
            },
            ..Default::default()
        });
        set_image_stream_defaults(&mut is);
        let a = is.spec_tag("a").unwrap();
        assert_eq!(
            a.reference_policy.type_,
            Some(TagReferencePolicyType::Source)
        );
        assert_eq!(a.import_policy.import_mode, Some(ImportMode::Legacy));
        let b = is.spec_tag("b").unwrap();
        assert_eq!(
            b.reference_policy.type_,
            Some(TagReferencePolicyType::Local)
        );
        assert_eq!(
            b.import_policy.import_mode,
            Some(ImportMode::PreserveOriginal)
        );
    }

    #[test]
    fn import_spec_defaults_to_from_tag() {
        let mut isi = ImageStreamImport::default();
        isi.spec.images.push(ImageImportSpec {
            from: ObjectReference {
                kind: Some("DockerImage".into()),
                name: Some("quay.io/keycloak/keycloak:20.0.2".into()),
                ..Default::default()
            },
            ..Default::default()
        });
        isi.spec.images.push(ImageImportSpec {
            from: ObjectReference {
                kind: Some("DockerImage".into()),
                name: Some("quay.io/keycloak/keycloak".into()),
                ..Default::default()
            },
            ..Default::default()
        });
        isi.apply_defaults();
        assert_eq!(isi.spec.images[0].to.as_ref().unwrap().name, "20.0.2");
        assert!(isi.spec.images[1].to.is_none());
        assert_eq!(
            isi.spec.images[1].reference_policy.type_,
            Some(TagReferencePolicyType::Source)
        );
    }
}
