//! `imagestreamimports`: the create-only API through which `oc import-image` (and
//! `moor import-image`) asks for an import. `spec.import: false` is a dry run that
//! only reports; `true` writes spec tags, images and history. Whole-repository
//! imports are capped (`latest` first, then semver descending, the rest listed in
//! `additionalTags`).

use std::cmp::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use moor_api::DockerImageReference;
use moor_api::image::{
    ImageImportStatus, ImageStream, ImageStreamImport, RepositoryImportStatus, TagReference,
};
use serde::Deserialize;
use serde_json::Value;
use tracing::Instrument;

use super::{ImportError, ImportSpec, Importer, PullOptions, TagOutcome, import_reference};
use moor_apimachinery::error::ApiError;
use moor_apimachinery::resource::*;
use moor_apimachinery::stored::unconditional;
use moor_apimachinery::table::TableDef;

/// Imports in flight at most for one `imagestreamimports` request (the upstream
/// client also bounds requests per registry host).
const CONCURRENCY: usize = super::queue::DEFAULT_PER_REGISTRY;

/// The served `imagestreamimports` resource.
pub struct ImageStreamImports {
    def: ResourceDef,
    importer: Arc<Importer>,
    /// `--max-images-bulk-imported-per-repository`.
    max_bulk: usize,
}

impl ImageStreamImports {
    /// The resource over `importer`.
    pub fn new(importer: Arc<Importer>, max_bulk: usize) -> Self {
        ImageStreamImports {
            def: ResourceDef {
                group: "image.openshift.io",
                version: "v1",
                kind: "ImageStreamImport",
                list_kind: "ImageStreamImportList",
                plural: "imagestreamimports",
                singular: "imagestreamimport",
                short_names: &[],
                categories: &[],
                namespaced: true,
                verbs: &["create"],
                subresources: &[],
                selectable_fields: &[],
            },
            importer,
            max_bulk,
        }
    }
}

fn success() -> Status {
    Status {
        status: Some("Success".into()),
        code: Some(200),
        ..Default::default()
    }
}

fn failure(e: &ImportError) -> Status {
    Status {
        status: Some("Failure".into()),
        reason: Some(e.reason().to_string()),
        message: Some(e.message()),
        code: Some(e.code() as i32),
        ..Default::default()
    }
}

/// Orders tags for a bulk import: `latest` first, then semantic versions newest first,
/// then the rest in reverse lexical order (as OpenShift does).
pub fn order_tags(tags: &mut [String]) {
    fn semver(t: &str) -> Option<Vec<u64>> {
        let t = t.strip_prefix('v').unwrap_or(t);
        let parts: Vec<u64> = t
            .split('.')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        (!parts.is_empty()).then_some(parts)
    }
    tags.sort_by(|a, b| match (a == "latest", b == "latest") {
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => match (semver(a), semver(b)) {
            (Some(x), Some(y)) => y.cmp(&x).then_with(|| b.cmp(a)),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => b.cmp(a),
        },
    });
}

impl ImageStreamImports {
    async fn run(
        &self,
        ns: &str,
        mut isi: ImageStreamImport,
    ) -> Result<ImageStreamImport, ApiError> {
        let name = isi.metadata.name.clone().unwrap_or_default();
        let secrets = self.importer.pull_secrets(ns).await;
        let source = self.importer.source.clone();
        // (tag, from, policy, reference policy, outcome)
        let mut tags: Vec<(String, TagReference, TagOutcome)> = Vec::new();

        // The images concurrently (they may name different registries), in order.
        let images: Vec<_> = isi
            .spec
            .images
            .iter()
            .map(|spec| {
                let tag_ref = TagReference {
                    name: String::new(),
                    from: Some(spec.from.clone()),
                    import_policy: spec.import_policy.clone(),
                    reference_policy: spec.reference_policy.clone(),
                    ..Default::default()
                };
                let reference = DockerImageReference::parse(tag_ref.from_name());
                let pull = Importer::spec_for(
                    &tag_ref,
                    PullOptions {
                        insecure: false,
                        secrets: secrets.clone(),
                    },
                )
                .map(|s| ImportSpec {
                    signatures: self.importer.signature_gate(ns),
                    // Only an import that writes the tag mirrors its signatures.
                    mirror: (isi.spec.import && spec.to.is_some())
                        .then(|| {
                            self.importer
                                .mirror_target(ns, &name, &spec.reference_policy)
                        })
                        .flatten(),
                    ..s
                });
                let source = source.clone();
                let (name, ns) = (name.clone(), ns.to_string());
                async move {
                    let outcome = match &reference {
                        Err(e) => Err(ImportError::invalid(format!(
                            "invalid image reference {:?}: {e}",
                            tag_ref.from_name()
                        ))),
                        Ok(_) => match pull {
                            Ok(s) => {
                                import_reference(source.as_ref(), &s)
                                    .instrument(tracing::info_span!("import", namespace = %ns, stream = %name, from = %tag_ref.from_name()))
                                    .await
                            }
                            Err(e) => Err(e),
                        },
                    };
                    (tag_ref, reference, outcome)
                }
            })
            .collect();
        let images: Vec<_> = futures::stream::iter(images)
            .buffered(CONCURRENCY)
            .collect()
            .await;
        for (spec, (tag_ref, reference, outcome)) in isi.spec.images.iter().zip(images) {
            let tag = spec
                .to
                .as_ref()
                .map(|t| t.name.clone())
                .filter(|n| !n.is_empty())
                .or_else(|| {
                    reference
                        .as_ref()
                        .ok()
                        .and_then(|r| r.tag().map(str::to_string))
                })
                .unwrap_or_else(|| "latest".into());
            let mut status = ImageImportStatus {
                tag: tag.clone(),
                ..Default::default()
            };
            match &outcome {
                Ok(imp) => {
                    status.status = success();
                    status.image = Some(imp.image.clone());
                    status.manifests = imp.children.clone();
                }
                Err(e) => status.status = failure(e),
            }
            isi.status.images.push(status);
            if spec.to.is_some() {
                tags.push((tag, tag_ref, to_outcome(outcome)));
            }
        }

        if let Some(repo) = &isi.spec.repository {
            let repo_ref = DockerImageReference::parse(repo.from.name.as_deref().unwrap_or(""))
                .map_err(|e| ApiError::BadRequest(format!("invalid repository: {e}")))?;
            let pull = PullOptions {
                insecure: repo.import_policy.insecure,
                secrets: secrets.clone(),
            };
            let mut status = RepositoryImportStatus::default();
            match source.tags(&repo_ref, &pull).await {
                Err(e) => status.status = failure(&e),
                Ok(mut all) => {
                    order_tags(&mut all);
                    let rest = if all.len() > self.max_bulk {
                        all.split_off(self.max_bulk)
                    } else {
                        vec![]
                    };
                    status.additional_tags = rest;
                    status.status = success();
                    let mut specs = Vec::with_capacity(all.len());
                    for t in all {
                        let from = repo_ref
                            .clone()
                            .without_id()
                            .with_tag(&t)
                            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
                        let spec = ImportSpec {
                            from: Some(from.clone()),
                            mode: repo.import_policy.import_mode.clone().unwrap_or_default(),
                            pull: pull.clone(),
                            signatures: self.importer.signature_gate(ns),
                            mirror: isi
                                .spec
                                .import
                                .then(|| {
                                    self.importer
                                        .mirror_target(ns, &name, &repo.reference_policy)
                                })
                                .flatten(),
                            ..Default::default()
                        };
                        specs.push((t, from, spec));
                    }
                    // The repository's tags concurrently (one registry), in order.
                    let imported: Vec<_> = futures::stream::iter(specs.into_iter().map(
                        |(t, from, spec)| {
                            let source = source.clone();
                            let span = tracing::info_span!("import", namespace = %ns, stream = %name, tag = %t);
                            async move {
                                let outcome = import_reference(source.as_ref(), &spec).await;
                                (t, from, outcome)
                            }
                            .instrument(span)
                        },
                    ))
                    .buffered(CONCURRENCY)
                    .collect()
                    .await;
                    for (t, from, outcome) in imported {
                        let mut s = ImageImportStatus {
                            tag: t.clone(),
                            ..Default::default()
                        };
                        match &outcome {
                            Ok(imp) => {
                                s.status = success();
                                s.image = Some(imp.image.clone());
                                s.manifests = imp.children.clone();
                            }
                            Err(e) => s.status = failure(e),
                        }
                        status.images.push(s);
                        let tag_ref = TagReference {
                            from: Some(k8s_openapi::api::core::v1::ObjectReference {
                                kind: Some("DockerImage".into()),
                                name: Some(from.exact()),
                                ..Default::default()
                            }),
                            import_policy: repo.import_policy.clone(),
                            reference_policy: repo.reference_policy.clone(),
                            ..Default::default()
                        };
                        tags.push((t, tag_ref, to_outcome(outcome)));
                    }
                }
            }
            isi.status.repository = Some(status);
        }

        if !isi.spec.import {
            return Ok(isi);
        }
        // Spec first (it sets each tag's generation), then history at those generations.
        let spec_tags: Vec<(String, TagReference)> = tags
            .iter()
            .map(|(t, r, _)| (t.clone(), r.clone()))
            .collect();
        let update_spec = |cur: Option<&Value>| -> Result<Value, ApiError> {
            let mut stream: ImageStream = match cur {
                Some(v) => ImageStream::deserialize(v).map_err(ApiError::internal)?,
                None => {
                    let mut s = ImageStream::default();
                    s.metadata.name = Some(name.clone());
                    s
                }
            };
            for (tag, r) in &spec_tags {
                let mut r = r.clone();
                r.name = tag.clone();
                // Re-importing the same source asks for a new import generation.
                r.generation = Some(0);
                match stream.spec_tag_mut(tag) {
                    Some(existing) => *existing = r,
                    None => stream.spec.tags.push(r),
                }
            }
            Ok(unconditional(
                serde_json::to_value(&stream).map_err(ApiError::internal)?,
            ))
        };
        let ctx = RequestContext::default();
        self.importer
            .streams
            .update(&ctx, Some(ns), &name, None, &update_spec, true)
            .await?;
        let outcomes: Vec<(String, TagOutcome)> =
            tags.into_iter().map(|(t, _, o)| (t, o)).collect();
        let written = self.write_with_generations(ns, &name, outcomes).await?;
        isi.status.import = Some(serde_json::from_value(written).map_err(ApiError::internal)?);
        Ok(isi)
    }

    /// Writes outcomes with each event's generation set to its spec tag's.
    async fn write_with_generations(
        &self,
        ns: &str,
        name: &str,
        mut outcomes: Vec<(String, TagOutcome)>,
    ) -> Result<Value, ApiError> {
        let current = self
            .importer
            .streams
            .get(&RequestContext::default(), Some(ns), name)
            .await?;
        let stream: ImageStream = serde_json::from_value(current).map_err(ApiError::internal)?;
        for (tag, outcome) in outcomes.iter_mut() {
            if let TagOutcome::Imported { event, .. } = outcome {
                event.generation = stream.spec_tag(tag).and_then(|t| t.generation).unwrap_or(0);
            }
        }
        self.importer.write_outcomes(ns, name, &outcomes).await
    }
}

fn to_outcome(r: Result<super::Imported, ImportError>) -> TagOutcome {
    match r {
        Ok(imp) => {
            let mut images = vec![imp.image.clone()];
            images.extend(imp.children.iter().cloned());
            TagOutcome::Imported {
                event: imp.event(0),
                images,
            }
        }
        Err(e) => TagOutcome::Failed(e),
    }
}

#[async_trait]
impl RestStorage for ImageStreamImports {
    fn def(&self) -> &ResourceDef {
        &self.def
    }
    fn table(&self) -> TableDef {
        TableDef::default_columns()
    }
    fn decode(&self, body: Value) -> Result<(Value, Vec<String>), ApiError> {
        moor_apimachinery::codec::decode_image_kind::<ImageStreamImport>(body, "ImageStreamImport")
    }
    async fn create(
        &self,
        ctx: &RequestContext,
        ns: Option<&str>,
        obj: Value,
    ) -> Result<Value, ApiError> {
        let ns = ns.ok_or(ApiError::MethodNotAllowed)?;
        let mut isi: ImageStreamImport =
            serde_json::from_value(obj).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        isi.metadata.namespace = Some(ns.to_string());
        let name = isi.metadata.name.clone().unwrap_or_default();
        let errors = moor_api::validation::validate_image_stream_import(&isi);
        if !errors.is_empty() {
            return Err(ApiError::invalid(
                &self.def.group_resource(),
                "ImageStreamImport",
                &name,
                &errors,
            ));
        }
        if ctx.dry_run {
            isi.spec.import = false;
        }
        isi.metadata.namespace = Some(ns.to_string());
        isi.metadata.creation_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        let out = self.run(ns, isi).await?;
        serde_json::to_value(&out).map_err(ApiError::internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_order_is_latest_then_semver_descending() {
        let mut tags: Vec<String> = ["1.0", "latest", "2.1.0", "edge", "2.0", "v3", "alpha"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        order_tags(&mut tags);
        assert_eq!(
            tags,
            vec!["latest", "v3", "2.1.0", "2.0", "1.0", "edge", "alpha"]
        );
    }
}
