//! What an `ask` (or `serve`) run stores as its config: enough to run it again.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{AskOptions, LoopOptions, Strategy, VerifyOptions};
use crate::{agents::AgentConfig, llm::ModelInfo};

/// The config of an `ask` or `serve` run. Runs stored before a field existed lack it
/// (`None`); [`super::replay`] says which one a replay needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AskRecord {
    /// The strategy.
    pub strategy: Strategy,
    /// Loop limits and anti-friction options.
    #[serde(rename = "loop")]
    pub loop_options: LoopOptions,
    /// The run's model.
    pub model: ModelInfo,
    /// The critic's own model, if it had one.
    #[serde(default)]
    pub critic_model: Option<ModelInfo>,
    /// The decomposer's own model, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decomposer_model: Option<ModelInfo>,
    /// The judge's own model, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge_model: Option<ModelInfo>,
    /// The agents' configs as they ran (request overrides applied).
    pub agents: AgentRecords,
    /// The exact tools offered.
    pub tools: Vec<String>,
    /// Whether a corpus was given.
    pub retriever: bool,
    /// Where the corpus was (an index directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<PathBuf>,
    /// How the corpus was searched (runs stored before the choice existed: BM25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<crate::corpus::Retrieval>,
    /// Passages given to the solver as context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_passages: Option<usize>,
    /// How the answer was verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyOptions>,
    /// The run's labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// The agents' configs in a run record (the solver's and critic's always; the rest
/// since runs became replayable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRecords {
    /// The solver.
    pub solver: AgentConfig,
    /// The critic.
    pub critic: AgentConfig,
    /// The tool-checker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_checker: Option<AgentConfig>,
    /// The citation-attributor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributor: Option<AgentConfig>,
    /// The decomposer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decomposer: Option<AgentConfig>,
    /// The judge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<AgentConfig>,
}

impl AskRecord {
    /// The record of a run of `model` (its identity with capabilities) under `options`.
    pub fn of(options: &AskOptions, model: ModelInfo) -> Self {
        let a = &options.agents;
        Self {
            strategy: options.loop_options.strategy,
            loop_options: options.loop_options.clone(),
            model,
            critic_model: options.critic_model.as_deref().map(crate::llm::identity),
            decomposer_model: options.decomposer_model.as_deref().map(crate::llm::identity),
            judge_model: options.judge_model.as_deref().map(crate::llm::identity),
            agents: AgentRecords {
                solver: a.solver.clone(),
                critic: a.critic.clone(),
                tool_checker: Some(a.tool_checker.clone()),
                attributor: Some(a.attributor.clone()),
                decomposer: Some(a.decomposer.clone()),
                judge: Some(a.judge.clone()),
            },
            tools: options.tools.names().into_iter().map(String::from).collect(),
            retriever: options.retriever.is_some(),
            index: options.retriever.as_ref().and_then(|r| r.location()),
            retrieval: options.retriever.as_ref().and_then(|r| r.retrieval()),
            context_passages: Some(options.context_passages),
            verify: Some(options.verify),
            tags: options.tags.clone(),
        }
    }
}
