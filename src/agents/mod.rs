//! Agents: the solver, the critic, the decomposer, the judge, the tool-checker, the
//! citation-attributor and the feedback writer.
//! Each is configured in `agents/*.toml` with prompts in `prompts/`, and talks to
//! models only through [`crate::llm::ChatModel`] (a recording wrapper in practice).

pub mod alce;
pub mod attributor;
pub mod calibration;
pub mod claims;
mod config;
pub mod contextcite;
pub mod critic;
pub mod decomposer;
pub mod judge;
pub mod location;
pub mod solver;
mod structured;
pub mod tool_checker;

use std::path::PathBuf;

pub use alce::{leave_one_out, CitationQuality};
pub use attributor::{attribute, citation_quality, CitedSentence};
pub use calibration::{Calibration, CalibrationFile};
pub use claims::{extract_claims, stance, Claim, ClaimKind};
pub use config::{AgentConfig, AgentSet};
pub use critic::{Critique, CritiqueVerdict};
pub use decomposer::{decompose, AtomicClaim, Decomposition};
pub use judge::{Entailment, JudgeChoice, JudgeKind, Judgement, Label, LexicalJudge, ModelJudge};
pub use location::{parse_location, Location};
pub use solver::continue_turn;
pub use tool_checker::{check_answer, CheckedClaim};

pub use crate::trace::Verdict;

/// Errors of the agents.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// An agent config or prompt template is invalid.
    #[error("{file}: {detail}")]
    Config {
        /// The file (or built-in name).
        file: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// A model call failed.
    #[error(transparent)]
    Llm(#[from] crate::llm::LlmError),
    /// Recording failed.
    #[error(transparent)]
    Trace(#[from] crate::trace::TraceError),
    /// Retrieval failed.
    #[error(transparent)]
    Corpus(#[from] crate::corpus::CorpusError),
    /// The judge cannot be calibrated as asked.
    #[error("judge calibration: {0}")]
    Calibration(String),
}
