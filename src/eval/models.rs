//! How to reach and run a model, as a user states it: the command line's connection
//! flags and the Python package's `Model(...)` keywords both become [`ModelSettings`],
//! which opens any spec (`local`, `local:PATH`, `openai:MODEL`, `sim:PARAMS`).

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::{
    home::Home,
    llm::{BackendOptions, ChatModel, Decoding, ModelSpec, RetryConfig, DEFAULT_MAX_REPLY_BYTES},
    setting::{bad, Field},
    Result,
};

/// A model's connection and decoding settings, each with the command line's default.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSettings {
    /// Base URL of an OpenAI-compatible server (for `openai:` specs; default:
    /// `OPENAI_BASE_URL`, read by the backend).
    pub base_url: Option<String>,
    /// The environment variable holding the server's API key.
    pub api_key_env: String,
    /// Timeout of one HTTP attempt, in seconds, in (0, 86400].
    pub timeout: f64,
    /// Retries after a failed HTTP attempt, 0 to 20.
    pub retries: u32,
    /// The server continues a trailing assistant message (checked before use).
    pub prefill: bool,
    /// Largest reply accepted from a server, in bytes.
    pub max_reply_bytes: usize,
    /// Embedded model: every call alone from an empty KV cache (bit-identical reruns).
    pub deterministic: bool,
    /// Embedded model: calls decoded together, 1 to 64 (default: twice the cores, 2 to 8).
    pub sequences: Option<u32>,
    /// Calls in flight at once to a server (default 16).
    pub concurrency: Option<usize>,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            api_key_env: "OPENAI_API_KEY".into(),
            timeout: 120.0,
            retries: 4,
            prefill: false,
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
            deterministic: false,
            sequences: None,
            concurrency: None,
        }
    }
}

impl ModelSettings {
    /// The defaults with `values` (setting name to JSON value) over them; an unknown
    /// name, a wrong type or a value out of range is refused, naming the setting.
    pub fn from_values(values: &Map<String, Value>) -> Result<Self> {
        let mut s = ModelSettings::default();
        for (name, value) in values {
            let v = Field { name, value };
            match name.as_str() {
                "base_url" => s.base_url = v.optional_text()?,
                "api_key_env" => s.api_key_env = v.text()?.to_string(),
                "timeout" => s.timeout = v.number()?,
                "retries" => s.retries = v.integer()?,
                "prefill" => s.prefill = v.flag()?,
                "max_reply_bytes" => s.max_reply_bytes = v.integer()?,
                "deterministic" => s.deterministic = v.flag()?,
                "sequences" => s.sequences = v.optional_integer()?,
                "concurrency" => s.concurrency = v.optional_integer()?,
                _ => return Err(bad(name, "is not a model setting")),
            }
        }
        s.check()?;
        Ok(s)
    }

    /// Refuse values out of range (NaN and infinities included).
    pub fn check(&self) -> Result<()> {
        // Up to a day: a larger value would not fit a `Duration`.
        if !(self.timeout > 0.0 && self.timeout <= 86_400.0) {
            return Err(bad("timeout", format!("must be a number of seconds in (0, 86400], got {}", self.timeout)));
        }
        if self.retries > 20 {
            return Err(bad("retries", format!("must be 0 to 20, got {}", self.retries)));
        }
        if let Some(n) = self.sequences.filter(|n| !(1..=64).contains(n)) {
            return Err(bad("sequences", format!("must be 1 to 64, got {n}")));
        }
        if self.deterministic && self.sequences.is_some() {
            return Err(bad("sequences", "cannot be set with deterministic (one call at a time)"));
        }
        if let Some(n) = self.concurrency {
            crate::setting::check_in_flight("concurrency", n)?;
        }
        if self.api_key_env.is_empty() {
            return Err(bad("api_key_env", "must name an environment variable"));
        }
        Ok(())
    }

    /// The embedded model's decoding mode these settings ask for (`None`: the default).
    pub fn decoding(&self) -> Option<Decoding> {
        if self.deterministic {
            return Some(Decoding::DETERMINISTIC);
        }
        self.sequences.map(|sequences| Decoding { prefix_reuse: true, sequences })
    }

    /// Backend options from these settings, the key in the environment and `home`.
    pub fn backend_options(&self, home: &Home) -> Result<BackendOptions> {
        self.check()?;
        Ok(BackendOptions {
            base_url: self.base_url.clone(),
            api_key: std::env::var(&self.api_key_env).ok(),
            retry: RetryConfig {
                max_retries: self.retries,
                timeout: std::time::Duration::from_secs_f64(self.timeout),
                ..Default::default()
            },
            max_concurrency: self.concurrency.unwrap_or(16),
            models_dir: home.models_dir(),
            prefill: self.prefill,
            max_reply_bytes: self.max_reply_bytes,
            decoding: self.decoding(),
        })
    }

    /// Open the model `spec` names. The default embedded model is fetched first if it
    /// is not in `home` yet, its progress lines given to `progress`.
    pub fn open(&self, home: &Home, spec: &str, progress: &dyn Fn(&str)) -> Result<Arc<dyn ChatModel>> {
        let spec: ModelSpec = spec.parse()?;
        let options = self.backend_options(home)?;
        #[cfg(feature = "local")]
        if spec == (ModelSpec::Local { path: None }) {
            crate::llm::local::cache::ensure_default_model(&options.models_dir, false, progress)?;
        }
        #[cfg(not(feature = "local"))]
        let _ = progress;
        Ok(super::open_model(&spec, &options)?)
    }
}

impl super::RunOptions {
    /// Options to run the experiment `spec` with its data under `data_root`: `agents`,
    /// the feedback writer's own model if its config names one (opened with `open`),
    /// and the spec's corpus, indexed under `home` on first use (its progress lines
    /// given to `progress`). What `recheck eval run` and Python's `eval_run` share.
    #[allow(clippy::too_many_arguments)]
    pub fn for_spec(
        spec: &super::EvalSpec,
        data_root: &std::path::Path,
        home: &Home,
        model: Arc<dyn ChatModel>,
        agents: crate::agents::AgentSet,
        open: &dyn Fn(&str) -> Result<Arc<dyn ChatModel>>,
        concurrency: usize,
        progress: &dyn Fn(&str),
    ) -> Result<Self> {
        let feedback_model = match agents.feedback.model.as_deref() {
            None | Some("default") => None,
            Some(spec) => Some(open(spec)?),
        };
        home.ensure()?;
        let retriever = super::open_corpus(spec, data_root, &home.indexes_dir(), progress)?;
        Ok(Self {
            model,
            feedback_model,
            agents: Arc::new(agents),
            tools: crate::tools::ToolRegistry::standard(),
            concurrency,
            retriever,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn model_settings_are_checked_by_name() {
        let read = |v: Value| ModelSettings::from_values(v.as_object().unwrap());
        let s = read(json!({"base_url": "http://127.0.0.1:1/v1", "timeout": 5, "sequences": 2})).unwrap();
        assert_eq!((s.timeout, s.sequences, s.decoding().map(|d| d.sequences)), (5.0, Some(2), Some(2)));
        let refused = |v: Value| read(v).unwrap_err().to_string();
        assert!(refused(json!({"timeout": "nan"})).starts_with("timeout must be a number of seconds"));
        assert!(refused(json!({"retries": 21})).starts_with("retries must be 0 to 20"));
        assert!(refused(json!({"deterministic": true, "sequences": 2})).starts_with("sequences cannot be set"));
        assert!(refused(json!({"temperature": 1})).starts_with("temperature is not a model setting"));
    }
}
