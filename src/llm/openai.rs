//! The `openai` backend: any OpenAI-compatible chat-completions server, through async-openai.
//!
//! Requests and responses use our own lenient wire types (async-openai's "bring your own
//! types" calls), because compatible servers differ from OpenAI: a missing `object`,
//! an empty or null `finish_reason`, missing `usage`, extra fields.

use std::{sync::Arc, time::Instant};

use async_openai::{config::OpenAIConfig, error::OpenAIError, middleware::ReqwestService, Client};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::{
    prefill, retry::RetryPolicy, Capabilities, ChatModel, ChatRequest, Choice, Completion, FinishReason, LlmError,
    Message, ModelInfo, PrefillSupport, RetryConfig, TokenLogprob, TopLogprob, Usage,
};

/// Settings of an OpenAI-compatible endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiOptions {
    /// Base URL, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    /// API key; local servers usually accept any value or none.
    pub api_key: Option<String>,
    /// Timeouts and retries.
    pub retry: RetryConfig,
    /// Calls in flight at once, shared by every agent using this backend.
    pub max_concurrency: usize,
    /// The server continues a trailing assistant message instead of answering it
    /// (vLLM's `continue_final_message`). Off by default: agents then emulate the
    /// prefilled turn and record that they did.
    pub prefill: bool,
    /// Largest reply accepted, in bytes: a bigger declared body is refused before it is
    /// read, and a bigger reply text is refused before it reaches the trace store.
    pub max_reply_bytes: usize,
}

/// Default cap on one reply: 8 MiB.
pub const DEFAULT_MAX_REPLY_BYTES: usize = 8 << 20;

/// A reply over [`OpenAiOptions::max_reply_bytes`].
#[derive(Debug, thiserror::Error)]
#[error("the reply is {bytes} bytes, over the limit of {limit}")]
struct ReplyTooLarge {
    bytes: u64,
    limit: u64,
}

impl OpenAiOptions {
    /// Options for `base_url` with defaults for the rest.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: None,
            retry: RetryConfig::default(),
            max_concurrency: 16,
            prefill: false,
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
        }
    }
}

/// A chat model behind an OpenAI-compatible HTTP API.
pub struct OpenAiBackend {
    client: Client<OpenAIConfig>,
    model: String,
    options: OpenAiOptions,
    limiter: Arc<Semaphore>,
    /// Whether the server really continues a prefilled turn, checked on first need.
    prefill_checked: tokio::sync::OnceCell<PrefillSupport>,
}

impl std::fmt::Debug for OpenAiBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never reaches logs.
        f.debug_struct("OpenAiBackend").field("model", &self.model).field("base_url", &self.options.base_url).finish()
    }
}

impl OpenAiBackend {
    /// Build a client for `model` at the endpoint in `options`.
    pub fn new(model: impl Into<String>, options: OpenAiOptions) -> Result<Self, LlmError> {
        let base_url = options.base_url.trim_end_matches('/').to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(LlmError::BaseUrl(format!("base URL {base_url:?} must start with http:// or https://")));
        }
        let http = reqwest::Client::builder()
            .timeout(options.retry.timeout)
            .build()
            .map_err(|e| LlmError::Config(format!("cannot build HTTP client: {e}")))?;
        let limit = options.max_reply_bytes as u64;
        let service = tower::ServiceBuilder::new()
            .retry(RetryPolicy::new(options.retry.clone()))
            // A body declared bigger than the cap is refused before it is read.
            .and_then(move |response: reqwest::Response| async move {
                match response.content_length().filter(|bytes| *bytes > limit) {
                    Some(bytes) => Err(OpenAIError::Boxed(Box::new(ReplyTooLarge { bytes, limit }))),
                    None => Ok(response),
                }
            })
            .service(ReqwestService::new(http));
        let config = OpenAIConfig::new()
            .with_api_base(base_url.clone())
            .with_api_key(options.api_key.clone().unwrap_or_default());
        let client = Client::with_config(config).with_http_service(service);
        let limiter = Arc::new(Semaphore::new(options.max_concurrency.clamp(1, Semaphore::MAX_PERMITS)));
        Ok(Self {
            client,
            model: model.into(),
            options: OpenAiOptions { base_url, ..options },
            limiter,
            prefill_checked: tokio::sync::OnceCell::new(),
        })
    }

    /// The call, tried again when the body broke off or stalled after the headers (the
    /// retry policy sees only the response's head, so those failures come back here).
    async fn call_retrying_bodies(&self, wire: &WireRequest<'_>) -> Result<WireResponse, LlmError> {
        let retry = &self.options.retry;
        let mut attempt = 0;
        loop {
            match self.client.chat().create_byot(wire).await {
                Ok(response) => return Ok(response),
                Err(e) => {
                    let body_failed = matches!(&e, OpenAIError::Reqwest(r) if r.is_body() || r.is_decode());
                    let err = self.map_error(e);
                    if !body_failed || attempt >= retry.max_retries {
                        return Err(err);
                    }
                    let delay = retry.backoff(attempt);
                    attempt += 1;
                    super::retry::count_retry();
                    tracing::debug!(
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        "retrying a broken reply body: {err}"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    fn map_error(&self, error: OpenAIError) -> LlmError {
        let url = self.options.base_url.clone();
        match error {
            OpenAIError::Boxed(e) if e.is::<ReplyTooLarge>() => {
                LlmError::BadResponse { detail: e.to_string(), body: String::new() }
            }
            // A body that broke off or stalled (a stalled one times out while read).
            OpenAIError::Reqwest(e) if e.is_body() || e.is_decode() => LlmError::BadResponse {
                detail: format!("broken, truncated or stalled body: {}", error_chain(&e)),
                body: String::new(),
            },
            OpenAIError::Reqwest(e) if e.is_timeout() => {
                LlmError::Timeout { url, timeout_ms: self.options.retry.timeout.as_millis() as u64 }
            }
            OpenAIError::Reqwest(e) if e.is_connect() => LlmError::Unreachable { url, detail: error_chain(&e) },
            OpenAIError::Reqwest(e) => LlmError::Unreachable { url, detail: error_chain(&e) },
            OpenAIError::ApiError(r) => {
                LlmError::Http { status: r.status_code.as_u16(), body: LlmError::clip(&r.api_error.to_string()) }
            }
            OpenAIError::JSONDeserialize(e, body) => {
                LlmError::BadResponse { detail: e.to_string(), body: LlmError::clip(&body) }
            }
            other => LlmError::BadResponse { detail: other.to_string(), body: String::new() },
        }
    }
}

/// reqwest hides the root cause (e.g. "connection refused") in its source chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: &'a [Message],
    temperature: f32,
    top_p: f32,
    max_tokens: u32,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    n: u32,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    logprobs: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_logprobs: Option<u8>,
    stream: bool,
    /// vLLM's switches for continuing a trailing assistant message.
    #[serde(skip_serializing_if = "Option::is_none")]
    continue_final_message: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    add_generation_prompt: Option<bool>,
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    message: Option<WireMessage>,
    /// Some servers put the text here even on the chat route.
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    logprobs: Option<WireLogprobs>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct WireLogprobs {
    #[serde(default)]
    content: Option<Vec<WireToken>>,
}

#[derive(Deserialize)]
struct WireToken {
    token: String,
    logprob: f64,
    #[serde(default)]
    top_logprobs: Option<Vec<WireTop>>,
}

#[derive(Deserialize)]
struct WireTop {
    token: String,
    logprob: f64,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

#[async_trait]
impl ChatModel for OpenAiBackend {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            base_url: Some(self.options.base_url.clone()),
            ..ModelInfo::new(format!("openai:{}", self.model), "openai")
        }
    }

    fn capabilities(&self) -> Capabilities {
        // Generated-token logprobs are part of the API; whether a trailing assistant
        // message is continued depends on the server (vLLM's `continue_final_message`),
        // so it is promised only when the options say the server does it.
        Capabilities { logprobs: true, score_continuation: false, prefill: self.options.prefill }
    }

    async fn chat(&self, request: &ChatRequest) -> Result<Completion, LlmError> {
        let prefill = request.continues_assistant();
        if prefill && self.options.prefill {
            // `--prefill` is the user's word for the server; a server that ignores the
            // mark would turn every continuation into a fresh answer, silently.
            let support = self.checked_prefill().await?;
            if matches!(support, PrefillSupport::Probed { honoured: false, .. }) {
                return Err(LlmError::PrefillIgnored {
                    url: self.options.base_url.clone(),
                    detail: support.describe(),
                });
            }
        }
        self.send(request, prefill).await
    }

    async fn prefill_support(&self) -> Result<PrefillSupport, LlmError> {
        if !self.options.prefill {
            return Ok(PrefillSupport::Absent);
        }
        Ok(self.checked_prefill().await?.clone())
    }
}

impl OpenAiBackend {
    /// The server's handling of a prefilled turn, checked once (`--prefill` only).
    async fn checked_prefill(&self) -> Result<&PrefillSupport, LlmError> {
        self.prefill_checked
            .get_or_try_init(|| async {
                let [fresh, continued, closed] = prefill::requests();
                let replies = [
                    self.send(&fresh.0, fresh.1).await?,
                    self.send(&continued.0, continued.1).await?,
                    self.send(&closed.0, closed.1).await?,
                ];
                let support = prefill::verdict(&replies);
                tracing::info!(url = %self.options.base_url, "prefilled turn: {}", support.describe());
                Ok(support)
            })
            .await
    }

    /// One call; `continue_turn` marks the trailing assistant message to be continued.
    async fn send(&self, request: &ChatRequest, continue_turn: bool) -> Result<Completion, LlmError> {
        let p = &request.params;
        let prefill = continue_turn;
        let wire = WireRequest {
            model: &self.model,
            messages: &request.messages,
            temperature: p.temperature,
            top_p: p.top_p,
            max_tokens: p.max_tokens,
            stop: &p.stop,
            seed: p.seed,
            n: p.n.max(1),
            logprobs: p.logprobs,
            top_logprobs: (p.logprobs && p.top_logprobs > 0).then_some(p.top_logprobs),
            stream: false,
            continue_final_message: prefill.then_some(true),
            add_generation_prompt: prefill.then_some(false),
        };
        let _permit =
            self.limiter.acquire().await.map_err(|_| LlmError::Config("model concurrency limiter closed".into()))?;
        let started = Instant::now();
        let response = self.call_retrying_bodies(&wire).await?;
        let latency_ms = started.elapsed().as_millis() as u64;
        // A body sent without a length is only known once read: refuse it before it
        // reaches the trace store.
        let text_bytes: usize = response
            .choices
            .iter()
            .map(|c| c.text.as_ref().or(c.message.as_ref().and_then(|m| m.content.as_ref())).map_or(0, String::len))
            .sum();
        if text_bytes > self.options.max_reply_bytes {
            let too_large = ReplyTooLarge { bytes: text_bytes as u64, limit: self.options.max_reply_bytes as u64 };
            return Err(LlmError::BadResponse { detail: too_large.to_string(), body: String::new() });
        }
        if response.choices.is_empty() {
            return Err(LlmError::BadResponse { detail: "reply has no choices".into(), body: String::new() });
        }
        let choices = response
            .choices
            .into_iter()
            .map(|c| Choice {
                text: c.message.and_then(|m| m.content).or(c.text).unwrap_or_default(),
                finish_reason: FinishReason::parse(c.finish_reason.as_deref()),
                logprobs: c.logprobs.and_then(|l| l.content).map(|tokens| {
                    tokens
                        .into_iter()
                        .map(|t| TokenLogprob {
                            token: t.token,
                            logprob: t.logprob,
                            top: t
                                .top_logprobs
                                .unwrap_or_default()
                                .into_iter()
                                .map(|a| TopLogprob { token: a.token, logprob: a.logprob })
                                .collect(),
                        })
                        .collect()
                }),
            })
            .collect();
        let usage = response
            .usage
            .map(|u| Usage { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens })
            .unwrap_or_default();
        Ok(Completion {
            model: response.model.unwrap_or_else(|| self.model.clone()),
            choices,
            usage,
            latency_ms,
            rendered_prompt: None,
            seed: p.seed,
        })
    }
}
