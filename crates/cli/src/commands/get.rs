//! `moor get TYPE [NAME...]`: the server's Table (default and `-o wide`), or the
//! objects as YAML, JSON, names or a JSONPath template; selected by labels (`-l`) and
//! fields (`--field-selector`), sorted (`--sort-by`), and watched (`-w`) as kubectl
//! does.

use std::cmp::Ordering;
use std::collections::HashMap;

use clap::Args;
use futures::StreamExt;
use jiff::Timestamp;
use moor_api::table::Table;
use serde_json::Value;

use super::{emit, finish, no_resources_message, note};
use crate::client::{ClientError, ListQuery, Session};
use crate::error::CliError;
use crate::printers::jsonpath::Template;
use crate::printers::table::{TableOptions, TablePrinter};
use crate::printers::{OutputFormat, PrintError, print_objects};
use crate::resources::{ResourceType, resolve_args};

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
  moor get istag -o jsonpath='{range .items[*]}{.metadata.name}{\"\\n\"}{end}'

  # Selected by labels or fields, sorted, watched for changes
  moor get is -l team=web
  moor get events --field-selector involvedObject.name=keycloak
  moor get istag --sort-by=.metadata.creationTimestamp
  moor get is -w";

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

    /// Only resources whose fields match this selector, e.g. metadata.name=keycloak
    #[arg(long, value_name = "SELECTOR")]
    pub field_selector: Option<String>,

    /// Sort the list by this JSONPath expression, e.g. .metadata.name or '{.metadata.creationTimestamp}'
    #[arg(long, value_name = "JSONPATH", value_parser = parse_sort_by)]
    pub sort_by: Option<Template>,

    /// After listing, watch for changes and print each changed resource
    #[arg(short = 'w', long)]
    pub watch: bool,

    /// Print the table without its header line
    #[arg(long)]
    pub no_headers: bool,
}

/// Parses the `-o` flag of `get`.
pub fn parse_output(s: &str) -> Result<OutputFormat, String> {
    OutputFormat::parse(s).map_err(|e| e.to_string())
}

/// A whole object as what `--sort-by` looks into.
fn itself(v: &Value) -> Option<&Value> {
    Some(v)
}

/// Parses `--sort-by`: a JSONPath expression, braces optional, as kubectl takes it.
pub fn parse_sort_by(s: &str) -> Result<Template, String> {
    let expr = s.trim();
    let template = if expr.starts_with('{') {
        expr.to_string()
    } else {
        format!("{{{expr}}}")
    };
    Template::parse(&template).map_err(|e| e.to_string())
}

/// Orders two values picked by `--sort-by`: numbers by value, everything else by its
/// text; a missing value first.
fn compare_picked(a: &Option<Value>, b: &Option<Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&y.as_f64().unwrap_or(0.0)),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Sorts `items` stably by what `template` picks from `object_of(item)`.
fn sort_by<T>(
    items: &mut Vec<T>,
    template: &Template,
    object_of: impl Fn(&T) -> Option<&Value>,
) -> Result<(), PrintError> {
    let mut keyed: Vec<(Option<Value>, usize)> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let picked = match object_of(item) {
            Some(o) => template.values(o)?.into_iter().next(),
            None => None,
        };
        keyed.push((picked, i));
    }
    keyed.sort_by(|a, b| compare_picked(&a.0, &b.0));
    let mut slots: Vec<Option<T>> = items.drain(..).map(Some).collect();
    items.extend(keyed.into_iter().filter_map(|(_, i)| slots[i].take()));
    Ok(())
}

/// Runs `moor get ...`.
pub async fn run(session: &Session, args: GetArgs) -> Result<(), CliError> {
    let (ty, names) = resolve_args(&args.resource, &args.names)?;
    if args.all_namespaces && !names.is_empty() {
        return Err(CliError::Usage(
            "a resource cannot be retrieved by name across all namespaces".into(),
        ));
    }
    if args.watch && names.len() > 1 {
        return Err(CliError::Usage(
            "you may only specify a single resource type and name to watch".into(),
        ));
    }
    let namespace = if args.all_namespaces {
        None
    } else {
        session.namespace_for(ty)
    };
    let query = ListQuery {
        labels: args.selector.as_deref(),
        fields: args.field_selector.as_deref(),
    };
    let mut errors: Vec<CliError> = Vec::new();
    let table_opts = TableOptions {
        wide: args.output.is_some(),
        with_namespace: args.all_namespaces && ty.namespaced,
        no_headers: args.no_headers,
    };
    // The resource version the listing was read at, where a watch starts, and what
    // the listing printed (a watch re-listing after a 410 prints only what changed).
    let resource_version: String;
    let printed: Printed;

    match &args.output {
        None | Some(OutputFormat::Wide) => {
            let mut table = Table::default();
            if names.is_empty() {
                table = Table::from_value(
                    session
                        .get_table(ty, namespace, None, &query, args.sort_by.is_some())
                        .await?,
                )?;
            }
            for name in &names {
                match session
                    .get_table(ty, namespace, Some(name), &ListQuery::default(), false)
                    .await
                {
                    Ok(v) => table.extend(Table::from_value(v)?),
                    Err(e) => errors.push(e.into()),
                }
            }
            if let Some(template) = &args.sort_by {
                sort_by(&mut table.rows, template, |r| r.object.as_ref())?;
            }
            resource_version = list_version(&table.metadata.resource_version, &table.rows);
            printed = Printed::of_table(&table);
            let text = table.render(table_opts, Timestamp::now());
            emit(&text)?;
            if text.is_empty() && errors.is_empty() && !args.watch {
                note(&no_resources_message(namespace));
            }
        }
        Some(format) => {
            let mut objects = Vec::new();
            let mut list_rv = None;
            if names.is_empty() {
                let list = session.list_json_query(ty, namespace, &query).await?;
                list_rv = list
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string);
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
            if let Some(template) = &args.sort_by {
                sort_by(&mut objects, template, itself)?;
            }
            resource_version = list_rv.unwrap_or_else(|| {
                objects
                    .iter()
                    .filter_map(|o| o.pointer("/metadata/resourceVersion")?.as_str())
                    .max_by_key(|rv| rv.parse::<u64>().unwrap_or(0))
                    .unwrap_or("0")
                    .to_string()
            });
            printed = Printed::of_objects(&objects);
            if !(names.len() == 1 && objects.is_empty()) {
                emit(&print_objects(format, ty, objects, names.len() == 1)?)?;
            }
        }
    }
    if args.watch && errors.is_empty() {
        // One name is watched as kubectl does: the collection, selected by name.
        let by_name = names.first().map(|n| format!("metadata.name={n}"));
        let query = match &by_name {
            Some(f) => ListQuery {
                labels: None,
                fields: Some(f.as_str()),
            },
            None => query,
        };
        return watch(
            session,
            ty,
            namespace,
            query,
            resource_version,
            printed,
            &args,
            table_opts,
        )
        .await;
    }
    finish(errors)
}

/// The resource version a Table was read at; for a Table of single objects (no list
/// version), the newest of its rows'.
fn list_version(list: &Option<String>, rows: &[moor_api::table::TableRow]) -> String {
    if let Some(rv) = list.as_ref().filter(|rv| !rv.is_empty()) {
        return rv.clone();
    }
    rows.iter()
        .filter_map(|r| {
            r.object
                .as_ref()?
                .pointer("/metadata/resourceVersion")?
                .as_str()
        })
        .max_by_key(|rv| rv.parse::<u64>().unwrap_or(0))
        .unwrap_or("0")
        .to_string()
}

/// What `-w` has printed, by `namespace/name`: the resource version and the last
/// thing printed for it (a one-row Table, or the object), so that a re-list prints
/// only what changed and can print what went away.
#[derive(Default)]
struct Printed(HashMap<String, (String, Value)>);

/// `namespace/name` and `resourceVersion` of an object (or its metadata).
fn identity(object: &Value) -> Option<(String, String)> {
    let meta = object.get("metadata")?;
    let name = meta.get("name")?.as_str()?;
    let ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
    let rv = meta
        .get("resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    Some((format!("{ns}/{name}"), rv.to_string()))
}

impl Printed {
    /// The rows of a Table, each as a Table of its own.
    fn of_table(table: &Table) -> Self {
        let mut out = Printed::default();
        for row in &table.rows {
            let Some((key, rv)) = row.object.as_ref().and_then(identity) else {
                continue;
            };
            let one = Table {
                kind: table.kind.clone(),
                api_version: table.api_version.clone(),
                metadata: Default::default(),
                columns: table.columns.clone(),
                rows: vec![row.clone()],
            };
            if let Ok(v) = serde_json::to_value(one) {
                out.0.insert(key, (rv, v));
            }
        }
        out
    }

    /// Objects as they are.
    fn of_objects(objects: &[Value]) -> Self {
        let mut out = Printed::default();
        for o in objects {
            if let Some((key, rv)) = identity(o) {
                out.0.insert(key, (rv, o.clone()));
            }
        }
        out
    }

    /// Books a watch event's object (a one-row Table, or the object).
    fn event(&mut self, kind: Option<&str>, object: &Value, as_table: bool) {
        let id = if as_table {
            object.pointer("/rows/0/object").and_then(identity)
        } else {
            identity(object)
        };
        let Some((key, rv)) = id else { return };
        if kind == Some("DELETED") {
            self.0.remove(&key);
        } else {
            self.0.insert(key, (rv, object.clone()));
        }
    }

    /// Replaces what is known with a re-listing; returns what to print: the entries
    /// that are new or changed, then the last state of those that went away.
    fn relisted(&mut self, now: Printed) -> Vec<Value> {
        let mut out: Vec<Value> = now
            .0
            .iter()
            .filter(|(k, (rv, _))| self.0.get(*k).is_none_or(|(old, _)| old != rv))
            .map(|(_, (_, v))| v.clone())
            .collect();
        out.extend(
            self.0
                .iter()
                .filter(|(k, _)| !now.0.contains_key(*k))
                .map(|(_, (_, v))| v.clone()),
        );
        *self = now;
        out
    }
}

/// Whether the server said the resource version is too old (410 Gone, `Expired`).
fn is_gone(e: &ClientError) -> bool {
    matches!(e, ClientError::Api(status) if status.code == 410 || status.reason == "Expired" || status.reason == "Gone")
}

/// `-w`: prints each added, changed or deleted resource as it happens (a table row
/// without the header, or the object in the chosen format), until interrupted. A
/// watch the server ends, or whose connection breaks, is started again from the last
/// version seen; one whose version is too old (410 Gone, as after a compaction) re-lists, prints only what
/// changed since, and watches on from the new list, as kubectl's reflector does.
#[allow(clippy::too_many_arguments)]
async fn watch(
    session: &Session,
    ty: &'static ResourceType,
    namespace: Option<&str>,
    query: ListQuery<'_>,
    mut resource_version: String,
    mut printed: Printed,
    args: &GetArgs,
    table_opts: TableOptions,
) -> Result<(), CliError> {
    let as_table = matches!(args.output, None | Some(OutputFormat::Wide));
    let row_opts = TableOptions {
        no_headers: true,
        ..table_opts
    };
    let print = |object: Value| -> Result<(), CliError> {
        if as_table {
            let table = Table::from_value(object)?;
            emit(&table.render(row_opts, Timestamp::now()))?;
        } else {
            let format = args.output.as_ref().unwrap_or(&OutputFormat::Wide);
            emit(&print_objects(format, ty, vec![object], true)?)?;
        }
        Ok(())
    };
    loop {
        let gone = match watch_once(
            session,
            ty,
            namespace,
            &query,
            &mut resource_version,
            &mut printed,
            as_table,
            &print,
        )
        .await
        {
            Ok(()) => false,
            Err(CliError::Client(e)) if is_gone(&e) => true,
            Err(e) => return Err(e),
        };
        if gone {
            tracing::debug!(%resource_version, "watch expired; re-listing");
            let (rv, now) = if as_table {
                let table = Table::from_value(
                    session
                        .get_table(ty, namespace, None, &query, false)
                        .await?,
                )?;
                (
                    list_version(&table.metadata.resource_version, &table.rows),
                    Printed::of_table(&table),
                )
            } else {
                let list = session.list_json_query(ty, namespace, &query).await?;
                let items = list["items"].as_array().cloned().unwrap_or_default();
                let rv = list
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("0")
                    .to_string();
                (rv, Printed::of_objects(&items))
            };
            for changed in printed.relisted(now) {
                print(changed)?;
            }
            resource_version = rv;
        }
    }
}

/// One watch request, printing its events, until the server ends it (`Ok`) or it
/// fails (a 410 Gone, at the start or as an ERROR event, is `CliError::Client`).
#[allow(clippy::too_many_arguments)]
async fn watch_once(
    session: &Session,
    ty: &'static ResourceType,
    namespace: Option<&str>,
    query: &ListQuery<'_>,
    resource_version: &mut String,
    printed: &mut Printed,
    as_table: bool,
    print: &dyn Fn(Value) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let events = session
        .watch(ty, namespace, query, resource_version, as_table)
        .await?;
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            // The connection broke mid-watch: watch again from the last version seen
            // (a server that cannot be reached then ends the command).
            Err(ClientError::Connect(e)) => {
                tracing::debug!(error = %e, "watch connection lost; watching again");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let object = event.get("object").cloned().unwrap_or(Value::Null);
        let kind = event.get("type").and_then(Value::as_str);
        match kind {
            Some("ERROR") => {
                let status: kube::core::Status = serde_json::from_value(object)
                    .map_err(|e| ClientError::Decode(e.to_string()))?;
                return Err(ClientError::Api(Box::new(status)).into());
            }
            Some("BOOKMARK") => {}
            _ => {
                printed.event(kind, &object, as_table);
                print(object)?;
            }
        }
        if let Some(rv) = event
            .pointer("/object/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|rv| !rv.is_empty())
        {
            *resource_version = rv.to_string();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_relist_prints_what_changed_and_what_went_away() {
        let obj = |name: &str, rv: &str| json!({"metadata": {"name": name, "namespace": "default", "resourceVersion": rv}});
        let mut printed = Printed::of_objects(&[obj("a", "1"), obj("b", "2"), obj("gone", "3")]);
        printed.event(Some("MODIFIED"), &obj("b", "4"), false);
        let out = printed.relisted(Printed::of_objects(&[
            obj("a", "1"),
            obj("b", "4"),
            obj("new", "5"),
        ]));
        assert_eq!(out, [obj("new", "5"), obj("gone", "3")]);
        assert!(
            printed
                .relisted(Printed::of_objects(&[
                    obj("a", "1"),
                    obj("b", "4"),
                    obj("new", "5")
                ]))
                .is_empty()
        );
        // Table rows are kept one Table each, keyed by the row's object.
        let table: Table = serde_json::from_value(json!({
            "kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "columnDefinitions": [{"name": "Name", "type": "string"}],
            "rows": [{"cells": ["a"], "object": obj("a", "1")}, {"cells": ["b"], "object": obj("b", "2")}]
        }))
        .unwrap();
        let mut printed = Printed::of_table(&table);
        let one = |name: &str, rv: &str| {
            json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "columnDefinitions": [{"name": "Name", "type": "string"}],
            "rows": [{"cells": [name], "object": obj(name, rv)}]})
        };
        printed.event(Some("DELETED"), &one("b", "3"), true);
        let out = printed.relisted(Printed::default());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["rows"][0]["cells"][0], "a");
        assert!(is_gone(&ClientError::Api(Box::new(
            kube::core::Status::failure("too old resource version", "Expired").with_code(410)
        ))));
    }

    #[test]
    fn sort_by_orders_numbers_by_value_and_keeps_ties_in_order() {
        let t = parse_sort_by(".spec.n").unwrap();
        let mut items = vec![
            json!({"id": "a", "spec": {"n": 10}}),
            json!({"id": "b", "spec": {"n": 9}}),
            json!({"id": "c"}),
            json!({"id": "d", "spec": {"n": 10}}),
            json!({"id": "e", "spec": {"n": 1.5}}),
        ];
        sort_by(&mut items, &t, itself).unwrap();
        let ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["c", "e", "b", "a", "d"]);
        let t = parse_sort_by("{.metadata.name}").unwrap();
        let mut items = vec![
            json!({"metadata": {"name": "b"}}),
            json!({"metadata": {"name": "a"}}),
        ];
        sort_by(&mut items, &t, itself).unwrap();
        assert_eq!(items[0]["metadata"]["name"], "a");
    }
}
