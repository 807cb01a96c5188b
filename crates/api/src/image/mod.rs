//! The `image.openshift.io/v1` API types, with OpenShift's exact JSON field names and
//! Go `omitempty` behaviour, plus their constants, defaulting and name helpers.
//! IO-free: data types and pure functions only.
//!
//! Every top-level kind implements `k8s_openapi::Resource` and `k8s_openapi::Metadata`
//! (so `kube::Api<ImageStream>` works through kube-core's blanket impl), serializes its
//! `kind` and `apiVersion`, and accepts JSON without them. Lists are
//! [`k8s_openapi::List`] aliases ([`ImageStreamList`] and friends).
//!
//! JSON rules kept from Go: a field without `omitempty` is always written (`null` for
//! a nil pointer, map or slice, `{}` for an empty struct); an `omitempty` field is
//! skipped when empty. Objects embedded in other objects (`ImageStreamTag.image`) are
//! written without `kind`/`apiVersion`, as the Go apiserver does.

mod constants;
mod defaults;
pub mod follow;
pub mod history;
mod images;
mod import;
mod names;
mod stream;
mod tag;

pub use constants::*;
pub use defaults::{ApplyDefaults, set_image_stream_defaults};
pub use images::*;
pub use import::*;
pub use names::*;
pub use stream::*;
pub use tag::*;

/// The API group, `image.openshift.io`.
pub const GROUP: &str = "image.openshift.io";
/// The API version within the group, `v1`.
pub const VERSION: &str = "v1";
/// `apiVersion` of every type here, `image.openshift.io/v1`.
pub const API_VERSION: &str = "image.openshift.io/v1";

/// A list of [`ImageStream`]s (`kind: ImageStreamList`).
pub type ImageStreamList = k8s_openapi::List<ImageStream>;
/// A list of [`ImageStreamTag`]s (`kind: ImageStreamTagList`).
pub type ImageStreamTagList = k8s_openapi::List<ImageStreamTag>;
/// A list of [`Image`]s (`kind: ImageList`).
pub type ImageList = k8s_openapi::List<Image>;

/// Implements `k8s_openapi::Resource`, `Metadata`, optionally `ListableResource`, and
/// [`TypeInfo`](crate::meta::TypeInfo) for a top-level kind of this group.
macro_rules! image_resource {
    ($ty:ident, kind: $kind:literal, plural: $plural:literal, scope: $scope:ident $(, list: $list:literal)?) => {
        impl k8s_openapi::Resource for $ty {
            const API_VERSION: &'static str = $crate::image::API_VERSION;
            const GROUP: &'static str = $crate::image::GROUP;
            const KIND: &'static str = $kind;
            const VERSION: &'static str = $crate::image::VERSION;
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = k8s_openapi::$scope;
        }

        impl k8s_openapi::Metadata for $ty {
            type Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

            fn metadata(&self) -> &Self::Ty {
                &self.metadata
            }

            fn metadata_mut(&mut self) -> &mut Self::Ty {
                &mut self.metadata
            }
        }

        $(
            impl k8s_openapi::ListableResource for $ty {
                const LIST_KIND: &'static str = $list;
            }
        )?

        impl $crate::meta::TypeInfo for $ty {
            const API_VERSION: &'static str = $crate::image::API_VERSION;
            const KIND: &'static str = $kind;
        }
    };
}

pub(crate) use image_resource;

#[cfg(test)]
mod tests;
