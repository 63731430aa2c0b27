//! The crate-wide error: every subsystem's error rolls up into it, and every entry
//! point of the library returns it.

use crate::{
    agents::AgentError,
    analysis::AnalysisError,
    corpus::CorpusError,
    datasets::DatasetError,
    embed::EmbedError,
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
    /// From an embedder or opening an index for dense search.
    #[error(transparent)]
    Embed(#[from] EmbedError),
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
    /// A setting (of `ask`, `verify`, a model's connection) refused before anything
    /// ran: its name as the library spells it (`temperature_step`) and what is wrong
    /// (`must be a number in [0, 2], got NaN`). Each front end names the setting its
    /// own way: the command line as a flag, Python as a keyword.
    #[error("{setting} {problem}")]
    BadSetting {
        /// The setting's name.
        setting: String,
        /// What is wrong with its value.
        problem: String,
    },
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
    /// From reading a store through the `recheck serve` that holds it.
    #[error(transparent)]
    Remote(#[from] crate::home::RemoteError),
    /// From `recheck serve`.
    #[cfg(feature = "server")]
    #[error(transparent)]
    Server(#[from] crate::server::ServerError),
}

/// `Result` with recheck's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether this is bad usage (what was asked cannot be run as asked): the command
    /// line exits 2 for it, Python raises `UsageError`.
    pub fn is_usage(&self) -> bool {
        match self {
            Error::BadSetting { .. } | Error::BadChange { .. } | Error::BadSelection { .. } => true,
            Error::Llm(l) | Error::RunFailed { cause: l, .. } | Error::Agent(AgentError::Llm(l)) => {
                matches!(l, LlmError::BadSpec { .. })
            }
            Error::Eval(EvalError::BadChange { .. }) => true,
            Error::Corpus(c) | Error::Embed(EmbedError::Corpus(c)) => corpus_is_usage(c),
            Error::Embed(EmbedError::BadSpec { .. }) => true,
            #[cfg(feature = "otlp")]
            Error::Telemetry(crate::telemetry::TelemetryError::BadEndpoint { .. }) => true,
            _ => false,
        }
    }

    /// What the user can do about this error, in the command line's words, if there is
    /// something to say.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Llm(l) | Error::RunFailed { cause: l, .. } | Error::Agent(AgentError::Llm(l)) => llm_hint(l),
            Error::Trace(t) => trace_hint(t),
            Error::Corpus(c) | Error::Embed(EmbedError::Corpus(c)) => corpus_hint(c),
            Error::Eval(e) => eval_hint(e),
            Error::Home(_) => Some(HOME_HINT),
            _ => None,
        }
    }
}

/// Whether a corpus error is the user asking for what the index cannot do (dense
/// search of an index without vectors, another embedder than its own).
pub fn corpus_is_usage(e: &CorpusError) -> bool {
    matches!(e, CorpusError::NoVectors { .. } | CorpusError::WrongEmbedder { .. } | CorpusError::NeedsEmbedder { .. })
}

/// The hint for a home directory that cannot be used.
pub const HOME_HINT: &str = "set --home or RECHECK_HOME to a writable directory";

/// The hint for a model-layer error.
pub fn llm_hint(e: &LlmError) -> Option<&'static str> {
    match e {
        LlmError::BaseUrl(_) => Some("pass --base-url URL or set OPENAI_BASE_URL"),
        _ => None,
    }
}

/// The hint for a trace-store error.
pub fn trace_hint(e: &TraceError) -> Option<&'static str> {
    match e {
        TraceError::InUse { .. } => Some("wait for the other recheck process to finish, or use another --home"),
        TraceError::Damaged { .. } => Some(
            "`recheck traces salvage` builds a new store from every record that can still be read and keeps the damaged one beside it",
        ),
        _ => None,
    }
}

/// The hint for a corpus error.
pub fn corpus_hint(e: &CorpusError) -> Option<&'static str> {
    match e {
        CorpusError::NoIndex(_) => Some("build one with `recheck index --index DIR SOURCE...`"),
        CorpusError::BadQuery { .. } => Some("drop --syntax to search plain text"),
        _ => None,
    }
}

/// The hint for an experiment's error.
pub fn eval_hint(e: &EvalError) -> Option<&'static str> {
    match e {
        EvalError::DatasetMissing { under: Some(_), .. } => {
            Some("pass --data-root DIR or set RECHECK_DATA_ROOT to the folder holding the datasets")
        }
        _ => None,
    }
}
