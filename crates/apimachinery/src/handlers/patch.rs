//! patch (JSON, merge and strategic merge) and server-side apply.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::Call;
use super::request::{check_unknown, manager_name, prune_to, read_body};
use super::response::object_response;
use crate::apply;
use crate::codec::{check_depth, parse_yaml};
use crate::error::ApiError;
use crate::patch::{self, PatchType};
use crate::stored::{cpu_bound_if, is_large_body, now_rfc3339, unconditional};

/// `PATCH .../NAME[/SUBRESOURCE]`: the patch type comes from the Content-Type;
/// `application/apply-patch+yaml` is server-side apply.
pub(super) async fn patch(mut call: Call, body: Body) -> Result<Response, ApiError> {
    let name = super::name_of(&call);
    let mt = &call.media_type;
    let ptype =
        PatchType::from_media_type(mt).ok_or_else(|| ApiError::UnsupportedMediaType(mt.clone()))?;
    let body = read_body(body).await?;
    call.ctx.large_body = is_large_body(&body);
    let patch_value = cpu_bound_if(call.ctx.large_body, || match ptype {
        PatchType::Apply => parse_yaml(&body),
        _ => {
            check_depth(&body)?;
            serde_json::from_slice::<Value>(&body)
                .map_err(|e| ApiError::BadRequest(format!("error decoding patch: {e}")))
        }
    })?;
    let ctx = &call.ctx;
    let manager = manager_name(ctx, &call.headers);
    if ptype == PatchType::Apply && ctx.field_manager.is_none() {
        return Err(ApiError::BadRequest(
            "PATCH requests of type application/apply-patch+yaml require a fieldManager parameter"
                .into(),
        ));
    }
    let force = call.query.flag("force");
    let storage = &call.storage;
    let keys = storage.merge_keys();
    let av = call.def.api_version();
    let gr = call.def.group_resource();
    let now = now_rfc3339();
    let sub = call.target.subresource.clone();
    // Applied configurations are decoded once, so unknown fields are judged once.
    let applied = if ptype == PatchType::Apply {
        let (mut applied, unknown) = storage.decode(patch_value.clone())?;
        check_unknown(ctx, &unknown)?;
        // Decoding fills defaults of absent fields; apply only what was sent.
        prune_to(&mut applied, &patch_value);
        Some(applied)
    } else {
        None
    };
    let f = |cur: Option<&Value>| -> Result<Value, ApiError> {
        if let Some(applied) = &applied {
            let req = apply::ApplyRequest {
                manager: &manager,
                force,
                api_version: &av,
                keys,
                gr: &gr,
                name: &name,
                now: &now,
            };
            let out = apply::apply(cur, applied, &req)?;
            // Only a resourceVersion the applier sent is a precondition; the live one
            // it merged onto is not, so a concurrent write runs the apply again on the
            // newer object (kube-apiserver's retry), instead of a 409 nobody asked for.
            let sent_rv = applied
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .filter(|rv| !rv.is_empty());
            let mut object = unconditional(out.object);
            if let Some(rv) = sent_rv {
                object["metadata"]["resourceVersion"] = Value::from(rv);
            }
            return Ok(object);
        }
        let cur = cur.ok_or_else(|| ApiError::NotFound {
            gr: gr.clone(),
            name: name.clone(),
        })?;
        let mut doc = cur.clone();
        match ptype {
            PatchType::Merge => patch::merge_patch(&mut doc, &patch_value)?,
            PatchType::Json => patch::json_patch(&mut doc, &patch_value)?,
            PatchType::Strategic => patch::strategic_merge_patch(&mut doc, &patch_value, keys)?,
            PatchType::Apply => unreachable!("handled above"),
        }
        let (mut new, unknown) = storage.decode(doc)?;
        check_unknown(ctx, &unknown)?;
        if sub.is_none() {
            apply::record_update(Some(cur), &mut new, &manager, &av, keys, &now);
        }
        // The resourceVersion the patch left as it was is not a precondition: a
        // concurrent write makes the step run again on the newer object, as
        // kube-apiserver retries patches.
        let rv = |v: &Value| v.pointer("/metadata/resourceVersion").cloned();
        if rv(&new).is_some() && rv(&new) == rv(cur) {
            new = unconditional(new);
        }
        Ok(new)
    };
    let (out, created) = storage
        .update(
            ctx,
            call.ns(),
            &name,
            call.target.subresource.as_deref(),
            &f,
            ptype == PatchType::Apply,
        )
        .await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(object_response(code, out, call.output(), ctx))
}
