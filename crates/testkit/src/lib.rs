//! moor's shared test kit (dev-only): every test and benchmark starts its peers and
//! its moor through this crate, once.
//!
//! - [`peers`]: finding peer binaries (a missing one fails under `CI`, skips
//!   otherwise), free ports, running commands.
//! - [`distribution`]: CNCF distribution (`docker-registry`) on loopback, killed on
//!   drop; [`etcd`]: an `etcd` on free ports, killed on drop.
//! - [`cosign`]: cosign signing keys and signatures (made with openssl).
//! - [`oci`]: OCI image layouts built with umoci (and indexes by hand).
//! - [`oidc`]: a loopback OIDC issuer (discovery and JWKS over HTTPS, its own CA)
//!   that mints tokens with chosen claims, keys and headers.
//! - [`proxy`]: a counting proxy in front of a registry, and a tiny fake registry.
//! - [`kube_double`]: a stand-in for kube-apiserver's auth surface (TokenReview,
//!   SubjectAccessReview, the authentication ConfigMap, namespaces), for cluster mode.
//! - [`clock`]: a clock moved by hand, for expiry without sleeping.
//! - [`server`]: moor in process, built by `moor_server::serve::build` (the wiring
//!   of `moor serve`), driven through its router or a real listener.
//! - [`receiver`]: a CloudEvents receiver on loopback (an axum server) that records
//!   what it is sent and can be turned down and up.
//! - [`process`]: `moor serve` as a child process, the `moor` CLI and kubectl
//!   against it.
//!
//! Blocking helpers (std::process) are meant for a multi-thread runtime or
//! `spawn_blocking` when in-process servers must keep answering meanwhile.

pub mod clock;
pub mod cosign;
pub mod distribution;
pub mod etcd;
pub mod kube_double;
pub mod logs;
pub mod oci;
pub mod oidc;
pub mod peers;
pub mod process;
pub mod proxy;
pub mod receiver;
pub mod seaweedfs;
pub mod server;

pub use clock::ManualClock;
pub use cosign::CosignKey;
pub use distribution::{Distribution, DistributionOptions, Format, Pushed};
pub use kube_double::{KubeDouble, TestCa};
pub use oci::{ImageSpec, LayoutEntry, OCI_INDEX, OciLayout};
pub use peers::{ci, closed_addr, free_port, require};
pub use process::{Cli, Kubectl, MoorProcess};
pub use proxy::{CountingProxy, FakeRegistry, Hit, HitLog};
pub use seaweedfs::SeaweedFs;
pub use server::{MoorServer, NoRegistry, Resp};
