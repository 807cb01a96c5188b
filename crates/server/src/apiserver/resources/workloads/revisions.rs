//! Deployment revisions: the revision annotation, a ReplicaSet per pod template, and
//! the storage that keeps them on create and update.

use std::sync::Arc;

use moor_api::lookup::{Resolution, WorkloadKind, candidate_streams, resolve_workload};
use moor_api::validation::FieldError;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::{
    ANNOTATIONS_NOT_COPIED, POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION, typed,
};
use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::*;
use moor_apimachinery::stored::StoredResource;
use moor_apimachinery::table::name_of;

pub(super) fn set_annotation(obj: &mut Value, key: &str, value: Option<String>) {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    let meta = &mut obj["metadata"];
    match value {
        Some(v) => {
            if !meta.get("annotations").is_some_and(Value::is_object) {
                meta["annotations"] = json!({});
            }
            meta["annotations"][key] = json!(v);
        }
        None => {
            if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                a.remove(key);
                if a.is_empty() {
                    meta.as_object_mut().map(|m| m.remove("annotations"));
                }
            }
        }
    }
}

pub(super) fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

pub(super) fn revision_of(obj: &Value) -> i64 {
    annotation(obj, REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// A pod template's hash, as the `pod-template-hash` label carries it: a 32-bit hash of
/// the template (without that label) in Kubernetes' "safe" alphabet. The value differs
/// from the deployment controller's (which hashes Go's printing of the struct).
pub fn pod_template_hash(template: &Value) -> String {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    let bytes = serde_json::to_vec(&t).unwrap_or_default();
    let d = Sha256::digest(&bytes);
    let n = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    n.to_string()
        .bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

/// Whether `obj` names `uid` as its controller.
pub fn controlled_by(obj: &Value, uid: &str) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter().any(|r| {
                r.get("uid").and_then(Value::as_str) == Some(uid)
                    && r.get("controller").and_then(Value::as_bool) == Some(true)
            })
        })
}

/// Whether `a` and `b` differ at most in `managedFields` and `resourceVersion`.
fn same_but_bookkeeping(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("managedFields");
            m.remove("resourceVersion");
        }
        v
    };
    strip(a) == strip(b)
}

/// A workload kind served through [`StoredResource`], with the resolver run on create
/// and update and, for Deployments, the revision history kept as ReplicaSets.
pub struct WorkloadStorage {
    kind: WorkloadKind,
    inner: Arc<StoredResource>,
    streams: Arc<dyn RestStorage>,
    /// ReplicaSets, where Deployments keep their revisions.
    history: Option<Arc<StoredResource>>,
}

impl WorkloadStorage {
    /// Serves `kind` from `inner`, resolving through `streams`; Deployments record
    /// their revisions in `history`.
    pub fn new(
        kind: WorkloadKind,
        inner: Arc<StoredResource>,
        streams: Arc<dyn RestStorage>,
        history: Option<Arc<StoredResource>>,
    ) -> Self {
        WorkloadStorage {
            kind,
            inner,
            streams,
            history,
        }
    }

    fn refuse(&self, obj: &Value, res: &Resolution) -> Result<(), ApiError> {
        if res.failures.is_empty() {
            return Ok(());
        }
        let errors: Vec<FieldError> = res
            .failures
            .iter()
            .map(|f| FieldError::invalid(&f.field, &f.image, &f.message))
            .collect();
        Err(ApiError::invalid(
            &self.inner.def().group_resource(),
            self.kind.kind(),
            name_of(obj),
            &errors,
        ))
    }

    /// Runs the resolver over `obj` (old: `old`) and writes its rewrites into `obj`.
    fn resolve(
        &self,
        obj: &mut Value,
        old: Option<&Value>,
        namespace: &str,
        streams: &std::collections::HashMap<String, moor_api::image::ImageStream>,
    ) -> Result<(), ApiError> {
        let Some(mut w) = typed(self.kind, obj) else {
            return Ok(()); // validation reports it
        };
        let old_w = old.and_then(|o| typed(self.kind, o));
        let res = resolve_workload(&mut w, old_w.as_ref(), namespace, streams);
        if let Some(why) = res.skipped {
            tracing::debug!(kind = %self.kind, name = name_of(obj), why, "image lookup skipped");
        }
        self.refuse(obj, &res)?;
        let name = name_of(obj).to_string();
        for rw in &res.rewrites {
            if let Some(slot) = obj.pointer_mut(&rw.pointer) {
                tracing::info!(kind = %self.kind, %name, from = %rw.from, to = %rw.to, "image resolved");
                *slot = json!(rw.to);
            }
        }
        Ok(())
    }

    /// Records the current pod template of Deployment `deploy` as a revision: the
    /// ReplicaSet of that template carries the Deployment's revision; the others are
    /// scaled to 0; beyond `revisionHistoryLimit` the oldest are deleted.
    async fn record_revision(&self, deploy: &Value) -> Result<(), ApiError> {
        let Some(history) = &self.history else {
            return Ok(());
        };
        let (Some(ns), Some(uid)) = (
            deploy
                .pointer("/metadata/namespace")
                .and_then(Value::as_str),
            deploy.pointer("/metadata/uid").and_then(Value::as_str),
        ) else {
            return Ok(());
        };
        let name = name_of(deploy);
        let ctx = RequestContext::default();
        let template = deploy
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(json!({}));
        let hash = pod_template_hash(&template);
        let rs_name = format!("{name}-{hash}");
        let revision = annotation(deploy, REVISION_ANNOTATION)
            .unwrap_or("1")
            .to_string();
        let replicas = deploy
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let owned: Vec<Value> = history
            .list(&ctx, Some(ns), &ListOptions::default())
            .await?
            .items
            .into_iter()
            .filter(|rs| controlled_by(rs, uid))
            .collect();
        // The current revision carries the Deployment's annotations, as the deployment
        // controller copies them, so that a rollback brings them back too.
        let mut copied = serde_json::Map::new();
        if let Some(a) = deploy
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
        {
            for (k, v) in a {
                if !ANNOTATIONS_NOT_COPIED.contains(&k.as_str()) {
                    copied.insert(k.clone(), v.clone());
                }
            }
        }
        copied.insert(REVISION_ANNOTATION.into(), json!(revision));
        copied.insert(
            "deployment.kubernetes.io/desired-replicas".into(),
            json!(replicas.to_string()),
        );
        copied.insert(
            "deployment.kubernetes.io/max-replicas".into(),
            json!(replicas.to_string()),
        );
        let copied = Value::Object(copied);
        if !owned.iter().any(|rs| name_of(rs) == rs_name) {
            let mut t = template.clone();
            t["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL] = json!(hash);
            let mut selector = deploy
                .pointer("/spec/selector")
                .cloned()
                .unwrap_or(json!({}));
            selector["matchLabels"][POD_TEMPLATE_HASH_LABEL] = json!(hash);
            let rs = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name, "namespace": ns,
                    "labels": t["metadata"]["labels"].clone(),
                    "annotations": copied.clone(),
                    "ownerReferences": [{
                        "apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": uid,
                        "controller": true, "blockOwnerDeletion": true,
                    }],
                },
                "spec": {"replicas": replicas, "selector": selector, "template": t},
            });
            match history.create(&ctx, Some(ns), rs).await {
                Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        for rs in &owned {
            let current = name_of(rs) == rs_name;
            let revision = revision.clone();
            let copied = copied.clone();
            let step = move |cur: Option<&Value>| -> Result<Value, ApiError> {
                let mut v = cur
                    .cloned()
                    .ok_or_else(|| ApiError::internal_message("replica set vanished"))?;
                v["spec"]["replicas"] = json!(if current { replicas } else { 0 });
                if current {
                    let old = annotation(&v, REVISION_ANNOTATION)
                        .unwrap_or("")
                        .to_string();
                    let history = annotation(&v, REVISION_HISTORY_ANNOTATION).map(str::to_string);
                    v["metadata"]["annotations"] = copied.clone();
                    if let Some(h) = history {
                        set_annotation(&mut v, REVISION_HISTORY_ANNOTATION, Some(h));
                    }
                    set_annotation(&mut v, REVISION_ANNOTATION, Some(old.clone()));
                    if old != revision {
                        if !old.is_empty() {
                            let mut hist: Vec<String> = annotation(&v, REVISION_HISTORY_ANNOTATION)
                                .map(|h| h.split(',').map(str::to_string).collect())
                                .unwrap_or_default();
                            hist.push(old);
                            set_annotation(
                                &mut v,
                                REVISION_HISTORY_ANNOTATION,
                                Some(hist.join(",")),
                            );
                        }
                        set_annotation(&mut v, REVISION_ANNOTATION, Some(revision.clone()));
                    }
                }
                Ok(moor_apimachinery::stored::unconditional(v))
            };
            match history
                .update(&ctx, Some(ns), name_of(rs), None, &step, false)
                .await
            {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        // Old revisions beyond the limit go, oldest first.
        let limit = deploy
            .pointer("/spec/revisionHistoryLimit")
            .and_then(Value::as_i64)
            .unwrap_or(10)
            .max(0) as usize;
        let mut old: Vec<&Value> = owned.iter().filter(|rs| name_of(rs) != rs_name).collect();
        old.sort_by_key(|rs| revision_of(rs));
        let excess = old.len().saturating_sub(limit);
        for rs in old.into_iter().take(excess) {
            match history
                .delete(&ctx, Some(ns), name_of(rs), &DeletePreconditions::default())
                .await
            {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn after_write(&self, ctx: &RequestContext, obj: &Value) {
        if self.kind != WorkloadKind::Deployment || ctx.dry_run {
            return;
        }
        if let Err(e) = self.record_revision(obj).await {
            tracing::warn!(deployment = name_of(obj), error = %e, "recording the revision failed");
        }
    }
}

moor_apimachinery::forward_reads! {
    impl RestStorage for WorkloadStorage => inner {
        async fn create(
            &self,
            ctx: &RequestContext,
            ns: Option<&str>,
            mut obj: Value,
        ) -> Result<Value, ApiError> {
            let namespace = ns.unwrap_or("default");
            if let Some(w) = typed(self.kind, &obj) {
                let names = candidate_streams(&w);
                if !names.is_empty() {
                    let streams = crate::apiserver::resources::image::reads::named_streams(
                        self.streams.as_ref(),
                        namespace,
                        &names,
                    )
                    .await?;
                    self.resolve(&mut obj, None, namespace, &streams)?;
                }
            }
            let created = self.inner.create(ctx, ns, obj).await?;
            self.after_write(ctx, &created).await;
            Ok(created)
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
            if subresource.is_some() {
                return self
                    .inner
                    .update(ctx, ns, name, subresource, update, create_if_missing)
                    .await;
            }
            let namespace = ns.unwrap_or("default");
            // The step below is synchronous; the namespace's streams are read first.
            let streams = crate::apiserver::resources::image::reads::namespace_streams(
                self.streams.as_ref(),
                namespace,
            )
            .await?;
            let step = |cur: Option<&Value>| -> Result<Value, ApiError> {
                let mut new = update(cur)?;
                self.resolve(&mut new, cur, namespace, &streams)?;
                // Managed fields were recorded before the resolver ran: a short name that
                // resolves to the image already stored is no change, not a new owner entry.
                if let Some(cur) = cur
                    && same_but_bookkeeping(&new, cur)
                    && let Some(mf) = cur.pointer("/metadata/managedFields")
                {
                    new["metadata"]["managedFields"] = mf.clone();
                }
                Ok(new)
            };
            let (out, created) = self
                .inner
                .update(ctx, ns, name, None, &step, create_if_missing)
                .await?;
            self.after_write(ctx, &out).await;
            Ok((out, created))
        }
        async fn delete(
            &self,
            ctx: &RequestContext,
            ns: Option<&str>,
            name: &str,
            pre: &DeletePreconditions,
        ) -> Result<Value, ApiError> {
            let out = self.inner.delete(ctx, ns, name, pre).await?;
            // Deleting a Deployment deletes its ReplicaSets (Kubernetes' garbage collector).
            if let (Some(history), Some(uid), false) = (
                &self.history,
                out.pointer("/metadata/uid").and_then(Value::as_str),
                ctx.dry_run,
            ) {
                let owned = history.list(ctx, ns, &ListOptions::default()).await?.items;
                for rs in owned.iter().filter(|rs| controlled_by(rs, uid)) {
                    match history
                        .delete(ctx, ns, name_of(rs), &DeletePreconditions::default())
                        .await
                    {
                        Ok(_) | Err(ApiError::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok(out)
        }
    }
}
