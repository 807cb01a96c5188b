//! The HTTP face of every resource under `/api` and `/apis`: parses the path the way
//! kube-apiserver's RequestInfoFactory does, then runs get, list, watch, create,
//! update, patch, apply, delete and deletecollection against a [`RestStorage`].
//! Calls storage, codec, patch and apply; nothing below it knows about HTTP.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};

use super::ApiServer;
use super::apply;
use super::codec::{media_type, parse_body};
use super::error::ApiError;
use super::patch::{self, PatchType};
use super::resource::*;
use super::selectors::{FieldSelector, LabelSelector};
use super::stored::cpu_bound;
use super::table::{self, IncludeObject, TableDef};

/// The largest request body accepted (as kube-apiserver: 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// What the path names.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestTarget {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Parses `/api/v1/...` and `/apis/<group>/<version>/...` resource paths.
pub fn parse_target(path: &str) -> Option<RequestTarget> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return None,
    };
    let mut t = RequestTarget {
        group,
        version,
        namespace: None,
        resource: String::new(),
        name: None,
        subresource: None,
    };
    let rest: &[&str] = match rest {
        ["namespaces", ns] => {
            t.resource = "namespaces".into();
            t.name = Some(ns.to_string());
            return Some(t);
        }
        ["namespaces", ns, sub @ ("status" | "finalize")] if t.group.is_empty() => {
            t.resource = "namespaces".into();
            t.name = Some(ns.to_string());
            t.subresource = Some(sub.to_string());
            return Some(t);
        }
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => {
            t.namespace = Some(ns.to_string());
            rest
        }
        other => other,
    };
    match rest {
        [r] => t.resource = r.to_string(),
        [r, n] => {
            t.resource = r.to_string();
            t.name = Some(n.to_string());
        }
        [r, n, s] => {
            t.resource = r.to_string();
            t.name = Some(n.to_string());
            t.subresource = Some(s.to_string());
        }
        _ => return None,
    }
    Some(t)
}

/// Query parameters, decoded.
#[derive(Debug, Default)]
struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    fn parse(uri: &Uri) -> Self {
        let pairs = uri.query().map(form_urlencoded_pairs).unwrap_or_default();
        Query { pairs }
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true") | Some("1") | Some(""))
    }
}

fn form_urlencoded_pairs(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Whether the client asked for a Table.
fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

fn context(q: &Query, user: Option<UserInfo>) -> Result<RequestContext, ApiError> {
    let dry_run = match q.get("dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "unsupported dry run value {other:?}: supported is \"All\""
            )));
        }
    };
    let field_validation = match q.get("fieldValidation") {
        None | Some("") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Warn") => FieldValidation::Warn,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "fieldValidation parameter unsupported: {other}; supported values are Strict, Warn and Ignore"
            )));
        }
    };
    Ok(RequestContext {
        user,
        dry_run,
        field_validation,
        field_manager: q
            .get("fieldManager")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        warnings: Default::default(),
    })
}

fn list_options(q: &Query, def: &ResourceDef) -> Result<ListOptions, ApiError> {
    let label_selector = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let field_selector =
        FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), def.selectable_fields)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let limit = match q.get("limit") {
        None | Some("") => None,
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::BadRequest(format!("invalid limit {l:?}")))?,
        ),
    };
    let timeout_seconds = match q.get("timeoutSeconds") {
        None | Some("") => None,
        Some(t) => Some(
            t.parse::<u64>()
                .map_err(|_| ApiError::BadRequest(format!("invalid timeoutSeconds {t:?}")))?,
        ),
    };
    Ok(ListOptions {
        label_selector,
        field_selector,
        limit,
        continue_token: q
            .get("continue")
            .filter(|c| !c.is_empty())
            .map(str::to_string),
        resource_version: q.get("resourceVersion").map(str::to_string),
        allow_bookmarks: q.flag("allowWatchBookmarks"),
        send_initial_events: q.flag("sendInitialEvents"),
        timeout_seconds,
    })
}

/// Refuses or reports unknown fields according to `fieldValidation`.
fn check_unknown(ctx: &RequestContext, unknown: &[String]) -> Result<(), ApiError> {
    if unknown.is_empty() {
        return Ok(());
    }
    match ctx.field_validation {
        FieldValidation::Strict => Err(ApiError::BadRequest(format!(
            "strict decoding error: {}",
            unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        FieldValidation::Warn => {
            for f in unknown {
                ctx.warn(format!("unknown field \"{f}\""));
            }
            Ok(())
        }
        FieldValidation::Ignore => Ok(()),
    }
}

fn manager_name(ctx: &RequestContext, headers: &HeaderMap) -> String {
    if let Some(m) = &ctx.field_manager {
        return m.clone();
    }
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

fn json_response(status: StatusCode, body: &Value, ctx: Option<&RequestContext>) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    if let Some(ctx) = ctx {
        for w in ctx.take_warnings() {
            if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{}\"", w.replace('"', "\\\""))) {
                resp.headers_mut().append("Warning", v);
            }
        }
    }
    resp
}

fn object_response(
    status: StatusCode,
    obj: Value,
    table_def: Option<(&TableDef, IncludeObject)>,
    ctx: &RequestContext,
) -> Response {
    let body = match table_def {
        Some((def, include)) => {
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
            table::render(def, &[obj], include, rv.as_deref(), None)
        }
        None => obj,
    };
    json_response(status, &body, Some(ctx))
}

/// A `<Kind>List` written from already serialized items, without building a tree.
fn encoded_list_response(def: &ResourceDef, list: EncodedList, ctx: &RequestContext) -> Response {
    let mut meta = json!({"resourceVersion": list.resource_version});
    if let Some(c) = &list.continue_token {
        meta["continue"] = json!(c);
    }
    let head = json!({"kind": def.list_kind, "apiVersion": def.api_version(), "metadata": meta})
        .to_string();
    // `{"kind":..,"metadata":{..}` then `,"items":[...]}`, as three chunks of one body.
    let mut open = head.into_bytes();
    open.pop();
    open.extend_from_slice(b",\"items\":[");
    let chunks = [
        Bytes::from(open),
        Bytes::from(list.items),
        Bytes::from_static(b"]}"),
    ];
    let body = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::convert::Infallible>));
    let mut resp = Response::new(Body::from_stream(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for w in ctx.take_warnings() {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{}\"", w.replace('"', "\\\""))) {
            resp.headers_mut().append("Warning", v);
        }
    }
    resp
}

/// Reads the request body, refusing bodies over [`MAX_BODY_BYTES`].
pub async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.to_string().contains("length limit exceeded"))
                || e.to_string().contains("length limit exceeded");
            if too_large {
                ApiError::TooLarge {
                    limit: MAX_BODY_BYTES,
                }
            } else {
                ApiError::BadRequest(format!("error reading body: {e}"))
            }
        })
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
    let ns = if def.namespaced {
        target.namespace.as_deref()
    } else {
        None
    };
    if !def.namespaced && target.namespace.is_some() {
        return Err(ApiError::NoRoute);
    }
    let q = Query::parse(&uri);
    let ctx = context(&q, user)?;
    let table = if wants_table(&headers) {
        Some((
            storage.table(),
            IncludeObject::parse(q.get("includeObject")),
        ))
    } else {
        None
    };
    let table_ref = table.as_ref().map(|(d, i)| (d, *i));
    let mt = media_type(
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

    match (method.clone(), target.name.as_deref()) {
        (Method::GET, None) => {
            let opts = list_options(&q, &def)?;
            if q.flag("watch") {
                return watch(storage, &ctx, ns, &opts, table).await;
            }
            let Some((td, include)) = table_ref else {
                let list = storage.list_encoded(&ctx, ns, &opts).await?;
                return Ok(encoded_list_response(&def, list, &ctx));
            };
            let list = storage.list(&ctx, ns, &opts).await?;
            let body = table::render(
                td,
                &list.items,
                include,
                Some(&list.resource_version),
                list.continue_token.as_deref(),
            );
            Ok(json_response(StatusCode::OK, &body, Some(&ctx)))
        }
        (Method::GET, Some(name)) => {
            if q.flag("watch") {
                let mut opts = list_options(&q, &def)?;
                opts.field_selector
                    .0
                    .push(super::selectors::FieldRequirement {
                        field: "metadata.name".into(),
                        value: name.into(),
                        negated: false,
                    });
                return watch(storage, &ctx, ns, &opts, table).await;
            }
            // A subresource (`status`) reads as the whole object, as in Kubernetes.
            let obj = storage.get(&ctx, ns, name).await?;
            Ok(object_response(StatusCode::OK, obj, table_ref, &ctx))
        }
        (Method::POST, None) => {
            let body = read_body(body).await?;
            let value = cpu_bound(|| parse_body(&mt, &body))?;
            let (mut obj, unknown) = storage.decode(value)?;
            check_unknown(&ctx, &unknown)?;
            if let (Some(ns), Some(body_ns)) = (
                ns,
                obj.pointer("/metadata/namespace").and_then(Value::as_str),
            ) && !body_ns.is_empty()
                && body_ns != ns
            {
                return Err(ApiError::BadRequest(
                        "the namespace of the provided object does not match the namespace sent on the request".into(),
                    ));
            }
            if def.namespaced && ns.is_none() {
                return Err(ApiError::MethodNotAllowed);
            }
            let manager = manager_name(&ctx, &headers);
            apply::record_update(
                None,
                &mut obj,
                &manager,
                &def.api_version(),
                storage.merge_keys(),
                &super::stored::now_rfc3339(),
            );
            let created = storage.create(&ctx, ns, obj).await?;
            Ok(object_response(
                StatusCode::CREATED,
                created,
                table_ref,
                &ctx,
            ))
        }
        (Method::PUT, Some(name)) => {
            let body = read_body(body).await?;
            let value = cpu_bound(|| parse_body(&mt, &body))?;
            let (obj, unknown) = storage.decode(value)?;
            check_unknown(&ctx, &unknown)?;
            let manager = manager_name(&ctx, &headers);
            let keys = storage.merge_keys();
            let av = def.api_version();
            let sub = target.subresource.clone();
            let now = super::stored::now_rfc3339();
            let f = move |cur: Option<Value>| -> Result<Value, ApiError> {
                let mut new = obj.clone();
                if sub.is_none() {
                    apply::record_update(cur.as_ref(), &mut new, &manager, &av, keys, &now);
                }
                Ok(new)
            };
            let (out, created) = storage
                .update(&ctx, ns, name, target.subresource.as_deref(), &f, false)
                .await?;
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(object_response(code, out, table_ref, &ctx))
        }
        (Method::PATCH, Some(name)) => {
            let ptype = PatchType::from_media_type(&mt)
                .ok_or_else(|| ApiError::UnsupportedMediaType(mt.clone()))?;
            let body = read_body(body).await?;
            let patch_value = cpu_bound(|| match ptype {
                PatchType::Apply => super::codec::parse_yaml(&body),
                _ => {
                    super::codec::check_depth(&body)?;
                    serde_json::from_slice::<Value>(&body)
                        .map_err(|e| ApiError::BadRequest(format!("error decoding patch: {e}")))
                }
            })?;
            let manager = manager_name(&ctx, &headers);
            if ptype == PatchType::Apply && ctx.field_manager.is_none() {
                return Err(ApiError::BadRequest(
                    "PATCH requests of type application/apply-patch+yaml require a fieldManager parameter".into(),
                ));
            }
            let force = q.flag("force");
            let keys = storage.merge_keys();
            let av = def.api_version();
            let gr = def.group_resource();
            let now = super::stored::now_rfc3339();
            let storage2 = storage.clone();
            let sub = target.subresource.clone();
            let ctx_ref = &ctx;
            let name_owned = name.to_string();
            // Applied configurations are decoded once, so unknown fields are judged once.
            let applied = if ptype == PatchType::Apply {
                let (applied, unknown) = storage.decode(patch_value.clone())?;
                check_unknown(&ctx, &unknown)?;
                let mut applied = applied;
                // Decoding fills defaults of absent fields; apply only what was sent.
                prune_to(&mut applied, &patch_value);
                Some(applied)
            } else {
                None
            };
            let f = move |cur: Option<Value>| -> Result<Value, ApiError> {
                match ptype {
                    PatchType::Apply => {
                        let applied = applied.as_ref().expect("decoded above");
                        let req = apply::ApplyRequest {
                            manager: &manager,
                            force,
                            api_version: &av,
                            keys,
                            gr: &gr,
                            name: &name_owned,
                            now: &now,
                        };
                        let out = apply::apply(cur.as_ref(), applied, &req)?;
                        // Only a resourceVersion the applier sent is a precondition;
                        // the live one it merged onto is not, so a concurrent write
                        // runs the apply again on the newer object (kube-apiserver's
                        // retry), instead of a 409 nobody asked for.
                        let sent_rv = applied
                            .pointer("/metadata/resourceVersion")
                            .and_then(Value::as_str)
                            .filter(|rv| !rv.is_empty());
                        let mut object = super::stored::unconditional(out.object);
                        if let Some(rv) = sent_rv {
                            object["metadata"]["resourceVersion"] = Value::from(rv);
                        }
                        Ok(object)
                    }
                    _ => {
                        let cur = cur.ok_or_else(|| ApiError::NotFound {
                            gr: gr.clone(),
                            name: name_owned.clone(),
                        })?;
                        let mut doc = cur.clone();
                        match ptype {
                            PatchType::Merge => patch::merge_patch(&mut doc, &patch_value)?,
                            PatchType::Json => patch::json_patch(&mut doc, &patch_value)?,
                            PatchType::Strategic => {
                                patch::strategic_merge_patch(&mut doc, &patch_value, keys)?
                            }
                            PatchType::Apply => unreachable!("handled above"),
                        }
                        let (mut new, unknown) = storage2.decode(doc)?;
                        check_unknown(ctx_ref, &unknown)?;
                        if sub.is_none() {
                            apply::record_update(Some(&cur), &mut new, &manager, &av, keys, &now);
                        }
                        // The resourceVersion the patch left as it was is not a
                        // precondition: a concurrent write makes the step run again on
                        // the newer object, as kube-apiserver retries patches.
                        let rv = |v: &Value| v.pointer("/metadata/resourceVersion").cloned();
                        if rv(&new).is_some() && rv(&new) == rv(&cur) {
                            new = super::stored::unconditional(new);
                        }
                        Ok(new)
                    }
                }
            };
            let (out, created) = storage
                .update(
                    &ctx,
                    ns,
                    name,
                    target.subresource.as_deref(),
                    &f,
                    ptype == PatchType::Apply,
                )
                .await?;
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(object_response(code, out, table_ref, &ctx))
        }
        (Method::DELETE, Some(name)) => {
            if def.group.is_empty() && def.plural == "namespaces" && name == "default" {
                return Err(ApiError::Forbidden(
                    "namespaces \"default\" is forbidden: this namespace may not be deleted".into(),
                ));
            }
            let body = read_body(body).await?;
            let pre = delete_preconditions(&body)?;
            if body_dry_run(&body) {
                let ctx2 = RequestContext {
                    dry_run: true,
                    ..context(&q, ctx.user.clone())?
                };
                let out = storage.delete(&ctx2, ns, name, &pre).await?;
                return Ok(json_response(StatusCode::OK, &out, Some(&ctx)));
            }
            let out = storage.delete(&ctx, ns, name, &pre).await?;
            api.after_delete(&def, &out).await?;
            Ok(json_response(StatusCode::OK, &out, Some(&ctx)))
        }
        (Method::DELETE, None) => {
            let opts = list_options(&q, &def)?;
            let list = storage.list(&ctx, ns, &opts).await?;
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
                match storage
                    .delete(
                        &ctx,
                        item_ns.as_deref().or(ns),
                        &name,
                        &DeletePreconditions::default(),
                    )
                    .await
                {
                    Ok(out) => {
                        api.after_delete(&def, &out).await?;
                        deleted.push(out);
                    }
                    Err(ApiError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            let body = json!({"kind": def.list_kind, "apiVersion": def.api_version(),
                              "metadata": {"resourceVersion": list.resource_version}, "items": deleted});
            Ok(json_response(StatusCode::OK, &body, Some(&ctx)))
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// Keeps only the parts of `decoded` that the client sent in `sent` (same shape).
fn prune_to(decoded: &mut Value, sent: &Value) {
    match (decoded, sent) {
        (Value::Object(d), Value::Object(s)) => {
            d.retain(|k, _| s.contains_key(k) || k == "apiVersion" || k == "kind");
            for (k, v) in d.iter_mut() {
                if let Some(sv) = s.get(k) {
                    prune_to(v, sv);
                }
            }
        }
        (Value::Array(d), Value::Array(s)) if d.len() == s.len() => {
            for (dv, sv) in d.iter_mut().zip(s) {
                prune_to(dv, sv);
            }
        }
        _ => {}
    }
}

fn delete_preconditions(body: &[u8]) -> Result<DeletePreconditions, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DeletePreconditions::default());
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("error decoding DeleteOptions: {e}")))?;
    Ok(DeletePreconditions {
        uid: v
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        resource_version: v
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

fn body_dry_run(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("dryRun").cloned())
        .and_then(|d| d.as_array().cloned())
        .is_some_and(|a| a.iter().any(|x| x == "All"))
}

async fn watch(
    storage: Arc<dyn RestStorage>,
    ctx: &RequestContext,
    ns: Option<&str>,
    opts: &ListOptions,
    table: Option<(TableDef, IncludeObject)>,
) -> Result<Response, ApiError> {
    let events = storage.watch(ctx, ns, opts).await?;
    let lines = events.map(move |ev| {
        let type_name = ev.type_name();
        let object = match ev {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => match &table
            {
                Some((td, include)) => {
                    let rv = o
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    table::render(td, &[o], *include, rv.as_deref(), None)
                }
                None => o,
            },
            WatchEvent::Bookmark(o) | WatchEvent::Error(o) => o,
        };
        let mut line =
            serde_json::to_vec(&json!({"type": type_name, "object": object})).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(line))
    });
    let mut resp = Response::new(Body::from_stream(lines));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_like_kube_apiserver() {
        let t = parse_target(
            "/apis/image.openshift.io/v1/namespaces/default/imagestreams/keycloak/status",
        )
        .unwrap();
        assert_eq!(t.group, "image.openshift.io");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.resource, "imagestreams");
        assert_eq!(t.name.as_deref(), Some("keycloak"));
        assert_eq!(t.subresource.as_deref(), Some("status"));
        let t = parse_target("/api/v1/namespaces/default").unwrap();
        assert_eq!(
            (t.resource.as_str(), t.name.as_deref(), t.namespace),
            ("namespaces", Some("default"), None)
        );
        let t = parse_target("/api/v1/namespaces/default/status").unwrap();
        assert_eq!(t.subresource.as_deref(), Some("status"));
        let t = parse_target("/api/v1/namespaces/default/secrets").unwrap();
        assert_eq!(
            (t.resource.as_str(), t.namespace.as_deref()),
            ("secrets", Some("default"))
        );
        let t = parse_target("/apis/image.openshift.io/v1/images/sha256:abc").unwrap();
        assert_eq!(t.name.as_deref(), Some("sha256:abc"));
        assert!(parse_target("/apis/x").is_none());
        assert!(parse_target("/api/v1/a/b/c/d").is_none());
    }

    #[test]
    fn query_decoding() {
        let pairs =
            form_urlencoded_pairs("labelSelector=app%3Dweb%2Ctier%21%3Ddb&watch=1&x=a+b&bad=%zz");
        assert_eq!(pairs[0].1, "app=web,tier!=db");
        assert_eq!(pairs[2].1, "a b");
        assert_eq!(pairs[3].1, "%zz");
        assert_eq!(pairs[1], ("watch".to_string(), "1".to_string()));
    }
}
