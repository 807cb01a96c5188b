use super::*;

const KEYS: MergeKeys = MergeKeys(&[("spec.tags", "name")]);

fn gr() -> GroupResource {
    GroupResource::new("image.openshift.io", "imagestreams")
}

fn run(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, ApiError> {
    let gr = gr();
    let req = ApplyRequest {
        manager,
        force,
        api_version: "image.openshift.io/v1",
        keys: KEYS,
        gr: &gr,
        name: "is",
        now: "2026-01-01T00:00:00Z",
    };
    apply(live, applied, &req).map(|a| a.object)
}

#[test]
fn create_then_remove_a_field_the_manager_dropped() {
    let a1 = json!({"metadata": {"name": "is", "labels": {"a": "1", "b": "2"}},
                    "spec": {"lookupPolicy": {"local": true}, "tags": [{"name": "t1"}, {"name": "t2"}]}});
    let live = run(None, &a1, "kubectl", false).unwrap();
    assert_eq!(live["metadata"]["managedFields"][0]["operation"], "Apply");
    let fv1 = &live["metadata"]["managedFields"][0]["fieldsV1"];
    assert!(fv1["f:spec"]["f:tags"].get("k:{\"name\":\"t1\"}").is_some());
    let a2 = json!({"metadata": {"name": "is", "labels": {"a": "1"}},
                    "spec": {"lookupPolicy": {"local": true}, "tags": [{"name": "t1"}]}});
    let live2 = run(Some(&live), &a2, "kubectl", false).unwrap();
    assert_eq!(live2["metadata"]["labels"], json!({"a": "1"}));
    assert_eq!(live2["spec"]["tags"], json!([{"name": "t1"}]));
}

#[test]
fn reapply_unchanged_changes_nothing() {
    let a1 = json!({"metadata": {"name": "is"}, "spec": {"lookupPolicy": {"local": true}}});
    let live = run(None, &a1, "kubectl", false).unwrap();
    let again = run(Some(&live), &a1, "kubectl", false).unwrap();
    assert_eq!(live, again);
}

#[test]
fn conflicting_managers_need_force() {
    let live = run(
        None,
        &json!({"spec": {"lookupPolicy": {"local": true}}}),
        "a",
        false,
    )
    .unwrap();
    let err = run(
        Some(&live),
        &json!({"spec": {"lookupPolicy": {"local": false}}}),
        "b",
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("conflict with \"a\""), "{err}");
    let forced = run(
        Some(&live),
        &json!({"spec": {"lookupPolicy": {"local": false}}}),
        "b",
        true,
    )
    .unwrap();
    assert_eq!(forced["spec"]["lookupPolicy"]["local"], false);
    let managers: Vec<&str> = forced["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, vec!["b"]);
}

#[test]
fn shared_fields_survive_one_manager_dropping_them() {
    let live = run(
        None,
        &json!({"metadata": {"labels": {"x": "1"}}}),
        "a",
        false,
    )
    .unwrap();
    let live = run(
        Some(&live),
        &json!({"metadata": {"labels": {"x": "1"}}}),
        "b",
        false,
    )
    .unwrap();
    let live = run(Some(&live), &json!({"metadata": {}}), "a", false).unwrap();
    assert_eq!(live["metadata"]["labels"]["x"], "1");
}

#[test]
fn updates_take_ownership_of_changed_fields() {
    let live = run(
        None,
        &json!({"spec": {"lookupPolicy": {"local": true}}}),
        "a",
        false,
    )
    .unwrap();
    let mut new = live.clone();
    new["spec"]["lookupPolicy"]["local"] = json!(false);
    record_update(Some(&live), &mut new, "editor", "v1", KEYS, "t");
    let entries = read_managed(&new);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].manager, "editor");
    // And an apply of the old value by "a" now conflicts with "editor".
    let err = run(
        Some(&new),
        &json!({"spec": {"lookupPolicy": {"local": true}}}),
        "a",
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("editor"));
}

#[test]
fn fields_v1_round_trip() {
    let set = field_set(
        &json!({"metadata": {"labels": {"a": "b"}}, "spec": {"tags": [{"name": "x", "from": {"name": "y"}}]}}),
        KEYS,
    );
    assert_eq!(from_fields_v1(&to_fields_v1(&set)), set);
}
