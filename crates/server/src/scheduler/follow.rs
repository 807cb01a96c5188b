//! Scheduled checks of tags that follow a range: the repository's tag list instead of
//! a HEAD. The list is asked conditionally (`If-None-Match` with the ETag of the last
//! answer, so an unchanged list costs one request); a registry that sends no ETag
//! (CNCF distribution 2.8) answers with the whole list, which is compared with the
//! last one.
//!
//! One read serves every tag of a namespace that follows the same repository: those
//! tags share one phase ([`phase_of`], the repository's, not each tag's), so they are
//! due at the same moments, and their checks of one round join one read (a single
//! flight per repository: the first check asks, spending one token of the registry's
//! budget; the others wait for its answer, or its error, without a request). A list
//! read less than [`REUSE_FRACTION`] of the interval ago, and after the tag's newest
//! history entry, is also used again (a check off its slot: a retry, a spec change).
//! Only when the chosen tag differs from the one the last check chose (or the tag's
//! image changed since) is the chosen tag imported, through the importer. Calls the
//! importer's [`Source`](crate::importer::Source) port and its follow helpers, and the
//! budgets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use moor_api::DockerImageReference;
use moor_api::image::{TagReference, reasons};

use super::check::{Job, Outcome};
use super::{Shared, TagKey, plan};
use crate::importer::follow::{self, TagsAnswer, follows};
use crate::importer::{ImportError, PullOptions};

/// A list is reused by other tags' checks while younger than this part of the interval.
pub const REUSE_FRACTION: f64 = 0.8;

/// A scheduled tag's phase within the interval (see [`plan::phase`]). A followed
/// tag's is its repository's within its namespace, so that every tag following one
/// repository is due at the same moments (jittered per repository, not per tag) and
/// one read of the list serves them all; any other tag's is its own.
pub(super) fn phase_of(key: &TagKey, tag: &TagReference, interval_ms: i64) -> i64 {
    match follow::repository_of(tag) {
        Ok(repository) if follows(tag) => plan::phase(
            &format!("{}/{}", key.namespace, repository.exact()),
            interval_ms,
        ),
        _ => plan::phase(&key.name(), interval_ms),
    }
}

/// A repository's tag list as last read.
struct Cached {
    etag: Option<String>,
    tags: Arc<Vec<String>>,
    /// Wall-clock milliseconds when the request was sent.
    read_ms: i64,
}

/// What the last read of a repository's list left.
#[derive(Default)]
struct Last {
    /// The last list read successfully.
    list: Option<Cached>,
    /// The last read's error, if it failed (the list above is kept for its ETag).
    error: Option<ImportError>,
}

/// One repository: its last read, behind the lock a read holds (the single flight),
/// and how many reads have finished.
#[derive(Default)]
struct Repository {
    /// Reads finished, successful or not: a check that sees it change while it waits
    /// for the lock joined that read.
    reads: AtomicU64,
    last: tokio::sync::Mutex<Last>,
}

/// The tag lists last read, by namespace (whose pull secrets read them) and repository.
#[derive(Default)]
pub(super) struct TagLists {
    repositories: Mutex<HashMap<(String, String), Arc<Repository>>>,
}

impl TagLists {
    fn repository(&self, ns: &str, repository: &DockerImageReference) -> Arc<Repository> {
        self.repositories
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((ns.to_string(), repository.exact()))
            .or_default()
            .clone()
    }
}

/// The pull secrets a followed tag's check uses, and the repository and upstream tag
/// its policy picks (or why there is none).
pub(super) struct Choice {
    secrets: Arc<Vec<Bytes>>,
    chosen: Result<(DockerImageReference, String), ImportError>,
}

impl Shared {
    /// Reads (or joins the read of, or reuses) the tag list of a followed tag's
    /// repository, and picks the tag its policy admits. Runs before the check takes a
    /// slot: the checks that wait for another's read hold none.
    pub(super) async fn follow_choice(&self, job: &Job) -> Choice {
        let secrets = self.pull_secrets(&job.key.namespace).await;
        let chosen = self.choose(job, &secrets).await;
        Choice { secrets, chosen }
    }

    /// One check of a followed tag, after [`follow_choice`](Self::follow_choice).
    /// Also returns the upstream tag chosen, when the tag now has its image.
    pub(super) async fn run_follow_check(
        &self,
        job: &Job,
        choice: Choice,
    ) -> (Outcome, Option<String>) {
        let Choice { secrets, chosen } = choice;
        let (repository, chosen) = match chosen {
            Ok(c) => c,
            Err(e) => return (self.failed(job, e).await, None),
        };
        if let Some(current) = &job.current
            && job.followed_tag.as_deref() == Some(chosen.as_str())
            && job.record_image.as_deref() == Some(current.image.as_str())
        {
            if job.failed {
                self.clear_failure(job).await;
            }
            let image = current.image.clone();
            return (
                Outcome::Unchanged {
                    digest: None,
                    image,
                },
                Some(chosen),
            );
        }
        let outcome = self
            .import(job, None, &secrets, Some((&repository, &chosen)))
            .await;
        match outcome {
            Outcome::Updated { .. } => (outcome, Some(chosen)),
            other => (other, None),
        }
    }

    /// The repository and the tag the policy picks from its (possibly shared) list.
    async fn choose(
        &self,
        job: &Job,
        secrets: &Arc<Vec<Bytes>>,
    ) -> Result<(DockerImageReference, String), ImportError> {
        let policy = follow::policy_of(&job.tag)?;
        let repository = follow::repository_of(&job.tag)?;
        let pull = PullOptions {
            insecure: job.tag.import_policy.insecure,
            secrets: secrets.clone(),
        };
        // A list read before the tag's newest entry (an import on demand may have
        // chosen from a newer one) is not reused.
        let newest_ms = job
            .current
            .as_ref()
            .and_then(|c| c.created.as_ref())
            .map(|t| t.0.as_millisecond())
            .unwrap_or(i64::MIN);
        let tags = self.tag_list(job, &repository, &pull, newest_ms).await?;
        let chosen = follow::choose(&policy, &repository, &tags)?;
        Ok((repository, chosen))
    }

    /// The tag list of `repository`: the answer of a read that finished while this
    /// check waited for it, else the last list while fresh, else asked (conditionally)
    /// by this check, which spends one token of the registry's budget for it.
    async fn tag_list(
        &self,
        job: &Job,
        repository: &DockerImageReference,
        pull: &PullOptions,
        newest_ms: i64,
    ) -> Result<Arc<Vec<String>>, ImportError> {
        let repo = self.tag_lists.repository(&job.key.namespace, repository);
        let seen = repo.reads.load(Ordering::Acquire);
        let mut last = repo.last.lock().await;
        let joined = repo.reads.load(Ordering::Acquire) != seen;
        if joined && let Some(e) = &last.error {
            return Err(e.clone());
        }
        let reuse_ms = (self.interval_ms as f64 * REUSE_FRACTION) as i64;
        if let Some(c) = &last.list
            && last.error.is_none()
            && c.read_ms > newest_ms
            && (joined || super::now_ms() - c.read_ms < reuse_ms)
        {
            return Ok(c.tags.clone());
        }
        self.budgets.acquire(&job.registry).await;
        let etag = last.list.as_ref().and_then(|c| c.etag.clone());
        let read_ms = super::now_ms();
        let answer = self
            .source
            .tags_if_changed(repository, pull, etag.as_deref())
            .await;
        repo.reads.fetch_add(1, Ordering::AcqRel);
        let list = match (answer, last.list.take()) {
            (Ok(TagsAnswer::NotModified), Some(c)) => Ok((c.etag, c.tags)),
            (Ok(TagsAnswer::NotModified), None) => Err(ImportError::invalid(
                "the registry answered 304 Not Modified to an unconditional tag list request",
            )),
            (Ok(TagsAnswer::Changed { tags, etag, .. }), _) => Ok((etag, Arc::new(tags))),
            (Err(e), kept) => {
                last.list = kept;
                Err(e)
            }
        };
        match list {
            Ok((etag, tags)) => {
                last.list = Some(Cached {
                    etag,
                    tags: tags.clone(),
                    read_ms,
                });
                last.error = None;
                Ok(tags)
            }
            Err(e) => {
                // A 429 pauses the registry before the checks that joined this read
                // see it, so that they wait out the one pause (and count one 429).
                if e.reason() == reasons::TOO_MANY_REQUESTS {
                    self.budgets.pause(&job.registry, e.retry_after());
                }
                last.error = Some(e.clone());
                Err(e)
            }
        }
    }
}
