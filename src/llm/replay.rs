//! Answers from a stored run instead of a model: exact replay, and forks that reuse
//! the recorded calls before a step and go live after it.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Capabilities, ChatModel, ChatRequest, Completion, ContinuationScore, LlmError, Message, ModelInfo};

/// One recorded model call: where it was in its run, and what it was.
#[derive(Debug, Clone)]
pub struct RecordedCall {
    /// Step index in the recorded run.
    pub step: u32,
    /// The call.
    pub call: Recorded,
}

/// A recorded chat or scoring call, with what came back.
#[derive(Debug, Clone)]
pub enum Recorded {
    /// A chat call.
    Chat {
        /// The request as sent.
        request: ChatRequest,
        /// The reply, or the recorded call's error.
        result: Result<Completion, RecordedError>,
    },
    /// Scoring a continuation.
    Score {
        /// The context.
        messages: Vec<Message>,
        /// The scored text.
        continuation: String,
        /// The score, or the recorded call's error.
        result: Result<ContinuationScore, RecordedError>,
    },
}

impl RecordedCall {
    /// A recorded chat call.
    pub fn chat(step: u32, request: ChatRequest, result: Result<Completion, RecordedError>) -> Self {
        Self { step, call: Recorded::Chat { request, result } }
    }
}

/// The model calls and scorings among a run's `steps`, in order, and the first model
/// identity they were recorded with.
pub fn recorded_calls(steps: Vec<crate::trace::StepRecord>) -> (Option<ModelInfo>, Vec<RecordedCall>) {
    use crate::trace::StepPayload;
    let mut info = None;
    let mut calls = Vec::new();
    for step in steps {
        let failed = || RecordedError(step.error.clone().unwrap_or_else(|| "unknown error".into()));
        match step.payload {
            StepPayload::ModelCall { model, request, response } => {
                info.get_or_insert(model);
                calls.push(RecordedCall::chat(step.index, request, response.ok_or_else(failed)));
            }
            StepPayload::Scoring { model, messages, continuation, score } => {
                info.get_or_insert(model);
                let result = score.ok_or_else(failed);
                calls.push(RecordedCall { step: step.index, call: Recorded::Score { messages, continuation, result } });
            }
            _ => {}
        }
    }
    (info, calls)
}

/// The error text a recorded call failed with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RecordedError(pub String);

struct Cursor {
    next: usize,
    /// Once a fork has gone live it stays live.
    live: bool,
}

/// Serves recorded replies in order, checking each request against the record.
///
/// Without a live model every call must match the record (a divergence is an error:
/// the replay is not exact). With one (a fork), recorded calls before `from_step` are
/// reused while the requests match, and every later call goes to the live model.
pub struct ReplayModel {
    info: ModelInfo,
    calls: Arc<Vec<RecordedCall>>,
    cursor: Arc<Mutex<Cursor>>,
    live: Option<(Arc<dyn ChatModel>, u32)>,
}

impl ReplayModel {
    /// Exact replay of `calls`, reported as the recorded model `info`.
    pub fn exact(info: ModelInfo, calls: impl Into<Arc<Vec<RecordedCall>>>) -> Self {
        Self { info, calls: calls.into(), cursor: Arc::new(Mutex::new(Cursor { next: 0, live: false })), live: None }
    }

    /// A fork: recorded calls at steps before `from_step`, then `live`.
    pub fn fork(
        info: ModelInfo,
        calls: impl Into<Arc<Vec<RecordedCall>>>,
        from_step: u32,
        live: Arc<dyn ChatModel>,
    ) -> Self {
        let cursor = Arc::new(Mutex::new(Cursor { next: 0, live: false }));
        Self { info, calls: calls.into(), cursor, live: Some((live, from_step)) }
    }

    /// Another handle on the same record and position, going live to `live` (a fork
    /// whose agents use different models shares one recorded sequence).
    pub fn sibling(&self, live: Option<Arc<dyn ChatModel>>) -> Self {
        Self {
            info: self.info.clone(),
            calls: self.calls.clone(),
            cursor: self.cursor.clone(),
            live: match (live, &self.live) {
                (Some(model), Some((_, from))) => Some((model, *from)),
                (_, other) => other.clone(),
            },
        }
    }

    /// Another handle on the same record and position that reports `info` (an agent
    /// whose own model, with its own capabilities, was recorded in the same run).
    pub fn sibling_as(&self, info: ModelInfo) -> Self {
        Self { info, ..self.sibling(None) }
    }

    /// Calls served from the record so far.
    pub fn replayed(&self) -> usize {
        self.cursor.lock().map(|c| c.next).unwrap_or(0)
    }

    /// The model a fork goes live to.
    fn live_model(&self) -> Result<&Arc<dyn ChatModel>, LlmError> {
        self.live.as_ref().map(|(live, _)| live).ok_or_else(|| LlmError::Replay("no live model".into()))
    }

    /// The next recorded call when `fits` accepts it; `Ok(None)` when a fork should go
    /// live. `what` names the call in errors.
    fn take(&self, what: &str, fits: impl Fn(&Recorded) -> bool) -> Result<Option<Recorded>, LlmError> {
        let mut cur = self.cursor.lock().map_err(|_| LlmError::Replay("replay state poisoned".into()))?;
        if cur.live {
            return Ok(None);
        }
        let recorded = self.calls.get(cur.next);
        match (&self.live, recorded) {
            (Some((_, from)), Some(c)) if c.step < *from && fits(&c.call) => {}
            (Some(_), _) => {
                cur.live = true;
                return Ok(None);
            }
            (None, Some(c)) if fits(&c.call) => {}
            (None, Some(c)) => {
                return Err(LlmError::Replay(format!(
                    "the run diverged from the record at step {}: the {what} differs from the recorded call",
                    c.step
                )))
            }
            (None, None) => {
                return Err(LlmError::Replay(format!(
                    "the run made more model calls than the {} recorded",
                    self.calls.len()
                )))
            }
        }
        cur.next += 1;
        Ok(recorded.map(|c| c.call.clone()))
    }
}

#[async_trait]
impl ChatModel for ReplayModel {
    fn info(&self) -> ModelInfo {
        match &self.live {
            Some((live, _)) if self.cursor.lock().map(|c| c.live).unwrap_or(false) => live.info(),
            _ => self.info.clone(),
        }
    }

    fn capabilities(&self) -> Capabilities {
        match &self.live {
            Some((live, _)) => live.capabilities(),
            // What the recorded backend could do, so prefills are emulated (or not) as
            // they were; runs recorded before capabilities were kept always prefilled.
            None => self.info.capabilities.unwrap_or(Capabilities {
                logprobs: true,
                score_continuation: false,
                prefill: true,
            }),
        }
    }

    async fn chat(&self, request: &ChatRequest) -> Result<Completion, LlmError> {
        let fits = |r: &Recorded| matches!(r, Recorded::Chat { request: rec, .. } if rec.sends_same_as(request));
        match self.take("request", fits)? {
            Some(Recorded::Chat { result: Ok(c), .. }) => Ok(c),
            Some(Recorded::Chat { result: Err(e), .. } | Recorded::Score { result: Err(e), .. }) => {
                Err(LlmError::Recorded(e.0.clone()))
            }
            Some(Recorded::Score { .. }) => {
                Err(LlmError::Replay("a scoring call where a chat call was recorded".into()))
            }
            None => self.live_model()?.chat(request).await,
        }
    }

    async fn score_continuation(
        &self,
        messages: &[Message],
        continuation: &str,
    ) -> Result<ContinuationScore, LlmError> {
        let fits = |r: &Recorded| matches!(r, Recorded::Score { messages: m, continuation: c, .. } if m == messages && c == continuation);
        match self.take("scoring", fits)? {
            Some(Recorded::Score { result: Ok(s), .. }) => Ok(s),
            Some(Recorded::Score { result: Err(e), .. } | Recorded::Chat { result: Err(e), .. }) => {
                Err(LlmError::Recorded(e.0.clone()))
            }
            Some(Recorded::Chat { .. }) => {
                Err(LlmError::Replay("a chat call where a scoring call was recorded".into()))
            }
            None => self.live_model()?.score_continuation(messages, continuation).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{Choice, FinishReason, Message};

    fn info() -> ModelInfo {
        ModelInfo::new("recorded", "test")
    }

    fn completion(text: &str) -> Completion {
        Completion {
            model: "m".into(),
            choices: vec![Choice { text: text.into(), finish_reason: FinishReason::Stop, logprobs: None }],
            usage: Default::default(),
            latency_ms: 0,
            rendered_prompt: None,
            seed: None,
        }
    }

    /// Answers every request with "live: " and its last message.
    struct Echo;

    #[async_trait]
    impl ChatModel for Echo {
        fn info(&self) -> ModelInfo {
            ModelInfo::new("echo", "test")
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::default()
        }
        async fn chat(&self, request: &ChatRequest) -> Result<Completion, LlmError> {
            let last = request.messages.last().map(|m| m.content.as_str()).unwrap_or("");
            Ok(completion(&format!("live: {last}")))
        }
    }

    fn req(q: &str) -> ChatRequest {
        ChatRequest::new(vec![Message::user(q)])
    }

    #[tokio::test]
    async fn exact_replay_serves_in_order_and_detects_divergence() {
        let calls = vec![
            RecordedCall::chat(0, req("1 + 2 ="), Ok(completion("3"))),
            RecordedCall::chat(2, req("Is 7 a prime number?"), Ok(completion("Yes"))),
        ];
        let replay = ReplayModel::exact(info(), calls.clone());
        // The purpose is not sent to a model, so it does not count as a divergence.
        let with_purpose = req("1 + 2 =").for_purpose(crate::llm::Purpose::Answer);
        assert_eq!(replay.chat(&with_purpose).await.unwrap().text(), "3");
        assert_eq!(replay.chat(&req("Is 7 a prime number?")).await.unwrap().text(), "Yes");
        let extra = replay.chat(&req("1 + 2 =")).await.unwrap_err().to_string();
        assert!(extra.contains("more model calls"), "{extra}");
        let other = ReplayModel::exact(info(), calls.clone());
        let err = other.chat(&req("Is 7 a prime number?")).await.unwrap_err().to_string();
        assert!(err.contains("diverged") && err.contains("step 0"), "{err}");
    }

    #[tokio::test]
    async fn forks_go_live_at_the_step_and_stay_live() {
        let calls = vec![
            RecordedCall::chat(0, req("1 + 1 ="), Ok(completion("recorded"))),
            RecordedCall::chat(3, req("2 + 2 ="), Ok(completion("recorded"))),
        ];
        let fork = ReplayModel::fork(info(), calls, 2, Arc::new(Echo));
        assert_eq!(fork.chat(&req("1 + 1 =")).await.unwrap().text(), "recorded");
        assert_eq!(fork.chat(&req("2 + 2 =")).await.unwrap().text(), "live: 2 + 2 =");
        assert_eq!(fork.replayed(), 1);
        assert_eq!(fork.info().spec, "echo");
    }

    #[tokio::test]
    async fn scoring_calls_replay_in_order_with_chats() {
        let score = ContinuationScore { total_logprob: -1.5, tokens: vec![] };
        let messages = vec![Message::user("Claim: x")];
        let calls = vec![
            RecordedCall {
                step: 0,
                call: Recorded::Score {
                    messages: messages.clone(),
                    continuation: "true".into(),
                    result: Ok(score.clone()),
                },
            },
            RecordedCall::chat(1, req("next"), Ok(completion("ok"))),
        ];
        let replay = ReplayModel::exact(info(), calls.clone());
        assert_eq!(replay.score_continuation(&messages, "true").await.unwrap(), score);
        assert_eq!(replay.chat(&req("next")).await.unwrap().text(), "ok");
        let other = ReplayModel::exact(info(), calls);
        let err = other.score_continuation(&messages, "false").await.unwrap_err().to_string();
        assert!(err.contains("diverged") && err.contains("scoring"), "{err}");
    }

    #[test]
    fn replays_report_the_recorded_capabilities() {
        let legacy = ReplayModel::exact(info(), Vec::new());
        assert!(legacy.capabilities().prefill, "runs recorded before capabilities were kept always prefilled");
        let no_prefill = Capabilities { prefill: false, ..Default::default() };
        let recorded = ReplayModel::exact(ModelInfo { capabilities: Some(no_prefill), ..info() }, Vec::new());
        assert!(!recorded.capabilities().prefill);
    }
}
