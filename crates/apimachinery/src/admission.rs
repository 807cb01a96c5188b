//! Validating admission in small: [`Admitted`] wraps a storage and asks a
//! [`WriteAdmission`] about every object before it is written (create, update, and
//! the object an update step produced), and about every delete and subresource
//! create, and tells it after each write. Reads and watches pass through. The composition root wraps the served storages;
//! in-process callers keep the storages underneath.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::ApiError;
use crate::resource::*;

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

crate::forward_reads! {
    impl<A: WriteAdmission> RestStorage for Admitted<A> => inner {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use serde_json::json;

    static DEF: ResourceDef = ResourceDef {
        group: "test.moor.io",
        version: "v1",
        kind: "Thing",
        list_kind: "ThingList",
        plural: "things",
        singular: "thing",
        short_names: &[],
        categories: &[],
        namespaced: false,
        verbs: &[],
        subresources: &[],
        selectable_fields: &[],
    };

    /// A storage whose read paths beyond `get`/`list` answer differently from the
    /// trait's defaults, so a wrapper that fell back to a default is seen.
    struct Reads;

    #[async_trait]
    impl RestStorage for Reads {
        fn def(&self) -> &ResourceDef {
            &DEF
        }
        fn table(&self) -> crate::table::TableDef {
            crate::table::TableDef::default_columns()
        }
        async fn get_at(
            &self,
            _ctx: &RequestContext,
            _ns: Option<&str>,
            _name: &str,
            resource_version: Option<&str>,
        ) -> Result<Value, ApiError> {
            Ok(json!({ "at": resource_version }))
        }
        async fn get_stored(
            &self,
            _ns: Option<&str>,
            _name: &str,
        ) -> Result<Option<moor_store::KeyValue>, ApiError> {
            Ok(None)
        }
        async fn list_streamed(
            &self,
            _ctx: &RequestContext,
            _ns: Option<&str>,
            _opts: &ListOptions,
        ) -> Result<StreamedList, ApiError> {
            Ok(StreamedList {
                resource_version: "7".into(),
                continue_token: None,
                items: futures::stream::iter([Ok("{}".into()), Ok(",{}".into())]).boxed(),
            })
        }
        async fn watch_stored(
            &self,
            _ns: Option<&str>,
            _resource_version: &str,
        ) -> Result<StoredEvents, ApiError> {
            Ok(futures::stream::empty().boxed())
        }
    }

    struct Nothing;
    impl WriteAdmission for Nothing {}

    #[tokio::test]
    async fn the_admitted_wrapper_forwards_every_read_path() {
        let wrapped = Admitted::wrap(Arc::new(Reads), Nothing);
        let ctx = RequestContext::default();
        let at = wrapped.get_at(&ctx, None, "a", Some("0")).await.unwrap();
        assert_eq!(at, json!({ "at": "0" }));
        let list = wrapped
            .list_streamed(&ctx, None, &ListOptions::default())
            .await
            .unwrap();
        assert_eq!(
            list.items.count().await,
            2,
            "streamed, not re-encoded in one piece"
        );
        assert!(wrapped.watch_stored(None, "0").await.is_ok());
        assert!(matches!(wrapped.get_stored(None, "a").await, Ok(None)));
    }
}
