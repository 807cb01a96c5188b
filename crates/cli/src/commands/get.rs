//! `moor get TYPE [NAME...]`: the server's Table (default and `-o wide`), or the
//! objects as YAML, JSON, names or a JSONPath template.

use jiff::Timestamp;
use serde_json::Value;

use super::{emit, finish, no_resources_message, note};
use crate::cli::GetArgs;
use crate::client::Session;
use crate::error::CliError;
use crate::printers::table::{Table, TableOptions};
use crate::printers::{OutputFormat, print_objects};
use crate::resources::resolve_args;

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
