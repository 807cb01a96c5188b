//! Test support of the CLI's tests: the `moor` binary under test, started and driven
//! through the shared test kit (`moor_testkit`), and the seed's YAML.
// Each test binary uses a part of it.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};

pub use moor_testkit::peers::{peer, require, run};
pub use moor_testkit::process::{Cli, Kubectl, MoorProcess};
pub use moor_testkit::{Distribution, Format, ImageSpec, OciLayout};

/// The `moor` binary built for these tests.
pub fn moor_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_moor"))
}

/// `moor serve` (this build) on a free loopback port over `data_dir`.
pub fn start(data_dir: &Path, extra: &[&str]) -> MoorProcess {
    MoorProcess::start(moor_bin(), data_dir, extra)
}

/// [`start`] with extra environment variables for the server.
pub fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> MoorProcess {
    MoorProcess::start_with_env(moor_bin(), data_dir, extra, env)
}

/// The `moor` CLI (this build) with `kubeconfig`.
pub fn cli(kubeconfig: &Path) -> Cli {
    Cli {
        bin: moor_bin().to_path_buf(),
        kubeconfig: kubeconfig.to_path_buf(),
    }
}

/// Two different images pushed as quay.io's keycloak/keycloak:20.0.2 and :20.0.3.
pub fn two_keycloaks(dist: &Distribution) -> (String, String) {
    let layout = OciLayout::new();
    let built1 = layout
        .add_image("v1", &ImageSpec::app("keycloak 20.0.2\n"))
        .digest;
    let built2 = layout
        .add_image("v2", &ImageSpec::app("keycloak 20.0.3\n"))
        .digest;
    let d1 = dist
        .push(&layout, "v1", "keycloak/keycloak:20.0.2", Format::Oci)
        .digest;
    let d2 = dist
        .push(&layout, "v2", "keycloak/keycloak:20.0.3", Format::Oci)
        .digest;
    assert_eq!((&d1, &d2), (&built1, &built2), "skopeo kept the manifests");
    assert_ne!(d1, d2);
    (d1, d2)
}

/// The seed's YAML file under `examples/` that contains `needle`, verbatim (the
/// repository's own copy: tests read nothing outside the repository).
pub fn seed_yaml(needle: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .find(|text| text.contains(needle))
        .unwrap_or_else(|| panic!("no YAML file with {needle:?} in {}", dir.display()))
}
