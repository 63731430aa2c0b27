//! Corpus benchmarks: indexing throughput, query latency and retrieval quality on
//! SciFact (from ../shared/evals), and latency on a generated 200k-passage corpus.
//!
//! Run: `cargo bench --bench corpus` (writes `target/bench/corpus.json`).
//! Set RECHECK_DATA_ROOT to read SciFact from elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::peak_rss_mb;

use std::{path::PathBuf, time::Instant};

use rand::{rngs::StdRng, Rng, SeedableRng};
use recheck::{
    corpus::{evaluate, read_sources, CorpusIndex, Document, JsonlFields, PassageConfig, Retriever, SearchOptions},
    datasets::scifact,
};
use serde_json::json;

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn latency_ms(mut us: Vec<u64>) -> serde_json::Value {
    us.sort_unstable();
    json!({ "p50_ms": percentile(&us, 0.5), "p99_ms": percentile(&us, 0.99), "queries": us.len() })
}

fn index_docs(dir: &std::path::Path, docs: &[Document], config: &PassageConfig) -> (CorpusIndex, f64) {
    let mut index = CorpusIndex::open_or_create(dir).unwrap();
    let t = Instant::now();
    index.update(docs, config, false, &|_| ()).unwrap();
    (index, t.elapsed().as_secs_f64())
}

fn scifact(root: &std::path::Path) -> Option<serde_json::Value> {
    let dir = root.join("scifact");
    if !dir.join("corpus.jsonl").exists() {
        eprintln!("SciFact not found under {}; skipping that part", root.display());
        return None;
    }
    let fields = JsonlFields { id: "doc_id".into(), title: "title".into(), text: "abstract".into() };
    let t = Instant::now();
    let ingested = read_sources(&[dir.join("corpus.jsonl")], &fields).unwrap();
    let read_s = t.elapsed().as_secs_f64();
    let claims = scifact::load_claims(&dir.join("claims_train.jsonl")).unwrap();
    let queries: Vec<_> = claims.iter().map(|c| c.to_gold_query()).collect();
    let spans = evaluate::sentence_char_spans(&ingested.documents);
    let tmp = tempfile::tempdir().unwrap();

    let mut rows = Vec::new();
    let settings = [
        ("whole-document BM25 (baseline)", PassageConfig { max_chars: usize::MAX, overlap_sentences: 0 }, None),
        ("passages 1000 chars, overlap 1", PassageConfig::default(), None),
        ("passages 1000 chars, overlap 1, best passage per doc", PassageConfig::default(), Some(1)),
        (
            "passages 600 chars, overlap 1, best passage per doc",
            PassageConfig { max_chars: 600, overlap_sentences: 1 },
            Some(1),
        ),
    ];
    for (i, (name, config, per_doc)) in settings.iter().enumerate() {
        let (index, index_s) = index_docs(&tmp.path().join(format!("i{i}")), &ingested.documents, config);
        let options = SearchOptions { k: 10, max_per_doc: *per_doc, ..Default::default() };
        let q = evaluate::evaluate(&index, &queries, &spans, &options).unwrap();
        // Claims with rationale sentences (SUPPORT/CONTRADICT); the rest cite an abstract
        // that does not address them, which caps every retriever's recall.
        let with_evidence: Vec<_> = queries.iter().filter(|q| !q.gold_sentences.is_empty()).cloned().collect();
        let qe = evaluate::evaluate(&index, &with_evidence, &spans, &options).unwrap();
        let (_, passages) = index.counts().unwrap();
        rows.push(json!({
            "setting": name,
            "passages": passages,
            "doc_recall_at_10": q.doc_recall,
            "doc_recall_at_10_claims_with_evidence": qe.doc_recall,
            "claims_with_evidence": qe.queries,
            "evidence_sentences_in_top10": q.sentence_coverage,
            "index_seconds": index_s,
            "index_mb_per_s": ingested.bytes as f64 / 1e6 / (read_s + index_s),
            "index_docs_per_s": ingested.documents.len() as f64 / (read_s + index_s),
            "latency": latency_ms(q.latencies_us),
        }));
        eprintln!("{}", rows.last().unwrap());
    }
    Some(json!({
        "documents": ingested.documents.len(),
        "bytes": ingested.bytes,
        "claims": queries.len(),
        "gold_sentences": queries.iter().map(|q| q.gold_sentences.len()).sum::<usize>(),
        "settings": rows,
    }))
}

/// Zipf-distributed pseudo-words, so postings lists look like natural text.
fn generated(passages: usize) -> serde_json::Value {
    let mut rng = StdRng::seed_from_u64(7);
    let vocab: Vec<String> = (0..30_000).map(|i| format!("w{i:x}q")).collect();
    let weights: Vec<f64> = (1..=vocab.len()).map(|r| 1.0 / r as f64).collect();
    let total: f64 = weights.iter().sum();
    let cdf: Vec<f64> = weights
        .iter()
        .scan(0.0, |acc, w| {
            *acc += w / total;
            Some(*acc)
        })
        .collect();
    let word = |rng: &mut StdRng| {
        let x: f64 = rng.random();
        vocab[cdf.partition_point(|&c| c < x).min(vocab.len() - 1)].clone()
    };
    // One sentence of ~12 words per passage slot; 4 passages per document.
    let per_doc = 4;
    let docs: Vec<Document> = (0..passages / per_doc)
        .map(|d| {
            let sentences: Vec<String> = (0..per_doc)
                .map(|_| {
                    let words: Vec<String> = (0..60).map(|_| word(&mut rng)).collect();
                    format!("{}.", words.join(" "))
                })
                .collect();
            Document::from_sentences(format!("gen{d}"), String::new(), &sentences)
        })
        .collect();
    let bytes: usize = docs.iter().map(|d| d.text.len()).sum();
    let tmp = tempfile::tempdir().unwrap();
    // One sentence per passage: a sentence is at most 420 characters, two at least 481.
    let config = PassageConfig { max_chars: 440, overlap_sentences: 0 };
    let (index, index_s) = index_docs(tmp.path(), &docs, &config);
    let (_, n_passages) = index.counts().unwrap();
    let queries: Vec<String> =
        (0..2000).map(|_| (0..8).map(|_| word(&mut rng)).collect::<Vec<_>>().join(" ")).collect();
    for q in queries.iter().take(50) {
        index.search(q, &SearchOptions::default()).unwrap();
    }
    let mut us = Vec::new();
    for q in &queries {
        let t = Instant::now();
        index.search(q, &SearchOptions::default()).unwrap();
        us.push(t.elapsed().as_micros() as u64);
    }
    json!({
        "passages": n_passages,
        "bytes": bytes,
        "index_seconds": index_s,
        "index_mb_per_s": bytes as f64 / 1e6 / index_s,
        "index_passages_per_s": n_passages as f64 / index_s,
        "latency_k10": latency_ms(us),
    })
}

/// Indexing one large document of 2, 4 and 8 MB: the time should grow linearly (it
/// grew quadratically, 0.72 / 2.04 / 5.80 s, before passage offsets were counted in one pass).
fn one_large_document() -> serde_json::Value {
    let mut rng = StdRng::seed_from_u64(11);
    let words = ["moon", "planet", "orbit", "star", "light", "comet", "dust", "ring", "gas", "ice"];
    let mut rows = Vec::new();
    for mb in [2usize, 4, 8] {
        let mut text = String::new();
        while text.len() < mb << 20 {
            let sentence: Vec<&str> = (0..12).map(|_| words[rng.random_range(0..words.len())]).collect();
            text.push_str(&sentence.join(" "));
            text.push_str(". ");
        }
        let doc = Document { id: format!("big{mb}"), title: String::new(), text, sentences: None };
        let tmp = tempfile::tempdir().unwrap();
        let (index, seconds) = index_docs(tmp.path(), std::slice::from_ref(&doc), &PassageConfig::default());
        let (_, passages) = index.counts().unwrap();
        rows.push(json!({ "mb": mb, "seconds": seconds, "mb_per_s": mb as f64 / seconds, "passages": passages }));
    }
    json!(rows)
}

fn main() {
    let root = std::env::var_os("RECHECK_DATA_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/evals"));
    let report = json!({
        "scifact": scifact(&root),
        "generated_200k": generated(200_000),
        "one_large_document": one_large_document(),
        "peak_rss_mb": peak_rss_mb(),
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("corpus.json"), report.to_string()).unwrap();
}
