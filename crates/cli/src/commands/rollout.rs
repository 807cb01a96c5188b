//! `moor rollout history|undo deploy/NAME`, as kubectl does them: a Deployment's
//! revisions are the ReplicaSets it controls (each with a
//! `deployment.kubernetes.io/revision` annotation); undo copies a revision's pod
//! template back into the Deployment with a JSON patch. Works against moor and against
//! any Kubernetes API server.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use moor_api::image::TRIGGER_ANNOTATION;
use moor_api::lookup::parse_triggers;

use super::{emit, note};
use crate::client::Session;
use crate::error::CliError;
use crate::printers::tabwriter::TabWriter;
use crate::resources::{self, DEPLOYMENTS, REPLICA_SETS};

pub(crate) const ROLLOUT_EXAMPLES: &str = "\
Revisions count the changes of a deployment's pod template (a trigger moving an image is
one); each is kept as a ReplicaSet, as Kubernetes keeps them.

Examples:
  moor rollout history deploy/mykeycloak
  moor rollout history deploy/mykeycloak --revision 2
  moor rollout undo deploy/mykeycloak
  moor rollout undo deploy/mykeycloak --to-revision 1";

/// Flags of `moor rollout`.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// What to do.
    #[command(subcommand)]
    pub what: RolloutCommand,
}

/// The `moor rollout` commands.
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// View the revisions of a deployment
    History(RolloutHistoryArgs),
    /// Go back to an earlier revision of a deployment
    Undo(RolloutUndoArgs),
}

/// Flags of `moor rollout history`.
#[derive(Debug, Args)]
pub struct RolloutHistoryArgs {
    /// The deployment: deploy/NAME, or deploy NAME
    #[arg(value_name = "RESOURCE/NAME", required = true, num_args = 1..=2)]
    pub resource: Vec<String>,

    /// Show the details of this revision
    #[arg(long, value_name = "N")]
    pub revision: Option<i64>,
}

/// Flags of `moor rollout undo`.
#[derive(Debug, Args)]
pub struct RolloutUndoArgs {
    /// The deployment: deploy/NAME, or deploy NAME
    #[arg(value_name = "RESOURCE/NAME", required = true, num_args = 1..=2)]
    pub resource: Vec<String>,

    /// The revision to go back to [default: the one before the current]
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub to_revision: i64,
}

const REVISION: &str = "deployment.kubernetes.io/revision";
const HASH_LABEL: &str = "pod-template-hash";
/// Deployment annotations a rollback keeps instead of taking the revision's.
const ANNOTATIONS_TO_SKIP: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// kubectl's table writer for these lists: `tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)`.
const TABBED: TabWriter = TabWriter {
    minwidth: 0,
    tabwidth: 8,
    padding: 2,
    padchar: ' ',
};

/// Runs `moor rollout ...`.
pub async fn run(session: &Session, args: RolloutArgs) -> Result<(), CliError> {
    match args.what {
        RolloutCommand::History(a) => {
            let name = deployment_name(&a.resource, "history viewer")?;
            history(session, &name, a.revision).await
        }
        RolloutCommand::Undo(a) => {
            let name = deployment_name(&a.resource, "rollbacker")?;
            undo(session, &name, a.to_revision).await
        }
    }
}

fn deployment_name(resource: &[String], what: &str) -> Result<String, CliError> {
    let (ty, names) = resources::resolve_args(&resource[0], &resource[1..])?;
    if !std::ptr::eq(ty, &DEPLOYMENTS) {
        return Err(CliError::Usage(format!(
            "no {what} has been implemented for {:?}",
            format!("{}.{}", ty.kind, ty.group).trim_end_matches('.')
        )));
    }
    match names.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(CliError::Usage(
            "required resource not specified: deploy/NAME".into(),
        )),
        _ => Err(CliError::Usage("one deployment at a time".into())),
    }
}

fn revision_of(rs: &Value) -> Option<i64> {
    rs.pointer("/metadata/annotations")?
        .get(REVISION)?
        .as_str()?
        .parse()
        .ok()
}

/// The ReplicaSets `deploy` controls, with their revisions, oldest first.
async fn revisions(session: &Session, deploy: &Value) -> Result<Vec<(i64, Value)>, CliError> {
    let uid = deploy["metadata"]["uid"].as_str().unwrap_or("");
    let selector = deploy
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|s| !s.is_empty());
    let list = session
        .list_json(&REPLICA_SETS, Some(&session.namespace), selector.as_deref())
        .await?;
    let mut out: Vec<(i64, Value)> = list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|rs| {
            rs.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter()
                        .any(|r| r["uid"] == uid && r["controller"] == true)
                })
        })
        .filter_map(|rs| Some((revision_of(&rs)?, rs)))
        .collect();
    out.sort_by_key(|(r, _)| *r);
    Ok(out)
}

async fn history(session: &Session, name: &str, revision: Option<i64>) -> Result<(), CliError> {
    let deploy = session
        .get_json(&DEPLOYMENTS, Some(&session.namespace), name)
        .await?;
    let revs = revisions(session, &deploy).await?;
    let header = format!("{}/{name}", DEPLOYMENTS.qualified_singular());
    if revs.is_empty() {
        return emit(&format!("{header}\nNo rollout history found.\n"));
    }
    if let Some(r) = revision.filter(|r| *r > 0) {
        let Some((_, rs)) = revs.iter().find(|(v, _)| *v == r) else {
            return Err(CliError::Usage(
                "unable to find the specified revision".into(),
            ));
        };
        let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
        return emit(&format!(
            "{header} with revision #{r}\n{}\n",
            describe_template(&template)
        ));
    }
    let mut text = String::from("REVISION\tCHANGE-CAUSE\n");
    for (r, rs) in &revs {
        let cause = rs
            .pointer("/metadata/annotations/kubernetes.io~1change-cause")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .unwrap_or("<none>");
        text.push_str(&format!("{r}\t{cause}\n"));
    }
    emit(&format!("{header}\n{}\n", TABBED.format(&text)))
}

/// A pod template as `kubectl rollout history --revision` prints it.
fn describe_template(t: &Value) -> String {
    let mut out = String::from("Pod Template:\n");
    let map_lines = |label: &str, m: Option<&Value>| -> String {
        let pairs: Vec<String> = m
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect()
            })
            .unwrap_or_default();
        match pairs.split_first() {
            None => format!("  {label}:\t<none>\n"),
            Some((first, rest)) => {
                let mut s = format!("  {label}:\t{first}\n");
                for p in rest {
                    s.push_str(&format!("  \t{p}\n"));
                }
                s
            }
        }
    };
    out.push_str(&map_lines("Labels", t.pointer("/metadata/labels")));
    if t.pointer("/metadata/annotations").is_some() {
        out.push_str(&map_lines(
            "Annotations",
            t.pointer("/metadata/annotations"),
        ));
    }
    for (title, list) in [
        ("Init Containers", "initContainers"),
        ("Containers", "containers"),
    ] {
        let Some(cs) = t
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        out.push_str(&format!("  {title}:\n"));
        for c in cs {
            out.push_str(&format!("   {}:\n", c["name"].as_str().unwrap_or("")));
            out.push_str(&format!(
                "    Image:\t{}\n",
                c["image"].as_str().unwrap_or("")
            ));
            let ports: Vec<String> = c["ports"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            format!(
                                "{}/{}",
                                p["containerPort"],
                                p["protocol"].as_str().unwrap_or("TCP")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            if ports.is_empty() {
                out.push_str("    Port:\t<none>\n    Host Port:\t<none>\n");
            } else {
                out.push_str(&format!("    Port:\t{}\n", ports.join(", ")));
                out.push_str(&format!(
                    "    Host Port:\t{}\n",
                    ports
                        .iter()
                        .map(|p| format!("0/{}", p.split('/').nth(1).unwrap_or("TCP")))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if let Some(cmd) = c["command"].as_array() {
                out.push_str("    Command:\n");
                for part in cmd {
                    out.push_str(&format!("      {}\n", part.as_str().unwrap_or("")));
                }
            }
            let env: Vec<String> = c["env"]
                .as_array()
                .map(|e| {
                    e.iter()
                        .map(|v| {
                            format!(
                                "      {}:\t{}",
                                v["name"].as_str().unwrap_or(""),
                                v["value"].as_str().unwrap_or("")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            if env.is_empty() {
                out.push_str("    Environment:\t<none>\n");
            } else {
                out.push_str(&format!("    Environment:\n{}\n", env.join("\n")));
            }
            let mounts: Vec<String> = c["volumeMounts"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .map(|v| {
                            format!(
                                "      {} from {}",
                                v["mountPath"].as_str().unwrap_or(""),
                                v["name"].as_str().unwrap_or("")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            if mounts.is_empty() {
                out.push_str("    Mounts:\t<none>\n");
            } else {
                out.push_str(&format!("    Mounts:\n{}\n", mounts.join("\n")));
            }
        }
    }
    let volumes = t
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .map(|v| {
            v.iter()
                .map(|v| v["name"].as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if volumes.is_empty() {
        out.push_str("  Volumes:\t<none>\n");
    } else {
        out.push_str(&format!("  Volumes:\t{}\n", volumes.join(", ")));
    }
    TABBED.format(&out)
}

fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
    }
    t
}

async fn undo(session: &Session, name: &str, to_revision: i64) -> Result<(), CliError> {
    let ns = Some(session.namespace.as_str());
    let deploy = session.get_json(&DEPLOYMENTS, ns, name).await?;
    let qualified = format!("{}/{name}", DEPLOYMENTS.qualified_singular());
    if deploy.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        return Err(CliError::Usage(format!(
            "you cannot rollback a paused deployment; resume it first with 'moor set triggers deploy/{name} --from-config' and try again"
        )));
    }
    let revs = revisions(session, &deploy).await?;
    let target = if to_revision > 0 {
        revs.iter()
            .find(|(r, _)| *r == to_revision)
            .map(|(_, rs)| rs.clone())
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "unable to find specified revision {to_revision} in history"
                ))
            })?
    } else {
        // The second newest revision.
        match revs.len() {
            0 | 1 => {
                return Err(CliError::Usage(format!(
                    "no rollout history found for deployment {name:?}"
                )));
            }
            n => revs[n - 2].1.clone(),
        }
    };
    let revision = revision_of(&target).unwrap_or(0);
    let template = without_hash(target.pointer("/spec/template").unwrap_or(&json!({})));
    let current = without_hash(deploy.pointer("/spec/template").unwrap_or(&json!({})));
    if template == current {
        return emit(&format!(
            "{qualified} skipped rollback (current template already matches revision {revision})\n"
        ));
    }
    let mut annotations = serde_json::Map::new();
    let own = deploy
        .pointer("/metadata/annotations")
        .and_then(Value::as_object);
    for k in ANNOTATIONS_TO_SKIP {
        if let Some(v) = own.and_then(|a| a.get(*k)) {
            annotations.insert(k.to_string(), v.clone());
        }
    }
    if let Some(rs_annotations) = target
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        for (k, v) in rs_annotations {
            if !ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
                annotations.insert(k.clone(), v.clone());
            }
        }
    }
    // A trigger that follows a tag would set the image straight back: pause the
    // Deployment's image triggers in the same write, as `oc rollback` does.
    let paused = match own
        .and_then(|a| a.get(TRIGGER_ANNOTATION))
        .and_then(Value::as_str)
    {
        Some(current) => match pause_triggers(current) {
            Some((value, tags)) => {
                annotations.insert(TRIGGER_ANNOTATION.to_string(), Value::from(value));
                tags
            }
            None => {
                annotations.insert(TRIGGER_ANNOTATION.to_string(), Value::from(current));
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let patch = json!([
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "add", "path": "/metadata/annotations", "value": annotations},
    ]);
    session
        .patch(
            &DEPLOYMENTS,
            ns,
            name,
            "application/json-patch+json",
            &patch,
        )
        .await?;
    emit(&format!("{qualified} rolled back\n"))?;
    if !paused.is_empty() {
        note(&format!(
            "Warning: the following images triggers were disabled: {}\n  You can re-enable them with: moor set triggers deploy/{name} --auto",
            paused.join(", ")
        ));
    }
    Ok(())
}

/// The trigger annotation `current` with every image trigger paused, and the tags of
/// the triggers that were not paused before; `None` when none was active (or the
/// annotation does not parse, when it is left as it is).
fn pause_triggers(current: &str) -> Option<(String, Vec<String>)> {
    let mut triggers = parse_triggers(current).ok()?;
    let mut tags: Vec<String> = Vec::new();
    for t in triggers.iter_mut().filter(|t| !t.paused) {
        t.paused = true;
        let tag = if t.from.namespace.is_empty() {
            t.from.name.clone()
        } else {
            format!("{}/{}", t.from.namespace, t.from.name)
        };
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if tags.is_empty() {
        return None;
    }
    Some((serde_json::to_string(&triggers).ok()?, tags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_back_pauses_the_active_image_triggers() {
        let ann = r#"[{"from":{"kind":"ImageStreamTag","name":"keycloak:20.0"},"fieldPath":"spec.template.spec.containers[?(@.name==\"a\")].image"},{"from":{"kind":"ImageStreamTag","name":"db:1","namespace":"shared"},"fieldPath":"spec.template.spec.containers[?(@.name==\"b\")].image","paused":true}]"#;
        let (value, tags) = pause_triggers(ann).unwrap();
        assert_eq!(tags, ["keycloak:20.0"]);
        assert!(parse_triggers(&value).unwrap().iter().all(|t| t.paused));
        assert_eq!(pause_triggers(&value), None, "nothing left to pause");
        assert_eq!(pause_triggers("not json"), None);
    }

    #[test]
    fn only_deployments_have_a_history_here() {
        assert_eq!(
            deployment_name(&["deploy/web".into()], "rollbacker").unwrap(),
            "web"
        );
        assert_eq!(
            deployment_name(&["deployment".into(), "web".into()], "rollbacker").unwrap(),
            "web"
        );
        assert_eq!(
            deployment_name(&["is/web".into()], "rollbacker")
                .unwrap_err()
                .to_string(),
            "no rollbacker has been implemented for \"ImageStream.image.openshift.io\""
        );
    }

    #[test]
    fn templates_print_like_kubectl() {
        let t = json!({"metadata": {"labels": {"app": "web", "pod-template-hash": "x"}},
                       "spec": {"containers": [{"name": "web", "image": "nginx@sha256:1",
                                                "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]}});
        let out = describe_template(&t);
        let lines: Vec<Vec<&str>> = out
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(lines[0], ["Pod", "Template:"]);
        assert_eq!(lines[1], ["Labels:", "app=web"]);
        assert_eq!(lines[2], ["pod-template-hash=x"]);
        assert!(lines.contains(&vec!["Image:", "nginx@sha256:1"]), "{out}");
        assert!(lines.contains(&vec!["Port:", "8080/TCP"]), "{out}");
        assert_eq!(lines.last().unwrap(), &vec!["Volumes:", "<none>"]);
    }
}
