//! Experiments end to end: each protocol on the `sim:` simulator recovers its planted
//! rates within the reported intervals; replay reproduces metrics exactly; forks reuse
//! recorded steps and apply their change; a SIGKILLed `eval run` resumes without loss
//! or duplicates. Fixture datasets are generated here; the shared datasets are used
//! where present (and said to be absent otherwise).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::datasets::{
    blindspot_spec, friction_spec, mistakes_spec, snowball_spec, write_fixtures, write_verify_fixtures,
};

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::Arc,
};

use recheck::{
    agents::AgentSet,
    analysis::{self, Metric, Report},
    eval::{self, Change, EvalSpec, ForkOptions, RunOptions},
    llm::{self, ChatModel, ModelSpec},
    tools::ToolRegistry,
    trace::{StepPayload, TraceStore},
};
use serde_json::{json, Value};

fn sim(params: &str) -> Arc<dyn ChatModel> {
    let spec: ModelSpec = format!("sim:{params}").parse().unwrap();
    let options = llm::BackendOptions { models_dir: PathBuf::from("/nonexistent"), ..Default::default() };
    recheck::open_model(&spec, &options).unwrap()
}

fn options(model: Arc<dyn ChatModel>) -> RunOptions {
    RunOptions {
        model,
        feedback_model: None,
        agents: Arc::new(AgentSet::builtin().unwrap()),
        tools: ToolRegistry::standard(),
        concurrency: 8,
        retriever: None,
    }
}

fn metric<'a>(report: &'a Report, name: &str) -> &'a Metric {
    report.metrics.get(name).unwrap_or_else(|| panic!("no metric {name} in {:?}", report.metrics.keys()))
}

/// The planted value lies inside the reported 95% interval.
fn recovers(report: &Report, name: &str, planted: f64) {
    let m = metric(report, name);
    let (lo, hi) = (m.low.unwrap(), m.high.unwrap());
    assert!(
        lo <= planted && planted <= hi,
        "{name}: planted {planted} outside [{lo:.3}, {hi:.3}] (value {:?})",
        m.value
    );
}

async fn run(store: &TraceStore, spec: &EvalSpec, root: &Path, model: &str) -> Report {
    let outcome = eval::start(store, spec, root, None, &options(sim(model)), &()).await.unwrap();
    assert_eq!((outcome.failed, outcome.ran), (0, outcome.items));
    analysis::compute(store, outcome.run_id).unwrap()
}

#[tokio::test]
async fn friction_on_the_simulator_recovers_planted_rates() {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path(), 400);
    let store = TraceStore::temporary().unwrap();
    let report = run(&store, &friction_spec(dir.path(), 3), dir.path(), "accuracy=0.3,adopt=0.5,seed=11").await;
    assert_eq!(report.n, 400);
    recovers(&report, "accuracy_round_1", 0.3);
    recovers(&report, "accuracy_round_2", 1.0 - 0.7 * 0.5);
    recovers(&report, "accuracy_round_3", 1.0 - 0.7 * 0.25);
    recovers(&report, "friction_rate", 0.25);
    // The sim's feedback always points somewhere: full incorporation fixes every item.
    assert_eq!(metric(&report, "target_accuracy").value, Some(1.0));
    // Binary feedback says only "incorrect": nothing to incorporate, so the target is
    // the first-round accuracy.
    let mut binary = friction_spec(dir.path(), 3);
    binary.feedback = Some("binary".into());
    let binary = run(&store, &binary, dir.path(), "accuracy=0.3,adopt=0.5,seed=11").await;
    recovers(&binary, "target_accuracy", 0.3);
    assert_eq!(metric(&binary, "target_accuracy").value, metric(&binary, "accuracy_round_1").value);
    // A model that never drifts repeats its wrong answer: every persistent failure is one.
    let persistent: usize = report.counts.values().sum();
    assert_eq!(report.counts.get("persistent: repeats an earlier answer"), Some(&persistent));
    let flips = report.flips["round 1 -> 2"];
    assert_eq!(flips.right_right + flips.right_wrong, 0, "right answers get no feedback");
    // With drift, wrong answers change instead of repeating.
    let drift = run(&store, &friction_spec(dir.path(), 3), dir.path(), "accuracy=0.3,adopt=0.2,drift=1,seed=11").await;
    let count = |k: &str| drift.counts.get(k).copied().unwrap_or(0);
    // (A redrawn wrong answer can still equal an earlier one by chance.)
    assert!(count("persistent: changes to another wrong answer") > 2 * count("persistent: repeats an earlier answer"));
}

#[tokio::test]
async fn snowball_on_the_simulator_recovers_planted_rates() {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path(), 300);
    let store = TraceStore::temporary().unwrap();
    let spec = snowball_spec(dir.path());
    let report = run(&store, &spec, dir.path(), "accuracy=0.4,recognize=0.7,seed=5").await;
    assert_eq!(report.n, 600);
    recovers(&report, "wrong_answer_rate", 0.6);
    recovers(&report, "snowball_rate", 0.7);
    // Every wrong answer of the simulator carries a false claim the tools catch.
    assert_eq!(metric(&report, "false_claim_rate").value, Some(1.0));
    recovers(&report, "wrong_answer_rate:primality", 0.6);
    recovers(&report, "wrong_answer_rate:graph", 0.6);
    // The answer-share line: half the gold answers are "no" (the graph items); the
    // simulator says "no" to primes when wrong (0.6) and to graphs when right (0.4).
    assert_eq!(metric(&report, "gold_share_no").value, Some(0.5));
    recovers(&report, "answer_share_no", 0.5 * 0.6 + 0.5 * 0.4);
    // Controls: this simulator never rejects a true claim.
    assert_eq!(metric(&report, "true_claim_rejection").value, Some(0.0));
    recovers(&report, "false_claim_rejection", 0.7);

    // A "no"-biased model: it rejects 60% of true claims too. Its snowball rate looks
    // as good as before; the controls show how little of it is recognition.
    let store = TraceStore::temporary().unwrap();
    let report = run(&store, &spec, dir.path(), "accuracy=0.4,recognize=0.7,reject_true=0.6,seed=5").await;
    recovers(&report, "snowball_rate", 0.7);
    recovers(&report, "true_claim_rejection", 0.6);
    recovers(&report, "rejection_difference", 0.7 - 0.6);
    recovers(&report, "rejection_balanced_accuracy", (0.7 + 0.4) / 2.0);
    assert!(metric(&report, "rejection_difference").defined_share.unwrap() > 0.99);
    let controls = report.counts["true claims asked back (controls)"];
    assert_eq!(
        controls, report.counts["controls made from a refuted claim"],
        "the simulator's answers state no true claim"
    );
    assert!(controls > 300, "a control for each wrong answer: {controls}");
    // The paper's figures beside ours, in text, HTML and JSON.
    let text = analysis::render_text(&report);
    let row = text.lines().position(|l| l.starts_with("snowball_rate ")).unwrap();
    assert_eq!(
        text.lines().nth(row + 1).map(str::trim),
        Some("published: 0.67 (ChatGPT), 0.87 (GPT-4) (Zhang, Press, Merrill, Liu, Smith (2023), How Language Model Hallucinations Can Snowball)")
    );
    assert!(analysis::render_html(&report).contains("0.67 (ChatGPT), 0.87 (GPT-4)"));
    assert_eq!(
        serde_json::to_value(&report).unwrap()["published"]["snowball_rate"]["figure"],
        "0.67 (ChatGPT), 0.87 (GPT-4)"
    );
}

#[tokio::test]
async fn blindspot_on_the_simulator_recovers_planted_rates() {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path(), 400);
    let store = TraceStore::temporary().unwrap();
    let spec = blindspot_spec(dir.path());
    let report = run(&store, &spec, dir.path(), "own=0.2,user=0.8,wait=0.6,seed=3").await;
    recovers(&report, "correction_rate_user", 0.8);
    recovers(&report, "correction_rate_own", 0.2);
    recovers(&report, "correction_rate_wait", 0.6);
    recovers(&report, "blind_spot_rate", 1.0 - 0.2 / 0.8);
    recovers(&report, "blind_spot_rate_wait", 1.0 - 0.6 / 0.8);
    // How the own-answer conditions were produced is recorded and reported.
    let how = "continued natively (the backend renders the chat template itself)";
    assert_eq!(report.conditions["own, own + Wait (prefilled turn)"], how);
    assert!(analysis::render_text(&report).contains(&format!("condition own, own + Wait (prefilled turn): {how}")));
    let share = metric(&report, "blind_spot_rate").defined_share.unwrap();
    assert!(share > 0.99, "with ~320 user corrections every resample defines the ratio: {share}");

    // A model that almost never corrects the user: the ratio is not shown, and the
    // report says why, with the count, in text and HTML alike; no bare `-` anywhere.
    let store = TraceStore::temporary().unwrap();
    let report = run(&store, &spec, dir.path(), "own=0.0,user=0.01,wait=0.0,seed=3").await;
    let corrections = report.counts["corrections in the user condition"];
    assert!(corrections < 10, "{corrections}");
    let ratio = metric(&report, "blind_spot_rate");
    assert_eq!(ratio.value, None);
    let why = format!("{corrections} corrections in the user condition (the ratio needs at least 10)");
    assert_eq!(ratio.undefined.as_deref(), Some(why.as_str()));
    let text = analysis::render_text(&report);
    assert!(text.contains(&format!("blind_spot_rate: undefined: {why}")), "{text}");
    assert!(!text.lines().any(|l| l.split_whitespace().any(|w| w == "-" || w == "[-,")), "{text}");
    assert!(analysis::render_html(&report).contains(&why));
    assert!(text.contains("published: 0.645 (average of 14 models)"), "{text}");
}

#[tokio::test]
async fn shipped_specs_load_the_shared_datasets() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/evals");
    if !root.is_dir() {
        eprintln!("SKIPPED: shared datasets not found at {}; only the generated fixtures were tested", root.display());
        return;
    }
    let evals = Path::new(env!("CARGO_MANIFEST_DIR")).join("evals");
    let store = TraceStore::temporary().unwrap();
    for (file, items) in [("friction.toml", 400), ("snowball.toml", 1002), ("blindspot.toml", 339)] {
        let spec = EvalSpec::load(&evals.join(file)).unwrap();
        assert_eq!(spec.load_items(&root, None).unwrap().len(), items, "{file}");
        let out = eval::start(&store, &spec, &root, Some(20), &options(sim("seed=1")), &()).await.unwrap();
        assert_eq!(out.failed, 0, "{file}");
        let report = analysis::compute(&store, out.run_id).unwrap();
        assert_eq!(report.n, out.items, "{file}");
    }
}

#[tokio::test]
async fn replay_reproduces_metrics_and_detects_a_changed_prompt() {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path(), 60);
    let store = TraceStore::temporary().unwrap();
    let mut spec = friction_spec(dir.path(), 4);
    (spec.temperature_step, spec.reject_repeats) = (0.15, true);
    let run =
        eval::start(&store, &spec, dir.path(), None, &options(sim("accuracy=0.2,adopt=0.3,drift=0.5,seed=2")), &())
            .await
            .unwrap();
    // The replay never calls a model: give it one that fails every call.
    let dead = options(sim("seed=0"));
    let dead = RunOptions { model: Arc::new(llm::ReplayModel::exact(dead.model.info(), vec![])), ..dead };
    let outcome = eval::replay(&store, run.run_id, &dead).await.unwrap();
    assert!(outcome.identical, "{:?}", outcome.differences);
    assert_eq!(outcome.metrics, analysis::compute(&store, run.run_id).unwrap().metrics);
    // The experiment recorded its prompt templates: edited prompts today do not change
    // what its replay renders.
    let prompts = tempfile::tempdir().unwrap();
    std::fs::write(prompts.path().join("solver.j2"), "Answer this: {{ question }}").unwrap();
    let edited = Arc::new(AgentSet::load(None, Some(prompts.path())).unwrap());
    let changed = RunOptions { agents: edited.clone(), ..dead.clone() };
    let outcome = eval::replay(&store, run.run_id, &changed).await.unwrap();
    assert!(outcome.identical, "{:?}", outcome.differences);
    // Without the record of them (an experiment stored before templates were kept),
    // the replay renders today's and says where it diverges.
    let file = prompts.path().join("all.jsonl");
    store.export_jsonl(&file, &[]).unwrap();
    let id = run.run_id.to_string();
    let lines: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|line| {
            let mut record: Value = serde_json::from_str(line).unwrap();
            if record["id"] == id.as_str() {
                assert!(record["config"]["templates"]["solver.j2"].as_str().unwrap().contains("{{"));
                record["config"].as_object_mut().unwrap().remove("templates");
            }
            record.to_string()
        })
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let old = TraceStore::temporary().unwrap();
    old.import_jsonl(&file).unwrap();
    let outcome = eval::replay(&old, run.run_id, &changed).await.unwrap();
    assert!(!outcome.identical);
    assert!(outcome.differences[0].contains("diverged"), "{:?}", outcome.differences);
    let outcome = eval::replay(&old, run.run_id, &dead).await.unwrap();
    assert!(outcome.identical, "{:?}", outcome.differences);
}

#[tokio::test]
async fn verify_on_the_simulator_recovers_the_planted_judge_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_verify_fixtures(dir.path(), 100);
    let indexes = tempfile::tempdir().unwrap();
    let retriever = eval::open_corpus(&spec, dir.path(), indexes.path(), &|_| ()).unwrap();
    assert!(retriever.is_some());
    let store = TraceStore::temporary().unwrap();
    let opts = RunOptions { retriever, ..options(sim("judge=0.7,seed=3")) };
    let run = eval::start(&store, &spec, dir.path(), None, &opts, &()).await.unwrap();
    assert_eq!((run.items, run.failed), (300, 0));
    let report = analysis::compute(&store, run.run_id).unwrap();
    recovers(&report, "label_accuracy", 0.7);
    assert!((metric(&report, "majority_class_accuracy").value.unwrap() - 1.0 / 3.0).abs() < 1e-9);
    assert!(metric(&report, "macro_f1").value.is_some());
    let doc_recall = metric(&report, "evidence_doc_recall");
    assert_eq!(doc_recall.n, 200, "SUPPORT and CONTRADICT claims have evidence documents");
    assert!(doc_recall.value.unwrap() > 0.9, "each claim's number is in its document: {doc_recall:?}");
    let confusion: usize = report.counts.iter().filter(|(k, _)| k.starts_with("confusion")).map(|(_, v)| v).sum();
    assert_eq!(confusion, 300);
    // The replay reproduces it from the record.
    let dead = RunOptions { model: Arc::new(llm::ReplayModel::exact(opts.model.info(), vec![])), ..opts.clone() };
    let replayed = eval::replay(&store, run.run_id, &dead).await.unwrap();
    assert!(replayed.identical, "{:?}", replayed.differences);
    // The lexical judge on the same items: it never says "contradicted".
    let fork = ForkOptions { from_step: 0, change: "judge=lexical".parse::<Change>().unwrap(), model: None };
    let lexical = eval::fork(&store, run.run_id, &fork, &opts, &()).await.unwrap();
    let lexical = analysis::compute(&store, lexical.run_id).unwrap();
    assert_eq!(metric(&lexical, "predicted_share_contradicted").value, Some(0.0));
    assert_eq!(metric(&lexical, "recall_contradicted").value, Some(0.0));
}

#[tokio::test]
async fn resume_refuses_another_model_and_blindspot_refuses_a_model_without_prefill() {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path(), 4);
    let store = TraceStore::temporary().unwrap();
    let friction = friction_spec(dir.path(), 2);
    let run =
        eval::start(&store, &friction, dir.path(), None, &options(sim("accuracy=0.0,seed=1")), &()).await.unwrap();
    let err = eval::resume(&store, run.run_id, &options(sim("accuracy=1.0,seed=1")), &()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, recheck::Error::Eval(eval::EvalError::OtherModel { .. })), "{text}");
    assert!(text.contains("sim:accuracy=0.0,seed=1") && text.contains("sim:accuracy=1.0,seed=1"), "{text}");
    // The same model resumes (nothing left to run).
    let again = eval::resume(&store, run.run_id, &options(sim("accuracy=0.0,seed=1")), &()).await.unwrap();
    assert_eq!((again.ran, again.skipped), (0, 4));

    // A per-item call budget: one call allows the first answer, not the feedback.
    let mut tight = friction_spec(dir.path(), 3);
    tight.max_calls = 1;
    let run = eval::start(&store, &tight, dir.path(), None, &options(sim("accuracy=0.0,seed=2")), &()).await.unwrap();
    assert_eq!((run.failed, run.completed()), (4, 0));
    assert!(run.first_error.as_deref().unwrap().contains("budget"), "{:?}", run.first_error);
    assert_eq!(store.run(run.run_id).unwrap().unwrap().status, recheck::trace::RunStatus::Failed);

    let blindspot = blindspot_spec(dir.path());
    let no_prefill = llm::ModelInfo {
        capabilities: Some(llm::Capabilities { prefill: false, ..Default::default() }),
        ..llm::ModelInfo::new("openai:m", "openai")
    };
    let opts = RunOptions { model: Arc::new(llm::ReplayModel::exact(no_prefill, vec![])), ..options(sim("seed=1")) };
    let err = eval::start(&store, &blindspot, dir.path(), None, &opts, &()).await.unwrap_err().to_string();
    assert!(err.contains("prefilled"), "{err}");
    // A server said to continue a prefilled turn that does not (its prompt token
    // counts, as llama-cpp-python's server reported them, show the turn closed).
    let server = support::MockServer::start(vec![
        support::Reply::chat_with_prompt_tokens("Red", 34),
        support::Reply::chat_with_prompt_tokens(" colour", 41),
        support::Reply::chat_with_prompt_tokens("Blue", 41),
    ]);
    let ignoring =
        llm::OpenAiBackend::new("m", llm::OpenAiOptions { prefill: true, ..llm::OpenAiOptions::new(&server.url) })
            .unwrap();
    let opts = RunOptions { model: Arc::new(ignoring), ..options(sim("seed=1")) };
    let err = eval::start(&store, &blindspot, dir.path(), None, &opts, &()).await.unwrap_err().to_string();
    assert!(err.contains("ignored by the server") && err.contains("closed turn 41"), "{err}");
    assert_eq!(server.hits(), 3, "only the check was sent");
    assert_eq!(store.list_runs().unwrap().len(), 2 * (1 + 4), "nothing stored for the refused experiments");
}

#[tokio::test]
async fn fork_reuses_recorded_steps_and_applies_its_change() {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path(), 80);
    let store = TraceStore::temporary().unwrap();
    let parent = eval::start(
        &store,
        &friction_spec(dir.path(), 3),
        dir.path(),
        None,
        &options(sim("accuracy=0.3,adopt=0,seed=4")),
        &(),
    )
    .await
    .unwrap();
    let before = analysis::compute(&store, parent.run_id).unwrap();
    let wrong_first =
        before.n - (metric(&before, "accuracy_round_1").value.unwrap() * before.n as f64).round() as usize;
    assert!(wrong_first > 20);
    // Step 0 is the first answer, 1 its grade; fork at the feedback with a model that adopts it.
    let fork = ForkOptions {
        from_step: 2,
        change: "feedback=Multiply the tens and the units separately.".parse::<Change>().unwrap(),
        model: Some(sim("accuracy=0.3,adopt=1,seed=4")),
    };
    let forked = eval::fork(&store, parent.run_id, &fork, &options(sim("seed=4")), &()).await.unwrap();
    let report = analysis::compute(&store, forked.run_id).unwrap();
    assert_eq!(metric(&report, "accuracy_round_1").value, metric(&before, "accuracy_round_1").value);
    assert_eq!(metric(&report, "accuracy_round_2").value, Some(1.0));
    let cmp = report.comparison.as_ref().unwrap();
    assert_eq!((cmp.parent, cmp.flips.wrong_right, cmp.flips.right_wrong), (parent.run_id, wrong_first, 0));
    assert_eq!(store.run(forked.run_id).unwrap().unwrap().parent, Some(parent.run_id));
    // Item by item: the first answer is the recorded one; the feedback is the fork's.
    let (a, b) = (store.members(parent.run_id).unwrap(), store.members(forked.run_id).unwrap());
    for ((_, p), (_, f)) in a.iter().zip(&b) {
        let (ps, fs) = (store.steps(*p).unwrap(), store.steps(*f).unwrap());
        assert_eq!(ps[0].payload, fs[0].payload);
        if let Some(fb) =
            fs.iter().find(|s| matches!(&s.payload, StepPayload::Event { name, .. } if name == "feedback"))
        {
            let StepPayload::Event { data, .. } = &fb.payload else { unreachable!() };
            assert_eq!(data["replaced_by_fork"], true);
        }
    }
}

#[tokio::test]
async fn mistakes_replays_exactly_and_a_fork_sets_the_simulated_locators_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path(), 30);
    let store = TraceStore::temporary().unwrap();
    let spec = mistakes_spec(dir.path());
    let opts = options(sim("find=0.5,fix=0.8,seed=2"));
    let parent = eval::start(&store, &spec, dir.path(), None, &opts, &()).await.unwrap();
    assert_eq!((parent.failed, parent.ran), (0, 30));
    let before = analysis::compute(&store, parent.run_id).unwrap();
    // The fixture's traces: a third clean, a third wrong from step 1, a third from step 2.
    assert_eq!(metric(&before, "mistake_share").value, Some(20.0 / 30.0));
    assert_eq!(metric(&before, "answer_accuracy_original").value, Some(10.0 / 30.0));
    let replay = eval::replay(&store, parent.run_id, &opts).await.unwrap();
    assert!(replay.identical, "{:?}", replay.differences);
    // A perfect simulated locator backtracks exactly where the gold location does.
    let fork =
        ForkOptions { from_step: 0, change: "simulated_location_accuracy=1.0".parse::<Change>().unwrap(), model: None };
    let forked = eval::fork(&store, parent.run_id, &fork, &opts, &()).await.unwrap();
    let after = analysis::compute(&store, forked.run_id).unwrap();
    assert_eq!(metric(&after, "simulated_locator_accuracy").value, Some(1.0));
    assert_eq!(
        metric(&after, "answer_accuracy_after_simulated").value,
        metric(&after, "answer_accuracy_after_gold").value
    );
    assert_eq!(metric(&after, "location_accuracy").value, metric(&before, "location_accuracy").value);
    let bad = "simulated_location_accuracy=1.5".parse::<Change>().unwrap().apply_to(&spec).unwrap_err().to_string();
    assert!(bad.contains("not a probability"), "{bad}");
}

#[tokio::test]
async fn mistakes_without_prefilled_turns_is_refused_unless_backtracking_is_off() {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path(), 3);
    let store = TraceStore::temporary().unwrap();
    // A scripted server that does not continue prefilled turns; its reply is a location.
    let server = support::MockServer::start(vec![support::Reply::chat("Step 1 is wrong."); 3]);
    let model: Arc<dyn ChatModel> =
        Arc::new(llm::OpenAiBackend::new("scripted", llm::OpenAiOptions::new(&server.url)).unwrap());
    let spec = mistakes_spec(dir.path());
    let refused = eval::start(&store, &spec, dir.path(), None, &options(model.clone()), &()).await.unwrap();
    assert_eq!(refused.failed, 3);
    let why = refused.first_error.unwrap_or_default();
    assert!(why.contains("backtrack = false"), "{why}");
    let mut finding_only = spec.clone();
    finding_only.backtrack = Some(false);
    let run = eval::start(&store, &finding_only, dir.path(), None, &options(model), &()).await.unwrap();
    assert_eq!((run.failed, run.ran), (0, 3));
    let report = analysis::compute(&store, run.run_id).unwrap();
    // Items 1 and 2 of the fixture have their first mistake at steps 1 and 2, item 0 none.
    assert_eq!(metric(&report, "location_accuracy").value, Some(0.5));
    assert!(!report.metrics.contains_key("answer_accuracy_original"), "no backtracking, no correction metrics");
}

fn recheck(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recheck")).args(args).env("RECHECK_HOME", home).output().unwrap()
}

fn json_out(out: &Output) -> Value {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn write_spec(dir: &Path) -> PathBuf {
    let spec = dir.join("friction.toml");
    std::fs::write(
        &spec,
        "name = \"kill\"\nprotocol = \"friction\"\nrounds = 3\n[[datasets]]\nloader = \"jsonl\"\npath = \"./multiplication.jsonl\"\nanswer = \"number\"\n",
    )
    .unwrap();
    spec
}

#[test]
fn killed_eval_run_resumes_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path(), 60);
    let spec = write_spec(dir.path());
    let spec = spec.to_str().unwrap();
    let model = "sim:accuracy=0.3,adopt=0.5,seed=9,latency_ms=15";
    let home = support::temp_home();
    let mut child = Command::new(env!("CARGO_BIN_EXE_recheck"))
        .args(["eval", "run", spec, "--model", model, "--concurrency", "2"])
        .env("RECHECK_HOME", home.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    let run_id = first.split_whitespace().nth(1).unwrap_or_else(|| panic!("no run id in {first:?}")).to_string();
    // Kill once progress lines ("N/60 items, ...") show some items done, however slow the machine.
    for line in stderr.lines() {
        let line = line.unwrap();
        let done: usize = line.split('/').next().and_then(|n| n.parse().ok()).unwrap_or(0);
        if done >= 6 {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let listed = json_out(&recheck(home.path(), &["traces", "list", "--items", "--json"]));
    let items: Vec<&Value> =
        listed["runs"].as_array().unwrap().iter().filter(|r| r["run"]["kind"] == "eval-item").collect();
    let done = items.iter().filter(|r| r["run"]["status"] == "completed").count();
    assert!(done > 0 && done < 60, "the kill should land mid-run: {done} of 60 items done");
    let resumed = json_out(&recheck(home.path(), &["eval", "resume", &run_id, "--json"]));
    assert_eq!((resumed["skipped"].as_u64(), resumed["ran"].as_u64()), (Some(done as u64), Some(60 - done as u64)));
    let report = json_out(&recheck(home.path(), &["eval", "report", &run_id, "--json"]));
    assert_eq!((report["n"].as_u64(), report["unfinished"].as_u64()), (Some(60), Some(0)));
    // The same experiment run without a kill gives the same item outcomes and metrics.
    let clean_home = support::temp_home();
    let clean = json_out(&recheck(clean_home.path(), &["eval", "run", spec, "--model", model, "--json"]));
    let clean_report =
        json_out(&recheck(clean_home.path(), &["eval", "report", clean["run_id"].as_str().unwrap(), "--json"]));
    assert_eq!(report["metrics"], clean_report["metrics"]);
    // No slot holds two completed item runs.
    let store = TraceStore::open(home.path().join("traces")).unwrap();
    let id = store.resolve(&run_id).unwrap();
    let members = store.members(id).unwrap();
    assert_eq!(members.len(), 60);
    let mut slots: Vec<u32> = members.iter().map(|(s, _)| *s).collect();
    slots.dedup();
    assert_eq!(slots.len(), 60);
}

#[test]
fn cli_report_json_html_replay_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path(), 30);
    let spec = write_spec(dir.path());
    let home = support::temp_home();
    let run =
        json_out(&recheck(home.path(), &["eval", "run", spec.to_str().unwrap(), "--model", "sim:seed=1", "--json"]));
    let id = run["run_id"].as_str().unwrap();
    let html = dir.path().join("report.html");
    let report = json_out(&recheck(home.path(), &["eval", "report", id, "--json", "--html", html.to_str().unwrap()]));
    assert_eq!(
        (report["run_id"].as_str(), report["protocol"].as_str(), report["n"].as_u64()),
        (Some(id), Some("friction"), Some(30))
    );
    for name in ["accuracy_round_1", "accuracy_round_3", "friction_rate"] {
        let m = &report["metrics"][name];
        assert!(
            m["value"].is_number() && m["low"].is_number() && m["high"].is_number() && m["n"].is_number(),
            "{name}: {m}"
        );
    }
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!doctype html>") && page.contains("<svg") && page.contains("friction_rate"));
    let replayed = json_out(&recheck(home.path(), &["replay", id, "--json"]));
    assert_eq!(replayed["identical"], true);
    assert_eq!(replayed["metrics"], report["metrics"]);
    let fork = recheck(home.path(), &["replay", id, "--from-step", "2"]);
    assert_eq!(fork.status.code(), Some(2), "a fork that changes nothing is bad usage");
    assert!(String::from_utf8_lossy(&fork.stderr).contains("--change"));
    // Bad input: named, non-zero, nothing stored changes.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\nprotocol = \"friction\"\nrounds = 0\n[[datasets]]\nloader = \"jsonl\"\npath = \"a\"\n",
    )
    .unwrap();
    let out = recheck(home.path(), &["eval", "run", bad.to_str().unwrap(), "--model", "sim"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(1) && err.contains("bad.toml") && err.contains("rounds"), "{err}");
    let out = recheck(home.path(), &["eval", "run", spec.to_str().unwrap(), "--model", "sim:adopt=7"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("probability"));
    let out = recheck(home.path(), &["eval", "report", "not-a-run"]);
    assert_eq!(out.status.code(), Some(1));
    let list = json_out(&recheck(home.path(), &["traces", "list", "--json"]));
    assert_eq!(list["runs"].as_array().unwrap().len(), 1, "only the experiment, its item runs hidden");
}

/// Answers 80 to everything; as the feedback writer, states the gold answer as
/// arithmetic ("(11 * 8)" for 88) without the number itself.
struct ArithmeticLeaker;

#[async_trait::async_trait]
impl ChatModel for ArithmeticLeaker {
    fn info(&self) -> llm::ModelInfo {
        llm::ModelInfo::new("leaker", "test")
    }
    fn capabilities(&self) -> llm::Capabilities {
        llm::Capabilities::default()
    }
    async fn chat(&self, request: &llm::ChatRequest) -> Result<llm::Completion, llm::LlmError> {
        let text = match request.purpose {
            llm::Purpose::Feedback => "Close, but the correct final answer is (11 * 8).",
            _ => "The answer is 80.",
        };
        Ok(llm::Completion {
            model: "leaker".into(),
            choices: vec![llm::Choice { text: text.into(), finish_reason: llm::FinishReason::Stop, logprobs: None }],
            usage: llm::Usage::default(),
            latency_ms: 0,
            rendered_prompt: None,
            seed: None,
        })
    }
}

#[tokio::test]
async fn friction_counts_feedback_that_states_the_answer_as_arithmetic_as_a_leak() {
    let dir = tempfile::tempdir().unwrap();
    // The feedback's "(11 * 8)" is the question's expression half worked out: it gives 88 away.
    let item = json!({"question": "((3 + 8) * (2 * 4)) =", "answer": "88"});
    std::fs::write(dir.path().join("multiplication.jsonl"), format!("{item}\n")).unwrap();
    let store = TraceStore::temporary().unwrap();
    let spec = friction_spec(dir.path(), 2);
    let run = eval::start(&store, &spec, dir.path(), None, &options(Arc::new(ArithmeticLeaker)), &()).await.unwrap();
    let report = analysis::compute(&store, run.run_id).unwrap();
    let leak_rate = metric(&report, "feedback_leak_rate");
    assert_eq!((leak_rate.value, leak_rate.n), (Some(1.0), 1), "the one feedback message leaked");

    // The trace says what matched, and the solver saw it masked.
    let item = store.members(run.run_id).unwrap()[0].1;
    let steps = store.steps(item).unwrap();
    let feedback = support::events(&steps, "feedback")[0].clone();
    assert_eq!(feedback["leaked"], true);
    assert_eq!(feedback["leaks"][0]["kind"], "expression");
    assert_eq!(feedback["leaks"][0]["matched"], "(11 * 8)");
    assert_eq!(feedback["text"], "Close, but the correct final answer is [masked].");
    let second_answer = steps
        .iter()
        .filter_map(|s| match &s.payload {
            StepPayload::ModelCall { request, .. } if request.purpose == llm::Purpose::Answer => Some(request),
            _ => None,
        })
        .nth(1)
        .unwrap();
    let seen: String = second_answer.messages.iter().map(|m| m.content.as_str()).collect();
    assert!(seen.contains("[masked]") && !seen.contains("11 * 8)"), "{seen}");
}

#[test]
fn eval_compare_puts_runs_side_by_side_and_calls_a_difference_only_when_mcnemar_does() {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path(), 120);
    let spec = dir.path().join("snowball.toml");
    std::fs::write(
        &spec,
        "name = \"s\"\nprotocol = \"snowball\"\n[[datasets]]\nloader = \"snowball\"\npath = \"./primality.json\"\nanswer = \"yes_no\"\n",
    )
    .unwrap();
    let home = support::temp_home();
    let run = |model: &str| {
        let out = recheck(home.path(), &["eval", "run", spec.to_str().unwrap(), "--model", model, "--json"]);
        json_out(&out)["run_id"].as_str().unwrap().to_string()
    };
    let weak = run("sim:accuracy=0.2,seed=1");
    let strong = run("sim:accuracy=0.8,seed=2");
    let weak_again = run("sim:accuracy=0.2,seed=1");
    let page = dir.path().join("compare.html");
    let out = recheck(
        home.path(),
        &["eval", "compare", &weak, &strong, &weak_again, "--json", "--html", page.to_str().unwrap()],
    );
    let cmp = json_out(&out);
    assert_eq!(cmp["reports"].as_array().unwrap().len(), 3);
    assert!(cmp["metrics"].as_array().unwrap().iter().any(|m| m == "snowball_rate"));
    let pairs = cmp["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 3, "every pair");
    // weak -> strong: a big paired difference on the 120 shared items.
    assert_eq!(pairs[0]["shared"], 120);
    assert_eq!(pairs[0]["significant"], true, "{}", pairs[0]);
    assert!(pairs[0]["mcnemar_p"].as_f64().unwrap() < 1e-6);
    assert!(pairs[0]["difference"].as_f64().unwrap() > 0.4);
    // weak -> weak again (same seed): identical items, nothing to test.
    assert_eq!((pairs[1]["a"].as_str(), pairs[1]["b"].as_str()), (Some(weak.as_str()), Some(weak_again.as_str())));
    assert_eq!(pairs[1]["mcnemar_p"], Value::Null);
    assert_eq!(pairs[1]["significant"], false);
    assert!(pairs[1]["changed"].as_array().unwrap().is_empty());
    assert_eq!(pairs[2]["significant"], true, "strong -> weak again");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.contains("McNemar"));

    // Text, and the errors: one run, and runs of two protocols.
    let out = recheck(home.path(), &["eval", "compare", &weak, &strong]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[1] -> [2] on 120 shared items") && text.contains(": different"), "{text}");
    let out = recheck(home.path(), &["eval", "compare", &weak]);
    assert_eq!(out.status.code(), Some(2));
    let friction = dir.path().join("friction.toml");
    std::fs::write(
        &friction,
        "name = \"f\"\nprotocol = \"friction\"\nrounds = 2\n[[datasets]]\nloader = \"jsonl\"\npath = \"./multiplication.jsonl\"\nanswer = \"number\"\n",
    )
    .unwrap();
    let other = json_out(&recheck(
        home.path(),
        &["eval", "run", friction.to_str().unwrap(), "--model", "sim:seed=3", "--json"],
    ))["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = recheck(home.path(), &["eval", "compare", &weak, &other]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("compare runs of one protocol"));
}
