//! The critic: reviews a draft and returns a structured critique, validated against
//! the JSON Schema in `agents/critic.toml`. Invalid output is re-asked (with the
//! validation error) a bounded number of times; every failure is a trace event.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{AgentError, AgentSet, CheckedClaim};
use crate::{
    llm::{ChatModel, ChatRequest, Message, Purpose, SamplingParams},
    trace::RunRecorder,
};

/// The critic's judgement of a draft.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CritiqueVerdict {
    /// Nothing to fix.
    Correct,
    /// Something is wrong.
    Incorrect,
}

/// A validated critique.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Critique {
    /// The judgement.
    pub verdict: CritiqueVerdict,
    /// Index of the first wrong step; `None` when every step is right (the critic
    /// writes -1, as ProcessBench does, and so do recorded critiques).
    #[serde(with = "step_or_minus_one")]
    pub earliest_wrong_step: Option<usize>,
    /// Problems found.
    pub problems: Vec<String>,
    /// The critic's confidence in [0, 1].
    pub confidence: f64,
}

impl Critique {
    /// Whether the critic judged the draft correct.
    pub fn is_correct(&self) -> bool {
        self.verdict == CritiqueVerdict::Correct
    }
}

/// A step index on the wire: -1 for none.
mod step_or_minus_one {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(step: &Option<usize>, s: S) -> Result<S::Ok, S::Error> {
        match step {
            Some(i) => s.serialize_u64(*i as u64),
            None => s.serialize_i64(-1),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
        match i64::deserialize(d)? {
            -1 => Ok(None),
            i if i >= 0 => Ok(Some(i as usize)),
            i => Err(D::Error::custom(format!("earliest_wrong_step {i} is below -1"))),
        }
    }
}

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

/// What the critic reviews.
#[derive(Debug, Clone, Copy)]
pub struct Review<'a> {
    /// The question.
    pub question: &'a str,
    /// The answer under review.
    pub draft: &'a str,
    /// Tool verdicts on the draft's claims (CRITIC), shown to the critic.
    pub findings: &'a [CheckedClaim],
    /// Use the If-or-Else wording: keep a confident answer.
    pub ioe: bool,
}

/// Ask `model` for a critique of `draft`; `None` when the critic failed validation
/// past its re-ask limit (recorded as a failed step; the loop goes on `unchecked`).
/// What the calls cost is counted by the run's budget (the model is a recording one).
pub async fn critique(
    agents: &AgentSet,
    model: &dyn ChatModel,
    recorder: &RunRecorder,
    review: Review<'_>,
) -> Result<Option<Critique>, AgentError> {
    let Review { question, draft, findings, ioe } = review;
    let cfg = &agents.critic;
    let prompt = agents.render(
        cfg.prompt.as_deref().unwrap_or("critic.j2"),
        minijinja::context! {
            question => question, draft => draft, ioe => ioe,
            findings => findings.iter().map(|f| json!({"text": f.claim.text, "verdict": f.verdict})).collect::<Vec<_>>(),
        },
    )?;
    let params = SamplingParams {
        temperature: cfg.temperature.unwrap_or(0.0),
        max_tokens: cfg.max_tokens.unwrap_or(256),
        ..Default::default()
    };
    let mut messages = vec![Message::user(prompt)];
    let max_reasks = cfg.max_reasks.unwrap_or(2);
    for attempt in 0..=max_reasks {
        let request = ChatRequest::new(messages.clone()).with_params(params.clone()).for_purpose(Purpose::Critique);
        let reply = model.chat(&request).await?;
        let text = reply.text().to_string();
        let problem = match extract_json(&text) {
            None => "the reply holds no JSON object".to_string(),
            Some(value) => {
                let errors: Vec<String> = agents.critic_schema.iter_errors(&value).map(|e| e.to_string()).collect();
                if errors.is_empty() {
                    match serde_json::from_value::<Critique>(value) {
                        Ok(c) => {
                            recorder.event("critic", "critique", json!(c)).await?;
                            return Ok(Some(c));
                        }
                        Err(e) => e.to_string(),
                    }
                } else {
                    errors.join("; ")
                }
            }
        };
        recorder
            .event("critic", "validation_failure", json!({"attempt": attempt, "error": problem, "reply": text}))
            .await?;
        messages.push(Message::assistant(text));
        messages.push(Message::user(format!(
            "That reply is not valid: {problem}. Reply again with one JSON object only, with keys verdict, earliest_wrong_step, problems, confidence."
        )));
    }
    recorder.event("critic", "critique_failed", json!({"reasks": max_reasks})).await?;
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

    #[test]
    fn critiques_read_minus_one_as_no_wrong_step() {
        let c: Critique = serde_json::from_value(
            json!({"verdict": "incorrect", "earliest_wrong_step": 2, "problems": ["x"], "confidence": 0.4}),
        )
        .unwrap();
        assert_eq!((c.verdict, c.earliest_wrong_step), (CritiqueVerdict::Incorrect, Some(2)));
        let ok = json!({"verdict": "correct", "earliest_wrong_step": -1, "problems": [], "confidence": 0.9});
        let c: Critique = serde_json::from_value(ok.clone()).unwrap();
        assert!(c.is_correct() && c.earliest_wrong_step.is_none());
        assert_eq!(serde_json::to_value(&c).unwrap(), ok, "recorded critiques keep the critic's -1");
        let bad = json!({"verdict": "maybe", "earliest_wrong_step": -1, "problems": [], "confidence": 0.9});
        assert!(serde_json::from_value::<Critique>(bad).is_err());
    }
}
