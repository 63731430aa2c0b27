//! The snowballed-hallucination datasets (Zhang et al., 2023): three JSON lists whose
//! gold answer is constant per file (every number prime; no such senator; no route).

use std::path::Path;

use serde_json::Value;

use super::{read, stem, DatasetError, Item};

/// Load `primality_testing.json` (objects with `question`, `answer`), or
/// `senator_search.json` / `graph_connectivity.json` (plain question strings, answer "no").
pub fn load_snowball(path: &Path) -> Result<Vec<Item>, DatasetError> {
    let text = read(path)?;
    let malformed = |line: usize, detail: String| DatasetError::Malformed { path: path.to_path_buf(), line, detail };
    let list: Vec<Value> =
        serde_json::from_str(&text).map_err(|e| malformed(e.line(), format!("not a JSON list: {e}")))?;
    let name = stem(path);
    list.into_iter()
        .enumerate()
        .map(|(i, v)| {
            let (question, gold) = match v {
                Value::String(q) => (q, "no".to_string()),
                Value::Object(o) => {
                    let q = o
                        .get("question")
                        .and_then(Value::as_str)
                        .ok_or_else(|| malformed(i + 1, "item has no string field \"question\"".into()))?;
                    let gold = match o.get("answer") {
                        Some(Value::Bool(true)) => "yes",
                        Some(Value::Bool(false)) => "no",
                        Some(Value::String(s)) if s.eq_ignore_ascii_case("yes") => "yes",
                        Some(Value::String(s)) if s.eq_ignore_ascii_case("no") => "no",
                        _ => return Err(malformed(i + 1, "field \"answer\" is not a boolean or yes/no".into())),
                    };
                    (q.to_string(), gold.to_string())
                }
                other => return Err(malformed(i + 1, format!("item is neither a string nor an object: {other}"))),
            };
            Ok(Item {
                id: format!("{name}:{i}"),
                question,
                gold,
                steps: vec![],
                mistake_index: None,
                evidence_docs: vec![],
            })
        })
        .collect()
}
