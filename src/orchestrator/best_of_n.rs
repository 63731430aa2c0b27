//! `best-of-n`: draw N answers, verify each claim by claim, keep the one the verifier
//! supports best. The simplest verifier-driven strategy (DSPy's `BestOfN`, reward-model
//! reranking), here with recheck's verifier as the reward.
//!
//! The order: fewest contradicted claims, then the largest share of claims supported
//! (a share, so an answer gains nothing by making more claims), then the model's own
//! likelihood (mean log-probability per token, where the backend gives it), then the
//! first drawn. When every candidate has a contradicted claim, none passed, and the
//! first is kept and the outcome says so.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    run::{stop_reason, Loop, Revised},
    StopReason,
};
use crate::{
    agents::{check_answer, solver, AgentError, Verdict},
    corpus::Passage,
    llm::{ChatModel, Completion, FinishReason},
};

/// The sampling temperature of the candidates when the solver's own is lower: the
/// candidates must differ for the choice to mean anything.
pub const CANDIDATE_TEMPERATURE: f32 = 0.7;

/// Answers drawn when no number is given (`--candidates`, `candidates`).
pub const DEFAULT_CANDIDATES: u32 = 4;

/// One drawn answer and what the verifier made of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// 0-based, in drawing order.
    pub index: u32,
    /// The answer.
    pub answer: String,
    /// Claims checked (by tools, and by the judge against evidence when there is a corpus).
    pub claims: usize,
    /// Of them, contradicted.
    pub contradicted: usize,
    /// Of them, supported.
    pub supported: usize,
    /// Mean log-probability per generated token, when the backend gives log-probabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub likelihood: Option<f64>,
    /// Whether it was kept.
    #[serde(default)]
    pub chosen: bool,
}

impl Candidate {
    /// A candidate scored from the verdicts on its claims.
    pub fn scored(index: u32, answer: String, verdicts: &[Verdict], likelihood: Option<f64>) -> Self {
        let count = |v: Verdict| verdicts.iter().filter(|x| **x == v).count();
        Candidate {
            index,
            answer,
            claims: verdicts.len(),
            contradicted: count(Verdict::Contradicted),
            supported: count(Verdict::Supported),
            likelihood,
            chosen: false,
        }
    }

    /// The share of its claims supported (0 with no claims).
    pub fn supported_share(&self) -> f64 {
        if self.claims == 0 {
            0.0
        } else {
            self.supported as f64 / self.claims as f64
        }
    }

    /// Whether verification refuted it (some claim contradicted).
    pub fn failed(&self) -> bool {
        self.contradicted > 0
    }
}

/// Which candidate is kept, and whether every one failed verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// Its position in the list.
    pub index: usize,
    /// Every candidate had a contradicted claim (the first is kept).
    pub all_failed: bool,
}

/// The candidate the verifier supports best; `None` for an empty list.
pub fn choose(candidates: &[Candidate]) -> Option<Choice> {
    if candidates.is_empty() {
        return None;
    }
    if candidates.iter().all(Candidate::failed) {
        return Some(Choice { index: 0, all_failed: true });
    }
    let better = |a: &Candidate, b: &Candidate| -> Ordering {
        b.contradicted
            .cmp(&a.contradicted)
            .then(a.supported_share().total_cmp(&b.supported_share()))
            .then(match (a.likelihood, b.likelihood) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                _ => Ordering::Equal,
            })
            // The earlier one wins a tie.
            .then(b.index.cmp(&a.index))
    };
    let best = candidates.iter().enumerate().max_by(|(_, a), (_, b)| better(a, b)).map(|(i, _)| i)?;
    Some(Choice { index: best, all_failed: false })
}

/// Choose among `candidates` (the first of an empty list: nothing to mark) and mark the
/// kept one `chosen`.
pub fn keep(candidates: &mut [Candidate]) -> Choice {
    let choice = choose(candidates).unwrap_or(Choice { index: 0, all_failed: false });
    if let Some(c) = candidates.get_mut(choice.index) {
        c.chosen = true;
    }
    choice
}

impl Choice {
    /// The stop reason that reports this choice among `of` candidates.
    pub fn stop_reason(self, of: usize) -> StopReason {
        StopReason::BestOfN { chosen: self.index as u32, of: of as u32, all_failed: self.all_failed }
    }
}

/// The mean log-probability per token of a completion's first choice, when it has them.
pub fn mean_logprob(completion: &Completion) -> Option<f64> {
    let tokens = completion.choices.first()?.logprobs.as_ref()?;
    (!tokens.is_empty()).then(|| tokens.iter().map(|t| t.logprob).sum::<f64>() / tokens.len() as f64)
}

impl Loop<'_> {
    /// Draw the candidates on the loop's budget, verify each, keep the best. A failed
    /// first draw fails the run; a later failure (or the budget) stops the drawing and
    /// the best of those drawn is kept.
    pub(super) async fn best_of_n(&self, question: &str, passages: &[Passage]) -> Result<Revised, AgentError> {
        let lo = &self.opts.loop_options;
        let temperature = self.agents.solver.temperature.unwrap_or(0.0).max(CANDIDATE_TEMPERATURE);
        let logprobs = self.solver.capabilities().logprobs;
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut finishes: Vec<FinishReason> = Vec::new();
        let mut interrupted = None;
        for k in 0..lo.candidates.max(1) {
            if let Some(limit) = self.budget.exhausted().filter(|_| k > 0) {
                interrupted = Some(StopReason::Budget(limit));
                break;
            }
            let seed = lo.seed.wrapping_add(u64::from(k));
            let draw = solver::candidate(
                self.agents,
                &self.solver,
                solver::Draw { history: self.history, question, passages, temperature, seed, logprobs },
            )
            .await;
            let completion = match draw {
                Ok(c) => c,
                Err(e) if k > 0 => {
                    interrupted = Some(stop_reason(e)?);
                    break;
                }
                Err(e) => return Err(e),
            };
            let answer = completion.text().trim().to_string();
            let verdicts = match self.candidate_verdicts(question, &answer).await {
                Ok(v) => v,
                Err(e) => {
                    // Unverified, it cannot be compared: the ones verified so far are kept.
                    interrupted = Some(stop_reason(e)?);
                    if k > 0 {
                        break;
                    }
                    Vec::new()
                }
            };
            let candidate = Candidate::scored(k, answer, &verdicts, mean_logprob(&completion));
            self.recorder.event("solver", "candidate", json!(candidate)).await?;
            candidates.push(candidate);
            finishes.push(completion.finish_reason());
            if interrupted.is_some() {
                break;
            }
        }
        let choice = keep(&mut candidates);
        let chosen_by = choice.stop_reason(candidates.len());
        let data = json!({ "chosen": choice.index, "all_failed": choice.all_failed, "candidates": candidates });
        self.recorder.event("solver", "best_of_n", data).await?;
        let answer = candidates.get(choice.index).map(|c| c.answer.clone()).unwrap_or_default();
        let finish = finishes.get(choice.index).cloned().unwrap_or(FinishReason::Stop);
        Ok(Revised { answer, finish, rounds: Vec::new(), stopped_by: interrupted.unwrap_or(chosen_by), candidates })
    }

    /// The verdicts on one candidate's claims: the exact tools', then (with a corpus and
    /// decomposition on) the judge's on each atomic claim against the evidence.
    async fn candidate_verdicts(&self, question: &str, answer: &str) -> Result<Vec<Verdict>, AgentError> {
        let checked = check_answer(question, answer, &self.tools, Some(&self.recorder)).await?;
        let mut verdicts: Vec<Verdict> = checked.iter().map(|c| c.verdict).collect();
        if self.opts.verify.decompose && self.opts.retriever.is_some() {
            let verifier = self.verifier(&self.loop_decomposer, &self.loop_judge).await?;
            let (settled, _) = verifier.claims(question, answer, &checked).await?;
            verdicts.extend(settled.iter().map(|s| s.report.verdict));
        }
        Ok(verdicts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(index: u32, verdicts: &[Verdict], likelihood: Option<f64>) -> Candidate {
        Candidate::scored(index, format!("answer {index}"), verdicts, likelihood)
    }

    #[test]
    fn fewest_contradicted_then_share_supported_then_likelihood_then_first() {
        use Verdict::*;
        let list = [c(0, &[Contradicted, Supported], None), c(1, &[Supported, Unchecked], None)];
        assert_eq!(choose(&list), Some(Choice { index: 1, all_failed: false }));
        // A share: four supported of eight is no better than one of two.
        let longer = [c(0, &[Supported, Unchecked], None), c(1, &[Supported, Supported, Unchecked, Unchecked], None)];
        assert_eq!(choose(&longer).map(|x| x.index), Some(0));
        let liked = [c(0, &[Supported], Some(-1.2)), c(1, &[Supported], Some(-0.4))];
        assert_eq!(choose(&liked).map(|x| x.index), Some(1));
        let tied = [c(0, &[], None), c(1, &[], None), c(2, &[], None)];
        assert_eq!(choose(&tied).map(|x| x.index), Some(0));
        assert_eq!(choose(&[]), None);
    }

    #[test]
    fn when_every_candidate_fails_the_first_is_kept_and_said_to() {
        use Verdict::*;
        let mut list = vec![c(0, &[Contradicted, Contradicted], None), c(1, &[Contradicted, Supported], Some(0.0))];
        let choice = keep(&mut list);
        assert_eq!(choice, Choice { index: 0, all_failed: true });
        let reason = choice.stop_reason(list.len());
        assert!(list[0].chosen && !list[1].chosen);
        assert_eq!(reason.to_string(), "best of 2: every candidate failed verification; the first kept");
    }
}
