//! `bench/run scheduled`: keeps R repositories x T tags (default 100 x 100 = 10,000)
//! of a local CNCF distribution scheduled with a 60 s interval, and measures the
//! steady state over M intervals (default 3) through a counting proxy in front of the
//! distribution: checks per second sustained, tags checked in every interval, upstream
//! requests per check of an unchanged tag, lateness of checks (p99, from the gaps
//! between a tag's checks as the registry sees them, and from moor's own
//! `moor_scheduled_check_lag_seconds`), moor's CPU share (`/proc/<pid>/stat`), and
//! how long a few changed tags take to show up. Goals (issue 5): every tag checked
//! every interval, at most one request per unchanged tag, p99 lateness under 10% of
//! the interval. OpenShift's ceiling is 60 imports a minute.
//!
//! Smaller runs: `bench/run scheduled -- --repositories 20 --tags 50 --interval 20s`
//! (arguments after `--` go to every benchmark named).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use futures::StreamExt;
use moor_bench::{
    Hit, Moor, counter_sum, distribution, moor_bin, peak_rss_mib, push_image, start_proxy,
};
use moor_testkit::peers::rss_mib;
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// Repositories in the distribution, one image stream each.
    #[arg(long, default_value_t = 100)]
    repositories: usize,
    /// Scheduled tags per repository.
    #[arg(long, default_value_t = 100)]
    tags: usize,
    /// `--scheduled-import-interval`.
    #[arg(long, default_value = "60s", value_parser = parse_secs)]
    interval: Duration,
    /// Intervals measured in the steady state.
    #[arg(long, default_value_t = 3)]
    measure: u32,
    /// Tags changed upstream in the middle of the measurement.
    #[arg(long, default_value_t = 10)]
    changes: usize,
    /// `--registry-qps` for the distribution (0: no limit).
    #[arg(long, default_value_t = 1000.0)]
    registry_qps: f64,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim_end_matches('s')
        .parse()
        .map_err(|_| format!("{s:?}: expected seconds, e.g. 60s"))?;
    Ok(Duration::from_secs_f64(secs))
}

use moor_testkit::server::IS;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The manifest of `repo:tag` and the blob digests it names (config and layers).
async fn manifest(
    http: &reqwest::Client,
    host: &str,
    repo_tag: &str,
) -> Result<(bytes::Bytes, Vec<String>)> {
    let (repo, tag) = repo_tag.rsplit_once(':').context("repo:tag")?;
    let resp = http
        .get(format!("http://{host}/v2/{repo}/manifests/{tag}"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await?;
    ensure!(
        resp.status().is_success(),
        "GET manifest: {}",
        resp.status()
    );
    let bytes = resp.bytes().await?;
    let v: Value = serde_json::from_slice(&bytes)?;
    let mut blobs = vec![
        v["config"]["digest"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    ];
    for l in v["layers"].as_array().into_iter().flatten() {
        blobs.push(l["digest"].as_str().unwrap_or_default().to_string());
    }
    Ok((bytes, blobs))
}

/// Makes `blobs` of `from` available in `repo` (cross-repository mounts).
async fn mount(
    http: &reqwest::Client,
    host: &str,
    repo: &str,
    from: &str,
    blobs: &[String],
) -> Result<()> {
    for d in blobs {
        let r = http
            .post(format!(
                "http://{host}/v2/{repo}/blobs/uploads/?mount={d}&from={from}"
            ))
            .send()
            .await?;
        ensure!(r.status().as_u16() == 201, "mounting {d}: {}", r.status());
    }
    Ok(())
}

async fn put_manifest(
    http: &reqwest::Client,
    host: &str,
    repo: &str,
    tag: &str,
    manifest: &bytes::Bytes,
) -> Result<()> {
    let r = http
        .put(format!("http://{host}/v2/{repo}/manifests/{tag}"))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await?;
    ensure!(r.status().is_success(), "PUT manifest: {}", r.status());
    Ok(())
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let tck: f64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0);
    Some((utime + stime) / tck)
}

/// Cumulative buckets (`le`, count) of a Prometheus histogram in `/metrics` text.
fn buckets(metrics: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, value) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, value.trim().parse().ok()?))
        })
        .collect()
}

/// The upper bound of the bucket holding the `q` quantile of the observations made
/// between two snapshots.
fn histogram_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> f64 {
    let diff: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| {
            let b = before
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0.0, |(_, n)| *n);
            (*le, n - b)
        })
        .collect();
    let total = diff.last().map_or(0.0, |(_, n)| *n);
    diff.iter()
        .find(|(_, n)| *n >= q * total)
        .map_or(f64::NAN, |(le, _)| *le)
}

async fn metrics(client: &reqwest::Client, moor: &Moor) -> Result<String> {
    Ok(client
        .get(format!("{}/metrics", moor.url))
        .bearer_auth(&moor.token)
        .send()
        .await?
        .text()
        .await?)
}

/// Images of each tag's history, by (stream, tag): of every stream, or of `only`.
async fn histories(
    client: &reqwest::Client,
    moor: &Moor,
    only: Option<&[String]>,
) -> Result<HashMap<(String, String), Vec<String>>> {
    let items: Vec<Value> = match only {
        None => {
            let list: Value = client
                .get(format!("{}{IS}", moor.url))
                .bearer_auth(&moor.token)
                .send()
                .await?
                .json()
                .await?;
            list["items"].as_array().cloned().unwrap_or_default()
        }
        Some(names) => {
            let mut items = Vec::new();
            for n in names {
                items.push(
                    client
                        .get(format!("{}{IS}/{n}", moor.url))
                        .bearer_auth(&moor.token)
                        .send()
                        .await?
                        .json()
                        .await?,
                );
            }
            items
        }
    };
    let mut out = HashMap::new();
    for s in &items {
        let name = s["metadata"]["name"].as_str().unwrap_or_default();
        for t in s["status"]["tags"].as_array().into_iter().flatten() {
            let images = t["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| i["image"].as_str().unwrap_or_default().to_string())
                .collect();
            out.insert(
                (
                    name.to_string(),
                    t["tag"].as_str().unwrap_or_default().to_string(),
                ),
                images,
            );
        }
    }
    Ok(out)
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let (repos, per_repo) = (args.repositories, args.tags);
    let total = repos * per_repo;
    let interval = args.interval;
    let dist = distribution(None)?;
    let http = reqwest::Client::builder().no_proxy().build()?;

    // Content: one image (and a second one for the changes), mounted into every
    // repository and tagged T times there.
    let setup = Instant::now();
    push_image(&format!("{}/bench/r0:t0", dist.host), 4096, 1)?;
    push_image(&format!("{}/bench/r0:changed", dist.host), 4096, 2)?;
    let (base, base_blobs) = manifest(&http, &dist.host, "bench/r0:t0").await?;
    let (changed, changed_blobs) = manifest(&http, &dist.host, "bench/r0:changed").await?;
    let blobs: Vec<String> = base_blobs.iter().chain(&changed_blobs).cloned().collect();
    let jobs: Vec<(usize, usize)> = (0..repos)
        .flat_map(|r| (0..per_repo).map(move |t| (r, t)))
        .collect();
    for r in 1..repos {
        mount(
            &http,
            &dist.host,
            &format!("bench/r{r}"),
            "bench/r0",
            &blobs,
        )
        .await?;
    }
    let puts: Vec<Result<()>> = futures::stream::iter(jobs.iter().copied())
        .map(|(r, t)| {
            let (http, host, base) = (http.clone(), dist.host.clone(), base.clone());
            async move {
                put_manifest(
                    &http,
                    &host,
                    &format!("bench/r{r}"),
                    &format!("t{t}"),
                    &base,
                )
                .await
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    puts.into_iter().collect::<Result<Vec<()>>>()?;
    eprintln!(
        "upstream: {total} tags in {repos} repositories ({:.1} s)",
        setup.elapsed().as_secs_f64()
    );

    let (proxy, hits) = start_proxy(&dist.host, None).await?;
    let interval_flag = format!("{}ms", interval.as_millis());
    let qps = format!("{proxy}={}", args.registry_qps);
    let moor = Moor::start_fresh(
        &moor_bin(),
        &[
            "--insecure-registry",
            &proxy,
            "--scheduled-import-interval",
            &interval_flag,
            "--registry-qps",
            &qps,
        ],
    );
    let client = moor.client_pool(8);
    let created = Instant::now();
    for r in 0..repos {
        let tags: Vec<Value> = (0..per_repo)
            .map(|t| {
                json!({"name": format!("t{t}"),
                "from": {"kind": "DockerImage", "name": format!("{proxy}/bench/r{r}:t{t}")},
                "importPolicy": {"scheduled": true}})
            })
            .collect();
        let resp = client
            .post(format!("{}{IS}", moor.url))
            .bearer_auth(&moor.token)
            .json(&json!({"metadata": {"name": format!("r{r}")}, "spec": {"tags": tags}}))
            .send()
            .await?;
        ensure!(
            resp.status().as_u16() == 201,
            "creating r{r}: {}",
            resp.status()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let h = histories(&client, &moor, None).await?;
        let done = h.values().filter(|i| !i.is_empty()).count();
        if done >= total {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {done} of {total} tags imported after 30 minutes");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let imported_in = created.elapsed();
    eprintln!(
        "moor: {total} tags imported in {:.1} s; warming up for one interval",
        imported_in.as_secs_f64()
    );
    tokio::time::sleep(interval).await;

    // The steady state.
    let pid = moor.pid();
    let start = Instant::now();
    let cpu0 = cpu_seconds(pid).context("reading /proc/<pid>/stat")?;
    let m0 = metrics(&client, &moor).await?;
    let window = interval * args.measure;
    // Change a few tags upstream half way through.
    tokio::time::sleep(window / 2).await;
    let changed_tags: Vec<(usize, usize)> = (0..args.changes.min(total))
        .map(|i| ((i * 7) % repos, (i * 13) % per_repo))
        .collect();
    let changed_at = Instant::now();
    for (r, t) in &changed_tags {
        put_manifest(
            &http,
            &dist.host,
            &format!("bench/r{r}"),
            &format!("t{t}"),
            &changed,
        )
        .await?;
    }
    let changed_digest = format!("sha256:{}", {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&changed))
    });
    let mut detected: HashMap<(usize, usize), Duration> = HashMap::new();
    let mut changed_streams: Vec<String> =
        changed_tags.iter().map(|(r, _)| format!("r{r}")).collect();
    changed_streams.sort();
    changed_streams.dedup();
    while detected.len() < changed_tags.len() && changed_at.elapsed() < 3 * interval {
        let h = histories(&client, &moor, Some(&changed_streams)).await?;
        for (r, t) in &changed_tags {
            let key = (format!("r{r}"), format!("t{t}"));
            if h.get(&key).and_then(|i| i.first()) == Some(&changed_digest) {
                detected
                    .entry((*r, *t))
                    .or_insert_with(|| changed_at.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rest = window.saturating_sub(start.elapsed());
    tokio::time::sleep(rest).await;
    let end = Instant::now();
    let cpu1 = cpu_seconds(pid).context("reading /proc/<pid>/stat")?;
    let m1 = metrics(&client, &moor).await?;
    let secs = (end - start).as_secs_f64();

    // What the registry saw.
    let hits = hits.all();
    let in_window: Vec<&Hit> = hits
        .iter()
        .filter(|h| h.at >= start && h.at < end)
        .collect();
    let changed_paths: Vec<String> = changed_tags
        .iter()
        .map(|(r, t)| format!("/v2/bench/r{r}/manifests/t{t}"))
        .collect();
    let heads = in_window.iter().filter(|h| h.method == "HEAD").count();
    let unchanged: Vec<&&Hit> = in_window
        .iter()
        .filter(|h| h.path.contains("/manifests/") && !changed_paths.contains(&h.path))
        .collect();
    let unchanged_checks = unchanged.iter().filter(|h| h.method == "HEAD").count();
    let unchanged_gets = unchanged.iter().filter(|h| h.method != "HEAD").count();
    let other_requests = in_window.len() - unchanged.len();
    // Per tag: the gaps between consecutive checks (over the whole run after import).
    let mut per_tag: HashMap<&str, Vec<Instant>> = HashMap::new();
    for h in hits
        .iter()
        .filter(|h| h.method == "HEAD" && h.at >= created + imported_in)
    {
        per_tag.entry(h.path.as_str()).or_default().push(h.at);
    }
    let mut lateness = Vec::new();
    let mut every_interval = 0;
    for path in (0..repos)
        .flat_map(|r| (0..per_repo).map(move |t| format!("/v2/bench/r{r}/manifests/t{t}")))
    {
        let times: Vec<Instant> = per_tag
            .get(path.as_str())
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|t| *t >= start - interval && *t < end)
                    .collect()
            })
            .unwrap_or_default();
        // Checked in every interval of the window: no gap over 1.1 intervals, and one
        // check within 1.1 intervals of each end.
        let slack = interval / 10;
        let covered = times
            .first()
            .is_some_and(|f| *f <= start + interval + slack)
            && times.last().is_some_and(|l| *l + interval + slack >= end)
            && times.windows(2).all(|w| w[1] - w[0] <= interval + slack);
        if covered {
            every_interval += 1;
        }
        for w in times.windows(2) {
            if w[0] >= start {
                lateness.push((w[1] - w[0]).as_secs_f64() - interval.as_secs_f64());
            }
        }
    }
    lateness.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let late_p99 = pct(&lateness, 0.99).max(0.0);
    let lag = "moor_scheduled_check_lag_seconds";
    let lag_p99 = histogram_quantile(&buckets(&m0, lag), &buckets(&m1, lag), 0.99);
    let lag_p50 = histogram_quantile(&buckets(&m0, lag), &buckets(&m1, lag), 0.50);
    let moor_gets = counter_sum(&m1, "moor_upstream_requests_total", &["method=\"GET\""])
        - counter_sum(&m0, "moor_upstream_requests_total", &["method=\"GET\""]);
    let cpu = (cpu1 - cpu0) / secs;
    let mut detect: Vec<f64> = detected.values().map(|d| d.as_secs_f64()).collect();
    detect.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = interval.as_secs_f64();

    println!(
        "bench scheduled: {total} scheduled tags over {repos} repositories, interval {i:.0} s, {:.0} s measured ({} intervals)",
        secs, args.measure
    );
    println!(
        "  initial import:                {:.1} s ({:.0} tags/s)",
        imported_in.as_secs_f64(),
        total as f64 / imported_in.as_secs_f64()
    );
    println!(
        "  checks per second sustained:   {:.1} (needed: {:.1}; OpenShift's ceiling: 1)",
        heads as f64 / secs,
        total as f64 / i
    );
    println!("  tags checked every interval:   {every_interval} / {total}");
    println!(
        "  requests per unchanged check:  {:.3} ({unchanged_checks} HEAD, {unchanged_gets} other on unchanged tags; goal <= 1)",
        (unchanged_checks + unchanged_gets) as f64 / unchanged_checks.max(1) as f64
    );
    println!(
        "  requests on the {} changed tags: {other_requests} (their HEADs, and one manifest and one config GET each)",
        changed_tags.len()
    );
    println!("  GETs counted by moor:          {moor_gets:.0}");
    println!(
        "  lateness p99 (registry view):  {:.3} s = {:.2}% of the interval (goal < 10%); p50 {:.3} s",
        late_p99,
        100.0 * late_p99 / i,
        pct(&lateness, 0.5)
    );
    println!(
        "  check lag (moor's histogram):  p50 <= {lag_p50} s, p99 <= {lag_p99} s (bucket bounds)"
    );
    println!(
        "  changed tags in history after: max {:.1} s, median {:.1} s ({} of {} seen; goal <= 2 intervals)",
        detect.last().copied().unwrap_or(f64::NAN),
        pct(&detect, 0.5),
        detected.len(),
        changed_tags.len()
    );
    println!(
        "  moor CPU:                      {:.1}% of one core ({:.1}% of this {}-core machine)",
        100.0 * cpu,
        100.0 * cpu / std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "  moor RSS:                      {:.1} MiB at the end, {:.1} MiB at the peak (the initial import)",
        rss_mib(pid).unwrap_or(f64::NAN),
        peak_rss_mib(pid).unwrap_or(f64::NAN)
    );
    Ok(())
}
