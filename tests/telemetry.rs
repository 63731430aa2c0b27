//! OpenTelemetry export against an in-process OTLP/HTTP receiver that decodes the
//! protobuf: one trace a run, a span a step at the recorded times, GenAI and
//! OpenInference attributes, content left out on request, live export as runs finish,
//! and a collector that is down costing no run anything.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use axum::{body::Bytes, routing::post, Router};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{any_value::Value as Any, AnyValue, KeyValue},
    trace::v1::Span,
};
use prost::Message as _;
use recheck::{
    llm::{Capabilities, ChatModel, ChatRequest, Choice, Completion, FinishReason, LlmError, ModelInfo, Usage},
    orchestrator::{ask, AskOptions, Strategy},
    telemetry::{OtlpExporter, OtlpOptions},
    trace::{StepPayload, TraceStore},
};

const Q: &str = "Is 7411 a prime number?";

/// Always claims 7411 is divisible by 3 (the tools refute it), with fixed usage.
struct Stubborn;

#[async_trait]
impl ChatModel for Stubborn {
    fn info(&self) -> ModelInfo {
        ModelInfo::new("openai:stubborn-1", "openai")
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn chat(&self, _: &ChatRequest) -> Result<Completion, LlmError> {
        Ok(Completion {
            model: "stubborn-1".into(),
            choices: vec![Choice {
                text: "No. 7411 is divisible by 3.".into(),
                finish_reason: FinishReason::Stop,
                logprobs: None,
            }],
            usage: Usage { prompt_tokens: 42, completion_tokens: 7 },
            latency_ms: 3,
            rendered_prompt: None,
            seed: None,
        })
    }
}

/// An OTLP/HTTP receiver on loopback keeping every decoded request.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

async fn receiver() -> Receiver {
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push(ExportTraceServiceRequest::decode(body).unwrap());
                ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url, got }
}

fn spans(requests: &[ExportTraceServiceRequest]) -> Vec<Span> {
    requests.iter().flat_map(|r| &r.resource_spans).flat_map(|r| &r.scope_spans).flat_map(|s| s.spans.clone()).collect()
}

fn attrs(span: &Span) -> BTreeMap<String, Any> {
    span.attributes
        .iter()
        .filter_map(|KeyValue { key, value, .. }| {
            value.clone().and_then(|AnyValue { value }| value).map(|v| (key.clone(), v))
        })
        .collect()
}

fn text(a: &BTreeMap<String, Any>, key: &str) -> String {
    match a.get(key) {
        Some(Any::StringValue(s)) => s.clone(),
        other => panic!("{key}: {other:?}"),
    }
}

fn int(a: &BTreeMap<String, Any>, key: &str) -> i64 {
    match a.get(key) {
        Some(Any::IntValue(n)) => *n,
        other => panic!("{key}: {other:?}"),
    }
}

async fn stored_run(store: &TraceStore) -> recheck::AskOutcome {
    let options = AskOptions::builtin().unwrap().strategy(Strategy::Critic).rounds(1).decompose(false);
    ask(store, Arc::new(Stubborn), Q, &options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stored_run_arrives_as_one_trace_with_its_llm_and_tool_spans() {
    let collector = receiver().await;
    let store = TraceStore::temporary().unwrap();
    let outcome = stored_run(&store).await;
    let steps = store.steps(outcome.trace_id).unwrap();

    let exporter = OtlpExporter::start(&store, &OtlpOptions::new(&collector.url).unwrap()).unwrap();
    assert!(exporter.send(outcome.trace_id));
    let counts = tokio::task::spawn_blocking(move || exporter.finish(Duration::from_secs(30))).await.unwrap();
    assert_eq!((counts.runs, counts.failed), (1, 0));
    assert_eq!(counts.spans as usize, steps.len() + 1);

    let requests = collector.got.lock().unwrap().clone();
    let resource = requests[0].resource_spans[0].resource.clone().unwrap();
    let service: Vec<_> = resource.attributes.iter().filter(|kv| kv.key == "service.name").collect();
    assert_eq!(service.len(), 1);
    let spans = spans(&requests);
    assert_eq!(spans.len(), steps.len() + 1);
    assert!(spans.iter().all(|s| s.trace_id == outcome.trace_id.as_bytes().to_vec()), "one trace, the run's id");
    let roots: Vec<&Span> = spans.iter().filter(|s| s.parent_span_id.is_empty()).collect();
    assert_eq!(roots.len(), 1);
    let root = roots[0];
    assert_eq!(root.name, "recheck ask");
    let ra = attrs(root);
    assert_eq!(text(&ra, "openinference.span.kind"), "AGENT");
    assert_eq!(text(&ra, "input.value"), Q);
    assert_eq!(text(&ra, "output.value"), outcome.answer);
    assert_eq!(text(&ra, "recheck.verified"), "refuted");
    assert_eq!(text(&ra, "recheck.run_id"), outcome.trace_id.to_string());
    assert!(spans.iter().filter(|s| s.parent_span_id.len() == 8).all(|s| s.parent_span_id == root.span_id));

    // Every model call is an LLM span at its recorded time, with both families' attributes.
    let llm: Vec<&Span> = spans.iter().filter(|s| text(&attrs(s), "openinference.span.kind") == "LLM").collect();
    let calls: Vec<_> = steps.iter().filter(|s| matches!(s.payload, StepPayload::ModelCall { .. })).collect();
    assert_eq!(llm.len(), calls.len());
    assert!(!calls.is_empty());
    for (span, step) in llm.iter().zip(&calls) {
        let a = attrs(span);
        assert_eq!(span.name, "chat stubborn-1");
        assert_eq!(span.start_time_unix_nano as i64, step.started_at.timestamp_nanos_opt().unwrap());
        assert_eq!(span.end_time_unix_nano - span.start_time_unix_nano, step.latency_ms * 1_000_000);
        assert_eq!(text(&a, "gen_ai.operation.name"), "chat");
        assert_eq!(text(&a, "gen_ai.provider.name"), "openai");
        assert_eq!(text(&a, "gen_ai.request.model"), "stubborn-1");
        assert_eq!(text(&a, "llm.model_name"), "stubborn-1");
        assert_eq!((int(&a, "gen_ai.usage.input_tokens"), int(&a, "gen_ai.usage.output_tokens")), (42, 7));
        assert_eq!((int(&a, "llm.token_count.prompt"), int(&a, "llm.token_count.completion")), (42, 7));
        assert_eq!(int(&a, "llm.token_count.total"), 49);
        match a.get("gen_ai.response.finish_reasons") {
            Some(Any::ArrayValue(list)) => assert_eq!(list.values.len(), 1),
            other => panic!("finish reasons: {other:?}"),
        }
        let StepPayload::ModelCall { request, .. } = &step.payload else { unreachable!() };
        let input: serde_json::Value = serde_json::from_str(&text(&a, "gen_ai.input.messages")).unwrap();
        assert_eq!(input[0]["parts"][0]["content"], request.messages[0].content.as_str());
        assert_eq!(text(&a, "llm.input_messages.0.message.content"), request.messages[0].content);
        assert_eq!(text(&a, "output.value"), "No. 7411 is divisible by 3.");
        assert_eq!(text(&a, "recheck.agent"), step.agent);
    }
    // The exact tools that refuted the claim are TOOL spans.
    let tools: Vec<BTreeMap<String, Any>> =
        spans.iter().map(attrs).filter(|a| text(a, "openinference.span.kind") == "TOOL").collect();
    assert!(!tools.is_empty());
    assert!(tools.iter().all(|a| !text(a, "gen_ai.tool.name").is_empty() && a.contains_key("output.value")));

    // Sending it again sends the same span ids.
    let exporter = OtlpExporter::start(&store, &OtlpOptions::new(&collector.url).unwrap()).unwrap();
    exporter.send(outcome.trace_id);
    tokio::task::spawn_blocking(move || exporter.finish(Duration::from_secs(30))).await.unwrap();
    let again = self::spans(&collector.got.lock().unwrap()[requests.len()..]);
    let ids = |s: &[Span]| s.iter().map(|s| s.span_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&again), ids(&spans));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_content_no_message_leaves_but_the_counts_do() {
    let collector = receiver().await;
    let store = TraceStore::temporary().unwrap();
    let outcome = stored_run(&store).await;
    let mut options = OtlpOptions::new(&format!("{}/v1/traces", collector.url)).unwrap();
    options.content = false;
    let exporter = OtlpExporter::start(&store, &options).unwrap();
    exporter.send(outcome.trace_id);
    tokio::task::spawn_blocking(move || exporter.finish(Duration::from_secs(30))).await.unwrap();
    let spans = spans(&collector.got.lock().unwrap());
    assert!(!spans.is_empty());
    for span in &spans {
        let a = attrs(span);
        for key in a.keys() {
            assert!(
                !(key.starts_with("input.") || key.starts_with("output.") || key.contains("messages")),
                "{key} in {}",
                span.name
            );
        }
        let flat = format!("{:?}", span.attributes);
        assert!(!flat.contains("7411"), "content in {}: {flat}", span.name);
    }
    assert!(spans.iter().any(|s| attrs(s).contains_key("gen_ai.usage.input_tokens")));
}

#[tokio::test(flavor = "multi_thread")]
async fn live_export_sends_runs_as_they_finish_and_a_dead_collector_costs_no_run() {
    let collector = receiver().await;
    let store = TraceStore::temporary().unwrap();
    let exporter = OtlpExporter::start(&store, &OtlpOptions::new(&collector.url).unwrap()).unwrap();
    assert!(exporter.watch(&store));
    let first = stored_run(&store).await;
    let second = stored_run(&store).await;
    assert!(tokio::task::spawn_blocking({
        let flushed = Duration::from_secs(30);
        move || {
            let ok = exporter.flush(flushed);
            (ok, exporter.finish(flushed))
        }
    })
    .await
    .map(|(ok, counts)| ok && counts.runs == 2 && counts.failed == 0)
    .unwrap());
    let sent: std::collections::BTreeSet<Vec<u8>> =
        spans(&collector.got.lock().unwrap()).into_iter().map(|s| s.trace_id).collect();
    let expected: std::collections::BTreeSet<Vec<u8>> =
        [first.trace_id, second.trace_id].iter().map(|id| id.as_bytes().to_vec()).collect();
    assert_eq!(sent, expected);

    // Nothing listens on this port: the run completes and is stored while the export
    // is still retrying; then the export counts it failed, and the store still has it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let store = TraceStore::temporary().unwrap();
    let mut options = OtlpOptions::new(&format!("http://127.0.0.1:{port}")).unwrap();
    options.timeout = Duration::from_secs(3);
    let exporter = OtlpExporter::start(&store, &options).unwrap();
    exporter.watch(&store);
    let outcome = stored_run(&store).await;
    assert_eq!(exporter.counts().failed, 0, "the run did not wait for the export");
    let counts = tokio::task::spawn_blocking(move || exporter.finish(Duration::from_secs(30))).await.unwrap();
    assert_eq!((counts.runs, counts.failed), (0, 1));
    assert!(store.run(outcome.trace_id).unwrap().is_some());
    assert!(!store.steps(outcome.trace_id).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_collector_is_waited_for_no_longer_than_asked_and_every_run_is_counted() {
    // Regression (issue 28.13): `serve --otlp` with a hanging collector took 31 s to
    // stop, and of 200 runs 71 were in no count.
    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", hanging.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((sock, _)) = hanging.accept().await {
            open.push(sock); // accepted, never answered
        }
    });
    let store = TraceStore::temporary().unwrap();
    let mut options = OtlpOptions::new(&url).unwrap();
    options.timeout = Duration::from_secs(20);
    options.queue = 500;
    let exporter = OtlpExporter::start(&store, &options).unwrap();
    exporter.watch(&store);
    for _ in 0..200 {
        stored_run(&store).await;
    }
    let started = std::time::Instant::now();
    let counts = tokio::task::spawn_blocking(move || exporter.finish(Duration::from_millis(500))).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(counts.runs + counts.failed + counts.dropped + counts.pending, 200, "{counts:?}");
    assert!(counts.pending > 0, "{counts:?}");
    held.abort();
}
