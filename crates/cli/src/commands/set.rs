//! `moor set image-lookup` and `moor set triggers`, with oc's semantics and messages:
//! lookup on an image stream is `spec.lookupPolicy.local`, on a workload the
//! `resolve-names` annotation of its pod template; triggers live in the
//! `image.openshift.io/triggers` annotation (and, for a Deployment, the config trigger
//! is `!spec.paused`). Each object is read, changed, and sent as a merge patch; an
//! object that would not change is not written (image lookup then says it is
//! `already enabled`, as oc does).

use clap::{ArgAction, Args, Subcommand};
use moor_api::DockerImageReference;
use moor_api::image::{RESOLVE_NAMES_ANNOTATION, TRIGGER_ANNOTATION};
use moor_api::lookup::{
    ObjectFieldTrigger, TriggerSource, Workload, WorkloadKind, container_for_field_path,
    field_path_for, parse_triggers,
};
use serde_json::{Value, json};

use super::{emit, finish};
use crate::client::Session;
use crate::error::CliError;
use crate::printers::tabwriter::TabWriter;
use crate::resources::{self, IMAGE_STREAMS, ResourceType};

pub(crate) const SET_EXAMPLES: &str = "\
Examples:
  moor set image-lookup keycloak
  moor set triggers deploy/mykeycloak --from-image keycloak:20.0";

const SET_IMAGE_LOOKUP_EXAMPLES: &str = "\
With lookup on, a workload of the namespace that names an image by a short name of the
stream (keycloak:20.0, keycloak@sha256:...) is pinned to the tag's current pull spec when it
is created or changed. On a workload, the resolve-names annotation asks for every short
name of it to be resolved, whatever the streams say.

Examples:
  # Print the image streams of the namespace and whether they resolve local names
  moor set image-lookup

  # Use local name lookup on image stream keycloak
  moor set image-lookup keycloak

  # Force a deployment to use local name lookup
  moor set image-lookup deploy/mykeycloak

  # Show the current status of the deployment lookup
  moor set image-lookup deploy/mykeycloak --list

  # Disable local name lookup on image stream keycloak
  moor set image-lookup keycloak --enabled=false

  # Set local name lookup on all image streams
  moor set image-lookup --all";

const SET_TRIGGERS_EXAMPLES: &str = "\
An image trigger sets a container's image to the pull spec of an image stream tag, and
again each time the tag moves to another image (a rollback of the tag moves it back).
Deployments, stateful sets, daemon sets and cron jobs take triggers; they are kept in the
image.openshift.io/triggers annotation. For a deployment, the config trigger is the
opposite of spec.paused.

Examples:
  # Print the triggers of deployment mykeycloak
  moor set triggers deploy/mykeycloak

  # Follow keycloak:20.0 in the deployment's only container (or name it with -c)
  moor set triggers deploy/mykeycloak --from-image keycloak:20.0
  moor set triggers deploy/mykeycloak --from-image keycloak:20.0 -c mykeycloak

  # Follow a tag of another namespace
  moor set triggers statefulset/db --from-image shared/postgres:16 -c main

  # Stop acting on all triggers (and pause the deployment), then resume
  moor set triggers deploy/mykeycloak --manual
  moor set triggers deploy/mykeycloak --auto

  # Remove one trigger, or all of them
  moor set triggers deploy/mykeycloak --from-image keycloak:20.0 --remove
  moor set triggers deploy/mykeycloak --remove-all";

/// Flags of `moor set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// What to set.
    #[command(subcommand)]
    pub what: SetCommand,
}

/// The `moor set` commands.
#[derive(Debug, Subcommand)]
pub enum SetCommand {
    /// Change how images are resolved when deploying applications
    #[command(name = "image-lookup", after_help = SET_IMAGE_LOOKUP_EXAMPLES)]
    ImageLookup(SetImageLookupArgs),

    /// Update the triggers on one or more objects
    #[command(
        override_usage = "moor set triggers RESOURCE/NAME [--from-config|--from-image=IS:TAG [-c CONTAINER]] [--auto|--manual|--remove|--remove-all]",
        after_help = SET_TRIGGERS_EXAMPLES
    )]
    Triggers(SetTriggersArgs),
}

/// Flags of `moor set image-lookup`.
#[derive(Debug, Args)]
pub struct SetImageLookupArgs {
    /// Image streams by name, or workloads as TYPE/NAME (deploy/mykeycloak)
    #[arg(value_name = "STREAMNAME|TYPE/NAME")]
    pub names: Vec<String>,

    /// Mark the image stream as resolving tagged images in this namespace (--enabled=false turns it off)
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub enabled: bool,

    /// Display the current states of the requested resources
    #[arg(long)]
    pub list: bool,

    /// Select all image streams in the namespace
    #[arg(long)]
    pub all: bool,

    /// Only image streams whose labels match this selector
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
}

/// Flags of `moor set triggers`.
#[derive(Debug, Args)]
pub struct SetTriggersArgs {
    /// The objects: TYPE/NAME (deploy/mykeycloak), or TYPE NAME...
    #[arg(value_name = "RESOURCE/NAME", required = true, num_args = 1..)]
    pub resources: Vec<String>,

    /// An image stream tag to trigger off of: [NAMESPACE/]STREAM:TAG
    #[arg(long, value_name = "IS:TAG")]
    pub from_image: Option<String>,

    /// Comma-separated container names this trigger applies to [default: the only container]
    #[arg(short = 'c', long = "containers", value_name = "NAMES")]
    pub containers: Option<String>,

    /// Configuration changes result in a rollout (for a deployment: not paused)
    #[arg(long)]
    pub from_config: bool,

    /// Remove the specified trigger(s)
    #[arg(long)]
    pub remove: bool,

    /// Remove all triggers
    #[arg(long)]
    pub remove_all: bool,

    /// Enable all triggers, or just the specified one
    #[arg(long)]
    pub auto: bool,

    /// Set all triggers to manual, or just the specified one
    #[arg(long)]
    pub manual: bool,
}

const MERGE_PATCH: &str = "application/merge-patch+json";

/// oc's writer for these tables: `tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)`.
const SET_TABLE: TabWriter = TabWriter {
    minwidth: 0,
    tabwidth: 2,
    padding: 2,
    padchar: ' ',
};

/// Runs `moor set ...`.
pub async fn run(session: &Session, args: SetArgs) -> Result<(), CliError> {
    match args.what {
        SetCommand::ImageLookup(a) => image_lookup(session, a).await,
        SetCommand::Triggers(a) => triggers(session, a).await,
    }
}

/// `<plural>/<name>`, as oc names objects in these tables.
fn table_name(ty: &ResourceType, name: &str) -> String {
    format!("{}/{name}", ty.plural)
}

/// The objects `names` (bare names are of `default`, `TYPE/NAME` of their type).
fn targets(
    names: &[String],
    default: &'static ResourceType,
) -> Result<Vec<(&'static ResourceType, String)>, CliError> {
    names
        .iter()
        .map(|arg| match arg.split_once('/') {
            Some((t, n)) if !n.is_empty() => Ok((resources::lookup(t)?, n.to_string())),
            Some(_) => Err(resources::ResourceError::EmptyName(arg.clone()).into()),
            None => Ok((default, arg.clone())),
        })
        .collect()
}

/// Where a workload kind keeps its pod template's annotations, as a merge patch body
/// setting them to `annotations`.
fn template_annotations_patch(kind: WorkloadKind, annotations: Value) -> Value {
    let meta = json!({"metadata": {"annotations": annotations}});
    match kind {
        WorkloadKind::Pod => meta,
        WorkloadKind::CronJob => json!({"spec": {"jobTemplate": {"spec": {"template": meta}}}}),
        _ => json!({"spec": {"template": meta}}),
    }
}

async fn image_lookup(session: &Session, a: SetImageLookupArgs) -> Result<(), CliError> {
    let ns = session.namespace.as_str();
    let print_table = (a.names.is_empty() && !a.all) || a.list;
    let mut objects: Vec<(&'static ResourceType, Value)> = Vec::new();
    let mut errors: Vec<CliError> = Vec::new();
    if a.names.is_empty() {
        let list = session
            .list_json(&IMAGE_STREAMS, Some(ns), a.selector.as_deref())
            .await?;
        for item in list["items"].as_array().cloned().unwrap_or_default() {
            objects.push((&IMAGE_STREAMS, item));
        }
    }
    for (ty, name) in targets(&a.names, &IMAGE_STREAMS)? {
        match session.get_json(ty, session.namespace_for(ty), &name).await {
            Ok(v) => objects.push((ty, v)),
            Err(e) => errors.push(e.into()),
        }
    }
    if print_table {
        let mut text = String::from("NAME\tLOCAL\n");
        for (ty, obj) in &objects {
            let name = obj["metadata"]["name"].as_str().unwrap_or("");
            if std::ptr::eq(*ty, &IMAGE_STREAMS) {
                let local = obj["spec"]["lookupPolicy"]["local"]
                    .as_bool()
                    .unwrap_or(false);
                text.push_str(&format!("{name}\t{local}\n"));
                continue;
            }
            let enabled = match ty
                .workload_kind()
                .and_then(|k| Workload::from_value(k, obj.clone()).ok())
            {
                Some(w) => moor_api::lookup::resolves_all_names(&w).to_string(),
                None => "UNKNOWN".to_string(),
            };
            text.push_str(&format!("{}\t{enabled}\n", table_name(ty, name)));
        }
        emit(&SET_TABLE.format(&text))?;
        return finish(errors);
    }
    for (ty, obj) in objects {
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let patch = if std::ptr::eq(ty, &IMAGE_STREAMS) {
            let local = obj["spec"]["lookupPolicy"]["local"]
                .as_bool()
                .unwrap_or(false);
            (local != a.enabled).then(|| json!({"spec": {"lookupPolicy": {"local": a.enabled}}}))
        } else {
            let Some(kind) = ty.workload_kind() else {
                errors.push(CliError::Usage(format!(
                    "the resource {} does not support altering image lookup",
                    table_name(ty, &name)
                )));
                continue;
            };
            let w = Workload::from_value(kind, obj.clone())
                .map_err(|e| CliError::Usage(format!("{}: {e}", table_name(ty, &name))))?;
            let current = w.template_annotation(RESOLVE_NAMES_ANNOTATION) == Some("*");
            (current != a.enabled).then(|| {
                let value = if a.enabled { json!("*") } else { Value::Null };
                template_annotations_patch(kind, json!({ RESOLVE_NAMES_ANNOTATION: value }))
            })
        };
        let Some(patch) = patch else {
            emit(&format!(
                "{}/{name} image lookup already {}\n",
                ty.qualified_singular(),
                if a.enabled { "enabled" } else { "disabled" }
            ))?;
            continue;
        };
        match session
            .patch(ty, session.namespace_for(ty), &name, MERGE_PATCH, &patch)
            .await
        {
            Ok(_) => emit(&format!(
                "{}/{name} image lookup updated\n",
                ty.qualified_singular()
            ))?,
            Err(e) => errors.push(e.into()),
        }
    }
    finish(errors)
}

/// One image trigger as `oc set triggers` models it.
#[derive(Clone, Debug, PartialEq)]
struct ImageChange {
    auto: bool,
    from: String,
    /// Empty when it is the object's own namespace.
    namespace: String,
    names: Vec<String>,
}

/// The triggers of an object.
#[derive(Clone, Debug, PartialEq)]
struct Definition {
    config_change: bool,
    image_change: Vec<ImageChange>,
}

/// What `--from-image` asks for, parsed as oc parses it.
struct FromImage {
    name: String,
    namespace: String,
}

fn parse_from_image(value: &str, namespace: &str) -> Result<FromImage, CliError> {
    let r = DockerImageReference::parse(value).map_err(|e| {
        CliError::Usage(format!(
            "the value of --from-image does not appear to be a valid reference to an image: {e}"
        ))
    })?;
    if !r.registry().is_empty() || r.id().is_some() {
        return Err(CliError::Usage(
            "the value of --from-image must point to an image stream tag on this server".into(),
        ));
    }
    if r.tag().is_none() {
        return Err(CliError::Usage(
            "the value of --from-image must include the tag you wish to pull from".into(),
        ));
    }
    let ns = if r.namespace() == namespace {
        String::new()
    } else {
        r.namespace().to_string()
    };
    Ok(FromImage {
        name: r.name_string(),
        namespace: ns,
    })
}

fn definition_of(w: &Workload) -> Definition {
    let own_ns = w.metadata().namespace.clone().unwrap_or_default();
    let config_change = match w {
        Workload::Deployment(d) => !d.spec.paused.unwrap_or(false),
        _ => true,
    };
    let mut image_change = Vec::new();
    if let Some(Ok(list)) = moor_api::lookup::triggers_of(w) {
        for t in list {
            let Ok(c) = container_for_field_path(w, &t.field_path) else {
                continue;
            };
            image_change.push(ImageChange {
                auto: !t.paused,
                from: t.from.name,
                namespace: if t.from.namespace == own_ns {
                    String::new()
                } else {
                    t.from.namespace
                },
                names: vec![c.name],
            });
        }
    }
    Definition {
        config_change,
        image_change,
    }
}

struct TriggerOptions {
    from_image: Option<FromImage>,
    containers: Vec<String>,
    from_config: bool,
    remove: bool,
    remove_all: bool,
    auto: bool,
    manual: bool,
    reset: bool,
}

impl TriggerOptions {
    /// oc's `updateTriggers`: changes only what the flags ask for.
    fn update(&self, t: &mut Definition) {
        if self.remove_all {
            *t = Definition {
                config_change: false,
                image_change: Vec::new(),
            };
            return;
        }
        if self.remove {
            if self.from_config {
                t.config_change = false;
            }
            if let Some(f) = &self.from_image {
                t.image_change
                    .retain(|i| !(i.from == f.name && i.namespace == f.namespace));
            }
            return;
        }
        if self.reset {
            t.config_change = self.auto;
            for i in &mut t.image_change {
                i.auto = self.auto;
            }
            return;
        }
        if self.from_config {
            t.config_change = true;
        }
        if let Some(f) = &self.from_image {
            match t
                .image_change
                .iter_mut()
                .find(|i| i.from == f.name && i.namespace == f.namespace)
            {
                Some(i) => {
                    i.auto = !self.manual;
                    i.names = self.containers.clone();
                }
                None => t.image_change.push(ImageChange {
                    auto: !self.manual,
                    from: f.name.clone(),
                    namespace: f.namespace.clone(),
                    names: self.containers.clone(),
                }),
            }
        }
    }
}

/// The annotation value and `spec.paused` that `t` becomes on `w` (oc's `Apply`).
fn apply(w: &Workload, t: &Definition) -> Result<(Option<String>, Option<bool>), CliError> {
    let kind = w.kind();
    let all: Vec<String> = w.containers().into_iter().map(|(r, _)| r.name).collect();
    let mut sorted_all = all.clone();
    sorted_all.sort();
    let mut triggered: Vec<String> = Vec::new();
    let mut out: Vec<ObjectFieldTrigger> = Vec::new();
    for i in &t.image_change {
        let names = if i.names.is_empty() {
            // oc demands -c; with a single container there is nothing to choose.
            match w.pod_spec().map(|s| s.containers.as_slice()) {
                Some([only]) => vec![only.name.clone()],
                _ => {
                    return Err(CliError::Usage(
                        "you must specify --containers when setting --from-image".into(),
                    ));
                }
            }
        } else {
            i.names.clone()
        };
        let mut missing: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| !all.iter().any(|a| a == n))
            .collect();
        if !missing.is_empty() {
            missing.sort();
            missing.dedup();
            return Err(CliError::Usage(format!(
                "not all container names exist: {} (accepts: {})",
                missing.join(", "),
                sorted_all.join(", ")
            )));
        }
        let mut again: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| triggered.iter().any(|t| t == n))
            .collect();
        if !again.is_empty() {
            again.sort();
            again.dedup();
            return Err(CliError::Usage(format!(
                "only one trigger may reference each container: {}",
                again.join(", ")
            )));
        }
        triggered.extend(names.iter().cloned());
        for name in &names {
            out.push(ObjectFieldTrigger {
                from: TriggerSource {
                    kind: moor_api::image::KIND_IMAGE_STREAM_TAG.into(),
                    name: i.from.clone(),
                    namespace: i.namespace.clone(),
                    api_version: String::new(),
                },
                field_path: field_path_for(kind, name),
                paused: !i.auto,
            });
        }
    }
    let annotation = if out.is_empty() {
        None
    } else {
        Some(serde_json::to_string(&out).map_err(|e| CliError::Usage(e.to_string()))?)
    };
    let paused = matches!(w, Workload::Deployment(_)).then_some(!t.config_change);
    Ok((annotation, paused))
}

async fn triggers(session: &Session, a: SetTriggersArgs) -> Result<(), CliError> {
    let from_image = a
        .from_image
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|v| parse_from_image(v, &session.namespace))
        .transpose()?;
    let count = usize::from(a.from_config) + usize::from(from_image.is_some());
    let reset = count == 0 && (a.auto || a.manual);
    let print_table = count == 0 && !a.remove && !a.remove_all && !a.auto && !a.manual;
    let auto = a.auto || (!print_table && !a.remove_all && !a.manual);
    match () {
        _ if a.auto && a.manual => {
            return Err(CliError::Usage(
                "you must specify at most one of --auto or --manual".into(),
            ));
        }
        _ if a.remove && a.remove_all => {
            return Err(CliError::Usage(
                "you must specify either --remove or --remove-all".into(),
            ));
        }
        _ if a.remove_all && (count != 0 || a.auto || a.manual) => {
            return Err(CliError::Usage(
                "--remove-all may not be used with any other flag".into(),
            ));
        }
        _ if a.remove && count < 1 => {
            return Err(CliError::Usage(
                "--remove requires a flag defining a trigger type to be specified".into(),
            ));
        }
        _ if count > 1 => {
            return Err(CliError::Usage(
                "you may only set one trigger type at a time".into(),
            ));
        }
        _ => {}
    }
    let opts = TriggerOptions {
        from_image,
        containers: a
            .containers
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(|c| c.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default(),
        from_config: a.from_config,
        remove: a.remove,
        remove_all: a.remove_all,
        auto,
        manual: a.manual,
        reset,
    };
    let (ty, names) = resources::resolve_args(&a.resources[0], &a.resources[1..])?;
    let mut errors: Vec<CliError> = Vec::new();
    let mut table = String::from("NAME\tTYPE\tVALUE\tAUTO\n");
    for name in names {
        let kind = ty.workload_kind().filter(|k| {
            matches!(
                k,
                WorkloadKind::Deployment
                    | WorkloadKind::StatefulSet
                    | WorkloadKind::DaemonSet
                    | WorkloadKind::CronJob
            )
        });
        let Some(kind) = kind else {
            errors.push(CliError::Usage(format!(
                "{} does not support triggers",
                table_name(ty, &name)
            )));
            continue;
        };
        let obj = match session.get_json(ty, Some(&session.namespace), &name).await {
            Ok(v) => v,
            Err(e) => {
                errors.push(e.into());
                continue;
            }
        };
        let w = Workload::from_value(kind, obj)
            .map_err(|e| CliError::Usage(format!("{}: {e}", table_name(ty, &name))))?;
        if let Some(Err(e)) = moor_api::lookup::triggers_of(&w)
            && !print_table
        {
            return Err(CliError::Usage(format!(
                "{}: the {TRIGGER_ANNOTATION} annotation {e}",
                table_name(ty, &name)
            )));
        }
        let mut def = definition_of(&w);
        if print_table {
            let n = table_name(ty, &name);
            table.push_str(&format!("{n}\tconfig\t\t{}\n", def.config_change));
            for i in &def.image_change {
                let from = if i.namespace.is_empty() {
                    i.from.clone()
                } else {
                    format!("{}/{}", i.namespace, i.from)
                };
                let details = if i.names.is_empty() {
                    from
                } else {
                    format!("{from} ({})", i.names.join(", "))
                };
                table.push_str(&format!("{n}\timage\t{details}\t{}\n", i.auto));
            }
            continue;
        }
        opts.update(&mut def);
        let (annotation, paused) = match apply(&w, &def) {
            Ok(x) => x,
            Err(e) => {
                errors.push(CliError::Usage(format!(
                    "{}: {}",
                    table_name(ty, &name),
                    e.to_string().trim_start_matches("error: ")
                )));
                continue;
            }
        };
        let mut patch = json!({});
        let current = w.annotation(TRIGGER_ANNOTATION).map(str::to_string);
        let same_triggers = match (&current, &annotation) {
            (Some(c), Some(n)) => parse_triggers(c).ok() == parse_triggers(n).ok(),
            (None, None) => true,
            _ => false,
        };
        if !same_triggers {
            patch["metadata"] = json!({"annotations": {TRIGGER_ANNOTATION: annotation}});
        }
        if let (Workload::Deployment(d), Some(p)) = (&w, paused)
            && d.spec.paused.unwrap_or(false) != p
        {
            patch["spec"] = json!({"paused": p});
        }
        if patch.as_object().is_some_and(|o| o.is_empty()) {
            tracing::info!("{} was not changed", table_name(ty, &name));
            continue;
        }
        match session
            .patch(ty, Some(&session.namespace), &name, MERGE_PATCH, &patch)
            .await
        {
            Ok(_) => emit(&format!(
                "{}/{name} triggers updated\n",
                ty.qualified_singular()
            ))?,
            Err(e) => errors.push(e.into()),
        }
    }
    if print_table {
        emit(&SET_TABLE.format(&table))?;
    }
    finish(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(containers: &[&str], annotations: Value) -> Workload {
        let cs: Vec<Value> = containers
            .iter()
            .map(|c| json!({"name": c, "image": "x"}))
            .collect();
        Workload::from_value(
            WorkloadKind::Deployment,
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "d", "namespace": "ns", "annotations": annotations},
                   "spec": {"selector": {}, "template": {"spec": {"containers": cs}}}}),
        )
        .unwrap()
    }

    fn opts(from: Option<&str>, containers: &[&str]) -> TriggerOptions {
        TriggerOptions {
            from_image: from.map(|f| parse_from_image(f, "ns").unwrap()),
            containers: containers.iter().map(|s| s.to_string()).collect(),
            from_config: false,
            remove: false,
            remove_all: false,
            auto: true,
            manual: false,
            reset: false,
        }
    }

    #[test]
    fn from_image_is_parsed_like_oc() {
        let f = parse_from_image("keycloak:20.0", "ns").unwrap();
        assert_eq!(
            (f.name.as_str(), f.namespace.as_str()),
            ("keycloak:20.0", "")
        );
        let f = parse_from_image("shared/keycloak:20.0", "ns").unwrap();
        assert_eq!(f.namespace, "shared");
        let f = parse_from_image("ns/keycloak:20.0", "ns").unwrap();
        assert_eq!(f.namespace, "", "the object's own namespace is left out");
        for (bad, why) in [
            (
                "quay.io/a/b:1",
                "must point to an image stream tag on this server",
            ),
            ("keycloak", "must include the tag"),
        ] {
            assert!(
                parse_from_image(bad, "ns")
                    .err()
                    .unwrap()
                    .to_string()
                    .contains(why),
                "{bad}"
            );
        }
    }

    #[test]
    fn adding_a_trigger_defaults_to_the_only_container() {
        let w = deployment(&["web"], json!({}));
        let mut def = definition_of(&w);
        assert!(def.config_change && def.image_change.is_empty());
        opts(Some("keycloak:20.0"), &[]).update(&mut def);
        let (annotation, paused) = apply(&w, &def).unwrap();
        assert_eq!(
            annotation.unwrap(),
            r#"[{"from":{"kind":"ImageStreamTag","name":"keycloak:20.0"},"fieldPath":"spec.template.spec.containers[?(@.name==\"web\")].image"}]"#
        );
        assert_eq!(paused, Some(false));

        let two = deployment(&["a", "b"], json!({}));
        let mut def = definition_of(&two);
        opts(Some("k:1"), &[]).update(&mut def);
        assert_eq!(
            apply(&two, &def).unwrap_err().to_string(),
            "you must specify --containers when setting --from-image"
        );
        let mut def = definition_of(&two);
        opts(Some("k:1"), &["a", "zz"]).update(&mut def);
        assert_eq!(
            apply(&two, &def).unwrap_err().to_string(),
            "not all container names exist: zz (accepts: a, b)"
        );
    }

    #[test]
    fn manual_pauses_everything_and_remove_drops_one() {
        let ann = r#"[{"from":{"kind":"ImageStreamTag","name":"k:1"},"fieldPath":"spec.template.spec.containers[?(@.name==\"a\")].image"},
                      {"from":{"kind":"ImageStreamTag","name":"j:1","namespace":"other"},"fieldPath":"spec.template.spec.containers[1].image"}]"#;
        let w = deployment(&["a", "b"], json!({TRIGGER_ANNOTATION: ann}));
        let def = definition_of(&w);
        assert_eq!(def.image_change.len(), 2);
        assert_eq!(def.image_change[1].namespace, "other");
        assert_eq!(def.image_change[1].names, vec!["b"]);
        let mut manual = def.clone();
        TriggerOptions {
            auto: false,
            manual: true,
            reset: true,
            ..opts(None, &[])
        }
        .update(&mut manual);
        let (annotation, paused) = apply(&w, &manual).unwrap();
        let parsed = parse_triggers(&annotation.unwrap()).unwrap();
        assert!(parsed.iter().all(|t| t.paused));
        assert_eq!(paused, Some(true));
        let mut removed = def.clone();
        TriggerOptions {
            remove: true,
            ..opts(Some("k:1"), &[])
        }
        .update(&mut removed);
        assert_eq!(removed.image_change.len(), 1);
        assert_eq!(removed.image_change[0].from, "j:1");
    }
}
