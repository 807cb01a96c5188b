//! Lists through the watch cache, in process: bodies streamed page by page and
//! byte-identical to the buffered ones, kube's resourceVersion and
//! resourceVersionMatch rules, `resourceVersion=0` reads, and a watch from a list's
//! revision under concurrent writes.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::StreamExt;
use moor_testkit::server::*;
use serde_json::{Value, json};
use tower::ServiceExt;

fn stream(name: &str, team: &str) -> Value {
    json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
           "metadata": {"name": name, "labels": {"team": team}},
           "spec": {"lookupPolicy": {"local": true},
                    "tags": [{"name": "v1", "from": {"kind": "DockerImage", "name": format!("quay.io/x/{name}:v1")}}]}})
}

async fn create_many(h: &MoorServer, n: usize) {
    let results: Vec<StatusCode> = futures::stream::iter(0..n)
        .map(|i| async move {
            let team = if i % 3 == 0 { "a" } else { "b" };
            h.post(IS, &stream(&format!("s{i:04}"), team)).await.status
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(results.iter().all(|s| *s == StatusCode::CREATED));
}

/// The chunks of a body as the router sends them.
async fn chunks(h: &MoorServer, path: &str) -> Vec<axum::body::Bytes> {
    let req = Request::get(path)
        .header("authorization", format!("Bearer {}", h.token))
        .body(Body::empty())
        .unwrap();
    let resp = h.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.into_body()
        .into_data_stream()
        .map(|c| c.unwrap())
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_without_a_limit_is_streamed_by_page_and_byte_identical_to_the_buffered_one() {
    let h = MoorServer::start().await;
    create_many(&h, 1_200).await;
    for query in ["", "labelSelector=team%3Da"] {
        let streamed = chunks(&h, &format!("{IS}?{query}")).await;
        // 1,200 items are 3 store pages: head, 3 pages, tail.
        assert!(streamed.len() >= 5, "{} chunks", streamed.len());
        let streamed: Vec<u8> = streamed.concat();
        // A limit larger than the list takes the buffered path.
        let buffered = h.get(&format!("{IS}?limit=5000&{query}")).await;
        assert_eq!(buffered.status, StatusCode::OK);
        assert_eq!(
            String::from_utf8(streamed).unwrap(),
            buffered.text,
            "query {query:?}"
        );
    }
    let all = h.get(IS).await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 1_200);
    assert_eq!(all.body["items"][0]["metadata"]["name"], "s0000");
    assert_eq!(all.body["items"][1_199]["metadata"]["name"], "s1199");
}

#[tokio::test]
async fn resource_version_and_match_follow_kube() {
    let h = MoorServer::start().await;
    create_many(&h, 3).await;
    let before = h.get(IS).await;
    let rv = before.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let r = h
        .call(
            axum::http::Method::DELETE,
            &format!("{IS}/s0000"),
            "application/json",
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let names = |r: &Resp| -> Vec<String> {
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    // Unset: consistent, the delete is seen.
    assert_eq!(names(&h.get(IS).await), ["s0001", "s0002"]);
    // Exact: the state at that revision, the deleted stream included.
    let exact = h
        .get(&format!(
            "{IS}?resourceVersion={rv}&resourceVersionMatch=Exact"
        ))
        .await;
    assert_eq!(exact.status, StatusCode::OK, "{}", exact.text);
    assert_eq!(names(&exact), ["s0000", "s0001", "s0002"]);
    assert_eq!(exact.body["metadata"]["resourceVersion"], rv.as_str());
    // resourceVersion=0: any recent state, here the cache's, which has the delete
    // once it caught up (a consistent list waited for that above).
    let any = h.get(&format!("{IS}?resourceVersion=0")).await;
    assert_eq!(any.status, StatusCode::OK);
    assert_eq!(names(&any), ["s0001", "s0002"]);
    // NotOlderThan an old revision: a newer state will do.
    let newer = h
        .get(&format!(
            "{IS}?resourceVersion={rv}&resourceVersionMatch=NotOlderThan"
        ))
        .await;
    assert_eq!(names(&newer), ["s0001", "s0002"]);
    // kube's validation.
    let r = h.get(&format!("{IS}?resourceVersionMatch=Exact")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = h
        .get(&format!(
            "{IS}?resourceVersion=0&resourceVersionMatch=Exact"
        ))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = h
        .get(&format!(
            "{IS}?resourceVersion={rv}&resourceVersionMatch=Newest"
        ))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let page = h.get(&format!("{IS}?limit=1")).await;
    let cont = page.body["metadata"]["continue"].as_str().unwrap();
    let r = h
        .get(&format!(
            "{IS}?limit=1&continue={cont}&resourceVersion={rv}"
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = h.get(&format!("{IS}?limit=1&continue={cont}")).await;
    assert_eq!(names(&r), ["s0002"]);
    // A get with resourceVersion=0 reads the cache.
    let got = h.get(&format!("{IS}/s0001?resourceVersion=0")).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    assert_eq!(got.body["metadata"]["name"], "s0001");
    let gone = h.get(&format!("{IS}/s0000?resourceVersion=0")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

/// A list, then a watch from its resourceVersion while 4 clients create streams: the
/// watch sees each stream created after the list exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_a_lists_revision_sees_every_later_create_once() {
    let h = MoorServer::start().await;
    create_many(&h, 20).await;
    let writers = {
        let h = &h;
        futures::stream::iter(0..80)
            .map(move |i| async move { h.post(IS, &stream(&format!("w{i:03}"), "c")).await.status })
            .buffer_unordered(4)
            .collect::<Vec<_>>()
    };
    let h2 = &h;
    let list_and_watch = async move {
        tokio::task::yield_now().await;
        let list = h2.get(IS).await;
        let listed: Vec<String> = list.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        let rv = list.body["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        let req = Request::get(format!("{IS}?watch=true&resourceVersion={rv}"))
            .header("authorization", format!("Bearer {}", h2.token))
            .body(Body::empty())
            .unwrap();
        let resp = h2.router.clone().oneshot(req).await.unwrap();
        (listed, resp.into_body().into_data_stream())
    };
    let (statuses, (listed, mut body)) = tokio::join!(writers, list_and_watch);
    assert!(statuses.iter().all(|s| *s == StatusCode::CREATED));
    let mut seen: Vec<String> = listed;
    let mut buf = Vec::new();
    while seen.len() < 100 {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(30), body.next())
            .await
            .expect("an event in time")
            .expect("the watch is open")
            .unwrap();
        buf.extend_from_slice(&chunk);
        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let ev: Value = serde_json::from_slice(&line).unwrap();
            assert_eq!(ev["type"], "ADDED", "{ev}");
            seen.push(ev["object"]["metadata"]["name"].as_str().unwrap().into());
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "no stream twice");
    assert_eq!(seen.len(), 100);
}

/// `/metrics` shows the watch cache: loaded, what it holds, and lists answered from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_watch_cache() {
    let h = MoorServer::start().await;
    create_many(&h, 20).await;
    assert_eq!(
        h.get(&format!("{IS}?resourceVersion=0")).await.status,
        StatusCode::OK
    );
    let text = h.get("/metrics").await.text;
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
    };
    assert_eq!(value("moor_watch_cache_ready"), 1.0);
    assert!(value("moor_watch_cache_objects") >= 20.0);
    assert!(value("moor_watch_cache_hits_total") >= 1.0);
    assert!(value("moor_watch_cache_loads_total") >= 1.0);
    assert!(value("moor_watch_cache_revision") > 0.0);
}
