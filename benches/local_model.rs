//! Embedded-model speed: prompt tokens/s, generation tokens/s and peak RSS on a fixed
//! ~400-token prompt with 100 generated tokens, through the public `ChatModel` API.
//!
//! Run: `cargo bench --bench local_model` (writes `target/bench/local_model.json`).
//! Needs the default model; it is fetched into the cache under RECHECK_HOME (or the
//! platform data dir) as `recheck model fetch` would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::peak_rss_mb;

use std::time::Instant;

use std::num::NonZeroU32;

use llama_cpp_2::{
    context::params::LlamaContextParams, llama_batch::LlamaBatch, model::params::LlamaModelParams, model::LlamaModel,
    sampling::LlamaSampler,
};
use recheck::{
    home::Home,
    llm::{local::cache, local::llama_backend, local::LocalBackend, ChatModel, ChatRequest, Message, SamplingParams},
};

const RUNS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn threads() -> i32 {
    std::thread::available_parallelism().map(|n| n.get() as i32).unwrap_or(2)
}

/// Prompt and generation tokens/s of a bare decode loop on llama.cpp: same file,
/// threads, context and batch sizes as the backend, greedy, no template or channel.
fn raw_llama(path: &std::path::Path, prompt: &str, threads: i32) -> (f64, f64) {
    let backend = llama_backend().unwrap();
    let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default()).unwrap();
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(4096))
        .with_n_batch(512)
        .with_n_ubatch(512)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = model.new_context(backend, params).unwrap();
    let tokens = model.vocab().tokenize(prompt.as_bytes(), true, true);
    let (mut prompt_rates, mut gen_rates) = (Vec::new(), Vec::new());
    for _ in 0..=RUNS {
        ctx.clear_kv_cache();
        let mut batch = LlamaBatch::new(512, 1);
        let t = Instant::now();
        for (i, tok) in tokens.iter().enumerate() {
            batch.add(*tok, i as i32, &[0], i + 1 == tokens.len()).unwrap();
        }
        ctx.decode(&mut batch).unwrap();
        let prefill = t.elapsed().as_secs_f64();
        let mut sampler = LlamaSampler::greedy();
        let mut idx = batch.n_tokens() - 1;
        let start = tokens.len() as i32;
        let t = Instant::now();
        for pos in start..start + 100 {
            let tok = sampler.sample(&ctx, idx);
            let mut one = LlamaBatch::new(1, 1);
            one.add(tok, pos, &[0], true).unwrap();
            ctx.decode(&mut one).unwrap();
            idx = 0;
        }
        let gen = t.elapsed().as_secs_f64();
        prompt_rates.push(tokens.len() as f64 / prefill);
        gen_rates.push(100.0 / gen);
    }
    (median(prompt_rates[1..].to_vec()), median(gen_rates[1..].to_vec()))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, path] = args.as_slice() {
        if flag == "--raw" {
            let prompt = std::env::var("RECHECK_BENCH_PROMPT").unwrap();
            let (p, g) = raw_llama(std::path::Path::new(path), &prompt, threads());
            let out = serde_json::json!({"prompt_tokens_per_s_median": p, "generation_tokens_per_s_median": g, "peak_rss_mb": peak_rss_mb()});
            println!("{out}");
            return;
        }
    }
    let home = Home::resolve(std::env::var_os("RECHECK_HOME").map(Into::into)).unwrap();
    home.ensure().unwrap();
    let path = cache::ensure_default_model(&home.models_dir(), false, &|l| eprintln!("{l}")).unwrap();
    let model = LocalBackend::shared(&path, "local").unwrap();

    // A fixed passage of about 400 tokens, then a request that keeps the model talking.
    let passage = "The lighthouse keeper climbed the spiral stairs each evening, counting the steps, \
        checking the lamp, and writing the weather into a leather logbook. "
        .repeat(14);
    let messages = vec![Message::user(format!("{passage}\nContinue this story at length."))];
    let params = |max_tokens| SamplingParams { max_tokens, ..Default::default() };

    // Warm up once (page in the weights).
    model.chat(&ChatRequest::new(messages.clone()).with_params(params(4))).await.unwrap();

    let (mut prompt_rates, mut gen_rates) = (Vec::new(), Vec::new());
    let (mut prompt_tokens, mut gen_tokens) = (0, 0);
    for _ in 0..RUNS {
        let t = Instant::now();
        let one = model.chat(&ChatRequest::new(messages.clone()).with_params(params(1))).await.unwrap();
        let prefill_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let full = model.chat(&ChatRequest::new(messages.clone()).with_params(params(100))).await.unwrap();
        let full_s = t.elapsed().as_secs_f64();
        prompt_tokens = one.usage.prompt_tokens;
        gen_tokens = full.usage.completion_tokens;
        prompt_rates.push(prompt_tokens as f64 / prefill_s);
        // Generation time = full call minus the prompt pass (and its first token).
        gen_rates.push((gen_tokens.saturating_sub(1)) as f64 / (full_s - prefill_s).max(1e-9));
    }
    // The same work straight on llama.cpp (through the thin llama-cpp-2 bindings), in a
    // child process so the two llama.cpp thread pools never compete: the reference our
    // backend's overhead is measured against.
    let prompt = model.render(&messages).unwrap();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--raw", path.to_str().unwrap()])
        .env("RECHECK_BENCH_PROMPT", &prompt)
        .output()
        .unwrap();
    let raw: serde_json::Value = serde_json::from_slice(&child.stdout).unwrap();

    let report = serde_json::json!({
        "model": cache::DEFAULT_MODEL_FILE,
        "threads": threads(),
        "prompt_tokens": prompt_tokens,
        "generated_tokens": gen_tokens,
        "runs": RUNS,
        "prompt_tokens_per_s_median": median(prompt_rates),
        "generation_tokens_per_s_median": median(gen_rates),
        "raw_llama_cpp": raw,
        "peak_rss_mb": peak_rss_mb(),
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("local_model.json"), report.to_string()).unwrap();
}
