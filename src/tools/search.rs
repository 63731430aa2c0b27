//! `search`: corpus search as a tool, over any [`Retriever`].

use std::sync::Arc;

use serde_json::{json, Value};

use super::{arg_str, Tool, ToolError};
use crate::corpus::{Retriever, SearchOptions};

/// Finds passages for a query; factual claims are checked against them.
pub struct CorpusSearch {
    retriever: Arc<dyn Retriever>,
    options: SearchOptions,
}

impl CorpusSearch {
    /// Search `retriever` with `options`.
    pub fn new(retriever: Arc<dyn Retriever>, options: SearchOptions) -> Self {
        Self { retriever, options }
    }
}

impl Tool for CorpusSearch {
    fn name(&self) -> &str {
        "search"
    }

    fn description(&self) -> &str {
        "Ranked corpus passages (doc id, passage id, offsets, score, text) for a query."
    }

    fn input_schema(&self) -> Value {
        json!({"type": "object", "required": ["query"], "properties": {"query": {"type": "string"}, "k": {"type": "integer"}}})
    }

    fn call(&self, input: &Value) -> Result<Value, ToolError> {
        let query = arg_str(input, "search", "query")?;
        let mut options = self.options.clone();
        if let Some(k) = input.get("k").and_then(Value::as_u64) {
            options.k = k as usize;
        }
        let hits = self
            .retriever
            .search(query, &options)
            .map_err(|e| ToolError::Failed { tool: "search".into(), detail: e.to_string() })?;
        let results: Vec<Value> = hits
            .iter()
            .map(|h| {
                json!({"doc_id": h.passage.doc_id, "passage_id": h.passage.passage_id, "score": h.score,
                       "start": h.passage.start, "end": h.passage.end, "title": h.passage.title, "text": h.passage.text})
            })
            .collect();
        Ok(json!({"query": query, "results": results}))
    }
}
