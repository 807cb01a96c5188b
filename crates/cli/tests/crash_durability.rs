//! Nothing acknowledged is lost: a `moor serve` child is killed with SIGKILL in the
//! middle of concurrent writes, once 100 of them were acknowledged; after a restart on
//! the same data directory every write that was answered 201/200 is there.

use crate::support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moor_testkit::server::IS;
use support::*;

/// Writes acknowledged before the kill.
const ACKED_BEFORE_KILL: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = start(&data, &[]);
    let client = server.client();
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (client, acked, stop) = (client.clone(), acked.clone(), stop.clone());
        let (url, token) = (server.url.clone(), server.token.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let name = format!("w{w}-{i}");
                let body = serde_json::json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
                    "metadata": {"name": name}, "spec": {"tags": [{"name": "t", "from": {"kind": "DockerImage", "name": "quay.io/a/b:1"}}]}});
                let resp = client.post(format!("{url}{IS}")).bearer_auth(&token).json(&body).send().await;
                match resp {
                    Ok(r) if r.status().as_u16() == 201 => {
                        acked.lock().unwrap().insert(name);
                    }
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(_) => break, // the server died under us
                }
                i += 1;
            }
        }));
    }
    // Kill without warning once ACKED_BEFORE_KILL writes were acknowledged, with the
    // writers still sending.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < ACKED_BEFORE_KILL {
        assert!(
            Instant::now() < deadline,
            "only {} writes acknowledged in 60 s",
            acked.lock().unwrap().len()
        );
        assert!(
            !tasks.iter().any(|t| t.is_finished()),
            "a writer stopped before the kill"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= ACKED_BEFORE_KILL, "{}", acked.len());

    let server = start(&data, &[]);
    let list: serde_json::Value = server
        .client()
        .get(format!("{}{IS}", server.url))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let present: BTreeSet<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<&String> = acked.difference(&present).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );
    // The token survived the restart too (the kubeconfig still works).
    assert_eq!(server.token.len(), 69);
}
