//! A stored run as OpenTelemetry spans: one trace per run, a root span for the run and
//! a child span for each step, at the recorded times. Each span carries the attributes
//! of both families observability tools read: the OpenTelemetry GenAI conventions
//! (`gen_ai.*`) and OpenInference (`openinference.span.kind`, `llm.*`, `input.value`),
//! plus `recheck.*` for what only recheck knows (verdicts, claims, the run id).

use std::{borrow::Cow, time::SystemTime};

use chrono::{DateTime, Utc};
use opentelemetry::{
    trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState},
    Array, InstrumentationScope, KeyValue, StringValue, Value,
};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{
    orchestrator::OutcomeSummary,
    trace::{ChatRequest, Completion, Message, ModelInfo, RunRecord, RunStatus, StepPayload, StepRecord},
};

/// The spans of `run` and its `steps`, root first. Without `content`, no message,
/// prompt, answer, tool input or output is included (sizes and counts still are).
pub fn run_spans(run: &RunRecord, steps: &[StepRecord], content: bool) -> Vec<SpanData> {
    let trace_id = TraceId::from_bytes(*run.id.as_bytes());
    let root_id = span_id(run, u32::MAX);
    let scope = InstrumentationScope::builder("recheck").with_version(env!("CARGO_PKG_VERSION")).build();
    let mut spans = Vec::with_capacity(steps.len() + 1);
    // The root covers the run and every step, whichever ended last.
    let end = steps.iter().map(step_end).chain(run.ended_at).fold(run.started_at, DateTime::max);
    let mut root = base(trace_id, root_id, SpanId::INVALID, format!("recheck {}", run.kind), scope.clone());
    root.start_time = time(run.started_at);
    root.end_time = time(end);
    root.attributes = run_attributes(run, content);
    root.status = match run.status {
        RunStatus::Completed => Status::Ok,
        RunStatus::Failed => Status::error(run.error.clone().unwrap_or_else(|| "failed".into())),
        RunStatus::Running | RunStatus::Incomplete => Status::Unset,
    };
    spans.push(root);
    for step in steps {
        let (name, kind, mut attributes) = step_attributes(step, content);
        attributes.extend([
            KeyValue::new("recheck.run_id", run.id.to_string()),
            KeyValue::new("recheck.step", i64::from(step.index)),
            KeyValue::new("recheck.agent", step.agent.clone()),
        ]);
        let mut span = base(trace_id, span_id(run, step.index), root_id, name, scope.clone());
        span.span_kind = kind;
        span.start_time = time(step.started_at);
        span.end_time = time(step_end(step));
        span.attributes = attributes;
        span.status = match &step.error {
            Some(e) => Status::error(e.clone()),
            None => Status::Ok,
        };
        spans.push(span);
    }
    spans
}

fn base(trace: TraceId, id: SpanId, parent: SpanId, name: String, scope: InstrumentationScope) -> SpanData {
    SpanData {
        span_context: SpanContext::new(trace, id, TraceFlags::SAMPLED, false, TraceState::default()),
        parent_span_id: parent,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: Cow::Owned(name),
        start_time: SystemTime::UNIX_EPOCH,
        end_time: SystemTime::UNIX_EPOCH,
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: scope,
    }
}

/// A span id from the run and the step (`u32::MAX`: the root), the same on every
/// export, so sending a run twice sends the same spans.
fn span_id(run: &RunRecord, step: u32) -> SpanId {
    let digest = Sha256::new().chain_update(run.id.as_bytes()).chain_update(step.to_be_bytes()).finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    if bytes == [0; 8] {
        bytes[7] = 1;
    }
    SpanId::from_bytes(bytes)
}

fn step_end(step: &StepRecord) -> DateTime<Utc> {
    step.started_at + chrono::Duration::milliseconds(i64::try_from(step.latency_ms).unwrap_or(i64::MAX / 2))
}

fn time(t: DateTime<Utc>) -> SystemTime {
    SystemTime::from(t)
}

fn json_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The root span's attributes: the run, its question and outcome.
fn run_attributes(run: &RunRecord, content: bool) -> Vec<KeyValue> {
    let mut a = vec![
        KeyValue::new("openinference.span.kind", "AGENT"),
        KeyValue::new("recheck.run_id", run.id.to_string()),
        KeyValue::new("recheck.kind", run.kind.clone()),
        KeyValue::new("recheck.status", run.status.to_string()),
    ];
    if let Some(parent) = run.parent {
        a.push(KeyValue::new("recheck.parent", parent.to_string()));
    }
    if let Some(group) = run.group {
        a.push(KeyValue::new("recheck.group", group.run.to_string()));
    }
    if let Some(error) = &run.error {
        a.push(KeyValue::new("recheck.error", error.clone()));
    }
    if let Some(summary) = OutcomeSummary::of(run) {
        a.extend([
            KeyValue::new("recheck.verified", summary.verified.as_str()),
            KeyValue::new("recheck.claims", summary.claims as i64),
            KeyValue::new("recheck.support.supported", summary.support.supported as i64),
            KeyValue::new("recheck.support.contradicted", summary.support.contradicted as i64),
            KeyValue::new("recheck.support.unsupported", summary.support.unsupported as i64),
            KeyValue::new("recheck.support.unchecked", summary.support.unchecked as i64),
            KeyValue::new("recheck.strategy", summary.strategy.to_string()),
            KeyValue::new("recheck.stopped_by", summary.stopped_by.clone()),
            KeyValue::new("recheck.model_calls", i64::from(summary.model_calls)),
        ]);
        if content {
            a.extend([
                KeyValue::new("output.value", summary.answer.clone()),
                KeyValue::new("output.mime_type", "text/plain"),
            ]);
        }
    }
    if content {
        match run.input.get("question").and_then(|q| q.as_str()) {
            Some(q) => {
                a.extend([KeyValue::new("input.value", q.to_string()), KeyValue::new("input.mime_type", "text/plain")])
            }
            None => a.extend([
                KeyValue::new("input.value", json_text(&run.input)),
                KeyValue::new("input.mime_type", "application/json"),
            ]),
        }
    }
    a
}

/// A step's span name, kind and attributes.
fn step_attributes(step: &StepRecord, content: bool) -> (String, SpanKind, Vec<KeyValue>) {
    match &step.payload {
        StepPayload::ModelCall { model, request, response } => {
            let name = format!("chat {}", model_name(model, response.as_ref()));
            (name, SpanKind::Client, model_call(model, request, response.as_ref(), content))
        }
        StepPayload::Scoring { model, messages, continuation, score } => {
            let mut a = vec![
                KeyValue::new("openinference.span.kind", "LLM"),
                KeyValue::new("gen_ai.operation.name", "score_continuation"),
                KeyValue::new("gen_ai.provider.name", provider(model)),
                KeyValue::new("gen_ai.request.model", model_name(model, None)),
                KeyValue::new("llm.model_name", model_name(model, None)),
            ];
            if let Some(s) = score {
                a.push(KeyValue::new("recheck.score", json_text(s)));
            }
            if content {
                a.extend(messages_attributes(messages));
                a.extend([
                    KeyValue::new("output.value", continuation.clone()),
                    KeyValue::new("output.mime_type", "text/plain"),
                ]);
            }
            (format!("score {}", model_name(model, None)), SpanKind::Client, a)
        }
        StepPayload::ToolCall { tool, input, output } => {
            let mut a = vec![
                KeyValue::new("openinference.span.kind", "TOOL"),
                KeyValue::new("gen_ai.operation.name", "execute_tool"),
                KeyValue::new("gen_ai.tool.name", tool.clone()),
                KeyValue::new("tool.name", tool.clone()),
            ];
            if content {
                a.extend([
                    KeyValue::new("input.value", json_text(input)),
                    KeyValue::new("input.mime_type", "application/json"),
                    KeyValue::new("tool.parameters", json_text(input)),
                ]);
                if let Some(out) = output {
                    a.extend([
                        KeyValue::new("output.value", json_text(out)),
                        KeyValue::new("output.mime_type", "application/json"),
                    ]);
                }
            }
            (format!("execute_tool {tool}"), SpanKind::Internal, a)
        }
        StepPayload::Event { name, data } => {
            // Critiques, revisions and judgements are an agent's own steps.
            let kind = match step.agent.as_str() {
                "critic" | "judge" => "AGENT",
                _ => "CHAIN",
            };
            let mut a =
                vec![KeyValue::new("openinference.span.kind", kind), KeyValue::new("recheck.event", name.clone())];
            if content {
                a.extend([
                    KeyValue::new("output.value", json_text(data)),
                    KeyValue::new("output.mime_type", "application/json"),
                ]);
            }
            (format!("{} {name}", step.agent), SpanKind::Internal, a)
        }
    }
}

/// The provider as the GenAI conventions name it.
fn provider(model: &ModelInfo) -> String {
    match model.backend.as_str() {
        "local" => "llama.cpp".into(),
        other => other.to_string(),
    }
}

/// The model's name: what the server reported, else the spec without its backend.
fn model_name(model: &ModelInfo, response: Option<&Completion>) -> String {
    match response.map(|r| r.model.as_str()).filter(|m| !m.is_empty()) {
        Some(reported) => reported.to_string(),
        None => model.spec.split_once(':').map_or(model.spec.as_str(), |(_, name)| name).to_string(),
    }
}

/// The GenAI and OpenInference attributes of one chat call.
fn model_call(model: &ModelInfo, request: &ChatRequest, response: Option<&Completion>, content: bool) -> Vec<KeyValue> {
    let name = model_name(model, response);
    let p = &request.params;
    let mut a = vec![
        KeyValue::new("openinference.span.kind", "LLM"),
        KeyValue::new("gen_ai.operation.name", "chat"),
        KeyValue::new("gen_ai.provider.name", provider(model)),
        KeyValue::new("gen_ai.request.model", model_name(model, None)),
        KeyValue::new("gen_ai.request.temperature", f64::from(p.temperature)),
        KeyValue::new("gen_ai.request.top_p", f64::from(p.top_p)),
        KeyValue::new("gen_ai.request.max_tokens", i64::from(p.max_tokens)),
        KeyValue::new("llm.model_name", name.clone()),
        KeyValue::new("llm.provider", provider(model)),
        KeyValue::new(
            "llm.invocation_parameters",
            json_text(
                &json!({ "temperature": p.temperature, "top_p": p.top_p, "max_tokens": p.max_tokens, "seed": p.seed }),
            ),
        ),
        KeyValue::new("recheck.purpose", json_text(&request.purpose).trim_matches('"').to_string()),
    ];
    if let Some(seed) = p.seed {
        a.push(KeyValue::new("gen_ai.request.seed", seed as i64));
    }
    if let Some(r) = response {
        let reasons: Vec<StringValue> =
            r.choices.iter().map(|c| json_text(&c.finish_reason).trim_matches('"').to_string().into()).collect();
        a.extend([
            KeyValue::new("gen_ai.response.model", name),
            KeyValue::new("gen_ai.usage.input_tokens", i64::from(r.usage.prompt_tokens)),
            KeyValue::new("gen_ai.usage.output_tokens", i64::from(r.usage.completion_tokens)),
            KeyValue::new("gen_ai.response.finish_reasons", Value::Array(Array::String(reasons))),
            KeyValue::new("llm.token_count.prompt", i64::from(r.usage.prompt_tokens)),
            KeyValue::new("llm.token_count.completion", i64::from(r.usage.completion_tokens)),
            KeyValue::new("llm.token_count.total", r.usage.total() as i64),
        ]);
    }
    if content {
        a.extend(messages_attributes(&request.messages));
        if let Some(r) = response {
            let output: Vec<_> = r
                .choices
                .iter()
                .map(|c| json!({"role": "assistant", "parts": [{"type": "text", "content": c.text}], "finish_reason": c.finish_reason}))
                .collect();
            a.extend([
                KeyValue::new("gen_ai.output.messages", json_text(&output)),
                KeyValue::new("output.value", r.text().to_string()),
                KeyValue::new("output.mime_type", "text/plain"),
                KeyValue::new("llm.output_messages.0.message.role", "assistant"),
                KeyValue::new("llm.output_messages.0.message.content", r.text().to_string()),
            ]);
        }
    }
    a
}

/// The request's messages in both families' shapes.
fn messages_attributes(messages: &[Message]) -> Vec<KeyValue> {
    let role = |m: &Message| json_text(&m.role).trim_matches('"').to_string();
    let genai: Vec<_> =
        messages.iter().map(|m| json!({"role": role(m), "parts": [{"type": "text", "content": m.content}]})).collect();
    let plain: Vec<_> = messages.iter().map(|m| json!({"role": role(m), "content": m.content})).collect();
    let mut a = vec![
        KeyValue::new("gen_ai.input.messages", json_text(&genai)),
        KeyValue::new("input.value", json_text(&json!({ "messages": plain }))),
        KeyValue::new("input.mime_type", "application/json"),
    ];
    for (i, m) in messages.iter().enumerate() {
        a.push(KeyValue::new(format!("llm.input_messages.{i}.message.role"), role(m)));
        a.push(KeyValue::new(format!("llm.input_messages.{i}.message.content"), m.content.clone()));
    }
    a
}
