//! OCI image layouts in a temp dir, written with umoci as TESTBED.md shows; indexes
//! are written by hand (umoci cannot). Blocking (std::process); may call `umoci`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::peers::run_ok as run;

/// The OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// What to put in a test image.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// `amd64`, `arm64`, ...
    pub architecture: String,
    /// `linux`, ...
    pub os: String,
    /// `config.Cmd`.
    pub cmd: Vec<String>,
    /// Files (path relative to the root, content) in the one layer.
    pub files: Vec<(String, Vec<u8>)>,
    /// More `umoci config` flags (`--config.env`, `--config.label`, ...).
    pub config: Vec<String>,
}

impl ImageSpec {
    /// A linux image for `architecture` with `/hello.txt` and `Cmd ["/hello.txt"]`.
    pub fn new(architecture: &str) -> Self {
        Self {
            architecture: architecture.to_owned(),
            os: "linux".to_owned(),
            cmd: vec!["/hello.txt".to_owned()],
            files: vec![(
                "hello.txt".to_owned(),
                format!("hello from {architecture}\n").into_bytes(),
            )],
            config: Vec::new(),
        }
    }

    /// An amd64 application image: `/hello.txt` holding `content`, `Cmd
    /// ["/hello.txt"]`, `Env GREETING=hello`, a label, port 8080/tcp exposed and
    /// working directory `/srv` (what `moor describe` shows).
    pub fn app(content: &str) -> Self {
        let mut spec = Self::new("amd64");
        spec.files = vec![("hello.txt".to_owned(), content.as_bytes().to_vec())];
        spec.config = [
            "--config.env",
            "GREETING=hello",
            "--config.label",
            "org.example.version=1",
            "--config.exposedports",
            "8080/tcp",
            "--config.workingdir",
            "/srv",
        ]
        .map(str::to_owned)
        .to_vec();
        spec
    }

    /// The same image with `Cmd [cmd]` instead.
    pub fn with_cmd(mut self, cmd: &str) -> Self {
        self.cmd = vec![cmd.to_owned()];
        self
    }

    /// The same image with one more file.
    pub fn with_file(mut self, path: &str, content: impl Into<Vec<u8>>) -> Self {
        self.files.push((path.to_owned(), content.into()));
        self
    }
}

/// A descriptor in an OCI layout's `index.json`.
#[derive(Clone, Debug)]
pub struct LayoutEntry {
    /// `sha256:…`
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Media type.
    pub media_type: String,
}

/// An OCI image layout in a temp dir, written with umoci.
pub struct OciLayout {
    dir: TempDir,
}

impl OciLayout {
    /// An empty layout (`umoci init`).
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        run(Command::new("umoci")
            .args(["init", "--layout"])
            .arg(dir.path().join("oci")));
        Self { dir }
    }

    /// The layout's directory.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("oci")
    }

    fn image(&self, tag: &str) -> String {
        format!("{}:{tag}", self.path().display())
    }

    /// Builds image `tag` from `spec` (umoci new, unpack --rootless, add files,
    /// repack, config) and returns its descriptor.
    pub fn add_image(&self, tag: &str, spec: &ImageSpec) -> LayoutEntry {
        let image = self.image(tag);
        run(Command::new("umoci").args(["new", "--image", &image]));
        let bundle = self.dir.path().join(format!("bundle-{tag}"));
        run(Command::new("umoci")
            .args(["unpack", "--rootless", "--image", &image])
            .arg(&bundle));
        for (path, content) in &spec.files {
            let file = bundle.join("rootfs").join(path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).expect("mkdir in bundle");
            }
            let mut f = std::fs::File::create(&file).expect("create file in bundle");
            f.write_all(content).expect("write file in bundle");
        }
        run(Command::new("umoci")
            .args(["repack", "--image", &image])
            .arg(&bundle));
        let mut config = Command::new("umoci");
        config.args([
            "config",
            "--image",
            &image,
            "--architecture",
            &spec.architecture,
            "--os",
            &spec.os,
        ]);
        for c in &spec.cmd {
            config.args(["--config.cmd", c]);
        }
        config.args(&spec.config);
        run(&mut config);
        let _ = std::fs::remove_dir_all(&bundle);
        self.entry(tag).expect("umoci tagged the image")
    }

    /// A copy of image `from` under `tag` that differs only in a label (a new
    /// manifest digest for the price of one `umoci config`).
    pub fn relabel(&self, from: &str, tag: &str, label: &str) -> LayoutEntry {
        run(Command::new("umoci")
            .args(["config", "--image", &self.image(from), "--tag", tag])
            .args(["--config.label", &format!("org.example.variant={label}")]));
        self.entry(tag).expect("umoci tagged the copy")
    }

    /// Writes an OCI index named `tag` over the images `children` (tags of this
    /// layout), with each child's platform read from its config, as TESTBED.md
    /// describes (umoci cannot write indexes).
    pub fn add_index(&self, tag: &str, children: &[&str]) -> LayoutEntry {
        let mut manifests = Vec::new();
        for child in children {
            let entry = self.entry(child).expect("child image in the layout");
            let manifest: Value =
                serde_json::from_slice(&self.blob(&entry.digest)).expect("child manifest JSON");
            let config_digest = manifest["config"]["digest"]
                .as_str()
                .expect("config digest");
            let config: Value =
                serde_json::from_slice(&self.blob(config_digest)).expect("config JSON");
            manifests.push(json!({
                "mediaType": entry.media_type,
                "digest": entry.digest,
                "size": entry.size,
                "platform": {"architecture": config["architecture"], "os": config["os"]},
            }));
        }
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        }))
        .expect("index JSON");
        let digest = format!("sha256:{}", sha256_hex(&index));
        let blob_path = self
            .path()
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        std::fs::write(&blob_path, &index).expect("write index blob");
        let index_json = self.path().join("index.json");
        let mut layout: Value =
            serde_json::from_slice(&std::fs::read(&index_json).expect("read index.json"))
                .expect("index.json");
        layout["manifests"]
            .as_array_mut()
            .expect("index.json manifests")
            .push(json!({
                "mediaType": OCI_INDEX,
                "digest": digest,
                "size": index.len(),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }));
        std::fs::write(&index_json, serde_json::to_vec(&layout).expect("JSON"))
            .expect("write index.json");
        LayoutEntry {
            digest,
            size: index.len() as u64,
            media_type: OCI_INDEX.to_owned(),
        }
    }

    /// The descriptor tagged `tag` in `index.json`.
    pub fn entry(&self, tag: &str) -> Option<LayoutEntry> {
        let layout: Value =
            serde_json::from_slice(&std::fs::read(self.path().join("index.json")).ok()?).ok()?;
        layout["manifests"].as_array()?.iter().find_map(|m| {
            (m["annotations"]["org.opencontainers.image.ref.name"] == tag).then(|| LayoutEntry {
                digest: m["digest"].as_str().unwrap_or_default().to_owned(),
                size: m["size"].as_u64().unwrap_or_default(),
                media_type: m["mediaType"].as_str().unwrap_or_default().to_owned(),
            })
        })
    }

    /// A blob's bytes.
    pub fn blob(&self, digest: &str) -> Vec<u8> {
        let (alg, hex) = digest.split_once(':').expect("algorithm:hex");
        std::fs::read(self.path().join("blobs").join(alg).join(hex)).expect("read blob")
    }
}

impl Default for OciLayout {
    fn default() -> Self {
        Self::new()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}
