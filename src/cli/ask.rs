//! `recheck ask`: one question, one recorded run.

use std::time::Duration;

use clap::Args;
use serde_json::json;

use crate::{
    home::Home,
    llm::{self, BackendOptions, ModelSpec, RetryConfig, SamplingParams},
    orchestrator::{self, AskOptions},
};

/// Arguments of `recheck ask`.
#[derive(Debug, Args)]
pub struct AskArgs {
    /// The question.
    pub question: String,

    /// Model spec: `local` (embedded default model), `local:/path/model.gguf`,
    /// or `openai:MODEL` for any OpenAI-compatible server.
    #[arg(long, short, default_value = "local", value_name = "SPEC")]
    pub model: String,

    /// Base URL of the OpenAI-compatible server (for `openai:` models).
    #[arg(long, env = "OPENAI_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,

    /// Name of the environment variable holding the API key.
    #[arg(long, default_value = "OPENAI_API_KEY", value_name = "NAME")]
    pub api_key_env: String,

    /// System message (default: the model's own default).
    #[arg(long)]
    pub system: Option<String>,

    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,

    /// Maximum tokens to generate.
    #[arg(long, default_value_t = 512)]
    pub max_tokens: u32,

    /// Sampling seed, recorded in the trace.
    #[arg(long)]
    pub seed: Option<u64>,

    /// Timeout of one HTTP attempt, in seconds.
    #[arg(long, default_value_t = 120.0, value_name = "SECS")]
    pub timeout: f64,

    /// Retries after a failed HTTP attempt (connect errors, timeouts, 429, 5xx).
    #[arg(long, default_value_t = 4)]
    pub retries: u32,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub(super) async fn run(home: &Home, args: AskArgs) -> anyhow::Result<()> {
    let spec: ModelSpec = args.model.parse()?;
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        anyhow::bail!("--timeout must be a positive number of seconds, got {}", args.timeout);
    }
    let store = super::open_store(home)?;
    let options = BackendOptions {
        base_url: args.base_url.clone(),
        api_key: std::env::var(&args.api_key_env).ok(),
        retry: RetryConfig {
            max_retries: args.retries,
            timeout: Duration::from_secs_f64(args.timeout),
            ..Default::default()
        },
        max_concurrency: 16,
        models_dir: home.models_dir(),
    };
    if spec == (ModelSpec::Local { path: None }) {
        // Fetch on first use with visible progress (the library would fetch silently).
        llm::local::cache::ensure_default_model(&options.models_dir, false, &|line| eprintln!("{line}"))?;
    }
    let model = llm::open_model(&spec, &options)?;
    let ask = AskOptions {
        system: args.system.clone(),
        params: SamplingParams {
            temperature: args.temperature,
            max_tokens: args.max_tokens,
            seed: args.seed,
            ..Default::default()
        },
    };
    let outcome = orchestrator::ask(&store, model, &args.question, &ask).await?;
    if args.json {
        super::print_json(&json!({
            "answer": outcome.answer,
            "trace_id": outcome.trace_id,
            "model": outcome.model.spec,
            "usage": outcome.usage,
            "finish_reason": outcome.finish_reason,
            "latency_ms": outcome.latency_ms,
        }))
    } else {
        println!("{}", outcome.answer);
        eprintln!("(run {}, {} ms)", outcome.trace_id, outcome.latency_ms);
        Ok(())
    }
}
