//! Validating admission in small: [`Admitted`] wraps a storage and asks a
//! [`WriteAdmission`] about every object before it is written (create, update, and
//! the object an update step produced), and about every delete and subresource
//! create, and tells it after each write. Reads and watches pass through. The composition root wraps the served storages;
//! in-process callers keep the storages underneath.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::ApiError;
use crate::patch::MergeKeys;
use crate::resource::*;
use crate::table::TableDef;

/// A check of writes, with the request's user in `ctx`.
#[async_trait]
pub trait WriteAdmission: Send + Sync + 'static {
    /// May `new` be written in `ns` (replacing `old`; `None` on create)? Called for
    /// writes of the main resource and of `subresource`. The default admits.
    fn admit(
        &self,
        _ctx: &RequestContext,
        _ns: Option<&str>,
        _subresource: Option<&str>,
        _new: &Value,
        _old: Option<&Value>,
    ) -> Result<(), ApiError> {
        Ok(())
    }
    /// May `name` in `ns` be deleted, or its `subresource` created (writes with no
    /// object of this resource to admit)? The default admits.
    fn admit_other(
        &self,
        _ctx: &RequestContext,
        _ns: Option<&str>,
        _name: &str,
        _subresource: Option<&str>,
    ) -> Result<(), ApiError> {
        Ok(())
    }
    /// Whether [`prepare`](Self::prepare) has work for this request; an update then
    /// costs a read of the current object and a dry run of its step. The default: no.
    fn prepares(&self, _ctx: &RequestContext) -> bool {
        false
    }
    /// Before a write of the main resource, asynchronous work that the sync
    /// [`admit`](Self::admit) (inside the update step) relies on, such as filling a
    /// delegated authorizer's cache: `new` is the object to create, or what the update
    /// step makes of the current `old`. Its outcome is not checked here; `admit` is.
    async fn prepare(
        &self,
        _ctx: &RequestContext,
        _ns: Option<&str>,
        _new: &Value,
        _old: Option<&Value>,
    ) {
    }
    /// After a create or update wrote `written` (`created`: the object is new); an
    /// error is the request's answer (the write stays).
    async fn after_write(
        &self,
        _ctx: &RequestContext,
        _written: &Value,
        _created: bool,
    ) -> Result<(), ApiError> {
        Ok(())
    }
    /// After a delete removed `gone`.
    async fn after_delete(&self, _gone: &Value) {}
}

/// `inner` with its writes admitted by `admission`.
pub struct Admitted<A> {
    inner: Arc<dyn RestStorage>,
    admission: A,
}

impl<A: WriteAdmission> Admitted<A> {
    /// Wraps `inner`.
    pub fn wrap(inner: Arc<dyn RestStorage>, admission: A) -> Arc<dyn RestStorage> {
        Arc::new(Admitted { inner, admission })
    }
}

#[async_trait]
impl<A: WriteAdmission> RestStorage for Admitted<A> {
    fn def(&self) -> &ResourceDef {
        self.inner.def()
    }
    fn table(&self) -> TableDef {
        self.inner.table()
    }
    fn decode(&self, body: Value) -> Result<(Value, Vec<String>), ApiError> {
        self.inner.decode(body)
    }
    fn merge_keys(&self) -> MergeKeys {
        self.inner.merge_keys()
    }
    async fn get(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.inner.get(ctx, ns, name).await
    }
    async fn list(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ObjectList, ApiError> {
        self.inner.list(ctx, ns, opts).await
    }
    async fn list_encoded(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<EncodedList, ApiError> {
        self.inner.list_encoded(ctx, ns, opts).await
    }
    async fn list_streamed(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<StreamedList, ApiError> {
        self.inner.list_streamed(ctx, ns, opts).await
    }
    async fn get_at(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        name: &str,
        resource_version: Option<&str>,
    ) -> Result<Value, ApiError> {
        self.inner.get_at(ctx, ns, name, resource_version).await
    }
    async fn create(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        obj: Value,
    ) -> Result<Value, ApiError> {
        if self.admission.prepares(ctx) {
            self.admission.prepare(ctx, ns, &obj, None).await;
        }
        self.admission.admit(ctx, ns, None, &obj, None)?;
        let written = self.inner.create(ctx, ns, obj).await?;
        self.admission.after_write(ctx, &written, true).await?;
        Ok(written)
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
        if subresource.is_none() && self.admission.prepares(ctx) {
            // The update step is pure, so running it on the current object predicts
            // what will be written (a conflict retry may differ; `admit` decides).
            let old = self.inner.get(ctx, ns, name).await.ok();
            if let Ok(new) = update(old.as_ref()) {
                self.admission.prepare(ctx, ns, &new, old.as_ref()).await;
            }
        }
        let admitted = |old: Option<&Value>| {
            let new = update(old)?;
            self.admission.admit(ctx, ns, subresource, &new, old)?;
            Ok(new)
        };
        let (written, created) = self
            .inner
            .update(ctx, ns, name, subresource, &admitted, create_if_missing)
            .await?;
        self.admission.after_write(ctx, &written, created).await?;
        Ok((written, created))
    }
    async fn delete(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        name: &str,
        pre: &DeletePreconditions,
    ) -> Result<Value, ApiError> {
        self.admission.admit_other(ctx, ns, name, None)?;
        let gone = self.inner.delete(ctx, ns, name, pre).await?;
        self.admission.after_delete(&gone).await;
        Ok(gone)
    }
    async fn create_subresource(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        name: &str,
        subresource: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        self.admission
            .admit_other(ctx, ns, name, Some(subresource))?;
        self.inner
            .create_subresource(ctx, ns, name, subresource, body)
            .await
    }
    async fn watch(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<WatchEvents, ApiError> {
        self.inner.watch(ctx, ns, opts).await
    }

    async fn watch_stored(
        &self,
        ns: Option<&str>,
        resource_version: &str,
    ) -> Result<StoredEvents, ApiError> {
        self.inner.watch_stored(ns, resource_version).await
    }
}
