//! Hostile clients against the real listener: `serve::run` in this process, over TLS
//! or plain HTTP, with short timeouts so that each attack takes seconds. Idle TLS
//! connections, slowloris, more connections than the bound, made-up methods,
//! abandoned uploads, a 100 KB URL, and the modes of the data directory's files.
//! After each attack the server answers `/healthz` within 100 ms and this process's
//! RSS stays within 300 MB of where it was before the attack.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moor_server::serve::ServeOptions;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The tests of this file run one at a time: they count this process's descriptors
/// and RSS, which a test running beside them would disturb.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A `moor serve` running in this process.
struct Server {
    /// `host:port`.
    addr: String,
    url: String,
    token: String,
    dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts moor on a free port with a fresh data directory.
async fn start(tls: bool, configure: impl FnOnce(&mut ServeOptions)) -> Server {
    start_in(tempfile::tempdir().unwrap(), tls, configure).await
}

/// Starts moor with `dir` as its data directory (`dir/data`).
async fn start_in(
    dir: tempfile::TempDir,
    tls: bool,
    configure: impl FnOnce(&mut ServeOptions),
) -> Server {
    let serial = SERIAL.lock().await;
    let mut opts = ServeOptions {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".into(),
        plain_http: !tls,
        store: Some("memory://".into()),
        ..Default::default()
    };
    configure(&mut opts);
    let kubeconfig = opts.data_dir.join("kubeconfig");
    let task = tokio::spawn(async move {
        if let Err(e) = moor_server::serve::run(opts).await {
            panic!("moor serve failed: {e}");
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((url, token)) = moor_testkit::process::kubeconfig_server(&kubeconfig) {
            let addr = url.split("://").nth(1).unwrap().to_string();
            return Server {
                addr,
                url,
                token,
                dir,
                task,
                _serial: serial,
            };
        }
        assert!(!task.is_finished(), "moor serve stopped");
        assert!(Instant::now() < deadline, "moor serve did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Server {
    /// A client on new connections only (no pool), trusting moor's CA.
    fn client(&self) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(60));
        if let Ok(pem) = std::fs::read(self.dir.path().join("data/tls/ca.crt")) {
            b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        b.build().unwrap()
    }

    /// Asserts that `/healthz` answers 200 within 100 ms (best of three fresh
    /// connections: the machine is shared) and that RSS grew less than 300 MB from
    /// `baseline_kb`.
    async fn assert_healthy(&self, baseline_kb: u64) {
        let client = self.client();
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let r = client
                .get(format!("{}/healthz", self.url))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            best = best.min(t.elapsed());
        }
        assert!(best < Duration::from_millis(100), "/healthz took {best:?}");
        let rss = rss_kb();
        assert!(
            rss < baseline_kb + 300 * 1024,
            "RSS grew from {baseline_kb} kB to {rss} kB"
        );
    }
}

/// This process's resident set size, in kB.
fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Descriptors this process holds open.
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Waits until the server closes `conn` (end of stream or a reset), at most `limit`.
async fn closed_within(conn: &mut (impl AsyncRead + Unpin), limit: Duration) -> bool {
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

fn tls_connector(ca_pem: &[u8]) -> tokio_rustls::TlsConnector {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tls_connections_and_unfinished_handshakes_are_closed() {
    let s = start(true, |o| {
        o.connections.request_header_timeout = Duration::from_secs(1);
        o.connections.tls_handshake_timeout = Duration::from_secs(1);
    })
    .await;
    let baseline = rss_kb();
    let ca = std::fs::read(s.dir.path().join("data/tls/ca.crt")).unwrap();
    let connector = tls_connector(&ca);
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    // 200 connections that finish the handshake and send nothing ...
    let mut idle = Vec::new();
    for _ in 0..200 {
        let tcp = TcpStream::connect(&s.addr).await.unwrap();
        idle.push(connector.connect(name.clone(), tcp).await.unwrap());
    }
    // ... and 50 that never start it.
    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(TcpStream::connect(&s.addr).await.unwrap());
    }
    let limit = Duration::from_secs(15);
    let closes = idle.iter_mut().map(|c| closed_within(c, limit));
    let closed = futures::future::join_all(closes).await;
    assert!(
        closed.iter().all(|c| *c),
        "an idle TLS connection stayed open"
    );
    let closes = silent.iter_mut().map(|c| closed_within(c, limit));
    let closed = futures::future::join_all(closes).await;
    assert!(
        closed.iter().all(|c| *c),
        "an unfinished handshake stayed open"
    );
    s.assert_healthy(baseline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_idle_keep_alive_connections_are_closed() {
    let s = start(false, |o| {
        o.connections.request_header_timeout = Duration::from_secs(2);
    })
    .await;
    let baseline = rss_kb();
    // 300 connections, each sending one header line every 500 ms, forever.
    let attackers = (0..300).map(|i| {
        let addr = s.addr.clone();
        tokio::spawn(async move {
            let mut c = TcpStream::connect(&addr).await.unwrap();
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: moor\r\n")
                .await
                .unwrap();
            let started = Instant::now();
            let mut buf = [0u8; 256];
            loop {
                tokio::select! {
                    r = c.read(&mut buf) => match r {
                        Ok(0) | Err(_) => return started.elapsed(),
                        Ok(_) => panic!("an unfinished request was answered"),
                    },
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {
                        if c.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes()).await.is_err() {
                            return started.elapsed();
                        }
                    }
                }
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "a slowloris connection stayed open"
                );
            }
        })
    });
    let lifetimes = futures::future::join_all(attackers).await;
    let longest = lifetimes.into_iter().map(|r| r.unwrap()).max().unwrap();
    assert!(
        longest < Duration::from_secs(20),
        "closed after {longest:?}"
    );
    // A kept-alive connection that went idle after a response is closed too.
    let mut c = TcpStream::connect(&s.addr).await.unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: moor\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = c.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    assert!(
        closed_within(&mut c, Duration::from_secs(15)).await,
        "an idle keep-alive connection stayed open"
    );
    s.assert_healthy(baseline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_bound_wait_and_take_no_descriptor() {
    const BOUND: usize = 20;
    const ATTACKERS: usize = 60;
    let s = start(false, |o| {
        o.connections.max_connections = BOUND;
        o.connections.request_header_timeout = Duration::from_secs(1);
    })
    .await;
    let baseline = rss_kb();
    let before = open_descriptors();
    let mut attackers = Vec::new();
    for _ in 0..ATTACKERS {
        attackers.push(TcpStream::connect(&s.addr).await.unwrap());
    }
    // A real request queues behind them and is answered once the timeout has
    // closed enough of them; meanwhile the server holds at most BOUND of them.
    let client = s.client();
    let url = format!("{}/healthz", s.url);
    let request = tokio::spawn(async move { client.get(url).send().await });
    let mut most = 0;
    while !request.is_finished() {
        most = most.max(open_descriptors());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = request.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    // Ours: the attackers' ends and the real request's; the server's: at most BOUND
    // accepted connections (a few descriptors of slack for the runtime).
    assert!(
        most <= before + ATTACKERS + 1 + BOUND + 8,
        "{most} descriptors open (from {before}): the server accepted beyond its bound"
    );
    drop(attackers);
    s.assert_healthy(baseline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_do_not_grow_metrics() {
    let s = start(false, |_| {}).await;
    let baseline = rss_kb();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let metrics = || async {
        client
            .get(format!("{}/metrics", s.url))
            .bearer_auth(&s.token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let send = |i: usize| {
        let method = reqwest::Method::from_bytes(format!("M{i:06}").as_bytes()).unwrap();
        client
            .request(method, format!("{}/healthz?x={i}", s.url))
            .send()
    };
    send(0).await.unwrap();
    let _ = metrics().await;
    let before = metrics().await;
    for i in 1..=1000 {
        send(i).await.unwrap();
    }
    let after = metrics().await;
    assert!(!after.contains("M000"), "a made-up method became a label");
    assert!(after.contains("method=\"other\""));
    assert!(
        after.len() < before.len() + 2048,
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );
    s.assert_healthy(baseline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_uploads_are_capped_and_expire() {
    let s = start(false, |o| {
        o.uploads.max_sessions = 4;
        o.uploads.max_sessions_per_repository = 2;
        o.uploads.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let baseline = rss_kb();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let open = |repo: &str| {
        client
            .post(format!("{}/v2/default/{repo}/blobs/uploads/", s.url))
            .basic_auth("u", Some(&s.token))
            .send()
    };
    let mut statuses = Vec::new();
    for repo in ["a", "a", "a", "b", "b", "c", "c"] {
        let r = open(repo).await.unwrap();
        if r.status() == 202 {
            // Half a blob, then nothing more.
            let location = r.headers()["location"].to_str().unwrap().to_string();
            let r = client
                .patch(format!("{}{location}", s.url))
                .basic_auth("u", Some(&s.token))
                .body(vec![0u8; 64 * 1024])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
        }
        statuses.push(r.status().as_u16());
    }
    // a, a, (a: repository cap), b, b, (c: global cap), (c: global cap).
    assert_eq!(statuses, [202, 202, 429, 202, 202, 429, 429]);
    let uploads = s.dir.path().join("data/registry/sessions");
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 4);
    let held = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|t| t.starts_with(&uploads))
        .count();
    assert_eq!(held, 0, "a waiting session holds no descriptor");
    // The reaper forgets them with no request: their files go.
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::fs::read_dir(&uploads).unwrap().count() > 0 {
        assert!(Instant::now() < deadline, "abandoned uploads never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open("c").await.unwrap().status(), 202);
    s.assert_healthy(baseline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_url_gets_a_status_body() {
    let s = start(false, |_| {}).await;
    let baseline = rss_kb();
    let selector = format!("app%3D{}", "a".repeat(100 * 1024));
    let mut c = TcpStream::connect(&s.addr).await.unwrap();
    let request = format!(
        "GET /api/v1/namespaces?labelSelector={selector} HTTP/1.1\r\nHost: moor\r\nAuthorization: Bearer {}\r\n\r\n",
        s.token
    );
    c.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 414 "), "{head}");
    let status: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["code"], 414);
    s.assert_healthy(baseline).await;
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    // What an older moor left: a 0755 directory and a 0644 database.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data.join("moor.db"), b"").unwrap();
    std::fs::set_permissions(data.join("moor.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let s = start_in(dir, true, |o| o.store = None).await;
    let baseline = rss_kb();
    // A pushed blob.
    let blob = b"a private layer".to_vec();
    let digest = {
        use sha2::Digest as _;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(&blob)))
    };
    let r = s
        .client()
        .post(format!(
            "{}/v2/default/private/blobs/uploads/?digest={digest}",
            s.url
        ))
        .basic_auth("u", Some(&s.token))
        .body(blob)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(mode(&data), 0o700);
    for f in ["moor.db", "moor.db-wal", "moor.db-shm", "kubeconfig"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    for f in ["ca.key", "ca.crt", "server.key", "server.crt"] {
        assert_eq!(mode(&data.join("tls").join(f)), 0o600, "tls/{f}");
    }
    assert_eq!(mode(&data.join("registry")), 0o700);
    let hex = digest.trim_start_matches("sha256:");
    let stored = data.join("registry/blobs/sha256").join(&hex[..2]).join(hex);
    assert_eq!(mode(&stored), 0o600, "a stored blob");
    s.assert_healthy(baseline).await;
}

/// A TLS connector that offers HTTP/2 only (ALPN `h2`), as Go and kube clients do.
fn h2_connector(ca_pem: &[u8]) -> tokio_rustls::TlsConnector {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// An HTTP/2 connection to `s`: the request sender, and the task driving the
/// connection, which ends when the server closes it.
async fn h2_connect(
    s: &Server,
) -> (
    h2::client::SendRequest<bytes::Bytes>,
    tokio::task::JoinHandle<()>,
) {
    let ca = std::fs::read(s.dir.path().join("data/tls/ca.crt")).unwrap();
    let tcp = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = h2_connector(&ca).connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (send, connection) = h2::client::handshake(tls).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    (send, driver)
}

/// Sends a GET for `path` and reads its whole body.
async fn h2_get(
    send: &mut h2::client::SendRequest<bytes::Bytes>,
    s: &Server,
    path: &str,
) -> (u16, Vec<u8>) {
    let req = axum::http::Request::get(format!("https://{}{path}", s.addr))
        .header("authorization", format!("Bearer {}", s.token))
        .body(())
        .unwrap();
    let (response, _) = send
        .clone()
        .ready()
        .await
        .unwrap()
        .send_request(req, true)
        .unwrap();
    let response = response.await.unwrap();
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    (status, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_are_closed_but_long_requests_are_not() {
    let s = start(true, |o| {
        o.connections.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let baseline = rss_kb();

    // One request, then nothing but pings: closed about a second later.
    let (mut send, driver) = h2_connect(&s).await;
    let (status, _) = h2_get(&mut send, &s, "/healthz").await;
    assert_eq!(status, 200);
    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("the idle HTTP/2 connection is closed")
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "closed too early: {:?}",
        t.elapsed()
    );
    // With a GOAWAY first, so that the client knows not to send on it.
    let refused = send.ready().await.expect_err("the connection is closed");
    assert!(
        refused.is_go_away() && refused.reason() == Some(h2::Reason::NO_ERROR),
        "closed without a GOAWAY: {refused:?}"
    );

    // A watch that outlives the idle timeout is a request in flight: it runs to its
    // own end (3 s), and only then does the connection go idle and close.
    let (mut send, driver) = h2_connect(&s).await;
    let t = Instant::now();
    let (status, body) = h2_get(
        &mut send,
        &s,
        "/api/v1/namespaces?watch=true&timeoutSeconds=3",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(2500),
        "the watch was cut at {:?}",
        t.elapsed()
    );
    assert!(
        String::from_utf8_lossy(&body).contains("\"default\""),
        "the watch delivered its events"
    );
    tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("closed once idle after the watch")
        .unwrap();
    s.assert_healthy(baseline).await;
}
