//! The comparison of a batch of forks with the runs they fork, read from the store:
//! verdict flips, answer changes, calls and tokens, each with its 95% interval.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{batch::BatchInput, OutcomeSummary, Verification};
use crate::{
    analysis::{intervals, Metric},
    trace::{run_kind, RunId, RunStatus, StepPayload, TraceStore},
    Error, Result,
};

/// An original run and its fork.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForkPair {
    /// The stored run.
    pub original: RunId,
    /// Its fork.
    pub fork: RunId,
    /// The original's verdict.
    pub before: Verification,
    /// The fork's verdict.
    pub after: Verification,
    /// Whether the final answer differs.
    pub answer_changed: bool,
    /// Model calls of the original and of the fork (its recorded part included).
    pub calls: (u32, u32),
    /// Tokens of the original and of the fork.
    pub tokens: (u64, u64),
}

/// A selected run with no completed fork, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// The stored run.
    pub run: RunId,
    /// Why it has no fork.
    pub reason: String,
}

/// How many forks went from one verdict to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictFlip {
    /// The original's verdict.
    pub before: Verification,
    /// The fork's.
    pub after: Verification,
    /// Pairs with these verdicts.
    pub count: usize,
}

/// What `recheck replay --runs` prints: the batch compared with its originals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchReport {
    /// The group run holding the forks.
    pub group: RunId,
    /// The filter that chose the runs.
    pub filter: String,
    /// The change.
    pub change: String,
    /// The fork step.
    pub from_step: u32,
    /// The live model.
    pub model: String,
    /// Runs selected.
    pub selected: usize,
    /// Every before -> after verdict count (all nine cells).
    pub flips: Vec<VerdictFlip>,
    /// Share of pairs whose verdict changed.
    pub verdict_changed: Metric,
    /// Share of pairs whose answer changed.
    pub answer_changed: Metric,
    /// Share verified among the originals.
    pub verified_before: Metric,
    /// Share verified among the forks.
    pub verified_after: Metric,
    /// Forks' verified share minus the originals' (paired bootstrap interval).
    pub verified_difference: Metric,
    /// Mean model calls of an original.
    pub calls_before: Metric,
    /// Mean model calls of a fork.
    pub calls_after: Metric,
    /// Mean tokens of an original.
    pub tokens_before: Metric,
    /// Mean tokens of a fork.
    pub tokens_after: Metric,
    /// Each pair.
    pub pairs: Vec<ForkPair>,
    /// Selected runs without a completed fork.
    pub skipped: Vec<Skipped>,
}

impl BatchReport {
    /// Pairs that went from verdict `before` to `after`.
    pub fn flipped(&self, before: Verification, after: Verification) -> usize {
        self.flips.iter().find(|f| f.before == before && f.after == after).map_or(0, |f| f.count)
    }
}

/// The comparison of batch `group` with the runs it forked, from the store alone.
pub fn batch_report(store: &TraceStore, group: RunId) -> Result<BatchReport> {
    let bad = |reason: String| Error::BadSelection { filter: group.to_string(), reason };
    let run = store.run(group)?.ok_or_else(|| bad("no such run".into()))?;
    if run.kind != run_kind::FORKS {
        return Err(bad(format!("it is a `{}` run, not a batch of forks", run.kind)));
    }
    let input: BatchInput =
        serde_json::from_value(run.input.clone()).map_err(|e| bad(format!("its input is not a batch's: {e}")))?;
    let mut reasons: BTreeMap<RunId, String> = BTreeMap::new();
    for step in store.steps(group)? {
        if let StepPayload::Event { name, data } = step.payload {
            if name != "skipped" {
                continue;
            }
            if let (Some(id), Some(reason)) = (
                data.get("run").and_then(|r| serde_json::from_value::<RunId>(r.clone()).ok()),
                data.get("reason").and_then(|r| r.as_str()),
            ) {
                reasons.insert(id, reason.to_string());
            }
        }
    }
    let members: BTreeMap<u32, RunId> = store.members(group)?.into_iter().collect();
    let (mut pairs, mut skipped) = (Vec::new(), Vec::new());
    for (slot, original) in input.runs.iter().copied().enumerate() {
        let mut skip = |why: String| {
            skipped.push(Skipped { run: original, reason: reasons.get(&original).cloned().unwrap_or(why) })
        };
        let Some(fork) = members.get(&(slot as u32)).and_then(|id| store.run(*id).transpose()).transpose()? else {
            skip("no fork was stored".into());
            continue;
        };
        if fork.status != RunStatus::Completed {
            skip(fork.error.clone().unwrap_or_else(|| format!("the fork is {}", fork.status)));
            continue;
        }
        let before = store.run(original)?.as_ref().and_then(OutcomeSummary::of);
        let (Some(before), Some(after)) = (before, OutcomeSummary::of(&fork)) else {
            skip("an outcome could not be read".into());
            continue;
        };
        pairs.push(ForkPair {
            original,
            fork: fork.id,
            before: before.verified,
            after: after.verified,
            answer_changed: before.answer != after.answer,
            calls: (before.model_calls, after.model_calls),
            tokens: (before.usage.total(), after.usage.total()),
        });
    }
    let n = pairs.len();
    let count = |f: &dyn Fn(&ForkPair) -> bool| pairs.iter().filter(|p| f(p)).count();
    let flips = Verification::ALL
        .iter()
        .flat_map(|b| Verification::ALL.iter().map(move |a| (*b, *a)))
        .map(|(before, after)| VerdictFlip { before, after, count: count(&|p| p.before == before && p.after == after) })
        .collect();
    let mean = |f: fn(&ForkPair) -> f64| {
        Metric::from_interval(
            intervals::bootstrap(&pairs, |s| {
                (!s.is_empty()).then(|| s.iter().map(|p| f(p)).sum::<f64>() / s.len() as f64)
            }),
            n,
        )
    };
    Ok(BatchReport {
        group,
        filter: input.filter,
        change: input.change,
        from_step: input.from_step,
        model: input.model,
        selected: input.runs.len(),
        flips,
        verdict_changed: Metric::proportion(count(&|p| p.before != p.after), n),
        answer_changed: Metric::proportion(count(&|p| p.answer_changed), n),
        verified_before: Metric::proportion(count(&|p| p.before == Verification::Verified), n),
        verified_after: Metric::proportion(count(&|p| p.after == Verification::Verified), n),
        verified_difference: mean(|p| verified(p.after) - verified(p.before)),
        calls_before: mean(|p| f64::from(p.calls.0)),
        calls_after: mean(|p| f64::from(p.calls.1)),
        tokens_before: mean(|p| p.tokens.0 as f64),
        tokens_after: mean(|p| p.tokens.1 as f64),
        pairs,
        skipped,
    })
}

/// 1 for a verified answer, else 0.
fn verified(v: Verification) -> f64 {
    f64::from(u8::from(v == Verification::Verified))
}
