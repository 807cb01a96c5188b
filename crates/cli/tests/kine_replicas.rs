//! Two real `moor serve --store kine://...` replicas (real etcd standing in for kine, moor
//! keeping to kine's single-key transactions): a tag moved through the follower arrives
//! as a CloudEvent, recorded from the streams' watch by the leader; after a `kill -9`
//! of the leader, a tag moved meanwhile arrives through the new leader.

use crate::support;

use std::time::{Duration, Instant};

use moor_testkit::etcd::Etcd;
use moor_testkit::receiver::Receiver;
use moor_testkit::server::IS;
use serde_json::{Value, json};
use support::*;

const WAIT: Duration = Duration::from_secs(60);

/// Whether the replica at `url` says it leads (`/readyz?verbose`).
async fn leads(client: &reqwest::Client, url: &str) -> bool {
    let Ok(resp) = client
        .get(format!("{url}/readyz?verbose"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
    else {
        return false;
    };
    let body = resp.text().await.unwrap_or_default();
    body.lines()
        .any(|l| l.contains("leader-election") && l.contains(": leading"))
}

async fn post(p: &MoorProcess, path: &str, body: &Value) -> Value {
    let resp = p
        .client()
        .post(format!("{}{path}", p.url))
        .bearer_auth(&p.token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "POST {path}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

/// Moves `app:latest` to digest number `n` through `p` (an ImageStreamMapping).
async fn move_tag(p: &MoorProcess, n: u32) -> String {
    let digest = format!("sha256:{n:064x}");
    post(
        p,
        "/apis/image.openshift.io/v1/namespaces/default/imagestreammappings",
        &json!({"metadata": {"name": "app"}, "tag": "latest",
                "image": {"metadata": {"name": digest},
                          "dockerImageReference": format!("quay.io/team/app@{digest}")}}),
    )
    .await;
    digest
}

/// The `(oldDigest, newDigest)` of the distinct events received, in arrival order.
fn moves(got: &[moor_testkit::receiver::Received]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for r in got {
        let d = &r.json["data"];
        let m = (
            d["oldDigest"].as_str().unwrap_or("").to_owned(),
            d["newDigest"].as_str().unwrap_or("").to_owned(),
        );
        // At least once: a repeat (after the failover) is not a new move.
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_kine_record_notifications_on_the_leader_and_fail_over() {
    let Some(etcd) = tokio::task::block_in_place(Etcd::start) else {
        return;
    };
    let store = format!("kine://127.0.0.1:{}/moor-kine", etcd.client_port);
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--store",
        store.as_str(),
        "--allow-private-notification-targets",
    ];
    let mut replicas: Vec<Option<MoorProcess>> = (0..2)
        .map(|i| {
            let data = dir.path().join(format!("r{i}"));
            Some(tokio::task::block_in_place(|| start(&data, &flags)))
        })
        .collect();
    let client = replicas[0].as_ref().unwrap().client();
    let urls: Vec<String> = replicas
        .iter()
        .map(|r| r.as_ref().unwrap().url.clone())
        .collect();
    let start_wait = Instant::now();
    let leader = loop {
        let mut leading = Vec::new();
        for (i, url) in urls.iter().enumerate() {
            if leads(&client, url).await {
                leading.push(i);
            }
        }
        if let [one] = leading[..] {
            break one;
        }
        assert!(start_wait.elapsed() < WAIT, "no single leader: {leading:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let follower = 1 - leader;
    let receiver = Receiver::start().await;
    {
        let f = replicas[follower].as_ref().unwrap();
        post(
            f,
            "/apis/moor.io/v1/namespaces/default/notifications",
            &json!({"metadata": {"name": "hook"},
                    "spec": {"url": receiver.url, "events": ["TagUpdated"]}}),
        )
        .await;
        post(f, IS, &json!({"metadata": {"name": "app"}})).await;
    }
    let first = move_tag(replicas[follower].as_ref().unwrap(), 1).await;
    let got = receiver.wait_for(WAIT, |got, _| !got.is_empty()).await;
    assert_eq!(moves(&got), [(String::new(), first.clone())]);

    // The leader dies; the tag moves through the survivor before and while it takes
    // over, and the new leader's recorder records it.
    replicas[leader].take().unwrap().kill();
    let second = move_tag(replicas[follower].as_ref().unwrap(), 2).await;
    let got = receiver
        .wait_for(WAIT, |got, _| moves(got).len() >= 2)
        .await;
    assert_eq!(
        moves(&got),
        [(String::new(), first.clone()), (first, second)],
        "every move once (repeats dropped), in order"
    );
    assert!(leads(&client, &urls[follower]).await, "the survivor leads");
}
