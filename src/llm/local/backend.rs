//! The llama.cpp backend: one model per file and decoding mode per process, on its own
//! worker thread.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{mpsc, Arc, Mutex, OnceLock, Weak},
    time::Instant,
};

use async_trait::async_trait;
use llama_cpp_2::{llama_backend::LlamaBackend, model::params::LlamaModelParams, model::LlamaModel};
use tokio::sync::oneshot;

use super::{
    engine::{Counters, DecodeStats, Engine},
    template::ChatTemplate,
    work::Job,
};
use crate::llm::{
    Capabilities, ChatModel, ChatRequest, Choice, Completion, ContinuationScore, Decoding, LlmError, Message,
    ModelInfo, PrefillSupport, Usage,
};

/// A GGUF model served from a worker thread.
pub struct LocalBackend {
    jobs: Mutex<mpsc::Sender<Job>>,
    template: ChatTemplate,
    info: ModelInfo,
    /// The name replies report: the GGUF's `general.name`, else the spec.
    name: String,
    counters: Arc<Counters>,
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
    /// The backend for `path` in the [`default_decoding`](super::default_decoding)
    /// mode, loading it unless this process already has it loaded.
    pub fn shared(path: &Path, spec: &str) -> Result<Arc<Self>, LlmError> {
        Self::shared_with(path, spec, super::default_decoding())
    }

    /// The backend for `path` decoding as `decoding` says, loading it unless this
    /// process already has it loaded in that mode.
    pub fn shared_with(path: &Path, spec: &str, decoding: Decoding) -> Result<Arc<Self>, LlmError> {
        type Registry = HashMap<(PathBuf, Decoding), Weak<LocalBackend>>;
        static LOADED: OnceLock<Mutex<Registry>> = OnceLock::new();
        let key =
            path.canonicalize().map_err(|e| LlmError::ModelFile { path: path.to_path_buf(), detail: e.to_string() })?;
        let mut loaded = LOADED
            .get_or_init(Default::default)
            .lock()
            .map_err(|_| LlmError::Inference("model registry poisoned".into()))?;
        let key = (key, decoding);
        if let Some(existing) = loaded.get(&key).and_then(Weak::upgrade) {
            return Ok(existing);
        }
        let backend = Arc::new(Self::load_with(&key.0, spec, decoding)?);
        loaded.insert(key, Arc::downgrade(&backend));
        Ok(backend)
    }

    /// Load `path` on a new worker thread in the
    /// [`default_decoding`](super::default_decoding) mode. Prefer [`LocalBackend::shared`].
    pub fn load(path: &Path, spec: &str) -> Result<Self, LlmError> {
        Self::load_with(path, spec, super::default_decoding())
    }

    /// Load `path` on a new worker thread, decoding as `decoding` says.
    pub fn load_with(path: &Path, spec: &str, decoding: Decoding) -> Result<Self, LlmError> {
        let file_err = |detail: String| LlmError::ModelFile { path: path.to_path_buf(), detail };
        let (mut file, _) = crate::files::open(path).map_err(|e| file_err(format!("cannot read it: {}", e.problem)))?;
        let mut magic = [0u8; 4];
        std::io::Read::read_exact(&mut file, &mut magic)
            .map_err(|_| file_err("too short to be a GGUF model".into()))?;
        if &magic != b"GGUF" {
            return Err(file_err("not a GGUF model (bad magic bytes)".into()));
        }
        let stamp = |path: &Path| std::fs::metadata(path).ok().map(|m| (m.len(), m.modified().ok()));
        let before = stamp(path);
        let sha256 = super::cache::file_sha256(path)?;
        let backend = llama_backend()?;
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<Loaded, LlmError>>();
        let owned_path = path.to_path_buf();
        let threads = super::threads() as i32;
        let counters = Arc::new(Counters::default());
        let worker_counters = counters.clone();
        std::thread::Builder::new()
            .name("recheck-llama".into())
            .spawn(move || worker(backend, owned_path, threads, decoding, worker_counters, rx, ready_tx))
            .map_err(|e| LlmError::Inference(format!("cannot start the model thread: {e}")))?;
        let loaded =
            ready_rx.recv().map_err(|_| LlmError::Inference("the model thread died while loading".into()))??;
        // The digest recorded must be of the weights loaded: refuse a file that changed
        // (size or modification time) between hashing and reading it.
        if stamp(path) != before {
            return Err(file_err("changed while it was being loaded; load it again once it is complete".into()));
        }
        let template = ChatTemplate::new(&loaded.template, &loaded.bos, &loaded.eos)?;
        let info =
            ModelInfo { weights_sha256: Some(sha256), decoding: Some(decoding), ..ModelInfo::new(spec, "local") };
        let name = loaded.name.unwrap_or_else(|| spec.to_string());
        tracing::info!(
            "embedded model {}: {decoding}, {threads} threads, {} x {} tokens of context",
            path.display(),
            decoding.sequences.max(1),
            super::CONTEXT_TOKENS
        );
        Ok(Self { jobs: Mutex::new(tx), template, info, name, counters })
    }

    /// What the engine has done so far, and the calls on it now.
    pub fn stats(&self) -> DecodeStats {
        self.counters.snapshot()
    }

    /// Render `messages` exactly as the model will see them.
    pub fn render(&self, messages: &[Message]) -> Result<String, LlmError> {
        self.template.render(messages)
    }

    fn send(&self, job: Job) -> Result<(), LlmError> {
        let jobs = self.jobs.lock().map_err(|_| LlmError::Inference("job queue poisoned".into()))?;
        jobs.send(job).map_err(|_| LlmError::Inference("the model thread has stopped".into()))
    }
}

/// The model thread's answer to a job.
async fn answer<T>(rx: oneshot::Receiver<Result<T, LlmError>>) -> Result<T, LlmError> {
    rx.await.map_err(|_| LlmError::Inference("the model thread dropped a job".into()))?
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
    decoding: Decoding,
    counters: Arc<Counters>,
    jobs: mpsc::Receiver<Job>,
    ready: mpsc::Sender<Result<Loaded, LlmError>>,
) {
    let file_err = |detail: String| LlmError::ModelFile { path: path.clone(), detail };
    // Read into memory, not memory-mapped: a mapped file truncated or rewritten while
    // we run would kill the process with SIGBUS; a copy in memory is immune (and costs
    // nothing extra for weights that are all touched on every token anyway).
    let params = LlamaModelParams::default().with_use_mmap(false);
    let model = match LlamaModel::load_from_file(backend, &path, &params) {
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
    let engine = match Engine::new(backend, &model, threads, decoding, counters) {
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
    engine.run(jobs);
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
        // Every choice is queued at once, so choices decode side by side on free sequences.
        let mut pending = Vec::new();
        for i in 0..params.n.max(1) {
            let seed = (base_seed as u32).wrapping_add(i);
            let (reply, rx) = oneshot::channel();
            self.send(Job::Generate { prompt: prompt.clone(), params: params.clone(), seed, reply })?;
            pending.push(rx);
        }
        let mut choices = Vec::new();
        let mut usage = Usage::default();
        for rx in pending {
            let g = answer(rx).await?;
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
        Ok(ContinuationScore::from_tokens(answer(rx).await?))
    }

    /// The prompt decoded once for all `continuations` (`Work::ScoreMany` in `work.rs`).
    async fn score_continuations(
        &self,
        messages: &[Message],
        continuations: &[&str],
    ) -> Result<Vec<ContinuationScore>, LlmError> {
        let prompt = self.template.render(messages)?;
        let (reply, rx) = oneshot::channel();
        let continuations = continuations.iter().map(|c| c.to_string()).collect();
        self.send(Job::ScoreMany { prompt, continuations, reply })?;
        Ok(answer(rx).await?.into_iter().map(ContinuationScore::from_tokens).collect())
    }
}
