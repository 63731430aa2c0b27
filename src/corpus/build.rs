//! Building or updating an index from source files, as `recheck index` and the Python
//! package's `Index.build` run it.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use serde::Serialize;

use super::{
    read_sources, BadInput, CorpusError, CorpusIndex, Embedder, EmbedderIdentity, JsonlFields, PassageConfig, Stage,
    UpdateStats,
};

/// What building an index did (`recheck index --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexBuild {
    /// The index directory.
    pub index: PathBuf,
    /// Documents read from the sources.
    pub documents_read: usize,
    /// What the update did.
    #[serde(flatten)]
    pub stats: UpdateStats,
    /// Passages in the index afterwards.
    pub passages_total: u64,
    /// Input that could not be read (skipped; the rest was indexed).
    pub bad: Vec<BadInput>,
    /// Bytes read from the sources.
    pub bytes_read: u64,
    /// Whether documents absent from the sources were deleted: asked for, and done
    /// only when no input was bad (a bad line's document would be deleted).
    pub pruned: bool,
    /// The embedder of the index's vectors, if it has them.
    pub embedder: Option<EmbedderIdentity>,
    /// Time taken.
    pub seconds: f64,
}

/// Build or update the index at `dir` from `sources` (JSONL files, directories of text
/// files, single text files), passages cut by `config`; with `prune`, delete indexed
/// documents the sources no longer have; with `embedder`, keep one vector per passage
/// (needed when the index has vectors). `progress(stage, done, total)` is called as
/// documents are written and passages embedded.
pub fn build_index(
    dir: &Path,
    sources: &[PathBuf],
    fields: &JsonlFields,
    config: &PassageConfig,
    prune: bool,
    embedder: Option<&dyn Embedder>,
    progress: &dyn Fn(Stage, usize, usize),
) -> Result<IndexBuild, CorpusError> {
    let started = Instant::now();
    let ingested = read_sources(sources, fields)?;
    let pruned = prune && ingested.bad.is_empty();
    let mut index = CorpusIndex::open_or_create(dir)?;
    let total = ingested.documents.len();
    let stats = index.update_with(&ingested.documents, config, pruned, embedder, progress)?;
    let (_, passages_total) = index.counts()?;
    Ok(IndexBuild {
        index: dir.to_path_buf(),
        documents_read: total,
        stats,
        passages_total,
        bad: ingested.bad,
        bytes_read: ingested.bytes,
        pruned,
        embedder: index.embedder()?,
        seconds: started.elapsed().as_secs_f64(),
    })
}
