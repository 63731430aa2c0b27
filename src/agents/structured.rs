//! Structured output: a model call whose reply must be a JSON object valid against
//! an agent's JSON Schema, re-asked with the validation error a bounded number of
//! times. The critic and the decomposer share it; every failure is a trace event.

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::AgentError;
use crate::{
    llm::{ChatModel, ChatRequest, Message, Purpose, SamplingParams},
    trace::RunRecorder,
};

/// The first balanced `{...}` object in `text` (models wrap JSON in prose or fences).
pub fn extract_json(text: &str) -> Option<Value> {
    let bytes = text.as_bytes();
    let mut start = text.find('{')?;
    loop {
        let (mut depth, mut in_str, mut escaped) = (0i32, false, false);
        for (i, &b) in bytes.iter().enumerate().skip(start) {
            match (in_str, b) {
                (true, b'\\') if !escaped => {
                    escaped = true;
                    continue;
                }
                (true, b'"') if !escaped => in_str = false,
                (false, b'"') => in_str = true,
                (false, b'{') => depth += 1,
                (false, b'}') => {
                    depth -= 1;
                    if depth == 0 {
                        if let Ok(v) = serde_json::from_str(&text[start..=i]) {
                            return Some(v);
                        }
                        break;
                    }
                }
                _ => {}
            }
            escaped = false;
        }
        start = start + 1 + text[start + 1..].find('{')?;
    }
}

/// One structured call: who makes it, what it asks, what a valid reply is.
pub(crate) struct StructuredCall<'a> {
    /// The agent, as recorded on its events.
    pub agent: &'a str,
    /// The first prompt.
    pub prompt: String,
    /// Sampling parameters of every attempt.
    pub params: SamplingParams,
    /// What the calls are for.
    pub purpose: Purpose,
    /// The schema a reply must satisfy.
    pub schema: &'a jsonschema::Validator,
    /// The keys a reply needs, named in the re-ask.
    pub keys: &'a str,
    /// Re-asks after the first invalid reply.
    pub max_reasks: u32,
}

/// Make `call`; `Ok(None)` when no reply validated within the re-asks (each failure is
/// a `validation_failure` event of `call.agent`).
pub(crate) async fn ask_structured<T: DeserializeOwned>(
    model: &dyn ChatModel,
    recorder: &RunRecorder,
    call: StructuredCall<'_>,
) -> Result<Option<T>, AgentError> {
    let mut messages = vec![Message::user(call.prompt)];
    for attempt in 0..=call.max_reasks {
        let request = ChatRequest::new(messages.clone()).with_params(call.params.clone()).for_purpose(call.purpose);
        let text = model.chat(&request).await?.text().to_string();
        let problem = match extract_json(&text) {
            None => "the reply holds no JSON object".to_string(),
            Some(value) => {
                let errors: Vec<String> = call.schema.iter_errors(&value).map(|e| e.to_string()).collect();
                if errors.is_empty() {
                    match serde_json::from_value::<T>(value) {
                        Ok(parsed) => return Ok(Some(parsed)),
                        Err(e) => e.to_string(),
                    }
                } else {
                    errors.join("; ")
                }
            }
        };
        recorder
            .event(call.agent, "validation_failure", json!({"attempt": attempt, "error": problem, "reply": text}))
            .await?;
        messages.push(Message::assistant(text));
        messages.push(Message::user(format!(
            "That reply is not valid: {problem}. Reply again with one JSON object only, with {}.",
            call.keys
        )));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_json_in_prose_and_fences() {
        let v = extract_json("Sure! ```json\n{\"verdict\": \"correct\", \"p\": \"a } b\"}\n```").unwrap();
        assert_eq!(v["verdict"], "correct");
        assert_eq!(v["p"], "a } b");
        assert_eq!(extract_json("{broken {\"ok\": 1}").unwrap()["ok"], 1);
        assert!(extract_json("no json here").is_none());
    }
}
