//! Errors of experiments.

use std::path::PathBuf;

use crate::{agents::AgentError, analysis::AnalysisError, datasets::DatasetError, llm::LlmError, trace::TraceError};

/// Everything that can stop an experiment.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The experiment spec is unreadable or invalid.
    #[error("experiment spec {file}: {detail}")]
    Spec {
        /// The spec file.
        file: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// A dataset could not be loaded.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The trace store failed.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// An agent's config or template failed.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// Metrics could not be computed.
    #[error(transparent)]
    Analysis(#[from] AnalysisError),
    /// A model could not be opened (calls that fail are recorded per item instead).
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// The run is not an experiment, or its record lacks what the operation needs.
    #[error("run {run}: {detail}")]
    NotAnEval {
        /// The run id.
        run: String,
        /// What is missing.
        detail: String,
    },
    /// A `--change` could not be understood or does not apply.
    #[error("--change {change:?}: {detail}")]
    BadChange {
        /// The change as given.
        change: String,
        /// What was wrong.
        detail: String,
    },
}
