//! A TCP proxy that can lose answers: while it holds, requests still reach the
//! upstream (and apply) but its answers wait; `break_all` then closes every connection,
//! dropping the answers held. That is a write whose outcome the client cannot know.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The proxy; it stops with the test's runtime.
pub struct HoldProxy {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    hold: watch::Sender<bool>,
    breaks: watch::Sender<u64>,
}

impl HoldProxy {
    /// Listens on a free loopback port, forwarding to `upstream`.
    pub async fn start(upstream: String) -> HoldProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (hold, _) = watch::channel(false);
        let (breaks, _) = watch::channel(0u64);
        let (h, b) = (hold.clone(), breaks.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(pipe(client, server, h.subscribe(), b.subscribe()));
            }
        });
        HoldProxy { addr, hold, breaks }
    }

    /// Holds (true) or forwards (false) the upstream's answers.
    pub fn hold(&self, on: bool) {
        self.hold.send_replace(on);
    }

    /// Closes every connection open now, with whatever answers it held.
    pub fn break_all(&self) {
        self.breaks.send_modify(|n| *n += 1);
    }
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    mut hold: watch::Receiver<bool>,
    mut breaks: watch::Receiver<u64>,
) {
    let (mut client_r, mut client_w) = client.into_split();
    let (mut server_r, mut server_w) = server.into_split();
    let mut up_breaks = breaks.clone();
    let up = async move {
        tokio::select! {
            _ = up_breaks.changed() => {}
            _ = tokio::io::copy(&mut client_r, &mut server_w) => {}
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = tokio::select! {
                _ = breaks.changed() => return,
                n = server_r.read(&mut buf) => match n {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                },
            };
            while *hold.borrow_and_update() {
                tokio::select! {
                    _ = breaks.changed() => return,
                    _ = hold.changed() => {}
                }
            }
            if client_w.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Either side ending ends both: the halves drop and the sockets close.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}
