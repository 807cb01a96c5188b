//! kubectl's `-o jsonpath=TEMPLATE`: literal text mixed with `{EXPR}` actions,
//! `{"\n"}` string literals and `{range EXPR}...{end}` loops. The expressions are
//! kubectl's JSONPath dialect (`.items[*].metadata.name`, `..name`, `\.` in field
//! names), rewritten to RFC 9535 and evaluated by `jsonpath-rust`. Pure functions.

use jsonpath_rust::JsonPath;
use serde_json::Value;

/// Errors in a template or its expressions.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    /// A `{` without its `}`.
    #[error("unclosed action in template {0:?}")]
    Unclosed(String),
    /// An `{end}` without its `{range}`, or a `{range}` without its `{end}`.
    #[error("{0}")]
    Range(String),
    /// An empty `{}`.
    #[error("empty action in template {0:?}")]
    Empty(String),
    /// A string literal that does not parse.
    #[error("bad string literal {0}")]
    Literal(String),
    /// An expression the JSONPath engine refused.
    #[error("error parsing jsonpath {expr:?}: {message}")]
    Expression {
        /// The expression as written.
        expr: String,
        /// Why it was refused.
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Text(String),
    /// An expression, already rewritten to RFC 9535 (`$...`).
    Expr {
        source: String,
        path: String,
    },
    Range {
        path: String,
        source: String,
        body: Vec<Node>,
    },
}

/// Nodes being collected, with the `(path, source)` of the `{range}` they belong to.
type Frame = (Vec<Node>, Option<(String, String)>);

/// A parsed template, ready to print objects.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    nodes: Vec<Node>,
}

impl Template {
    /// Parses a kubectl JSONPath template such as `{.items[*].metadata.name}`.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut stack: Vec<Frame> = vec![(Vec::new(), None)];
        let mut rest = source;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                push(&mut stack, Node::Text(rest.to_string()));
                break;
            };
            if open > 0 {
                push(&mut stack, Node::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close =
                find_close(after).ok_or_else(|| TemplateError::Unclosed(source.to_string()))?;
            let action = after[..close].trim();
            rest = &after[close + 1..];
            if action.is_empty() {
                return Err(TemplateError::Empty(source.to_string()));
            }
            if action == "end" {
                let (body, range) = stack
                    .pop()
                    .ok_or_else(|| TemplateError::Range("unexpected {end}".into()))?;
                let Some((path, source)) = range else {
                    return Err(TemplateError::Range("{end} without a {range}".into()));
                };
                push(&mut stack, Node::Range { path, source, body });
            } else if let Some(expr) = action.strip_prefix("range ") {
                let expr = expr.trim();
                stack.push((Vec::new(), Some((to_rfc9535(expr)?, expr.to_string()))));
            } else if action.starts_with('"') {
                push(&mut stack, Node::Text(unquote(action)?));
            } else {
                push(
                    &mut stack,
                    Node::Expr {
                        source: action.to_string(),
                        path: to_rfc9535(action)?,
                    },
                );
            }
        }
        if stack.len() != 1 {
            return Err(TemplateError::Range("{range} without an {end}".into()));
        }
        let nodes = stack.pop().map(|(n, _)| n).unwrap_or_default();
        Ok(Template { nodes })
    }

    /// Renders the template against `data`; missing fields print nothing, as kubectl
    /// does with `--allow-missing-template-keys` (its default).
    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        render_nodes(&self.nodes, data, &mut out)?;
        Ok(out)
    }
}

impl Template {
    /// The values the template's first expression selects in `data` (for
    /// `--sort-by`); empty when it has no expression or selects nothing.
    pub fn values(&self, data: &Value) -> Result<Vec<Value>, TemplateError> {
        for node in &self.nodes {
            if let Node::Expr { source, path } = node {
                return Ok(query(data, path, source)?.into_iter().cloned().collect());
            }
        }
        Ok(Vec::new())
    }
}

fn push(stack: &mut [Frame], node: Node) {
    if let Some((nodes, _)) = stack.last_mut() {
        nodes.push(node);
    }
}

fn render_nodes(nodes: &[Node], data: &Value, out: &mut String) -> Result<(), TemplateError> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Expr { source, path } => {
                let values = query(data, path, source)?;
                let printed: Vec<String> = values.into_iter().map(print_value).collect();
                out.push_str(&printed.join(" "));
            }
            Node::Range { path, source, body } => {
                for item in query(data, path, source)? {
                    render_nodes(body, item, out)?;
                }
            }
        }
    }
    Ok(())
}

fn query<'a>(data: &'a Value, path: &str, source: &str) -> Result<Vec<&'a Value>, TemplateError> {
    data.query(path).map_err(|e| TemplateError::Expression {
        expr: source.to_string(),
        message: e.to_string(),
    })
}

/// Strings print bare; everything else prints as compact JSON.
fn print_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Index of the `}` that closes an action, skipping quoted strings and brackets.
fn find_close(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '}' if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// A Go-style double-quoted literal: `"\n"`, `"\t"`, `"a\"b"`.
fn unquote(lit: &str) -> Result<String, TemplateError> {
    let bad = || TemplateError::Literal(lit.to_string());
    let inner = lit
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or_else(bad)?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next().ok_or_else(bad)? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            '\'' => out.push('\''),
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// Rewrites kubectl's JSONPath (`.a.b[*]`, `@.x`, `..name`, `a\.b`) to RFC 9535
/// (`$.a.b[*]`, `$.x`, `$..name`, `$['a.b']`).
fn to_rfc9535(expr: &str) -> Result<String, TemplateError> {
    let mut rest = expr.trim();
    for root in ["$", "@"] {
        if let Some(r) = rest.strip_prefix(root) {
            rest = r;
        }
    }
    let mut out = String::from("$");
    let chars: Vec<char> = rest.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let recursive = chars.get(i) == Some(&'.');
                if recursive {
                    i += 1;
                }
                let name = read_name(&chars, &mut i);
                let dots = if recursive { ".." } else { "." };
                if name.is_empty() {
                    if recursive {
                        out.push_str(dots);
                    }
                } else if name == "*" || is_shorthand(&name) {
                    out.push_str(dots);
                    out.push_str(&name);
                } else {
                    if recursive {
                        out.push_str(dots);
                    }
                    push_bracketed(&mut out, &name);
                }
            }
            '[' => {
                let start = i;
                let mut depth = 0usize;
                let mut quote: Option<char> = None;
                while i < chars.len() {
                    let c = chars[i];
                    i += 1;
                    if let Some(q) = quote {
                        if c == q {
                            quote = None;
                        }
                        continue;
                    }
                    match c {
                        '"' | '\'' => quote = Some(c),
                        '[' => depth += 1,
                        ']' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let bracket: String = chars[start..i].iter().collect();
                out.push_str(&bracket);
            }
            _ => {
                // A bare first field, e.g. `metadata.name`.
                let name = read_name(&chars, &mut i);
                if is_shorthand(&name) {
                    out.push('.');
                    out.push_str(&name);
                } else {
                    push_bracketed(&mut out, &name);
                }
            }
        }
    }
    Ok(out)
}

/// Reads a field name up to the next unescaped `.` or `[`; `\\.` is a literal dot.
fn read_name(chars: &[char], i: &mut usize) -> String {
    let mut name = String::new();
    while *i < chars.len() && chars[*i] != '.' && chars[*i] != '[' {
        if chars[*i] == '\\' && *i + 1 < chars.len() {
            *i += 1;
        }
        name.push(chars[*i]);
        *i += 1;
    }
    name
}

/// Appends `['name']`, escaped for RFC 9535.
fn push_bracketed(out: &mut String, name: &str) {
    out.push_str("['");
    out.push_str(&name.replace('\\', "\\\\").replace('\'', "\\'"));
    out.push_str("']");
}

/// Whether `name` may follow a `.` in RFC 9535 (member-name-shorthand).
fn is_shorthand(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || !c.is_ascii())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || !c.is_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> Value {
        json!({
            "kind": "List",
            "apiVersion": "v1",
            "items": [
                {"metadata": {"name": "keycloak", "annotations": {"openshift.io/image.dockerRepositoryCheck": "t"}},
                 "status": {"tags": [{"tag": "20.0"}, {"tag": "latest"}]}},
                {"metadata": {"name": "nginx"}, "status": {}}
            ]
        })
    }

    fn render(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().render(v).unwrap()
    }

    #[test]
    fn rewrites_kubectl_paths() {
        assert_eq!(to_rfc9535(".metadata.name").unwrap(), "$.metadata.name");
        assert_eq!(
            to_rfc9535(".items[*].metadata.name").unwrap(),
            "$.items[*].metadata.name"
        );
        assert_eq!(to_rfc9535("$.a").unwrap(), "$.a");
        assert_eq!(to_rfc9535("@.a").unwrap(), "$.a");
        assert_eq!(to_rfc9535("..name").unwrap(), "$..name");
        assert_eq!(to_rfc9535("metadata.name").unwrap(), "$.metadata.name");
        assert_eq!(
            to_rfc9535(".metadata.annotations.openshift\\.io/image").unwrap(),
            "$.metadata.annotations['openshift.io/image']"
        );
        assert_eq!(to_rfc9535(".").unwrap(), "$");
        assert_eq!(to_rfc9535(".a-b").unwrap(), "$['a-b']");
    }

    #[test]
    fn single_fields_and_lists() {
        let v = list();
        assert_eq!(render("{.items[0].metadata.name}", &v), "keycloak");
        assert_eq!(render("{.items[*].metadata.name}", &v), "keycloak nginx");
        assert_eq!(
            render("names: {.items[*].metadata.name}!", &v),
            "names: keycloak nginx!"
        );
        assert_eq!(render("{.kind}{\"\\n\"}", &v), "List\n");
        assert_eq!(render("{.items[1].status}", &v), "{}");
        assert_eq!(render("{.nothing.here}", &v), "");
        assert_eq!(
            render(
                "{.items[0].metadata.annotations.openshift\\.io/image\\.dockerRepositoryCheck}",
                &v
            ),
            "t"
        );
    }

    #[test]
    fn ranges() {
        let v = list();
        assert_eq!(
            render(
                "{range .items[*]}{.metadata.name}{\"\\t\"}{.status.tags[*].tag}{\"\\n\"}{end}",
                &v
            ),
            "keycloak\t20.0 latest\nnginx\t\n"
        );
        assert_eq!(
            render(
                "{range .items[*]}[{range .status.tags[*]}{.tag},{end}]{end}",
                &v
            ),
            "[20.0,latest,][]"
        );
    }

    #[test]
    fn errors() {
        assert!(matches!(
            Template::parse("{.a"),
            Err(TemplateError::Unclosed(_))
        ));
        assert!(matches!(
            Template::parse("{end}"),
            Err(TemplateError::Range(_))
        ));
        assert!(matches!(
            Template::parse("{range .a}x"),
            Err(TemplateError::Range(_))
        ));
        assert!(matches!(
            Template::parse("{}"),
            Err(TemplateError::Empty(_))
        ));
        assert!(matches!(
            Template::parse("{\"\\q\"}"),
            Err(TemplateError::Literal(_))
        ));
    }

    #[test]
    fn filters() {
        let v = list();
        assert_eq!(
            render("{.items[?(@.metadata.name=='nginx')].metadata.name}", &v),
            "nginx"
        );
    }
}
