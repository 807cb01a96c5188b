//! `meta.k8s.io/v1` Table responses: the columns kubectl and oc print for `get`.
//! Each resource supplies a [`TableDef`]; this module turns objects into rows of the
//! shared [`moor_api::table::Table`].

use std::sync::Arc;

use jiff::Timestamp;
use moor_api::humanize::short_age;
use moor_api::table::{Table, TableColumnDefinition, TableRow};
use serde_json::{Value, json};

/// The static definition of one column of a Table, rendered as a
/// [`TableColumnDefinition`].
#[derive(Clone, Debug)]
pub struct Column {
    pub name: &'static str,
    /// `string`, `integer`, `date`, ...
    pub kind: &'static str,
    /// `name` for the NAME column, else "".
    pub format: &'static str,
    pub description: &'static str,
    /// 0 shows by default, 1 only with `-o wide`.
    pub priority: u8,
}

/// The cells of one row, given an object.
pub type RowFn = Arc<dyn Fn(&Value) -> Vec<Value> + Send + Sync>;

/// How a resource renders as a Table.
#[derive(Clone)]
pub struct TableDef {
    pub columns: Vec<Column>,
    pub row: RowFn,
}

impl TableDef {
    /// The default table: NAME and AGE, as kube-apiserver serves for any resource.
    pub fn default_columns() -> Self {
        TableDef {
            columns: vec![name_column(), age_column()],
            row: Arc::new(|o| vec![json!(name_of(o)), json!(age_of(o))]),
        }
    }
}

/// The NAME column.
pub fn name_column() -> Column {
    Column {
        name: "Name",
        kind: "string",
        format: "name",
        description: "Name must be unique within a namespace.",
        priority: 0,
    }
}

/// The AGE column (a creation timestamp, which kubectl prints as an age).
pub fn age_column() -> Column {
    Column {
        name: "Age",
        kind: "date",
        format: "",
        description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
        priority: 0,
    }
}

/// `metadata.name`, or "".
pub fn name_of(o: &Value) -> &str {
    o.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The AGE cell of an object: its age as kubectl prints it (kube-apiserver sends
/// `date` columns as such strings, and kubectl prints them as they come).
pub fn age_of(o: &Value) -> String {
    human_age(creation_timestamp(o), Timestamp::now())
}

/// `metadata.creationTimestamp`, or "".
pub fn creation_timestamp(o: &Value) -> &str {
    o.pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// An age as kubectl prints it (`5s`, `3m20s`, `5h10m`, `2d3h`, `45d`), for columns
/// that are not of type `date`. Follows kubectl's `HumanDuration`.
pub fn human_age(ts: &str, now: Timestamp) -> String {
    let Ok(t) = ts.parse::<Timestamp>() else {
        return String::new();
    };
    short_age(now.as_second() - t.as_second())
}

/// How much of the object each row carries (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    /// Parses the query parameter; unknown values fall back to the default.
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// Renders objects as a Table.
pub fn render(
    def: &TableDef,
    objects: &[Value],
    include: IncludeObject,
    resource_version: Option<&str>,
    continue_token: Option<&str>,
) -> Value {
    let columns = def
        .columns
        .iter()
        .map(|c| TableColumnDefinition {
            name: c.name.to_owned(),
            type_: c.kind.to_owned(),
            format: c.format.to_owned(),
            description: c.description.to_owned(),
            priority: i64::from(c.priority),
        })
        .collect();
    let rows = objects
        .iter()
        .map(|o| TableRow {
            cells: (def.row)(o),
            object: match include {
                IncludeObject::None => None,
                IncludeObject::Object => Some(o.clone()),
                IncludeObject::Metadata => Some(json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o.get("metadata").cloned().unwrap_or(json!({})),
                })),
            },
        })
        .collect();
    let mut table = Table::new(columns, rows);
    table.metadata.resource_version = resource_version.map(str::to_owned);
    table.metadata.continue_ = continue_token.map(str::to_owned);
    // A Table of strings and JSON values always serializes.
    serde_json::to_value(table).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let now: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        assert_eq!(human_age("2026-01-01T00:59:30Z", now), "30s");
        assert_eq!(human_age("2026-01-01T00:30:00Z", now), "30m");
        assert_eq!(human_age("2026-01-01T00:56:40Z", now), "3m20s");
        assert_eq!(human_age("2025-12-31T21:50:00Z", now), "3h10m");
        assert_eq!(human_age("2025-12-30T01:00:00Z", now), "2d");
        assert_eq!(human_age("2025-12-29T22:00:00Z", now), "2d3h");
        assert_eq!(human_age("2025-12-01T01:00:00Z", now), "31d");
        assert_eq!(human_age("garbage", now), "");
    }

    #[test]
    fn rows_carry_partial_metadata_by_default() {
        let def = TableDef::default_columns();
        let obj = json!({"metadata": {"name": "a", "creationTimestamp": "2026-01-01T00:00:00Z"}});
        let t = render(&def, &[obj], IncludeObject::Metadata, Some("5"), None);
        assert_eq!(t["rows"][0]["cells"][0], "a");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["metadata"]["resourceVersion"], "5");
    }
}
