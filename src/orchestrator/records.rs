//! The fields of a record to verify: recheck's, RAGAS's or DeepEval's names, detected
//! from the first record, or any shape with named dotted paths (`answer=output.text`).
//! `recheck verify` reads records from files with it, the Python package from dicts.

use serde_json::Value;

use super::{Context, GivenAnswer};

/// A field of a record to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Its id.
    Id,
    /// The question.
    Question,
    /// The answer.
    Answer,
    /// The contexts.
    Contexts,
    /// The gold label (`recheck calibrate`).
    Label,
}

/// Where a format keeps each field (dotted paths).
#[derive(Debug, Clone)]
pub struct Format {
    /// The format's name, as said on stderr.
    pub name: String,
    /// The id's path.
    pub id: String,
    /// The question's path.
    pub question: String,
    /// The answer's path.
    pub answer: String,
    /// The contexts' path.
    pub contexts: String,
    /// The gold label's path (read by `recheck calibrate`).
    pub label: String,
}

impl Format {
    fn new(name: &str, question: &str, answer: &str, contexts: &str) -> Self {
        let owned = |s: &str| s.to_string();
        Self {
            name: owned(name),
            id: owned("id"),
            question: owned(question),
            answer: owned(answer),
            contexts: owned(contexts),
            label: owned("label"),
        }
    }

    fn path_mut(&mut self, field: Field) -> &mut String {
        match field {
            Field::Id => &mut self.id,
            Field::Question => &mut self.question,
            Field::Answer => &mut self.answer,
            Field::Contexts => &mut self.contexts,
            Field::Label => &mut self.label,
        }
    }
}

/// The formats recognised by their answer field, first match wins.
fn known() -> [Format; 3] {
    [
        Format::new("recheck", "question", "answer", "contexts"),
        Format::new("RAGAS", "user_input", "response", "retrieved_contexts"),
        Format::new("DeepEval", "input", "actual_output", "retrieval_context"),
    ]
}

/// `--field NAME=PATH`.
pub fn parse_field(s: &str) -> Result<(Field, String), String> {
    let (name, path) = s.split_once('=').ok_or_else(|| format!("{s:?} is not NAME=PATH"))?;
    let field = match name {
        "id" => Field::Id,
        "question" => Field::Question,
        "answer" => Field::Answer,
        "contexts" => Field::Contexts,
        "label" => Field::Label,
        other => return Err(format!("{other:?} is not a field (id, question, answer, contexts or label)")),
    };
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(format!("{path:?} is not a dotted path"));
    }
    Ok((field, path.to_string()))
}

/// The value at dotted `path` in `value` (a number indexes an array).
pub fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| match v {
        Value::Array(items) => items.get(key.parse::<usize>().ok()?),
        other => other.get(key),
    })
}

/// The known format whose answer field `first` has (else recheck's), with `fields` over it.
pub fn detect(first: &Value, fields: &[(Field, String)]) -> Format {
    let mut format = known().into_iter().find(|f| lookup(first, &f.answer).is_some()).unwrap_or_else(|| {
        let [recheck, ..] = known();
        recheck
    });
    for (field, path) in fields {
        *format.path_mut(*field) = path.clone();
    }
    if !fields.is_empty() {
        format.name.push_str(" with --field");
    }
    format
}

/// The answer a record holds, in `format`'s fields; `at` says where the record is in
/// a message about it (`line 3` of a file, `record 3` of a list).
pub fn given(value: &Value, format: &Format, at: &str, max_chars: usize) -> Result<GivenAnswer, String> {
    let text = |path: &str| lookup(value, path).and_then(Value::as_str).map(String::from);
    let Some(answer) = text(&format.answer) else {
        return Err(format!("{at}: no {:?} (a string) to verify", format.answer));
    };
    if answer.chars().count() > max_chars {
        return Err(format!("{at}: the answer is longer than max_answer_chars ({max_chars} characters)"));
    }
    let contexts = match lookup(value, &format.contexts) {
        // An empty CSV cell is no contexts.
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if s.trim().is_empty() => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, c)| match c {
                Value::String(s) => Ok(Context { id: None, text: s.clone() }),
                Value::Object(o) => match o.get("text").and_then(Value::as_str) {
                    Some(t) => Ok(Context { id: o.get("id").map(plain), text: t.to_string() }),
                    None => Err(format!("{at}: context {i} has no \"text\"")),
                },
                _ => Err(format!("{at}: context {i} is neither a string nor an object")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(format!("{at}: {:?} is not a list", format.contexts)),
    };
    let question = text(&format.question).filter(|q| !q.trim().is_empty());
    Ok(GivenAnswer { id: None, question, answer, contexts })
}

/// A record's id: its own, else its line number.
pub fn record_id(value: &Value, format: &Format, line: usize) -> String {
    match lookup(value, &format.id) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => line.to_string(),
    }
}

fn plain(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), String::from)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn dotted_paths_reach_into_objects_and_arrays() {
        let v = serde_json::json!({"output": {"text": "a", "docs": ["x", {"t": "y"}]}});
        assert_eq!(lookup(&v, "output.text"), Some(&serde_json::json!("a")));
        assert_eq!(lookup(&v, "output.docs.1.t"), Some(&serde_json::json!("y")));
        assert_eq!(lookup(&v, "output.docs.7"), None);
        assert_eq!(parse_field("answer=output.text").unwrap(), (Field::Answer, "output.text".into()));
        assert!(
            parse_field("colour=x").is_err() && parse_field("answer=").is_err() && parse_field("answer=a..b").is_err()
        );
        let format = detect(&v, &[(Field::Answer, "output.text".into()), (Field::Contexts, "output.docs".into())]);
        let g = given(&v, &format, "line 1", 100).unwrap_err();
        assert!(g.contains("context 1 has no \"text\""), "{g}");
    }

    #[test]
    fn ragas_and_deepeval_names_are_detected() {
        let ragas = serde_json::json!({"user_input": "Q?", "response": "A.", "retrieved_contexts": ["c"]});
        let format = detect(&ragas, &[]);
        assert_eq!(format.name, "RAGAS");
        let g = given(&ragas, &format, "record 1", 100).unwrap();
        assert_eq!((g.question.as_deref(), g.answer.as_str(), g.contexts.len()), (Some("Q?"), "A.", 1));
        assert_eq!(detect(&serde_json::json!({"actual_output": "A"}), &[]).name, "DeepEval");
        assert!(given(&ragas, &format, "record 1", 1).unwrap_err().starts_with("record 1: the answer is longer"));
    }
}
