//! The crate-wide error: each subsystem's error rolls up into it.

use crate::{
    agents::AgentError,
    corpus::CorpusError,
    home::HomeError,
    llm::LlmError,
    trace::{RunId, TraceError},
};

/// Any error recheck's library returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the model layer.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// From the trace store.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// A run failed; it is recorded in the trace store under `run_id`.
    #[error("{source} (recorded as run {run_id})")]
    RunFailed {
        /// The failed run.
        run_id: RunId,
        /// What failed.
        source: LlmError,
    },
    /// From the agents (configs, templates).
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// From the corpus.
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    /// From the home directory.
    #[error(transparent)]
    Home(#[from] HomeError),
}

/// `Result` with recheck's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
