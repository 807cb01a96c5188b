//! `moor serve --store etcd://...` (the real binary) keeps its objects in etcd: an image
//! stream created through the API is read back, is an etcd key under the store's prefix
//! (and no SQLite database is made), and is still there after a restart.

use crate::support;

use moor_store::{EtcdOptions, EtcdStore, EtcdTls, ListOptions, Store as _};
use moor_testkit::etcd::Etcd;
use moor_testkit::server::IS;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_etcd_creates_and_reads_an_image_stream() {
    let Some(etcd) = tokio::task::block_in_place(Etcd::start) else {
        return;
    };
    let url = format!("etcd://127.0.0.1:{}/moor-smoke", etcd.client_port);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = tokio::task::block_in_place(|| start(&data, &["--store", &url]));
    let body = serde_json::json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": "on-etcd"}, "spec": {"tags": [{"name": "t",
        "from": {"kind": "DockerImage", "name": "quay.io/a/b:1"}}]}});
    let created = server
        .client()
        .post(format!("{}{IS}", server.url))
        .bearer_auth(&server.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.status().as_u16(),
        201,
        "{}",
        created.text().await.unwrap()
    );
    let created: serde_json::Value = created.json().await.unwrap();
    let get = |server: &moor_testkit::process::MoorProcess| {
        server
            .client()
            .get(format!("{}{IS}/on-etcd", server.url))
            .bearer_auth(&server.token)
            .send()
    };
    let got: serde_json::Value = get(&server).await.unwrap().json().await.unwrap();
    assert_eq!(got["metadata"]["uid"], created["metadata"]["uid"]);
    let rv: i64 = got["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // The object is an etcd key under the prefix, at that revision; no SQLite file.
    let store = EtcdStore::connect(EtcdOptions::from_url(&url, EtcdTls::default()).unwrap())
        .await
        .unwrap();
    let listed = store.list("/", ListOptions::default()).await.unwrap();
    let kv = listed
        .kvs
        .iter()
        .find(|kv| kv.key.ends_with("/imagestreams/default/on-etcd"))
        .unwrap_or_else(|| panic!("no etcd key for the stream in {:?}", listed.kvs));
    // At that revision or later: the importer may have written the status since.
    assert!(kv.mod_revision >= rv, "{} < {rv}", kv.mod_revision);
    let uid = created["metadata"]["uid"].as_str().unwrap();
    assert!(String::from_utf8_lossy(&kv.value).contains(uid));
    assert!(!data.join("moor.db").exists());

    server.kill();
    let server = tokio::task::block_in_place(|| start(&data, &["--store", &url]));
    let again: serde_json::Value = get(&server).await.unwrap().json().await.unwrap();
    assert_eq!(again["metadata"]["uid"], created["metadata"]["uid"]);
    // (Its importer may have written the stream's status since: the version moves on.)
    let again_rv: i64 = again["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        again_rv >= kv.mod_revision,
        "{again_rv} < {}",
        kv.mod_revision
    );
}

/// `--etcd-*` TLS flags without an etcd store are a mistake, said at once.
#[test]
fn etcd_tls_flags_need_an_etcd_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(moor_bin())
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--etcd-cafile", "/ca.pem"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("need --store etcd://"), "{stderr}");
}

/// `moor store copy ARGS`: (success, stdout, stderr).
fn store_copy(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(moor_bin())
        .args(["store", "copy"])
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `source:` and `target:` lines of a copy, which must agree; returns one.
fn verified(stdout: &str) -> String {
    let line = |side: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(side))
            .unwrap_or_else(|| panic!("no {side} line in {stdout:?}"))
            .to_owned()
    };
    assert_eq!(line("source: "), line("target: "));
    line("source: ")
}

/// A data set a real `moor serve` made (image streams, an encrypted secret, a Role and
/// a RoleBinding) goes SQLite → etcd → SQLite with `moor store copy`: the same count
/// and hash on every side, the secret still encrypted in etcd, a full target refused
/// without --force; then `moor serve` on the last copy serves every object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_copy_round_trips_sqlite_etcd_sqlite() {
    use base64::Engine as _;
    let Some(etcd) = tokio::task::block_in_place(Etcd::start) else {
        return;
    };
    const VALUE: &str = "moor-copy-s3cr3t-5be1";
    let dir = tempfile::tempdir().unwrap();
    let encryption = dir.path().join("encryption.yaml");
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    std::fs::write(
        &encryption,
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n\
             resources:\n- resources: [secrets]\n  providers:\n  - secretbox:\n      keys:\n      \
             - name: k1\n        secret: {key}\n  - identity: {{}}\n"
        ),
    )
    .unwrap();
    let enc = encryption.to_str().unwrap();
    let (first, last) = (dir.path().join("first"), dir.path().join("last"));
    let objects = [
        (IS.to_owned(), "web".to_owned()),
        (IS.to_owned(), "db".to_owned()),
        (IS.to_owned(), "cache".to_owned()),
        (
            "/api/v1/namespaces/default/secrets".to_owned(),
            "pull".to_owned(),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles".to_owned(),
            "pullers".to_owned(),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings".to_owned(),
            "pullers".to_owned(),
        ),
    ];
    let bodies = [
        serde_json::json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": "web"}, "spec": {"lookupPolicy": {"local": true}}}),
        serde_json::json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": "db"}}),
        serde_json::json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": "cache"}}),
        serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pull"},
            "data": {"password": base64::engine::general_purpose::STANDARD.encode(VALUE)}}),
        serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "pullers"}, "rules": [{"apiGroups": ["image.openshift.io"],
            "resources": ["imagestreams/layers"], "verbs": ["get"]}]}),
        serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "pullers"}, "subjects": [{"kind": "User", "name": "ci",
            "apiGroup": "rbac.authorization.k8s.io"}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pullers"}}),
    ];
    let mut server =
        tokio::task::block_in_place(|| start(&first, &["--encryption-provider-config", enc]));
    let mut uids = Vec::new();
    for ((path, _), body) in objects.iter().zip(&bodies) {
        let created = server
            .client()
            .post(format!("{}{path}", server.url))
            .bearer_auth(&server.token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = created.status().as_u16();
        let created: serde_json::Value = created.json().await.unwrap();
        assert_eq!(status, 201, "{path}: {created}");
        uids.push(created["metadata"]["uid"].as_str().unwrap().to_owned());
    }
    // While the server runs, its data dir is locked: the copy refuses.
    let url = format!("etcd://127.0.0.1:{}/copied", etcd.client_port);
    let from = first.to_str().unwrap();
    let (ok, _, err) = store_copy(&["--from", from, "--to", &url]);
    assert!(!ok && err.contains("in use"), "{err}");
    server.kill();

    // SQLite → etcd.
    let (ok, out, err) = store_copy(&["--from", from, "--to", &url]);
    assert!(ok, "{err}");
    let summary = verified(&out);
    let count: u64 = summary.split(' ').next().unwrap().parse().unwrap();
    assert!(count >= objects.len() as u64, "{summary}");
    // The secret is in etcd as stored: encrypted.
    let etcd_store =
        moor_store::EtcdStore::connect(EtcdOptions::from_url(&url, EtcdTls::default()).unwrap())
            .await
            .unwrap();
    let listed = etcd_store.list("/", ListOptions::default()).await.unwrap();
    assert_eq!(listed.kvs.len() as u64, count);
    let secret = listed
        .kvs
        .iter()
        .find(|kv| kv.key.contains("secrets") && kv.key.ends_with("/pull"))
        .expect("the secret's key");
    assert!(secret.value.starts_with(b"k8s:enc:secretbox:v1:k1:"));
    assert!(!String::from_utf8_lossy(&secret.value).contains(VALUE));
    // Again: the target is not empty.
    let (ok, _, err) = store_copy(&["--from", from, "--to", &url]);
    assert!(!ok && err.contains("--force"), "{err}");

    // etcd → SQLite (a new data dir), with the same count and hash.
    std::fs::create_dir_all(&last).unwrap();
    let to = format!("sqlite://{}", last.join("moor.db").display());
    let (ok, out, err) = store_copy(&["--from", &url, "--to", &to]);
    assert!(ok, "{err}");
    assert_eq!(verified(&out), summary);
    // --force over a full target: still equal.
    let (ok, out, err) = store_copy(&["--from", &url, "--to", &to, "--force"]);
    assert!(ok, "{err}");
    assert_eq!(verified(&out), summary);

    // `moor serve` on the copy serves every object, the secret decrypted.
    let server =
        tokio::task::block_in_place(|| start(&last, &["--encryption-provider-config", enc]));
    for (((path, name), uid), body) in objects.iter().zip(&uids).zip(&bodies) {
        let got = server
            .client()
            .get(format!("{}{path}/{name}", server.url))
            .bearer_auth(&server.token)
            .send()
            .await
            .unwrap();
        assert_eq!(got.status().as_u16(), 200, "{path}/{name}");
        let got: serde_json::Value = got.json().await.unwrap();
        assert_eq!(got["metadata"]["uid"].as_str(), Some(uid.as_str()));
        if body["kind"] == "Secret" {
            assert_eq!(got["data"], body["data"]);
        }
    }
}
