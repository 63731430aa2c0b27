//! What a run returns: the answer, its claims with verdicts and evidence, and the
//! history of rounds.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Strategy;
use crate::{
    agents::{CheckedClaim, CitationQuality, ClaimKind, Critique, Decomposition, JudgeKind, Verdict},
    corpus::Passage,
    llm::{BudgetLimit, FinishReason, ModelInfo, Usage},
    trace::RunId,
};

/// Why a verify-and-revise loop stopped. Serialised as its sentence (the JSON output
/// and recorded outcomes keep the wording they always had).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The `single` strategy answers once.
    SingleAnswer,
    /// Review found nothing to fix.
    ReviewPassed,
    /// If-or-Else: the critic was confident the answer is right, so it was kept.
    ConfidentKeep,
    /// The critic's output failed validation past its re-asks; the answer is unchecked.
    CritiqueFailed,
    /// The round limit was reached.
    RoundLimit,
    /// The run's call or token budget was spent.
    Budget(BudgetLimit),
    /// A model call failed after the first draft; the best answer so far is kept.
    Error(String),
    /// The answer was given to be verified (`recheck verify`), not written here.
    Given,
    /// `best-of-n` kept candidate `chosen` (0-based) of `of`.
    BestOfN {
        /// The kept candidate.
        chosen: u32,
        /// Candidates drawn.
        of: u32,
        /// Every candidate had a contradicted claim, so the first was kept.
        all_failed: bool,
    },
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::SingleAnswer => f.write_str("single answer"),
            StopReason::ReviewPassed => f.write_str("review found nothing to fix"),
            StopReason::ConfidentKeep => f.write_str("confident answer kept (if-or-else)"),
            StopReason::CritiqueFailed => f.write_str("critique failed validation; answer unchecked"),
            StopReason::RoundLimit => f.write_str("round limit"),
            StopReason::Budget(BudgetLimit::Calls) => f.write_str("call budget"),
            StopReason::Budget(BudgetLimit::Tokens) => f.write_str("token budget"),
            StopReason::Budget(BudgetLimit::Time) => f.write_str("time budget"),
            StopReason::Error(e) => write!(f, "stopped by an error: {e}"),
            StopReason::Given => f.write_str("given answer, verified as it is"),
            StopReason::BestOfN { of, all_failed: true, .. } => {
                write!(f, "best of {of}: every candidate failed verification; the first kept")
            }
            StopReason::BestOfN { chosen, of, all_failed: false } => {
                write!(f, "best of {of}: candidate {chosen} kept")
            }
        }
    }
}

impl Serialize for StopReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Whether the answer was verified: every claim supported (`true`), some claim
/// contradicted (`false`), or neither (`"unknown"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Every checked claim holds, and at least one was checked.
    Verified,
    /// Some claim is contradicted.
    Refuted,
    /// Nothing decisive was checked.
    Unknown,
}

impl Verification {
    /// Every verdict, in the order reports list them.
    pub const ALL: [Verification; 3] = [Verification::Verified, Verification::Refuted, Verification::Unknown];

    /// `verified`, `refuted` or `unknown`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verification::Verified => "verified",
            Verification::Refuted => "refuted",
            Verification::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Verification {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Verification::Verified => s.serialize_bool(true),
            Verification::Refuted => s.serialize_bool(false),
            Verification::Unknown => s.serialize_str("unknown"),
        }
    }
}

impl<'de> Deserialize<'de> for Verification {
    /// Reads what [`Serialize`] writes: `true`, `false` or `"unknown"`.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Bool(true) => Ok(Verification::Verified),
            serde_json::Value::Bool(false) => Ok(Verification::Refuted),
            serde_json::Value::String(s) if s == "unknown" => Ok(Verification::Unknown),
            other => Err(serde::de::Error::custom(format!("{other} is not true, false or \"unknown\""))),
        }
    }
}

/// One round of review and revision.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// 1-based round number.
    pub round: u32,
    /// The answer reviewed.
    pub draft: String,
    /// The critique, when the strategy asks for one and it validated.
    pub critique: Option<Critique>,
    /// True when the critic's output failed validation past its re-asks.
    pub critique_failed: bool,
    /// Tool calls made on the draft, with verdicts.
    pub tool_calls: Vec<CheckedClaim>,
    /// The draft's atomic claims judged against the corpus (with a corpus), as the
    /// critic was shown them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<ClaimReport>,
    /// The If-or-Else decision on the draft (`ioe` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ioe: Option<IoeDecision>,
    /// The revised answer, if the round revised.
    pub revision: Option<String>,
}

/// If-or-Else: whether the critic's confidence in the draft kept it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct IoeDecision {
    /// The critic's confidence that the draft is right.
    pub confidence_in_draft: f64,
    /// The bar (`keep_confidence` in `agents/critic.toml`).
    pub threshold: f64,
    /// Kept (confident) or revised.
    pub keep: bool,
}

/// Evidence for a claim.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Evidence {
    /// An exact tool's result.
    Tool {
        /// Tool name.
        tool: String,
        /// Its input.
        input: serde_json::Value,
        /// Its output.
        output: serde_json::Value,
    },
    /// A corpus passage.
    Passage {
        /// Document id.
        doc_id: String,
        /// Passage id.
        passage_id: String,
        /// Start offset (characters) in the document.
        start: usize,
        /// End offset.
        end: usize,
        /// Support: the lexical share in [0, 1], or the ContextCite weight in nats.
        score: f64,
    },
}

/// A claim of the final answer with its verdict.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimReport {
    /// The claim as written.
    pub text: String,
    /// Start, in characters, in the answer.
    pub start: usize,
    /// End, in characters.
    pub end: usize,
    /// The verdict.
    pub verdict: Verdict,
    /// What a tool-checked claim asserts (`None` for atomic claims and cited sentences).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<ClaimKind>,
    /// What it rests on.
    pub evidence: Vec<Evidence>,
    /// Who decided an atomic claim's verdict (`None` when nothing did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge: Option<JudgeKind>,
    /// The judge's score in [0, 1].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The model judge's log-probabilities of true, false and unknown before
    /// calibration (`null` for a word it could not read), where it read them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_logprobs: Option<crate::agents::calibration::LabelLogprobs>,
    /// Self-consistency (`--samples N`): how many other answers back the claim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<Consistency>,
    /// Self-contradiction: the claim of the same answer this one contradicts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contradicts: Option<Span>,
}

/// The citation scorer that ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attribution {
    /// The scorer the attributor's config (or `--citation-scorer`) asked for.
    pub requested: String,
    /// The scorer that ran: `lexical`, `contextcite`, or `leave_one_out` (the judge's
    /// support without each passage, for backends that cannot score continuations).
    pub scorer: String,
    /// Model calls the scoring made.
    pub model_calls: u32,
}

/// Whether sampled answers back a claim (SelfCheckGPT, Manakul et al., 2023).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Consistency {
    /// `consistent` when at least half the samples back the claim, else `inconsistent`.
    pub kind: ConsistencyKind,
    /// Share of the samples that back it.
    pub score: f64,
    /// Samples drawn.
    pub samples: u32,
}

/// The two outcomes of a consistency check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsistencyKind {
    /// Most samples back the claim.
    Consistent,
    /// Most samples do not (likely made up).
    Inconsistent,
}

/// Another claim of the same answer, by its text and span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Span {
    /// Its text.
    pub text: String,
    /// Start, in characters, in the answer.
    pub start: usize,
    /// End, in characters.
    pub end: usize,
}

impl ClaimReport {
    /// A claim with `verdict`, no evidence yet and nothing else known.
    pub fn new(text: impl Into<String>, start: usize, end: usize, verdict: Verdict) -> Self {
        Self {
            text: text.into(),
            start,
            end,
            verdict,
            kind: None,
            evidence: Vec::new(),
            judge: None,
            score: None,
            label_logprobs: None,
            consistency: None,
            contradicts: None,
        }
    }
}

/// Claims counted by verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportCounts {
    /// Supported by a tool or by evidence.
    pub supported: usize,
    /// Contradicted.
    pub contradicted: usize,
    /// Checked against evidence that does not support them.
    pub unsupported: usize,
    /// Not checked: no tool applies and no evidence was available.
    pub unchecked: usize,
}

/// The result of [`super::ask`].
#[derive(Debug, Clone, Serialize)]
pub struct AskOutcome {
    /// The final answer.
    pub answer: String,
    /// Why the generation that wrote the final answer stopped (`length`: it was cut
    /// at the solver's token limit).
    pub finish_reason: FinishReason,
    /// The answer with `[n]` citation markers after cited sentences.
    pub cited_answer: String,
    /// Cited passages; `[n]` refers to `sources[n-1]`.
    pub sources: Vec<Passage>,
    /// The answer's verdict from its claims' (see [`Verification`]).
    pub verified: Verification,
    /// Claims by verdict.
    pub support: SupportCounts,
    /// Claims of the final answer: what the tool-checker's patterns found (with `kind`)
    /// and the atomic claims (with `judge` where something decided them), by position.
    pub claims: Vec<ClaimReport>,
    /// How the atomic claims were found; `None` when decomposition was off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decomposition: Option<Decomposition>,
    /// The answer's sentences with their citations (with a corpus).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub citations: Vec<ClaimReport>,
    /// Which citation scorer ran, and what it cost (with a corpus).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribution: Option<Attribution>,
    /// ALCE citation recall and precision, judged by the judge (with a corpus).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub citation_quality: Option<CitationQuality>,
    /// Review rounds, in order.
    pub rounds: Vec<Round>,
    /// `best-of-n`: every candidate drawn, with its verification and whether it was kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<super::Candidate>,
    /// Why the loop stopped.
    pub stopped_by: StopReason,
    /// The strategy used.
    pub strategy: Strategy,
    /// The model.
    pub model: ModelInfo,
    /// Tokens over all calls.
    pub usage: Usage,
    /// Model calls made (citation scoring included).
    pub model_calls: u32,
    /// The run in the trace store.
    pub trace_id: RunId,
}

/// What a reader of a stored `ask` or `serve` run needs of its outcome (the run's
/// `output` is a serialised [`AskOutcome`]), read back typed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OutcomeSummary {
    /// The final answer.
    pub answer: String,
    /// The verdict.
    pub verified: Verification,
    /// Claims by verdict.
    pub support: SupportCounts,
    /// How many claims the answer had.
    #[serde(deserialize_with = "count")]
    pub claims: usize,
    /// Why the loop stopped, as [`StopReason`] shows it.
    pub stopped_by: String,
    /// The strategy used.
    pub strategy: Strategy,
    /// Tokens over all calls.
    pub usage: Usage,
    /// Model calls made.
    pub model_calls: u32,
}

impl OutcomeSummary {
    /// The summary of a stored run's outcome; `None` for a run with no outcome or
    /// another kind of output (a pass-through, an experiment).
    pub fn of(run: &crate::trace::RunRecord) -> Option<Self> {
        serde_json::from_value(run.output.clone()?).ok()
    }
}

/// The length of a sequence, its elements skipped.
fn count<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    Ok(Vec::<serde::de::IgnoredAny>::deserialize(d)?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_reads_back_what_it_writes() {
        for v in [Verification::Verified, Verification::Refuted, Verification::Unknown] {
            let json = serde_json::to_value(v).unwrap();
            assert_eq!(serde_json::from_value::<Verification>(json).unwrap(), v);
        }
        assert!(serde_json::from_value::<Verification>(serde_json::json!("maybe")).is_err());
    }
}
