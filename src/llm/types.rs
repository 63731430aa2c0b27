//! Backend-neutral request and response types for chat models.
//!
//! Wire formats stay inside the backends; everything above `llm` sees only these.

use serde::{Deserialize, Serialize};

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions that frame the conversation.
    System,
    /// The person (or agent) asking.
    User,
    /// The model.
    Assistant,
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Author of the message.
    pub role: Role,
    /// Plain-text content.
    pub content: String,
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self { role: Role::System, content: content.into() }
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self { role: Role::User, content: content.into() }
    }
    /// An assistant message. As the last message of a request it is a prefilled
    /// turn that the model continues (see [`ChatRequest::continues_assistant`]).
    pub fn assistant(content: impl Into<String>) -> Self {
        Self { role: Role::Assistant, content: content.into() }
    }
}

/// Sampling and length parameters of one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// 0.0 means greedy decoding.
    pub temperature: f32,
    /// Nucleus sampling mass; 1.0 disables it.
    pub top_p: f32,
    /// Upper bound on generated tokens.
    pub max_tokens: u32,
    /// Generation stops before any of these strings.
    pub stop: Vec<String>,
    /// Seed for sampling; recorded so a run can be re-executed.
    pub seed: Option<u64>,
    /// Number of choices wanted.
    pub n: u32,
    /// Whether per-token log-probabilities are wanted.
    pub logprobs: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self { temperature: 0.0, top_p: 1.0, max_tokens: 512, stop: Vec::new(), seed: None, n: 1, logprobs: false }
    }
}

/// A chat request: messages plus parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Sampling parameters.
    #[serde(default)]
    pub params: SamplingParams,
}

impl ChatRequest {
    /// A request with default parameters.
    pub fn new(messages: Vec<Message>) -> Self {
        Self { messages, params: SamplingParams::default() }
    }

    /// True when the last message is an assistant turn that the model must continue
    /// rather than answer (the blind-spot protocol puts an error "in the model's mouth").
    pub fn continues_assistant(&self) -> bool {
        self.messages.last().is_some_and(|m| m.role == Role::Assistant)
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural stop or a stop string.
    Stop,
    /// The token limit was reached.
    Length,
    /// The server filtered the content.
    ContentFilter,
    /// The model asked for a tool call.
    ToolCalls,
    /// The backend did not say (some servers send an empty or missing field).
    Unknown,
    /// Any other value a server sent, kept verbatim.
    Other(String),
}

impl FinishReason {
    /// Map a server's free-form finish reason; empty or missing becomes `Unknown`.
    pub fn parse(raw: Option<&str>) -> Self {
        match raw.map(str::trim) {
            None | Some("") => Self::Unknown,
            Some("stop") | Some("eos") | Some("end_turn") => Self::Stop,
            Some("length") => Self::Length,
            Some("content_filter") => Self::ContentFilter,
            Some("tool_calls") | Some("function_call") => Self::ToolCalls,
            Some(other) => Self::Other(other.to_string()),
        }
    }
}

/// Token counts of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, rhs: Self) {
        self.prompt_tokens += rhs.prompt_tokens;
        self.completion_tokens += rhs.completion_tokens;
    }
}

/// Log-probability of one generated (or scored) token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    /// The token's text.
    pub token: String,
    /// Natural-log probability.
    pub logprob: f64,
}

/// One generated alternative.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Generated text (for a prefilled turn: only the continuation).
    pub text: String,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
    /// Per-token log-probabilities, when asked for and offered by the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<TokenLogprob>>,
}

/// The result of one chat call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// The model name the backend reported.
    pub model: String,
    /// At least one choice.
    pub choices: Vec<Choice>,
    /// Token counts.
    pub usage: Usage,
    /// Wall time of the call, retries included.
    pub latency_ms: u64,
    /// The exact prompt text the model saw, when the backend renders it itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendered_prompt: Option<String>,
    /// The seed the backend sampled with, when it sampled (chosen by the backend
    /// if the request had none), so the call can be re-run exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl Completion {
    /// Text of the first choice.
    pub fn text(&self) -> &str {
        self.choices.first().map(|c| c.text.as_str()).unwrap_or("")
    }

    /// Finish reason of the first choice.
    pub fn finish_reason(&self) -> FinishReason {
        self.choices.first().map(|c| c.finish_reason.clone()).unwrap_or(FinishReason::Unknown)
    }
}

/// Log-probability of a fixed continuation after a prompt, without generating.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContinuationScore {
    /// Sum of the token log-probabilities.
    pub total_logprob: f64,
    /// Each token of the continuation with its log-probability.
    pub tokens: Vec<TokenLogprob>,
}

/// What a backend can do beyond plain chat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Per-token log-probabilities of generated text.
    pub logprobs: bool,
    /// [`super::ChatModel::score_continuation`].
    pub score_continuation: bool,
    /// A trailing assistant message is continued, not answered.
    pub prefill: bool,
}

/// Identity of a model as recorded in traces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The spec string the model was built from, e.g. `openai:gpt-4o-mini`.
    pub spec: String,
    /// Backend name: `openai`, `local`, ...
    pub backend: String,
    /// SHA-256 of the weights file, when the backend knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_sha256: Option<String>,
    /// Base URL for HTTP backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
}
