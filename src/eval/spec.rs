//! Experiment specs: TOML files in `evals/` naming the protocol, the datasets (paths
//! relative to a data root), the rounds, sampling and seed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{AnswerKind, EvalError, Protocol};
use crate::{
    agents::JudgeChoice,
    datasets::{self, Item, Loader},
    orchestrator::Strategy,
};

/// One dataset of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetRef {
    /// Which loader reads the file.
    pub loader: Loader,
    /// Path under the data root; one starting with `./` is relative to the spec file
    /// (our own sets in `evals/data/`); absolute paths are taken as they are.
    pub path: PathBuf,
    /// How answers are read and compared with the gold answer.
    #[serde(default)]
    pub answer: AnswerKind,
    /// Keep only items that have a marked first mistake (the blind-spot protocol needs one).
    #[serde(default)]
    pub require_mistake: bool,
}

/// A corpus to retrieve evidence from (the verify protocol): a JSONL file indexed once
/// and kept under the home's `indexes/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusRef {
    /// Path under the data root (or `./` beside the spec, or absolute).
    pub path: PathBuf,
    /// The id field of each line.
    #[serde(default = "default_id_field")]
    pub id_field: String,
    /// The title field.
    #[serde(default = "default_title_field")]
    pub title_field: String,
    /// The text field (a string or a list of sentences).
    #[serde(default = "default_text_field")]
    pub text_field: String,
}

fn default_id_field() -> String {
    "id".into()
}
fn default_title_field() -> String {
    "title".into()
}
fn default_text_field() -> String {
    "text".into()
}
fn default_candidates() -> usize {
    3
}
fn default_max_calls() -> u32 {
    64
}

/// Bounds on spec values, so a typo cannot fill the disk (`rounds = 1000000`).
const MAX_ROUNDS: u32 = 100;
const MAX_TOKENS: u32 = 32_768;
const MAX_CANDIDATES: usize = 100;

fn default_rounds() -> u32 {
    3
}
fn default_max_tokens() -> u32 {
    256
}
fn default_cap() -> f32 {
    1.0
}

/// An experiment: what to run, on what, how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    /// A short name shown in reports.
    pub name: String,
    /// What the experiment measures.
    #[serde(default)]
    pub description: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The datasets, in order; items are numbered across them.
    pub datasets: Vec<DatasetRef>,
    /// Answer rounds at most (friction: the first answer plus feedback rounds).
    #[serde(default = "default_rounds")]
    pub rounds: u32,
    /// Sampling temperature of the solver's first answer.
    #[serde(default)]
    pub temperature: f32,
    /// Temperature added each feedback round (Jiang et al.: +0.15).
    #[serde(default)]
    pub temperature_step: f32,
    /// Cap of the scheduled temperature.
    #[serde(default = "default_cap")]
    pub temperature_cap: f32,
    /// Tell the solver which answers were already judged wrong, and resample once on a repeat.
    #[serde(default)]
    pub reject_repeats: bool,
    /// Feedback mode (friction): `model` or `binary`; empty = the feedback agent's config.
    #[serde(default)]
    pub feedback: Option<String>,
    /// Token limit of each generation.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Seed of every sampled call.
    #[serde(default)]
    pub seed: u64,
    /// The corpus evidence is retrieved from (verify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corpus: Option<CorpusRef>,
    /// The judge of claims against evidence (verify); the model under test is the
    /// model judge.
    #[serde(default)]
    pub judge: JudgeChoice,
    /// Passages retrieved per claim (verify), at most one per document; with
    /// `strategy = "best-of-n"` (friction), the answers drawn for each solver turn.
    #[serde(default = "default_candidates")]
    pub candidates: usize,
    /// How each solver answer is chosen (friction): `single` (one answer) or
    /// `best-of-n` (`candidates` answers, the one the verifier supports best kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// Mistakes: the accuracy of the simulated mistake locator backtracking is also run
    /// from (Tyen et al. simulate a reward model right 60-70% of the time); 0.65 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated_location_accuracy: Option<f64>,
    /// Mistakes: backtrack from the gold, critic and simulated locations (needs a model
    /// that continues a prefilled turn); true when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backtrack: Option<bool>,
    /// Verify: how the corpus is searched, bm25 (when unset), dense or hybrid (the
    /// corpus is then embedded into an index of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<crate::corpus::Mode>,
    /// Verify, hybrid: the weight of the dense score in the fusion (unset: 0.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f32>,
    /// Verify, dense or hybrid: the embedder (`local` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedder: Option<String>,
    /// Model calls one item may make (its models refuse calls past it; the item fails).
    #[serde(default = "default_max_calls")]
    pub max_calls: u32,
    /// Tokens (prompt + completion) one item may spend; 0 = no limit.
    #[serde(default)]
    pub token_budget: u64,
    /// Snowballing: ask true claims back too, as controls. On unless the spec says
    /// `controls = false`; `None` only in experiments stored before controls existed,
    /// which replay without them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controls: Option<bool>,
    /// The spec file it was read from (absolute), for `./` dataset paths and messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

impl EvalSpec {
    /// Read and check a spec file.
    pub fn load(file: &Path) -> Result<Self, EvalError> {
        let bad = |detail: String| EvalError::Spec { file: file.to_path_buf(), detail };
        let text =
            crate::files::read_to_string(file, crate::files::FileKind::Spec).map_err(|e| bad(e.problem.to_string()))?;
        let mut spec: EvalSpec = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        spec.check().map_err(bad)?;
        spec.controls.get_or_insert(true);
        spec.file = Some(std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf()));
        Ok(spec)
    }

    /// A spec from TOML text (dataset paths then resolve against the data root only).
    pub fn parse(text: &str) -> Result<Self, EvalError> {
        let bad = |detail: String| EvalError::Spec { file: PathBuf::from("<text>"), detail };
        let mut spec: EvalSpec = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        spec.check().map_err(bad)?;
        spec.controls.get_or_insert(true);
        Ok(spec)
    }

    /// Consistency checks beyond the TOML shape; what is wrong, in words.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.datasets.is_empty() {
            return Err("no [[datasets]]".into());
        }
        if self.rounds == 0 {
            return Err("rounds must be at least 1".into());
        }
        if self.rounds > MAX_ROUNDS {
            return Err(format!("rounds = {} is more than {MAX_ROUNDS}", self.rounds));
        }
        if self.max_tokens == 0 || self.max_tokens > MAX_TOKENS {
            return Err(format!("max_tokens = {} is not in 1..={MAX_TOKENS}", self.max_tokens));
        }
        if self.max_calls == 0 {
            return Err("max_calls must be at least 1".into());
        }
        if !(0.0..=2.0).contains(&self.temperature_step) {
            return Err(format!("temperature_step = {} is not in [0, 2]", self.temperature_step));
        }
        if let Some(mode) = self.feedback.as_deref().filter(|m| !matches!(*m, "model" | "binary")) {
            return Err(format!("feedback {mode:?} is not one of \"model\", \"binary\""));
        }
        // A range check also refuses NaN and infinities.
        for (field, value) in [("temperature", self.temperature), ("temperature_cap", self.temperature_cap)] {
            if !(0.0..=2.0).contains(&value) {
                return Err(format!("{field} = {value} is not in [0, 2]"));
            }
        }
        if let Some(a) = self.alpha {
            crate::corpus::Fusion::weighted(a).map_err(|e| format!("alpha {e}"))?;
            if self.retrieval != Some(crate::corpus::Mode::Hybrid) {
                return Err("alpha weighs hybrid search's two rankings: it needs retrieval = \"hybrid\"".into());
            }
        }
        if self.protocol == Protocol::Verify && self.corpus.is_none() {
            return Err("the verify protocol needs a [corpus] to retrieve evidence from".into());
        }
        if self.candidates == 0 || self.candidates > MAX_CANDIDATES {
            return Err(format!("candidates = {} is not in 1..={MAX_CANDIDATES}", self.candidates));
        }
        if let Some(p) = self.simulated_location_accuracy.filter(|p| !(0.0..=1.0).contains(p)) {
            return Err(format!("simulated_location_accuracy = {p} is not a probability in [0, 1]"));
        }
        if self.simulated_location_accuracy.is_some() && self.protocol != Protocol::Mistakes {
            return Err("simulated_location_accuracy is an option of the mistakes protocol".into());
        }
        match self.strategy {
            Some(Strategy::Single | Strategy::BestOfN) | None => {}
            Some(other) => {
                return Err(format!("strategy {:?} is not one of \"single\", \"best-of-n\"", other.name()));
            }
        }
        if self.strategy.is_some() && self.protocol != Protocol::Friction {
            return Err("strategy is an option of the friction protocol".into());
        }
        Ok(())
    }

    /// Where a spec path points: `./` beside the spec, absolute as is, else under the data root.
    pub fn resolve(&self, path: &Path, data_root: &Path) -> PathBuf {
        match (self.file.as_deref().and_then(Path::parent), path.starts_with(".")) {
            (Some(dir), true) => dir.join(path),
            _ => data_root.join(path),
        }
    }

    /// Load the items: each dataset's first `limit` items (all when `None`), in order,
    /// with the dataset index they came from.
    pub fn load_items(&self, data_root: &Path, limit: Option<usize>) -> crate::Result<Vec<(usize, Item)>> {
        let mut out = Vec::new();
        for (d, ds) in self.datasets.iter().enumerate() {
            let path = self.resolve(&ds.path, data_root);
            if !path.is_file() {
                let relative_to_root = !(ds.path.starts_with(".") || ds.path.is_absolute());
                return Err(EvalError::DatasetMissing {
                    file: self.file.clone().unwrap_or_else(|| PathBuf::from(&self.name)),
                    path,
                    under: relative_to_root.then(|| data_root.to_path_buf()),
                }
                .into());
            }
            let items = datasets::load(ds.loader, &path)?;
            let kept = items.into_iter().filter(|i| !ds.require_mistake || i.mistake_index.is_some());
            out.extend(kept.take(limit.unwrap_or(usize::MAX)).map(|i| (d, i)));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_spec_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("evals");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                EvalSpec::load(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 3, "expected friction, snowball and blindspot specs in evals/");
    }

    #[test]
    fn bad_specs_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.toml");
        std::fs::write(&f, "name = \"x\"\nprotocol = \"friction\"\ndatasets = []\n").unwrap();
        let err = EvalSpec::load(&f).unwrap_err().to_string();
        assert!(err.contains("x.toml") && err.contains("no [[datasets]]"), "{err}");
        let huge =
            "name = \"x\"\nprotocol = \"friction\"\nrounds = 1000000\n[[datasets]]\nloader = \"jsonl\"\npath = \"a\"\n";
        std::fs::write(&f, huge).unwrap();
        let err = EvalSpec::load(&f).unwrap_err().to_string();
        assert!(err.contains("rounds = 1000000 is more than 100"), "{err}");
        std::fs::write(&f, "name = \"x\"\nprotocol = \"frictionless\"\n").unwrap();
        let err = EvalSpec::load(&f).unwrap_err().to_string();
        assert!(err.contains("unknown variant"), "{err}");
    }
}
