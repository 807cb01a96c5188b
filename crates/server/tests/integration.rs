//! moor-server's integration tests.
//! One test binary for the files beside this one (see the `[[test]]` entries of
//! this crate's Cargo.toml): one link and one copy of the dependencies instead of
//! one per file. Run one file's tests with `--test integration FILE::`.

mod console_support;
mod registry_support;

mod admission;
mod api_machinery;
mod at_rest;
mod authn;
mod blob_drivers;
mod cluster;
mod console;
mod console_browser;
mod console_identity;
mod election;
mod follow;
mod health_logs;
mod importer;
mod list_cache;
mod notifications;
mod openapi;
mod partial_metadata;
mod protobuf;
mod prune;
mod rbac;
mod registry;
mod registry_conformance;
mod registry_spans;
mod scheduler;
mod signatures;
mod upstream;
mod workloads;
