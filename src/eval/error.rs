//! Errors of experiments' own making; what other modules report reaches the caller
//! as the crate's [`crate::Error`].

use std::path::PathBuf;

/// What can be wrong with an experiment itself.
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
    /// A dataset file the spec names does not exist.
    #[error("experiment spec {file}: dataset {path} not found{}", under.as_ref().map(|r| format!(" under data root {}", r.display())).unwrap_or_default())]
    DatasetMissing {
        /// The spec file.
        file: PathBuf,
        /// The path looked at.
        path: PathBuf,
        /// The data root it was resolved against, for paths relative to it.
        under: Option<PathBuf>,
    },
    /// The run is not an experiment, or its record lacks what the operation needs.
    #[error("run {run}: {detail}")]
    NotAnEval {
        /// The run id.
        run: String,
        /// What is missing.
        detail: String,
    },
    /// An experiment was asked to go on with another model than the one it ran with.
    #[error("run {run} was run with model {recorded}, not {given}: resuming would mix two models in one experiment (fork it to compare models)")]
    OtherModel {
        /// The experiment.
        run: String,
        /// The model it recorded.
        recorded: String,
        /// The model given.
        given: String,
    },
    /// A fork's change could not be understood or does not apply.
    #[error("change {change:?}: {detail}")]
    BadChange {
        /// The change as given.
        change: String,
        /// What was wrong.
        detail: String,
    },
}
