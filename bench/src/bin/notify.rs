//! `bench/run notify`: time from a tag move to the CloudEvent's arrival. Starts
//! `moor serve --allow-private-notification-targets` and a receiver on loopback (the
//! test kit's), subscribes it to every event of the namespace, then
//! 1. moves a tag N times, one at a time (an ImageStreamMapping, as a push or an
//!    import writes it), timing each from the request's start to the POST's arrival;
//! 2. moves tags of S streams M times each as fast as one client can, and times
//!    until every event has arrived, checking order per stream.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use clap::Parser;
use moor_bench::{Moor, moor_bin, report};
use moor_testkit::receiver::Receiver;
use moor_testkit::server::IS;
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// Tag moves timed one at a time.
    #[arg(long, default_value_t = 200)]
    moves: usize,
    /// Streams of the burst.
    #[arg(long, default_value_t = 10)]
    streams: usize,
    /// Moves per stream in the burst.
    #[arg(long, default_value_t = 100)]
    per_stream: usize,
}

const MAPPINGS: &str = "/apis/image.openshift.io/v1/namespaces/default/imagestreammappings";
const NOTIFICATIONS: &str = "/apis/moor.io/v1/namespaces/default/notifications";

async fn post(moor: &Moor, c: &reqwest::Client, path: &str, body: &Value) -> Result<()> {
    let r = c
        .post(format!("{}{path}", moor.url))
        .bearer_auth(&moor.token)
        .json(body)
        .send()
        .await?;
    ensure!(r.status().is_success(), "POST {path}: {}", r.status());
    Ok(())
}

fn mapping(stream: &str, n: usize) -> Value {
    let d = format!("sha256:{n:064x}");
    json!({"metadata": {"name": stream}, "tag": "latest",
           "image": {"metadata": {"name": d}, "dockerImageReference": format!("quay.io/bench/{stream}@{d}")}})
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let moor = Moor::start_fresh(&moor_bin(), &["--allow-private-notification-targets"]);
    let c = moor.client_pool(4);
    let receiver = Receiver::start().await;
    post(&moor, &c, NOTIFICATIONS, &json!({"metadata": {"name": "bench"}, "spec": {"url": receiver.url, "events": ["TagUpdated"]}})).await?;
    post(&moor, &c, IS, &json!({"metadata": {"name": "one"}})).await?;
    let mut samples = Vec::with_capacity(args.moves);
    let wall = Instant::now();
    for i in 0..args.moves {
        let start = Instant::now();
        post(&moor, &c, MAPPINGS, &mapping("one", i + 1)).await?;
        receiver
            .wait_for(Duration::from_secs(60), |got, _| got.len() > i)
            .await;
        samples.push(start.elapsed());
    }
    println!(
        "bench notify: tag move (ImageStreamMapping POST) to CloudEvent arrival, {} moves one at a time",
        args.moves
    );
    report("move -> event", &mut samples, wall.elapsed());

    let base = receiver.received().await.len();
    for s in 0..args.streams {
        post(
            &moor,
            &c,
            IS,
            &json!({"metadata": {"name": format!("s{s}")}}),
        )
        .await?;
    }
    let total = args.streams * args.per_stream;
    let start = Instant::now();
    let mut sent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in 0..args.per_stream {
        for s in 0..args.streams {
            let n = 1_000_000 + i * args.streams + s;
            let stream = format!("s{s}");
            post(&moor, &c, MAPPINGS, &mapping(&stream, n)).await?;
            sent.entry(stream)
                .or_default()
                .push(format!("sha256:{n:064x}"));
        }
    }
    let written = start.elapsed();
    let got = receiver
        .wait_for(Duration::from_secs(600), |got, _| got.len() >= base + total)
        .await;
    let all = start.elapsed();
    let mut arrived: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &got[base..] {
        let s = r.json["data"]["imageStream"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let d = r.json["data"]["newDigest"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let list = arrived.entry(s).or_default();
        if list.last() != Some(&d) {
            list.push(d);
        }
    }
    println!(
        "  burst: {total} moves on {} streams written in {:.2} s; all events arrived {:.2} s after the first write ({:.0} events/s); order per stream kept: {}",
        args.streams,
        written.as_secs_f64(),
        all.as_secs_f64(),
        total as f64 / all.as_secs_f64(),
        arrived == sent
    );
    if let Some(rss) = moor.peak_rss_mib() {
        println!("  moor peak RSS: {rss:.0} MiB");
    }
    Ok(())
}
