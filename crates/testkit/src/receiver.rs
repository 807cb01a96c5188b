//! A notification receiver on loopback: an axum server that records every POST
//! (headers and JSON body) and answers 200, or 503 while turned down. Stops on drop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::{Mutex, Notify};

/// One POST received.
#[derive(Clone, Debug)]
pub struct Received {
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body, as sent.
    pub body: Bytes,
    /// Its body as JSON (`Null` when it is not JSON).
    pub json: Value,
    /// When it arrived.
    pub at: std::time::Instant,
}

#[derive(Default)]
struct Shared {
    up: AtomicBool,
    received: Mutex<Vec<Received>>,
    refused: Mutex<usize>,
    arrived: Notify,
}

/// The receiver; `url` is where to POST.
pub struct Receiver {
    /// `http://127.0.0.1:PORT/hook`.
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

async fn hook(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let at = std::time::Instant::now();
    if !shared.up.load(Ordering::SeqCst) {
        *shared.refused.lock().await += 1;
        shared.arrived.notify_waiters();
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.received.lock().await.push(Received {
        headers,
        body,
        json,
        at,
    });
    shared.arrived.notify_waiters();
    StatusCode::OK
}

impl Receiver {
    /// A receiver that accepts (up).
    pub async fn start() -> Receiver {
        let shared = Arc::new(Shared::default());
        shared.up.store(true, Ordering::SeqCst);
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the receiver");
        let addr: SocketAddr = listener.local_addr().expect("receiver address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}/hook"),
            shared,
            task,
        }
    }

    /// Answers 503 (down) or 200 (up) from now on.
    pub fn set_up(&self, up: bool) {
        self.shared.up.store(up, Ordering::SeqCst);
    }

    /// What was accepted so far.
    pub async fn received(&self) -> Vec<Received> {
        self.shared.received.lock().await.clone()
    }

    /// How many POSTs were refused (while down).
    pub async fn refused(&self) -> usize {
        *self.shared.refused.lock().await
    }

    /// Waits until `done` holds of what was accepted and the refused count; panics
    /// after `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[Received], usize) -> bool,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let got = self.received().await;
            if done(&got, self.refused().await) {
                return got;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let got = self.received().await;
                panic!(
                    "the receiver did not get what was expected in {timeout:?}: {} accepted, {} refused: {:#?}",
                    got.len(),
                    self.refused().await,
                    got.iter().map(|r| &r.json).collect::<Vec<_>>()
                );
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
