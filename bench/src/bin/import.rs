//! `bench/run import`: imports N tags (R repositories x N/R tags, all single-platform)
//! from a local CNCF distribution through image streams, and reports tags per second
//! and upstream requests per tag (moor's own `moor_upstream_requests_total`).
//! Goal: at most 3 requests per single-arch tag (manifest, config) plus one token per
//! repository on registries that use tokens (the local one does not).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Parser;
use moor_bench::{Distribution, Moor, counter_sum, moor_bin, push_image};

#[derive(Parser)]
struct Args {
    /// Tags to import in all.
    #[arg(long, default_value_t = 1000)]
    tags: usize,
    /// Repositories they are spread over (one image stream each).
    #[arg(long, default_value_t = 10)]
    repositories: usize,
}

const IS: &str = "/apis/image.openshift.io/v1/namespaces/default/imagestreams";

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let per_repo = args.tags.div_ceil(args.repositories);
    let dist = Distribution::start("")?;
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
    let moor = Moor::start(&moor_bin(), &["--insecure-registry", &dist.host])?;
    let client = moor.client(8)?;
    let started = Instant::now();
    for r in 0..args.repositories {
        let tags: Vec<serde_json::Value> = (0..per_repo)
            .map(|t| serde_json::json!({"name": format!("t{t}"), "from": {"kind": "DockerImage", "name": format!("{}/bench/app{r}:t{t}", dist.host)}}))
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
        if done >= per_repo * args.repositories {
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
        "bench import: {imported} tags over {} repositories from a local distribution",
        args.repositories
    );
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
