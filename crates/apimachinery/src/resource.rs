//! What a served resource is: its names and scope ([`ResourceDef`]), how the generic
//! handlers reach it ([`RestStorage`], like kube-apiserver's `rest.Storage`), and the
//! per-request context. Calls nothing; implementations live in `stored` and `resources`.

use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;

use super::error::ApiError;
use super::patch::MergeKeys;
use super::selectors::{FieldSelector, LabelSelector};
use super::table::TableDef;

/// A resource within a group (`imagestreams.image.openshift.io`), as errors name it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl GroupResource {
    /// A new group-resource pair.
    pub fn new(group: &str, resource: &str) -> Self {
        GroupResource {
            group: group.to_string(),
            resource: resource.to_string(),
        }
    }
}

impl fmt::Display for GroupResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}", self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// The static description of a served resource: what discovery and OpenAPI publish.
#[derive(Clone, Debug)]
pub struct ResourceDef {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub list_kind: &'static str,
    /// The URL segment: `imagestreams`.
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub namespaced: bool,
    pub verbs: &'static [&'static str],
    /// Subresources served (`status`).
    pub subresources: &'static [&'static str],
    /// Field selector keys beyond `metadata.name` and `metadata.namespace`.
    pub selectable_fields: &'static [&'static str],
}

impl ResourceDef {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The group-resource pair used in messages.
    pub fn group_resource(&self) -> GroupResource {
        GroupResource::new(self.group, self.plural)
    }

    /// The URL path of a collection (or of one object when `name` is given).
    pub fn path(&self, namespace: Option<&str>, name: Option<&str>) -> String {
        let mut p = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        if let (true, Some(ns)) = (self.namespaced, namespace) {
            p.push_str(&format!("/namespaces/{ns}"));
        }
        p.push('/');
        p.push_str(self.plural);
        if let Some(n) = name {
            p.push('/');
            p.push_str(n);
        }
        p
    }
}

/// Verbs every stored resource supports.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// `fieldValidation`: what to do with fields the schema does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Refuse the request, naming the fields.
    Strict,
    /// Drop the fields and answer with a `Warning` header (the server default).
    #[default]
    Warn,
    /// Drop the fields silently.
    Ignore,
}

/// Who is asking (kube's `user.Info`), as the authenticator found it.
pub use moor_api::authz::UserInfo;

/// Per-request context handed to storage.
#[derive(Debug, Default)]
pub struct RequestContext {
    pub user: Option<UserInfo>,
    pub dry_run: bool,
    pub field_validation: FieldValidation,
    pub field_manager: Option<String>,
    /// `Warning` headers to send back.
    pub warnings: Mutex<Vec<String>>,
    /// The request's body is large ([`crate::stored::is_large_body`]): its write step
    /// runs off the async workers whatever the size of the stored object.
    pub large_body: bool,
}

impl RequestContext {
    /// Adds a `Warning` header to the response.
    pub fn warn(&self, message: impl Into<String>) {
        self.warnings
            .lock()
            .expect("warnings lock")
            .push(message.into());
    }

    /// Warnings gathered so far.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().expect("warnings lock"))
    }
}

/// Options of a list or watch.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub label_selector: LabelSelector,
    pub field_selector: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`: `Exact`, `NotOlderThan`, or unset.
    pub resource_version_match: Option<String>,
    pub allow_bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout_seconds: Option<u64>,
}

/// A page of objects, with the list's resourceVersion and continue token.
#[derive(Clone, Debug, Default)]
pub struct ObjectList {
    pub items: Vec<Value>,
    pub resource_version: String,
    pub continue_token: Option<String>,
    pub remaining: Option<i64>,
}

/// A page of objects already serialized (the fast path of plain lists).
#[derive(Clone, Debug, Default)]
pub struct EncodedList {
    /// The objects as JSON, separated by commas (the inside of `"items":[...]`).
    pub items: Vec<u8>,
    /// How many objects `items` holds.
    pub count: usize,
    pub resource_version: String,
    pub continue_token: Option<String>,
}

/// A list whose items arrive page by page: the body of a large list is written while
/// the store is read, never held whole.
pub struct StreamedList {
    pub resource_version: String,
    pub continue_token: Option<String>,
    /// Pieces of the inside of `"items":[...]` (commas included), in order.
    pub items: BoxStream<'static, Result<bytes::Bytes, ApiError>>,
}

impl From<EncodedList> for StreamedList {
    fn from(list: EncodedList) -> Self {
        StreamedList {
            resource_version: list.resource_version,
            continue_token: list.continue_token,
            items: futures::stream::once(async move { Ok(bytes::Bytes::from(list.items)) }).boxed(),
        }
    }
}

/// `DeleteOptions` that matter here.
#[derive(Clone, Debug, Default)]
pub struct DeletePreconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

/// One watch event.
#[derive(Clone, Debug)]
pub enum WatchEvent {
    Added(Value),
    Modified(Value),
    Deleted(Value),
    /// A progress marker: an object carrying only `metadata.resourceVersion`.
    Bookmark(Value),
    /// The watch cannot go on (e.g. 410 Expired).
    Error(Value),
}

impl WatchEvent {
    /// The wire name of the event type.
    pub fn type_name(&self) -> &'static str {
        match self {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Modified(_) => "MODIFIED",
            WatchEvent::Deleted(_) => "DELETED",
            WatchEvent::Bookmark(_) => "BOOKMARK",
            WatchEvent::Error(_) => "ERROR",
        }
    }
}

/// A stream of watch events.
pub type WatchEvents = BoxStream<'static, WatchEvent>;

/// A stream of store events ([`RestStorage::watch_stored`]); an error ends it (the
/// watcher lists again, as after a 410).
pub type StoredEvents = BoxStream<'static, Result<moor_store::Event, ApiError>>;

/// A read-modify-write step: gets the current object (if any), returns the new one.
/// The current object is lent, not copied: a large one is costly to copy, and most
/// steps change a copy of a part or decode it into a typed value anyway.
pub type UpdateFn<'a> = dyn Fn(Option<&Value>) -> Result<Value, ApiError> + Send + Sync + 'a;

/// How the generic HTTP handlers reach a resource, stored or virtual. A verb a
/// resource does not implement answers 405 MethodNotAllowed.
#[async_trait]
pub trait RestStorage: Send + Sync {
    /// The static description.
    fn def(&self) -> &ResourceDef;
    /// Columns for `Accept: ...;as=Table`.
    fn table(&self) -> TableDef;
    /// One object.
    async fn get(
        &self,
        _ctx: &RequestContext,
        _ns: Option<&str>,
        _name: &str,
    ) -> Result<Value, ApiError> {
        Err(ApiError::MethodNotAllowed)
    }
    /// Objects in `ns` (or everywhere when `None`).
    async fn list(
        &self,
        _ctx: &RequestContext,
        _ns: Option<&str>,
        _opts: &ListOptions,
    ) -> Result<ObjectList, ApiError> {
        Err(ApiError::MethodNotAllowed)
    }
    /// Objects in `ns`, serialized; by default [`list`](Self::list) then serialize.
    async fn list_encoded(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<EncodedList, ApiError> {
        let list = self.list(ctx, ns, opts).await?;
        let mut items = Vec::new();
        for (i, o) in list.items.iter().enumerate() {
            if i > 0 {
                items.push(b',');
            }
            serde_json::to_writer(&mut items, o).map_err(ApiError::internal)?;
        }
        Ok(EncodedList {
            items,
            count: list.items.len(),
            resource_version: list.resource_version,
            continue_token: list.continue_token,
        })
    }
    /// Objects in `ns`, serialized, page by page; by default
    /// [`list_encoded`](Self::list_encoded) in one piece.
    async fn list_streamed(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<StreamedList, ApiError> {
        Ok(self.list_encoded(ctx, ns, opts).await?.into())
    }
    /// One object as of `resource_version` in kube's sense (`"0"`: any recent state,
    /// which a watch cache may answer); by default [`get`](Self::get).
    async fn get_at(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        name: &str,
        resource_version: Option<&str>,
    ) -> Result<Value, ApiError> {
        let _ = resource_version;
        self.get(ctx, ns, name).await
    }
    /// Creates `obj` (already decoded) in `ns`.
    async fn create(
        &self,
        _ctx: &RequestContext,
        _ns: Option<&str>,
        _obj: Value,
    ) -> Result<Value, ApiError> {
        Err(ApiError::MethodNotAllowed)
    }
    /// Read-modify-write of `name` (or of its `subresource`). With `create_if_missing`
    /// the step may create the object; the bool says whether it did.
    async fn update(
        &self,
        _ctx: &RequestContext,
        _ns: Option<&str>,
        _name: &str,
        _subresource: Option<&str>,
        _update: &UpdateFn<'_>,
        _create_if_missing: bool,
    ) -> Result<(Value, bool), ApiError> {
        Err(ApiError::MethodNotAllowed)
    }
    /// Deletes `name`; returns the object as it was.
    async fn delete(
        &self,
        _ctx: &RequestContext,
        _ns: Option<&str>,
        _name: &str,
        _pre: &DeletePreconditions,
    ) -> Result<Value, ApiError> {
        Err(ApiError::MethodNotAllowed)
    }
    /// `POST .../NAME/SUBRESOURCE` (kube's `NamedCreater`, e.g.
    /// `serviceaccounts/token`): `body` is the parsed request body; the answer is sent
    /// with 201 Created.
    async fn create_subresource(
        &self,
        _ctx: &RequestContext,
        _ns: Option<&str>,
        _name: &str,
        _subresource: &str,
        _body: Value,
    ) -> Result<Value, ApiError> {
        Err(ApiError::MethodNotAllowed)
    }
    /// Changes from `opts.resource_version` on.
    async fn watch(
        &self,
        _ctx: &RequestContext,
        _ns: Option<&str>,
        _opts: &ListOptions,
    ) -> Result<WatchEvents, ApiError> {
        Err(ApiError::MethodNotAllowed)
    }
    /// Changes after `resource_version` as the store holds them, for in-process
    /// watchers that decode what they need straight from the bytes: a large object then
    /// never becomes a JSON tree per watcher, and every watcher shares the event's
    /// bytes. No computed fields ([`crate::stored::Strategy::decorate`]), no selectors.
    async fn watch_stored(
        &self,
        _ns: Option<&str>,
        _resource_version: &str,
    ) -> Result<StoredEvents, ApiError> {
        Err(ApiError::MethodNotAllowed)
    }
    /// One object as the store holds it: its stored bytes and revision (`None`: it
    /// does not exist), read as consistently as [`get`](Self::get), for in-process
    /// readers that decode what they need straight from the bytes and may keep it by
    /// revision. No computed fields ([`crate::stored::Strategy::decorate`]).
    async fn get_stored(
        &self,
        _ns: Option<&str>,
        _name: &str,
    ) -> Result<Option<moor_store::KeyValue>, ApiError> {
        Err(ApiError::MethodNotAllowed)
    }
    /// Decodes a request body into this kind's canonical JSON, listing unknown fields.
    fn decode(&self, _body: Value) -> Result<(Value, Vec<String>), ApiError> {
        Err(ApiError::MethodNotAllowed)
    }
    /// Merge keys of lists, for strategic merge patch and server-side apply.
    fn merge_keys(&self) -> MergeKeys {
        MergeKeys::default()
    }
}

/// Implements [`RestStorage`] for a wrapper that changes writes only: every read
/// (`get`, `list`, `list_encoded`, `list_streamed`, `get_at`, `get_stored`, `watch`,
/// `watch_stored`) and `def`, `table`, `decode` and `merge_keys` go to the field
/// named after `=>`, and the items in braces (the write verbs) are written as given.
/// A wrapper that forwarded reads by hand lost each read path the trait gained later
/// (streamed lists and `resourceVersion=0` reads from the watch cache, stored-bytes
/// watches), silently falling back to the slower default.
///
/// ```ignore
/// forward_reads! {
///     impl RestStorage for Audited => inner {
///         async fn create(&self, ctx: &RequestContext, ns: Option<&str>, obj: Value)
///             -> Result<Value, ApiError> { self.inner.create(ctx, ns, obj).await }
///     }
/// }
/// ```
#[macro_export]
macro_rules! forward_reads {
    (impl RestStorage for $ty:ty => $inner:ident { $($writes:tt)* }) => {
        $crate::forward_reads!(@impl [] $ty => $inner { $($writes)* });
    };
    (impl<$g:ident: $bound:path> RestStorage for $ty:ty => $inner:ident { $($writes:tt)* }) => {
        $crate::forward_reads!(@impl [$g: $bound] $ty => $inner { $($writes)* });
    };
    (@impl [$($generics:tt)*] $ty:ty => $inner:ident { $($writes:tt)* }) => {
        #[$crate::__private::async_trait]
        impl<$($generics)*> $crate::resource::RestStorage for $ty {
            fn def(&self) -> &$crate::resource::ResourceDef {
                self.$inner.def()
            }
            fn table(&self) -> $crate::table::TableDef {
                self.$inner.table()
            }
            fn decode(
                &self,
                body: $crate::__private::Value,
            ) -> Result<($crate::__private::Value, Vec<String>), $crate::error::ApiError> {
                self.$inner.decode(body)
            }
            fn merge_keys(&self) -> $crate::patch::MergeKeys {
                self.$inner.merge_keys()
            }
            async fn get(
                &self,
                ctx: &$crate::resource::RequestContext,
                ns: Option<&str>,
                name: &str,
            ) -> Result<$crate::__private::Value, $crate::error::ApiError> {
                self.$inner.get(ctx, ns, name).await
            }
            async fn list(
                &self,
                ctx: &$crate::resource::RequestContext,
                ns: Option<&str>,
                opts: &$crate::resource::ListOptions,
            ) -> Result<$crate::resource::ObjectList, $crate::error::ApiError> {
                self.$inner.list(ctx, ns, opts).await
            }
            async fn list_encoded(
                &self,
                ctx: &$crate::resource::RequestContext,
                ns: Option<&str>,
                opts: &$crate::resource::ListOptions,
            ) -> Result<$crate::resource::EncodedList, $crate::error::ApiError> {
                self.$inner.list_encoded(ctx, ns, opts).await
            }
            async fn list_streamed(
                &self,
                ctx: &$crate::resource::RequestContext,
                ns: Option<&str>,
                opts: &$crate::resource::ListOptions,
            ) -> Result<$crate::resource::StreamedList, $crate::error::ApiError> {
                self.$inner.list_streamed(ctx, ns, opts).await
            }
            async fn get_at(
                &self,
                ctx: &$crate::resource::RequestContext,
                ns: Option<&str>,
                name: &str,
                resource_version: Option<&str>,
            ) -> Result<$crate::__private::Value, $crate::error::ApiError> {
                self.$inner.get_at(ctx, ns, name, resource_version).await
            }
            async fn get_stored(
                &self,
                ns: Option<&str>,
                name: &str,
            ) -> Result<Option<$crate::__private::KeyValue>, $crate::error::ApiError> {
                self.$inner.get_stored(ns, name).await
            }
            async fn watch(
                &self,
                ctx: &$crate::resource::RequestContext,
                ns: Option<&str>,
                opts: &$crate::resource::ListOptions,
            ) -> Result<$crate::resource::WatchEvents, $crate::error::ApiError> {
                self.$inner.watch(ctx, ns, opts).await
            }
            async fn watch_stored(
                &self,
                ns: Option<&str>,
                resource_version: &str,
            ) -> Result<$crate::resource::StoredEvents, $crate::error::ApiError> {
                self.$inner.watch_stored(ns, resource_version).await
            }
            $($writes)*
        }
    };
}
