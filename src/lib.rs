//! # recheck
//!
//! recheck makes LLM answers checkable. It wraps any chat model in verify-and-revise
//! loops, ties claims to the sources that support them, records every step in a
//! trace store, and replays stored traces to measure how models fail.
//!
//! ## The pieces, from the bottom up
//! - [`files`]: reading the files users name (regular files only, bounded in size).
//! - [`trace`]: the sled [`TraceStore`] of runs and steps, the typed records (chat
//!   requests and replies, tool calls, events, experiment outcomes) and JSONL export.
//! - [`corpus`]: passages with exact offsets in a tantivy index, behind [`corpus::Retriever`].
//! - [`tools`]: exact checkers (arithmetic, primality, graph reachability, dates, search)
//!   behind the [`Tool`] trait, with typed outputs.
//! - [`analysis`]: metrics with intervals, computed from stored outcomes only.
//! - [`llm`]: the [`ChatModel`] trait and its backends (`openai:MODEL` for any
//!   OpenAI-compatible server; `local`, the embedded model, with the `local` feature),
//!   the recording wrapper and the run [`llm::Budget`] it enforces.
//! - [`embed`]: sentence embedders (the embedded all-MiniLM-L6-v2 with the `embed`
//!   feature, a BERT directory, an OpenAI-compatible `/v1/embeddings` endpoint) and
//!   opening an index in the retrieval mode asked for (bm25, dense, hybrid).
//! - [`agents`]: solver, critic (JSON validated against its schema), decomposer (atomic
//!   claims), judge (the [`agents::Entailment`] trait), tool-checker, citation-attributor
//!   and feedback writer, configured in `agents/*.toml` with prompts in `prompts/`.
//! - [`orchestrator`]: [`ask`] runs a strategy (single, self-refine, critic, ioe, wait,
//!   backtrack) over the agents, verifies the answer claim by claim, and returns an
//!   [`AskOutcome`]; it replays stored `ask`/`serve` runs exactly and forks them with
//!   one change, one at a time or in batches chosen by [`orchestrator::RunFilter`].
//! - [`eval`]: experiments (feedback friction, snowballing, the self-correction blind
//!   spot, the verifier on SciFact), resume, exact replay and forks, and the `sim:`
//!   simulator.
//! - `telemetry` (feature `otlp`): stored runs sent to OpenTelemetry collectors
//!   (Phoenix, Langfuse, Jaeger) as OTLP/HTTP traces with GenAI and OpenInference
//!   attributes, after the fact or live as runs finish.
//! - `server` (feature `server`): `recheck serve`, which answers any OpenAI client's
//!   chat completions inside the loop and stores each as a run.
//!
//! - [`Settings`] and [`ModelSettings`]: the settings of an `ask` or `verify` and of a
//!   model's connection as users state them (defaults, ranges, a refused one named in
//!   [`Error::BadSetting`]); the `recheck` command line and the Python package (`python/`)
//!   both turn them into options here.
//!
//! Each module depends only on those listed before it (`datasets` and `home` sit at
//! the bottom beside `trace`). Every entry point returns [`Error`], whose variants
//! wrap each module's own error.
//!
//! ## Cargo features
//! - `local` (default): the embedded llama.cpp model. Without it the library builds
//!   with no C++ toolchain, cmake or libclang; `local` specs then fail to open.
//! - `server` (default): [`server`], the OpenAI-compatible verifying proxy behind
//!   `recheck serve` (axum, hyper, prometheus-client).
//! - `otlp` (default): [`telemetry`], OTLP/HTTP export (opentelemetry-otlp with a
//!   blocking reqwest client; no gRPC stack).
//! - `embed` (default): the embedded sentence embedder (candle, tokenizers; pure Rust)
//!   for dense and hybrid retrieval. Without it, `openai:MODEL` embedders still work.
//! - `cli` (default): the `recheck` binary (clap, indicatif, progress output); needs `server`.
//!
//! ## Wrap a model in a critic loop
//! Any [`ChatModel`] works; here a stand-in that always claims 7411 is divisible by 3.
//! The exact tools refute the claim, so the answer is not verified, and the whole run
//! (every call, tool call, critique and the decomposer's attempt) is in the store.
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> recheck::Result<()> {
//! use std::sync::Arc;
//! use recheck::{ask, AskOptions, Strategy, TraceStore, Verification};
//! # use recheck::llm::{Capabilities, ChatModel, ChatRequest, Choice, Completion, FinishReason, LlmError, ModelInfo, Usage};
//! # struct Stubborn;
//! # #[async_trait::async_trait]
//! # impl ChatModel for Stubborn {
//! #     fn info(&self) -> ModelInfo { ModelInfo::new("stubborn", "example") }
//! #     fn capabilities(&self) -> Capabilities { Capabilities::default() }
//! #     async fn chat(&self, _: &ChatRequest) -> Result<Completion, LlmError> {
//! #         let text = "No. 7411 is divisible by 3.".to_string();
//! #         Ok(Completion { model: "stubborn".into(), choices: vec![Choice { text, finish_reason: FinishReason::Stop, logprobs: None }],
//! #             usage: Usage::default(), latency_ms: 0, rendered_prompt: None, seed: None })
//! #     }
//! # }
//!
//! let store = TraceStore::temporary()?;
//! let options = AskOptions::builtin()?.strategy(Strategy::Critic).rounds(2);
//! let outcome = ask(&store, Arc::new(Stubborn), "Is 7411 a prime number?", &options).await?;
//! assert_eq!(outcome.verified, Verification::Refuted);
//! assert!(store.steps(outcome.trace_id)?.len() > 3);
//! # Ok(()) }
//! ```
//! With a real backend, the model is one line: `recheck::open_model(&"local".parse()?,
//! &options)?` for the embedded model, or [`llm::OpenAiBackend::new`] for a server.
//!
//! ## Implement `ChatModel` for your own model
//! ```
//! use async_trait::async_trait;
//! use recheck::llm::{Capabilities, ChatModel, ChatRequest, Choice, Completion, FinishReason, LlmError, ModelInfo, Usage};
//!
//! /// Answers every question with the same sentence.
//! struct Constant(String);
//!
//! #[async_trait]
//! impl ChatModel for Constant {
//!     fn info(&self) -> ModelInfo {
//!         ModelInfo::new("constant", "example")
//!     }
//!     fn capabilities(&self) -> Capabilities {
//!         // No log-probabilities, no scoring, no prefilled turns: agents emulate a
//!         // prefilled turn and record that they did.
//!         Capabilities::default()
//!     }
//!     async fn chat(&self, request: &ChatRequest) -> Result<Completion, LlmError> {
//!         let prompt_tokens = request.messages.iter().map(|m| m.content.split_whitespace().count() as u32).sum();
//!         Ok(Completion {
//!             model: "constant".into(),
//!             choices: vec![Choice { text: self.0.clone(), finish_reason: FinishReason::Stop, logprobs: None }],
//!             usage: Usage { prompt_tokens, completion_tokens: 1 },
//!             latency_ms: 0,
//!             rendered_prompt: None,
//!             seed: request.params.seed,
//!         })
//!     }
//! }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let reply = Constant("Yes.".into()).chat(&ChatRequest::new(vec![recheck::llm::Message::user("Hi?")])).await.unwrap();
//! assert_eq!(reply.text(), "Yes.");
//! # }
//! ```
//!
//! ## Add your own `Tool`
//! A tool takes JSON arguments and returns JSON; register it by name and the registry
//! (and anything holding it) can call it.
//! ```
//! use std::sync::Arc;
//! use recheck::tools::{Tool, ToolError, ToolRegistry};
//! use serde_json::{json, Value};
//!
//! /// Whether a year is a leap year in the Gregorian calendar.
//! struct LeapYear;
//!
//! impl Tool for LeapYear {
//!     fn name(&self) -> &str { "leap_year" }
//!     fn description(&self) -> &str { "Whether `year` is a Gregorian leap year." }
//!     fn input_schema(&self) -> Value {
//!         json!({"type": "object", "required": ["year"], "properties": {"year": {"type": "integer"}}})
//!     }
//!     fn call(&self, input: &Value) -> Result<Value, ToolError> {
//!         let year = input["year"].as_i64().ok_or_else(|| ToolError::BadInput {
//!             tool: "leap_year".into(),
//!             detail: "`year` must be an integer".into(),
//!         })?;
//!         Ok(json!({ "leap": (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 }))
//!     }
//! }
//!
//! let mut tools = ToolRegistry::standard();
//! tools.register(Arc::new(LeapYear));
//! assert_eq!(tools.call("leap_year", &json!({"year": 1900})).unwrap()["leap"], false);
//! assert!(tools.call("leap_year", &json!({"year": "soon"})).is_err());
//! ```
//!
//! ## Read a stored run
//! Runs and their steps are typed records; an experiment's item outcomes are typed too.
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> recheck::Result<()> {
//! use recheck::trace::{run_kind, StepPayload, TraceStore};
//!
//! let store = TraceStore::temporary()?;
//! let run = store.create_run(run_kind::ASK, serde_json::json!({"question": "2 + 2?"}), serde_json::json!({}), None).await?;
//! let recorder = recheck::trace::RunRecorder::new(store.clone(), run.id, 0);
//! recorder.event("critic", "note", serde_json::json!({"text": "checked by hand"})).await?;
//!
//! for record in store.list_runs()? {
//!     println!("{} {} {}", record.id, record.kind, record.status);
//!     for step in store.steps(record.id)? {
//!         match step.payload {
//!             StepPayload::ModelCall { request, response, .. } => {
//!                 println!("  {} asked {:?}, got {:?}", step.agent, request.purpose, response.map(|r| r.text().to_string()))
//!             }
//!             StepPayload::ToolCall { tool, output, .. } => println!("  {tool} -> {output:?}"),
//!             StepPayload::Event { name, data } => println!("  {} {name}: {data}", step.agent),
//!             StepPayload::Scoring { continuation, .. } => println!("  scored {continuation:?}"),
//!         }
//!     }
//! }
//! # assert_eq!(store.steps(run.id)?.len(), 1);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod files;
pub mod trace;

pub mod corpus;
pub mod datasets;
pub mod home;
pub mod tools;

pub mod analysis;
pub mod llm;

pub mod embed;

pub mod agents;

pub mod eval;
pub mod orchestrator;

#[cfg(feature = "otlp")]
pub mod telemetry;

#[cfg(feature = "server")]
pub mod server;

mod error;
mod setting;

pub use setting::{check_in_flight, MAX_IN_FLIGHT};

pub use error::{corpus_hint, corpus_is_usage, eval_hint, llm_hint, trace_hint, Error, Result, HOME_HINT};
pub use eval::{open_model, ModelSettings};
pub use llm::ChatModel;
pub use orchestrator::{
    ask, verify, AskOptions, AskOutcome, GivenAnswer, Question, Settings, Strategy, Verification, VerifyOutcome,
};
pub use tools::Tool;
pub use trace::TraceStore;
