//! [`RestStorage`] for [`StoredResource`]: the verbs as the HTTP handlers call them,
//! over the key, version and watch machinery of the parent module.

use super::*;

#[async_trait]
impl RestStorage for StoredResource {
    fn def(&self) -> &ResourceDef {
        self.strategy.def()
    }

    fn table(&self) -> TableDef {
        self.strategy.table()
    }

    fn merge_keys(&self) -> MergeKeys {
        self.strategy.merge_keys()
    }

    fn decode(&self, body: Value) -> Result<(Value, Vec<String>), ApiError> {
        let def = self.strategy.def();
        if let Some(av) = body.get("apiVersion").and_then(Value::as_str)
            && av != def.api_version()
        {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                def.api_version()
            )));
        }
        if let Some(kind) = body.get("kind").and_then(Value::as_str)
            && kind != def.kind
        {
            return Err(ApiError::BadRequest(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                def.kind
            )));
        }
        if !body.is_object() {
            return Err(ApiError::BadRequest(format!(
                "{} in version \"{}\" cannot be handled as a {}: the body must be a JSON object",
                def.kind, def.version, def.kind
            )));
        }
        let mut body = body;
        body["apiVersion"] = json!(def.api_version());
        body["kind"] = json!(def.kind);
        self.strategy.decode(body).map_err(|e| {
            ApiError::BadRequest(format!(
                "{} in version \"{}\" cannot be handled as a {}: {e}",
                def.kind, def.version, def.kind
            ))
        })
    }

    async fn get(
        &self,
        _ctx: &RequestContext,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        match self.store.get(&self.key(ns, name)).await? {
            Some(kv) => self.materialize(&kv),
            None => Err(ApiError::NotFound {
                gr: self.gr(),
                name: name.into(),
            }),
        }
    }

    async fn get_at(
        &self,
        _ctx: &RequestContext,
        ns: Option<&str>,
        name: &str,
        resource_version: Option<&str>,
    ) -> Result<Value, ApiError> {
        let key = self.key(ns, name);
        // "0": any recent state (a watch cache's); else the current one.
        let kv = match resource_version {
            Some("0") => self.store.get_recent(&key).await?,
            _ => self.store.get(&key).await?,
        };
        match kv {
            Some(kv) => self.materialize(&kv),
            None => Err(ApiError::NotFound {
                gr: self.gr(),
                name: name.into(),
            }),
        }
    }

    async fn get_stored(
        &self,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Option<moor_store::KeyValue>, ApiError> {
        Ok(self.store.get(&self.key(ns, name)).await?)
    }

    async fn list_streamed(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<StreamedList, ApiError> {
        self.list_streamed_inner(ctx, ns, opts).await
    }

    async fn list(
        &self,
        _ctx: &RequestContext,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ObjectList, ApiError> {
        self.list_inner(ns, opts).await
    }

    async fn list_encoded(
        &self,
        _ctx: &RequestContext,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<EncodedList, ApiError> {
        let plain = opts.label_selector.is_empty() && opts.field_selector.0.is_empty();
        let mut items: Vec<u8> = Vec::new();
        let (emitted, resource_version, continue_token) = self
            .scan(ns, opts, |kv| {
                let sep = !items.is_empty();
                if plain {
                    if sep {
                        items.push(b',');
                    }
                    self.encode_stored_into(kv, &mut items)?;
                    return Ok(Some(()));
                }
                let obj = self.materialize(kv)?;
                if !(opts.label_selector.matches_object(&obj)
                    && opts.field_selector.matches_object(&obj))
                {
                    return Ok(None);
                }
                if sep {
                    items.push(b',');
                }
                serde_json::to_writer(&mut items, &obj).map_err(ApiError::internal)?;
                Ok(Some(()))
            })
            .await?;
        Ok(EncodedList {
            items,
            count: emitted.len(),
            resource_version,
            continue_token,
        })
    }

    async fn create(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        obj: Value,
    ) -> Result<Value, ApiError> {
        self.create_inner(ctx, ns, obj).await
    }

    async fn update(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        update: &UpdateFn<'_>,
        create_if_missing: bool,
    ) -> Result<(Value, bool), ApiError> {
        let key = self.key(ns, name);
        // A status write does not land in the middle of a user's update (which would
        // then run again), nor an update in the middle of a status write.
        let _turn = self.turns.turn(&key, subresource == Some("status")).await;
        let deadline = tokio::time::Instant::now() + UPDATE_RETRY_DEADLINE;
        while tokio::time::Instant::now() < deadline {
            let current = self.store.get(&key).await?;
            let Some(kv) = current else {
                if !create_if_missing || subresource.is_some() {
                    return Err(ApiError::NotFound {
                        gr: self.gr(),
                        name: name.into(),
                    });
                }
                let mut obj = update(None)?;
                if meta_str(&obj, "name").is_some_and(|n| n != name) {
                    return Err(ApiError::BadRequest(
                        "the name of the object does not match the name on the URL".into(),
                    ));
                }
                set_meta(&mut obj, "name", json!(name));
                match self.create_inner(ctx, ns, obj).await {
                    Err(ApiError::AlreadyExists { .. }) => continue,
                    other => return other.map(|o| (o, true)),
                }
            };
            // Off the async workers when the stored object or the request is large;
            // for small ones the hand-over costs more than the step (a thread switch
            // per write, and the blocking pool grew to one thread per client).
            let heavy = ctx.large_body || kv.value.len() > LARGE_OBJECT_BYTES;
            let step = cpu_bound_if(heavy, || {
                self.next_version(&kv, ns, name, subresource, update, ctx.dry_run)
            })?;
            let (mut decorated_new, bytes, precondition) = match step {
                // An unchanged object the store keeps stale (under an old encryption
                // key) is written as it is, so that `kubectl replace` re-encrypts.
                NextVersion::Unchanged(old) if !ctx.dry_run && self.store.is_stale(&kv).await? => {
                    let bytes = Self::encode(&old)?;
                    (old, bytes, None)
                }
                NextVersion::Unchanged(old) => return Ok((old, false)),
                NextVersion::DryRun(obj) => return Ok((obj, false)),
                NextVersion::Write {
                    object,
                    bytes,
                    precondition,
                } => (object, bytes, precondition),
            };
            match self.store.update(&key, bytes, kv.mod_revision).await {
                Ok(rev) => {
                    set_meta(
                        &mut decorated_new,
                        "resourceVersion",
                        json!(rev.to_string()),
                    );
                    return Ok((decorated_new, false));
                }
                Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound(_)) => {
                    if precondition.is_some() {
                        return Err(ApiError::stale(&self.gr(), name));
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::Conflict {
            gr: self.gr(),
            name: name.into(),
            message: "too many concurrent updates; please try again".into(),
        })
    }

    async fn delete(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        name: &str,
        pre: &DeletePreconditions,
    ) -> Result<Value, ApiError> {
        let key = self.key(ns, name);
        let Some(kv) = self.store.get(&key).await? else {
            return Err(ApiError::NotFound {
                gr: self.gr(),
                name: name.into(),
            });
        };
        let obj = self.materialize(&kv)?;
        if let Some(uid) = &pre.uid
            && meta_str(&obj, "uid") != Some(uid.as_str())
        {
            return Err(ApiError::Conflict {
                gr: self.gr(),
                name: name.into(),
                message: format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&obj, "uid").unwrap_or("")
                ),
            });
        }
        if let Some(rv) = &pre.resource_version
            && *rv != kv.mod_revision.to_string()
        {
            return Err(ApiError::Conflict {
                gr: self.gr(),
                name: name.into(),
                message: format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    kv.mod_revision
                ),
            });
        }
        if ctx.dry_run {
            return Ok(obj);
        }
        match self.store.delete(&key, Some(kv.mod_revision)).await {
            Ok(_) => Ok(obj),
            Err(StoreError::NotFound(_)) => Err(ApiError::NotFound {
                gr: self.gr(),
                name: name.into(),
            }),
            Err(StoreError::Conflict { .. }) => Err(ApiError::stale(&self.gr(), name)),
            Err(e) => Err(e.into()),
        }
    }

    async fn watch_stored(
        &self,
        ns: Option<&str>,
        resource_version: &str,
    ) -> Result<StoredEvents, ApiError> {
        let from = parse_resource_version(resource_version)?;
        let events = self.store.watch(&self.prefix(ns), from).await?;
        Ok(events
            .map(|ev| ev.map_err(|e| ApiError::Expired(format!("watch closed: {e}"))))
            .boxed())
    }

    async fn watch(
        &self,
        _ctx: &RequestContext,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<WatchEvents, ApiError> {
        let rv = opts.resource_version.as_deref().unwrap_or("");
        let mut initial = Vec::new();
        let from = if rv.is_empty() || rv == "0" || opts.send_initial_events {
            let list = self
                .list_inner(
                    ns,
                    &ListOptions {
                        limit: None,
                        continue_token: None,
                        ..opts.clone()
                    },
                )
                .await?;
            initial = list.items.into_iter().map(WatchEvent::Added).collect();
            parse_resource_version(&list.resource_version)?
        } else {
            parse_resource_version(rv)?
        };
        // With bookmarks from the store (etcd's progress notifications): a BOOKMARK
        // then carries the store's progress, not only the last event's revision.
        let mut events = self
            .store
            .watch_with_progress(&self.prefix(ns), from)
            .await?;
        let strategy = self.strategy.clone();
        let label = opts.label_selector.clone();
        let field = opts.field_selector.clone();
        let def = self.strategy.def().clone();
        let bookmarks = opts.allow_bookmarks;
        let initial_end = opts.send_initial_events && bookmarks;
        let interval = self.config.bookmark_interval;
        let timeout = opts
            .timeout_seconds
            .map(Duration::from_secs)
            .unwrap_or(self.config.default_watch_timeout);
        let bookmark = move |rv: Revision, end: bool| {
            let mut meta = json!({"resourceVersion": rv.to_string()});
            if end {
                meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            WatchEvent::Bookmark(
                json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": meta}),
            )
        };
        let stream = async_stream_events(move |tx| async move {
            let deadline = tokio::time::Instant::now() + timeout;
            for ev in initial {
                if tx.send(ev).await.is_err() {
                    return;
                }
            }
            let mut last_rev = from;
            if initial_end && tx.send(bookmark(last_rev, true)).await.is_err() {
                return;
            }
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => return,
                    _ = ticker.tick(), if bookmarks => {
                        if tx.send(bookmark(last_rev, false)).await.is_err() { return; }
                    }
                    ev = events.next() => {
                        let ev = match ev {
                            None => return,
                            Some(Err(e)) => {
                                let err = ApiError::Expired(format!("watch closed: {e}"));
                                let _ = tx.send(WatchEvent::Error(err.status())).await;
                                return;
                            }
                            Some(Ok(moor_store::WatchItem::Progress(rev))) => {
                                last_rev = last_rev.max(rev);
                                continue;
                            }
                            Some(Ok(moor_store::WatchItem::Event(ev))) => ev,
                        };
                        last_rev = ev.kv.mod_revision;
                        // Every watcher decodes each event: a large object is decoded
                        // off the async workers, which keep answering meanwhile.
                        let decode = || {
                            let mut obj = serde_json::from_slice::<Value>(&ev.kv.value).ok()?;
                            set_meta(&mut obj, "resourceVersion", json!(ev.kv.mod_revision.to_string()));
                            strategy.decorate(&mut obj);
                            (label.matches_object(&obj) && field.matches_object(&obj)).then_some(obj)
                        };
                        let large = ev.kv.value.len() > LARGE_OBJECT_BYTES;
                        let slot = match large {
                            true => match tx.large_slot().await {
                                Ok(slot) => Some(slot),
                                Err(_) => return,
                            },
                            false => None,
                        };
                        let Some(obj) = cpu_bound_if(large, decode) else { continue };
                        let out = match ev.kind {
                            EventKind::Delete => WatchEvent::Deleted(obj),
                            EventKind::Put if ev.kv.create_revision == ev.kv.mod_revision => WatchEvent::Added(obj),
                            EventKind::Put => WatchEvent::Modified(obj),
                        };
                        if tx.send_with(out, slot).await.is_err() { return; }
                    }
                }
            }
        });
        Ok(stream)
    }
}
