//! Whether one `PolicyRule` allows a request, exactly as kube's `RuleAllows` and the
//! matchers of `rbac/v1/evaluation_helpers.go`: `*` for verbs, groups and resources;
//! `resource/subresource` and `*/subresource`; `resourceNames` (empty means all);
//! `nonResourceURLs` with a trailing `*` as a prefix match.

use k8s_openapi::api::rbac::v1::PolicyRule;

use super::ALL;
use super::attributes::{Attributes, Request};

fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or_default()
}

/// A rule's verbs include `verb` or `*`.
pub fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == ALL || v == verb)
}

/// A rule's API groups include `group` or `*`.
pub fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    list(&rule.api_groups)
        .iter()
        .any(|g| g == ALL || g == group)
}

/// A rule's resources include `*`, the combined `resource/subresource` (just
/// `resource` without a subresource), or `*/subresource` when a subresource is asked
/// for (kube's `ResourceMatches`, without building the combined string).
pub fn resource_matches(rule: &PolicyRule, resource: &str, subresource: &str) -> bool {
    list(&rule.resources).iter().any(|r| {
        r == ALL
            || is_combined(r, resource, subresource)
            || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
    })
}

/// A rule without `resourceNames` allows every name; one with them only those names
/// (so never a request without a name, such as create or an unfiltered list).
pub fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    let names = list(&rule.resource_names);
    names.is_empty() || names.iter().any(|n| n == name)
}

/// A rule's non-resource URLs include `*`, `path`, or a `prefix*` that `path` starts
/// with.
pub fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    list(&rule.non_resource_urls).iter().any(|u| {
        u == ALL
            || u == path
            || u.strip_suffix('*')
                .is_some_and(|_| path.starts_with(u.trim_end_matches('*')))
    })
}

/// Whether rule resource `r` is `resource/subresource` (or `resource` when there is
/// no subresource), without building the combined string.
fn is_combined(r: &str, resource: &str, subresource: &str) -> bool {
    match r.strip_prefix(resource) {
        Some(rest) if subresource.is_empty() => rest.is_empty(),
        Some(rest) => rest.strip_prefix('/') == Some(subresource),
        None => false,
    }
}

/// kube's `RuleAllows`.
pub fn rule_allows(attrs: &Attributes, rule: &PolicyRule) -> bool {
    if !verb_matches(rule, &attrs.verb) {
        return false;
    }
    match &attrs.request {
        Request::Resource(r) => {
            api_group_matches(rule, &r.api_group)
                && resource_matches(rule, &r.resource, &r.subresource)
                && resource_name_matches(rule, &r.name)
        }
        Request::NonResource(n) => non_resource_url_matches(rule, &n.path),
    }
}

/// A `PolicyRule` built the way kube's `rbacv1helpers.NewRule(...)` builder reads.
#[derive(Clone, Debug, Default)]
pub struct RuleBuilder(PolicyRule);

impl RuleBuilder {
    /// A rule with these verbs.
    pub fn verbs(verbs: &[&str]) -> Self {
        RuleBuilder(PolicyRule {
            verbs: strings(verbs),
            ..PolicyRule::default()
        })
    }

    /// For these API groups.
    pub fn groups(mut self, groups: &[&str]) -> Self {
        self.0.api_groups = Some(strings(groups));
        self
    }

    /// On these resources.
    pub fn resources(mut self, resources: &[&str]) -> Self {
        self.0.resources = Some(strings(resources));
        self
    }

    /// Only these names.
    pub fn names(mut self, names: &[&str]) -> Self {
        self.0.resource_names = Some(strings(names));
        self
    }

    /// On these non-resource URLs.
    pub fn urls(mut self, urls: &[&str]) -> Self {
        self.0.non_resource_urls = Some(strings(urls));
        self
    }

    /// The rule.
    pub fn rule(self) -> PolicyRule {
        self.0
    }
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| (*s).to_owned()).collect()
}
