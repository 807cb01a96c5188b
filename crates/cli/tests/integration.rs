//! The `moor` binary's integration tests.
//! One test binary for the files beside this one (see the `[[test]]` entries of
//! this crate's Cargo.toml): one link and one copy of the dependencies instead of
//! one per file. Run one file's tests with `--test integration FILE::`.

mod support;

mod authorization;
mod cli_habits;
mod cli_verbs;
mod crash_durability;
mod data_dir_lock;
mod deploy_chart;
mod etcd_store;
mod import_verbs;
mod kine_replicas;
mod kubectl_explain;
mod kubectl_interop;
mod kubectl_notifications;
mod kubectl_protobuf;
mod kubectl_tokens;
mod lookup;
mod memory;
mod prune_images;
mod readme_tour;
mod registry_verbs;
mod replicas;
mod scheduled_verbs;
mod watch_relist;
