//! Judge calibration: contextual (measured on content-free inputs in the run) and
//! fitted (`recheck calibrate`), recorded so replay applies the same; refused for a
//! judge that only samples votes.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use async_trait::async_trait;
use recheck::{
    agents::{Calibration, Label, Verdict},
    llm::{Capabilities, ChatModel, ChatRequest, Completion, ContinuationScore, LlmError, Message, ModelInfo},
    orchestrator::{ClaimUnit, Context, GivenAnswer},
    trace::{StepPayload, TraceStore},
    AskOptions,
};
use serde_json::json;

use super::{recheck, rows, support};

/// Scores the judge's label words: on a content-free claim ("N/A", "", "[MASK]") with
/// a strong prior for `true`; on a real claim, `true` still first but by less, so
/// dividing the prior out turns the judgement to `false`.
struct PriorModel {
    scored: AtomicUsize,
}

const CONTENT_FREE: [f64; 3] = [-0.2, -3.0, -2.0];
const REAL: [f64; 3] = [-0.5, -1.2, -2.2];

#[async_trait]
impl ChatModel for PriorModel {
    fn info(&self) -> ModelInfo {
        ModelInfo::new("planted:prior", "test")
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities { score_continuation: true, ..Default::default() }
    }
    async fn chat(&self, _: &ChatRequest) -> Result<Completion, LlmError> {
        Err(LlmError::Replay("only the judge's scoring is planted".into()))
    }
    async fn score_continuation(&self, messages: &[Message], word: &str) -> Result<ContinuationScore, LlmError> {
        self.scored.fetch_add(1, Ordering::SeqCst);
        let prompt = &messages[0].content;
        let free = ["Claim: N/A\n", "Claim: \n", "Claim: [MASK]\n"].iter().any(|c| prompt.contains(c));
        let table = if free { CONTENT_FREE } else { REAL };
        let i = Label::ALL.iter().position(|l| l.word() == word).unwrap();
        Ok(ContinuationScore { total_logprob: table[i], tokens: vec![] })
    }
}

fn given() -> GivenAnswer {
    GivenAnswer {
        id: Some("c1".into()),
        answer: "Aspirin cures the common cold.".into(),
        contexts: vec![Context { id: None, text: "Aspirin relieves pain; it does not cure the common cold.".into() }],
        ..Default::default()
    }
}

#[tokio::test]
async fn contextual_calibration_is_measured_once_recorded_and_replayed() {
    let store = TraceStore::temporary().unwrap();
    let mut raw = AskOptions::builtin().unwrap();
    raw.verify.claims = ClaimUnit::Whole;
    raw.verify.citation_quality = false;
    let model = Arc::new(PriorModel { scored: AtomicUsize::new(0) });
    let before = recheck::verify(&store, model.clone(), &given(), &raw).await.unwrap();
    let claim = &before.outcome.claims[0];
    assert_eq!(claim.verdict, Verdict::Supported, "raw, the prior decides");
    assert_eq!(claim.label_logprobs, Some(REAL.map(Some)), "the raw log-probabilities are reported");
    assert_eq!(model.scored.swap(0, Ordering::SeqCst), 3);

    let calibrated = raw.clone().calibration(Calibration::Contextual);
    let after = recheck::verify(&store, model.clone(), &given(), &calibrated).await.unwrap();
    let claim = &after.outcome.claims[0];
    assert_eq!(claim.verdict, Verdict::Contradicted, "{claim:?}");
    assert_eq!(claim.label_logprobs, Some(REAL.map(Some)), "raw, before calibration");
    // Three content-free inputs of three labels, then the claim's three.
    assert_eq!(model.scored.load(Ordering::SeqCst), 12);
    let run = after.outcome.trace_id;
    let steps = store.steps(run).unwrap();
    let measured = support::events(&steps, "calibration");
    assert_eq!(measured.len(), 1, "measured once a run");
    let offsets = measured[0]["offsets"].as_array().unwrap();
    assert!(offsets[1].as_f64().unwrap() > offsets[0].as_f64().unwrap(), "{measured:?}");
    let scorings = steps.iter().filter(|s| matches!(s.payload, StepPayload::Scoring { .. })).count();
    assert_eq!(scorings, 12, "every scoring call is a step");
    let config = store.run(run).unwrap().unwrap().config;
    assert_eq!(config["verify"]["calibration"], json!({ "kind": "contextual" }), "{config}");

    // Replay applies the recorded calibration to the recorded scores: identical.
    let agents = recheck::agents::AgentSet::builtin().unwrap();
    let replay = recheck::orchestrator::replay(&store, run, &agents).await.unwrap();
    assert!(replay.identical, "{:?}", replay.differences);
    // A fork without the calibration flips the verdict back.
    let change = "calibration=none".parse().unwrap();
    let models = recheck::orchestrator::ForkModels::live(model.clone());
    let fork = recheck::orchestrator::fork(&store, run, 0, &change, &models, &agents).await.unwrap();
    assert_eq!(fork.outcome.claims[0].verdict, Verdict::Supported);
}

/// A chat completion whose first token's top alternatives give these label
/// log-probabilities (true, false, unknown), as an OpenAI server returns them.
fn scored(logprobs: [f64; 3]) -> support::Reply {
    let top: Vec<_> = Label::ALL
        .iter()
        .zip(logprobs)
        .map(|(l, lp)| json!({ "token": l.word(), "logprob": lp, "bytes": null }))
        .collect();
    support::Reply::Json(json!({
        "id": "c", "object": "chat.completion", "created": 1, "model": "scripted",
        "choices": [{ "index": 0, "finish_reason": "stop",
            "message": { "role": "assistant", "content": "true" },
            "logprobs": { "content": [{ "token": "true", "logprob": logprobs[0], "bytes": null, "top_logprobs": top }] } }],
        "usage": { "prompt_tokens": 20, "completion_tokens": 1, "total_tokens": 21 }
    }))
}

#[test]
fn calibrate_fits_offsets_that_verify_then_applies_and_a_votes_only_judge_is_refused() {
    let home = support::temp_home();
    let dir = tempfile::tempdir().unwrap();
    // Gold true, false, true, false: the server leans `true` on all, less on the false ones.
    let (leans_true, leans_less) = ([-0.1, -3.0, -4.0], [-0.5, -1.2, -4.0]);
    let labelled = dir.path().join("labelled.jsonl");
    let mut lines = String::new();
    for (i, label) in ["SUPPORT", "CONTRADICT", "SUPPORT", "CONTRADICT"].iter().enumerate() {
        let record = json!({ "id": i, "answer": format!("Claim {i}."), "contexts": [format!("Evidence on claim {i}.")], "label": label });
        lines.push_str(&format!("{record}\n"));
    }
    lines.push_str("{\"id\": 9, \"answer\": \"No label.\"}\n");
    std::fs::write(&labelled, lines).unwrap();
    let script = [leans_true, leans_less, leans_true, leans_less].map(scored).to_vec();
    let server = support::MockServer::start(script);
    let out_file = dir.path().join("cal.json");
    let base = ["--base-url", server.url.as_str(), "--retries", "0", "--concurrency", "1"];
    let mut args = vec!["calibrate", labelled.to_str().unwrap(), "--out", out_file.to_str().unwrap(), "-m", "openai:m"];
    args.extend(base);
    let out = recheck(home.path(), &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(file["fit"]["records"], 4, "the unlabelled record is left out: {file}");
    assert_eq!(file["fit"]["balanced_accuracy_raw"], 0.5, "{file}");
    assert_eq!(file["fit"]["balanced_accuracy_fitted"], 1.0, "{file}");
    assert_eq!(file["judge_model"], "openai:m");
    assert_eq!(server.hits(), 4, "one judge call a labelled record, none for the unlabelled one");

    // verify with the file: a claim the server leans `true` on, by less, is now false.
    let server = support::MockServer::start(vec![scored(leans_less)]);
    let cal = format!("--calibration={}", out_file.display());
    let context = dir.path().join("passage.txt");
    std::fs::write(&context, "Passage 5 says Claim 5.").unwrap();
    let base = ["--base-url", server.url.as_str(), "--retries", "0", "--context", context.to_str().unwrap()];
    let mut args = vec!["verify", "--answer", "Claim 5.", "--claims", "whole", "-m", "openai:m", "--json", &cal];
    args.extend(base);
    let out = recheck(home.path(), &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let row = &rows(&out.stdout)[0];
    assert_eq!(row["claims"][0]["verdict"], "contradicted", "{row}");

    // A judge that only samples votes has nothing to calibrate: exit 2 before any run.
    let out =
        recheck(home.path(), &["verify", "--answer", "Claim.", "-m", "sim:seed=1", "--calibration", "contextual"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no log-probabilities"));
    // judge.toml's calibration is read the same way (and `--calibration none` overrides it).
    let agents = tempfile::tempdir().unwrap();
    let judge =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("agents/judge.toml")).unwrap();
    std::fs::write(agents.path().join("judge.toml"), format!("{judge}\ncalibration = \"contextual\"\n")).unwrap();
    let dir_flag = format!("--agents-dir={}", agents.path().display());
    let out = recheck(home.path(), &["verify", "--answer", "Claim.", "-m", "sim:seed=1", &dir_flag]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let out =
        recheck(home.path(), &["verify", "--answer", "Claim.", "-m", "sim:seed=1", &dir_flag, "--calibration", "none"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A file that is not a calibration is named.
    let not_one = labelled.to_str().unwrap();
    let out = recheck(home.path(), &["verify", "--answer", "C.", "-m", "sim:seed=1", "--calibration", not_one]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}
