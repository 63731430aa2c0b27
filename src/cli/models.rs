//! Options shared by the commands that open models.

use std::sync::Arc;

use clap::Args;

use recheck::{
    home::Home,
    llm::{BackendOptions, ChatModel},
    ModelSettings,
};

/// Where agent configs and prompt templates override the built-in ones.
#[derive(Debug, Clone, Args)]
pub struct AgentDirs {
    /// Directory overriding agents/*.toml files (default: built-in configs).
    #[arg(long, value_name = "DIR")]
    pub agents_dir: Option<std::path::PathBuf>,

    /// Directory overriding prompts/*.j2 templates (default: built-in prompts).
    #[arg(long, value_name = "DIR")]
    pub prompts_dir: Option<std::path::PathBuf>,
}

impl AgentDirs {
    /// The agents, the built-in ones overridden file by file.
    pub fn load(&self) -> Result<recheck::agents::AgentSet, recheck::agents::AgentError> {
        recheck::agents::AgentSet::load(self.agents_dir.as_deref(), self.prompts_dir.as_deref())
    }
}

/// How to reach an OpenAI-compatible server, and its key.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Base URL, timeouts, retries.
    #[command(flatten)]
    pub connection: Connection,

    /// Name of the environment variable holding the API key.
    #[arg(long, default_value = "OPENAI_API_KEY", value_name = "NAME")]
    pub api_key_env: String,
}

impl ServerArgs {
    /// Open the model `spec` names (see [`Connection::open`]).
    pub fn open(&self, home: &Home, spec: &str) -> anyhow::Result<Arc<dyn ChatModel>> {
        self.connection.open(home, spec, &self.api_key_env)
    }
}

/// How to reach an OpenAI-compatible server, but its key (`recheck serve` has two keys:
/// its own and the upstream's).
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Base URL of the OpenAI-compatible server (for `openai:` models).
    #[arg(long, env = "OPENAI_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,

    /// Timeout of one HTTP attempt, in seconds.
    #[arg(long, default_value_t = 120.0, value_name = "SECS")]
    pub timeout: f64,

    /// Retries after a failed HTTP attempt (connect errors, timeouts, 429, 5xx), 0 to 20.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(0..=20))]
    pub retries: u32,

    /// The server continues a trailing assistant message (vLLM's
    /// `continue_final_message`). Checked before the first continuation (three
    /// one-token calls; a server that closes the turn instead is an error). Without it,
    /// `wait`, `backtrack` and "Wait" forks emulate the prefilled turn (recorded in
    /// the trace), and the blind-spot protocol refuses the model.
    #[arg(long)]
    pub prefill: bool,

    /// Largest reply accepted from the server, in bytes (default 8 MiB); a bigger one
    /// is an error and is not stored.
    #[arg(long, default_value_t = recheck::llm::DEFAULT_MAX_REPLY_BYTES, value_name = "BYTES")]
    pub max_reply_bytes: usize,

    /// Embedded model: decode every call alone from an empty KV cache (no prefix reuse,
    /// no batching across calls), so reruns are bit-identical. Slower; recorded in the
    /// run config as the decoding mode.
    #[arg(long, conflicts_with = "sequences")]
    pub deterministic: bool,

    /// Embedded model: calls decoded together in one llama.cpp batch, 1 to 64, each with
    /// the full 4,096-token context (default: twice the cores, 2 to 8). More concurrent
    /// calls queue.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub sequences: Option<u32>,

    /// Calls in flight at once to the server (16 unless a command sets it: `serve`
    /// allows as many as it has requests in flight).
    #[arg(skip)]
    pub concurrency: Option<usize>,
}

impl Connection {
    /// These flags, with the key in environment variable `key_env`, as the library's
    /// model settings.
    pub fn settings(&self, key_env: &str) -> ModelSettings {
        ModelSettings {
            base_url: self.base_url.clone(),
            api_key_env: key_env.to_string(),
            timeout: self.timeout,
            retries: self.retries,
            prefill: self.prefill,
            max_reply_bytes: self.max_reply_bytes,
            deterministic: self.deterministic,
            sequences: self.sequences,
            concurrency: self.concurrency,
        }
    }

    /// Backend options from these arguments, the key in environment variable
    /// `key_env`, and the home directory.
    pub fn backend_options(&self, home: &Home, key_env: &str) -> anyhow::Result<BackendOptions> {
        self.settings(key_env).backend_options(home).map_err(super::flagged)
    }

    /// Open the model `spec` names, fetching the default local model with visible progress.
    pub fn open(&self, home: &Home, spec: &str, key_env: &str) -> anyhow::Result<Arc<dyn ChatModel>> {
        self.settings(key_env).open(home, spec, &|line| eprintln!("{line}")).map_err(super::flagged)
    }
}
