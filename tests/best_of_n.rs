//! `best-of-n` on the `sim:` simulator, whose arithmetic answers the exact tools can
//! settle: the kept candidate is the one verification supports best, every candidate and
//! its verdicts are in the trace, replay reproduces the choice, a fork changes N, and in
//! the friction protocol it is compared with `single`, cost included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use recheck::{
    agents::AgentSet,
    analysis,
    eval::{self, RunOptions},
    llm::{self, ChatModel, ModelSpec},
    orchestrator::{ask, fork, AskChange, AskOptions, Candidate, ForkModels, StopReason, Strategy, Verification},
    tools::ToolRegistry,
    trace::{StepPayload, TraceStore},
};
use support::datasets::{friction_spec, write_fixtures};

const Q: &str = "What is 17 * 23?";

fn sim(params: &str) -> Arc<dyn ChatModel> {
    let spec: ModelSpec = format!("sim:{params}").parse().unwrap();
    let backend = llm::BackendOptions { models_dir: "/nonexistent".into(), ..Default::default() };
    recheck::open_model(&spec, &backend).unwrap()
}

fn options(candidates: u32) -> AskOptions {
    let mut opts = AskOptions::new(Arc::new(AgentSet::builtin().unwrap())).strategy(Strategy::BestOfN).decompose(false);
    opts.loop_options.candidates = candidates;
    opts
}

/// The `best_of_n` event's candidates, as recorded.
fn recorded_candidates(store: &TraceStore, run: recheck::trace::RunId) -> Vec<Candidate> {
    let steps = store.steps(run).unwrap();
    let event = steps
        .iter()
        .find_map(|s| match &s.payload {
            StepPayload::Event { name, data } if name == "best_of_n" => Some(data.clone()),
            _ => None,
        })
        .expect("a best_of_n event");
    serde_json::from_value(event["candidates"].clone()).unwrap()
}

#[tokio::test]
async fn the_candidate_the_tools_support_is_kept_and_replay_reproduces_the_choice() {
    let store = TraceStore::temporary().unwrap();
    let opts = options(4);
    let mut kept_a_right_one = 0;
    for seed in 0..6 {
        let outcome = ask(&store, sim(&format!("accuracy=0.3,seed={seed}")), Q, &opts).await.unwrap();
        assert_eq!(outcome.candidates.len(), 4);
        assert_eq!(
            outcome.candidates,
            recorded_candidates(&store, outcome.trace_id),
            "the trace holds every candidate"
        );
        let chosen: Vec<&Candidate> = outcome.candidates.iter().filter(|c| c.chosen).collect();
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen[0].answer, outcome.answer);
        // Each sim answer states one final number, which the arithmetic tool settles.
        assert!(outcome.candidates.iter().all(|c| c.claims == 1), "{:?}", outcome.candidates);
        if outcome.candidates.iter().any(|c| c.contradicted == 0) {
            assert_eq!(chosen[0].contradicted, 0, "seed {seed}: {:?}", outcome.candidates);
            assert_eq!(outcome.verified, Verification::Verified);
            assert_eq!(outcome.answer, "So the answer is 391.");
            kept_a_right_one += 1;
        }
        let candidate_calls = store
            .steps(outcome.trace_id)
            .unwrap()
            .iter()
            .filter(|s| matches!(&s.payload, StepPayload::ModelCall { request, .. } if request.purpose == llm::Purpose::Candidate))
            .count();
        assert_eq!(candidate_calls, 4);
        let replay = recheck::orchestrator::replay(&store, outcome.trace_id, &opts.agents).await.unwrap();
        assert!(replay.identical, "seed {seed}: {:?}", replay.differences);
    }
    assert!(kept_a_right_one >= 3, "with 4 draws at 30% accuracy most runs have a right candidate");
}

#[tokio::test]
async fn when_every_candidate_fails_verification_the_first_is_kept_and_the_outcome_says_so() {
    let store = TraceStore::temporary().unwrap();
    let outcome = ask(&store, sim("accuracy=0,seed=1"), Q, &options(3)).await.unwrap();
    assert!(outcome.candidates.iter().all(|c| c.contradicted == 1));
    assert!(outcome.candidates[0].chosen);
    assert_eq!(outcome.answer, outcome.candidates[0].answer);
    assert_eq!(outcome.stopped_by, StopReason::BestOfN { chosen: 0, of: 3, all_failed: true });
    assert_eq!(outcome.stopped_by.to_string(), "best of 3: every candidate failed verification; the first kept");
    assert_eq!(outcome.verified, Verification::Refuted);
}

#[tokio::test]
async fn a_fork_changes_the_number_of_candidates() {
    let store = TraceStore::temporary().unwrap();
    let opts = options(2);
    let model = sim("accuracy=0.3,seed=3");
    let original = ask(&store, model.clone(), Q, &opts).await.unwrap();
    assert_eq!(original.candidates.len(), 2);
    let change: AskChange = "candidates=5".parse().unwrap();
    let last = store.steps(original.trace_id).unwrap().len() as u32;
    let forked = fork(&store, original.trace_id, last, &change, &ForkModels::live(model), &opts.agents).await.unwrap();
    assert_eq!(forked.outcome.candidates.len(), 5);
    assert_eq!(forked.replayed_calls, 2, "the two recorded draws are replayed, three more drawn live");
    assert_eq!(
        &forked.outcome.candidates[..2].iter().map(|c| &c.answer).collect::<Vec<_>>()[..],
        &original.candidates.iter().map(|c| &c.answer).collect::<Vec<_>>()[..]
    );
    let replay = recheck::orchestrator::replay(&store, forked.run_id, &opts.agents).await.unwrap();
    assert!(replay.identical, "{:?}", replay.differences);
    for bad in ["candidates=0", "candidates=33", "candidates=many"] {
        assert!(bad.parse::<AskChange>().is_err(), "{bad}");
    }
}

#[test]
fn in_the_friction_protocol_best_of_n_is_compared_with_single_at_its_cost() {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path(), 40);
    let single = friction_spec(dir.path(), 2);
    let mut best = single.clone();
    best.strategy = Some(Strategy::BestOfN);
    best.candidates = 4;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = TraceStore::temporary().unwrap();
    let opts = RunOptions {
        model: sim("accuracy=0.3,adopt=0.2,seed=5"),
        feedback_model: None,
        agents: Arc::new(AgentSet::builtin().unwrap()),
        tools: ToolRegistry::standard(),
        concurrency: 8,
        retriever: None,
    };
    let run = |spec: recheck::eval::EvalSpec| {
        runtime.block_on(eval::start(&store, &spec, dir.path(), None, &opts, &())).unwrap().run_id
    };
    let (a, b) = (run(single), run(best));
    let comparison = analysis::compare_runs(&store, &[a, b]).unwrap();
    let metric = |i: usize, name: &str| comparison.reports[i].metrics[name].value.unwrap();
    // One draw is right 30% of the time; the best of four, which the tool can check, ~76%.
    assert!(metric(0, "accuracy_round_1") < 0.5, "{}", metric(0, "accuracy_round_1"));
    assert!(metric(1, "accuracy_round_1") > 0.6, "{}", metric(1, "accuracy_round_1"));
    // And it costs: four candidate calls per answer (single answers again after
    // feedback more often, which narrows the gap per item).
    let (calls_single, calls_best) = (metric(0, "model_calls_per_item"), metric(1, "model_calls_per_item"));
    assert!(calls_best > 1.5 * calls_single, "{calls_best} vs {calls_single}");
    // Tokens are counted for both (the simulator counts words); fewer feedback rounds,
    // whose prompts carry the whole history, can make up for the extra draws.
    assert!(metric(0, "tokens_per_item") > 0.0 && metric(1, "tokens_per_item") > 0.0);
    println!(
        "calls per item {calls_single:.2} -> {calls_best:.2}; tokens per item {:.1} -> {:.1}",
        metric(0, "tokens_per_item"),
        metric(1, "tokens_per_item")
    );
    assert!(comparison.pairs[0].significant, "{:?}", comparison.pairs[0]);
    let replayed = runtime.block_on(eval::replay(&store, b, &opts)).unwrap();
    assert!(replayed.identical, "{:?}", replayed.differences);
}
