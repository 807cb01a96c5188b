//! The import controller: watches image streams and, for every spec tag whose
//! generation is newer than its history has observed (or whose source stream moved,
//! for tracking tags), imports or resolves it. A failed import of a tag that is not
//! scheduled is retried with exponential backoff from 1 s to 10 min, a bounded number
//! of times (OpenShift never retries these). The reconciler returns its next action.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use moor_api::image::history::needs_import;
use moor_api::image::{ImageStream, KIND_IMAGE_STREAM_TAG, TagReference, reasons};
use serde_json::Value;
use tokio::time::Instant;

use super::{Importer, TagOutcome};
use crate::apiserver::resource::{ListOptions, RequestContext, WatchEvent};

/// Retry policy of failed imports.
#[derive(Clone, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// Retries after the first failure; then the tag waits for a spec change.
    pub max_retries: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(600),
            max_retries: 12,
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (1-based), honouring Retry-After.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        exp.min(self.max).max(retry_after.unwrap_or_default())
    }
}

/// What the reconciler wants next for a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do until the stream changes.
    Await,
    /// Look again after this long (a retry is due).
    Requeue(Duration),
}

type Key = (String, String);

#[derive(Clone, Debug)]
struct Retry {
    attempts: u32,
    /// The spec generation the failures were for; a new generation starts over.
    generation: i64,
    due: Instant,
}

/// The controller state: retry bookkeeping per (namespace, stream) and tag.
pub struct ImportController {
    importer: Arc<Importer>,
    backoff: Backoff,
    retries: HashMap<Key, BTreeMap<String, Retry>>,
    metrics: Option<super::ImportMetrics>,
}

fn key_of(v: &Value) -> Option<Key> {
    Some((
        v.pointer("/metadata/namespace")?.as_str()?.to_string(),
        v.pointer("/metadata/name")?.as_str()?.to_string(),
    ))
}

/// A stream as the controller keeps it: without `managedFields`, which it never reads
/// and which are a large share of each object in memory.
fn slim(mut s: ImageStream) -> ImageStream {
    s.metadata.managed_fields = None;
    s
}

/// Whether a tracking tag (ImageStreamTag source) lags behind its source in `streams`.
fn tracking_lags(
    stream: &ImageStream,
    tag: &TagReference,
    sources: &HashMap<Key, ImageStream>,
) -> bool {
    if tag.from_kind() != KIND_IMAGE_STREAM_TAG {
        return false;
    }
    let ns = stream.metadata.namespace.clone().unwrap_or_default();
    let from_ns = tag
        .from
        .as_ref()
        .and_then(|f| f.namespace.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or(ns);
    let Ok((src, src_tag)) = moor_api::image::parse_image_stream_tag_name(tag.from_name()) else {
        return false;
    };
    let source = if Some(src) == stream.metadata.name.as_deref() {
        Some(stream)
    } else {
        sources.get(&(from_ns, src.to_string()))
    };
    let Some(source) = source else { return false };
    let want = source.latest_tagged_image(src_tag);
    let have = stream.latest_tagged_image(&tag.name);
    match (want, have) {
        (Some(w), Some(h)) => {
            w.image != h.image || w.docker_image_reference != h.docker_image_reference
        }
        (Some(_), None) => true,
        _ => false,
    }
}

impl ImportController {
    /// A controller over `importer`.
    pub fn new(importer: Arc<Importer>, backoff: Backoff) -> Self {
        ImportController {
            importer,
            backoff,
            retries: HashMap::new(),
            metrics: None,
        }
    }

    /// Records how long each registry import takes (`trigger="spec"`).
    pub fn with_metrics(mut self, metrics: super::ImportMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Reconciles one stream: imports what needs importing, records the outcome, and
    /// says when to look again.
    pub async fn reconcile(
        &mut self,
        stream: &ImageStream,
        all: &HashMap<Key, ImageStream>,
    ) -> Action {
        let key: Key = (
            stream.metadata.namespace.clone().unwrap_or_default(),
            stream.metadata.name.clone().unwrap_or_default(),
        );
        let now = Instant::now();
        let retries = self.retries.entry(key.clone()).or_default();
        retries.retain(|tag, r| {
            stream
                .spec_tag(tag)
                .is_some_and(|t| t.generation.unwrap_or(0) == r.generation)
        });
        let mut due: Vec<TagReference> = Vec::new();
        for tag in &stream.spec.tags {
            if tag.from.is_none() {
                continue;
            }
            let wanted = needs_import(stream, &tag.name) || tracking_lags(stream, tag, all);
            let retry_due = retries
                .get(&tag.name)
                .is_some_and(|r| r.due <= now && r.attempts <= self.backoff.max_retries);
            if wanted || retry_due {
                if retries.get(&tag.name).is_some_and(|r| r.due > now)
                    && !needs_import(stream, &tag.name)
                {
                    continue;
                }
                due.push(tag.clone());
            }
        }
        if !due.is_empty() {
            let secrets = self.importer.pull_secrets(&key.0).await;
            let mut outcomes = Vec::new();
            for tag in &due {
                let started = std::time::Instant::now();
                let outcome = self.importer.resolve_tag(stream, tag, &secrets).await;
                if let Some(m) = &self.metrics
                    && tag.from_kind() == moor_api::image::KIND_DOCKER_IMAGE
                    && !tag.reference
                {
                    m.observe("spec", started.elapsed());
                }
                tracing::info!(
                    namespace = %key.0, stream = %key.1, tag = %tag.name,
                    ok = matches!(outcome, TagOutcome::Imported { .. }),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "import"
                );
                outcomes.push((tag.name.clone(), outcome));
            }
            let retries = self.retries.entry(key.clone()).or_default();
            for (tag, outcome) in &outcomes {
                let generation = stream.spec_tag(tag).and_then(|t| t.generation).unwrap_or(0);
                let scheduled = stream
                    .spec_tag(tag)
                    .is_some_and(|t| t.import_policy.scheduled);
                match outcome {
                    TagOutcome::Imported { .. } => {
                        retries.remove(tag);
                    }
                    TagOutcome::Failed(e) if !scheduled && e.reason != reasons::INVALID => {
                        let attempts = retries
                            .get(tag)
                            .filter(|r| r.generation == generation)
                            .map(|r| r.attempts)
                            .unwrap_or(0)
                            + 1;
                        let delay = self.backoff.delay(attempts, e.retry_after);
                        retries.insert(
                            tag.clone(),
                            Retry {
                                attempts,
                                generation,
                                due: now + delay,
                            },
                        );
                    }
                    TagOutcome::Failed(_) => {
                        retries.remove(tag);
                    }
                }
            }
            if let Err(e) = self
                .importer
                .write_outcomes(&key.0, &key.1, &outcomes)
                .await
            {
                tracing::warn!(namespace = %key.0, stream = %key.1, error = %e, "writing import results failed");
                return Action::Requeue(self.backoff.initial);
            }
        }
        let retries = self.retries.entry(key).or_default();
        match retries
            .values()
            .filter(|r| r.attempts <= self.backoff.max_retries)
            .map(|r| r.due)
            .min()
        {
            Some(next) => Action::Requeue(
                next.saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(10)),
            ),
            None => Action::Await,
        }
    }

    /// Runs forever: lists and watches streams, reconciling each change, the streams
    /// that track it, and every due retry.
    pub async fn run(mut self) {
        loop {
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "import controller restarts its watch");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    async fn run_once(&mut self) -> Result<(), crate::apiserver::error::ApiError> {
        let ctx = RequestContext::default();
        let list = self
            .importer
            .streams
            .list_encoded(&ctx, None, &ListOptions::default())
            .await?;
        // Typed streams straight from bytes: no JSON trees for the whole collection.
        let mut streams: HashMap<Key, ImageStream> = HashMap::new();
        let mut array = Vec::with_capacity(list.items.len() + 2);
        array.push(b'[');
        array.extend_from_slice(&list.items);
        array.push(b']');
        let typed: Vec<ImageStream> =
            serde_json::from_slice(&array).map_err(crate::apiserver::error::ApiError::internal)?;
        drop(array);
        for s in typed {
            let key = (
                s.metadata.namespace.clone().unwrap_or_default(),
                s.metadata.name.clone().unwrap_or_default(),
            );
            streams.insert(key, slim(s));
        }
        let mut queue: BTreeMap<Key, Instant> = streams
            .keys()
            .map(|k| (k.clone(), Instant::now()))
            .collect();
        let opts = ListOptions {
            resource_version: Some(list.resource_version.clone()),
            ..Default::default()
        };
        let mut events = self.importer.streams.watch(&ctx, None, &opts).await?;
        loop {
            let next_due = queue.values().min().copied();
            let sleep = async {
                match next_due {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                ev = events.next() => {
                    let Some(ev) = ev else { return Ok(()) };
                    match ev {
                        WatchEvent::Added(v) | WatchEvent::Modified(v) => {
                            let Some(k) = key_of(&v) else { continue };
                            if let Ok(s) = serde_json::from_value::<ImageStream>(v) {
                                // Streams tracking this one look again too.
                                for (dk, ds) in &streams {
                                    if dk.0 == k.0 && ds.spec.tags.iter().any(|t| t.from_kind() == KIND_IMAGE_STREAM_TAG
                                        && t.from_name().split(':').next() == Some(k.1.as_str())) {
                                        queue.insert(dk.clone(), Instant::now());
                                    }
                                }
                                streams.insert(k.clone(), slim(s));
                                queue.insert(k, Instant::now());
                            }
                        }
                        WatchEvent::Deleted(v) => {
                            if let Some(k) = key_of(&v) {
                                streams.remove(&k);
                                queue.remove(&k);
                                self.retries.remove(&k);
                            }
                        }
                        WatchEvent::Bookmark(_) => {}
                        WatchEvent::Error(e) => {
                            return Err(crate::apiserver::error::ApiError::Gone(e.to_string()));
                        }
                    }
                }
                _ = sleep => {
                    let now = Instant::now();
                    let ready: Vec<Key> = queue.iter().filter(|(_, t)| **t <= now).map(|(k, _)| k.clone()).collect();
                    for k in ready {
                        queue.remove(&k);
                        let Some(stream) = streams.get(&k).cloned() else { continue };
                        match self.reconcile(&stream, &streams).await {
                            Action::Await => {}
                            Action::Requeue(d) => {
                                queue.insert(k, Instant::now() + d);
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_honours_retry_after() {
        let b = Backoff::default();
        assert_eq!(b.delay(1, None), Duration::from_secs(1));
        assert_eq!(b.delay(2, None), Duration::from_secs(2));
        assert_eq!(b.delay(5, None), Duration::from_secs(16));
        assert_eq!(b.delay(30, None), Duration::from_secs(600));
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
    }
}
