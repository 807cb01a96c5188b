//! Talking to the API server: finds and reads the kubeconfig (`--kubeconfig`, else
//! `$KUBECONFIG`, else `~/.kube/config`), builds a `kube::Client`, and sends the raw
//! requests `get`, `delete` and the Table printer need. May call kube and http only.

use std::path::{Path, PathBuf};

use http::HeaderValue;
use http::header::ACCEPT;
use kube::api::{DeleteParams, ListParams, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::core::{Request, Status};
use serde_json::Value;

use crate::resources::ResourceType;

/// What `Accept` asks for to get a `meta.k8s.io` Table, as kubectl asks for it.
pub const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

/// Errors from reaching the server or from what it answered.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// None of `--kubeconfig`, `$KUBECONFIG` and `~/.kube/config` names a file.
    #[error(
        "no kubeconfig: pass --kubeconfig PATH, set $KUBECONFIG, or create ~/.kube/config (`moor serve --data-dir DIR` writes DIR/kubeconfig)"
    )]
    NoKubeconfig,
    /// The kubeconfig could not be read.
    #[error("{0}")]
    ReadKubeconfig(#[source] KubeconfigError),
    /// The kubeconfig could not be used.
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        /// Where it was looked for.
        path: String,
        /// Why it failed.
        source: KubeconfigError,
    },
    /// The client could not be built from the kubeconfig.
    #[error("building the client: {0}")]
    Build(#[source] kube::Error),
    /// The server answered with a `metav1.Status` error.
    #[error("{}", .0.message)]
    Api(Box<Status>),
    /// Nothing listens at the server address.
    #[error(
        "The connection to the server {server} was refused - did you specify the right host or port?"
    )]
    Refused {
        /// `host:port` of the server.
        server: String,
    },
    /// Any other failure to talk to the server.
    #[error("Unable to connect to the server: {0}")]
    Connect(String),
    /// The server's answer was not what the API promises.
    #[error("the server returned an unexpected response: {0}")]
    Decode(String),
}

/// A client bound to a server and a namespace.
#[derive(Clone)]
pub struct Session {
    /// The kube client.
    pub client: kube::Client,
    /// The namespace commands work in.
    pub namespace: String,
    /// `host:port` of the server, for messages.
    server: String,
    /// What the client was built from (server URL, CA, credentials).
    config: kube::Config,
    /// The kubeconfig's current context, if it names one.
    context: Option<String>,
}

impl Session {
    /// Reads the kubeconfig and builds a client; `namespace` overrides the
    /// context's namespace.
    pub async fn connect(
        kubeconfig: Option<&Path>,
        namespace: Option<&str>,
    ) -> Result<Session, ClientError> {
        let (config, origin) = load_kubeconfig(kubeconfig)?;
        let context = config.current_context.clone();
        let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
            .await
            .map_err(|source| ClientError::Kubeconfig {
                path: origin.clone(),
                source,
            })?;
        let server = config
            .cluster_url
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_else(|| config.cluster_url.to_string());
        let ns = match namespace {
            Some(ns) if !ns.is_empty() => ns.to_string(),
            _ if config.default_namespace.is_empty() => "default".to_string(),
            _ => config.default_namespace.clone(),
        };
        tracing::debug!(kubeconfig = %origin, %server, namespace = %ns, "client configured");
        let client = kube::Client::try_from(config.clone()).map_err(ClientError::Build)?;
        Ok(Session {
            client,
            namespace: ns,
            server,
            config,
            context,
        })
    }

    /// The server's URL, as the kubeconfig names it.
    pub fn server_url(&self) -> String {
        self.config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string()
    }

    /// `host:port` of the server.
    pub fn server_host(&self) -> &str {
        &self.server
    }

    /// The kubeconfig's current context.
    pub fn context(&self) -> Option<&str> {
        self.context.as_deref()
    }

    /// The bearer token the client sends, if the kubeconfig has one.
    pub fn token(&self) -> Option<String> {
        use secrecy::ExposeSecret;
        if let Some(t) = &self.config.auth_info.token {
            return Some(t.expose_secret().to_string());
        }
        let file = self.config.auth_info.token_file.as_ref()?;
        std::fs::read_to_string(file)
            .ok()
            .map(|t| t.trim().to_string())
    }

    /// The CA certificates the client trusts for the server (DER), from the
    /// kubeconfig's `certificate-authority-data` or `certificate-authority`.
    pub fn ca_certificates(&self) -> &[Vec<u8>] {
        self.config.root_cert.as_deref().unwrap_or_default()
    }

    /// Whether the kubeconfig turns TLS verification off.
    pub fn insecure(&self) -> bool {
        self.config.accept_invalid_certs
    }

    /// The namespace to use for `ty`: the session's for namespaced types, none for
    /// cluster-scoped ones.
    pub fn namespace_for(&self, ty: &ResourceType) -> Option<&str> {
        ty.namespaced.then_some(self.namespace.as_str())
    }

    /// [`error`](Self::error) for a client without a session (`moor login`).
    pub fn classify_error(e: kube::Error, server: &str) -> ClientError {
        classify(e, server)
    }

    /// Turns a kube error into a [`ClientError`], recognizing refused connections.
    pub fn error(&self, e: kube::Error) -> ClientError {
        classify(e, &self.server)
    }

    /// `GET` one object as JSON.
    pub async fn get_json(
        &self,
        ty: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ClientError> {
        let req = Request::new(ty.collection_path(namespace))
            .get(name, &Default::default())
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        self.send_json(req).await
    }

    /// `GET` a list as JSON; `namespace` None lists across all namespaces.
    pub async fn list_json(
        &self,
        ty: &ResourceType,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Value, ClientError> {
        let req = Request::new(ty.collection_path(namespace))
            .list(&list_params(selector))
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        self.send_json(req).await
    }

    /// `GET` one object (`name`) or a list as a `meta.k8s.io` Table; with
    /// `include_object`, each row carries its whole object (for `--sort-by`).
    pub async fn get_table(
        &self,
        ty: &ResourceType,
        namespace: Option<&str>,
        name: Option<&str>,
        query: &ListQuery<'_>,
        include_object: bool,
    ) -> Result<Value, ClientError> {
        let request = Request::new(ty.collection_path(namespace));
        let mut req = match name {
            Some(name) => request.get(name, &Default::default()),
            None => request.list(&query.params()),
        }
        .map_err(|e| ClientError::Decode(e.to_string()))?;
        if include_object {
            let uri = req.uri().to_string();
            let sep = if uri.contains('?') { '&' } else { '?' };
            *req.uri_mut() = format!("{uri}{sep}includeObject=Object")
                .parse()
                .map_err(|e: http::uri::InvalidUri| ClientError::Decode(e.to_string()))?;
        }
        req.headers_mut()
            .insert(ACCEPT, HeaderValue::from_static(TABLE_ACCEPT));
        self.send_json(req).await
    }

    /// `GET` a list as JSON, with label and field selectors.
    pub async fn list_json_query(
        &self,
        ty: &ResourceType,
        namespace: Option<&str>,
        query: &ListQuery<'_>,
    ) -> Result<Value, ClientError> {
        let req = Request::new(ty.collection_path(namespace))
            .list(&query.params())
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        self.send_json(req).await
    }

    /// Watches a collection from `resource_version`: the stream of watch events
    /// (`{"type": ..., "object": ...}`), objects as Tables when `table`. Ends when the
    /// server ends the watch (after its timeout); the caller watches again.
    pub async fn watch(
        &self,
        ty: &ResourceType,
        namespace: Option<&str>,
        query: &ListQuery<'_>,
        resource_version: &str,
        table: bool,
    ) -> Result<impl futures::Stream<Item = Result<Value, ClientError>> + use<>, ClientError> {
        use futures::{AsyncBufReadExt, StreamExt};
        let wp = WatchParams {
            label_selector: query.labels.map(str::to_string),
            field_selector: query.fields.map(str::to_string),
            ..Default::default()
        };
        let mut req = Request::new(ty.collection_path(namespace))
            .watch(&wp, resource_version)
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        if table {
            req.headers_mut()
                .insert(ACCEPT, HeaderValue::from_static(TABLE_ACCEPT));
        }
        tracing::debug!(uri = %req.uri(), "watch");
        let body = self
            .client
            .request_stream(req)
            .await
            .map_err(|e| self.error(e))?;
        Ok(body.lines().map(|line| {
            let line = line.map_err(|e| ClientError::Connect(e.to_string()))?;
            serde_json::from_str(&line).map_err(|e| ClientError::Decode(e.to_string()))
        }))
    }

    /// `DELETE` one object; returns what the server answered (the object or a Status).
    pub async fn delete(
        &self,
        ty: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ClientError> {
        let req = Request::new(ty.collection_path(namespace))
            .delete(name, &DeleteParams::default())
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        self.send_json(req).await
    }

    /// `PATCH` one object with a patch of `content_type` (`application/merge-patch+json`,
    /// `application/json-patch+json`, ...), recorded under moor's field manager.
    pub async fn patch(
        &self,
        ty: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        content_type: &str,
        body: &Value,
    ) -> Result<Value, ClientError> {
        let uri = format!("{}/{name}?fieldManager=moor", ty.collection_path(namespace));
        let req = http::Request::patch(uri)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?)
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        self.send_json(req).await
    }

    /// `POST` an object to its collection; returns what the server created.
    pub async fn create_json(
        &self,
        ty: &ResourceType,
        namespace: Option<&str>,
        body: &Value,
    ) -> Result<Value, ClientError> {
        let uri = format!("{}?fieldManager=moor", ty.collection_path(namespace));
        let req = http::Request::post(uri)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?)
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        self.send_json(req).await
    }

    /// `GET` a path of the server (such as `/version`) as JSON.
    pub async fn get_path_json(&self, path: &str) -> Result<Value, ClientError> {
        let req = http::Request::get(path)
            .body(Vec::new())
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        self.send_json(req).await
    }

    /// `POST` a JSON body to `path` (an action such as an ImagePrune); returns the answer.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let req = http::Request::post(path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?)
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        self.send_json(req).await
    }

    async fn send_json(&self, req: http::Request<Vec<u8>>) -> Result<Value, ClientError> {
        tracing::debug!(method = %req.method(), uri = %req.uri(), "request");
        let text = self
            .client
            .request_text(req)
            .await
            .map_err(|e| self.error(e))?;
        serde_json::from_str(&text).map_err(|e| ClientError::Decode(e.to_string()))
    }
}

/// The selectors of a list or watch: `-l` and `--field-selector`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ListQuery<'a> {
    /// A label selector (`app=web,tier!=db`).
    pub labels: Option<&'a str>,
    /// A field selector (`metadata.name=keycloak`).
    pub fields: Option<&'a str>,
}

impl ListQuery<'_> {
    fn params(&self) -> ListParams {
        let mut lp = list_params(self.labels);
        if let Some(f) = self.fields {
            lp = lp.fields(f);
        }
        lp
    }
}

fn list_params(selector: Option<&str>) -> ListParams {
    let mut lp = ListParams::default();
    if let Some(s) = selector {
        lp = lp.labels(s);
    }
    lp
}

/// Reads the kubeconfig from `explicit`, else `$KUBECONFIG` (which may list several
/// files), else `~/.kube/config`; returns it with a description of where it came from.
fn load_kubeconfig(explicit: Option<&Path>) -> Result<(Kubeconfig, String), ClientError> {
    if let Some(path) = explicit {
        let k = Kubeconfig::read_from(path).map_err(ClientError::ReadKubeconfig)?;
        return Ok((k, path.display().to_string()));
    }
    if let Some(env) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let origin = format!("$KUBECONFIG ({})", env.to_string_lossy());
        return match Kubeconfig::from_env() {
            Ok(Some(k)) => Ok((k, origin)),
            Ok(None) => Err(ClientError::NoKubeconfig),
            Err(source) => Err(ClientError::Kubeconfig {
                path: origin,
                source,
            }),
        };
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .ok_or(ClientError::NoKubeconfig)?;
    let path = home.join(".kube").join("config");
    if !path.exists() {
        return Err(ClientError::NoKubeconfig);
    }
    let k = Kubeconfig::read_from(&path).map_err(ClientError::ReadKubeconfig)?;
    Ok((k, path.display().to_string()))
}

/// Sorts a kube error into a server answer, a refused connection, or another
/// connection failure.
fn classify(e: kube::Error, server: &str) -> ClientError {
    if let kube::Error::Api(status) = e {
        return ClientError::Api(status);
    }
    let mut detail = e.to_string();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return ClientError::Refused {
                    server: server.to_string(),
                };
            }
            detail = io.to_string();
        }
        if err.to_string().contains("Connection refused") {
            return ClientError::Refused {
                server: server.to_string(),
            };
        }
        source = err.source();
    }
    match e {
        kube::Error::SerdeError(err) => ClientError::Decode(err.to_string()),
        kube::Error::FromUtf8(err) => ClientError::Decode(err.to_string()),
        _ => ClientError::Connect(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_keep_their_status() {
        let status = Status::failure(
            "imagestreams.image.openshift.io \"x\" not found",
            "NotFound",
        )
        .with_code(404);
        let e = classify(kube::Error::Api(status.boxed()), "127.0.0.1:8443");
        assert!(matches!(&e, ClientError::Api(s) if s.reason == "NotFound"));
        assert_eq!(
            e.to_string(),
            "imagestreams.image.openshift.io \"x\" not found"
        );
    }

    #[tokio::test]
    async fn refused_connections_are_recognized() {
        // Bind and drop a listener to find a port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    namespace: team\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n"
            ),
        )
        .unwrap();
        let session = Session::connect(Some(&path), None).await.unwrap();
        assert_eq!(session.namespace, "team");
        let err = session
            .list_json(&crate::resources::IMAGE_STREAMS, Some("team"), None)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Refused { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "The connection to the server 127.0.0.1:{port} was refused - did you specify the right host or port?"
            )
        );
        let session = Session::connect(Some(&path), Some("other")).await.unwrap();
        assert_eq!(session.namespace, "other");
    }

    #[tokio::test]
    async fn missing_kubeconfig_names_the_path() {
        let err = Session::connect(Some(Path::new("/nonexistent/kubeconfig")), None)
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("/nonexistent/kubeconfig"), "{err}");
    }
}
