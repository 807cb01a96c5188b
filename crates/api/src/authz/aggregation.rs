//! ClusterRole aggregation, as kube's `clusterroleaggregation` controller does it: a
//! ClusterRole with an `aggregationRule` gets, in place of its own rules, the rules of
//! every other ClusterRole whose labels match any of its selectors (roles taken in
//! name order, duplicate rules dropped). A pure function the server calls whenever a
//! ClusterRole changes; it repeats until nothing changes, so aggregated roles that
//! select other aggregated roles (`admin` selects `edit`, which selects `view`)
//! settle in one call where kube's controller needs several passes.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube_core::{Selector, SelectorExt};

/// A ClusterRole whose selectors cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum AggregationError {
    /// A `clusterRoleSelectors` entry is not a valid label selector.
    #[error("clusterrole {role:?}: invalid aggregation selector")]
    InvalidSelector {
        /// The aggregated role.
        role: String,
        /// Why.
        #[source]
        source: kube_core::ParseExpressionError,
    },
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

fn name(r: &ClusterRole) -> &str {
    r.metadata.name.as_deref().unwrap_or_default()
}

fn selectors(role: &ClusterRole) -> Option<Result<Vec<Selector>, AggregationError>> {
    let rule = role.aggregation_rule.as_ref()?;
    Some(
        rule.cluster_role_selectors
            .iter()
            .flatten()
            .map(|s| {
                Selector::try_from(s.clone()).map_err(|source| AggregationError::InvalidSelector {
                    role: name(role).to_owned(),
                    source,
                })
            })
            .collect(),
    )
}

/// Set the rules of every aggregated ClusterRole in `roles` from the roles its
/// selectors match. Returns the names of the roles whose rules changed, and the
/// errors of roles whose selectors are invalid (those keep their rules).
pub fn aggregate_cluster_roles(roles: &mut [ClusterRole]) -> (Vec<String>, Vec<AggregationError>) {
    let mut errors = Vec::new();
    // (position, selectors) of each aggregated role.
    let mut aggregated = Vec::new();
    for (i, r) in roles.iter().enumerate() {
        match selectors(r) {
            None => {}
            Some(Ok(s)) => aggregated.push((i, s)),
            Some(Err(e)) => errors.push(e),
        }
    }
    let mut order: Vec<usize> = (0..roles.len()).collect();
    order.sort_by(|a, b| name(&roles[*a]).cmp(name(&roles[*b])));

    let mut changed = BTreeMap::new();
    // Each pass propagates rules at least one aggregation level further, so as many
    // passes as roles settle any chain. Selectors that select each other in a cycle
    // of three or more may never settle (kube's controller would loop on them too):
    // the passes are bounded, so this returns with some consistent-looking rules.
    for _ in 0..=roles.len() {
        let mut any = false;
        for (i, sels) in &aggregated {
            let own = name(&roles[*i]).to_owned();
            let mut rules: Vec<PolicyRule> = Vec::new();
            for sel in sels {
                for j in &order {
                    let other = &roles[*j];
                    if name(other) == own {
                        continue;
                    }
                    if !sel.matches(other.metadata.labels.as_ref().unwrap_or(&NO_LABELS)) {
                        continue;
                    }
                    for rule in other.rules.iter().flatten() {
                        if !rules.contains(rule) {
                            rules.push(rule.clone());
                        }
                    }
                }
            }
            let current = roles[*i].rules.as_deref().unwrap_or_default();
            if current != rules.as_slice() {
                roles[*i].rules = Some(rules);
                changed.insert(own, ());
                any = true;
            }
        }
        if !any {
            break;
        }
    }
    (changed.into_keys().collect(), errors)
}
