//! The orchestrator: strategies that run the agents over a question, record every
//! step of the run, and return the verified, cited answer.

mod batch;
mod batch_report;
mod batch_tally;
pub mod best_of_n;
mod citations;
mod fork;
mod given;
mod given_batch;
mod options;
mod outcome;
mod record;
pub mod records;
mod replay;
mod run;
mod select;
mod settings;
mod strategy;
mod verify;

pub use crate::agents::{Calibration, JudgeChoice};
pub use batch::{fork_batch, BatchInput, BatchOptions};
pub use batch_report::{batch_report, BatchReport, ForkPair, Skipped, VerdictFlip};
pub use batch_tally::BatchTally;
pub use best_of_n::Candidate;
pub use fork::{fork, AskChange, AskFork, ForkModels};
pub use given::{verify, verify_row, Context, ContextQuote, GivenAnswer, VerifyOutcome};
pub use given_batch::{verify_batch, BatchRun};
pub use options::{AskOptions, Question, DEFAULT_CONTEXT_PASSAGES};
pub use outcome::{
    AskOutcome, Attribution, ClaimReport, Consistency, ConsistencyKind, Evidence, IoeDecision, OutcomeSummary, Round,
    Span, StopReason, SupportCounts, Verification,
};
pub use record::{AgentRecords, AskRecord};
pub use replay::{replay, AskReplay};
pub use run::ask;
pub use select::{check_tag, RunFilter};
pub use settings::{agent_options, calibration, check_judge, open_index, parse_judge, OpenModel, Settings};
pub use strategy::{LoopOptions, Strategy, UnknownStrategy};
pub use verify::{ClaimUnit, VerifyOptions};
