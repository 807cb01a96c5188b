//! moor-store's integration tests.
//! One test binary for the files beside this one (see the `[[test]]` entries of
//! this crate's Cargo.toml): one link and one copy of the dependencies instead of
//! one per file. Run one file's tests with `--test integration FILE::`.

mod support;

mod cache;
mod conformance;
mod etcd;
mod etcd_cluster;
mod sqlite;
