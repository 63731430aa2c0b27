//! Embedded-model speed: prompt tokens/s, generation tokens/s and peak RSS on a fixed
//! ~400-token prompt with 100 generated tokens, through the public `ChatModel` API.
//!
//! Run: `cargo bench --bench local_model` (writes `target/bench/local_model.json`).
//! Needs the default model; it is fetched into the cache under RECHECK_HOME (or the
//! platform data dir) as `recheck model fetch` would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use recheck::{
    home::Home,
    llm::{local::cache, local::LocalBackend, ChatModel, ChatRequest, Message, SamplingParams},
};

const RUNS: usize = 5;

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
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
    model.chat(&ChatRequest { messages: messages.clone(), params: params(4) }).await.unwrap();

    let (mut prompt_rates, mut gen_rates) = (Vec::new(), Vec::new());
    let (mut prompt_tokens, mut gen_tokens) = (0, 0);
    for _ in 0..RUNS {
        let t = Instant::now();
        let one = model.chat(&ChatRequest { messages: messages.clone(), params: params(1) }).await.unwrap();
        let prefill_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let full = model.chat(&ChatRequest { messages: messages.clone(), params: params(100) }).await.unwrap();
        let full_s = t.elapsed().as_secs_f64();
        prompt_tokens = one.usage.prompt_tokens;
        gen_tokens = full.usage.completion_tokens;
        prompt_rates.push(prompt_tokens as f64 / prefill_s);
        // Generation time = full call minus the prompt pass (and its first token).
        gen_rates.push((gen_tokens.saturating_sub(1)) as f64 / (full_s - prefill_s).max(1e-9));
    }
    let report = serde_json::json!({
        "model": cache::DEFAULT_MODEL_FILE,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "prompt_tokens": prompt_tokens,
        "generated_tokens": gen_tokens,
        "runs": RUNS,
        "prompt_tokens_per_s_median": median(prompt_rates),
        "generation_tokens_per_s_median": median(gen_rates),
        "peak_rss_mb": peak_rss_mb(),
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("local_model.json"), report.to_string()).unwrap();
}
