//! core/v1 ServiceAccounts and their `token` subresource (TokenRequest), and the
//! `default` ServiceAccount every namespace gets (kube's serviceaccounts
//! controller): made with the namespace ([`DefaultServiceAccount`]) and, for namespaces
//! that exist already, at start ([`ensure_default_service_accounts`]).
//!
//! Calls the generic stored resource and the token minter in
//! [`crate::auth::serviceaccount`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use moor_api::validation::{FieldError, is_dns1123_label};
use moor_apimachinery::admission::{Admitted, WriteAdmission};
use serde_json::{Value, json};

use crate::auth::serviceaccount::ServiceAccountTokens;
use moor_apimachinery::codec::decode_as;
use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::*;
use moor_apimachinery::stored::Strategy;
use moor_apimachinery::table::{Column, TableDef, age_column, age_of, name_column, name_of};

/// The ServiceAccount every namespace has.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// The shortest lifetime a TokenRequest may ask for (kube: 10 minutes).
const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The lifetime of a token whose request names none (kube: one hour).
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The longest lifetime a request may name at all (kube: 2^32 seconds).
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

/// ServiceAccounts: namespaced, short name `sa`, subresource `token`.
pub struct ServiceAccounts(ResourceDef);

impl ServiceAccounts {
    /// The ServiceAccounts strategy.
    pub fn new() -> Arc<Self> {
        Arc::new(ServiceAccounts(ResourceDef {
            group: "",
            version: "v1",
            kind: "ServiceAccount",
            list_kind: "ServiceAccountList",
            plural: "serviceaccounts",
            singular: "serviceaccount",
            short_names: &["sa"],
            categories: &[],
            namespaced: true,
            verbs: ALL_VERBS,
            subresources: &["token"],
            selectable_fields: &[],
        }))
    }
}

impl Strategy for ServiceAccounts {
    fn def(&self) -> &ResourceDef {
        &self.0
    }
    fn decode(&self, body: Value) -> Result<(Value, Vec<String>), String> {
        decode_as::<ServiceAccount>(body)
    }
    fn table(&self) -> TableDef {
        TableDef {
            columns: vec![
                name_column(),
                Column {
                    name: "Secrets",
                    kind: "string",
                    format: "",
                    description: "The number of secrets of the service account",
                    priority: 0,
                },
                age_column(),
            ],
            row: Arc::new(|o| {
                let n = o
                    .get("secrets")
                    .and_then(Value::as_array)
                    .map(Vec::len)
                    .unwrap_or(0);
                vec![json!(name_of(o)), json!(n), json!(age_of(o))]
            }),
        }
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let name = name_of(obj);
        if name.is_empty() {
            return vec![FieldError::required(
                "metadata.name",
                "name or generateName is required",
            )];
        }
        dns1123_subdomain(name)
            .into_iter()
            .map(|r| FieldError::invalid("metadata.name", name, r))
            .collect()
    }
}

/// Why `name` is not a DNS-1123 subdomain (kube's ServiceAccount name rule): at most
/// 253 characters, dot-separated lowercase labels.
fn dns1123_subdomain(name: &str) -> Vec<String> {
    if name.len() > 253 {
        return vec!["must be no more than 253 characters".into()];
    }
    name.split('.').flat_map(is_dns1123_label).take(1).collect()
}

/// ServiceAccounts as served: the stored resource plus the `token` subresource.
pub struct ServiceAccountStorage {
    inner: Arc<dyn RestStorage>,
    tokens: Option<Arc<ServiceAccountTokens>>,
}

impl ServiceAccountStorage {
    /// `inner` (the stored ServiceAccounts) with tokens minted by `tokens` (none: the
    /// `token` subresource answers 503).
    pub fn new(inner: Arc<dyn RestStorage>, tokens: Option<Arc<ServiceAccountTokens>>) -> Self {
        ServiceAccountStorage { inner, tokens }
    }

    /// `POST serviceaccounts/NAME/token`.
    async fn token(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        name: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let tokens = self.tokens.as_ref().ok_or_else(|| {
            ApiError::internal_message("service account tokens are not configured")
        })?;
        let (req, unknown) = decode_as::<TokenRequest>(body).map_err(ApiError::BadRequest)?;
        if !unknown.is_empty() && ctx.field_validation == FieldValidation::Strict {
            return Err(ApiError::BadRequest(format!(
                "strict decoding error: unknown field {}",
                unknown
                    .iter()
                    .map(|f| format!("{f:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if req
            .pointer("/spec/boundObjectRef")
            .is_some_and(|v| !v.is_null())
        {
            return Err(ApiError::BadRequest(
                "spec.boundObjectRef: bound tokens are not supported by this server".into(),
            ));
        }
        let gr = moor_apimachinery::resource::GroupResource::new(
            "authentication.k8s.io",
            "tokenrequests",
        );
        let expiration = match req.pointer("/spec/expirationSeconds") {
            None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
            Some(v) => v.as_i64().unwrap_or(0),
        };
        let too_short = expiration < MIN_EXPIRATION_SECONDS;
        if too_short || expiration > MAX_EXPIRATION_SECONDS {
            let why = if too_short {
                "may not specify a duration less than 10 minutes"
            } else {
                "may not specify a duration larger than 2^32 seconds"
            };
            return Err(ApiError::invalid(
                &gr,
                "TokenRequest",
                name,
                &[FieldError::invalid_literal(
                    "spec.expirationSeconds",
                    expiration,
                    why,
                )],
            ));
        }
        let audiences: Vec<String> = req
            .pointer("/spec/audiences")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let sa = self.inner.get(ctx, ns, name).await?;
        let namespace = ns.unwrap_or("default");
        let uid = sa
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let minted = tokens
            .mint(
                namespace,
                name,
                uid,
                &audiences,
                Duration::from_secs(expiration.unsigned_abs()),
            )
            .map_err(ApiError::internal)?;
        let audiences = if audiences.is_empty() {
            tokens.api_audiences().to_vec()
        } else {
            audiences
        };
        Ok(json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "creationTimestamp": moor_apimachinery::stored::now_rfc3339(),
            },
            "spec": {
                "audiences": audiences,
                "expirationSeconds": expiration,
                "boundObjectRef": null,
            },
            "status": {
                "token": minted.token,
                "expirationTimestamp": minted.expiration.to_string(),
            },
        }))
    }
}

moor_apimachinery::forward_reads! {
    impl RestStorage for ServiceAccountStorage => inner {
        async fn create(
            &self,
            ctx: &RequestContext,
            ns: Option<&str>,
            obj: Value,
        ) -> Result<Value, ApiError> {
            self.inner.create(ctx, ns, obj).await
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
                return Err(ApiError::MethodNotAllowed);
            }
            self.inner
                .update(ctx, ns, name, subresource, update, create_if_missing)
                .await
        }
        async fn delete(
            &self,
            ctx: &RequestContext,
            ns: Option<&str>,
            name: &str,
            pre: &DeletePreconditions,
        ) -> Result<Value, ApiError> {
            self.inner.delete(ctx, ns, name, pre).await
        }
        async fn create_subresource(
            &self,
            ctx: &RequestContext,
            ns: Option<&str>,
            name: &str,
            subresource: &str,
            body: Value,
        ) -> Result<Value, ApiError> {
            match subresource {
                "token" => self.token(ctx, ns, name, body).await,
                _ => Err(ApiError::MethodNotAllowed),
            }
        }
    }
}

/// Creates the `default` ServiceAccount in `namespace` unless it exists.
pub async fn ensure_default_service_account(
    service_accounts: &dyn RestStorage,
    namespace: &str,
) -> Result<(), ApiError> {
    let ctx = RequestContext::default();
    let obj = json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": namespace},
    });
    match service_accounts.create(&ctx, Some(namespace), obj).await {
        Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
        // The namespace went away meanwhile: nothing to do.
        Err(ApiError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Gives every existing namespace its `default` ServiceAccount (at start).
pub async fn ensure_default_service_accounts(
    namespaces: &dyn RestStorage,
    service_accounts: &dyn RestStorage,
) -> Result<(), ApiError> {
    let ctx = RequestContext::default();
    let mut opts = ListOptions::default();
    loop {
        let page = namespaces.list(&ctx, None, &opts).await?;
        for ns in &page.items {
            ensure_default_service_account(service_accounts, name_of(ns)).await?;
        }
        match page.continue_token {
            Some(c) if !c.is_empty() => opts.continue_token = Some(c),
            _ => return Ok(()),
        }
    }
}

/// Namespaces as served: creating one also creates its `default` ServiceAccount.
pub struct DefaultServiceAccount {
    service_accounts: Arc<dyn RestStorage>,
}

impl DefaultServiceAccount {
    /// The namespaces `inner` serves, adding ServiceAccounts to `service_accounts`.
    pub fn wrap(
        inner: Arc<dyn RestStorage>,
        service_accounts: Arc<dyn RestStorage>,
    ) -> Arc<dyn RestStorage> {
        Admitted::wrap(inner, DefaultServiceAccount { service_accounts })
    }
}

#[async_trait]
impl WriteAdmission for DefaultServiceAccount {
    async fn after_write(
        &self,
        ctx: &RequestContext,
        written: &Value,
        created: bool,
    ) -> Result<(), ApiError> {
        if created && !ctx.dry_run {
            ensure_default_service_account(self.service_accounts.as_ref(), name_of(written))
                .await?;
        }
        Ok(())
    }
}
