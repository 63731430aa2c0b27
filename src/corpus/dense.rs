//! Dense retrieval's vocabulary: the [`Embedder`] trait an index embeds passages and
//! queries through, the identity of an embedder recorded with an index's vectors, and
//! the [`Retrieval`] mode a search runs in.
//!
//! The embedders themselves (the embedded all-MiniLM-L6-v2, a BERT directory, an
//! OpenAI-compatible `/v1/embeddings` endpoint) live in the `embed` module, above the model
//! layer: the corpus only needs vectors.

use serde::{Deserialize, Serialize};

use super::{CorpusError, Passage};

/// Which embedder made a set of vectors. Two embedders are the same when their model,
/// weights digest and dimension are: the spec (a path) may differ between machines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbedderIdentity {
    /// How to open it again: `local`, `local:DIR` or `openai:MODEL`.
    pub spec: String,
    /// The model's name (`sentence-transformers/all-MiniLM-L6-v2`).
    pub model: String,
    /// SHA-256 of the weights where they are local; the endpoint's URL otherwise.
    pub digest: String,
    /// Vector dimension.
    pub dim: usize,
}

impl EmbedderIdentity {
    /// Whether vectors made by `self` can be compared with vectors made by `other`:
    /// the same weights (by digest, whatever the model is called where it lies), or the
    /// same model at the same endpoint.
    pub fn same_model(&self, other: &Self) -> bool {
        let weights = self.digest.len() == 64 && self.digest.bytes().all(|b| b.is_ascii_hexdigit());
        self.digest == other.digest && self.dim == other.dim && (weights || self.model == other.model)
    }
}

impl std::fmt::Display for EmbedderIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digest = self.digest.get(..12).unwrap_or(&self.digest);
        write!(f, "{} ({}, {} dimensions, {digest})", self.spec, self.model, self.dim)
    }
}

/// Anything that turns text into unit vectors of one fixed dimension.
pub trait Embedder: Send + Sync {
    /// Which model this is.
    fn identity(&self) -> &EmbedderIdentity;

    /// One L2-normalised vector per text, in order. Texts longer than the model's
    /// window are cut to it.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, CorpusError>;
}

/// The text of a passage that is embedded: its title, then its text, as BEIR's dense
/// baselines embed SciFact.
pub fn passage_text(p: &Passage) -> String {
    if p.title.is_empty() {
        p.text.clone()
    } else {
        format!("{} {}", p.title, p.text)
    }
}

/// Which ranking a search uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// tantivy's BM25 over title and text.
    #[default]
    Bm25,
    /// Cosine similarity of the query's vector to each passage's (exact search).
    Dense,
    /// BM25 and dense rankings fused.
    Hybrid,
}

impl Mode {
    /// Its name, as `--retrieval` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bm25 => "bm25",
            Self::Dense => "dense",
            Self::Hybrid => "hybrid",
        }
    }

    /// Whether it needs the index's vectors.
    pub fn needs_vectors(self) -> bool {
        self != Self::Bm25
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "bm25" => Ok(Self::Bm25),
            "dense" => Ok(Self::Dense),
            "hybrid" => Ok(Self::Hybrid),
            other => Err(format!("{other:?} is not a retrieval mode (bm25, dense or hybrid)")),
        }
    }
}

/// How hybrid search merges the two rankings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fusion", rename_all = "lowercase")]
pub enum Fusion {
    /// Reciprocal-rank fusion (Cormack et al., 2009): `Σ 1/(k + rank)` over the lists
    /// a passage is in.
    Rrf {
        /// The rank constant (60 in the paper).
        k: f32,
    },
    /// `alpha · dense + (1 − alpha) · bm25`, each score scaled to [0, 1] by its list's
    /// maximum (a passage missing from a list scores 0 there). The default, with
    /// [`DEFAULT_ALPHA`].
    Weighted {
        /// Weight of the dense score, in [0, 1].
        alpha: f32,
    },
}

/// RRF's rank constant, as Cormack et al. (2009) set it.
pub const RRF_K: f32 = 60.0;

/// The default hybrid: weighted fusion with this weight of the dense score. Chosen on
/// SciFact's 809 training claims (BEIR's protocol, `cargo bench --bench retrieval`),
/// where it ranked best of RRF and alpha 0.3 to 0.8 (BENCHMARKS.md).
pub const DEFAULT_ALPHA: f32 = 0.6;

impl Default for Fusion {
    fn default() -> Self {
        Self::Weighted { alpha: DEFAULT_ALPHA }
    }
}

impl Fusion {
    /// Weighted fusion with `alpha`, refused outside [0, 1].
    pub fn weighted(alpha: f32) -> Result<Self, String> {
        if (0.0..=1.0).contains(&alpha) {
            Ok(Self::Weighted { alpha })
        } else {
            Err(format!("takes a weight between 0 and 1, got {alpha}"))
        }
    }
}

/// The retrieval a search runs: mode and fusion. Recorded in a run's config so that a
/// replay searches the same way.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Retrieval {
    /// The ranking.
    pub mode: Mode,
    /// How hybrid merges (ignored by the other modes).
    #[serde(flatten)]
    pub fusion: Fusion,
}

impl std::fmt::Display for Retrieval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.mode, self.fusion) {
            (Mode::Hybrid, Fusion::Rrf { k }) => write!(f, "hybrid (reciprocal-rank fusion, k {k})"),
            (Mode::Hybrid, Fusion::Weighted { alpha }) => write!(f, "hybrid (weighted, alpha {alpha})"),
            (mode, _) => f.write_str(mode.name()),
        }
    }
}
