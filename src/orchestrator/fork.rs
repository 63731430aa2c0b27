//! Forking a stored `ask` or `serve` run: its recorded replies before a step, then a
//! live model, with one change, stored as a new run whose parent is the original.

use std::{path::PathBuf, str::FromStr, sync::Arc};

use serde::Serialize;

use super::{ask, replay::source, AskOutcome, JudgeChoice, Strategy, Verification};
use crate::{
    agents::AgentSet,
    corpus::CorpusIndex,
    llm::{recorded_calls, ChatModel, ReplayModel},
    trace::{RunId, TraceStore},
    Error, Result,
};

/// One change a fork makes.
#[derive(Debug, Clone, PartialEq)]
pub enum AskChange {
    /// Nothing but the live model.
    None,
    /// `strategy=NAME`.
    Strategy(Strategy),
    /// `rounds=N`.
    Rounds(u32),
    /// `samples=N` (self-consistency samples).
    Samples(u32),
    /// `judge=model|lexical`.
    Judge(JudgeChoice),
    /// `index=DIR`: another corpus index.
    Index(PathBuf),
    /// `prompt.NAME=PATH`: prompt template `NAME` (`critic.j2`, or an agent's name for
    /// its main template) replaced by the file at PATH.
    Prompt {
        /// The template's file name.
        template: String,
        /// The new template's file.
        path: PathBuf,
    },
}

impl FromStr for AskChange {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::BadChange { change: s.to_string(), reason: reason.to_string() };
        if s == "none" {
            return Ok(AskChange::None);
        }
        let (key, value) = s.split_once('=').ok_or_else(|| bad("expected KEY=VALUE or none"))?;
        let number = |what: &str, max: u32| -> Result<u32> {
            value.parse::<u32>().ok().filter(|n| *n <= max).ok_or_else(|| bad(&format!("{what} must be 0 to {max}")))
        };
        Ok(match key {
            "strategy" => AskChange::Strategy(value.parse().map_err(|e| bad(&format!("{e}")))?),
            "rounds" => AskChange::Rounds(number("rounds", 100)?),
            "samples" => AskChange::Samples(number("samples", 32)?),
            "judge" => AskChange::Judge(match value {
                "model" => JudgeChoice::Model,
                "lexical" => JudgeChoice::Lexical,
                _ => return Err(bad("judge must be model or lexical")),
            }),
            "index" => AskChange::Index(PathBuf::from(value)),
            _ => match key.strip_prefix("prompt.") {
                Some(name) if !name.is_empty() => {
                    let template = match name {
                        n if n.ends_with(".j2") => n.to_string(),
                        agent => format!("{agent}.j2"),
                    };
                    AskChange::Prompt { template, path: PathBuf::from(value) }
                }
                _ => {
                    return Err(bad(
                        "known changes: none, strategy=NAME, rounds=N, samples=N, judge=model|lexical, index=DIR, prompt.NAME=PATH",
                    ))
                }
            },
        })
    }
}

/// A fork's result: the new run, and how its verdict compares with the original's.
#[derive(Debug, Clone, Serialize)]
pub struct AskFork {
    /// The fork (a new run; its parent is `parent`).
    pub run_id: RunId,
    /// The forked run.
    pub parent: RunId,
    /// The original's verdict.
    pub verified_before: Verification,
    /// The fork's verdict.
    pub verified_after: Verification,
    /// Whether the final answer changed.
    pub answer_changed: bool,
    /// Model calls served from the record before the fork went live.
    pub replayed_calls: usize,
    /// The fork's outcome.
    pub outcome: AskOutcome,
}

/// Fork `run_id`: its recorded replies at steps before `from_step` (while the requests
/// match), then `live` (default: a model must be given, since no model is re-opened
/// from a record), with `change`. Stored in `store` as a new run of the same kind.
pub async fn fork(
    store: &TraceStore,
    run_id: RunId,
    from_step: u32,
    change: &AskChange,
    live: Arc<dyn ChatModel>,
    agents: &AgentSet,
) -> Result<AskFork> {
    let mut agents = agents.clone();
    if let AskChange::Prompt { template, path } = change {
        let text = std::fs::read_to_string(path).map_err(|e| Error::BadChange {
            change: format!("prompt.{template}={}", path.display()),
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
        agents.replace_template(template, text)?;
    }
    let (run, record, question, mut options) = source(store, run_id, &agents)?;
    let before = run
        .output
        .as_ref()
        .and_then(|o| serde_json::from_value::<Verification>(o.get("verified")?.clone()).ok())
        .unwrap_or(Verification::Unknown);
    match change {
        AskChange::None | AskChange::Prompt { .. } => {}
        AskChange::Strategy(s) => {
            options.loop_options.strategy = *s;
        }
        AskChange::Rounds(n) => options.loop_options.rounds = *n,
        AskChange::Samples(n) => options.verify.samples = *n,
        AskChange::Judge(j) => options.verify.judge = *j,
        AskChange::Index(dir) => options = options.corpus(Arc::new(CorpusIndex::open(dir)?)),
    }
    let (_, calls) = recorded_calls(store.steps(run_id)?);
    let replayed = ReplayModel::fork(record.model.clone(), calls, from_step, live.clone());
    let sibling = |m: &Option<crate::llm::ModelInfo>| {
        m.as_ref().map(|_| Arc::new(replayed.sibling(Some(live.clone()))) as Arc<dyn ChatModel>)
    };
    options.critic_model = sibling(&record.critic_model);
    options.decomposer_model = sibling(&record.decomposer_model);
    options.judge_model = sibling(&record.judge_model);
    options.parent = Some(run_id);
    let counter = Arc::new(replayed);
    let outcome = ask(store, counter.clone(), question, &options).await?;
    let answer_before = run.output.as_ref().and_then(|o| o.get("answer")).and_then(|a| a.as_str()).unwrap_or("");
    Ok(AskFork {
        run_id: outcome.trace_id,
        parent: run_id,
        verified_before: before,
        verified_after: outcome.verified,
        answer_changed: outcome.answer != answer_before,
        replayed_calls: counter.replayed(),
        outcome,
    })
}
