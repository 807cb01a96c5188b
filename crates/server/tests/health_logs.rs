//! Health probes while the server starts: `/readyz` answers 503 until startup is done,
//! and that answer is logged at debug, not as an ERROR line (a log a user reads at
//! every start). Other 5xx answers are still errors.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use moor_server::apiserver::ApiConfig;
use moor_server::auth::AuthLayer;
use moor_server::metrics::Metrics;
use moor_server::{AppState, app};
use moor_store::MemoryStore;
use moor_testkit::server::{NoRegistry, TOKEN};
use tower::ServiceExt;

#[tokio::test(flavor = "current_thread")]
async fn readyz_while_starting_logs_at_debug_not_error() {
    let (lines, _guard) = moor_testkit::logs::capture(tracing::Level::DEBUG, false);

    let config = ApiConfig {
        registry_hostname: "registry.test:5000".into(),
        server_address: "127.0.0.1:0".into(),
        serving: Default::default(),
        max_images_bulk: 3,
        service_account_tokens: None,
    };
    let store: Arc<dyn moor_store::Store> = Arc::new(MemoryStore::new());
    let api = moor_server::apiserver::Resources::new(store.clone(), &config, Arc::new(NoRegistry))
        .into_server(store, &config);
    let router = app(AppState {
        api,
        auth: AuthLayer::admin_only(TOKEN),
        metrics: Metrics::new(),
        ready: Arc::new(AtomicBool::new(false)),
        registry: None,
        audit: Default::default(),
        leadership: None,
        console: Default::default(),
    });
    let resp = router
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let text = lines.text();
    assert!(
        text.contains("DEBUG") && text.contains("503"),
        "the 503 is logged at debug:\n{text}"
    );
    assert!(!text.contains("ERROR"), "no ERROR line:\n{text}");
}
