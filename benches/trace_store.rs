//! Trace store, analysis and replay throughput, on disk with the store's durability
//! (each step synced before its writer goes on, as before a model call):
//! - the disk's own limit: fsync latency (p50, p99) of a step-sized append with
//!   `fdatasync` on the same file system, and the steps/s that allows one writer;
//! - steps/s written by one writer and by 64 / 256 concurrent writers (group commit),
//!   each beside that limit (one writer: one fsync a step; many: one fsync a flush,
//!   times the steps a flush carried). Disk and writers are measured in turn, 5 rounds,
//!   and each figure is given as median [min, max];
//! - a 10,000-item friction experiment on the `sim:` simulator (items/s, steps);
//! - runs listed/s, export MB/s, the time to compute the report over the 10k item
//!   runs, and replay items/s (recorded replies, no model calls).
//!
//! Run: `cargo bench --bench trace_store` (writes `target/bench/trace_store.json`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{sync::Arc, time::Instant};

use chrono::Utc;
use recheck::{
    agents::AgentSet,
    analysis,
    eval::{self, EvalSpec, RunOptions},
    llm::{self, ChatRequest, Choice, Completion, FinishReason, Message, ModelInfo, Purpose, SamplingParams, Usage},
    tools::ToolRegistry,
    trace::{RunId, StepPayload, StepRecord, TraceStore, SCHEMA_VERSION},
};
use serde_json::json;

/// A model-call step of realistic size (~1.3 KB of JSON).
fn step(run: RunId, index: u32) -> StepRecord {
    let prompt = "Is 7411 a prime number? Think step by step, then answer yes or no. ".repeat(8);
    let request = ChatRequest {
        messages: vec![Message::user(prompt)],
        params: SamplingParams { max_tokens: 256, seed: Some(7), ..Default::default() },
        purpose: Purpose::Answer,
    };
    let response = Completion {
        model: "bench".into(),
        choices: vec![Choice {
            text: "No, 7411 is not prime: it is divisible by 7, since 7 x 1058 = 7406. ".repeat(3),
            finish_reason: FinishReason::Stop,
            logprobs: None,
        }],
        usage: Usage { prompt_tokens: 140, completion_tokens: 60 },
        latency_ms: 40,
        rendered_prompt: None,
        seed: Some(7),
    };
    let model = ModelInfo::new("bench", "bench");
    StepRecord {
        schema: SCHEMA_VERSION,
        run_id: run,
        index,
        agent: "solver".into(),
        started_at: Utc::now(),
        latency_ms: 40,
        payload: StepPayload::ModelCall { model, request, response: Some(response) },
        error: None,
    }
}

/// fsync latencies (ms, sorted) of `n` appends of `bytes` bytes with `fdatasync`, in `dir`.
fn fsync_latencies(dir: &std::path::Path, bytes: usize, n: usize) -> Vec<f64> {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
    let record = vec![b'x'; bytes];
    let mut ms: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            file.write_all(&record).unwrap();
            file.sync_data().unwrap();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    std::fs::remove_file(&path).unwrap();
    ms.sort_by(f64::total_cmp);
    ms
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Median and range of `xs`, as `{median, min, max}`.
fn spread(mut xs: Vec<f64>) -> serde_json::Value {
    xs.sort_by(f64::total_cmp);
    json!({ "median": quantile(&xs, 0.5), "min": xs[0], "max": xs[xs.len() - 1] })
}

/// `writers` tasks each append `per_writer` steps to their own run, each synced as
/// before a model call; returns steps/s and flushes.
async fn write_steps(store: &TraceStore, writers: usize, per_writer: u32) -> serde_json::Value {
    let flushes0 = store.flush_count();
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..writers {
        let store = store.clone();
        tasks.spawn(async move {
            let run = store.create_run("bench", json!({}), json!({}), None).await.unwrap();
            for i in 0..per_writer {
                store.append_step(&step(run.id, i)).await.unwrap();
                store.sync_steps().await.unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    let steps = writers as f64 * f64::from(per_writer);
    let flushes = store.flush_count() - flushes0;
    json!({ "writers": writers, "steps": steps, "seconds": secs, "steps_per_s": steps / secs,
            "flushes": flushes, "steps_per_flush": steps / flushes.max(1) as f64 })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let scratch = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&scratch).unwrap();
    let dir = tempfile::tempdir_in(&scratch).unwrap();
    let store = TraceStore::open(dir.path().join("traces")).unwrap();

    // The disk and the store in turn, five rounds: the fsync latency of a shared disk
    // drifts, so each round's writes are set beside that round's disk.
    let step_bytes = serde_json::to_vec(&step(RunId::new(), 0)).unwrap().len();
    let cells = [(1usize, 2_000u32), (64, 200), (256, 100)];
    let mut disk_p50 = Vec::new();
    let mut disk_p99 = Vec::new();
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); cells.len()];
    let mut to_limit: Vec<Vec<f64>> = vec![Vec::new(); cells.len()];
    let mut per_flush: Vec<Vec<f64>> = vec![Vec::new(); cells.len()];
    for round in 0..5 {
        let lat = fsync_latencies(dir.path(), step_bytes, 500);
        let p50 = quantile(&lat, 0.5);
        disk_p50.push(p50);
        disk_p99.push(quantile(&lat, 0.99));
        for (k, (writers, per)) in cells.iter().enumerate() {
            let row = write_steps(&store, *writers, *per).await;
            let (steps_per_s, steps_per_flush) =
                (row["steps_per_s"].as_f64().unwrap(), row["steps_per_flush"].as_f64().unwrap());
            // The disk's limit for this cell: one fsync per flush, each carrying the
            // steps a flush carried here.
            let limit = 1000.0 / p50 * steps_per_flush;
            eprintln!("round {round}: {writers} writers {steps_per_s:.0} steps/s, {steps_per_flush:.1} steps a flush, disk limit {limit:.0} steps/s (fsync p50 {p50:.3} ms): {:.2}x the limit", steps_per_s / limit);
            rates[k].push(steps_per_s);
            to_limit[k].push(steps_per_s / limit);
            per_flush[k].push(steps_per_flush);
        }
    }
    let writes: Vec<serde_json::Value> = cells
        .iter()
        .enumerate()
        .map(|(k, (writers, _))| {
            json!({ "writers": writers, "steps_per_s": spread(rates[k].clone()),
                    "steps_per_flush": spread(per_flush[k].clone()), "share_of_disk_limit": spread(to_limit[k].clone()) })
        })
        .collect();
    let disk = json!({ "step_bytes": step_bytes, "fsync_p50_ms": spread(disk_p50.clone()), "fsync_p99_ms": spread(disk_p99),
                       "one_writer_limit_steps_per_s": spread(disk_p50.iter().map(|p| 1000.0 / p).collect()) });
    eprintln!("disk: {disk}");

    // A 10k-item experiment on the simulator, with the runner's own concurrency.
    let items = 10_000;
    let data = dir.path().join("multiplication.jsonl");
    let lines: String = (0..items)
        .map(|i| format!("{}\n", json!({ "question": format!("What is {} * {}?", 10_000 + i, 20_000 + i), "answer": ((10_000 + i) * (20_000 + i)).to_string() })))
        .collect();
    std::fs::write(&data, lines).unwrap();
    let spec: EvalSpec = toml::from_str(&format!(
        "name = \"bench\"\nprotocol = \"friction\"\nrounds = 3\n[[datasets]]\nloader = \"jsonl\"\npath = \"{}\"\nanswer = \"number\"\n",
        data.display()
    ))
    .unwrap();
    let sim = recheck::open_model(
        &"sim:accuracy=0.3,adopt=0.5,seed=1".parse().unwrap(),
        &llm::BackendOptions { models_dir: dir.path().into(), ..Default::default() },
    )
    .unwrap();
    let opts = RunOptions {
        model: sim,
        feedback_model: None,
        agents: Arc::new(AgentSet::builtin().unwrap()),
        tools: ToolRegistry::standard(),
        concurrency: 64,
        retriever: None,
    };
    let t = Instant::now();
    let run = eval::start(&store, &spec, dir.path(), None, &opts, &()).await.unwrap();
    let eval_s = t.elapsed().as_secs_f64();
    let steps: usize = store.members(run.run_id).unwrap().iter().map(|(_, m)| store.step_count(*m).unwrap()).sum();
    eprintln!("experiment: {items} items, {steps} steps in {eval_s:.2} s");

    let t = Instant::now();
    let listed = store.list_runs().unwrap().len();
    let list_s = t.elapsed().as_secs_f64();

    let export = dir.path().join("all.jsonl");
    let t = Instant::now();
    let counts = store.export_jsonl(&export, &[]).unwrap();
    let export_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let report = analysis::compute(&store, run.run_id).unwrap();
    let report_s = t.elapsed().as_secs_f64();
    assert_eq!(report.n, items);

    let t = Instant::now();
    let replay = eval::replay(&store, run.run_id, &opts).await.unwrap();
    let replay_s = t.elapsed().as_secs_f64();
    assert!(replay.identical);

    let out = json!({
        "disk": disk,
        "writes": writes,
        "experiment": { "items": items, "steps": steps, "seconds": eval_s, "items_per_s": items as f64 / eval_s,
                        "steps_per_s": steps as f64 / eval_s },
        "list": { "runs": listed, "seconds": list_s, "runs_per_s": listed as f64 / list_s },
        "export": { "runs": counts.runs, "steps": counts.steps, "mb": counts.bytes as f64 / 1e6,
                    "seconds": export_s, "mb_per_s": counts.bytes as f64 / 1e6 / export_s },
        "report": { "item_runs": report.n, "seconds": report_s },
        "replay": { "items": items, "seconds": replay_s, "items_per_s": items as f64 / replay_s, "identical": replay.identical },
        "peak_rss_mb": common::peak_rss_mb(),
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
    common::write_json("trace_store", &out);
}
