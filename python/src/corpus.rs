//! `Index.build` and `Index.search`: the crate's corpus index, as `recheck index` and
//! `recheck search` run it.

use std::path::PathBuf;

use pyo3::prelude::*;

use recheck::corpus::{build_index, CorpusIndex, JsonlFields, PassageConfig, Retriever, SearchOptions};

use crate::{
    errors::{json_text, to_py},
    runtime::detached,
};

/// Build or update the index at `dir` from `sources`; what it did as JSON (as
/// `recheck index --json`).
#[pyfunction]
#[pyo3(signature = (dir, sources, id_field, title_field, text_field, max_chars=None, overlap=None, prune=false))]
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
) -> PyResult<String> {
    let defaults = PassageConfig::default();
    let (max_chars, overlap) = (max_chars.unwrap_or(defaults.max_chars), overlap.unwrap_or(defaults.overlap_sentences));
    if max_chars == 0 {
        return Err(crate::errors::usage("max_chars must be at least 1"));
    }
    let fields = JsonlFields { id: id_field, title: title_field, text: text_field };
    let config = PassageConfig { max_chars, overlap_sentences: overlap };
    let built = detached(py, || build_index(&dir, &sources, &fields, &config, prune, &|_, _| {}))?;
    json_text(&built.map_err(|e| to_py(e.into()))?)
}

/// Search the index at `dir`; the hits as JSON.
#[pyfunction]
#[pyo3(signature = (dir, query, k, mmr, max_per_doc, syntax))]
pub fn index_search(
    py: Python<'_>,
    dir: PathBuf,
    query: String,
    k: usize,
    mmr: Option<f32>,
    max_per_doc: Option<usize>,
    syntax: bool,
) -> PyResult<String> {
    let options = SearchOptions { k, syntax, mmr, max_per_doc };
    if let Err((option, problem)) = options.check() {
        return Err(crate::errors::usage(format!("{option} {problem}")));
    }
    let hits = detached(py, || CorpusIndex::open(&dir)?.search(&query, &options))?;
    json_text(&hits.map_err(|e| to_py(e.into()))?)
}
