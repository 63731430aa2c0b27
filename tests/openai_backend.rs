//! The `openai` backend against a scripted loopback server: dialects, retries, faults.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use recheck::llm::{
    ChatModel, ChatRequest, FinishReason, LlmError, Message, OpenAiBackend, OpenAiOptions, RetryConfig, SamplingParams,
};
use serde_json::json;
use support::{MockServer, Reply};

fn backend(url: &str, retries: u32, timeout_ms: u64) -> OpenAiBackend {
    let mut options = OpenAiOptions::new(url);
    options.retry = RetryConfig {
        max_retries: retries,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_secs(5),
        timeout: Duration::from_millis(timeout_ms),
    };
    OpenAiBackend::new("test-model", options).unwrap()
}

fn question() -> ChatRequest {
    ChatRequest::new(vec![Message::user("Is 7411 prime?")])
}

#[tokio::test]
async fn parses_each_server_dialect() {
    let dialects = vec![
        ("openai", Reply::chat("yes"), "yes", FinishReason::Stop),
        // vLLM: extra fields everywhere.
        (
            "vllm",
            Reply::Json(
                json!({"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"yes","reasoning_content":null,"tool_calls":[]},"logprobs":null,"finish_reason":"length","stop_reason":null}],"usage":{"prompt_tokens":3,"total_tokens":5,"completion_tokens":2,"prompt_tokens_details":null},"prompt_logprobs":null,"kv_transfer_params":null}),
            ),
            "yes",
            FinishReason::Length,
        ),
        // llama.cpp server: timings block, no system_fingerprint.
        (
            "llama.cpp",
            Reply::Json(
                json!({"choices":[{"finish_reason":"stop","index":0,"message":{"role":"assistant","content":"yes"}}],"created":1,"model":"gpt-3.5-turbo","object":"chat.completion","usage":{"completion_tokens":1,"prompt_tokens":2,"total_tokens":3},"id":"c","timings":{"prompt_n":2,"predicted_ms":1.5}}),
            ),
            "yes",
            FinishReason::Stop,
        ),
        // Missing `object`, empty finish_reason.
        (
            "no-object",
            Reply::Json(
                json!({"id":"x","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"yes"},"finish_reason":""}]}),
            ),
            "yes",
            FinishReason::Unknown,
        ),
        // null finish_reason, no usage, no id.
        (
            "null-finish",
            Reply::Json(json!({"choices":[{"message":{"content":"yes"},"finish_reason":null}]})),
            "yes",
            FinishReason::Unknown,
        ),
        // Ollama-style: system_fingerprint and a finish reason we do not know.
        (
            "ollama",
            Reply::Json(
                json!({"id":"c","object":"chat.completion","created":1,"model":"smollm2","system_fingerprint":"fp_ollama","choices":[{"index":0,"message":{"role":"assistant","content":"yes"},"finish_reason":"eos_token"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}),
            ),
            "yes",
            FinishReason::Other("eos_token".into()),
        ),
    ];
    for (name, reply, text, finish) in dialects {
        let server = MockServer::start(vec![reply]);
        let got = backend(&server.url, 0, 2000).chat(&question()).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.text(), text, "{name}");
        assert_eq!(got.finish_reason(), finish, "{name}");
    }
}

#[tokio::test]
async fn sends_parameters_and_prefill_switches() {
    let server = MockServer::start(vec![Reply::chat("ok")]);
    let request = ChatRequest {
        messages: vec![Message::system("S"), Message::user("Q"), Message::assistant("Step 1:")],
        params: SamplingParams {
            temperature: 0.7,
            top_p: 0.9,
            max_tokens: 33,
            stop: vec!["\n\n".into()],
            seed: Some(42),
            n: 1,
            logprobs: true,
            top_logprobs: 3,
        },
        ..Default::default()
    };
    let got = backend(&server.url, 0, 2000).chat(&request).await.unwrap();
    assert_eq!(got.seed, Some(42));
    let sent = server.requests.lock().unwrap()[0].clone();
    assert_eq!(sent["model"], "test-model");
    assert_eq!(sent["messages"][2], json!({"role": "assistant", "content": "Step 1:"}));
    assert_eq!(sent["max_tokens"], 33);
    assert_eq!(sent["seed"], 42);
    assert_eq!(sent["stop"], json!(["\n\n"]));
    assert_eq!(sent["logprobs"], true);
    assert_eq!(sent["top_logprobs"], 3);
    assert_eq!(sent["stream"], false);
    assert_eq!(sent["continue_final_message"], true);
    assert_eq!(sent["add_generation_prompt"], false);
    assert!((sent["temperature"].as_f64().unwrap() - 0.7).abs() < 1e-6);
}

/// A backend told (`--prefill`) that its server continues a prefilled turn.
fn prefilling(url: &str) -> OpenAiBackend {
    let mut options = OpenAiOptions::new(url);
    options.prefill = true;
    OpenAiBackend::new("test-model", options).unwrap()
}

fn continuation() -> ChatRequest {
    ChatRequest::new(vec![Message::user("Q"), Message::assistant("Step 1:")])
}

#[tokio::test]
async fn a_server_that_ignores_a_prefilled_turn_is_caught_before_the_first_continuation() {
    // Prompt tokens as llama-cpp-python's server reported them for the three probes:
    // the turn marked to be continued is rendered like a closed one.
    let server = MockServer::start(vec![
        Reply::chat_with_prompt_tokens("Red", 34),
        Reply::chat_with_prompt_tokens(" colour", 41),
        Reply::chat_with_prompt_tokens("Blue", 41),
    ]);
    let model = prefilling(&server.url);
    let err = model.chat(&continuation()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, LlmError::PrefillIgnored { .. }), "{text}");
    assert!(
        text.contains("fresh question 34") && text.contains("closed turn 41") && text.contains("without --prefill")
    );
    // The three probes, then nothing: the continuation was never sent.
    let sent = server.requests.lock().unwrap().clone();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0]["messages"].as_array().unwrap().len(), 1);
    assert_eq!(
        (sent[1]["continue_final_message"].clone(), sent[1]["add_generation_prompt"].clone()),
        (json!(true), json!(false))
    );
    assert!(sent[2].get("continue_final_message").is_none(), "the closed turn goes without the mark: {}", sent[2]);
    assert_eq!(sent[1]["messages"], sent[2]["messages"]);
    // The verdict is kept: a second continuation fails without asking again, and a
    // plain question still goes through.
    assert!(model.chat(&continuation()).await.is_err());
    assert!(model.chat(&question()).await.is_ok());
    assert_eq!(server.hits(), 4);
    assert!(!model.prefill_support().await.unwrap().honoured());
}

#[tokio::test]
async fn a_server_that_continues_a_prefilled_turn_passes_the_check() {
    // vLLM with continue_final_message: the continued prompt stops inside the turn.
    let server = MockServer::start(vec![
        Reply::chat_with_prompt_tokens("Red", 34),
        Reply::chat_with_prompt_tokens(" sky", 35),
        Reply::chat_with_prompt_tokens("Blue", 41),
        Reply::chat_with_prompt_tokens(" Step 2: done.", 40),
    ]);
    let model = prefilling(&server.url);
    assert_eq!(model.chat(&continuation()).await.unwrap().text(), " Step 2: done.");
    assert!(model.prefill_support().await.unwrap().honoured());
    assert_eq!(server.hits(), 4, "checked once");
    // Without --prefill nothing is checked.
    let plain = backend(&server.url, 0, 2000);
    assert_eq!(plain.prefill_support().await.unwrap(), recheck::llm::PrefillSupport::Absent);
    assert_eq!(server.hits(), 4);
}

#[tokio::test]
async fn reads_token_logprobs() {
    let server = MockServer::start(vec![Reply::Json(
        json!({"choices":[{"message":{"content":"No"},"finish_reason":"stop","logprobs":{"content":[{"token":"No","logprob":-0.25,"bytes":[78,111],"top_logprobs":[]}]}}]}),
    )]);
    let got = backend(&server.url, 0, 2000).chat(&question()).await.unwrap();
    let lp = got.choices[0].logprobs.as_ref().unwrap();
    assert_eq!(lp.len(), 1);
    assert_eq!(lp[0].token, "No");
    assert_eq!(lp[0].logprob, -0.25);
}

#[tokio::test]
async fn retries_server_errors_then_succeeds() {
    let server = MockServer::start(vec![Reply::status(500, "boom"), Reply::status(503, "busy"), Reply::chat("fine")]);
    let got = backend(&server.url, 3, 2000).chat(&question()).await.unwrap();
    assert_eq!(got.text(), "fine");
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn honours_retry_after_on_429() {
    let limited = Reply::Raw {
        status: 429,
        body: r#"{"error":{"message":"slow down","type":"rate_limit_error"}}"#.into(),
        headers: vec![("retry-after-ms".into(), "400".into())],
    };
    let server = MockServer::start(vec![limited, Reply::chat("after wait")]);
    let started = Instant::now();
    let got = backend(&server.url, 2, 2000).chat(&question()).await.unwrap();
    assert_eq!(got.text(), "after wait");
    assert!(started.elapsed() >= Duration::from_millis(400), "waited only {:?}", started.elapsed());
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn gives_up_after_bounded_retries() {
    let server = MockServer::start(vec![Reply::status(502, "bad gateway")]);
    let err = backend(&server.url, 2, 2000).chat(&question()).await.unwrap_err();
    assert!(matches!(err, LlmError::Http { status: 502, .. }), "{err}");
    assert_eq!(server.hits(), 3, "one try plus two retries");
}

#[tokio::test]
async fn does_not_retry_client_errors() {
    let server = MockServer::start(vec![
        Reply::status(400, r#"{"error":{"message":"bad model","type":"invalid_request_error"}}"#),
        Reply::chat("never"),
    ]);
    let err = backend(&server.url, 3, 2000).chat(&question()).await.unwrap_err();
    match err {
        LlmError::Http { status, body } => {
            assert_eq!(status, 400);
            assert!(body.contains("bad model"), "{body}");
        }
        other => panic!("expected HTTP 400, got {other}"),
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn times_out_slow_replies_and_retries_them() {
    let server = MockServer::start(vec![Reply::Delay(Duration::from_secs(3), Box::new(Reply::chat("late")))]);
    let started = Instant::now();
    let err = backend(&server.url, 1, 200).chat(&question()).await.unwrap_err();
    assert!(matches!(err, LlmError::Timeout { timeout_ms: 200, .. }), "{err}");
    assert_eq!(server.hits(), 2);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn malformed_json_is_a_clear_error() {
    let server =
        MockServer::start(vec![Reply::Raw { status: 200, body: "{\"choices\": [oops".into(), headers: vec![] }]);
    let err = backend(&server.url, 2, 2000).chat(&question()).await.unwrap_err();
    assert!(matches!(err, LlmError::BadResponse { .. }), "{err}");
    assert!(err.to_string().contains("[oops"), "body is shown: {err}");
    assert_eq!(server.hits(), 1, "a malformed 200 is not retried");
}

#[tokio::test]
async fn truncated_body_is_a_clear_error() {
    let server = MockServer::start(vec![Reply::Truncated(r#"{"choices":[{"message":{"content":"#.into())]);
    let err = backend(&server.url, 0, 2000).chat(&question()).await.unwrap_err();
    assert!(matches!(err, LlmError::BadResponse { .. }), "{err}");
}

#[tokio::test]
async fn a_truncated_or_stalled_body_is_retried() {
    // Regression: both failed at once even with retries left.
    let ok = Reply::chat("fine");
    let server = MockServer::start(vec![Reply::Truncated(r#"{"choices":[{"#.into()), ok.clone()]);
    assert_eq!(backend(&server.url, 1, 2000).chat(&question()).await.unwrap().text(), "fine");
    let server = MockServer::start(vec![Reply::Stall(r#"{"choices":"#.into()), ok]);
    let started = std::time::Instant::now();
    assert_eq!(backend(&server.url, 1, 300).chat(&question()).await.unwrap().text(), "fine");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(server.requests.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_reply_over_the_size_cap_is_refused() {
    // Regression: a 100 MB reply took 1 GB of memory and 401 MB of trace store.
    let big = "x".repeat(300_000);
    let server = MockServer::start(vec![Reply::chat(&big)]);
    let mut options = OpenAiOptions::new(&server.url);
    options.retry = RetryConfig { max_retries: 2, ..Default::default() };
    options.max_reply_bytes = 100_000;
    let err = OpenAiBackend::new("m", options).unwrap().chat(&question()).await.unwrap_err();
    assert!(
        matches!(err, LlmError::BadResponse { .. }) && err.to_string().contains("over the limit of 100000"),
        "{err}"
    );
    assert_eq!(server.requests.lock().unwrap().len(), 1, "not retried");
    // Within the cap it is read as usual.
    let server = MockServer::start(vec![Reply::chat(&big)]);
    let mut options = OpenAiOptions::new(&server.url);
    options.max_reply_bytes = 1_000_000;
    assert_eq!(OpenAiBackend::new("m", options).unwrap().chat(&question()).await.unwrap().text().len(), 300_000);
}

#[tokio::test]
async fn empty_choices_is_a_clear_error() {
    let server = MockServer::start(vec![Reply::Json(json!({"object":"chat.completion","choices":[]}))]);
    let err = backend(&server.url, 0, 2000).chat(&question()).await.unwrap_err();
    assert!(err.to_string().contains("no choices"), "{err}");
}

#[tokio::test]
async fn unreachable_server_is_retried_then_reported() {
    // Bind then drop a listener: the port is closed, so connects are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = backend(&format!("http://127.0.0.1:{port}/v1"), 2, 1000).chat(&question()).await.unwrap_err();
    assert!(matches!(err, LlmError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("cannot reach"), "{err}");
}

#[tokio::test]
async fn concurrency_limit_is_shared_by_all_callers() {
    let server = MockServer::start(vec![Reply::Delay(Duration::from_millis(150), Box::new(Reply::chat("ok")))]);
    let mut options = OpenAiOptions::new(&server.url);
    options.max_concurrency = 2;
    let model = Arc::new(OpenAiBackend::new("m", options).unwrap());
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let model = model.clone();
            tokio::spawn(async move { model.chat(&question()).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(server.hits(), 6);
    assert_eq!(server.max_in_flight.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[test]
fn rejects_a_base_url_without_scheme() {
    let err = OpenAiBackend::new("m", OpenAiOptions::new("localhost:8000/v1")).unwrap_err();
    assert!(err.to_string().contains("http://"), "{err}");
}
