//! `moor policy add-role-to-user|add-role-to-group|remove-role-from-user|remove-role-from-group`:
//! grants and takes back roles in a namespace through `rbac.authorization.k8s.io/v1`
//! RoleBindings, as `oc policy` does (openshift/oc `pkg/cli/admin/policy`):
//! - add: a binding of the role that already names every subject is left alone; else
//!   a new binding is created, named after the role (`edit`, then `edit-0`, `edit-1`,
//!   ...), or `--rolebinding-name` is created or extended;
//! - remove: the subjects leave every binding of the role (or the named one); a
//!   binding left without subjects is deleted;
//! - users `system:serviceaccount:NS:NAME` and `-z NAME` are ServiceAccount subjects.
//!
//! Calls the API through kube; prints oc's lines
//! (`clusterrole.rbac.authorization.k8s.io/edit added: "alice"`).

use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding, RoleRef, Subject};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};

use super::{emit, note};
use crate::client::{ClientError, Session};
use crate::error::CliError;
use crate::tagging::FIELD_MANAGER;

/// The API group of RBAC objects and of User and Group subjects.
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// The annotation the bootstrap policy reconciler honours.
const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

pub(crate) const POLICY_EXAMPLES: &str = "\
Examples:
  # Let alice edit image streams (and push) in the current namespace
  moor policy add-role-to-user edit alice

  # Let a team's group pull from namespace team-a
  moor policy add-role-to-group system:image-puller team-b-devs -n team-a

  # Let the ServiceAccount builder of this namespace push
  moor policy add-role-to-user system:image-pusher -z builder

  # Take it back
  moor policy remove-role-from-user edit alice";

const ADD_TO_USER_EXAMPLES: &str = "\
Creates or extends a RoleBinding of the role in the namespace. The role, users and
ServiceAccounts need not exist. Without --rolebinding-name, a binding of the role that
already names every subject is kept as it is; otherwise a new binding named after the
role is created (edit, then edit-0, edit-1, ...). --role-namespace binds a Role of the
namespace instead of a ClusterRole.

Examples:
  # Add the 'view' role to user1 for the current namespace
  moor policy add-role-to-user view user1

  # Add the 'edit' role to serviceaccount1 for the current namespace
  moor policy add-role-to-user edit -z serviceaccount1

  # A ServiceAccount of another namespace, by its user name
  moor policy add-role-to-user system:image-puller system:serviceaccount:ci:deployer -n team-a";

const ADD_TO_GROUP_EXAMPLES: &str = "\
Creates or extends a RoleBinding of the role in the namespace (see add-role-to-user).

Examples:
  # Make the streams of team-a public: anyone may pull them
  moor policy add-role-to-group system:image-puller system:unauthenticated -n team-a

  # Let every ServiceAccount of team-b pull from team-a
  moor policy add-role-to-group system:image-puller system:serviceaccounts:team-b -n team-a";

const REMOVE_FROM_USER_EXAMPLES: &str = "\
Removes the users from every RoleBinding of the role in the namespace (or from
--rolebinding-name only). A binding left without subjects is deleted.

Examples:
  moor policy remove-role-from-user edit alice
  moor policy remove-role-from-user edit -z builder";

const REMOVE_FROM_GROUP_EXAMPLES: &str = "\
Removes the groups from every RoleBinding of the role in the namespace (or from
--rolebinding-name only). A binding left without subjects is deleted.

Examples:
  moor policy remove-role-from-group system:image-puller system:unauthenticated -n team-a";

/// Flags of `moor policy`.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// What to change.
    #[command(subcommand)]
    pub what: PolicyCommand,
}

/// The verbs of `moor policy`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Add a role to users or serviceaccounts for the current namespace
    #[command(
        name = "add-role-to-user",
        override_usage = "moor policy add-role-to-user ROLE (USER | -z SERVICEACCOUNT) [USER ...]",
        after_help = ADD_TO_USER_EXAMPLES
    )]
    AddRoleToUser(UserArgs),

    /// Add a role to groups for the current namespace
    #[command(name = "add-role-to-group", after_help = ADD_TO_GROUP_EXAMPLES)]
    AddRoleToGroup(GroupArgs),

    /// Remove a role from users for the current namespace
    #[command(
        name = "remove-role-from-user",
        override_usage = "moor policy remove-role-from-user ROLE (USER | -z SERVICEACCOUNT) [USER ...]",
        after_help = REMOVE_FROM_USER_EXAMPLES
    )]
    RemoveRoleFromUser(UserArgs),

    /// Remove a role from groups for the current namespace
    #[command(name = "remove-role-from-group", after_help = REMOVE_FROM_GROUP_EXAMPLES)]
    RemoveRoleFromGroup(GroupArgs),
}

/// Where the binding goes and which role it names.
#[derive(Debug, Args)]
pub struct BindingFlags {
    /// Name of the rolebinding to modify or create. If left empty, a default name is used (add) or every binding of the role is changed (remove)
    #[arg(long, value_name = "NAME")]
    pub rolebinding_name: Option<String>,

    /// Namespace where the role is located: empty means a role defined in cluster policy (a ClusterRole)
    #[arg(long, value_name = "NAMESPACE")]
    pub role_namespace: Option<String>,
}

/// Flags of `add-role-to-user` and `remove-role-from-user`.
#[derive(Debug, Args)]
pub struct UserArgs {
    /// The role to bind
    #[arg(value_name = "ROLE")]
    pub role: String,

    /// Users (`system:serviceaccount:NS:NAME` names a ServiceAccount)
    #[arg(value_name = "USER")]
    pub users: Vec<String>,

    /// Service account in the current namespace to use as a user (repeatable, or comma-separated)
    #[arg(
        short = 'z',
        long = "serviceaccount",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub service_accounts: Vec<String>,

    #[command(flatten)]
    pub binding: BindingFlags,
}

/// Flags of `add-role-to-group` and `remove-role-from-group`.
#[derive(Debug, Args)]
pub struct GroupArgs {
    /// The role to bind
    #[arg(value_name = "ROLE")]
    pub role: String,

    /// Groups
    #[arg(value_name = "GROUP", required = true)]
    pub groups: Vec<String>,

    #[command(flatten)]
    pub binding: BindingFlags,
}

/// Errors of `moor policy`, worded as oc words them.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// Neither users nor `-z`.
    #[error("you must specify at least one user or service account")]
    NoSubjects,
    /// `-z system:serviceaccount:...`.
    #[error(
        "--serviceaccount (-z) should only be used with short-form serviceaccount names (e.g. `default`)"
    )]
    QualifiedServiceAccount,
    /// `-z` with a name a ServiceAccount cannot have.
    #[error("{0:?} is not a valid serviceaccount name")]
    InvalidServiceAccount(String),
    /// `--role-namespace` other than the binding's namespace.
    #[error(
        "role binding in namespace {binding:?} can't reference role in different namespace {role:?}"
    )]
    RoleNamespace {
        /// The binding's namespace.
        binding: String,
        /// `--role-namespace`.
        role: String,
    },
    /// `--rolebinding-name` names a binding of another role (add).
    #[error("rolebinding {binding} found for role {found}, not {wanted}")]
    OtherRole {
        /// The binding.
        binding: String,
        /// The role it names.
        found: String,
        /// The role asked for.
        wanted: String,
    },
    /// `--rolebinding-name` names a binding of another kind of role (add).
    #[error("rolebinding {binding} found for {found:?}, not {wanted:?}")]
    OtherKind {
        /// The binding.
        binding: String,
        /// The kind it names.
        found: String,
        /// The kind asked for.
        wanted: String,
    },
    /// `--rolebinding-name` names a binding of another role (remove).
    #[error("rolebinding {binding} contains role {found}, instead of role {wanted}")]
    ContainsOtherRole {
        /// The binding.
        binding: String,
        /// The role it names.
        found: String,
        /// The role asked for.
        wanted: String,
    },
    /// `--rolebinding-name` names a binding of another kind of role (remove).
    #[error("rolebinding {binding} contains role {role} of kind {found:?}, not {wanted:?}")]
    ContainsOtherKind {
        /// The binding.
        binding: String,
        /// The role.
        role: String,
        /// The kind it names.
        found: String,
        /// The kind asked for.
        wanted: String,
    },
    /// No binding of the role to remove subjects from.
    #[error("unable to locate any RoleBinding for {kind} {role:?}")]
    NoBinding {
        /// `Role` or `ClusterRole`.
        kind: String,
        /// The role.
        role: String,
    },
    /// None of the subjects was bound.
    #[error("unable to find target [{}]", .0.join(" "))]
    NoTarget(Vec<String>),
}

/// One `oc policy` request, resolved: the role, its kind, the binding's namespace
/// and the subjects, with the names oc prints for them.
#[derive(Debug, Clone, PartialEq)]
struct Request {
    role: String,
    /// `ClusterRole`, or `Role` with `--role-namespace`.
    kind: &'static str,
    namespace: String,
    binding_name: Option<String>,
    subjects: Vec<Subject>,
    /// What the user typed, for messages: users, then `-z` names (or groups).
    targets: Vec<String>,
}

/// Runs `moor policy ...`.
pub async fn run(session: &Session, args: PolicyArgs) -> Result<(), CliError> {
    let ns = session.namespace.clone();
    match args.what {
        PolicyCommand::AddRoleToUser(a) => add(session, user_request(a, &ns)?).await,
        PolicyCommand::AddRoleToGroup(a) => add(session, group_request(a, &ns)?).await,
        PolicyCommand::RemoveRoleFromUser(a) => remove(session, user_request(a, &ns)?).await,
        PolicyCommand::RemoveRoleFromGroup(a) => remove(session, group_request(a, &ns)?).await,
    }
}

fn role_kind(flags: &BindingFlags, namespace: &str) -> Result<&'static str, PolicyError> {
    match flags.role_namespace.as_deref() {
        None | Some("") => Ok("ClusterRole"),
        Some(role_ns) if role_ns == namespace => Ok("Role"),
        Some(role_ns) => Err(PolicyError::RoleNamespace {
            binding: namespace.to_string(),
            role: role_ns.to_string(),
        }),
    }
}

fn user_request(a: UserArgs, namespace: &str) -> Result<Request, PolicyError> {
    if a.users.is_empty() && a.service_accounts.is_empty() {
        return Err(PolicyError::NoSubjects);
    }
    for sa in &a.service_accounts {
        if sa.starts_with("system:serviceaccount") {
            return Err(PolicyError::QualifiedServiceAccount);
        }
        if !valid_dns_subdomain(sa) {
            return Err(PolicyError::InvalidServiceAccount(sa.clone()));
        }
    }
    let kind = role_kind(&a.binding, namespace)?;
    let mut subjects: Vec<Subject> = a.users.iter().map(|u| user_subject(u)).collect();
    subjects.extend(a.service_accounts.iter().map(|sa| Subject {
        kind: "ServiceAccount".into(),
        name: sa.clone(),
        namespace: Some(namespace.to_string()),
        api_group: None,
    }));
    let mut targets = a.users;
    targets.extend(a.service_accounts);
    Ok(Request {
        role: a.role,
        kind,
        namespace: namespace.to_string(),
        binding_name: a.binding.rolebinding_name.filter(|n| !n.is_empty()),
        subjects,
        targets,
    })
}

fn group_request(a: GroupArgs, namespace: &str) -> Result<Request, PolicyError> {
    let kind = role_kind(&a.binding, namespace)?;
    let subjects = a
        .groups
        .iter()
        .map(|g| Subject {
            kind: "Group".into(),
            name: g.clone(),
            api_group: Some(RBAC_GROUP.into()),
            namespace: None,
        })
        .collect();
    Ok(Request {
        role: a.role,
        kind,
        namespace: namespace.to_string(),
        binding_name: a.binding.rolebinding_name.filter(|n| !n.is_empty()),
        subjects,
        targets: a.groups,
    })
}

/// A user as a subject: `system:serviceaccount:NS:NAME` is that ServiceAccount
/// (apiserver's `serviceaccount.SplitUsername`), anything else a User.
fn user_subject(user: &str) -> Subject {
    if let Some(rest) = user.strip_prefix("system:serviceaccount:")
        && let Some((ns, name)) = rest.split_once(':')
        && !ns.is_empty()
        && !name.is_empty()
        && !name.contains(':')
    {
        return Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: Some(ns.into()),
            api_group: None,
        };
    }
    Subject {
        kind: "User".into(),
        name: user.into(),
        api_group: Some(RBAC_GROUP.into()),
        namespace: None,
    }
}

/// A DNS-1123 subdomain, what a ServiceAccount name must be.
fn valid_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn same_subject(a: &Subject, b: &Subject) -> bool {
    a.kind == b.kind && a.name == b.name && a.namespace == b.namespace
}

/// `existing` followed by those of `to_add` it does not already hold.
fn add_subjects(existing: &[Subject], to_add: &[Subject]) -> Vec<Subject> {
    let mut out = existing.to_vec();
    for s in to_add {
        if !out.iter().any(|o| same_subject(o, s)) {
            out.push(s.clone());
        }
    }
    out
}

/// `existing` without `to_remove`, and how many were removed.
fn remove_subjects(existing: &[Subject], to_remove: &[Subject]) -> (Vec<Subject>, usize) {
    let kept: Vec<Subject> = existing
        .iter()
        .filter(|s| !to_remove.iter().any(|r| same_subject(s, r)))
        .cloned()
        .collect();
    let removed = existing.len() - kept.len();
    (kept, removed)
}

/// The role's name if free, else `ROLE-0` ... `ROLE-99` (oc's `getUniqueName`).
fn unique_name(role: &str, taken: &[String]) -> String {
    let free = |n: &str| !taken.iter().any(|t| t == n);
    if free(role) {
        return role.to_string();
    }
    (0..100)
        .map(|i| format!("{role}-{i}"))
        .find(|n| free(n))
        .unwrap_or_else(|| format!("{role}-{}", taken.len()))
}

/// oc's success line: `clusterrole.rbac.authorization.k8s.io/edit added: "alice"`, or
/// `added: ["alice" "bob"]` for several.
fn success_line(req: &Request, operation: &str) -> String {
    let targets = match req.targets.as_slice() {
        [one] => format!("{one:?}"),
        many => format!(
            "[{}]",
            many.iter()
                .map(|t| format!("{t:?}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    };
    format!(
        "{}.{RBAC_GROUP}/{} {operation}: {targets}\n",
        req.kind.to_ascii_lowercase(),
        req.role
    )
}

fn binding_subjects(b: &RoleBinding) -> &[Subject] {
    b.subjects.as_deref().unwrap_or_default()
}

fn binding_name(b: &RoleBinding) -> &str {
    b.metadata.name.as_deref().unwrap_or_default()
}

fn is_already_exists(e: &ClientError) -> bool {
    matches!(e, ClientError::Api(s) if s.code == 409 && s.reason == "AlreadyExists")
}

fn params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

async fn add(session: &Session, req: Request) -> Result<(), CliError> {
    let api: Api<RoleBinding> = Api::namespaced(session.client.clone(), &req.namespace);
    // oc starts over when a binding of the chosen name appears meanwhile.
    for _ in 0..5 {
        let (mut binding, update) = match &req.binding_name {
            Some(name) => match api.get_opt(name).await.map_err(|e| session.error(e))? {
                Some(b) => {
                    if b.role_ref.name != req.role {
                        return Err(CliError::Policy(PolicyError::OtherRole {
                            binding: name.clone(),
                            found: b.role_ref.name.clone(),
                            wanted: req.role.clone(),
                        }));
                    }
                    if b.role_ref.kind != req.kind {
                        return Err(CliError::Policy(PolicyError::OtherKind {
                            binding: name.clone(),
                            found: b.role_ref.kind.clone(),
                            wanted: req.kind.to_string(),
                        }));
                    }
                    (b, true)
                }
                None => (new_binding(&req, name), false),
            },
            None => {
                let all = api
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| session.error(e))?;
                let holds_all = all.items.iter().any(|b| {
                    b.role_ref.name == req.role
                        && b.role_ref.kind == req.kind
                        && add_subjects(binding_subjects(b), &req.subjects).len()
                            == binding_subjects(b).len()
                });
                if holds_all {
                    return emit(&success_line(&req, "added"));
                }
                let taken: Vec<String> = all.items.iter().map(|b| binding_name(b).into()).collect();
                (new_binding(&req, &unique_name(&req.role, &taken)), false)
            }
        };
        warn_missing_role(session, &req).await;
        let existing = binding_subjects(&binding).to_vec();
        let subjects = add_subjects(&existing, &req.subjects);
        warn_missing_service_accounts(session, &subjects[existing.len()..]).await;
        binding.subjects = Some(subjects);
        let written = if update {
            api.replace(binding_name(&binding), &params(), &binding)
                .await
        } else {
            api.create(&params(), &binding).await
        };
        match written.map_err(|e| session.error(e)) {
            Ok(_) => return emit(&success_line(&req, "added")),
            Err(e) if !update && is_already_exists(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(CliError::Usage(format!(
        "the rolebindings of {:?} kept changing; try again",
        req.role
    )))
}

fn new_binding(req: &Request, name: &str) -> RoleBinding {
    let mut b = RoleBinding {
        role_ref: RoleRef {
            api_group: Some(RBAC_GROUP.to_string()),
            kind: req.kind.into(),
            name: req.role.clone(),
        },
        ..Default::default()
    };
    b.metadata.name = Some(name.into());
    b.metadata.namespace = Some(req.namespace.clone());
    b
}

/// oc's `Warning: role 'X' not found` (the binding is made anyway).
async fn warn_missing_role(session: &Session, req: &Request) {
    let found = if req.kind == "Role" {
        Api::<Role>::namespaced(session.client.clone(), &req.namespace)
            .get_opt(&req.role)
            .await
            .map(|r| r.is_some())
    } else {
        Api::<ClusterRole>::all(session.client.clone())
            .get_opt(&req.role)
            .await
            .map(|r| r.is_some())
    };
    if let Ok(false) = found {
        note(&format!("Warning: role '{}' not found", req.role));
    }
}

/// oc's `Warning: ServiceAccount 'X' not found` for new ServiceAccount subjects.
async fn warn_missing_service_accounts(session: &Session, new: &[Subject]) {
    for s in new.iter().filter(|s| s.kind == "ServiceAccount") {
        let ns = s.namespace.as_deref().unwrap_or(&session.namespace);
        let api: Api<ServiceAccount> = Api::namespaced(session.client.clone(), ns);
        if let Ok(None) = api.get_opt(&s.name).await {
            note(&format!("Warning: ServiceAccount '{}' not found", s.name));
        }
    }
}

async fn remove(session: &Session, req: Request) -> Result<(), CliError> {
    let api: Api<RoleBinding> = Api::namespaced(session.client.clone(), &req.namespace);
    let bindings = match &req.binding_name {
        Some(name) => {
            let b = api.get(name).await.map_err(|e| session.error(e))?;
            if b.role_ref.name != req.role {
                return Err(CliError::Policy(PolicyError::ContainsOtherRole {
                    binding: name.clone(),
                    found: b.role_ref.name.clone(),
                    wanted: req.role.clone(),
                }));
            }
            if b.role_ref.kind != req.kind {
                return Err(CliError::Policy(PolicyError::ContainsOtherKind {
                    binding: name.clone(),
                    role: req.role.clone(),
                    found: b.role_ref.kind.clone(),
                    wanted: req.kind.to_string(),
                }));
            }
            vec![b]
        }
        None => {
            let all = api
                .list(&ListParams::default())
                .await
                .map_err(|e| session.error(e))?;
            let of_role: Vec<RoleBinding> = all
                .items
                .into_iter()
                .filter(|b| b.role_ref.name == req.role && b.role_ref.kind == req.kind)
                .collect();
            if of_role.is_empty() {
                return Err(CliError::Policy(PolicyError::NoBinding {
                    kind: req.kind.to_string(),
                    role: req.role.clone(),
                }));
            }
            of_role
        }
    };
    let mut found = 0;
    for mut binding in bindings {
        let (kept, removed) = remove_subjects(binding_subjects(&binding), &req.subjects);
        if removed == 0 {
            continue;
        }
        found += removed;
        let name = binding_name(&binding).to_string();
        let annotation = binding
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(AUTOUPDATE))
            .cloned();
        if kept.is_empty() && annotation.as_deref() != Some("false") {
            api.delete(&name, &DeleteParams::default())
                .await
                .map_err(|e| session.error(e))?;
        } else {
            binding.subjects = Some(kept);
            api.replace(&name, &params(), &binding)
                .await
                .map_err(|e| session.error(e))?;
        }
        if annotation.as_deref() == Some("true") {
            note(&format!(
                "Warning: Your changes may get lost whenever a master is restarted, unless you prevent reconciliation of this rolebinding using the following command: kubectl annotate rolebinding.rbac {name} '{AUTOUPDATE}=false' --overwrite"
            ));
        }
    }
    if found == 0 {
        return Err(CliError::Policy(PolicyError::NoTarget(req.targets)));
    }
    emit(&success_line(&req, "removed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_args(role: &str, users: &[&str], sas: &[&str]) -> UserArgs {
        UserArgs {
            role: role.into(),
            users: users.iter().map(|s| s.to_string()).collect(),
            service_accounts: sas.iter().map(|s| s.to_string()).collect(),
            binding: BindingFlags {
                rolebinding_name: None,
                role_namespace: None,
            },
        }
    }

    #[test]
    fn users_and_service_accounts_become_subjects() {
        let req = user_request(
            user_args(
                "edit",
                &["alice", "system:serviceaccount:ci:deployer"],
                &["builder"],
            ),
            "team-a",
        )
        .unwrap();
        assert_eq!(req.kind, "ClusterRole");
        let kinds: Vec<(&str, &str, Option<&str>, Option<&str>)> = req
            .subjects
            .iter()
            .map(|s| {
                (
                    s.kind.as_str(),
                    s.name.as_str(),
                    s.namespace.as_deref(),
                    s.api_group.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("User", "alice", None, Some(RBAC_GROUP)),
                ("ServiceAccount", "deployer", Some("ci"), None),
                ("ServiceAccount", "builder", Some("team-a"), None),
            ]
        );
        assert_eq!(
            success_line(&req, "added"),
            "clusterrole.rbac.authorization.k8s.io/edit added: [\"alice\" \"system:serviceaccount:ci:deployer\" \"builder\"]\n"
        );
    }

    #[test]
    fn bad_requests_read_as_oc_words_them() {
        assert_eq!(
            user_request(user_args("edit", &[], &[]), "ns").unwrap_err(),
            PolicyError::NoSubjects
        );
        assert_eq!(
            user_request(user_args("edit", &[], &["system:serviceaccount:a:b"]), "ns").unwrap_err(),
            PolicyError::QualifiedServiceAccount
        );
        assert!(matches!(
            user_request(user_args("edit", &[], &["Bad_Name"]), "ns").unwrap_err(),
            PolicyError::InvalidServiceAccount(_)
        ));
        let mut a = user_args("edit", &["alice"], &[]);
        a.binding.role_namespace = Some("other".into());
        assert_eq!(
            user_request(a, "team-a").unwrap_err().to_string(),
            "role binding in namespace \"team-a\" can't reference role in different namespace \"other\""
        );
        let mut a = user_args("pusher", &["alice"], &[]);
        a.binding.role_namespace = Some("team-a".into());
        let req = user_request(a, "team-a").unwrap();
        assert_eq!(req.kind, "Role");
        assert_eq!(
            success_line(&req, "removed"),
            "role.rbac.authorization.k8s.io/pusher removed: \"alice\"\n"
        );
        assert_eq!(
            PolicyError::NoTarget(vec!["alice".into(), "bob".into()]).to_string(),
            "unable to find target [alice bob]"
        );
    }

    #[test]
    fn subjects_are_added_once_and_removed_by_kind_name_and_namespace() {
        let alice = user_subject("alice");
        let sa = user_subject("system:serviceaccount:ns:alice");
        let both = add_subjects(std::slice::from_ref(&alice), &[alice.clone(), sa.clone()]);
        assert_eq!(both.len(), 2);
        let (kept, removed) = remove_subjects(&both, std::slice::from_ref(&alice));
        assert_eq!(removed, 1);
        assert_eq!(kept, vec![sa]);
        // Not a ServiceAccount user name: a User.
        assert_eq!(user_subject("system:serviceaccount:ns").kind, "User");
    }

    #[test]
    fn new_bindings_are_named_after_the_role() {
        assert_eq!(unique_name("edit", &[]), "edit");
        assert_eq!(unique_name("edit", &["edit".into()]), "edit-0");
        assert_eq!(
            unique_name("edit", &["edit".into(), "edit-0".into()]),
            "edit-1"
        );
    }
}
