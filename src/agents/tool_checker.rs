//! The tool-checker: routes each checkable claim of an answer to an exact tool and
//! turns the tool's typed output into a verdict. Every tool call is recorded when a
//! run recorder is given. A claim whose tool is not in the registry it is given (see
//! [`super::AgentSet::checker_tools`]) stays `unchecked`, with no call.

use std::time::Instant;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::claims::{extract_claims, Claim, ClaimKind};
use crate::{
    tools::{ArithmeticOutput, GraphOutput, PrimalityOutput, ToolRegistry},
    trace::{RunRecorder, StepPayload, TraceError, Verdict},
};

/// A claim with its verdict and the tool evidence behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckedClaim {
    /// The claim.
    #[serde(flatten)]
    pub claim: Claim,
    /// The verdict.
    pub verdict: Verdict,
    /// Tool used.
    pub tool: Option<String>,
    /// Tool input.
    pub input: Option<Value>,
    /// Tool output, or the error text.
    pub output: Option<Value>,
}

/// The tool call that settles `kind`, if any: (tool, input).
fn route(question: &str, kind: &ClaimKind) -> (&'static str, Value) {
    match kind {
        ClaimKind::Primality { n, .. } | ClaimKind::NoVerdict { n } => ("primality", json!({ "n": n })),
        ClaimKind::Divisibility { n, divisor, .. } => ("primality", json!({ "n": n, "divisor": divisor })),
        ClaimKind::Arithmetic { expression, value } => {
            ("arithmetic", json!({ "expression": expression, "claimed": value }))
        }
        ClaimKind::Edge { from, to, .. } | ClaimKind::Reachability { from, to, .. } => {
            ("graph", json!({ "text": question, "from": from, "to": to }))
        }
    }
}

/// Compare what the claim says with what the tool found. An output that is not the
/// tool's typed output is an error (its text goes into the step), never a guess.
fn judge(kind: &ClaimKind, out: &Value) -> Result<Verdict, String> {
    fn read<'a, T: Deserialize<'a>>(out: &'a Value, what: &str) -> Result<T, String> {
        T::deserialize(out).map_err(|e| format!("the tool's output is not a {what}: {e}"))
    }
    let truth = match kind {
        ClaimKind::Primality { prime, .. } => Some(read::<PrimalityOutput>(out, "primality output")?.prime == *prime),
        ClaimKind::Divisibility { divides, .. } => {
            read::<PrimalityOutput>(out, "primality output")?.divides.map(|d| d == *divides)
        }
        ClaimKind::Arithmetic { .. } => read::<ArithmeticOutput>(out, "arithmetic output")?.matches,
        ClaimKind::Edge { exists, .. } => Some(read::<GraphOutput>(out, "graph output")?.edge_exists == *exists),
        ClaimKind::Reachability { reachable, .. } => {
            Some(read::<GraphOutput>(out, "graph output")?.reachable == *reachable)
        }
        ClaimKind::NoVerdict { .. } => None,
    };
    Ok(match truth {
        Some(true) => Verdict::Supported,
        Some(false) => Verdict::Contradicted,
        None => Verdict::Unchecked,
    })
}

/// Check every claim of `answer` with `tools`, recording each call under `agent`.
pub async fn check_answer(
    question: &str,
    answer: &str,
    tools: &ToolRegistry,
    recorder: Option<&RunRecorder>,
) -> Result<Vec<CheckedClaim>, TraceError> {
    let mut checked = Vec::new();
    for claim in extract_claims(question, answer) {
        let (tool, input) = route(question, &claim.kind);
        if tools.get(tool).is_none() {
            checked.push(CheckedClaim { claim, verdict: Verdict::Unchecked, tool: None, input: None, output: None });
            continue;
        }
        let started = (Utc::now(), Instant::now());
        let index = recorder.map(RunRecorder::reserve);
        let result = tools.call(tool, &input);
        let (verdict, output, error) = match &result {
            Ok(out) => match judge(&claim.kind, out) {
                Ok(verdict) => (verdict, Some(out.clone()), None),
                Err(mismatch) => (Verdict::Unchecked, Some(out.clone()), Some(mismatch)),
            },
            Err(e) => (Verdict::Unchecked, Some(json!({ "error": e.to_string() })), Some(e.to_string())),
        };
        if let (Some(rec), Some(index)) = (recorder, index) {
            let payload = StepPayload::ToolCall { tool: tool.to_string(), input: input.clone(), output: result.ok() };
            rec.record(index, "tool-checker", started, payload, error).await?;
        }
        checked.push(CheckedClaim { claim, verdict, tool: Some(tool.to_string()), input: Some(input), output });
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::TraceStore;

    #[tokio::test]
    async fn flags_false_claims_and_records_tool_calls() {
        let store = TraceStore::temporary().unwrap();
        let run = store.create_run("test", json!({}), json!({}), None).await.unwrap();
        let rec = RunRecorder::new(store.clone(), run.id, 0);
        let answer = "No, 7411 is not prime: 7411 is divisible by 7, since 7 x 1058 = 7406.";
        let checked =
            check_answer("Is 7411 a prime number?", answer, &ToolRegistry::standard(), Some(&rec)).await.unwrap();
        let verdicts: Vec<_> = checked.iter().map(|c| (c.claim.text.as_str(), c.verdict)).collect();
        assert_eq!(
            verdicts,
            vec![
                ("No", Verdict::Contradicted),
                ("7411 is divisible by 7", Verdict::Contradicted),
                ("7 x 1058 = 7406", Verdict::Supported),
            ]
        );
        let steps = store.steps(run.id).unwrap();
        assert_eq!(steps.len(), 3);
        assert!(steps.iter().all(|s| s.agent == "tool-checker" && matches!(s.payload, StepPayload::ToolCall { .. })));
    }

    #[tokio::test]
    async fn graph_claims_use_the_question_edges() {
        let q = "There is a flight from city A to city B\nThere is a flight from city C to city D\n\nQuestion: Is there a series of flights that goes from city A to city D?";
        let checked = check_answer(q, "Yes, there is a flight from city B to city D.", &ToolRegistry::standard(), None)
            .await
            .unwrap();
        assert_eq!(checked.len(), 2);
        assert!(checked.iter().all(|c| c.verdict == Verdict::Contradicted), "{checked:?}");
    }

    #[tokio::test]
    async fn claims_outside_the_allowed_tools_stay_unchecked_without_a_call() {
        let only_graph = ToolRegistry::standard().only(&["graph".to_string()]);
        let checked =
            check_answer("Is 7411 a prime number?", "No, 7411 is divisible by 7.", &only_graph, None).await.unwrap();
        assert!(!checked.is_empty());
        assert!(checked.iter().all(|c| c.verdict == Verdict::Unchecked && c.tool.is_none()), "{checked:?}");
    }

    #[test]
    fn a_tool_output_of_another_shape_is_an_error_not_a_verdict() {
        let kind = ClaimKind::Primality { n: "7".into(), prime: true };
        assert_eq!(
            judge(&kind, &json!({"n": "7", "prime": true, "factors": ["7"], "deterministic": true})),
            Ok(Verdict::Supported)
        );
        let err = judge(&kind, &json!({"n": "7", "is_prime": true})).unwrap_err();
        assert!(err.contains("primality output"), "{err}");
    }
}
