//! Label and field selectors as the `labelSelector` and `fieldSelector` query
//! parameters spell them. Matching uses kube-core's `Expression`; kube-core builds
//! selectors but does not parse their string form, so the small parser is ours.

use std::collections::{BTreeMap, BTreeSet};

use kube_core::{Expression, SelectorExt};
use serde_json::Value;

/// A parsed `labelSelector`; empty selects everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector(Vec<Expression>);

/// A parse failure, worded for a 400 answer.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(pub String);

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (f,g),h notin (i),j,!k`.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut exprs = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            exprs.push(parse_requirement(part)?);
        }
        Ok(LabelSelector(exprs))
    }

    /// Whether it selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|e| e.matches(labels))
    }

    /// Whether the object's `metadata.labels` satisfy it.
    pub fn matches_object(&self, obj: &Value) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let labels: BTreeMap<String, String> = obj
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        self.matches(&labels)
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn parse_requirement(part: &str) -> Result<Expression, SelectorError> {
    let err = || SelectorError(part.to_string());
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        return if valid_key(key) {
            Ok(Expression::DoesNotExist(key.into()))
        } else {
            Err(err())
        };
    }
    for (op, neg) in [(" notin ", true), (" in ", false)] {
        if let Some(idx) = part.find(op) {
            let key = part[..idx].trim();
            let rest = part[idx + op.len()..].trim();
            let inner = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(err)?;
            let values: BTreeSet<String> = inner
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect();
            if !valid_key(key) || !values.iter().all(|v| valid_value(v)) {
                return Err(err());
            }
            return Ok(if neg {
                Expression::NotIn(key.into(), values)
            } else {
                Expression::In(key.into(), values)
            });
        }
    }
    for (op, neg) in [("!=", true), ("==", false), ("=", false)] {
        if let Some(idx) = part.find(op) {
            let key = part[..idx].trim();
            let value = part[idx + op.len()..].trim();
            if !valid_key(key) || !valid_value(value) {
                return Err(err());
            }
            return Ok(if neg {
                Expression::NotEqual(key.into(), value.into())
            } else {
                Expression::Equal(key.into(), value.into())
            });
        }
    }
    if valid_key(part) {
        Ok(Expression::Exists(part.into()))
    } else {
        Err(err())
    }
}

/// One `fieldSelector` term: `path=value` or `path!=value`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldRequirement {
    pub field: String,
    pub value: String,
    pub negated: bool,
}

/// A parsed `fieldSelector`; empty selects everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSelector(pub Vec<FieldRequirement>);

impl FieldSelector {
    /// Parses `metadata.name=x,involvedObject.kind!=Pod`, refusing fields not in `allowed`
    /// (beyond `metadata.name` and `metadata.namespace`), as kube-apiserver does.
    pub fn parse(s: &str, allowed: &[&str]) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, value, negated) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, false)
            } else {
                return Err(SelectorError(part.to_string()));
            };
            let field = field.trim();
            if !(field == "metadata.name"
                || field == "metadata.namespace"
                || allowed.contains(&field))
            {
                return Err(SelectorError(format!("field label not supported: {field}")));
            }
            reqs.push(FieldRequirement {
                field: field.into(),
                value: value.trim().into(),
                negated,
            });
        }
        Ok(FieldSelector(reqs))
    }

    /// The value of `metadata.name=...` when the selector pins one name.
    pub fn pinned_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|r| r.field == "metadata.name" && !r.negated)
            .map(|r| r.value.as_str())
    }

    /// Whether the object satisfies every term; a missing field reads as "".
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.0.iter().all(|r| {
            let mut cur = Some(obj);
            for seg in r.field.split('.') {
                cur = cur.and_then(|c| c.get(seg));
            }
            let actual = match cur {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == r.value) != r.negated
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selector_forms() {
        let s = LabelSelector::parse("app=web,tier!=db,env in (a, b),!legacy,team").unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("env", "a"), ("team", "x")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "c"), ("team", "x")])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("env", "a"),
            ("team", "x"),
            ("legacy", "")
        ])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "a")])));
        let s = LabelSelector::parse("x notin (1,2)").unwrap();
        assert!(s.matches(&labels(&[])));
        assert!(!s.matches(&labels(&[("x", "1")])));
        assert!(LabelSelector::parse("").unwrap().matches(&labels(&[])));
    }

    #[test]
    fn label_selector_errors() {
        assert!(LabelSelector::parse("a in b").is_err());
        assert!(LabelSelector::parse("a=b c").is_err());
        assert!(LabelSelector::parse("=x").is_err());
    }

    #[test]
    fn field_selector_matches_nested_fields() {
        let allowed = ["involvedObject.name", "involvedObject.kind"];
        let s = FieldSelector::parse(
            "involvedObject.name=keycloak,involvedObject.kind!=Pod",
            &allowed,
        )
        .unwrap();
        let ev = json!({"involvedObject": {"name": "keycloak", "kind": "ImageStream"}});
        assert!(s.matches_object(&ev));
        assert!(FieldSelector::parse("spec.foo=x", &allowed).is_err());
        let s = FieldSelector::parse("metadata.name=a", &[]).unwrap();
        assert_eq!(s.pinned_name(), Some("a"));
    }
}
