//! Analysis: the protocols' metrics, computed from stored traces only (an experiment's
//! item runs and their recorded outcomes), with 95% intervals, and rendered as a
//! table, JSON or a self-contained HTML report.

mod html;
pub mod intervals;
mod metrics;
mod text;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use html::render_html;
pub use text::render_text;

use crate::{
    eval::{Protocol, EVAL_KIND},
    trace::{RunId, RunStatus, TraceError, TraceStore},
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
}

impl Metric {
    pub(crate) fn from_interval(interval: Option<(f64, f64, f64)>, n: usize) -> Self {
        match interval {
            Some((v, lo, hi)) => Self { value: Some(v), low: Some(lo), high: Some(hi), n },
            None => Self { value: None, low: None, high: None, n },
        }
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
    /// Items whose headline grade differs: (slot, item id, parent, fork).
    pub changed: Vec<(u32, String, bool, bool)>,
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
}

/// The recorded outcome of every completed item run of experiment `run_id`, by slot.
pub fn item_outcomes(store: &TraceStore, run_id: RunId) -> Result<BTreeMap<u32, Value>, AnalysisError> {
    let mut out = BTreeMap::new();
    for (slot, member) in store.members(run_id)? {
        if let Some(run) = store.run(member)?.filter(|r| r.status == RunStatus::Completed) {
            if let Some(output) = run.output {
                out.insert(slot, output);
            }
        }
    }
    Ok(out)
}

/// Compute the report of experiment `run_id` from its stored traces.
pub fn compute(store: &TraceStore, run_id: RunId) -> Result<Report, AnalysisError> {
    compute_with_outcomes(store, run_id).map(|(report, _)| report)
}

/// [`compute`], also returning the item outcomes it was computed from (by slot).
pub fn compute_with_outcomes(
    store: &TraceStore,
    run_id: RunId,
) -> Result<(Report, BTreeMap<u32, Value>), AnalysisError> {
    let bad = |detail: String| AnalysisError::NotAnEval { run: run_id, detail };
    let run = store.run(run_id)?.ok_or_else(|| bad("no such run".into()))?;
    if run.kind != EVAL_KIND {
        return Err(bad(format!("is a `{}` run, not an experiment", run.kind)));
    }
    let protocol: Protocol = serde_json::from_value(run.config["spec"]["protocol"].clone())
        .map_err(|e| bad(format!("unreadable protocol: {e}")))?;
    let items = run.input["items"].as_array().map(Vec::len).unwrap_or(0);
    let outcomes = item_outcomes(store, run_id)?;
    let list: Vec<&Value> = outcomes.values().collect();
    let mut report = Report {
        run_id,
        protocol,
        name: run.config["spec"]["name"].as_str().unwrap_or("").to_string(),
        model: run.config["model"]["spec"].as_str().unwrap_or("").to_string(),
        n: list.len(),
        items,
        unfinished: items.saturating_sub(list.len()),
        metrics: Metrics::new(),
        flips: BTreeMap::new(),
        counts: BTreeMap::new(),
        comparison: None,
    };
    match protocol {
        Protocol::Friction => metrics::friction(&list, &mut report),
        Protocol::Snowball => metrics::snowball(&list, &mut report),
        Protocol::Blindspot => metrics::blindspot(&list, &mut report),
    }
    if let Some(parent) = run.parent {
        let before = item_outcomes(store, parent)?;
        let mut cmp = Comparison { parent, flips: Flips::default(), changed: vec![] };
        for (slot, after) in &outcomes {
            let Some(b) = before.get(slot) else { continue };
            let (was, now) = (headline(b), headline(after));
            cmp.flips.add(was, now);
            if was != now {
                cmp.changed.push((*slot, after["item_id"].as_str().unwrap_or("").to_string(), was, now));
            }
        }
        report.comparison = Some(cmp);
    }
    Ok((report, outcomes))
}

fn headline(outcome: &Value) -> bool {
    outcome["correct"].as_bool().unwrap_or(false)
}
