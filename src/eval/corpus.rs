//! The corpus of an experiment (the verify protocol): the spec's JSONL file, indexed
//! into the home's `indexes/` once and brought up to date on every open (unchanged
//! documents are skipped), so a run, its resume and its replay retrieve the same way.

use std::{path::Path, sync::Arc};

use sha2::{Digest, Sha256};

use super::{EvalError, EvalSpec};
use crate::{
    corpus::{read_sources, CorpusIndex, JsonlFields, PassageConfig, Retriever},
    Result,
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
    // One index per corpus file and field choice.
    let key = format!("{}\n{}\n{}\n{}", absolute.display(), fields.id, fields.title, fields.text);
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
    let stats = index.update(&ingested.documents, &PassageConfig::default(), true, &|_| {})?;
    if stats.added + stats.updated + stats.removed > 0 {
        progress(&format!(
            "corpus indexed: {} added, {} updated, {} removed, {} passages written",
            stats.added, stats.updated, stats.removed, stats.passages_written
        ));
    }
    Ok(Some(Arc::new(index)))
}
