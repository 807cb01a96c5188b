//! How a list reads the store: kube's `resourceVersion`, `resourceVersionMatch` and
//! `continue` rules for the first page, and lists without a limit streamed page by
//! page (one store page in memory at a time, whatever the list's size).

use futures::stream;

use super::*;

/// Which state the pages of a list read.
pub(super) enum ReadAt {
    /// `resourceVersion` unset: the current state, including every write acknowledged
    /// before the request (a watch cache serves it once it has caught up).
    Consistent,
    /// `resourceVersion=0`, or `NotOlderThan`: any recent state not older than `min`
    /// (a watch cache serves it at once).
    Recent { min: Option<Revision> },
    /// Exactly this revision: `Exact`, a continue token, or kube's legacy meaning of a
    /// `resourceVersion` together with a `limit`.
    Exact(Revision),
}

impl ReadAt {
    /// The revision every page reads at, when known before the first.
    pub(super) fn revision(&self) -> Option<Revision> {
        match self {
            ReadAt::Exact(r) => Some(*r),
            _ => None,
        }
    }
}

/// A 422 on `ListOptions`, worded as kube-apiserver's validation.
fn invalid_options(field: &str, reason: &str, message: String) -> ApiError {
    ApiError::Invalid {
        gr: GroupResource::new("meta.k8s.io", "listoptions"),
        kind: "ListOptions".into(),
        name: String::new(),
        causes: vec![crate::error::Cause {
            reason: reason.into(),
            message,
            field: field.into(),
        }],
    }
}

/// What the first page reads and where it starts, from the options of a list whose
/// keys are under `prefix`.
pub(super) fn read_at(
    opts: &ListOptions,
    prefix: &str,
) -> Result<(ReadAt, Option<String>), ApiError> {
    let rv = opts.resource_version.as_deref().unwrap_or("");
    let continue_token = opts.continue_token.as_deref().filter(|t| !t.is_empty());
    if let Some(m) = opts.resource_version_match.as_deref() {
        let forbidden = |message: &str| {
            invalid_options(
                "resourceVersionMatch",
                "FieldValueForbidden",
                format!("Forbidden: {message}"),
            )
        };
        if rv.is_empty() {
            return Err(forbidden(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        if continue_token.is_some() {
            return Err(forbidden(
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
        if m != "Exact" && m != "NotOlderThan" {
            return Err(invalid_options(
                "resourceVersionMatch",
                "FieldValueNotSupported",
                format!(
                    "Unsupported value: \"{m}\": supported values: \"Exact\", \"NotOlderThan\", \"\""
                ),
            ));
        }
        if m == "Exact" && rv == "0" {
            return Err(forbidden(
                "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            ));
        }
    }
    if let Some(tok) = continue_token {
        if !rv.is_empty() && rv != "0" {
            return Err(ApiError::BadRequest(
                "specifying resource version is not allowed when using continue".into(),
            ));
        }
        let invalid = || ApiError::BadRequest("continue key is not valid".into());
        let raw = URL_SAFE_NO_PAD.decode(tok).map_err(|_| invalid())?;
        let t: ContinueToken = serde_json::from_slice(&raw).map_err(|_| invalid())?;
        if !t.start.starts_with(prefix) {
            return Err(ApiError::BadRequest(
                "continue key is not valid for this request".into(),
            ));
        }
        return Ok((ReadAt::Exact(t.rv), Some(t.start)));
    }
    let read = match (rv, opts.resource_version_match.as_deref()) {
        ("", _) => ReadAt::Consistent,
        ("0", _) => ReadAt::Recent { min: None },
        (rv, Some("Exact")) => ReadAt::Exact(parse_resource_version(rv)?),
        (rv, Some(_)) => ReadAt::Recent {
            min: Some(parse_resource_version(rv)?),
        },
        // kube's legacy rule: a resourceVersion with a limit pages at exactly it.
        (rv, None) if opts.limit.is_some_and(|l| l > 0) => {
            ReadAt::Exact(parse_resource_version(rv)?)
        }
        (rv, None) => ReadAt::Recent {
            min: Some(parse_resource_version(rv)?),
        },
    };
    Ok((read, None))
}

/// The first page of a list that has no revision yet (`read` is not `Exact`).
pub(super) async fn first_page(
    store: &dyn Store,
    prefix: &str,
    read: &ReadAt,
    opts: moor_store::ListOptions,
) -> Result<moor_store::ListResult, StoreError> {
    let ReadAt::Recent { min } = read else {
        return store.list(prefix, opts).await;
    };
    let page = store.list_recent(prefix, opts.clone()).await?;
    match min {
        // Older than asked: the store at exactly `min` (or its FutureRevision error).
        Some(min) if page.revision < *min => {
            store
                .list(
                    prefix,
                    moor_store::ListOptions {
                        revision: Some(*min),
                        ..opts
                    },
                )
                .await
        }
        _ => Ok(page),
    }
}

/// Writes the items of one store page into a list body.
struct PageEncoder {
    resource: StoredResource,
    opts: ListOptions,
    /// Whether an item was written already (the next one needs a comma).
    started: bool,
}

impl PageEncoder {
    fn encode(&mut self, kvs: &[KeyValue]) -> Result<Bytes, ApiError> {
        let plain = self.opts.label_selector.is_empty() && self.opts.field_selector.0.is_empty();
        let mut out = Vec::new();
        for kv in kvs {
            if plain {
                if self.started {
                    out.push(b',');
                }
                self.resource.encode_stored_into(kv, &mut out)?;
                self.started = true;
                continue;
            }
            let obj = self.resource.materialize(kv)?;
            if !(self.opts.label_selector.matches_object(&obj)
                && self.opts.field_selector.matches_object(&obj))
            {
                continue;
            }
            if self.started {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, &obj).map_err(ApiError::internal)?;
            self.started = true;
        }
        Ok(Bytes::from(out))
    }
}

impl StoredResource {
    /// A list without a limit, its items written one store page at a time as the
    /// client reads them; with a limit (a bounded body, whose continue token comes
    /// before the items) or a name pinned by the field selector, the buffered list.
    /// The first page is read before answering, so that its errors (a compacted
    /// continue token, a bad resourceVersion) are statuses, not a broken body.
    pub(super) async fn list_streamed_inner(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<StreamedList, ApiError> {
        let pinned = opts.field_selector.pinned_name().is_some() && ns.is_some();
        if opts.limit.is_some_and(|l| l > 0) || pinned {
            return Ok(RestStorage::list_encoded(self, ctx, ns, opts).await?.into());
        }
        let prefix = self.prefix(ns);
        let (read, start_after) = read_at(opts, &prefix)?;
        let first = first_page(
            self.store.as_ref(),
            &prefix,
            &read,
            moor_store::ListOptions {
                revision: read.revision(),
                start_after,
                limit: Some(SCAN_PAGE),
            },
        )
        .await?;
        let revision = first.revision;
        let mut encoder = PageEncoder {
            resource: StoredResource::new(
                self.store.clone(),
                self.strategy.clone(),
                self.config.clone(),
            ),
            opts: opts.clone(),
            started: false,
        };
        let head = encoder.encode(&first.kvs)?;
        /// Where the next page starts; `None` after the last.
        struct Next {
            encoder: PageEncoder,
            prefix: String,
            start_after: Option<String>,
        }
        let next = Next {
            encoder,
            prefix,
            start_after: first
                .more
                .then(|| first.kvs.last().map(|kv| kv.key.clone()))
                .flatten(),
        };
        let rest = stream::unfold(next, move |mut next| async move {
            let start_after = next.start_after.take()?;
            let page = next
                .encoder
                .resource
                .store
                .list(
                    &next.prefix,
                    moor_store::ListOptions {
                        revision: Some(revision),
                        start_after: Some(start_after),
                        limit: Some(SCAN_PAGE),
                    },
                )
                .await;
            let chunk = match page {
                Ok(page) => {
                    if page.more {
                        next.start_after = page.kvs.last().map(|kv| kv.key.clone());
                    }
                    next.encoder.encode(&page.kvs)
                }
                Err(e) => Err(e.into()),
            };
            Some((chunk, next))
        });
        Ok(StreamedList {
            resource_version: revision.to_string(),
            continue_token: None,
            items: stream::once(async move { Ok(head) }).chain(rest).boxed(),
        })
    }
}
