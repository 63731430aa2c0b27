//! The model layer: the [`ChatModel`] trait and its backends.
//!
//! Everything above this module talks to models only through the trait; wire
//! formats, retries and inference engines stay inside the backends. The request and
//! response types are the trace store's records (re-exported here), so the model layer
//! depends on `trace` alone. The embedded llama.cpp backend is behind the `local`
//! cargo feature; the model cache (fetching the default GGUF) is always there.

mod error;
pub mod local;
mod openai;
mod prefill;
mod recording;
mod replay;
mod retry;
mod spec;

use std::sync::Arc;

use async_trait::async_trait;

pub use error::LlmError;
pub use openai::{OpenAiBackend, OpenAiOptions, DEFAULT_MAX_REPLY_BYTES};
pub use recording::{Budget, BudgetLimit, RecordingModel};
pub use replay::{recorded_calls, Recorded, RecordedCall, RecordedError, ReplayModel};
pub use retry::{retries_total, RetryConfig};
pub use spec::ModelSpec;

pub use crate::trace::{
    Capabilities, ChatRequest, Choice, Completion, ContinuationScore, Decoding, FinishReason, Message, ModelInfo,
    PrefillSupport, Purpose, Role, SamplingParams, TokenLogprob, TopLogprob, Usage,
};

/// A chat model, local or remote.
///
/// Implementations are shared across tokio tasks (`Arc<dyn ChatModel>`) and limit
/// their own concurrency.
#[async_trait]
pub trait ChatModel: Send + Sync {
    /// Who this model is, as recorded in traces.
    fn info(&self) -> ModelInfo;

    /// What the backend can do beyond plain chat.
    fn capabilities(&self) -> Capabilities;

    /// Generate a reply. A trailing assistant message is continued (when
    /// [`Capabilities::prefill`] holds).
    async fn chat(&self, request: &ChatRequest) -> Result<Completion, LlmError>;

    /// How a prefilled assistant turn is continued, with the evidence. By default the
    /// backend's own account ([`Capabilities::prefill`]); a backend that relies on a
    /// server checks it (once, then remembers).
    async fn prefill_support(&self) -> Result<PrefillSupport, LlmError> {
        Ok(if self.capabilities().prefill { PrefillSupport::Claimed } else { PrefillSupport::Absent })
    }

    /// Log-probability of `continuation` following `messages`, without generating.
    ///
    /// The continuation is scored as the start of the assistant's reply (or as the
    /// continuation of a trailing assistant message).
    async fn score_continuation(
        &self,
        messages: &[Message],
        continuation: &str,
    ) -> Result<ContinuationScore, LlmError> {
        let _ = (messages, continuation);
        Err(LlmError::Unsupported { backend: self.info().backend, what: "continuation scoring".into() })
    }

    /// Score each of `continuations` after the same `messages` (the judge's three
    /// label words). A backend that can decode the shared prompt once overrides this
    /// (the local model does); by default, one [`ChatModel::score_continuation`] each,
    /// in order.
    async fn score_continuations(
        &self,
        messages: &[Message],
        continuations: &[&str],
    ) -> Result<Vec<ContinuationScore>, LlmError> {
        let mut scores = Vec::with_capacity(continuations.len());
        for continuation in continuations {
            scores.push(self.score_continuation(messages, continuation).await?);
        }
        Ok(scores)
    }
}

#[async_trait]
impl<T: ChatModel + ?Sized> ChatModel for Arc<T> {
    fn info(&self) -> ModelInfo {
        (**self).info()
    }
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    async fn chat(&self, request: &ChatRequest) -> Result<Completion, LlmError> {
        (**self).chat(request).await
    }
    async fn prefill_support(&self) -> Result<PrefillSupport, LlmError> {
        (**self).prefill_support().await
    }
    async fn score_continuation(
        &self,
        messages: &[Message],
        continuation: &str,
    ) -> Result<ContinuationScore, LlmError> {
        (**self).score_continuation(messages, continuation).await
    }
    async fn score_continuations(
        &self,
        messages: &[Message],
        continuations: &[&str],
    ) -> Result<Vec<ContinuationScore>, LlmError> {
        (**self).score_continuations(messages, continuations).await
    }
}

/// Everything besides the spec that building a backend may need.
#[derive(Debug, Clone)]
pub struct BackendOptions {
    /// Base URL of an OpenAI-compatible server.
    pub base_url: Option<String>,
    /// API key for it.
    pub api_key: Option<String>,
    /// Timeouts and retries of HTTP calls.
    pub retry: RetryConfig,
    /// Calls in flight at once per backend.
    pub max_concurrency: usize,
    /// Directory of cached model files.
    pub models_dir: std::path::PathBuf,
    /// The OpenAI-compatible server continues a trailing assistant message
    /// ([`OpenAiOptions::prefill`]).
    pub prefill: bool,
    /// Largest reply accepted from a server ([`OpenAiOptions::max_reply_bytes`]).
    pub max_reply_bytes: usize,
    /// How the embedded model decodes calls; `None` for the machine's default
    /// (`local::default_decoding`). Ignored by remote models.
    pub decoding: Option<Decoding>,
}

impl Default for BackendOptions {
    /// No server, no key, default retries, 16 calls in flight, models in `./models`.
    fn default() -> Self {
        Self {
            base_url: None,
            api_key: None,
            retry: RetryConfig::default(),
            max_concurrency: 16,
            models_dir: std::path::PathBuf::from("models"),
            prefill: false,
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
            decoding: None,
        }
    }
}

/// A model's identity with its capabilities, which decide how agents call it (a judge
/// reads log-probabilities or votes; a continuation is prefilled or emulated), so a
/// replay calls it the same way. Recorded on every step and in a run's config.
pub fn identity(model: &dyn ChatModel) -> ModelInfo {
    let mut info = model.info();
    info.capabilities.get_or_insert(model.capabilities());
    info
}

/// Build the backend a spec names: `openai:` or `local`. (`sim:` is not a model; it is
/// opened by `recheck::open_model`, which knows every spec.)
pub fn open_model(spec: &ModelSpec, options: &BackendOptions) -> Result<Arc<dyn ChatModel>, LlmError> {
    match spec {
        ModelSpec::OpenAi { model } => {
            let base_url = options.base_url.clone().ok_or_else(|| {
                LlmError::BaseUrl(format!(
                    "model {spec} needs the base URL of its server (e.g. https://api.openai.com/v1)"
                ))
            })?;
            let backend = OpenAiBackend::new(
                model.clone(),
                OpenAiOptions {
                    base_url,
                    api_key: options.api_key.clone(),
                    retry: options.retry.clone(),
                    max_concurrency: options.max_concurrency,
                    prefill: options.prefill,
                    max_reply_bytes: options.max_reply_bytes,
                },
            )?;
            Ok(Arc::new(backend))
        }
        ModelSpec::Local { path } => open_local(path.as_deref(), &spec.to_string(), options),
        ModelSpec::Sim { .. } => Err(LlmError::BadSpec {
            spec: spec.to_string(),
            reason: "the simulator is opened by recheck::open_model, not llm::open_model".into(),
        }),
    }
}

/// The embedded model from `path`, or the default model (fetched into `models_dir`).
#[cfg(feature = "local")]
fn open_local(
    path: Option<&std::path::Path>,
    spec: &str,
    options: &BackendOptions,
) -> Result<Arc<dyn ChatModel>, LlmError> {
    let file = match path {
        Some(p) => p.to_path_buf(),
        None => local::cache::ensure_default_model(&options.models_dir, false, &|line| tracing::info!("{line}"))?,
    };
    let decoding = options.decoding.unwrap_or_else(local::default_decoding);
    Ok(local::LocalBackend::shared_with(&file, spec, decoding)?)
}

/// Without the `local` feature there is no embedded engine to open.
#[cfg(not(feature = "local"))]
fn open_local(
    _path: Option<&std::path::Path>,
    spec: &str,
    _options: &BackendOptions,
) -> Result<Arc<dyn ChatModel>, LlmError> {
    Err(LlmError::Unsupported {
        backend: spec.to_string(),
        what: "the embedded model: this build has no `local` cargo feature".into(),
    })
}
