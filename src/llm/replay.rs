//! Answers from a stored run instead of a model: exact replay, and forks that reuse
//! the recorded calls before a step and go live after it.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Capabilities, ChatModel, ChatRequest, Completion, LlmError, ModelInfo};

/// One recorded chat call: where it was in its run, what was sent, what came back.
#[derive(Debug, Clone)]
pub struct RecordedCall {
    /// Step index in the recorded run.
    pub step: u32,
    /// The request as sent.
    pub request: ChatRequest,
    /// The reply, or the recorded call's error.
    pub result: Result<Completion, RecordedError>,
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

    /// Calls served from the record so far.
    pub fn replayed(&self) -> usize {
        self.cursor.lock().map(|c| c.next).unwrap_or(0)
    }

    /// The recorded reply for `request`, `Ok(None)` when a fork should go live.
    fn take(&self, request: &ChatRequest) -> Result<Option<Result<Completion, RecordedError>>, LlmError> {
        let mut cur = self.cursor.lock().map_err(|_| LlmError::Replay("replay state poisoned".into()))?;
        if cur.live {
            return Ok(None);
        }
        let recorded = self.calls.get(cur.next);
        let fits = |c: &RecordedCall| c.request.sends_same_as(request);
        match (&self.live, recorded) {
            (Some((_, from)), Some(c)) if c.step < *from && fits(c) => {}
            (Some(_), _) => {
                cur.live = true;
                return Ok(None);
            }
            (None, Some(c)) if fits(c) => {}
            (None, Some(c)) => {
                return Err(LlmError::Replay(format!(
                    "the run diverged from the record at step {}: the request differs from the recorded one",
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
        Ok(recorded.map(|c| c.result.clone()))
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
        match self.take(request)? {
            Some(Ok(c)) => Ok(c),
            Some(Err(e)) => Err(LlmError::Replay(format!("the recorded call failed: {e}"))),
            None => match &self.live {
                Some((live, _)) => live.chat(request).await,
                None => Err(LlmError::Replay("no live model".into())),
            },
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
            RecordedCall { step: 0, request: req("1 + 2 ="), result: Ok(completion("3")) },
            RecordedCall { step: 2, request: req("Is 7 a prime number?"), result: Ok(completion("Yes")) },
        ];
        let replay = ReplayModel::exact(info(), calls.clone());
        // The purpose is not sent to a model, so it does not count as a divergence.
        let with_purpose = req("1 + 2 =").for_purpose(crate::llm::Purpose::Answer);
        assert_eq!(replay.chat(&with_purpose).await.unwrap().text(), "3");
        assert_eq!(replay.chat(&calls[1].request).await.unwrap().text(), "Yes");
        let extra = replay.chat(&calls[0].request).await.unwrap_err().to_string();
        assert!(extra.contains("more model calls"), "{extra}");
        let other = ReplayModel::exact(info(), calls.clone());
        let err = other.chat(&calls[1].request).await.unwrap_err().to_string();
        assert!(err.contains("diverged") && err.contains("step 0"), "{err}");
    }

    #[tokio::test]
    async fn forks_go_live_at_the_step_and_stay_live() {
        let calls = vec![
            RecordedCall { step: 0, request: req("1 + 1 ="), result: Ok(completion("recorded")) },
            RecordedCall { step: 3, request: req("2 + 2 ="), result: Ok(completion("recorded")) },
        ];
        let fork = ReplayModel::fork(info(), calls, 2, Arc::new(Echo));
        assert_eq!(fork.chat(&req("1 + 1 =")).await.unwrap().text(), "recorded");
        assert_eq!(fork.chat(&req("2 + 2 =")).await.unwrap().text(), "live: 2 + 2 =");
        assert_eq!(fork.replayed(), 1);
        assert_eq!(fork.info().spec, "echo");
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
