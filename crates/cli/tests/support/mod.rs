//! Test support of the CLI's tests: the `moor` binary under test, started and driven
//! through the shared test kit (`moor_testkit`), and the seed's YAML.
// Each test binary uses a part of it.
#![allow(dead_code, unused_imports)]

use std::path::Path;

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

/// The seed's YAML block that contains `needle` (from ../shared/seed), verbatim.
pub fn seed_yaml(needle: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/seed");
    let mut found = None;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let mut in_yaml = false;
            let mut block: Vec<String> = Vec::new();
            for line in text.lines() {
                let t = line.trim();
                if t.starts_with("```yaml") {
                    in_yaml = true;
                    block.clear();
                    continue;
                }
                if in_yaml && t.starts_with("```") {
                    in_yaml = false;
                    let indent = block
                        .iter()
                        .filter(|l| !l.trim().is_empty())
                        .map(|l| l.len() - l.trim_start().len())
                        .min()
                        .unwrap_or(0);
                    let yaml: String = block
                        .iter()
                        .map(|l| format!("{}\n", l.get(indent..).unwrap_or("").trim_end()))
                        .collect();
                    if yaml.contains(needle) && found.is_none() {
                        found = Some(yaml);
                    }
                    continue;
                }
                if in_yaml {
                    block.push(line.to_string());
                }
            }
        }
    }
    found.unwrap_or_else(|| panic!("no YAML block with {needle:?} in {}", dir.display()))
}
