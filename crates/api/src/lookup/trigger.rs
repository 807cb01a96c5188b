//! Image triggers: the `image.openshift.io/triggers` annotation of workloads (a JSON
//! list of `{from: {kind: ImageStreamTag, name, namespace}, fieldPath, paused}`), how a
//! field path names a container, validation, and which images a trigger controller
//! must change when tags move. Follows openshift/library-go `pkg/image/trigger`. Pure.

use serde::{Deserialize, Serialize};

use super::resolve::Rewrite;
use super::workload::{ContainerRef, Workload, WorkloadKind};
use crate::image::{KIND_IMAGE_STREAM_TAG, TRIGGER_ANNOTATION, parse_image_stream_tag_name};
use crate::validation::FieldError;

fn is_false(b: &bool) -> bool {
    !*b
}

/// One entry of the triggers annotation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectFieldTrigger {
    /// The image stream tag followed.
    #[serde(default)]
    pub from: TriggerSource,
    /// The image field it sets, e.g. `spec.template.spec.containers[?(@.name=="web")].image`.
    #[serde(rename = "fieldPath", default)]
    pub field_path: String,
    /// A paused trigger is not acted on.
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
}

/// The `from` of a trigger.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerSource {
    /// Only `ImageStreamTag` is supported.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// `stream:tag`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The stream's namespace; empty means the workload's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Unused; kept when present.
    #[serde(
        rename = "apiVersion",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub api_version: String,
}

/// The field path `oc set triggers` writes for container `name` of a `kind` object.
pub fn field_path_for(kind: WorkloadKind, name: &str) -> String {
    format!(
        "{}.containers[?(@.name==\"{name}\")].image",
        kind.pod_spec_path()
    )
}

/// Parses the annotation's value.
pub fn parse_triggers(value: &str) -> Result<Vec<ObjectFieldTrigger>, String> {
    serde_json::from_str(value).map_err(|e| format!("must be a JSON list of image triggers: {e}"))
}

/// The triggers of `w`: `None` without the annotation.
pub fn triggers_of(w: &Workload) -> Option<Result<Vec<ObjectFieldTrigger>, String>> {
    w.annotation(TRIGGER_ANNOTATION).map(parse_triggers)
}

/// The container a field path names; the rest of the path must be `image`. Accepts
/// `<podspec>.containers[?(@.name=="x")].image` (any container named x, init containers
/// included, as library-go finds them), `<podspec>.containers[N].image` and
/// `<podspec>.initContainers[N].image`.
pub fn container_for_field_path(w: &Workload, field_path: &str) -> Result<ContainerRef, String> {
    let kind = w.kind();
    let spec_path = kind.pod_spec_path();
    let invalid = |why: &str| format!("fieldPath {field_path:?} is not valid: {why}");
    let rest = field_path
        .strip_prefix(spec_path)
        .and_then(|r| r.strip_prefix('.'))
        .ok_or_else(|| invalid(&format!("a {kind} image field starts with {spec_path}.")))?;
    let (init, rest) = if let Some(r) = rest.strip_prefix("initContainers") {
        (true, r)
    } else if let Some(r) = rest.strip_prefix("containers") {
        (false, r)
    } else {
        return Err(invalid("expected containers[...] or initContainers[...]"));
    };
    let rest = rest
        .strip_prefix('[')
        .ok_or_else(|| invalid("expected [ after the container list"))?;
    let end = rest
        .find(']')
        .ok_or_else(|| invalid("missing ] after the container selector"))?;
    let key = &rest[..end];
    let remainder = rest[end + 1..]
        .strip_prefix('.')
        .unwrap_or(&rest[end + 1..]);
    if remainder != "image" {
        return Err(invalid("only the image field of a container can be set"));
    }
    let by_name = ["\"", "'"].iter().find_map(|q| {
        key.strip_prefix(&format!("?(@.name=={q}"))
            .and_then(|k| k.strip_suffix(&format!("{q})")))
    });
    let found = if let Some(name) = by_name {
        w.container_by_name(name).map(|(r, _)| r)
    } else if let Ok(i) = key.parse::<usize>() {
        w.containers()
            .into_iter()
            .map(|(r, _)| r)
            .find(|r| r.init == init && r.index == i)
    } else {
        return Err(invalid(
            "the container selector must be [?(@.name==\"NAME\")] or an index",
        ));
    };
    found.ok_or_else(|| format!("fieldPath {field_path:?} names no container of this {kind}"))
}

/// The annotation's field path in error messages.
fn annotation_path() -> String {
    format!("metadata.annotations[{TRIGGER_ANNOTATION}]")
}

/// Checks the triggers annotation of `w`: a JSON list; each entry from an
/// `ImageStreamTag` named `stream:tag`, with a field path that names a container's
/// image; no two entries for the same container.
pub fn validate_triggers(w: &Workload) -> Vec<FieldError> {
    let Some(value) = w.annotation(TRIGGER_ANNOTATION) else {
        return Vec::new();
    };
    let base = annotation_path();
    let triggers = match parse_triggers(value) {
        Ok(t) => t,
        Err(e) => return vec![FieldError::invalid(base, value, e)],
    };
    let mut errors = Vec::new();
    let mut seen: Vec<(ContainerRef, usize)> = Vec::new();
    for (i, t) in triggers.iter().enumerate() {
        let at = format!("{base}[{i}]");
        if t.from.kind != KIND_IMAGE_STREAM_TAG {
            errors.push(FieldError::not_supported(
                format!("{at}.from.kind"),
                &t.from.kind,
                &[KIND_IMAGE_STREAM_TAG],
            ));
        }
        if let Err(e) = parse_image_stream_tag_name(&t.from.name) {
            errors.push(FieldError::invalid(
                format!("{at}.from.name"),
                &t.from.name,
                e.to_string(),
            ));
        }
        if t.field_path.is_empty() {
            errors.push(FieldError::required(
                format!("{at}.fieldPath"),
                "the image field the trigger sets",
            ));
            continue;
        }
        match container_for_field_path(w, &t.field_path) {
            Ok(r) => {
                if let Some((_, j)) = seen.iter().find(|(s, _)| *s == r) {
                    errors.push(FieldError::invalid(
                        format!("{at}.fieldPath"),
                        &t.field_path,
                        format!(
                            "duplicate: trigger {j} already sets the image of container {:?}",
                            r.name
                        ),
                    ));
                } else {
                    seen.push((r, i));
                }
            }
            Err(e) => errors.push(FieldError::invalid(
                format!("{at}.fieldPath"),
                &t.field_path,
                e,
            )),
        }
    }
    errors
}

/// One container image a trigger wants changed, and the tag it follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerUpdate {
    /// The followed tag's namespace.
    pub namespace: String,
    /// The followed tag (`stream:tag`).
    pub tag: String,
    /// The container's image, before and after.
    pub rewrite: Rewrite,
}

/// The images the triggers of `w` want changed now: for every trigger that is not
/// paused and whose tag `pull_spec(namespace, "stream:tag")` knows, the container's
/// image when it differs. Entries that do not parse or name no container are skipped.
pub fn trigger_updates(
    w: &Workload,
    pull_spec: impl Fn(&str, &str) -> Option<String>,
) -> Vec<TriggerUpdate> {
    let Some(Ok(triggers)) = triggers_of(w) else {
        return Vec::new();
    };
    let ns = w.metadata().namespace.clone().unwrap_or_default();
    let kind = w.kind();
    let mut out: Vec<TriggerUpdate> = Vec::new();
    for t in triggers {
        if t.paused || t.from.kind != KIND_IMAGE_STREAM_TAG {
            continue;
        }
        let from_ns = if t.from.namespace.is_empty() {
            ns.as_str()
        } else {
            t.from.namespace.as_str()
        };
        let Some(spec) = pull_spec(from_ns, &t.from.name) else {
            continue;
        };
        let Ok(r) = container_for_field_path(w, &t.field_path) else {
            continue;
        };
        if out.iter().any(|o| o.rewrite.container == r) {
            continue;
        }
        let current = w
            .containers()
            .into_iter()
            .find(|(c, _)| *c == r)
            .and_then(|(_, c)| c.image.clone())
            .unwrap_or_default();
        if current != spec {
            out.push(TriggerUpdate {
                namespace: from_ns.to_owned(),
                tag: t.from.name.clone(),
                rewrite: Rewrite {
                    field: r.image_field(kind),
                    pointer: r.image_pointer(kind),
                    container: r,
                    from: current,
                    to: spec,
                },
            });
        }
    }
    out
}
