//! How a question is answered and an answer verified, as a user states it: named
//! settings with their defaults and ranges, turned into [`AskOptions`]. The command
//! line (`recheck ask`, `verify`, `serve`) and the Python package both go through
//! here, so a setting means the same, and is refused for the same reason, in each.
//! A refused setting is [`Error::BadSetting`] naming it; each front end names it its
//! own way (`--temperature-step`, `temperature_step=`).

use std::{path::PathBuf, sync::Arc};

use serde_json::{Map, Value};

use crate::{
    agents::{calibration::CalibrationFile, AgentSet, Calibration},
    corpus::{Fusion, Mode},
    embed::RetrievalChoice,
    llm::ChatModel,
    Error, Result,
};

use crate::setting::{bad, Field};

use super::{AskOptions, ClaimUnit, JudgeChoice, LoopOptions, Strategy, VerifyOptions, DEFAULT_CONTEXT_PASSAGES};

/// Opens the model an agent config names for itself (its `model`, a spec).
pub type OpenModel<'a> = &'a dyn Fn(&str) -> Result<Arc<dyn ChatModel>>;

/// The settings of an `ask` or a `verify`, each with the command line's default.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The verify-and-revise strategy (`ask`).
    pub strategy: Strategy,
    /// Review rounds at most, 0 to 100 (`ask`).
    pub rounds: u32,
    /// Answers `best-of-n` draws, 1 to 32.
    pub candidates: u32,
    /// A corpus index for context passages, the search tool and citations.
    pub index: Option<PathBuf>,
    /// Passages given to the solver as numbered context (with `index`).
    pub context: usize,
    /// How the index is searched: bm25, dense or hybrid (default: hybrid where the
    /// index has vectors, bm25 where it has none).
    pub retrieval: Option<Mode>,
    /// Hybrid search's weight of the dense score, in [0, 1] (weighted score fusion;
    /// unset: [`crate::corpus::dense::DEFAULT_ALPHA`]).
    pub alpha: Option<f32>,
    /// The query embedder (default: the one that made the index's vectors).
    pub embedder: Option<String>,
    /// Citation scorer: lexical, contextcite or leave_one_out (default: attributor.toml).
    pub citation_scorer: Option<String>,
    /// A directory overriding `agents/*.toml`.
    pub agents_dir: Option<PathBuf>,
    /// A directory overriding `prompts/*.j2`.
    pub prompts_dir: Option<PathBuf>,
    /// Solver temperature in [0, 2] (default: solver.toml).
    pub temperature: Option<f32>,
    /// Temperature added to the solver's each round, in [0, 2].
    pub temperature_step: f32,
    /// Tell the solver which answers were rejected and resample repeats.
    pub reject_repeats: bool,
    /// Solver generation limit (default: solver.toml).
    pub max_tokens: Option<u32>,
    /// Model calls the loop may make, at least 1.
    pub max_calls: u32,
    /// Tokens the loop may spend; 0 is no limit.
    pub token_budget: u64,
    /// The judge of claims against evidence.
    pub judge: JudgeChoice,
    /// Self-consistency samples, 0 to 32.
    pub samples: u32,
    /// Judge every pair of the answer's claims for contradictions.
    pub contradictions: bool,
    /// Split the answer into atomic claims (else only the tool-checker's claims).
    pub decompose: bool,
    /// What one claim of a given answer is (`verify`).
    pub claims: ClaimUnit,
    /// Score ALCE citation recall and precision (`verify`).
    pub citation_quality: bool,
    /// The judge's calibration: `contextual`, `none` or a file (default: judge.toml's).
    pub calibration: Option<String>,
    /// Seed for sampled calls.
    pub seed: u64,
    /// Labels stored with the run.
    pub tags: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            strategy: Strategy::Single,
            rounds: 2,
            candidates: super::best_of_n::DEFAULT_CANDIDATES,
            index: None,
            context: DEFAULT_CONTEXT_PASSAGES,
            retrieval: None,
            alpha: None,
            embedder: None,
            citation_scorer: None,
            agents_dir: None,
            prompts_dir: None,
            temperature: None,
            temperature_step: 0.0,
            reject_repeats: false,
            max_tokens: None,
            max_calls: 24,
            token_budget: 0,
            judge: JudgeChoice::Model,
            samples: 0,
            contradictions: false,
            decompose: true,
            claims: ClaimUnit::Atomic,
            citation_quality: false,
            calibration: None,
            seed: 0,
            tags: Vec::new(),
        }
    }
}

impl Settings {
    /// The defaults with `values` (setting name to value, as JSON) over them: an unknown
    /// name, a value of the wrong type or out of range is refused, naming the setting.
    ///
    /// ```
    /// use recheck::{Error, Settings, Strategy};
    ///
    /// let values = serde_json::json!({"strategy": "critic", "rounds": 3});
    /// let settings = Settings::from_values(values.as_object().unwrap())?;
    /// assert_eq!((settings.strategy, settings.rounds, settings.max_calls), (Strategy::Critic, 3, 24));
    ///
    /// let values = serde_json::json!({"temperature": 7});
    /// match Settings::from_values(values.as_object().unwrap()) {
    ///     Err(Error::BadSetting { setting, problem }) => {
    ///         assert_eq!(setting, "temperature");
    ///         assert_eq!(problem, "must be a number in [0, 2], got 7");
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), Error>(())
    /// ```
    pub fn from_values(values: &Map<String, Value>) -> Result<Self> {
        let mut s = Settings::default();
        for (name, value) in values {
            let v = Field { name, value };
            match name.as_str() {
                "strategy" => {
                    s.strategy =
                        v.choice(|t| t.parse().ok(), "single, self-refine, critic, ioe, wait, backtrack or best-of-n")?
                }
                "rounds" => s.rounds = v.integer()?,
                "candidates" => s.candidates = v.integer()?,
                "index" => s.index = v.path()?,
                "context" => s.context = v.integer()?,
                "retrieval" => s.retrieval = Some(v.choice(|t| t.parse().ok(), "bm25, dense or hybrid")?),
                "alpha" => s.alpha = v.optional_number()?,
                "embedder" => s.embedder = v.optional_text()?,
                "citation_scorer" => s.citation_scorer = v.optional_text()?,
                "agents_dir" => s.agents_dir = v.path()?,
                "prompts_dir" => s.prompts_dir = v.path()?,
                "temperature" => s.temperature = v.optional_number()?,
                "temperature_step" => s.temperature_step = v.number()?,
                "reject_repeats" => s.reject_repeats = v.flag()?,
                "max_tokens" => s.max_tokens = v.optional_integer()?,
                "max_calls" => s.max_calls = v.integer()?,
                "token_budget" => s.token_budget = v.integer()?,
                "judge" => s.judge = v.choice(|t| parse_judge(t).ok(), "model or lexical")?,
                "samples" => s.samples = v.integer()?,
                "contradictions" => s.contradictions = v.flag()?,
                "decompose" => s.decompose = v.flag()?,
                "claims" => s.claims = v.choice(|t| t.parse().ok(), "atomic, sentences or whole")?,
                "citation_quality" => s.citation_quality = v.flag()?,
                "calibration" => s.calibration = v.optional_text()?,
                "seed" => s.seed = v.integer()?,
                "tags" => s.tags = v.texts()?,
                _ => return Err(bad(name, "is not a setting")),
            }
        }
        s.check()?;
        Ok(s)
    }

    /// Refuse values out of range (NaN and infinities included).
    pub fn check(&self) -> Result<()> {
        if self.rounds > 100 {
            return Err(bad("rounds", format!("must be 0 to 100, got {}", self.rounds)));
        }
        if self.max_calls == 0 {
            return Err(bad("max_calls", "must be at least 1 (the first answer is a call)"));
        }
        if !(1..=32).contains(&self.candidates) {
            return Err(bad("candidates", format!("must be 1 to 32, got {}", self.candidates)));
        }
        if let Some(t) = self.temperature.filter(|t| !(0.0..=2.0).contains(t)) {
            return Err(bad("temperature", format!("must be a number in [0, 2], got {t}")));
        }
        if !(0.0..=2.0).contains(&self.temperature_step) {
            return Err(bad("temperature_step", format!("must be a number in [0, 2], got {}", self.temperature_step)));
        }
        RetrievalChoice::of(self.retrieval, self.alpha, None).map_err(|e| bad("alpha", e))?;
        if self.samples > 32 {
            return Err(bad("samples", format!("must be 0 to 32, got {}", self.samples)));
        }
        if let Some(s) =
            self.citation_scorer.as_deref().filter(|s| !["lexical", "contextcite", "leave_one_out"].contains(s))
        {
            return Err(bad("citation_scorer", format!("must be lexical, contextcite or leave_one_out, got {s:?}")));
        }
        for tag in &self.tags {
            super::check_tag(tag).map_err(|e| bad("tags", format!("has a bad tag: {e}")))?;
        }
        Ok(())
    }

    /// The agents, built-in or overridden by `agents_dir`/`prompts_dir`, with the
    /// solver's temperature, token limit and the citation scorer set here.
    pub fn agents(&self) -> Result<AgentSet> {
        let mut agents = AgentSet::load(self.agents_dir.as_deref(), self.prompts_dir.as_deref())?;
        if let Some(t) = self.temperature {
            agents.solver.temperature = Some(t);
        }
        if let Some(n) = self.max_tokens {
            agents.solver.max_tokens = Some(n);
        }
        if let Some(scorer) = &self.citation_scorer {
            agents.attributor.scorer = Some(scorer.clone());
        }
        Ok(agents)
    }

    /// The options of an `ask` (or a `serve` request): a loop, then verification.
    pub fn ask_options(&self, open: OpenModel<'_>) -> Result<AskOptions> {
        self.check()?;
        let mut options = agent_options(self.agents()?, self.index.as_deref(), &self.retrieval_choice(), open)?;
        options.loop_options = LoopOptions {
            strategy: self.strategy,
            rounds: self.rounds,
            candidates: self.candidates,
            temperature_step: self.temperature_step,
            reject_repeats: self.reject_repeats,
            max_calls: self.max_calls,
            token_budget: self.token_budget,
            seed: self.seed,
            ..Default::default()
        };
        options.context_passages = self.context;
        options.verify = VerifyOptions {
            decompose: self.decompose,
            judge: self.judge,
            calibration: calibration(self.calibration.as_deref(), &options.agents)?,
            samples: self.samples,
            contradictions: self.contradictions,
            ..Default::default()
        };
        options.tags = self.tags.clone();
        Ok(options)
    }

    /// The options of a `verify` of a given answer: verification only, no loop.
    pub fn verify_options(&self, open: OpenModel<'_>) -> Result<AskOptions> {
        self.check()?;
        let agents = AgentSet::load(self.agents_dir.as_deref(), self.prompts_dir.as_deref())?;
        let mut options = agent_options(agents, self.index.as_deref(), &self.retrieval_choice(), open)?;
        options.loop_options.seed = self.seed;
        options.verify = VerifyOptions {
            decompose: self.decompose,
            claims: self.claims,
            judge: self.judge,
            calibration: calibration(self.calibration.as_deref(), &options.agents)?,
            citation_quality: self.citation_quality,
            samples: self.samples,
            contradictions: self.contradictions,
            ..Default::default()
        };
        options.tags = self.tags.clone();
        Ok(options)
    }
}

impl Settings {
    /// The retrieval asked for, as the index is opened with it.
    pub fn retrieval_choice(&self) -> RetrievalChoice {
        RetrievalChoice {
            mode: self.retrieval,
            fusion: self.alpha.map(|alpha| Fusion::Weighted { alpha }),
            embedder: self.embedder.clone(),
        }
    }
}

/// A judge's name: `model` or `lexical`.
pub fn parse_judge(s: &str) -> std::result::Result<JudgeChoice, String> {
    match s {
        "model" => Ok(JudgeChoice::Model),
        "lexical" => Ok(JudgeChoice::Lexical),
        other => Err(format!("{other:?} is not a judge (model or lexical)")),
    }
}

/// Options over `agents`, with the models agent configs name for themselves (a `model`
/// other than "default") opened by `open`, and `index` as the corpus searched as
/// `retrieval` says: what `ask`, `serve` and `verify` share before their own settings.
pub fn agent_options(
    agents: AgentSet,
    index: Option<&std::path::Path>,
    retrieval: &RetrievalChoice,
    open: OpenModel<'_>,
) -> Result<AskOptions> {
    let own_model = |spec: Option<&str>| match spec {
        None | Some("default") => Ok(None),
        Some(spec) => open(spec).map(Some),
    };
    let critic_model = own_model(agents.critic.model.as_deref())?;
    let decomposer_model = own_model(agents.decomposer.model.as_deref())?;
    let judge_model = own_model(agents.judge.model.as_deref())?;
    let mut options = AskOptions::new(Arc::new(agents));
    if let Some(dir) = index {
        options = options.corpus(Arc::new(open_index(dir, retrieval)?));
    }
    options.critic_model = critic_model;
    options.decomposer_model = decomposer_model;
    options.judge_model = judge_model;
    Ok(options)
}

/// The index in `dir`, searched as `retrieval` says, with this process's embedders;
/// an index without vectors asked for nothing answers BM25 and says so once.
pub fn open_index(dir: &std::path::Path, retrieval: &RetrievalChoice) -> Result<crate::corpus::CorpusIndex> {
    let say = |m: &str| tracing::warn!("{m}");
    Ok(crate::embed::open_index(dir, retrieval, &crate::embed::options(), &say)?)
}

/// The judge's calibration: `setting` (`none`, `contextual`, or a file `recheck
/// calibrate` wrote), else judge.toml's `calibration`, else none.
pub fn calibration(setting: Option<&str>, agents: &AgentSet) -> Result<Calibration> {
    let (value, from) = match (setting, agents.judge.calibration.as_deref()) {
        (Some(v), _) => (v, None),
        (None, Some(v)) => (v, Some("agents/judge.toml's calibration")),
        (None, None) => return Ok(Calibration::None),
    };
    match value {
        "none" => Ok(Calibration::None),
        "contextual" => Ok(Calibration::Contextual),
        path => CalibrationFile::load(std::path::Path::new(path)).map(|file| file.calibration).map_err(|e| {
            let problem = format!("{e} (give contextual, none, or a file `recheck calibrate` wrote)");
            match from {
                None => bad("calibration", problem),
                Some(from) => Error::BadInput(format!("{from}: {problem}")),
            }
        }),
    }
}

/// Refuse a calibration the judge's model cannot take (it gives no label
/// probabilities) before any record runs.
pub fn check_judge(options: &AskOptions, model: &dyn ChatModel) -> Result<()> {
    let v = &options.verify;
    if v.calibration.is_none() || v.judge == JudgeChoice::Lexical {
        return Ok(());
    }
    let judge = options.judge_model.as_deref().unwrap_or(model);
    crate::agents::calibration::check_usable(judge).map_err(|e| bad("calibration", e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn settings(v: Value) -> Result<Settings> {
        Settings::from_values(v.as_object().unwrap())
    }

    #[test]
    fn values_are_read_as_their_settings_types() {
        let s = settings(json!({"strategy": "critic", "rounds": 3, "temperature": 0.5, "judge": "lexical",
            "decompose": false, "claims": "whole", "tags": ["a", "b"], "index": null}))
        .unwrap();
        assert_eq!((s.strategy, s.rounds, s.temperature), (Strategy::Critic, 3, Some(0.5)));
        assert_eq!((s.judge, s.decompose, s.claims), (JudgeChoice::Lexical, false, ClaimUnit::Whole));
        assert_eq!(s.tags, ["a", "b"]);
        assert_eq!(settings(json!({})).unwrap(), Settings::default());
    }

    #[test]
    fn refusals_name_the_setting() {
        let refused = |v: Value| match settings(v) {
            Err(Error::BadSetting { setting, problem }) => format!("{setting} {problem}"),
            other => panic!("not refused: {other:?}"),
        };
        assert_eq!(
            refused(json!({"strategy": "best"})),
            "strategy must be single, self-refine, critic, ioe, wait, backtrack or best-of-n, got \"best\""
        );
        assert!(refused(json!({"temperature": "NaN"})).starts_with("temperature must be a number in [0, 2], got NaN"));
        assert!(refused(json!({"temperature_step": 3})).contains("in [0, 2]"));
        assert!(refused(json!({"rounds": -1})).starts_with("rounds must be a whole number"));
        assert!(refused(json!({"rounds": 101})).starts_with("rounds must be 0 to 100"));
        assert!(refused(json!({"max_calls": 0})).starts_with("max_calls must be at least 1"));
        assert!(refused(json!({"judge": "oracle"})).starts_with("judge must be model or lexical, got"));
        assert!(refused(json!({"colour": 1})).starts_with("colour is not a setting"));
        assert!(refused(json!({"tags": ["a,b"]})).starts_with("tags has a bad tag: "));
        assert!(refused(json!({"decompose": "no"})).starts_with("decompose must be true or false"));
    }
}
