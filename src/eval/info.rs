//! What a stored experiment is, read from its record: for listings and for commands
//! that continue or replay it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{
    runner::{load_eval, stored_config, stored_input},
    EvalSpec,
};
use crate::{
    llm::ModelInfo,
    trace::{run_kind, Protocol, RunId, RunRecord, RunStatus, TraceStore},
    Result,
};

/// A stored experiment's identity and state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentInfo {
    /// The experiment's group run.
    pub run_id: RunId,
    /// The spec's name.
    pub name: String,
    /// Its protocol.
    pub protocol: Protocol,
    /// The model under test.
    pub model: ModelInfo,
    /// Items in the experiment.
    pub items: usize,
    /// Where the group run stands.
    pub status: RunStatus,
    /// The experiment this one forks.
    pub parent: Option<RunId>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its spec, as run (a fork's with its change applied).
    #[serde(skip)]
    pub spec: EvalSpec,
    /// The data root its datasets and corpus were read from.
    pub data_root: std::path::PathBuf,
}

impl ExperimentInfo {
    fn of(run: &RunRecord) -> Result<Self> {
        let config = stored_config(run)?;
        let input = stored_input(run)?;
        Ok(Self {
            run_id: run.id,
            name: config.spec.name.clone(),
            protocol: config.spec.protocol,
            model: config.model,
            items: input.items.len(),
            status: run.status,
            parent: run.parent,
            started_at: run.started_at,
            spec: config.spec,
            data_root: input.data_root,
        })
    }
}

/// The experiment `run_id`; an error if it is not one or its record is unreadable.
pub fn experiment(store: &TraceStore, run_id: RunId) -> Result<ExperimentInfo> {
    ExperimentInfo::of(&load_eval(store, run_id)?)
}

/// Every stored experiment, oldest first.
pub fn experiments(store: &TraceStore) -> Result<Vec<ExperimentInfo>> {
    store.list_runs()?.iter().filter(|r| r.kind == run_kind::EVAL).map(ExperimentInfo::of).collect()
}
