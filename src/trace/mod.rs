//! The trace store: runs and their steps in sled, exported and imported as JSONL.
//!
//! Every model call, tool call, critique and revision is a step. Analysis and
//! replay read these records, never live state.

mod error;
mod jsonl;
mod record;
mod recorder;
mod store;

pub use error::TraceError;
pub use jsonl::{TraceLine, TransferCounts};
pub use record::{GroupSlot, RunId, RunRecord, RunStatus, StepPayload, StepRecord, SCHEMA_VERSION};
pub use recorder::{RecordingModel, RunRecorder};
pub use store::{Durability, TraceStore};
