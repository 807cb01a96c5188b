//! The web console at `/console/`: server-rendered HTML pages over the image API, a
//! token login with server-side sessions, confirmed actions, and live updates over
//! server-sent events.
//!
//! Every page and action goes through the API as the signed-in user: the handlers send
//! requests with the session's bearer token through the same router `app()` serves
//! (tower `oneshot`), so authentication, RBAC (or cluster mode's delegated
//! authorization), admission, validation and audit are exactly the API's, and a refusal
//! shows the API's `Status` message. The one exception is the list of namespace
//! *names* offered to a user who may not list namespaces: those are read from the store
//! and shown only where a SelfSubjectAccessReview says the user may list streams.
//!
//! Markup is written with `maud`: templates are Rust expressions checked at compile
//! time, escaping is on by default, and there are no template files or build step
//! (askama would add template files and a derive per page for no gain here). htmx
//! and its SSE extension are vendored (static/, with their license header) and served
//! under a content-hashed URL with a year-long cache lifetime; nothing needs JS to be
//! read, and every action is a plain form POST, asked for on a confirmation page first.
//!
//! Sessions are kept in the store and pending OIDC logins are sealed under a key the
//! replicas share, so any replica on one store serves both ([`session`], [`oidc`]). In cluster mode, what moor does not serve
//! (namespaces, workloads, self-reviews) is asked of the cluster with the user's own
//! token ([`client`]).
//!
//! May call the API router it is given, the store (namespace names, sessions), the OIDC issuers, the cluster's API server and `moor-api`'s types.

mod actions;
mod client;
mod image;
mod live;
pub mod oidc;
mod pages;
mod public_url;
mod refresh;
mod session;
mod stream;
mod timeline;
mod workloads;

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use moor_apimachinery::ApiServer;
use sha2::{Digest as _, Sha256};

pub use public_url::{ConsoleUrl, ConsoleUrlError};
pub use session::Sessions;

/// What can go wrong serving a console page.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The API refused or failed: its HTTP status and `Status` message.
    #[error("{message}")]
    Api { status: StatusCode, message: String },
    /// The API answered with a body that is not what it should be.
    #[error("the API answered with an unexpected body: {0}")]
    Decode(#[source] serde_json::Error),
    /// Reading the API's answer failed.
    #[error("reading the API's answer: {0}")]
    Body(#[source] axum::Error),
    /// The store failed (listing namespace names).
    #[error("store: {0}")]
    Store(#[source] moor_store::StoreError),
    /// A request the console cannot act on (a missing or malformed form field).
    #[error("{0}")]
    BadRequest(String),
}

impl ConsoleError {
    /// The HTTP status this error is shown with.
    fn status(&self) -> StatusCode {
        match self {
            ConsoleError::Api { status, .. } => *status,
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

/// The console's shared state.
#[derive(Clone)]
pub struct Console {
    api: client::ApiClient,
    server: Arc<ApiServer>,
    sessions: Arc<Sessions>,
    oidc: Option<Arc<oidc::OidcLogin>>,
    /// `--console-url`: where browsers reach the console, if not what requests say.
    url: Option<ConsoleUrl>,
}

/// What the console is given besides the API: its OIDC login, its public URL and, in
/// cluster mode, the cluster (the default: none of them).
#[derive(Clone, Default)]
pub struct Setup {
    /// OIDC login with `--authentication-config`'s issuers.
    pub oidc: Option<Arc<oidc::OidcLogin>>,
    /// Cluster mode: a client of the cluster's API server without credentials of its
    /// own (see [`crate::auth::cluster::client_without_credentials`]).
    pub cluster: Option<kube::Client>,
    /// `--console-url`: the OIDC `redirect_uri` is built from it, and cookies are
    /// `Secure` when it is https; without it, from the request (`Host`, TLS or not).
    pub url: Option<ConsoleUrl>,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("oidc", &self.oidc.is_some())
            .field("cluster", &self.cluster.is_some())
            .field("url", &self.url)
            .finish()
    }
}

/// The console's routes under `/console`, calling `api` (the API router, with its
/// authentication) as the signed-in user; `server` gives namespace names and the
/// store sessions live in.
pub fn router(api: Router, server: Arc<ApiServer>, setup: Setup) -> Router {
    let console = Console {
        api: client::ApiClient::new(api, setup.cluster),
        sessions: Arc::new(Sessions::new(server.store.clone())),
        server,
        oidc: setup.oidc,
        url: setup.url,
    };
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(pages::namespaces))
        .route(
            "/console/login",
            get(session::login_form).post(session::login),
        )
        .route("/console/logout", post(session::logout))
        .route("/console/oidc/start", get(oidc::start))
        .route("/console/oidc/callback", get(oidc::callback))
        .route("/console/static/{file}", get(asset))
        .route("/console/ns/{ns}/", get(pages::streams))
        .route(
            "/console/ns/{ns}/new",
            get(actions::create_form).post(actions::create),
        )
        .route("/console/ns/{ns}/streams/{name}", get(stream::stream))
        .route(
            "/console/ns/{ns}/streams/{name}/confirm",
            get(actions::confirm),
        )
        .route(
            "/console/ns/{ns}/streams/{name}/move",
            get(actions::move_form),
        )
        .route(
            "/console/ns/{ns}/streams/{name}/actions",
            post(actions::act),
        )
        .route("/console/ns/{ns}/streams/{name}/events", get(live::events))
        .route(
            "/console/ns/{ns}/streams/{name}/images/{digest}",
            get(image::image),
        )
        .layer(axum::middleware::from_fn(refresh::renew_cookie))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(console)
}

/// Headers on every console answer: a content security policy that allows only the
/// console's own scripts and styles, no framing, no sniffing, no referrer.
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// A vendored or own static file, served under a name that carries its content hash.
struct Asset {
    /// The served name, `stem.HASH.ext`.
    name: String,
    body: &'static [u8],
    content_type: &'static str,
}

fn asset_named(stem: &str, ext: &str, body: &'static [u8], content_type: &'static str) -> Asset {
    let hash = hex::encode(&Sha256::digest(body)[..6]);
    Asset {
        name: format!("{stem}.{hash}.{ext}"),
        body,
        content_type,
    }
}

static ASSETS: LazyLock<[Asset; 3]> = LazyLock::new(|| {
    [
        asset_named(
            "console",
            "css",
            include_bytes!("static/console.css"),
            "text/css; charset=utf-8",
        ),
        asset_named(
            "htmx",
            "min.js",
            include_bytes!("static/htmx.min.js"),
            "text/javascript; charset=utf-8",
        ),
        asset_named(
            "htmx-sse",
            "min.js",
            include_bytes!("static/htmx-sse.min.js"),
            "text/javascript; charset=utf-8",
        ),
    ]
});

/// The URL of asset `index` of [`ASSETS`].
fn asset_url(index: usize) -> String {
    format!("/console/static/{}", ASSETS[index].name)
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.content_type),
                // The name changes with the content: cache for a year.
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            a.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

/// One step of the breadcrumb: its text and, unless it is the current page, its link.
pub(crate) struct Crumb {
    text: String,
    href: Option<String>,
}

impl Crumb {
    fn link(text: impl Into<String>, href: impl Into<String>) -> Self {
        Crumb {
            text: text.into(),
            href: Some(href.into()),
        }
    }
    fn here(text: impl Into<String>) -> Self {
        Crumb {
            text: text.into(),
            href: None,
        }
    }
}

/// The page frame: head, a header with the breadcrumb and the signed-in user (with a
/// logout form), and `body` in `main`.
pub(crate) fn layout(
    title: &str,
    who: Option<&session::Current>,
    crumbs: &[Crumb],
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"responseHandling":[{"code":"204","swap":false},{"code":"[2345]..","swap":true}]}"#;
                title { (title) " · moor" }
                link rel="stylesheet" href=(asset_url(0));
                script src=(asset_url(1)) defer {}
                script src=(asset_url(2)) defer {}
            }
            body {
                header {
                    a.brand href="/console/" { "moor" }
                    nav aria-label="Breadcrumb" {
                        ol {
                            @for c in crumbs {
                                li {
                                    @match &c.href {
                                        Some(href) => a href=(href) { (c.text) },
                                        None => span aria-current="page" { (c.text) },
                                    }
                                }
                            }
                        }
                    }
                    @if let Some(who) = who {
                        div.who {
                            span { "Signed in as " strong { (who.user) } }
                            form.inline method="post" action="/console/logout" {
                                input type="hidden" name="csrf" value=(who.csrf);
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main id="main" { (body) }
            }
        }
    }
}

/// An error page: the API's message (or ours) with its status.
pub(crate) fn error_page(who: Option<&session::Current>, err: &ConsoleError) -> Response {
    let status = err.status();
    let page = layout(
        "Error",
        who,
        &[Crumb::link("Namespaces", "/console/"), Crumb::here("Error")],
        html! {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("Error")) }
            p.error role="alert" { (err.to_string()) }
        },
    );
    (status, page).into_response()
}
