//! The three protocols, each run on one item inside its own recorded run.

mod blindspot;
mod friction;
mod mistakes;
mod snowball;
mod verify;

use std::{str::FromStr, sync::atomic::AtomicBool};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{AnswerKind, EvalError, EvalSpec};
use crate::{
    agents::{continue_turn, AgentError, AgentSet},
    corpus::{CorpusError, Retriever},
    datasets::Item,
    llm::{ChatModel, ChatRequest, LlmError, Message, Purpose, SamplingParams},
    tools::ToolRegistry,
    trace::{ItemOutcome, Protocol, RunRecorder},
};

/// The one change a fork applies from its fork step on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", content = "value", rename_all = "snake_case")]
pub enum Change {
    /// Nothing but the model (`--model`).
    None,
    /// Friction: this feedback text instead of the feedback agent's.
    Feedback(String),
    /// The next solver answer (friction, snowball) or the erroneous reasoning
    /// (blind spot) is replaced by this text: an error put in the model's mouth.
    Inject(String),
    /// "Wait," is appended to each solver answer and the model continues it.
    Wait,
    /// A spec option set to a value (`rounds`, `temperature_step`, `reject_repeats`, ...).
    Spec {
        /// The option.
        key: String,
        /// Its new value, as TOML.
        value: String,
    },
}

impl FromStr for Change {
    type Err = EvalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |detail: &str| EvalError::BadChange { change: s.to_string(), detail: detail.to_string() };
        let (key, value) = match s.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v)),
            None => (s.trim(), None),
        };
        match (key, value) {
            ("none" | "model", None) => Ok(Change::None),
            ("wait", None) => Ok(Change::Wait),
            ("feedback", Some(v)) => Ok(Change::Feedback(v.to_string())),
            ("inject", Some(v)) if !v.trim().is_empty() => Ok(Change::Inject(v.to_string())),
            (k, Some(v))
                if matches!(
                    k,
                    "rounds"
                        | "temperature"
                        | "temperature_step"
                        | "temperature_cap"
                        | "reject_repeats"
                        | "max_tokens"
                        | "max_calls"
                        | "token_budget"
                        | "candidates"
                        | "simulated_location_accuracy"
                        | "backtrack"
                ) =>
            {
                Ok(Change::Spec { key: k.to_string(), value: v.trim().to_string() })
            }
            ("feedback_mode", Some(v)) => Ok(Change::Spec { key: "feedback".into(), value: format!("{v:?}") }),
            ("judge", Some(v)) => Ok(Change::Spec { key: "judge".into(), value: format!("{:?}", v.trim()) }),
            ("strategy", Some(v)) => Ok(Change::Spec { key: "strategy".into(), value: format!("{:?}", v.trim()) }),
            _ => Err(bad("expected one of: none, wait, feedback=TEXT, inject=TEXT, feedback_mode=model|binary, \
                          rounds=N, temperature=X, temperature_step=X, temperature_cap=X, reject_repeats=true|false, \
                          max_tokens=N, judge=model|lexical, candidates=N, strategy=single|best-of-n, \
                          simulated_location_accuracy=P, backtrack=true|false")),
        }
    }
}

impl Change {
    /// The spec with this change applied (spec options only; other changes act at run time).
    pub fn apply_to(&self, spec: &EvalSpec) -> Result<EvalSpec, EvalError> {
        let Change::Spec { key, value } = self else { return Ok(spec.clone()) };
        let bad = |detail: String| EvalError::BadChange { change: format!("{key}={value}"), detail };
        let mut table = toml::Value::try_from(spec).map_err(|e| bad(e.to_string()))?;
        let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .map_err(|e| bad(format!("value {value:?} is not a TOML value: {e}")))?
            .remove("v")
            .ok_or_else(|| bad("empty value".into()))?;
        if let Some(t) = table.as_table_mut() {
            t.insert(key.clone(), parsed);
        }
        let out: EvalSpec = table.try_into().map_err(|e: toml::de::Error| bad(e.to_string()))?;
        out.check().map_err(bad)?;
        Ok(out)
    }
}

/// Everything one item's protocol run needs.
pub(crate) struct ItemContext<'a> {
    pub spec: &'a EvalSpec,
    pub item: &'a Item,
    pub answer: AnswerKind,
    pub agents: &'a AgentSet,
    pub tools: &'a ToolRegistry,
    /// The corpus of the verify protocol.
    pub retriever: Option<&'a dyn Retriever>,
    pub recorder: &'a RunRecorder,
    pub solver: &'a dyn ChatModel,
    pub feedback: &'a dyn ChatModel,
    /// A fork's step and change.
    pub change: Option<&'a (u32, Change)>,
    /// Whether an `Inject` change was used already (it applies once).
    pub injected: AtomicBool,
}

impl ItemContext<'_> {
    /// The fork's change, once the run has reached the fork step.
    fn change(&self) -> Option<&Change> {
        self.change.filter(|(from, _)| self.recorder.next_index() >= *from).map(|(_, c)| c)
    }

    /// An `Inject` change's text, the first time it applies.
    fn take_injection(&self) -> Option<String> {
        match self.change() {
            Some(Change::Inject(text)) if !self.injected.swap(true, std::sync::atomic::Ordering::SeqCst) => {
                Some(text.clone())
            }
            _ => None,
        }
    }

    /// Sampling parameters with the spec's token limit.
    fn params(&self, temperature: f32, seed: u64) -> SamplingParams {
        SamplingParams { temperature, max_tokens: self.spec.max_tokens, seed: Some(seed), ..Default::default() }
    }

    /// A request for `purpose` with the spec's token limit.
    fn request(&self, purpose: Purpose, messages: Vec<Message>, temperature: f32, seed: u64) -> ChatRequest {
        ChatRequest::new(messages).with_params(self.params(temperature, seed)).for_purpose(purpose)
    }

    /// The solver prompt of the item's question (no passages).
    fn question_prompt(&self) -> Result<String, AgentError> {
        crate::agents::solver::question_prompt(self.agents, &self.item.question, &[])
    }

    /// A solver reply to `messages`, with a fork's injection or "Wait" applied.
    async fn solve(&self, messages: Vec<Message>, temperature: f32, seed: u64) -> Result<String, EvalStepError> {
        let request = self.request(Purpose::Answer, messages.clone(), temperature, seed);
        let mut text = self.solver.chat(&request).await?.text().trim().to_string();
        if let Some(injected) = self.take_injection() {
            self.recorder.event("solver", "injected", json!({ "replaced": text, "answer": injected })).await?;
            text = injected;
        }
        if self.change() == Some(&Change::Wait) {
            let prefix = format!("{text}\nWait,");
            let params = self.params(temperature, seed);
            let cont = continue_turn(self.agents, self.solver, self.recorder, messages, &prefix, params).await?;
            text = format!("{prefix}{}", cont.text()).trim().to_string();
        }
        Ok(text)
    }
}

/// Why one item stopped early: its run is stored as failed with this message.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EvalStepError {
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Trace(#[from] crate::trace::TraceError),
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error("{0}")]
    NotApplicable(String),
}

/// Run `cx.item` under `protocol`; returns the graded outcome stored as the item run's output.
pub(crate) async fn run_item(protocol: Protocol, cx: &ItemContext<'_>) -> Result<ItemOutcome, EvalStepError> {
    Ok(match protocol {
        Protocol::Friction => ItemOutcome::Friction(friction::run(cx).await?),
        Protocol::Snowball => ItemOutcome::Snowball(snowball::run(cx).await?),
        Protocol::Blindspot => ItemOutcome::Blindspot(blindspot::run(cx).await?),
        Protocol::Verify => ItemOutcome::Verify(verify::run(cx).await?),
        Protocol::Mistakes => ItemOutcome::Mistakes(mistakes::run(cx).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_parse_and_apply() {
        assert_eq!("wait".parse::<Change>().unwrap(), Change::Wait);
        assert_eq!("feedback=Look at C.".parse::<Change>().unwrap(), Change::Feedback("Look at C.".into()));
        assert!("inject=".parse::<Change>().is_err());
        assert!("colour=3".parse::<Change>().unwrap_err().to_string().contains("expected one of"));
        let spec: EvalSpec = toml::from_str(
            "name = \"x\"\nprotocol = \"friction\"\n[[datasets]]\nloader = \"jsonl\"\npath = \"a.jsonl\"\n",
        )
        .unwrap();
        let changed = "rounds=5".parse::<Change>().unwrap().apply_to(&spec).unwrap();
        assert_eq!((changed.rounds, spec.rounds), (5, 3));
        let binary = "feedback_mode=binary".parse::<Change>().unwrap().apply_to(&spec).unwrap();
        assert_eq!(binary.feedback.as_deref(), Some("binary"));
        let err = "rounds=0".parse::<Change>().unwrap().apply_to(&spec).unwrap_err().to_string();
        assert!(err.contains("at least 1"), "{err}");
    }
}
