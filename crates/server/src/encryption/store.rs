//! [`EncryptedStore`]: a [`Store`] that encrypts the values of configured keys on every
//! write and decrypts them on every read (get, list pages, deletes, watch events), so
//! that nothing above the store knows. Keys, revisions and other values pass as they
//! are.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use moor_store::{
    CompactionClaim, Event, KeyValue, ListOptions, ListResult, ProgressStream, Revision, Store,
    StoreError, WatchItem, WatchStream,
};

use super::{EncryptionConfig, EncryptionError};

/// A store whose values under the configuration's prefixes are kept encrypted.
pub struct EncryptedStore {
    inner: Arc<dyn Store>,
    config: Arc<EncryptionConfig>,
}

fn backend(e: EncryptionError) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl EncryptedStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>, config: EncryptionConfig) -> Self {
        EncryptedStore {
            inner,
            config: Arc::new(config),
        }
    }

    fn seal(&self, key: &str, value: Bytes) -> Result<Bytes, StoreError> {
        match self.config.transformer(key) {
            Some(t) => t.seal(key, &value).map(Bytes::from).map_err(backend),
            None => Ok(value),
        }
    }
}

/// `kv` with its value decrypted.
fn open(config: &EncryptionConfig, mut kv: KeyValue) -> Result<KeyValue, StoreError> {
    if let Some(t) = config.transformer(&kv.key) {
        kv.value = Bytes::from(t.open(&kv.key, &kv.value).map_err(backend)?);
    }
    Ok(kv)
}

#[async_trait]
impl Store for EncryptedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.inner
            .get(key)
            .await?
            .map(|kv| open(&self.config, kv))
            .transpose()
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult, StoreError> {
        let mut result = self.inner.list(prefix, opts).await?;
        result.kvs = std::mem::take(&mut result.kvs)
            .into_iter()
            .map(|kv| open(&self.config, kv))
            .collect::<Result<_, _>>()?;
        Ok(result)
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision, StoreError> {
        let value = self.seal(key, value)?;
        self.inner.create(key, value).await
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        let value = self.seal(key, value)?;
        self.inner.update(key, value, expected).await
    }

    async fn txn(&self, writes: Vec<moor_store::TxnWrite>) -> Result<Vec<Revision>, StoreError> {
        use moor_store::TxnWrite;
        let sealed = writes
            .into_iter()
            .map(|w| {
                Ok(match w {
                    TxnWrite::Create { key, value } => TxnWrite::Create {
                        value: self.seal(&key, value)?,
                        key,
                    },
                    TxnWrite::Update {
                        key,
                        value,
                        expected,
                    } => TxnWrite::Update {
                        value: self.seal(&key, value)?,
                        key,
                        expected,
                    },
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.inner.txn(sealed).await
    }

    fn multi_key_txn(&self) -> bool {
        self.inner.multi_key_txn()
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue, StoreError> {
        let kv = self.inner.delete(key, expected).await?;
        open(&self.config, kv)
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let config = self.config.clone();
        let events = self.inner.watch(prefix, after).await?.map(move |r| {
            r.and_then(|event| {
                Ok(Event {
                    kind: event.kind,
                    kv: open(&config, event.kv)?,
                })
            })
        });
        // A watch ends after its first error, as the backends' do.
        let events = events.scan(false, |ended, r| {
            if *ended {
                return futures::future::ready(None);
            }
            *ended = r.is_err();
            futures::future::ready(Some(r))
        });
        Ok(events.boxed())
    }

    async fn watch_with_progress(
        &self,
        prefix: &str,
        after: Revision,
    ) -> Result<ProgressStream, StoreError> {
        let config = self.config.clone();
        let items = self
            .inner
            .watch_with_progress(prefix, after)
            .await?
            .map(move |r| {
                r.and_then(|item| match item {
                    WatchItem::Event(event) => Ok(WatchItem::Event(Event {
                        kind: event.kind,
                        kv: open(&config, event.kv)?,
                    })),
                    progress => Ok(progress),
                })
            });
        // Ends after its first error, as `watch` does.
        let items = items.scan(false, |ended, r| {
            if *ended {
                return futures::future::ready(None);
            }
            *ended = r.is_err();
            futures::future::ready(Some(r))
        });
        Ok(items.boxed())
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.inner.compact(revision).await
    }

    async fn claim_compaction(
        &self,
        version: i64,
        revision: Revision,
    ) -> Result<CompactionClaim, StoreError> {
        self.inner.claim_compaction(version, revision).await
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        self.inner.current_revision().await
    }

    fn local_revision(&self) -> Option<Revision> {
        self.inner.local_revision()
    }

    /// Stale when the stored bytes (still at `kv`'s revision) are not what the first
    /// key writes.
    async fn is_stale(&self, kv: &KeyValue) -> Result<bool, StoreError> {
        let Some(t) = self.config.transformer(&kv.key) else {
            return Ok(false);
        };
        Ok(match self.inner.get(&kv.key).await? {
            Some(raw) if raw.mod_revision == kv.mod_revision => t.is_stale(&raw.value),
            _ => false,
        })
    }
}
