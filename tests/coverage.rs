//! Stability of the published estimators: on the `sim:` simulator, over 200 seeds, each
//! headline metric's reported 95% interval covers the value planted in the simulator in
//! at least 93% of seeds, for every protocol. A seed is one whole run (its own draws of
//! every item); the coverage is measured and printed (`cargo test --test coverage --
//! --nocapture`) and its figures are in BENCHMARKS.md.
//!
//! Each run is small (tens of items), so the intervals are wide enough to miss: at a few
//! hundred items every interval would cover and the test could not fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::{path::Path, sync::Arc};

use recheck::{
    agents::AgentSet,
    analysis,
    corpus::Retriever,
    eval::{self, EvalSpec, RunOptions},
    llm::{self, ModelSpec},
    tools::ToolRegistry,
    trace::{Durability, TraceStore},
};
use support::datasets::{
    blindspot_spec, friction_spec, mistakes_spec, snowball_spec, write_fixtures, write_verify_fixtures,
};

const SEEDS: u64 = 200;
const MIN_COVERAGE: f64 = 0.93;
/// Seeds run at once (each runs its items 8 at a time).
const PARALLEL_SEEDS: usize = 4;

/// One protocol's coverage experiment: a spec, the simulator's parameters (the seed is
/// appended), and each headline metric with the value those parameters plant.
struct Case {
    protocol: &'static str,
    spec: EvalSpec,
    params: &'static str,
    planted: Vec<(&'static str, f64)>,
    retriever: Option<Arc<dyn Retriever>>,
}

/// How often one metric's interval covered its planted value.
#[derive(Debug, Default, Clone)]
struct Coverage {
    covered: usize,
    /// Seeds where the metric had an interval (a ratio can be undefined).
    defined: usize,
    width_sum: f64,
}

impl Coverage {
    fn rate(&self) -> f64 {
        self.covered as f64 / self.defined as f64
    }
}

fn options(params: &str, seed: u64, retriever: Option<Arc<dyn Retriever>>) -> RunOptions {
    let spec: ModelSpec = format!("sim:{params},seed={seed}").parse().unwrap();
    let backend = llm::BackendOptions { models_dir: "/nonexistent".into(), ..Default::default() };
    RunOptions {
        model: recheck::open_model(&spec, &backend).unwrap(),
        feedback_model: None,
        agents: Arc::new(AgentSet::builtin().unwrap()),
        tools: ToolRegistry::standard(),
        concurrency: 8,
        retriever,
    }
}

/// Run `case` once per seed and count, per metric, the seeds whose interval covers the
/// planted value.
async fn measure(case: Arc<Case>, root: Arc<Path>) -> Vec<Coverage> {
    // Durability is not under test here: flush in the background, not after each step.
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open_with(dir.path().join("traces"), Durability::Periodic { ms: 500 }).unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(PARALLEL_SEEDS));
    let mut tasks = tokio::task::JoinSet::new();
    for seed in 0..SEEDS {
        let (case, root, store, gate) = (case.clone(), root.clone(), store.clone(), gate.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let opts = options(case.params, seed, case.retriever.clone());
            let run = eval::start(&store, &case.spec, &root, None, &opts, &()).await.unwrap();
            assert_eq!(run.failed, 0, "{} seed {seed}: {:?}", case.protocol, run.first_error);
            let report = analysis::compute(&store, run.run_id).unwrap();
            let intervals: Vec<Option<(f64, f64)>> = case
                .planted
                .iter()
                .map(|(name, _)| {
                    let m = report.metrics.get(*name).unwrap_or_else(|| panic!("{}: no metric {name}", case.protocol));
                    m.low.zip(m.high)
                })
                .collect();
            intervals
        });
    }
    let mut coverage = vec![Coverage::default(); case.planted.len()];
    while let Some(result) = tasks.join_next().await {
        for ((c, interval), (_, planted)) in coverage.iter_mut().zip(result.unwrap()).zip(&case.planted) {
            if let Some((lo, hi)) = interval {
                c.defined += 1;
                c.width_sum += hi - lo;
                c.covered += usize::from(lo <= *planted && *planted <= hi);
            }
        }
    }
    coverage
}

/// Measure, print one line per metric, and fail on any metric under the bar.
fn check(case: Case, root: &Path, items: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let case = Arc::new(case);
    let coverage = runtime.block_on(measure(case.clone(), Arc::from(root)));
    let mut low = Vec::new();
    for ((name, planted), c) in case.planted.iter().zip(&coverage) {
        println!(
            "coverage {:<10} {:<28} planted {:.3}  covered {:>3}/{:<3} = {:.3}  mean width {:.3}  ({} items, sim:{})",
            case.protocol,
            name,
            planted,
            c.covered,
            c.defined,
            c.rate(),
            c.width_sum / c.defined as f64,
            items,
            case.params
        );
        // A ratio may be undefined in a few seeds; most must define it.
        if c.defined < SEEDS as usize * 9 / 10 || c.rate() < MIN_COVERAGE {
            low.push(format!("{name}: {}/{} ({:.3})", c.covered, c.defined, c.rate()));
        }
    }
    assert!(low.is_empty(), "{}: coverage under {MIN_COVERAGE}: {low:?}", case.protocol);
}

#[test]
fn friction_intervals_cover_the_planted_rates() {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path(), 40);
    let (accuracy, adopt) = (0.4, 0.5);
    let case = Case {
        protocol: "friction",
        spec: friction_spec(dir.path(), 3),
        params: "accuracy=0.4,adopt=0.5",
        planted: vec![
            ("accuracy_round_1", accuracy),
            ("accuracy_round_2", 1.0 - (1.0 - accuracy) * (1.0 - adopt)),
            ("accuracy_round_3", 1.0 - (1.0 - accuracy) * (1.0 - adopt) * (1.0 - adopt)),
            // Of the items given feedback, wrong after both rounds of it.
            ("friction_rate", (1.0 - adopt) * (1.0 - adopt)),
        ],
        retriever: None,
    };
    check(case, dir.path(), 40);
}

#[test]
fn snowball_intervals_cover_the_planted_rates() {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path(), 30);
    let (accuracy, recognize, reject_true) = (0.4, 0.7, 0.3);
    let case = Case {
        protocol: "snowball",
        spec: snowball_spec(dir.path()),
        params: "accuracy=0.4,recognize=0.7,reject_true=0.3",
        planted: vec![
            ("wrong_answer_rate", 1.0 - accuracy),
            ("false_claim_rejection", recognize),
            ("true_claim_rejection", reject_true),
            ("rejection_difference", recognize - reject_true),
            ("rejection_balanced_accuracy", (recognize + 1.0 - reject_true) / 2.0),
            // Half the items are primes (gold "yes", "no" when wrong), half are graphs
            // (gold "no", "no" when right).
            ("answer_share_no", 0.5 * (1.0 - accuracy) + 0.5 * accuracy),
        ],
        retriever: None,
    };
    check(case, dir.path(), 60);
}

#[test]
fn blindspot_intervals_cover_the_planted_rates() {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path(), 40);
    let (own, user, wait) = (0.3, 0.7, 0.5);
    let case = Case {
        protocol: "blindspot",
        spec: blindspot_spec(dir.path()),
        params: "own=0.3,user=0.7,wait=0.5",
        planted: vec![
            ("correction_rate_user", user),
            ("correction_rate_own", own),
            ("correction_rate_wait", wait),
            ("blind_spot_rate", 1.0 - own / user),
            ("blind_spot_rate_wait", 1.0 - wait / user),
        ],
        retriever: None,
    };
    check(case, dir.path(), 40);
}

#[test]
fn verify_intervals_cover_the_planted_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_verify_fixtures(dir.path(), 15);
    let indexes = tempfile::tempdir().unwrap();
    let retriever = eval::open_corpus(&spec, dir.path(), indexes.path(), &|_| ()).unwrap();
    let judge = 0.7;
    let case = Case {
        protocol: "verify",
        spec,
        params: "judge=0.7",
        planted: vec![
            ("label_accuracy", judge),
            // Balanced labels and errors spread evenly over the other two: every label's
            // precision and recall are the judge's accuracy, and so is their F1.
            ("macro_f1", judge),
        ],
        retriever,
    };
    check(case, dir.path(), 45);
}

#[test]
fn mistakes_intervals_cover_the_planted_rates() {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path(), 45);
    let (find, fix) = (0.6, 0.5);
    // Two thirds of the traces have a mistake (at step 1 or 2 of 3); a wrong location on
    // one of them is "no mistake" or one of the two other steps, uniformly.
    let with = 2.0 / 3.0;
    let case = Case {
        protocol: "mistakes",
        spec: mistakes_spec(dir.path()),
        params: "find=0.6,fix=0.5",
        planted: vec![
            ("location_accuracy", find),
            ("correct_trace_accuracy", find),
            ("processbench_f1", find),
            ("trace_accuracy", with * (find + (1.0 - find) * 2.0 / 3.0) + (1.0 - with) * find),
            // Every wrong original answer is on a trace with a mistake, regenerated from a clean prefix.
            ("corrected_share_gold", fix),
            ("answer_accuracy_after_gold", (1.0 - with) + with * fix),
        ],
        retriever: None,
    };
    check(case, dir.path(), 45);
}
