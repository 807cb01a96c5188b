//! Bounds on what one request may make the server build: object nesting, the bytes a
//! JSON patch may copy and its operations. Measured without
//! recursion, so a hostile value cannot overflow the stack while it is being judged.
//! Pure functions over JSON.

use serde_json::Value;

/// How deeply an object may nest (objects and arrays, as serde_json counts them).
/// Below serde_json's own limit of 128, so whatever is stored can be read back.
pub const MAX_DEPTH: usize = 100;

/// Kubernetes' bound on the operations of one JSON patch (`maxJSONPatchOperations`).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The bytes the `copy` operations of one JSON patch may add in all, as
/// kube-apiserver's `JSONPatchMaxCopyBytes` (the request body limit, 3 MiB).
pub const MAX_JSON_PATCH_COPY_BYTES: usize = 3 * 1024 * 1024;

/// The values a JSON patch may walk to judge where its `move`s nest what they move;
/// a patch that needs more is refused as too complex.
pub const MAX_JSON_PATCH_WALK: usize = 16 * 1024 * 1024;

/// The shape of a value: how deep it nests and about how many bytes its JSON takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// 0 for a scalar, 1 for an object or array of scalars, and so on.
    pub depth: usize,
    /// The length of its compact JSON, counting each string and key without escapes.
    pub bytes: usize,
    /// The number of values walked.
    pub values: usize,
}

/// Measures `v`, stopping early (with what was seen so far) once `bytes` passes
/// `byte_budget` or `depth` passes `depth_budget`.
pub fn shape(v: &Value, byte_budget: usize, depth_budget: usize) -> Shape {
    let mut out = Shape::default();
    let mut stack: Vec<(&Value, usize)> = vec![(v, 0)];
    while let Some((v, d)) = stack.pop() {
        out.values += 1;
        match v {
            Value::Null => out.bytes += 4,
            Value::Bool(_) => out.bytes += 5,
            Value::Number(n) => out.bytes += n.to_string().len(),
            Value::String(s) => out.bytes += s.len() + 2,
            Value::Array(a) => {
                out.depth = out.depth.max(d + 1);
                out.bytes += 2 + a.len();
                stack.extend(a.iter().map(|c| (c, d + 1)));
            }
            Value::Object(m) => {
                out.depth = out.depth.max(d + 1);
                out.bytes += 2 + m.len();
                for (k, c) in m {
                    out.bytes += k.len() + 3;
                    stack.push((c, d + 1));
                }
            }
        }
        if out.bytes > byte_budget || out.depth > depth_budget {
            break;
        }
    }
    out
}

/// Whether `v` nests deeper than [`MAX_DEPTH`].
pub fn too_deep(v: &Value) -> bool {
    shape(v, usize::MAX, MAX_DEPTH).depth > MAX_DEPTH
}

/// The deepest nesting of `[`/`{` (JSON, YAML flow style) or indentation levels
/// (YAML block style) in a request body, found by one pass over its bytes, so that a
/// body nested beyond [`MAX_DEPTH`] is refused before a parser spends time on it.
/// Over-counts rather than under-counts: brackets inside quoted scalars are skipped,
/// every other one counts.
pub fn text_depth(body: &[u8]) -> usize {
    let mut depth = 0usize;
    let mut max = 0usize;
    let mut in_double = false;
    let mut in_single = false;
    let mut escaped = false;
    // Block style: the indentations of the open levels, innermost last.
    let mut indents: Vec<usize> = Vec::new();
    let mut at_line_start = true;
    let mut indent = 0usize;
    // Block sequences opened on this line before its first other character (`- - x`).
    let mut dashes: Option<usize> = None;
    for &b in body {
        if at_line_start {
            match b {
                b' ' => {
                    indent += 1;
                    continue;
                }
                b'\n' | b'\r' => {
                    indent = 0;
                    continue;
                }
                b'#' => {}
                _ => {
                    while indents.last().is_some_and(|&i| i > indent) {
                        indents.pop();
                    }
                    if indents.last() != Some(&indent) {
                        indents.push(indent);
                    }
                    max = max.max(indents.len() + depth);
                }
            }
            at_line_start = false;
            dashes = Some(0);
        }
        if let Some(n) = dashes {
            match b {
                b'-' => {
                    dashes = Some(n + 1);
                    max = max.max(indents.len() + depth + n + 1);
                }
                b' ' | b'\t' => {}
                _ => dashes = None,
            }
        }
        if in_double {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_double = false,
                _ => {}
            }
        } else if in_single {
            if b == b'\'' {
                in_single = false;
            }
        } else {
            match b {
                b'"' => in_double = true,
                b'\'' => in_single = true,
                b'[' | b'{' => {
                    depth += 1;
                    max = max.max(indents.len() + depth);
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        if b == b'\n' {
            at_line_start = true;
            indent = 0;
            dashes = None;
            // A quoted scalar may span lines; a broken one ends at the line in JSON.
            in_single = false;
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shape_counts_depth_and_bytes() {
        assert_eq!(shape(&json!(1), usize::MAX, usize::MAX).depth, 0);
        let v = json!({"a": [1, {"b": "xy"}]});
        let s = shape(&v, usize::MAX, usize::MAX);
        assert_eq!(s.depth, 3);
        assert!(s.bytes >= v.to_string().len() - 4, "{s:?} vs {v}");
        assert!(!too_deep(&v));
    }

    #[test]
    fn a_deep_value_is_measured_without_recursion() {
        let mut v = json!(0);
        for _ in 0..200_000 {
            v = Value::Array(vec![v]);
        }
        assert!(too_deep(&v));
        assert_eq!(shape(&v, usize::MAX, usize::MAX).depth, 200_000);
        // Dropping it recursively would overflow the stack: take it apart by hand.
        let mut cur = v;
        while let Value::Array(mut a) = cur {
            cur = a.pop().unwrap_or(Value::Null);
        }
    }

    #[test]
    fn text_depth_of_json_and_yaml() {
        // The line itself counts as a level: an over-count by one, never an under-count.
        assert_eq!(text_depth(br#"{"a": {"b": [1, "[[[["]}}"#), 1 + 3);
        assert_eq!(text_depth(b"a:\n  b:\n    c: 1\nd: 2\n"), 3);
        assert_eq!(text_depth(b"- - - 1\n"), 1 + 3);
        assert_eq!(text_depth(b"name: my-app\n"), 1);
        let deep = "[".repeat(50_000);
        assert_eq!(text_depth(deep.as_bytes()), 1 + 50_000);
        let mut yaml = String::new();
        for i in 0..300 {
            yaml.push_str(&" ".repeat(i));
            yaml.push_str("a:\n");
        }
        assert!(text_depth(yaml.as_bytes()) >= 300);
    }
}
