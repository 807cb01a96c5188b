//! Notifications end to end, with a receiver of the test kit: a tag moved by an import
//! from a real distribution arrives as a signed CloudEvent (and a failed import as
//! one); events recorded while the receiver is down survive a restart of moor and
//! arrive in order per stream (both also on a real etcd, where the stream and its
//! outbox entries are one etcd Txn, and on etcd in kine mode, single-key transactions
//! only, where the leader's recorder writes the entries from the streams' watch, and
//! a change whose history is compacted before it is recorded is a gap in the status);
//! a loopback receiver is refused without
//! `--allow-private-notification-targets`; bad specs are refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use moor_server::notify::DeliveryConfig;
use moor_server::notify::deliver::{SIGNATURE_HEADER, signature};
use moor_server::upstream::{UpstreamClient, UpstreamConfig};
use moor_store::{EtcdOptions, EtcdStore, Store};
use moor_testkit::etcd::Etcd;
use moor_testkit::receiver::{Received, Receiver};
use moor_testkit::server::*;
use moor_testkit::{Distribution, Format, ImageSpec, OciLayout};
use serde_json::{Value, json};

const NOTIFICATIONS: &str = "/apis/moor.io/v1/namespaces/default/notifications";
const MAPPINGS: &str = "/apis/image.openshift.io/v1/namespaces/default/imagestreammappings";
const WAIT: Duration = Duration::from_secs(60);

fn fast() -> DeliveryConfig {
    DeliveryConfig {
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        ..Default::default()
    }
}

fn upstream(insecure: &[&str]) -> Arc<UpstreamClient> {
    Arc::new(
        UpstreamClient::new(UpstreamConfig {
            insecure_registries: insecure.iter().map(|s| s.to_string()).collect(),
            use_environment_proxy: false,
            ..Default::default()
        })
        .unwrap(),
    )
}

async fn create_notification(h: &MoorServer, name: &str, spec: Value) {
    let r = h
        .post(
            NOTIFICATIONS,
            &json!({"metadata": {"name": name}, "spec": spec}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// Polls the Notification until `pred` holds of its status, or panics after [`WAIT`].
async fn wait_status(h: &MoorServer, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let n = h.get(&format!("{NOTIFICATIONS}/{name}")).await.body;
        if pred(&n["status"]) {
            return n;
        }
        assert!(Instant::now() < deadline, "status never matched: {n}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn events_of(got: &[Received], ty: &str) -> Vec<Value> {
    got.iter()
        .filter(|r| r.json["type"] == ty)
        .map(|r| r.json.clone())
        .collect()
}

/// A stream's tag moved through an ImageStreamMapping (no registry needed).
async fn map(h: &MoorServer, stream: &str, tag: &str, n: usize) -> String {
    let digest = format!("sha256:{n:064x}");
    let r = h
        .post(
            MAPPINGS,
            &json!({
                "metadata": {"name": stream},
                "tag": tag,
                "image": {"metadata": {"name": digest},
                          "dockerImageReference": format!("quay.io/team/{stream}@{digest}")},
            }),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    digest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_import_from_a_real_upstream_arrives_as_a_signed_cloudevent() {
    import_arrives_as_a_signed_cloudevent(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_etcd_an_import_arrives_as_a_signed_cloudevent() {
    let Some(etcd) = tokio::task::block_in_place(Etcd::start) else {
        return;
    };
    import_arrives_as_a_signed_cloudevent(Some(on_etcd(&etcd, "moor").await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_kine_an_import_arrives_as_a_signed_cloudevent() {
    let Some(etcd) = tokio::task::block_in_place(Etcd::start) else {
        return;
    };
    import_arrives_as_a_signed_cloudevent(Some(on_kine(&etcd, "moor").await)).await;
}

/// A store on `etcd` under `prefix`.
async fn on_etcd(etcd: &Etcd, prefix: &str) -> Arc<dyn Store> {
    let url = format!("etcd://127.0.0.1:{}/{prefix}", etcd.client_port);
    let options = EtcdOptions::from_url(&url, Default::default()).unwrap();
    Arc::new(EtcdStore::connect(options).await.unwrap())
}

/// A store on `etcd` under `prefix` in kine mode (`kine://`): kine cannot run here (a
/// Go program), so real etcd stands in, with moor keeping to kine's shapes.
async fn on_kine(etcd: &Etcd, prefix: &str) -> Arc<dyn Store> {
    let url = format!("kine://127.0.0.1:{}/{prefix}", etcd.client_port);
    let options = EtcdOptions::from_url(&url, Default::default()).unwrap();
    let store = EtcdStore::connect(options).await.unwrap();
    assert!(!store.multi_key_txn());
    Arc::new(store)
}

/// An import from distribution, a failed one and a tag moved by a spec edit arrive
/// as signed CloudEvents, with the moor over `store` (the in-memory store if none).
async fn import_arrives_as_a_signed_cloudevent(store: Option<Arc<dyn Store>>) {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let layout = OciLayout::new();
    layout.add_image("1.0", &ImageSpec::app("one"));
    layout.add_image("1.1", &ImageSpec::app("two"));
    let v1 = dist.push(&layout, "1.0", "team/app:1.0", Format::Oci);
    let v2 = dist.push(&layout, "1.1", "team/app:1.1", Format::Oci);
    let receiver = Receiver::start().await;
    let builder = match store {
        Some(store) => MoorServer::builder().store(store),
        None => MoorServer::builder(),
    };
    let h = builder
        .source(upstream(&[&dist.host]))
        .imports(moor_server::importer::controller::Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(2),
            max_retries: 20,
        })
        .notifications(fast())
        .start()
        .await;
    let r = h
        .post(
            "/api/v1/namespaces/default/secrets",
            &json!({"metadata": {"name": "hook"}, "stringData": {"key": "s3cret"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    create_notification(
        &h,
        "hook",
        json!({"url": receiver.url, "streams": ["app*"],
               "secretRef": {"name": "hook", "key": "key"}}),
    )
    .await;
    let from =
        |t: &str| json!({"kind": "DockerImage", "name": dist.reference(&format!("team/app:{t}"))});
    let r = h
        .post(
            IS,
            &json!({"metadata": {"name": "app"}, "spec": {"tags": [
                {"name": "stable", "from": from("1.0")},
                {"name": "broken", "from": {"kind": "DockerImage", "name": dist.reference("team/app:nope")}}]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // Another stream, not selected.
    let r = h.post(IS, &json!({"metadata": {"name": "other"}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    map(&h, "other", "x", 1).await;

    let got = receiver
        .wait_for(WAIT, |got, _| {
            !events_of(got, "io.moor.imagestreamtag.updated").is_empty()
                && !events_of(got, "io.moor.imagestreamtag.importfailed").is_empty()
        })
        .await;
    let updated = &events_of(&got, "io.moor.imagestreamtag.updated")[0];
    assert_eq!(updated["specversion"], "1.0");
    assert_eq!(updated["subject"], "default/app:stable");
    assert_eq!(updated["data"]["namespace"], "default");
    assert_eq!(updated["data"]["imageStream"], "app");
    assert_eq!(updated["data"]["tag"], "stable");
    assert_eq!(updated["data"]["newDigest"], v1.digest.as_str());
    assert!(updated["data"].get("oldDigest").is_none(), "{updated}");
    assert!(
        updated["data"]["pullSpec"]
            .as_str()
            .is_some_and(|p| p.ends_with(&format!("@{}", v1.digest))),
        "{updated}"
    );
    assert!(updated["time"].as_str().is_some() && updated["source"].as_str().is_some());
    let failed = &events_of(&got, "io.moor.imagestreamtag.importfailed")[0];
    assert_eq!(failed["data"]["tag"], "broken");
    assert!(failed["data"]["reason"].as_str().is_some(), "{failed}");
    // Every POST: the CloudEvents content type and a signature that verifies.
    for r in &got {
        assert_eq!(
            r.headers["content-type"],
            "application/cloudevents+json; charset=utf-8"
        );
        assert_eq!(
            r.headers[SIGNATURE_HEADER].to_str().unwrap(),
            signature(b"s3cret", &r.body)
        );
        assert_eq!(
            r.json["data"]["imageStream"], "app",
            "not selected: {}",
            r.json
        );
    }

    // Moving the tag: the event names both digests.
    let mut s = h.get(&format!("{IS}/app")).await.body;
    s["spec"]["tags"][0]["from"] = from("1.1");
    let r = h.put(&format!("{IS}/app"), &s).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let got = receiver
        .wait_for(WAIT, |got, _| {
            events_of(got, "io.moor.imagestreamtag.updated").len() >= 2
        })
        .await;
    let moved = &events_of(&got, "io.moor.imagestreamtag.updated")[1];
    assert_eq!(moved["data"]["oldDigest"], v1.digest.as_str());
    assert_eq!(moved["data"]["newDigest"], v2.digest.as_str());
    let ids: std::collections::HashSet<_> = got.iter().map(|r| r.json["id"].clone()).collect();
    assert_eq!(ids.len(), got.len(), "ids are unique");
    // Status and metrics say so.
    let n = wait_status(&h, "hook", |s| {
        s["pending"] == 0 && s["delivered"].as_u64() >= Some(3)
    })
    .await;
    assert!(n["status"]["lastSuccessTime"].as_str().is_some(), "{n}");
    let metrics = h.get("/metrics").await.text;
    assert!(
        metrics.contains("moor_notification_deliveries_total{result=\"delivered\"}"),
        "{metrics}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_pending_across_a_restart_all_arrive_in_order_per_stream() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moor.db");
    pending_across_a_restart(|| {
        let store: Arc<dyn Store> = Arc::new(moor_store::SqliteStore::open(&path).unwrap());
        async move { store }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_etcd_events_pending_across_a_restart_all_arrive_in_order_per_stream() {
    let Some(etcd) = tokio::task::block_in_place(Etcd::start) else {
        return;
    };
    pending_across_a_restart(|| on_etcd(&etcd, "moor")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_kine_events_pending_across_a_restart_all_arrive_in_order_per_stream() {
    let Some(etcd) = tokio::task::block_in_place(Etcd::start) else {
        return;
    };
    pending_across_a_restart(|| on_kine(&etcd, "moor")).await;
}

/// Ten moves of two streams' tags while the receiver refuses; the moor over the
/// store `open` gives is stopped, and a new one over the same data delivers them all,
/// in order per stream, once the receiver accepts.
async fn pending_across_a_restart<F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let receiver = Receiver::start().await;
    receiver.set_up(false);
    let h = MoorServer::builder()
        .store(open().await)
        .notifications(fast())
        .start()
        .await;
    create_notification(
        &h,
        "hook",
        json!({"url": receiver.url, "events": ["TagUpdated"]}),
    )
    .await;
    let mut sent = std::collections::BTreeMap::<String, Vec<String>>::new();
    for stream in ["a", "b"] {
        let r = h.post(IS, &json!({"metadata": {"name": stream}})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    for i in 0..5 {
        for (k, stream) in ["a", "b"].into_iter().enumerate() {
            let digest = map(&h, stream, "latest", 1 + 2 * i + k).await;
            sent.entry(stream.into()).or_default().push(digest);
        }
    }
    // The receiver refuses; the status counts what waits.
    receiver.wait_for(WAIT, |_, refused| refused >= 2).await;
    let n = wait_status(&h, "hook", |s| {
        s["pending"] == 10 && s["lastError"].is_string()
    })
    .await;
    assert!(
        n["status"]["lastError"].as_str().unwrap().contains("503"),
        "{n}"
    );
    h.stop().await;

    // A new process over the same database, the receiver back.
    receiver.set_up(true);
    let h = MoorServer::builder()
        .store(open().await)
        .notifications(fast())
        .start()
        .await;
    let got = receiver.wait_for(WAIT, |got, _| got.len() >= 10).await;
    let mut arrived = std::collections::BTreeMap::<String, Vec<String>>::new();
    for r in &got {
        assert_eq!(r.json["type"], "io.moor.imagestreamtag.updated");
        let stream = r.json["data"]["imageStream"].as_str().unwrap().to_owned();
        let digest = r.json["data"]["newDigest"].as_str().unwrap().to_owned();
        let list = arrived.entry(stream).or_default();
        // At least once: a repeat of the last one is allowed, nothing out of order.
        if list.last() != Some(&digest) {
            list.push(digest);
        }
    }
    assert_eq!(arrived, sent);
    let n = wait_status(&h, "hook", |s| {
        s["pending"] == 0 && s.get("lastError").is_none()
    })
    .await;
    assert!(n["status"]["delivered"].as_u64() >= Some(10), "{n}");
    h.stop().await;
}

/// On kine, a tag moved while no moor runs, whose history is then compacted, is a gap:
/// the next leader records no event for it, says so in the Notification's status and
/// `/metrics`, and records the next move against the stream as it found it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_kine_a_compacted_change_is_a_gap_in_the_status() {
    let Some(etcd) = tokio::task::block_in_place(Etcd::start) else {
        return;
    };
    let receiver = Receiver::start().await;
    let h = MoorServer::builder()
        .store(on_kine(&etcd, "moor").await)
        .notifications(fast())
        .start()
        .await;
    create_notification(&h, "hook", json!({"url": receiver.url})).await;
    let r = h.post(IS, &json!({"metadata": {"name": "app"}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let first = map(&h, "app", "latest", 1).await;
    // Delivered and deleted (else the next server sends it again, at least once).
    wait_status(&h, "hook", |s| s["pending"] == 0 && s["delivered"] == 1).await;
    h.stop().await;

    // The tag moves with no moor running; the store then forgets that history.
    let store = on_kine(&etcd, "moor").await;
    let key = "/registry/image.openshift.io/imagestreams/default/app";
    let kv = store.get(key).await.unwrap().unwrap();
    let mut stream: Value = serde_json::from_slice(&kv.value).unwrap();
    let missed = format!("sha256:{:064x}", 2);
    let items = stream["status"]["tags"][0]["items"].as_array_mut().unwrap();
    items.insert(
        0,
        json!({"created": "2026-01-01T00:00:00Z", "image": missed,
               "dockerImageReference": format!("quay.io/team/app@{missed}"), "generation": 1}),
    );
    let bytes = serde_json::to_vec(&stream).unwrap();
    store
        .update(key, bytes.into(), kv.mod_revision)
        .await
        .unwrap();
    store
        .compact(store.current_revision().await.unwrap())
        .await
        .unwrap();

    let h = MoorServer::builder()
        .store(store)
        .notifications(fast())
        .start()
        .await;
    let n = wait_status(&h, "hook", |s| s["gaps"] == 1).await;
    let gap = n["status"]["lastGap"].as_str().unwrap();
    assert!(gap.contains("compacted"), "{gap}");
    assert!(n["status"]["lastGapTime"].is_string(), "{n}");
    let metrics = h.get("/metrics").await.text;
    assert!(
        metrics.contains("moor_notification_gaps_total 1"),
        "{metrics}"
    );
    let last = map(&h, "app", "latest", 3).await;
    let got = receiver.wait_for(WAIT, |got, _| got.len() >= 2).await;
    let digests: Vec<(&str, &str)> = got
        .iter()
        .map(|r| {
            (
                r.json["data"]["oldDigest"].as_str().unwrap_or(""),
                r.json["data"]["newDigest"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        digests,
        [("", first.as_str()), (missed.as_str(), last.as_str())]
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_loopback_receiver_is_refused_without_the_flag() {
    let receiver = Receiver::start().await;
    let h = MoorServer::builder()
        .notifications(fast())
        .with(|o| o.allow_private_notification_targets = false)
        .start()
        .await;
    create_notification(&h, "hook", json!({"url": receiver.url})).await;
    let r = h.post(IS, &json!({"metadata": {"name": "app"}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    map(&h, "app", "latest", 7).await;
    let n = wait_status(&h, "hook", |s| s["lastError"].is_string()).await;
    let error = n["status"]["lastError"].as_str().unwrap();
    assert!(
        error.contains("--allow-private-notification-targets") && error.contains("127.0.0.1"),
        "{error}"
    );
    assert_eq!(n["status"]["pending"], 1);
    assert!(receiver.received().await.is_empty());
    assert_eq!(receiver.refused().await, 0);
    h.stop().await;
}

#[tokio::test]
async fn specs_are_validated() {
    let h = MoorServer::start().await;
    for (spec, field) in [
        (json!({"url": "ftp://example.com/"}), "spec.url"),
        (json!({}), "spec.url"),
        (
            json!({"url": "https://example.com/", "streams": ["a/b"]}),
            "spec.streams[0]",
        ),
        (
            json!({"url": "https://example.com/", "secretRef": {"name": "s"}}),
            "spec.secretRef.key",
        ),
    ] {
        let r = h
            .post(
                NOTIFICATIONS,
                &json!({"metadata": {"name": "n"}, "spec": spec}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{spec}: {}",
            r.text
        );
        assert!(r.text.contains(field), "{spec}: {}", r.text);
    }
    let r = h
        .post(
            NOTIFICATIONS,
            &json!({"metadata": {"name": "n"}, "spec": {"url": "https://example.com/", "events": ["Bogus"]}}),
        )
        .await;
    assert!(r.status.is_client_error(), "{}", r.text);
    // Status is the server's.
    let r = h
        .post(
            NOTIFICATIONS,
            &json!({"metadata": {"name": "ok"}, "spec": {"url": "https://example.com/"},
                    "status": {"pending": 99}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(r.body["status"]["pending"] != 99, "{}", r.text);
}
