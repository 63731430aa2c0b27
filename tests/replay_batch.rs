//! Forking stored `ask` runs: one at a time with an agent's config or judge changed,
//! and many at once (`fork_batch`) with the comparison read back from the store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc, Mutex,
};

use async_trait::async_trait;
use recheck::{
    agents::AgentSet,
    llm::{
        Capabilities, ChatModel, ChatRequest, Choice, Completion, FinishReason, LlmError, ModelInfo, Purpose, Usage,
    },
    orchestrator::{
        ask, batch_report, fork, fork_batch, AskChange, AskOptions, BatchOptions, ForkModels, RunFilter, Strategy,
        Verification,
    },
    trace::{run_kind, RunStatus, TraceStore},
    Error,
};
use serde_json::json;

/// Primes above 3, so "divisible by 3" is always false.
const PRIMES: [u64; 50] = [
    5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107, 109, 113,
    127, 131, 137, 139, 149, 151, 157, 163, 167, 173, 179, 181, 191, 193, 197, 199, 211, 223, 227, 229, 233, 239,
];

/// A stand-in model that answers by the call's purpose: drafts wrong for odd-indexed
/// primes ("divisible by 3") when `wrong_drafts`, critiques flag any answer saying
/// "divisible", revisions are right. It records each request's temperature.
struct Scripted {
    wrong_drafts: bool,
    calls: AtomicUsize,
    temperatures: Mutex<Vec<(Purpose, f32)>>,
}

impl Scripted {
    fn new(wrong_drafts: bool) -> Arc<Self> {
        Arc::new(Self { wrong_drafts, calls: AtomicUsize::new(0), temperatures: Mutex::new(Vec::new()) })
    }
}

fn number(text: &str) -> u64 {
    text.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).next().unwrap_or(0)
}

#[async_trait]
impl ChatModel for Scripted {
    fn info(&self) -> ModelInfo {
        ModelInfo::new("scripted:primes", "test")
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn chat(&self, request: &ChatRequest) -> Result<Completion, LlmError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.temperatures.lock().unwrap().push((request.purpose, request.params.temperature));
        let last = request.messages.last().map(|m| m.content.as_str()).unwrap_or("");
        let text = match request.purpose {
            Purpose::Critique if last.contains("divisible") || request.messages.iter().any(|m| m.content.contains("divisible")) => {
                json!({"verdict": "incorrect", "earliest_wrong_step": 0, "problems": ["it is prime"], "confidence": 0.9})
                    .to_string()
            }
            Purpose::Critique => {
                json!({"verdict": "correct", "earliest_wrong_step": -1, "problems": [], "confidence": 0.9}).to_string()
            }
            Purpose::Revise => {
                let n = request.messages.iter().map(|m| number(&m.content)).find(|n| *n > 3).unwrap_or(0);
                format!("Yes, {n} is a prime number.")
            }
            _ => {
                let n = number(last);
                let index = PRIMES.iter().position(|p| *p == n).unwrap_or(0);
                if self.wrong_drafts && index % 2 == 1 {
                    format!("No, {n} is divisible by 3.")
                } else {
                    format!("Yes, {n} is a prime number.")
                }
            }
        };
        Ok(Completion {
            model: "scripted".into(),
            choices: vec![Choice { text, finish_reason: FinishReason::Stop, logprobs: None }],
            usage: Usage { prompt_tokens: 10, completion_tokens: 5 },
            latency_ms: 0,
            rendered_prompt: None,
            seed: None,
        })
    }
}

fn options(tags: &[&str]) -> AskOptions {
    let mut o = AskOptions::builtin().unwrap().strategy(Strategy::Single).decompose(false);
    o.tags = tags.iter().map(|t| t.to_string()).collect();
    o
}

#[tokio::test]
async fn a_batch_of_fifty_forks_prints_which_verdicts_flipped() {
    let store = TraceStore::temporary().unwrap();
    let recorded = Scripted::new(true);
    for (i, p) in PRIMES.iter().enumerate() {
        let tags: &[&str] = if i < 40 { &["week-48"] } else { &[] };
        ask(&store, recorded.clone(), format!("Is {p} a prime number?"), &options(tags)).await.unwrap();
    }
    // A run the filter must leave out: an experiment (still running).
    store.create_run(run_kind::EVAL, json!({}), json!({}), None).await.unwrap();

    // The change: the critic strategy, on a model whose critic catches the wrong drafts.
    let live = Scripted::new(true);
    let options = BatchOptions { from_step: u32::MAX, change: "strategy=critic".parse().unwrap(), concurrency: 4 };
    let seen = Mutex::new(Vec::new());
    let progress = |done: usize, total: usize| seen.lock().unwrap().push((done, total));
    let agents = AgentSet::builtin().unwrap();
    let report =
        fork_batch(&store, "tag=week-48", &options, &ForkModels::live(live.clone()), &agents, &progress).await.unwrap();

    assert_eq!(report.selected, 40, "only the tagged runs");
    assert_eq!(report.pairs.len(), 40, "{:?}", report.skipped);
    let cell =
        |b: Verification, a: Verification| report.flips.iter().find(|f| f.before == b && f.after == a).unwrap().count;
    assert_eq!(cell(Verification::Refuted, Verification::Verified), 20, "every wrong draft was caught and revised");
    assert_eq!(cell(Verification::Verified, Verification::Verified), 20);
    assert_eq!(report.flips.iter().map(|f| f.count).sum::<usize>(), 40);
    assert_eq!(report.verdict_changed.value, Some(0.5));
    let (lo, hi) = (report.verdict_changed.low.unwrap(), report.verdict_changed.high.unwrap());
    assert!(lo < 0.5 && hi > 0.5 && lo > 0.3 && hi < 0.7, "[{lo}, {hi}]");
    assert_eq!((report.verified_before.value, report.verified_after.value), (Some(0.5), Some(1.0)));
    assert_eq!(report.verified_difference.value, Some(0.5));
    assert!(report.calls_after.value.unwrap() > report.calls_before.value.unwrap(), "critiques cost calls");
    assert_eq!(seen.lock().unwrap().last(), Some(&(40, 40)));
    // The drafts came from the record: the live model wrote critiques and revisions only.
    let purposes: Vec<Purpose> = live.temperatures.lock().unwrap().iter().map(|(p, _)| *p).collect();
    assert!(!purposes.contains(&Purpose::Answer), "{purposes:?}");

    // Stored: the group, its slots (each a fork whose parent is the original), and the
    // same report computed again from the store.
    let group = store.run(report.group).unwrap().unwrap();
    assert_eq!((group.kind.as_str(), group.status), (run_kind::FORKS, RunStatus::Completed));
    assert_eq!(store.members(report.group).unwrap().len(), 40);
    for pair in &report.pairs {
        let fork = store.run(pair.fork).unwrap().unwrap();
        assert_eq!(fork.parent, Some(pair.original));
        assert_eq!(fork.group.map(|g| g.run), Some(report.group));
    }
    assert_eq!(batch_report(&store, report.group).unwrap(), report);
    assert_eq!(serde_json::to_value(&report).unwrap(), group.output.unwrap());

    // Forks are not taken by a later batch; a filter that selects nothing says so.
    assert_eq!("all".parse::<RunFilter>().unwrap().select(&store).unwrap().len(), 50);
    let none = fork_batch(&store, "model=gpt-4o", &options, &ForkModels::live(live), &agents, &|_, _| {}).await;
    assert!(matches!(none, Err(Error::BadSelection { .. })), "{none:?}");
}

#[tokio::test]
async fn filters_select_by_verdict_time_and_limit_and_name_what_is_wrong() {
    let store = TraceStore::temporary().unwrap();
    let model = Scripted::new(true);
    for p in &PRIMES[..6] {
        ask(&store, model.clone(), format!("Is {p} a prime number?"), &options(&[])).await.unwrap();
    }
    let select = |f: &str| f.parse::<RunFilter>().unwrap().select(&store).unwrap().len();
    assert_eq!(select("verdict=refuted"), 3);
    assert_eq!(select("verdict=verified,limit=2"), 2);
    assert_eq!(select("kind=ask,model=scripted"), 6);
    assert_eq!(select("kind=serve"), 0);
    assert_eq!(select("since=2000-01-01,until=2999-01-01T00:00:00Z"), 6);
    assert_eq!(select("until=2000-01-01"), 0);
    for (bad, names) in [
        ("colour=red", "colour"),
        ("limit=0", "limit"),
        ("since=yesterday", "since"),
        ("verdict=maybe", "verdict"),
        ("kind=eval", "kind"),
        ("tag", "KEY=VALUE"),
    ] {
        let err = bad.parse::<RunFilter>().unwrap_err().to_string();
        assert!(err.contains(names), "{bad}: {err}");
    }
}

#[tokio::test]
async fn a_fork_can_change_an_agents_config_file_or_the_judges_model() {
    let store = TraceStore::temporary().unwrap();
    let model = Scripted::new(true);
    let original =
        ask(&store, model.clone(), "Is 7 a prime number?", &options(&[]).strategy(Strategy::Critic)).await.unwrap();

    // agent.critic=FILE: the critic's temperature from a new config file, live from step 0.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("critic.toml");
    let builtin = include_str!("../agents/critic.toml");
    let changed: String = builtin.lines().filter(|l| !l.starts_with("temperature")).collect::<Vec<_>>().join("\n");
    std::fs::write(&config, format!("temperature = 0.9\n{changed}\n")).unwrap();
    let live = Scripted::new(true);
    let change: AskChange = format!("agent.critic={}", config.display()).parse().unwrap();
    let agents = AgentSet::builtin().unwrap();
    let forked = fork(&store, original.trace_id, 0, &change, &ForkModels::live(live.clone()), &agents).await.unwrap();
    let temperatures = live.temperatures.lock().unwrap().clone();
    assert!(temperatures.iter().any(|(p, t)| *p == Purpose::Critique && (*t - 0.9).abs() < 1e-6), "{temperatures:?}");
    assert_eq!(store.run(forked.run_id).unwrap().unwrap().parent, Some(original.trace_id));

    // A config the agents would refuse is refused as the change, naming the file.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "temperature = 7.0\n").unwrap();
    let change: AskChange = format!("agent.critic={}", bad.display()).parse().unwrap();
    let err = fork(&store, original.trace_id, 0, &change, &ForkModels::live(live.clone()), &agents).await.unwrap_err();
    assert!(err.to_string().contains("bad.toml") && err.to_string().contains("temperature"), "{err}");
    let change: AskChange = format!("agent.oracle={}", config.display()).parse().unwrap();
    assert!(fork(&store, original.trace_id, 0, &change, &ForkModels::live(live.clone()), &agents).await.is_err());

    // judge_model=SPEC needs the judge's model; given one, the fork's record names it.
    let change: AskChange = "judge_model=scripted:judge".parse().unwrap();
    let err = fork(&store, original.trace_id, 0, &change, &ForkModels::live(live.clone()), &agents).await.unwrap_err();
    assert!(matches!(err, Error::BadChange { .. }), "{err}");
    let judge = Scripted::new(false);
    let models = ForkModels { live, judge: Some(judge) };
    let forked = fork(&store, original.trace_id, 0, &change, &models, &agents).await.unwrap();
    let record: recheck::orchestrator::AskRecord =
        serde_json::from_value(store.run(forked.run_id).unwrap().unwrap().config).unwrap();
    assert!(record.judge_model.is_some(), "the fork records its judge's model");
}
