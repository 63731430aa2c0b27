//! Experiments: run a protocol (feedback friction, snowballing, the self-correction
//! blind spot) over a dataset, one stored run per item, resumable after a crash;
//! replay stored experiments exactly, and fork them from a step with one change.
//!
//! An experiment is a group run (kind `eval`) whose slots are item runs (kind
//! `eval-item`); each item run holds every model and tool call of its item and, as
//! its output, the item's typed [`ItemOutcome`], which [`crate::analysis`] reads.

pub mod answers;
mod corpus;
mod error;
mod info;
pub mod leaks;
mod models;
mod protocol;
mod replay;
mod runner;
pub mod sim;
mod spec;

use std::sync::Arc;

pub use answers::AnswerKind;
pub use corpus::open_corpus;
pub use error::EvalError;
pub use info::{experiment, experiments, ExperimentInfo};
pub use models::ModelSettings;
pub use protocol::Change;
pub use replay::{fork, replay, ForkOptions, ReplayOutcome};
pub use runner::{resume, start, EvalRun, Progress, RunOptions};
pub use spec::{CorpusRef, DatasetRef, EvalSpec};

pub use crate::trace::{ItemOutcome, Protocol};
use crate::{
    llm::{self, BackendOptions, ChatModel, LlmError, ModelSpec},
    trace::run_kind,
};

/// Kind of an experiment's group run.
pub const EVAL_KIND: &str = run_kind::EVAL;
/// Kind of an item's run.
pub const ITEM_KIND: &str = run_kind::EVAL_ITEM;

/// Open any model spec: `openai:` and `local` through [`llm::open_model`], and the
/// `sim:` simulator, which lives here because it needs the exact tools.
pub fn open_model(spec: &ModelSpec, options: &BackendOptions) -> Result<Arc<dyn ChatModel>, LlmError> {
    match spec {
        ModelSpec::Sim { params } => {
            let params = sim::SimParams::parse(params)?;
            Ok(Arc::new(sim::SimBackend::new(params, spec.to_string())))
        }
        other => llm::open_model(other, options),
    }
}
