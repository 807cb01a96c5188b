//! `moor login --token T --server URL`: checks the token with a SelfSubjectReview and
//! writes a context for it into the kubeconfig (`--kubeconfig`, else the first file of
//! `$KUBECONFIG`, else `~/.kube/config`), named as oc names them (cluster
//! `127-0-0-1:8443`, user `alice/127-0-0-1:8443`, context
//! `default/127-0-0-1:8443/alice`), and makes it current. Other clusters, users and
//! contexts of the file are kept.

use std::path::{Path, PathBuf};

use base64::Engine;
use clap::Args;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::Api;
use kube::api::PostParams;
use kube::config::{
    AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster,
    NamedContext,
};

use super::emit;
use crate::client::ClientError;
use crate::error::CliError;

pub(crate) const LOGIN_EXAMPLES: &str = "\
The token is checked with the server (a SelfSubjectReview) before anything is written.
moor's own CA is DATA_DIR/tls/ca.crt of the server's data directory.

Examples:
  # Log in with a token of --token-auth-file, trusting moor's CA
  moor login --token alice-token --server https://moor.example:8443 \\
      --certificate-authority ./moor-data/tls/ca.crt

  # Into another kubeconfig, in namespace team-a
  moor login https://127.0.0.1:8443 --token \"$TOKEN\" --certificate-authority ca.crt \\
      --kubeconfig ./alice.kubeconfig -n team-a";

/// Flags of `moor login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The server URL (or use --server)
    #[arg(value_name = "SERVER", conflicts_with = "server")]
    pub url: Option<String>,

    /// The address and port of the API server
    #[arg(short = 's', long, value_name = "URL")]
    pub server: Option<String>,

    /// Bearer token for authentication to the API server
    #[arg(long, value_name = "TOKEN", required = true)]
    pub token: String,

    /// Path to a cert file for the certificate authority (kept in the kubeconfig as certificate-authority-data)
    #[arg(long, value_name = "FILE")]
    pub certificate_authority: Option<PathBuf>,

    /// If true, the server's certificate will not be checked for validity. This will make your HTTPS connections insecure
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,
}

/// Errors of `moor login`, worded as oc words them.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Neither SERVER nor `--server`.
    #[error("a server URL is required: moor login --server URL --token TOKEN")]
    NoServer,
    /// The CA file could not be read.
    #[error("reading --certificate-authority {path}: {source}")]
    ReadCa {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server's certificate is not signed by a trusted CA.
    #[error(
        "The server uses a certificate signed by unknown authority. You may need to use the --certificate-authority flag to provide the path to a certificate file for the certificate authority, or --insecure-skip-tls-verify to bypass the certificate check and use insecure connections."
    )]
    UnknownAuthority,
    /// The token was refused.
    #[error("The token provided is invalid or expired.")]
    BadToken,
    /// The kubeconfig could not be built, read or written.
    #[error("{0}")]
    Kubeconfig(String),
    /// Writing the kubeconfig failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Runs `moor login`.
pub async fn run(
    kubeconfig: Option<&Path>,
    namespace: Option<&str>,
    args: LoginArgs,
) -> Result<(), CliError> {
    let url = args
        .url
        .or(args.server)
        .map(|u| normalize_url(&u))
        .ok_or(LoginError::NoServer)?;
    let ca_data = match &args.certificate_authority {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|source| LoginError::ReadCa {
                path: path.display().to_string(),
                source,
            })?;
            Some(base64::engine::general_purpose::STANDARD.encode(pem))
        }
        None => None,
    };
    let cluster = Cluster {
        server: Some(url.clone()),
        certificate_authority_data: ca_data,
        insecure_skip_tls_verify: args.insecure_skip_tls_verify.then_some(true),
        ..Default::default()
    };
    let user = verify(&cluster, &args.token).await?;

    let path = target_path(kubeconfig)?;
    let mut config = match std::fs::read_to_string(&path) {
        Ok(text) => {
            Kubeconfig::from_yaml(&text).map_err(|e| LoginError::Kubeconfig(e.to_string()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Kubeconfig::default(),
        Err(source) => {
            return Err(LoginError::Write {
                path: path.display().to_string(),
                source,
            }
            .into());
        }
    };
    let namespace = namespace
        .map(str::to_string)
        .unwrap_or_else(|| "default".to_string());
    merge_context(&mut config, cluster, &user, &args.token, &namespace);
    write_kubeconfig(&path, &config)?;
    emit(&format!(
        "Logged into {url:?} as {user:?} using the token provided.\n"
    ))
}

/// `https://` unless a scheme is given; no trailing slash.
fn normalize_url(url: &str) -> String {
    let url = url.trim_end_matches('/');
    if url.contains("://") {
        url.to_string()
    } else {
        format!("https://{url}")
    }
}

/// oc's nickname of a cluster: `host:port` with dots as dashes.
fn cluster_nickname(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap_or(rest);
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else if url.starts_with("http://") {
        format!("{hostport}:80")
    } else {
        format!("{hostport}:443")
    };
    hostport.replace('.', "-")
}

/// Asks the server who `token` is, trusting `cluster`'s CA.
async fn verify(cluster: &Cluster, token: &str) -> Result<String, CliError> {
    let probe = Kubeconfig {
        clusters: vec![NamedCluster {
            name: "login".into(),
            cluster: Some(cluster.clone()),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: "login".into(),
            auth_info: Some(AuthInfo {
                token: Some(token.to_string().into()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: "login".into(),
            context: Some(Context {
                cluster: "login".into(),
                user: Some("login".into()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        current_context: Some("login".into()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(probe, &KubeConfigOptions::default())
        .await
        .map_err(|e| LoginError::Kubeconfig(e.to_string()))?;
    let server = config
        .cluster_url
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let client = kube::Client::try_from(config).map_err(ClientError::Build)?;
    let api: Api<SelfSubjectReview> = Api::all(client);
    let review = match api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
    {
        Ok(r) => r,
        Err(kube::Error::Api(s)) if s.code == 401 => return Err(LoginError::BadToken.into()),
        Err(e) if is_unknown_authority(&e) => return Err(LoginError::UnknownAuthority.into()),
        Err(e) => {
            return Err(crate::client::Session::classify_error(e, &server).into());
        }
    };
    Ok(review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .unwrap_or_default())
}

fn is_unknown_authority(e: &kube::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        let text = err.to_string();
        if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
            return true;
        }
        source = err.source();
    }
    false
}

/// `--kubeconfig`, else the first file of `$KUBECONFIG`, else `~/.kube/config`.
fn target_path(explicit: Option<&Path>) -> Result<PathBuf, CliError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(env) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty())
        && let Some(first) = std::env::split_paths(&env).find(|p| !p.as_os_str().is_empty())
    {
        return Ok(first);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .ok_or_else(|| LoginError::Kubeconfig("$HOME is not set: pass --kubeconfig".into()))?;
    Ok(home.join(".kube").join("config"))
}

/// Puts the cluster, user and context oc would name into `config` (replacing
/// entries of those names) and makes the context current.
fn merge_context(
    config: &mut Kubeconfig,
    cluster: Cluster,
    user: &str,
    token: &str,
    namespace: &str,
) {
    let server = cluster.server.clone().unwrap_or_default();
    let cluster_name = cluster_nickname(&server);
    let user_name = format!("{user}/{cluster_name}");
    let context_name = format!("{namespace}/{cluster_name}/{user}");
    config.clusters.retain(|c| c.name != cluster_name);
    config.clusters.push(NamedCluster {
        name: cluster_name.clone(),
        cluster: Some(cluster),
        ..Default::default()
    });
    config.auth_infos.retain(|u| u.name != user_name);
    config.auth_infos.push(NamedAuthInfo {
        name: user_name.clone(),
        auth_info: Some(AuthInfo {
            token: Some(token.to_string().into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    config.contexts.retain(|c| c.name != context_name);
    config.contexts.push(NamedContext {
        name: context_name.clone(),
        context: Some(Context {
            cluster: cluster_name,
            user: Some(user_name),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        }),
        ..Default::default()
    });
    config.current_context = Some(context_name);
    config.api_version.get_or_insert_with(|| "v1".into());
    config.kind.get_or_insert_with(|| "Config".into());
}

/// Writes `config` to `path` (0600, through a temporary file and a rename).
fn write_kubeconfig(path: &Path, config: &Kubeconfig) -> Result<(), CliError> {
    let text =
        serde_yaml_ng::to_string(config).map_err(|e| LoginError::Kubeconfig(e.to_string()))?;
    crate::commands::write_private(path, text.as_bytes()).map_err(|source| {
        LoginError::Write {
            path: path.display().to_string(),
            source,
        }
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_oc() {
        assert_eq!(normalize_url("127.0.0.1:8443/"), "https://127.0.0.1:8443");
        assert_eq!(cluster_nickname("https://127.0.0.1:8443"), "127-0-0-1:8443");
        assert_eq!(cluster_nickname("https://moor.example"), "moor-example:443");
        assert_eq!(cluster_nickname("http://moor.example/x"), "moor-example:80");
    }

    #[test]
    fn a_context_is_added_and_the_others_are_kept() {
        let mut config = Kubeconfig::from_yaml(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster:\n    server: https://other:6443\ncontexts:\n- name: other\n  context:\n    cluster: other\n    user: bob\ncurrent-context: other\nusers:\n- name: bob\n  user:\n    token: bob-token\n",
        )
        .unwrap();
        let cluster = Cluster {
            server: Some("https://127.0.0.1:8443".into()),
            ..Default::default()
        };
        merge_context(&mut config, cluster.clone(), "alice", "t1", "team-a");
        merge_context(&mut config, cluster, "alice", "t2", "team-a");
        let text = serde_yaml_ng::to_string(&config).unwrap();
        let back = Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(
            back.current_context.as_deref(),
            Some("team-a/127-0-0-1:8443/alice")
        );
        assert_eq!(back.clusters.len(), 2, "{text}");
        assert_eq!(back.contexts.len(), 2, "{text}");
        assert_eq!(back.auth_infos.len(), 2, "{text}");
        assert!(
            text.contains("token: t2") && !text.contains("token: t1"),
            "{text}"
        );
        assert!(text.contains("token: bob-token"), "{text}");
    }
}
