//! create (POST) and update (PUT).

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::Call;
use super::request::{check_unknown, manager_name, read_body};
use super::response::object_response;
use crate::apply;
use crate::error::ApiError;
use crate::stored::{cpu_bound_if, is_large_body, now_rfc3339};

/// `POST .../RESOURCE`: creates the object in the body.
pub(super) async fn create(call: Call, body: Body) -> Result<Response, ApiError> {
    let body = read_body(body).await?;
    let value = cpu_bound_if(is_large_body(&body), || call.parse_object(&body))?;
    let (mut obj, unknown) = call.storage.decode(value)?;
    check_unknown(&call.ctx, &unknown)?;
    if let (Some(ns), Some(body_ns)) = (
        call.ns(),
        obj.pointer("/metadata/namespace").and_then(Value::as_str),
    ) && !body_ns.is_empty()
        && body_ns != ns
    {
        return Err(ApiError::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request"
                .into(),
        ));
    }
    if call.def.namespaced && call.ns.is_none() {
        return Err(ApiError::MethodNotAllowed);
    }
    let manager = manager_name(&call.ctx, &call.headers);
    apply::record_update(
        None,
        &mut obj,
        &manager,
        &call.def.api_version(),
        call.storage.merge_keys(),
        &now_rfc3339(),
    );
    let created = call.storage.create(&call.ctx, call.ns(), obj).await?;
    Ok(object_response(
        StatusCode::CREATED,
        created,
        call.output(),
        &call.ctx,
    ))
}

/// `PUT .../NAME[/SUBRESOURCE]`: replaces the object (or creates it, where the
/// resource allows create on update).
pub(super) async fn update(mut call: Call, body: Body) -> Result<Response, ApiError> {
    let name = super::name_of(&call);
    let body = read_body(body).await?;
    call.ctx.large_body = is_large_body(&body);
    let value = cpu_bound_if(call.ctx.large_body, || call.parse_object(&body))?;
    let (obj, unknown) = call.storage.decode(value)?;
    check_unknown(&call.ctx, &unknown)?;
    let manager = manager_name(&call.ctx, &call.headers);
    let keys = call.storage.merge_keys();
    let av = call.def.api_version();
    let sub = call.target.subresource.clone();
    let now = now_rfc3339();
    let f = move |cur: Option<&Value>| -> Result<Value, ApiError> {
        let mut new = obj.clone();
        if sub.is_none() {
            apply::record_update(cur, &mut new, &manager, &av, keys, &now);
        }
        Ok(new)
    };
    let (out, created) = call
        .storage
        .update(
            &call.ctx,
            call.ns(),
            &name,
            call.target.subresource.as_deref(),
            &f,
            false,
        )
        .await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(object_response(code, out, call.output(), &call.ctx))
}

/// `POST .../NAME/SUBRESOURCE`: a create on a named object's subresource (kube's
/// `NamedCreater`, e.g. `serviceaccounts/token`); the body is handed over parsed.
pub(super) async fn create_subresource(call: Call, body: Body) -> Result<Response, ApiError> {
    let name = super::name_of(&call);
    let sub = call.target.subresource.clone().unwrap_or_default();
    let body = read_body(body).await?;
    let value = cpu_bound_if(is_large_body(&body), || call.parse_object(&body))?;
    let out = call
        .storage
        .create_subresource(&call.ctx, call.ns(), &name, &sub, value)
        .await?;
    Ok(object_response(
        StatusCode::CREATED,
        out,
        call.output(),
        &call.ctx,
    ))
}
