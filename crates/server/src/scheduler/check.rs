//! One scheduled check: the registry's budget, a slot, a HEAD for the tag's digest
//! (for a followed tag, its repository's tag list, read once for all the tags that
//! follow it: [`super::follow`]),
//! and a full import through the importer only when the digest changed (or cannot be
//! told); failures set the tag's condition, a 429 pauses its registry. Calls the
//! importer (its source port and storages) and the budgets.

use std::sync::Arc;

use bytes::Bytes;
use moor_api::image::{ImageStream, TagEvent, TagReference, reasons};
use moor_api::{Digest, DockerImageReference};
use tokio::time::Instant;

use super::{SECRETS_TTL, Shared, TagKey, is_scheduled, now_ms};
use crate::catalog::StreamStore;
use crate::importer::follow::{self, follows};
use crate::importer::{ImportError, Importer, PullOptions, TagOutcome};
use moor_apimachinery::error::ApiError;

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
    /// For a followed tag: the upstream tag the last check chose.
    pub(super) followed_tag: Option<String>,
}

/// What a check found.
pub(super) enum Outcome {
    Unchanged {
        /// `None` for a followed tag (its list, not a digest, was checked).
        digest: Option<String>,
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
    /// For a followed tag that has the chosen tag's image: the chosen tag.
    pub(super) followed: Option<String>,
}

/// One check: the registry's budget, a slot, then HEAD (and an import if needed). A
/// followed tag first reads (or joins the read of) its repository's list, which takes
/// the budget only when it sends the request, then takes a slot.
pub(super) async fn check(shared: Arc<Shared>, job: Job) -> Done {
    let choice = if follows(&job.tag) {
        Some(shared.follow_choice(&job).await)
    } else {
        shared.budgets.acquire(&job.registry).await;
        None
    };
    let _slot = shared.slots.clone().acquire_owned().await.ok();
    shared.metrics.queue_depth.dec();
    let started_ms = now_ms();
    shared
        .metrics
        .lag
        .observe((started_ms - job.due).max(0) as f64 / 1000.0);
    let t0 = Instant::now();
    let (outcome, followed) = match choice {
        Some(choice) => shared.run_follow_check(&job, choice).await,
        None => (shared.run_check(&job).await, None),
    };
    shared
        .metrics
        .check_duration
        .observe(t0.elapsed().as_secs_f64());
    Done {
        key: job.key,
        epoch: job.epoch,
        started_ms,
        outcome,
        followed,
    }
}

impl Shared {
    pub(super) async fn pull_secrets(&self, ns: &str) -> Arc<Vec<Bytes>> {
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
            if job.failed {
                self.clear_failure(job).await;
            }
            return Outcome::Unchanged {
                digest: Some(d.to_string()),
                image: current.image.clone(),
            };
        }
        self.import(job, digest, &secrets, None).await
    }

    /// Clears a failed `ImportSuccess` condition after a check found nothing new.
    pub(super) async fn clear_failure(&self, job: &Job) {
        if let Err(e) = self.write_tag(&job.key, None).await {
            tracing::warn!(tag = %job.key.name(), error = %e, "clearing the import failure failed");
        }
    }

    /// Records a check's outcome for its tag (`None`: nothing new) in one write of its
    /// stream with the other checks of that stream finishing meanwhile
    /// ([`super::writes`]). Returns whether the tag's history changed.
    pub(super) async fn write_tag(
        &self,
        key: &TagKey,
        outcome: Option<TagOutcome>,
    ) -> Result<bool, ApiError> {
        let (importer, ns, name) = (&self.importer, &key.namespace, &key.stream);
        self.writes
            .write(
                (ns.clone(), name.clone()),
                (key.tag.clone(), outcome),
                |items| async move { importer.write_scheduled(ns, name, &items).await },
            )
            .await
    }

    /// The full import, after the digest changed (or could not be told); `pin` is
    /// the repository and tag a followed tag chose.
    pub(super) async fn import(
        &self,
        job: &Job,
        digest: Option<Digest>,
        secrets: &Arc<Vec<Bytes>>,
        pin: Option<(&DockerImageReference, &str)>,
    ) -> Outcome {
        let (ns, name, tag) = (&job.key.namespace, &job.key.stream, &job.key.tag);
        let stream: ImageStream = match self.importer.stream(ns, name).await {
            Ok(Some(s)) => s,
            Ok(None) => return Outcome::Skipped,
            Err(e) => return Outcome::Failed(ImportError::internal("", e)),
        };
        let Some(spec) = stream
            .spec_tag(tag)
            .filter(|t| {
                is_scheduled(t) && t.from == job.tag.from && t.annotations == job.tag.annotations
            })
            .cloned()
        else {
            return Outcome::Skipped;
        };
        let spec = match pin {
            Some((repository, chosen)) => follow::pinned(&spec, repository, chosen),
            None => spec,
        };
        let t0 = Instant::now();
        // A followed tag's import shares its fetches with the other tags that chose
        // the same image; any other checked its digest just before, and fetches anew.
        let importer = if pin.is_some() {
            &self.followers
        } else {
            &self.budgeted
        };
        let outcome = importer.resolve_tag(&stream, &spec, secrets).await;
        self.import_metrics.observe("scheduled", t0.elapsed());
        match &outcome {
            TagOutcome::Imported { event, .. } => {
                let image = event.image.clone();
                match self.write_tag(&job.key, Some(outcome.clone())).await {
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
    pub(super) async fn failed(&self, job: &Job, e: ImportError) -> Outcome {
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
        if let Err(err) = self
            .write_tag(&job.key, Some(TagOutcome::Failed(e.clone())))
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
