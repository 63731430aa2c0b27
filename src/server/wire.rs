//! The OpenAI chat-completions wire format, as far as the proxy reads and writes it.
//!
//! Requests are read leniently (fields the proxy does not use are kept for
//! pass-through and otherwise ignored); responses are written in the shape the
//! official SDKs parse, plus the `recheck` object.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    corpus::Passage,
    llm::{Message, Role},
    orchestrator::{AskOutcome, ClaimReport, SupportCounts, Verification},
    trace::RunId,
};

/// A `POST /v1/chat/completions` body.
#[derive(Debug, Deserialize)]
pub struct ChatCompletionRequest {
    /// The model asked for (`""` = the server's default).
    #[serde(default)]
    pub model: String,
    /// The conversation.
    pub messages: Vec<WireMessage>,
    /// Stream the answer as server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options (`include_usage`).
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Choices asked for.
    #[serde(default)]
    pub n: Option<u32>,
    /// Solver temperature.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Solver generation limit (legacy name).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Solver generation limit.
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    /// Seed of sampled calls.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Function calling (passed through).
    #[serde(default)]
    pub tools: Option<Value>,
    /// Legacy function calling (passed through).
    #[serde(default)]
    pub functions: Option<Value>,
    /// A response format other than text (passed through).
    #[serde(default)]
    pub response_format: Option<Value>,
    /// recheck's own per-request options, read separately to name a bad field.
    #[serde(default)]
    pub recheck: Option<Value>,
}

impl ChatCompletionRequest {
    /// Whether the request offers the model functions to call (`tools`, or the legacy
    /// `functions`), which recheck passes through.
    pub fn calls_tools(&self) -> bool {
        let present = |v: &Option<Value>| v.as_ref().is_some_and(|v| !v.is_null());
        present(&self.tools) || present(&self.functions)
    }

    /// The conversation as recheck's messages, or `None` when a message is not plain
    /// text in a system, user or assistant role (tool results, images, tool calls).
    pub fn text_messages(&self) -> Option<Vec<Message>> {
        self.messages.iter().map(WireMessage::to_message).collect()
    }
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with the usage.
    #[serde(default)]
    pub include_usage: bool,
}

/// One message of a request.
#[derive(Debug, Deserialize)]
pub struct WireMessage {
    /// `system`, `developer`, `user`, `assistant`, `tool`, ...
    pub role: String,
    /// Text, or a list of content parts; absent on assistant tool calls.
    #[serde(default)]
    pub content: Option<Content>,
}

/// Message content: a string or parts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Content parts (`{"type": "text", "text": ...}`, images, audio, ...).
    Parts(Vec<Part>),
}

/// One content part.
#[derive(Debug, Deserialize)]
pub struct Part {
    /// `text`, `image_url`, `input_audio`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a text part.
    #[serde(default)]
    pub text: Option<String>,
}

impl WireMessage {
    /// The message as recheck's own, or `None` when it is not plain text in a role
    /// recheck can replay (tool results, images, assistant tool calls).
    pub fn to_message(&self) -> Option<Message> {
        let role = match self.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            _ => return None,
        };
        let content = match self.content.as_ref()? {
            Content::Text(t) => t.clone(),
            Content::Parts(parts) => {
                let mut text = String::new();
                for p in parts {
                    match (p.kind.as_str(), &p.text) {
                        ("text", Some(t)) => text.push_str(t),
                        _ => return None,
                    }
                }
                text
            }
        };
        Some(Message { role, content })
    }
}

/// A chat completion (`object: chat.completion`).
#[derive(Debug, Serialize)]
pub struct ChatCompletion {
    /// `chatcmpl-` and the run id.
    pub id: String,
    /// Always `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: i64,
    /// The model that answered.
    pub model: String,
    /// One choice.
    pub choices: Vec<CompletionChoice>,
    /// Tokens over every call of the run.
    pub usage: WireUsage,
    /// What recheck found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recheck: Option<RecheckReport>,
}

/// One choice of a completion.
#[derive(Debug, Serialize)]
pub struct CompletionChoice {
    /// Its index.
    pub index: u32,
    /// The assistant's message.
    pub message: AssistantMessage,
    /// Why generation stopped.
    pub finish_reason: &'static str,
    /// Not provided.
    pub logprobs: Option<()>,
}

/// The assistant's message.
#[derive(Debug, Serialize)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: &'static str,
    /// The final answer.
    pub content: String,
}

/// Token counts in OpenAI's shape.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WireUsage {
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Completion tokens.
    pub completion_tokens: u32,
    /// Their sum.
    pub total_tokens: u32,
}

impl From<crate::llm::Usage> for WireUsage {
    fn from(u: crate::llm::Usage) -> Self {
        Self {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.prompt_tokens.saturating_add(u.completion_tokens),
        }
    }
}

/// The `recheck` object of a response: what verification found, and where the run is.
#[derive(Debug, Clone, Serialize)]
pub struct RecheckReport {
    /// The stored run (`recheck traces show ID`).
    pub trace_id: RunId,
    /// `true` (every claim supported), `false` (some claim contradicted) or `"unknown"`.
    pub verified: Verification,
    /// Claims by verdict.
    pub support: SupportCounts,
    /// The claims with verdicts and evidence.
    pub claims: Vec<ClaimReport>,
    /// The answer with `[n]` citation markers.
    pub cited_answer: String,
    /// The cited passages; `[n]` is `sources[n-1]`.
    pub sources: Vec<Passage>,
    /// Review rounds run.
    pub rounds: usize,
    /// The strategy.
    pub strategy: String,
    /// Why the loop stopped.
    pub stopped_by: String,
    /// Model calls made.
    pub model_calls: u32,
}

impl From<&AskOutcome> for RecheckReport {
    fn from(o: &AskOutcome) -> Self {
        Self {
            trace_id: o.trace_id,
            verified: o.verified,
            support: o.support,
            claims: o.claims.clone(),
            cited_answer: o.cited_answer.clone(),
            sources: o.sources.clone(),
            rounds: o.rounds.len(),
            strategy: o.strategy.to_string(),
            stopped_by: o.stopped_by.to_string(),
            model_calls: o.model_calls,
        }
    }
}

/// One streamed chunk (`object: chat.completion.chunk`).
#[derive(Debug, Serialize)]
pub struct Chunk<'a> {
    /// The completion's id, the same on every chunk.
    pub id: &'a str,
    /// Always `chat.completion.chunk`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: i64,
    /// The model.
    pub model: &'a str,
    /// Zero or one choice delta.
    pub choices: Vec<ChunkChoice<'a>>,
    /// `null` on every chunk but the usage chunk, when usage was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<WireUsage>>,
    /// On the last chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recheck: Option<&'a RecheckReport>,
}

/// A choice's delta.
#[derive(Debug, Serialize)]
pub struct ChunkChoice<'a> {
    /// Always 0.
    pub index: u32,
    /// The new text.
    pub delta: Delta<'a>,
    /// Set on the finishing chunk.
    pub finish_reason: Option<&'static str>,
}

/// What a chunk adds.
#[derive(Debug, Default, Serialize)]
pub struct Delta<'a> {
    /// `assistant` on the first chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// A piece of the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
}

/// `GET /v1/models`.
#[derive(Debug, Serialize)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    /// The models served.
    pub data: Vec<ModelEntry>,
}

/// One model.
#[derive(Debug, Serialize)]
pub struct ModelEntry {
    /// Its name, as clients send it.
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// Unix seconds (when the server started).
    pub created: i64,
    /// Always `recheck`.
    pub owned_by: &'static str,
}
