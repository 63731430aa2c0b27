//! Replaying a stored `ask`, `serve` or `verify` run from its record: the same question and
//! options, every model reply taken from the recorded calls (no model is called; a
//! request that differs from the recorded one is an error), the exact tools run again.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::{ask, AskOptions, AskRecord, GivenAnswer, Question};
use crate::{
    agents::AgentSet,
    llm::{recorded_calls, ChatModel, Message, ReplayModel},
    trace::{run_kind, RunId, RunRecord, RunStatus, TraceStore},
    Error, Result,
};

/// What a replay found.
#[derive(Debug, Clone, Serialize)]
pub struct AskReplay {
    /// The replayed run.
    pub run_id: RunId,
    /// Whether the replayed outcome (answer, claims, verdicts, citations, rounds, usage)
    /// equals the stored one.
    pub identical: bool,
    /// The outcome's fields that differ, when not identical.
    pub differences: Vec<String>,
    /// Model calls served from the record.
    pub calls: usize,
}

/// Replay `run_id` (an `ask`, `serve` or `verify` run) from `store` into a scratch store.
/// `agents` are the agents to replay with (their prompt templates; the configs come from
/// the record): the built-in ones, or those a changed prompt would be tested with.
pub async fn replay(store: &TraceStore, run_id: RunId, agents: &AgentSet) -> Result<AskReplay> {
    let refuse = |reason: String| Error::NotReplayable { run_id, reason };
    let (run, record, subject, mut options) = source(store, run_id, agents)?;
    let Some(stored) = run.output.clone() else { return Err(refuse("it stored no outcome".into())) };
    let (replayed, served) = recorded_models(store, run_id, &record, &mut options)?;
    let scratch = TraceStore::temporary()?;
    let serialised = |v: std::result::Result<Value, serde_json::Error>| {
        v.map_err(|e| refuse(format!("the replayed outcome does not serialise: {e}")))
    };
    let (mut again, trace_id) = match subject {
        Subject::Question(question) => {
            let outcome = ask(&scratch, replayed, question, &options).await?;
            (serialised(serde_json::to_value(&outcome))?, outcome.trace_id)
        }
        Subject::Given(given) => {
            let outcome = super::verify(&scratch, replayed, &given, &options).await?;
            (serialised(serde_json::to_value(&outcome))?, outcome.outcome.trace_id)
        }
    };
    let mut differences = differences(&stored, &mut again);
    // Verification degrades instead of failing a run, so a call that left the record
    // there shows only as a failed step of the replay: name the first one.
    let diverged = scratch.steps(trace_id)?.into_iter().find_map(|s| s.error.filter(|e| e.contains("diverged")));
    if let Some(e) = diverged {
        differences.insert(0, e);
    }
    Ok(AskReplay { run_id, identical: differences.is_empty(), differences, calls: served })
}

/// The run's model answering from its recorded calls, and its agents' own models (the
/// same record under their names) set in `options`; with how many calls it holds.
fn recorded_models(
    store: &TraceStore,
    run_id: RunId,
    record: &AskRecord,
    options: &mut AskOptions,
) -> Result<(Arc<dyn ChatModel>, usize)> {
    let (_, calls) = recorded_calls(store.steps(run_id)?);
    let served = calls.len();
    let replayed = ReplayModel::exact(record.model.clone(), calls);
    let sibling = |m: &Option<crate::llm::ModelInfo>| {
        m.clone().map(|info| Arc::new(replayed.sibling_as(info)) as Arc<dyn ChatModel>)
    };
    options.critic_model = sibling(&record.critic_model);
    options.decomposer_model = sibling(&record.decomposer_model);
    options.judge_model = sibling(&record.judge_model);
    Ok((Arc::new(replayed), served))
}

/// What a stored run ran on.
pub(super) enum Subject {
    /// The question of an `ask` or `serve` run.
    Question(Question),
    /// The given answer of a `verify` run.
    Given(GivenAnswer),
}

/// A completed `ask`, `serve` or `verify` run that can be run again: its record, its
/// parsed config, what it ran on, and the options it ran with (`agents`' templates).
pub(super) fn source(
    store: &TraceStore,
    run_id: RunId,
    agents: &AgentSet,
) -> Result<(RunRecord, AskRecord, Subject, AskOptions)> {
    let refuse = |reason: String| Error::NotReplayable { run_id, reason };
    let run = store.run(run_id)?.ok_or_else(|| refuse("no such run".into()))?;
    if ![run_kind::ASK, run_kind::SERVE, run_kind::VERIFY].contains(&run.kind.as_str()) {
        return Err(refuse(format!("it is a `{}` run; this replays `ask`, `serve` and `verify` runs", run.kind)));
    }
    if run.status != RunStatus::Completed {
        return Err(refuse(format!("it is {}, not completed", run.status)));
    }
    if run.input.get("passthrough").is_some() {
        return Err(refuse("it was passed through unverified".into()));
    }
    let record: AskRecord = serde_json::from_value(run.config.clone())
        .map_err(|e| refuse(format!("its config is not an ask run's: {e}")))?;
    let subject = if run.kind == run_kind::VERIFY {
        Subject::Given(
            serde_json::from_value(run.input.clone())
                .map_err(|e| refuse(format!("its input is not a given answer: {e}")))?,
        )
    } else {
        Subject::Question(question_of(&run.input).ok_or_else(|| refuse("its input has no question".into()))?)
    };
    let mut options = options_of(&record, agents).map_err(refuse)?;
    options.run_kind = if run.kind == run_kind::SERVE { run_kind::SERVE } else { run_kind::ASK };
    Ok((run, record, subject, options))
}

/// The question and the conversation before it, from a run's input.
fn question_of(input: &Value) -> Option<Question> {
    let text = input.get("question")?.as_str()?.to_string();
    let history: Vec<Message> = match input.get("history") {
        Some(h) => serde_json::from_value(h.clone()).ok()?,
        None => Vec::new(),
    };
    Some(Question::with_history(text, history))
}

/// The options a run was made with, from its record, with `agents`' templates.
fn options_of(record: &AskRecord, agents: &AgentSet) -> std::result::Result<AskOptions, String> {
    let (Some(verify), Some(context)) = (record.verify, record.context_passages) else {
        return Err("it was stored before runs recorded their verification options".into());
    };
    let mut agents = agents.clone();
    let a = &record.agents;
    agents.solver = a.solver.clone();
    agents.critic = a.critic.clone();
    for (slot, stored) in [
        (&mut agents.tool_checker, &a.tool_checker),
        (&mut agents.attributor, &a.attributor),
        (&mut agents.decomposer, &a.decomposer),
        (&mut agents.judge, &a.judge),
    ] {
        if let Some(config) = stored {
            *slot = config.clone();
        }
    }
    let mut options = AskOptions::new(Arc::new(agents));
    if record.retriever {
        let Some(dir) = &record.index else {
            return Err("its corpus has no recorded location".into());
        };
        // Exactly the retrieval it ran (BM25 for runs stored before there was a choice),
        // whatever the index's default is now.
        let retrieval = crate::embed::RetrievalChoice::exactly(record.retrieval.unwrap_or_default());
        let index = super::settings::open_index(dir, &retrieval)
            .map_err(|e| format!("its index {} cannot be opened: {e}", dir.display()))?;
        options = options.corpus(Arc::new(index));
    }
    options.loop_options = record.loop_options.clone();
    options.verify = verify;
    options.context_passages = context;
    options.tools = options.tools.only(&record.tools);
    options.tags = record.tags.clone();
    Ok(options)
}

/// The top-level fields of two outcomes that differ (the run id aside).
fn differences(stored: &Value, again: &mut Value) -> Vec<String> {
    if let Some(map) = again.as_object_mut() {
        map.insert("trace_id".into(), stored.get("trace_id").cloned().unwrap_or(Value::Null));
    }
    let (Some(a), Some(b)) = (stored.as_object(), again.as_object()) else {
        return vec!["the stored outcome is not an object".into()];
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().filter(|k| a.get(*k) != b.get(*k)).map(|k| format!("{k} differs")).collect()
}
