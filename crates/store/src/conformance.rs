//! The conformance suite that every [`Store`] backend must pass: get, create, update and
//! delete with compare-and-swap, list (prefix, paging, past revisions), watch (event
//! order, replay, no gap under concurrent writes), compaction, and concurrent
//! read-modify-write. Calls only the [`Store`] trait, tokio and futures.
//!
//! Long on purpose (about 1,000 lines): one case after another, each short, so that a
//! backend's author reads the whole contract in one place.
//!
//! Every case takes a fresh store and panics on failure, so the suite runs inside a test,
//! on a multi-threaded runtime (`#[tokio::test(flavor = "multi_thread")]`):
//!
//! ```no_run
//! # async fn conformance() {
//! moor_store::conformance::run_all(|| async { moor_store::MemoryStore::new() }).await;
//! # }
//! ```
//!
//! Each case is also a public function, to run as a test of its own.
//!
//! Long on purpose (over 900 lines): it is a test suite, one case after another, read
//! top to bottom.
//!
//! The cases use keys under their own prefix and, except [`fresh_store_revisions`],
//! compare revisions only relative to each other, so a backend whose stores share one
//! revision counter with other writers (etcd) can run them with
//! [`Config::exclusive`] set to false.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;

use crate::{
    Event, EventKind, KeyValue, ListOptions, ListResult, Revision, Store, StoreError, TxnWrite,
    WatchStream,
};

/// How long a case waits for an expected watch event before failing.
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

/// What the suite may assume about the stores it is given.
#[derive(Clone, Debug)]
pub struct Config {
    /// Each store is empty and only the suite writes to it: the first write gets revision
    /// 1 and revisions have no gaps. Enables [`fresh_store_revisions`].
    pub exclusive: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self { exclusive: true }
    }
}

/// Runs every case with the default [`Config`], each on a fresh store from `make`.
pub async fn run_all<S, F, Fut>(make: F)
where
    S: Store,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    run_all_with(&Config::default(), make).await;
}

/// Runs every case that `config` allows, each on a fresh store from `make`, and prints
/// each case's duration to stderr.
pub async fn run_all_with<S, F, Fut>(config: &Config, mut make: F)
where
    S: Store,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    macro_rules! case {
        ($name:ident) => {{
            let start = Instant::now();
            $name(make().await).await;
            eprintln!(
                "conformance: {} ok in {:?}",
                stringify!($name),
                start.elapsed()
            );
        }};
    }
    let start = Instant::now();
    if config.exclusive {
        case!(fresh_store_revisions);
    }
    case!(get_create_update_delete);
    case!(create_existing_fails);
    case!(stale_revision_conflicts);
    case!(missing_key_not_found);
    case!(list_by_prefix);
    case!(list_paging);
    case!(list_at_revision);
    case!(watch_event_kinds);
    case!(watch_with_progress_events);
    case!(watch_replays_history);
    case!(stalled_watcher_is_closed);
    case!(compaction);
    case!(watch_no_gap_under_concurrent_writes);
    case!(concurrent_shared_counter);
    case!(concurrent_per_key_writes);
    case!(multi_key_transaction);
    eprintln!("conformance: all cases ok in {:?}", start.elapsed());
}

// ---------------------------------------------------------------------------------------
// Helpers

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn kv(key: &str, value: &str, create_revision: Revision, mod_revision: Revision) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: b(value),
        create_revision,
        mod_revision,
    }
}

fn put(kv: KeyValue) -> Event {
    Event {
        kind: EventKind::Put,
        kv,
    }
}

fn deleted(kv: KeyValue) -> Event {
    Event {
        kind: EventKind::Delete,
        kv,
    }
}

fn keys(result: &ListResult) -> Vec<&str> {
    result.kvs.iter().map(|kv| kv.key.as_str()).collect()
}

async fn list_all<S: Store>(store: &S, prefix: &str) -> ListResult {
    store
        .list(prefix, ListOptions::default())
        .await
        .expect("list")
}

async fn list_at<S: Store>(
    store: &S,
    prefix: &str,
    revision: Revision,
) -> Result<ListResult, StoreError> {
    store
        .list(
            prefix,
            ListOptions {
                revision: Some(revision),
                ..ListOptions::default()
            },
        )
        .await
}

/// The next event of `watch`, failing on error, end, or [`EVENT_TIMEOUT`].
async fn next_event(watch: &mut WatchStream) -> Event {
    match tokio::time::timeout(EVENT_TIMEOUT, watch.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(err))) => panic!("watch failed: {err}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch event within {EVENT_TIMEOUT:?}"),
    }
}

async fn next_events(watch: &mut WatchStream, n: usize) -> Vec<Event> {
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        events.push(next_event(watch).await);
    }
    events
}

// ---------------------------------------------------------------------------------------
// Cases

/// A fresh store is at revision 0, the first write gets 1, every successful write takes
/// the next revision, failed writes take none, and a revision is never reused, even after
/// compaction removed the newest row. Needs [`Config::exclusive`].
pub async fn fresh_store_revisions<S: Store>(store: S) {
    assert_eq!(store.current_revision().await.unwrap(), 0);
    assert_eq!(
        list_all(&store, "").await,
        ListResult {
            kvs: vec![],
            revision: 0,
            more: false
        }
    );
    assert_eq!(store.create("/fresh/a", b("1")).await.unwrap(), 1);
    assert_eq!(store.update("/fresh/a", b("2"), 1).await.unwrap(), 2);
    assert_eq!(
        store.delete("/fresh/a", None).await.unwrap().mod_revision,
        3
    );
    assert_eq!(store.create("/fresh/a", b("3")).await.unwrap(), 4);
    assert!(store.create("/fresh/a", b("x")).await.is_err());
    assert!(store.update("/fresh/a", b("x"), 1).await.is_err());
    assert!(store.delete("/fresh/b", None).await.is_err());
    assert_eq!(store.current_revision().await.unwrap(), 4);
    assert_eq!(list_all(&store, "/fresh/").await.revision, 4);
    assert_eq!(
        store.delete("/fresh/a", None).await.unwrap().mod_revision,
        5
    );
    store.compact(5).await.unwrap();
    assert_eq!(store.current_revision().await.unwrap(), 5);
    assert_eq!(store.create("/fresh/b", b("1")).await.unwrap(), 6);
    assert_eq!(store.current_revision().await.unwrap(), 6);
}

/// Basic reads and writes: values (empty and binary too), create and mod revisions,
/// increasing revisions, delete returning the last value, re-creating a deleted key.
pub async fn get_create_update_delete<S: Store>(store: S) {
    let key = "/basics/a";
    let r0 = store.current_revision().await.unwrap();
    assert_eq!(store.get(key).await.unwrap(), None);

    let r1 = store.create(key, b("one")).await.unwrap();
    assert!(r1 > r0, "create got revision {r1}, store was at {r0}");
    assert!(store.current_revision().await.unwrap() >= r1);
    assert_eq!(store.get(key).await.unwrap(), Some(kv(key, "one", r1, r1)));

    let r2 = store.update(key, b("two"), r1).await.unwrap();
    assert!(r2 > r1);
    assert_eq!(store.get(key).await.unwrap(), Some(kv(key, "two", r1, r2)));

    let r3 = store.create("/basics/empty", Bytes::new()).await.unwrap();
    assert!(r3 > r2);
    assert_eq!(
        store.get("/basics/empty").await.unwrap().unwrap().value,
        Bytes::new()
    );
    let binary = Bytes::from_static(&[0, 255, 0, 1, 128]);
    let r4 = store
        .create("/basics/binary", binary.clone())
        .await
        .unwrap();
    assert!(r4 > r3);
    assert_eq!(
        store.get("/basics/binary").await.unwrap().unwrap().value,
        binary
    );
    assert_eq!(
        store.get("/basics").await.unwrap(),
        None,
        "get is exact, not by prefix"
    );

    let gone = store.delete(key, Some(r2)).await.unwrap();
    assert!(gone.mod_revision > r4);
    assert_eq!(gone, kv(key, "two", r1, gone.mod_revision));
    assert_eq!(store.get(key).await.unwrap(), None);

    let gone_empty = store.delete("/basics/empty", None).await.unwrap();
    assert!(gone_empty.mod_revision > gone.mod_revision);
    assert_eq!(gone_empty.create_revision, r3);
    assert_eq!(store.get("/basics/empty").await.unwrap(), None);

    let r5 = store.create(key, b("again")).await.unwrap();
    assert!(r5 > gone_empty.mod_revision);
    assert_eq!(
        store.get(key).await.unwrap(),
        Some(kv(key, "again", r5, r5)),
        "a new incarnation"
    );
    assert!(store.current_revision().await.unwrap() >= r5);
}

/// `create` of an existing key fails with `AlreadyExists` and changes nothing.
pub async fn create_existing_fails<S: Store>(store: S) {
    let key = "/exists/a";
    let r1 = store.create(key, b("one")).await.unwrap();
    match store.create(key, b("two")).await {
        Err(StoreError::AlreadyExists(k)) => assert_eq!(k, key),
        other => panic!("create of an existing key: {other:?}"),
    }
    assert_eq!(store.get(key).await.unwrap(), Some(kv(key, "one", r1, r1)));
    let r2 = store.update(key, b("two"), r1).await.unwrap();
    assert!(matches!(
        store.create(key, b("three")).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(store.get(key).await.unwrap(), Some(kv(key, "two", r1, r2)));
}

/// `txn` applies every write or none: an update and a create land together, in order
/// for a watcher; a failed precondition (a stale update, an existing key, a missing
/// key) writes nothing and names its key. A store without multi-key transactions
/// ([`Store::multi_key_txn`] false: kine) runs [`single_key_transactions_only`]
/// instead.
pub async fn multi_key_transaction<S: Store>(store: S) {
    if !store.multi_key_txn() {
        return single_key_transactions_only(store).await;
    }
    let (a, out1, out2) = ("/txn/a", "/txn/outbox/1", "/txn/outbox/2");
    let r1 = store.create(a, b("one")).await.unwrap();
    let mut watch = store.watch("/txn/", r1).await.unwrap();
    let revisions = store
        .txn(vec![
            TxnWrite::Update {
                key: a.into(),
                value: b("two"),
                expected: r1,
            },
            TxnWrite::Create {
                key: out1.into(),
                value: b("moved"),
            },
        ])
        .await
        .unwrap();
    assert_eq!(revisions.len(), 2);
    assert!(
        revisions[0] > r1 && revisions[1] >= revisions[0],
        "{revisions:?}"
    );
    let got = next_events(&mut watch, 2).await;
    assert_eq!(
        got,
        vec![
            put(kv(a, "two", r1, revisions[0])),
            put(kv(out1, "moved", revisions[1], revisions[1])),
        ]
    );
    // A stale update: nothing of the transaction is written.
    match store
        .txn(vec![
            TxnWrite::Create {
                key: out2.into(),
                value: b("x"),
            },
            TxnWrite::Update {
                key: a.into(),
                value: b("three"),
                expected: r1,
            },
        ])
        .await
    {
        Err(StoreError::Conflict {
            key,
            expected,
            actual,
        }) => {
            assert_eq!(
                (key.as_str(), expected, actual),
                (a, r1, Some(revisions[0]))
            );
        }
        other => panic!("a stale transaction: {other:?}"),
    }
    assert_eq!(store.get(out2).await.unwrap(), None);
    // An existing key, then a missing one.
    let existing = store
        .txn(vec![
            TxnWrite::Update {
                key: a.into(),
                value: b("three"),
                expected: revisions[0],
            },
            TxnWrite::Create {
                key: out1.into(),
                value: b("again"),
            },
        ])
        .await;
    assert!(
        matches!(&existing, Err(StoreError::AlreadyExists(k)) if k == out1),
        "{existing:?}"
    );
    let missing = store
        .txn(vec![TxnWrite::Update {
            key: "/txn/missing".into(),
            value: b("x"),
            expected: r1,
        }])
        .await;
    assert!(
        matches!(&missing, Err(StoreError::NotFound(k)) if k == "/txn/missing"),
        "{missing:?}"
    );
    assert_eq!(
        store.get(a).await.unwrap(),
        Some(kv(a, "two", r1, revisions[0]))
    );
    // Nothing else reached the watcher: the next event is this create.
    let r = store.create(out2, b("y")).await.unwrap();
    assert_eq!(next_event(&mut watch).await, put(kv(out2, "y", r, r)));
}

/// A store without multi-key transactions (kine): `txn` of two writes fails with
/// `Unsupported` and writes neither; `txn` of one write is that create or update, with
/// its preconditions.
pub async fn single_key_transactions_only<S: Store>(store: S) {
    assert!(!store.multi_key_txn());
    let (a, out1) = ("/txn/a", "/txn/outbox/1");
    let r1 = store.create(a, b("one")).await.unwrap();
    let two = store
        .txn(vec![
            TxnWrite::Update {
                key: a.into(),
                value: b("two"),
                expected: r1,
            },
            TxnWrite::Create {
                key: out1.into(),
                value: b("moved"),
            },
        ])
        .await;
    assert!(matches!(two, Err(StoreError::Unsupported(_))), "{two:?}");
    assert_eq!(store.get(a).await.unwrap(), Some(kv(a, "one", r1, r1)));
    assert_eq!(store.get(out1).await.unwrap(), None);
    let r2 = store
        .txn(vec![TxnWrite::Update {
            key: a.into(),
            value: b("two"),
            expected: r1,
        }])
        .await
        .unwrap();
    assert_eq!(r2.len(), 1);
    assert_eq!(store.get(a).await.unwrap(), Some(kv(a, "two", r1, r2[0])));
    let stale = store
        .txn(vec![TxnWrite::Update {
            key: a.into(),
            value: b("three"),
            expected: r1,
        }])
        .await;
    assert!(
        matches!(&stale, Err(StoreError::Conflict { key, .. }) if key == a),
        "{stale:?}"
    );
    let r3 = store
        .txn(vec![TxnWrite::Create {
            key: out1.into(),
            value: b("x"),
        }])
        .await
        .unwrap();
    assert_eq!(
        store.get(out1).await.unwrap(),
        Some(kv(out1, "x", r3[0], r3[0]))
    );
    let again = store
        .txn(vec![TxnWrite::Create {
            key: out1.into(),
            value: b("y"),
        }])
        .await;
    assert!(
        matches!(&again, Err(StoreError::AlreadyExists(k)) if k == out1),
        "{again:?}"
    );
}

/// `update` and `delete` with a stale expected revision fail with `Conflict` naming the
/// current revision, and change nothing.
pub async fn stale_revision_conflicts<S: Store>(store: S) {
    let key = "/conflict/a";
    let r1 = store.create(key, b("one")).await.unwrap();
    let r2 = store.update(key, b("two"), r1).await.unwrap();
    let other = store.create("/conflict/b", b("b")).await.unwrap();
    let expect_conflict = |result: Result<(), StoreError>, expected: Revision| match result {
        Err(StoreError::Conflict {
            key: k,
            expected: e,
            actual,
        }) => {
            assert_eq!((k.as_str(), e, actual), (key, expected, Some(r2)));
        }
        other => panic!("stale write with expected {expected}: {other:?}"),
    };
    expect_conflict(store.update(key, b("x"), r1).await.map(drop), r1);
    expect_conflict(store.update(key, b("x"), other).await.map(drop), other);
    expect_conflict(
        store.update(key, b("x"), r2 + 1_000_000).await.map(drop),
        r2 + 1_000_000,
    );
    expect_conflict(store.delete(key, Some(r1)).await.map(drop), r1);
    assert_eq!(store.get(key).await.unwrap(), Some(kv(key, "two", r1, r2)));
    let listed = list_all(&store, "/conflict/").await;
    assert_eq!(
        listed.kvs,
        vec![kv(key, "two", r1, r2), kv("/conflict/b", "b", other, other)]
    );
    // The current revision still works.
    let r3 = store.update(key, b("three"), r2).await.unwrap();
    let gone = store.delete(key, Some(r3)).await.unwrap();
    assert!(gone.mod_revision > r3);
    assert_eq!(gone, kv(key, "three", r1, gone.mod_revision));
}

/// `update` and `delete` of a key that never existed, or was deleted, fail with `NotFound`.
pub async fn missing_key_not_found<S: Store>(store: S) {
    let key = "/missing/a";
    let check = |result: Result<(), StoreError>, what: &str| match result {
        Err(StoreError::NotFound(k)) => assert_eq!(k, key, "{what}"),
        other => panic!("{what} of a missing key: {other:?}"),
    };
    check(store.update(key, b("x"), 1).await.map(drop), "update");
    check(store.delete(key, None).await.map(drop), "delete");
    check(
        store.delete(key, Some(1)).await.map(drop),
        "delete with a revision",
    );
    let r1 = store.create(key, b("one")).await.unwrap();
    let gone = store.delete(key, None).await.unwrap();
    check(
        store.update(key, b("x"), r1).await.map(drop),
        "update after delete",
    );
    check(
        store.update(key, b("x"), gone.mod_revision).await.map(drop),
        "update at the delete's revision",
    );
    check(
        store.delete(key, None).await.map(drop),
        "delete after delete",
    );
    check(
        store.delete(key, Some(gone.mod_revision)).await.map(drop),
        "delete at the delete's revision",
    );
    assert_eq!(store.get(key).await.unwrap(), None);
    assert_eq!(list_all(&store, "/missing/").await.kvs, vec![]);
}

/// `list` returns exactly the keys under a prefix (`/a/b/` matches neither `/a/b` nor
/// `/a/bc/x`), in ascending byte order, with their values and revisions.
pub async fn list_by_prefix<S: Store>(store: S) {
    let names = [
        "/list/a/b/sub/x",
        "/list/a/bc/x",
        "/list/a/b/2",
        "/list/b/1",
        "/list/a/b",
        "/list/a/b/10",
        "/list/ü/2",
        "/list/a/a/z",
        "/list/a/b/1",
        "/list/üx",
        "/list/a/bc",
        "/list/ü/1",
        "/lisz",
        "/lis",
    ];
    let mut written = BTreeMap::new();
    for name in names {
        let revision = store.create(name, b(&format!("v{name}"))).await.unwrap();
        written.insert(name, kv(name, &format!("v{name}"), revision, revision));
    }
    let last = written.values().map(|kv| kv.mod_revision).max().unwrap();
    let under = |prefix: &str| -> Vec<KeyValue> {
        written
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, kv)| kv.clone())
            .collect()
    };

    let result = list_all(&store, "/list/a/b/").await;
    assert_eq!(
        keys(&result),
        [
            "/list/a/b/1",
            "/list/a/b/10",
            "/list/a/b/2",
            "/list/a/b/sub/x"
        ]
    );
    assert_eq!(result.kvs, under("/list/a/b/"));
    assert!(!result.more);
    assert!(result.revision >= last);

    assert_eq!(list_all(&store, "/list/a/b").await.kvs, under("/list/a/b"));
    assert_eq!(list_all(&store, "/list/a/").await.kvs, under("/list/a/"));
    assert_eq!(
        keys(&list_all(&store, "/list/ü/").await),
        ["/list/ü/1", "/list/ü/2"]
    );
    assert_eq!(list_all(&store, "/list/").await.kvs, under("/list/"));
    assert_eq!(list_all(&store, "/lis").await.kvs, under("/lis"));
    assert_eq!(
        list_all(&store, "/list/a/b/1").await.kvs,
        under("/list/a/b/1")
    );
    let nothing = list_all(&store, "/list/nothing/").await;
    assert!(nothing.kvs.is_empty() && !nothing.more);

    store.delete("/list/a/b/2", None).await.unwrap();
    let r = store
        .update("/list/a/b/1", b("new"), written["/list/a/b/1"].mod_revision)
        .await
        .unwrap();
    let result = list_all(&store, "/list/a/b/").await;
    assert_eq!(
        keys(&result),
        ["/list/a/b/1", "/list/a/b/10", "/list/a/b/sub/x"]
    );
    assert_eq!(
        result.kvs[0],
        kv(
            "/list/a/b/1",
            "new",
            written["/list/a/b/1"].create_revision,
            r
        )
    );
}

/// `limit` and `start_after` page through a prefix; `more` tells whether keys remain;
/// pages read at the first page's revision do not see later writes.
pub async fn list_paging<S: Store>(store: S) {
    for i in 0..25 {
        store
            .create(&format!("/page/k{i:02}"), b(&i.to_string()))
            .await
            .unwrap();
    }
    store.create("/page0", b("outside")).await.unwrap();
    store.create("/pagez", b("outside")).await.unwrap();
    store.create("/pag", b("outside")).await.unwrap();
    store.delete("/page/k05", None).await.unwrap();
    let expected: Vec<String> = (0..25)
        .filter(|&i| i != 5)
        .map(|i| format!("/page/k{i:02}"))
        .collect();

    let page = |start_after: Option<&str>, limit: Option<usize>, revision: Option<Revision>| {
        let opts = ListOptions {
            revision,
            start_after: start_after.map(str::to_owned),
            limit,
        };
        let store = &store;
        async move { store.list("/page/", opts).await.expect("list page") }
    };
    let first = page(None, Some(10), None).await;
    assert_eq!(keys(&first), expected[..10]);
    assert!(first.more);
    // A write after the first page is not seen by pages read at its revision.
    store.create("/page/k99", b("late")).await.unwrap();
    store.delete("/page/k20", None).await.unwrap();
    let second = page(Some(&expected[9]), Some(10), Some(first.revision)).await;
    assert_eq!(keys(&second), expected[10..20]);
    assert!(second.more);
    assert_eq!(second.revision, first.revision);
    let third = page(Some(&expected[19]), Some(10), Some(first.revision)).await;
    assert_eq!(keys(&third), expected[20..]);
    assert!(!third.more);

    let exact = page(Some(&expected[19]), Some(4), Some(first.revision)).await;
    assert_eq!(keys(&exact), expected[20..]);
    assert!(!exact.more, "limit equal to what remains");
    let one_short = page(Some(&expected[19]), Some(3), Some(first.revision)).await;
    assert_eq!(keys(&one_short), expected[20..23]);
    assert!(one_short.more);

    // start_after need not exist, and before the prefix it means from the start.
    let between = page(Some("/page/k05"), Some(2), None).await;
    assert_eq!(keys(&between), ["/page/k06", "/page/k07"]);
    let before = page(Some("/pag"), Some(2), None).await;
    assert_eq!(keys(&before), ["/page/k00", "/page/k01"]);
    let beyond = page(Some("/page/zz"), Some(2), None).await;
    assert!(beyond.kvs.is_empty() && !beyond.more);
    let unlimited = page(Some("/page/k18"), None, None).await;
    assert_eq!(
        keys(&unlimited),
        [
            "/page/k19",
            "/page/k21",
            "/page/k22",
            "/page/k23",
            "/page/k24",
            "/page/k99"
        ]
    );
    assert!(!unlimited.more);
}

/// `list` at a past revision returns the state as of that revision; a revision newer
/// than the store fails with `FutureRevision`.
pub async fn list_at_revision<S: Store>(store: S) {
    let (a, b_, c) = ("/rev/a", "/rev/b", "/rev/c");
    let r0 = store.current_revision().await.unwrap();
    let r1 = store.create(a, b("a1")).await.unwrap();
    let r2 = store.create(b_, b("b1")).await.unwrap();
    let r3 = store.update(a, b("a2"), r1).await.unwrap();
    let r4 = store.delete(b_, None).await.unwrap().mod_revision;
    let r5 = store.create(c, b("c1")).await.unwrap();
    let r6 = store.create(b_, b("b2")).await.unwrap();
    store.create("/rev0", b("outside")).await.unwrap();

    let at = |revision: Revision| {
        let store = &store;
        async move {
            list_at(store, "/rev/", revision)
                .await
                .expect("list at revision")
        }
    };
    assert_eq!(at(r0).await.kvs, vec![]);
    assert_eq!(at(r1).await.kvs, vec![kv(a, "a1", r1, r1)]);
    assert_eq!(
        at(r2).await.kvs,
        vec![kv(a, "a1", r1, r1), kv(b_, "b1", r2, r2)]
    );
    assert_eq!(
        at(r3).await.kvs,
        vec![kv(a, "a2", r1, r3), kv(b_, "b1", r2, r2)]
    );
    assert_eq!(at(r4).await.kvs, vec![kv(a, "a2", r1, r3)]);
    assert_eq!(
        at(r5).await.kvs,
        vec![kv(a, "a2", r1, r3), kv(c, "c1", r5, r5)]
    );
    let latest = at(r6).await;
    assert_eq!(
        latest.kvs,
        vec![
            kv(a, "a2", r1, r3),
            kv(b_, "b2", r6, r6),
            kv(c, "c1", r5, r5)
        ]
    );
    assert_eq!(latest.revision, r6);
    assert_eq!(at(r3).await.revision, r3);
    assert_eq!(list_all(&store, "/rev/").await.kvs, latest.kvs);

    let paged = store
        .list(
            "/rev/",
            ListOptions {
                revision: Some(r3),
                start_after: None,
                limit: Some(1),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (paged.kvs.clone(), paged.more),
        (vec![kv(a, "a2", r1, r3)], true)
    );

    let current = store.current_revision().await.unwrap();
    match list_at(&store, "/rev/", current + 1000).await {
        Err(StoreError::FutureRevision {
            requested,
            current: c,
        }) => {
            assert_eq!(requested, current + 1000);
            assert!(c >= current);
        }
        other => panic!("list at a future revision: {other:?}"),
    }
}

/// A watch sees puts, updates and deletes under its prefix, in order, with the right
/// kinds and revisions, and nothing outside the prefix.
pub async fn watch_event_kinds<S: Store>(store: S) {
    let key = "/watch/a";
    let r0 = store.current_revision().await.unwrap();
    let mut watch = store.watch("/watch/", r0).await.unwrap();
    let r1 = store.create(key, b("v1")).await.unwrap();
    store.create("/watchx", b("outside")).await.unwrap();
    store.create("/other/watch/a", b("outside")).await.unwrap();
    let r2 = store.update(key, b("v2"), r1).await.unwrap();
    let gone = store.delete(key, Some(r2)).await.unwrap();
    let r4 = store.create(key, b("v3")).await.unwrap();
    let r5 = store.create("/watch/z", b("z")).await.unwrap();
    let events = next_events(&mut watch, 5).await;
    assert_eq!(
        events,
        vec![
            put(kv(key, "v1", r1, r1)),
            put(kv(key, "v2", r1, r2)),
            deleted(kv(key, "v2", r1, gone.mod_revision)),
            put(kv(key, "v3", r4, r4)),
            put(kv("/watch/z", "z", r5, r5)),
        ]
    );
    // A watch on one key's name as prefix.
    let mut one = store.watch(key, r4).await.unwrap();
    store.update("/watch/z", b("z2"), r5).await.unwrap();
    let r6 = store.update(key, b("v4"), r4).await.unwrap();
    assert_eq!(next_event(&mut one).await, put(kv(key, "v4", r4, r6)));
}

/// [`Store::watch_with_progress`] yields the events [`Store::watch`] does, in order;
/// its bookmarks (if the backend has any) never go back, nor below an event before them.
pub async fn watch_with_progress_events<S: Store>(store: S) {
    let r0 = store.current_revision().await.unwrap();
    let mut items = store.watch_with_progress("/progress/", r0).await.unwrap();
    let mut plain = store.watch("/progress/", r0).await.unwrap();
    let r1 = store.create("/progress/a", b("1")).await.unwrap();
    store.create("/elsewhere", b("x")).await.unwrap();
    let r2 = store.update("/progress/a", b("2"), r1).await.unwrap();
    let gone = store.delete("/progress/a", Some(r2)).await.unwrap();
    let expected = next_events(&mut plain, 3).await;
    let (mut events, mut floor) = (Vec::new(), r0);
    while events.len() < expected.len() {
        let item = tokio::time::timeout(Duration::from_secs(10), items.next())
            .await
            .expect("an item within 10 s")
            .expect("the watch goes on")
            .expect("no error");
        match item {
            crate::WatchItem::Event(e) => {
                assert!(
                    e.kv.mod_revision > floor,
                    "event {e:?} after bookmark {floor}"
                );
                floor = e.kv.mod_revision;
                events.push(e);
            }
            crate::WatchItem::Progress(r) => {
                assert!(r >= floor, "bookmark {r} went back from {floor}");
                floor = r;
            }
        }
    }
    assert_eq!(events, expected);
    assert_eq!(events[2].kv.mod_revision, gone.mod_revision);
}

/// A watcher that stops reading is closed with [`StoreError::WatchLagged`] once it
/// would hold more than [`crate::DEFAULT_WATCH_BUFFER_BYTES`] of events, and its
/// stream ends: it pins no more memory than that, whatever is written after.
pub async fn stalled_watcher_is_closed<S: Store>(store: S) {
    let mut watch = store.watch("/stalled/", 0).await.unwrap();
    let big = Bytes::from(vec![0u8; 4 << 20]);
    let writes = crate::DEFAULT_WATCH_BUFFER_BYTES / big.len() + 4;
    for i in 0..writes {
        store
            .create(&format!("/stalled/k{i}"), big.clone())
            .await
            .unwrap();
        // Time passes between writes, as it does for a real stalled client: the
        // watcher's pump moves each event into its own queue. (A backend whose writes
        // never yield could otherwise finish them all before the pump runs, and the
        // reads below would then drain the pump as fast as it fills.)
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut delivered = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), watch.next()).await {
            Ok(Some(Ok(_))) => delivered += 1,
            Ok(Some(Err(StoreError::WatchLagged))) => break,
            other => panic!("expected WatchLagged, got {other:?}"),
        }
    }
    assert!(delivered < writes, "closed before all {writes} events");
    assert!(
        watch.next().await.is_none(),
        "the stream ends after the error"
    );
}

/// A watch from a past revision replays every later change in order, then goes on with
/// live ones without duplicates; a watch from a future revision starts after it.
pub async fn watch_replays_history<S: Store>(store: S) {
    let (a, c) = ("/replay/a", "/replay/c");
    let r0 = store.current_revision().await.unwrap();
    let r1 = store.create(a, b("a1")).await.unwrap();
    let r2 = store.update(a, b("a2"), r1).await.unwrap();
    let r3 = store.create("/replay/b", b("b1")).await.unwrap();
    store.create("/replayed", b("outside")).await.unwrap();
    let gone = store.delete(a, None).await.unwrap();

    let mut from_start = store.watch("/replay/", r0).await.unwrap();
    let mut from_r2 = store.watch("/replay/", r2).await.unwrap();
    let now = store.current_revision().await.unwrap();
    let mut from_now = store.watch("/replay/", now).await.unwrap();
    let mut from_future = store.watch("/replay/", now + 2).await.unwrap();

    let r5 = store.create(c, b("c1")).await.unwrap();
    let r6 = store.update(c, b("c2"), r5).await.unwrap();
    let r7 = store.update(c, b("c3"), r6).await.unwrap();

    let history = [
        put(kv(a, "a1", r1, r1)),
        put(kv(a, "a2", r1, r2)),
        put(kv("/replay/b", "b1", r3, r3)),
        deleted(kv(a, "a2", r1, gone.mod_revision)),
    ];
    let live = vec![
        put(kv(c, "c1", r5, r5)),
        put(kv(c, "c2", r5, r6)),
        put(kv(c, "c3", r5, r7)),
    ];
    let all: Vec<Event> = history.iter().chain(&live).cloned().collect();
    assert_eq!(next_events(&mut from_start, 7).await, all);
    assert_eq!(next_events(&mut from_r2, 5).await, all[2..]);
    assert_eq!(next_events(&mut from_now, 3).await, live);
    if r7 > now + 2 {
        let first = next_event(&mut from_future).await;
        assert!(
            first.kv.mod_revision > now + 2,
            "a watch from {} got {first:?}",
            now + 2
        );
    }
    // Nothing more arrives before the next write.
    let r8 = store.update(c, b("c4"), r7).await.unwrap();
    let last = put(kv(c, "c4", r5, r8));
    assert_eq!(next_event(&mut from_start).await, last);
    assert_eq!(next_event(&mut from_r2).await, last);
    assert_eq!(next_event(&mut from_now).await, last);
}

/// Compaction: watching from or listing at a revision below the compacted one fails with
/// `Compacted`; the state at and after it stays readable and watchable; compaction never
/// changes current values or revisions, and writes go on after it.
pub async fn compaction<S: Store>(store: S) {
    let (a, b_, c) = ("/compact/a", "/compact/b", "/compact/c");
    let r1 = store.create(a, b("a1")).await.unwrap();
    let r2 = store.update(a, b("a2"), r1).await.unwrap();
    let r3 = store.create(b_, b("b1")).await.unwrap();
    let r4 = store.update(a, b("a3"), r2).await.unwrap();
    let r5 = store.delete(b_, None).await.unwrap().mod_revision;
    let r6 = store.create(c, b("c1")).await.unwrap();

    store.compact(r4).await.unwrap();
    match store.watch("/compact/", r2).await {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => assert_eq!((requested, compacted), (r2, r4)),
        Err(other) => panic!("watch below the compacted revision: {other:?}"),
        Ok(_) => panic!("watch below the compacted revision succeeded"),
    }
    match list_at(&store, "/compact/", r3).await {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => assert_eq!((requested, compacted), (r3, r4)),
        other => panic!("list below the compacted revision: {other:?}"),
    }
    let at_compacted = list_at(&store, "/compact/", r4).await.unwrap();
    assert_eq!(
        at_compacted.kvs,
        vec![kv(a, "a3", r1, r4), kv(b_, "b1", r3, r3)]
    );
    assert_eq!(
        list_at(&store, "/compact/", r5).await.unwrap().kvs,
        vec![kv(a, "a3", r1, r4)]
    );
    assert_eq!(store.get(a).await.unwrap(), Some(kv(a, "a3", r1, r4)));

    let mut watch = store.watch("/compact/", r4).await.unwrap();
    assert_eq!(
        next_events(&mut watch, 2).await,
        vec![deleted(kv(b_, "b1", r3, r5)), put(kv(c, "c1", r6, r6))]
    );

    // Compacting again at or below the compacted revision changes nothing.
    store.compact(r4).await.unwrap();
    store.compact(r2).await.unwrap();
    assert!(matches!(
        store.watch("/compact/", r2).await,
        Err(StoreError::Compacted { .. })
    ));
    let current = store.current_revision().await.unwrap();
    match store.compact(current + 1000).await {
        Err(StoreError::FutureRevision { requested, .. }) => assert_eq!(requested, current + 1000),
        other => panic!("compact in the future: {other:?}"),
    }

    // Compact up to a delete that is the newest write: its revision is not reused.
    let r7 = store.delete(c, Some(r6)).await.unwrap().mod_revision;
    store.compact(r7).await.unwrap();
    assert!(matches!(
        list_at(&store, "/compact/", r6).await,
        Err(StoreError::Compacted { .. })
    ));
    assert_eq!(
        list_at(&store, "/compact/", r7).await.unwrap().kvs,
        vec![kv(a, "a3", r1, r4)]
    );
    let r8 = store.create(c, b("c2")).await.unwrap();
    assert!(r8 > r7);
    let r9 = store.update(a, b("a4"), r4).await.unwrap();
    assert_eq!(
        next_events(&mut watch, 3).await,
        vec![
            deleted(kv(c, "c1", r6, r7)),
            put(kv(c, "c2", r8, r8)),
            put(kv(a, "a4", r1, r9))
        ]
    );
    let mut after = store.watch("/compact/", r7).await.unwrap();
    assert_eq!(
        next_events(&mut after, 2).await,
        vec![put(kv(c, "c2", r8, r8)), put(kv(a, "a4", r1, r9))]
    );
}

/// What a writer task did: revision, event.
type Acks = Vec<(Revision, Event)>;

/// Watches started before, during and after a burst of concurrent writes (creates,
/// updates, deletes on many keys) each see exactly the acknowledged writes under their
/// prefix after their start revision, in strictly increasing revision order: no gap and
/// no duplicate between replayed history and live events.
pub async fn watch_no_gap_under_concurrent_writes<S: Store>(store: S) {
    const WRITERS: usize = 8;
    const WRITES: usize = 60;
    let store = Arc::new(store);
    let r0 = store.current_revision().await.unwrap();
    let early = store.watch("/gap/", r0).await.unwrap();

    let mut tasks = Vec::new();
    for t in 0..WRITERS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut acks: Acks = Vec::new();
            let key = format!("/gap/{t}");
            let mut current: Option<KeyValue> = None;
            for i in 0..WRITES {
                let value = b(&format!("{t}-{i}"));
                let event = match current.take() {
                    None => {
                        let r = store.create(&key, value.clone()).await.unwrap();
                        put(KeyValue {
                            key: key.clone(),
                            value,
                            create_revision: r,
                            mod_revision: r,
                        })
                    }
                    Some(kv) if i % 4 == 0 => {
                        deleted(store.delete(&key, Some(kv.mod_revision)).await.unwrap())
                    }
                    Some(kv) => {
                        let r = store
                            .update(&key, value.clone(), kv.mod_revision)
                            .await
                            .unwrap();
                        put(KeyValue {
                            key: key.clone(),
                            value,
                            create_revision: kv.create_revision,
                            mod_revision: r,
                        })
                    }
                };
                if event.kind == EventKind::Put {
                    current = Some(event.kv.clone());
                }
                acks.push((event.kv.mod_revision, event));
                if i % 10 == 0 {
                    // Writes outside the prefix are not seen.
                    store
                        .create(&format!("/gapx/{t}/{i}"), b("outside"))
                        .await
                        .unwrap();
                }
            }
            acks
        }));
    }
    // Start more watches while the writers run: replay and live overlap here.
    let mut during = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let from = store.current_revision().await.unwrap();
        during.push((r0, store.watch("/gap/", r0).await.unwrap()));
        during.push((from, store.watch("/gap/", from).await.unwrap()));
    }
    let mut acked: BTreeMap<Revision, Event> = BTreeMap::new();
    for task in tasks {
        for (revision, event) in task.await.expect("writer task") {
            assert!(
                acked.insert(revision, event).is_none(),
                "revision {revision} acknowledged twice"
            );
        }
    }
    let end = store.current_revision().await.unwrap();
    let late = store.watch("/gap/", r0).await.unwrap();
    let mut watches = vec![(r0, early)];
    watches.extend(during);
    watches.push((r0, late));
    for (from, watch) in &mut watches {
        let expected: Vec<Event> = acked.range(*from + 1..).map(|(_, e)| e.clone()).collect();
        let got = next_events(watch, expected.len()).await;
        for pair in got.windows(2) {
            assert!(
                pair[0].kv.mod_revision < pair[1].kv.mod_revision,
                "out of order: {pair:?}"
            );
        }
        assert_eq!(got, expected, "watch from {from}");
        assert!(got.last().is_none_or(|e| e.kv.mod_revision <= end));
    }
    // And nothing else: the next event of every watch is the next write.
    let r = store.create("/gap/end", b("end")).await.unwrap();
    for (_, watch) in &mut watches {
        assert_eq!(next_event(watch).await, put(kv("/gap/end", "end", r, r)));
    }
}

/// Read-modify-write with compare-and-swap retry: adds 1 to the decimal counter in `key`
/// `times` times; returns how many conflicts it retried.
async fn increment<S: Store>(store: &S, key: &str, times: usize) -> usize {
    let mut conflicts = 0;
    for _ in 0..times {
        loop {
            let current = store.get(key).await.unwrap().expect("counter exists");
            let n: u64 = std::str::from_utf8(&current.value)
                .unwrap()
                .parse()
                .unwrap();
            match store
                .update(key, b(&(n + 1).to_string()), current.mod_revision)
                .await
            {
                Ok(_) => break,
                Err(StoreError::Conflict { .. }) => conflicts += 1,
                Err(err) => panic!("increment {key}: {err}"),
            }
        }
    }
    conflicts
}

/// Many tasks increment one shared counter with compare-and-swap retry: no increment is
/// lost and every conflict is reported as `Conflict`.
pub async fn concurrent_shared_counter<S: Store>(store: S) {
    const TASKS: usize = 50;
    const INCREMENTS: usize = 100;
    let store = Arc::new(store);
    let key = "/counter/shared";
    let r0 = store.create(key, b("0")).await.unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { increment(&*store, key, INCREMENTS).await })
        })
        .collect();
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.expect("counter task");
    }
    let last = store.get(key).await.unwrap().unwrap();
    assert_eq!(
        last.value,
        b(&(TASKS * INCREMENTS).to_string()),
        "after {conflicts} conflicts"
    );
    assert_eq!(last.create_revision, r0);
}

/// 50 tasks each do 1,000 read-modify-write updates of their own key, concurrently (group
/// commit territory): every write lands, with its own revision.
pub async fn concurrent_per_key_writes<S: Store>(store: S) {
    const TASKS: usize = 50;
    const WRITES: usize = 1000;
    let store = Arc::new(store);
    let r0 = store.current_revision().await.unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let key = format!("/per-key/{t:02}");
                let mut revisions = vec![store.create(&key, b("0")).await.unwrap()];
                for i in 1..=WRITES {
                    let current = store.get(&key).await.unwrap().expect("own key exists");
                    assert_eq!(current.value, b(&(i - 1).to_string()));
                    revisions.push(
                        store
                            .update(&key, b(&i.to_string()), current.mod_revision)
                            .await
                            .unwrap(),
                    );
                }
                revisions
            })
        })
        .collect();
    let mut revisions: HashMap<Revision, usize> = HashMap::new();
    for (t, task) in tasks.into_iter().enumerate() {
        for revision in task.await.expect("writer task") {
            assert!(revision > r0);
            assert!(
                revisions.insert(revision, t).is_none(),
                "revision {revision} given twice"
            );
        }
    }
    assert_eq!(revisions.len(), TASKS * (WRITES + 1));
    let listed = list_all(&*store, "/per-key/").await;
    assert_eq!(listed.kvs.len(), TASKS);
    for kv in &listed.kvs {
        assert_eq!(kv.value, b(&WRITES.to_string()), "{}", kv.key);
    }
    assert!(store.current_revision().await.unwrap() >= r0 + (TASKS * (WRITES + 1)) as Revision);
}
