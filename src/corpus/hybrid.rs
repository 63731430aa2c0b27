//! Searching an index in each [`Mode`]: BM25, dense (exact nearest neighbours over the
//! committed vectors) and hybrid (the two fused), all followed by the same per-document
//! cap and MMR re-ranking.

use std::{collections::HashMap, path::Path, sync::Arc};

use super::{
    vectors::{self, Vectors},
    CorpusError, CorpusIndex, Embedder, EmbedderIdentity, Fusion, Hit, Mode, Passage, Retrieval, SearchOptions,
};

/// Candidates each ranking contributes to a hybrid search at least: fusion needs
/// depth to find what one list ranks low and the other high.
const FUSION_DEPTH: usize = 100;

/// The query side of dense search: the embedder and the vectors it is compared with,
/// with their int8 codes above [`vectors::QUANTISED_ABOVE`] rows.
pub(crate) struct DenseSide {
    embedder: Arc<dyn Embedder>,
    vectors: Arc<Vectors>,
    codes: Option<vectors::Quantised>,
}

/// Refuse an embedder other than the one that made an index's vectors.
pub(super) fn check_embedder(
    dir: &Path,
    made_by: &EmbedderIdentity,
    given: &EmbedderIdentity,
) -> Result<(), CorpusError> {
    if made_by.same_model(given) {
        return Ok(());
    }
    Err(CorpusError::WrongEmbedder { index: dir.to_path_buf(), made_by: made_by.to_string(), given: given.to_string() })
}

impl CorpusIndex {
    /// The embedder that made the index's vectors, if it has any.
    pub fn embedder(&self) -> Result<Option<EmbedderIdentity>, CorpusError> {
        Ok(self.vectors()?.map(|r| r.embedder))
    }

    /// Search in `retrieval`'s mode from now on. Dense and hybrid need the index's
    /// vectors and `embedder`, the one that made them: anything else is refused.
    pub fn with_retrieval(
        mut self,
        retrieval: Retrieval,
        embedder: Option<Arc<dyn Embedder>>,
    ) -> Result<Self, CorpusError> {
        if !retrieval.mode.needs_vectors() {
            self.retrieval = retrieval;
            self.dense = None;
            return Ok(self);
        }
        let Some(reference) = self.vectors()? else {
            return Err(CorpusError::NoVectors { index: self.dir().to_path_buf(), mode: retrieval.mode.name() });
        };
        let Some(embedder) = embedder else {
            return Err(CorpusError::index(
                self.dir(),
                format!(
                    "{} search needs an embedder; its vectors were made by {}",
                    retrieval.mode.name(),
                    reference.embedder
                ),
            ));
        };
        check_embedder(self.dir(), &reference.embedder, embedder.identity())?;
        let vectors = Vectors::read(self.dir(), &reference)?;
        let codes = (vectors.len() > vectors::QUANTISED_ABOVE).then(|| vectors::Quantised::of(&vectors));
        self.dense = Some(DenseSide { embedder, vectors: Arc::new(vectors), codes });
        self.retrieval = retrieval;
        Ok(self)
    }

    /// The search behind [`super::Retriever::search`], in the index's mode.
    pub(super) fn search_ranked(&self, query: &str, options: &SearchOptions) -> Result<Vec<Hit>, CorpusError> {
        if options.k == 0 {
            return Ok(Vec::new());
        }
        let reranks = options.mmr.is_some() || options.max_per_doc.is_some();
        let pool = if reranks { options.k.saturating_mul(5).max(50) } else { options.k };
        let mode = self.retrieval.mode;
        if mode == Mode::Dense && options.syntax {
            return Err(CorpusError::BadQuery {
                query: query.to_string(),
                detail: "query syntax is BM25's: use it with --retrieval bm25 or hybrid".into(),
            });
        }
        let q = self.bm25_query(query, options.syntax)?;
        let candidates = match (mode, &self.dense) {
            (Mode::Bm25, _) | (_, None) => match &q {
                Some(q) => self.bm25_pool(q.as_ref(), pool)?,
                None => Vec::new(),
            },
            (Mode::Dense, Some(dense)) => self.dense_pool(dense, query, pool)?,
            (Mode::Hybrid, Some(dense)) => {
                let depth = pool.max(FUSION_DEPTH);
                let lexical = match &q {
                    Some(q) => self.bm25_pool(q.as_ref(), depth)?,
                    None => Vec::new(),
                };
                let semantic = self.dense_pool(dense, query, depth)?;
                let mut fused = fuse(lexical, semantic, self.retrieval.fusion);
                fused.truncate(pool);
                fused
            }
        };
        let chosen = super::rerank::select(candidates, options);
        Ok(self.hits(q.as_deref(), chosen))
    }

    /// The `pool` passages nearest to the query's vector, best first.
    fn dense_pool(&self, dense: &DenseSide, query: &str, pool: usize) -> Result<Vec<(f32, Passage)>, CorpusError> {
        if dense.vectors.is_empty() || query.trim().is_empty() {
            return Ok(Vec::new());
        }
        let embedded = dense.embedder.embed(&[query])?;
        let Some(q) = embedded.first().filter(|v| v.len() == dense.vectors.dim) else {
            return Err(CorpusError::Embed(format!(
                "{} returned no {}-dimension vector for the query",
                dense.embedder.identity(),
                dense.vectors.dim
            )));
        };
        let mut out = Vec::with_capacity(pool);
        let nearest = match &dense.codes {
            Some(codes) => vectors::nearest_quantised(&dense.vectors, codes, q, pool),
            None => vectors::nearest(&dense.vectors, q, pool),
        };
        for (row, score) in nearest {
            let id = &dense.vectors.passage_ids[row];
            // The vectors and the tantivy documents share one commit, so a missing
            // passage means the files were changed behind the index's back.
            let passage = self.passage(id)?.ok_or_else(|| {
                CorpusError::index(self.dir(), format!("vector for passage {id:?}, which the index does not hold"))
            })?;
            out.push((score, passage));
        }
        Ok(out)
    }
}

/// Merge a BM25 and a dense ranking (each best first) into one, best first, ties by
/// passage id. Scores are positive, so MMR's relevance scaling holds.
pub fn fuse(lexical: Vec<(f32, Passage)>, semantic: Vec<(f32, Passage)>, fusion: Fusion) -> Vec<(f32, Passage)> {
    let mut merged: HashMap<String, (f32, Passage)> = HashMap::new();
    for (list, dense) in [(lexical, false), (semantic, true)] {
        let top = list.first().map(|(s, _)| *s).unwrap_or(0.0);
        for (rank, (score, passage)) in list.into_iter().enumerate() {
            let contribution = match fusion {
                Fusion::Rrf { k } => 1.0 / (k + rank as f32 + 1.0),
                Fusion::Weighted { alpha } => {
                    let weight = if dense { alpha } else { 1.0 - alpha };
                    weight * if top > 0.0 { score.max(0.0) / top } else { 0.0 }
                }
            };
            merged.entry(passage.passage_id.clone()).or_insert((0.0, passage)).0 += contribution;
        }
    }
    let mut out: Vec<(f32, Passage)> = merged.into_values().collect();
    out.sort_by(|(a, p), (b, q)| b.total_cmp(a).then_with(|| p.passage_id.cmp(&q.passage_id)));
    // MMR divides by the best score; weighted fusion can leave every score at 0.
    for (score, _) in &mut out {
        *score = score.max(f32::MIN_POSITIVE);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p(id: &str) -> Passage {
        Passage {
            doc_id: id.into(),
            passage_id: format!("{id}#0"),
            title: String::new(),
            text: id.into(),
            start: 0,
            end: 1,
        }
    }

    #[test]
    fn rrf_rewards_agreement_and_weighted_follows_alpha() {
        let lexical = vec![(9.0, p("a")), (5.0, p("b")), (1.0, p("c"))];
        let semantic = vec![(0.9, p("b")), (0.8, p("d")), (0.1, p("a"))];
        let ids = |v: Vec<(f32, Passage)>| v.into_iter().map(|(_, p)| p.doc_id).collect::<Vec<_>>();
        // b is second and first; a first and third.
        assert_eq!(ids(fuse(lexical.clone(), semantic.clone(), Fusion::Rrf { k: 60.0 })), ["b", "a", "d", "c"]);
        assert_eq!(ids(fuse(lexical.clone(), semantic.clone(), Fusion::Weighted { alpha: 0.0 }))[0], "a");
        assert_eq!(ids(fuse(lexical.clone(), semantic.clone(), Fusion::Weighted { alpha: 1.0 }))[0], "b");
        let only_dense = fuse(Vec::new(), semantic, Fusion::Weighted { alpha: 0.0 });
        assert!(only_dense.iter().all(|(s, _)| *s > 0.0), "scores stay positive for MMR");
    }
}
