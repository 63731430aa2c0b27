//! recheck's own cost per model call: N questions through `single` or a 3-round
//! `self-refine` loop against an OpenAI-compatible server, measuring wall time, this
//! process's CPU time (getrusage) and peak RSS. Every run is recorded durably in a
//! trace store on disk, as in normal use.
//!
//! Run against a server (see `scripts/bench-peers.sh`, which starts
//! `examples/fixed_reply_server.rs` in its own process):
//! `cargo bench --bench pipeline -- --base-url http://127.0.0.1:PORT/v1 --n 200 --concurrency 1 --strategy single`
//! `--durability periodic` flushes steps every 200 ms instead of before each next step.
//! `--floor` measures the limit instead: the same calls with no recheck (a reqwest
//! POST, typed serde request and reply) plus one durable append of the step's bytes
//! (write + fdatasync) a call.
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
    if std::env::args().any(|a| a == "--floor") {
        return floor::run(&base_url, n, concurrency).await;
    }
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
    emit(&report);
}

/// Print `report` and append it to `target/bench/pipeline.jsonl`.
fn emit(report: &serde_json::Value) {
    println!("{report}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(out.join("pipeline.jsonl")) {
        let _ = writeln!(f, "{report}");
    }
}

/// The floor a durable recheck call can approach: the model call with nothing around
/// it, and one durable append of what recheck would store for it.
mod floor {
    use std::{
        io::Write,
        sync::{Arc, Mutex},
        time::Instant,
    };

    use serde::{Deserialize, Serialize};
    use serde_json::json;

    #[derive(Serialize)]
    struct Request<'a> {
        model: &'a str,
        messages: Vec<Message>,
        temperature: f32,
        max_tokens: u32,
    }

    #[derive(Serialize, Deserialize, Clone)]
    struct Message {
        role: String,
        content: String,
    }

    #[derive(Deserialize, Serialize)]
    struct Reply {
        choices: Vec<Choice>,
        #[serde(default)]
        usage: Option<Usage>,
    }

    #[derive(Deserialize, Serialize)]
    struct Choice {
        message: Message,
        #[serde(default)]
        finish_reason: Option<String>,
    }

    #[derive(Deserialize, Serialize)]
    struct Usage {
        prompt_tokens: u32,
        completion_tokens: u32,
    }

    /// What is appended per call: the request and the reply, as a trace step holds them.
    #[derive(Serialize)]
    struct Step<'a> {
        index: usize,
        request: &'a Request<'a>,
        reply: &'a Reply,
    }

    pub async fn run(base_url: &str, n: usize, concurrency: usize) {
        let client = reqwest::Client::new();
        let url = format!("{}/chat/completions", base_url.trim_end_matches('/'));
        let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.path().join("steps.log")).unwrap();
        let log = Arc::new(Mutex::new(log));
        let step_bytes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let call = |i: usize| {
            let (client, url, log, step_bytes) = (client.clone(), url.clone(), log.clone(), step_bytes.clone());
            async move {
                let request = Request {
                    model: "fixed",
                    messages: vec![Message {
                        role: "user".into(),
                        content: format!("Question number {i}: is {i} even?"),
                    }],
                    temperature: 0.0,
                    max_tokens: 512,
                };
                let body = serde_json::to_vec(&request).unwrap();
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("authorization", "Bearer bench")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let reply: Reply = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
                let mut line = serde_json::to_vec(&Step { index: i, request: &request, reply: &reply }).unwrap();
                // As big as a recheck model-call step (~1.3 KB: it also holds the model's
                // identity, the sampling parameters and timings).
                line.resize(line.len().max(1300), b' ');
                line.push(b'\n');
                step_bytes.store(line.len(), std::sync::atomic::Ordering::Relaxed);
                // One durable append a call, on the calling thread as recheck's flush is.
                let file = log.lock().unwrap();
                (&*file).write_all(&line).unwrap();
                file.sync_data().unwrap();
            }
        };
        call(usize::MAX).await; // warm-up: the connection
        let (cpu0, wall) = (super::common::cpu_ms(), Instant::now());
        let limit = Arc::new(tokio::sync::Semaphore::new(concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let permit = limit.clone().acquire_owned().await.unwrap();
            let fut = call(i);
            tasks.spawn(async move {
                fut.await;
                drop(permit);
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.unwrap();
        }
        let (wall_s, cpu) = (wall.elapsed().as_secs_f64(), super::common::cpu_ms() - cpu0);
        super::emit(&json!({
            "tool": "floor", "strategy": "single", "concurrency": concurrency, "questions": n,
            "model_calls": n, "errors": 0, "wall_s": wall_s, "cpu_ms": cpu,
            "cpu_ms_per_call": cpu / n as f64, "cpu_ms_per_question": cpu / n as f64,
            "calls_per_s": n as f64 / wall_s, "step_bytes": step_bytes.load(std::sync::atomic::Ordering::Relaxed),
            "peak_rss_mb": super::common::peak_rss_mb(),
        }));
    }
}
