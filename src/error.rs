//! The crate-wide error: every subsystem's error rolls up into it, and every entry
//! point of the library returns it.

use crate::{
    agents::AgentError,
    analysis::AnalysisError,
    corpus::CorpusError,
    datasets::DatasetError,
    eval::EvalError,
    home::HomeError,
    llm::LlmError,
    tools::ToolError,
    trace::{RunId, TraceError},
};

/// Any error recheck's library returns. Each variant wraps the error of the
/// subsystem that failed; match on it, or print it with `{:#}`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the model layer.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// From the trace store.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// A run failed; it is recorded in the trace store under `run_id`. (Its cause is in
    /// the message, not a `source`, so `{:#}` does not print it twice.)
    #[error("{cause} (recorded as run {run_id})")]
    RunFailed {
        /// The failed run.
        run_id: RunId,
        /// What failed.
        cause: LlmError,
    },
    /// A given answer's verification needed a model call that failed: its verdicts
    /// would say less than they seem to (the run is stored as failed, with them).
    #[error("the answer could not be verified: {reason} (recorded as run {run_id})")]
    Unverifiable {
        /// The stored run.
        run_id: RunId,
        /// The first failed call.
        reason: String,
    },
    /// An input that cannot be run as asked (nothing was stored), and why.
    #[error("{0}")]
    BadInput(String),
    /// A stored `ask` or `serve` run that cannot be replayed, and why.
    #[error("run {run_id} cannot be replayed: {reason}")]
    NotReplayable {
        /// The run.
        run_id: RunId,
        /// Why.
        reason: String,
    },
    /// A fork's change that cannot be made (unknown, malformed, or changing nothing).
    #[error("bad change {change:?}: {reason}")]
    BadChange {
        /// The change as given.
        change: String,
        /// Why.
        reason: String,
    },
    /// A selection of stored runs that is malformed or selects none.
    #[error("runs {filter:?}: {reason}")]
    BadSelection {
        /// The filter as given.
        filter: String,
        /// What is wrong with it.
        reason: String,
    },
    /// From OpenTelemetry export.
    #[cfg(feature = "otlp")]
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    /// From the agents (configs, templates).
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// From the corpus.
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    /// From an exact tool.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// From a dataset loader.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// From an experiment (its spec, its stored record, a fork's change).
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// From analysis of stored runs.
    #[error(transparent)]
    Analysis(#[from] AnalysisError),
    /// From the home directory.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// From `recheck serve`.
    #[cfg(feature = "server")]
    #[error(transparent)]
    Server(#[from] crate::server::ServerError),
}

/// `Result` with recheck's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
