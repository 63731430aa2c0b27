//! Analysis: the protocols' metrics, computed from stored traces only (an experiment's
//! item runs and their recorded outcomes), with 95% intervals, and rendered as a
//! table, JSON or a self-contained HTML report.

mod compare;
mod html;
pub mod intervals;
mod metrics;
mod mistakes;
mod published;
mod text;

use std::collections::BTreeMap;

use serde::{de::IgnoredAny, Deserialize, Serialize};

pub use compare::{
    compare_runs, mcnemar_exact, render_comparison_html, render_comparison_text, PairTest, RunComparison,
};
pub use html::render_html;
pub use metrics::MIN_USER_CORRECTIONS;
pub use published::{published, Published};
pub use text::render_text;

use crate::{
    trace::{run_kind, ItemOutcome, ModelInfo, PrefillSupport, Protocol, RunId, RunStatus, TraceError, TraceStore},
    Result,
};

/// One metric: its value, 95% interval and the n it is computed over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// The value; `None` when undefined (n = 0, or a ratio over zero).
    pub value: Option<f64>,
    /// Lower end of the 95% interval.
    pub low: Option<f64>,
    /// Upper end of the 95% interval.
    pub high: Option<f64>,
    /// Items (or claims, or feedback messages) it is computed over.
    pub n: usize,
    /// Why there is no value, when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undefined: Option<String>,
    /// For a ratio's bootstrap interval: the share of resamples in which the ratio was
    /// defined (the interval comes from those).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defined_share: Option<f64>,
}

impl Metric {
    pub(crate) fn from_interval(interval: Option<(f64, f64, f64)>, n: usize) -> Self {
        match interval {
            Some((v, lo, hi)) => {
                Self { value: Some(v), low: Some(lo), high: Some(hi), n, undefined: None, defined_share: None }
            }
            None if n == 0 => Self::undefined("no items to compute it over", 0),
            None => Self::undefined("not defined on these items", n),
        }
    }

    /// No value, and why.
    pub fn undefined(reason: impl Into<String>, n: usize) -> Self {
        Self { value: None, low: None, high: None, n, undefined: Some(reason.into()), defined_share: None }
    }

    /// A proportion `k / n` with its Wilson interval.
    pub fn proportion(k: usize, n: usize) -> Self {
        Self::from_interval(intervals::wilson(k, n), n)
    }
}

/// Metrics by name, in name order.
pub type Metrics = BTreeMap<String, Metric>;

/// Counts of answer changes between two gradings of the same items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flips {
    /// Right before and after.
    pub right_right: usize,
    /// Right before, wrong after.
    pub right_wrong: usize,
    /// Wrong before, right after.
    pub wrong_right: usize,
    /// Wrong before and after.
    pub wrong_wrong: usize,
}

impl Flips {
    pub(crate) fn add(&mut self, before: bool, after: bool) {
        match (before, after) {
            (true, true) => self.right_right += 1,
            (true, false) => self.right_wrong += 1,
            (false, true) => self.wrong_right += 1,
            (false, false) => self.wrong_wrong += 1,
        }
    }
}

/// A fork compared with its parent, item by item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The parent experiment.
    pub parent: RunId,
    /// Headline grade in the parent (before) against the fork (after).
    pub flips: Flips,
    /// Items whose headline grade differs.
    pub changed: Vec<ChangedItem>,
}

/// An item whose headline grade differs between a parent experiment and its fork.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedItem {
    /// The item's slot in both experiments.
    pub slot: u32,
    /// Its id in its dataset.
    pub item_id: String,
    /// Right in the parent.
    pub before: bool,
    /// Right in the fork.
    pub after: bool,
}

/// Everything `eval report` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The experiment.
    pub run_id: RunId,
    /// Its protocol.
    pub protocol: Protocol,
    /// The spec's name.
    pub name: String,
    /// The model under test.
    pub model: String,
    /// Items with a completed run (the metrics' population).
    pub n: usize,
    /// Items in the experiment.
    pub items: usize,
    /// Items whose run failed or never finished.
    pub unfinished: usize,
    /// The metrics.
    pub metrics: Metrics,
    /// Revision flips between consecutive rounds (friction) or conditions (blind spot).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flips: BTreeMap<String, Flips>,
    /// Counts by category (friction: persistent failures; snowball: claims).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, usize>,
    /// Against the parent, for a fork.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    /// The figures the protocol's paper published for these metrics, by metric name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub published: BTreeMap<String, Published>,
    /// How the protocol's conditions were produced, where that can differ by backend
    /// (blind spot: how the model's own answer was continued), by condition.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub conditions: BTreeMap<String, String>,
}

/// Errors of analysis.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// The store could not be read.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The run is not an experiment or its records are unreadable.
    #[error("run {run}: {detail}")]
    NotAnEval {
        /// The run.
        run: RunId,
        /// What is wrong.
        detail: String,
    },
    /// Runs that cannot be compared, and why.
    #[error("cannot compare: {0}")]
    Incomparable(String),
    /// An item run's stored outcome does not match the outcome types of this build.
    #[error(
        "item run {run} (slot {slot}): its outcome does not match this build's outcome types: {detail}; \
         it was written by an incompatible version of recheck"
    )]
    BadOutcome {
        /// The item run.
        run: RunId,
        /// Its slot in the experiment.
        slot: u32,
        /// What did not match.
        detail: String,
    },
}

/// The parts of an experiment's stored config a report names.
#[derive(Deserialize)]
struct ConfigView {
    spec: SpecView,
    model: ModelInfo,
    #[serde(default)]
    prefill: Option<PrefillSupport>,
}

#[derive(Deserialize)]
struct SpecView {
    name: String,
    protocol: Protocol,
}

#[derive(Deserialize)]
struct InputView {
    items: Vec<IgnoredAny>,
}

/// The recorded outcome of every completed item run of experiment `run_id`, by slot.
pub fn item_outcomes(store: &TraceStore, run_id: RunId) -> Result<BTreeMap<u32, ItemOutcome>> {
    let mut out = BTreeMap::new();
    for (slot, member) in store.members(run_id)? {
        if let Some(run) = store.run(member)?.filter(|r| r.status == RunStatus::Completed) {
            if let Some(output) = run.output {
                let outcome = ItemOutcome::deserialize(&output).map_err(|e| AnalysisError::BadOutcome {
                    run: member,
                    slot,
                    detail: e.to_string(),
                })?;
                out.insert(slot, outcome);
            }
        }
    }
    Ok(out)
}

/// Compute the report of experiment `run_id` from its stored traces.
pub fn compute(store: &TraceStore, run_id: RunId) -> Result<Report> {
    compute_with_outcomes(store, run_id).map(|(report, _)| report)
}

/// [`compute`], also returning the item outcomes it was computed from (by slot).
pub fn compute_with_outcomes(store: &TraceStore, run_id: RunId) -> Result<(Report, BTreeMap<u32, ItemOutcome>)> {
    let bad = |detail: String| AnalysisError::NotAnEval { run: run_id, detail };
    let run = store.run(run_id)?.ok_or_else(|| bad("no such run".into()))?;
    if run.kind != run_kind::EVAL {
        return Err(bad(format!("is a `{}` run, not an experiment", run.kind)).into());
    }
    let config = ConfigView::deserialize(&run.config).map_err(|e| bad(format!("unreadable config: {e}")))?;
    let items = InputView::deserialize(&run.input).map_err(|e| bad(format!("unreadable input: {e}")))?.items.len();
    let protocol = config.spec.protocol;
    let outcomes = item_outcomes(store, run_id)?;
    if let Some((slot, other)) = outcomes.iter().find(|(_, o)| o.protocol() != protocol) {
        return Err(bad(format!("item {slot} holds a {} outcome in a {protocol} experiment", other.protocol())).into());
    }
    let list: Vec<&ItemOutcome> = outcomes.values().collect();
    let mut report = Report {
        run_id,
        protocol,
        name: config.spec.name,
        model: config.model.spec,
        n: list.len(),
        items,
        unfinished: items.saturating_sub(list.len()),
        metrics: Metrics::new(),
        flips: BTreeMap::new(),
        counts: BTreeMap::new(),
        comparison: None,
        published: published(protocol),
        conditions: BTreeMap::new(),
    };
    if protocol == Protocol::Blindspot {
        let how = match &config.prefill {
            Some(support) => support.describe(),
            None => "not recorded (the run predates recheck's check of prefilled turns)".into(),
        };
        report.conditions.insert("own, own + Wait (prefilled turn)".into(), how);
    }
    match protocol {
        Protocol::Friction => metrics::friction(&metrics::of(&list, as_friction), &mut report),
        Protocol::Snowball => metrics::snowball(&metrics::of(&list, as_snowball), &mut report),
        Protocol::Blindspot => metrics::blindspot(&metrics::of(&list, as_blindspot), &mut report),
        Protocol::Verify => metrics::verify(&metrics::of(&list, as_verify), &mut report),
        Protocol::Mistakes => mistakes::mistakes(&metrics::of(&list, as_mistakes), &mut report),
    }
    if let Some(parent) = run.parent {
        report.comparison = Some(compare(parent, &item_outcomes(store, parent)?, &outcomes));
    }
    Ok((report, outcomes))
}

fn as_friction(o: &ItemOutcome) -> Option<&crate::trace::FrictionOutcome> {
    match o {
        ItemOutcome::Friction(f) => Some(f),
        _ => None,
    }
}

fn as_snowball(o: &ItemOutcome) -> Option<&crate::trace::SnowballOutcome> {
    match o {
        ItemOutcome::Snowball(s) => Some(s),
        _ => None,
    }
}

fn as_verify(o: &ItemOutcome) -> Option<&crate::trace::VerifyOutcome> {
    match o {
        ItemOutcome::Verify(v) => Some(v),
        _ => None,
    }
}

fn as_mistakes(o: &ItemOutcome) -> Option<&crate::trace::MistakesOutcome> {
    match o {
        ItemOutcome::Mistakes(m) => Some(m),
        _ => None,
    }
}

fn as_blindspot(o: &ItemOutcome) -> Option<&crate::trace::BlindspotOutcome> {
    match o {
        ItemOutcome::Blindspot(b) => Some(b),
        _ => None,
    }
}

/// A fork's items against its parent's, by headline grade.
fn compare(parent: RunId, before: &BTreeMap<u32, ItemOutcome>, after: &BTreeMap<u32, ItemOutcome>) -> Comparison {
    let mut cmp = Comparison { parent, flips: Flips::default(), changed: vec![] };
    for (slot, now) in after {
        let Some(was) = before.get(slot) else { continue };
        cmp.flips.add(was.correct(), now.correct());
        if was.correct() != now.correct() {
            cmp.changed.push(ChangedItem {
                slot: *slot,
                item_id: now.item_id().to_string(),
                before: was.correct(),
                after: now.correct(),
            });
        }
    }
    cmp
}
