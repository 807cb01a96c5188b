//! The HTTP face of every resource under `/api` and `/apis`. [`serve`] resolves a
//! request into a [`Call`] (the path as kube-apiserver's RequestInfoFactory reads it,
//! the storage, the options), then hands it to one handler per verb:
//! `read` (get, list, watch), `write` (create, update), `patch` (patch, apply) and
//! `delete` (delete, deletecollection). Calls storage, codec, patch and apply;
//! nothing below it knows about HTTP.

mod delete;
mod partial;
mod patch;
mod read;
mod request;
mod response;
mod write;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::Response;

pub(crate) use request::Query;
pub use request::{MAX_BODY_BYTES, RequestTarget, parse_target, read_body};

use serde_json::Value;

use self::partial::PartialMetadata;
use self::request::{Convert, context, negotiate};
use self::response::Output;
use super::ApiServer;
use super::codec::{media_type, parse_object_body};
use super::error::ApiError;
use super::resource::*;
use super::table::{IncludeObject, TableDef};

/// One resolved resource request: what each verb's handler works with.
struct Call {
    api: Arc<ApiServer>,
    storage: Arc<dyn RestStorage>,
    def: ResourceDef,
    target: RequestTarget,
    /// The namespace, for namespaced resources.
    ns: Option<String>,
    query: Query,
    ctx: RequestContext,
    headers: HeaderMap,
    /// The Table definition and `includeObject`, when the client asked for a Table.
    table: Option<(TableDef, IncludeObject)>,
    /// Metadata only, when the client asked for `PartialObjectMetadata(List)`.
    partial: Option<PartialMetadata>,
    /// The request body's media type.
    media_type: String,
}

impl Call {
    fn resolve(
        api: Arc<ApiServer>,
        uri: &Uri,
        headers: HeaderMap,
        user: Option<UserInfo>,
    ) -> Result<Call, ApiError> {
        let target = parse_target(uri.path()).ok_or(ApiError::NoRoute)?;
        let storage = api
            .storage(&target.group, &target.version, &target.resource)
            .ok_or(ApiError::NoRoute)?;
        let def = storage.def().clone();
        if let Some(sub) = &target.subresource
            && !def.subresources.contains(&sub.as_str())
        {
            return Err(ApiError::NoRoute);
        }
        if !def.namespaced && target.namespace.is_some() {
            return Err(ApiError::NoRoute);
        }
        let ns = if def.namespaced {
            target.namespace.clone()
        } else {
            None
        };
        let query = Query::parse(uri);
        let convert = negotiate(&headers)?;
        let ctx = context(&query, user)?;
        let partial = match convert {
            Convert::Partial(p) => Some(p),
            Convert::Plain | Convert::Table => None,
        };
        let table = (convert == Convert::Table).then(|| {
            (
                storage.table(),
                IncludeObject::parse(query.get("includeObject")),
            )
        });
        let media_type = media_type(
            headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        );
        if let Some(len) = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            && len > MAX_BODY_BYTES
        {
            return Err(ApiError::TooLarge {
                limit: MAX_BODY_BYTES,
            });
        }
        Ok(Call {
            api,
            storage,
            def,
            target,
            ns,
            query,
            ctx,
            headers,
            table,
            partial,
            media_type,
        })
    }

    fn ns(&self) -> Option<&str> {
        self.ns.as_deref()
    }

    /// Parses a create or update body: JSON, YAML, or Kubernetes protobuf for the
    /// built-in kinds [`crate::protobuf`] decodes. The main resource and `status` take the
    /// resource's kind; other subresources take whatever kind the envelope names
    /// (their storage checks it).
    fn parse_object(&self, body: &[u8]) -> Result<Value, ApiError> {
        let api_version = self.def.api_version();
        let expected = match self.target.subresource.as_deref() {
            None | Some("status") => Some((api_version.as_str(), self.def.kind)),
            Some(_) => None,
        };
        parse_object_body(&self.media_type, body, expected)
    }

    fn table_ref(&self) -> Option<(&TableDef, IncludeObject)> {
        self.table.as_ref().map(|(d, i)| (d, *i))
    }

    /// The form an object response takes: as stored, a Table, or metadata only.
    fn output(&self) -> Output<'_> {
        match (self.partial, self.table_ref()) {
            (Some(p), _) => Output::Partial(p),
            (None, Some((def, include))) => Output::Table(def, include),
            (None, None) => Output::Object,
        }
    }
}

/// Serves one resource request.
pub async fn serve(
    api: Arc<ApiServer>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    user: Option<UserInfo>,
    body: Body,
) -> Result<Response, ApiError> {
    let call = Call::resolve(api, &uri, headers, user)?;
    let named = call.target.name.is_some();
    let watch = call.query.flag("watch");
    match method {
        Method::GET if watch => read::watch(call).await,
        Method::GET if named => read::get(call).await,
        Method::GET => read::list(call).await,
        Method::POST if !named => write::create(call, body).await,
        Method::POST if call.target.subresource.is_some() => {
            write::create_subresource(call, body).await
        }
        Method::PUT if named => write::update(call, body).await,
        Method::PATCH if named => patch::patch(call, body).await,
        Method::DELETE if named => delete::delete(call, body).await,
        Method::DELETE => delete::delete_collection(call).await,
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// The name a handler for a named request works on.
fn name_of(call: &Call) -> String {
    call.target.name.clone().unwrap_or_default()
}
