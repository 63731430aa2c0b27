//! Errors of the model layer.

use std::path::PathBuf;

/// Everything that can go wrong between recheck and a model.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The model spec string could not be understood.
    #[error("unknown model spec {spec:?}: {reason} (expected `openai:MODEL`, `local`, `local:/path/model.gguf` or `sim:PARAMS`)")]
    BadSpec {
        /// The spec as given.
        spec: String,
        /// What was wrong.
        reason: String,
    },
    /// A backend needs a setting that is missing.
    #[error("{0}")]
    Config(String),
    /// An OpenAI-compatible model's server address is missing or malformed.
    #[error("{0}")]
    BaseUrl(String),
    /// The server could not be reached (after retries).
    #[error("cannot reach the model server at {url}: {detail}")]
    Unreachable {
        /// Base URL tried.
        url: String,
        /// Transport error text.
        detail: String,
    },
    /// The call took longer than the configured timeout (after retries).
    #[error("model call to {url} timed out after {timeout_ms} ms per attempt")]
    Timeout {
        /// Base URL tried.
        url: String,
        /// Per-attempt timeout.
        timeout_ms: u64,
    },
    /// The server answered with an HTTP error status.
    #[error("model server returned HTTP {status}: {body}")]
    Http {
        /// HTTP status code.
        status: u16,
        /// Error text or raw body from the server.
        body: String,
    },
    /// The server's reply could not be understood.
    #[error("model server sent a reply recheck cannot read: {detail}; body: {body}")]
    BadResponse {
        /// Parse error.
        detail: String,
        /// Raw body (truncated to 2 KiB).
        body: String,
    },
    /// The backend does not offer this capability.
    #[error("the {backend} backend does not support {what}")]
    Unsupported {
        /// Backend name.
        backend: String,
        /// The missing capability.
        what: String,
    },
    /// The server was said to continue a prefilled assistant turn (`--prefill`), and
    /// a check showed it does not.
    #[error(
        "the server at {url} does not continue a prefilled assistant turn, though --prefill says it does: {detail}; \
         run without --prefill (recheck then emulates the turn and records that it did; the blind-spot protocol \
         needs a server that continues it, such as vLLM)"
    )]
    PrefillIgnored {
        /// Base URL of the server.
        url: String,
        /// What the check measured.
        detail: String,
    },
    /// A model file is missing, unreadable or not a valid model.
    #[error("model file {path}: {detail}")]
    ModelFile {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// The call could not be written to the trace store.
    #[error("could not record the model call in the trace store: {0}")]
    Recording(String),
    /// The local inference engine failed.
    #[error("local model: {0}")]
    Inference(String),
    /// The run's budget is spent; the call was not made.
    #[error("the run's {} budget is spent", match .0 { super::BudgetLimit::Calls => "call", super::BudgetLimit::Tokens => "token", super::BudgetLimit::Time => "time" })]
    BudgetExhausted(super::BudgetLimit),
    /// Replaying a stored run: the run asked for something the record does not hold.
    #[error("replay: {0}")]
    Replay(String),
    /// Replaying a stored run: this call failed when it was recorded, with this error
    /// (the same text, so the replay stops or degrades exactly as the run did).
    #[error("{0}")]
    Recorded(String),
}

impl LlmError {
    /// Keep at most 2 KiB of a body in an error message.
    pub(crate) fn clip(body: &str) -> String {
        const MAX: usize = 2048;
        if body.len() <= MAX {
            return body.to_string();
        }
        let mut end = MAX;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes)", &body[..end], body.len())
    }
}
