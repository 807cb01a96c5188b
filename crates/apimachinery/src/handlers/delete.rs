//! delete and deletecollection.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::Call;
use super::request::{
    body_dry_run, context, delete_options, delete_preconditions, list_options, read_body,
};
use super::response::json_response;
use crate::error::ApiError;
use crate::resource::{DeletePreconditions, RequestContext};

/// `DELETE .../NAME`, with `DeleteOptions` preconditions and `dryRun` in the body.
pub(super) async fn delete(call: Call, body: Body) -> Result<Response, ApiError> {
    let name = super::name_of(&call);
    if call.def.group.is_empty() && call.def.plural == "namespaces" && name == "default" {
        return Err(ApiError::Forbidden(
            "namespaces \"default\" is forbidden: this namespace may not be deleted".into(),
        ));
    }
    let body = read_body(body).await?;
    let options = delete_options(&call.media_type, &body)?;
    let pre = delete_preconditions(&options);
    if body_dry_run(&options) {
        let ctx = RequestContext {
            dry_run: true,
            ..context(&call.query, call.ctx.user.clone())?
        };
        let out = call.storage.delete(&ctx, call.ns(), &name, &pre).await?;
        return Ok(json_response(StatusCode::OK, &out, Some(&call.ctx)));
    }
    let out = call
        .storage
        .delete(&call.ctx, call.ns(), &name, &pre)
        .await?;
    call.api.after_delete(&call.def, &out).await?;
    Ok(json_response(StatusCode::OK, &out, Some(&call.ctx)))
}

/// `DELETE .../RESOURCE`: deletes what the selectors match; objects deleted meanwhile
/// are skipped.
pub(super) async fn delete_collection(call: Call) -> Result<Response, ApiError> {
    let opts = list_options(&call.query, &call.def)?;
    let list = call.storage.list(&call.ctx, call.ns(), &opts).await?;
    let mut deleted = Vec::new();
    for item in list.items {
        let name = item
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let item_ns = item
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        match call
            .storage
            .delete(
                &call.ctx,
                item_ns.as_deref().or(call.ns()),
                &name,
                &DeletePreconditions::default(),
            )
            .await
        {
            Ok(out) => {
                call.api.after_delete(&call.def, &out).await?;
                deleted.push(out);
            }
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let body = json!({"kind": call.def.list_kind, "apiVersion": call.def.api_version(),
                      "metadata": {"resourceVersion": list.resource_version}, "items": deleted});
    Ok(json_response(StatusCode::OK, &body, Some(&call.ctx)))
}
