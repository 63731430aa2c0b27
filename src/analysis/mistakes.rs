//! The mistakes protocol's metrics: finding the first mistake (Tyen et al., 2023;
//! ProcessBench, Zheng et al., 2024) beside what a critic that knows nothing scores,
//! and the answers after backtracking from each location source.

use std::collections::BTreeSet;

use super::{intervals::bootstrap, Flips, Metric, Report};
use crate::trace::{Location, LocationSource, MistakesOutcome};

/// The trace-level call was right: "mistake" on a trace with one, "no mistake" on one without.
fn trace_right(i: &MistakesOutcome) -> bool {
    i.critic_location.says_mistake() == Some(i.mistake_index.is_some())
}

/// The exact first-mistake step on a trace with a mistake.
fn location_right(i: &MistakesOutcome) -> bool {
    i.mistake_index.is_some() && i.critic_location == Location::of_gold(i.mistake_index)
}

/// "All steps are correct" on a trace without a mistake.
fn clean_right(i: &MistakesOutcome) -> bool {
    i.mistake_index.is_none() && i.critic_location == Location::NoMistake
}

/// ProcessBench's F1: the harmonic mean of the location accuracy on erroneous traces and
/// the accuracy on correct ones; undefined when either kind is missing.
fn processbench_f1(items: &[&&MistakesOutcome]) -> Option<f64> {
    let with = items.iter().filter(|i| i.mistake_index.is_some()).count();
    let without = items.len() - with;
    if with == 0 || without == 0 {
        return None;
    }
    let a = items.iter().filter(|i| location_right(i)).count() as f64 / with as f64;
    let b = items.iter().filter(|i| clean_right(i)).count() as f64 / without as f64;
    Some(if a + b == 0.0 { 0.0 } else { 2.0 * a * b / (a + b) })
}

/// Finding metrics over `items`, under names ending in `suffix` ("" or ":task").
fn finding(items: &[&MistakesOutcome], suffix: &str, report: &mut Report) {
    let n = items.len();
    let with: Vec<&&MistakesOutcome> = items.iter().filter(|i| i.mistake_index.is_some()).collect();
    let without = n - with.len();
    let mut put = |name: &str, m: Metric| {
        report.metrics.insert(format!("{name}{suffix}"), m);
    };
    put("trace_accuracy", Metric::proportion(items.iter().filter(|i| trace_right(i)).count(), n));
    put("location_accuracy", Metric::proportion(with.iter().filter(|i| location_right(i)).count(), with.len()));
    put("correct_trace_accuracy", Metric::proportion(items.iter().filter(|i| clean_right(i)).count(), without));
    let f1 = if with.is_empty() || without == 0 {
        let missing = if with.is_empty() { "no trace with a mistake" } else { "no trace without a mistake" };
        Metric::undefined(missing, n)
    } else {
        Metric::from_interval(bootstrap(items, processbench_f1), n)
    };
    put("processbench_f1", f1);
    // Base rates: what a critic that reads nothing scores here.
    put("mistake_share", Metric::proportion(with.len(), n));
    let first = with.iter().filter(|i| i.mistake_index == Some(0)).count();
    put("baseline_first_step_location_accuracy", Metric::proportion(first, with.len()));
    put("baseline_first_step_trace_accuracy", Metric::proportion(with.len(), n));
    put("baseline_all_correct_trace_accuracy", Metric::proportion(without, n));
}

/// Every metric of the mistakes protocol.
pub(super) fn mistakes(items: &[&MistakesOutcome], report: &mut Report) {
    let n = items.len();
    finding(items, "", report);
    let unreadable = items.iter().filter(|i| i.critic_location == Location::Unreadable).count();
    report.metrics.insert("unreadable_share".into(), Metric::proportion(unreadable, n));
    let says_none = items.iter().filter(|i| i.critic_location == Location::NoMistake).count();
    report.metrics.insert("predicted_no_mistake_share".into(), Metric::proportion(says_none, n));
    let past = items.iter().filter(|i| matches!(i.critic_location, Location::PastTheEnd(_))).count();
    report.counts.insert("critic locations past the last step".into(), past);
    let tasks: BTreeSet<&str> = items.iter().map(|i| i.task.as_str()).collect();
    if tasks.len() > 1 {
        for task in tasks {
            let of: Vec<&MistakesOutcome> = items.iter().copied().filter(|i| i.task == task).collect();
            finding(&of, &format!(":{task}"), report);
            report.counts.insert(format!("traces: {task}"), of.len());
        }
    }
    correction(items, report);
}

/// Answers after backtracking from each source, against the original traces' answers.
fn correction(items: &[&MistakesOutcome], report: &mut Report) {
    let backtracked: Vec<&&MistakesOutcome> = items.iter().filter(|i| !i.backtracks.is_empty()).collect();
    if backtracked.is_empty() {
        return;
    }
    let n = backtracked.len();
    let originally_right = backtracked.iter().filter(|i| i.original_correct).count();
    report.metrics.insert("answer_accuracy_original".into(), Metric::proportion(originally_right, n));
    for source in LocationSource::ALL {
        let name = source.name();
        let pairs: Vec<(bool, bool)> =
            backtracked.iter().filter_map(|i| i.backtrack(source).map(|b| (i.original_correct, b.correct))).collect();
        let mut flips = Flips::default();
        for (before, after) in &pairs {
            flips.add(*before, *after);
        }
        let right = pairs.iter().filter(|(_, after)| *after).count();
        report.metrics.insert(format!("answer_accuracy_after_{name}"), Metric::proportion(right, pairs.len()));
        // Of the answers that were wrong, the share made right; of those right, the share broken.
        let wrong_before = flips.wrong_right + flips.wrong_wrong;
        let right_before = flips.right_right + flips.right_wrong;
        report.metrics.insert(format!("corrected_share_{name}"), Metric::proportion(flips.wrong_right, wrong_before));
        report.metrics.insert(format!("broken_share_{name}"), Metric::proportion(flips.right_wrong, right_before));
        let regenerated = backtracked.iter().filter(|i| i.backtrack(source).is_some_and(|b| b.regenerated)).count();
        report.counts.insert(format!("traces regenerated from the {name} location"), regenerated);
        report.flips.insert(format!("original -> backtracked from {name}"), flips);
    }
    let sim_right = backtracked
        .iter()
        .filter(|i| {
            i.backtrack(LocationSource::Simulated).is_some_and(|b| b.location == Location::of_gold(i.mistake_index))
        })
        .count();
    report.metrics.insert("simulated_locator_accuracy".into(), Metric::proportion(sim_right, n));
}
