//! What moor keeps on disk about secrets and requests: Secrets encrypted at rest with
//! `--encryption-provider-config` (the data dir holds neither a secret's value nor its
//! base64; key rotation; wrong keys and tampering are errors; the store conformance
//! suite over the encrypting store), and the audit log (`--audit-log-path`): mutating
//! requests, refusals and registry pushes and deletes are logged with their user, and
//! never a body, a token or a secret's value.

use crate::registry_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use moor_api::authz::Decision;
use moor_server::audit::{Audit, AuditOptions};
use moor_server::auth::{AuthLayer, Authenticator, Authorizer, UserInfo};
use moor_server::encryption::{EncryptedStore, EncryptionConfig};
use moor_server::serve::{Overrides, build};
use moor_store::{MemoryStore, SqliteStore, Store, conformance};
use moor_testkit::peers::run_blocking;
use moor_testkit::server::{MoorServer, TOKEN};
use moor_testkit::{ImageSpec, OciLayout, require};
use serde_json::{Value, json};

/// The value no file under the data dir may hold.
const VALUE: &str = "moor-distinctive-s3cr3t-7f9d2c";
const SECRETS: &str = "/api/v1/namespaces/default/secrets";

// ---------------------------------------------------------------------------------------
// Encryption at rest.

fn config(providers: &[(&str, &str, [u8; 32])]) -> String {
    let mut text = String::from(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n\
         resources:\n- resources: [secrets]\n  providers:\n",
    );
    for (provider, name, key) in providers {
        text.push_str(&format!(
            "  - {provider}:\n      keys:\n      - name: {name}\n        secret: {}\n",
            STANDARD.encode(key)
        ));
    }
    text.push_str("  - identity: {}\n");
    text
}

/// A moor over `store` with its data dir `dir/data` and `config` (if any) as its
/// `--encryption-provider-config`, written to `dir/NAME.yaml` (outside the data dir).
async fn moor(dir: &Path, store: &Arc<dyn Store>, name: &str, config: Option<&str>) -> MoorServer {
    let path = config.map(|c| {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, c).unwrap();
        path
    });
    MoorServer::builder()
        .store(store.clone())
        .with(|o| {
            o.data_dir = dir.join("data");
            o.encryption_provider_config = path;
        })
        .start()
        .await
}

fn secret(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
           "type": "Opaque", "data": {"password": STANDARD.encode(value)}})
}

async fn password(h: &MoorServer, name: &str) -> String {
    let r = h.get(&format!("{SECRETS}/{name}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let b64 = r.body["data"]["password"].as_str().unwrap();
    String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap()
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The files under `dir` that hold `needle`.
fn holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    files(dir)
        .into_iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap_or_default();
            bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
        .collect()
}

/// The value the store holds for secret `name`, as it is on disk.
async fn raw(store: &Arc<dyn Store>, name: &str) -> Vec<u8> {
    let key = format!("/registry/core/secrets/default/{name}");
    store.get(&key).await.unwrap().unwrap().value.to_vec()
}

/// The body of a watch request through the router.
async fn watch(h: &MoorServer, path: &str) -> axum::body::BodyDataStream {
    let req = Request::get(path)
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(h.router.clone(), req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.into_body().into_data_stream()
}

/// The next watch event of `body` (one JSON line).
async fn next_event(body: &mut axum::body::BodyDataStream) -> Value {
    use futures::StreamExt;
    let mut buf = Vec::new();
    loop {
        if let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let event: Value = serde_json::from_slice(&line).unwrap();
            if event["type"] != "BOOKMARK" {
                return event;
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("a watch event")
            .expect("the watch goes on")
            .unwrap();
        buf.extend_from_slice(&chunk);
    }
}

/// Rewrites secret `name` unchanged (what `kubectl replace` does after a key rotation).
async fn rewrite(h: &MoorServer, name: &str) {
    let current = h.get(&format!("{SECRETS}/{name}")).await.body;
    let r = h.put(&format!("{SECRETS}/{name}"), &current).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_encrypted_at_rest_and_keys_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&data.join("moor.db")).unwrap());
    let (k1, k2) = ([1u8; 32], [2u8; 32]);

    // Before encryption: a secret written in plaintext.
    let h = moor(dir.path(), &store, "none", None).await;
    let r = h.post(SECRETS, &secret("legacy", "old-value")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    h.stop().await;
    assert!(raw(&store, "legacy").await.starts_with(b"{"));

    // aesgcm key1: new secrets are encrypted; the old one still reads (identity).
    let enc1 = config(&[("aesgcm", "key1", k1)]);
    let h = moor(dir.path(), &store, "enc1", Some(&enc1)).await;
    assert_eq!(password(&h, "legacy").await, "old-value");
    let rv = h.get(SECRETS).await.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut watch = watch(&h, &format!("{SECRETS}?watch=true&resourceVersion={rv}")).await;
    let r = h.post(SECRETS, &secret("db", VALUE)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["data"]["password"], STANDARD.encode(VALUE));
    assert_eq!(password(&h, "db").await, VALUE);
    // Watch events and list pages are decrypted too.
    let added = next_event(&mut watch).await;
    assert_eq!(added["type"], "ADDED");
    assert_eq!(added["object"]["data"]["password"], STANDARD.encode(VALUE));
    let page = h.get(&format!("{SECRETS}?limit=1")).await.body;
    assert_eq!(page["items"][0]["metadata"]["name"], "db");
    assert_eq!(page["items"][0]["data"]["password"], STANDARD.encode(VALUE));
    let next = page["metadata"]["continue"].as_str().unwrap();
    let page = h
        .get(&format!("{SECRETS}?limit=1&continue={next}"))
        .await
        .body;
    assert_eq!(page["items"][0]["metadata"]["name"], "legacy");
    assert_eq!(
        page["items"][0]["data"]["password"],
        STANDARD.encode("old-value")
    );
    assert!(
        raw(&store, "db")
            .await
            .starts_with(b"k8s:enc:aesgcm:v1:key1:")
    );
    // The data dir (the SQLite database, its WAL, everything) holds neither the
    // value nor its base64, while it does hold what is not encrypted (the secret's
    // name, in its key): the search sees the data.
    assert!(!holding(&data, "/registry/core/secrets/default/db").is_empty());
    assert_eq!(holding(&data, VALUE), Vec::<PathBuf>::new());
    assert_eq!(
        holding(&data, &STANDARD.encode(VALUE)),
        Vec::<PathBuf>::new()
    );
    // Migration: rewriting the old secret encrypts it.
    rewrite(&h, "legacy").await;
    assert!(
        raw(&store, "legacy")
            .await
            .starts_with(b"k8s:enc:aesgcm:v1:key1:")
    );
    h.stop().await;

    // Rotation: a secretbox key2 first, key1 second: reads work, rewrites use key2.
    let enc2 = config(&[("secretbox", "key2", k2), ("aesgcm", "key1", k1)]);
    let h = moor(dir.path(), &store, "enc2", Some(&enc2)).await;
    assert_eq!(password(&h, "db").await, VALUE);
    for name in ["db", "legacy"] {
        rewrite(&h, name).await;
        assert!(
            raw(&store, name)
                .await
                .starts_with(b"k8s:enc:secretbox:v1:key2:")
        );
    }
    h.stop().await;

    // key1 removed: everything still reads.
    let enc3 = config(&[("secretbox", "key2", k2)]);
    let h = moor(dir.path(), &store, "enc3", Some(&enc3)).await;
    assert_eq!(password(&h, "db").await, VALUE);
    assert_eq!(password(&h, "legacy").await, "old-value");
    assert_eq!(holding(&data, VALUE), Vec::<PathBuf>::new());
    h.stop().await;

    // A wrong key under the same name: a 500 Status naming "decrypt", never data.
    let wrong = config(&[("secretbox", "key2", [9u8; 32])]);
    let h = moor(dir.path(), &store, "wrong", Some(&wrong)).await;
    for path in [format!("{SECRETS}/db"), SECRETS.to_string()] {
        let r = h.get(&path).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert_eq!(r.body["kind"], "Status");
        assert!(
            r.body["message"].as_str().unwrap().contains("decrypt"),
            "{}",
            r.text
        );
        assert!(!r.text.contains(VALUE));
    }
    h.stop().await;

    // Tampered ciphertext under the right key: the same.
    let key = "/registry/core/secrets/default/db";
    let kv = store.get(key).await.unwrap().unwrap();
    let mut bad = kv.value.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    store
        .update(key, bad.into(), kv.mod_revision)
        .await
        .unwrap();
    let h = moor(dir.path(), &store, "enc3", Some(&enc3)).await;
    let r = h.get(&format!("{SECRETS}/db")).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        r.body["message"].as_str().unwrap().contains("decrypt"),
        "{}",
        r.text
    );
    h.stop().await;
}

#[tokio::test]
async fn a_bad_encryption_config_stops_the_start_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    for (text, field) in [
        (
            config(&[("aesgcm", "k", [1; 32])])
                .replace(&STANDARD.encode([1u8; 32]), &STANDARD.encode([1u8; 20])),
            "resources[0].providers[0].aesgcm.keys[0].secret",
        ),
        (
            config(&[("aescbc", "k", [1; 32])]),
            "resources[0].providers[0].aescbc",
        ),
    ] {
        let path = dir.path().join("enc.yaml");
        std::fs::write(&path, text).unwrap();
        let b = MoorServer::builder().with(|o| o.encryption_provider_config = Some(path));
        let message = match build(&b.options, Overrides::default()).await {
            Ok(_) => panic!("{field}: moor started"),
            Err(e) => e.to_string(),
        };
        assert!(
            message.contains("--encryption-provider-config"),
            "{message}"
        );
        assert!(message.contains(field), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_encrypting_store_conforms() {
    for provider in ["aesgcm", "secretbox"] {
        conformance::run_all(|| async {
            let mut c = EncryptionConfig::parse(&config(&[(provider, "k", [3; 32])])).unwrap();
            // Every key the suite writes.
            c.rules[0].prefix = "/".into();
            let inner: Arc<dyn Store> = Arc::new(MemoryStore::new());
            EncryptedStore::new(inner, c)
        })
        .await;
    }
}

// ---------------------------------------------------------------------------------------
// The audit log.

/// The events of the log at `path` (and its backups, oldest first), each checked to
/// be an `audit.k8s.io/v1` Event at the Metadata level.
fn events(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // Complete lines only: the writer may be in the middle of one.
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .map(|line| {
            let e: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert_eq!(e["kind"], "Event", "{line}");
            assert_eq!(e["apiVersion"], "audit.k8s.io/v1", "{line}");
            assert_eq!(e["level"], "Metadata", "{line}");
            assert_eq!(e["stage"], "ResponseComplete", "{line}");
            for field in ["auditID", "requestURI", "verb", "requestReceivedTimestamp"] {
                assert!(e[field].is_string(), "{field}: {line}");
            }
            for field in ["requestReceivedTimestamp", "stageTimestamp"] {
                let t = e[field].as_str().unwrap();
                t.parse::<jiff::Timestamp>()
                    .unwrap_or_else(|err| panic!("{field} {t}: {err}"));
            }
            assert!(e.get("requestObject").is_none() && e.get("responseObject").is_none());
            e
        })
        .collect()
}

/// The event of audit ID `id` (from the response's `Audit-ID`), once it is written.
async fn event(path: &Path, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(e) = events(path).into_iter().find(|e| e["auditID"] == id) {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "no audit event {id} in {}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn audit_id(headers: &axum::http::HeaderMap) -> String {
    headers
        .get("audit-id")
        .expect("an audited request's answer carries Audit-ID")
        .to_str()
        .unwrap()
        .to_string()
}

fn audited(path: &Path) -> AuditOptions {
    AuditOptions {
        path: Some(path.to_path_buf()),
        ..Default::default()
    }
}

#[tokio::test]
async fn mutating_requests_and_refusals_are_audited_reads_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("logs/audit.log");
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "bob-token,bob,bob-uid,\"dev\"\n").unwrap();
    let h = MoorServer::builder()
        .with(|o| {
            o.audit = audited(&log);
            o.token_auth_file = Some(tokens);
        })
        .start()
        .await;

    // A create: the admin, the verb, the object, the code.
    let r = h.post(SECRETS, &secret("db", VALUE)).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let e = event(&log, &audit_id(&r.headers)).await;
    assert_eq!(e["verb"], "create");
    assert_eq!(e["requestURI"], SECRETS);
    assert_eq!(e["user"]["username"], "admin");
    assert!(
        e["user"]["groups"]
            .as_array()
            .unwrap()
            .contains(&json!("system:masters"))
    );
    assert_eq!(
        e["objectRef"],
        json!({"resource": "secrets", "namespace": "default", "name": "db", "apiVersion": "v1"})
    );
    assert_eq!(e["responseStatus"]["code"], 201);

    // A read is not audited.
    let r = h.get(&format!("{SECRETS}/db")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers.get("audit-id").is_none());

    // A patch of a named object.
    let r = h
        .patch(
            &format!("{SECRETS}/db"),
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"a": "b"}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let e = event(&log, &audit_id(&r.headers)).await;
    assert_eq!(e["verb"], "patch");
    assert_eq!(e["objectRef"]["name"], "db");

    // A delete without credentials: 401, by system:anonymous.
    let r = h
        .raw(
            Request::delete(format!("{SECRETS}/db"))
                .header("user-agent", "audit-test/1.0")
                .header("x-forwarded-for", "203.0.113.7")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let e = event(&log, &audit_id(&r.headers)).await;
    assert_eq!(e["verb"], "delete");
    assert_eq!(e["user"]["username"], "system:anonymous");
    assert_eq!(e["user"]["groups"], json!(["system:unauthenticated"]));
    assert_eq!(e["responseStatus"]["code"], 401);
    assert_eq!(e["userAgent"], "audit-test/1.0");
    assert_eq!(e["sourceIPs"], json!(["203.0.113.7"]));

    // A user RBAC allows nothing: 403, naming the user.
    let r = h
        .raw(
            Request::post(SECRETS)
                .header("authorization", "Bearer bob-token")
                .header("content-type", "application/json")
                .body(Body::from(secret("bobs", VALUE).to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let e = event(&log, &audit_id(&r.headers)).await;
    assert_eq!(e["verb"], "create");
    assert_eq!(e["user"]["username"], "bob");
    assert_eq!(e["user"]["uid"], "bob-uid");
    assert_eq!(e["responseStatus"]["code"], 403);

    // The admin acting as bob (`kubectl --as bob`): the event names both.
    let r = h
        .raw(
            Request::post(SECRETS)
                .header("authorization", format!("Bearer {}", h.token))
                .header("impersonate-user", "bob")
                .header("content-type", "application/json")
                .body(Body::from(secret("as-bob", VALUE).to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let e = event(&log, &audit_id(&r.headers)).await;
    assert_eq!(e["user"]["username"], "admin");
    assert_eq!(e["impersonatedUser"]["username"], "bob");

    // A wrong token: 401 too. And the delete that works.
    let r = h
        .raw(
            Request::delete(format!("{SECRETS}/db"))
                .header("authorization", "Bearer not-a-token")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    event(&log, &audit_id(&r.headers)).await;
    let r = h.delete(&format!("{SECRETS}/db")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let e = event(&log, &audit_id(&r.headers)).await;
    assert_eq!(
        (e["verb"].as_str(), e["responseStatus"]["code"].as_u64()),
        (Some("delete"), Some(200))
    );

    // Events are written in order, so the read, made before the last, is absent.
    let all = events(&log);
    assert_eq!(all.len(), 7, "{all:#?}");
    assert!(all.iter().all(|e| e["verb"] != "get"));
    // Never a value, a token or a body.
    let text = std::fs::read_to_string(&log).unwrap();
    for needle in [
        VALUE,
        &STANDARD.encode(VALUE),
        TOKEN,
        "not-a-token",
        "password",
    ] {
        assert!(!text.contains(needle), "the audit log holds {needle:?}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&log).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// Knows `alice-token` as alice.
struct Alice;

#[async_trait]
impl Authenticator for Alice {
    async fn authenticate(&self, token: &str) -> Option<UserInfo> {
        (token == "alice-token").then(|| {
            let mut u = UserInfo::new("alice", ["dev", "system:authenticated"]);
            u.uid = "alice-uid".into();
            u
        })
    }
}

/// Refuses every write.
struct ReadOnly;

impl Authorizer for ReadOnly {
    fn authorize_now(&self, attrs: &moor_api::authz::Attributes) -> Option<Decision> {
        Some(match attrs.verb.as_str() {
            "get" | "list" | "watch" => Decision::Allow {
                reason: String::new(),
            },
            _ => Decision::Deny {
                reason: "read-only".into(),
            },
        })
    }
}

#[tokio::test]
async fn a_forbidden_request_is_audited_with_the_refused_user() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let h = MoorServer::start().await;
    let audit = Audit::start(&audited(&log)).unwrap();
    let router = moor_server::app(moor_server::AppState {
        api: h.api.clone(),
        auth: AuthLayer {
            authn: Arc::new(Alice),
            authz: Arc::new(ReadOnly),
            certificates: None,
        },
        metrics: moor_server::metrics::Metrics::new(),
        ready: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        registry: None,
        audit,
        leadership: None,
        console: Default::default(),
    });
    let req = Request::post(SECRETS)
        .header("authorization", "Bearer alice-token")
        .header("content-type", "application/json")
        .body(Body::from(secret("s", VALUE).to_string()))
        .unwrap();
    let resp = tower::ServiceExt::oneshot(router, req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let e = event(&log, &audit_id(resp.headers())).await;
    assert_eq!(e["verb"], "create");
    assert_eq!(
        e["user"],
        json!({"username": "alice", "uid": "alice-uid", "groups": ["dev", "system:authenticated"]})
    );
    assert_eq!(e["responseStatus"]["code"], 403);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(VALUE) && !text.contains("alice-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_rotates_at_its_size_and_keeps_its_backups() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let h = MoorServer::builder()
        .with(|o| {
            o.audit = AuditOptions {
                path: Some(log.clone()),
                max_size_bytes: 2048,
                max_backups: 2,
            }
        })
        .start()
        .await;
    let mut last = String::new();
    for i in 0..30 {
        let r = h.post(SECRETS, &secret(&format!("s{i}"), VALUE)).await;
        assert_eq!(r.status, StatusCode::CREATED);
        last = audit_id(&r.headers);
    }
    event(&log, &last).await;
    let backup = |n: usize| PathBuf::from(format!("{}.{n}", log.display()));
    assert!(backup(1).exists() && backup(2).exists());
    assert!(!backup(3).exists());
    for path in [log.clone(), backup(1), backup(2)] {
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= 2048, "{}: {size} bytes", path.display());
        assert!(!events(&path).is_empty());
    }
    // The newest events are in the file, the older in .1, older still in .2.
    assert_eq!(events(&log).last().unwrap()["auditID"], last.as_str());
    let (older, old, new) = (events(&backup(2)), events(&backup(1)), events(&log));
    let at = |e: &Value| e["stageTimestamp"].as_str().unwrap().to_string();
    assert!(at(older.last().unwrap()) <= at(&old[0]));
    assert!(at(old.last().unwrap()) <= at(&new[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_pushes_and_deletes_are_audited() {
    if !require(&["skopeo", "umoci"]) {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("audit.log");
    let moor = registry_support::Moor::start(registry_support::Options {
        audit: audited(&log),
        ..Default::default()
    })
    .await;
    let layout = OciLayout::new();
    let entry = layout.add_image("v1", &ImageSpec::new("amd64").with_file("data", "pushed"));
    let mut push = Command::new("skopeo");
    push.args(["--insecure-policy", "copy", "--dest-tls-verify=false"])
        .args(["--dest-creds", &moor.creds()])
        .arg(format!("oci:{}:v1", layout.path().display()))
        .arg(format!("docker://{}", moor.reference("pushed:1.0")));
    let out = run_blocking(push).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let r = moor
        .send(
            reqwest::Method::DELETE,
            &format!("/v2/default/pushed/manifests/{}", entry.digest),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    let id = r.headers()["audit-id"].to_str().unwrap().to_string();
    let deleted = event(&log, &id).await;

    let all = events(&log);
    let layers = json!({"resource": "imagestreams", "namespace": "default", "name": "pushed",
                        "apiGroup": "image.openshift.io", "apiVersion": "v1",
                        "subresource": "layers"});
    for e in &all {
        assert_eq!(e["objectRef"], layers, "{e}");
        assert_eq!(e["user"]["username"], "admin", "{e}");
        assert_eq!(e["sourceIPs"], json!(["127.0.0.1"]), "{e}");
    }
    let manifest_put = all
        .iter()
        .find(|e| {
            e["verb"] == "update"
                && e["requestURI"] == "/v2/default/pushed/manifests/1.0"
                && e["responseStatus"]["code"] == 201
        })
        .unwrap_or_else(|| panic!("no manifest push in {all:#?}"));
    assert!(
        manifest_put["userAgent"]
            .as_str()
            .unwrap()
            .contains("skopeo")
    );
    // Each blob's upload completion (or a mount), pushed before the manifest.
    let blobs = all
        .iter()
        .filter(|e| {
            e["verb"] == "update"
                && e["requestURI"]
                    .as_str()
                    .unwrap()
                    .contains("/blobs/uploads/")
                && e["responseStatus"]["code"] == 201
        })
        .count();
    assert!(blobs >= 2, "config and layer uploads: {all:#?}");
    assert_eq!(deleted["verb"], "delete");
    assert_eq!(deleted["responseStatus"]["code"], 202);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains(moor.token()),
        "the audit log holds the token"
    );
}
