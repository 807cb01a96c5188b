//! `bench/run admission`: the image policy webhook under load. Sets up an image stream
//! with lookup on (history written through the status subresource, no registry), then
//! sends AdmissionReviews of a Pod (two short names to resolve, one full pull spec)
//! from N connections (one HTTP/1.1 keep-alive connection each, TLS, as kube-apiserver
//! calls webhooks), checks every answer is an allowed review with a patch, and reports
//! p50/p90/p99/max latency and throughput. For scale, the same connections then time
//! `GET /version`, the cheapest answer the same server gives.

use std::time::Duration;

use anyhow::{Result, ensure};
use clap::Parser;
use moor_bench::{Moor, load, moor_bin, quantile, report};
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// AdmissionReviews to send in all.
    #[arg(long, default_value_t = 10_000)]
    requests: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Extra image streams in the namespace (the store is not empty in real life).
    #[arg(long, default_value_t = 200)]
    streams: usize,
}

use moor_testkit::server::IS;

fn review(i: usize) -> Value {
    json!({
        "kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": format!("00000000-0000-4000-8000-{i:012}"),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": format!("keycloak-{i}"), "namespace": "default", "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:authenticated"]},
            "object": {"kind": "Pod", "apiVersion": "v1",
                "metadata": {"name": format!("keycloak-{i}"), "namespace": "default", "labels": {"app": "keycloak"}},
                "spec": {
                    "initContainers": [{"name": "migrate", "image": "keycloak:20.0", "imagePullPolicy": "IfNotPresent"}],
                    "containers": [
                        {"name": "keycloak", "image": "keycloak:20.0", "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                         "imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log"},
                        {"name": "sidecar", "image": "docker.io/library/busybox:1.36"}],
                    "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler"}},
            "oldObject": null, "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        }
    })
}

/// Creates stream `name` with lookup on and tag 20.0 pointing at a digest. The tag
/// has history only (no spec tag), so the importer never reaches for a registry.
async fn stream(moor: &Moor, client: &reqwest::Client, name: &str, n: usize) -> Result<()> {
    let body = json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": name}, "spec": {"lookupPolicy": {"local": true}}});
    let r = client
        .post(format!("{}{IS}", moor.url))
        .bearer_auth(&moor.token)
        .json(&body)
        .send()
        .await?;
    ensure!(r.status().as_u16() == 201, "create answered {}", r.status());
    let mut s: Value = r.json().await?;
    // A history of several entries, as a long-lived tag has.
    let items: Vec<Value> = (0..8)
        .map(|k| {
            let d = format!("sha256:{:064x}", n * 16 + k);
            json!({"created": "2026-01-01T00:00:00Z", "image": d, "generation": 1,
                   "dockerImageReference": format!("quay.io/bench/{name}@{d}")})
        })
        .collect();
    s["status"]["tags"] = json!([{"tag": "20.0", "items": items}]);
    let r = client
        .put(format!("{}{IS}/{name}/status", moor.url))
        .bearer_auth(&moor.token)
        .json(&s)
        .send()
        .await?;
    ensure!(r.status().is_success(), "status answered {}", r.status());
    Ok(())
}

fn check_review(body: &[u8]) -> Result<()> {
    let v: Value = serde_json::from_slice(body)?;
    ensure!(v["response"]["allowed"] == true, "not allowed: {v}");
    ensure!(v["response"]["patch"].is_string(), "no patch: {v}");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let moor = Moor::start_fresh(&moor_bin(), &[]);
    let setup = moor.client_pool(4);
    stream(&moor, &setup, "keycloak", 0).await?;
    for n in 1..=args.streams {
        stream(&moor, &setup, &format!("app-{n:04}"), n).await?;
    }
    // Bodies are serialized before the clock starts: the load generator shares the
    // machine's cores with the server, and its own JSON work is not what is measured.
    let bodies: std::sync::Arc<Vec<bytes::Bytes>> = std::sync::Arc::new(
        (0..args.requests.max(args.connections * 20))
            .map(|i| bytes::Bytes::from(review(i).to_string()))
            .collect(),
    );
    let url = format!("{}/admission/image-policy", moor.url);
    // The webhook answers only allowed callers: the admin token is one.
    let token = moor.token.clone();
    let post = move |c: &reqwest::Client, i: usize| {
        c.post(url.as_str())
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(bodies[i].clone())
    };
    // Warm-up: connections, TLS sessions, caches.
    load(
        &moor,
        args.connections,
        args.connections * 20,
        post.clone(),
        check_review,
    )
    .await?;
    let (mut samples, wall) =
        load(&moor, args.connections, args.requests, post, check_review).await?;
    let url = format!("{}/version", moor.url);
    let version = move |c: &reqwest::Client, _| c.get(url.as_str());
    let (mut base, base_wall) =
        load(&moor, args.connections, args.requests, version, |_| Ok(())).await?;
    println!(
        "bench admission: {} AdmissionReviews (Pod, 3 images, 2 short names) over {} TLS connections; {} streams in the namespace",
        args.requests,
        args.connections,
        args.streams + 1
    );
    report("POST image-policy", &mut samples, wall);
    report("GET /version (floor)", &mut base, base_wall);
    let p99 = quantile(&mut samples, 0.99);
    let vs_floor = p99.as_secs_f64() / quantile(&mut base, 0.99).as_secs_f64().max(1e-9);
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    println!(
        "  p99 / floor p99: {vs_floor:.2}x (goal <= 2: {}); goal p99 < 2 ms: {}",
        verdict(vs_floor <= 2.0),
        verdict(p99 < Duration::from_millis(2))
    );
    if let Some(rss) = moor.peak_rss_mib() {
        println!("  moor peak RSS: {rss:.0} MiB");
    }
    Ok(())
}
