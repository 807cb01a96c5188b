//! The identity replicas share, so that several `moor serve` processes on one store
//! are one service and a kubeconfig written by one works on all: the admin token,
//! moor's CA (each replica issues its own serving certificate from it), the
//! ServiceAccount signing key and the registry's hostname. They are kept in the store as the Secret
//! `kube-system/moor-identity`, so `--encryption-provider-config` covering `secrets`
//! encrypts them at rest like any Secret.
//!
//! Each entry is created once: the first replica to need it stores what it has
//! locally (the files of an existing data dir, so upgrading keeps them) or makes a new
//! one, with a compare-and-swap; every later replica reads it and writes its local
//! copy under the data dir. What comes from a flag (`--tls-cert-file`,
//! `--service-account-signing-key-file`, `--encryption-provider-config`) is not stored:
//! every replica must be given the same file. RBAC objects already live in the store.
//! Calls the store, the TLS and ServiceAccount key makers, and the file system.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use moor_store::{Store, StoreError};
use serde_json::{Value, json};

/// The Secret's store key (`kube-system/moor-identity`).
pub const IDENTITY_KEY: &str = "/registry/core/secrets/kube-system/moor-identity";
/// The entry holding the admin token.
pub const ADMIN_TOKEN: &str = "admin-token";
/// The entries holding moor's CA.
pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
/// The entry holding the ServiceAccount signing key.
pub const SA_KEY: &str = "service-account.key";
/// The entry holding the registry's hostname, when one was given.
pub const REGISTRY_HOSTNAME: &str = "registry-hostname";
/// The entry holding the key that seals the console's pending OIDC logins.
pub const CONSOLE_KEY: &str = "console-sealing.key";

/// Errors of reading or making the shared identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("shared identity in the store: {0}")]
    Store(#[from] StoreError),
    #[error("shared identity: the stored Secret is not valid: {0}")]
    Corrupt(String),
    #[error("shared identity: {0}")]
    Make(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn decode(value: &[u8]) -> Result<BTreeMap<String, String>, IdentityError> {
    let corrupt = |m: String| IdentityError::Corrupt(m);
    let secret: Value = serde_json::from_slice(value).map_err(|e| corrupt(e.to_string()))?;
    let mut out = BTreeMap::new();
    if let Some(data) = secret.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            let b64 = v.as_str().ok_or_else(|| corrupt(format!("data.{k}")))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| corrupt(format!("data.{k}: {e}")))?;
            let text = String::from_utf8(bytes).map_err(|e| corrupt(format!("data.{k}: {e}")))?;
            out.insert(k.clone(), text);
        }
    }
    Ok(out)
}

/// The Secret holding `entries`, as the secrets storage would keep it.
fn encode(entries: &BTreeMap<String, String>, uid: &str, created: &str) -> bytes::Bytes {
    let data: serde_json::Map<String, Value> = entries
        .iter()
        .map(|(k, v)| {
            let b64 = base64::engine::general_purpose::STANDARD.encode(v);
            (k.clone(), Value::String(b64))
        })
        .collect();
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "moor-identity",
            "namespace": "kube-system",
            "uid": uid,
            "creationTimestamp": created,
            "labels": {"app.kubernetes.io/managed-by": "moor"},
        },
        "type": "Opaque",
        "data": data,
    });
    bytes::Bytes::from(secret.to_string())
}

/// The values of `names`, created together by `make` when the store has none of them
/// (once, whichever replica comes first); a replica that loses the race reads the
/// winner's.
pub async fn ensure(
    store: &Arc<dyn Store>,
    names: &[&str],
    make: impl Fn() -> Result<Vec<String>, IdentityError>,
) -> Result<Vec<String>, IdentityError> {
    let entries = change(store, |entries| {
        if names.iter().all(|n| entries.contains_key(*n)) {
            return Ok(false);
        }
        for (name, value) in names.iter().zip(make()?) {
            entries.insert((*name).to_owned(), value);
        }
        Ok(true)
    })
    .await?;
    Ok(names.iter().map(|n| entries[*n].clone()).collect())
}

/// Applies `edit` to the stored entries with a compare-and-swap, again on a conflict;
/// `edit` answers whether it changed anything (nothing is written otherwise). Returns
/// the entries as stored afterwards.
async fn change(
    store: &Arc<dyn Store>,
    edit: impl Fn(&mut BTreeMap<String, String>) -> Result<bool, IdentityError>,
) -> Result<BTreeMap<String, String>, IdentityError> {
    loop {
        let current = store.get(IDENTITY_KEY).await?;
        let (mut entries, meta) = match &current {
            Some(kv) => {
                let secret: Value = serde_json::from_slice(&kv.value)
                    .map_err(|e| IdentityError::Corrupt(e.to_string()))?;
                let meta = (
                    secret
                        .pointer("/metadata/uid")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    secret
                        .pointer("/metadata/creationTimestamp")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                );
                (decode(&kv.value)?, meta)
            }
            None => (
                BTreeMap::new(),
                (
                    uuid::Uuid::new_v4().to_string(),
                    jiff::Timestamp::now()
                        .strftime("%Y-%m-%dT%H:%M:%SZ")
                        .to_string(),
                ),
            ),
        };
        if !edit(&mut entries)? {
            return Ok(entries);
        }
        let value = encode(&entries, &meta.0, &meta.1);
        let written = match &current {
            Some(kv) => store.update(IDENTITY_KEY, value, kv.mod_revision).await,
            None => store.create(IDENTITY_KEY, value).await,
        };
        match written {
            Ok(_) => return Ok(entries),
            Err(StoreError::Conflict { .. } | StoreError::AlreadyExists(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The name the registry is known by, shared by the replicas: a stream's
/// `status.dockerImageRepository` and its tags' pull specs are written with it, and a
/// replica that names the registry otherwise has to rewrite every stream it serves.
/// `given` (`--registry-hostname`) is stored and wins; a replica started without the
/// flag uses the stored name, else `default` (its listen address, not stored: another
/// replica's address is no name for this one).
pub async fn registry_hostname(
    store: &Arc<dyn Store>,
    given: Option<&str>,
    default: &str,
) -> Result<String, IdentityError> {
    let Some(given) = given else {
        let stored = change(store, |_| Ok(false))
            .await?
            .remove(REGISTRY_HOSTNAME);
        if let Some(name) = &stored {
            tracing::info!(
                registry_hostname = %name,
                "naming the registry as the replicas on this store do (--registry-hostname changes it)"
            );
        }
        return Ok(stored.unwrap_or_else(|| default.to_owned()));
    };
    let previous = std::sync::Mutex::new(None);
    change(store, |entries| {
        let old = entries.insert(REGISTRY_HOSTNAME.to_owned(), given.to_owned());
        let changed = old.as_deref() != Some(given);
        *previous.lock().unwrap_or_else(|e| e.into_inner()) = old;
        Ok(changed)
    })
    .await?;
    if let Some(old) = previous.into_inner().unwrap_or_else(|e| e.into_inner())
        && old != given
    {
        tracing::warn!(
            from = %old,
            to = %given,
            "the registry hostname changed: give every replica the same --registry-hostname"
        );
    }
    Ok(given.to_owned())
}

/// The shared admin token: the stored one, else `local` (the data dir's kubeconfig
/// token, when the store knows it: an upgrade keeps it), else a new one. Its hash is
/// made the one the admin authenticator checks.
pub async fn admin_token(
    store: &Arc<dyn Store>,
    local: Option<String>,
) -> Result<(String, crate::auth::AdminToken), IdentityError> {
    let local = match local {
        Some(t) if crate::auth::is_admin_token(store, &t).await.map_err(make)? => Some(t),
        _ => None,
    };
    let token = ensure(store, &[ADMIN_TOKEN], || {
        Ok(vec![
            local.clone().unwrap_or_else(crate::auth::generate_token),
        ])
    })
    .await?
    .remove(0);
    let authn = crate::auth::set_admin_token(store, &token)
        .await
        .map_err(make)?;
    Ok((token, authn))
}

/// The 256-bit key the console seals pending OIDC logins with, made once (random).
pub async fn console_sealing_key(store: &Arc<dyn Store>) -> Result<[u8; 32], IdentityError> {
    let hex = ensure(store, &[CONSOLE_KEY], || {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
        Ok(vec![hex::encode(key)])
    })
    .await?
    .remove(0);
    hex::decode(hex.trim())
        .ok()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or_else(|| IdentityError::Corrupt(format!("data.{CONSOLE_KEY}: not 32 bytes of hex")))
}

/// Writes the shared CA into `tls_dir` (`ca.key`, `ca.crt`), storing the local one (or
/// a new one) first if the store has none; [`crate::tls::ensure`] then issues this
/// replica's serving certificate from it.
pub async fn ca(store: &Arc<dyn Store>, tls_dir: &Path) -> Result<(), IdentityError> {
    let (key_path, cert_path) = (tls_dir.join("ca.key"), tls_dir.join("ca.crt"));
    let local = match (read(&key_path)?, read(&cert_path)?) {
        (Some(k), Some(c)) => Some((k, c)),
        _ => None,
    };
    let shared = ensure(store, &[CA_KEY, CA_CERT], || match &local {
        Some((k, c)) => Ok(vec![k.clone(), c.clone()]),
        None => {
            let (k, c) = crate::tls::new_ca().map_err(make)?;
            Ok(vec![k, c])
        }
    })
    .await?;
    private_dir(tls_dir)?;
    write_if_changed(&key_path, &shared[0])?;
    write_if_changed(&cert_path, &shared[1])
}

/// Writes the shared ServiceAccount signing key to `path` (the data dir's key file),
/// storing the local one (or a new one) first if the store has none.
pub async fn service_account_key(store: &Arc<dyn Store>, path: &Path) -> Result<(), IdentityError> {
    let local = read(path)?;
    let shared = ensure(store, &[SA_KEY], || match &local {
        Some(pem) => Ok(vec![pem.clone()]),
        None => {
            let pair =
                rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(make)?;
            Ok(vec![pair.serialize_pem()])
        }
    })
    .await?;
    write_if_changed(path, &shared[0])
}

fn make(e: impl std::fmt::Display) -> IdentityError {
    IdentityError::Make(e.to_string())
}

fn read(path: &Path) -> Result<Option<String>, IdentityError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(IdentityError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn private_dir(dir: &Path) -> Result<(), IdentityError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| IdentityError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes `contents` to `path` (0600, through a temporary file) unless it holds them.
fn write_if_changed(path: &Path, contents: &str) -> Result<(), IdentityError> {
    use std::io::Write;
    if read(path)?.as_deref() == Some(contents) {
        return Ok(());
    }
    let io = |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(io)?;
    f.write_all(contents.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Authenticator as _;
    use moor_store::MemoryStore;

    #[tokio::test]
    async fn the_first_replica_makes_the_identity_and_the_others_adopt_it() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (t1, authn1) = admin_token(&store, None).await.unwrap();
        // The second replica has a kubeconfig of its own, unknown to the store.
        let (t2, authn2) = admin_token(&store, Some("stale".into())).await.unwrap();
        assert_eq!(t1, t2);
        assert!(authn1.authenticate(&t1).await.is_some());
        assert!(authn2.authenticate(&t1).await.is_some());
        assert!(crate::auth::is_admin_token(&store, &t1).await.unwrap());

        ca(&store, &one.path().join("tls")).await.unwrap();
        ca(&store, &two.path().join("tls")).await.unwrap();
        for f in ["ca.key", "ca.crt"] {
            let a = std::fs::read_to_string(one.path().join("tls").join(f)).unwrap();
            let b = std::fs::read_to_string(two.path().join("tls").join(f)).unwrap();
            assert_eq!(a, b, "{f}");
        }
        service_account_key(&store, &one.path().join("sa.pem"))
            .await
            .unwrap();
        service_account_key(&store, &two.path().join("sa.pem"))
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(one.path().join("sa.pem")).unwrap(),
            std::fs::read_to_string(two.path().join("sa.pem")).unwrap()
        );
        // One Secret, readable as such.
        let kv = store.get(IDENTITY_KEY).await.unwrap().unwrap();
        let entries = decode(&kv.value).unwrap();
        assert_eq!(entries.len(), 4, "{:?}", entries.keys());
        assert_eq!(entries[ADMIN_TOKEN], t1);
    }

    #[tokio::test]
    async fn replicas_share_the_registry_hostname_given_to_one() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        // Nothing given, nothing stored: each replica's own address.
        let first = registry_hostname(&store, None, "10.0.0.1:5000").await;
        assert_eq!(first.unwrap(), "10.0.0.1:5000");
        assert!(store.get(IDENTITY_KEY).await.unwrap().is_none());
        // Given to one: stored, and adopted by a replica started without the flag.
        let given = registry_hostname(&store, Some("registry.example"), "10.0.0.1:5000");
        assert_eq!(given.await.unwrap(), "registry.example");
        let adopted = registry_hostname(&store, None, "10.0.0.2:5000").await;
        assert_eq!(adopted.unwrap(), "registry.example");
        // Given otherwise later: the new name is the shared one.
        let renamed = registry_hostname(&store, Some("moor.example"), "10.0.0.3:5000");
        assert_eq!(renamed.await.unwrap(), "moor.example");
        let adopted = registry_hostname(&store, None, "10.0.0.2:5000").await;
        assert_eq!(adopted.unwrap(), "moor.example");
    }

    #[tokio::test]
    async fn an_upgrade_keeps_the_kubeconfig_token_and_the_local_ca() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let (old, _) = crate::auth::ensure_admin_token(&store, None).await.unwrap();
        let (kept, _) = admin_token(&store, Some(old.clone())).await.unwrap();
        assert_eq!(kept, old);
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let material = crate::tls::ensure(&tls, &[]).unwrap();
        ca(&store, &tls).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(tls.join("ca.crt")).unwrap(),
            material.ca_pem
        );
    }
}
