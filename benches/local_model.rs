//! Embedded-model speed: prompt tokens/s, generation tokens/s and peak RSS on a fixed
//! ~400-token prompt with 100 generated tokens, through the public `ChatModel` API,
//! beside the same work straight on llama.cpp. The two sides run in turn, pair after
//! pair (recheck, raw, recheck, raw, ...), and the ratio reported is the median of the
//! per-pair ratios with its range, so drift in the host's speed hits both sides alike.
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
    llm::{
        local::cache, local::llama_backend, local::LocalBackend, ChatModel, ChatRequest, Decoding, Message,
        SamplingParams,
    },
};

/// Pairs of runs (one a side each).
const PAIRS: usize = 7;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The threads the backend decodes on, so the raw loop uses as many.
fn threads() -> i32 {
    recheck::llm::local::threads() as i32
}

/// Prompt and generation tokens/s of a bare decode loop on llama.cpp: same file,
/// threads, context and batch sizes as the backend, greedy, no template or channel.
/// One warm-up run, then one measured.
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
    for _ in 0..2 {
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
    (prompt_rates[1], gen_rates[1])
}

/// `c` calls at once, each a different ~400-token prompt, on a model with `c`
/// sequences and no prefix reuse (nothing is shared, so this measures batching alone):
/// prompt tokens/s of all prompts read together, then generation tokens/s of `c` calls
/// generating 100 tokens side by side. Run in a child process per `c`, so the peak RSS
/// it reports is this mode's own. The median of three rounds after a warm-up.
async fn batched(path: &std::path::Path, c: u32, passage: &str) -> serde_json::Value {
    let model = std::sync::Arc::new(
        LocalBackend::load_with(path, "local", Decoding { prefix_reuse: false, sequences: c }).unwrap(),
    );
    let request = |i: u32, max_tokens| {
        // The distinguishing words come first, so no two prompts share a useful prefix.
        let messages = vec![Message::user(format!("Story {i}. {passage}\nContinue this story at length."))];
        ChatRequest::new(messages).with_params(SamplingParams { max_tokens, ..Default::default() })
    };
    let round = |max_tokens| {
        let model = model.clone();
        async move {
            let t = Instant::now();
            let tasks: Vec<_> = (0..c)
                .map(|i| {
                    let (model, req) = (model.clone(), request(i, max_tokens));
                    tokio::spawn(async move { model.chat(&req).await.unwrap() })
                })
                .collect();
            let mut usage = (0u64, 0u64);
            for task in tasks {
                let done = task.await.unwrap();
                usage.0 += u64::from(done.usage.prompt_tokens);
                usage.1 += u64::from(done.usage.completion_tokens);
            }
            (t.elapsed().as_secs_f64(), usage)
        }
    };
    round(4).await;
    let (mut prompt_rates, mut gen_rates) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let (prefill_s, (prompt_tokens, _)) = round(1).await;
        let (full_s, (_, generated)) = round(100).await;
        prompt_rates.push(prompt_tokens as f64 / prefill_s);
        gen_rates.push((generated - u64::from(c)) as f64 / (full_s - prefill_s).max(1e-9));
    }
    serde_json::json!({
        "concurrency": c,
        "prompt_tokens_per_s": median(prompt_rates),
        "generation_tokens_per_s": median(gen_rates),
        "peak_rss_mb": peak_rss_mb(),
        "batches": model.stats().batches,
    })
}

/// One `ask` with the critic strategy (3 rounds) on a question, with prefix reuse off
/// (`--deterministic`) and on (one sequence, so only reuse differs): prompt tokens
/// read, tokens reused, and wall time.
async fn critic_loop(path: &std::path::Path) -> serde_json::Value {
    let mut rows = Vec::new();
    for decoding in [Decoding::DETERMINISTIC, Decoding { prefix_reuse: true, sequences: 1 }] {
        let model = std::sync::Arc::new(LocalBackend::load_with(path, "local", decoding).unwrap());
        let store = recheck::TraceStore::temporary().unwrap();
        let options = recheck::AskOptions::builtin().unwrap().strategy(recheck::Strategy::Critic).rounds(3);
        let t = Instant::now();
        let outcome = recheck::ask(&store, model.clone(), "Is 7411 a prime number?", &options).await.unwrap();
        let wall = t.elapsed().as_secs_f64();
        let stats = model.stats();
        eprintln!(
            "critic loop, {decoding}: {} calls, {} prompt tokens, {} reused ({:.0}%), {:.1} s",
            stats.calls,
            stats.prompt_tokens,
            stats.reused_tokens,
            100.0 * stats.reused_tokens as f64 / stats.prompt_tokens.max(1) as f64,
            wall
        );
        rows.push(serde_json::json!({
            "decoding": decoding,
            "calls": stats.calls,
            "prompt_tokens": stats.prompt_tokens,
            "reused_tokens": stats.reused_tokens,
            "wall_s": wall,
            "steps": store.steps(outcome.trace_id).unwrap().len(),
        }));
    }
    serde_json::Value::Array(rows)
}

/// Median and range of per-pair ratios `a[i] / b[i]`.
fn ratio(a: &[f64], b: &[f64]) -> serde_json::Value {
    let r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    let (lo, hi) = r.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
    serde_json::json!({ "median": median(r.clone()), "min": lo, "max": hi, "per_pair": r })
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, path] = args.as_slice() {
        if flag == "--raw" {
            let prompt = std::env::var("RECHECK_BENCH_PROMPT").unwrap();
            let (p, g) = raw_llama(std::path::Path::new(path), &prompt, threads());
            let out = serde_json::json!({"prompt_tokens_per_s": p, "generation_tokens_per_s": g, "peak_rss_mb": peak_rss_mb()});
            println!("{out}");
            return;
        }
    }
    // A fixed passage of about 400 tokens, then a request that keeps the model talking.
    let passage = "The lighthouse keeper climbed the spiral stairs each evening, counting the steps, \
        checking the lamp, and writing the weather into a leather logbook. "
        .repeat(14);
    if let [_, flag, path, c] = args.as_slice() {
        if flag == "--batched" {
            let out = batched(std::path::Path::new(path), c.parse().unwrap(), &passage).await;
            println!("{out}");
            return;
        }
    }
    let home = Home::resolve(std::env::var_os("RECHECK_HOME").map(Into::into)).unwrap();
    home.ensure().unwrap();
    let path = cache::ensure_default_model(&home.models_dir(), false, &|l| eprintln!("{l}")).unwrap();
    // One call at a time from an empty cache: the path the raw loop below mirrors (a
    // repeated prompt would otherwise be read from the prefix cache, not decoded).
    let model = LocalBackend::shared_with(&path, "local", Decoding::DETERMINISTIC).unwrap();
    let messages = vec![Message::user(format!("{passage}\nContinue this story at length."))];
    let params = |max_tokens| SamplingParams { max_tokens, ..Default::default() };

    // Warm up once (page in the weights).
    model.chat(&ChatRequest::new(messages.clone()).with_params(params(4))).await.unwrap();

    // The same work straight on llama.cpp (through the thin llama-cpp-2 bindings), in a
    // child process so the two llama.cpp thread pools never compete: the reference our
    // backend's overhead is measured against. One child a pair.
    let prompt = model.render(&messages).unwrap();
    let raw_run = || {
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--raw", path.to_str().unwrap()])
            .env("RECHECK_BENCH_PROMPT", &prompt)
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&child.stdout).unwrap()
    };

    let (mut prompt_rates, mut gen_rates) = (Vec::new(), Vec::new());
    let (mut raw_prompt, mut raw_gen) = (Vec::new(), Vec::new());
    let (mut prompt_tokens, mut gen_tokens) = (0, 0);
    let mut raw_rss = 0.0f64;
    for _ in 0..PAIRS {
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
        let raw = raw_run();
        raw_prompt.push(raw["prompt_tokens_per_s"].as_f64().unwrap());
        raw_gen.push(raw["generation_tokens_per_s"].as_f64().unwrap());
        raw_rss = raw_rss.max(raw["peak_rss_mb"].as_f64().unwrap_or(f64::NAN));
    }
    // The judge's three label words after one ~400-token prompt: three scoring calls
    // (each decodes the prompt again: the path before issue 25) against one call that
    // decodes it once, interleaved pair by pair.
    let judge_messages = vec![Message::user(format!(
        "{passage}\nClaim: The keeper counted the steps.\nIs the claim true, false, or unknown? Answer with one word."
    ))];
    let words = ["true", "false", "unknown"];
    let (mut separate, mut shared) = (Vec::new(), Vec::new());
    for _ in 0..PAIRS {
        let t = Instant::now();
        for word in words {
            model.score_continuation(&judge_messages, word).await.unwrap();
        }
        separate.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        model.score_continuations(&judge_messages, &words).await.unwrap();
        shared.push(t.elapsed().as_secs_f64());
    }
    let judge_ratio = ratio(&separate, &shared);
    eprintln!(
        "judge's three labels: three calls {:.3} s, one prefill {:.3} s (median over {PAIRS} pairs; speed-up {:.2} [{:.2}, {:.2}])",
        median(separate.clone()),
        median(shared.clone()),
        judge_ratio["median"].as_f64().unwrap(),
        judge_ratio["min"].as_f64().unwrap(),
        judge_ratio["max"].as_f64().unwrap(),
    );
    // KV cache per sequence at the full context: K and V, f16, every layer.
    let kv_mb_per_sequence = {
        let m = LlamaModel::load_from_file(llama_backend().unwrap(), &path, &LlamaModelParams::default()).unwrap();
        let head_dim = (m.n_embd() as u64) / u64::from(m.n_head());
        let per_token = 2 * u64::from(m.n_layer()) * head_dim * u64::from(m.n_head_kv()) * 2;
        (per_token * u64::from(recheck::llm::local::CONTEXT_TOKENS)) as f64 / 1e6
    };
    eprintln!("KV cache: {kv_mb_per_sequence:.1} MB a sequence at the full context");
    // Batched sequences at 1, 4 and 8 calls at once, each in its own process.
    let mut concurrency = Vec::new();
    for c in [1, 4, 8] {
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--batched", path.to_str().unwrap(), &c.to_string()])
            .output()
            .unwrap();
        let row = serde_json::from_slice::<serde_json::Value>(&child.stdout).unwrap();
        eprintln!(
            "c{c}: prompt {:.0} tokens/s, generation {:.1} tokens/s, peak RSS {:.0} MB",
            row["prompt_tokens_per_s"].as_f64().unwrap(),
            row["generation_tokens_per_s"].as_f64().unwrap(),
            row["peak_rss_mb"].as_f64().unwrap()
        );
        let mut row = row;
        row["kv_cache_mb"] = serde_json::json!(kv_mb_per_sequence * f64::from(c));
        concurrency.push(row);
    }
    // A 3-round critic loop, as `recheck ask --strategy critic --rounds 3` runs it: the
    // prompt tokens its calls read, and how many of them reuse decoded instead
    // (the critic and reviser prompts share only the conversation's opening).
    let critic = critic_loop(&path).await;
    let prompt_ratio = ratio(&prompt_rates, &raw_prompt);
    let gen_ratio = ratio(&gen_rates, &raw_gen);
    eprintln!(
        "recheck / raw llama.cpp over {PAIRS} interleaved pairs: prompt {:.2} [{:.2}, {:.2}], generation {:.2} [{:.2}, {:.2}]",
        prompt_ratio["median"].as_f64().unwrap(),
        prompt_ratio["min"].as_f64().unwrap(),
        prompt_ratio["max"].as_f64().unwrap(),
        gen_ratio["median"].as_f64().unwrap(),
        gen_ratio["min"].as_f64().unwrap(),
        gen_ratio["max"].as_f64().unwrap(),
    );
    let report = serde_json::json!({
        "model": cache::DEFAULT_MODEL_FILE,
        "threads": threads(),
        "prompt_tokens": prompt_tokens,
        "generated_tokens": gen_tokens,
        "pairs": PAIRS,
        "prompt_tokens_per_s_median": median(prompt_rates),
        "generation_tokens_per_s_median": median(gen_rates),
        "raw_llama_cpp": { "prompt_tokens_per_s_median": median(raw_prompt), "generation_tokens_per_s_median": median(raw_gen), "peak_rss_mb": raw_rss },
        "recheck_over_raw": { "prompt": prompt_ratio, "generation": gen_ratio },
        "judge_labels": { "three_calls_s_median": median(separate), "one_prefill_s_median": median(shared), "speedup": judge_ratio },
        "peak_rss_mb": peak_rss_mb(),
        "batched": concurrency,
        "critic_loop": critic,
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("local_model.json"), report.to_string()).unwrap();
}
