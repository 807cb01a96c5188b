//! `moor get TYPE [NAME...]`: the server's Table (default and `-o wide`), or the
//! objects as YAML, JSON, names or a JSONPath template.

use clap::Args;
use jiff::Timestamp;
use moor_api::table::Table;
use serde_json::Value;

use super::{emit, finish, no_resources_message, note};
use crate::client::Session;
use crate::error::CliError;
use crate::printers::table::{TableOptions, TablePrinter};
use crate::printers::{OutputFormat, print_objects};
use crate::resources::resolve_args;

pub(crate) const GET_EXAMPLES: &str = "\
Resource types: imagestreams (is), imagestreamtags (istag), images, namespaces (ns),
secrets, events (ev), deployments (deploy), replicasets (rs), statefulsets (sts),
daemonsets (ds), jobs, cronjobs (cj), pods (po). A name may also be given as TYPE/NAME.

Examples:
  # The image streams of the current namespace, and of every namespace
  moor get is
  moor get is -A

  # The tags of every stream, with the image digest column
  moor get istag -o wide

  # One tag as YAML, one stream's name only
  moor get istag keycloak:20.0 -o yaml
  moor get is keycloak -o name

  # Fields picked with a kubectl-style JSONPath template
  moor get is keycloak -o jsonpath='{.status.dockerImageRepository}'
  moor get is -o jsonpath='{.items[*].metadata.name}'
  moor get istag -o jsonpath='{range .items[*]}{.metadata.name}{\"\\n\"}{end}'";

/// Flags of `moor get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Resource type (is, istag, images, ns, ...), or TYPE/NAME
    #[arg(value_name = "TYPE[/NAME]")]
    pub resource: String,

    /// Names of the resources to show [default: all in the namespace]
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,

    /// Output format: yaml, json, wide, name or jsonpath=TEMPLATE [default: a table]
    #[arg(short = 'o', long, value_name = "FORMAT", value_parser = parse_output)]
    pub output: Option<OutputFormat>,

    /// List the resources of every namespace (adds a NAMESPACE column)
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,

    /// Only resources whose labels match this selector, e.g. app=web,tier!=db
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Print the table without its header line
    #[arg(long)]
    pub no_headers: bool,
}

/// Parses the `-o` flag of `get`.
pub fn parse_output(s: &str) -> Result<OutputFormat, String> {
    OutputFormat::parse(s).map_err(|e| e.to_string())
}

/// Runs `moor get ...`.
pub async fn run(session: &Session, args: GetArgs) -> Result<(), CliError> {
    let (ty, names) = resolve_args(&args.resource, &args.names)?;
    if args.all_namespaces && !names.is_empty() {
        return Err(CliError::Usage(
            "a resource cannot be retrieved by name across all namespaces".into(),
        ));
    }
    let namespace = if args.all_namespaces {
        None
    } else {
        session.namespace_for(ty)
    };
    let selector = args.selector.as_deref();
    let mut errors: Vec<CliError> = Vec::new();

    match &args.output {
        None | Some(OutputFormat::Wide) => {
            let mut table = Table::default();
            if names.is_empty() {
                table = Table::from_value(session.get_table(ty, namespace, None, selector).await?)?;
            }
            for name in &names {
                match session.get_table(ty, namespace, Some(name), None).await {
                    Ok(v) => table.extend(Table::from_value(v)?),
                    Err(e) => errors.push(e.into()),
                }
            }
            let opts = TableOptions {
                wide: args.output.is_some(),
                with_namespace: args.all_namespaces && ty.namespaced,
                no_headers: args.no_headers,
            };
            let text = table.render(opts, Timestamp::now());
            emit(&text)?;
            if text.is_empty() && errors.is_empty() {
                note(&no_resources_message(namespace));
            }
        }
        Some(format) => {
            let mut objects = Vec::new();
            if names.is_empty() {
                let list = session.list_json(ty, namespace, selector).await?;
                if let Some(Value::Array(items)) = list.get("items") {
                    objects.extend(items.iter().cloned());
                }
            }
            for name in &names {
                match session.get_json(ty, namespace, name).await {
                    Ok(v) => objects.push(v),
                    Err(e) => errors.push(e.into()),
                }
            }
            if !(names.len() == 1 && objects.is_empty()) {
                emit(&print_objects(format, ty, objects, names.len() == 1)?)?;
            }
        }
    }
    finish(errors)
}
