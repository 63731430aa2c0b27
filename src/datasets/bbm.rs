//! BIG-Bench Mistake (Tyen et al., 2023): reasoning traces with the first wrong step
//! marked by annotators.

use std::path::Path;

use serde_json::Value;

use super::{for_each_line, read, stem, DatasetError, Item};

/// Load a BIG-Bench Mistake JSONL file. The question is `input` (for `word_sorting`,
/// which stores only the word list, an instruction is prepended); the gold answer is
/// `target`; `steps` and `mistake_index` (0-based, null = no mistake) are kept.
pub fn load_bbm(path: &Path) -> Result<Vec<Item>, DatasetError> {
    let text = read(path)?;
    let name = stem(path);
    let mut items = Vec::new();
    for_each_line(path, &text, |v| {
        let field = |k: &str| v.get(k).and_then(Value::as_str).ok_or(format!("missing string field {k:?}"));
        let input = field("input")?;
        let target = field("target")?;
        let steps = v
            .get("steps")
            .and_then(Value::as_array)
            .ok_or("missing list field \"steps\"")?
            .iter()
            .map(|s| s.as_str().map(str::to_string).ok_or("a step is not a string".to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let mistake_index = match v.get("mistake_index") {
            None | Some(Value::Null) => None,
            Some(m) => {
                let m = m.as_u64().ok_or("\"mistake_index\" is not a non-negative integer")? as usize;
                if m >= steps.len() {
                    return Err(format!("\"mistake_index\" {m} is past the last of {} steps", steps.len()));
                }
                Some(m)
            }
        };
        let question = if name == "word_sorting" {
            format!("Sort the following words alphabetically: List: {input}")
        } else {
            input.to_string()
        };
        let id = format!("{name}:{}", items.len());
        items.push(Item { id, question, gold: target.to_string(), steps, mistake_index, evidence_docs: vec![] });
        Ok(())
    })?;
    Ok(items)
}
