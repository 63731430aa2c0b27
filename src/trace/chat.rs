//! Backend-neutral request and response types of chat models, as the trace store
//! records them.
//!
//! They live here, at the bottom of the crate, because a model call step holds them;
//! the model layer (`llm`) re-exports them and keeps wire formats inside its backends.

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
    /// With `logprobs`, the most likely alternatives wanted at each position (0 = none).
    #[serde(skip_serializing_if = "is_zero")]
    pub top_logprobs: u8,
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            max_tokens: 512,
            stop: Vec::new(),
            seed: None,
            n: 1,
            logprobs: false,
            top_logprobs: 0,
        }
    }
}

/// What a model call is for: the agent's task. Recorded with the request and never
/// sent to a model; the `sim:` simulator keys on it (never on prompt wording), and a
/// trace reader can tell the calls of one run apart by it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Not stated (runs recorded before purposes existed, or direct library calls).
    #[default]
    Unspecified,
    /// The solver answers a question (first answer or an answer after feedback).
    Answer,
    /// The solver revises its answer from a critique.
    Revise,
    /// The solver continues its own prefilled answer (`wait`, `backtrack`, blind spot).
    Continue,
    /// The critic reviews an answer.
    Critique,
    /// The feedback writer of the friction protocol.
    Feedback,
    /// A claim asked back alone, in a fresh context (snowballing).
    ClaimCheck,
    /// The model checks and finishes a user's attempt (blind spot, user condition).
    CheckAttempt,
    /// The decomposer splits an answer into atomic claims.
    Decompose,
    /// A judge decides whether evidence supports a claim.
    Judge,
    /// Another answer drawn to check the first one's claims against (self-consistency).
    Sample,
    /// The critic names the first wrong step of a reasoning trace (mistakes protocol).
    LocateMistake,
    /// The solver samples a located step of its own reasoning again (mistakes protocol).
    Backtrack,
    /// One of the answers `best-of-n` draws and verifies.
    Candidate,
}

impl Purpose {
    /// True for [`Purpose::Unspecified`] (it is left out of serialised requests).
    pub fn is_unspecified(&self) -> bool {
        *self == Purpose::Unspecified
    }
}

/// A chat request: messages plus parameters, and what the call is for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Sampling parameters.
    #[serde(default)]
    pub params: SamplingParams,
    /// The agent's task; not sent to the model.
    #[serde(default, skip_serializing_if = "Purpose::is_unspecified")]
    pub purpose: Purpose,
}

impl ChatRequest {
    /// A request with default parameters.
    pub fn new(messages: Vec<Message>) -> Self {
        Self { messages, params: SamplingParams::default(), purpose: Purpose::Unspecified }
    }

    /// The same request with `params`.
    pub fn with_params(mut self, params: SamplingParams) -> Self {
        self.params = params;
        self
    }

    /// The same request, made for `purpose`.
    pub fn for_purpose(mut self, purpose: Purpose) -> Self {
        self.purpose = purpose;
        self
    }

    /// Whether `other` sends the model the same thing (messages and parameters; the
    /// purpose is not sent, so it does not count). Replay matches calls by this.
    pub fn sends_same_as(&self, other: &ChatRequest) -> bool {
        self.messages == other.messages && self.params == other.params
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

impl Usage {
    /// Prompt and completion tokens together.
    pub fn total(&self) -> u64 {
        u64::from(self.prompt_tokens) + u64::from(self.completion_tokens)
    }
}

impl std::ops::Add for Usage {
    type Output = Usage;
    fn add(mut self, other: Usage) -> Usage {
        self += other;
        self
    }
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
    /// The most likely tokens at this position with theirs, when asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top: Vec<TopLogprob>,
}

/// An alternative token at one position and its log-probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopLogprob {
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

impl ContinuationScore {
    /// The score of a continuation scored token by token: the tokens, and their sum.
    pub fn from_tokens(tokens: Vec<TokenLogprob>) -> Self {
        Self { total_logprob: tokens.iter().map(|t| t.logprob).sum(), tokens }
    }
}

/// What a backend can do beyond plain chat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Per-token log-probabilities of generated text.
    pub logprobs: bool,
    /// Scoring a given continuation (`ChatModel::score_continuation` in `llm`).
    pub score_continuation: bool,
    /// A trailing assistant message is continued, not answered.
    pub prefill: bool,
}

/// How a backend continues a prefilled assistant turn, and the evidence for it. The
/// blind-spot protocol's own-answer conditions mean what they say only when this is
/// [`PrefillSupport::honoured`]; an experiment records it in its config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PrefillSupport {
    /// The backend does not claim to continue one: agents emulate the turn (and record
    /// that they did).
    Absent,
    /// The backend renders the prompt itself and ends it inside the assistant turn.
    Rendered,
    /// The backend says it continues the turn, and nothing checked it.
    Claimed,
    /// The server was asked the same question three ways (fresh; with a prefilled
    /// `prefix` marked to be continued; with it as a closed turn), and the prompt token
    /// counts it reported tell whether it continued the turn.
    Probed {
        /// The prefilled text.
        prefix: String,
        /// Prompt tokens of the fresh question.
        fresh_tokens: u32,
        /// Prompt tokens with the prefix marked to be continued.
        continued_tokens: u32,
        /// Prompt tokens with the prefix as a closed turn.
        closed_tokens: u32,
        /// The verdict.
        honoured: bool,
    },
    /// The server was asked, but its replies did not tell (no token usage).
    Unknown {
        /// Why not.
        reason: String,
    },
}

impl PrefillSupport {
    /// Whether a prefilled turn is known to be continued.
    pub fn honoured(&self) -> bool {
        match self {
            Self::Rendered | Self::Claimed => true,
            Self::Probed { honoured, .. } => *honoured,
            Self::Absent | Self::Unknown { .. } => false,
        }
    }

    /// One line for reports and errors.
    pub fn describe(&self) -> String {
        match self {
            Self::Absent => "not supported by the backend".into(),
            Self::Rendered => "continued natively (the backend renders the chat template itself)".into(),
            Self::Claimed => "continued by the backend, by its own account (not checked)".into(),
            Self::Probed { prefix, fresh_tokens, continued_tokens, closed_tokens, honoured } => {
                let evidence = format!(
                    "prompt tokens: fresh question {fresh_tokens}, with {prefix:?} to continue {continued_tokens}, \
                     with it as a closed turn {closed_tokens}"
                );
                if *honoured {
                    format!("continued by the server (checked; {evidence})")
                } else {
                    format!(
                        "ignored by the server (checked; {evidence}: the turn was closed and answered afresh, \
                         so a continuation would be a new answer glued to the prefix)"
                    )
                }
            }
            Self::Unknown { reason } => format!("could not be checked: {reason}"),
        }
    }
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
    /// What the backend could do when the run was made, so a replay behaves the same
    /// (e.g. emulates a prefilled turn again). `None` in runs recorded before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// How an embedded model decoded its calls (prefix reuse, sequences batched
    /// together), so a figure is tied to its mode. `None` for remote models and in runs
    /// recorded before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoding: Option<Decoding>,
}

impl ModelInfo {
    /// A model known by its spec and backend name only.
    pub fn new(spec: impl Into<String>, backend: impl Into<String>) -> Self {
        Self {
            spec: spec.into(),
            backend: backend.into(),
            weights_sha256: None,
            base_url: None,
            capabilities: None,
            decoding: None,
        }
    }
}

/// How the embedded model decodes calls. Batch shapes and reused KV state can change
/// llama.cpp's floating-point results in the last bits, so a run records the mode its
/// figures were made in; [`Decoding::DETERMINISTIC`] is the mode whose reruns are
/// bit-identical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Decoding {
    /// A call decodes only the tokens after the longest prefix it shares with a prompt
    /// whose KV state is still cached (llama.cpp server's `cache_prompt`); off, every
    /// call starts from an empty KV cache.
    pub prefix_reuse: bool,
    /// llama.cpp sequences (`n_seq_max`): calls decoded together in one batch, each
    /// with the full context. 1 decodes one call at a time.
    pub sequences: u32,
}

impl Decoding {
    /// One call at a time from an empty KV cache: reruns give bit-identical results.
    pub const DETERMINISTIC: Decoding = Decoding { prefix_reuse: false, sequences: 1 };

    /// Whether reruns are bit-identical (no reuse, no batching across calls).
    pub fn is_deterministic(&self) -> bool {
        !self.prefix_reuse && self.sequences <= 1
    }
}

impl std::fmt::Display for Decoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_deterministic() {
            return write!(f, "deterministic (one call at a time, no prefix reuse)");
        }
        write!(
            f,
            "{} sequence{} batched, prefix reuse {}",
            self.sequences,
            if self.sequences == 1 { "" } else { "s" },
            if self.prefix_reuse { "on" } else { "off" }
        )
    }
}
