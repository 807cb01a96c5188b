//! `bench/run registry`: moor's integrated registry against CNCF distribution 2.8.2
//! and nginx, side by side in one run, on loopback. (a) and (b) run once per transport
//! (`--transport tls,plain`): over TLS 1.3 every server serves one ECDSA P-256
//! certificate made for the run, and the clients are the same for all; over plain
//! HTTP moor runs with `--plain-http`. (c), (d) and (e) are plain HTTP.
//!
//! - (a) a cached 64 MiB blob read by 1 and by 4 parallel readers: MB/s of moor,
//!   distribution and nginx (`sendfile on`, the same bytes as a file). Goals: moor at
//!   least 1.5x distribution and 0.9x nginx.
//! - (b) a manifest GET by tag with wrk at 16 connections: requests per second of
//!   moor, distribution, and nginx serving the manifest as a small file (the
//!   machine's limit). Goal: moor at least 10x distribution.
//! - (c) a cold pull of a 5-layer image (5 x 32 MiB random layers) through moor
//!   (reference policy Local) and through distribution in proxy mode, both in front
//!   of the same upstream distribution, and directly from the upstream. A pull is
//!   this benchmark's own client: the manifest by tag, then the config and every layer
//!   in parallel, as a container runtime does. Fresh caches (new servers over empty
//!   data directories) for every run. Goals: moor at most 0.8x the proxy's time and
//!   within 1.1x of the direct pull. For context (not the goal), the same three pulls
//!   again with the upstream behind a link of limited bandwidth (`--link-mbit`, a
//!   throttling proxy in this process), as across a network.
//! - (d) 20 concurrent cold pulls of one image through moor, with a counting proxy
//!   (in this process) between moor and the upstream. Goal: every blob of the image
//!   fetched upstream exactly once (1x the image's bytes, less the manifest when the
//!   import kept it).
//! - (e) the same concurrent cold pulls spread round-robin over three `moor serve`
//!   replicas on one etcd and one S3 bucket (SeaweedFS), both started here, against
//!   three distribution proxies sharing one filesystem root and one distribution proxy;
//!   time, upstream bytes and CPU side by side (`replicas.rs`). Skipped when `etcd` or
//!   `weed` is missing. Goal: each blob fetched from the upstream once.
//!
//! Each measurement is repeated (`--runs`, servers interleaved within a run) and the
//! median is reported, with every run's value. The servers' CPU time (from `/proc`,
//! nginx's workers included) is reported per GiB or per request: the first thing to
//! look at when a goal is missed.
//!
//! Long on purpose (over 900 lines): one benchmark binary whose scenarios share their
//! setup and report, read top to bottom.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use base64::Engine;
use bytes::Bytes;
use clap::Parser;
use moor_bench::{
    Distribution, Hit, HitLog, Moor, Nginx, TestCert, counter_sum, distribution, distribution_with,
    moor_bin, peak_rss_mib, start_proxy, tree_cpu_seconds,
};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

mod replicas;

#[derive(Parser)]
struct Args {
    /// Measurements to run, any of a, b, c, d, e.
    #[arg(long, value_delimiter = ',', default_value = "a,b,c,d,e")]
    only: Vec<String>,
    /// Transports of (a) and (b), in order: tls, plain.
    #[arg(long, value_delimiter = ',', default_value = "tls,plain")]
    transport: Vec<String>,
    /// Runs of each measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// (a) size of the cached blob, MiB.
    #[arg(long, default_value_t = 64)]
    blob_mib: usize,
    /// (a) GETs of the blob by the single reader in one run.
    #[arg(long, default_value_t = 8)]
    gets: usize,
    /// (a) GETs of the blob by each of the 4 parallel readers in one run.
    #[arg(long, default_value_t = 5)]
    parallel_gets: usize,
    /// (b) seconds of wrk per server and run.
    #[arg(long, default_value_t = 4)]
    wrk_seconds: u32,
    /// (b) wrk connections.
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// (c, d) layers of the pulled image.
    #[arg(long, default_value_t = 5)]
    layers: usize,
    /// (c, d) size of each layer, MiB.
    #[arg(long, default_value_t = 32)]
    layer_mib: usize,
    /// (c) cold pulls per server (fresh caches each time).
    #[arg(long, default_value_t = 3)]
    pull_runs: usize,
    /// (d) concurrent cold pulls.
    #[arg(long, default_value_t = 20)]
    pulls: usize,
    /// (d) runs of the concurrent pulls (fresh moor each time).
    #[arg(long, default_value_t = 2)]
    concurrent_runs: usize,
    /// (e) runs of the concurrent pulls over three replicas (fresh servers each time).
    #[arg(long, default_value_t = 2)]
    replica_runs: usize,
    /// (c) also pull with the upstream behind a link of this many Mbit/s (0: not).
    #[arg(long, default_value_t = 1000.0)]
    link_mbit: f64,
    /// (c) print when each pull's manifest and blobs arrived.
    #[arg(long)]
    verbose: bool,
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
use moor_testkit::server::IS;
const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------
// Images: random bytes as blobs, a config and a manifest naming them.

/// One blob: its bytes and `sha256:<hex>`.
struct Blob {
    digest: String,
    data: Bytes,
}

impl Blob {
    fn new(data: Vec<u8>) -> Blob {
        Blob {
            digest: sha256(&data),
            data: data.into(),
        }
    }
}

/// An OCI image: manifest, config and layers.
struct Image {
    manifest: Blob,
    config: Blob,
    layers: Vec<Blob>,
}

impl Image {
    /// Config and layers (what a pull fetches besides the manifest).
    fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(&self.layers)
    }

    /// Bytes of manifest, config and layers.
    fn size(&self) -> u64 {
        (self.manifest.data.len() + self.blobs().map(|b| b.data.len()).sum::<usize>()) as u64
    }
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Incompressible bytes (xorshift64*), different for every seed.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// An image of `layers` random layers of `layer_bytes` each. A layer is stored
/// uncompressed (`...layer.v1.tar`), so its diff ID is its digest; registries do not
/// look inside, so the bytes need not be a tar.
fn make_image(layers: usize, layer_bytes: usize, seed: u64) -> Image {
    let layers: Vec<Blob> = (0..layers)
        .map(|i| Blob::new(random_bytes(layer_bytes, seed * 1000 + i as u64 + 1)))
        .collect();
    let config = json!({
        "created": "2026-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>()},
    });
    let config = Blob::new(config.to_string().into_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.data.len()},
        "layers": layers.iter().map(|l| json!({"mediaType": OCI_LAYER, "digest": l.digest, "size": l.data.len()})).collect::<Vec<_>>(),
    });
    Image {
        manifest: Blob::new(manifest.to_string().into_bytes()),
        config,
        layers,
    }
}

// ---------------------------------------------------------------------------------
// A registry client: push, pull, read a blob.

/// A registry to talk to: its base URL, the `Authorization` header, if any, and the
/// clients' TLS settings when it serves HTTPS.
#[derive(Clone)]
struct Target {
    base: String,
    auth: Option<String>,
    tls: Option<Tls>,
}

/// The clients of a TLS run: both trust the run's CA only and speak TLS 1.3.
#[derive(Clone)]
struct Tls {
    /// For pushes and checked reads.
    http: reqwest::Client,
    /// For the raw blob reader of (a).
    raw: Arc<rustls::ClientConfig>,
}

impl Tls {
    fn new(cert: &TestCert) -> Result<Tls> {
        let pem = cert.ca_pem()?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
            .min_tls_version(reqwest::tls::Version::TLS_1_3)
            .build()?;
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject as _;
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots.add(c?)?;
        }
        let mut raw = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
        raw.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            http,
            raw: Arc::new(raw),
        })
    }
}

impl Target {
    fn new(host: &str, auth: Option<String>) -> Target {
        Target {
            base: format!("http://{host}"),
            auth,
            tls: None,
        }
    }

    /// `https://host` with `tls`'s clients, or plain HTTP without.
    fn with_tls(host: &str, auth: Option<String>, tls: Option<&Tls>) -> Target {
        match tls {
            None => Target::new(host, auth),
            Some(tls) => Target {
                base: format!("https://{host}"),
                auth,
                tls: Some(tls.clone()),
            },
        }
    }

    /// `host:port`.
    fn host(&self) -> &str {
        self.base
            .trim_start_matches("https://")
            .trim_start_matches("http://")
    }

    /// The HTTP client for this target: `plain`, or the TLS run's.
    fn http(&self, plain: &reqwest::Client) -> reqwest::Client {
        self.tls
            .as_ref()
            .map_or_else(|| plain.clone(), |t| t.http.clone())
    }

    fn request(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        url: &str,
    ) -> reqwest::RequestBuilder {
        let r = http.request(method, url);
        match &self.auth {
            Some(a) => r.header("authorization", a),
            None => r,
        }
    }
}

/// `Basic` auth with any user name and moor's token as the password.
fn basic(token: &str) -> String {
    let raw = format!("bench:{token}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Pushes `image` as `repo:tag`: each blob by a POST that opens an upload and a PUT
/// with `?digest=` that closes it, then the manifest by tag.
async fn push(
    http: &reqwest::Client,
    t: &Target,
    repo: &str,
    tag: &str,
    image: &Image,
) -> Result<()> {
    for blob in image.blobs() {
        let post = t
            .request(
                http,
                reqwest::Method::POST,
                &format!("{}/v2/{repo}/blobs/uploads/", t.base),
            )
            .send()
            .await?;
        ensure!(
            post.status().as_u16() == 202,
            "starting an upload: {}",
            post.status()
        );
        let location = post
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .context("an upload without Location")?;
        let mut url = if location.starts_with("http") {
            location.to_string()
        } else {
            format!("{}{location}", t.base)
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={}", blob.digest));
        let put = t
            .request(http, reqwest::Method::PUT, &url)
            .header("content-type", "application/octet-stream")
            .body(blob.data.clone())
            .send()
            .await?;
        ensure!(
            put.status().as_u16() == 201,
            "finishing an upload: {}",
            put.status()
        );
    }
    let put = t
        .request(
            http,
            reqwest::Method::PUT,
            &format!("{}/v2/{repo}/manifests/{tag}", t.base),
        )
        .header("content-type", OCI_MANIFEST)
        .body(image.manifest.data.clone())
        .send()
        .await?;
    ensure!(
        put.status().as_u16() == 201,
        "putting the manifest: {}",
        put.status()
    );
    Ok(())
}

/// When a blob's response arrived and its last byte did (seconds after the pull
/// started), and its bytes.
#[derive(Clone, Copy)]
struct BlobTiming {
    bytes: u64,
    headers: f64,
    done: f64,
}

/// GETs blob `digest` of `repo` and reads it to the end; checks the size (and, with
/// `verify`, the digest).
async fn get_blob(
    http: reqwest::Client,
    t: Target,
    repo: String,
    digest: String,
    size: u64,
    verify: bool,
    start: Instant,
) -> Result<BlobTiming> {
    let url = format!("{}/v2/{repo}/blobs/{digest}", t.base);
    let mut resp = t.request(&http, reqwest::Method::GET, &url).send().await?;
    ensure!(resp.status().is_success(), "GET {url}: {}", resp.status());
    let headers = start.elapsed().as_secs_f64();
    let mut hasher = verify.then(Sha256::new);
    let mut n = 0u64;
    while let Some(chunk) = resp.chunk().await? {
        n += chunk.len() as u64;
        if let Some(h) = &mut hasher {
            h.update(&chunk);
        }
    }
    ensure!(n == size, "GET {url}: {n} bytes, expected {size}");
    if let Some(h) = hasher {
        let got = format!("sha256:{}", hex::encode(h.finalize()));
        ensure!(got == digest, "GET {url}: the content is {got}");
    }
    Ok(BlobTiming {
        bytes: n,
        headers,
        done: start.elapsed().as_secs_f64(),
    })
}

/// What a pull received and when.
struct Pulled {
    /// Bytes of the manifest and every blob.
    bytes: u64,
    /// Seconds until the manifest was read.
    manifest: f64,
    /// Config first, then the layers.
    blobs: Vec<BlobTiming>,
}

impl Pulled {
    /// One line: when the manifest came, when each blob's headers and last byte came.
    fn timeline(&self) -> String {
        let blobs: Vec<String> = self
            .blobs
            .iter()
            .map(|b| format!("{:.0}-{:.0}", b.headers * 1e3, b.done * 1e3))
            .collect();
        format!(
            "manifest {:.0} ms; blobs (headers-last byte, ms): {}",
            self.manifest * 1e3,
            blobs.join(" ")
        )
    }
}

/// A pull as a container runtime does it: the manifest by tag, then the config and
/// every layer at once.
async fn pull(
    http: &reqwest::Client,
    t: &Target,
    repo: &str,
    tag: &str,
    verify: bool,
) -> Result<Pulled> {
    let start = Instant::now();
    let url = format!("{}/v2/{repo}/manifests/{tag}", t.base);
    let resp = t
        .request(http, reqwest::Method::GET, &url)
        .header("accept", OCI_MANIFEST)
        .send()
        .await?;
    ensure!(resp.status().is_success(), "GET {url}: {}", resp.status());
    let manifest = resp.bytes().await?;
    let manifest_secs = start.elapsed().as_secs_f64();
    let v: Value = serde_json::from_slice(&manifest)?;
    let descriptors =
        std::iter::once(&v["config"]).chain(v["layers"].as_array().into_iter().flatten());
    let mut tasks = Vec::new();
    for d in descriptors {
        let digest = d["digest"]
            .as_str()
            .context("a descriptor without digest")?
            .to_string();
        let size = d["size"].as_u64().context("a descriptor without size")?;
        tasks.push(tokio::spawn(get_blob(
            http.clone(),
            t.clone(),
            repo.to_string(),
            digest,
            size,
            verify,
            start,
        )));
    }
    let mut blobs = Vec::new();
    for task in tasks {
        blobs.push(task.await??);
    }
    Ok(Pulled {
        bytes: manifest.len() as u64 + blobs.iter().map(|b| b.bytes).sum::<u64>(),
        manifest: manifest_secs,
        blobs,
    })
}

fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

// ---------------------------------------------------------------------------------
// Numbers.

fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn list(values: &[f64], decimals: usize) -> String {
    values
        .iter()
        .map(|v| format!("{v:.decimals$}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// One goal, for the summary at the end.
struct Goal {
    name: String,
    value: String,
    met: bool,
}

/// A server under measurement: its name, where to reach it, and its pid (for CPU).
struct Server {
    name: &'static str,
    target: Target,
    pid: u32,
}

fn cpu(pid: u32) -> f64 {
    tree_cpu_seconds(pid).unwrap_or(f64::NAN)
}

// ---------------------------------------------------------------------------------
// (a) blob throughput.

/// Reads response bodies over one keep-alive HTTP/1.1 connection with as little
/// client work as possible (blocking reads into one 1 MiB buffer, nothing kept), so
/// that the two cores go to the server measured. Bodies must have a Content-Length.
struct RawClient {
    stream: Conn,
    host: String,
    buf: Vec<u8>,
}

/// A connection of the raw client: TCP, or rustls over TCP (decrypting is client work
/// that every server's figure pays the same).
enum Conn {
    Plain(std::net::TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>>),
}

impl std::io::Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl std::io::Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

impl RawClient {
    /// Connects (and, with `tls`, completes the handshake) before any clock starts.
    /// Returns the client and the TLS cipher suite negotiated, if any.
    fn connect(host: &str, tls: Option<&Tls>) -> Result<(RawClient, Option<String>)> {
        let mut sock = std::net::TcpStream::connect(host)?;
        sock.set_nodelay(true)?;
        let (stream, suite) = match tls {
            None => (Conn::Plain(sock), None),
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(
                    host.rsplit_once(':').map_or(host, |(h, _)| h).to_string(),
                )?;
                let mut conn = rustls::ClientConnection::new(tls.raw.clone(), name)?;
                while conn.is_handshaking() {
                    conn.complete_io(&mut sock)?;
                }
                let suite = conn
                    .negotiated_cipher_suite()
                    .map(|s| format!("{:?}", s.suite()));
                (
                    Conn::Tls(Box::new(rustls::StreamOwned::new(conn, sock))),
                    suite,
                )
            }
        };
        Ok((
            RawClient {
                stream,
                host: host.to_string(),
                buf: vec![0; MIB],
            },
            suite,
        ))
    }

    /// GETs `path` and reads the body to its end; returns its length.
    fn get(&mut self, path: &str, auth: Option<&str>) -> Result<u64> {
        use std::io::{Read, Write};
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        // One write: one TLS record and one segment per request.
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Accept: */*\r\n\r\n",
            self.host
        );
        self.stream.write_all(request.as_bytes())?;
        self.stream.flush()?;
        let mut head = Vec::new();
        let end = loop {
            let n = self.stream.read(&mut self.buf)?;
            ensure!(n > 0, "the server closed the connection");
            head.extend_from_slice(&self.buf[..n]);
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
        ensure!(
            text.starts_with("http/1.1 200"),
            "GET {path}: {}",
            text.lines().next().unwrap_or_default()
        );
        let len: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("GET {path}: no Content-Length"))?;
        let mut left = len - (head.len() - end) as u64;
        while left > 0 {
            let want = (left as usize).min(self.buf.len());
            let n = self.stream.read(&mut self.buf[..want])?;
            ensure!(n > 0, "GET {path}: the body ended {left} bytes early");
            left -= n as u64;
        }
        Ok(len)
    }
}

/// `readers` threads each GET the blob `gets` times over their own connection (opened
/// before the clock starts); returns MB/s (10^6 bytes) and the server's CPU seconds per
/// GiB served.
fn blob_rate(
    s: &Server,
    repo: &str,
    digest: &str,
    size: u64,
    readers: usize,
    gets: usize,
) -> Result<(f64, f64)> {
    let host = s.target.host();
    let path = format!("/v2/{repo}/blobs/{digest}");
    let conns = (0..readers)
        .map(|_| RawClient::connect(host, s.target.tls.as_ref()).map(|(c, _)| c))
        .collect::<Result<Vec<_>>>()?;
    let cpu0 = cpu(s.pid);
    let started = Instant::now();
    let bytes = std::thread::scope(|scope| {
        let handles: Vec<_> = conns
            .into_iter()
            .map(|mut c| {
                let (path, auth) = (&path, s.target.auth.as_deref());
                scope.spawn(move || {
                    let mut n = 0;
                    for _ in 0..gets {
                        let got = c.get(path, auth)?;
                        ensure!(got == size, "GET {path}: {got} bytes, expected {size}");
                        n += got;
                    }
                    anyhow::Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("a reader panicked"))?)
            .sum::<Result<u64>>()
    })?;
    let secs = started.elapsed().as_secs_f64();
    let cpu_per_gib = (cpu(s.pid) - cpu0) / (bytes as f64 / (1u64 << 30) as f64);
    Ok((bytes as f64 / secs / 1e6, cpu_per_gib))
}

/// Per server: the repository that serves blob `digest`.
async fn measure_a(
    args: &Args,
    transport: &str,
    servers: &[(Server, String)],
    digest: &str,
    size: u64,
    goals: &mut Vec<Goal>,
) -> Result<()> {
    let http = client()?;
    // Warm-up: page cache, connections, and a check of the bytes each server gives.
    let mut suites = Vec::new();
    for (s, repo) in servers {
        if let (_, Some(suite)) = RawClient::connect(s.target.host(), s.target.tls.as_ref())? {
            suites.push(format!("{} {suite}", s.name));
        }
        get_blob(
            s.target.http(&http),
            s.target.clone(),
            repo.into(),
            digest.into(),
            size,
            true,
            Instant::now(),
        )
        .await
        .with_context(|| format!("{} serving the blob", s.name))?;
    }
    println!(
        "\n(a, {transport}) cached {} MiB blob, GET to the end; MB/s = 10^6 bytes/s; {} run(s), median",
        size / MIB as u64,
        args.runs
    );
    if !suites.is_empty() {
        println!("  negotiated: {}", suites.join(", "));
    }
    for (readers, gets) in [(1usize, args.gets), (4, args.parallel_gets)] {
        // rates[server] and cpu[server] over runs, servers interleaved within a run.
        let mut rates = vec![Vec::new(); servers.len()];
        let mut cpus = vec![Vec::new(); servers.len()];
        let gets = gets.max(1);
        for _ in 0..args.runs {
            for (i, (s, repo)) in servers.iter().enumerate() {
                let (rate, c) = blob_rate(s, repo, digest, size, readers, gets)?;
                rates[i].push(rate);
                cpus[i].push(c);
            }
        }
        println!("  {readers} reader(s), {gets} GET(s) each per run:");
        for (i, (s, _)) in servers.iter().enumerate() {
            println!(
                "    {:<13} {:>8.0} MB/s   server CPU {:>5.2} s/GiB   runs: {}",
                s.name,
                median(&rates[i]),
                median(&cpus[i]),
                list(&rates[i], 0)
            );
        }
        let m = median(&rates[0]);
        let vs_dist = m / median(&rates[1]);
        let vs_nginx = m / median(&rates[2]);
        println!(
            "    moor/distribution {vs_dist:.2} (goal >= 1.5: {})   moor/nginx {vs_nginx:.2} (goal >= 0.9: {})   nginx/distribution {:.2}",
            verdict(vs_dist >= 1.5),
            verdict(vs_nginx >= 0.9),
            median(&rates[2]) / median(&rates[1])
        );
        goals.push(Goal {
            name: format!("(a, {transport}) blob, {readers} reader(s): moor/distribution >= 1.5"),
            value: format!("{vs_dist:.2}"),
            met: vs_dist >= 1.5,
        });
        goals.push(Goal {
            name: format!("(a, {transport}) blob, {readers} reader(s): moor/nginx >= 0.9"),
            value: format!("{vs_nginx:.2}"),
            met: vs_nginx >= 0.9,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// (b) manifest GETs with wrk.

/// What wrk measured: requests per second, requests, and failures.
struct WrkResult {
    rate: f64,
    requests: f64,
    bad: u64,
}

async fn wrk(url: &str, headers: &[String], connections: u32, secs: u32) -> Result<WrkResult> {
    let mut cmd = tokio::process::Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{connections}"),
        &format!("-d{secs}s"),
        "--timeout",
        "5s",
    ]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd
        .arg(url)
        .output()
        .await
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    ensure!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |prefix: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    let rate = field("Requests/sec:")
        .with_context(|| format!("no Requests/sec in wrk's output: {text}"))?;
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let bad = field("Non-2xx or 3xx responses:").unwrap_or(0.0) as u64
        + text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Socket errors:"))
            .map(|v| {
                v.split(',')
                    .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0);
    Ok(WrkResult {
        rate,
        requests,
        bad,
    })
}

/// Per server: the URL path of the manifest by tag.
async fn measure_b(
    args: &Args,
    transport: &str,
    servers: &[(Server, String)],
    goals: &mut Vec<Goal>,
) -> Result<()> {
    // Over TLS moor's edge must be larger: distribution pays Go's TLS on top.
    let goal = if transport == "TLS" { 20.0 } else { 10.0 };
    println!(
        "\n(b, {transport}) manifest GET by tag, wrk -t2 -c{} -d{}s, Accept: {OCI_MANIFEST}; {} run(s), median",
        args.connections, args.wrk_seconds, args.runs
    );
    let mut rates = vec![Vec::new(); servers.len()];
    let mut cpus = vec![Vec::new(); servers.len()];
    for _ in 0..args.runs {
        for (i, (s, path)) in servers.iter().enumerate() {
            let mut headers = vec![format!("Accept: {OCI_MANIFEST}")];
            if let Some(a) = &s.target.auth {
                headers.push(format!("Authorization: {a}"));
            }
            let cpu0 = cpu(s.pid);
            let r = wrk(
                &format!("{}{path}", s.target.base),
                &headers,
                args.connections,
                args.wrk_seconds,
            )
            .await?;
            ensure!(r.bad == 0, "{}: {} failed manifest GETs", s.name, r.bad);
            rates[i].push(r.rate);
            cpus[i].push((cpu(s.pid) - cpu0) / r.requests * 1e6);
        }
    }
    for (i, (s, _)) in servers.iter().enumerate() {
        println!(
            "    {:<22} {:>8.0} req/s   server CPU {:>6.1} us/request   runs: {}",
            s.name,
            median(&rates[i]),
            median(&cpus[i]),
            list(&rates[i], 0)
        );
    }
    let m = median(&rates[0]);
    let vs_dist = m / median(&rates[1]);
    let vs_nginx = m / median(&rates[2]);
    println!(
        "    moor/distribution {vs_dist:.1} (goal >= {goal}: {})   moor/nginx {vs_nginx:.2} (no goal: the machine's limit)",
        verdict(vs_dist >= goal)
    );
    goals.push(Goal {
        name: format!("(b, {transport}) manifest GET: moor/distribution >= {goal}"),
        value: format!("{vs_dist:.1}"),
        met: vs_dist >= goal,
    });
    Ok(())
}

// ---------------------------------------------------------------------------------
// (c) cold pulls.

/// Starts moor over an empty data directory with `upstream` insecure, creates stream
/// `x` whose tag `1` follows `<upstream>/app/x:1` with reference policy Local, and
/// waits until it is imported (the import fetches the manifest and config; the
/// registry's cache stays empty).
async fn moor_following(upstream: &str) -> Result<(Moor, Target)> {
    let moor = Moor::start_fresh(
        &moor_bin(),
        &["--plain-http", "--insecure-registry", upstream],
    );
    follow(&moor, upstream).await?;
    let host = moor.url.trim_start_matches("http://").to_string();
    let target = Target::new(&host, Some(basic(&moor.token)));
    Ok((moor, target))
}

/// Creates stream `x` through `moor` with tag `1` following `<upstream>/app/x:1`
/// (reference policy Local), and waits until `moor` serves it imported.
async fn follow(moor: &Moor, upstream: &str) -> Result<()> {
    let http = client()?;
    let body = json!({
        "metadata": {"name": "x"},
        "spec": {"tags": [{
            "name": "1",
            "from": {"kind": "DockerImage", "name": format!("{upstream}/app/x:1")},
            "referencePolicy": {"type": "Local"},
        }]},
    });
    let resp = http
        .post(format!("{}{IS}", moor.url))
        .bearer_auth(&moor.token)
        .json(&body)
        .send()
        .await?;
    ensure!(
        resp.status().as_u16() == 201,
        "creating the stream: {}",
        resp.status()
    );
    wait_imported(moor).await
}

/// Waits until `moor` reads stream `x`'s tag `1` as imported (60 s at most).
async fn wait_imported(moor: &Moor) -> Result<()> {
    let http = client()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s: Value = http
            .get(format!("{}{IS}/x", moor.url))
            .bearer_auth(&moor.token)
            .send()
            .await?
            .json()
            .await?;
        if s.pointer("/status/tags/0/items/0/image").is_some() {
            break;
        }
        if let Some(c) = s.pointer("/status/tags/0/conditions/0/message") {
            bail!("the import failed: {c}");
        }
        ensure!(
            Instant::now() < deadline,
            "the tag was not imported within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Times one pull of `repo:1` (sizes checked; digests not, to keep the client's
/// work out of the time); with `verbose`, prints when each part arrived.
async fn timed_pull(t: &Target, repo: &str, size: u64, who: &str, verbose: bool) -> Result<f64> {
    let http = client()?;
    let started = Instant::now();
    let got = pull(&http, t, repo, "1", false).await?;
    let secs = started.elapsed().as_secs_f64();
    ensure!(
        got.bytes == size,
        "pulled {} bytes, expected {size}",
        got.bytes
    );
    if verbose {
        println!("      {who:<12} {secs:.3} s: {}", got.timeline());
    }
    Ok(secs)
}

/// Where the pulls of (c) reach the upstream: directly, or over a throttled link.
struct Route<'a> {
    /// `host:port` that moor, the proxy and the direct pull use for the upstream.
    host: &'a str,
    /// What the route is, for the report.
    label: String,
    /// The requests through the route's proxy, if it has one.
    hits: Option<HitLog>,
}

/// Response bytes that passed through a proxy so far.
fn bytes_through(hits: &Option<HitLog>) -> Option<u64> {
    hits.as_ref().map(HitLog::bytes)
}

/// Cold pulls through moor, through distribution's proxy and directly, over `route`;
/// returns the medians (seconds) of the three.
async fn cold_pulls(
    args: &Args,
    upstream: &Distribution,
    route: &Route<'_>,
    size: u64,
) -> Result<[f64; 3]> {
    println!("  {}:", route.label);
    // Per way of pulling: seconds, CPU seconds of the server pulled from, and of the
    // upstream (for the direct pull they are the same process).
    let ways = [
        "moor (pull-through)",
        "distribution proxy",
        "direct from the upstream",
    ];
    let mut secs = vec![Vec::new(); 3];
    let mut server_cpu = vec![Vec::new(); 3];
    let mut server_rss = vec![Vec::new(); 3];
    let mut upstream_cpu = vec![Vec::new(); 3];
    let mut through = vec![Vec::new(); 3];
    let direct = Target::new(route.host, None);
    let up_pid = upstream.pid();
    for _ in 0..args.pull_runs {
        for (i, way) in ways.iter().enumerate() {
            // Fresh caches: a new moor or proxy over an empty data directory.
            let (server, target, repo): (Box<dyn std::any::Any>, Target, &str) = match i {
                0 => {
                    let (moor, target) = moor_following(route.host).await?;
                    (Box::new(moor), target, "default/x")
                }
                1 => {
                    let proxy = distribution(Some(format!("http://{}", route.host)))?;
                    let target = Target::new(&proxy.host, None);
                    (Box::new(proxy), target, "app/x")
                }
                _ => (Box::new(()), direct.clone(), "app/x"),
            };
            let pid = match i {
                0 => server.downcast_ref::<Moor>().map(|m| m.pid()),
                1 => server.downcast_ref::<Distribution>().map(|d| d.pid()),
                _ => Some(up_pid),
            }
            .context("a server's pid")?;
            let (cpu0, up0) = (cpu(pid), cpu(up_pid));
            let bytes0 = bytes_through(&route.hits);
            let t = timed_pull(&target, repo, size, way, args.verbose)
                .await
                .with_context(|| format!("pulling: {way}"))?;
            if let (Some(b0), Some(b1)) = (bytes0, bytes_through(&route.hits)) {
                through[i].push((b1 - b0) as f64 / size as f64);
            }
            secs[i].push(t);
            server_cpu[i].push(cpu(pid) - cpu0);
            server_rss[i].push(peak_rss_mib(pid).unwrap_or(f64::NAN));
            upstream_cpu[i].push(if i == 2 { 0.0 } else { cpu(up_pid) - up0 });
            drop(server);
        }
    }
    for (i, way) in ways.iter().enumerate() {
        let t = median(&secs[i]);
        let relay = if i == 2 {
            String::new()
        } else {
            format!(" + upstream {:.2} s", median(&upstream_cpu[i]))
        };
        let link = if through[i].is_empty() {
            String::new()
        } else {
            format!("   over the link: {}x the image", list(&through[i], 2))
        };
        println!(
            "    {way:<26} {t:>6.2} s ({:>5.0} MB/s)   CPU: server {:.2} s{relay}   peak RSS {:.0} MiB   runs: {}{link}",
            size as f64 / t / 1e6,
            median(&server_cpu[i]),
            median(&server_rss[i]),
            list(&secs[i], 2)
        );
    }
    Ok([median(&secs[0]), median(&secs[1]), median(&secs[2])])
}

async fn measure_c(
    args: &Args,
    upstream: &Distribution,
    image: &Image,
    goals: &mut Vec<Goal>,
) -> Result<()> {
    let size = image.size();
    println!(
        "\n(c) cold pull of {} ({} x {} MiB layers), fresh caches each run; manifest by tag, then config + layers in parallel; {} run(s), median",
        fmt_mib(size),
        args.layers,
        args.layer_mib,
        args.pull_runs
    );
    let loopback = Route {
        host: &upstream.host,
        label: "upstream on loopback (the goals)".into(),
        hits: None,
    };
    let [m, p, d] = cold_pulls(args, upstream, &loopback, size).await?;
    println!(
        "    moor/proxy {:.2} (goal <= 0.8: {})   moor/direct {:.2} (goal <= 1.1: {})",
        m / p,
        verdict(m / p <= 0.8),
        m / d,
        verdict(m / d <= 1.1)
    );
    goals.push(Goal {
        name: "(c) cold pull: moor/distribution proxy <= 0.8".into(),
        value: format!("{:.2}", m / p),
        met: m / p <= 0.8,
    });
    goals.push(Goal {
        name: "(c) cold pull: moor/direct <= 1.1".into(),
        value: format!("{:.2}", m / d),
        met: m / d <= 1.1,
    });
    if args.link_mbit > 0.0 {
        // The same pulls with the upstream behind a link of limited bandwidth (the
        // proxy of this process), as across a network: context, not the goal.
        let (host, hits) = start_proxy(&upstream.host, Some(args.link_mbit)).await?;
        let link = Route {
            host: &host,
            hits: Some(hits),
            label: format!(
                "upstream behind a {} Mbit/s link (context, not the goal)",
                args.link_mbit
            ),
        };
        let [m, p, d] = cold_pulls(args, upstream, &link, size).await?;
        println!("    moor/proxy {:.2}   moor/direct {:.2}", m / p, m / d);
    }
    Ok(())
}

fn fmt_mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

// ---------------------------------------------------------------------------------
// (d) concurrent cold pulls, counted by a proxy in front of the upstream.

/// GETs and bytes per path among `hits`.
fn tally(hits: &[Hit]) -> BTreeMap<String, (u32, u64)> {
    let mut out = BTreeMap::new();
    for h in hits.iter().filter(|h| h.method == "GET") {
        let e = out.entry(h.path.clone()).or_insert((0, 0));
        e.0 += 1;
        e.1 += h.bytes.load(Ordering::Relaxed);
    }
    out
}

async fn measure_d(
    args: &Args,
    upstream: &Distribution,
    image: &Image,
    goals: &mut Vec<Goal>,
) -> Result<()> {
    let size = image.size();
    println!(
        "\n(d) {} concurrent cold pulls of one image ({}) through moor, a counting proxy before the upstream; {} run(s)",
        args.pulls,
        fmt_mib(size),
        args.concurrent_runs
    );
    let mut ratios = Vec::new();
    // Per run: whether every blob of the image was fetched exactly once (the manifest
    // may have come with the import, before the pulls).
    let mut once = Vec::new();
    for run in 0..args.concurrent_runs {
        let (proxy, hits) = start_proxy(&upstream.host, None).await?;
        let (moor, target) = moor_following(&proxy).await?;
        let before = hits.len();
        let http = client()?;
        let started = Instant::now();
        let pulls: Vec<_> = (0..args.pulls)
            .map(|_| {
                let (http, target) = (http.clone(), target.clone());
                tokio::spawn(async move { pull(&http, &target, "default/x", "1", true).await })
            })
            .collect();
        for p in pulls {
            let got = p.await??.bytes;
            ensure!(got == size, "a pull got {got} bytes, expected {size}");
        }
        let secs = started.elapsed().as_secs_f64();
        let all = hits.take();
        let import = tally(&all[..before]);
        let during = tally(&all[before..]);
        let fetched: u64 = during.values().map(|(_, b)| b).sum();
        let gets: u32 = during.values().map(|(n, _)| n).sum();
        let most = during.values().map(|(n, _)| *n).max().unwrap_or(0);
        let heads = all[before..].iter().filter(|h| h.method == "HEAD").count();
        let metrics = client()?
            .get(format!("{}/metrics", moor.url))
            .bearer_auth(&moor.token)
            .send()
            .await?
            .text()
            .await?;
        let counted = counter_sum(&metrics, "moor_registry_pullthrough_blob_bytes_total", &[]);
        let blob_bytes: u64 = image.blobs().map(|b| b.data.len() as u64).sum();
        let ratio = fetched as f64 / size as f64;
        ratios.push(ratio);
        let blob_gets: Vec<u32> = during
            .iter()
            .filter(|(p, _)| p.contains("/blobs/"))
            .map(|(_, (n, _))| *n)
            .collect();
        once.push(blob_gets.len() == image.blobs().count() && blob_gets.iter().all(|n| *n == 1));
        let repeated: Vec<String> = during
            .iter()
            .filter(|(_, (n, _))| *n > 1)
            .map(|(p, (n, b))| format!("{n} x {p} ({b} bytes)"))
            .collect();
        println!(
            "    run {}: {} pulls (every blob's digest checked) in {secs:.2} s; upstream during the pulls: {} GETs over {} paths (at most {most} per path), {heads} HEADs, {fetched} bytes = {ratio:.6}x the image ({size} bytes, {:+} bytes)",
            run + 1,
            args.pulls,
            gets,
            during.len(),
            fetched as i64 - size as i64,
        );
        if !repeated.is_empty() {
            println!("           fetched more than once: {}", repeated.join(", "));
        }
        println!(
            "           moor_registry_pullthrough_blob_bytes_total {counted:.0} (blobs of the image: {blob_bytes}); the import before: {} GETs, {} bytes",
            import.values().map(|(n, _)| n).sum::<u32>(),
            import.values().map(|(_, b)| b).sum::<u64>()
        );
        drop(moor);
    }
    let worst = ratios.iter().copied().fold(0.0, f64::max);
    let met = once.iter().all(|o| *o);
    println!(
        "    upstream bytes / image size: {} (goal, every blob fetched exactly once: {})",
        list(&ratios, 6),
        verdict(met)
    );
    goals.push(Goal {
        name: format!(
            "(d) {} concurrent cold pulls: each blob fetched once",
            args.pulls
        ),
        value: format!("{worst:.6}"),
        met,
    });
    Ok(())
}

// ---------------------------------------------------------------------------------
// (a) and (b) over one transport.

/// Starts moor, distribution and nginx over TLS with `cert` (or plain HTTP without),
/// puts `image` into each, and runs (a) and (b) as asked.
async fn measure_ab(
    args: &Args,
    image: &Image,
    cert: Option<&TestCert>,
    goals: &mut Vec<Goal>,
) -> Result<()> {
    let run = |m: &str| args.only.iter().any(|o| o == m);
    let transport = if cert.is_some() { "TLS" } else { "plain HTTP" };
    let tls = cert.map(Tls::new).transpose()?;
    let blob = &image.layers[0];
    let moor = match cert {
        Some(c) => {
            let (cert, key) = (c.cert.to_string_lossy(), c.key.to_string_lossy());
            Moor::start_fresh(
                &moor_bin(),
                &["--tls-cert-file", &cert, "--tls-private-key-file", &key],
            )
        }
        None => Moor::start_fresh(&moor_bin(), &["--plain-http"]),
    };
    let dist = distribution_with(None, cert)?;
    let moor_t = Target::with_tls(&moor.host(), Some(basic(&moor.token)), tls.as_ref());
    let http = client()?;
    push(&moor_t.http(&http), &moor_t, "default/blob", "1", image)
        .await
        .context("pushing to moor")?;
    let dist_t = Target::with_tls(&dist.host, None, tls.as_ref());
    push(&dist_t.http(&http), &dist_t, "bench/blob", "1", image)
        .await
        .context("pushing to distribution")?;
    // nginx serves the same bytes as files under the same paths.
    let nginx = Nginx::start_with(
        &[
            (&format!("v2/nginx/blob/blobs/{}", blob.digest), &blob.data),
            ("v2/nginx/blob/manifests/1", &image.manifest.data),
        ],
        cert,
    )?;
    let nginx_t = Target::with_tls(&nginx.host, None, tls.as_ref());
    let server = |name, target: &Target, pid| Server {
        name,
        target: target.clone(),
        pid,
    };
    if run("a") {
        let servers = [
            (
                server("moor", &moor_t, moor.pid()),
                "default/blob".to_string(),
            ),
            (
                server("distribution", &dist_t, dist.pid()),
                "bench/blob".to_string(),
            ),
            (
                server("nginx", &nginx_t, nginx.child.id()),
                "nginx/blob".to_string(),
            ),
        ];
        measure_a(
            args,
            transport,
            &servers,
            &blob.digest,
            blob.data.len() as u64,
            goals,
        )
        .await?;
    }
    if run("b") {
        let servers = [
            (
                server("moor", &moor_t, moor.pid()),
                "/v2/default/blob/manifests/1".to_string(),
            ),
            (
                server("distribution", &dist_t, dist.pid()),
                "/v2/bench/blob/manifests/1".to_string(),
            ),
            (
                server("nginx (small file)", &nginx_t, nginx.child.id()),
                "/v2/nginx/blob/manifests/1".to_string(),
            ),
        ];
        measure_b(args, transport, &servers, goals).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let run = |m: &str| args.only.iter().any(|o| o == m);
    let http = client()?;
    let mut goals = Vec::new();
    println!(
        "bench registry: moor vs distribution 2.8.2 vs nginx on loopback; (a), (b) over {}; (c), (d), (e) over plain HTTP",
        args.transport.join(" and ")
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "  {cores} cores; load average at the start {}; moor: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        moor_bin().display()
    );
    let dist = distribution(None)?;

    if run("a") || run("b") {
        let image = make_image(1, args.blob_mib * MIB, 1);
        for transport in &args.transport {
            let cert = match transport.as_str() {
                "tls" => Some(TestCert::p256()?),
                "plain" => None,
                other => bail!("--transport: {other} is neither tls nor plain"),
            };
            measure_ab(&args, &image, cert.as_ref(), &mut goals).await?;
        }
    }
    if run("c") || run("d") || run("e") {
        let image = make_image(args.layers, args.layer_mib * MIB, 2);
        push(&http, &Target::new(&dist.host, None), "app/x", "1", &image)
            .await
            .context("pushing the image to the upstream")?;
        if run("c") {
            measure_c(&args, &dist, &image, &mut goals).await?;
        }
        if run("d") {
            measure_d(&args, &dist, &image, &mut goals).await?;
        }
        if run("e") {
            replicas::measure_e(&args, &dist, &image, &mut goals).await?;
        }
    }
    println!("\ngoals:");
    for g in &goals {
        println!("  {:<58} {:>8}   {}", g.name, g.value, verdict(g.met));
    }
    Ok(())
}
