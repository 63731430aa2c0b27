//! Verifying any answer, on scripted servers: atomic claims with spans, the decomposer's
//! fallback, the judge over retrieved passages (votes) and the verdict rules.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::{process::Command, sync::Arc, time::Duration};

use recheck::{
    agents::{Decomposition, JudgeKind, Verdict},
    corpus::{CorpusError, Hit, Passage, Retriever, SearchOptions},
    llm::{ChatModel, OpenAiBackend, OpenAiOptions, RetryConfig},
    orchestrator::{ask, AskOptions, AskOutcome, ConsistencyKind, JudgeChoice, Strategy, Verification},
    trace::{StepRecord, TraceStore},
};
use serde_json::json;
use support::{events, MockServer, Reply};

const MOON: &str = "2 + 2 = 4. The Moon is made of cheese.";

/// The decomposer's reply for MOON.
fn moon_claims() -> Reply {
    Reply::chat(
        &json!({"claims": [
            {"claim": "2 + 2 = 4", "source": "2 + 2 = 4."},
            {"claim": "The Moon is made of cheese.", "source": "The Moon is made of cheese."}
        ]})
        .to_string(),
    )
}

/// One passage of our own about the Moon, whatever the query.
struct MoonFacts;

impl Retriever for MoonFacts {
    fn search(&self, _query: &str, _options: &SearchOptions) -> Result<Vec<Hit>, CorpusError> {
        let text = "The Moon is made of rock: a crust, a mantle and a small iron core.".to_string();
        let passage = Passage {
            doc_id: "moon.md".into(),
            passage_id: "moon.md#0".into(),
            title: "The Moon".into(),
            end: text.chars().count(),
            text,
            start: 0,
        };
        Ok(vec![Hit { score: 1.0, passage, snippet: String::new() }])
    }
}

async fn run(script: Vec<Reply>, options: AskOptions) -> (AskOutcome, Vec<StepRecord>, MockServer) {
    let server = MockServer::start(script);
    let mut backend = OpenAiOptions::new(&server.url);
    backend.retry = RetryConfig { max_retries: 0, timeout: Duration::from_secs(5), ..Default::default() };
    let model: Arc<dyn ChatModel> = Arc::new(OpenAiBackend::new("scripted", backend).unwrap());
    let store = TraceStore::temporary().unwrap();
    let outcome = ask(&store, model, "Tell me two facts.", &options).await.unwrap();
    let steps = store.steps(outcome.trace_id).unwrap();
    // Runs replay from their record (this test retriever has no place to reopen).
    if options.retriever.is_none() {
        let replay = recheck::orchestrator::replay(&store, outcome.trace_id, &options.agents).await.unwrap();
        assert!(replay.identical, "{:?}", replay.differences);
    }
    (outcome, steps, server)
}

fn atomic(outcome: &AskOutcome) -> Vec<(&str, Verdict)> {
    outcome.claims.iter().filter(|c| c.kind.is_none()).map(|c| (c.text.as_str(), c.verdict)).collect()
}

#[tokio::test]
async fn an_unchecked_claim_keeps_an_answer_from_being_verified() {
    let (out, steps, _) = run(vec![Reply::chat(MOON), moon_claims()], AskOptions::builtin().unwrap()).await;
    assert_eq!(out.verified, Verification::Unknown);
    assert_eq!(atomic(&out), [("2 + 2 = 4", Verdict::Supported), ("The Moon is made of cheese.", Verdict::Unchecked)]);
    let arithmetic = out.claims.iter().find(|c| c.text == "2 + 2 = 4" && c.kind.is_none()).unwrap();
    assert_eq!(arithmetic.judge, Some(JudgeKind::Tool), "the exact tool settles it");
    assert_eq!((out.support.supported, out.support.unchecked), (2, 1), "the tool's claim and the atomic one");
    assert_eq!(out.decomposition, Some(Decomposition::Decomposed));
    // Each atomic claim points at the answer text it comes from.
    let chars: Vec<char> = MOON.chars().collect();
    let moon = out.claims.iter().find(|c| c.text.starts_with("The Moon")).unwrap();
    assert_eq!(chars[moon.start..moon.end].iter().collect::<String>(), "The Moon is made of cheese.");
    assert_eq!(events(&steps, "decomposition").len(), 1);
}

#[tokio::test]
async fn the_judge_refutes_a_claim_its_passages_contradict() {
    // Solver, decomposer, then three sampled votes on the Moon claim (2 + 2 = 4 is the tool's).
    let script =
        vec![Reply::chat(MOON), moon_claims(), Reply::chat("false"), Reply::chat("False."), Reply::chat("true")];
    let options = AskOptions::builtin().unwrap().retriever(Arc::new(MoonFacts), 0);
    let (out, steps, server) = run(script, options).await;
    assert_eq!(out.verified, Verification::Refuted);
    let moon = out.claims.iter().find(|c| c.text.starts_with("The Moon")).unwrap();
    assert_eq!((moon.verdict, moon.judge), (Verdict::Contradicted, Some(JudgeKind::ModelVotes)));
    assert!((moon.score.unwrap() - 2.0 / 3.0).abs() < 1e-9);
    assert!(!moon.evidence.is_empty(), "the passages it was judged on are its evidence");
    let judged = events(&steps, "judgement");
    assert_eq!(judged.len(), 1);
    assert_eq!(judged[0]["judgement"]["label"], "contradicted");
    let requests = server.requests.lock().unwrap();
    let prompt = requests[2]["messages"][0]["content"].as_str().unwrap();
    assert!(prompt.contains("made of rock") && prompt.contains("Claim: The Moon is made of cheese."), "{prompt}");
    // The first call asks for top log-probabilities (greedy); with none in the reply,
    // its text is the first vote and the rest are samples.
    assert_eq!(requests[2]["top_logprobs"], 5);
    assert!(requests[3]["temperature"].as_f64().unwrap() > 0.0, "further votes are samples");
}

#[tokio::test]
async fn the_lexical_judge_is_a_baseline_that_cannot_refute() {
    let script = vec![Reply::chat(MOON), moon_claims()];
    let options = AskOptions::builtin().unwrap().retriever(Arc::new(MoonFacts), 0).judge(JudgeChoice::Lexical);
    let (out, _, server) = run(script, options).await;
    let moon = out.claims.iter().find(|c| c.text.starts_with("The Moon")).unwrap();
    // "moon" and "made" are in the passage, "cheese" is not: 2 of 3 content words.
    assert_eq!((moon.verdict, moon.judge), (Verdict::Supported, Some(JudgeKind::Lexical)));
    assert_eq!(out.verified, Verification::Verified, "which is why it is only a baseline");
    assert_eq!(server.requests.lock().unwrap().len(), 2, "no judge calls");
}

#[tokio::test]
async fn a_decomposer_that_never_validates_falls_back_to_sentences() {
    let script = vec![Reply::chat(MOON), Reply::chat("Sure! The claims are the sentences.")];
    let (out, steps, server) = run(script, AskOptions::builtin().unwrap().strategy(Strategy::Single)).await;
    assert_eq!(out.decomposition, Some(Decomposition::Sentences));
    assert_eq!(atomic(&out), [("2 + 2 = 4.", Verdict::Supported), ("The Moon is made of cheese.", Verdict::Unchecked)]);
    assert_eq!(events(&steps, "validation_failure").len(), 2, "one ask and one re-ask (max_reasks = 1)");
    assert_eq!(events(&steps, "decomposition_fallback").len(), 1);
    let reask = server.requests.lock().unwrap()[2]["messages"][2]["content"].as_str().unwrap().to_string();
    assert!(reask.contains("not valid") && reask.contains("claims"), "{reask}");
}

#[tokio::test]
async fn with_a_corpus_the_critic_sees_contradicted_claims_with_their_evidence() {
    let rock = "2 + 2 = 4. The Moon is made of rock.";
    let rock_claims = json!({"claims": [
        {"claim": "2 + 2 = 4", "source": "2 + 2 = 4."},
        {"claim": "The Moon is made of rock.", "source": "The Moon is made of rock."}
    ]});
    let script = vec![
        Reply::chat(MOON),
        moon_claims(),
        Reply::chat("false"),
        Reply::chat("false"),
        Reply::chat("false"),
        Reply::chat(&json!({"verdict": "incorrect", "earliest_wrong_step": 1, "problems": ["the Moon is rock"], "confidence": 0.9}).to_string()),
        Reply::chat(rock),
        Reply::chat(&rock_claims.to_string()),
        Reply::chat("true"),
    ];
    let options = AskOptions::builtin().unwrap().strategy(Strategy::Critic).rounds(1).retriever(Arc::new(MoonFacts), 0);
    let (out, _, server) = run(script, options).await;
    let requests = server.requests.lock().unwrap();
    let critic = requests[5]["messages"][0]["content"].as_str().unwrap();
    assert!(
        critic.contains("\"The Moon is made of cheese.\": contradicted (evidence, quoted material: <data>The Moon: The Moon is made of rock"),
        "{critic}"
    );
    let revise = requests[6]["messages"][0]["content"].as_str().unwrap();
    assert!(revise.contains("contradicted by the evidence"), "{revise}");
    let round = &out.rounds[0];
    assert!(round.claims.iter().any(|c| c.text.starts_with("The Moon") && c.verdict == Verdict::Contradicted));
    assert_eq!(out.answer, rock);
    assert_eq!(out.verified, Verification::Verified, "{:?}", out.claims);
}

#[tokio::test]
async fn samples_that_do_not_back_a_claim_make_it_unsupported_and_inconsistent() {
    // Solver, decomposer, two samples, then the judge: one vote per (claim, sample).
    let mut agents = recheck::agents::AgentSet::builtin().unwrap();
    agents.judge.votes = Some(1);
    let script = vec![
        Reply::chat(MOON),
        moon_claims(),
        Reply::chat("The Moon is rock."),
        Reply::chat("The Moon is made of rock and dust."),
        Reply::chat("false"),
        Reply::chat("unknown"),
    ];
    let options = AskOptions::new(Arc::new(agents)).samples(2);
    let (out, steps, server) = run(script, options).await;
    let moon = out.claims.iter().find(|c| c.text.starts_with("The Moon")).unwrap();
    assert_eq!(moon.verdict, Verdict::Unsupported);
    let consistency = moon.consistency.unwrap();
    assert_eq!((consistency.kind, consistency.score, consistency.samples), (ConsistencyKind::Inconsistent, 0.0, 2));
    let json = serde_json::to_value(&out).unwrap();
    let moon_json =
        json["claims"].as_array().unwrap().iter().find(|c| c["text"] == "The Moon is made of cheese.").unwrap();
    assert_eq!(moon_json["consistency"]["kind"], "inconsistent");
    let requests = server.requests.lock().unwrap();
    assert!(requests[2]["temperature"].as_f64().unwrap() > 0.5, "samples are drawn hot");
    let judged = requests[4]["messages"][0]["content"].as_str().unwrap();
    assert!(judged.contains("The Moon is rock.") && judged.contains("Claim: The Moon is made of cheese."), "{judged}");
    assert_eq!(events(&steps, "consistency").len(), 1, "only the claim no tool settled");
}

#[tokio::test]
async fn two_claims_that_contradict_each_other_are_both_contradicted() {
    let answer = "The Moon has no atmosphere. The Moon has a thick atmosphere.";
    let claims = json!({"claims": [
        {"claim": "The Moon has no atmosphere.", "source": "The Moon has no atmosphere."},
        {"claim": "The Moon has a thick atmosphere.", "source": "The Moon has a thick atmosphere."}
    ]});
    let mut agents = recheck::agents::AgentSet::builtin().unwrap();
    agents.judge.votes = Some(1);
    let script = vec![Reply::chat(answer), Reply::chat(&claims.to_string()), Reply::chat("false")];
    let options = AskOptions::new(Arc::new(agents)).contradictions(true);
    let (out, steps, _) = run(script, options).await;
    assert_eq!(out.verified, Verification::Refuted);
    let chars: Vec<char> = answer.chars().collect();
    for c in out.claims.iter().filter(|c| c.kind.is_none()) {
        assert_eq!(c.verdict, Verdict::Contradicted);
        let other = c.contradicts.as_ref().unwrap();
        assert_ne!(other.text, c.text);
        assert_eq!(chars[other.start..other.end].iter().collect::<String>(), other.text);
    }
    assert_eq!(events(&steps, "self_contradiction").len(), 1);
}

#[tokio::test]
async fn contextcite_on_a_server_runs_leave_one_out_and_says_so_with_alce_scores() {
    let mut agents = recheck::agents::AgentSet::builtin().unwrap();
    agents.judge.votes = Some(1);
    agents.attributor.scorer = Some("contextcite".into());
    let rock = "The Moon is made of rock.";
    let claims = json!({"claims": [{"claim": rock, "source": rock}]});
    // Solver, decomposer, then "true" for every judgement.
    let script = vec![Reply::chat(rock), Reply::chat(&claims.to_string()), Reply::chat("true")];
    let options = AskOptions::new(Arc::new(agents)).retriever(Arc::new(MoonFacts), 0);
    let (out, steps, _) = run(script, options).await;
    let attribution = out.attribution.as_ref().unwrap();
    assert_eq!((attribution.requested.as_str(), attribution.scorer.as_str()), ("contextcite", "leave_one_out"));
    assert_eq!(attribution.model_calls, 1, "one judgement with the passage; none without any");
    assert_eq!(events(&steps, "scorer_fallback").len(), 1);
    assert_eq!(out.sources.len(), 1, "the passage the support rests on is cited");
    assert_eq!(out.cited_answer, "The Moon is made of rock. [1]");
    let q = out.citation_quality.unwrap();
    assert_eq!((q.recall, q.precision, q.sentences, q.citations), (Some(1.0), Some(1.0), 1, 1));
    assert_eq!(out.verified, Verification::Verified);
}

#[tokio::test]
async fn a_server_with_top_logprobs_is_judged_from_them_in_one_call() {
    let logprobs = json!({"content": [{"token": "false", "logprob": -0.3, "top_logprobs": [
        {"token": "false", "logprob": -0.3}, {"token": " true", "logprob": -1.6}, {"token": "F", "logprob": -2.0},
        {"token": "unknown", "logprob": -2.5}
    ]}]});
    let judged = Reply::Json(json!({
        "id": "j", "object": "chat.completion", "created": 1, "model": "scripted",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "false"}, "finish_reason": "stop", "logprobs": logprobs}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 1, "total_tokens": 12}
    }));
    let options = AskOptions::builtin().unwrap().retriever(Arc::new(MoonFacts), 0);
    let (out, _, server) = run(vec![Reply::chat(MOON), moon_claims(), judged], options).await;
    let moon = out.claims.iter().find(|c| c.text.starts_with("The Moon")).unwrap();
    assert_eq!((moon.verdict, moon.judge), (Verdict::Contradicted, Some(JudgeKind::ModelLogprobs)));
    let (f, t, u) = ((-0.3f64).exp(), (-1.6f64).exp(), (-2.5f64).exp());
    assert!((moon.score.unwrap() - f / (f + t + u)).abs() < 1e-9, "{:?}", moon.score);
    let requests = server.requests.lock().unwrap();
    let judge_calls: Vec<_> = requests.iter().filter(|r| r.get("top_logprobs").is_some()).collect();
    let alce = out.citation_quality.unwrap().judgements;
    assert_eq!(judge_calls.len(), 1 + alce, "one call per judgement: the claim's, then ALCE's");
    assert_eq!((judge_calls[0]["logprobs"].clone(), judge_calls[0]["temperature"].as_f64()), (json!(true), Some(0.0)));
}

#[test]
fn ask_json_on_a_server_that_says_the_moon_is_cheese_is_not_verified() {
    let server = MockServer::start(vec![Reply::chat(MOON), moon_claims()]);
    let home = support::temp_home();
    let out = Command::new(env!("CARGO_BIN_EXE_recheck"))
        .args(["ask", "Tell me two facts.", "--model", "openai:scripted", "--base-url", &server.url, "--json"])
        .env("RECHECK_HOME", home.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(v["verified"], true);
    assert_eq!(v["verified"], "unknown");
    assert_eq!(v["support"], json!({"supported": 2, "contradicted": 0, "unsupported": 0, "unchecked": 1}));
}
