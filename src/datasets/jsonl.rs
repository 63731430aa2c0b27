//! Generic JSONL question sets: one `{"question": ..., "answer": ...}` object a line.

use std::path::Path;

use serde_json::Value;

use super::{for_each_line, read, stem, DatasetError, Item};

/// Load a JSONL file of `question` / `answer` records (the answer may be a string or
/// a number; an optional `id` replaces the positional one).
pub fn load_jsonl(path: &Path) -> Result<Vec<Item>, DatasetError> {
    let text = read(path)?;
    let name = stem(path);
    let mut items = Vec::new();
    for_each_line(path, &text, |v| {
        let question = v.get("question").and_then(Value::as_str).ok_or("missing string field \"question\"")?;
        let gold = match v.get("answer") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => if *b { "yes" } else { "no" }.to_string(),
            _ => return Err("missing field \"answer\" (string, number or boolean)".into()),
        };
        let id = match v.get("id") {
            Some(Value::String(s)) => format!("{name}:{s}"),
            Some(Value::Number(n)) => format!("{name}:{n}"),
            _ => format!("{name}:{}", items.len()),
        };
        items.push(Item {
            id,
            question: question.to_string(),
            gold,
            steps: vec![],
            mistake_index: None,
            evidence_docs: vec![],
        });
        Ok(())
    })?;
    Ok(items)
}
