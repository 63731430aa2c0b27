//! The trace store: runs and their steps in sled, exported and imported as JSONL.
//!
//! Every model call, tool call, critique and revision is a step. Analysis and
//! replay read these records, never live state.

mod chat;
mod configs;
mod error;
mod jsonl;
mod mistakes;
mod outcome;
mod output;
mod record;
mod recorder;
mod store;
mod wal;

pub use chat::{
    Capabilities, ChatRequest, Choice, Completion, ContinuationScore, Decoding, FinishReason, Message, ModelInfo,
    PrefillSupport, Purpose, Role, SamplingParams, TokenLogprob, TopLogprob, Usage,
};
pub use error::TraceError;
pub use jsonl::{ExportedRun, TraceLine, TransferCounts};
pub use mistakes::{Backtrack, Location, LocationSource, MistakesOutcome};
pub use outcome::{
    AskedBackClaim, BlindspotConditions, BlindspotOutcome, ConditionResult, FrictionOutcome, FrictionRound,
    ItemOutcome, JudgeKind, Label, Protocol, SettledClaim, SnowballOutcome, Verdict, VerifyOutcome,
};
pub use output::{write_output, Output};
pub use record::{run_kind, GroupSlot, RunId, RunRecord, RunStatus, StepPayload, StepRecord, SCHEMA_VERSION};
pub use recorder::RunRecorder;
pub use store::{parse_time, Durability, ListedRun, Listing, ListingFilter, LogRecovery, SalvageReport, TraceStore};
