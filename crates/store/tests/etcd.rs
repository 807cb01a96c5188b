//! The etcd store's own behaviour beyond the conformance suite: endpoint failures and
//! writes whose outcome is unknown.

use crate::support;

use std::sync::Arc;

use futures::StreamExt as _;
use std::time::Duration;

use moor_store::{EtcdOptions, EtcdStore, EtcdTls, Store as _};
use support::hold_proxy::HoldProxy;
use support::{etcd_options, etcd_peer, etcd_store};

/// A dead endpoint listed first fails nothing: the store moves on to the live one.
/// (A write whose outcome is unknown, read back, has no test yet: it needs a member to
/// fail between receiving a request and answering it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_store_moves_past_a_dead_endpoint() {
    if !etcd_peer::available() {
        return;
    }
    let etcd = tokio::task::block_in_place(etcd_peer::Etcd::start);
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .to_string();
    let store = etcd_store(vec![dead.clone(), etcd.endpoint.clone()], "/moor").await;
    let r = store.create("/a", "1".into()).await.unwrap();
    assert_eq!(store.get("/a").await.unwrap().unwrap().mod_revision, r);
    let r2 = store.update("/a", "2".into(), r).await.unwrap();
    assert!(r2 > r);
}

/// Writes whose answers are lost (a proxy holds them, then breaks the connection) have
/// an unknown outcome; each is read back and answered as etcd decided: the update that
/// applied is not sent again (which would fail with Conflict), nor is the create
/// (AlreadyExists).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_of_unknown_outcome_are_read_back_not_blindly_retried() {
    if !etcd_peer::available() {
        return;
    }
    let etcd = tokio::task::block_in_place(etcd_peer::Etcd::start);
    let proxy = HoldProxy::start(etcd.endpoint.clone()).await;
    let mut options = etcd_options(vec![proxy.addr.clone()], "/moor");
    options.attempt_timeout = Duration::from_millis(300);
    options.deadline = Duration::from_secs(20);
    let store = Arc::new(EtcdStore::connect(options).await.unwrap());
    let direct = etcd_store(vec![etcd.endpoint.clone()], "/moor").await;
    for round in 0..2 {
        let (key, new) = (format!("/u/{round}"), format!("/c/{round}"));
        let r1 = store.create(&key, "1".into()).await.unwrap();
        proxy.hold(true);
        let (s1, s2) = (store.clone(), store.clone());
        let (k1, k2) = (key.clone(), new.clone());
        let update = tokio::spawn(async move { s1.update(&k1, "2".into(), r1).await });
        let create = tokio::spawn(async move { s2.create(&k2, "new".into()).await });
        // Both writes reach etcd and apply; their answers are held.
        let applied = async {
            loop {
                let updated = direct.get(&key).await.unwrap().unwrap().mod_revision > r1;
                if updated && direct.get(&new).await.unwrap().is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), applied)
            .await
            .expect("the writes reach etcd");
        // Past the attempt timeout, then the answers are lost.
        tokio::time::sleep(Duration::from_millis(500)).await;
        proxy.break_all();
        proxy.hold(false);
        let r2 = update.await.unwrap().expect("update of unknown outcome");
        let rc = create.await.unwrap().expect("create of unknown outcome");
        let now = direct.get(&key).await.unwrap().unwrap();
        assert_eq!((now.value.as_ref(), now.mod_revision), (&b"2"[..], r2));
        let created = direct.get(&new).await.unwrap().unwrap();
        assert_eq!((created.create_revision, created.mod_revision), (rc, rc));
    }
}

/// A watch whose connection breaks resumes on a new one from the next revision: every
/// event arrives once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_resumes_after_its_connection_breaks() {
    if !etcd_peer::available() {
        return;
    }
    let etcd = tokio::task::block_in_place(etcd_peer::Etcd::start);
    let proxy = HoldProxy::start(etcd.endpoint.clone()).await;
    let through_proxy = etcd_store(vec![proxy.addr.clone()], "/moor").await;
    let direct = etcd_store(vec![etcd.endpoint.clone()], "/moor").await;
    let start = direct.current_revision().await.unwrap();
    let mut watch = through_proxy.watch("/w/", start).await.unwrap();
    let mut written = Vec::new();
    for i in 0..30 {
        if i % 10 == 5 {
            proxy.break_all();
        }
        written.push(direct.create(&format!("/w/{i}"), "x".into()).await.unwrap());
    }
    let mut seen = Vec::new();
    while seen.len() < written.len() {
        let next = tokio::time::timeout(Duration::from_secs(20), watch.next())
            .await
            .expect("an event within 20 s");
        seen.push(
            next.expect("the watch goes on")
                .expect("no error")
                .kv
                .mod_revision,
        );
    }
    assert_eq!(seen, written);
    // Nothing more than the next write.
    let last = direct.create("/w/end", "x".into()).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(20), watch.next()).await;
    assert_eq!(next.unwrap().unwrap().unwrap().kv.mod_revision, last);
}

/// Runs `openssl ARGS` in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, in `dir`.
fn certificates(dir: &std::path::Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "1", "-subj", "/CN=test-ca"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    ca.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
    ca.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(dir, &ca);
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        let (key, csr, pem, extfile) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        std::fs::write(dir.join(&extfile), ext).unwrap();
        let mut req = vec!["req", "-subj", "/CN=moor"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr]);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-days",
                "1",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-extfile",
                &extfile,
            ],
        );
    }
}

/// `--etcd-cafile`, `--etcd-certfile` and `--etcd-keyfile`: moor speaks TLS to an etcd
/// that requires client certificates; without the client certificate it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_with_a_client_certificate() {
    if !etcd_peer::available() {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let etcd = tokio::task::block_in_place(|| etcd_peer::Etcd::start_with(Some(certs.path())));
    let url = format!("etcd://{}/tls", etcd.endpoint);
    let tls = EtcdTls {
        ca_file: Some(certs.path().join("ca.pem")),
        cert_file: Some(certs.path().join("client.pem")),
        key_file: Some(certs.path().join("client.key")),
    };
    let store = EtcdStore::connect(EtcdOptions::from_url(&url, tls.clone()).unwrap())
        .await
        .unwrap();
    let r = store.create("/a", "1".into()).await.unwrap();
    assert_eq!(store.get("/a").await.unwrap().unwrap().mod_revision, r);

    let mut options = EtcdOptions::from_url(
        &url,
        EtcdTls {
            cert_file: None,
            key_file: None,
            ..tls
        },
    )
    .unwrap();
    options.deadline = Duration::from_secs(1);
    assert!(EtcdStore::connect(options).await.is_err());
}

/// The next bookmark of `watch`, skipping nothing else: an event fails the test.
async fn next_progress(watch: &mut moor_store::ProgressStream) -> i64 {
    let item = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("a bookmark within 10 s")
        .expect("the watch goes on")
        .expect("no error");
    match item {
        moor_store::WatchItem::Progress(revision) => revision,
        moor_store::WatchItem::Event(e) => panic!("unexpected event {e:?}"),
    }
}

/// A watch with no changes under its prefix still hears etcd's progress: a bookmark at
/// the current revision, advancing as other prefixes are written; a change under the
/// prefix comes as an event, and bookmarks never go back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bookmarks_carry_the_revision_of_progress_notifications() {
    if !etcd_peer::available() {
        return;
    }
    let etcd = tokio::task::block_in_place(etcd_peer::Etcd::start);
    let store = etcd_store(vec![etcd.endpoint.clone()], "/moor").await;
    store.create("/other/0", "x".into()).await.unwrap();
    let start = store.current_revision().await.unwrap();
    let mut watch = store.watch_with_progress("/quiet/", start).await.unwrap();
    assert_eq!(next_progress(&mut watch).await, start);

    let mut last = start;
    for i in 1..=3 {
        last = store
            .create(&format!("/other/{i}"), "x".into())
            .await
            .unwrap();
    }
    // Bookmarks up to the writes elsewhere, none past them, none going back.
    let mut bookmark = start;
    while bookmark < last {
        let next = next_progress(&mut watch).await;
        assert!(next >= bookmark && next <= last, "{next} after {bookmark}");
        bookmark = next;
    }
    assert_eq!(bookmark, last);

    let own = store.create("/quiet/a", "x".into()).await.unwrap();
    let item = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match watch.next().await.unwrap().unwrap() {
                moor_store::WatchItem::Progress(r) => assert_eq!(r, last),
                moor_store::WatchItem::Event(e) => return e,
            }
        }
    })
    .await
    .expect("the event");
    assert_eq!(
        (item.kv.key.as_str(), item.kv.mod_revision),
        ("/quiet/a", own)
    );
    assert_eq!(next_progress(&mut watch).await, own);
    // The plain watch has no bookmarks: its next item is the next change.
    let mut plain = store.watch("/quiet/", own).await.unwrap();
    store.create("/other/4", "x".into()).await.unwrap();
    let next = store.create("/quiet/b", "x".into()).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), plain.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(event.kv.mod_revision, next);
}
