//! `PartialObjectMetadata` responses, as kube-apiserver's `asPartialObjectMetadata`
//! and `asPartialObjectMetadataList`: what client-go's metadata client (and so
//! kube-controller-manager's garbage collector and quota informers) asks for with
//! `Accept: application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1`.
//! Objects keep their `metadata` only, under `meta.k8s.io/<version>`.

use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::resource::ObjectList;

/// A request for metadata only: which `meta.k8s.io` version, and whether the
/// list kind (`PartialObjectMetadataList`) was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PartialMetadata {
    /// `v1` or `v1beta1`.
    pub(super) version: &'static str,
    /// `as=PartialObjectMetadataList` rather than `as=PartialObjectMetadata`.
    pub(super) list: bool,
}

impl PartialMetadata {
    fn api_version(&self) -> String {
        format!("meta.k8s.io/{}", self.version)
    }

    /// One object as a `PartialObjectMetadata` (also what each watch event carries).
    pub(super) fn item(&self, obj: &Value) -> Value {
        json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": self.api_version(),
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })
    }

    /// The answer to a request for one object: 406 when a list was asked for.
    pub(super) fn object(&self, obj: &Value) -> Result<Value, ApiError> {
        if self.list {
            return Err(ApiError::NotAcceptable(
                "you requested PartialObjectMetadataList, but the requested object is not a list"
                    .into(),
            ));
        }
        Ok(self.item(obj))
    }

    /// Refuses (406) a list request that asked for the single-object kind.
    pub(super) fn check_list(&self) -> Result<(), ApiError> {
        if self.list {
            Ok(())
        } else {
            Err(ApiError::NotAcceptable(
                "you requested PartialObjectMetadata, but the requested object is a list".into(),
            ))
        }
    }

    /// A `PartialObjectMetadataList` keeping the list's `resourceVersion`,
    /// `continue` and `remainingItemCount`.
    pub(super) fn list(&self, list: &ObjectList) -> Value {
        let mut meta = Map::new();
        meta.insert("resourceVersion".into(), json!(list.resource_version));
        if let Some(c) = &list.continue_token {
            meta.insert("continue".into(), json!(c));
        }
        if let Some(n) = list.remaining {
            meta.insert("remainingItemCount".into(), json!(n));
        }
        let items: Vec<Value> = list.items.iter().map(|o| self.item(o)).collect();
        json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": self.api_version(),
            "metadata": meta,
            "items": items,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_keep_only_their_metadata() {
        let p = PartialMetadata {
            version: "v1",
            list: false,
        };
        let obj = json!({"kind": "Secret", "apiVersion": "v1",
                         "metadata": {"name": "s", "resourceVersion": "7"},
                         "data": {"k": "c2VjcmV0"}});
        let out = p.object(&obj).unwrap();
        assert_eq!(
            out,
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": {"name": "s", "resourceVersion": "7"}})
        );
        assert!(matches!(p.check_list(), Err(ApiError::NotAcceptable(_))));
        let l = PartialMetadata {
            version: "v1beta1",
            list: true,
        };
        assert!(matches!(l.object(&obj), Err(ApiError::NotAcceptable(_))));
        let list = l.list(&ObjectList {
            items: vec![obj],
            resource_version: "9".into(),
            continue_token: Some("c".into()),
            remaining: Some(3),
        });
        assert_eq!(list["kind"], "PartialObjectMetadataList");
        assert_eq!(list["apiVersion"], "meta.k8s.io/v1beta1");
        assert_eq!(
            list["metadata"],
            json!({"resourceVersion": "9", "continue": "c", "remainingItemCount": 3})
        );
        assert_eq!(list["items"][0]["kind"], "PartialObjectMetadata");
        assert!(list["items"][0].get("data").is_none());
    }
}
