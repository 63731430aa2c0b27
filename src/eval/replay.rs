//! Replaying a stored experiment from its recorded model calls, and forking it.

use std::sync::Arc;

use serde::Serialize;

use super::{
    runner::{
        check_backend, eval_config, load_eval, recorded_calls, run_pending, stored_config, stored_items, ModelSource,
    },
    Change, EvalRun, Progress, RunOptions, EVAL_KIND,
};
use crate::{
    analysis::{self, Metrics},
    llm::ChatModel,
    trace::{RunId, TraceStore},
    Result,
};

/// What a replay found.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayOutcome {
    /// The replayed experiment.
    pub run_id: RunId,
    /// Whether the recomputed metrics and every item's outcome equal the stored ones.
    pub identical: bool,
    /// Metrics recomputed from the replay's traces.
    pub metrics: Metrics,
    /// Items whose outcome differs (slot index and why), when not identical.
    pub differences: Vec<String>,
}

/// Re-run experiment `run_id` with every model reply taken from its record (no model
/// calls; tools are exact and run again), into a scratch store, and compare the
/// metrics computed from the replay's traces with those from the original's.
pub async fn replay(store: &TraceStore, run_id: RunId, opts: &RunOptions) -> Result<ReplayOutcome> {
    let run = load_eval(store, run_id)?;
    let (config, items) = (stored_config(&run)?, stored_items(&run)?);
    let opts = &RunOptions { agents: config.agents(&opts.agents)?, ..opts.clone() };
    let change = config.fork.map(|f| (f.from_step, f.change));
    let scratch = TraceStore::temporary()?;
    let copy = scratch.create_run(EVAL_KIND, run.input.clone(), run.config.clone(), run.parent).await?;
    let source = ModelSource::Recorded { calls: recorded_calls(store, run_id)?, fork: None };
    // Every reply is recorded, so a fork's change replays like any other step.
    run_pending(&scratch, &copy, &config.spec, &items, &source, change, opts, &()).await?;
    let (original, a) = analysis::compute_with_outcomes(store, run_id)?;
    let (replayed, b) = analysis::compute_with_outcomes(&scratch, copy.id)?;
    // Why a replayed item has no outcome: its run's error.
    let errors: std::collections::HashMap<u32, String> = scratch
        .members(copy.id)?
        .into_iter()
        .filter_map(|(slot, member)| Some((slot, scratch.run(member).ok()??.error?)))
        .collect();
    let mut differences = Vec::new();
    for (slot, outcome) in &a {
        match b.get(slot) {
            Some(other) if other == outcome => {}
            Some(_) => differences.push(format!("item {slot}: outcome differs")),
            None => differences.push(match errors.get(slot) {
                Some(error) => format!("item {slot}: missing from the replay ({error})"),
                None => format!("item {slot}: missing from the replay"),
            }),
        }
    }
    let identical = differences.is_empty() && original.metrics == replayed.metrics && a.len() == b.len();
    Ok(ReplayOutcome { run_id, identical, metrics: replayed.metrics, differences })
}

/// How to fork an experiment.
#[derive(Clone)]
pub struct ForkOptions {
    /// Recorded steps before this index (in each item's run) are reused.
    pub from_step: u32,
    /// The one change applied from that step on.
    pub change: Change,
    /// The model for the live part; `None` = the models in the run options.
    pub model: Option<Arc<dyn ChatModel>>,
}

/// Fork experiment `parent` at `fork.from_step` with one change: each item reuses its
/// recorded calls before the step (while the requests match) and runs live after it.
/// The fork is a new experiment whose `parent` is the original.
pub async fn fork(
    store: &TraceStore,
    parent: RunId,
    fork: &ForkOptions,
    opts: &RunOptions,
    progress: &dyn Progress,
) -> Result<EvalRun> {
    let run = load_eval(store, parent)?;
    let (config, items) = (stored_config(&run)?, stored_items(&run)?);
    let spec = fork.change.apply_to(&config.spec)?;
    let solver = fork.model.clone().unwrap_or_else(|| opts.model.clone());
    let feedback = match &fork.model {
        Some(m) => m.clone(),
        None => opts.feedback_model.clone().unwrap_or_else(|| opts.model.clone()),
    };
    let change = (fork.from_step, fork.change.clone());
    let prefill = check_backend(&spec, solver.as_ref()).await?;
    let config = eval_config(&spec, &solver.info(), &feedback.info(), &opts.agents, Some(&change), prefill)?;
    let new = store.create_run(EVAL_KIND, run.input.clone(), config, Some(parent)).await?;
    let source =
        ModelSource::Recorded { calls: recorded_calls(store, parent)?, fork: Some((fork.from_step, solver, feedback)) };
    run_pending(store, &new, &spec, &items, &source, Some(change), opts, progress).await
}
