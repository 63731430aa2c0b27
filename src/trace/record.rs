//! Typed, versioned records of the trace store: runs and their steps.
//!
//! Every record carries `schema`; a reader refuses records newer than
//! [`SCHEMA_VERSION`]. Changes to these types are listed in CHANGELOG.md.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ChatRequest, Completion, ContinuationScore, Message, ModelInfo, Usage};

/// The trace schema version this build writes and the newest it reads.
///
/// 2: requests carry their [`super::Purpose`], model infos their capabilities, and item
/// outcomes are read as typed [`super::ItemOutcome`]s (same JSON shape as 1, so
/// schema-1 records load unchanged).
/// 3: a stored run record's config may be a reference to the store's config table
/// (`{"$ref": "sha256:..."}`); readers put the config back, so a [`RunRecord`] read
/// from the store or exported always holds it whole.
/// 4: a run record carries `seq`, how many times it was written, so recovery never
/// puts back a record older than the one stored (records before 4 read as `seq` 0).
pub const SCHEMA_VERSION: u32 = 4;

/// The kinds of run recheck writes (a [`RunRecord`]'s `kind`).
pub mod run_kind {
    /// A question answered by `ask`.
    pub const ASK: &str = "ask";
    /// One chat completion through `recheck serve` (verified, or passed through).
    pub const SERVE: &str = "serve";
    /// An experiment: a group run whose slots are item runs.
    pub const EVAL: &str = "eval";
    /// One item of an experiment.
    pub const EVAL_ITEM: &str = "eval-item";
    /// A batch of forks of `ask`/`serve` runs (`recheck replay --runs`): a group run
    /// whose slots are the forks.
    pub const FORKS: &str = "forks";
    /// An answer given to be verified, not written by recheck (`recheck verify`).
    pub const VERIFY: &str = "verify";
    /// A batch of given answers verified together: a group run whose slots are the
    /// `verify` runs of its records.
    pub const VERIFY_BATCH: &str = "verify-batch";
    /// Labelled records judged to fit a judge calibration (`recheck calibrate`): a
    /// group run whose slots are `verify` runs, its output the calibration file.
    pub const CALIBRATE: &str = "calibrate";
}

/// A run's id: a UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(Uuid);

impl RunId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
    /// The 16 key bytes; big-endian, so byte order is time order.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
    /// Rebuild from key bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(Uuid::from_bytes(bytes))
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for RunId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Still being written by a live process.
    Running,
    /// Finished normally.
    Completed,
    /// Finished with an error (recorded in `error`).
    Failed,
    /// Its process died before finishing; every completed step is kept.
    Incomplete,
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Incomplete => "incomplete",
        })
    }
}

/// One run: what was asked, how, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Schema version of this record.
    pub schema: u32,
    /// The record's version: 1 when the run starts, one more at each write of it
    /// (finished, reopened, marked incomplete). Replaying the write-ahead log never
    /// puts back a record whose `seq` is below the stored one's. 0 in records written
    /// before schema 4.
    #[serde(default)]
    pub seq: u64,
    /// The run's id.
    pub id: RunId,
    /// What kind of run: `ask`, `eval`, ...
    pub kind: String,
    /// What was asked (question, dataset item, ...).
    pub input: serde_json::Value,
    /// Everything that shaped the run: models, strategy, parameters, seed.
    pub config: serde_json::Value,
    /// The run this one was forked from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<RunId>,
    /// The group run (an experiment) this run is one item of, and its position there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupSlot>,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// End time, once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// Where the run stands.
    pub status: RunStatus,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The run's result (final answer, metrics, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
}

/// A run's place in a group run: an experiment's item `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSlot {
    /// The group run.
    pub run: RunId,
    /// Position in the group, from 0.
    pub index: u32,
}

/// What a step did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepPayload {
    /// A chat call: the full request, and the response when it succeeded.
    ModelCall {
        /// The model that was called.
        model: ModelInfo,
        /// Messages and parameters, exactly as sent.
        request: ChatRequest,
        /// The reply; `None` when the call failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        response: Option<Completion>,
    },
    /// Scoring a fixed continuation.
    Scoring {
        /// The model that scored.
        model: ModelInfo,
        /// The context.
        messages: Vec<Message>,
        /// The scored text.
        continuation: String,
        /// The score; `None` when scoring failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        score: Option<ContinuationScore>,
    },
    /// A tool call with its input and output.
    ToolCall {
        /// Tool name in the registry.
        tool: String,
        /// Arguments.
        input: serde_json::Value,
        /// Result; `None` when the tool failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<serde_json::Value>,
    },
    /// Anything else worth replaying: a critique, a validation failure, a revision.
    Event {
        /// What happened.
        name: String,
        /// Its data.
        data: serde_json::Value,
    },
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Schema version of this record.
    pub schema: u32,
    /// The run this step belongs to.
    pub run_id: RunId,
    /// Position in the run, from 0, in the order steps started.
    pub index: u32,
    /// The agent that took the step (`solver`, `critic`, ...).
    pub agent: String,
    /// When the step started.
    pub started_at: DateTime<Utc>,
    /// Wall time of the step.
    pub latency_ms: u64,
    /// What the step did.
    pub payload: StepPayload,
    /// Why the step failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StepRecord {
    /// Token usage of a model call; zero for other steps.
    pub fn usage(&self) -> Usage {
        match &self.payload {
            StepPayload::ModelCall { response: Some(r), .. } => r.usage,
            _ => Usage::default(),
        }
    }
}
