//! The verify-and-revise loop shared by every strategy.

use std::sync::Arc;

use serde_json::json;

use super::{AskOutcome, ClaimReport, Evidence, LoopOptions, Round, Strategy, Verification};
use crate::{
    agents::{
        self, attribute, check_answer,
        contextcite::{attribute_statement, ContextCiteOptions},
        critic::{self, Review},
        solver::{self, RevisionInput},
        AgentError, AgentSet, CheckedClaim, Verdict,
    },
    corpus::{split_sentences, Passage, Retriever, SearchOptions},
    llm::{ChatModel, Usage},
    tools::ToolRegistry,
    trace::{RunRecorder, RunStatus, TraceStore},
    Error, Result,
};

/// Everything a run needs besides the model and the question.
#[derive(Clone)]
pub struct AskOptions {
    /// Strategy, rounds, budget, anti-friction options.
    pub loop_options: LoopOptions,
    /// Agent configs and prompts.
    pub agents: Arc<AgentSet>,
    /// Exact tools for the tool-checker.
    pub tools: ToolRegistry,
    /// A corpus for context passages and citations.
    pub retriever: Option<Arc<dyn Retriever>>,
    /// Passages given to the solver as numbered context.
    pub context_passages: usize,
    /// A different model for the critic (its config's `model`); `None` = the run's model.
    pub critic_model: Option<Arc<dyn ChatModel>>,
}

impl std::fmt::Debug for AskOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AskOptions").field("loop_options", &self.loop_options).field("tools", &self.tools).finish()
    }
}

/// State carried through the rounds.
struct Loop<'a> {
    opts: &'a AskOptions,
    agents: &'a AgentSet,
    recorder: RunRecorder,
    solver: Box<dyn ChatModel>,
    critic: Box<dyn ChatModel>,
    /// The bare model, for wrappers made later (the attributor's scorer).
    model: Arc<dyn ChatModel>,
    usage: Usage,
    calls: u32,
}

/// Answer `question` under `options.loop_options.strategy`, recording the run in `store`.
///
/// A failed first draft fails the run ([`Error::RunFailed`]); a failure in a later
/// round stops the loop and returns the best answer so far with its history.
pub async fn ask(
    store: &TraceStore,
    model: Arc<dyn ChatModel>,
    question: &str,
    options: &AskOptions,
) -> Result<AskOutcome> {
    let info = model.info();
    let lo = &options.loop_options;
    let config = json!({
        "strategy": lo.strategy, "loop": lo, "model": info,
        "critic_model": options.critic_model.as_ref().map(|m| m.info()),
        "agents": { "solver": options.agents.solver, "critic": options.agents.critic },
        "tools": options.tools.names(), "retriever": options.retriever.is_some(),
    });
    let run = store.create_run("ask", json!({ "question": question }), config, None).await?;
    let recorder = RunRecorder::new(store.clone(), run.id, 0);
    let mut state = Loop {
        opts: options,
        agents: &options.agents,
        solver: Box::new(recorder.model("solver", model.clone())),
        critic: Box::new(recorder.model("critic", options.critic_model.clone().unwrap_or_else(|| model.clone()))),
        model,
        recorder,
        usage: Usage::default(),
        calls: 0,
    };
    match state.run(question).await {
        Ok((answer, rounds, stopped_by)) => {
            let outcome = state.finish(question, answer, rounds, stopped_by, info, run.id).await;
            match outcome {
                Ok(outcome) => {
                    store.finish_run(run.id, RunStatus::Completed, Some(json!(outcome)), None).await?;
                    Ok(outcome)
                }
                Err(e) => {
                    store.finish_run(run.id, RunStatus::Failed, None, Some(e.to_string())).await?;
                    Err(agent_error(run.id, e))
                }
            }
        }
        Err(e) => {
            store.finish_run(run.id, RunStatus::Failed, None, Some(e.to_string())).await?;
            Err(agent_error(run.id, e))
        }
    }
}

fn agent_error(run_id: crate::trace::RunId, e: AgentError) -> Error {
    match e {
        AgentError::Llm(source) => Error::RunFailed { run_id, source },
        other => Error::Agent(other),
    }
}

fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

impl Loop<'_> {
    async fn run(&mut self, question: &str) -> Result<(String, Vec<Round>, String), AgentError> {
        let lo = self.opts.loop_options.clone();
        let passages: Vec<Passage> = match (&self.opts.retriever, self.opts.context_passages) {
            (Some(r), k) if k > 0 => {
                r.search(question, &SearchOptions { k, ..Default::default() })?.into_iter().map(|h| h.passage).collect()
            }
            _ => Vec::new(),
        };
        let first = solver::draft(self.agents, &*self.solver, question, &passages, Some(lo.seed)).await?;
        self.count(first.usage);
        let mut answer = first.text().trim().to_string();
        self.recorder.event("solver", "draft", json!({ "answer": answer })).await?;
        let mut history = vec![normalize(&answer)];
        let mut rejected: Vec<String> = Vec::new();
        let mut rounds = Vec::new();
        if lo.strategy == Strategy::Single {
            return Ok((answer, rounds, "single answer".into()));
        }
        let mut stopped_by = "round limit".to_string();
        for round in 1..=lo.rounds {
            if self.calls >= lo.max_calls {
                stopped_by = "call budget".into();
                break;
            }
            let spent = u64::from(self.usage.prompt_tokens) + u64::from(self.usage.completion_tokens);
            if lo.max_tokens > 0 && spent >= lo.max_tokens {
                stopped_by = "token budget".into();
                break;
            }
            let temperature = (self.agents.solver.temperature.unwrap_or(0.0) + lo.temperature_step * round as f32)
                .min(lo.temperature_cap);
            let seed = Some(lo.seed.wrapping_add(round as u64));
            match self.round(question, &answer, round, temperature, seed, &rejected).await {
                Ok((record, None)) => {
                    stopped_by = if record.critique_failed {
                        "critique failed validation; answer unchecked".into()
                    } else {
                        "review found nothing to fix".into()
                    };
                    rounds.push(record);
                    break;
                }
                Ok((mut record, Some(mut revision))) => {
                    if lo.reject_repeats && history.contains(&normalize(&revision)) {
                        self.recorder
                            .event("solver", "repeat_rejected", json!({ "round": round, "answer": revision }))
                            .await?;
                        if !rejected.contains(&revision) {
                            rejected.push(revision.clone());
                        }
                        let problems = vec!["This answer was already given and judged wrong.".to_string()];
                        let input =
                            RevisionInput { question, draft: &answer, problems: &problems, rejected: &rejected };
                        // A hotter resample, so it is not the same answer again.
                        let retry = match solver::revise(
                            self.agents,
                            &*self.solver,
                            input,
                            temperature + 0.3,
                            seed.map(|s| s ^ 0x5eed),
                        )
                        .await
                        {
                            Ok(retry) => retry,
                            Err(e @ AgentError::Llm(_)) => {
                                stopped_by = format!("stopped by an error: {e}");
                                rounds.push(record);
                                break;
                            }
                            Err(e) => return Err(e),
                        };
                        self.count(retry.usage);
                        revision = retry.text().trim().to_string();
                    }
                    if lo.reject_repeats && !rejected.contains(&answer) {
                        rejected.push(answer.clone());
                    }
                    self.recorder.event("solver", "revision", json!({ "round": round, "answer": revision })).await?;
                    history.push(normalize(&revision));
                    record.revision = Some(revision.clone());
                    rounds.push(record);
                    answer = revision;
                }
                Err(e @ AgentError::Llm(_)) => {
                    // Keep the best answer so far; the failed call is already a recorded step.
                    stopped_by = format!("stopped by an error: {e}");
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok((answer, rounds, stopped_by))
    }

    fn count(&mut self, usage: Usage) {
        self.usage += usage;
        self.calls += 1;
    }

    /// One review round; returns the round record and the revision, if any.
    async fn round(
        &mut self,
        question: &str,
        answer: &str,
        round: u32,
        temperature: f32,
        seed: Option<u64>,
        rejected: &[String],
    ) -> Result<(Round, Option<String>), AgentError> {
        let strategy = self.opts.loop_options.strategy;
        let mut record = Round {
            round,
            draft: answer.to_string(),
            critique: None,
            critique_failed: false,
            tool_calls: vec![],
            revision: None,
        };
        if strategy == Strategy::Wait {
            let prefix = format!("{answer}\nWait,");
            let cont = solver::continue_from(self.agents, &*self.solver, question, &prefix, temperature, seed).await?;
            self.count(cont.usage);
            return Ok((record, Some(format!("{prefix}{}", cont.text()).trim().to_string())));
        }
        if strategy == Strategy::Critic {
            record.tool_calls = check_answer(question, answer, &self.opts.tools, Some(&self.recorder)).await?;
        }
        let review = Review { question, draft: answer, findings: &record.tool_calls, ioe: strategy == Strategy::Ioe };
        let critique =
            critic::critique(self.agents, &*self.critic, &self.recorder, review, &mut self.usage, &mut self.calls)
                .await?;
        record.critique_failed = critique.is_none();
        record.critique = critique.clone();
        let mut problems: Vec<String> = record
            .tool_calls
            .iter()
            .filter(|c| c.verdict == Verdict::Contradicted)
            .map(|c| {
                format!("\"{}\" is false according to the {} tool", c.claim.text, c.tool.as_deref().unwrap_or("exact"))
            })
            .collect();
        let critic_says_wrong = critique.as_ref().is_some_and(|c| !c.is_correct());
        if problems.is_empty() && !critic_says_wrong {
            return Ok((record, None));
        }
        if let Some(c) = critique.as_ref().filter(|_| critic_says_wrong) {
            problems.extend(c.problems.iter().cloned());
        }
        if problems.is_empty() {
            problems.push("The reviewer judged the answer incorrect.".into());
        }
        let wrong_step = critique.as_ref().map(|c| c.earliest_wrong_step).unwrap_or(-1);
        let revision = if strategy == Strategy::Backtrack && wrong_step >= 0 {
            let steps = split_sentences(answer);
            let keep = steps.get(wrong_step as usize).map(|r| r.start).unwrap_or(answer.len());
            let prefix = answer[..keep].to_string();
            // Sample, so the regenerated step differs from the original.
            let cont = solver::continue_from(self.agents, &*self.solver, question, &prefix, temperature.max(0.7), seed)
                .await?;
            self.count(cont.usage);
            format!("{prefix}{}", cont.text()).trim().to_string()
        } else {
            let input = RevisionInput { question, draft: answer, problems: &problems, rejected };
            let rev = solver::revise(self.agents, &*self.solver, input, temperature, seed).await?;
            self.count(rev.usage);
            rev.text().trim().to_string()
        };
        Ok((record, Some(revision)))
    }

    /// Citations for each sentence, by the configured scorer.
    async fn cite(
        &mut self,
        question: &str,
        answer: &str,
        retriever: &dyn Retriever,
    ) -> Result<Vec<agents::CitedSentence>, AgentError> {
        let cfg = &self.agents.attributor;
        let candidates = cfg.candidates.unwrap_or(5);
        let mut cited = attribute(answer, retriever, candidates, cfg.min_support.unwrap_or(0.5))?;
        if cfg.scorer.as_deref() != Some("contextcite") || !self.model.capabilities().score_continuation {
            return Ok(cited);
        }
        let options = ContextCiteOptions {
            ablations: cfg.ablations.unwrap_or(24),
            seed: self.opts.loop_options.seed,
            ..Default::default()
        };
        let min_weight = cfg.min_weight.unwrap_or(0.5);
        let scorer = self.recorder.model("attributor", self.model.clone());
        for sentence in &mut cited {
            let hits = retriever.search(&sentence.text, &SearchOptions { k: candidates, ..Default::default() })?;
            let sources: Vec<String> = hits.iter().map(|h| h.passage.text.clone()).collect();
            if sources.is_empty() {
                continue;
            }
            let weights = attribute_statement(&scorer, question, &sources, &sentence.text, &options).await?;
            self.calls += (options.ablations + 1) as u32;
            let best = weights.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1));
            sentence.support = best.map(|(_, w)| *w).unwrap_or(0.0);
            sentence.citations = match best {
                Some((i, w)) if *w >= min_weight => vec![(hits[i].passage.clone(), *w)],
                _ => Vec::new(),
            };
        }
        Ok(cited)
    }

    async fn finish(
        &mut self,
        question: &str,
        answer: String,
        rounds: Vec<Round>,
        stopped_by: String,
        model: crate::llm::ModelInfo,
        trace_id: crate::trace::RunId,
    ) -> Result<AskOutcome, AgentError> {
        let checked = check_answer(question, &answer, &self.opts.tools, Some(&self.recorder)).await?;
        let mut claims: Vec<ClaimReport> = checked.iter().map(tool_claim).collect();
        let mut sources: Vec<Passage> = Vec::new();
        let mut cited_answer = answer.clone();
        if let Some(retriever) = &self.opts.retriever {
            let cited = self.cite(question, &answer, retriever.as_ref()).await?;
            let mut markers: Vec<(usize, String)> = Vec::new();
            for s in &cited {
                let mut evidence = Vec::new();
                for (p, score) in &s.citations {
                    let n = match sources.iter().position(|q| q.passage_id == p.passage_id) {
                        Some(i) => i + 1,
                        None => {
                            sources.push(p.clone());
                            sources.len()
                        }
                    };
                    markers.push((s.end, format!(" [{n}]")));
                    evidence.push(Evidence::Passage {
                        doc_id: p.doc_id.clone(),
                        passage_id: p.passage_id.clone(),
                        start: p.start,
                        end: p.end,
                        score: *score,
                    });
                }
                let verdict = if evidence.is_empty() { Verdict::Unsupported } else { Verdict::Supported };
                claims.push(ClaimReport {
                    text: s.text.clone(),
                    start: s.start,
                    end: s.end,
                    verdict,
                    kind: None,
                    evidence,
                });
            }
            // Insert markers from the back so earlier character offsets stay valid.
            let mut chars: Vec<char> = answer.chars().collect();
            for (at, mark) in markers.into_iter().rev() {
                chars.splice(at..at, mark.chars());
            }
            cited_answer = chars.into_iter().collect();
            self.recorder.event("attributor", "citations", json!({ "sentences": cited })).await?;
        }
        claims.sort_by_key(|c| (c.start, c.end));
        let verified = if checked.iter().any(|c| c.verdict == Verdict::Contradicted) {
            Verification::Refuted
        } else if checked.iter().any(|c| c.verdict == Verdict::Supported) {
            Verification::Verified
        } else {
            Verification::Unknown
        };
        Ok(AskOutcome {
            answer,
            cited_answer,
            sources,
            verified,
            claims,
            rounds,
            stopped_by,
            strategy: self.opts.loop_options.strategy,
            model,
            usage: self.usage,
            model_calls: self.calls,
            trace_id,
        })
    }
}

fn tool_claim(c: &CheckedClaim) -> ClaimReport {
    let evidence = match (&c.tool, &c.input, &c.output) {
        (Some(tool), Some(input), Some(output)) => {
            vec![Evidence::Tool { tool: tool.clone(), input: input.clone(), output: output.clone() }]
        }
        _ => Vec::new(),
    };
    ClaimReport {
        text: c.claim.text.clone(),
        start: c.claim.start,
        end: c.claim.end,
        verdict: c.verdict,
        kind: Some(c.claim.kind.clone()),
        evidence,
    }
}
