//! Forking a stored `ask`, `serve` or `verify` run: its recorded replies before a step, then a
//! live model, with one change, stored as a new run whose parent is the original.

use std::{path::PathBuf, str::FromStr, sync::Arc};

use serde::Serialize;

use super::{
    ask,
    replay::{source, Subject},
    AskOutcome, Calibration, JudgeChoice, OutcomeSummary, Strategy, Verification,
};
use crate::{
    agents::AgentSet,
    llm::{recorded_calls, ChatModel, ReplayModel},
    trace::{GroupSlot, RunId, TraceStore},
    Error, Result,
};

/// One change a fork makes.
#[derive(Debug, Clone, PartialEq)]
pub enum AskChange {
    /// Nothing but the live model.
    None,
    /// `strategy=NAME`.
    Strategy(Strategy),
    /// `rounds=N`.
    Rounds(u32),
    /// `samples=N` (self-consistency samples).
    Samples(u32),
    /// `candidates=N` (answers `best-of-n` draws).
    Candidates(u32),
    /// `judge=model|lexical`.
    Judge(JudgeChoice),
    /// `calibration=contextual|none|FILE`: the model judge's calibration (a file's
    /// offsets are read when the change is parsed).
    Calibration(Calibration),
    /// `index=DIR`: another corpus index.
    Index(PathBuf),
    /// `judge_model=SPEC`: the judge (model judge) on another model, given to [`fork`]
    /// as [`ForkModels::judge`].
    JudgeModel(String),
    /// `prompt.NAME=PATH`: prompt template `NAME` (`critic.j2`, or an agent's name for
    /// its main template) replaced by the file at PATH.
    Prompt {
        /// The template's file name.
        template: String,
        /// The new template's file.
        path: PathBuf,
    },
    /// `agent.NAME=PATH`: agent `NAME`'s config (`critic`, `judge`, ...) replaced by
    /// the TOML file at PATH.
    Agent {
        /// The agent.
        agent: String,
        /// The new config file.
        path: PathBuf,
    },
}

impl AskChange {
    /// The change as it is written on the command line.
    pub fn describe(&self) -> String {
        match self {
            AskChange::None => "none".into(),
            AskChange::Strategy(s) => format!("strategy={s}"),
            AskChange::Rounds(n) => format!("rounds={n}"),
            AskChange::Samples(n) => format!("samples={n}"),
            AskChange::Candidates(n) => format!("candidates={n}"),
            AskChange::Judge(JudgeChoice::Model) => "judge=model".into(),
            AskChange::Judge(JudgeChoice::Lexical) => "judge=lexical".into(),
            AskChange::Calibration(c) => format!("calibration={}", c.describe()),
            AskChange::Index(dir) => format!("index={}", dir.display()),
            AskChange::JudgeModel(spec) => format!("judge_model={spec}"),
            AskChange::Prompt { template, path } => format!("prompt.{template}={}", path.display()),
            AskChange::Agent { agent, path } => format!("agent.{agent}={}", path.display()),
        }
    }
}

/// The models a fork runs live on.
#[derive(Clone)]
pub struct ForkModels {
    /// Every agent's model from the fork step on (the run's recorded model, reopened,
    /// or another).
    pub live: Arc<dyn ChatModel>,
    /// The judge's model, for [`AskChange::JudgeModel`].
    pub judge: Option<Arc<dyn ChatModel>>,
}

impl ForkModels {
    /// Every agent on `live`.
    pub fn live(live: Arc<dyn ChatModel>) -> Self {
        Self { live, judge: None }
    }
}

impl FromStr for AskChange {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::BadChange { change: s.to_string(), reason: reason.to_string() };
        if s == "none" {
            return Ok(AskChange::None);
        }
        let (key, value) = s.split_once('=').ok_or_else(|| bad("expected KEY=VALUE or none"))?;
        let number = |what: &str, max: u32| -> Result<u32> {
            value.parse::<u32>().ok().filter(|n| *n <= max).ok_or_else(|| bad(&format!("{what} must be 0 to {max}")))
        };
        Ok(match key {
            "strategy" => AskChange::Strategy(value.parse().map_err(|e| bad(&format!("{e}")))?),
            "rounds" => AskChange::Rounds(number("rounds", 100)?),
            "samples" => AskChange::Samples(number("samples", 32)?),
            "candidates" => match value.parse::<u32>() {
                Ok(n @ 1..=32) => AskChange::Candidates(n),
                _ => return Err(bad("candidates must be 1 to 32")),
            },
            "judge" => AskChange::Judge(match value {
                "model" => JudgeChoice::Model,
                "lexical" => JudgeChoice::Lexical,
                _ => return Err(bad("judge must be model or lexical")),
            }),
            "calibration" => AskChange::Calibration(match value {
                "none" => Calibration::None,
                "contextual" => Calibration::Contextual,
                path => crate::agents::CalibrationFile::load(std::path::Path::new(path))
                    .map_err(|e| bad(&e.to_string()))?
                    .calibration,
            }),
            "index" => AskChange::Index(PathBuf::from(value)),
            "judge_model" if !value.is_empty() => AskChange::JudgeModel(value.to_string()),
            _ if key.starts_with("agent.") && key.len() > "agent.".len() => {
                AskChange::Agent { agent: key["agent.".len()..].to_string(), path: PathBuf::from(value) }
            }
            _ => match key.strip_prefix("prompt.") {
                Some(name) if !name.is_empty() => {
                    let template = match name {
                        n if n.ends_with(".j2") => n.to_string(),
                        agent => format!("{agent}.j2"),
                    };
                    AskChange::Prompt { template, path: PathBuf::from(value) }
                }
                _ => {
                    return Err(bad(
                        "known changes: none, strategy=NAME, rounds=N, samples=N, judge=model|lexical, calibration=contextual|none|FILE, judge_model=SPEC, index=DIR, prompt.NAME=PATH, agent.NAME=PATH",
                    ))
                }
            },
        })
    }
}

/// A fork's result: the new run, and how its verdict compares with the original's.
#[derive(Debug, Clone, Serialize)]
pub struct AskFork {
    /// The fork (a new run; its parent is `parent`).
    pub run_id: RunId,
    /// The forked run.
    pub parent: RunId,
    /// The original's verdict.
    pub verified_before: Verification,
    /// The fork's verdict.
    pub verified_after: Verification,
    /// Whether the final answer changed.
    pub answer_changed: bool,
    /// Model calls served from the record before the fork went live.
    pub replayed_calls: usize,
    /// The fork's outcome.
    pub outcome: AskOutcome,
}

/// Fork `run_id`: its recorded replies at steps before `from_step` (while the requests
/// match), then `models` (a model must be given: none is re-opened from a record), with
/// `change`. Stored in `store` as a new run of the same kind whose parent is `run_id`.
///
/// ```no_run
/// # async fn example(store: recheck::TraceStore, run: recheck::trace::RunId, model: std::sync::Arc<dyn recheck::ChatModel>) -> recheck::Result<()> {
/// use recheck::{agents::AgentSet, orchestrator::{fork, ForkModels}};
/// // The recorded draft, then a live critic with another prompt.
/// let change = "prompt.critic=my-critic.j2".parse()?;
/// let forked = fork(&store, run, 1, &change, &ForkModels::live(model), &AgentSet::builtin()?).await?;
/// println!("{:?} -> {:?}", forked.verified_before, forked.verified_after);
/// # Ok(()) }
/// ```
pub async fn fork(
    store: &TraceStore,
    run_id: RunId,
    from_step: u32,
    change: &AskChange,
    models: &ForkModels,
    agents: &AgentSet,
) -> Result<AskFork> {
    fork_in(store, run_id, from_step, change, models, agents, None).await
}

/// [`fork`], the fork stored in slot `group` of a batch.
pub(super) async fn fork_in(
    store: &TraceStore,
    run_id: RunId,
    from_step: u32,
    change: &AskChange,
    models: &ForkModels,
    agents: &AgentSet,
    group: Option<GroupSlot>,
) -> Result<AskFork> {
    let live = models.live.clone();
    let mut agents = agents.clone();
    if let AskChange::Prompt { template, path } = change {
        let text =
            crate::files::read_to_string(path, crate::files::FileKind::Prompt).map_err(|e| Error::BadChange {
                change: format!("prompt.{template}={}", path.display()),
                reason: format!("cannot read {e}"),
            })?;
        agents.replace_template(template, text)?;
    }
    let (run, record, subject, mut options) = source(store, run_id, &agents)?;
    let before = OutcomeSummary::of(&run);
    match change {
        AskChange::None | AskChange::Prompt { .. } => {}
        AskChange::Agent { agent, path } => {
            let mut changed = (*options.agents).clone();
            changed
                .replace_config(agent, path)
                .map_err(|e| Error::BadChange { change: change.describe(), reason: e.to_string() })?;
            options.agents = Arc::new(changed);
        }
        AskChange::JudgeModel(_) => {
            if models.judge.is_none() {
                return Err(Error::BadChange {
                    change: change.describe(),
                    reason: "the judge's model was not opened (ForkModels::judge)".into(),
                });
            }
            options.verify.judge = JudgeChoice::Model;
        }
        AskChange::Strategy(s) => {
            options.loop_options.strategy = *s;
        }
        AskChange::Rounds(n) => options.loop_options.rounds = *n,
        AskChange::Samples(n) => options.verify.samples = *n,
        AskChange::Candidates(n) => options.loop_options.candidates = *n,
        AskChange::Judge(j) => options.verify.judge = *j,
        AskChange::Calibration(c) => {
            options.verify.judge = JudgeChoice::Model;
            options.verify.calibration = *c;
        }
        AskChange::Index(dir) => {
            let retrieval = crate::embed::RetrievalChoice::default();
            options = options.corpus(Arc::new(super::settings::open_index(dir, &retrieval)?))
        }
    }
    let (_, calls) = recorded_calls(store.steps(run_id)?);
    let replayed = ReplayModel::fork(record.model.clone(), calls, from_step, live.clone());
    let sibling = |m: &Option<crate::llm::ModelInfo>| {
        m.as_ref().map(|_| Arc::new(replayed.sibling(Some(live.clone()))) as Arc<dyn ChatModel>)
    };
    options.critic_model = sibling(&record.critic_model);
    options.decomposer_model = sibling(&record.decomposer_model);
    options.judge_model = match &models.judge {
        Some(judge) => Some(Arc::new(replayed.sibling(Some(judge.clone())))),
        None => sibling(&record.judge_model),
    };
    options.parent = Some(run_id);
    options.group = group;
    let counter = Arc::new(replayed);
    let outcome = match subject {
        Subject::Question(question) => ask(store, counter.clone(), question, &options).await?,
        Subject::Given(given) => super::verify(store, counter.clone(), &given, &options).await?.outcome,
    };
    Ok(AskFork {
        run_id: outcome.trace_id,
        parent: run_id,
        verified_before: before.as_ref().map_or(Verification::Unknown, |b| b.verified),
        verified_after: outcome.verified,
        answer_changed: before.is_none_or(|b| b.answer != outcome.answer),
        replayed_calls: counter.replayed(),
        outcome,
    })
}
