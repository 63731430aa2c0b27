//! The corpus: documents cut into passages with exact offsets, a tantivy index over
//! them with, optionally, one vector per passage, and the [`Retriever`] trait the
//! agents search through (BM25, dense or hybrid).

mod build;
pub mod dense;
mod document;
pub mod evaluate;
mod hybrid;
mod index;
mod ingest;
mod rerank;
pub mod sentences;
pub mod vectors;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use build::{build_index, IndexBuild};
pub use dense::{Embedder, EmbedderIdentity, Fusion, Mode, Retrieval};
pub use document::{split_passages, Document, Passage, PassageConfig};
pub use hybrid::fuse;
pub use index::{CorpusIndex, Stage, UpdateStats};
pub use ingest::{read_sources, BadInput, Ingested, JsonlFields};
pub use sentences::split_sentences;

/// Errors of the corpus layer.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// There is no index in the directory.
    #[error("no index in {0}")]
    NoIndex(PathBuf),
    /// Another process is writing the index.
    #[error("index {0} is being written by another process")]
    InUse(PathBuf),
    /// tantivy failed.
    #[error("index {path}: {detail}")]
    Index {
        /// Index directory.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// Dense or hybrid search was asked of an index without vectors.
    #[error(
        "index {index} has no vectors, so it cannot search {mode}: run `recheck index --embed` on it, or search bm25"
    )]
    NoVectors {
        /// Index directory.
        index: PathBuf,
        /// The mode asked for.
        mode: &'static str,
    },
    /// The index's vectors were made by another embedder than the one given.
    #[error("index {index} holds vectors made by {made_by}, not by {given}: query it with that embedder, or re-index with `recheck index --embed --embedder ...`")]
    WrongEmbedder {
        /// Index directory.
        index: PathBuf,
        /// The embedder recorded with the vectors.
        made_by: String,
        /// The one given.
        given: String,
    },
    /// An index with vectors was updated without its embedder: its vectors would no
    /// longer match its documents.
    #[error("index {index} has vectors made by {made_by}: an update must embed the passages it writes (recheck index --embed)")]
    NeedsEmbedder {
        /// Index directory.
        index: PathBuf,
        /// The embedder recorded with the vectors.
        made_by: String,
    },
    /// An embedder failed.
    #[error("embedder: {0}")]
    Embed(String),
    /// A query in query-syntax mode did not parse.
    #[error("cannot parse query {query:?}: {detail}")]
    BadQuery {
        /// The query.
        query: String,
        /// Parser message.
        detail: String,
    },
}

impl CorpusError {
    fn index(path: &Path, detail: impl std::fmt::Display) -> Self {
        Self::Index { path: path.to_path_buf(), detail: detail.to_string() }
    }
}

/// How to search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchOptions {
    /// Results wanted.
    pub k: usize,
    /// Treat the query as tantivy query syntax (`title:aspirin AND "heart attack"`);
    /// otherwise it is plain text and never a syntax error.
    pub syntax: bool,
    /// MMR re-ranking with this λ in [0, 1] (1 = relevance only).
    pub mmr: Option<f32>,
    /// At most this many passages from one document.
    pub max_per_doc: Option<usize>,
}

impl SearchOptions {
    /// Refuse options out of range: the option's name and what is wrong with it.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if let Some(l) = self.mmr.filter(|l| !(0.0..=1.0).contains(l)) {
            return Err(("mmr", format!("takes λ between 0 and 1, got {l}")));
        }
        if self.max_per_doc == Some(0) {
            return Err(("max_per_doc", "must be at least 1".into()));
        }
        Ok(())
    }
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self { k: 10, syntax: false, mmr: None, max_per_doc: None }
    }
}

/// One search result: a passage with its score and a highlighted snippet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// The ranking's score: BM25, cosine similarity, or the fused score in hybrid mode.
    pub score: f32,
    /// The passage, with exact offsets into its document.
    #[serde(flatten)]
    pub passage: Passage,
    /// A fragment of the passage with query terms in `<b>…</b>` (HTML-escaped).
    pub snippet: String,
}

/// Anything that finds passages for a query. Agents depend on this, not on tantivy.
pub trait Retriever: Send + Sync {
    /// Ranked passages for `query`.
    fn search(&self, query: &str, options: &SearchOptions) -> Result<Vec<Hit>, CorpusError>;

    /// Where the passages live (an index directory), so a stored run can name the
    /// corpus it used and a replay can open it again; `None` when it has no place.
    fn location(&self) -> Option<std::path::PathBuf> {
        None
    }

    /// How it ranks, if it is an index: recorded with a run so a replay ranks the same.
    fn retrieval(&self) -> Option<Retrieval> {
        None
    }
}
