//! `moor serve --store etcd://...` (the real binary) keeps its objects in etcd: an image
//! stream created through the API is read back, is an etcd key under the store's prefix
//! (and no SQLite database is made), and is still there after a restart.

mod support;

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
