//! Printing `meta.k8s.io/v1` Tables as kubectl does: the server's columns (priority 0,
//! or all with `-o wide`), upper-cased headers, an optional NAMESPACE column, cells
//! aligned by kubectl's tab writer. Pure functions over the decoded Table (the type is
//! [`moor_api::table::Table`], shared with the server).

use jiff::Timestamp;
use moor_api::humanize::{seconds_since, short_age};
use moor_api::table::{Table, TableColumnDefinition, TableRow};
use serde_json::Value;

use super::tabwriter::TabWriter;

/// Errors from decoding a Table.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The answer was not a Table nor an object nor a list.
    #[error("the server answered with a {kind:?} where a Table was expected")]
    NotATable {
        /// What it was instead.
        kind: String,
    },
    /// The Table did not decode.
    #[error("decoding the Table: {0}")]
    Decode(#[from] serde_json::Error),
}

/// How a Table is printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// Show columns of every priority (`-o wide`).
    pub wide: bool,
    /// Add a NAMESPACE column first (`-A`).
    pub with_namespace: bool,
    /// Leave out the header line.
    pub no_headers: bool,
}

/// Decoding and printing of the shared [`Table`] type, as kubectl does.
pub trait TablePrinter: Sized {
    /// Decodes a server answer: a Table, or (from a server without Table support) an
    /// object or a list, shown with NAME and AGE columns.
    fn from_value(value: Value) -> Result<Self, TableError>;
    /// A NAME and AGE table of plain objects.
    fn from_objects(objects: Vec<Value>) -> Self;
    /// Adds the rows of `other` (a table of the same resource) to this one.
    fn extend(&mut self, other: Self);
    /// Renders the table as kubectl does; an empty string when there are no rows.
    fn render(&self, opts: TableOptions, now: Timestamp) -> String;
}

impl TablePrinter for Table {
    fn from_value(value: Value) -> Result<Table, TableError> {
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if kind == "Table" {
            return Ok(serde_json::from_value(value)?);
        }
        if kind.ends_with("List") || value.get("items").is_some() {
            let items = value
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            return Ok(Table::from_objects(items));
        }
        if value.get("metadata").is_some() {
            return Ok(Table::from_objects(vec![value]));
        }
        Err(TableError::NotATable { kind })
    }

    fn from_objects(objects: Vec<Value>) -> Table {
        let columns = vec![
            TableColumnDefinition {
                name: "Name".into(),
                type_: "string".into(),
                format: "name".into(),
                priority: 0,
                ..Default::default()
            },
            TableColumnDefinition {
                name: "Age".into(),
                type_: "date".into(),
                format: String::new(),
                priority: 0,
                ..Default::default()
            },
        ];
        let rows = objects
            .into_iter()
            .map(|o| TableRow {
                cells: vec![
                    o.pointer("/metadata/name").cloned().unwrap_or(Value::Null),
                    o.pointer("/metadata/creationTimestamp")
                        .cloned()
                        .unwrap_or(Value::Null),
                ],
                object: Some(o),
            })
            .collect();
        Table {
            columns,
            rows,
            ..Table::default()
        }
    }

    fn extend(&mut self, other: Table) {
        if self.columns.is_empty() {
            self.columns = other.columns;
        }
        self.rows.extend(other.rows);
    }

    fn render(&self, opts: TableOptions, now: Timestamp) -> String {
        if self.rows.is_empty() {
            return String::new();
        }
        let shown = |c: &TableColumnDefinition| opts.wide || c.priority == 0;
        let mut text = String::new();
        if !opts.no_headers {
            let mut headers: Vec<String> = Vec::new();
            if opts.with_namespace {
                headers.push("NAMESPACE".into());
            }
            headers.extend(
                self.columns
                    .iter()
                    .filter(|c| shown(c))
                    .map(|c| c.name.to_uppercase()),
            );
            text.push_str(&headers.join("\t"));
            text.push('\n');
        }
        for row in &self.rows {
            let mut cells: Vec<String> = Vec::new();
            if opts.with_namespace {
                let ns = row
                    .object
                    .as_ref()
                    .and_then(|o| o.pointer("/metadata/namespace"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                cells.push(ns.to_string());
            }
            for (cell, column) in row.cells.iter().zip(&self.columns) {
                if shown(column) {
                    cells.push(format_cell(cell, column, now));
                }
            }
            text.push_str(&cells.join("\t"));
            text.push('\n');
        }
        TabWriter::KUBECTL_TABLE.format(&text)
    }
}

/// One cell as kubectl prints it: strings cut at the first line break (with `...`),
/// escape characters made visible, `null` as nothing, and timestamps of `date`
/// columns as ages.
fn format_cell(cell: &Value, column: &TableColumnDefinition, now: Timestamp) -> String {
    let text = match cell {
        Value::Null => return String::new(),
        Value::String(s) => {
            if column.type_ == "date"
                && let Ok(t) = s.parse::<Timestamp>()
            {
                return short_age(seconds_since(t, now));
            }
            match s.find(['\n', '\r', '\u{c}']) {
                Some(i) => format!("{}...", &s[..i]),
                None => s.clone(),
            }
        }
        other => other.to_string(),
    };
    text.replace('\u{1b}', "^[").replace('\t', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2026-01-01T01:00:00Z".parse().unwrap()
    }

    fn istag_table() -> Table {
        Table::from_value(json!({
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": "7"},
            "columnDefinitions": [
                {"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0},
                {"name": "Image Reference", "type": "string", "format": "", "description": "", "priority": 0},
                {"name": "Updated", "type": "string", "format": "", "description": "", "priority": 0},
                {"name": "Image Name", "type": "string", "format": "", "description": "", "priority": 1}
            ],
            "rows": [
                {"cells": ["keycloak:20.0", "quay.io/keycloak/keycloak@sha256:aa", "2 minutes ago", "sha256:aa"],
                 "object": {"kind": "PartialObjectMetadata", "metadata": {"name": "keycloak:20.0", "namespace": "default"}}},
                {"cells": ["keycloak:latest", "quay.io/keycloak/keycloak@sha256:bb", "About an hour ago", "sha256:bb"],
                 "object": {"kind": "PartialObjectMetadata", "metadata": {"name": "keycloak:latest", "namespace": "team-a"}}}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn default_columns_are_aligned_with_three_spaces() {
        let out = istag_table().render(TableOptions::default(), now());
        assert_eq!(
            out,
            "NAME              IMAGE REFERENCE                       UPDATED\n\
             keycloak:20.0     quay.io/keycloak/keycloak@sha256:aa   2 minutes ago\n\
             keycloak:latest   quay.io/keycloak/keycloak@sha256:bb   About an hour ago\n"
        );
    }

    #[test]
    fn wide_shows_every_priority() {
        let out = istag_table().render(
            TableOptions {
                wide: true,
                ..Default::default()
            },
            now(),
        );
        let header = out.lines().next().unwrap();
        assert_eq!(
            header,
            "NAME              IMAGE REFERENCE                       UPDATED             IMAGE NAME"
        );
        assert!(
            out.lines()
                .nth(1)
                .unwrap()
                .ends_with("2 minutes ago       sha256:aa")
        );
    }

    #[test]
    fn all_namespaces_adds_a_namespace_column() {
        let out = istag_table().render(
            TableOptions {
                with_namespace: true,
                no_headers: true,
                ..Default::default()
            },
            now(),
        );
        assert_eq!(
            out,
            "default   keycloak:20.0     quay.io/keycloak/keycloak@sha256:aa   2 minutes ago\n\
             team-a    keycloak:latest   quay.io/keycloak/keycloak@sha256:bb   About an hour ago\n"
        );
    }

    #[test]
    fn date_columns_print_as_ages() {
        let table = Table::from_value(json!({
            "kind": "Table",
            "columnDefinitions": [
                {"name": "Name", "type": "string", "format": "name", "priority": 0},
                {"name": "Status", "type": "string", "priority": 0},
                {"name": "Age", "type": "date", "priority": 0}
            ],
            "rows": [
                {"cells": ["default", "Active", "2026-01-01T00:55:00Z"]},
                {"cells": ["team-a", "Active", "2025-12-28T01:00:00Z"]}
            ]
        }))
        .unwrap();
        assert_eq!(
            table.render(TableOptions::default(), now()),
            "NAME      STATUS   AGE\ndefault   Active   5m\nteam-a    Active   4d\n"
        );
    }

    #[test]
    fn empty_tables_print_nothing() {
        let mut t = istag_table();
        t.rows.clear();
        assert_eq!(t.render(TableOptions::default(), now()), "");
    }

    #[test]
    fn cells_are_cut_at_line_breaks() {
        let c = TableColumnDefinition {
            name: "M".into(),
            type_: "string".into(),
            ..Default::default()
        };
        assert_eq!(format_cell(&json!("first\nsecond"), &c, now()), "first...");
        assert_eq!(format_cell(&json!(3), &c, now()), "3");
        assert_eq!(format_cell(&Value::Null, &c, now()), "");
    }

    #[test]
    fn objects_fall_back_to_name_and_age() {
        let t = Table::from_value(json!({
            "kind": "ImageStreamList",
            "items": [{"metadata": {"name": "a", "creationTimestamp": "2026-01-01T00:00:00Z"}}]
        }))
        .unwrap();
        assert_eq!(
            t.render(TableOptions::default(), now()),
            "NAME   AGE\na      60m\n"
        );
        assert!(matches!(
            Table::from_value(json!({"kind": "Status"})),
            Err(TableError::NotATable { .. })
        ));
    }
}
