//! `bench/run follow`: R repositories (default 10) of a local CNCF distribution, each
//! with K semver tags (default 30), and T tags per repository (default 100, so 1,000
//! in all) that follow ranges over them (`moor.io/follow-semver`), scheduled with a
//! 20 s interval. Through a counting proxy it measures, over M intervals (default 3)
//! after the initial import and one interval of warm-up: tag list requests per
//! repository per interval and manifest requests of unchanged repositories (goal: one
//! conditional tag-list request per repository per interval, nothing else), and the
//! time from an upstream push of a new release in range to the tags that follow it
//! moving (first and last of the T tags of that repository), and to each move's
//! CloudEvent arriving at a receiver (the test kit's) that a Notification subscribed
//! to the stream's `TagUpdated` events (p50 and max over the T tags).
//!
//! Smaller runs: `bench/run follow -- --repositories 2 --tags 50 --interval 10s`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use clap::Parser;
use moor_bench::{Moor, distribution, moor_bin, ms, push_image, quantile, start_proxy};
use moor_testkit::receiver::Receiver;
use moor_testkit::server::IS;
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// Repositories in the distribution, one image stream each.
    #[arg(long, default_value_t = 10)]
    repositories: usize,
    /// Followed tags per repository (per stream).
    #[arg(long, default_value_t = 100)]
    tags: usize,
    /// Semver tags in each upstream repository.
    #[arg(long, default_value_t = 30)]
    upstream_tags: usize,
    /// `--scheduled-import-interval`, in seconds.
    #[arg(long, default_value = "20s", value_parser = parse_secs)]
    interval: Duration,
    /// Intervals measured.
    #[arg(long, default_value_t = 3)]
    measure: u32,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim_end_matches('s')
        .parse()
        .map_err(|_| format!("{s:?}: expected seconds, e.g. 20s"))?;
    Ok(Duration::from_secs_f64(secs))
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The ranges the followed tags use, in turn; all pick the highest 1.0.x.
const RANGES: [&str; 3] = [">=1.0.0 <1.1.0", "1.0.x", "~1.0"];

async fn get_manifest(
    http: &reqwest::Client,
    host: &str,
    repo: &str,
    tag: &str,
) -> Result<bytes::Bytes> {
    let r = http
        .get(format!("http://{host}/v2/{repo}/manifests/{tag}"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await?;
    ensure!(r.status().is_success(), "GET manifest: {}", r.status());
    Ok(r.bytes().await?)
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

/// The newest image of every tag of stream `name`.
async fn heads_of(
    client: &reqwest::Client,
    moor: &Moor,
    name: &str,
) -> Result<HashMap<String, String>> {
    let s: Value = client
        .get(format!("{}{IS}/{name}", moor.url))
        .bearer_auth(&moor.token)
        .send()
        .await?
        .json()
        .await?;
    Ok(s["status"]["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some((
                t["tag"].as_str()?.to_string(),
                t["items"][0]["image"].as_str()?.to_string(),
            ))
        })
        .collect())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let (repos, per_repo, k) = (args.repositories, args.tags, args.upstream_tags.max(1));
    let interval = args.interval;
    let dist = distribution(None)?;
    let http = reqwest::Client::builder().no_proxy().build()?;

    let setup = Instant::now();
    for r in 0..repos {
        push_image(&format!("{}/bench/f{r}:1.0.0", dist.host), 4096, 1)?;
        let base = get_manifest(&http, &dist.host, &format!("bench/f{r}"), "1.0.0").await?;
        for i in 1..k {
            put_manifest(
                &http,
                &dist.host,
                &format!("bench/f{r}"),
                &format!("1.0.{i}"),
                &base,
            )
            .await?;
        }
    }
    // The new release, pushed under a name no range matches until it is re-tagged.
    push_image(&format!("{}/bench/f0:next", dist.host), 4096, 2)?;
    let next = get_manifest(&http, &dist.host, "bench/f0", "next").await?;
    let next_digest = format!("sha256:{}", {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&next))
    });
    eprintln!(
        "upstream: {repos} repositories x {k} tags ({:.1} s)",
        setup.elapsed().as_secs_f64()
    );

    let (proxy, hits) = start_proxy(&dist.host, None).await?;
    let interval_flag = format!("{}ms", interval.as_millis());
    let qps = format!("{proxy}=1000");
    let moor = Moor::start_fresh(
        &moor_bin(),
        &[
            "--insecure-registry",
            &proxy,
            "--scheduled-import-interval",
            &interval_flag,
            "--registry-qps",
            &qps,
            "--allow-private-notification-targets",
        ],
    );
    let client = moor.client_pool(8);
    let created = Instant::now();
    for r in 0..repos {
        let tags: Vec<Value> = (0..per_repo)
            .map(|t| {
                json!({"name": format!("t{t}"),
                    "annotations": {"moor.io/follow-semver": RANGES[t % RANGES.len()]},
                    "from": {"kind": "DockerImage", "name": format!("{proxy}/bench/f{r}")},
                    "importPolicy": {"scheduled": true}})
            })
            .collect();
        let resp = client
            .post(format!("{}{IS}", moor.url))
            .bearer_auth(&moor.token)
            .json(&json!({"metadata": {"name": format!("f{r}")}, "spec": {"tags": tags}}))
            .send()
            .await?;
        ensure!(
            resp.status().as_u16() == 201,
            "creating f{r}: {}",
            resp.status()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(1800);
    for r in 0..repos {
        while heads_of(&client, &moor, &format!("f{r}")).await?.len() < per_repo {
            if Instant::now() > deadline {
                bail!("f{r} not imported after 30 minutes");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    eprintln!(
        "moor: {} followed tags imported in {:.1} s; warming up for one interval",
        repos * per_repo,
        created.elapsed().as_secs_f64()
    );
    // The receiver, subscribed to the moves of f0's tags from now on.
    let receiver = Receiver::start().await;
    let resp = client
        .post(format!(
            "{}/apis/moor.io/v1/namespaces/default/notifications",
            moor.url
        ))
        .bearer_auth(&moor.token)
        .json(&json!({"metadata": {"name": "f0"},
            "spec": {"url": receiver.url, "streams": ["f0"], "events": ["TagUpdated"]}}))
        .send()
        .await?;
    ensure!(
        resp.status().as_u16() == 201,
        "creating the Notification: {}",
        resp.status()
    );
    tokio::time::sleep(interval).await;

    let start = Instant::now();
    let window = interval * args.measure;
    tokio::time::sleep(window / 2).await;
    put_manifest(&http, &dist.host, "bench/f0", &format!("1.0.{k}"), &next).await?;
    let pushed = Instant::now();
    let mut moved: HashMap<String, Duration> = HashMap::new();
    while moved.len() < per_repo && pushed.elapsed() < 3 * interval {
        for (tag, image) in heads_of(&client, &moor, "f0").await? {
            if image == next_digest {
                moved.entry(tag).or_insert_with(|| pushed.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(window.saturating_sub(start.elapsed())).await;
    let end = Instant::now();
    // Each tag's first event naming the new release, timed from the push.
    let of_next =
        |r: &&moor_testkit::receiver::Received| r.json["data"]["newDigest"] == next_digest.as_str();
    if moved.len() == per_repo {
        receiver
            .wait_for(Duration::from_secs(60), |got, _| {
                got.iter().filter(of_next).count() >= per_repo
            })
            .await;
    }
    let mut events: HashMap<String, Duration> = HashMap::new();
    for r in receiver.received().await {
        if r.json["data"]["newDigest"] == next_digest.as_str()
            && let Some(tag) = r.json["data"]["tag"].as_str()
        {
            events
                .entry(tag.to_string())
                .or_insert_with(|| r.at.saturating_duration_since(pushed));
        }
    }
    let mut event_times: Vec<Duration> = events.values().copied().collect();

    let all = hits.all();
    let in_window: Vec<_> = all.iter().filter(|h| h.at >= start && h.at < end).collect();
    let intervals = (end - start).as_secs_f64() / interval.as_secs_f64();
    let mut lists = Vec::new();
    let mut others = 0;
    for r in 1..repos {
        let prefix = format!("/v2/bench/f{r}/");
        let of_repo: Vec<_> = in_window
            .iter()
            .filter(|h| h.path.starts_with(&prefix))
            .collect();
        let l = of_repo
            .iter()
            .filter(|h| h.path.ends_with("/tags/list"))
            .count();
        lists.push(l as f64 / intervals);
        others += of_repo.len() - l;
    }
    let f0: Vec<_> = in_window
        .iter()
        .filter(|h| h.path.starts_with("/v2/bench/f0/"))
        .collect();
    let f0_lists = f0.iter().filter(|h| h.path.ends_with("/tags/list")).count();
    let mut times: Vec<Duration> = moved.values().copied().collect();
    times.sort();
    println!(
        "followed tags: {} ({repos} repositories x {per_repo}), {k} upstream tags each, interval {:?}",
        repos * per_repo,
        interval
    );
    println!(
        "measured: {:.1} s ({intervals:.2} intervals)",
        (end - start).as_secs_f64()
    );
    if !lists.is_empty() {
        let mean = lists.iter().sum::<f64>() / lists.len() as f64;
        let max = lists.iter().cloned().fold(0.0, f64::max);
        println!(
            "unchanged repositories: tag list GETs per repository per interval: mean {mean:.2}, max {max:.2}; other requests: {others}"
        );
        println!(
            "unchanged repositories: requests per followed-tag check: {:.3}",
            mean / per_repo as f64
        );
    }
    println!(
        "changed repository f0: {f0_lists} tag list GETs, {} other requests (the new release's manifest and config)",
        f0.len() - f0_lists
    );
    match (times.first(), times.last()) {
        (Some(first), Some(last)) => println!(
            "push to tag moved: first {:.1} s, last {:.1} s, {} of {per_repo} tags moved",
            first.as_secs_f64(),
            last.as_secs_f64(),
            times.len()
        ),
        _ => println!("push to tag moved: no tag moved within 3 intervals"),
    }
    if event_times.is_empty() {
        println!("push to CloudEvent: no event arrived");
    } else {
        println!(
            "push to CloudEvent arrival: p50 {}, max {}, first {}; {} of {per_repo} tags",
            ms(quantile(&mut event_times, 0.5)),
            ms(quantile(&mut event_times, 1.0)),
            ms(quantile(&mut event_times, 0.0)),
            event_times.len()
        );
    }
    ensure!(times.len() == per_repo, "not every tag of f0 moved");
    ensure!(
        event_times.len() == per_repo,
        "not every move of f0 arrived as a CloudEvent"
    );
    Ok(())
}
