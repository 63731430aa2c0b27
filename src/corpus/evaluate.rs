//! Retrieval quality against gold evidence: document recall@k and evidence-sentence
//! coverage, for any [`Retriever`].

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::{CorpusError, Document, Retriever, SearchOptions};

/// One query with its gold evidence.
#[derive(Debug, Clone)]
pub struct GoldQuery {
    /// The query text.
    pub query: String,
    /// Documents that hold evidence.
    pub gold_docs: Vec<String>,
    /// Evidence sentences: (document id, sentence index in that document).
    pub gold_sentences: Vec<(String, usize)>,
}

/// Aggregate retrieval quality.
#[derive(Debug, Clone, Serialize)]
pub struct RetrievalQuality {
    /// Queries evaluated.
    pub queries: usize,
    /// Mean share of gold documents among the distinct documents of the top k results.
    pub doc_recall: f64,
    /// Share of all gold evidence sentences wholly inside some top-k passage.
    pub sentence_coverage: f64,
    /// Gold sentences counted.
    pub gold_sentences: usize,
    /// Search latencies in microseconds, in query order.
    #[serde(skip)]
    pub latencies_us: Vec<u64>,
}

/// Sentence spans in characters, per document, for coverage checks.
pub fn sentence_char_spans(docs: &[Document]) -> HashMap<String, Vec<(usize, usize)>> {
    docs.iter()
        .map(|d| {
            let spans = d
                .sentence_ranges()
                .into_iter()
                .map(|r| (d.text[..r.start].chars().count(), d.text[..r.end].chars().count()))
                .collect();
            (d.id.clone(), spans)
        })
        .collect()
}

/// Run every query through `retriever` and score the results.
pub fn evaluate(
    retriever: &dyn Retriever,
    queries: &[GoldQuery],
    spans: &HashMap<String, Vec<(usize, usize)>>,
    options: &SearchOptions,
) -> Result<RetrievalQuality, CorpusError> {
    let (mut recall_sum, mut covered, mut gold_total) = (0.0, 0usize, 0usize);
    let mut latencies_us = Vec::with_capacity(queries.len());
    for q in queries {
        let started = std::time::Instant::now();
        let hits = retriever.search(&q.query, options)?;
        latencies_us.push(started.elapsed().as_micros() as u64);
        let docs: HashSet<&str> = hits.iter().map(|h| h.passage.doc_id.as_str()).collect();
        if !q.gold_docs.is_empty() {
            let found = q.gold_docs.iter().filter(|d| docs.contains(d.as_str())).count();
            recall_sum += found as f64 / q.gold_docs.len() as f64;
        }
        for (doc, idx) in &q.gold_sentences {
            let Some(&(s, e)) = spans.get(doc).and_then(|v| v.get(*idx)) else { continue };
            gold_total += 1;
            if hits.iter().any(|h| h.passage.doc_id == *doc && h.passage.start <= s && e <= h.passage.end) {
                covered += 1;
            }
        }
    }
    let with_gold = queries.iter().filter(|q| !q.gold_docs.is_empty()).count().max(1);
    Ok(RetrievalQuality {
        queries: queries.len(),
        doc_recall: recall_sum / with_gold as f64,
        sentence_coverage: if gold_total == 0 { 0.0 } else { covered as f64 / gold_total as f64 },
        gold_sentences: gold_total,
        latencies_us,
    })
}
