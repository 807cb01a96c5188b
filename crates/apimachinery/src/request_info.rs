//! What a request asks to do, read from its method and path the way kube-apiserver's
//! `RequestInfoFactory` reads them: the verb (get, list, watch, create, update, patch,
//! delete, deletecollection), and for resource requests the group, version,
//! namespace, resource, subresource and name. Authorizers decide on this.

use axum::http::{Method, Uri};

use crate::handlers::{Query, parse_target};

/// What a request asks to do (kube's `RequestInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// A request for a resource under `/api` or `/apis`, rather than a plain path.
    pub is_resource_request: bool,
    /// The request path.
    pub path: String,
    /// The Kubernetes verb; for non-resource requests the lowercased method.
    pub verb: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub subresource: Option<String>,
    pub name: Option<String>,
}

/// Reads `method` and `uri` into a [`RequestInfo`].
pub fn request_info(method: &Method, uri: &Uri) -> RequestInfo {
    let path = uri.path().to_string();
    let non_resource = |path: String| RequestInfo {
        verb: method.as_str().to_ascii_lowercase(),
        path,
        ..Default::default()
    };
    let Some(target) = parse_target(&path) else {
        return non_resource(path);
    };
    let watch = Query::parse(uri).flag("watch");
    let named = target.name.is_some();
    let verb = match *method {
        Method::GET | Method::HEAD if watch => "watch",
        Method::GET | Method::HEAD if named => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => return non_resource(path),
    };
    // A namespace is itself the object of `/api/v1/namespaces/NAME`, and its own
    // namespace, as kube-apiserver reads it.
    let namespace = match (&target.namespace, target.resource.as_str(), &target.name) {
        (Some(ns), _, _) => Some(ns.clone()),
        (None, "namespaces", Some(name)) if target.group.is_empty() => Some(name.clone()),
        _ => None,
    };
    RequestInfo {
        is_resource_request: true,
        path,
        verb: verb.to_string(),
        api_group: target.group,
        api_version: target.version,
        namespace,
        resource: target.resource,
        subresource: target.subresource,
        name: target.name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: Method, uri: &str) -> RequestInfo {
        request_info(&method, &uri.parse().expect("uri"))
    }

    #[test]
    fn verbs_follow_kube_apiserver() {
        let cases = [
            (
                Method::GET,
                "/apis/image.openshift.io/v1/namespaces/a/imagestreams",
                "list",
            ),
            (
                Method::GET,
                "/apis/image.openshift.io/v1/imagestreams?watch=true",
                "watch",
            ),
            (
                Method::GET,
                "/apis/image.openshift.io/v1/namespaces/a/imagestreams/x",
                "get",
            ),
            (Method::POST, "/api/v1/namespaces/a/secrets", "create"),
            (Method::PUT, "/api/v1/namespaces/a/secrets/s", "update"),
            (Method::PATCH, "/api/v1/namespaces/a/secrets/s", "patch"),
            (Method::DELETE, "/api/v1/namespaces/a/secrets/s", "delete"),
            (
                Method::DELETE,
                "/api/v1/namespaces/a/secrets",
                "deletecollection",
            ),
        ];
        for (m, uri, verb) in cases {
            let i = info(m.clone(), uri);
            assert!(i.is_resource_request, "{m} {uri}");
            assert_eq!(i.verb, verb, "{m} {uri}");
        }
    }

    #[test]
    fn resource_parts_are_read() {
        let i = info(
            Method::PUT,
            "/apis/image.openshift.io/v1/namespaces/team/imagestreams/app/status",
        );
        assert_eq!(i.api_group, "image.openshift.io");
        assert_eq!(i.api_version, "v1");
        assert_eq!(i.namespace.as_deref(), Some("team"));
        assert_eq!(i.resource, "imagestreams");
        assert_eq!(i.subresource.as_deref(), Some("status"));
        assert_eq!(i.name.as_deref(), Some("app"));
        let ns = info(Method::GET, "/api/v1/namespaces/team");
        assert_eq!(
            (ns.resource.as_str(), ns.namespace.as_deref()),
            ("namespaces", Some("team"))
        );
        let all = info(Method::GET, "/api/v1/secrets");
        assert_eq!(all.namespace, None, "a list across namespaces");
    }

    #[test]
    fn other_paths_are_non_resource_requests() {
        for (m, uri) in [
            (Method::GET, "/metrics"),
            (Method::GET, "/apis"),
            (Method::POST, "/healthz"),
        ] {
            let i = info(m.clone(), uri);
            assert!(!i.is_resource_request, "{uri}");
            assert_eq!(i.verb, m.as_str().to_ascii_lowercase());
            assert_eq!(i.path, uri);
        }
    }
}
