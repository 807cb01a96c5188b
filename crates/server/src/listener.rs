//! The listener's connection-level defences: a bound on open connections, and a
//! Kubernetes `Status` body on the answers hyper gives before any service sees the
//! request (414, 431). The timeouts themselves are hyper's and axum_server's, set in
//! [`serve`](crate::serve). Calls tokio and axum_server only.

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum_server::accept::Accept;
use axum_server::{AddrListener, Address};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The peer address of a connection accepted by a [`BoundedListener`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// The peer's address as axum's `ConnectInfo<SocketAddr>` (the audit log's source IP).
impl axum::extract::connect_info::Connected<Peer> for SocketAddr {
    fn connect_info(peer: Peer) -> SocketAddr {
        peer.0
    }
}

impl Address for Peer {
    type Stream = BoundedStream;
    type Listener = BoundedListener;
}

/// A TCP listener that holds at most `max` connections open: beyond that, `accept`
/// waits (new connections queue in the kernel's backlog and take no descriptor)
/// until one closes.
///
/// Hand-written because neither axum_server nor hyper-util bounds connections, and
/// tower's `ConcurrencyLimit` bounds requests, not connections: an idle or slow
/// connection holds a descriptor but no request.
#[derive(Debug)]
pub struct BoundedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
}

impl BoundedListener {
    /// Wraps `inner`, allowing `max` (at least 1) open connections.
    pub fn new(inner: TcpListener, max: usize) -> Self {
        BoundedListener {
            inner,
            permits: Arc::new(Semaphore::new(max.max(1))),
        }
    }
}

impl AddrListener<BoundedStream, Peer> for BoundedListener {
    async fn bind_to(addr: Peer) -> io::Result<Self> {
        Err(io::Error::other(format!(
            "a bounded listener wraps a bound socket; {} was not bound",
            addr.0
        )))
    }

    async fn accept_stream(&self) -> io::Result<(BoundedStream, Peer)> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(io::Error::other)?;
        let (inner, addr) = self.inner.accept().await?;
        no_delay(&inner);
        Ok((
            BoundedStream {
                inner,
                _permit: permit,
            },
            Peer(addr),
        ))
    }

    fn get_local_addr(&self) -> io::Result<Peer> {
        self.inner.local_addr().map(Peer)
    }
}

/// An accepted connection; closing it frees its place in the bound.
/// Turns Nagle's algorithm off on an accepted connection, as Go's net/http and nginx
/// (`tcp_nodelay on`) do: with it on, a response written in two pieces (a TLS
/// record after the handshake's tickets, a body after its head) waits for the
/// client's delayed ACK, up to 40 ms on Linux. A socket that refuses the option still
/// works, only slower, so a failure is logged rather than ending the connection.
fn no_delay(stream: &TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY not set on an accepted connection");
    }
}

#[derive(Debug)]
pub struct BoundedStream {
    inner: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for BoundedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for BoundedStream {
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
        bufs: &[IoSlice<'_>],
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

/// An acceptor that gives hyper's own error answers a `Status` body (see
/// [`StatusBodyIo`]), around `inner` (plain or TLS).
#[derive(Clone, Debug)]
pub struct StatusBodies<A> {
    inner: A,
}

impl<A> StatusBodies<A> {
    /// Wraps `inner`.
    pub fn new(inner: A) -> Self {
        StatusBodies { inner }
    }
}

impl<A, I, S> Accept<I, S> for StatusBodies<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
{
    type Stream = StatusBodyIo<A::Stream>;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let accepted = self.inner.accept(stream, service);
        Box::pin(async move {
            let (io, service) = accepted.await?;
            Ok((StatusBodyIo::new(io), service))
        })
    }
}

/// Hyper answers a request line longer than 64 KiB (the `http` crate's URI limit)
/// with a bodiless `414`, and headers over its buffer with a bodiless `431`, before
/// any service sees the request; it has no hook for the body. This writer replaces
/// such an answer with the same status and a Kubernetes `Status` body, so clients
/// learn why. moor's handlers never answer 414 or 431 themselves, so a response head
/// with those statuses is always hyper's. Hand-written for want of a hook in hyper.
#[derive(Debug)]
pub struct StatusBodyIo<T> {
    inner: T,
    pending: Vec<u8>,
    written: usize,
}

impl<T> StatusBodyIo<T> {
    fn new(inner: T) -> Self {
        StatusBodyIo {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }
}

/// The replacement for a response head hyper wrote on its own, if `head` is one.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let (code, reason, message) = if head.starts_with(b"HTTP/1.1 414 ") {
        (
            414,
            "URI Too Long",
            "the request URI is longer than the server accepts (64 KiB)",
        )
    } else if head.starts_with(b"HTTP/1.1 431 ") {
        (
            431,
            "Request Header Fields Too Large",
            "the request headers are larger than the server accepts",
        )
    } else {
        return None;
    };
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "BadRequest",
        "code": code,
    })
    .to_string();
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    Some(out)
}

impl<T: AsyncWrite + Unpin> StatusBodyIo<T> {
    /// Writes out a pending replacement.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending = Vec::new();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StatusBodyIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StatusBodyIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        if let Some(r) = replacement(buf) {
            this.pending = r;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        if let Some(r) = bufs
            .iter()
            .find(|b| !b.is_empty())
            .and_then(|b| replacement(b))
        {
            this.pending = r;
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_do_not_wait_for_acks() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let bounded = BoundedListener::new(listener, 4);
        let client = tokio::spawn(TcpStream::connect(addr));
        let (stream, _) = bounded.accept_stream().await.expect("accept");
        assert!(stream.inner.nodelay().expect("TCP_NODELAY readable"));
        drop(client.await);
    }

    #[test]
    fn only_hyper_statuses_are_replaced() {
        let r = replacement(b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n")
            .expect("414 is replaced");
        let text = String::from_utf8(r).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.starts_with("HTTP/1.1 414 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let status: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["code"], 414);
        assert!(replacement(b"HTTP/1.1 431 Request Header Fields Too Large\r\n").is_some());
        assert!(replacement(b"HTTP/1.1 400 Bad Request\r\n").is_none());
        assert!(replacement(b"HTTP/1.1 200 OK\r\n").is_none());
    }
}
