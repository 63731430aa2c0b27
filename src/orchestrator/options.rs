//! What `ask` runs with besides the model and the question, and a builder for it.

use std::sync::Arc;

use super::{JudgeChoice, LoopOptions, Strategy, VerifyOptions};
use crate::{
    agents::AgentSet,
    corpus::Retriever,
    llm::{ChatModel, Message},
    tools::{CorpusSearch, ToolRegistry},
    trace::run_kind,
    Result,
};

/// Passages given to the solver as context when a corpus is used and no number is set.
pub const DEFAULT_CONTEXT_PASSAGES: usize = 3;

/// What [`super::ask`] answers: a question, and the conversation before it, if any.
///
/// The solver sees the history (system messages and earlier turns, as a client sent
/// them) before the question in its drafts, revisions and samples; the critic, the
/// tool-checker and the judge check the answer against the question alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Question {
    /// The question (the last user turn).
    pub text: String,
    /// The messages before it.
    pub history: Vec<Message>,
}

impl Question {
    /// `text` after `history`.
    pub fn with_history(text: impl Into<String>, history: Vec<Message>) -> Self {
        Self { text: text.into(), history }
    }
}

impl From<&str> for Question {
    fn from(text: &str) -> Self {
        Self { text: text.to_string(), history: Vec::new() }
    }
}

impl From<String> for Question {
    fn from(text: String) -> Self {
        Self { text, history: Vec::new() }
    }
}

impl From<&String> for Question {
    fn from(text: &String) -> Self {
        Self::from(text.as_str())
    }
}

/// Everything a run needs besides the model and the question.
///
/// ```
/// # fn main() -> recheck::Result<()> {
/// use recheck::{AskOptions, Strategy};
/// let options = AskOptions::builtin()?.strategy(Strategy::Critic).rounds(2).max_calls(12);
/// assert_eq!(options.loop_options.rounds, 2);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AskOptions {
    /// Strategy, rounds, budget, anti-friction options.
    pub loop_options: LoopOptions,
    /// Agent configs and prompts.
    pub agents: Arc<AgentSet>,
    /// Exact tools for the tool-checker (limited further by its config's `tools`).
    pub tools: ToolRegistry,
    /// A corpus for context passages and citations.
    pub retriever: Option<Arc<dyn Retriever>>,
    /// Passages given to the solver as numbered context.
    pub context_passages: usize,
    /// A different model for the critic (its config's `model`); `None` = the run's model.
    pub critic_model: Option<Arc<dyn ChatModel>>,
    /// How the final answer is verified.
    pub verify: VerifyOptions,
    /// A different model for the decomposer; `None` = the run's model.
    pub decomposer_model: Option<Arc<dyn ChatModel>>,
    /// A different model for the judge (a strong judge over a cheap solver).
    pub judge_model: Option<Arc<dyn ChatModel>>,
    /// The kind the run is stored as: [`run_kind::ASK`], or [`run_kind::SERVE`] for
    /// requests through `recheck serve`.
    pub run_kind: &'static str,
    /// The run this one forks, stored as its parent.
    pub parent: Option<crate::trace::RunId>,
    /// The group run (a batch of forks) this run is a slot of.
    pub group: Option<crate::trace::GroupSlot>,
    /// Labels stored with the run (`replay --runs tag=NAME` selects by them).
    pub tags: Vec<String>,
}

impl std::fmt::Debug for AskOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AskOptions").field("loop_options", &self.loop_options).field("tools", &self.tools).finish()
    }
}

impl AskOptions {
    /// Options with `agents`, the standard exact tools, no corpus and the default loop
    /// (`single`, 2 rounds, 24 calls).
    pub fn new(agents: Arc<AgentSet>) -> Self {
        Self {
            loop_options: LoopOptions::default(),
            agents,
            tools: ToolRegistry::standard(),
            retriever: None,
            context_passages: 0,
            critic_model: None,
            verify: VerifyOptions::default(),
            decomposer_model: None,
            judge_model: None,
            run_kind: run_kind::ASK,
            parent: None,
            group: None,
            tags: Vec::new(),
        }
    }

    /// [`AskOptions::new`] with the built-in agents and prompts.
    pub fn builtin() -> Result<Self> {
        Ok(Self::new(Arc::new(AgentSet::builtin()?)))
    }

    /// Use `strategy`.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.loop_options.strategy = strategy;
        self
    }

    /// At most `rounds` review rounds.
    pub fn rounds(mut self, rounds: u32) -> Self {
        self.loop_options.rounds = rounds;
        self
    }

    /// At most `calls` model calls in the loop.
    pub fn max_calls(mut self, calls: u32) -> Self {
        self.loop_options.max_calls = calls;
        self
    }

    /// At most `ms` milliseconds in the loop.
    pub fn time_budget_ms(mut self, ms: u64) -> Self {
        self.loop_options.time_budget_ms = Some(ms);
        self
    }

    /// At most `tokens` tokens in the loop (0 = no limit).
    pub fn token_budget(mut self, tokens: u64) -> Self {
        self.loop_options.token_budget = tokens;
        self
    }

    /// Seed of sampled calls.
    pub fn seed(mut self, seed: u64) -> Self {
        self.loop_options.seed = seed;
        self
    }

    /// These exact tools.
    pub fn tools(mut self, tools: ToolRegistry) -> Self {
        self.tools = tools;
        self
    }

    /// Cite from `retriever`, and give the solver its top `context_passages` passages.
    pub fn retriever(mut self, retriever: Arc<dyn Retriever>, context_passages: usize) -> Self {
        self.retriever = Some(retriever);
        self.context_passages = context_passages;
        self
    }

    /// Use `retriever` as the run's corpus, as `recheck ask --index` does: context
    /// passages for the solver ([`DEFAULT_CONTEXT_PASSAGES`] unless already set), the
    /// corpus search tool, and citations.
    pub fn corpus(mut self, retriever: Arc<dyn Retriever>) -> Self {
        self.tools.register(Arc::new(CorpusSearch::new(retriever.clone(), Default::default())));
        if self.context_passages == 0 {
            self.context_passages = DEFAULT_CONTEXT_PASSAGES;
        }
        self.retriever = Some(retriever);
        self
    }

    /// Judge claims against evidence with `judge`.
    pub fn judge(mut self, judge: JudgeChoice) -> Self {
        self.verify.judge = judge;
        self
    }

    /// Split the answer into atomic claims (on by default).
    pub fn decompose(mut self, on: bool) -> Self {
        self.verify.decompose = on;
        self
    }

    /// Correct the model judge's label probabilities with `calibration`.
    pub fn calibration(mut self, calibration: crate::agents::Calibration) -> Self {
        self.verify.calibration = calibration;
        self
    }

    /// Self-consistency: draw `n` more answers and check unsettled claims against them.
    pub fn samples(mut self, n: u32) -> Self {
        self.verify.samples = n;
        self
    }

    /// Self-contradiction: judge every pair of the answer's claims.
    pub fn contradictions(mut self, on: bool) -> Self {
        self.verify.contradictions = on;
        self
    }

    /// A separate model for the judge.
    pub fn judge_model(mut self, model: Arc<dyn ChatModel>) -> Self {
        self.judge_model = Some(model);
        self
    }

    /// A separate model for the critic.
    pub fn critic_model(mut self, model: Arc<dyn ChatModel>) -> Self {
        self.critic_model = Some(model);
        self
    }
}
