//! Scheduled checks of tags that follow a range: the repository's tag list instead of
//! a HEAD. The list is asked conditionally (`If-None-Match` with the ETag of the last
//! answer, so an unchanged list costs one request); a registry that sends no ETag
//! (CNCF distribution 2.8) answers with the whole list, which is compared with the
//! last one. One list is shared by every tag of a namespace that follows the same
//! repository: a list read less than [`REUSE_FRACTION`] of the interval ago, and after
//! the tag's newest history entry, is used again without a request. Only when the
//! chosen tag differs from the one the last check chose (or the tag's image changed
//! since) is the chosen tag imported, through the importer. Calls the importer's
//! [`Source`](crate::importer::Source) port and its follow helpers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use moor_api::DockerImageReference;

use super::Shared;
use super::check::{Job, Outcome};
use crate::importer::follow::{self, TagsAnswer};
use crate::importer::{ImportError, PullOptions};

/// A list is reused by other tags' checks while younger than this part of the interval.
pub const REUSE_FRACTION: f64 = 0.8;

/// A repository's tag list as last read.
struct Cached {
    etag: Option<String>,
    tags: Arc<Vec<String>>,
    /// Wall-clock milliseconds of the read.
    read_ms: i64,
}

/// The tag lists last read, by namespace (whose pull secrets read them) and repository.
#[derive(Default)]
pub(super) struct TagLists {
    lists: Mutex<HashMap<(String, String), Cached>>,
}

impl Shared {
    /// One check of a followed tag. Also returns the upstream tag chosen, when the tag
    /// now has its image.
    pub(super) async fn run_follow_check(&self, job: &Job) -> (Outcome, Option<String>) {
        let secrets = self.pull_secrets(&job.key.namespace).await;
        let chosen = match self.choose(job, &secrets).await {
            Ok(c) => c,
            Err(e) => return (self.failed(job, e).await, None),
        };
        let (repository, chosen) = chosen;
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

    /// The repository and the tag the policy picks from its (possibly reused) list.
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
        let tags = self
            .tag_list(&job.key.namespace, &repository, &pull, newest_ms)
            .await?;
        let chosen = follow::choose(&policy, &repository, &tags)?;
        Ok((repository, chosen))
    }

    /// The tag list of `repository`: reused while fresh, else asked conditionally.
    async fn tag_list(
        &self,
        ns: &str,
        repository: &DockerImageReference,
        pull: &PullOptions,
        newest_ms: i64,
    ) -> Result<Arc<Vec<String>>, ImportError> {
        let key = (ns.to_string(), repository.exact());
        let reuse_ms = (self.interval_ms as f64 * REUSE_FRACTION) as i64;
        let now = super::now_ms();
        let cached = {
            let lists = self
                .tag_lists
                .lists
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            lists
                .get(&key)
                .map(|c| (c.etag.clone(), c.tags.clone(), c.read_ms))
        };
        if let Some((_, tags, read_ms)) = &cached
            && now - read_ms < reuse_ms
            && *read_ms > newest_ms
        {
            return Ok(tags.clone());
        }
        let etag = cached.as_ref().and_then(|(e, _, _)| e.clone());
        let answer = self
            .source
            .tags_if_changed(repository, pull, etag.as_deref())
            .await?;
        let (etag, tags) = match (answer, cached) {
            (TagsAnswer::NotModified, Some((etag, tags, _))) => (etag, tags),
            (TagsAnswer::NotModified, None) => {
                return Err(ImportError::invalid(
                    "the registry answered 304 Not Modified to an unconditional tag list request",
                ));
            }
            (TagsAnswer::Changed { tags, etag, .. }, _) => (etag, Arc::new(tags)),
        };
        self.tag_lists
            .lists
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                key,
                Cached {
                    etag,
                    tags: tags.clone(),
                    read_ms: now,
                },
            );
        Ok(tags)
    }
}
