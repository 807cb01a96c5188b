//! `moor registry login`: makes a plain `podman pull HOST/ns/stream:tag` (and skopeo,
//! buildah) work against moor's registry, as `oc registry login` does:
//! - the credentials (the current token, or `--auth-basic USER:PASS`) go into the
//!   containers auth file (`--to`, else `$REGISTRY_AUTH_FILE`, else
//!   `$XDG_RUNTIME_DIR/containers/auth.json`, else `~/.config/containers/auth.json`),
//!   merged with what is there, mode 0600;
//! - the CA the kubeconfig trusts for the server goes into
//!   `CERTS_DIR/HOST/ca.crt` (`~/.config/containers/certs.d` unless `--certs-dir`), so
//!   TLS stays verified.
//!
//! The credentials are checked against the registry's `/v2/` first (`--skip-check`
//! does not). Calls the API (who am I) and the registry over HTTPS; writes files.

use std::path::{Path, PathBuf};

use base64::Engine;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::emit;
use crate::client::Session;
use crate::error::CliError;

pub(crate) const REGISTRY_EXAMPLES: &str = "\
Examples:
  # Log podman, skopeo and buildah in to moor's registry as the current user
  moor registry login
  podman pull 127.0.0.1:8443/team-a/keycloak:20.0";

const REGISTRY_LOGIN_EXAMPLES: &str = "\
The registry is the one the namespace's image streams name (status.dockerImageRepository),
else the API server's host:port, unless --registry says otherwise. The user
name is the current user's (\"serviceaccount\" for ServiceAccounts); the password is the
current token. The CA of the current context (or --ca-file) goes into the containers
certs.d folder: rootless podman reads ~/.config/containers/certs.d; podman run as root
reads only /etc/containers/certs.d, so pass --certs-dir /etc/containers/certs.d there.
In cluster mode the current context is kube-apiserver's, whose CA is not moor's: pass
moor's CA with --ca-file.

Examples:
  # Log in to moor's registry as the current user
  moor registry login

  # Write another auth file, with explicit credentials
  moor registry login --auth-basic=alice:alice-token --to=./auth.json

  # For podman run as root
  sudo moor registry login --certs-dir /etc/containers/certs.d

  # In cluster mode: trust moor's CA (the chart's Secret moor-ca) for the registry
  kubectl get secret -n moor moor-ca -o jsonpath='{.data.ca\\.crt}' | base64 -d > moor-ca.crt
  moor registry login --ca-file moor-ca.crt";

/// Flags of `moor registry`.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// What to do.
    #[command(subcommand)]
    pub what: RegistryCommand,
}

/// The verbs of `moor registry`.
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Log in to moor's registry: write credentials and its CA for podman, skopeo and buildah
    #[command(after_help = REGISTRY_LOGIN_EXAMPLES)]
    Login(RegistryLoginArgs),
}

/// Flags of `moor registry login`.
#[derive(Debug, Args)]
pub struct RegistryLoginArgs {
    /// The registry's host:port [default: the one the namespace's image streams name, else the API server's]
    #[arg(long, value_name = "HOST")]
    pub registry: Option<String>,

    /// USER:PASS to write instead of the current user and token
    #[arg(long, value_name = "USER:PASS")]
    pub auth_basic: Option<String>,

    /// The auth file to write [default: $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json, else ~/.config/containers/auth.json]
    #[arg(long = "to", value_name = "FILE")]
    pub to: Option<PathBuf>,

    /// The certs.d folder the registry's CA goes into, as HOST/ca.crt [default: ~/.config/containers/certs.d]
    #[arg(long, value_name = "DIR")]
    pub certs_dir: Option<PathBuf>,

    /// The registry's CA (PEM) to trust and write into certs.d, instead of the current context's [in cluster mode: moor's CA, e.g. the Secret moor-ca's ca.crt]
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub ca_file: Option<PathBuf>,

    /// Do not verify the registry's certificate when checking, and write no CA
    #[arg(long)]
    pub insecure: bool,

    /// Do not check the credentials against the registry
    #[arg(long)]
    pub skip_check: bool,
}

/// Errors of `moor registry login`.
#[derive(Debug, thiserror::Error)]
pub enum RegistryLoginError {
    /// `--auth-basic` without a colon.
    #[error("--auth-basic must be USER:PASS")]
    BadBasic,
    /// No token in the current context and no `--auth-basic`.
    #[error(
        "the current context has no token to log in with: pass --auth-basic USER:PASS, or `moor login --token ...` first"
    )]
    NoToken,
    /// Neither `HOME` nor the other places name a folder.
    #[error("no place for the {0}: $HOME is not set")]
    NoHome(&'static str),
    /// The registry refused the credentials.
    #[error("the registry {host} refused the credentials ({status})")]
    Refused {
        /// The registry.
        host: String,
        /// Its answer.
        status: u16,
    },
    /// The registry could not be reached.
    #[error("checking the registry {host}: {}", chain(source))]
    Check {
        /// The registry.
        host: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The registry's certificate is not signed by the CA used for it.
    #[error(
        "the registry {host} presents a certificate that {trusted} does not sign ({detail}).\n\
         In cluster mode moor's registry has its own CA, not kube-apiserver's: pass it with --ca-file \
         (moor serve writes it to DATA_DIR/tls/ca.crt; with the Helm chart it is the Secret moor-ca's ca.crt), \
         or --insecure to skip the check and write no CA"
    )]
    Untrusted {
        /// The registry.
        host: String,
        /// `--ca-file F` or the current context's CA.
        trusted: String,
        /// What TLS said.
        detail: String,
    },
    /// `--ca-file` could not be read or holds no certificate.
    #[error("--ca-file {path}: {detail}")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// The existing auth file is not JSON.
    #[error("{path} is not a containers auth file: {source}")]
    BadAuthFile {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// Writing a file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Runs `moor registry ...`.
pub async fn run(session: &Session, args: RegistryArgs) -> Result<(), CliError> {
    match args.what {
        RegistryCommand::Login(a) => login(session, a).await,
    }
}

async fn login(session: &Session, a: RegistryLoginArgs) -> Result<(), CliError> {
    let host = match a.registry.clone() {
        Some(host) => host,
        None => streams_registry(session)
            .await
            .unwrap_or_else(|| session.server_host().to_string()),
    };
    let (user, pass) = match &a.auth_basic {
        Some(basic) => {
            let (u, p) = basic.split_once(':').ok_or(RegistryLoginError::BadBasic)?;
            (u.to_string(), p.to_string())
        }
        None => {
            let token = session.token().ok_or(RegistryLoginError::NoToken)?;
            let review = super::auth::self_subject_review(session).await?;
            let name = review
                .status
                .and_then(|s| s.user_info)
                .and_then(|u| u.username)
                .unwrap_or_default();
            (registry_user(&name), token)
        }
    };
    let ca_pem = match (&a.ca_file, a.insecure) {
        (_, true) => None,
        (Some(path), false) => Some(read_ca_file(path)?),
        (None, false) => Some(pem_bundle(session.ca_certificates())),
    };
    let ca_pem = ca_pem.filter(|p| !p.is_empty());
    let trusted = match &a.ca_file {
        Some(path) => format!("--ca-file {}", path.display()),
        None => "the current context's CA".to_string(),
    };
    let https = session.server_url().starts_with("https://") || a.registry.is_some();
    if !a.skip_check {
        check(
            &host,
            &user,
            &pass,
            ca_pem.as_deref(),
            a.insecure || (a.ca_file.is_none() && session.insecure()),
            https,
            &trusted,
        )
        .await?;
    }

    let auth_path = match a.to.clone() {
        Some(p) => p,
        None => default_auth_file()?,
    };
    write_auth_file(&auth_path, &host, &user, &pass)?;
    let mut out = format!(
        "Saved credentials for {host} into {}\n",
        auth_path.display()
    );
    if let Some(pem) = ca_pem {
        let dir = match a.certs_dir.clone() {
            Some(d) => d,
            None => home()?.join(".config/containers/certs.d"),
        };
        let file = dir.join(&host).join("ca.crt");
        super::write_private(&file, pem.as_bytes()).map_err(|source| {
            RegistryLoginError::Write {
                path: file.display().to_string(),
                source,
            }
        })?;
        out.push_str(&format!("Saved the CA of {host} into {}\n", file.display()));
    }
    emit(&out)
}

/// The registry host the namespace's image streams name (`status.publicDockerImageRepository`,
/// else `status.dockerImageRepository`), as `oc registry login` finds it: in cluster
/// mode the API server is kube-apiserver, and moor's registry is elsewhere. `None`
/// when no stream names one or they cannot be listed.
async fn streams_registry(session: &Session) -> Option<String> {
    let ty = &crate::resources::IMAGE_STREAMS;
    let list = session
        .list_json(ty, session.namespace_for(ty), None)
        .await
        .ok()?;
    list["items"].as_array()?.iter().find_map(|stream| {
        let status = &stream["status"];
        ["publicDockerImageRepository", "dockerImageRepository"]
            .iter()
            .filter_map(|k| status[*k].as_str())
            .find_map(|repo| repo.split_once('/').map(|(host, _)| host.to_owned()))
    })
}

/// The user name written with the token: the user's own, or `serviceaccount` when
/// it has colons (`system:serviceaccount:ns:name`), which Basic auth cannot carry.
fn registry_user(name: &str) -> String {
    if name.is_empty() || name.contains(':') {
        "serviceaccount".to_string()
    } else {
        name.to_string()
    }
}

/// DER certificates as one PEM bundle.
fn pem_bundle(ders: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for der in ders {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// `GET /v2/` with the credentials must answer 200.
async fn check(
    host: &str,
    user: &str,
    pass: &str,
    ca_pem: Option<&str>,
    insecure: bool,
    https: bool,
    trusted: &str,
) -> Result<(), CliError> {
    let fail = |source| RegistryLoginError::Check {
        host: host.to_string(),
        source,
    };
    let mut builder = reqwest::Client::builder().danger_accept_invalid_certs(insecure);
    if let Some(pem) = ca_pem {
        for cert in reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(fail)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    let client = builder.build().map_err(fail)?;
    let scheme = if https { "https" } else { "http" };
    let response = client
        .get(format!("{scheme}://{host}/v2/"))
        .basic_auth(user, Some(pass))
        .send()
        .await
        .map_err(|e| match certificate_problem(&e) {
            Some(detail) => RegistryLoginError::Untrusted {
                host: host.to_string(),
                trusted: trusted.to_string(),
                detail,
            },
            None => fail(e),
        })?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(RegistryLoginError::Refused {
            host: host.to_string(),
            status,
        }
        .into());
    }
    Ok(())
}

/// The PEM certificates in `path`, checked to hold at least one.
fn read_ca_file(path: &std::path::Path) -> Result<String, RegistryLoginError> {
    let fail = |detail: String| RegistryLoginError::CaFile {
        path: path.display().to_string(),
        detail,
    };
    let pem = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    match reqwest::Certificate::from_pem_bundle(pem.as_bytes()) {
        Ok(certs) if !certs.is_empty() => Ok(pem),
        Ok(_) => Err(fail("no PEM certificate in it".into())),
        Err(e) => Err(fail(e.to_string())),
    }
}

/// `e` and its sources, joined as Go's wrapped errors print.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(source) = next {
        let text = source.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = source.source();
    }
    out
}

/// What TLS said when `e` failed on the peer's certificate (rustls: "invalid peer
/// certificate: UnknownIssuer"), else `None`.
fn certificate_problem(e: &reqwest::Error) -> Option<String> {
    let mut next: Option<&dyn std::error::Error> = Some(e);
    while let Some(source) = next {
        let text = source.to_string();
        if text.contains("certificate")
            && source
                .source()
                .is_none_or(|s| !s.to_string().contains("certificate"))
        {
            return Some(text);
        }
        next = source.source();
    }
    None
}

fn home() -> Result<PathBuf, RegistryLoginError> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or(RegistryLoginError::NoHome("registry credentials"))
}

/// Where containers/image reads credentials from, first match wins.
fn default_auth_file() -> Result<PathBuf, RegistryLoginError> {
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(f));
    }
    if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(run).join("containers/auth.json"));
    }
    Ok(home()?.join(".config/containers/auth.json"))
}

/// Sets `auths[host]` of the auth file at `path`, keeping everything else in it.
fn write_auth_file(path: &Path, host: &str, user: &str, pass: &str) -> Result<(), CliError> {
    let mut doc: Value = match std::fs::read(path) {
        Ok(bytes) if !bytes.iter().all(u8::is_ascii_whitespace) => {
            serde_json::from_slice(&bytes).map_err(|source| RegistryLoginError::BadAuthFile {
                path: path.display().to_string(),
                source,
            })?
        }
        _ => json!({}),
    };
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    set_auth(&mut doc, host, &auth);
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
    super::write_private(path, text.as_bytes()).map_err(|source| {
        RegistryLoginError::Write {
            path: path.display().to_string(),
            source,
        }
        .into()
    })
}

fn set_auth(doc: &mut Value, host: &str, auth: &str) {
    if !doc.is_object() {
        *doc = json!({});
    }
    if !doc["auths"].is_object() {
        doc["auths"] = json!({});
    }
    doc["auths"][host] = json!({ "auth": auth });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_entries_are_kept() {
        let mut doc = json!({
            "auths": {"quay.io": {"auth": "eA=="}, "h:1": {"auth": "old", "identitytoken": "x"}},
            "credHelpers": {"gcr.io": "gcloud"}
        });
        set_auth(&mut doc, "h:1", "new");
        assert_eq!(doc["auths"]["quay.io"]["auth"], "eA==");
        assert_eq!(doc["auths"]["h:1"], json!({"auth": "new"}));
        assert_eq!(doc["credHelpers"]["gcr.io"], "gcloud");
    }

    #[test]
    fn users_with_colons_log_in_as_serviceaccount() {
        assert_eq!(registry_user("alice"), "alice");
        assert_eq!(
            registry_user("system:serviceaccount:ci:deployer"),
            "serviceaccount"
        );
    }

    #[test]
    fn the_auth_file_is_private_and_merged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/auth.json");
        write_auth_file(&path, "a:1", "u", "p").unwrap();
        write_auth_file(&path, "b:2", "v", "q").unwrap();
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(doc["auths"]["a:1"]["auth"], "dTpw");
        assert_eq!(doc["auths"]["b:2"]["auth"], "djpx");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
