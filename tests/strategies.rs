//! Every strategy driven by scripted replies: the sequence of agent calls, tool
//! routing, the critic's schema re-ask path, and the final outcome.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::{sync::Arc, time::Duration};

use recheck::{
    agents::{AgentSet, Verdict},
    llm::{BudgetLimit, ChatModel, OpenAiBackend, OpenAiOptions, RetryConfig},
    orchestrator::{
        ask, AskChange, AskOptions, AskOutcome, ForkModels, LoopOptions, StopReason, Strategy, Verification,
    },
    trace::{StepPayload, StepRecord, TraceStore},
};
use serde_json::json;
use support::{events, MockServer, Reply};

const Q: &str = "Is 7411 a prime number?";

fn critique(verdict: &str, step: i64, problems: &[&str]) -> Reply {
    critique_with(verdict, step, problems, 0.9)
}

fn critique_with(verdict: &str, step: i64, problems: &[&str], confidence: f64) -> Reply {
    let critique =
        json!({"verdict": verdict, "earliest_wrong_step": step, "problems": problems, "confidence": confidence});
    Reply::chat(&critique.to_string())
}

async fn run(
    script: Vec<Reply>,
    strategy: Strategy,
    tweak: impl FnOnce(&mut LoopOptions),
) -> (AskOutcome, Vec<StepRecord>, MockServer) {
    run_on(script, strategy, false, tweak).await
}

/// [`run`] on a server that continues prefilled assistant turns (`prefill`) or not.
async fn run_on(
    script: Vec<Reply>,
    strategy: Strategy,
    prefill: bool,
    tweak: impl FnOnce(&mut LoopOptions),
) -> (AskOutcome, Vec<StepRecord>, MockServer) {
    // A server said to continue prefilled turns is checked first: answer the check,
    // then forget its requests so the script's indices are the run's own.
    let script = if prefill { Reply::prefill_check_passed().into_iter().chain(script).collect() } else { script };
    let server = MockServer::start(script);
    let mut options = OpenAiOptions::new(&server.url);
    options.retry = RetryConfig { max_retries: 0, timeout: Duration::from_secs(5), ..Default::default() };
    options.prefill = prefill;
    let model: Arc<dyn ChatModel> = Arc::new(OpenAiBackend::new("scripted", options).unwrap());
    if prefill {
        assert!(model.prefill_support().await.unwrap().honoured());
        server.requests.lock().unwrap().clear();
    }
    let store = TraceStore::temporary().unwrap();
    let mut loop_options = LoopOptions { strategy, rounds: 3, ..Default::default() };
    tweak(&mut loop_options);
    // The loop alone: no decomposer call after it.
    let opts = AskOptions { loop_options, ..AskOptions::new(Arc::new(AgentSet::builtin().unwrap())) }.decompose(false);
    let outcome = ask(&store, model, Q, &opts).await.unwrap();
    let steps = store.steps(outcome.trace_id).unwrap();
    // Every run of every strategy replays from its record to the same outcome.
    let replay = recheck::orchestrator::replay(&store, outcome.trace_id, &opts.agents).await.unwrap();
    assert!(replay.identical, "{strategy}: {:?}", replay.differences);
    (outcome, steps, server)
}

/// The agents of the model calls, in order.
fn calls(steps: &[StepRecord]) -> Vec<&str> {
    steps.iter().filter(|s| matches!(s.payload, StepPayload::ModelCall { .. })).map(|s| s.agent.as_str()).collect()
}

#[tokio::test]
async fn single_answers_once_and_checks_claims() {
    let (out, steps, _) = run(vec![Reply::chat("No. 7411 is divisible by 3.")], Strategy::Single, |_| ()).await;
    assert_eq!(calls(&steps), vec!["solver"]);
    assert!(out.rounds.is_empty());
    assert_eq!(out.verified, Verification::Refuted);
    let verdicts: Vec<_> = out.claims.iter().map(|c| (c.text.as_str(), c.verdict)).collect();
    assert_eq!(verdicts, vec![("No", Verdict::Contradicted), ("7411 is divisible by 3", Verdict::Contradicted)]);
    let json = serde_json::to_value(&out).unwrap();
    assert_eq!(json["verified"], false);
    assert_eq!(json["claims"][1]["evidence"][0]["output"]["divides"], false);
}

#[tokio::test]
async fn self_refine_critiques_and_revises_without_tools() {
    let script = vec![
        Reply::chat("No, 7411 is divisible by 7."),
        critique("incorrect", 0, &["7411 is not divisible by 7"]),
        Reply::chat("Yes, 7411 is a prime number."),
        critique("correct", -1, &[]),
    ];
    let (out, steps, server) = run(script, Strategy::SelfRefine, |_| ()).await;
    assert_eq!(calls(&steps), vec!["solver", "critic", "solver", "critic"]);
    assert_eq!(out.answer, "Yes, 7411 is a prime number.");
    assert_eq!(out.rounds.len(), 2);
    assert!(out.rounds[0].tool_calls.is_empty(), "self-refine uses no tools");
    assert_eq!(out.rounds[0].revision.as_deref(), Some("Yes, 7411 is a prime number."));
    assert_eq!(out.stopped_by, StopReason::ReviewPassed);
    assert_eq!(serde_json::to_value(&out).unwrap()["stopped_by"], "review found nothing to fix");
    assert_eq!(out.verified, Verification::Verified);
    let revise_prompt = server.requests.lock().unwrap()[2]["messages"][0]["content"].as_str().unwrap().to_string();
    assert!(revise_prompt.contains("7411 is not divisible by 7"), "{revise_prompt}");
}

#[tokio::test]
async fn critic_routes_claims_to_tools_and_feeds_back_their_verdicts() {
    let script = vec![
        Reply::chat("No, 7411 is divisible by 7."),
        critique("correct", -1, &[]), // the critic is fooled; the tools are not
        Reply::chat("Yes, 7411 is prime."),
        critique("correct", -1, &[]),
    ];
    let (out, steps, server) = run(script, Strategy::Critic, |_| ()).await;
    assert_eq!(calls(&steps), vec!["solver", "critic", "solver", "critic"]);
    let r1 = &out.rounds[0];
    let tools: Vec<_> = r1.tool_calls.iter().map(|c| (c.tool.as_deref().unwrap(), c.verdict)).collect();
    assert_eq!(tools, vec![("primality", Verdict::Contradicted), ("primality", Verdict::Contradicted)]);
    let requests = server.requests.lock().unwrap();
    let critic_prompt = requests[1]["messages"][0]["content"].as_str().unwrap();
    assert!(critic_prompt.contains("\"7411 is divisible by 7\": contradicted"), "{critic_prompt}");
    let revise_prompt = requests[2]["messages"][0]["content"].as_str().unwrap();
    assert!(revise_prompt.contains("is false according to the primality tool"), "{revise_prompt}");
    assert_eq!(out.answer, "Yes, 7411 is prime.");
    assert_eq!(out.verified, Verification::Verified);
    let tool_steps = steps.iter().filter(|s| matches!(s.payload, StepPayload::ToolCall { .. })).count();
    assert_eq!(tool_steps, 2 + 1 + 1, "round 1 (2 claims), round 2 (1), final check (1)");
}

#[tokio::test]
async fn invalid_critiques_are_re_asked_with_the_validation_error() {
    let script = vec![
        Reply::chat("Yes, 7411 is prime."),
        Reply::chat("I think it is fine."),
        Reply::chat(r#"{"verdict": "maybe", "earliest_wrong_step": -1, "problems": [], "confidence": 2}"#),
        critique("correct", -1, &[]),
    ];
    let (out, steps, server) = run(script, Strategy::SelfRefine, |_| ()).await;
    assert_eq!(calls(&steps), vec!["solver", "critic", "critic", "critic"]);
    let failures = events(&steps, "validation_failure");
    assert_eq!(failures.len(), 2);
    assert!(failures[0]["error"].as_str().unwrap().contains("no JSON object"));
    assert!(failures[1]["error"].as_str().unwrap().contains("maybe"), "{}", failures[1]);
    let reask = server.requests.lock().unwrap()[2]["messages"].as_array().unwrap().clone();
    assert_eq!(reask.len(), 3, "prompt, invalid reply, re-ask");
    assert!(reask[2]["content"].as_str().unwrap().contains("not valid"));
    assert!(out.rounds[0].critique.as_ref().unwrap().is_correct());
}

#[tokio::test]
async fn critic_that_never_validates_leaves_the_answer_unchecked() {
    let script = vec![Reply::chat("Yes, 7411 is prime."), Reply::chat("no json, sorry")];
    let (out, steps, _) = run(script, Strategy::SelfRefine, |_| ()).await;
    assert_eq!(calls(&steps), vec!["solver", "critic", "critic", "critic"], "one ask plus two re-asks");
    assert_eq!(events(&steps, "critique_failed").len(), 1);
    assert!(out.rounds[0].critique_failed);
    assert_eq!(out.answer, "Yes, 7411 is prime.");
    assert_eq!(out.stopped_by, StopReason::CritiqueFailed);
}

#[tokio::test]
async fn ioe_tells_the_critic_to_keep_confident_answers() {
    let script = vec![Reply::chat("Yes."), critique("correct", -1, &[])];
    let (_, _, server) = run(script, Strategy::Ioe, |_| ()).await;
    let prompt = server.requests.lock().unwrap()[1]["messages"][0]["content"].as_str().unwrap().to_string();
    assert!(prompt.contains("If you are confident the answer is correct, keep it"), "{prompt}");
}

#[tokio::test]
async fn ioe_keeps_a_draft_the_critic_is_confident_in_and_revises_otherwise() {
    // "Incorrect" at confidence 0.3 is 0.7 confidence in the draft: kept.
    let script = vec![Reply::chat("Yes, 7411 is prime."), critique_with("incorrect", 0, &["maybe"], 0.3)];
    let (out, steps, server) = run(script, Strategy::Ioe, |_| ()).await;
    assert_eq!(out.stopped_by, StopReason::ConfidentKeep);
    assert_eq!(out.answer, "Yes, 7411 is prime.");
    assert_eq!(server.requests.lock().unwrap().len(), 2, "no revision");
    let decision = events(&steps, "ioe_decision");
    assert_eq!((decision[0]["keep"].clone(), decision[0]["threshold"].clone()), (json!(true), json!(0.5)));
    assert!((decision[0]["confidence_in_draft"].as_f64().unwrap() - 0.7).abs() < 1e-9);
    // "Correct" at confidence 0.2 is not confidence: revised.
    let script = vec![
        Reply::chat("Yes, 7411 is prime."),
        critique_with("correct", -1, &[], 0.2),
        Reply::chat("Yes: 7411 has no divisor up to 86."),
        critique_with("correct", -1, &[], 0.9),
    ];
    let (out, _, server) = run(script, Strategy::Ioe, |_| ()).await;
    assert_eq!(out.rounds[0].ioe.map(|d| d.keep), Some(false));
    let revise = server.requests.lock().unwrap()[2]["messages"][0]["content"].as_str().unwrap().to_string();
    assert!(revise.contains("not confident"), "{revise}");
    assert_eq!(
        (out.answer.as_str(), out.stopped_by),
        ("Yes: 7411 has no divisor up to 86.", StopReason::ConfidentKeep)
    );
}

#[tokio::test]
async fn wait_continues_the_models_own_answer() {
    let script = vec![Reply::chat("7411 is divisible by 7."), Reply::chat(" that is wrong: 7411 is prime.")];
    let (out, steps, server) = run_on(script, Strategy::Wait, true, |o| o.rounds = 1).await;
    assert_eq!(calls(&steps), vec!["solver", "solver"]);
    let sent = server.requests.lock().unwrap()[1]["messages"].clone();
    assert_eq!(sent[1], json!({"role": "assistant", "content": "7411 is divisible by 7.\nWait,"}));
    assert_eq!(out.answer, "7411 is divisible by 7.\nWait, that is wrong: 7411 is prime.");
    assert!(events(&steps, "prefill_emulated").is_empty());
}

#[tokio::test]
async fn without_prefill_the_continuation_is_asked_for_and_recorded_as_emulated() {
    let script = vec![Reply::chat("7411 is divisible by 7."), Reply::chat(" that is wrong: 7411 is prime.")];
    let (out, steps, server) = run_on(script, Strategy::Wait, false, |o| o.rounds = 1).await;
    let sent = server.requests.lock().unwrap()[1]["messages"].clone();
    let last = &sent[sent.as_array().unwrap().len() - 1];
    assert_eq!(last["role"], "user", "no trailing assistant turn is sent to a server that would answer it afresh");
    let content = last["content"].as_str().unwrap();
    assert!(content.contains("Continue") && content.contains("7411 is divisible by 7.\nWait,"), "{content}");
    assert!(server.requests.lock().unwrap()[1].get("continue_final_message").is_none());
    let emulated = events(&steps, "prefill_emulated");
    assert_eq!(emulated.len(), 1);
    assert_eq!(emulated[0]["prefix"], "7411 is divisible by 7.\nWait,");
    assert_eq!(out.answer, "7411 is divisible by 7.\nWait, that is wrong: 7411 is prime.");
}

#[tokio::test]
async fn backtrack_regenerates_from_the_earliest_wrong_step() {
    let script = vec![
        Reply::chat("7411 is odd. 7411 is divisible by 7. So it is composite."),
        critique("incorrect", 1, &["step 1 is wrong"]),
        Reply::chat("7411 has no divisor up to 86. So 7411 is prime."),
        critique("correct", -1, &[]),
    ];
    let (out, _, server) = run_on(script, Strategy::Backtrack, true, |_| ()).await;
    let requests = server.requests.lock().unwrap();
    assert_eq!(requests[2]["messages"][1], json!({"role": "assistant", "content": "7411 is odd. "}));
    assert!(requests[2]["temperature"].as_f64().unwrap() >= 0.7, "regenerated by sampling");
    assert_eq!(out.answer, "7411 is odd. 7411 has no divisor up to 86. So 7411 is prime.");
}

#[tokio::test]
async fn backtrack_treats_a_step_the_draft_does_not_have_as_none() {
    // Regression: step 9223372036854775807 appended the regenerated text after the whole answer.
    let script = vec![
        Reply::chat("7411 is odd. So it is composite."),
        critique("incorrect", i64::MAX, &["wrong"]),
        Reply::chat("7411 is prime."),
        critique("correct", -1, &[]),
    ];
    let (out, steps, server) = run_on(script, Strategy::Backtrack, true, |_| ()).await;
    let out_of_range = events(&steps, "step_out_of_range");
    assert_eq!(out_of_range.len(), 1);
    assert_eq!(out_of_range[0]["steps"], 2);
    // Revised from the critique instead of continued from a prefix.
    let requests = server.requests.lock().unwrap();
    assert_eq!(requests[2]["messages"].as_array().unwrap().len(), 1);
    assert_eq!(out.answer, "7411 is prime.");
}

#[tokio::test]
async fn budget_and_temperature_schedule() {
    let script = vec![Reply::chat("No."), critique("incorrect", 0, &["wrong"]), Reply::chat("Still no.")];
    let (out, _, server) = run(script, Strategy::SelfRefine, |o| {
        o.max_calls = 3;
        o.temperature_step = 0.15;
        o.temperature_cap = 0.2;
    })
    .await;
    assert_eq!(out.stopped_by, StopReason::Budget(BudgetLimit::Calls));
    assert_eq!(out.model_calls, 3);
    let temps: Vec<f64> = server.requests.lock().unwrap().iter().map(|r| r["temperature"].as_f64().unwrap()).collect();
    assert_eq!(temps.len(), 3);
    assert!((temps[2] - 0.15).abs() < 1e-6, "round 1 solver at +0.15: {temps:?}");
}

#[tokio::test]
async fn repeated_answers_are_rejected_and_resampled() {
    let script = vec![
        Reply::chat("No, 7411 is composite."),
        critique("incorrect", 0, &["wrong"]),
        Reply::chat("No, 7411 is composite."),
        Reply::chat("Yes, 7411 is prime."),
        critique("correct", -1, &[]),
    ];
    let (out, steps, server) = run(script, Strategy::SelfRefine, |o| o.reject_repeats = true).await;
    assert_eq!(events(&steps, "repeat_rejected").len(), 1);
    let resample = server.requests.lock().unwrap()[3]["messages"][0]["content"].as_str().unwrap().to_string();
    assert!(resample.contains("already judged wrong") && resample.contains("7411 is composite"), "{resample}");
    assert_eq!(out.answer, "Yes, 7411 is prime.");
}

#[tokio::test]
async fn a_failing_round_returns_the_best_answer_so_far() {
    let script = vec![Reply::chat("Yes, 7411 is prime."), Reply::status(500, "critic backend down")];
    let (out, steps, _) = run(script, Strategy::SelfRefine, |_| ()).await;
    assert_eq!(out.answer, "Yes, 7411 is prime.");
    assert!(matches!(&out.stopped_by, StopReason::Error(e) if e.contains("500")), "{}", out.stopped_by);
    assert!(steps.iter().any(|s| s.error.is_some()), "the failed call is recorded");
}

#[tokio::test]
async fn token_budget_stops_the_loop_at_the_call_that_would_exceed_it() {
    // Each scripted reply reports 18 tokens; a budget of 30 admits the draft and one
    // critique (18 < 30 before it), then refuses the revision (36 >= 30).
    let script = vec![Reply::chat("No."), critique("incorrect", 0, &["wrong"]), Reply::chat("Still no.")];
    let (out, steps, server) = run(script, Strategy::SelfRefine, |o| o.token_budget = 30).await;
    assert_eq!(calls(&steps), vec!["solver", "critic"]);
    assert_eq!(server.requests.lock().unwrap().len(), 2, "the refused call never reaches the server");
    assert_eq!(out.stopped_by, StopReason::Budget(BudgetLimit::Tokens));
    assert_eq!(out.usage.prompt_tokens + out.usage.completion_tokens, 36);
    assert_eq!((out.answer.as_str(), out.model_calls), ("No.", 2));
}

#[tokio::test]
async fn the_call_budget_is_enforced_inside_a_round() {
    // Two calls: the draft and the critique; the critic's re-ask is refused.
    let script = vec![Reply::chat("No."), Reply::chat("not json"), Reply::chat("never sent")];
    let (out, _, server) = run(script, Strategy::SelfRefine, |o| o.max_calls = 2).await;
    assert_eq!(server.requests.lock().unwrap().len(), 2);
    assert_eq!(out.stopped_by, StopReason::Budget(BudgetLimit::Calls));
    assert_eq!(out.model_calls, 2);
}

#[tokio::test]
async fn a_fork_with_another_critic_prompt_reuses_the_draft_and_goes_live_at_the_critique() {
    let recorded = MockServer::start(vec![Reply::chat("No, 7411 is divisible by 7."), critique("correct", -1, &[])]);
    let model: Arc<dyn ChatModel> =
        Arc::new(OpenAiBackend::new("scripted", OpenAiOptions::new(&recorded.url)).unwrap());
    let store = TraceStore::temporary().unwrap();
    let agents = Arc::new(AgentSet::builtin().unwrap());
    let opts = AskOptions::new(agents.clone()).strategy(Strategy::SelfRefine).rounds(1).decompose(false);
    let original = ask(&store, model, Q, &opts).await.unwrap();
    assert_eq!(original.verified, Verification::Refuted, "the primality tool refutes the draft");

    // The fork: a stricter critic prompt; a live server plays its critique and a revision.
    let live_server =
        MockServer::start(vec![critique("incorrect", 0, &["7411 is prime"]), Reply::chat("Yes, 7411 is prime.")]);
    let live: Arc<dyn ChatModel> =
        Arc::new(OpenAiBackend::new("scripted", OpenAiOptions::new(&live_server.url)).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let prompt = dir.path().join("strict.j2");
    std::fs::write(
        &prompt,
        "STRICT REVIEW. Question: {{ question }}\nAnswer: {{ draft }}\nReply with JSON only: \
         {\"verdict\", \"earliest_wrong_step\", \"problems\", \"confidence\"}",
    )
    .unwrap();
    let change: AskChange = format!("prompt.critic={}", prompt.display()).parse().unwrap();
    let fork = recheck::orchestrator::fork(&store, original.trace_id, 2, &change, &ForkModels::live(live), &agents)
        .await
        .unwrap();
    assert_eq!(fork.replayed_calls, 1, "the draft came from the record");
    assert_eq!(live_server.hits(), 2, "the critique and the revision were live");
    let critic_prompt = live_server.requests.lock().unwrap()[0]["messages"][0]["content"].as_str().unwrap().to_string();
    assert!(critic_prompt.starts_with("STRICT REVIEW."), "{critic_prompt}");
    assert_eq!(fork.outcome.answer, "Yes, 7411 is prime.");
    assert!(fork.answer_changed);
    assert_eq!((fork.verified_before, fork.verified_after), (Verification::Refuted, Verification::Verified));
    let stored = store.run(fork.run_id).unwrap().unwrap();
    assert_eq!(stored.parent, Some(original.trace_id));

    // The fork is a run like any other: it replays exactly with the prompt it ran with.
    let mut strict = AgentSet::builtin().unwrap();
    strict.replace_template("critic.j2", std::fs::read_to_string(&prompt).unwrap()).unwrap();
    let replay = recheck::orchestrator::replay(&store, fork.run_id, &strict).await.unwrap();
    assert!(replay.identical, "{:?}", replay.differences);

    for bad in ["rounds=many", "colour=red", "judge=oracle", "strategy=guess", "prompt.=x"] {
        assert!(bad.parse::<AskChange>().is_err(), "{bad}");
    }
}
