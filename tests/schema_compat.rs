//! Runs stored before the typed outcomes (trace schema 1) still load, report the
//! metrics the old build reported (beside metrics added since), and replay identically.
//!
//! `tests/fixtures/schema1-runs.jsonl` was exported by recheck at commit b37cea5 from
//! experiments on the `sim:` simulator over our own small datasets (friction,
//! snowball, blind spot, and a friction fork); `schema1-metrics.json` holds the
//! metrics that build's `eval report --json` printed for each experiment.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{collections::BTreeMap, path::Path, sync::Arc};

use recheck::{
    agents::AgentSet,
    analysis::{self, Metric},
    eval::{self, RunOptions},
    llm::{ModelInfo, ReplayModel},
    tools::ToolRegistry,
    trace::{ItemOutcome, RunId, TraceStore},
};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn imported() -> TraceStore {
    let store = TraceStore::temporary().unwrap();
    let counts = store.import_jsonl(&fixture("schema1-runs.jsonl")).unwrap();
    assert_eq!(counts.runs, 34);
    store
}

fn expected() -> BTreeMap<String, BTreeMap<String, Metric>> {
    serde_json::from_str(&std::fs::read_to_string(fixture("schema1-metrics.json")).unwrap()).unwrap()
}

#[test]
fn schema_1_runs_report_the_metrics_the_old_build_reported() {
    let store = imported();
    let expected = expected();
    assert_eq!(expected.len(), 4);
    for (id, metrics) in &expected {
        let id: RunId = id.parse().unwrap();
        let report = analysis::compute(&store, id).unwrap();
        // Every metric the old build reported, unchanged; new ones only from this list.
        // The blind-spot ratios were redefined: below 10 corrections in the user
        // condition they are undefined, with the count as the reason.
        let corrections = report.counts.get("corrections in the user condition").copied();
        for (name, old) in metrics {
            let now = &report.metrics[name];
            if name.starts_with("blind_spot_rate") && corrections.is_some_and(|c| c < 10) {
                let why = format!("{} corrections in the user condition", corrections.unwrap_or(0));
                assert!(
                    now.value.is_none() && now.undefined.as_deref().is_some_and(|u| u.starts_with(&why)),
                    "{now:?}"
                );
                continue;
            }
            assert_eq!(now, old, "experiment {id}: {name}");
        }
        let added = ["answer_share_no", "gold_share_no"];
        let new: Vec<&String> = report.metrics.keys().filter(|k| !metrics.contains_key(*k)).collect();
        assert!(new.iter().all(|k| added.contains(&k.as_str())), "experiment {id}: new metrics {new:?}");
        let outcomes = analysis::item_outcomes(&store, id).unwrap();
        assert_eq!(outcomes.len(), report.n);
        assert!(outcomes.values().all(|o| o.protocol() == report.protocol));
    }
}

#[tokio::test]
async fn schema_1_runs_replay_identically() {
    let store = imported();
    for id in expected().keys() {
        let id: RunId = id.parse().unwrap();
        let model = Arc::new(ReplayModel::exact(ModelInfo::new("recorded", "replay"), vec![]));
        let opts = RunOptions {
            model,
            feedback_model: None,
            agents: Arc::new(AgentSet::builtin().unwrap()),
            tools: ToolRegistry::standard(),
            concurrency: 4,
            retriever: None,
        };
        let replayed = eval::replay(&store, id, &opts).await.unwrap();
        assert!(replayed.identical, "{id}: {:?}", replayed.differences);
    }
}

#[test]
fn an_outcome_that_does_not_match_is_refused_with_the_run_named() {
    let store = TraceStore::temporary().unwrap();
    let text = std::fs::read_to_string(fixture("schema1-runs.jsonl")).unwrap();
    // Rename a field of one friction outcome, as a future or foreign writer might.
    let broken: String = text.replacen("\"max_rounds\"", "\"round_limit\"", 1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.jsonl");
    std::fs::write(&file, broken).unwrap();
    store.import_jsonl(&file).unwrap();
    let friction: RunId = expected()
        .keys()
        .map(|k| k.parse().unwrap())
        .find(|id| {
            analysis::item_outcomes(&imported(), *id).unwrap().values().any(|o| matches!(o, ItemOutcome::Friction(_)))
        })
        .unwrap();
    let err = analysis::compute(&store, friction).unwrap_err().to_string();
    assert!(err.contains("item run") && err.contains("max_rounds"), "{err}");
}
