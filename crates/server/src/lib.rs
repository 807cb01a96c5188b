//! moor's server: the Kubernetes-style API server over an etcd-shaped store, the
//! registry, the importer, the scheduler and the lookup controllers, and the listener
//! that serves them. `app()` is the one router shared by `moor serve` and the
//! in-process tests.

pub mod apiserver;
pub mod app;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod clock;
pub mod compactor;
pub mod console;
pub mod election;
pub mod encryption;
pub mod identity;
pub mod idle;
pub mod importer;
pub mod listener;
pub mod lookup;
pub mod metrics;
pub mod notify;
pub mod registry;
pub mod scheduler;
pub mod serve;
pub mod signatures;
pub mod tls;
pub mod upstream;

pub use app::{AppState, app};
