//! Three real `moor serve` replicas on one etcd are one service: they share the admin
//! token and the CA (a kubeconfig written by replica 1 works against replica 3), one
//! of them leads the controllers, and after a `kill -9` of the leader another takes
//! over in under 10 s, while writers spread over the replicas lose no acknowledged
//! write.

use crate::support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use moor_testkit::etcd::Etcd;
use moor_testkit::server::IS;
use support::*;

/// Whether the replica at `url` says it leads (`/readyz?verbose`).
async fn leads(client: &reqwest::Client, url: &str) -> Option<bool> {
    let body = client
        .get(format!("{url}/readyz?verbose"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let line = body.lines().find(|l| l.contains("leader-election"))?;
    Some(line.contains(": leading"))
}

/// The indexes (into `urls`) of the replicas that lead, once exactly one does.
async fn the_leader(client: &reqwest::Client, urls: &[String], within: Duration) -> usize {
    let start = Instant::now();
    loop {
        let mut leading = Vec::new();
        for (i, url) in urls.iter().enumerate() {
            if leads(client, url).await == Some(true) {
                leading.push(i);
            }
        }
        if let [one] = leading[..] {
            return one;
        }
        assert!(
            start.elapsed() < within,
            "no single leader within {within:?}: {leading:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn stream(name: &str) -> serde_json::Value {
    serde_json::json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": name}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_identity_and_fail_over_without_losing_writes() {
    let Some(etcd) = tokio::task::block_in_place(Etcd::start) else {
        return;
    };
    let began = Instant::now();
    let store = format!("etcd://127.0.0.1:{}/moor-replicas", etcd.client_port);
    let dir = tempfile::tempdir().unwrap();
    // Started together: the first to store the identity wins, the others adopt it.
    let mut replicas: Vec<Option<MoorProcess>> = tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            let started: Vec<_> = (0..3)
                .map(|i| {
                    let (data, store) = (dir.path().join(format!("r{i}")), store.clone());
                    s.spawn(move || start(&data, &["--store", &store]))
                })
                .collect();
            started
                .into_iter()
                .map(|h| Some(h.join().unwrap()))
                .collect()
        })
    });
    let r = |i: usize| replicas[i].as_ref().unwrap();
    let urls: Vec<String> = (0..3).map(|i| r(i).url.clone()).collect();
    assert!(
        (0..3).all(|i| r(i).token == r(0).token),
        "one admin token for all"
    );
    assert!(
        (0..3).all(|i| r(i).ca_pem() == r(0).ca_pem()),
        "one CA for all"
    );

    // Replica 1's kubeconfig, pointed at replica 3, works for the CLI.
    let text = std::fs::read_to_string(r(0).kubeconfig()).unwrap();
    let moved = dir.path().join("kubeconfig-r3");
    std::fs::write(&moved, text.replace(&urls[0], &urls[2])).unwrap();
    let out = tokio::task::block_in_place(|| cli(&moved).ok(&["create", "is", "from-replica-one"]));
    assert!(out.contains("from-replica-one"), "{out}");
    let listed = tokio::task::block_in_place(|| r(1).ok(&["get", "is"]));
    assert!(listed.contains("from-replica-one"), "{listed}");

    // One client trusting replica 1's CA reaches all: the CA is shared.
    let client = r(0).client();
    let token = r(0).token.clone();
    let leader = the_leader(&client, &urls, Duration::from_secs(15)).await;

    // 8 writers, each sending to the replicas in turn; a write counts once answered 201.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..8usize {
        let (client, token, urls, stop) =
            (client.clone(), token.clone(), urls.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut n = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let name = format!("w{w}-{n}");
                let url = &urls[(w + n) % urls.len()];
                n += 1;
                let sent = client
                    .post(format!("{url}{IS}"))
                    .bearer_auth(&token)
                    .json(&stream(&name))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                match sent {
                    Ok(resp) if resp.status().as_u16() == 201 => acked.push(name),
                    // A dead replica, or a write whose outcome is unknown: not counted.
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // kill -9 the leader; the others elect a new one.
    let killed_at = Instant::now();
    replicas[leader].take().unwrap().kill();
    let alive: Vec<String> = (0..3)
        .filter(|i| *i != leader)
        .map(|i| urls[i].clone())
        .collect();
    let next = the_leader(&client, &alive, Duration::from_secs(10)).await;
    let takeover = killed_at.elapsed();
    println!(
        "failover: replica {leader} killed, {} leads after {takeover:?}",
        alive[next]
    );
    assert!(
        takeover < Duration::from_secs(10),
        "takeover took {takeover:?}"
    );
    // `/metrics` says the same.
    for (i, url) in alive.iter().enumerate() {
        let metrics = client
            .get(format!("{url}/metrics"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let expected = format!("moor_is_leader {}", u8::from(i == next));
        assert!(
            metrics.contains(&expected),
            "{url}: no {expected:?} in /metrics"
        );
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let mut acked = BTreeSet::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert!(
        acked.len() > 20,
        "too few writes to mean anything: {}",
        acked.len()
    );

    // Every acknowledged write is there, read through each surviving replica.
    for url in &alive {
        let list: serde_json::Value = client
            .get(format!("{url}{IS}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let names: BTreeSet<String> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
        let lost: Vec<_> = acked.difference(&names).collect();
        assert!(
            lost.is_empty(),
            "acknowledged writes lost via {url}: {lost:?}"
        );
    }
    println!(
        "{} acknowledged writes, 0 lost; test took {:?}",
        acked.len(),
        began.elapsed()
    );
}
