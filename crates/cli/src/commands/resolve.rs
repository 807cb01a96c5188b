//! `moor resolve -f FILE|- [--strict]`: pins short image names in manifests the way the
//! server would on create (same resolver, `moor_api::lookup`), reading the image
//! streams of each manifest's namespace from the server and writing nothing there.
//! Multi-document YAML (and `kind: List`) in, YAML out; with `--strict`, names that do
//! not resolve are errors and nothing is printed.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use moor_api::image::ImageStream;
use moor_api::lookup::{Workload, WorkloadKind, candidate_streams, resolve_workload};
use serde::Deserialize;
use serde_json::Value;

use super::{emit, note};
use crate::client::Session;
use crate::error::CliError;
use crate::resources::IMAGE_STREAMS;

pub(crate) const RESOLVE_EXAMPLES: &str = "\
Reads Kubernetes manifests (multi-document YAML, or a List), pins every image that names
an image stream tag of the namespace by a short name the way the server would (lookup on
for the stream, or the resolve-names annotation on the workload), and writes the
manifests as YAML to stdout. Nothing is written to the server; the streams are read
from it.

Examples:
  # Pin the images of a manifest before applying it anywhere
  moor resolve -f deployment.yaml > pinned.yaml

  # From stdin, failing (and naming them) when short names do not resolve
  cat k8s/*.yaml | moor resolve -f - --strict -n team-a";

/// Flags of `moor resolve`.
#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The manifests to read: a file, a directory (its .yaml/.yml/.json files) or `-` for stdin (repeatable)
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,

    /// Exit with an error, naming each one, when a short name does not resolve
    #[arg(long)]
    pub strict: bool,
}

/// Runs `moor resolve ...`.
pub async fn run(session: &Session, args: ResolveArgs) -> Result<(), CliError> {
    let mut docs: Vec<Value> = Vec::new();
    let mut paths: Vec<std::path::PathBuf> = Vec::new();
    for path in &args.files {
        if path.is_dir() {
            // A directory: its .yaml, .yml and .json files, in name order (as kubectl -f).
            let mut entries: Vec<std::path::PathBuf> = std::fs::read_dir(path)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
                })
                .collect();
            entries.sort();
            paths.extend(entries);
        } else {
            paths.push(path.clone());
        }
    }
    for path in &paths {
        let text = if path.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s
        } else {
            std::fs::read_to_string(path).map_err(|e| {
                CliError::Usage(format!("the path {:?} cannot be read: {e}", path.display()))
            })?
        };
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc)
                .map_err(|e| CliError::Usage(format!("error parsing {}: {e}", path.display())))?;
            if !v.is_null() {
                docs.push(v);
            }
        }
    }
    let mut resolver = Resolver {
        session,
        streams: HashMap::new(),
        problems: Vec::new(),
        refused: Vec::new(),
    };
    for doc in &mut docs {
        resolver.document(doc).await?;
    }
    for r in &resolver.refused {
        note(&format!("warning: {r}"));
    }
    if args.strict && !(resolver.problems.is_empty() && resolver.refused.is_empty()) {
        for p in resolver.problems.iter().chain(&resolver.refused) {
            note(&format!("error: {p}"));
        }
        return Err(CliError::Reported);
    }
    let mut out = String::new();
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml_ng::to_string(doc).map_err(|e| CliError::Usage(e.to_string()))?);
    }
    emit(&out)
}

struct Resolver<'a> {
    session: &'a Session,
    /// Streams by namespace, read once each.
    streams: HashMap<String, HashMap<String, ImageStream>>,
    /// Short names left alone (no such stream, lookup off).
    problems: Vec<String>,
    /// Short names the server would refuse (a stream with lookup but no image).
    refused: Vec<String>,
}

impl Resolver<'_> {
    async fn namespace_streams(
        &mut self,
        ns: &str,
    ) -> Result<&HashMap<String, ImageStream>, CliError> {
        if !self.streams.contains_key(ns) {
            let list = self
                .session
                .list_json(&IMAGE_STREAMS, Some(ns), None)
                .await?;
            let streams = list["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|v| serde_json::from_value::<ImageStream>(v).ok())
                .filter_map(|s| Some((s.metadata.name.clone()?, s)))
                .collect();
            self.streams.insert(ns.to_string(), streams);
        }
        Ok(&self.streams[ns])
    }

    async fn document(&mut self, doc: &mut Value) -> Result<(), CliError> {
        if doc["kind"] == "List"
            && let Some(items) = doc.get_mut("items").and_then(Value::as_array_mut)
        {
            for item in items {
                Box::pin(self.document(item)).await?;
            }
            return Ok(());
        }
        let api_version = doc["apiVersion"].as_str().unwrap_or("");
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        let Some(kind) = WorkloadKind::from_group_kind(group, doc["kind"].as_str().unwrap_or(""))
        else {
            return Ok(());
        };
        let mut w = Workload::from_value(kind, doc.clone()).map_err(|e| {
            CliError::Usage(format!(
                "{kind} {:?}: {e}",
                doc["metadata"]["name"].as_str().unwrap_or("")
            ))
        })?;
        if candidate_streams(&w).is_empty() {
            return Ok(());
        }
        let ns = w
            .metadata()
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| self.session.namespace.clone());
        let streams = self.namespace_streams(&ns).await?;
        let res = resolve_workload(&mut w, None, &ns, streams);
        let who = format!(
            "{}/{}",
            kind.kind().to_lowercase(),
            w.metadata().name.as_deref().unwrap_or("")
        );
        for rw in &res.rewrites {
            if let Some(slot) = doc.pointer_mut(&rw.pointer) {
                *slot = Value::String(rw.to.clone());
            }
        }
        for f in res.failures {
            self.refused.push(format!(
                "{who}: {}: {:?} cannot be resolved: {}",
                f.field, f.image, f.message
            ));
        }
        for u in res.unresolved {
            self.problems.push(format!(
                "{who}: {}: {:?} did not resolve: {}",
                u.field, u.image, u.message
            ));
        }
        Ok(())
    }
}
