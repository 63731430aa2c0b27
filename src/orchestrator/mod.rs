//! The orchestrator: strategies that run agents over a question and record the run.
//!
//! For now one strategy, `single`: one recorded model call. Verify-and-revise
//! strategies build on the same run/recorder plumbing.

use std::sync::Arc;

use serde::Serialize;
use serde_json::json;

use crate::{
    llm::{ChatModel, ChatRequest, FinishReason, Message, ModelInfo, SamplingParams, Usage},
    trace::{RunId, RunRecorder, RunStatus, TraceStore},
    Error, Result,
};

/// How to ask.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AskOptions {
    /// A system message; `None` keeps the model's (or chat template's) default.
    pub system: Option<String>,
    /// Sampling parameters.
    pub params: SamplingParams,
}

/// What came back, with the run that recorded it.
#[derive(Debug, Clone, Serialize)]
pub struct AskOutcome {
    /// The final answer.
    pub answer: String,
    /// The run in the trace store.
    pub trace_id: RunId,
    /// The model that answered.
    pub model: ModelInfo,
    /// Tokens used over all calls.
    pub usage: Usage,
    /// Why the last generation stopped.
    pub finish_reason: FinishReason,
    /// Wall time of the model calls.
    pub latency_ms: u64,
}

/// Ask `question` once (strategy `single`), recording the run in `store`.
///
/// A failed call is recorded (step with its error, run marked failed) and returned
/// as [`Error::RunFailed`] naming the run.
pub async fn ask(
    store: &TraceStore,
    model: Arc<dyn ChatModel>,
    question: &str,
    options: &AskOptions,
) -> Result<AskOutcome> {
    let info = model.info();
    let config = json!({ "strategy": "single", "model": info, "options": options });
    let run = store.create_run("ask", json!({ "question": question }), config, None).await?;
    let recorder = RunRecorder::new(store.clone(), run.id, 0);
    let solver = recorder.model("solver", model);

    let mut messages = Vec::new();
    if let Some(system) = &options.system {
        messages.push(Message::system(system.clone()));
    }
    messages.push(Message::user(question));
    let request = ChatRequest { messages, params: options.params.clone() };

    match solver.chat(&request).await {
        Ok(completion) => {
            let answer = completion.text().trim().to_string();
            store.finish_run(run.id, RunStatus::Completed, Some(json!({ "answer": answer })), None).await?;
            Ok(AskOutcome {
                answer,
                trace_id: run.id,
                model: info,
                usage: completion.usage,
                finish_reason: completion.finish_reason(),
                latency_ms: completion.latency_ms,
            })
        }
        Err(e) => {
            store.finish_run(run.id, RunStatus::Failed, None, Some(e.to_string())).await?;
            Err(Error::RunFailed { run_id: run.id, source: e })
        }
    }
}
