//! The llama.cpp backend: one model per file per process, on its own worker thread.

use std::{
    collections::HashMap,
    panic::AssertUnwindSafe,
    path::{Path, PathBuf},
    sync::{mpsc, Arc, Mutex, OnceLock, Weak},
    time::Instant,
};

use async_trait::async_trait;
use llama_cpp_2::{llama_backend::LlamaBackend, model::params::LlamaModelParams, model::LlamaModel};
use tokio::sync::oneshot;

use super::{
    engine::{Engine, Generated},
    template::ChatTemplate,
};
use crate::llm::{
    Capabilities, ChatModel, ChatRequest, Choice, Completion, ContinuationScore, LlmError, Message, ModelInfo,
    PrefillSupport, SamplingParams, Usage,
};

enum Job {
    Generate {
        prompt: String,
        params: SamplingParams,
        seed: u32,
        reply: oneshot::Sender<Result<Generated, LlmError>>,
    },
    Score {
        prompt: String,
        continuation: String,
        reply: oneshot::Sender<Result<(Vec<crate::llm::TokenLogprob>, u32), LlmError>>,
    },
    /// Several continuations of one prompt, the prompt decoded once.
    ScoreMany {
        prompt: String,
        continuations: Vec<String>,
        reply: oneshot::Sender<Result<Vec<Vec<crate::llm::TokenLogprob>>, LlmError>>,
    },
}

/// A GGUF model served from a worker thread.
pub struct LocalBackend {
    jobs: Mutex<mpsc::Sender<Job>>,
    template: ChatTemplate,
    info: ModelInfo,
    /// The name replies report: the GGUF's `general.name`, else the spec.
    name: String,
}

impl std::fmt::Debug for LocalBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBackend").field("info", &self.info).finish()
    }
}

/// The process-wide llama.cpp backend (llama.cpp may be initialised once per process).
pub fn llama_backend() -> Result<&'static LlamaBackend, LlmError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let mut backend = LlamaBackend::init().map_err(|e| e.to_string())?;
            backend.void_logs();
            Ok(backend)
        })
        .as_ref()
        .map_err(|e| LlmError::Inference(format!("cannot initialise llama.cpp: {e}")))
}

impl LocalBackend {
    /// The backend for `path`, loading it unless this process already has it loaded.
    pub fn shared(path: &Path, spec: &str) -> Result<Arc<Self>, LlmError> {
        static LOADED: OnceLock<Mutex<HashMap<PathBuf, Weak<LocalBackend>>>> = OnceLock::new();
        let key =
            path.canonicalize().map_err(|e| LlmError::ModelFile { path: path.to_path_buf(), detail: e.to_string() })?;
        let mut loaded = LOADED
            .get_or_init(Default::default)
            .lock()
            .map_err(|_| LlmError::Inference("model registry poisoned".into()))?;
        if let Some(existing) = loaded.get(&key).and_then(Weak::upgrade) {
            return Ok(existing);
        }
        let backend = Arc::new(Self::load(&key, spec)?);
        loaded.insert(key, Arc::downgrade(&backend));
        Ok(backend)
    }

    /// Load `path` on a new worker thread. Prefer [`LocalBackend::shared`].
    pub fn load(path: &Path, spec: &str) -> Result<Self, LlmError> {
        let file_err = |detail: String| LlmError::ModelFile { path: path.to_path_buf(), detail };
        let (mut file, _) = crate::files::open(path).map_err(|e| file_err(format!("cannot read it: {}", e.problem)))?;
        let mut magic = [0u8; 4];
        std::io::Read::read_exact(&mut file, &mut magic)
            .map_err(|_| file_err("too short to be a GGUF model".into()))?;
        if &magic != b"GGUF" {
            return Err(file_err("not a GGUF model (bad magic bytes)".into()));
        }
        let sha256 = super::cache::file_sha256(path)?;
        let backend = llama_backend()?;
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<Loaded, LlmError>>();
        let owned_path = path.to_path_buf();
        let threads = std::thread::available_parallelism().map(|n| n.get() as i32).unwrap_or(2);
        std::thread::Builder::new()
            .name("recheck-llama".into())
            .spawn(move || worker(backend, owned_path, threads, rx, ready_tx))
            .map_err(|e| LlmError::Inference(format!("cannot start the model thread: {e}")))?;
        let loaded =
            ready_rx.recv().map_err(|_| LlmError::Inference("the model thread died while loading".into()))??;
        let template = ChatTemplate::new(&loaded.template, &loaded.bos, &loaded.eos)?;
        let info = ModelInfo { weights_sha256: Some(sha256), ..ModelInfo::new(spec, "local") };
        let name = loaded.name.unwrap_or_else(|| spec.to_string());
        Ok(Self { jobs: Mutex::new(tx), template, info, name })
    }

    /// Render `messages` exactly as the model will see them.
    pub fn render(&self, messages: &[Message]) -> Result<String, LlmError> {
        self.template.render(messages)
    }

    fn send(&self, job: Job) -> Result<(), LlmError> {
        let jobs = self.jobs.lock().map_err(|_| LlmError::Inference("job queue poisoned".into()))?;
        jobs.send(job).map_err(|_| LlmError::Inference("the model thread has stopped".into()))
    }

    async fn generate(&self, prompt: &str, params: &SamplingParams, seed: u32) -> Result<Generated, LlmError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Generate { prompt: prompt.to_string(), params: params.clone(), seed, reply })?;
        rx.await.map_err(|_| LlmError::Inference("the model thread dropped a job".into()))?
    }
}

/// What the model thread reads from a GGUF file before it takes jobs.
struct Loaded {
    template: String,
    bos: String,
    eos: String,
    name: Option<String>,
}

/// Owns the model and context; answers jobs until every sender is gone.
fn worker(
    backend: &'static LlamaBackend,
    path: PathBuf,
    threads: i32,
    jobs: mpsc::Receiver<Job>,
    ready: mpsc::Sender<Result<Loaded, LlmError>>,
) {
    let file_err = |detail: String| LlmError::ModelFile { path: path.clone(), detail };
    let model = match LlamaModel::load_from_file(backend, &path, &LlamaModelParams::default()) {
        Ok(m) => m,
        Err(e) => {
            let _ = ready
                .send(Err(file_err(format!("llama.cpp cannot load it ({e}); is it a complete, valid GGUF file?"))));
            return;
        }
    };
    let template = match model.meta_val_str("tokenizer.chat_template") {
        Ok(t) => t,
        Err(_) => {
            let _ = ready.send(Err(file_err("has no tokenizer.chat_template; recheck needs a chat model".into())));
            return;
        }
    };
    let vocab = model.vocab();
    let piece = |t| String::from_utf8_lossy(&vocab.token_to_piece(t, true, None)).into_owned();
    let (bos, eos) = (piece(vocab.bos()), piece(vocab.eos()));
    let mut engine = match Engine::new(backend, &model, threads) {
        Ok(e) => e,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    // The model's own name (`general.name`), which replies report as their model.
    let name = model.meta_val_str("general.name").ok().map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    if ready.send(Ok(Loaded { template, bos, eos, name })).is_err() {
        return;
    }
    while let Ok(job) = jobs.recv() {
        // A panic inside llama-cpp-2 must fail one call, not the process.
        match job {
            Job::Generate { prompt, params, seed, reply } => {
                let out = std::panic::catch_unwind(AssertUnwindSafe(|| engine.generate(&prompt, &params, seed)))
                    .unwrap_or_else(|_| Err(LlmError::Inference("llama.cpp panicked during generation".into())));
                let _ = reply.send(out);
            }
            Job::Score { prompt, continuation, reply } => {
                let out = std::panic::catch_unwind(AssertUnwindSafe(|| engine.score(&prompt, &continuation)))
                    .unwrap_or_else(|_| Err(LlmError::Inference("llama.cpp panicked during scoring".into())));
                let _ = reply.send(out);
            }
            Job::ScoreMany { prompt, continuations, reply } => {
                let out = std::panic::catch_unwind(AssertUnwindSafe(|| engine.score_many(&prompt, &continuations)))
                    .unwrap_or_else(|_| Err(LlmError::Inference("llama.cpp panicked during scoring".into())));
                let _ = reply.send(out);
            }
        }
    }
}

#[async_trait]
impl ChatModel for LocalBackend {
    fn info(&self) -> ModelInfo {
        self.info.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { logprobs: true, score_continuation: true, prefill: true }
    }

    async fn prefill_support(&self) -> Result<PrefillSupport, LlmError> {
        Ok(PrefillSupport::Rendered)
    }

    async fn chat(&self, request: &ChatRequest) -> Result<Completion, LlmError> {
        let started = Instant::now();
        let prompt = self.template.render(&request.messages)?;
        let params = &request.params;
        // An unseeded sampled call still gets a seed, recorded so it can be re-run.
        let base_seed = match params.seed {
            Some(s) => s,
            None if params.temperature > 0.0 => rand::random::<u32>() as u64,
            None => 0,
        };
        let mut choices = Vec::new();
        let mut usage = Usage::default();
        for i in 0..params.n.max(1) {
            let seed = (base_seed as u32).wrapping_add(i);
            let g = self.generate(&prompt, params, seed).await?;
            usage.prompt_tokens = g.prompt_tokens;
            usage.completion_tokens += g.completion_tokens;
            choices.push(Choice { text: g.text, finish_reason: g.finish_reason, logprobs: g.logprobs });
        }
        Ok(Completion {
            model: self.name.clone(),
            choices,
            usage,
            latency_ms: started.elapsed().as_millis() as u64,
            rendered_prompt: Some(prompt),
            seed: (params.temperature > 0.0).then_some(base_seed),
        })
    }

    async fn score_continuation(
        &self,
        messages: &[Message],
        continuation: &str,
    ) -> Result<ContinuationScore, LlmError> {
        let prompt = self.template.render(messages)?;
        let (reply, rx) = oneshot::channel();
        self.send(Job::Score { prompt, continuation: continuation.to_string(), reply })?;
        let (tokens, _prompt_tokens) =
            rx.await.map_err(|_| LlmError::Inference("the model thread dropped a job".into()))??;
        Ok(ContinuationScore { total_logprob: tokens.iter().map(|t| t.logprob).sum(), tokens })
    }

    /// The prompt decoded once for all `continuations` (see `Engine::score_many`).
    async fn score_continuations(
        &self,
        messages: &[Message],
        continuations: &[&str],
    ) -> Result<Vec<ContinuationScore>, LlmError> {
        let prompt = self.template.render(messages)?;
        let (reply, rx) = oneshot::channel();
        let continuations = continuations.iter().map(|c| c.to_string()).collect();
        self.send(Job::ScoreMany { prompt, continuations, reply })?;
        let scored = rx.await.map_err(|_| LlmError::Inference("the model thread dropped a job".into()))??;
        Ok(scored
            .into_iter()
            .map(|tokens| ContinuationScore { total_logprob: tokens.iter().map(|t| t.logprob).sum(), tokens })
            .collect())
    }
}
