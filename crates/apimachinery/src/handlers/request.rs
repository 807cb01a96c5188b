//! Reading a request: the path (as kube-apiserver's RequestInfoFactory), query
//! parameters, options, the body, and the field manager.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Uri, header};
use serde_json::Value;

use super::partial::PartialMetadata;
use crate::codec::check_depth;
use crate::error::ApiError;
use crate::protobuf;
use crate::resource::*;
use crate::selectors::{FieldSelector, LabelSelector};

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
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub(crate) fn parse(uri: &Uri) -> Self {
        let pairs = uri.query().map(form_urlencoded_pairs).unwrap_or_default();
        Query { pairs }
    }

    pub(super) fn get(&self, k: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true") | Some("1") | Some(""))
    }
}

fn form_urlencoded_pairs(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub(super) fn context(q: &Query, user: Option<UserInfo>) -> Result<RequestContext, ApiError> {
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
        large_body: false,
    })
}

pub(super) fn list_options(q: &Query, def: &ResourceDef) -> Result<ListOptions, ApiError> {
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
        resource_version_match: q
            .get("resourceVersionMatch")
            .filter(|m| !m.is_empty())
            .map(str::to_string),
        allow_bookmarks: q.flag("allowWatchBookmarks"),
        send_initial_events: q.flag("sendInitialEvents"),
        timeout_seconds,
    })
}

/// Refuses or reports unknown fields according to `fieldValidation`.
pub(super) fn check_unknown(ctx: &RequestContext, unknown: &[String]) -> Result<(), ApiError> {
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

pub(super) fn manager_name(ctx: &RequestContext, headers: &HeaderMap) -> String {
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

/// Keeps only the parts of `decoded` that the client sent in `sent` (same shape).
pub(super) fn prune_to(decoded: &mut Value, sent: &Value) {
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

/// Parses a `DeleteOptions` body (JSON, or protobuf as client-go sends it); an empty
/// body is `null`.
pub(super) fn delete_options(media_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    if media_type == protobuf::MEDIA_TYPE {
        return Ok(protobuf::decode(body, Some(("v1", "DeleteOptions")))?);
    }
    check_depth(body)?;
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("error decoding DeleteOptions: {e}")))
}

pub(super) fn delete_preconditions(options: &Value) -> DeletePreconditions {
    DeletePreconditions {
        uid: options
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        resource_version: options
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

pub(super) fn body_dry_run(options: &Value) -> bool {
    options
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| x == "All"))
}

/// Media types moor answers in: JSON (with its `as=` conversions and `stream=watch`
/// variants). Protobuf responses are not served, and discovery does not claim them.
const ANSWERED: &[&str] = &["application/json", "application/*", "*/*"];

/// What the response is converted to, from the `as=`, `g=` and `v=` parameters of
/// the chosen `Accept` range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Convert {
    /// The resource's own kind.
    Plain,
    /// `as=Table`.
    Table,
    /// `as=PartialObjectMetadata` or `as=PartialObjectMetadataList`.
    Partial(PartialMetadata),
}

/// Chooses the response's form as kube-apiserver's negotiation does: ranges by `q`
/// (highest first, otherwise in order), skipping those moor cannot answer (protobuf,
/// other media types, `q=0`, an `as=` other than `meta.k8s.io` `v1`/`v1beta1` `Table`,
/// `PartialObjectMetadata` or `PartialObjectMetadataList`). So client-go's
/// `application/vnd.kubernetes.protobuf;as=...,application/json;as=...` gets the JSON
/// conversion. None left is 406; no header, or an empty one, accepts anything.
pub(super) fn negotiate(headers: &HeaderMap) -> Result<Convert, ApiError> {
    let mut ranges: Vec<(f32, &str)> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter(|r| !r.trim().is_empty())
        .map(|r| (range_q(r), r))
        .collect();
    if ranges.is_empty() {
        return Ok(Convert::Plain);
    }
    // A stable sort: equal `q` keeps the client's order.
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
    let chosen = ranges
        .into_iter()
        .filter(|(q, _)| *q > 0.0)
        .find_map(|(_, range)| range_convert(range));
    chosen.ok_or_else(|| {
        ApiError::NotAcceptable(format!(
            "only the following media types are accepted: {}",
            ANSWERED[0]
        ))
    })
}

/// The `q` of one `Accept` range (1 when absent or unreadable).
fn range_q(range: &str) -> f32 {
    range
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim() == "q")
        .and_then(|(_, v)| v.trim().parse::<f32>().ok())
        .unwrap_or(1.0)
}

/// What answering one `Accept` range means, or `None` when moor cannot answer it.
fn range_convert(range: &str) -> Option<Convert> {
    let mut parts = range.split(';');
    let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    if !ANSWERED.contains(&media.as_str()) {
        return None;
    }
    let (mut kind, mut group, mut version) = (None, "", "");
    for (k, v) in parts.filter_map(|p| p.split_once('=')) {
        match k.trim() {
            "as" => kind = Some(v.trim()),
            "g" => group = v.trim(),
            "v" => version = v.trim(),
            _ => {}
        }
    }
    let Some(kind) = kind else {
        return Some(Convert::Plain);
    };
    let version = match (group, version) {
        ("meta.k8s.io", "v1") => "v1",
        ("meta.k8s.io", "v1beta1") => "v1beta1",
        _ => return None,
    };
    match kind {
        "Table" => Some(Convert::Table),
        "PartialObjectMetadata" | "PartialObjectMetadataList" => {
            Some(Convert::Partial(PartialMetadata {
                version,
                list: kind == "PartialObjectMetadataList",
            }))
        }
        _ => None,
    }
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

    fn accept(v: &str) -> Result<Convert, ApiError> {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, v.parse().unwrap());
        negotiate(&h)
    }

    #[test]
    fn negotiation_follows_kube_apiserver() {
        let pom = |list| {
            Convert::Partial(PartialMetadata {
                version: "v1",
                list,
            })
        };
        assert_eq!(negotiate(&HeaderMap::new()).unwrap(), Convert::Plain);
        assert_eq!(
            accept("application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json").unwrap(),
            pom(true)
        );
        assert_eq!(
            accept("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1").unwrap(),
            pom(false)
        );
        assert_eq!(
            accept("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1").unwrap(),
            Convert::Partial(PartialMetadata {
                version: "v1beta1",
                list: false
            })
        );
        assert_eq!(
            accept("application/json;as=Table;v=v1;g=meta.k8s.io,application/json").unwrap(),
            Convert::Table
        );
        // An unknown conversion, or one outside meta.k8s.io, falls to the next range.
        assert_eq!(
            accept("application/json;as=Foo;g=meta.k8s.io;v=v1,application/json").unwrap(),
            Convert::Plain
        );
        assert_eq!(
            accept("application/json;q=0.5,application/json;as=Table;g=meta.k8s.io;v=v1").unwrap(),
            Convert::Table
        );
        for refused in [
            "application/json;as=Foo;g=meta.k8s.io;v=v1",
            "application/json;as=PartialObjectMetadata;g=apps;v=v1",
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v2",
            "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
            "application/json;q=0",
        ] {
            assert!(
                matches!(accept(refused), Err(ApiError::NotAcceptable(_))),
                "{refused}"
            );
        }
    }
}
