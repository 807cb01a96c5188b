//! `meta.k8s.io/v1` Tables, the wire shape the server sends for `get` and the CLI prints:
//! column definitions and rows of cells. Defined once here for both sides.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `kind` of a Table.
pub const KIND: &str = "Table";
/// The `apiVersion` of a Table.
pub const API_VERSION: &str = "meta.k8s.io/v1";

/// A `meta.k8s.io/v1` Table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// `Table` ([`KIND`]) when built by [`Table::new`].
    #[serde(default)]
    pub kind: String,
    /// `meta.k8s.io/v1` ([`API_VERSION`]) when built by [`Table::new`].
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    /// The list's resource version and continue token.
    #[serde(default)]
    pub metadata: ListMeta,
    /// The columns, in order.
    #[serde(rename = "columnDefinitions", default)]
    pub columns: Vec<TableColumnDefinition>,
    /// The rows.
    #[serde(default)]
    pub rows: Vec<TableRow>,
}

/// One column of a [`Table`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TableColumnDefinition {
    /// Human-readable name, e.g. `Image Repository`.
    pub name: String,
    /// `string`, `integer`, `date`, ...
    #[serde(rename = "type", default)]
    pub type_: String,
    /// `name` for the name column.
    #[serde(default)]
    pub format: String,
    /// What the column shows.
    #[serde(default)]
    pub description: String,
    /// 0 is shown by default; higher only with `-o wide`.
    #[serde(default)]
    pub priority: i64,
}

/// One row of a [`Table`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TableRow {
    /// One cell per column.
    #[serde(default)]
    pub cells: Vec<Value>,
    /// The object (or its metadata) the row is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<Value>,
}

impl Table {
    /// A Table of these columns and rows, with its `kind` and `apiVersion` set.
    pub fn new(columns: Vec<TableColumnDefinition>, rows: Vec<TableRow>) -> Self {
        Table {
            kind: KIND.to_owned(),
            api_version: API_VERSION.to_owned(),
            metadata: ListMeta::default(),
            columns,
            rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_the_wire_shape() {
        let wire = json!({
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": "5"},
            "columnDefinitions": [
                {"name": "Name", "type": "string", "format": "name", "description": "d", "priority": 0}
            ],
            "rows": [{"cells": ["a"]}, {"cells": ["b"], "object": {"metadata": {"name": "b"}}}]
        });
        let table: Table = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(table.columns[0].type_, "string");
        assert_eq!(serde_json::to_value(&table).unwrap(), wire);
    }
}
