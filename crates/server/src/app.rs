//! The one router: `app(state)` is what `moor serve` runs and what in-process tests
//! call. Wires the API server, authentication, metrics and health endpoints, and, when
//! the registry runs, `/v2/` (its `imageprunes` resource is registered with the API
//! server by the composition root), and the web console under `/console/`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::get;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::auth::{self, AuthLayer};
use crate::metrics::{self, Metrics};
use moor_apimachinery::ApiServer;

/// Everything the router serves.
#[derive(Clone)]
pub struct AppState {
    pub api: Arc<ApiServer>,
    pub auth: AuthLayer,
    pub metrics: Arc<Metrics>,
    /// Set once startup finished (the kubeconfig is written); `/readyz` answers 200 after.
    pub ready: Arc<AtomicBool>,
    /// The integrated registry under `/v2/` (`None`: API only).
    pub registry: Option<Arc<crate::registry::Registry>>,
    /// The audit log (disabled by default).
    pub audit: crate::audit::Audit,
    /// Who leads the controllers, shown by `/readyz?verbose` (`None`: not shown).
    pub leadership: Option<Arc<dyn crate::scheduler::Leadership>>,
    /// The console's OIDC login and cluster (default: neither).
    pub console: crate::console::Setup,
}

/// The whole HTTP surface of moor.
pub fn app(state: AppState) -> Router {
    let protected = moor_apimachinery::router(state.api.clone()).merge(
        Router::new()
            .route("/metrics", get(metrics::serve))
            .with_state(state.metrics.clone()),
    );
    let protected = protected.layer(middleware::from_fn_with_state(
        state.auth.clone(),
        auth::require_auth,
    ));
    // Health probes answer 503 while the server starts (and kubelets and tests poll
    // them): a 5xx of theirs is logged at debug, not as an ERROR.
    let health = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state.clone())
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .layer(
            TraceLayer::new_for_http()
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        );
    let open = Router::new()
        .route(
            "/version",
            get(|| async { axum::Json(moor_apimachinery::discovery::version()) }),
        )
        .merge(crate::lookup::admission::router(state.api.clone()).layer(
            middleware::from_fn_with_state(state.auth.clone(), auth::require_admission_caller),
        ));
    let open = match &state.registry {
        Some(r) => open.merge(crate::registry::router(r.clone())),
        None => open,
    };
    let rest = open
        .merge(protected)
        // Outside the API's and the registry's authentication: refusals are audited too.
        .layer(middleware::from_fn_with_state(
            state.audit.clone(),
            crate::audit::record,
        ))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .layer(TraceLayer::new_for_http());
    health.merge(console(&state, &rest)).merge(rest)
}

/// The web console under `/console/`, calling the API (`rest`, with its
/// authentication and audit) as each signed-in user.
fn console(state: &AppState, rest: &Router) -> Router {
    crate::console::router(rest.clone(), state.api.clone(), state.console.clone())
        .layer(TraceLayer::new_for_http())
}

/// `/readyz`: `ok` once started and while the store answers. With `?verbose`, kube's
/// check list, plus this replica's part in the leader election (a follower is ready:
/// it serves the API and the registry).
async fn readyz(
    State(state): State<AppState>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> impl IntoResponse {
    if !state.ready.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready: starting").into_response();
    }
    let verbose = query.as_deref().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "verbose" || p.starts_with("verbose="))
    });
    let store = state.api.store.current_revision().await;
    if !verbose {
        return match store {
            Ok(_) => (StatusCode::OK, "ok").into_response(),
            Err(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: store: {e}"),
            )
                .into_response(),
        };
    }
    let mut body = String::from("[+]ping ok\n");
    let code = match &store {
        Ok(_) => {
            body.push_str("[+]store ok\n");
            StatusCode::OK
        }
        Err(e) => {
            body.push_str(&format!("[-]store failed: {e}\n"));
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    if let Some(leadership) = &state.leadership {
        body.push_str(&format!(
            "[+]leader-election ok: {}\n",
            leadership.describe()
        ));
    }
    body.push_str(if code == StatusCode::OK {
        "readyz check passed\n"
    } else {
        "readyz check failed\n"
    });
    (code, body).into_response()
}
