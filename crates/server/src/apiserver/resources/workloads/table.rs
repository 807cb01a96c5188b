//! The Table columns of each workload kind, as kubectl prints them.

use std::sync::Arc;

use moor_api::lookup::WorkloadKind;
use serde_json::{Value, json};

use moor_apimachinery::table::{Column, TableDef, age_column, age_of, name_column, name_of};

fn col(name: &'static str, kind: &'static str, description: &'static str, priority: u8) -> Column {
    Column {
        name,
        kind,
        format: "",
        description,
        priority,
    }
}

fn int_at(o: &Value, ptr: &str) -> i64 {
    o.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn pod_spec_value(o: &Value, kind: WorkloadKind) -> Option<&Value> {
    o.pointer(kind.pod_spec_pointer())
}

fn container_cells(o: &Value, kind: WorkloadKind) -> (String, String) {
    let containers = pod_spec_value(o, kind)
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let images: Vec<&str> = containers
        .iter()
        .filter_map(|c| c.get("image").and_then(Value::as_str))
        .collect();
    (names.join(","), images.join(","))
}

fn selector_cell(o: &Value) -> String {
    o.pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

pub(super) fn workload_table(kind: WorkloadKind) -> TableDef {
    let containers = col(
        "Containers",
        "string",
        "Names of each container in the template.",
        1,
    );
    let images = col(
        "Images",
        "string",
        "Images referenced by each container in the template.",
        1,
    );
    let selector = col("Selector", "string", "Label selector for pods.", 1);
    let (columns, row): (Vec<Column>, moor_apimachinery::table::RowFn) = match kind {
        WorkloadKind::Deployment => (
            vec![
                name_column(),
                col("Ready", "string", "Number of the pod with ready state", 0),
                col(
                    "Up-to-date",
                    "integer",
                    "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                    0,
                ),
                col(
                    "Available",
                    "integer",
                    "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                    0,
                ),
                age_column(),
                containers,
                images,
                selector,
            ],
            Arc::new(move |o| {
                let (c, i) = container_cells(o, kind);
                vec![
                    json!(name_of(o)),
                    json!(format!(
                        "{}/{}",
                        int_at(o, "/status/readyReplicas"),
                        o.pointer("/spec/replicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(1)
                    )),
                    json!(int_at(o, "/status/updatedReplicas")),
                    json!(int_at(o, "/status/availableReplicas")),
                    json!(age_of(o)),
                    json!(c),
                    json!(i),
                    json!(selector_cell(o)),
                ]
            }),
        ),
        WorkloadKind::ReplicaSet => (
            vec![
                name_column(),
                col("Desired", "integer", "Number of desired pods.", 0),
                col("Current", "integer", "Number of actual replicas.", 0),
                col(
                    "Ready",
                    "integer",
                    "The number of ready replicas for this replica set.",
                    0,
                ),
                age_column(),
                containers,
                images,
                selector,
            ],
            Arc::new(move |o| {
                let (c, i) = container_cells(o, kind);
                vec![
                    json!(name_of(o)),
                    json!(
                        o.pointer("/spec/replicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(1)
                    ),
                    json!(int_at(o, "/status/replicas")),
                    json!(int_at(o, "/status/readyReplicas")),
                    json!(age_of(o)),
                    json!(c),
                    json!(i),
                    json!(selector_cell(o)),
                ]
            }),
        ),
        WorkloadKind::StatefulSet => (
            vec![
                name_column(),
                col("Ready", "string", "Number of the pod with ready state", 0),
                age_column(),
                containers,
                images,
            ],
            Arc::new(move |o| {
                let (c, i) = container_cells(o, kind);
                vec![
                    json!(name_of(o)),
                    json!(format!(
                        "{}/{}",
                        int_at(o, "/status/readyReplicas"),
                        o.pointer("/spec/replicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(1)
                    )),
                    json!(age_of(o)),
                    json!(c),
                    json!(i),
                ]
            }),
        ),
        WorkloadKind::DaemonSet => (
            vec![
                name_column(),
                col(
                    "Desired",
                    "integer",
                    "The total number of nodes that should be running the daemon pod.",
                    0,
                ),
                col(
                    "Current",
                    "integer",
                    "The number of nodes that are running at least 1 daemon pod.",
                    0,
                ),
                col(
                    "Ready",
                    "integer",
                    "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
                    0,
                ),
                col(
                    "Up-to-date",
                    "integer",
                    "The total number of nodes that are running updated daemon pod",
                    0,
                ),
                col(
                    "Available",
                    "integer",
                    "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.",
                    0,
                ),
                col(
                    "Node Selector",
                    "string",
                    "NodeSelector is a selector which must be true for the pod to fit on a node.",
                    0,
                ),
                age_column(),
                containers,
                images,
                selector,
            ],
            Arc::new(move |o| {
                let (c, i) = container_cells(o, kind);
                let node_selector = o
                    .pointer("/spec/template/spec/nodeSelector")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "<none>".into());
                vec![
                    json!(name_of(o)),
                    json!(int_at(o, "/status/desiredNumberScheduled")),
                    json!(int_at(o, "/status/currentNumberScheduled")),
                    json!(int_at(o, "/status/numberReady")),
                    json!(int_at(o, "/status/updatedNumberScheduled")),
                    json!(int_at(o, "/status/numberAvailable")),
                    json!(node_selector),
                    json!(age_of(o)),
                    json!(c),
                    json!(i),
                    json!(selector_cell(o)),
                ]
            }),
        ),
        WorkloadKind::Job => (
            vec![
                name_column(),
                col(
                    "Completions",
                    "string",
                    "The desired number of successfully finished pods the job should be run with.",
                    0,
                ),
                col(
                    "Duration",
                    "string",
                    "Time required to complete the job.",
                    0,
                ),
                age_column(),
                containers,
                images,
                selector,
            ],
            Arc::new(move |o| {
                let (c, i) = container_cells(o, kind);
                vec![
                    json!(name_of(o)),
                    json!(format!(
                        "{}/{}",
                        int_at(o, "/status/succeeded"),
                        o.pointer("/spec/completions")
                            .and_then(Value::as_i64)
                            .unwrap_or(1)
                    )),
                    json!(""),
                    json!(age_of(o)),
                    json!(c),
                    json!(i),
                    json!(selector_cell(o)),
                ]
            }),
        ),
        WorkloadKind::CronJob => (
            vec![
                name_column(),
                col("Schedule", "string", "The schedule in Cron format.", 0),
                col(
                    "Timezone",
                    "string",
                    "The time zone name for the given schedule.",
                    0,
                ),
                col(
                    "Suspend",
                    "boolean",
                    "Whether subsequent executions are suspended.",
                    0,
                ),
                col("Active", "integer", "The number of active jobs.", 0),
                col(
                    "Last Schedule",
                    "string",
                    "When the job was last scheduled.",
                    0,
                ),
                age_column(),
                containers,
                images,
            ],
            Arc::new(move |o| {
                let (c, i) = container_cells(o, kind);
                vec![
                    json!(name_of(o)),
                    o.pointer("/spec/schedule").cloned().unwrap_or(json!("")),
                    json!(
                        o.pointer("/spec/timeZone")
                            .and_then(Value::as_str)
                            .unwrap_or("<none>")
                    ),
                    json!(
                        o.pointer("/spec/suspend")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                    ),
                    json!(
                        o.pointer("/status/active")
                            .and_then(Value::as_array)
                            .map(|a| a.len())
                            .unwrap_or(0)
                    ),
                    json!("<none>"),
                    json!(age_of(o)),
                    json!(c),
                    json!(i),
                ]
            }),
        ),
        WorkloadKind::Pod => (
            vec![
                name_column(),
                col(
                    "Ready",
                    "string",
                    "The aggregate readiness state of this pod for accepting traffic.",
                    0,
                ),
                col(
                    "Status",
                    "string",
                    "The aggregate status of the containers in this pod.",
                    0,
                ),
                col(
                    "Restarts",
                    "string",
                    "The number of times the containers in this pod have been restarted.",
                    0,
                ),
                age_column(),
                col("IP", "string", "The IP address assigned to the pod", 1),
                col(
                    "Node",
                    "string",
                    "The name of the node this pod is scheduled to",
                    1,
                ),
            ],
            Arc::new(|o| {
                let total = o
                    .pointer("/spec/containers")
                    .and_then(Value::as_array)
                    .map(|a| a.len())
                    .unwrap_or(0);
                vec![
                    json!(name_of(o)),
                    json!(format!("0/{total}")),
                    o.pointer("/status/phase")
                        .cloned()
                        .unwrap_or(json!("Pending")),
                    json!("0"),
                    json!(age_of(o)),
                    json!("<none>"),
                    json!(
                        o.pointer("/spec/nodeName")
                            .and_then(Value::as_str)
                            .unwrap_or("<none>")
                    ),
                ]
            }),
        ),
    };
    TableDef { columns, row }
}
