//! The corpus of an experiment (the verify protocol): the spec's JSONL file, indexed
//! into the home's `indexes/` once and brought up to date on every open (unchanged
//! documents are skipped), so a run, its resume and its replay retrieve the same way.

use std::{path::Path, sync::Arc};

use sha2::{Digest, Sha256};

use super::{EvalError, EvalSpec};
use crate::{
    corpus::{read_sources, CorpusIndex, Fusion, JsonlFields, PassageConfig, Retrieval, Retriever, Stage},
    embed, Result,
};

/// Open (building or updating) the index of `spec`'s corpus under `indexes_dir`;
/// `None` when the spec names no corpus. `progress` hears what is happening.
pub fn open_corpus(
    spec: &EvalSpec,
    data_root: &Path,
    indexes_dir: &Path,
    progress: &dyn Fn(&str),
) -> Result<Option<Arc<dyn Retriever>>> {
    let Some(corpus) = &spec.corpus else { return Ok(None) };
    let file = spec.resolve(&corpus.path, data_root);
    if !file.is_file() {
        let relative = !(corpus.path.starts_with(".") || corpus.path.is_absolute());
        return Err(EvalError::DatasetMissing {
            file: spec.file.clone().unwrap_or_else(|| spec.name.clone().into()),
            path: file,
            under: relative.then(|| data_root.to_path_buf()),
        }
        .into());
    }
    let absolute = std::path::absolute(&file).unwrap_or(file.clone());
    let fields =
        JsonlFields { id: corpus.id_field.clone(), title: corpus.title_field.clone(), text: corpus.text_field.clone() };
    let mode = spec.retrieval.unwrap_or_default();
    let embedder = match mode.needs_vectors() {
        false => None,
        true => {
            let spec_name = spec.embedder.as_deref().unwrap_or(embed::DEFAULT_EMBEDDER);
            Some(embed::open_embedder(spec_name, &embed::options(), progress)?)
        }
    };
    // One index per corpus file and field choice, and one more per embedder: an
    // index with vectors needs its embedder on every update, a BM25 spec has none.
    let mut key = format!("{}\n{}\n{}\n{}", absolute.display(), fields.id, fields.title, fields.text);
    if let Some(e) = &embedder {
        key.push_str(&format!("\n{}\n{}", e.identity().model, e.identity().digest));
    }
    let digest = Sha256::digest(key.as_bytes());
    let name: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let dir = indexes_dir.join(format!("corpus-{name}"));
    let ingested = read_sources(std::slice::from_ref(&absolute), &fields)?;
    if let Some(bad) = ingested.bad.first() {
        return Err(EvalError::Spec {
            file: spec.file.clone().unwrap_or_else(|| spec.name.clone().into()),
            detail: format!("corpus {}: {} bad line(s), the first: {bad}", absolute.display(), ingested.bad.len()),
        }
        .into());
    }
    progress(&format!(
        "corpus {}: {} documents, index {}",
        absolute.display(),
        ingested.documents.len(),
        dir.display()
    ));
    let mut index = CorpusIndex::open_or_create(&dir)?;
    // Embedding a corpus takes minutes on a CPU: say how far it is, every 1,000 passages.
    let said = std::sync::atomic::AtomicUsize::new(0);
    let embedding = |stage: Stage, done: usize, total: usize| {
        if stage == Stage::Embedding
            && (done == total || done >= said.load(std::sync::atomic::Ordering::Relaxed) + 1000)
        {
            said.store(done, std::sync::atomic::Ordering::Relaxed);
            progress(&format!("embedding the corpus: {done} of {total} passages"));
        }
    };
    let stats =
        index.update_with(&ingested.documents, &PassageConfig::default(), true, embedder.as_deref(), &embedding)?;
    if stats.added + stats.updated + stats.removed > 0 {
        progress(&format!(
            "corpus indexed: {} added, {} updated, {} removed, {} passages written, {} embedded",
            stats.added, stats.updated, stats.removed, stats.passages_written, stats.passages_embedded
        ));
    }
    let fusion = spec.alpha.map(|alpha| Fusion::Weighted { alpha }).unwrap_or_default();
    let index = index.with_retrieval(Retrieval { mode, fusion }, embedder)?;
    Ok(Some(Arc::new(index)))
}
