//! Closing connections that hold no request: an acceptor wrapper that counts each
//! connection's requests in flight (until its response body is done) and ends the
//! connection once none has been in flight for the idle timeout. HTTP/1 kept-alive
//! connections are already closed by hyper's header-read timeout; this is what bounds
//! an HTTP/2 connection that made one request and then only answers pings. A watch or
//! a long download is a request in flight, so it is never cut. Calls tokio, futures,
//! tower and axum_server only.
//!
//! The close is graceful where it can be: the connection's [`ConnectionShutdown`]
//! (which axum_server puts in every request's extensions) is asked to shut down, so
//! that hyper sends an HTTP/2 `GOAWAY` and the client knows not to send on the
//! connection any more; if it is not gone [`GOAWAY_GRACE`] later (or had no request
//! to take the handle from), its stream reads as ended, which makes hyper drop it.
//!
//! Hand-written because hyper's HTTP/2 server has keep-alive pings but no idle
//! timeout, and neither axum_server nor tower-http offers one per connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use axum_server::ConnectionShutdown;
use axum_server::accept::Accept;
use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// What one connection is doing: requests in flight, and since when it has had none.
#[derive(Debug)]
struct Activity {
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
    /// The connection's reader, woken when its last request finishes so that it arms
    /// the idle timer.
    reader: AtomicWaker,
    /// Shuts the connection down gracefully (taken from its first request).
    shutdown: OnceLock<ConnectionShutdown>,
}

/// How long an idle connection asked to shut down (an HTTP/2 `GOAWAY`) has to be gone
/// before its stream reads as ended.
pub const GOAWAY_GRACE: Duration = Duration::from_secs(5);

impl Activity {
    fn new() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            reader: AtomicWaker::new(),
            shutdown: OnceLock::new(),
        }
    }

    fn idle_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(*self.idle_since.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Counts one request in flight until dropped (with its response body).
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut since = self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            *since = Instant::now();
            drop(since);
            self.0.reader.wake();
        }
    }
}

/// An acceptor that closes connections idle for `timeout`, around `inner`.
#[derive(Clone, Debug)]
pub struct IdleClose<A> {
    inner: A,
    timeout: Duration,
}

impl<A> IdleClose<A> {
    /// Wraps `inner`.
    pub fn new(inner: A, timeout: Duration) -> Self {
        IdleClose { inner, timeout }
    }
}

impl<A, I, S> Accept<I, S> for IdleClose<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
{
    type Stream = IdleIo<A::Stream>;
    type Service = Tracked<A::Service>;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let accepted = self.inner.accept(stream, service);
        let timeout = self.timeout;
        Box::pin(async move {
            let (io, service) = accepted.await?;
            let activity = Arc::new(Activity::new());
            Ok((
                IdleIo {
                    inner: io,
                    activity: activity.clone(),
                    timeout,
                    timer: Box::pin(tokio::time::sleep(timeout)),
                    asked_to_close: None,
                },
                Tracked {
                    inner: service,
                    activity,
                },
            ))
        })
    }
}

/// A connection's service that counts its requests in flight.
#[derive(Clone, Debug)]
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S, B> tower::Service<Request<B>> for Tracked<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if self.activity.shutdown.get().is_none()
            && let Some(shutdown) = req.extensions().get::<ConnectionShutdown>()
        {
            let _ = self.activity.shutdown.set(shutdown.clone());
        }
        let in_flight = InFlight::new(self.activity.clone());
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await?;
            // The request stays in flight until its body is sent (or dropped).
            Ok(response.map(|body| Body::new(TrackedBody { body, in_flight })))
        })
    }
}

/// A response body that keeps its request counted in flight while it lives.
struct TrackedBody {
    body: Body,
    #[allow(dead_code)] // held for its Drop
    in_flight: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A connection's stream that reads as closed once the connection has been idle for
/// the timeout, which makes hyper end it.
pub struct IdleIo<T> {
    inner: T,
    activity: Arc<Activity>,
    timeout: Duration,
    timer: Pin<Box<Sleep>>,
    /// When the connection was asked to shut down for being idle.
    asked_to_close: Option<Instant>,
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Poll::Ready(r) = Pin::new(&mut this.inner).poll_read(cx, buf) {
            return Poll::Ready(r);
        }
        this.activity.reader.register(cx.waker());
        let Some(since) = this.activity.idle_since() else {
            return Poll::Pending;
        };
        let deadline = match this.asked_to_close {
            Some(asked) => asked + GOAWAY_GRACE,
            None => since + this.timeout,
        };
        if this.timer.deadline() != deadline {
            this.timer.as_mut().reset(deadline);
        }
        if this.timer.as_mut().poll(cx).is_ready() && this.activity.idle_since().is_some() {
            match (this.asked_to_close, this.activity.shutdown.get()) {
                (None, Some(shutdown)) => {
                    // A GOAWAY, then hyper closes the connection (woken by the ask).
                    shutdown.graceful_shutdown();
                    let asked = Instant::now();
                    this.asked_to_close = Some(asked);
                    this.timer.as_mut().reset(asked + GOAWAY_GRACE);
                    let _ = this.timer.as_mut().poll(cx);
                }
                // End of stream: hyper drops the connection.
                _ => return Poll::Ready(Ok(())),
            }
        }
        Poll::Pending
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
