//! Property tests (the stand-in for `cargo fuzz`, which needs a nightly toolchain) of
//! the patch appliers and selector parsers: arbitrary documents and patches never
//! panic, never leave a value nested past [`MAX_DEPTH`], and keep their contracts.
//! `PROPTEST_CASES` sets how many inputs run (256 by default); docs/security.md
//! records longer runs.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::apply::{ApplyRequest, apply, record_update};
use super::limits::{MAX_DEPTH, too_deep};
use super::patch::{MergeKeys, json_patch, merge_patch, strategic_merge_patch};
use super::resource::GroupResource;
use super::selectors::{FieldSelector, LabelSelector};

const KEYS: MergeKeys = MergeKeys(&[("spec.tags", "name"), ("status.tags", "tag")]);

/// Small JSON values, with keys from a small set so that patches meet documents.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z$/]{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("spec".to_string()),
        Just("tags".to_string()),
        Just("name".to_string()),
        Just("metadata".to_string()),
        Just("finalizers".to_string()),
        Just("status".to_string()),
        Just("$patch".to_string()),
        Just("$retainKeys".to_string()),
        Just("$setElementOrder/tags".to_string()),
        Just("$deleteFromPrimitiveList/tags".to_string()),
        "[a-c]{1,2}",
    ]
}

/// JSON pointers into the documents [`json_value`] makes.
fn pointer() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![key(), "[0-3-]"], 0..5)
        .prop_map(|parts| parts.iter().map(|p| format!("/{p}")).collect())
}

fn json_patch_op() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just("add"),
            Just("remove"),
            Just("replace"),
            Just("move"),
            Just("copy"),
            Just("test"),
            Just("bogus"),
        ],
        pointer(),
        pointer(),
        json_value(),
    )
        .prop_map(
            |(op, path, from, value)| json!({"op": op, "path": path, "from": from, "value": value}),
        )
}

/// Image-stream-like objects from a small vocabulary, so that successive versions
/// share, change and drop labels, finalizers and keyed tags.
fn stream_like() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(json!(1)),
        Just(json!("x")),
        Just(json!({})),
        Just(json!([1])),
        Just(json!({"c": 2})),
    ];
    let tag = (
        "[a-c]",
        prop::option::of(scalar.clone()),
        prop::option::of(scalar.clone()),
    )
        .prop_map(|(name, a, b)| {
            let mut t = json!({ "name": name });
            if let Some(a) = a {
                t["a"] = a;
            }
            if let Some(b) = b {
                t["from"] = json!({ "b": b });
            }
            t
        });
    (
        prop::collection::btree_map("[a-c]", "[x-y]", 0..3),
        prop::collection::vec("[f-g]", 0..3),
        prop::collection::vec(tag, 0..4),
        prop::option::of(scalar),
        prop::option::of(json_value()),
    )
        .prop_map(|(labels, finalizers, tags, x, extra)| {
            let mut o = json!({
                "metadata": {"name": "s", "labels": labels, "finalizers": finalizers},
                "spec": {"tags": tags},
            });
            if let Some(x) = x {
                o["spec"]["x"] = x;
            }
            if let Some(e) = extra {
                o["status"] = e.clone();
                o["spec"]["extra"] = e;
            }
            o
        })
}

proptest! {
    #[test]
    fn managed_fields_edited_in_place_are_those_of_the_field_sets(
        steps in prop::collection::vec(
            (stream_like(), 0usize..3, any::<bool>(), any::<bool>()),
            1..6,
        ),
    ) {
        let gr = GroupResource::new("image.openshift.io", "imagestreams");
        let mut live: Option<Value> = None;
        for (version, manager, keep_managed, by_apply) in steps {
            let manager = ["m0", "m1", "m2"][manager];
            if by_apply {
                let req = ApplyRequest {
                    manager,
                    force: true,
                    api_version: "v1",
                    keys: KEYS,
                    gr: &gr,
                    name: "s",
                    now: "2026-01-01T00:00:00Z",
                };
                if let Ok(out) = apply(live.as_ref(), &version, &req) {
                    live = Some(out.object);
                }
                continue;
            }
            let mut new = version;
            // A patch keeps the managed fields it read; a replace may send none.
            if keep_managed
                && let Some(m) = live.as_ref().and_then(|l| l.pointer("/metadata/managedFields"))
            {
                new["metadata"]["managedFields"] = m.clone();
            }
            let (in_place, by_sets) =
                super::apply::record_update_both_ways(live.as_ref(), &new, manager, KEYS);
            // Trees this code wrote are canonical, so the in-place way always applies,
            let in_place = in_place.ok_or_else(|| TestCaseError::fail("in place refused"))?;
            // and writes the same JSON, key order included.
            prop_assert_eq!(
                serde_json::to_string(&in_place).unwrap(),
                serde_json::to_string(&by_sets).unwrap()
            );
            live = Some(in_place);
        }
    }

    #[test]
    fn merge_patch_never_panics_and_stays_shallow(doc in json_value(), patch in json_value()) {
        let mut d = doc;
        if merge_patch(&mut d, &patch).is_ok() {
            prop_assert!(!too_deep(&d));
        }
    }

    #[test]
    fn strategic_merge_patch_never_panics_and_stays_shallow(doc in json_value(), patch in json_value()) {
        let mut d = doc;
        if strategic_merge_patch(&mut d, &patch, KEYS).is_ok() {
            prop_assert!(!too_deep(&d));
        }
    }

    #[test]
    fn json_patch_never_panics_or_nests_past_the_bound(
        doc in json_value(),
        ops in prop::collection::vec(json_patch_op(), 0..40),
    ) {
        let mut d = doc;
        if json_patch(&mut d, &Value::Array(ops)).is_ok() {
            prop_assert!(!too_deep(&d), "nested past {}", MAX_DEPTH);
        }
    }

    #[test]
    fn self_copies_are_refused_before_they_nest_past_the_bound(n in 1usize..300) {
        let mut d = json!({"spec": {"a": 1}});
        let ops: Vec<Value> = (0..n)
            .map(|_| json!({"op": "copy", "from": "/spec", "path": "/spec/c"}))
            .collect();
        let ok = json_patch(&mut d, &Value::Array(ops)).is_ok();
        prop_assert_eq!(ok, n + 2 <= MAX_DEPTH);
        prop_assert!(!too_deep(&d));
    }

    #[test]
    fn server_side_apply_never_panics(live in json_value(), applied in json_value(), force in any::<bool>()) {
        let gr = GroupResource::new("image.openshift.io", "imagestreams");
        let req = ApplyRequest {
            manager: "m",
            force,
            api_version: "image.openshift.io/v1",
            keys: KEYS,
            gr: &gr,
            name: "x",
            now: "2026-01-01T00:00:00Z",
        };
        let live = live.is_object().then_some(live);
        if let Ok(out) = apply(live.as_ref(), &applied, &req) {
            // Re-applying what was just applied changes nothing.
            let again = apply(Some(&out.object), &applied, &req)
                .map_err(|e| TestCaseError::fail(format!("re-apply failed: {e}")))?;
            prop_assert_eq!(again.object, out.object);
        }
    }

    #[test]
    fn changed_fields_found_by_one_diff_walk_are_those_of_every_path(old in json_value(), new in json_value(), same in any::<bool>()) {
        let old = if same { new.clone() } else { old };
        let (by_diff, by_maps) = super::apply::changed_both_ways(Some(&old), &new, KEYS);
        prop_assert_eq!(by_diff, by_maps);
        let (by_diff, by_maps) = super::apply::changed_both_ways(None, &new, KEYS);
        prop_assert_eq!(by_diff, by_maps);
    }

    #[test]
    fn update_bookkeeping_never_panics(old in json_value(), new in json_value()) {
        let mut n = new;
        record_update(Some(&old), &mut n, "m", "v1", KEYS, "2026-01-01T00:00:00Z");
    }

    #[test]
    fn selectors_parse_or_refuse_without_panic(s in any::<String>(), t in "[a-z0-9=!,() .-]{0,40}") {
        for text in [&s, &t] {
            if let Ok(sel) = LabelSelector::parse(text) {
                let _ = sel.matches_object(&json!({"metadata": {"labels": {"a": "b"}}}));
            }
            if let Ok(sel) = FieldSelector::parse(text, &["metadata.name", "spec.x"]) {
                let _ = sel.pinned_name();
            }
        }
    }
}
