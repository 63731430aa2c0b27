//! The verify-and-revise loop shared by every strategy.
//!
//! Every model call goes through a recording model drawing on the run's [`Budget`],
//! so the trace holds each call and the budget is enforced where calls are made; the
//! loop only reads what was spent.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;

use super::{
    citations,
    verify::{self, Verifier},
    AskOptions, AskOutcome, AskRecord, Attribution, ClaimReport, IoeDecision, Question, Round, StopReason, Strategy,
};
use crate::{
    agents::{
        self, attribute, calibration, check_answer,
        contextcite::{attribute_statement, ContextCiteOptions},
        critic::{self, Finding, Review},
        leave_one_out,
        solver::{self, RevisionInput},
        AgentError, AgentSet, Calibration, CheckedClaim, Entailment, JudgeChoice, Verdict,
    },
    corpus::{split_sentences, Passage, Retriever, SearchOptions},
    llm::{Budget, ChatModel, FinishReason, LlmError, Message, ModelInfo, RecordingModel},
    tools::ToolRegistry,
    trace::{RunId, RunRecorder, RunStatus, TraceStore},
    Error, Result,
};

/// Answer `question` under `options.loop_options.strategy`, recording the run in `store`.
///
/// A failed first draft fails the run ([`Error::RunFailed`]); a failure in a later
/// round stops the loop and returns the best answer so far with its history.
pub async fn ask(
    store: &TraceStore,
    model: Arc<dyn ChatModel>,
    question: impl Into<Question>,
    options: &AskOptions,
) -> Result<AskOutcome> {
    let Question { text, history } = question.into();
    let question = text.as_str();
    let info = crate::llm::identity(model.as_ref());
    let mut input = json!({ "question": question });
    if !history.is_empty() {
        input["history"] = json!(history);
    }
    let config = AskRecord::of(options, info.clone());
    let run_id = store.start_run(options.run_kind, input, &config, options.parent, options.group).await?;
    let state = Loop::new(options, &history, model, RunRecorder::new(store.clone(), run_id, 0));
    let result = match state.revise(question).await {
        Ok(revised) => state.finish(question, revised, info, run_id).await,
        Err(e) => Err(e),
    };
    end_run(store, run_id, result).await
}

/// Store how run `run_id` ended, and hand back its outcome or its error.
pub(super) async fn end_run<T: serde::Serialize>(
    store: &TraceStore,
    run_id: RunId,
    result: std::result::Result<T, AgentError>,
) -> Result<T> {
    match result {
        Ok(outcome) => {
            store.finish_run(run_id, RunStatus::Completed, Some(json!(outcome)), None).await?;
            Ok(outcome)
        }
        Err(e) => {
            store.finish_run(run_id, RunStatus::Failed, None, Some(e.to_string())).await?;
            Err(match e {
                AgentError::Llm(cause) => Error::RunFailed { run_id, cause },
                other => Error::Agent(other),
            })
        }
    }
}

/// What the rounds produced.
pub(super) struct Revised {
    pub answer: String,
    /// Why the generation that wrote the answer stopped.
    pub finish: FinishReason,
    pub rounds: Vec<Round>,
    pub stopped_by: StopReason,
    /// `best-of-n`'s candidates.
    pub candidates: Vec<super::Candidate>,
}

/// How one review round ended.
enum RoundEnd {
    /// Review found nothing to fix (or the critique failed): stop here.
    Kept(Round),
    /// If-or-Else: the critic was confident in the draft: stop here.
    KeptConfident(Round),
    /// The round revised the answer (and why its generation stopped).
    Revised(Round, String, FinishReason),
}

/// The run's agents, models and budget, carried through the rounds.
pub(super) struct Loop<'a> {
    pub(super) opts: &'a AskOptions,
    /// The conversation before the question, which the solver sees.
    pub(super) history: &'a [Message],
    pub(super) agents: &'a AgentSet,
    /// The tools the tool-checker may call.
    pub(super) tools: ToolRegistry,
    pub(super) recorder: RunRecorder,
    pub(super) solver: RecordingModel,
    critic: RecordingModel,
    scorer: RecordingModel,
    decomposer: RecordingModel,
    judge: RecordingModel,
    /// Draws self-consistency samples after the loop.
    sampler: RecordingModel,
    /// The decomposer and judge inside the loop, on its budget.
    pub(super) loop_decomposer: RecordingModel,
    pub(super) loop_judge: RecordingModel,
    /// The verify-and-revise loop's budget.
    pub(super) budget: Arc<Budget>,
    /// What verification and citation spend after the loop.
    after: Arc<Budget>,
    /// The judge's calibration offsets, settled at the first judgement.
    judge_offsets: tokio::sync::OnceCell<[f64; 3]>,
}

fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// A model failure that stops the loop and keeps the best answer so far (a budget
/// refusal is one too); any other error fails the run.
pub(super) fn stop_reason(e: AgentError) -> Result<StopReason, AgentError> {
    match e {
        AgentError::Llm(LlmError::BudgetExhausted(limit)) => Ok(StopReason::Budget(limit)),
        e @ AgentError::Llm(_) => Ok(StopReason::Error(e.to_string())),
        other => Err(other),
    }
}

impl<'a> Loop<'a> {
    /// The agents and models of a run under `options`, recording to `recorder`.
    pub(super) fn new(
        options: &'a AskOptions,
        history: &'a [Message],
        model: Arc<dyn ChatModel>,
        recorder: RunRecorder,
    ) -> Self {
        let lo = &options.loop_options;
        let deadline = lo.time_budget_ms.and_then(|ms| Instant::now().checked_add(Duration::from_millis(ms)));
        let budget = Budget::with_deadline(lo.max_calls, lo.token_budget, deadline);
        let critic_model = options.critic_model.clone().unwrap_or_else(|| model.clone());
        // Verification and citation scoring come after the loop: counted, not limited.
        let after = Budget::unlimited();
        let decomposer = options.decomposer_model.clone().unwrap_or_else(|| model.clone());
        let judge = options.judge_model.clone().unwrap_or_else(|| model.clone());
        Loop {
            opts: options,
            history,
            agents: &options.agents,
            tools: options.agents.checker_tools(&options.tools),
            solver: RecordingModel::with_budget(&recorder, "solver", model.clone(), budget.clone()),
            critic: RecordingModel::with_budget(&recorder, "critic", critic_model, budget.clone()),
            sampler: RecordingModel::with_budget(&recorder, "solver", model.clone(), after.clone()),
            scorer: RecordingModel::with_budget(&recorder, "attributor", model, after.clone()),
            decomposer: RecordingModel::with_budget(&recorder, "decomposer", decomposer.clone(), after.clone()),
            judge: RecordingModel::with_budget(&recorder, "judge", judge.clone(), after.clone()),
            loop_decomposer: RecordingModel::with_budget(&recorder, "decomposer", decomposer, budget.clone()),
            loop_judge: RecordingModel::with_budget(&recorder, "judge", judge, budget.clone()),
            recorder,
            budget,
            after,
            judge_offsets: tokio::sync::OnceCell::new(),
        }
    }

    /// The run's judge over `model`, calibrated as its options say. Contextual
    /// calibration is measured here once a run (its scoring calls are steps of the
    /// run, and a `calibration` event records what they gave).
    async fn entailment<'v>(&'v self, model: &'v RecordingModel) -> Result<Box<dyn Entailment + 'v>, AgentError> {
        let v = &self.opts.verify;
        let seed = self.opts.loop_options.seed;
        let offsets = match (v.judge, v.calibration) {
            (JudgeChoice::Lexical, _) | (_, Calibration::None) => [0.0; 3],
            (JudgeChoice::Model, calibration) => {
                *self
                    .judge_offsets
                    .get_or_try_init(|| async {
                        calibration::check_usable(model)?;
                        let offsets = match calibration {
                            Calibration::Offsets { offsets } => offsets,
                            _ => {
                                let judge = agents::ModelJudge::new(self.agents, model, seed);
                                let measured = calibration::measure_contextual(&judge).await?;
                                self.recorder.event("judge", "calibration", json!(measured)).await?;
                                measured.offsets
                            }
                        };
                        Ok::<_, AgentError>(offsets)
                    })
                    .await?
            }
        };
        Ok(v.judge.judge(self.agents, model, seed, offsets))
    }

    /// The first draft, then review rounds until review passes, a limit is reached or
    /// a model call fails.
    async fn revise(&self, question: &str) -> Result<Revised, AgentError> {
        let lo = &self.opts.loop_options;
        let passages = self.context_passages(question)?;
        if lo.strategy == Strategy::BestOfN {
            return self.best_of_n(question, &passages).await;
        }
        let first = solver::draft(self.agents, &self.solver, self.history, question, &passages, Some(lo.seed)).await?;
        let mut answer = first.text().trim().to_string();
        let mut finish = first.finish_reason();
        if lo.strategy == Strategy::Single {
            let stopped_by = StopReason::SingleAnswer;
            return Ok(Revised { answer, finish, rounds: Vec::new(), stopped_by, candidates: Vec::new() });
        }
        let mut history = vec![normalize(&answer)];
        let mut rejected: Vec<String> = Vec::new();
        let mut rounds = Vec::new();
        let mut stopped_by = StopReason::RoundLimit;
        for round in 1..=lo.rounds {
            if let Some(limit) = self.budget.exhausted() {
                stopped_by = StopReason::Budget(limit);
                break;
            }
            let temperature = (self.agents.solver.temperature.unwrap_or(0.0) + lo.temperature_step * round as f32)
                .min(lo.temperature_cap);
            let seed = Some(lo.seed.wrapping_add(round as u64));
            let (mut record, revision, revision_finish) =
                match self.round(question, &answer, round, temperature, seed, &rejected).await {
                    Ok(RoundEnd::Kept(record)) => {
                        stopped_by =
                            if record.critique_failed { StopReason::CritiqueFailed } else { StopReason::ReviewPassed };
                        rounds.push(record);
                        break;
                    }
                    Ok(RoundEnd::KeptConfident(record)) => {
                        stopped_by = StopReason::ConfidentKeep;
                        rounds.push(record);
                        break;
                    }
                    Ok(RoundEnd::Revised(record, revision, finish)) => (record, revision, finish),
                    Err(e) => {
                        // The failed call is already a recorded step.
                        stopped_by = stop_reason(e)?;
                        break;
                    }
                };
            let (revision, revision_finish) = if lo.reject_repeats && history.contains(&normalize(&revision)) {
                let retry = RetryInput { question, answer: &answer, round, temperature, seed };
                match self.resample_repeat(retry, revision, &mut rejected).await {
                    Ok(r) => r,
                    Err(e) => {
                        stopped_by = stop_reason(e)?;
                        rounds.push(record);
                        break;
                    }
                }
            } else {
                (revision, revision_finish)
            };
            if lo.reject_repeats && !rejected.contains(&answer) {
                rejected.push(answer.clone());
            }
            self.recorder.event("solver", "revision", json!({ "round": round, "answer": revision })).await?;
            history.push(normalize(&revision));
            record.revision = Some(revision.clone());
            rounds.push(record);
            answer = revision;
            finish = revision_finish;
        }
        Ok(Revised { answer, finish, rounds, stopped_by, candidates: Vec::new() })
    }

    /// The solver's own answer continued from `prefix` (prefix included), and why its
    /// generation stopped: the `wait` and `backtrack` revisions.
    async fn continued(
        &self,
        question: &str,
        prefix: &str,
        temperature: f32,
        seed: Option<u64>,
    ) -> Result<(String, FinishReason), AgentError> {
        let (agents, history) = (self.agents, self.history);
        let cont =
            solver::continue_from(agents, &self.solver, &self.recorder, history, question, prefix, temperature, seed)
                .await?;
        Ok((format!("{prefix}{}", cont.text()).trim().to_string(), cont.finish_reason()))
    }

    /// The corpus passages given to the solver as context.
    fn context_passages(&self, question: &str) -> Result<Vec<Passage>, AgentError> {
        Ok(match (&self.opts.retriever, self.opts.context_passages) {
            (Some(r), k) if k > 0 => {
                r.search(question, &SearchOptions { k, ..Default::default() })?.into_iter().map(|h| h.passage).collect()
            }
            _ => Vec::new(),
        })
    }

    /// A revision repeated an earlier answer: tell the solver and resample, hotter.
    async fn resample_repeat(
        &self,
        at: RetryInput<'_>,
        repeated: String,
        rejected: &mut Vec<String>,
    ) -> Result<(String, FinishReason), AgentError> {
        self.recorder.event("solver", "repeat_rejected", json!({ "round": at.round, "answer": repeated })).await?;
        if !rejected.contains(&repeated) {
            rejected.push(repeated);
        }
        let problems = vec!["This answer was already given and judged wrong.".to_string()];
        let input = RevisionInput {
            history: self.history,
            question: at.question,
            draft: at.answer,
            problems: &problems,
            rejected,
        };
        let retry =
            solver::revise(self.agents, &self.solver, input, at.temperature + 0.3, at.seed.map(|s| s ^ 0x5eed)).await?;
        Ok((retry.text().trim().to_string(), retry.finish_reason()))
    }

    /// One review round: check, critique, and revise when something is wrong.
    async fn round(
        &self,
        question: &str,
        answer: &str,
        round: u32,
        temperature: f32,
        seed: Option<u64>,
        rejected: &[String],
    ) -> Result<RoundEnd, AgentError> {
        let strategy = self.opts.loop_options.strategy;
        let mut record = Round {
            round,
            draft: answer.to_string(),
            critique: None,
            critique_failed: false,
            tool_calls: vec![],
            claims: vec![],
            ioe: None,
            revision: None,
        };
        if strategy == Strategy::Wait {
            let (revision, finish) = self.continued(question, &format!("{answer}\nWait,"), temperature, seed).await?;
            return Ok(RoundEnd::Revised(record, revision, finish));
        }
        if strategy == Strategy::Critic {
            record.tool_calls = check_answer(question, answer, &self.tools, Some(&self.recorder)).await?;
        }
        let mut findings: Vec<Finding> = record.tool_calls.iter().map(Finding::from).collect();
        let mut problems = refuted_by_tools(&record.tool_calls);
        if self.opts.verify.decompose && self.opts.retriever.is_some() {
            // With a corpus, the draft's atomic claims are judged against it each round
            // and the critic sees what is contradicted or unsupported, with its evidence.
            let verifier = self.verifier(&self.loop_decomposer, &self.loop_judge).await?;
            let (settled, _) = verifier.claims(question, answer, &record.tool_calls).await?;
            for s in settled.iter().filter(|s| matches!(s.report.verdict, Verdict::Contradicted | Verdict::Unsupported))
            {
                findings.push(s.finding());
                problems.extend(s.problem());
            }
            record.claims = settled.into_iter().map(|s| s.report).collect();
        }
        let review = Review { question, draft: answer, findings: &findings, ioe: strategy == Strategy::Ioe };
        let critique = critic::critique(self.agents, &self.critic, &self.recorder, review).await?;
        record.critique_failed = critique.is_none();
        record.critique = critique.clone();
        let mut critic_says_wrong = critique.as_ref().is_some_and(|c| !c.is_correct());
        if let (Strategy::Ioe, Some(c)) = (strategy, critique.as_ref()) {
            // If-or-Else: keep a draft the critic is confident in, revise otherwise.
            let threshold = self.agents.critic.keep_confidence.unwrap_or(0.5);
            let decision = IoeDecision { confidence_in_draft: c.confidence_in_draft(), threshold, keep: false };
            let decision = IoeDecision { keep: decision.confidence_in_draft >= threshold, ..decision };
            self.recorder.event("critic", "ioe_decision", json!(decision)).await?;
            record.ioe = Some(decision);
            if decision.keep && problems.is_empty() {
                return Ok(RoundEnd::KeptConfident(record));
            }
            if !decision.keep && c.is_correct() {
                problems.push("The reviewer is not confident that the answer is correct.".into());
            }
            critic_says_wrong = critic_says_wrong && !decision.keep;
        }
        if problems.is_empty() && !critic_says_wrong {
            return Ok(RoundEnd::Kept(record));
        }
        if let Some(c) = critique.as_ref().filter(|_| critic_says_wrong) {
            problems.extend(c.problems.iter().cloned());
        }
        if problems.is_empty() {
            problems.push("The reviewer judged the answer incorrect.".into());
        }
        let steps = split_sentences(answer);
        let mut wrong_step = critique.as_ref().and_then(|c| c.earliest_wrong_step);
        if let Some(step) = wrong_step.filter(|s| *s >= steps.len()) {
            // A step the draft does not have: no step at all, and the critic's error is recorded.
            let data = json!({ "earliest_wrong_step": step, "steps": steps.len() });
            self.recorder.event("critic", "step_out_of_range", data).await?;
            wrong_step = None;
        }
        let revision = match wrong_step.filter(|_| strategy == Strategy::Backtrack) {
            Some(step) => {
                let keep = steps.get(step).map(|r| r.start).unwrap_or(answer.len());
                let prefix = &answer[..keep];
                // Sample, so the regenerated step differs from the original.
                self.continued(question, prefix, temperature.max(0.7), seed).await?
            }
            None => {
                let input =
                    RevisionInput { history: self.history, question, draft: answer, problems: &problems, rejected };
                let rev = solver::revise(self.agents, &self.solver, input, temperature, seed).await?;
                (rev.text().trim().to_string(), rev.finish_reason())
            }
        };
        Ok(RoundEnd::Revised(record, revision.0, revision.1))
    }

    /// Citations for each sentence, by the configured scorer, and which scorer ran.
    async fn cite(
        &self,
        question: &str,
        answer: &str,
        retriever: &dyn Retriever,
    ) -> Result<(Vec<agents::CitedSentence>, Attribution), AgentError> {
        let cfg = &self.agents.attributor;
        let candidates = cfg.candidates.unwrap_or(5);
        let mut cited = attribute(answer, retriever, candidates, cfg.min_support.unwrap_or(0.5))?;
        let requested = cfg.scorer.clone().unwrap_or_else(|| "lexical".into());
        let calls_before = self.after.calls();
        let scorer = match requested.as_str() {
            "contextcite" if self.scorer.capabilities().score_continuation => "contextcite",
            "contextcite" | "leave_one_out" => "leave_one_out",
            _ => "lexical",
        };
        if scorer != requested {
            // Never fall back silently: the trace and the outcome say which scorer ran.
            let reason = format!("{} cannot score continuations", self.scorer.info().spec);
            let data = json!({ "requested": requested, "used": scorer, "reason": reason });
            self.recorder.event("attributor", "scorer_fallback", data).await?;
        }
        if scorer != "lexical" {
            let judge = self.entailment(&self.judge).await?;
            let options = ContextCiteOptions {
                ablations: cfg.ablations.unwrap_or(24),
                seed: self.opts.loop_options.seed,
                ..Default::default()
            };
            let min_weight = if scorer == "contextcite" { cfg.min_weight.unwrap_or(0.5) } else { f64::MIN_POSITIVE };
            for sentence in &mut cited {
                let hits = retriever.search(&sentence.text, &SearchOptions { k: candidates, ..Default::default() })?;
                let sources: Vec<String> = hits.iter().map(|h| h.passage.text.clone()).collect();
                if sources.is_empty() {
                    continue;
                }
                let weights = if scorer == "contextcite" {
                    attribute_statement(&self.scorer, question, &sources, &sentence.text, &options).await?
                } else {
                    leave_one_out(judge.as_ref(), &sentence.text, &sources).await?
                };
                let best = weights.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1));
                sentence.support = best.map(|(_, w)| *w).unwrap_or(0.0);
                sentence.citations = match best {
                    Some((i, w)) if *w >= min_weight => vec![(hits[i].passage.clone(), *w)],
                    _ => Vec::new(),
                };
            }
        }
        let attribution =
            Attribution { requested, scorer: scorer.to_string(), model_calls: self.after.calls() - calls_before };
        Ok((cited, attribution))
    }

    /// Check, verify and cite the final answer.
    pub(super) async fn finish(
        &self,
        question: &str,
        revised: Revised,
        model: ModelInfo,
        trace_id: RunId,
    ) -> Result<AskOutcome, AgentError> {
        let Revised { answer, finish, rounds, stopped_by, candidates } = revised;
        let checked = check_answer(question, &answer, &self.tools, Some(&self.recorder)).await?;
        let mut claims: Vec<ClaimReport> = checked.iter().map(verify::tool_claim).collect();
        let mut decomposition = None;
        if self.opts.verify.decompose {
            let verifier = self.verifier(&self.decomposer, &self.judge).await?;
            let (atomic, how) = verifier.claims(question, &answer, &checked).await?;
            claims.extend(atomic.into_iter().map(|s| s.report));
            decomposition = Some(how);
        }
        claims.sort_by_key(|c| (c.start, c.end));
        let (mut sources, mut cited_answer, mut cited_sentences) = (Vec::new(), answer.clone(), Vec::new());
        let (mut attribution, mut citation_quality) = (None, None);
        if let Some(retriever) = &self.opts.retriever {
            let (cited, scored_by) = self.cite(question, &answer, retriever.as_ref()).await?;
            let numbered = citations::number(&answer, &cited);
            (cited_answer, sources, cited_sentences) = (numbered.cited_answer, numbered.sources, numbered.claims);
            self.recorder.event("attributor", "citations", json!({ "sentences": cited })).await?;
            if self.opts.verify.citation_quality {
                let judge = self.entailment(&self.judge).await?;
                match agents::alce::citation_quality(judge.as_ref(), &cited).await {
                    Ok(q) => {
                        self.recorder.event("attributor", "citation_quality", json!(q)).await?;
                        citation_quality = Some(q);
                    }
                    Err(AgentError::Llm(e)) => {
                        self.recorder
                            .event("attributor", "citation_quality_failed", json!({ "error": e.to_string() }))
                            .await?;
                    }
                    Err(other) => return Err(other),
                }
            }
            attribution = Some(scored_by);
        }
        Ok(AskOutcome {
            answer,
            finish_reason: finish,
            cited_answer,
            sources,
            verified: verify::verification(&claims),
            support: verify::support(&claims),
            claims,
            decomposition,
            citations: cited_sentences,
            attribution,
            citation_quality,
            rounds,
            candidates,
            stopped_by,
            strategy: self.opts.loop_options.strategy,
            model,
            usage: self.budget.usage() + self.after.usage(),
            model_calls: self.budget.calls() + self.after.calls(),
            trace_id,
        })
    }

    /// A verifier with the configured judge, over these decomposer and judge models.
    pub(super) async fn verifier<'v>(
        &'v self,
        decomposer: &'v RecordingModel,
        judge: &'v RecordingModel,
    ) -> Result<Verifier<'v>, AgentError> {
        let judge = self.entailment(judge).await?;
        Ok(Verifier {
            agents: self.agents,
            sampler: &self.sampler,
            history: self.history,
            seed: self.opts.loop_options.seed,
            decomposer,
            judge,
            retriever: self.opts.retriever.as_deref(),
            recorder: &self.recorder,
            options: self.opts.verify,
        })
    }
}

/// Where a repeat is resampled.
struct RetryInput<'a> {
    question: &'a str,
    answer: &'a str,
    round: u32,
    temperature: f32,
    seed: Option<u64>,
}

/// The problems the tools found: each contradicted claim.
fn refuted_by_tools(checked: &[CheckedClaim]) -> Vec<String> {
    checked
        .iter()
        .filter(|c| c.verdict == Verdict::Contradicted)
        .map(|c| {
            format!("\"{}\" is false according to the {} tool", c.claim.text, c.tool.as_deref().unwrap_or("exact"))
        })
        .collect()
}
