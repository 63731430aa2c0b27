//! Recording and budgets: every call made through a [`RecordingModel`] becomes a step
//! of a run, and is admitted only while the run's [`Budget`] lasts.
//!
//! Agents receive a [`RecordingModel`] as a plain [`ChatModel`] and never see the store;
//! callers read what was spent from the shared [`Budget`], not from counts pushed back up.

use std::{
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use async_trait::async_trait;
use chrono::Utc;

use super::{
    Capabilities, ChatModel, ChatRequest, Completion, ContinuationScore, LlmError, Message, ModelInfo, PrefillSupport,
    Usage,
};
use crate::trace::{RunRecorder, StepPayload};

/// Limits on one run's model calls, shared by every [`RecordingModel`] of the run.
///
/// A call is admitted while fewer than `max_calls` calls were made, fewer than
/// `max_tokens` tokens spent (0 = no token limit) and the deadline, if any, has not
/// passed; a call past a limit fails with [`LlmError::BudgetExhausted`] without
/// reaching the model (a call already running is not cut short). Continuation scoring
/// counts as a call with no tokens.
#[derive(Debug, Default)]
pub struct Budget {
    max_calls: u32,
    max_tokens: u64,
    deadline: Option<Instant>,
    calls: AtomicU32,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
}

/// Which limit a run reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetLimit {
    /// Model calls.
    Calls,
    /// Tokens, prompt and completion.
    Tokens,
    /// Time: the run's deadline passed.
    Time,
}

impl Budget {
    /// At most `max_calls` calls and `max_tokens` tokens (0 = no token limit).
    pub fn new(max_calls: u32, max_tokens: u64) -> Arc<Self> {
        Arc::new(Self { max_calls, max_tokens, ..Default::default() })
    }

    /// This budget, also refusing calls from `deadline` on.
    pub fn with_deadline(max_calls: u32, max_tokens: u64, deadline: Option<Instant>) -> Arc<Self> {
        Arc::new(Self { max_calls, max_tokens, deadline, ..Default::default() })
    }

    /// No limits.
    pub fn unlimited() -> Arc<Self> {
        Self::new(u32::MAX, 0)
    }

    /// The limit reached, if any: no further call would be admitted.
    pub fn exhausted(&self) -> Option<BudgetLimit> {
        if self.calls() >= self.max_calls {
            Some(BudgetLimit::Calls)
        } else if self.max_tokens > 0 && self.usage().total() >= self.max_tokens {
            Some(BudgetLimit::Tokens)
        } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
            Some(BudgetLimit::Time)
        } else {
            None
        }
    }

    /// Calls made so far (failed calls included: they were sent).
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Tokens spent so far.
    pub fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens.load(Ordering::SeqCst) as u32,
            completion_tokens: self.completion_tokens.load(Ordering::SeqCst) as u32,
        }
    }

    fn admit(&self) -> Result<(), LlmError> {
        match self.exhausted() {
            Some(limit) => Err(LlmError::BudgetExhausted(limit)),
            None => {
                self.calls.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        }
    }

    fn spend(&self, usage: Usage) {
        self.prompt_tokens.fetch_add(u64::from(usage.prompt_tokens), Ordering::SeqCst);
        self.completion_tokens.fetch_add(u64::from(usage.completion_tokens), Ordering::SeqCst);
    }
}

/// A [`ChatModel`] that records every call of one agent, failed ones included, and
/// admits calls only within its run's [`Budget`].
pub struct RecordingModel {
    inner: Arc<dyn ChatModel>,
    recorder: RunRecorder,
    agent: String,
    budget: Arc<Budget>,
}

impl RecordingModel {
    /// Record `model`'s calls as steps of `agent` with `recorder`, without limits.
    pub fn new(recorder: &RunRecorder, agent: &str, model: Arc<dyn ChatModel>) -> Self {
        Self::with_budget(recorder, agent, model, Budget::unlimited())
    }

    /// Record `model`'s calls as steps of `agent`, admitted while `budget` lasts.
    pub fn with_budget(recorder: &RunRecorder, agent: &str, model: Arc<dyn ChatModel>, budget: Arc<Budget>) -> Self {
        Self { inner: model, recorder: recorder.clone(), agent: agent.to_string(), budget }
    }

    /// The budget this model draws on.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// The model's identity with its capabilities, as recorded on each step.
    fn recorded_info(&self) -> ModelInfo {
        super::identity(self.inner.as_ref())
    }

    /// Write scoring step `index`: `continuation` after `messages`, with its score or
    /// the call's error.
    async fn record_scoring(
        &self,
        index: u32,
        started: (chrono::DateTime<Utc>, Instant),
        messages: &[Message],
        continuation: &str,
        outcome: Result<Option<ContinuationScore>, String>,
    ) -> Result<(), LlmError> {
        let (score, error) = match outcome {
            Ok(score) => (score, None),
            Err(e) => (None, Some(e)),
        };
        let payload = StepPayload::Scoring {
            model: self.recorded_info(),
            messages: messages.to_vec(),
            continuation: continuation.to_string(),
            score,
        };
        self.recorder
            .record(index, &self.agent, started, payload, error)
            .await
            .map_err(|e| LlmError::Recording(e.to_string()))?;
        Ok(())
    }
}

#[async_trait]
impl ChatModel for RecordingModel {
    fn info(&self) -> ModelInfo {
        self.inner.info()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn prefill_support(&self) -> Result<PrefillSupport, LlmError> {
        self.inner.prefill_support().await
    }

    async fn chat(&self, request: &ChatRequest) -> Result<Completion, LlmError> {
        self.budget.admit()?;
        // What the run did so far is durable before another model call is paid for.
        self.recorder.sync_steps().await.map_err(|e| LlmError::Recording(e.to_string()))?;
        let index = self.recorder.reserve();
        let started = (Utc::now(), Instant::now());
        let result = self.inner.chat(request).await;
        let (response, error) = match &result {
            Ok(c) => {
                self.budget.spend(c.usage);
                (Some(c.clone()), None)
            }
            Err(e) => (None, Some(e.to_string())),
        };
        let payload = StepPayload::ModelCall { model: self.recorded_info(), request: request.clone(), response };
        self.recorder
            .record(index, &self.agent, started, payload, error)
            .await
            .map_err(|e| LlmError::Recording(e.to_string()))?;
        result
    }

    async fn score_continuation(
        &self,
        messages: &[Message],
        continuation: &str,
    ) -> Result<ContinuationScore, LlmError> {
        self.budget.admit()?;
        self.recorder.sync_steps().await.map_err(|e| LlmError::Recording(e.to_string()))?;
        let index = self.recorder.reserve();
        let started = (Utc::now(), Instant::now());
        let result = self.inner.score_continuation(messages, continuation).await;
        let outcome = result.as_ref().map(|s| Some(s.clone())).map_err(|e| e.to_string());
        self.record_scoring(index, started, messages, continuation, outcome).await?;
        result
    }

    /// One call to the inner model for all of `continuations` (it may share the
    /// prompt's decoding), recorded as one scoring step each, exactly as separate calls
    /// would be (so a replay serves them one by one); each step carries an equal share
    /// of the call's time. Each counts as a call against the budget.
    async fn score_continuations(
        &self,
        messages: &[Message],
        continuations: &[&str],
    ) -> Result<Vec<ContinuationScore>, LlmError> {
        for _ in continuations {
            self.budget.admit()?;
        }
        self.recorder.sync_steps().await.map_err(|e| LlmError::Recording(e.to_string()))?;
        let indices: Vec<u32> = continuations.iter().map(|_| self.recorder.reserve()).collect();
        let (wall, started) = (Utc::now(), Instant::now());
        let result = self.inner.score_continuations(messages, continuations).await;
        let share = started.elapsed() / continuations.len().max(1) as u32;
        for (k, (index, continuation)) in indices.into_iter().zip(continuations).enumerate() {
            let outcome = result.as_ref().map(|scores| scores.get(k).cloned()).map_err(|e| e.to_string());
            let begun = Instant::now().checked_sub(share).unwrap_or_else(Instant::now);
            self.record_scoring(index, (wall, begun), messages, continuation, outcome).await?;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_admits_until_a_limit_is_reached() {
        let b = Budget::new(2, 10);
        assert!(b.admit().is_ok());
        b.spend(Usage { prompt_tokens: 4, completion_tokens: 2 });
        assert_eq!(b.exhausted(), None);
        assert!(b.admit().is_ok());
        assert_eq!(b.exhausted(), Some(BudgetLimit::Calls));
        assert!(matches!(b.admit(), Err(LlmError::BudgetExhausted(BudgetLimit::Calls))));
        let t = Budget::new(10, 5);
        assert!(t.admit().is_ok());
        t.spend(Usage { prompt_tokens: 5, completion_tokens: 0 });
        assert!(matches!(t.admit(), Err(LlmError::BudgetExhausted(BudgetLimit::Tokens))));
        assert_eq!(t.calls(), 1, "a refused call is not counted");
        let late = Budget::with_deadline(10, 0, Some(Instant::now()));
        assert!(matches!(late.admit(), Err(LlmError::BudgetExhausted(BudgetLimit::Time))));
        let early = Budget::with_deadline(10, 0, Instant::now().checked_add(std::time::Duration::from_secs(60)));
        assert!(early.admit().is_ok());
    }
}
