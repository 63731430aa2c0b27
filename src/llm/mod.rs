//! The model layer: the [`ChatModel`] trait and its backends.
//!
//! Everything above this module talks to models only through the trait; wire
//! formats, retries and inference engines stay inside the backends.

mod error;
pub mod local;
mod openai;
mod replay;
mod retry;
pub mod sim;
mod spec;
mod types;

use std::sync::Arc;

use async_trait::async_trait;

pub use error::LlmError;
pub use openai::{OpenAiBackend, OpenAiOptions};
pub use replay::{RecordedCall, ReplayModel};
pub use retry::RetryConfig;
pub use spec::ModelSpec;
pub use types::{
    Capabilities, ChatRequest, Choice, Completion, ContinuationScore, FinishReason, Message, ModelInfo, Role,
    SamplingParams, TokenLogprob, Usage,
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
    async fn score_continuation(
        &self,
        messages: &[Message],
        continuation: &str,
    ) -> Result<ContinuationScore, LlmError> {
        (**self).score_continuation(messages, continuation).await
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
}

/// Build the backend a spec names.
pub fn open_model(spec: &ModelSpec, options: &BackendOptions) -> Result<Arc<dyn ChatModel>, LlmError> {
    match spec {
        ModelSpec::OpenAi { model } => {
            let base_url = options.base_url.clone().ok_or_else(|| {
                LlmError::Config(format!(
                    "model {spec} needs a server: pass --base-url URL or set OPENAI_BASE_URL (e.g. https://api.openai.com/v1)"
                ))
            })?;
            let backend = OpenAiBackend::new(
                model.clone(),
                OpenAiOptions {
                    base_url,
                    api_key: options.api_key.clone(),
                    retry: options.retry.clone(),
                    max_concurrency: options.max_concurrency,
                },
            )?;
            Ok(Arc::new(backend))
        }
        ModelSpec::Local { path } => {
            let file = match path {
                Some(p) => p.clone(),
                None => {
                    local::cache::ensure_default_model(&options.models_dir, false, &|line| tracing::info!("{line}"))?
                }
            };
            Ok(local::LocalBackend::shared(&file, &spec.to_string())?)
        }
        ModelSpec::Sim { params } => {
            let params =
                sim::SimParams::parse(params).map_err(|reason| LlmError::BadSpec { spec: spec.to_string(), reason })?;
            Ok(Arc::new(sim::SimBackend::new(params, spec.to_string())))
        }
    }
}
