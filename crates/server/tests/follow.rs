//! Tags that follow a range (`moor.io/follow-*` annotations), against CNCF
//! distribution with a 2 s scheduled interval: a semver range imports its highest
//! release (pre-releases left out) and moves on a push; an unchanged list costs one
//! tag list request per check and no write; a regex with an extract and numerical
//! order picks the newest build; a rollback pauses the following; and, through a
//! front that pages tag lists and answers `If-None-Match` (distribution 2.8 does
//! neither), a long list is read page by page once and then costs one conditional
//! request per check.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use moor_server::importer::controller::Backoff;
use moor_server::scheduler::AlwaysLeader;
use moor_store::{MemoryStore, Store};
use moor_testkit::server::{IS, MoorServer};
use moor_testkit::{CountingProxy, Distribution, Format, ImageSpec, OciLayout, Pushed};
use serde_json::{Value, json};

const INTERVAL: Duration = Duration::from_secs(2);
const SCHEDULED: &str = "/apis/moor.io/v1/namespaces/default/scheduledimports";

async fn moor(insecure: &[&str]) -> MoorServer {
    moor_over(Arc::new(MemoryStore::new()), insecure).await
}

async fn moor_over(store: Arc<MemoryStore>, insecure: &[&str]) -> MoorServer {
    MoorServer::builder()
        .store(store)
        .upstream(insecure)
        .imports(Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(2),
            max_retries: 20,
        })
        .scheduler(INTERVAL, Arc::new(AlwaysLeader::new()))
        .with(|o| o.default_registry_qps = 0.0)
        .start()
        .await
}

fn followed(name: &str, repository: &str, annotations: Value) -> Value {
    json!({"name": name, "annotations": annotations,
           "from": {"kind": "DockerImage", "name": repository},
           "importPolicy": {"scheduled": true}})
}

async fn create_stream(h: &MoorServer, name: &str, tags: Vec<Value>) {
    let r = h
        .post(
            IS,
            &json!({"metadata": {"name": name}, "spec": {"tags": tags}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

async fn stream(h: &MoorServer, name: &str) -> Value {
    let r = h.get(&format!("{IS}/{name}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

fn images(stream: &Value, tag: &str) -> Vec<String> {
    stream["status"]["tags"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["tag"] == tag))
        .and_then(|t| t["items"].as_array())
        .map(|a| {
            a.iter()
                .map(|i| i["image"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

async fn records(h: &MoorServer, stream: &str) -> BTreeMap<String, Value> {
    let r = h
        .get(&format!(
            "{SCHEDULED}?fieldSelector=status.imageStream%3D{stream}"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["status"]["tag"].as_str().unwrap().to_string(),
                i["status"].clone(),
            )
        })
        .collect()
}

/// The record of `name:tag`, or null before the scheduler wrote one.
async fn record(h: &MoorServer, name: &str, tag: &str) -> Value {
    records(h, name).await.remove(tag).unwrap_or(Value::Null)
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut pred: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !pred().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `tag`'s record shows a check that started after `after` (a
/// `lastCheckTime` other than `after`), and returns that time.
async fn next_check(h: &MoorServer, name: &str, tag: &str, after: &Value) -> Value {
    let deadline = Instant::now() + 4 * INTERVAL;
    loop {
        let seen = record(h, name, tag).await["lastCheckTime"].clone();
        if seen.is_string() && &seen != after {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the next check"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn push(dist: &Distribution, layout: &OciLayout, tag: &str, repo_tag: &str) -> Pushed {
    tokio::task::block_in_place(|| dist.push(layout, tag, repo_tag, Format::Oci))
}

/// Puts the manifest of `repo:from` under more tags with the registry API.
async fn retag(host: &str, repo: &str, from: &str, to: &[String]) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let accept = "application/vnd.oci.image.manifest.v1+json";
    let manifest = http
        .get(format!("http://{host}/v2/{repo}/manifests/{from}"))
        .header("accept", accept)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    for t in to {
        let put = http
            .put(format!("http://{host}/v2/{repo}/manifests/{t}"))
            .header("content-type", accept)
            .body(manifest.clone())
            .send()
            .await
            .unwrap();
        assert!(put.status().is_success(), "re-tagging: {}", put.status());
    }
}

fn three_images() -> OciLayout {
    tokio::task::block_in_place(|| {
        let layout = OciLayout::new();
        for v in ["a", "b", "c"] {
            layout.add_image(
                v,
                &ImageSpec::new("amd64").with_file("version.txt", format!("{v}\n")),
            );
        }
        layout
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_semver_range_follows_the_highest_release_and_a_rollback_pauses_it() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let layout = three_images();
    let a = push(&dist, &layout, "a", "kc/kc:20.0.1");
    let b = push(&dist, &layout, "b", "kc/kc:20.0.3");
    retag(
        &dist.host,
        "kc/kc",
        "20.0.1",
        &["20.1.0".into(), "20.0.4-rc.1".into(), "latest".into()],
    )
    .await;
    // Builds for the regex tag, all of image a.
    push(&dist, &layout, "a", "kc/builds:main-aaa-900");
    retag(
        &dist.host,
        "kc/builds",
        "main-aaa-900",
        &[
            "main-bbb-1000".into(),
            "dev-ccc-5000".into(),
            "main-ddd-99".into(),
        ],
    )
    .await;
    let proxy = CountingProxy::start(&dist.host).await;
    let h = moor(&[&proxy.host]).await;
    create_stream(
        &h,
        "kc",
        vec![
            followed(
                "20.0",
                &proxy.reference("kc/kc"),
                json!({"moor.io/follow-semver": ">=20.0.0 <20.1.0"}),
            ),
            followed(
                "main",
                &proxy.reference("kc/builds"),
                json!({"moor.io/follow-tag-regex": "^main-[a-f0-9]+-(?P<ts>[0-9]+)$",
                       "moor.io/follow-tag-extract": "$ts",
                       "moor.io/follow-order": "numerical asc"}),
            ),
        ],
    )
    .await;
    wait_until("the first checks", Duration::from_secs(60), || async {
        let r = records(&h, "kc").await;
        r.get("20.0").is_some_and(|r| r["followedTag"] == "20.0.3")
            && r.get("main")
                .is_some_and(|r| r["followedTag"] == "main-bbb-1000")
    })
    .await;
    let s = stream(&h, "kc").await;
    assert_eq!(
        images(&s, "20.0"),
        vec![b.digest.clone()],
        "20.0.3, not rc or 20.1"
    );
    assert_eq!(images(&s, "main"), vec![a.digest.clone()]);

    // An unchanged list: one GET of the list per check, no manifest request, no write.
    let version = s["metadata"]["resourceVersion"].clone();
    let first = record(&h, "kc", "20.0").await["lastCheckTime"].clone();
    let second = next_check(&h, "kc", "20.0", &first).await;
    let from = Instant::now();
    next_check(&h, "kc", "20.0", &second).await;
    let hits: Vec<_> = proxy
        .log
        .since(from)
        .into_iter()
        .filter(|h| h.path.starts_with("/v2/kc/kc/"))
        .collect();
    assert_eq!(
        hits.iter()
            .map(|h| (h.method.as_str(), h.path.as_str()))
            .collect::<Vec<_>>(),
        vec![("GET", "/v2/kc/kc/tags/list")],
        "one tag list request per check of an unchanged list"
    );
    assert_eq!(
        stream(&h, "kc").await["metadata"]["resourceVersion"],
        version
    );

    // A new release in range moves the tag at the next check.
    let c = push(&dist, &layout, "c", "kc/kc:20.0.5");
    let pushed = Instant::now();
    wait_until("20.0.5 imported", 3 * INTERVAL, || async {
        images(&stream(&h, "kc").await, "20.0").first() == Some(&c.digest)
    })
    .await;
    eprintln!("20.0.5 imported {:?} after its push", pushed.elapsed());
    assert_eq!(
        images(&stream(&h, "kc").await, "20.0"),
        vec![c.digest.clone(), b.digest.clone()]
    );
    wait_until("the record to say 20.0.5", INTERVAL, || async {
        record(&h, "kc", "20.0").await["followedTag"] == "20.0.5"
    })
    .await;

    // A rollback (as `moor rollback` writes it) pauses the following; the record
    // keeps the policy for "resume it with".
    let r = h
        .patch(
            &format!("{IS}/kc"),
            "application/strategic-merge-patch+json",
            &json!({"spec": {"tags": [{"name": "20.0", "annotations": null,
                "from": {"kind": "ImageStreamImage", "name": format!("kc@{}", b.digest)},
                "importPolicy": {"scheduled": false}}]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    wait_until(
        "the following to pause",
        Duration::from_secs(10),
        || async { record(&h, "kc", "20.0").await["active"] == false },
    )
    .await;
    let paused = record(&h, "kc", "20.0").await;
    assert_eq!(paused["follow"], "--semver '>=20.0.0 <20.1.0'", "{paused}");
    assert_eq!(paused["from"], proxy.reference("kc/kc").as_str());
    // The rollback's own import (of an ImageStreamImage) runs after the pause.
    wait_until("the rollback to land", Duration::from_secs(10), || async {
        images(&stream(&h, "kc").await, "20.0").first() == Some(&b.digest)
    })
    .await;
    h.stop().await;
}

/// A front over distribution that pages tag lists (`n`, `last`, `Link`; at most
/// `PAGE` tags a page) and answers `If-None-Match` with 304, counting tag list
/// requests; anything else is passed to distribution.
#[derive(Clone)]
struct Front {
    upstream: String,
    lists: Arc<AtomicUsize>,
    not_modified: Arc<AtomicUsize>,
    http: reqwest::Client,
}

const PAGE: usize = 50;

async fn front(State(f): State<Front>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    if let Some(repo) = path
        .strip_prefix("/v2/")
        .and_then(|p| p.strip_suffix("/tags/list"))
    {
        f.lists.fetch_add(1, Ordering::SeqCst);
        let all: Value = f
            .http
            .get(format!("http://{}/v2/{repo}/tags/list", f.upstream))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut tags: Vec<String> = serde_json::from_value(all["tags"].clone()).unwrap();
        tags.sort();
        let etag = format!("\"{}\"", tags.len() * 7919 + tags.join(",").len());
        if req
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            == Some(etag.as_str())
        {
            f.not_modified.fetch_add(1, Ordering::SeqCst);
            return StatusCode::NOT_MODIFIED.into_response();
        }
        let params: BTreeMap<String, String> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let n = params
            .get("n")
            .and_then(|n| n.parse().ok())
            .unwrap_or(PAGE)
            .min(PAGE);
        let start = params
            .get("last")
            .map(|l| tags.iter().position(|t| t > l).unwrap_or(tags.len()))
            .unwrap_or(0);
        let page: Vec<&String> = tags.iter().skip(start).take(n).collect();
        let mut resp = axum::Json(json!({"name": repo, "tags": page})).into_response();
        resp.headers_mut()
            .insert(header::ETAG, HeaderValue::from_str(&etag).unwrap());
        if start + n < tags.len()
            && let Some(last) = page.last()
        {
            let link = format!(r#"</v2/{repo}/tags/list?n={n}&last={last}>; rel="next""#);
            resp.headers_mut()
                .insert(header::LINK, HeaderValue::from_str(&link).unwrap());
        }
        return resp;
    }
    let url = format!("http://{}{}", f.upstream, req.uri());
    let mut up = f.http.request(req.method().clone(), url);
    for (k, v) in req.headers() {
        if k != header::HOST {
            up = up.header(k, v);
        }
    }
    let r = up.send().await.unwrap();
    let mut resp = Response::builder().status(r.status().as_u16());
    for (k, v) in r.headers() {
        resp = resp.header(k, v);
    }
    resp.body(Body::from(r.bytes().await.unwrap())).unwrap()
}

async fn start_front(upstream: &str) -> (String, Front) {
    let f = Front {
        upstream: upstream.to_string(),
        lists: Arc::default(),
        not_modified: Arc::default(),
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    };
    let app = axum::Router::new().fallback(front).with_state(f.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (host, f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paged_list_is_read_once_then_costs_one_conditional_request() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let layout = three_images();
    push(&dist, &layout, "a", "many/tags:1.0.0");
    let more: Vec<String> = (1..120).map(|i| format!("1.0.{i}")).collect();
    retag(&dist.host, "many/tags", "1.0.0", &more).await;
    let (host, f) = start_front(&dist.host).await;
    let h = moor(&[&host]).await;
    create_stream(
        &h,
        "many",
        vec![followed(
            "1",
            &format!("{host}/many/tags"),
            json!({"moor.io/follow-semver": "1.x"}),
        )],
    )
    .await;
    wait_until("the first check", Duration::from_secs(60), || async {
        record(&h, "many", "1").await["followedTag"] == "1.0.119"
    })
    .await;
    // Two unchanged checks: one request each, answered 304.
    let first = record(&h, "many", "1").await["lastCheckTime"].clone();
    let second = next_check(&h, "many", "1", &first).await;
    let (lists, not_modified) = (
        f.lists.load(Ordering::SeqCst),
        f.not_modified.load(Ordering::SeqCst),
    );
    next_check(&h, "many", "1", &second).await;
    assert_eq!(f.lists.load(Ordering::SeqCst) - lists, 1, "one request");
    assert_eq!(
        f.not_modified.load(Ordering::SeqCst) - not_modified,
        1,
        "a 304"
    );

    // A new tag changes the list: read again, every page, and followed.
    retag(&dist.host, "many/tags", "1.0.0", &["1.0.120".into()]).await;
    wait_until("1.0.120 chosen", 3 * INTERVAL, || async {
        record(&h, "many", "1").await["followedTag"] == "1.0.120"
    })
    .await;
    h.stop().await;
}

/// The records of the namespace, by tag, as `(from, nextCheckTime)`.
async fn next_checks(h: &MoorServer) -> BTreeMap<String, (String, String)> {
    let r = h.get(SCHEDULED).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let s = &i["status"];
            let field = |f: &str| s[f].as_str().unwrap_or_default().to_string();
            (
                format!("{}:{}", field("imageStream"), field("tag")),
                (field("from"), field("nextCheckTime")),
            )
        })
        .collect()
}

/// One repository's group of followed tags, as the test watches it: the next check
/// its tags agreed on last, when a round could first be counted, and the rounds seen.
#[derive(Default)]
struct Group {
    agreed: Option<String>,
    start: Option<Instant>,
    rounds: usize,
    end: Option<Instant>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_following_one_repository_cost_one_list_request_per_interval() {
    const ROUNDS: usize = 3;
    let Some(dist) = Distribution::start() else {
        return;
    };
    let layout = three_images();
    push(&dist, &layout, "a", "g/one:1.0.0");
    retag(
        &dist.host,
        "g/one",
        "1.0.0",
        &["1.0.1".into(), "1.0.2".into()],
    )
    .await;
    push(&dist, &layout, "b", "g/two:2.0.0");
    retag(&dist.host, "g/two", "2.0.0", &["2.0.1".into()]).await;
    let proxy = CountingProxy::start(&dist.host).await;
    let h = moor(&[&proxy.host]).await;
    let (one, two) = (proxy.reference("g/one"), proxy.reference("g/two"));
    let semver = |r: &str| json!({ "moor.io/follow-semver": r });
    // Six tags of two streams follow g/one, three follow g/two, with various ranges.
    create_stream(
        &h,
        "x",
        vec![
            followed("t0", &one, semver(">=1.0.0 <1.1.0")),
            followed("t1", &one, semver("1.0.x")),
            followed("t2", &one, semver("~1.0")),
            followed("t3", &one, semver("1.x")),
            followed("t4", &two, semver("2.0.x")),
            followed("t5", &two, semver(">=2.0.0")),
        ],
    )
    .await;
    create_stream(
        &h,
        "y",
        vec![
            followed("u0", &one, semver("1.0.x")),
            followed("u1", &one, semver(">=1.0.0")),
            followed("u2", &two, semver("~2.0")),
        ],
    )
    .await;
    wait_until("the first checks", Duration::from_secs(60), || async {
        let (x, y) = (records(&h, "x").await, records(&h, "y").await);
        x.len() == 6
            && y.len() == 3
            && x.values()
                .chain(y.values())
                .all(|r| r["followedTag"] == "1.0.2" || r["followedTag"] == "2.0.1")
    })
    .await;

    // Each repository's tags are due together: once every tag of a group names the
    // same next check (in the future), count its rounds until it has named ROUNDS
    // new ones; the list must have been asked exactly once a round, and nothing else.
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let deadline = Instant::now() + INTERVAL * (ROUNDS as u32 + 8) * 2;
    while groups.len() < 2 || groups.values().any(|g| g.end.is_none()) {
        assert!(
            Instant::now() < deadline,
            "the tags of a repository never shared their checks: {:#?}",
            next_checks(&h).await
        );
        let mut by_from: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (from, next) in next_checks(&h).await.into_values() {
            by_from.entry(from).or_default().push(next);
        }
        for (from, nexts) in by_from {
            let g = groups.entry(from).or_default();
            if g.end.is_some() || nexts.iter().any(|n| n != &nexts[0] || n.is_empty()) {
                continue;
            }
            let next = nexts[0].clone();
            if g.agreed.as_ref() == Some(&next) {
                continue;
            }
            let ahead_ms = next.parse::<jiff::Timestamp>().unwrap().as_millisecond()
                - jiff::Timestamp::now().as_millisecond();
            match g.start {
                None if ahead_ms > 200 => g.start = Some(Instant::now()),
                None => {}
                Some(_) => {
                    g.rounds += 1;
                    if g.rounds == ROUNDS {
                        g.end = Some(Instant::now());
                    }
                }
            }
            g.agreed = Some(next);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (from, g) in &groups {
        let (start, end) = (g.start.unwrap(), g.end.unwrap());
        let path = format!("/v2/{}/", from.split_once('/').unwrap().1);
        let hits: Vec<_> = proxy
            .log
            .since(start)
            .into_iter()
            .filter(|h| h.at <= end && h.path.starts_with(&path))
            .map(|h| format!("{} {}", h.method, h.path))
            .collect();
        assert_eq!(
            hits,
            vec![format!("GET {path}tags/list"); ROUNDS],
            "{from}: one list request a round for all its tags, nothing else"
        );
    }
    h.stop().await;
}

/// A release followed by many tags of one stream moves them all with one fetch of its
/// manifest and one of its config, and in far fewer writes of the stream than tags
/// (the checks that finish together share a write).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_moves_its_followers_with_one_fetch_and_shared_writes() {
    const TAGS: usize = 24;
    let Some(dist) = Distribution::start() else {
        return;
    };
    let layout = three_images();
    push(&dist, &layout, "a", "g/rel:1.0.0");
    let proxy = CountingProxy::start(&dist.host).await;
    let store = Arc::new(MemoryStore::new());
    let h = moor_over(store.clone(), &[&proxy.host]).await;
    let rel = proxy.reference("g/rel");
    let ranges = [">=1.0.0 <1.1.0", "1.0.x", "~1.0"];
    let tags: Vec<Value> = (0..TAGS)
        .map(|i| {
            let semver = json!({ "moor.io/follow-semver": ranges[i % ranges.len()] });
            followed(&format!("t{i}"), &rel, semver)
        })
        .collect();
    create_stream(&h, "f", tags).await;
    let all_follow = |release: &'static str| {
        let h = &h;
        move || async move {
            let records = records(h, "f").await;
            records.len() == TAGS && records.values().all(|r| r["followedTag"] == release)
        }
    };
    wait_until(
        "every tag to follow 1.0.0",
        Duration::from_secs(60),
        all_follow("1.0.0"),
    )
    .await;

    // Count the stream's writes from here on.
    let key = "/registry/image.openshift.io/imagestreams/default/f";
    let from = store.current_revision().await.unwrap();
    let mut watch = store.watch(key, from).await.unwrap();
    let writes = Arc::new(AtomicUsize::new(0));
    let counter = {
        let writes = writes.clone();
        tokio::spawn(async move {
            while let Some(Ok(event)) = futures::StreamExt::next(&mut watch).await {
                if event.kv.key == key {
                    writes.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    let pushed_at = Instant::now();
    let pushed = push(&dist, &layout, "b", "g/rel:1.0.1");
    wait_until(
        "every tag to follow 1.0.1",
        6 * INTERVAL,
        all_follow("1.0.1"),
    )
    .await;
    let stream = stream(&h, "f").await;
    for i in 0..TAGS {
        assert_eq!(images(&stream, &format!("t{i}"))[0], pushed.digest, "t{i}");
    }
    counter.abort();
    let writes = writes.load(Ordering::SeqCst);
    assert!(
        (1..=TAGS / 3).contains(&writes),
        "{writes} writes of the stream for {TAGS} tags moving"
    );
    let fetched: Vec<String> = proxy
        .log
        .since(pushed_at)
        .into_iter()
        .filter(|h| h.method == "GET" && !h.path.ends_with("/tags/list"))
        .map(|h| h.path)
        .collect();
    assert_eq!(
        fetched.len(),
        2,
        "one manifest and one config GET for {TAGS} tags: {fetched:#?}"
    );
    h.stop().await;
}
