//! Judge calibration: correcting the model judge's label prior before it picks a label.
//!
//! A small model judge says "true" to nearly every claim whatever the evidence: a
//! prior over the label words, not a judgement. Both corrections here add one offset
//! per label to the judge's label log-probabilities:
//!
//! - **contextual** (Zhao et al., 2021, "Calibrate Before Use"): the judge prompt is
//!   scored on content-free inputs ([`CONTENT_FREE`]), their label probabilities are
//!   averaged, and each label's probability is divided by its content-free one (its
//!   log subtracted). Measured once per run and recorded as a `calibration` event.
//! - **fitted**: offsets chosen on labelled records to maximise balanced accuracy
//!   (`recheck calibrate`), stored in a calibration file.
//!
//! Either needs label probabilities: the local model (it scores continuations) or a
//! server returning log-probabilities. A judge that only samples votes is refused.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{judge::ModelJudge, AgentError, Label};
use crate::{files::FileKind, llm::ChatModel};

/// The three labels' log-probabilities in [`Label::ALL`]'s order; `None` where the
/// backend gave none (a label word outside a server's top alternatives).
pub type LabelLogprobs = [Option<f64>; 3];

/// How the model judge's label log-probabilities are corrected. Recorded in the run's
/// config, so a replay applies the same correction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Calibration {
    /// The raw label probabilities.
    #[default]
    None,
    /// Divided by their means on content-free inputs, measured once per run.
    Contextual,
    /// These offsets added to the log-probabilities (true, false, unknown).
    Offsets {
        /// One offset per label, in nats.
        offsets: [f64; 3],
    },
}

impl Calibration {
    /// Whether it changes anything.
    pub fn is_none(&self) -> bool {
        matches!(self, Calibration::None)
    }

    /// As said in output and `--help`: `none`, `contextual` or the offsets.
    pub fn describe(&self) -> String {
        match self {
            Calibration::None => "none".into(),
            Calibration::Contextual => "contextual".into(),
            Calibration::Offsets { offsets: [a, b, c] } => {
                format!("offsets true {a:+.2}, false {b:+.2}, unknown {c:+.2}")
            }
        }
    }
}

/// The content-free inputs of contextual calibration: the three of Zhao et al. (2021).
pub const CONTENT_FREE: [&str; 3] = ["N/A", "", "[MASK]"];

/// Refuse calibration for a judge `model` that gives no label probabilities.
pub fn check_usable(model: &dyn ChatModel) -> Result<(), AgentError> {
    let caps = model.capabilities();
    if caps.score_continuation || caps.logprobs {
        return Ok(());
    }
    Err(AgentError::Calibration(format!(
        "{} gives no log-probabilities, so its judge samples votes and has no label probabilities to calibrate; \
         run without calibration, or judge with a model that scores (the local model, or a server returning logprobs)",
        model.info().spec
    )))
}

/// What contextual calibration measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContentFree {
    /// The inputs, each put as both the claim and the evidence of the judge prompt.
    pub inputs: Vec<String>,
    /// Each input's label probabilities (true, false, unknown), renormalised over the three.
    pub probabilities: Vec<[f64; 3]>,
    /// Their mean.
    pub mean: [f64; 3],
    /// The offsets applied: minus the log of the mean.
    pub offsets: [f64; 3],
}

/// Probabilities below this count as this (a label word a server left out of its top
/// alternatives would otherwise get an infinite offset).
const FLOOR: f64 = 1e-6;

/// Measure contextual calibration for `judge` (its model, prompt and seed).
pub async fn measure_contextual(judge: &ModelJudge<'_>) -> Result<ContentFree, AgentError> {
    let mut probabilities = Vec::with_capacity(CONTENT_FREE.len());
    for input in CONTENT_FREE {
        let logprobs = judge.label_logprobs(input, &[input.to_string()]).await?.ok_or_else(|| {
            AgentError::Calibration(
                "the judge's model returned no log-probabilities for a content-free input; \
                 contextual calibration needs them"
                    .into(),
            )
        })?;
        probabilities.push(softmax(&logprobs));
    }
    let n = probabilities.len() as f64;
    let mut mean = [0.0; 3];
    for p in &probabilities {
        for (m, v) in mean.iter_mut().zip(p) {
            *m += v / n;
        }
    }
    let offsets = mean.map(|p| -p.max(FLOOR).ln());
    Ok(ContentFree { inputs: CONTENT_FREE.iter().map(|s| s.to_string()).collect(), probabilities, mean, offsets })
}

/// The three labels' probabilities renormalised over them (a missing one is 0).
pub fn softmax(logprobs: &LabelLogprobs) -> [f64; 3] {
    let top = logprobs.iter().flatten().copied().fold(f64::NEG_INFINITY, f64::max);
    if !top.is_finite() {
        return [0.0; 3];
    }
    let weights = logprobs.map(|l| l.map_or(0.0, |l| (l - top).exp()));
    let total: f64 = weights.iter().sum();
    weights.map(|w| w / total)
}

/// The label `logprobs` give after `offsets`: the highest corrected log-probability;
/// `None` when no label has one.
pub fn decide(logprobs: &LabelLogprobs, offsets: &[f64; 3]) -> Option<(Label, f64)> {
    let corrected: LabelLogprobs = std::array::from_fn(|i| logprobs[i].map(|l| l + offsets[i]));
    let p = softmax(&corrected);
    if p.iter().all(|v| *v == 0.0) {
        return None;
    }
    let (best, score) = p.iter().copied().enumerate().max_by(|a, b| a.1.total_cmp(&b.1))?;
    Some((Label::ALL[best], score))
}

/// Balanced accuracy (mean recall over the gold labels present) of `offsets` on
/// `samples`; a sample with no label probabilities counts as `unknown`.
pub fn balanced_accuracy(samples: &[(LabelLogprobs, Label)], offsets: &[f64; 3]) -> f64 {
    let mut hits = [0usize; 3];
    let mut totals = [0usize; 3];
    for (logprobs, gold) in samples {
        let g = index(*gold);
        totals[g] += 1;
        let got = decide(logprobs, offsets).map_or(Label::NotEnoughInfo, |(l, _)| l);
        if got == *gold {
            hits[g] += 1;
        }
    }
    let present: Vec<f64> = (0..3).filter(|i| totals[*i] > 0).map(|i| hits[i] as f64 / totals[i] as f64).collect();
    if present.is_empty() {
        0.0
    } else {
        present.iter().sum::<f64>() / present.len() as f64
    }
}

/// The label a dataset's gold label names: SciFact's SUPPORT / CONTRADICT / NEI, FEVER's
/// SUPPORTS / REFUTES / NOT ENOUGH INFO, AVeriTeC's Supported / Refuted / Not Enough
/// Evidence (its Conflicting Evidence/Cherrypicking is neither supported nor refuted as
/// a whole: not enough info), and the judge's own words; any case.
pub fn gold_label(gold: &str) -> Option<Label> {
    let g = gold.trim().to_lowercase().replace(['_', '-'], " ");
    match g.as_str() {
        "supported" | "support" | "supports" | "true" | "entailment" => Some(Label::Supported),
        "contradicted" | "contradict" | "contradicts" | "refutes" | "refuted" | "false" | "contradiction" => {
            Some(Label::Contradicted)
        }
        "not enough info"
        | "nei"
        | "unknown"
        | "not enough evidence"
        | "neutral"
        | "conflicting evidence/cherrypicking" => Some(Label::NotEnoughInfo),
        _ => None,
    }
}

fn index(label: Label) -> usize {
    Label::ALL.iter().position(|l| *l == label).unwrap_or(2)
}

/// Offsets fitted on labelled judgements, and how well they do there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    /// The offsets (true, false, unknown; true's is 0).
    pub offsets: [f64; 3],
    /// Judgements fitted on.
    pub records: usize,
    /// Of them, how many of each gold label (true, false, unknown).
    pub gold: [usize; 3],
    /// Balanced accuracy on them with no offsets.
    pub balanced_accuracy_raw: f64,
    /// With the offsets.
    pub balanced_accuracy_fitted: f64,
}

/// Offsets maximising balanced accuracy on `samples`, ties going to the offsets under
/// which the gold labels are likeliest (so the boundary sits between the classes, not
/// at the edge of the winning region): a coarse grid over [-12, 12] nats for the
/// `false` and `unknown` offsets (`true`'s is 0), then a fine one around the best.
/// `None` with no samples.
pub fn fit(samples: &[(LabelLogprobs, Label)]) -> Option<Fit> {
    if samples.is_empty() {
        return None;
    }
    let score = |o: &[f64; 3]| (balanced_accuracy(samples, o), log_likelihood(samples, o));
    let better = |a: (f64, f64), b: (f64, f64)| a.0 > b.0 + 1e-12 || ((a.0 - b.0).abs() <= 1e-12 && a.1 > b.1);
    let mut best = ([0.0; 3], score(&[0.0; 3]));
    for (step, reach) in [(0.5, 24), (0.05, 10)] {
        let center = best.0;
        for i in -reach..=reach {
            for j in -reach..=reach {
                let offsets = [0.0, center[1] + f64::from(i) * step, center[2] + f64::from(j) * step];
                let s = score(&offsets);
                if better(s, best.1) {
                    best = (offsets, s);
                }
            }
        }
    }
    let mut gold = [0usize; 3];
    for (_, label) in samples {
        gold[index(*label)] += 1;
    }
    Some(Fit {
        offsets: best.0,
        records: samples.len(),
        gold,
        balanced_accuracy_raw: balanced_accuracy(samples, &[0.0; 3]),
        balanced_accuracy_fitted: best.1 .0,
    })
}

/// Mean log-probability of the gold labels under `offsets` (renormalised over the three
/// labels; a gold label with no probability counts as a probability of 1e-6).
fn log_likelihood(samples: &[(LabelLogprobs, Label)], offsets: &[f64; 3]) -> f64 {
    let total: f64 = samples
        .iter()
        .map(|(logprobs, gold)| {
            let corrected: LabelLogprobs = std::array::from_fn(|i| logprobs[i].map(|l| l + offsets[i]));
            softmax(&corrected)[index(*gold)].max(FLOOR).ln()
        })
        .sum();
    total / samples.len() as f64
}

/// A calibration file, as `recheck calibrate` writes it and `--calibration FILE` reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationFile {
    /// The calibration (offsets).
    pub calibration: Calibration,
    /// The judge model it was fitted for; another model's label prior differs.
    pub judge_model: String,
    /// The labelled file it was fitted on.
    pub labelled: String,
    /// How the fit went.
    pub fit: Fit,
}

impl CalibrationFile {
    /// Read and check the calibration file at `path`.
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let bad = |detail: String| AgentError::Config { file: path.to_path_buf(), detail };
        let text = crate::files::read_to_string(path, FileKind::Spec).map_err(|e| bad(e.problem.to_string()))?;
        let file: Self = serde_json::from_str(&text)
            .map_err(|e| bad(format!("not a calibration file (`recheck calibrate --out` writes one): {e}")))?;
        match file.calibration {
            Calibration::Offsets { offsets } if offsets.iter().all(|o| o.is_finite()) => Ok(file),
            Calibration::Offsets { .. } => Err(bad("its offsets must be finite numbers".into())),
            other => Err(bad(format!("holds a `{}` calibration; a file holds offsets", other.describe()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lp(p: [f64; 3]) -> LabelLogprobs {
        p.map(|v| Some(v.ln()))
    }

    #[test]
    fn offsets_move_the_decision_and_a_missing_label_never_wins() {
        let prior = lp([0.6, 0.1, 0.3]);
        assert_eq!(decide(&prior, &[0.0; 3]).map(|d| d.0), Some(Label::Supported));
        // Dividing by a content-free prior that favours `true` hands it to `unknown`.
        let offsets = [0.8f64, 0.1, 0.1].map(|p| -p.ln());
        assert_eq!(decide(&prior, &offsets).map(|d| d.0), Some(Label::NotEnoughInfo));
        let partial = [Some(-3.0), None, Some(-2.0)];
        assert_eq!(decide(&partial, &[0.0, 50.0, 0.0]).map(|d| d.0), Some(Label::NotEnoughInfo));
        assert_eq!(decide(&[None; 3], &[0.0; 3]), None);
    }

    #[test]
    fn gold_labels_of_the_datasets_map_to_the_three() {
        assert_eq!(gold_label("SUPPORT"), Some(Label::Supported));
        assert_eq!(gold_label("Refuted"), Some(Label::Contradicted));
        assert_eq!(gold_label("NOT_ENOUGH_INFO"), Some(Label::NotEnoughInfo));
        assert_eq!(gold_label("Conflicting Evidence/Cherrypicking"), Some(Label::NotEnoughInfo));
        assert_eq!(gold_label("maybe"), None);
    }

    #[test]
    fn a_fit_undoes_a_constant_prior_that_raw_decisions_follow() {
        // The judge prefers `true` by a constant 2 nats; underneath, the evidence
        // ranks the gold label highest. Raw, everything is `true`.
        let mut samples = Vec::new();
        for (k, gold) in
            [Label::Supported, Label::Contradicted, Label::NotEnoughInfo].into_iter().cycle().take(60).enumerate()
        {
            let mut p = [0.2, 0.2, 0.2];
            p[index(gold)] = 0.6 - (k % 5) as f64 * 0.02;
            let mut logprobs = lp(p);
            logprobs[0] = logprobs[0].map(|l| l + 2.0);
            samples.push((logprobs, gold));
        }
        let raw = balanced_accuracy(&samples, &[0.0; 3]);
        assert!((raw - 1.0 / 3.0).abs() < 1e-9, "raw answers `true` only: {raw}");
        let fit = fit(&samples).unwrap();
        assert_eq!(fit.balanced_accuracy_fitted, 1.0, "{fit:?}");
        assert_eq!(fit.gold, [20, 20, 20]);
        assert!(fit.offsets[1] > 0.0 && fit.offsets[2] > 0.0, "{fit:?}");
    }
}
