//! # recheck
//!
//! recheck makes LLM answers checkable. It wraps any chat model in verify-and-revise
//! loops, ties claims to the sources that support them, records every step in a
//! trace store, and replays stored traces to measure how models fail.
//!
//! The core pieces:
//! - [`llm::ChatModel`]: one trait over every backend (`openai:MODEL` for any
//!   OpenAI-compatible server, `local` for the embedded model).
//! - [`trace::TraceStore`]: runs and their steps in sled; every model call goes
//!   through a [`trace::RecordingModel`], so the store holds enough to replay a run.
//! - [`agents`]: solver, critic (JSON validated against its schema), tool-checker and
//!   citation-attributor, configured in `agents/*.toml` with prompts in `prompts/`.
//! - [`tools`]: exact checkers (arithmetic, primality, graph reachability, dates, search).
//! - [`corpus`]: passages with exact offsets in a tantivy index, behind [`corpus::Retriever`].
//! - [`orchestrator`] runs the strategies (single, self-refine, critic, ioe, wait, backtrack)
//!   that drive the agents and record runs.
//! - [`eval`] runs the experiments (feedback friction, snowballing, the self-correction
//!   blind spot), resumes, replays and forks them; [`analysis`] computes their metrics
//!   from the stored traces only.
//!
//! ```no_run
//! # async fn demo() -> recheck::Result<()> {
//! use std::sync::Arc;
//! use recheck::{agents::AgentSet, llm, orchestrator::{self, AskOptions, LoopOptions, Strategy}};
//! use recheck::{tools::ToolRegistry, trace::TraceStore};
//!
//! let store = TraceStore::open("/tmp/recheck-traces")?;
//! let model = llm::OpenAiBackend::new("gpt-4o-mini", llm::OpenAiOptions::new("http://127.0.0.1:8000/v1"))?;
//! let options = AskOptions {
//!     loop_options: LoopOptions { strategy: Strategy::Critic, rounds: 2, ..Default::default() },
//!     agents: Arc::new(AgentSet::builtin()?),
//!     tools: ToolRegistry::standard(),
//!     retriever: None,
//!     context_passages: 0,
//!     critic_model: None,
//! };
//! let outcome = orchestrator::ask(&store, Arc::new(model), "Is 7411 a prime number?", &options).await?;
//! println!("{} (verified: {:?}, run {})", outcome.answer, outcome.verified, outcome.trace_id);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod agents;
pub mod analysis;
pub mod cli;
pub mod corpus;
pub mod datasets;
mod error;
pub mod eval;
pub mod home;
pub mod llm;
pub mod orchestrator;
pub mod tools;
pub mod trace;

pub use error::{Error, Result};
