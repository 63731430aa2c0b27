//! `POST /v1/chat/completions`: verify, or pass through.

use std::{
    sync::{atomic::Ordering, Arc},
    time::Instant,
};

use axum::{
    body::{Body, Bytes},
    extract::{rejection::BytesRejection, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{json, Value};

use super::{
    wire::{
        AssistantMessage, ChatCompletion, ChatCompletionRequest, Chunk, ChunkChoice, CompletionChoice, Delta,
        RecheckReport, WireUsage,
    },
    ApiError, RecheckOptions, Server,
};
use crate::{
    agents::AgentSet,
    llm::{ChatRequest, FinishReason, LlmError, RecordingModel, Role, SamplingParams},
    orchestrator::{AskOutcome, Question, Verification},
    trace::{run_kind, RunRecorder, RunStatus},
    AskOptions, Error,
};

/// Header: `true`, `false`, `unknown`, `skipped` (passed through) or `error`.
pub const VERIFIED_HEADER: &str = "x-recheck-verified";
/// Header: the stored run.
pub const TRACE_HEADER: &str = "x-recheck-trace-id";

/// The largest generation a request may ask of the solver (as experiment specs allow).
const MAX_TOKENS: u32 = 32_768;

/// What to do with a request.
enum Plan {
    /// Verify the answer to this question.
    Verify(Question),
    /// Pass it through unverified, for this reason.
    Pass(&'static str),
}

/// The handler.
pub(super) async fn completions(State(server): State<Arc<Server>>, body: Result<Bytes, BytesRejection>) -> Response {
    let started = Instant::now();
    if server.stopping.load(Ordering::SeqCst) {
        return finish(
            &server,
            started,
            "error",
            "verified",
            ApiError::unavailable("the server is shutting down").into_response(),
        );
    }
    let Ok(permit) = server.limiter.clone().try_acquire_owned() else {
        let busy = ApiError::busy(server.config.max_in_flight);
        return finish(&server, started, "error", "verified", busy.into_response());
    };
    // A guard, so a client that goes away (the handler dropped) is counted out too.
    let counted = InFlight::enter(&server);
    let answer = handle(&server, body, permit).await;
    drop(counted);
    let (verdict, mode, response) = match answer {
        Ok(done) => done,
        Err(e) => ("error", "verified", e.into_response()),
    };
    finish(&server, started, verdict, mode, response)
}

/// One request in the in-flight gauge while it lives.
struct InFlight<'a>(&'a Server);

impl<'a> InFlight<'a> {
    fn enter(server: &'a Server) -> Self {
        server.metrics.in_flight(1);
        Self(server)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.metrics.in_flight(-1);
    }
}

/// Count the request and hand back its response.
fn finish(server: &Server, started: Instant, verdict: &str, mode: &'static str, response: Response) -> Response {
    server.metrics.request(response.status().as_u16(), verdict, mode, started.elapsed().as_secs_f64());
    response
}

type Done = (&'static str, &'static str, Response);

async fn handle(
    server: &Arc<Server>,
    body: Result<Bytes, BytesRejection>,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<Done, ApiError> {
    let body = body.map_err(|e| body_error(server, e))?;
    let request: ChatCompletionRequest =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&body)).map_err(|e| {
            let path = e.path().to_string();
            ApiError::invalid(
                if path == "." { "body".into() } else { path },
                format!("bad request body: {}", e.inner()),
            )
        })?;
    if request.messages.is_empty() {
        return Err(ApiError::invalid("messages", "messages must hold at least one message"));
    }
    let extra = match &request.recheck {
        Some(v) => RecheckOptions::parse(v)?,
        None => RecheckOptions::default(),
    };
    match plan(&request) {
        Plan::Pass(reason) => {
            let response = super::http::passthrough(server, &request, &body, reason, permit).await?;
            Ok(("skipped", "passthrough", response))
        }
        Plan::Verify(question) => {
            let options = request_options(server, &request, &extra)?;
            verify(server, &request, question, options, permit).await
        }
    }
}

fn body_error(server: &Server, e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(server.config.body_limit)
    } else {
        ApiError::invalid("body", format!("could not read the request body: {e}"))
    }
}

/// Verify, or pass through, and why.
fn plan(request: &ChatCompletionRequest) -> Plan {
    if request.calls_tools() {
        return Plan::Pass("tools");
    }
    if request.n.is_some_and(|n| n > 1) {
        return Plan::Pass("n > 1");
    }
    let format = request.response_format.as_ref().and_then(|f| f.get("type")).and_then(Value::as_str);
    if format.is_some_and(|t| t != "text") {
        return Plan::Pass("response_format");
    }
    let Some(mut messages) = request.text_messages() else {
        return Plan::Pass("non-text content");
    };
    match messages.pop() {
        Some(last) if last.role == Role::User => Plan::Verify(Question::with_history(last.content, messages)),
        _ => Plan::Pass("the conversation does not end with a user message"),
    }
}

/// The server's options with this request's overrides.
fn request_options(
    server: &Server,
    request: &ChatCompletionRequest,
    extra: &RecheckOptions,
) -> Result<AskOptions, ApiError> {
    let mut options = extra.apply(server.options.clone(), &server.indexes)?;
    if let Some(seed) = request.seed {
        options.loop_options.seed = seed;
    }
    let temperature = request.temperature;
    if let Some(t) = temperature.filter(|t| !(0.0..=2.0).contains(t)) {
        return Err(ApiError::invalid("temperature", format!("temperature must be in [0, 2], got {t}")));
    }
    let max_tokens = request.max_completion_tokens.or(request.max_tokens);
    if let Some(n) = max_tokens.filter(|n| !(1..=MAX_TOKENS).contains(n)) {
        return Err(ApiError::invalid("max_tokens", format!("max_tokens must be 1 to {MAX_TOKENS}, got {n}")));
    }
    if temperature.is_some() || max_tokens.is_some() {
        let mut agents: AgentSet = (*options.agents).clone();
        agents.solver.temperature = temperature.or(agents.solver.temperature);
        agents.solver.max_tokens = max_tokens.or(agents.solver.max_tokens);
        options.agents = Arc::new(agents);
    }
    // Half the deadline for the loop: the rest is for verifying the final answer.
    options.loop_options.time_budget_ms = Some((server.config.deadline.as_millis() / 2) as u64);
    Ok(options)
}

/// Run the loop in its own task (a client that goes away does not cut a run short,
/// and shutdown waits for it), within the deadline.
async fn verify(
    server: &Arc<Server>,
    request: &ChatCompletionRequest,
    question: Question,
    options: AskOptions,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<Done, ApiError> {
    let (store, model) = (server.store.clone(), server.model.clone());
    let run = tokio::spawn(async move {
        let outcome = crate::ask(&store, model, question, &options).await;
        drop(permit);
        outcome
    });
    let deadline = server.config.deadline;
    let outcome = match tokio::time::timeout(deadline, run).await {
        Err(_) => Err(ApiError::deadline(deadline.as_secs_f64())),
        Ok(Err(join)) => Err(ApiError::internal(format!("the run stopped unexpectedly: {join}"))),
        Ok(Ok(Err(e))) => Err(run_error(e)),
        Ok(Ok(Ok(outcome))) => Ok(outcome),
    };
    let mode = if request.stream { "stream" } else { "verified" };
    let outcome = match outcome {
        Ok(o) => o,
        // A stream reports the failure as an event, never as part of an answer.
        Err(e) if request.stream => return Ok(("error", mode, stream_error(&e))),
        Err(e) => return Err(e),
    };
    server.metrics.upstream_calls(u64::from(outcome.model_calls));
    let verdict = verdict_word(outcome.verified);
    let response = if request.stream {
        stream(&outcome, request.stream_options.as_ref().is_some_and(|o| o.include_usage))
    } else {
        axum::Json(completion(&outcome)).into_response()
    };
    Ok((verdict, mode, with_headers(response, verdict, Some(&outcome.trace_id.to_string()))))
}

/// A failed run as the client sees it: the upstream's failure is a 502.
fn run_error(e: Error) -> ApiError {
    match e {
        Error::RunFailed { run_id, cause } => match cause {
            LlmError::BudgetExhausted(_) => ApiError::internal(format!("run {run_id}: {cause}")),
            other => ApiError::upstream(format!("the model failed (run {run_id} is stored as failed): {other}")),
        },
        Error::Llm(l) => ApiError::upstream(format!("the model failed: {l}")),
        other => ApiError::internal(other.to_string()),
    }
}

/// OpenAI's word for why a generation stopped (a final answer is never a tool call).
fn finish_word(f: &FinishReason) -> &'static str {
    match f {
        FinishReason::Length => "length",
        FinishReason::ContentFilter => "content_filter",
        _ => "stop",
    }
}

fn verdict_word(v: Verification) -> &'static str {
    match v {
        Verification::Verified => "true",
        Verification::Refuted => "false",
        Verification::Unknown => "unknown",
    }
}

pub(super) fn with_headers(mut response: Response, verdict: &str, trace: Option<&str>) -> Response {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(verdict) {
        headers.insert(VERIFIED_HEADER, v);
    }
    if let Some(v) = trace.and_then(|t| HeaderValue::from_str(t).ok()) {
        headers.insert(TRACE_HEADER, v);
    }
    response
}

fn completion(outcome: &AskOutcome) -> ChatCompletion {
    ChatCompletion {
        id: format!("chatcmpl-{}", outcome.trace_id),
        object: "chat.completion",
        created: chrono::Utc::now().timestamp(),
        model: outcome.model.spec.clone(),
        choices: vec![CompletionChoice {
            index: 0,
            message: AssistantMessage { role: "assistant", content: outcome.answer.clone() },
            finish_reason: finish_word(&outcome.finish_reason),
            logprobs: None,
        }],
        usage: outcome.usage.into(),
        recheck: Some(RecheckReport::from(outcome)),
    }
}

/// The verified answer as server-sent events: a role chunk, the answer word by word,
/// the finishing chunk, the usage chunk when asked for, the `recheck` object on the
/// last of them, then `[DONE]`.
fn stream(outcome: &AskOutcome, include_usage: bool) -> Response {
    let id = format!("chatcmpl-{}", outcome.trace_id);
    let head = Head { id: &id, created: chrono::Utc::now().timestamp(), model: &outcome.model.spec, include_usage };
    let report = RecheckReport::from(outcome);
    let mut events: Vec<String> = Vec::new();
    let mut push = |c: &Chunk| events.push(format!("data: {}\n\n", serde_json::to_string(c).unwrap_or_default()));
    push(&head.chunk(Delta { role: Some("assistant"), content: Some("") }, None));
    for piece in outcome.answer.split_inclusive(char::is_whitespace) {
        push(&head.chunk(Delta { role: None, content: Some(piece) }, None));
    }
    let mut last = head.chunk(Delta::default(), Some(finish_word(&outcome.finish_reason)));
    if include_usage {
        push(&last);
        last = Chunk { choices: Vec::new(), usage: Some(Some(WireUsage::from(outcome.usage))), ..last };
    }
    last.recheck = Some(&report);
    push(&last);
    events.push("data: [DONE]\n\n".to_string());
    sse(Body::from_stream(futures_util::stream::iter(events.into_iter().map(Ok::<_, std::convert::Infallible>))))
}

/// What every chunk of one stream repeats.
struct Head<'a> {
    id: &'a str,
    created: i64,
    model: &'a str,
    include_usage: bool,
}

impl<'a> Head<'a> {
    fn chunk(&self, delta: Delta<'a>, finish: Option<&'static str>) -> Chunk<'a> {
        Chunk {
            id: self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model,
            choices: vec![ChunkChoice { index: 0, delta, finish_reason: finish }],
            // With `include_usage`, every chunk but the last carries `"usage": null`.
            usage: self.include_usage.then_some(None),
            recheck: None,
        }
    }
}

/// A stream whose only event is the error (OpenAI's shape, which the SDKs raise).
fn stream_error(e: &ApiError) -> Response {
    with_headers(sse(Body::from(format!("data: {}\n\n", e.body()))), "error", None)
}

fn sse(body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Pass a request through to the served model itself (no upstream server): each of
/// `n` choices is one recorded call, unverified.
pub(super) async fn answer_unverified(
    server: &Server,
    request: &ChatCompletionRequest,
    reason: &'static str,
) -> Result<Response, ApiError> {
    if request.calls_tools() {
        return Err(ApiError::invalid(
            "tools",
            "function calling needs an OpenAI-compatible upstream; this server runs a model without one",
        ));
    }
    let Some(messages) = request.text_messages() else {
        return Err(ApiError::invalid("messages", "only text content can be sent to this server's model"));
    };
    if request.stream {
        return Err(ApiError::invalid("stream", format!("a request passed through unverified ({reason}) cannot be streamed without an OpenAI-compatible upstream")));
    }
    let n = request.n.unwrap_or(1).clamp(1, 8);
    let input = json!({ "passthrough": reason, "messages": messages, "n": n });
    let store = &server.store;
    let run = store
        .create_run(run_kind::SERVE, input, json!({ "model": server.model.info() }), None)
        .await
        .map_err(store_error)?;
    let recorder = RunRecorder::new(store.clone(), run.id, 0);
    let model = RecordingModel::new(&recorder, "solver", server.model.clone());
    let params = SamplingParams {
        temperature: request.temperature.unwrap_or(0.0).clamp(0.0, 2.0),
        max_tokens: request.max_completion_tokens.or(request.max_tokens).unwrap_or(384),
        seed: request.seed,
        ..Default::default()
    };
    let mut choices = Vec::new();
    let mut usage = crate::llm::Usage::default();
    for i in 0..n {
        let params = SamplingParams { seed: params.seed.map(|s| s.wrapping_add(u64::from(i))), ..params.clone() };
        match crate::llm::ChatModel::chat(&model, &ChatRequest::new(messages.clone()).with_params(params)).await {
            Ok(c) => {
                usage.prompt_tokens += c.usage.prompt_tokens;
                usage.completion_tokens += c.usage.completion_tokens;
                choices.push(CompletionChoice {
                    index: i,
                    message: AssistantMessage { role: "assistant", content: c.text().to_string() },
                    finish_reason: finish_word(&c.finish_reason()),
                    logprobs: None,
                });
            }
            Err(e) => {
                let _ = store.finish_run(run.id, RunStatus::Failed, None, Some(e.to_string())).await;
                return Err(ApiError::upstream(format!("the model failed (run {} is stored as failed): {e}", run.id)));
            }
        }
    }
    let body = ChatCompletion {
        id: format!("chatcmpl-{}", run.id),
        object: "chat.completion",
        created: chrono::Utc::now().timestamp(),
        model: server.model.info().spec,
        choices,
        usage: usage.into(),
        recheck: None,
    };
    let output = serde_json::to_value(&body).unwrap_or(Value::Null);
    store.finish_run(run.id, RunStatus::Completed, Some(output), None).await.map_err(store_error)?;
    Ok(with_headers(axum::Json(body).into_response(), "skipped", Some(&run.id.to_string())))
}

pub(super) fn store_error(e: crate::trace::TraceError) -> ApiError {
    ApiError::internal(format!("the trace store failed: {e}"))
}
