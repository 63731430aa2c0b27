//! Verifying a final answer: its atomic claims, each settled by an exact tool, judged
//! against corpus evidence, or left unchecked; and the rules that turn claim verdicts
//! into the answer's verdict.
//!
//! Verification comes after the answer: a decomposer or judge failure degrades what is
//! known (sentences as claims, a claim left unchecked) and is recorded, never failing
//! a run whose answer exists.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ClaimReport, Consistency, ConsistencyKind, Evidence, Span, SupportCounts, Verification};
use crate::{
    agents::{
        attributor::{content_words, lexical_support},
        critic::Finding,
        decomposer::{decompose, sentence_claims},
        solver, AgentError, AgentSet, AtomicClaim, Calibration, CheckedClaim, Decomposition, Entailment, JudgeChoice,
        JudgeKind, Label, Verdict,
    },
    corpus::{Retriever, SearchOptions},
    llm::{ChatModel, Message},
    trace::RunRecorder,
};

/// What verification of the final answer does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VerifyOptions {
    /// Split the answer into claims (as `claims` says); off = only the claims the
    /// tool-checker's patterns find.
    pub decompose: bool,
    /// What a claim is when `decompose` is on.
    #[serde(default)]
    pub claims: ClaimUnit,
    /// The judge of claims against corpus passages.
    pub judge: JudgeChoice,
    /// How the model judge's label probabilities are corrected (recorded, so replay
    /// applies the same).
    #[serde(default, skip_serializing_if = "Calibration::is_none")]
    pub calibration: Calibration,
    /// Score ALCE citation quality after citing (judge calls for each cited sentence).
    #[serde(default = "yes")]
    pub citation_quality: bool,
    /// Candidate passages retrieved per claim.
    pub candidates: usize,
    /// Self-consistency: draw this many more answers and judge each still-unchecked
    /// claim against each of them (0 = off).
    pub samples: u32,
    /// Self-contradiction: judge every pair of the answer's claims (at most the first
    /// `MAX_PAIRED_CLAIMS`, so at most 28 pairs).
    pub contradictions: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            decompose: true,
            claims: ClaimUnit::Atomic,
            judge: JudgeChoice::Model,
            calibration: Calibration::None,
            citation_quality: true,
            candidates: 3,
            samples: 0,
            contradictions: false,
        }
    }
}

fn yes() -> bool {
    true
}

/// What one claim of an answer is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimUnit {
    /// The decomposer's atomic claims (one model call), its sentences if it fails.
    #[default]
    Atomic,
    /// The answer's sentences (no model call).
    Sentences,
    /// The whole answer, as one claim (a claim to check, as in SciFact or MiniCheck).
    Whole,
}

impl std::str::FromStr for ClaimUnit {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "atomic" => Ok(Self::Atomic),
            "sentences" => Ok(Self::Sentences),
            "whole" => Ok(Self::Whole),
            other => Err(format!("{other:?} is not atomic, sentences or whole")),
        }
    }
}

/// Claims paired in the self-contradiction check (pairs grow quadratically).
pub const MAX_PAIRED_CLAIMS: usize = 8;

/// Temperature of the answers drawn for self-consistency.
const SAMPLE_TEMPERATURE: f32 = 0.7;

/// The agents and evidence sources verification uses.
pub(super) struct Verifier<'a> {
    pub agents: &'a AgentSet,
    /// Draws the samples of the self-consistency check.
    pub sampler: &'a dyn ChatModel,
    /// The conversation before the question, which samples see as the draft did.
    pub history: &'a [Message],
    /// The seed samples derive theirs from.
    pub seed: u64,
    pub decomposer: &'a dyn ChatModel,
    pub judge: Box<dyn Entailment + 'a>,
    pub retriever: Option<&'a dyn Retriever>,
    pub recorder: &'a RunRecorder,
    pub options: VerifyOptions,
}

impl Verifier<'_> {
    /// The atomic claims of `answer`, each with its verdict and evidence, and the text
    /// of the passage it was judged on first (for a critic to read).
    pub async fn claims(
        &self,
        question: &str,
        answer: &str,
        tool_checked: &[CheckedClaim],
    ) -> Result<(Vec<Settled>, Decomposition), AgentError> {
        let (atomic, how) = match self.options.claims {
            ClaimUnit::Sentences => (sentence_claims(answer), Decomposition::Sentences),
            ClaimUnit::Whole => (whole_claim(answer), Decomposition::Whole),
            ClaimUnit::Atomic => match decompose(self.agents, self.decomposer, self.recorder, question, answer).await {
                Ok(found) => found,
                Err(AgentError::Llm(e)) => {
                    let claims = sentence_claims(answer);
                    let data = json!({ "reason": format!("the decomposer failed: {e}"), "claims": claims });
                    self.recorder.event("decomposer", "decomposition_fallback", data).await?;
                    (claims, Decomposition::Sentences)
                }
                Err(other) => return Err(other),
            },
        };
        let mut reports = Vec::with_capacity(atomic.len());
        for claim in atomic {
            reports.push(self.settle(claim, tool_checked).await?);
        }
        if self.options.samples > 0 {
            self.consistency(question, &mut reports).await?;
        }
        if self.options.contradictions {
            self.contradictions(&mut reports).await?;
        }
        Ok((reports, how))
    }

    /// Self-consistency (SelfCheckGPT): draw more answers and judge each claim no tool
    /// or passage settled against each; a claim most samples do not back is
    /// `unsupported` and `inconsistent`, one they do is `supported` and `consistent`.
    async fn consistency(&self, question: &str, claims: &mut [Settled]) -> Result<(), AgentError> {
        let open: Vec<usize> = (0..claims.len()).filter(|i| claims[*i].report.verdict == Verdict::Unchecked).collect();
        if open.is_empty() {
            return Ok(());
        }
        let n = self.options.samples;
        let mut samples = Vec::with_capacity(n as usize);
        for i in 0..n {
            let seed = self.seed.wrapping_add(1000 + u64::from(i));
            match solver::sample(self.agents, self.sampler, self.history, question, SAMPLE_TEMPERATURE, seed).await {
                Ok(reply) => samples.push(reply.text().trim().to_string()),
                Err(AgentError::Llm(e)) => {
                    let data = json!({ "error": e.to_string(), "drawn": samples.len() });
                    self.recorder.event("solver", "sampling_failed", data).await?;
                    break;
                }
                Err(other) => return Err(other),
            }
        }
        if samples.is_empty() {
            return Ok(());
        }
        for i in open {
            let claim = claims[i].report.text.clone();
            let mut backed = 0u32;
            for sample in &samples {
                match self.judge.judge(&claim, std::slice::from_ref(sample)).await {
                    Ok(j) if j.label == Label::Supported => backed += 1,
                    Ok(_) => {}
                    Err(AgentError::Llm(e)) => {
                        let data = json!({ "claim": claim, "error": e.to_string() });
                        self.recorder.event("judge", "judgement_failed", data).await?;
                    }
                    Err(other) => return Err(other),
                }
            }
            let score = f64::from(backed) / samples.len() as f64;
            let kind = if score >= 0.5 { ConsistencyKind::Consistent } else { ConsistencyKind::Inconsistent };
            let report = &mut claims[i].report;
            report.verdict =
                if kind == ConsistencyKind::Consistent { Verdict::Supported } else { Verdict::Unsupported };
            report.consistency = Some(Consistency { kind, score, samples: samples.len() as u32 });
            report.score = Some(score);
            self.recorder
                .event("judge", "consistency", json!({ "claim": claim, "consistency": report.consistency }))
                .await?;
        }
        Ok(())
    }

    /// Self-contradiction (ChatProtect): a pair of the answer's own claims that the judge
    /// finds contradictory makes both `contradicted`, each pointing at the other.
    async fn contradictions(&self, claims: &mut [Settled]) -> Result<(), AgentError> {
        let n = claims.len().min(MAX_PAIRED_CLAIMS);
        for a in 0..n {
            for b in a + 1..n {
                let (first, second) = (claims[a].report.text.clone(), claims[b].report.text.clone());
                let judged = match self.judge.judge(&second, std::slice::from_ref(&first)).await {
                    Ok(j) => j,
                    Err(AgentError::Llm(e)) => {
                        let data = json!({ "claims": [first, second], "error": e.to_string() });
                        self.recorder.event("judge", "judgement_failed", data).await?;
                        continue;
                    }
                    Err(other) => return Err(other),
                };
                if judged.label != Label::Contradicted {
                    continue;
                }
                self.recorder
                    .event("judge", "self_contradiction", json!({ "claims": [first, second], "judgement": judged }))
                    .await?;
                let span = |s: &Settled| Span { text: s.report.text.clone(), start: s.report.start, end: s.report.end };
                let (span_a, span_b) = (span(&claims[a]), span(&claims[b]));
                for (i, other) in [(a, span_b), (b, span_a)] {
                    let r = &mut claims[i].report;
                    r.verdict = Verdict::Contradicted;
                    r.contradicts = Some(other);
                    r.judge.get_or_insert(judged.judge);
                }
            }
        }
        Ok(())
    }

    /// One claim: a tool verdict where a decisive tool claim lies inside it, else the
    /// judge over the passages retrieved for it, else unchecked.
    async fn settle(&self, claim: AtomicClaim, tool_checked: &[CheckedClaim]) -> Result<Settled, AgentError> {
        let mut report = ClaimReport::new(claim.text.clone(), claim.start, claim.end, Verdict::Unchecked);
        let inside = tools_inside(&claim.text, tool_checked);
        if !inside.is_empty() {
            let refuted = inside.iter().any(|c| c.verdict == Verdict::Contradicted);
            report.verdict = if refuted { Verdict::Contradicted } else { Verdict::Supported };
            report.judge = Some(JudgeKind::Tool);
            report.score = Some(1.0);
            report.evidence = inside.iter().filter_map(|c| tool_evidence(c)).collect();
            return Ok(Settled { report, passage: None });
        }
        let Some(retriever) = self.retriever else { return Ok(Settled { report, passage: None }) };
        let hits =
            retriever.search(&claim.text, &SearchOptions { k: self.options.candidates, ..Default::default() })?;
        if hits.is_empty() {
            return Ok(Settled { report, passage: None });
        }
        let texts: Vec<String> = hits.iter().map(|h| h.passage.evidence_text()).collect();
        let judgement = match self.judge.judge(&claim.text, &texts).await {
            Ok(j) => j,
            Err(AgentError::Llm(e)) => {
                let data = json!({ "claim": claim.text, "error": e.to_string() });
                self.recorder.event("judge", "judgement_failed", data).await?;
                return Ok(Settled { report, passage: None });
            }
            Err(other) => return Err(other),
        };
        self.recorder.event("judge", "judgement", json!({ "claim": claim.text, "judgement": judgement })).await?;
        report.verdict = judgement.label.verdict();
        report.judge = Some(judgement.judge);
        report.score = Some(judgement.score);
        report.label_logprobs = judgement.logprobs;
        report.evidence = hits
            .iter()
            .map(|h| Evidence::Passage {
                doc_id: h.passage.doc_id.clone(),
                passage_id: h.passage.passage_id.clone(),
                start: h.passage.start,
                end: h.passage.end,
                score: lexical_support(&claim.text, &h.passage.text),
            })
            .collect();
        Ok(Settled { report, passage: texts.into_iter().next() })
    }
}

/// The answer as one claim, its span the answer without surrounding white space.
fn whole_claim(answer: &str) -> Vec<AtomicClaim> {
    let text = answer.trim();
    if text.is_empty() {
        return Vec::new();
    }
    let start = answer[..answer.len() - answer.trim_start().len()].chars().count();
    vec![AtomicClaim { text: text.to_string(), start, end: start + text.chars().count() }]
}

/// A settled claim, and the first passage it was judged on.
pub(super) struct Settled {
    pub report: ClaimReport,
    pub passage: Option<String>,
}

impl Settled {
    /// As the critic is shown it: the passage shortened to a few hundred characters.
    pub fn finding(&self) -> Finding {
        let evidence = self.passage.as_ref().map(|p| {
            let short: String = p.chars().take(300).collect();
            if short.len() < p.len() {
                format!("{short}...")
            } else {
                short
            }
        });
        Finding { text: self.report.text.clone(), verdict: self.report.verdict, evidence }
    }

    /// What the solver should fix, when the claim is contradicted or unsupported.
    pub fn problem(&self) -> Option<String> {
        let text = &self.report.text;
        match self.report.verdict {
            Verdict::Contradicted => Some(match &self.passage {
                Some(_) => format!(
                    "\"{text}\" is contradicted by the evidence: {}",
                    self.finding().evidence.unwrap_or_default()
                ),
                None => format!("\"{text}\" is false according to an exact tool"),
            }),
            Verdict::Unsupported => Some(format!("\"{text}\" is not supported by the evidence")),
            _ => None,
        }
    }
}

/// The decisive tool claims whose words all occur in `claim` (so "2 + 2 = 4" settles
/// "2 + 2 = 4." but not "The Moon is made of cheese.").
fn tools_inside<'a>(claim: &str, tool_checked: &'a [CheckedClaim]) -> Vec<&'a CheckedClaim> {
    let words = content_words(claim);
    tool_checked
        .iter()
        .filter(|c| matches!(c.verdict, Verdict::Supported | Verdict::Contradicted))
        .filter(|c| {
            let theirs = content_words(&c.claim.text);
            !theirs.is_empty() && theirs.is_subset(&words)
        })
        .collect()
}

/// The answer's verdict from its claims: verified only when there are claims and every
/// one is supported; refuted when any is contradicted; unknown otherwise.
pub(super) fn verification(claims: &[ClaimReport]) -> Verification {
    if claims.iter().any(|c| c.verdict == Verdict::Contradicted) {
        Verification::Refuted
    } else if !claims.is_empty() && claims.iter().all(|c| c.verdict == Verdict::Supported) {
        Verification::Verified
    } else {
        Verification::Unknown
    }
}

/// Claims counted by verdict.
pub(super) fn support(claims: &[ClaimReport]) -> SupportCounts {
    let count = |v: Verdict| claims.iter().filter(|c| c.verdict == v).count();
    SupportCounts {
        supported: count(Verdict::Supported),
        contradicted: count(Verdict::Contradicted),
        unsupported: count(Verdict::Unsupported),
        unchecked: count(Verdict::Unchecked),
    }
}

/// A tool call's evidence, when the tool ran.
pub(super) fn tool_evidence(c: &CheckedClaim) -> Option<Evidence> {
    match (&c.tool, &c.input, &c.output) {
        (Some(tool), Some(input), Some(output)) => {
            Some(Evidence::Tool { tool: tool.clone(), input: input.clone(), output: output.clone() })
        }
        _ => None,
    }
}

/// A tool-checked claim as the answer reports it.
pub(super) fn tool_claim(c: &CheckedClaim) -> ClaimReport {
    ClaimReport {
        kind: Some(c.claim.kind.clone()),
        evidence: tool_evidence(c).into_iter().collect(),
        ..ClaimReport::new(c.claim.text.clone(), c.claim.start, c.claim.end, c.verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(text: &str, verdict: Verdict) -> ClaimReport {
        ClaimReport::new(text, 0, 0, verdict)
    }

    #[test]
    fn verified_means_every_claim_supported() {
        use Verdict::*;
        let v = |vs: &[Verdict]| verification(&vs.iter().map(|v| claim("c", *v)).collect::<Vec<_>>());
        assert_eq!(v(&[Supported, Supported]), Verification::Verified);
        assert_eq!(v(&[Supported, Unchecked]), Verification::Unknown, "one unchecked claim is not verified");
        assert_eq!(v(&[Supported, Unsupported]), Verification::Unknown);
        assert_eq!(v(&[Supported, Contradicted, Unchecked]), Verification::Refuted);
        assert_eq!(v(&[]), Verification::Unknown, "no claims, nothing verified");
        let counts = support(&[claim("a", Supported), claim("b", Unchecked), claim("c", Unchecked)]);
        assert_eq!((counts.supported, counts.unchecked, counts.contradicted), (1, 2, 0));
    }

    #[tokio::test]
    async fn tool_claims_settle_only_the_claims_that_hold_them() {
        let tools = crate::tools::ToolRegistry::standard();
        let checked =
            crate::agents::check_answer("", "2 + 2 = 4. The Moon is made of cheese.", &tools, None).await.unwrap();
        assert_eq!(tools_inside("2 + 2 = 4.", &checked).len(), 1);
        assert!(tools_inside("The Moon is made of cheese.", &checked).is_empty());
    }
}
