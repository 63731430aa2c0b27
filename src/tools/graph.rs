//! Reachability over directed edges stated in a question, as in the
//! flight-connectivity task ("There is a flight from city F to city L").

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{arg_str, to_output, Tool, ToolError};

/// Edges read from text: every "from city X to city Y" (or "from X to Y") line.
pub fn parse_flights(text: &str) -> Vec<(String, String)> {
    let mut edges = Vec::new();
    for line in text.lines() {
        let lower = line.to_lowercase();
        if !(lower.contains("flight from") || lower.contains("route from") || lower.contains("edge from")) {
            continue;
        }
        if let Some((from, to)) = endpoints(line) {
            edges.push((from, to));
        }
    }
    edges
}

/// The `(X, Y)` of "... from [city] X to [city] Y ...".
pub(crate) fn endpoints(text: &str) -> Option<(String, String)> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let from = words.iter().position(|w| w.eq_ignore_ascii_case("from"))?;
    let to = from + words[from..].iter().position(|w| w.eq_ignore_ascii_case("to"))?;
    let name = |ws: &[&str]| {
        let ws: Vec<&str> = ws.iter().copied().filter(|w| !w.eq_ignore_ascii_case("city")).collect();
        let joined = ws.join(" ");
        let trimmed = joined.trim_matches(|c: char| !c.is_alphanumeric()).to_string();
        (!trimmed.is_empty()).then_some(trimmed)
    };
    let end = words[to + 1..]
        .iter()
        .position(|w| w.ends_with(['?', '.', ',']) || w.eq_ignore_ascii_case("and"))
        .map(|p| to + 2 + p)
        .unwrap_or(words.len());
    let end = if words[end - 1].eq_ignore_ascii_case("and") { end - 1 } else { end };
    Some((name(&words[from + 1..to])?, name(&words[to + 1..end])?))
}

/// A shortest path from `from` to `to`, if any (breadth-first).
pub fn reachable_path(edges: &[(String, String)], from: &str, to: &str) -> Option<Vec<String>> {
    let mut next: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (a, b) in edges {
        next.entry(a).or_default().insert(b);
    }
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(node) = queue.pop_front() {
        if node == to {
            let mut path = vec![to.to_string()];
            let mut cur = to;
            while let Some(p) = parent.get(cur) {
                path.push(p.to_string());
                cur = p;
            }
            path.reverse();
            return Some(path);
        }
        for n in next.get(node).into_iter().flatten() {
            if seen.insert(n) {
                parent.insert(n, node);
                queue.push_back(n);
            }
        }
    }
    None
}

/// `graph`: whether `to` can be reached from `from` over `edges` (or over the flights
/// stated in `text`), with a shortest path; with `claimed_edge`, whether that edge exists.
#[derive(Debug, Default)]
pub struct Graph;

/// What [`Graph`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphOutput {
    /// Origin.
    pub from: String,
    /// Destination.
    pub to: String,
    /// Edges searched.
    pub edges: usize,
    /// Whether `to` can be reached from `from`.
    pub reachable: bool,
    /// A shortest path, when there is one.
    pub path: Option<Vec<String>>,
    /// Whether a direct edge `from` -> `to` exists.
    pub edge_exists: bool,
}

impl Tool for Graph {
    fn name(&self) -> &str {
        "graph"
    }

    fn description(&self) -> &str {
        "Directed reachability with a shortest path, over given edges or flights stated in text."
    }

    fn input_schema(&self) -> Value {
        json!({"type": "object", "required": ["from", "to"], "properties": {
            "edges": {"type": "array", "items": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2}},
            "text": {"type": "string"}, "from": {"type": "string"}, "to": {"type": "string"}}})
    }

    fn call(&self, input: &Value) -> Result<Value, ToolError> {
        let bad = |detail: &str| ToolError::BadInput { tool: "graph".into(), detail: detail.into() };
        let from = arg_str(input, "graph", "from")?;
        let to = arg_str(input, "graph", "to")?;
        let edges: Vec<(String, String)> = match (input.get("edges"), input.get("text").and_then(Value::as_str)) {
            (Some(Value::Array(items)), _) => items
                .iter()
                .map(|e| match e.as_array().map(Vec::as_slice) {
                    Some([Value::String(a), Value::String(b)]) => Ok((a.clone(), b.clone())),
                    _ => Err(bad("each edge must be [from, to] strings")),
                })
                .collect::<Result<_, _>>()?,
            (_, Some(text)) => parse_flights(text),
            _ => return Err(bad("give `edges` or `text`")),
        };
        let path = reachable_path(&edges, from, to);
        let out = GraphOutput {
            from: from.to_string(),
            to: to.to_string(),
            edges: edges.len(),
            reachable: path.is_some(),
            path,
            edge_exists: edges.iter().any(|(a, b)| a == from && b == to),
        };
        to_output("graph", &out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: &str = "Current flight information:\nThere is a flight from city F to city L\nThere is a flight from city L to city M\nThere is a flight from city B to city I\n\nQuestion: Is there a series of flights that goes from city F to city I?";

    #[test]
    fn parses_flights_and_searches() {
        let edges = parse_flights(Q);
        assert_eq!(edges, vec![("F".into(), "L".into()), ("L".into(), "M".into()), ("B".into(), "I".into())]);
        assert_eq!(reachable_path(&edges, "F", "M"), Some(vec!["F".into(), "L".into(), "M".into()]));
        assert_eq!(reachable_path(&edges, "F", "I"), None);
        assert_eq!(reachable_path(&edges, "M", "F"), None, "edges are one-way");
    }

    #[test]
    fn endpoints_of_free_text() {
        assert_eq!(endpoints("there is a flight from city F to city L."), Some(("F".into(), "L".into())));
        assert_eq!(endpoints("fly from New York to Boston and then"), Some(("New York".into(), "Boston".into())));
        assert_eq!(endpoints("no route here"), None);
    }

    #[test]
    fn tool_output() {
        let out = Graph.call(&json!({"text": Q, "from": "F", "to": "I"})).unwrap();
        assert_eq!(out["reachable"], false);
        let out = Graph.call(&json!({"edges": [["A", "B"], ["B", "C"]], "from": "A", "to": "C"})).unwrap();
        assert_eq!(out["path"], json!(["A", "B", "C"]));
        assert_eq!(out["edge_exists"], false);
        assert!(Graph.call(&json!({"from": "A", "to": "B"})).is_err());
    }
}
