//! Experiments: run a protocol (feedback friction, snowballing, the self-correction
//! blind spot) over a dataset, one stored run per item, resumable after a crash;
//! replay stored experiments exactly, and fork them from a step with one change.
//!
//! An experiment is a group run (kind `eval`) whose slots are item runs (kind
//! `eval-item`); each item run holds every model and tool call of its item and, as
//! its output, the item's graded outcome, which [`crate::analysis`] reads.

pub mod answers;
mod error;
mod protocol;
mod replay;
mod runner;
mod spec;

pub use answers::AnswerKind;
pub use error::EvalError;
pub use protocol::{Change, Protocol};
pub use replay::{fork, replay, ForkOptions, ReplayOutcome};
pub use runner::{resume, start, EvalRun, Progress, RunOptions};
pub use spec::{DatasetRef, EvalSpec};

/// Kind of an experiment's group run.
pub const EVAL_KIND: &str = "eval";
/// Kind of an item's run.
pub const ITEM_KIND: &str = "eval-item";
