//! The orchestrator: strategies that run the agents over a question, record every
//! step of the run, and return the verified, cited answer.

mod citations;
mod fork;
mod options;
mod outcome;
mod record;
mod replay;
mod run;
mod strategy;
mod verify;

pub use crate::agents::JudgeChoice;
pub use fork::{fork, AskChange, AskFork};
pub use options::{AskOptions, Question, DEFAULT_CONTEXT_PASSAGES};
pub use outcome::{
    AskOutcome, Attribution, ClaimReport, Consistency, ConsistencyKind, Evidence, IoeDecision, Round, Span, StopReason,
    SupportCounts, Verification,
};
pub use record::{AgentRecords, AskRecord};
pub use replay::{replay, AskReplay};
pub use run::ask;
pub use strategy::{LoopOptions, Strategy, UnknownStrategy};
pub use verify::VerifyOptions;
