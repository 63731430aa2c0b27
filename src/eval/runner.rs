//! Running an experiment's items: one recorded run per item, several at once, and
//! resuming an interrupted experiment without redoing or duplicating finished items.

use std::{collections::HashMap, path::Path, sync::atomic::AtomicBool, sync::Arc};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::{sync::Semaphore, task::JoinSet};

use super::{
    protocol::{run_item, EvalStepError, ItemContext},
    Change, EvalError, EvalSpec, EVAL_KIND, ITEM_KIND,
};
use crate::{
    agents::AgentSet,
    corpus::Retriever,
    datasets::Item,
    llm::{Budget, ChatModel, ModelInfo, PrefillSupport, RecordedCall, RecordingModel, ReplayModel},
    tools::ToolRegistry,
    trace::{GroupSlot, Protocol, RunId, RunRecord, RunRecorder, RunStatus, TraceStore},
    Result,
};

/// The models, agents and tools an experiment runs with.
#[derive(Clone)]
pub struct RunOptions {
    /// The model under test (solver, and the one asked back about its claims).
    pub model: Arc<dyn ChatModel>,
    /// The feedback agent's model; `None` = the model under test.
    pub feedback_model: Option<Arc<dyn ChatModel>>,
    /// Agent configs and prompts.
    pub agents: Arc<AgentSet>,
    /// Exact tools.
    pub tools: ToolRegistry,
    /// Items in flight at once.
    pub concurrency: usize,
    /// The corpus evidence comes from (the verify protocol); see [`super::open_corpus`].
    pub retriever: Option<Arc<dyn Retriever>>,
}

/// Reports progress as items finish.
pub trait Progress: Send + Sync {
    /// The experiment starts: `total` items, `done` of them finished earlier.
    fn start(&self, run: RunId, total: usize, done: usize);
    /// One more item finished; `correct` is its headline grade (`None` if it failed).
    fn item(&self, correct: Option<bool>);
    /// Every item has finished.
    fn finish(&self);
}

/// Progress reporting that does nothing.
impl Progress for () {
    fn start(&self, _: RunId, _: usize, _: usize) {}
    fn item(&self, _: Option<bool>) {}
    fn finish(&self) {}
}

/// What an experiment run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvalRun {
    /// The experiment's group run.
    pub run_id: RunId,
    /// Items in the experiment.
    pub items: usize,
    /// Items that ran in this call.
    pub ran: usize,
    /// Items already finished before this call (resume).
    pub skipped: usize,
    /// Items whose run failed (a model error; recorded, left out of the metrics).
    pub failed: usize,
    /// Why the first item that failed in this call failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl EvalRun {
    /// Items with a completed run (before or in this call).
    pub fn completed(&self) -> usize {
        self.items - self.failed
    }
}

/// How one item's run ended.
enum ItemEnd {
    /// Completed, with its headline grade.
    Completed(bool),
    /// Failed (recorded as failed), and why.
    Failed(String),
}

/// An item as stored in the experiment's input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredItem {
    pub dataset: usize,
    pub item: Item,
}

/// Each item slot's recorded chat calls, with the model that made them.
type RecordedBySlot = HashMap<u32, (ModelInfo, Arc<Vec<RecordedCall>>)>;

/// A fork's step and its live solver and feedback models.
type LiveFrom = (u32, Arc<dyn ChatModel>, Arc<dyn ChatModel>);

/// Where each item's models come from.
pub(crate) enum ModelSource {
    Live {
        solver: Arc<dyn ChatModel>,
        feedback: Arc<dyn ChatModel>,
    },
    /// Recorded calls per item slot: exact replay, or a fork going live at a step.
    Recorded {
        calls: RecordedBySlot,
        fork: Option<LiveFrom>,
    },
}

impl ModelSource {
    fn for_item(&self, index: u32) -> (Arc<dyn ChatModel>, Arc<dyn ChatModel>) {
        match self {
            ModelSource::Live { solver, feedback } => (solver.clone(), feedback.clone()),
            ModelSource::Recorded { calls, fork } => {
                // The record is shared, not copied, with the item's replay model.
                let (info, recorded) = calls.get(&index).cloned().unwrap_or_else(|| (no_model(), Arc::default()));
                match fork {
                    None => {
                        let m: Arc<dyn ChatModel> = Arc::new(ReplayModel::exact(info, recorded));
                        (m.clone(), m)
                    }
                    Some((from, solver, feedback)) => {
                        let s = ReplayModel::fork(info, recorded, *from, solver.clone());
                        let f = s.sibling(Some(feedback.clone()));
                        (Arc::new(s), Arc::new(f))
                    }
                }
            }
        }
    }
}

/// The model of an item that recorded no model call.
fn no_model() -> ModelInfo {
    ModelInfo::new("none", "replay")
}

/// An experiment's group-run config, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EvalConfig {
    pub spec: EvalSpec,
    pub model: ModelInfo,
    pub feedback_model: ModelInfo,
    /// The solver's and feedback agent's configs, recorded for the reader.
    #[serde(default)]
    pub agents: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork: Option<ForkRecord>,
    /// How the solver continues a prefilled turn, where the protocol needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill: Option<PrefillSupport>,
    /// The prompt templates it ran with, by name (empty in experiments recorded before
    /// they were kept): a replay or a resume renders these, not today's.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub templates: std::collections::BTreeMap<String, String>,
}

impl EvalConfig {
    /// `agents` with the recorded templates, when the experiment recorded them.
    pub(crate) fn agents(&self, agents: &Arc<AgentSet>) -> Result<Arc<AgentSet>, crate::agents::AgentError> {
        if self.templates.is_empty() {
            return Ok(agents.clone());
        }
        Ok(Arc::new(agents.with_templates(&self.templates)?))
    }
}

/// A fork's step and change, as stored in its config.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ForkRecord {
    pub from_step: u32,
    pub change: Change,
}

/// An experiment's group-run input, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EvalInput {
    pub data_root: std::path::PathBuf,
    pub limit: Option<usize>,
    pub items: Vec<StoredItem>,
}

/// The blind-spot protocol needs a prefilled turn the backend really continues: check
/// it (a server is asked; see [`crate::llm::PrefillSupport`]) and refuse a backend that
/// does not, before any item runs. What was found is recorded in the experiment's config.
pub(crate) async fn check_backend(spec: &EvalSpec, model: &dyn ChatModel) -> Result<Option<PrefillSupport>> {
    if spec.protocol != Protocol::Blindspot {
        return Ok(None);
    }
    let support = model.prefill_support().await?;
    if !support.honoured() {
        return Err(EvalError::Spec {
            file: spec.file.clone().unwrap_or_else(|| spec.name.clone().into()),
            detail: format!(
                "the blind-spot protocol continues the model's own prefilled answer, and for model {} a prefilled \
                 assistant turn is {} (the embedded model continues one; so does a vLLM server run with --prefill)",
                model.info().spec,
                support.describe()
            ),
        }
        .into());
    }
    Ok(Some(support))
}

/// Start an experiment: load its items, store the group run, run every item.
pub async fn start(
    store: &TraceStore,
    spec: &EvalSpec,
    data_root: &Path,
    limit: Option<usize>,
    opts: &RunOptions,
    progress: &dyn Progress,
) -> Result<EvalRun> {
    let items = spec.load_items(data_root, limit)?;
    if items.is_empty() {
        return Err(EvalError::Spec {
            file: spec.file.clone().unwrap_or_else(|| spec.name.clone().into()),
            detail: "the datasets hold no items".into(),
        }
        .into());
    }
    let prefill = check_backend(spec, opts.model.as_ref()).await?;
    let items: Vec<StoredItem> = items.into_iter().map(|(dataset, item)| StoredItem { dataset, item }).collect();
    let feedback = opts.feedback_model.clone().unwrap_or_else(|| opts.model.clone());
    let config = eval_config(spec, &opts.model.info(), &feedback.info(), &opts.agents, None, prefill)?;
    let input = EvalInput { data_root: data_root.to_path_buf(), limit, items };
    let run = store.create_run(EVAL_KIND, to_json(&input)?, config, None).await?;
    let items = input.items;
    let source = ModelSource::Live { solver: opts.model.clone(), feedback };
    run_pending(store, &run, spec, &items, &source, None, opts, progress).await
}

/// Continue an interrupted experiment with the models in `opts`: items whose run
/// completed are kept; missing, interrupted and failed ones run again.
pub async fn resume(store: &TraceStore, run_id: RunId, opts: &RunOptions, progress: &dyn Progress) -> Result<EvalRun> {
    let run = load_eval(store, run_id)?;
    let (config, items) = (stored_config(&run)?, stored_items(&run)?);
    // The rest of the items run with the prompts the first ones ran with.
    let opts = &RunOptions { agents: config.agents(&opts.agents)?, ..opts.clone() };
    let spec = config.spec;
    let recorded = &config.model;
    if !same_model(recorded, &opts.model.info()) {
        return Err(EvalError::OtherModel {
            run: run.id.to_string(),
            recorded: recorded.spec.clone(),
            given: opts.model.info().spec,
        }
        .into());
    }
    check_backend(&spec, opts.model.as_ref()).await?;
    store.reopen_run(run.id).await?;
    let change = config.fork.map(|f| (f.from_step, f.change));
    let feedback = opts.feedback_model.clone().unwrap_or_else(|| opts.model.clone());
    let source = match change.as_ref() {
        // A fork's reused steps come from its parent's record.
        Some((from, _)) => {
            let parent = run.parent.ok_or_else(|| not_eval(run.id, "a fork without a parent"))?;
            ModelSource::Recorded {
                calls: recorded_calls(store, parent)?,
                fork: Some((*from, opts.model.clone(), feedback)),
            }
        }
        None => ModelSource::Live { solver: opts.model.clone(), feedback },
    };
    run_pending(store, &run, &spec, &items, &source, change, opts, progress).await
}

/// Whether two model infos name the same model: the same weights where both know
/// them, else the same spec (capabilities and base URL may differ between machines).
fn same_model(a: &ModelInfo, b: &ModelInfo) -> bool {
    match (&a.weights_sha256, &b.weights_sha256) {
        (Some(x), Some(y)) => x == y,
        _ => a.spec == b.spec,
    }
}

/// A record as JSON (our types always serialise; a failure is reported, not hidden).
fn to_json<T: Serialize>(value: &T) -> Result<Value, EvalError> {
    serde_json::to_value(value).map_err(|e| EvalError::NotAnEval {
        run: "(being written)".into(),
        detail: format!("unserialisable record: {e}"),
    })
}

pub(crate) fn eval_config(
    spec: &EvalSpec,
    model: &ModelInfo,
    feedback: &ModelInfo,
    agents: &AgentSet,
    fork: Option<&(u32, Change)>,
    prefill: Option<PrefillSupport>,
) -> Result<Value, EvalError> {
    let config = EvalConfig {
        spec: spec.clone(),
        model: model.clone(),
        feedback_model: feedback.clone(),
        agents: json!({ "solver": agents.solver, "feedback": agents.feedback }),
        fork: fork.map(|(from, change)| ForkRecord { from_step: *from, change: change.clone() }),
        prefill,
        templates: agents.template_sources(),
    };
    to_json(&config)
}

fn not_eval(run: RunId, detail: &str) -> EvalError {
    EvalError::NotAnEval { run: run.to_string(), detail: detail.to_string() }
}

pub(crate) fn load_eval(store: &TraceStore, run_id: RunId) -> Result<RunRecord> {
    let run = store.run(run_id)?.ok_or_else(|| not_eval(run_id, "no such run"))?;
    if run.kind != EVAL_KIND {
        return Err(not_eval(run_id, &format!("is a `{}` run, not an experiment (`eval run`)", run.kind)).into());
    }
    Ok(run)
}

pub(crate) fn stored_config(run: &RunRecord) -> Result<EvalConfig, EvalError> {
    EvalConfig::deserialize(&run.config).map_err(|e| not_eval(run.id, &format!("unreadable experiment config: {e}")))
}

pub(crate) fn stored_input(run: &RunRecord) -> Result<EvalInput, EvalError> {
    EvalInput::deserialize(&run.input).map_err(|e| not_eval(run.id, &format!("unreadable experiment input: {e}")))
}

pub(crate) fn stored_items(run: &RunRecord) -> Result<Vec<StoredItem>, EvalError> {
    stored_input(run).map(|input| input.items)
}

/// Every item slot's recorded chat calls, with the model that made them.
pub(crate) fn recorded_calls(store: &TraceStore, run_id: RunId) -> Result<RecordedBySlot> {
    let mut out = HashMap::new();
    for (slot, member) in store.members(run_id)? {
        let (info, calls) = crate::llm::recorded_calls(store.steps(member)?);
        let info = info.unwrap_or_else(no_model);
        out.insert(slot, (info, Arc::new(calls)));
    }
    Ok(out)
}

/// Run every item of `run` that has no completed item run yet.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_pending(
    store: &TraceStore,
    run: &RunRecord,
    spec: &EvalSpec,
    items: &[StoredItem],
    source: &ModelSource,
    change: Option<(u32, Change)>,
    opts: &RunOptions,
    progress: &dyn Progress,
) -> Result<EvalRun> {
    let mut done = std::collections::HashSet::new();
    for (slot, member) in store.members(run.id)? {
        if store.run(member)?.is_some_and(|m| m.status == RunStatus::Completed) {
            done.insert(slot);
        }
    }
    progress.start(run.id, items.len(), done.len());
    let limit = Arc::new(Semaphore::new(opts.concurrency.clamp(1, Semaphore::MAX_PERMITS)));
    let spec = Arc::new(spec.clone());
    let change = Arc::new(change);
    let mut tasks = JoinSet::new();
    let mut outcome =
        EvalRun { run_id: run.id, items: items.len(), ran: 0, skipped: done.len(), failed: 0, first_error: None };
    for (index, stored) in items.iter().enumerate() {
        let slot = index as u32;
        if done.contains(&slot) {
            continue;
        }
        let permit = limit.clone().acquire_owned().await.map_err(|_| not_eval(run.id, "scheduler closed"))?;
        let (solver, feedback) = source.for_item(slot);
        let (store, spec, change, stored) = (store.clone(), spec.clone(), change.clone(), stored.clone());
        let (item_opts, group) = (opts.clone(), GroupSlot { run: run.id, index: slot });
        tasks.spawn(async move {
            let result =
                run_one(&store, group, &spec, &stored, &item_opts, solver, feedback, change.as_ref().as_ref()).await;
            drop(permit);
            result
        });
        // Collect finished items as we go so progress stays live.
        while let Some(joined) = tasks.try_join_next() {
            record_result(joined, &mut outcome, progress)?;
        }
    }
    while let Some(joined) = tasks.join_next().await {
        record_result(joined, &mut outcome, progress)?;
    }
    progress.finish();
    let summary = json!({ "items": outcome.items, "completed": outcome.completed(), "failed": outcome.failed });
    // An experiment in which no item completed has measured nothing: it failed.
    if outcome.completed() == 0 && outcome.items > 0 {
        let why = outcome.first_error.clone().unwrap_or_else(|| "every item failed".into());
        let error = format!("no item completed; the first failure: {why}");
        store.finish_run(run.id, RunStatus::Failed, Some(summary), Some(error)).await?;
    } else {
        store.finish_run(run.id, RunStatus::Completed, Some(summary), None).await?;
    }
    Ok(outcome)
}

fn record_result(
    joined: Result<Result<ItemEnd>, tokio::task::JoinError>,
    outcome: &mut EvalRun,
    progress: &dyn Progress,
) -> Result<()> {
    let result = joined.map_err(|e| not_eval(outcome.run_id, &format!("an item task panicked: {e}")))?;
    outcome.ran += 1;
    match result? {
        ItemEnd::Completed(correct) => progress.item(Some(correct)),
        ItemEnd::Failed(why) => {
            outcome.failed += 1;
            outcome.first_error.get_or_insert(why);
            progress.item(None);
        }
    }
    Ok(())
}

/// Run one item in its own run; a failed item is recorded as failed.
#[allow(clippy::too_many_arguments)]
async fn run_one(
    store: &TraceStore,
    group: GroupSlot,
    spec: &EvalSpec,
    stored: &StoredItem,
    opts: &RunOptions,
    solver: Arc<dyn ChatModel>,
    feedback: Arc<dyn ChatModel>,
    change: Option<&(u32, Change)>,
) -> Result<ItemEnd> {
    let ds = spec.datasets.get(stored.dataset).ok_or_else(|| not_eval(group.run, "item of an unknown dataset"))?;
    let input = json!({ "index": group.index, "dataset": stored.dataset, "item": stored.item });
    let config = json!({ "protocol": spec.protocol, "answer": ds.answer, "model": solver.info() });
    let run = store.create_member_run(ITEM_KIND, input, config, group).await?;
    let recorder = RunRecorder::new(store.clone(), run.id, 0);
    // One budget per item: a runaway item fails instead of filling the store.
    let budget = Budget::new(spec.max_calls, spec.token_budget);
    let solver_rec = RecordingModel::with_budget(&recorder, "solver", solver, budget.clone());
    let feedback_rec = RecordingModel::with_budget(&recorder, "feedback", feedback, budget);
    let cx = ItemContext {
        spec,
        item: &stored.item,
        answer: ds.answer,
        agents: &opts.agents,
        tools: &opts.tools,
        retriever: opts.retriever.as_deref(),
        recorder: &recorder,
        solver: &solver_rec,
        feedback: &feedback_rec,
        change,
        injected: AtomicBool::new(false),
    };
    match run_item(spec.protocol, &cx).await {
        Ok(outcome) => {
            let correct = outcome.correct();
            store.finish_run(run.id, RunStatus::Completed, Some(to_json(&outcome)?), None).await?;
            Ok(ItemEnd::Completed(correct))
        }
        Err(e) => {
            store.finish_run(run.id, RunStatus::Failed, None, Some(e.to_string())).await?;
            match e {
                // A store that cannot be written stops the experiment.
                EvalStepError::Trace(t) => Err(t.into()),
                other => Ok(ItemEnd::Failed(format!("item {}: {other}", stored.item.id))),
            }
        }
    }
}
