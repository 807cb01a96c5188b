//! OpenShift's tag verifier: tagging from a stream of another namespace
//! (`from: {kind: ImageStreamTag|ImageStreamImage, namespace: other}`) needs the
//! right to pull from that stream (`get imagestreams/layers`), so a tag can never
//! copy an image out of a namespace its writer cannot read. Only tags that are new
//! or whose source changed are checked, as OpenShift does; a refusal is a 422 whose
//! cause is `spec.tags[NAME].from: Forbidden: NS/STREAM`.
//!
//! An admission check of the served `imagestreams` and `imagestreamtags`; in-process
//! callers (the importer, controllers) use the storages underneath.

use std::collections::BTreeMap;
use std::sync::Arc;

use moor_api::authz::{self, UserInfo};
use moor_api::image::{KIND_IMAGE_STREAM_IMAGE, KIND_IMAGE_STREAM_TAG};
use moor_api::validation::FieldError;
use serde_json::Value;

use crate::auth::Authorizer;
use moor_apimachinery::admission::{Admitted, WriteAdmission};
use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::{GroupResource, RequestContext, ResourceDef, RestStorage};

/// One tag's source: (field path, kind, namespace or "", name).
type Source = (String, String, String, String);

fn source_of(path: String, from: &Value) -> Option<Source> {
    let kind = from.get("kind")?.as_str()?;
    if kind != KIND_IMAGE_STREAM_TAG && kind != KIND_IMAGE_STREAM_IMAGE {
        return None;
    }
    Some((
        path,
        kind.to_owned(),
        from.get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        from.get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    ))
}

/// The stream-sourced tags of an ImageStream or ImageStreamTag, by tag name.
fn sources(obj: &Value, is_stream: bool) -> BTreeMap<String, Source> {
    let mut out = BTreeMap::new();
    if is_stream {
        for tag in obj
            .pointer("/spec/tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = tag.get("name").and_then(Value::as_str).unwrap_or_default();
            if let Some(s) = tag
                .get("from")
                .and_then(|f| source_of(format!("spec.tags[{name}].from"), f))
            {
                out.insert(name.to_owned(), s);
            }
        }
    } else if let Some(s) = obj
        .pointer("/tag/from")
        .and_then(|f| source_of("tag.from".into(), f))
    {
        out.insert(String::new(), s);
    }
    out
}

/// Checks the pull right on other namespaces' streams that a write tags from.
pub struct TagSourceAccess {
    authz: Arc<dyn Authorizer>,
    /// The authorizer asks elsewhere (cluster mode): questions are asked before the
    /// update step, whose sync check then finds the answers cached.
    delegated: bool,
    is_stream: bool,
    gr: GroupResource,
    kind: &'static str,
}

impl TagSourceAccess {
    fn new(def: &ResourceDef, authz: Arc<dyn Authorizer>, delegated: bool) -> Self {
        TagSourceAccess {
            authz,
            delegated,
            is_stream: def.plural == "imagestreams",
            gr: def.group_resource(),
            kind: def.kind,
        }
    }

    /// Guards `inner` (`imagestreams` or `imagestreamtags`) with `authz`.
    pub fn guard(inner: Arc<dyn RestStorage>, authz: Arc<dyn Authorizer>) -> Arc<dyn RestStorage> {
        let access = Self::new(inner.def(), authz, false);
        Admitted::wrap(inner, access)
    }

    /// [`guard`](Self::guard) for a delegated authorizer (cluster mode's
    /// SubjectAccessReview): before a create or update, the questions its new object
    /// raises are asked asynchronously, so that the check inside the update step finds
    /// the answers in the authorizer's cache.
    pub fn guard_delegated(
        inner: Arc<dyn RestStorage>,
        authz: Arc<dyn Authorizer>,
    ) -> Arc<dyn RestStorage> {
        let access = Self::new(inner.def(), authz, true);
        Admitted::wrap(inner, access)
    }

    /// Asks the questions of writing `new` over `old`, for their answers to be cached.
    async fn warm(&self, ctx: &RequestContext, ns: Option<&str>, new: &Value, old: Option<&Value>) {
        let Some(user) = ctx.user.as_ref() else {
            return;
        };
        for (_, _, question) in self.questions(user, ns.unwrap_or_default(), new, old) {
            self.authz.authorize(&question).await;
        }
    }

    /// The pull questions a write of `new` (over `old`) in `ns` raises: one per tag
    /// whose source, in another namespace, is new or changed; with the field path
    /// and the `NS/STREAM` a refusal names.
    fn questions(
        &self,
        user: &UserInfo,
        ns: &str,
        new: &Value,
        old: Option<&Value>,
    ) -> Vec<(String, String, authz::Attributes)> {
        let before = old.map(|o| sources(o, self.is_stream)).unwrap_or_default();
        let mut out = Vec::new();
        for (tag, source) in sources(new, self.is_stream) {
            let (path, kind, from_ns, name) = &source;
            if from_ns.is_empty() || from_ns == ns || before.get(&tag) == Some(&source) {
                continue;
            }
            let separator = if kind == KIND_IMAGE_STREAM_TAG {
                ':'
            } else {
                '@'
            };
            let stream = name.split(separator).next().unwrap_or_default();
            let question = authz::Attributes::resource(
                user.clone(),
                "get",
                authz::ResourceAttributes::new(authz::registry::IMAGE_GROUP, "imagestreams")
                    .subresource("layers")
                    .namespace(from_ns.clone())
                    .name(stream),
            );
            out.push((path.clone(), format!("{from_ns}/{stream}"), question));
        }
        out
    }

    fn verify(
        &self,
        user: Option<&UserInfo>,
        ns: Option<&str>,
        new: &Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        // In-process callers act for the server itself.
        let Some(user) = user else { return Ok(()) };
        let mut errors = Vec::new();
        for (path, source, question) in self.questions(user, ns.unwrap_or_default(), new, old) {
            // Inside the update's sync step: a delegated authorizer answers from its
            // cache (a miss refuses; see `auth::Authorizer` and `warm`).
            if !self
                .authz
                .authorize_now(&question)
                .is_some_and(|d| d.is_allowed())
            {
                errors.push(FieldError::forbidden(path, source));
            }
        }
        if errors.is_empty() {
            return Ok(());
        }
        let name = new
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Err(ApiError::invalid(&self.gr, self.kind, name, &errors))
    }
}

#[async_trait::async_trait]
impl WriteAdmission for TagSourceAccess {
    fn admit(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        subresource: Option<&str>,
        new: &Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        // The status subresource holds no tag sources a user writes.
        if subresource.is_some() {
            return Ok(());
        }
        self.verify(ctx.user.as_ref(), ns, new, old)
    }
    fn prepares(&self, ctx: &RequestContext) -> bool {
        self.delegated && ctx.user.is_some()
    }
    async fn prepare(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        new: &Value,
        old: Option<&Value>,
    ) {
        self.warm(ctx, ns, new, old).await;
    }
}
