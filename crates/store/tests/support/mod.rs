//! Helpers shared by this crate's integration tests.
// Each test binary uses a part of it.
#![allow(dead_code)]

pub mod etcd_peer;
pub mod hold_proxy;

use moor_store::{EtcdOptions, EtcdStore, EtcdTls};

/// A store on `endpoints` under `prefix`, with the default timeouts.
pub async fn etcd_store(endpoints: Vec<String>, prefix: impl Into<String>) -> EtcdStore {
    EtcdStore::connect(etcd_options(endpoints, prefix))
        .await
        .unwrap()
}

/// The default options for `endpoints` and `prefix`.
pub fn etcd_options(endpoints: Vec<String>, prefix: impl Into<String>) -> EtcdOptions {
    let mut options = EtcdOptions::from_url("etcd://x:1", EtcdTls::default()).unwrap();
    options.endpoints = endpoints;
    options.prefix = prefix.into();
    options
}
