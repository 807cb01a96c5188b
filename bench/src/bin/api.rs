//! `bench/run api`: creates N image streams with 5 spec tags each through the API
//! (concurrently), then lists them all repeatedly. Reports the create rate, list
//! latency (p50, p95, p99) and the server's peak RSS. `--store etcd` starts an etcd of its
//! own and keeps the objects there; `--replicas 3` (etcd only) starts three `moor
//! serve` on it and spreads the creates and the lists over them round-robin;
//! `--moor-arg` passes a flag to `moor serve`.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use clap::Parser;
use futures::StreamExt;
use moor_bench::{Moor, moor_bin, ms, quantile};

#[derive(Parser)]
struct Args {
    /// Number of image streams.
    #[arg(long, default_value_t = 10_000)]
    streams: usize,
    /// Concurrent create requests.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Full lists to time.
    #[arg(long, default_value_t = 20)]
    lists: usize,
    /// `sqlite` (the default store), `etcd` (an etcd started here), or a `--store` URL.
    #[arg(long, default_value = "sqlite")]
    store: String,
    /// `moor serve` processes on the one store (more than one needs etcd).
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// An extra flag for `moor serve` (repeatable), e.g. `--moor-arg=--watch-cache-bytes=0`.
    #[arg(long = "moor-arg", allow_hyphen_values = true)]
    moor_args: Vec<String>,
}

use moor_testkit::server::IS;

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    // Kept until the end: the etcd the server stores into.
    let mut _etcd = None;
    let mut extra: Vec<String> = args.moor_args.clone();
    match args.store.as_str() {
        "sqlite" => {}
        "etcd" => {
            let etcd = moor_testkit::etcd::Etcd::start()
                .ok_or_else(|| anyhow::anyhow!("etcd is needed (apt-get install etcd-server)"))?;
            extra.push(format!("--store=etcd://127.0.0.1:{}", etcd.client_port));
            _etcd = Some(etcd);
        }
        url => extra.push(format!("--store={url}")),
    }
    ensure!(
        args.replicas >= 1 && (args.replicas == 1 || args.store != "sqlite"),
        "--replicas above 1 needs a shared store: --store etcd"
    );
    if args.replicas > 1 && !extra.iter().any(|a| a.starts_with("--registry-hostname")) {
        // Replicas behind one address share its name (docs/replicas.md).
        extra.push("--registry-hostname=registry.moor.test:443".into());
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    // One after the other: the first creates the shared identity (admin token, CA).
    let replicas: Vec<Moor> = (0..args.replicas)
        .map(|_| Moor::start_fresh(&moor_bin(), &extra))
        .collect();
    let moor = &replicas[0];
    let client = moor.client_pool(args.concurrency);
    let started = Instant::now();
    let results: Vec<Result<()>> = futures::stream::iter(0..args.streams)
        .map(|i| {
            let client = client.clone();
            let replica = &replicas[i % replicas.len()];
            let (url, token) = (replica.url.clone(), replica.token.clone());
            async move {
                // Reference tags: recorded without contacting any registry, so the
                // benchmark measures the API server and sends no traffic anywhere.
                let tags: Vec<serde_json::Value> = (0..5)
                    .map(|t| serde_json::json!({"name": format!("v{t}"), "reference": true,
                        "from": {"kind": "DockerImage", "name": format!("quay.io/bench/app{i}:v{t}")}}))
                    .collect();
                let body = serde_json::json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
                    "metadata": {"name": format!("stream-{i:05}"), "labels": {"bench": "api"}},
                    "spec": {"lookupPolicy": {"local": true}, "tags": tags}});
                let r = client.post(format!("{url}{IS}")).bearer_auth(&token).json(&body).send().await?;
                ensure!(r.status().as_u16() == 201, "create answered {}", r.status());
                Ok(())
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    for r in results {
        r?;
    }
    let create_secs = started.elapsed().as_secs_f64();
    // Wait until the import controller has recorded every reference tag, so the lists
    // below measure a quiet server with full objects.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let v: serde_json::Value = client
            .get(format!("{}{IS}", moor.url))
            .bearer_auth(&moor.token)
            .send()
            .await?
            .json()
            .await?;
        let done = v["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|s| s["status"]["tags"].as_array().is_some_and(|t| t.len() == 5))
                    .count()
            })
            .unwrap_or(0);
        if done == args.streams {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "only {done} streams have status after 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut samples: Vec<Duration> = Vec::new();
    let mut bytes = 0;
    for i in 0..args.lists {
        let replica = &replicas[i % replicas.len()];
        let t = Instant::now();
        let body = client
            .get(format!("{}{IS}", replica.url))
            .bearer_auth(&replica.token)
            .send()
            .await?
            .bytes()
            .await?;
        samples.push(t.elapsed());
        bytes = body.len();
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        ensure!(
            v["items"].as_array().map(Vec::len) == Some(args.streams),
            "list is incomplete"
        );
    }
    println!(
        "bench api: {} image streams x 5 spec tags, {} concurrent creates, store {}, {} replica(s)",
        args.streams,
        args.concurrency,
        args.store,
        replicas.len()
    );
    println!(
        "  create rate:        {:.0} streams/s ({:.1} s total)",
        args.streams as f64 / create_secs,
        create_secs
    );
    println!("  list all p50:       {}", ms(quantile(&mut samples, 0.50)));
    println!("  list all p95:       {}", ms(quantile(&mut samples, 0.95)));
    println!("  list all p99:       {}", ms(quantile(&mut samples, 0.99)));
    println!("  list size:          {:.1} MiB", bytes as f64 / 1048576.0);
    let peaks: Vec<String> = replicas
        .iter()
        .map(|r| format!("{:.1}", r.peak_rss_mib().unwrap_or(f64::NAN)))
        .collect();
    println!("  server peak RSS:    {} MiB", peaks.join(" / "));
    Ok(())
}
