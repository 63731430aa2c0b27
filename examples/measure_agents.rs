//! Measures the agents on real data with the embedded model (offline):
//! - snowball primality and graph connectivity (first N items each): the model's raw
//!   accuracy, the share of its wrong answers the tool-checker flags, and the final
//!   accuracy after the `critic` strategy (one round);
//! - SciFact: citation recall (ALCE-style, lexical support standing in for NLI) of
//!   answers to N claims cited from a SciFact index, and citation precision measured
//!   against the claims' gold evidence documents.
//!
//! Run: `cargo run --release --example measure_agents -- [N]` (default 50). Needs the
//! data under ../shared/evals (or RECHECK_DATA_ROOT) and the default model (fetched
//! into RECHECK_HOME like `recheck model fetch`). Writes target/bench/agents.json.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{path::PathBuf, sync::Arc};

use recheck::{
    agents::{attribute, citation_quality, AgentSet, ClaimKind, Verdict},
    corpus::{read_sources, CorpusIndex, JsonlFields, PassageConfig, Retriever},
    datasets::scifact,
    home::Home,
    llm::{local::cache, local::LocalBackend, ChatModel},
    orchestrator::{ask, AskOptions, AskOutcome, ClaimReport, LoopOptions, Strategy},
    trace::TraceStore,
};
use serde_json::json;

/// The verdict on the answer's own stance toward the question, if it takes one.
fn stance(claims: &[ClaimReport], question_kind: fn(&ClaimKind) -> bool) -> Option<Verdict> {
    claims.iter().find(|c| c.kind.as_ref().is_some_and(question_kind)).map(|c| c.verdict)
}

fn is_answer_stance(k: &ClaimKind) -> bool {
    matches!(k, ClaimKind::Primality { .. } | ClaimKind::Reachability { .. })
}

#[derive(Default)]
struct Tally {
    n: usize,
    raw_correct: usize,
    raw_wrong: usize,
    wrong_flagged: usize,
    final_correct: usize,
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(50);
    let root = std::env::var_os("RECHECK_DATA_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/evals"));
    let home = Home::resolve(std::env::var_os("RECHECK_HOME").map(Into::into)).unwrap();
    home.ensure().unwrap();
    let path = cache::ensure_default_model(&home.models_dir(), false, &|l| eprintln!("{l}")).unwrap();
    let model: Arc<dyn ChatModel> = LocalBackend::shared(&path, "local").unwrap();
    let store = TraceStore::temporary().unwrap();
    let mut agents = AgentSet::builtin().unwrap();
    agents.solver.max_tokens = Some(100);
    agents.critic.max_tokens = Some(100);
    // One critique per round: the 135M model rarely writes valid JSON, and re-asks
    // triple the time without changing what the tools find.
    agents.critic.max_reasks = Some(0);
    let agents = Arc::new(agents);
    let options = |strategy| AskOptions {
        loop_options: LoopOptions { strategy, rounds: 1, ..Default::default() },
        context_passages: 0,
        // The loop alone: no decomposer call after it.
        verify: recheck::orchestrator::VerifyOptions { decompose: false, ..Default::default() },
        ..AskOptions::new(agents.clone())
    };

    let mut report = serde_json::Map::new();
    for (file, name) in [("primality_testing.json", "primality"), ("graph_connectivity.json", "graph")] {
        let data: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(root.join("snowball_hallucination").join(file)).unwrap())
                .unwrap();
        let mut t = Tally::default();
        for item in data.as_array().unwrap().iter().take(n) {
            let question = item.get("question").and_then(|q| q.as_str()).or(item.as_str()).unwrap();
            let out: AskOutcome = ask(&store, model.clone(), question, &options(Strategy::Critic)).await.unwrap();
            // The draft reviewed in round 1 is the raw answer; its tool findings are the flags.
            let raw_claims: Vec<ClaimReport> = match out.rounds.first() {
                Some(r) => r
                    .tool_calls
                    .iter()
                    .map(|c| ClaimReport {
                        kind: Some(c.claim.kind.clone()),
                        ..ClaimReport::new(c.claim.text.clone(), c.claim.start, c.claim.end, c.verdict)
                    })
                    .collect(),
                None => out.claims.clone(),
            };
            let raw = stance(&raw_claims, is_answer_stance);
            let flagged = raw_claims.iter().any(|c| c.verdict == Verdict::Contradicted);
            t.n += 1;
            if raw == Some(Verdict::Supported) {
                t.raw_correct += 1;
            } else {
                t.raw_wrong += 1;
                t.wrong_flagged += usize::from(flagged);
            }
            t.final_correct += usize::from(stance(&out.claims, is_answer_stance) == Some(Verdict::Supported));
            eprintln!(
                "{name} {}: raw {raw:?}, flagged {flagged}, final {:?}",
                t.n,
                stance(&out.claims, is_answer_stance)
            );
        }
        report.insert(
            name.into(),
            json!({
                "items": t.n,
                "raw_accuracy": t.raw_correct as f64 / t.n as f64,
                "raw_wrong_or_no_answer": t.raw_wrong,
                "wrong_flagged_by_tool_checker": t.wrong_flagged,
                "share_of_wrong_flagged": if t.raw_wrong == 0 { 0.0 } else { t.wrong_flagged as f64 / t.raw_wrong as f64 },
                "final_accuracy_after_critic": t.final_correct as f64 / t.n as f64,
            }),
        );
    }

    // Citations on SciFact claims: the model answers from 3 retrieved passages; the
    // attributor cites each answer sentence.
    let dir = root.join("scifact");
    let fields = JsonlFields { id: "doc_id".into(), title: "title".into(), text: "abstract".into() };
    let docs = read_sources(&[dir.join("corpus.jsonl")], &fields).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut index = CorpusIndex::open_or_create(tmp.path()).unwrap();
    index.update(&docs.documents, &PassageConfig::default(), false, &|_| ()).unwrap();
    let retriever: Arc<dyn Retriever> = Arc::new(index);
    let claims = scifact::load_claims(&dir.join("claims_train.jsonl")).unwrap();
    let (mut recall, mut count) = (0.0, 0);
    let (mut cites, mut gold_cites) = (0usize, 0usize);
    for claim in claims.iter().filter(|c| !c.rationales.is_empty()).take(n) {
        let mut opts = options(Strategy::Single);
        opts.retriever = Some(retriever.clone());
        opts.context_passages = 3;
        let question = format!("Is this claim true? {}", claim.text);
        let out = ask(&store, model.clone(), &question, &opts).await.unwrap();
        let cited = attribute(&out.answer, retriever.as_ref(), 5, 0.5).unwrap();
        let (r, _) = citation_quality(&cited, 0.5);
        recall += r;
        count += 1;
        for (p, _) in cited.iter().flat_map(|s| s.citations.iter()) {
            cites += 1;
            gold_cites += usize::from(claim.rationales.iter().any(|(d, _, _)| *d == p.doc_id));
        }
        eprintln!("scifact {count}: recall {r:.2}, {cites} citations so far, {gold_cites} to gold documents");
    }
    report.insert(
        "scifact_citations".into(),
        json!({"claims": count,
               "citation_recall_lexical": recall / count as f64,
               "citations": cites,
               "citation_precision_gold_docs": if cites == 0 { 0.0 } else { gold_cites as f64 / cites as f64 },
               "note": "recall: share of answer sentences whose citation supports them (lexical support >= 0.5); precision: share of citations to the claim's gold evidence documents"}),
    );
    let report = serde_json::Value::Object(report);
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("agents.json"), report.to_string()).unwrap();
}
