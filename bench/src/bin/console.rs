//! `bench/run console`: the web console's server time, in process (requests go through
//! moor's router with no listener, so the time is the server's alone): the page of a
//! stream whose tag has 1,000 history entries, and the namespace list and the streams
//! page of a namespace with 10,000 image streams. Logs in as the admin through the
//! console's own form. Reports p50 and p95 of each page.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use clap::Parser;
use futures::StreamExt;
use moor_bench::{ms, quantile};
use moor_testkit::server::{MoorServer, Resp, TOKEN};
use serde_json::json;
use sha2::{Digest, Sha256};

#[derive(Parser)]
struct Args {
    /// History entries of the one tag of the big stream.
    #[arg(long, default_value_t = 1_000)]
    history: usize,
    /// Image streams in the big namespace.
    #[arg(long, default_value_t = 10_000)]
    streams: usize,
    /// Renders to time per page.
    #[arg(long, default_value_t = 30)]
    renders: usize,
}

const IS: &str = "/apis/image.openshift.io/v1/namespaces";

fn request(method: Method, path: &str, cookie: &str, form: Option<String>) -> Request<Body> {
    let b = Request::builder()
        .method(method)
        .uri(path)
        .header(header::COOKIE, cookie);
    match form {
        Some(f) => b
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(f)),
        None => b.body(Body::empty()),
    }
    .expect("a request")
}

fn first_cookie(r: &Resp, name: &str) -> Option<String> {
    r.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

/// Logs in through the console's form; returns the session cookie.
async fn login(server: &MoorServer) -> Result<String> {
    let form = server
        .raw(request(Method::GET, "/console/login", "", None))
        .await;
    let marker = r#"name="csrf" value=""#;
    let at = form
        .text
        .find(marker)
        .ok_or_else(|| anyhow::anyhow!("no CSRF field"))?;
    let rest = &form.text[at + marker.len()..];
    let csrf = &rest[..rest.find('"').unwrap_or(0)];
    let login_cookie = first_cookie(&form, "moor-console-login").unwrap_or_default();
    let body = form_body(&[("token", TOKEN), ("csrf", csrf)]);
    let r = server
        .raw(request(
            Method::POST,
            "/console/login",
            &login_cookie,
            Some(body),
        ))
        .await;
    ensure!(r.status == StatusCode::SEE_OTHER, "login: {}", r.text);
    first_cookie(&r, "moor-console").ok_or_else(|| anyhow::anyhow!("no session cookie"))
}

fn form_body(pairs: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push('&');
        }
        s.push_str(k);
        s.push('=');
        s.push_str(v);
    }
    s
}

/// Renders `path` `n` times; the latencies.
async fn time(server: &MoorServer, cookie: &str, path: &str, n: usize) -> Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let r = server.raw(request(Method::GET, path, cookie, None)).await;
        samples.push(started.elapsed());
        ensure!(
            r.status == StatusCode::OK,
            "{path}: {} {}",
            r.status,
            r.text
        );
    }
    Ok(samples)
}

fn report(what: &str, samples: &mut [Duration], goal_ms: u64) {
    let (p50, p95) = (quantile(samples, 0.5), quantile(samples, 0.95));
    let verdict = if p95 <= Duration::from_millis(goal_ms) {
        "within"
    } else {
        "OVER"
    };
    println!(
        "{what}: p50 {} p95 {} ({verdict} the {goal_ms} ms goal)",
        ms(p50),
        ms(p95)
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let server = MoorServer::builder().start().await;
    for ns in ["big", "history"] {
        let r = server
            .post("/api/v1/namespaces", &json!({"metadata": {"name": ns}}))
            .await;
        ensure!(r.status == StatusCode::CREATED, "{}", r.text);
    }
    let r = server
        .post(
            &format!("{IS}/history/imagestreams"),
            &json!({"metadata": {"name": "app"}}),
        )
        .await;
    ensure!(r.status == StatusCode::CREATED, "{}", r.text);
    let started = Instant::now();
    for i in 0..args.history {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(i.to_string())));
        let mapping = json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStreamMapping",
            "metadata": {"name": "app"}, "tag": "v1",
            "image": {"metadata": {"name": digest},
                      "dockerImageReference": format!("quay.io/team/app@{digest}")},
        });
        let r = server
            .post(&format!("{IS}/history/imagestreammappings"), &mapping)
            .await;
        ensure!(r.status.is_success(), "{}", r.text);
    }
    println!(
        "{} history entries recorded in {:.1} s",
        args.history,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let created: Vec<Resp> = futures::stream::iter(0..args.streams)
        .map(|i| {
            let server = &server;
            async move {
                server
                    .post(
                        &format!("{IS}/big/imagestreams"),
                        &json!({"metadata": {"name": format!("s{i:05}")},
                            "spec": {"tags": [{"name": "v1", "from": {"kind": "DockerImage", "name": format!("quay.io/o/s{i}:1")}, "reference": true}]}}),
                    )
                    .await
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    ensure!(
        created.iter().all(|r| r.status == StatusCode::CREATED),
        "a create failed"
    );
    println!(
        "{} image streams created in {:.1} s",
        args.streams,
        started.elapsed().as_secs_f64()
    );
    let cookie = login(&server).await?;
    let mut stream = time(
        &server,
        &cookie,
        "/console/ns/history/streams/app",
        args.renders,
    )
    .await?;
    report(
        &format!("stream page, {} history entries", args.history),
        &mut stream,
        50,
    );
    let mut namespaces = time(&server, &cookie, "/console/", args.renders).await?;
    report(
        &format!("namespace list, {} streams", args.streams),
        &mut namespaces,
        200,
    );
    let mut streams = time(
        &server,
        &cookie,
        "/console/ns/big/?sort=updated",
        args.renders,
    )
    .await?;
    report(
        &format!("streams page (first 100 of {})", args.streams),
        &mut streams,
        200,
    );
    Ok(())
}
