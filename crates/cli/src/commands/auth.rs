//! `moor auth can-i` and `moor auth whoami` (and `moor whoami`): what the server's
//! review APIs say about the caller, printed as kubectl and oc print them.
//! - `can-i` sends a SelfSubjectAccessReview (or, with `--list`, a
//!   SelfSubjectRulesReview) and prints `yes`/`no` with kubectl's exit codes (0 yes,
//!   1 no); TYPE is resolved through the server's discovery documents, as kubectl's
//!   REST mapper does.
//! - `whoami` sends a SelfSubjectReview: `moor whoami` prints the user name (`oc
//!   whoami`), `moor auth whoami` kubectl's ATTRIBUTE/VALUE table.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, UserInfo};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SelfSubjectAccessReview,
    SelfSubjectAccessReviewSpec, SelfSubjectRulesReview, SelfSubjectRulesReviewSpec,
    SubjectRulesReviewStatus,
};
use kube::Api;
use kube::api::PostParams;
use serde_json::Value;

use super::{emit, note};
use crate::client::{ClientError, Session};
use crate::error::CliError;
use crate::printers::tabwriter::TabWriter;

pub(crate) const AUTH_EXAMPLES: &str = "\
Examples:
  # May I push to image streams in team-a?
  moor auth can-i update imagestreams --subresource layers -n team-a

  # Everything I may do in the current namespace
  moor auth can-i --list

  # Who am I?
  moor auth whoami";

const CAN_I_EXAMPLES: &str = "\
Prints yes or no (with the server's reason); exits 0 for yes and 1 for no, as
kubectl does. TYPE is a resource name, singular name or short name the server
lists (is, istag, rolebindings.rbac.authorization.k8s.io, ...); a path that starts
with / is a non-resource URL.

Examples:
  # Check to see if I can create image streams in any namespace
  moor auth can-i create imagestreams --all-namespaces

  # Check to see if I can pull from the stream keycloak (get imagestreams/layers)
  moor auth can-i get imagestreams/keycloak --subresource layers

  # Check to see if I can read the metrics
  moor auth can-i get /metrics

  # List all allowed actions in namespace \"team-a\"
  moor auth can-i --list --namespace=team-a";

const WHOAMI_EXAMPLES: &str = "\
Examples:
  # Your user name, groups and other attributes
  moor auth whoami

  # As JSON (the SelfSubjectReview)
  moor auth whoami -o json";

const OC_WHOAMI_EXAMPLES: &str = "\
Examples:
  # The user name the current context acts as
  moor whoami

  # The server the current context talks to
  moor whoami --show-server";

/// Verbs kubectl knows for resources; others get a warning.
const RESOURCE_VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "use",
    "bind",
    "impersonate",
    "*",
    "approve",
    "sign",
    "escalate",
    "attest",
];
/// Verbs kubectl knows for non-resource URLs.
const NON_RESOURCE_VERBS: &[&str] = &[
    "get", "put", "post", "head", "options", "delete", "patch", "*",
];
/// Resources the server authorizes but does not list (the impersonate verb's).
const NON_STANDARD_RESOURCES: &[&str] = &["users", "groups"];

/// Flags of `moor auth`.
#[derive(Debug, Args)]
pub struct AuthArgs {
    /// What to ask.
    #[command(subcommand)]
    pub what: AuthCommand,
}

/// The verbs of `moor auth`.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Check whether an action is allowed
    #[command(
        name = "can-i",
        override_usage = "moor auth can-i VERB [TYPE | TYPE/NAME | NONRESOURCEURL] [flags]",
        after_help = CAN_I_EXAMPLES
    )]
    CanI(CanIArgs),

    /// Check self subject attributes (user name, UID, groups, extra)
    #[command(after_help = WHOAMI_EXAMPLES)]
    Whoami(AuthWhoamiArgs),
}

/// Flags of `moor auth can-i`.
#[derive(Debug, Args)]
pub struct CanIArgs {
    /// VERB and TYPE[/NAME] or NONRESOURCEURL
    #[arg(value_name = "ARGS")]
    pub args: Vec<String>,

    /// Check the specified action in all namespaces
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,

    /// Suppress output and just return the exit code
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Subresource such as layers (imagestreams/layers) or status
    #[arg(long, value_name = "SUBRESOURCE")]
    pub subresource: Option<String>,

    /// Print all allowed actions
    #[arg(long)]
    pub list: bool,

    /// Print allowed actions without headers
    #[arg(long)]
    pub no_headers: bool,
}

/// Flags of `moor auth whoami`.
#[derive(Debug, Args)]
pub struct AuthWhoamiArgs {
    /// Output format: json or yaml [default: a table]
    #[arg(short = 'o', long, value_name = "FORMAT", value_parser = ["json", "yaml"])]
    pub output: Option<String>,
}

/// Flags of `moor whoami`.
#[derive(Debug, Args)]
#[command(after_help = OC_WHOAMI_EXAMPLES)]
pub struct WhoamiArgs {
    /// Print the server URL of the current context instead of the user
    #[arg(long)]
    pub show_server: bool,

    /// Print the name of the current context instead of the user
    #[arg(short = 'c', long)]
    pub show_context: bool,

    /// Print the token the current context uses instead of the user
    #[arg(short = 't', long)]
    pub show_token: bool,
}

/// Runs `moor auth ...`.
pub async fn run(session: &Session, args: AuthArgs) -> Result<(), CliError> {
    match args.what {
        AuthCommand::CanI(a) => can_i(session, a).await,
        AuthCommand::Whoami(a) => {
            let review = self_subject_review(session).await?;
            match a.output.as_deref() {
                Some("json") => emit(&format!("{}\n", to_value(&review, "json")?)),
                Some(_) => emit(&to_value(&review, "yaml")?),
                None => emit(&whoami_table(
                    &review.status.and_then(|s| s.user_info).unwrap_or_default(),
                )),
            }
        }
    }
}

/// Runs `moor whoami`.
pub async fn run_whoami(session: &Session, args: WhoamiArgs) -> Result<(), CliError> {
    if args.show_server {
        return emit(&format!("{}\n", session.server_url()));
    }
    if args.show_token {
        let token = session.token().ok_or_else(|| {
            CliError::Usage("no token is associated with the current context".into())
        })?;
        return emit(&format!("{token}\n"));
    }
    if args.show_context {
        return emit(&format!("{}\n", session.context().unwrap_or_default()));
    }
    let review = self_subject_review(session).await?;
    let user = review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .unwrap_or_default();
    emit(&format!("{user}\n"))
}

fn to_value<T: serde::Serialize>(object: &T, format: &str) -> Result<String, CliError> {
    let value = serde_json::to_value(object).map_err(|e| CliError::Usage(e.to_string()))?;
    Ok(if format == "json" {
        crate::printers::to_json(&value)?
    } else {
        crate::printers::to_yaml(&value)?
    })
}

/// Asks the server who the caller is, with kubectl's words when it cannot answer.
pub(crate) async fn self_subject_review(session: &Session) -> Result<SelfSubjectReview, CliError> {
    let api: Api<SelfSubjectReview> = Api::all(session.client.clone());
    api.create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .map_err(|e| match session.error(e) {
            ClientError::Api(s) if s.code == 403 => CliError::Usage(
                "the selfsubjectreviews API is not enabled in the cluster or you do not have permission to call it".into(),
            ),
            ClientError::Api(s) if s.code == 404 => CliError::Usage(
                "the selfsubjectreviews API is not enabled in the cluster".into(),
            ),
            other => other.into(),
        })
}

/// kubectl's `auth whoami` table.
fn whoami_table(user: &UserInfo) -> String {
    let mut text = String::from("ATTRIBUTE\tVALUE\n");
    if let Some(name) = user.username.as_deref().filter(|n| !n.is_empty()) {
        text.push_str(&format!("Username\t{name}\n"));
    }
    if let Some(uid) = user.uid.as_deref().filter(|u| !u.is_empty()) {
        text.push_str(&format!("UID\t{uid}\n"));
    }
    if let Some(groups) = user.groups.as_ref().filter(|g| !g.is_empty()) {
        text.push_str(&format!("Groups\t{}\n", go_list(groups)));
    }
    if let Some(extra) = &user.extra {
        let sorted: BTreeMap<_, _> = extra.iter().collect();
        for (k, v) in sorted {
            text.push_str(&format!("Extra: {k}\t{}\n", go_list(v)));
        }
    }
    TabWriter::KUBECTL_TABLE.format(&text)
}

/// A list as Go's `%v` prints a `[]string`: `[a b c]`.
fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

async fn can_i(session: &Session, a: CanIArgs) -> Result<(), CliError> {
    if a.list {
        if !a.args.is_empty() {
            return Err(CliError::Usage(
                "list option must be specified with no arguments".into(),
            ));
        }
        if a.quiet || a.all_namespaces || a.subresource.is_some() {
            return Err(CliError::Usage(
                "list option can't be specified with neither quiet, all-namespaces nor subresource options".into(),
            ));
        }
        let review = SelfSubjectRulesReview {
            spec: SelfSubjectRulesReviewSpec {
                namespace: Some(session.namespace.clone()),
            },
            ..Default::default()
        };
        let api: Api<SelfSubjectRulesReview> = Api::all(session.client.clone());
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| session.error(e))?;
        let status = answer.status.unwrap_or_default();
        if status.incomplete {
            note(&format!(
                "Warning: the list may be incomplete: {}",
                status.evaluation_error.as_deref().unwrap_or_default()
            ));
        }
        return emit(&rules_table(&status, !a.no_headers));
    }
    let [verb, what] = a.args.as_slice() else {
        return Err(CliError::Usage(
            "you must specify two arguments: verb resource or verb resource/resourceName.\nSee 'moor auth can-i -h' for help and examples.".into(),
        ));
    };
    if a.no_headers {
        return Err(CliError::Usage(
            "--no-headers cannot be set without --list specified".into(),
        ));
    }
    let namespace = (!a.all_namespaces).then(|| session.namespace.clone());
    let spec = if what.starts_with('/') {
        if a.subresource.is_some() {
            return Err(CliError::Usage(
                "--subresource can not be used with NonResourceURL".into(),
            ));
        }
        if !NON_RESOURCE_VERBS.contains(&verb.as_str()) {
            note(&format!("Warning: verb '{verb}' is not a known verb"));
        }
        SelfSubjectAccessReviewSpec {
            non_resource_attributes: Some(NonResourceAttributes {
                path: Some(what.clone()),
                verb: Some(verb.clone()),
            }),
            ..Default::default()
        }
    } else {
        let (type_arg, name) = match what.split_once('/') {
            Some((t, n)) => (t, Some(n.to_string())),
            None => (what.as_str(), None),
        };
        let resolved = resolve_type(session, type_arg).await?;
        if !resolved.namespaced && !a.all_namespaces {
            if resolved.group.is_empty() {
                note(&format!(
                    "Warning: resource '{}' is not namespace scoped",
                    resolved.resource
                ));
            } else {
                note(&format!(
                    "Warning: resource '{}' is not namespace scoped in group '{}'",
                    resolved.resource, resolved.group
                ));
            }
        }
        if !RESOURCE_VERBS.contains(&verb.as_str()) {
            note(&format!("Warning: verb '{verb}' is not a known verb"));
        }
        SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace,
                verb: Some(verb.clone()),
                group: Some(resolved.group),
                resource: Some(resolved.resource),
                subresource: a.subresource.clone(),
                name,
                ..Default::default()
            }),
            ..Default::default()
        }
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(session.client.clone());
    let answer = api
        .create(
            &PostParams::default(),
            &SelfSubjectAccessReview {
                spec,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| session.error(e))?;
    let status = answer.status.unwrap_or_default();
    let mut line = String::from(if status.allowed { "yes" } else { "no" });
    if !status.allowed {
        for part in [&status.reason, &status.evaluation_error]
            .into_iter()
            .flatten()
            .filter(|p| !p.is_empty())
        {
            line.push_str(" - ");
            line.push_str(part);
        }
    }
    if !a.quiet {
        emit(&format!("{line}\n"))?;
    }
    if status.allowed {
        Ok(())
    } else {
        Err(CliError::Reported)
    }
}

/// A resource type as the server's discovery names it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Resolved {
    group: String,
    resource: String,
    namespaced: bool,
}

/// Resolves TYPE (`is`, `imagestream`, `imagestreams.image.openshift.io`,
/// `rolebindings.rbac.authorization.k8s.io`, `*`) through `/api/v1` and every
/// group's preferred version, as kubectl's REST mapper does. An unknown TYPE is
/// asked about as typed, after kubectl's warning.
async fn resolve_type(session: &Session, type_arg: &str) -> Result<Resolved, CliError> {
    let lower = type_arg.to_ascii_lowercase();
    let as_typed = Resolved {
        group: String::new(),
        resource: type_arg.to_string(),
        namespaced: true,
    };
    if lower == "*" {
        return Ok(as_typed);
    }
    let (name, group) = match lower.split_once('.') {
        Some((n, g)) => (n.to_string(), Some(g.to_string())),
        None => (lower.clone(), None),
    };
    let lists = discovery(session).await?;
    let found = lists
        .iter()
        .filter(|(g, _)| group.as_ref().is_none_or(|want| want == g))
        .find_map(|(g, list)| {
            list["resources"]
                .as_array()?
                .iter()
                .filter(|r| !r["name"].as_str().unwrap_or_default().contains('/'))
                .find(|r| matches_type(r, &name))
                .map(|r| Resolved {
                    group: g.clone(),
                    resource: r["name"].as_str().unwrap_or_default().to_string(),
                    namespaced: r["namespaced"].as_bool().unwrap_or(true),
                })
        });
    if let Some(r) = found {
        return Ok(r);
    }
    let full = match &group {
        Some(g) => format!("{name}.{g}"),
        None => name.clone(),
    };
    if !NON_STANDARD_RESOURCES.contains(&full.as_str()) {
        match &group {
            Some(g) => note(&format!(
                "Warning: the server doesn't have a resource type '{name}' in group '{g}'"
            )),
            None => note(&format!(
                "Warning: the server doesn't have a resource type '{name}'"
            )),
        }
    }
    Ok(as_typed)
}

fn matches_type(resource: &Value, name: &str) -> bool {
    resource["name"].as_str() == Some(name)
        || resource["singularName"].as_str() == Some(name)
        || resource["kind"]
            .as_str()
            .is_some_and(|k| k.eq_ignore_ascii_case(name))
        || resource["shortNames"]
            .as_array()
            .is_some_and(|s| s.iter().any(|n| n.as_str() == Some(name)))
}

/// `(group, APIResourceList)` for core/v1 and each group's preferred version.
async fn discovery(session: &Session) -> Result<Vec<(String, Value)>, CliError> {
    let mut out = vec![(String::new(), session.get_path_json("/api/v1").await?)];
    let groups = session.get_path_json("/apis").await?;
    for g in groups["groups"].as_array().into_iter().flatten() {
        let (Some(name), Some(gv)) = (
            g["name"].as_str(),
            g["preferredVersion"]["groupVersion"].as_str(),
        ) else {
            continue;
        };
        match session.get_path_json(&format!("/apis/{gv}")).await {
            Ok(list) => out.push((name.to_string(), list)),
            Err(e) => tracing::debug!(group = gv, error = %e, "discovery"),
        }
    }
    Ok(out)
}

/// One row of `can-i --list`: kubectl's `PolicyRule` after `BreakdownRule` and
/// `CompactRules`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Row {
    verbs: Vec<String>,
    groups: Vec<String>,
    resources: Vec<String>,
    names: Vec<String>,
    urls: Vec<String>,
}

impl Row {
    /// Go's generated `PolicyRule.String()`, which kubectl sorts rows by.
    fn sort_key(&self) -> String {
        format!(
            "&PolicyRule{{Verbs:{},APIGroups:{},Resources:{},ResourceNames:{},NonResourceURLs:{},}}",
            go_list(&self.verbs),
            go_list(&self.groups),
            go_list(&self.resources),
            go_list(&self.names),
            go_list(&self.urls)
        )
    }
}

/// kubectl's `can-i --list` table: every rule broken down to one verb, group,
/// resource and name; rules of one group, resource and name compacted (their verbs
/// joined in first-seen order, each once); non-resource rules kept as they come
/// (repeats too, as kubectl prints them); sorted by Go's string of the rule.
fn rules_table(status: &SubjectRulesReviewStatus, headers: bool) -> String {
    let mut broken: Vec<Row> = Vec::new();
    for rule in &status.resource_rules {
        let groups = rule.api_groups.clone().unwrap_or_default();
        let resources = rule.resources.clone().unwrap_or_default();
        let names = rule.resource_names.clone().unwrap_or_default();
        for g in &groups {
            for r in &resources {
                for v in &rule.verbs {
                    let row = |names: Vec<String>| Row {
                        verbs: vec![v.clone()],
                        groups: vec![g.clone()],
                        resources: vec![r.clone()],
                        names,
                        urls: vec![],
                    };
                    if names.is_empty() {
                        broken.push(row(vec![]));
                    } else {
                        broken.extend(names.iter().map(|n| row(vec![n.clone()])));
                    }
                }
            }
        }
    }
    for rule in &status.non_resource_rules {
        for url in rule.non_resource_urls.iter().flatten() {
            for v in &rule.verbs {
                broken.push(Row {
                    verbs: vec![v.clone()],
                    urls: vec![url.clone()],
                    ..Default::default()
                });
            }
        }
    }
    // CompactRules: rows of one (group, resource, name) share one row of verbs.
    let mut compact: Vec<Row> = Vec::new();
    for row in broken {
        if !row.urls.is_empty() {
            compact.push(row);
            continue;
        }
        match compact.iter_mut().find(|c| {
            c.urls.is_empty()
                && c.groups == row.groups
                && c.resources == row.resources
                && c.names == row.names
        }) {
            Some(c) => {
                for v in row.verbs {
                    if !c.verbs.contains(&v) {
                        c.verbs.push(v);
                    }
                }
            }
            None => compact.push(row),
        }
    }
    compact.sort_by_cached_key(Row::sort_key);
    let mut text = String::new();
    if headers {
        text.push_str("Resources\tNon-Resource URLs\tResource Names\tVerbs\n");
    }
    for r in &compact {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            combine_resource_group(&r.resources, &r.groups),
            go_list(&r.urls),
            go_list(&r.names),
            go_list(&r.verbs)
        ));
    }
    TabWriter::KUBECTL_TABLE.format(&text)
}

/// kubectl's `CombineResourceGroup`: `imagestreams.image.openshift.io/layers`.
fn combine_resource_group(resources: &[String], groups: &[String]) -> String {
    let Some(first) = resources.first() else {
        return String::new();
    };
    let (resource, sub) = match first.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (first.as_str(), None),
    };
    let mut out = resource.to_string();
    if let Some(g) = groups.first().filter(|g| !g.is_empty()) {
        out.push('.');
        out.push_str(g);
    }
    if let Some(s) = sub {
        out.push('/');
        out.push_str(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authorization::v1::{NonResourceRule, ResourceRule};

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn whoami_prints_kubectls_table() {
        let user = UserInfo {
            username: Some("alice".into()),
            uid: Some("1001".into()),
            groups: Some(strings(&["team-a-devs", "system:authenticated"])),
            extra: None,
        };
        assert_eq!(
            whoami_table(&user),
            "ATTRIBUTE   VALUE\nUsername    alice\nUID         1001\nGroups      [team-a-devs system:authenticated]\n"
        );
    }

    #[test]
    fn rules_are_broken_down_compacted_and_sorted_as_kubectl_does() {
        // Go sorts by the rule's string: `Verbs:[get list]` before `Verbs:[get]`.
        let status = SubjectRulesReviewStatus {
            resource_rules: vec![
                ResourceRule {
                    verbs: strings(&["get", "list"]),
                    api_groups: Some(strings(&["image.openshift.io"])),
                    resources: Some(strings(&["imagestreams", "imagestreams/layers"])),
                    resource_names: None,
                },
                ResourceRule {
                    verbs: strings(&["create"]),
                    api_groups: Some(strings(&["authorization.k8s.io"])),
                    resources: Some(strings(&["selfsubjectaccessreviews"])),
                    resource_names: None,
                },
                // Verbs another rule already gave are listed once.
                ResourceRule {
                    verbs: strings(&["get", "watch"]),
                    api_groups: Some(strings(&["image.openshift.io"])),
                    resources: Some(strings(&["imagestreams"])),
                    resource_names: None,
                },
                ResourceRule {
                    verbs: strings(&["watch", "get"]),
                    api_groups: Some(strings(&["image.openshift.io"])),
                    resources: Some(strings(&["imagestreams"])),
                    resource_names: Some(strings(&["app"])),
                },
            ],
            non_resource_rules: vec![NonResourceRule {
                verbs: strings(&["get"]),
                non_resource_urls: Some(strings(&["/api", "/api/*"])),
            }],
            incomplete: false,
            evaluation_error: None,
        };
        let table = rules_table(&status, true);
        assert_eq!(
            table,
            "\
Resources                                       Non-Resource URLs   Resource Names   Verbs
selfsubjectaccessreviews.authorization.k8s.io   []                  []               [create]
imagestreams.image.openshift.io                 []                  []               [get list watch]
imagestreams.image.openshift.io/layers          []                  []               [get list]
                                                [/api/*]            []               [get]
                                                [/api]              []               [get]
imagestreams.image.openshift.io                 []                  [app]            [watch get]
"
        );
    }
}
