//! get, list and watch, each also as a Table or as `PartialObjectMetadata`.

use axum::http::StatusCode;
use axum::response::Response;

use super::Call;
use super::partial::PartialMetadata;
use super::request::list_options;
use super::response::{self, json_response, object_response, streamed_list_response};
use crate::error::ApiError;
use crate::resource::ListOptions;
use crate::selectors::FieldRequirement;
use crate::table;

/// `GET .../NAME`: one object (a subresource such as `status` reads as the whole
/// object, as in Kubernetes).
pub(super) async fn get(call: Call) -> Result<Response, ApiError> {
    let name = super::name_of(&call);
    let rv = call
        .query
        .get("resourceVersion")
        .filter(|rv| !rv.is_empty());
    let obj = call.storage.get_at(&call.ctx, call.ns(), &name, rv).await?;
    Ok(object_response(
        StatusCode::OK,
        obj,
        call.output(),
        &call.ctx,
    ))
}

/// `GET .../RESOURCE`: a list, written from stored bytes unless a Table was asked for.
pub(super) async fn list(call: Call) -> Result<Response, ApiError> {
    let opts = list_options(&call.query, &call.def)?;
    if let Some(partial) = call.partial {
        return partial_list(call, partial, &opts).await;
    }
    let Some((td, include)) = call.table_ref() else {
        let list = call
            .storage
            .list_streamed(&call.ctx, call.ns(), &opts)
            .await?;
        return Ok(streamed_list_response(&call.def, list, &call.ctx));
    };
    let list = call.storage.list(&call.ctx, call.ns(), &opts).await?;
    let body = table::render(
        td,
        &list.items,
        include,
        Some(&list.resource_version),
        list.continue_token.as_deref(),
    );
    Ok(json_response(StatusCode::OK, &body, Some(&call.ctx)))
}

/// `GET ...?watch=1`, of a collection or of one named object.
pub(super) async fn watch(call: Call) -> Result<Response, ApiError> {
    let mut opts = list_options(&call.query, &call.def)?;
    if let Some(name) = &call.target.name {
        opts.field_selector.0.push(FieldRequirement {
            field: "metadata.name".into(),
            value: name.clone(),
            negated: false,
        });
    }
    let ns = call.ns.clone();
    response::watch(
        call.storage,
        &call.ctx,
        ns.as_deref(),
        &opts,
        call.table,
        call.partial,
    )
    .await
}

/// `GET .../RESOURCE` asking for `PartialObjectMetadataList`: the page's metadata
/// only (406 when `PartialObjectMetadata`, a single object, was asked for).
async fn partial_list(
    call: Call,
    partial: PartialMetadata,
    opts: &ListOptions,
) -> Result<Response, ApiError> {
    partial.check_list()?;
    let list = call.storage.list(&call.ctx, call.ns(), opts).await?;
    let body = partial.list(&list);
    Ok(json_response(StatusCode::OK, &body, Some(&call.ctx)))
}
