//! recheck's own cost per model call: N questions through `single` or a 3-round
//! `self-refine` loop against an OpenAI-compatible server, measuring wall time, this
//! process's CPU time (getrusage) and peak RSS. Every run is recorded durably in a
//! trace store on disk, as in normal use.
//!
//! Run against a server (see `scripts/bench-peers.sh`, which starts
//! `examples/fixed_reply_server.rs` in its own process):
//! `cargo bench --bench pipeline -- --base-url http://127.0.0.1:PORT/v1 --n 200 --concurrency 1 --strategy single`
//! `--durability periodic` flushes steps every 200 ms instead of before each next step.
//! Prints one JSON object and appends it to `target/bench/pipeline.jsonl`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{io::Write, sync::Arc, time::Instant};

use recheck::{
    agents::AgentSet,
    llm::{ChatModel, OpenAiBackend, OpenAiOptions, RetryConfig},
    orchestrator::{self, AskOptions, LoopOptions, Strategy},
    trace::{Durability, TraceStore},
};
use serde_json::json;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned()).unwrap_or_else(|| default.to_string())
}

#[tokio::main]
async fn main() {
    let Some(base_url) = std::env::args().skip_while(|a| a != "--base-url").nth(1) else {
        eprintln!("pipeline bench: needs --base-url URL of a server (scripts/bench-peers.sh starts one); skipping");
        return;
    };
    let n: usize = arg("--n", "200").parse().expect("--n N");
    let concurrency: usize = arg("--concurrency", "1").parse().expect("--concurrency N");
    let strategy: Strategy = arg("--strategy", "single").parse().expect("--strategy");
    let rounds: u32 = arg("--rounds", "3").parse().expect("--rounds N");
    let options = OpenAiOptions {
        base_url,
        api_key: Some("bench".into()),
        retry: RetryConfig { max_retries: 0, ..Default::default() },
        max_concurrency: concurrency,
        prefill: false,
        max_reply_bytes: recheck::llm::DEFAULT_MAX_REPLY_BYTES,
    };
    let model: Arc<dyn ChatModel> = Arc::new(OpenAiBackend::new("fixed", options).unwrap());
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    // `--durability periodic` measures recheck without a flush per step.
    let durability = match arg("--durability", "every-step").as_str() {
        "periodic" => Durability::Periodic { ms: 200 },
        _ => Durability::EveryStep,
    };
    let store = TraceStore::open_with(dir.path(), durability).unwrap();
    let ask = Arc::new(AskOptions {
        loop_options: LoopOptions { strategy, rounds, max_calls: 100, ..Default::default() },
        context_passages: 0,
        // The loop alone: no decomposer call after it.
        verify: recheck::orchestrator::VerifyOptions { decompose: false, ..Default::default() },
        ..AskOptions::new(Arc::new(AgentSet::builtin().unwrap()))
    });
    // Warm-up: connections, templates, first store writes.
    let _ = orchestrator::ask(&store, model.clone(), "warm-up question?", &ask).await;
    let (cpu0, wall) = (common::cpu_ms(), Instant::now());
    let limit = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let permit = limit.clone().acquire_owned().await.unwrap();
        let (store, model, ask) = (store.clone(), model.clone(), ask.clone());
        tasks.spawn(async move {
            let out = orchestrator::ask(&store, model, &format!("Question number {i}: is {i} even?"), &ask).await;
            drop(permit);
            out.map(|o| o.model_calls)
        });
    }
    let (mut calls, mut errors) = (0u64, 0usize);
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            Ok(c) => calls += u64::from(c),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    let (wall_s, cpu) = (wall.elapsed().as_secs_f64(), common::cpu_ms() - cpu0);
    let report = json!({
        "tool": "recheck", "strategy": strategy.name(), "durability": format!("{durability:?}"), "rounds": rounds, "concurrency": concurrency, "questions": n,
        "model_calls": calls, "errors": errors, "first_error": first_error,
        "wall_s": wall_s, "cpu_ms": cpu, "cpu_ms_per_call": cpu / calls.max(1) as f64,
        "cpu_ms_per_question": cpu / n as f64, "calls_per_s": calls as f64 / wall_s,
        "peak_rss_mb": common::peak_rss_mb(),
    });
    println!("{report}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(out.join("pipeline.jsonl")) {
        let _ = writeln!(f, "{report}");
    }
}
