//! Validation of workloads: names, the triggers annotation.

use moor_api::lookup::{Workload, WorkloadKind, validate_triggers};
use moor_api::validation::FieldError;

/// A DNS-1123 subdomain check with Kubernetes' message.
fn dns1123_subdomain(name: &str) -> Vec<String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Vec::new()
    } else {
        vec!["a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into()]
    }
}

pub(super) fn validate_workload(w: &Workload) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let kind = w.kind();
    let name = w.metadata().name.clone().unwrap_or_default();
    for reason in dns1123_subdomain(&name) {
        errs.push(FieldError::invalid("metadata.name", &name, reason));
    }
    let spec_path = kind.pod_spec_path();
    match w.pod_spec() {
        None => errs.push(FieldError::required(spec_path, "")),
        Some(spec) => {
            if spec.containers.is_empty() {
                errs.push(FieldError::required(format!("{spec_path}.containers"), ""));
            }
            let mut seen: Vec<&str> = Vec::new();
            for (r, c) in w.containers() {
                let at = format!("{spec_path}.{}[{}]", r.list(), r.index);
                if c.name.is_empty() {
                    errs.push(FieldError::required(format!("{at}.name"), ""));
                } else if seen.contains(&c.name.as_str()) {
                    errs.push(FieldError::duplicate(format!("{at}.name"), &c.name));
                } else {
                    seen.push(&c.name);
                }
                if c.image.as_deref().unwrap_or("").trim().is_empty() {
                    errs.push(FieldError::required(format!("{at}.image"), ""));
                }
            }
            if matches!(kind, WorkloadKind::Job | WorkloadKind::CronJob)
                && !matches!(spec.restart_policy.as_deref(), Some("OnFailure" | "Never"))
            {
                errs.push(FieldError::not_supported(
                    format!("{spec_path}.restartPolicy"),
                    spec.restart_policy.clone().unwrap_or_default(),
                    &["OnFailure", "Never"],
                ));
            }
        }
    }
    let selector = match w {
        Workload::Deployment(d) => Some(&d.spec.selector),
        Workload::ReplicaSet(r) => Some(&r.spec.selector),
        Workload::StatefulSet(s) => Some(&s.spec.selector),
        Workload::DaemonSet(d) => Some(&d.spec.selector),
        _ => None,
    };
    if let Some(sel) = selector {
        let match_labels = sel.match_labels.clone().unwrap_or_default();
        let empty =
            match_labels.is_empty() && sel.match_expressions.as_ref().is_none_or(Vec::is_empty);
        if empty {
            errs.push(FieldError::required("spec.selector", ""));
        } else {
            let labels = w
                .template_metadata()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            let matches = match_labels.iter().all(|(k, v)| labels.get(k) == Some(v));
            if !matches {
                let rendered = labels
                    .iter()
                    .map(|(k, v)| format!("{k}:{v}"))
                    .collect::<Vec<_>>()
                    .join(",");
                errs.push(FieldError::invalid(
                    "spec.template.metadata.labels",
                    format!("map[{rendered}]"),
                    "`selector` does not match template `labels`",
                ));
            }
        }
    }
    if let Workload::CronJob(c) = w
        && c.spec.schedule.trim().is_empty()
    {
        errs.push(FieldError::required("spec.schedule", ""));
    }
    errs.extend(validate_triggers(w));
    errs
}
