//! `bench/run import`: imports N tags (R repositories x N/R tags, all single-platform)
//! from a local CNCF distribution through image streams, and reports tags per second
//! and upstream requests per tag (moor's own `moor_upstream_requests_total`).
//! Goal: at most 3 requests per single-arch tag (manifest, config) plus one token per
//! repository on registries that use tokens (the local one does not).
//!
//! With `--registries R` the repositories are spread over R registries: counting
//! proxies in front of the one distribution, each its own `host:port`; with
//! `--hanging K` the first K of them accept connections and never answer. It then
//! reports when the tags of the healthy registries were all imported (issue 9: one
//! hanging registry must not delay the others).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Parser;
use moor_bench::{Moor, counter_sum, distribution, moor_bin, push_image};

#[derive(Parser)]
struct Args {
    /// Tags to import in all.
    #[arg(long, default_value_t = 1000)]
    tags: usize,
    /// Repositories they are spread over (one image stream each).
    #[arg(long, default_value_t = 10)]
    repositories: usize,
    /// Registries the repositories are spread over (1: the distribution itself;
    /// more: counting proxies in front of it).
    #[arg(long, default_value_t = 1)]
    registries: usize,
    /// How many of those registries accept connections and never answer.
    #[arg(long, default_value_t = 0)]
    hanging: usize,
}

/// A registry on loopback that accepts connections and never answers.
async fn hanging_registry() -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let host = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    Ok(host)
}

use moor_testkit::server::IS;

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let per_repo = args.tags.div_ceil(args.repositories);
    let dist = distribution(None)?;
    let http = reqwest::Client::new();
    // One real push per repository, then the other tags by re-putting its manifest
    // (distinct images are not needed to measure the import path).
    for r in 0..args.repositories {
        let repo = format!("bench/app{r}");
        push_image(&format!("{}/{repo}:t0", dist.host), 4096, r as u64)?;
        let accept = "application/vnd.oci.image.manifest.v1+json";
        let resp = http
            .get(format!("http://{}/v2/{repo}/manifests/t0", dist.host))
            .header("accept", accept)
            .send()
            .await?;
        let mt = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(accept)
            .to_string();
        let manifest = resp.bytes().await?;
        for t in 1..per_repo {
            let put = http
                .put(format!("http://{}/v2/{repo}/manifests/t{t}", dist.host))
                .header("content-type", &mt)
                .body(manifest.clone())
                .send()
                .await?;
            if !put.status().is_success() {
                bail!("re-tagging answered {}", put.status());
            }
        }
    }
    if args.hanging >= args.registries.max(1) {
        bail!("--hanging must leave at least one healthy registry");
    }
    // Registry i of R: the distribution itself when R is 1, else a proxy in front of
    // it; the first `hanging` never answer (their streams sort first, so that a
    // controller working in name order would meet them first).
    let mut hosts = Vec::new();
    let mut _proxies = Vec::new();
    for i in 0..args.registries.max(1) {
        if i < args.hanging {
            hosts.push(hanging_registry().await?);
        } else if args.registries <= 1 {
            hosts.push(dist.host.clone());
        } else {
            let (host, hits) = moor_bench::start_proxy(&dist.host, None).await?;
            hosts.push(host);
            _proxies.push(hits);
        }
    }
    let registry_of = |r: usize| r % hosts.len();
    let mut flags = Vec::new();
    for h in &hosts {
        flags.push("--insecure-registry");
        flags.push(h.as_str());
    }
    let moor = Moor::start_fresh(&moor_bin(), &flags);
    let client = moor.client_pool(8);
    let healthy_streams: std::collections::HashSet<String> = (0..args.repositories)
        .filter(|r| registry_of(*r) >= args.hanging)
        .map(|r| format!("app{r}"))
        .collect();
    let started = Instant::now();
    for r in 0..args.repositories {
        let host = &hosts[registry_of(r)];
        let tags: Vec<serde_json::Value> = (0..per_repo)
            .map(|t| serde_json::json!({"name": format!("t{t}"), "from": {"kind": "DockerImage", "name": format!("{host}/bench/app{r}:t{t}")}}))
            .collect();
        let body =
            serde_json::json!({"metadata": {"name": format!("app{r}")}, "spec": {"tags": tags}});
        let resp = client
            .post(format!("{}{IS}", moor.url))
            .bearer_auth(&moor.token)
            .json(&body)
            .send()
            .await?;
        if resp.status().as_u16() != 201 {
            bail!("creating the stream answered {}", resp.status());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    let imported = loop {
        let list: serde_json::Value = client
            .get(format!("{}{IS}", moor.url))
            .bearer_auth(&moor.token)
            .send()
            .await?
            .json()
            .await?;
        let done: usize = list["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|s| {
                        s["metadata"]["name"]
                            .as_str()
                            .is_some_and(|n| healthy_streams.contains(n))
                    })
                    .map(|s| {
                        s["status"]["tags"]
                            .as_array()
                            .map(|t| {
                                t.iter()
                                    .filter(|t| {
                                        t["items"].as_array().is_some_and(|i| !i.is_empty())
                                    })
                                    .count()
                            })
                            .unwrap_or(0)
                    })
                    .sum()
            })
            .unwrap_or(0);
        if done >= per_repo * healthy_streams.len() {
            break done;
        }
        if Instant::now() > deadline {
            bail!("only {done} tags imported after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let secs = started.elapsed().as_secs_f64();
    let metrics = client
        .get(format!("{}/metrics", moor.url))
        .bearer_auth(&moor.token)
        .send()
        .await?
        .text()
        .await?;
    let requests = counter_sum(&metrics, "moor_upstream_requests_total", &[]);
    println!(
        "bench import: {imported} tags over {} repositories from a local distribution, {} registries ({} hanging)",
        args.repositories,
        hosts.len(),
        args.hanging
    );
    println!("  healthy tags all imported:  {secs:.2} s");
    println!(
        "  tags per second:           {:.0} ({secs:.1} s)",
        imported as f64 / secs
    );
    println!(
        "  upstream requests per tag: {:.2} (goal <= 3)",
        requests / imported as f64
    );
    println!(
        "  moor peak RSS:             {:.1} MiB",
        moor.peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}
