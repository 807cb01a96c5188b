//! What each repository was given: blobs pushed or mounted into it, manifests pushed
//! into it by digest, and referrer descriptors. One seam over two places, chosen once
//! when the registry opens:
//!
//! - files under `<root>/repositories/` ([`BlobStore::link`] and the rest), when blobs
//!   live on this replica's disk (`--blob-store file://`, the default);
//! - keys in the store every replica opens, when blobs live in a bucket all of them
//!   reach (`--blob-store s3://`), one key per record:
//!
//! ```text
//! /moor/registry/links/<namespace>/<stream>/
//! ├── layer/<algorithm>/<hex>                {"linkedMs": N}: pushed or mounted here
//! ├── manifest/<algorithm>/<hex>             {"linkedMs": N}: pushed here
//! └── referrer/<algorithm>/<hex>/<algorithm>-<hex>
//!                                            the descriptor (JSON) of a manifest pushed
//!                                            here whose `subject` is the first digest
//! ```
//!
//! A link's time is when it was last pushed (garbage collection keeps young links'
//! blobs); linking again renews it with a compare-and-swap. Checking a link (every
//! blob `GET`/`HEAD` by repository) is one store get. Calls the filesystem (through
//! [`BlobStore`]) or the store.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use moor_api::Digest;
use moor_store::{ListOptions, Store, StoreError};
use serde::{Deserialize, Serialize};

use super::storage::{BlobStore, Link, LinkKind, ReferrerRecord, StorageError};

/// Where repository records live in the store.
pub const PREFIX: &str = "/moor/registry/links/";

/// Keys read per page when listing records.
const PAGE: usize = 1000;

/// Every record of every repository, as one listing reads them.
#[derive(Clone, Debug, Default)]
pub struct Records {
    /// Blobs and manifests pushed (or mounted) into repositories.
    pub links: Vec<Link>,
    /// Manifests pushed into repositories whose `subject` is another manifest.
    pub referrers: Vec<ReferrerRecord>,
    /// The repositories that have any record, as `(namespace, stream)`.
    pub repositories: Vec<(String, String)>,
}

/// The repositories' links and referrer records. Cheap to clone.
#[derive(Clone)]
pub struct Links {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Files(BlobStore),
    Store(Arc<dyn Store>),
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.inner {
            Inner::Files(_) => "Links(files)",
            Inner::Store(_) => "Links(store)",
        })
    }
}

/// A link's value in the store.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LinkValue {
    /// When it was last linked, in milliseconds since the Unix epoch.
    linked_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn kind_dir(kind: LinkKind) -> &'static str {
    kind.as_str()
}

fn repo_prefix(ns: &str, stream: &str) -> String {
    format!("{PREFIX}{ns}/{stream}/")
}

fn link_key(ns: &str, stream: &str, kind: LinkKind, digest: &Digest) -> String {
    format!(
        "{}{}/{}/{}",
        repo_prefix(ns, stream),
        kind_dir(kind),
        digest.algorithm().as_str(),
        digest.hex()
    )
}

fn referrer_name(manifest: &Digest) -> String {
    format!("{}-{}", manifest.algorithm().as_str(), manifest.hex())
}

fn referrers_prefix(ns: &str, stream: &str, subject: &Digest) -> String {
    format!(
        "{}referrer/{}/{}/",
        repo_prefix(ns, stream),
        subject.algorithm().as_str(),
        subject.hex()
    )
}

/// What a key under [`PREFIX`] records.
enum Parsed {
    Link(Link),
    Referrer(ReferrerRecord),
}

fn parse(key: &str, value: &[u8]) -> Option<Parsed> {
    let rest = key.strip_prefix(PREFIX)?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [ns, stream, kind @ ("layer" | "manifest"), alg, hex] => {
            let digest = Digest::parse(&format!("{alg}:{hex}")).ok()?;
            let modified = serde_json::from_slice::<LinkValue>(value)
                .map(|v| SystemTime::UNIX_EPOCH + Duration::from_millis(v.linked_ms))
                .unwrap_or(SystemTime::UNIX_EPOCH);
            Some(Parsed::Link(Link {
                namespace: ns.to_string(),
                stream: stream.to_string(),
                kind: if *kind == "layer" {
                    LinkKind::Layer
                } else {
                    LinkKind::Manifest
                },
                digest,
                modified,
            }))
        }
        [ns, stream, "referrer", alg, hex, name] => {
            let subject = Digest::parse(&format!("{alg}:{hex}")).ok()?;
            let (a, h) = name.split_once('-')?;
            let manifest = Digest::parse(&format!("{a}:{h}")).ok()?;
            Some(Parsed::Referrer(ReferrerRecord {
                namespace: ns.to_string(),
                stream: stream.to_string(),
                subject,
                manifest,
            }))
        }
        _ => None,
    }
}

/// Every key under `prefix`, page by page.
async fn list_all(
    store: &dyn Store,
    prefix: &str,
) -> Result<Vec<moor_store::KeyValue>, StoreError> {
    let mut out = Vec::new();
    let mut opts = ListOptions {
        limit: Some(PAGE),
        ..Default::default()
    };
    loop {
        let page = store.list(prefix, opts.clone()).await?;
        let more = page.more;
        opts.revision = Some(page.revision);
        opts.start_after = page.kvs.last().map(|kv| kv.key.clone());
        out.extend(page.kvs);
        if !more || opts.start_after.is_none() {
            return Ok(out);
        }
    }
}

/// Deletes `key`; whether it was there.
async fn delete(store: &dyn Store, key: &str) -> Result<bool, StoreError> {
    match store.delete(key, None).await {
        Ok(_) => Ok(true),
        Err(StoreError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Io {
            context: "a blocking task".into(),
            source: std::io::Error::other(e),
        })?
}

impl Links {
    /// Records as files under `store`'s `repositories/` (blobs on this disk).
    pub fn files(store: BlobStore) -> Self {
        Links {
            inner: Inner::Files(store),
        }
    }

    /// Records as keys in `store`, which every replica shares (blobs in a bucket).
    pub fn shared(store: Arc<dyn Store>) -> Self {
        Links {
            inner: Inner::Store(store),
        }
    }

    /// Whether the records are in the shared store.
    pub fn is_shared(&self) -> bool {
        matches!(self.inner, Inner::Store(_))
    }

    /// Records that `digest` was pushed (or mounted) into `ns/stream`, now (renewing
    /// the time of a link that exists).
    pub async fn link(
        &self,
        ns: &str,
        stream: &str,
        kind: LinkKind,
        digest: &Digest,
    ) -> Result<(), StorageError> {
        let store = match &self.inner {
            Inner::Files(files) => return files.link(ns, stream, kind, digest),
            Inner::Store(store) => store,
        };
        let key = link_key(ns, stream, kind, digest);
        let value = Bytes::from(
            serde_json::to_vec(&LinkValue {
                linked_ms: now_ms(),
            })
            .expect("a link value serializes"),
        );
        for _ in 0..5 {
            match store.create(&key, value.clone()).await {
                Ok(_) => return Ok(()),
                Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
            let Some(kv) = store.get(&key).await? else {
                continue; // unlinked meanwhile: create again
            };
            match store.update(&key, value.clone(), kv.mod_revision).await {
                // Renewed by another push meanwhile: just as new.
                Ok(_) | Err(StoreError::Conflict { .. }) => return Ok(()),
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Backend(format!("linking {key}: the key kept changing")).into())
    }

    /// Whether `digest` was pushed (or mounted) into `ns/stream` (one store get).
    pub async fn is_linked(
        &self,
        ns: &str,
        stream: &str,
        kind: LinkKind,
        digest: &Digest,
    ) -> Result<bool, StorageError> {
        match &self.inner {
            Inner::Files(files) => Ok(files.is_linked(ns, stream, kind, digest)),
            Inner::Store(store) => Ok(store
                .get(&link_key(ns, stream, kind, digest))
                .await?
                .is_some()),
        }
    }

    /// Forgets that `digest` was pushed into `ns/stream`; `false` when it was not.
    pub async fn unlink(
        &self,
        ns: &str,
        stream: &str,
        kind: LinkKind,
        digest: &Digest,
    ) -> Result<bool, StorageError> {
        match &self.inner {
            Inner::Files(files) => files.unlink(ns, stream, kind, digest),
            Inner::Store(store) => Ok(delete(&**store, &link_key(ns, stream, kind, digest)).await?),
        }
    }

    /// Records that manifest `descriptor` (JSON) names `subject`, in `ns/stream`.
    pub async fn add_referrer(
        &self,
        ns: &str,
        stream: &str,
        subject: &Digest,
        manifest: &Digest,
        descriptor: &[u8],
    ) -> Result<(), StorageError> {
        let store = match &self.inner {
            Inner::Files(files) => {
                return files.add_referrer(ns, stream, subject, manifest, descriptor);
            }
            Inner::Store(store) => store,
        };
        let key = format!(
            "{}{}",
            referrers_prefix(ns, stream, subject),
            referrer_name(manifest)
        );
        let value = Bytes::copy_from_slice(descriptor);
        match store.create(&key, value).await {
            // The same manifest again: the same descriptor.
            Ok(_) | Err(StoreError::AlreadyExists(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The descriptors (JSON) of manifests in `ns/stream` whose subject is `subject`,
    /// by manifest digest.
    pub async fn referrers(
        &self,
        ns: &str,
        stream: &str,
        subject: &Digest,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        match &self.inner {
            Inner::Files(files) => Ok(files.referrers(ns, stream, subject)),
            Inner::Store(store) => {
                let prefix = referrers_prefix(ns, stream, subject);
                Ok(list_all(&**store, &prefix)
                    .await?
                    .into_iter()
                    .map(|kv| kv.value.to_vec())
                    .collect())
            }
        }
    }

    /// Forgets referrer `manifest` of every subject in `ns/stream`.
    pub async fn remove_referrer(
        &self,
        ns: &str,
        stream: &str,
        manifest: &Digest,
    ) -> Result<(), StorageError> {
        let store = match &self.inner {
            Inner::Files(files) => {
                files.remove_referrer(ns, stream, manifest);
                return Ok(());
            }
            Inner::Store(store) => store,
        };
        let suffix = format!("/{}", referrer_name(manifest));
        let prefix = format!("{}referrer/", repo_prefix(ns, stream));
        for kv in list_all(&**store, &prefix).await? {
            if kv.key.ends_with(&suffix) {
                delete(&**store, &kv.key).await?;
            }
        }
        Ok(())
    }

    /// Removes everything recorded for `ns/stream` (the stream was deleted).
    pub async fn remove_repository(&self, ns: &str, stream: &str) -> Result<(), StorageError> {
        match &self.inner {
            Inner::Files(files) => {
                let (files, ns, stream) = (files.clone(), ns.to_string(), stream.to_string());
                blocking(move || files.remove_repository(&ns, &stream)).await
            }
            Inner::Store(store) => {
                for kv in list_all(&**store, &repo_prefix(ns, stream)).await? {
                    delete(&**store, &kv.key).await?;
                }
                Ok(())
            }
        }
    }

    /// Every record of every repository.
    pub async fn list(&self) -> Result<Records, StorageError> {
        let store = match &self.inner {
            Inner::Files(files) => {
                let files = files.clone();
                return blocking(move || {
                    Ok(Records {
                        links: files.list_links(),
                        referrers: files.list_referrers(),
                        repositories: files.list_repositories(),
                    })
                })
                .await;
            }
            Inner::Store(store) => store,
        };
        let mut out = Records::default();
        for kv in list_all(&**store, PREFIX).await? {
            let (ns, stream) = match parse(&kv.key, &kv.value) {
                Some(Parsed::Link(l)) => {
                    let repo = (l.namespace.clone(), l.stream.clone());
                    out.links.push(l);
                    repo
                }
                Some(Parsed::Referrer(r)) => {
                    let repo = (r.namespace.clone(), r.stream.clone());
                    out.referrers.push(r);
                    repo
                }
                None => continue,
            };
            // Keys come sorted: a repository's records are together.
            if out.repositories.last() != Some(&(ns.clone(), stream.clone())) {
                out.repositories.push((ns, stream));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same behaviour on files and in the store.
    async fn behaves(links: Links) {
        let d = Digest::sha256_of(b"x");
        links.link("ns", "a", LinkKind::Layer, &d).await.unwrap();
        assert!(
            links
                .is_linked("ns", "a", LinkKind::Layer, &d)
                .await
                .unwrap()
        );
        assert!(
            !links
                .is_linked("ns", "b", LinkKind::Layer, &d)
                .await
                .unwrap()
        );
        assert!(
            !links
                .is_linked("ns", "a", LinkKind::Manifest, &d)
                .await
                .unwrap()
        );
        // Linking again renews the time.
        let first = links.list().await.unwrap().links[0].modified;
        tokio::time::sleep(Duration::from_millis(20)).await;
        links.link("ns", "a", LinkKind::Layer, &d).await.unwrap();
        let records = links.list().await.unwrap();
        assert_eq!(records.links.len(), 1);
        assert!(records.links[0].modified > first);

        let (m, m2) = (Digest::sha256_of(b"m"), Digest::sha256_of(b"m2"));
        links.add_referrer("ns", "a", &d, &m, b"{}").await.unwrap();
        links.add_referrer("ns", "a", &d, &m2, b"[]").await.unwrap();
        links.link("ns", "c", LinkKind::Manifest, &m).await.unwrap();
        let mut got = links.referrers("ns", "a", &d).await.unwrap();
        got.sort();
        assert_eq!(got, vec![b"[]".to_vec(), b"{}".to_vec()]);
        assert!(links.referrers("ns", "b", &d).await.unwrap().is_empty());
        let records = links.list().await.unwrap();
        assert_eq!(records.referrers.len(), 2);
        let mut repos = records.repositories.clone();
        repos.sort();
        assert_eq!(
            repos,
            [
                ("ns".to_string(), "a".to_string()),
                ("ns".into(), "c".into())
            ]
        );
        links.remove_referrer("ns", "a", &m).await.unwrap();
        assert_eq!(
            links.referrers("ns", "a", &d).await.unwrap(),
            vec![b"[]".to_vec()]
        );

        assert!(links.unlink("ns", "a", LinkKind::Layer, &d).await.unwrap());
        assert!(!links.unlink("ns", "a", LinkKind::Layer, &d).await.unwrap());
        links.remove_repository("ns", "a").await.unwrap();
        let records = links.list().await.unwrap();
        assert!(records.referrers.is_empty());
        assert_eq!(records.links.len(), 1, "ns/c's link stays");
        assert_eq!(records.repositories, [("ns".into(), "c".into())]);
    }

    #[tokio::test]
    async fn files_and_store_keep_the_same_records() {
        let dir = tempfile::tempdir().unwrap();
        behaves(Links::files(BlobStore::open(dir.path()).unwrap())).await;
        behaves(Links::shared(Arc::new(moor_store::MemoryStore::new()))).await;
    }

    #[tokio::test]
    async fn a_repository_prefix_is_not_another_repositorys() {
        let links = Links::shared(Arc::new(moor_store::MemoryStore::new()));
        let d = Digest::sha256_of(b"x");
        links.link("ns", "app", LinkKind::Layer, &d).await.unwrap();
        links.link("ns", "app2", LinkKind::Layer, &d).await.unwrap();
        links.remove_repository("ns", "app").await.unwrap();
        assert!(
            links
                .is_linked("ns", "app2", LinkKind::Layer, &d)
                .await
                .unwrap()
        );
    }
}
