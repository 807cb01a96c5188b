//! Rule matching: kube's `evaluation_helpers.go` and `RuleAllows`.

use super::super::rules::{RuleBuilder, rule_allows};
use super::*;

// ---- rule matching (evaluation_helpers.go) ----

fn allows(rule: &PolicyRule, verb: &str, ra: ResourceAttributes) -> bool {
    rule_allows(&Attributes::resource(user("u"), verb, ra), rule)
}

#[test]
fn verb_star_matches_every_verb_and_others_match_exactly() {
    let star = r(&["*"], &[""], &["pods"]);
    assert!(allows(&star, "deletecollection", res("", "pods")));
    let get = r(&["get"], &[""], &["pods"]);
    assert!(allows(&get, "get", res("", "pods")));
    assert!(!allows(&get, "list", res("", "pods")));
    assert!(!allows(&get, "GET", res("", "pods")));
}

#[test]
fn api_group_star_matches_every_group_and_empty_is_core_only() {
    let any = r(&["get"], &["*"], &["pods"]);
    assert!(allows(&any, "get", res("apps", "pods")));
    let core = r(&["get"], &[""], &["pods"]);
    assert!(allows(&core, "get", res("", "pods")));
    assert!(!allows(&core, "get", res("apps", "pods")));
    let none = RuleBuilder::verbs(&["get"]).resources(&["pods"]).rule();
    assert!(
        !allows(&none, "get", res("", "pods")),
        "a rule without apiGroups matches no group"
    );
}

#[test]
fn resource_without_subresource_does_not_match_subresource_requests() {
    let rule = r(&["get"], &["image.openshift.io"], &["imagestreams"]);
    assert!(allows(
        &rule,
        "get",
        res("image.openshift.io", "imagestreams")
    ));
    assert!(!allows(
        &rule,
        "get",
        res("image.openshift.io", "imagestreams").subresource("layers")
    ));
}

#[test]
fn resource_slash_subresource_matches_only_that_subresource() {
    let rule = r(&["get"], &["image.openshift.io"], &["imagestreams/layers"]);
    assert!(allows(
        &rule,
        "get",
        res("image.openshift.io", "imagestreams").subresource("layers")
    ));
    assert!(!allows(
        &rule,
        "get",
        res("image.openshift.io", "imagestreams")
    ));
    assert!(!allows(
        &rule,
        "get",
        res("image.openshift.io", "imagestreams").subresource("secrets")
    ));
}

#[test]
fn star_slash_subresource_matches_that_subresource_of_any_resource() {
    let rule = r(&["get"], &["*"], &["*/status"]);
    assert!(allows(
        &rule,
        "get",
        res("apps", "deployments").subresource("status")
    ));
    assert!(allows(&rule, "get", res("", "pods").subresource("status")));
    assert!(!allows(&rule, "get", res("", "pods")));
    assert!(!allows(
        &rule,
        "get",
        res("", "pods").subresource("statusx")
    ));
}

#[test]
fn resource_star_matches_resources_and_subresources() {
    let rule = r(&["get"], &[""], &["*"]);
    assert!(allows(&rule, "get", res("", "secrets")));
    assert!(allows(&rule, "get", res("", "pods").subresource("log")));
}

#[test]
fn resource_names_empty_allows_all_names_else_only_listed_names() {
    let any = r(&["get"], &[""], &["secrets"]);
    assert!(allows(&any, "get", res("", "secrets").name("a")));
    let named = RuleBuilder::verbs(&["get", "create", "list"])
        .groups(&[""])
        .resources(&["secrets"])
        .names(&["a"])
        .rule();
    assert!(allows(&named, "get", res("", "secrets").name("a")));
    assert!(!allows(&named, "get", res("", "secrets").name("b")));
}

#[test]
fn resource_names_never_allow_create_or_unfiltered_list_which_carry_no_name() {
    let named = RuleBuilder::verbs(&["create", "list"])
        .groups(&[""])
        .resources(&["secrets"])
        .names(&["a"])
        .rule();
    assert!(!allows(
        &named,
        "create",
        res("", "secrets").namespace("ns")
    ));
    assert!(!allows(&named, "list", res("", "secrets").namespace("ns")));
    // A list with a metadata.name field selector carries the name, as kube's.
    assert!(allows(
        &named,
        "list",
        res("", "secrets").namespace("ns").name("a")
    ));
}

#[test]
fn non_resource_urls_match_exactly_star_or_by_trailing_star_prefix() {
    let rule = RuleBuilder::verbs(&["get"])
        .urls(&["/metrics", "/apis/*", "/healthz*"])
        .rule();
    let nr = |path: &str| rule_allows(&Attributes::non_resource(user("u"), "get", path), &rule);
    assert!(nr("/metrics"));
    assert!(!nr("/metrics/x"));
    assert!(nr("/apis/"));
    assert!(nr("/apis/image.openshift.io/v1"));
    assert!(!nr("/apis"));
    assert!(nr("/healthz"));
    assert!(nr("/healthzfoo"));
    let all = RuleBuilder::verbs(&["get"]).urls(&["*"]).rule();
    assert!(rule_allows(
        &Attributes::non_resource(user("u"), "get", "/anything"),
        &all
    ));
    assert!(!rule_allows(
        &Attributes::non_resource(user("u"), "post", "/anything"),
        &all
    ));
}

#[test]
fn resource_rules_never_match_non_resource_requests_and_vice_versa() {
    let resource = r(&["*"], &["*"], &["*"]);
    assert!(!rule_allows(
        &Attributes::non_resource(user("u"), "get", "/metrics"),
        &resource
    ));
    let url = RuleBuilder::verbs(&["*"]).urls(&["*"]).rule();
    assert!(!allows(&url, "get", res("", "pods")));
}
