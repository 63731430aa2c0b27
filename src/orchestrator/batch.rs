//! One change over many stored runs: each selected `ask`/`serve` run is forked, the
//! forks are stored as the slots of one group run (kind `forks`), and the comparison
//! is computed from what was stored.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::{sync::Semaphore, task::JoinSet};

use super::{batch_report, fork::fork_in, AskChange, BatchReport, ForkModels, RunFilter};
use crate::{
    agents::AgentSet,
    trace::{run_kind, GroupSlot, RunId, RunRecorder, RunStatus, TraceStore},
    Error, Result,
};

/// How a batch forks.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Recorded replies before this step (while the requests match), live from it;
    /// `u32::MAX`: live from the first request that differs from the record.
    pub from_step: u32,
    /// The one change.
    pub change: AskChange,
    /// Forks run at once.
    pub concurrency: usize,
}

/// What a batch group run stores as its input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchInput {
    /// The filter as given.
    pub filter: String,
    /// The change as given.
    pub change: String,
    /// The fork step.
    pub from_step: u32,
    /// The live model's spec.
    pub model: String,
    /// The runs selected, by slot.
    pub runs: Vec<RunId>,
}

/// Fork every run `filter` selects in `store` with `options`, on `models`, and return
/// the comparison (also stored as the group run's output). `progress(done, total)` is
/// called as forks finish. A run that cannot be forked is listed in the report as
/// skipped, with why; it does not stop the batch.
///
/// ```no_run
/// # async fn example(store: recheck::TraceStore, model: std::sync::Arc<dyn recheck::ChatModel>) -> recheck::Result<()> {
/// use recheck::{agents::AgentSet, orchestrator::{fork_batch, BatchOptions, ForkModels, Verification}};
/// // Last week's refuted serve answers, with the tool-verified critic loop.
/// let options = BatchOptions { from_step: u32::MAX, change: "strategy=critic".parse()?, concurrency: 4 };
/// let filter = "kind=serve,since=2026-11-16,until=2026-11-23,verdict=refuted";
/// let report = fork_batch(&store, filter, &options, &ForkModels::live(model), &AgentSet::builtin()?, &|_, _| {}).await?;
/// let fixed = report.pairs.iter().filter(|p| p.after == Verification::Verified).count();
/// println!("{fixed} of {} now verified ({:?})", report.pairs.len(), report.verified_after);
/// # Ok(()) }
/// ```
pub async fn fork_batch(
    store: &TraceStore,
    filter: &str,
    options: &BatchOptions,
    models: &ForkModels,
    agents: &AgentSet,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<BatchReport> {
    let ids = filter.parse::<RunFilter>()?.select(store)?;
    if ids.is_empty() {
        return Err(Error::BadSelection { filter: filter.into(), reason: "no stored run matches".into() });
    }
    let input = BatchInput {
        filter: filter.to_string(),
        change: options.change.describe(),
        from_step: options.from_step,
        model: models.live.info().spec,
        runs: ids.clone(),
    };
    let input = serde_json::to_value(&input).map_err(|e| Error::BadSelection {
        filter: filter.into(),
        reason: format!("the batch's input does not serialise: {e}"),
    })?;
    let config = json!({
        "model": crate::llm::identity(models.live.as_ref()),
        "judge_model": models.judge.as_deref().map(crate::llm::identity),
    });
    let group = store.create_run(run_kind::FORKS, input, config, None).await?;
    let recorder = RunRecorder::new(store.clone(), group.id, 0);
    let gate = Arc::new(Semaphore::new(options.concurrency.clamp(1, Semaphore::MAX_PERMITS)));
    let agents = Arc::new(agents.clone());
    let mut tasks = JoinSet::new();
    for (slot, id) in ids.iter().copied().enumerate() {
        let (store, models, agents, gate) = (store.clone(), models.clone(), agents.clone(), gate.clone());
        let (change, from_step) = (options.change.clone(), options.from_step);
        let slot = GroupSlot { run: group.id, index: slot as u32 };
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let result = fork_in(&store, id, from_step, &change, &models, &agents, Some(slot)).await;
            (id, result.err().map(|e| format!("{e:#}")))
        });
    }
    let total = ids.len();
    let mut done = 0;
    while let Some(joined) = tasks.join_next().await {
        done += 1;
        let (id, error) = joined.unwrap_or_else(|e| (RunId::default(), Some(format!("the fork's task ended: {e}"))));
        if let Some(reason) = error {
            recorder.event("batch", "skipped", json!({ "run": id, "reason": reason })).await?;
        }
        progress(done, total);
    }
    let report = batch_report(store, group.id)?;
    let output = serde_json::to_value(&report).ok();
    store.finish_run(group.id, RunStatus::Completed, output, None).await?;
    Ok(report)
}
