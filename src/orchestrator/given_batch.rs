//! Many given answers verified as one batch: a `verify-batch` group run whose slots are
//! the records' `verify` runs, `concurrency` at a time, each result handed back in input
//! order as soon as every one before it is, so a stream of any length runs in bounded
//! memory.

use std::{collections::BTreeMap, ops::ControlFlow, sync::Arc};

use serde_json::json;

use super::{verify, AskOptions, AskRecord, GivenAnswer, VerifyOutcome};
use crate::{
    llm::ChatModel,
    trace::{run_kind, GroupSlot, RunId, TraceStore},
    Error, Result,
};

/// How a batch runs.
#[derive(Debug, Clone, Copy)]
pub struct BatchRun {
    /// The group run to add the records' runs to (a batch being resumed), or `None`
    /// for a new `verify-batch` run.
    pub group: Option<RunId>,
    /// Records verified at once.
    pub concurrency: usize,
}

/// Results waiting for an earlier one beyond this many (a slow record holding the
/// output back) keep new records from starting until it is done.
const REORDER_WINDOW: usize = 1024;

/// Verify each record of `records` (`None`: a record the caller passes over, such as
/// one it could not read or one a resumed batch already finished) as slot `i` of the
/// batch's group run, handing `each(i, result)` every slot in input order (`None` for a
/// passed-over one). `each` returning `Break` stops the batch there (records being
/// verified are cut off, their runs left incomplete; the group run can be resumed).
/// Returns the group run, left for the caller to finish with its summary.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> recheck::Result<()> {
/// use recheck::{orchestrator::{verify_batch, BatchRun, GivenAnswer, JudgeChoice}, AskOptions, TraceStore};
/// let store = TraceStore::temporary()?;
/// let model = recheck::open_model(&"sim:seed=1".parse()?, &Default::default())?;
/// let options = AskOptions::builtin()?.judge(JudgeChoice::Lexical);
/// let records = (1..=3).map(|i| {
///     let answer = format!("Uranus was discovered in 1781. It has {i} rings.");
///     Some(GivenAnswer { answer, contexts: vec!["Uranus was discovered in 1781.".into()], ..Default::default() })
/// });
/// let mut seen = Vec::new();
/// let run = BatchRun { group: None, concurrency: 2 };
/// verify_batch(&store, model, &options, records, run, |i, outcome| {
///     seen.push((i, outcome.map(|o| o.map(|o| o.faithfulness))));
///     std::ops::ControlFlow::Continue(())
/// })
/// .await?;
/// assert_eq!(seen.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1, 2], "in input order");
/// assert!(seen.iter().all(|(_, f)| matches!(f, Some(Ok(Some(f))) if *f == 0.5)), "one claim of two is backed");
/// # Ok(()) }
/// ```
pub async fn verify_batch(
    store: &TraceStore,
    model: Arc<dyn ChatModel>,
    options: &AskOptions,
    records: impl IntoIterator<Item = Option<GivenAnswer>>,
    run: BatchRun,
    mut each: impl FnMut(usize, Option<Result<VerifyOutcome>>) -> ControlFlow<()>,
) -> Result<RunId> {
    let group = match run.group {
        Some(group) => group,
        None => {
            let config = AskRecord::of(options, crate::llm::identity(model.as_ref()));
            let config = serde_json::to_value(config).unwrap_or_default();
            store.create_run(run_kind::VERIFY_BATCH, json!({}), config, None).await?.id
        }
    };
    let concurrency = run.concurrency.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
    let window = REORDER_WINDOW.max(4 * concurrency);
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    let mut waiting: BTreeMap<usize, Option<Result<VerifyOutcome>>> = BTreeMap::new();
    let mut next = 0usize;
    // Hands out what is in order; `false` once `each` has said stop.
    let mut flush = |waiting: &mut BTreeMap<usize, Option<Result<VerifyOutcome>>>, next: &mut usize| {
        while let Some(result) = waiting.remove(next) {
            if each(*next, result).is_break() {
                return false;
            }
            *next += 1;
        }
        true
    };
    let joined = |done: std::result::Result<(usize, Result<VerifyOutcome>), tokio::task::JoinError>| {
        done.map_err(|e| Error::BadInput(format!("a record's verification stopped: {e}")))
    };
    for (slot, record) in records.into_iter().enumerate() {
        while slot >= next + window {
            let Some(done) = tasks.join_next().await else { break };
            let (s, result) = joined(done)?;
            waiting.insert(s, Some(result));
            if !flush(&mut waiting, &mut next) {
                return Ok(group);
            }
        }
        match record {
            None => {
                waiting.insert(slot, None);
            }
            Some(given) => {
                let permit = gate
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|e| Error::BadInput(format!("the batch's gate: {e}")))?;
                let (store, model) = (store.clone(), model.clone());
                let mut options = options.clone();
                options.group = Some(GroupSlot { run: group, index: slot as u32 });
                tasks.spawn(async move {
                    let outcome = verify(&store, model, &given, &options).await;
                    drop(permit);
                    (slot, outcome)
                });
            }
        }
        while let Some(done) = tasks.try_join_next() {
            let (s, result) = joined(done)?;
            waiting.insert(s, Some(result));
        }
        if !flush(&mut waiting, &mut next) {
            return Ok(group);
        }
    }
    while let Some(done) = tasks.join_next().await {
        let (s, result) = joined(done)?;
        waiting.insert(s, Some(result));
        if !flush(&mut waiting, &mut next) {
            break;
        }
    }
    Ok(group)
}
