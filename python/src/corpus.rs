//! `Index.build` and `Index.search`: the crate's corpus index, as `recheck index` and
//! `recheck search` run it.

use std::path::PathBuf;

use pyo3::prelude::*;

use recheck::{
    corpus::{build_index, JsonlFields, PassageConfig, Retriever, SearchOptions},
    embed::{self, RetrievalChoice},
};

use crate::{
    errors::{json_text, to_py},
    runtime::detached,
};

/// Build or update the index at `dir` from `sources`; what it did as JSON (as
/// `recheck index --json`).
#[pyfunction]
#[pyo3(signature = (dir, sources, id_field, title_field, text_field, max_chars=None, overlap=None, prune=false, embed=false, embedder=None))]
#[allow(clippy::too_many_arguments)]
pub fn index_build(
    py: Python<'_>,
    dir: PathBuf,
    sources: Vec<PathBuf>,
    id_field: String,
    title_field: String,
    text_field: String,
    max_chars: Option<usize>,
    overlap: Option<usize>,
    prune: bool,
    embed: bool,
    embedder: Option<String>,
) -> PyResult<String> {
    let defaults = PassageConfig::default();
    let (max_chars, overlap) = (max_chars.unwrap_or(defaults.max_chars), overlap.unwrap_or(defaults.overlap_sentences));
    if max_chars == 0 {
        return Err(crate::errors::usage("max_chars must be at least 1"));
    }
    let fields = JsonlFields { id: id_field, title: title_field, text: text_field };
    let config = PassageConfig { max_chars, overlap_sentences: overlap };
    if embedder.is_some() && !embed {
        return Err(crate::errors::usage("embedder is the embedder of embed=True"));
    }
    let built = detached(py, || -> recheck::Result<_> {
        let embedder = match embed {
            false => None,
            true => {
                let spec = embed::update_embedder(&dir, embedder)?;
                Some(embed::open_embedder(&spec, &embed::options(), &|_| {})?)
            }
        };
        Ok(build_index(&dir, &sources, &fields, &config, prune, embedder.as_deref(), &|_, _, _| {})?)
    })?;
    json_text(&built.map_err(to_py)?)
}

/// Search the index at `dir`; the hits as JSON.
#[pyfunction]
#[pyo3(signature = (dir, query, k, mmr, max_per_doc, syntax, retrieval=None, alpha=None, embedder=None))]
#[allow(clippy::too_many_arguments)]
pub fn index_search(
    py: Python<'_>,
    dir: PathBuf,
    query: String,
    k: usize,
    mmr: Option<f32>,
    max_per_doc: Option<usize>,
    syntax: bool,
    retrieval: Option<String>,
    alpha: Option<f32>,
    embedder: Option<String>,
) -> PyResult<String> {
    let options = SearchOptions { k, syntax, mmr, max_per_doc };
    if let Err((option, problem)) = options.check() {
        return Err(crate::errors::usage(format!("{option} {problem}")));
    }
    let mode = match retrieval.as_deref().map(str::parse) {
        None => None,
        Some(Ok(m)) => Some(m),
        Some(Err(e)) => return Err(crate::errors::usage(format!("retrieval {e}"))),
    };
    let choice = RetrievalChoice::of(mode, alpha, embedder).map_err(|e| crate::errors::usage(format!("alpha {e}")))?;
    let hits = detached(py, || -> recheck::Result<_> {
        let index = recheck::orchestrator::open_index(&dir, &choice)?;
        Ok(index.search(&query, &options)?)
    })?;
    json_text(&hits.map_err(to_py)?)
}
