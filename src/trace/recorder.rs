//! The run recorder: appends numbered steps (tool calls, events, and the model calls
//! that `llm::RecordingModel` hands it) to one run.

use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::Instant,
};

use chrono::Utc;

use super::{RunId, StepPayload, StepRecord, TraceError, TraceStore, SCHEMA_VERSION};

/// Appends steps to one run, numbering them in the order they start.
#[derive(Clone, Debug)]
pub struct RunRecorder {
    store: TraceStore,
    run_id: RunId,
    next_index: Arc<AtomicU32>,
}

impl RunRecorder {
    /// A recorder for `run_id`, continuing after `existing_steps` steps already stored.
    pub fn new(store: TraceStore, run_id: RunId, existing_steps: u32) -> Self {
        Self { store, run_id, next_index: Arc::new(AtomicU32::new(existing_steps)) }
    }

    /// The run being recorded.
    pub fn run_id(&self) -> RunId {
        self.run_id
    }

    /// The store written to.
    pub fn store(&self) -> &TraceStore {
        &self.store
    }

    /// The index the next step will get.
    pub fn next_index(&self) -> u32 {
        self.next_index.load(Ordering::SeqCst)
    }

    /// Make the steps recorded so far durable before a model call is made (see
    /// [`super::Durability::EveryStep`]).
    pub async fn sync_steps(&self) -> Result<(), TraceError> {
        self.store.sync_steps().await
    }

    /// Reserve the next step index (taken when a step starts, so order is start order).
    pub fn reserve(&self) -> u32 {
        self.next_index.fetch_add(1, Ordering::SeqCst)
    }

    /// Write one step (durable before the run's next model call or its end).
    pub async fn record(
        &self,
        index: u32,
        agent: &str,
        started: (chrono::DateTime<Utc>, Instant),
        payload: StepPayload,
        error: Option<String>,
    ) -> Result<StepRecord, TraceError> {
        let step = StepRecord {
            schema: SCHEMA_VERSION,
            run_id: self.run_id,
            index,
            agent: agent.to_string(),
            started_at: started.0,
            latency_ms: started.1.elapsed().as_millis() as u64,
            payload,
            error,
        };
        self.store.append_step(&step).await?;
        Ok(step)
    }

    /// Record an event step (critique, validation failure, revision, ...) now.
    pub async fn event(&self, agent: &str, name: &str, data: serde_json::Value) -> Result<StepRecord, TraceError> {
        let index = self.reserve();
        let payload = StepPayload::Event { name: name.to_string(), data };
        self.record(index, agent, (Utc::now(), Instant::now()), payload, None).await
    }
}
