//! Discovery: `/version`, `/api`, `/apis`, group and group-version documents, and
//! aggregated discovery (apidiscovery.k8s.io/v2) when the client asks for it, as
//! kubectl does on every command. Built from the served [`ResourceDef`]s.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions, GroupVersionForDiscovery,
    ServerAddressByClientCIDR,
};
use kube_core::discovery::v2::{
    APIGroupDiscovery, APIGroupDiscoveryList, APIResourceDiscovery, APISubresourceDiscovery,
    APIVersionDiscovery, GroupVersionKind,
};
use serde_json::{Value, json};

use super::resource::ResourceDef;

/// The Kubernetes API level moor's API machinery follows.
pub const KUBE_MAJOR: &str = "1";
/// See [`KUBE_MAJOR`].
pub const KUBE_MINOR: &str = "32";

const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// `GET /version`.
pub fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0+moor-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

/// Whether the Accept header asks for aggregated discovery first.
pub fn wants_aggregated(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|first| first.contains("as=APIGroupDiscoveryList") && first.contains("v=v2"))
}

fn aggregated_response(list: APIGroupDiscoveryList) -> Response {
    let mut body = serde_json::to_value(&list).unwrap_or_else(|_| json!({}));
    body["kind"] = json!("APIGroupDiscoveryList");
    body["apiVersion"] = json!("apidiscovery.k8s.io/v2");
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(AGGREGATED_CONTENT_TYPE),
    );
    resp
}

fn verbs(def: &ResourceDef) -> Vec<String> {
    def.verbs.iter().map(|v| v.to_string()).collect()
}

fn resource_discovery(def: &ResourceDef) -> APIResourceDiscovery {
    APIResourceDiscovery {
        resource: Some(def.plural.into()),
        response_kind: Some(GroupVersionKind {
            group: Some(def.group.into()),
            version: Some(def.version.into()),
            kind: Some(def.kind.into()),
        }),
        scope: Some(
            if def.namespaced {
                "Namespaced"
            } else {
                "Cluster"
            }
            .into(),
        ),
        singular_resource: Some(def.singular.into()),
        verbs: verbs(def),
        short_names: def.short_names.iter().map(|s| s.to_string()).collect(),
        categories: def.categories.iter().map(|s| s.to_string()).collect(),
        subresources: def
            .subresources
            .iter()
            .map(|s| APISubresourceDiscovery {
                subresource: Some(s.to_string()),
                response_kind: Some(GroupVersionKind {
                    group: Some(def.group.into()),
                    version: Some(def.version.into()),
                    kind: Some(def.kind.into()),
                }),
                accepted_types: Vec::new(),
                verbs: vec!["get".into(), "patch".into(), "update".into()],
            })
            .collect(),
    }
}

/// Groups (name → versions → resources), in a stable order.
fn grouped<'a>(
    defs: impl Iterator<Item = &'a ResourceDef>,
) -> BTreeMap<&'a str, BTreeMap<&'a str, Vec<&'a ResourceDef>>> {
    let mut groups: BTreeMap<&str, BTreeMap<&str, Vec<&ResourceDef>>> = BTreeMap::new();
    for d in defs {
        groups
            .entry(d.group)
            .or_default()
            .entry(d.version)
            .or_default()
            .push(d);
    }
    groups
}

fn group_discovery(name: &str, versions: &BTreeMap<&str, Vec<&ResourceDef>>) -> APIGroupDiscovery {
    APIGroupDiscovery {
        metadata: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        }),
        versions: versions
            .iter()
            .map(|(v, defs)| APIVersionDiscovery {
                version: Some(v.to_string()),
                resources: defs.iter().map(|d| resource_discovery(d)).collect(),
                freshness: Some("Current".into()),
            })
            .collect(),
    }
}

/// `GET /api`.
pub fn core_versions<'a>(
    defs: impl Iterator<Item = &'a ResourceDef>,
    headers: &HeaderMap,
    server_address: &str,
) -> Response {
    if wants_aggregated(headers) {
        let groups = grouped(defs.filter(|d| d.group.is_empty()));
        let items = groups
            .iter()
            .map(|(g, vs)| group_discovery(g, vs))
            .collect();
        return aggregated_response(APIGroupDiscoveryList {
            metadata: None,
            items,
        });
    }
    let v = APIVersions {
        versions: vec!["v1".into()],
        server_address_by_client_cidrs: vec![ServerAddressByClientCIDR {
            client_cidr: "0.0.0.0/0".into(),
            server_address: server_address.into(),
        }],
    };
    let mut body = serde_json::to_value(v).unwrap_or_default();
    body["kind"] = json!("APIVersions");
    axum::Json(body).into_response()
}

fn api_group(name: &str, versions: &BTreeMap<&str, Vec<&ResourceDef>>) -> APIGroup {
    let gvs: Vec<GroupVersionForDiscovery> = versions
        .keys()
        .map(|v| GroupVersionForDiscovery {
            group_version: format!("{name}/{v}"),
            version: v.to_string(),
        })
        .collect();
    APIGroup {
        name: name.to_string(),
        preferred_version: gvs.first().cloned(),
        server_address_by_client_cidrs: None,
        versions: gvs,
    }
}

/// `GET /apis`.
pub fn groups<'a>(defs: impl Iterator<Item = &'a ResourceDef>, headers: &HeaderMap) -> Response {
    let groups = grouped(defs.filter(|d| !d.group.is_empty()));
    if wants_aggregated(headers) {
        let items = groups
            .iter()
            .map(|(g, vs)| group_discovery(g, vs))
            .collect();
        return aggregated_response(APIGroupDiscoveryList {
            metadata: None,
            items,
        });
    }
    let list = APIGroupList {
        groups: groups.iter().map(|(g, vs)| api_group(g, vs)).collect(),
    };
    axum::Json(serde_json::to_value(list).unwrap_or_default()).into_response()
}

/// `GET /apis/<group>`; `None` when the group is not served.
pub fn group<'a>(defs: impl Iterator<Item = &'a ResourceDef>, name: &str) -> Option<Response> {
    let groups = grouped(defs.filter(|d| d.group == name));
    let versions = groups.get(name)?;
    Some(
        axum::Json(serde_json::to_value(api_group(name, versions)).unwrap_or_default())
            .into_response(),
    )
}

/// `GET /api/v1` or `/apis/<group>/<version>`; `None` when not served.
pub fn resource_list<'a>(
    defs: impl Iterator<Item = &'a ResourceDef>,
    group: &str,
    version: &str,
) -> Option<Response> {
    let defs: Vec<&ResourceDef> = defs
        .filter(|d| d.group == group && d.version == version)
        .collect();
    if defs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for d in &defs {
        resources.push(APIResource {
            name: d.plural.into(),
            singular_name: d.singular.into(),
            namespaced: d.namespaced,
            kind: d.kind.into(),
            verbs: verbs(d),
            short_names: (!d.short_names.is_empty())
                .then(|| d.short_names.iter().map(|s| s.to_string()).collect()),
            categories: (!d.categories.is_empty())
                .then(|| d.categories.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        });
        for s in d.subresources {
            resources.push(APIResource {
                name: format!("{}/{s}", d.plural),
                singular_name: String::new(),
                namespaced: d.namespaced,
                kind: d.kind.into(),
                verbs: vec!["get".into(), "patch".into(), "update".into()],
                ..Default::default()
            });
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let list = APIResourceList {
        group_version: gv,
        resources,
    };
    let mut body = serde_json::to_value(list).unwrap_or_default();
    body["kind"] = json!("APIResourceList");
    body["apiVersion"] = json!("v1");
    Some(axum::Json(body).into_response())
}
