//! The critic: reviews a draft and returns a structured critique, validated against
//! the JSON Schema in `agents/critic.toml`. Invalid output is re-asked (with the
//! validation error) a bounded number of times; every failure is a trace event.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    structured::{ask_structured, StructuredCall},
    AgentError, AgentSet, CheckedClaim, Verdict,
};
use crate::{
    llm::{ChatModel, Purpose, SamplingParams},
    trace::RunRecorder,
};

pub use super::structured::extract_json;

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

    /// How confident the critic is that the draft is right: its confidence when it
    /// judged it correct, one minus it when it judged it incorrect.
    pub fn confidence_in_draft(&self) -> f64 {
        match self.verdict {
            CritiqueVerdict::Correct => self.confidence,
            CritiqueVerdict::Incorrect => 1.0 - self.confidence,
        }
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

/// A checked claim of the draft, as the critic is shown it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The claim.
    pub text: String,
    /// What a tool or the judge found.
    pub verdict: Verdict,
    /// The evidence it was judged on (a passage, shortened), when there is some.
    pub evidence: Option<String>,
}

impl From<&CheckedClaim> for Finding {
    fn from(c: &CheckedClaim) -> Self {
        Finding { text: c.claim.text.clone(), verdict: c.verdict, evidence: None }
    }
}

/// What the critic reviews.
#[derive(Debug, Clone, Copy)]
pub struct Review<'a> {
    /// The question.
    pub question: &'a str,
    /// The answer under review.
    pub draft: &'a str,
    /// Verdicts on the draft's claims (tools; the judge over a corpus), shown to the critic.
    pub findings: &'a [Finding],
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
            findings => findings,
        },
    )?;
    let params = SamplingParams {
        temperature: cfg.temperature.unwrap_or(0.0),
        max_tokens: cfg.max_tokens.unwrap_or(256),
        ..Default::default()
    };
    let call = StructuredCall {
        agent: "critic",
        prompt,
        params,
        purpose: Purpose::Critique,
        schema: &agents.critic_schema,
        keys: "keys verdict, earliest_wrong_step, problems, confidence",
        max_reasks: cfg.max_reasks.unwrap_or(2),
    };
    let max_reasks = call.max_reasks;
    match ask_structured::<Critique>(model, recorder, call).await? {
        Some(c) => {
            recorder.event("critic", "critique", json!(c)).await?;
            Ok(Some(c))
        }
        None => {
            recorder.event("critic", "critique_failed", json!({"reasks": max_reasks})).await?;
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
