//! The corpus: sentence splitting on real text, indexing, search, offsets,
//! incremental updates, bad input and interrupted indexing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use recheck::corpus::{
    read_sources, split_sentences, CorpusIndex, Document, JsonlFields, PassageConfig, Retriever, SearchOptions,
};
use serde_json::Value;

fn sample_corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpora/solar-system")
}

fn shared_scifact() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/evals/scifact");
    if dir.join("corpus.jsonl").exists() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: ../shared/evals/scifact is absent; the SciFact part of this test did not run");
        None
    }
}

fn recheck(args: &[&str]) -> Output {
    let home = support::temp_home();
    Command::new(env!("CARGO_BIN_EXE_recheck")).args(args).env("RECHECK_HOME", home.path()).output().unwrap()
}

fn json_out(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {} / {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

fn build(dir: &Path) -> CorpusIndex {
    let docs = read_sources(&[sample_corpus()], &JsonlFields::default()).unwrap();
    assert!(docs.bad.is_empty(), "{:?}", docs.bad);
    let mut index = CorpusIndex::open_or_create(dir).unwrap();
    index.update(&docs.documents, &PassageConfig::default(), false, &|_| ()).unwrap();
    index
}

#[test]
fn sentence_splitter_agrees_with_scifact_gold_sentences() {
    let Some(dir) = shared_scifact() else { return };
    let text = std::fs::read_to_string(dir.join("corpus.jsonl")).unwrap();
    let (mut agree, mut total) = (0usize, 0usize);
    for line in text.lines().take(1000) {
        let v: Value = serde_json::from_str(line).unwrap();
        let sentences: Vec<String> =
            v["abstract"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
        let doc = Document::from_sentences("x".into(), String::new(), &sentences);
        // Gold sentences keep trailing white space ("...   \n"); ours are trimmed.
        let gold: std::collections::HashSet<usize> =
            doc.sentence_ranges().iter().map(|r| r.start + doc.text[r.clone()].trim_end().len()).collect();
        let ours: std::collections::HashSet<usize> = split_sentences(&doc.text).iter().map(|r| r.end).collect();
        agree += gold.intersection(&ours).count();
        if std::env::var("SHOW_SPLITS").is_ok() {
            for e in ours.symmetric_difference(&gold) {
                let lo = e.saturating_sub(40);
                let hi = (e + 30).min(doc.text.len());
                if doc.text.is_char_boundary(lo) && doc.text.is_char_boundary(hi) {
                    eprintln!("{} | {:?}", if gold.contains(e) { "MISSED" } else { "EXTRA " }, &doc.text[lo..hi]);
                }
            }
        }
        total += gold.len().max(ours.len());
    }
    let score = agree as f64 / total as f64;
    eprintln!("sentence boundary agreement with SciFact gold on 1000 abstracts: {score:.4}");
    assert!(score > 0.98, "boundary agreement {score:.4}");
}

#[test]
fn finds_the_right_passage_with_exact_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let index = build(dir.path());
    let hits = index.search("Who discovered Uranus, and when?", &SearchOptions { k: 3, ..Default::default() }).unwrap();
    assert_eq!(hits[0].passage.doc_id, "uranus.md");
    assert!(hits[0].snippet.contains("<b>"), "{}", hits[0].snippet);
    for hit in &hits {
        let doc = std::fs::read_to_string(sample_corpus().join(&hit.passage.doc_id)).unwrap();
        let chars: Vec<char> = doc.chars().collect();
        let exact: String = chars[hit.passage.start..hit.passage.end].iter().collect();
        assert_eq!(exact, hit.passage.text, "offsets point at the passage text");
    }
    assert_eq!(index.passage(&hits[0].passage.passage_id).unwrap().unwrap(), hits[0].passage);
}

#[test]
fn natural_language_never_breaks_the_query_parser() {
    let dir = tempfile::tempdir().unwrap();
    let index = build(dir.path());
    for q in [
        "What's Titan's atmosphere made of? (nitrogen: yes/no)",
        "\"unbalanced quote",
        "AND OR NOT",
        "?!:()[]{}^~*",
        "",
    ] {
        index.search(q, &SearchOptions::default()).unwrap_or_else(|e| panic!("{q:?}: {e}"));
    }
    let err = index.search("title:(", &SearchOptions { syntax: true, ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("cannot parse query"), "{err}");
    let hits = index.search("title:Titan", &SearchOptions { syntax: true, ..Default::default() }).unwrap();
    assert_eq!(hits[0].passage.doc_id, "titan.md");
}

#[test]
fn reindexing_is_incremental_and_prunes() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = tempfile::tempdir().unwrap();
    for name in ["mars.md", "venus.md", "pluto.md"] {
        std::fs::copy(sample_corpus().join(name), corpus.path().join(name)).unwrap();
    }
    let read = || read_sources(&[corpus.path().to_path_buf()], &JsonlFields::default()).unwrap().documents;
    let mut index = CorpusIndex::open_or_create(dir.path()).unwrap();
    let cfg = PassageConfig::default();
    let first = index.update(&read(), &cfg, true, &|_| ()).unwrap();
    assert_eq!((first.added, first.unchanged), (3, 0));

    let again = index.update(&read(), &cfg, true, &|_| ()).unwrap();
    assert_eq!((again.added, again.updated, again.unchanged, again.passages_written), (0, 0, 3, 0));

    std::fs::write(corpus.path().join("venus.md"), "# Venus\n\nVenus has sulfuric acid clouds.").unwrap();
    std::fs::remove_file(corpus.path().join("pluto.md")).unwrap();
    let changed = index.update(&read(), &cfg, true, &|_| ()).unwrap();
    assert_eq!((changed.updated, changed.unchanged, changed.removed), (1, 1, 1));
    assert_eq!(index.counts().unwrap().0, 2);
    let hits = index.search("sulfuric acid clouds", &SearchOptions::default()).unwrap();
    assert_eq!(hits.len(), 1, "the old Venus passages are gone");
    assert!(index.search("Clyde Tombaugh", &SearchOptions::default()).unwrap().is_empty(), "pruned");

    // Reopening sees the same committed state.
    drop(index);
    let reopened = CorpusIndex::open(dir.path()).unwrap();
    assert_eq!(reopened.counts().unwrap().0, 2);
}

#[test]
fn tied_scores_give_the_same_hits_however_the_corpus_was_indexed() {
    // Twelve documents that score alike for the query: which of them make the top 3
    // must not depend on the order (or the segments) they were indexed in.
    let docs: Vec<Document> = (0..12)
        .map(|i| Document {
            id: format!("doc-{i:02}"),
            title: String::new(),
            text: "The comet returns every seventy-six years.".into(),
            sentences: None,
        })
        .collect();
    let hits_of = |docs: &[Document], batches: usize| {
        let dir = tempfile::tempdir().unwrap();
        let mut index = CorpusIndex::open_or_create(dir.path()).unwrap();
        // One commit per batch: several segments, in a different layout each time.
        for batch in docs.chunks(docs.len().div_ceil(batches)) {
            index.update(batch, &PassageConfig::default(), false, &|_| ()).unwrap();
        }
        let options = SearchOptions { k: 3, ..Default::default() };
        index.search("comet returns", &options).unwrap().into_iter().map(|h| h.passage.passage_id).collect::<Vec<_>>()
    };
    let forward = hits_of(&docs, 1);
    assert_eq!(forward, ["doc-00#0", "doc-01#0", "doc-02#0"], "ties are ordered by passage id");
    let reversed: Vec<Document> = docs.iter().rev().cloned().collect();
    assert_eq!(hits_of(&reversed, 1), forward);
    assert_eq!(hits_of(&reversed, 4), forward);
}

#[test]
fn mmr_and_per_document_caps() {
    let dir = tempfile::tempdir().unwrap();
    let index = build(dir.path());
    let plain =
        index.search("Voyager 2 visited Uranus Neptune", &SearchOptions { k: 5, ..Default::default() }).unwrap();
    let capped = index
        .search("Voyager 2 visited Uranus Neptune", &SearchOptions { k: 5, max_per_doc: Some(1), ..Default::default() })
        .unwrap();
    let docs: std::collections::HashSet<_> = capped.iter().map(|h| h.passage.doc_id.clone()).collect();
    assert_eq!(docs.len(), capped.len(), "one passage per document");
    let mmr = index
        .search("Voyager 2 visited Uranus Neptune", &SearchOptions { k: 5, mmr: Some(0.3), ..Default::default() })
        .unwrap();
    assert_eq!(mmr.len(), 5);
    assert_eq!(mmr[0].passage, plain[0].passage, "MMR keeps the most relevant first");
}

#[test]
fn cli_index_and_search_json() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("idx");
    let out = recheck(&["index", "--index", idx.to_str().unwrap(), sample_corpus().to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stats = json_out(&out);
    assert_eq!(stats["added"], 26);
    assert!(stats["passages_total"].as_u64().unwrap() >= 26);
    let out = recheck(&[
        "search",
        "--index",
        idx.to_str().unwrap(),
        "largest moon in the Solar System?",
        "-k",
        "3",
        "--json",
    ]);
    let res = json_out(&out);
    let results = res["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for key in ["doc_id", "passage_id", "score", "start", "end", "text", "snippet"] {
        assert!(results[0].get(key).is_some(), "missing {key}");
    }
    assert_eq!(results[0]["doc_id"], "galilean-moons.md");
    assert!(results[0]["passage_id"].as_str().unwrap().starts_with("galilean-moons.md#"));
    let out = recheck(&["search", "--index", dir.path().join("none").to_str().unwrap(), "x"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no index in") && err.contains("hint: build one with `recheck index"), "{err}");
    // Regression: a huge -k overflowed a capacity (panic) or aborted; it is clamped.
    for k in ["18446744073709551615", "5000000000"] {
        let out =
            recheck(&["search", "--index", idx.to_str().unwrap(), "moon", "-k", k, "--max-per-doc", "1", "--json"]);
        assert!(json_out(&out)["results"].as_array().unwrap().len() <= 26, "-k {k}");
    }
    let out = recheck(&["search", "--index", idx.to_str().unwrap(), "moon", "--max-per-doc", "0"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_input_is_reported_by_file_and_line_and_the_rest_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("idx");
    let good = dir.path().join("good.jsonl");
    std::fs::write(&good, "{\"id\": \"g1\", \"text\": \"Mercury has no moons.\"}\n").unwrap();
    let out = recheck(&["index", "--index", idx.to_str().unwrap(), good.to_str().unwrap()]);
    assert!(out.status.success());

    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        concat!(
            "{\"id\": \"a\", \"text\": \"Jupiter is large.\"}\n",
            "{not json\n",
            "{\"text\": \"no id\"}\n",
            "{\"id\": \"b\"}\n",
            "{\"id\": \"a\", \"text\": \"duplicate\"}\n",
            "{\"id\": 7, \"text\": [\"Saturn has rings.\", \"It is a gas giant.\"]}\n",
        ),
    )
    .unwrap();
    let latin1 = dir.path().join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9 au lait").unwrap();
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();

    let args = [
        "index",
        "--index",
        idx.to_str().unwrap(),
        bad.to_str().unwrap(),
        latin1.to_str().unwrap(),
        empty.to_str().unwrap(),
        "--json",
    ];
    let out = recheck(&args);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "bad.jsonl:2: malformed JSON",
        "bad.jsonl:3: missing id field \"id\"",
        "bad.jsonl:4: missing text field \"text\"",
        "bad.jsonl:5: duplicate id \"a\"",
        "latin1.txt: not UTF-8",
        "empty.jsonl: empty file",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }
    let stats = json_out(&out);
    assert_eq!(stats["added"], 2, "a and 7 are indexed");
    assert_eq!(stats["bad"].as_array().unwrap().len(), 6);
    assert_eq!(stats["documents_total"], 3, "the earlier document is intact");

    let with_skip: Vec<&str> = args.iter().copied().chain(["--skip-bad"]).collect();
    let out = recheck(&with_skip);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json_out(&out)["unchanged"], 2);
}

#[test]
fn killed_indexing_leaves_a_working_index() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("idx");
    let out = recheck(&["index", "--index", idx.to_str().unwrap(), sample_corpus().to_str().unwrap()]);
    assert!(out.status.success());

    // A large generated corpus, so the kill lands while indexing is under way.
    let big = dir.path().join("big.jsonl");
    let mut text = String::new();
    for i in 0..150_000 {
        text.push_str(&format!("{{\"id\": \"gen{i}\", \"text\": \"Generated document {i} about orbit {} and comet {}. It has a second sentence.\"}}\n", i % 97, i % 31));
    }
    std::fs::write(&big, text).unwrap();
    let home = support::temp_home();
    let mut child = Command::new(env!("CARGO_BIN_EXE_recheck"))
        .args(["index", "--index", idx.to_str().unwrap(), big.to_str().unwrap()])
        .env("RECHECK_HOME", home.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    child.kill().unwrap();
    child.wait().unwrap();

    let index = CorpusIndex::open(&idx).unwrap();
    let (docs, _) = index.counts().unwrap();
    assert!(docs == 26 || docs == 150_026, "either the old or the new commit, got {docs} documents");
    let hits = index.search("Who discovered Uranus?", &SearchOptions::default()).unwrap();
    assert_eq!(hits[0].passage.doc_id, "uranus.md");
    // And the index accepts writes again (no stale lock).
    let mut index = index;
    let docs = read_sources(&[sample_corpus()], &JsonlFields::default()).unwrap().documents;
    index.update(&docs, &PassageConfig::default(), false, &|_| ()).unwrap();
}
