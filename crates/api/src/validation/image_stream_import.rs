//! ImageStreamImport.

use crate::image::{ImageImportSpec, ImageStreamImport, KIND_DOCKER_IMAGE};
use crate::reference::DockerImageReference;

use super::field::{FieldError, FieldPath};
use super::image_stream::validate_import_mode;
use super::meta::{MetaRules, validate_image_stream_name, validate_object_meta, validate_tag_name};

/// Validates an image stream import (OpenShift's `ValidateImageStreamImport`): each
/// `spec.images[]` has kind `DockerImage` and a parsable name (`*` is tolerated, as
/// for old clients) and a non-empty `to.name` if `to` is set; `spec.repository` has
/// kind `DockerImage` and a repository without tag or digest; at least one of them is
/// given; the name is a valid image stream name.
///
/// moor additions: `to.name` must be a valid tag; import modes must be known.
pub fn validate_image_stream_import(isi: &ImageStreamImport) -> Vec<FieldError> {
    let spec_path = FieldPath::new("spec");
    let images_path = spec_path.child("images");
    let repo_path = spec_path.child("repository");
    let mut errs = Vec::new();

    for (i, spec) in isi.spec.images.iter().enumerate() {
        errs.extend(validate_image_import_spec(spec, &images_path.index(i)));
    }

    if let Some(repo) = &isi.spec.repository {
        let kind = repo.from.kind.as_deref().unwrap_or("");
        let name = repo.from.name.as_deref().unwrap_or("");
        let name_path = repo_path.child("from").child("name");
        if kind == KIND_DOCKER_IMAGE {
            if name.is_empty() {
                errs.push(FieldError::required(
                    &name_path,
                    "container image references require a name",
                ));
            } else {
                match DockerImageReference::parse(name) {
                    Err(e) => errs.push(FieldError::invalid(&name_path, name, e.to_string())),
                    Ok(r) if r.tag().is_some() || r.id().is_some() => {
                        errs.push(FieldError::invalid(
                            &name_path,
                            name,
                            "you must specify an image repository, not a tag or ID",
                        ));
                    }
                    Ok(_) => {}
                }
            }
        } else {
            errs.push(FieldError::invalid(
                repo_path.child("from").child("kind"),
                kind,
                "only DockerImage is supported",
            ));
        }
        errs.extend(validate_import_mode(&repo.import_policy, &repo_path));
    }

    if isi.spec.images.is_empty() && isi.spec.repository.is_none() {
        errs.push(FieldError::invalid_literal(
            &images_path,
            "null",
            "you must specify at least one image or a repository import",
        ));
    }

    errs.extend(validate_object_meta(
        &isi.metadata,
        MetaRules {
            namespaced: true,
            name: validate_image_stream_name,
        },
        &FieldPath::new("metadata"),
    ));
    errs
}

fn validate_image_import_spec(spec: &ImageImportSpec, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let kind = spec.from.kind.as_deref().unwrap_or("");
    let name = spec.from.name.as_deref().unwrap_or("");
    if kind != KIND_DOCKER_IMAGE {
        errs.push(FieldError::invalid(
            path.child("from").child("kind"),
            kind,
            "only DockerImage is supported",
        ));
        return errs;
    }
    if let Some(to) = &spec.to {
        let to_path = path.child("to").child("name");
        if to.name.is_empty() {
            errs.push(FieldError::invalid(
                &to_path,
                "",
                "the name of the target tag must be specified",
            ));
        } else {
            for reason in validate_tag_name(&to.name) {
                errs.push(FieldError::invalid(&to_path, &to.name, reason));
            }
        }
    }
    let name_path = path.child("from").child("name");
    if name.is_empty() {
        errs.push(FieldError::required(&name_path, ""));
    } else if name != "*"
        && let Err(e) = DockerImageReference::parse(name)
    {
        errs.push(FieldError::invalid(&name_path, name, e.to_string()));
    }
    errs.extend(validate_import_mode(&spec.import_policy, path));
    errs
}
