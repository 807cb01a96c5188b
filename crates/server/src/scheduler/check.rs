//! One scheduled check: the registry's budget, a slot, a HEAD for the tag's digest,
//! and a full import through the importer only when the digest changed (or cannot be
//! told); failures set the tag's condition, a 429 pauses its registry. Calls the
//! importer (its source port and storages) and the budgets.

use std::sync::Arc;

use bytes::Bytes;
use moor_api::Digest;
use moor_api::image::{ImageStream, TagEvent, TagReference, reasons};
use tokio::time::Instant;

use super::{SECRETS_TTL, Shared, TagKey, is_scheduled, now_ms};
use crate::catalog::StreamStore;
use crate::importer::{ImportError, Importer, PullOptions, TagOutcome};

/// One check to make.
pub(super) struct Job {
    pub(super) key: TagKey,
    pub(super) epoch: u64,
    pub(super) due: i64,
    pub(super) registry: String,
    pub(super) tag: TagReference,
    pub(super) current: Option<TagEvent>,
    pub(super) last_digest: Option<String>,
    pub(super) record_image: Option<String>,
    pub(super) failed: bool,
}

/// What a check found.
pub(super) enum Outcome {
    Unchanged {
        digest: String,
        image: String,
    },
    Updated {
        digest: Option<String>,
        image: String,
    },
    Failed(ImportError),
    RateLimited {
        until_ms: i64,
        message: String,
    },
    /// The tag changed or went away during the check.
    Skipped,
}

pub(super) struct Done {
    pub(super) key: TagKey,
    pub(super) epoch: u64,
    pub(super) started_ms: i64,
    pub(super) outcome: Outcome,
}

/// One check: the registry's budget, a slot, then HEAD (and an import if needed).
pub(super) async fn check(shared: Arc<Shared>, job: Job) -> Done {
    shared.budgets.acquire(&job.registry).await;
    let _slot = shared.slots.clone().acquire_owned().await.ok();
    shared.metrics.queue_depth.dec();
    let started_ms = now_ms();
    shared
        .metrics
        .lag
        .observe((started_ms - job.due).max(0) as f64 / 1000.0);
    let t0 = Instant::now();
    let outcome = shared.run_check(&job).await;
    shared
        .metrics
        .check_duration
        .observe(t0.elapsed().as_secs_f64());
    Done {
        key: job.key,
        epoch: job.epoch,
        started_ms,
        outcome,
    }
}

impl Shared {
    async fn pull_secrets(&self, ns: &str) -> Arc<Vec<Bytes>> {
        let cached = self
            .secrets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(ns)
            .filter(|(at, _)| at.elapsed() < SECRETS_TTL)
            .map(|(_, s)| s.clone());
        if let Some(s) = cached {
            return s;
        }
        let s = self.importer.pull_secrets(ns).await;
        self.secrets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ns.to_string(), (Instant::now(), s.clone()));
        s
    }

    async fn run_check(&self, job: &Job) -> Outcome {
        let secrets = self.pull_secrets(&job.key.namespace).await;
        let spec = match Importer::spec_for(
            &job.tag,
            PullOptions {
                insecure: false,
                secrets: secrets.clone(),
            },
        ) {
            Ok(s) => s,
            Err(e) => return self.failed(job, e).await,
        };
        let Some(from) = spec.from.as_ref() else {
            return self
                .failed(job, ImportError::invalid("no image reference to import"))
                .await;
        };
        let digest = match self.source.digest(from, &spec.pull).await {
            Ok(d) => d,
            Err(e) => return self.failed(job, e).await,
        };
        if let (Some(d), Some(current)) = (&digest, &job.current)
            && unchanged(job, d, current)
        {
            if job.failed
                && let Err(e) = self
                    .importer
                    .write_scheduled(&job.key.namespace, &job.key.stream, &job.key.tag, None)
                    .await
            {
                tracing::warn!(tag = %job.key.name(), error = %e, "clearing the import failure failed");
            }
            return Outcome::Unchanged {
                digest: d.to_string(),
                image: current.image.clone(),
            };
        }
        self.import(job, digest, &secrets).await
    }

    /// The full import, after the digest changed (or could not be told).
    async fn import(
        &self,
        job: &Job,
        digest: Option<Digest>,
        secrets: &Arc<Vec<Bytes>>,
    ) -> Outcome {
        let (ns, name, tag) = (&job.key.namespace, &job.key.stream, &job.key.tag);
        let stream: ImageStream = match self.importer.stream(ns, name).await {
            Ok(Some(s)) => s,
            Ok(None) => return Outcome::Skipped,
            Err(e) => return Outcome::Failed(ImportError::internal("", e)),
        };
        let Some(spec) = stream
            .spec_tag(tag)
            .filter(|t| is_scheduled(t) && t.from == job.tag.from)
            .cloned()
        else {
            return Outcome::Skipped;
        };
        let t0 = Instant::now();
        let outcome = self.budgeted.resolve_tag(&stream, &spec, secrets).await;
        self.import_metrics.observe("scheduled", t0.elapsed());
        match &outcome {
            TagOutcome::Imported { event, .. } => {
                let image = event.image.clone();
                match self
                    .importer
                    .write_scheduled(ns, name, tag, Some(&outcome))
                    .await
                {
                    Ok(changed) => {
                        if changed {
                            tracing::info!(tag = %job.key.name(), %image, "scheduled import: new image");
                        }
                        Outcome::Updated {
                            digest: digest.map(|d| d.to_string()),
                            image,
                        }
                    }
                    Err(e) => Outcome::Failed(ImportError::internal("recording the import", e)),
                }
            }
            TagOutcome::Failed(e) => self.failed(job, e.clone()).await,
        }
    }

    /// A failed check: a 429 pauses the registry; anything else sets the condition.
    async fn failed(&self, job: &Job, e: ImportError) -> Outcome {
        if e.reason() == reasons::TOO_MANY_REQUESTS {
            let until = self
                .budgets
                .paused_until(&job.registry)
                .unwrap_or_else(|| self.budgets.pause(&job.registry, e.retry_after()));
            let until_ms =
                now_ms() + until.saturating_duration_since(Instant::now()).as_millis() as i64;
            return Outcome::RateLimited {
                until_ms,
                message: format!("{}: {}", e.reason(), e.message()),
            };
        }
        let (ns, name, tag) = (&job.key.namespace, &job.key.stream, &job.key.tag);
        if let Err(err) = self
            .importer
            .write_scheduled(ns, name, tag, Some(&TagOutcome::Failed(e.clone())))
            .await
        {
            tracing::warn!(tag = %job.key.name(), error = %err, "recording a failed check failed");
        }
        tracing::info!(tag = %job.key.name(), reason = %e.reason(), error = %e.message(), "scheduled check failed");
        Outcome::Failed(e)
    }
}

/// Whether the digest the registry announced is what the tag already has: its current
/// image, or the digest seen last time while the tag still has the image it had then
/// (a manifest list imported in Legacy mode has a child as its image).
fn unchanged(job: &Job, digest: &Digest, current: &TagEvent) -> bool {
    let d = digest.as_str();
    current.image == d
        || (job.last_digest.as_deref() == Some(d)
            && job.record_image.as_deref() == Some(current.image.as_str()))
}
