//! Each protocol's metrics from its items' recorded outcomes.

use super::{
    intervals::{bootstrap, bootstrap_share},
    Flips, Metric, Report,
};
use crate::trace::{
    BlindspotOutcome, ConditionResult, FrictionOutcome, ItemOutcome, Label, SnowballOutcome, VerifyOutcome,
};

/// The outcomes of one protocol (the caller checked that every item has it).
pub(super) fn of<'a, T>(items: &[&'a ItemOutcome], pick: fn(&'a ItemOutcome) -> Option<&'a T>) -> Vec<&'a T> {
    items.iter().filter_map(|o| pick(o)).collect()
}

/// Feedback friction: accuracy per round, target accuracy, friction rate, leaks,
/// flips between rounds, and the kinds of persistent failure.
pub(super) fn friction(items: &[&FrictionOutcome], report: &mut Report) {
    let max_rounds = items.iter().map(|i| i.max_rounds).max().unwrap_or(1) as usize;
    // An item stops once right, so it stays right in later rounds.
    let grades: Vec<Vec<bool>> = items
        .iter()
        .map(|i| {
            let mut g: Vec<bool> = i.rounds.iter().map(|r| r.correct).collect();
            let last = g.last().copied().unwrap_or(false);
            g.resize(max_rounds, last);
            g
        })
        .collect();
    let n = items.len();
    for k in 0..max_rounds {
        let right = grades.iter().filter(|g| g[k]).count();
        report.metrics.insert(format!("accuracy_round_{}", k + 1), Metric::proportion(right, n));
    }
    for k in 1..max_rounds {
        let mut flips = Flips::default();
        for (g, item) in grades.iter().zip(items) {
            // Only items that were actually answered again in round k+1.
            if item.rounds.len() > k {
                flips.add(g[k - 1], g[k]);
            }
        }
        report.flips.insert(format!("round {} -> {}", k, k + 1), flips);
    }
    let got_feedback: Vec<(&FrictionOutcome, &Vec<bool>)> =
        items.iter().copied().zip(&grades).filter(|(i, _)| i.rounds.len() > 1).collect();
    let still_wrong = got_feedback.iter().filter(|(_, g)| !g[max_rounds - 1]).count();
    report.metrics.insert("friction_rate".into(), Metric::proportion(still_wrong, got_feedback.len()));
    // Target accuracy (Jiang et al., 2025): what full incorporation of the feedback
    // would give. An item reaches it when right at once, or when it was given targeted
    // feedback (text that points at the error); binary feedback ("incorrect", stored as
    // "") says nothing to incorporate, so it does not count.
    let mut feedback_total = 0;
    let mut leaked = 0;
    let mut reachable = 0;
    for (item, g) in items.iter().zip(&grades) {
        let given = item.rounds.iter().filter(|r| r.feedback.is_some()).count();
        feedback_total += given;
        leaked += item.rounds.iter().filter(|r| r.feedback.is_some() && r.leaked == Some(true)).count();
        let targeted = item.rounds.iter().any(|r| r.feedback.as_deref().is_some_and(|f| !f.trim().is_empty()));
        if g[0] || targeted {
            reachable += 1;
        }
    }
    report.metrics.insert("target_accuracy".into(), Metric::proportion(reachable, n));
    report.metrics.insert("feedback_leak_rate".into(), Metric::proportion(leaked, feedback_total));
    for (item, _) in got_feedback.iter().filter(|(_, g)| !g[max_rounds - 1]) {
        let answers: Vec<Option<&str>> = item.rounds.iter().map(|r| r.answer.as_deref()).collect();
        let kind = match answers.split_last() {
            Some((None, _)) => "persistent: no final answer",
            Some((Some(last), earlier)) if earlier.contains(&Some(*last)) => "persistent: repeats an earlier answer",
            _ => "persistent: changes to another wrong answer",
        };
        *report.counts.entry(kind.into()).or_default() += 1;
    }
}

/// Snowballing: wrong answers, their false supporting claims, and how often the model
/// rejects its own false claim when asked alone.
pub(super) fn snowball(items: &[&SnowballOutcome], report: &mut Report) {
    let n = items.len();
    let wrong: Vec<&&SnowballOutcome> = items.iter().filter(|i| !i.correct).collect();
    report.metrics.insert("accuracy_round_1".into(), Metric::proportion(n - wrong.len(), n));
    report.metrics.insert("wrong_answer_rate".into(), Metric::proportion(wrong.len(), n));
    let no_stance = items.iter().filter(|i| i.stance.is_none()).count();
    report.metrics.insert("no_stance_rate".into(), Metric::proportion(no_stance, n));
    // A model that says "no" to everything looks right on every item whose gold is
    // "no": the share of "no" answers beside the share of "no" gold answers shows it.
    let says_no = items.iter().filter(|i| i.stance.as_deref() == Some("no")).count();
    report.metrics.insert("answer_share_no".into(), Metric::proportion(says_no, n - no_stance));
    let gold_no = items.iter().filter(|i| i.gold == "no").count();
    report.metrics.insert("gold_share_no".into(), Metric::proportion(gold_no, n));
    let with_false: Vec<&&&SnowballOutcome> = wrong.iter().filter(|i| !i.false_claims.is_empty()).collect();
    report.metrics.insert("false_claim_rate".into(), Metric::proportion(with_false.len(), wrong.len()));
    let claims: Vec<_> = with_false.iter().flat_map(|i| &i.false_claims).collect();
    let rejected = claims.iter().filter(|c| c.rejected).count();
    report.metrics.insert("snowball_rate".into(), Metric::proportion(rejected, claims.len()));
    controls(items, rejected, claims.len(), report);
    let answers_snowballed = with_false.iter().filter(|i| i.false_claims.iter().any(|c| c.rejected)).count();
    report.metrics.insert("snowball_rate_answers".into(), Metric::proportion(answers_snowballed, with_false.len()));
    let mut datasets: Vec<&str> = items.iter().map(|i| i.dataset.as_str()).collect();
    datasets.sort();
    datasets.dedup();
    if datasets.len() > 1 {
        for d in datasets {
            let of: Vec<&&SnowballOutcome> = items.iter().filter(|i| i.dataset == d).collect();
            let w = of.iter().filter(|i| !i.correct).count();
            report.metrics.insert(format!("wrong_answer_rate:{d}"), Metric::proportion(w, of.len()));
        }
    }
    let supporting: usize = items.iter().map(|i| i.claims.len()).sum();
    report.counts.insert("supporting claims checked".into(), supporting);
    report.counts.insert("false claims asked back".into(), claims.len());
}

/// Snowball controls: how often a true claim asked back the same way is rejected, beside
/// how often a false one is, and what separates the two. A model that calls every
/// statement false rejects both: its difference is near 0, its balanced accuracy near
/// 0.5, whatever its `snowball_rate`.
fn controls(items: &[&SnowballOutcome], false_rejected: usize, false_asked: usize, report: &mut Report) {
    let controls: Vec<_> = items.iter().flat_map(|i| &i.true_claims).collect();
    if controls.is_empty() {
        return;
    }
    let true_rejected = controls.iter().filter(|c| c.rejected).count();
    report.metrics.insert("false_claim_rejection".into(), Metric::proportion(false_rejected, false_asked));
    report.metrics.insert("true_claim_rejection".into(), Metric::proportion(true_rejected, controls.len()));
    report.counts.insert("true claims asked back (controls)".into(), controls.len());
    let made = controls.iter().filter(|c| c.counterpart).count();
    report.counts.insert("controls made from a refuted claim".into(), made);
    // Pooled rates over a resample of items; defined when the resample has both kinds.
    let rates = |s: &[&&SnowballOutcome]| {
        let (mut fr, mut fa, mut tr, mut ta) = (0usize, 0usize, 0usize, 0usize);
        for i in s {
            fr += i.false_claims.iter().filter(|c| c.rejected).count();
            fa += i.false_claims.len();
            tr += i.true_claims.iter().filter(|c| c.rejected).count();
            ta += i.true_claims.len();
        }
        (fa > 0 && ta > 0).then(|| (fr as f64 / fa as f64, tr as f64 / ta as f64))
    };
    let n = items.len();
    for (name, stat) in [
        ("rejection_difference", (|(f, t)| f - t) as fn((f64, f64)) -> f64),
        ("rejection_balanced_accuracy", |(f, t)| (f + 1.0 - t) / 2.0),
    ] {
        let metric = if false_asked == 0 {
            Metric::undefined("no false claim was asked back", n)
        } else {
            let (interval, share) = bootstrap_share(items, |s| rates(s).map(stat));
            Metric { defined_share: Some(share), ..Metric::from_interval(interval, n) }
        };
        report.metrics.insert(name.into(), metric);
    }
}

/// User-condition corrections below which the blind-spot ratio is not shown.
pub const MIN_USER_CORRECTIONS: usize = 10;

/// The blind spot: correction rates of the user's and the model's own erroneous
/// reasoning, with and without "Wait", and the relative shortfall (Tsui, 2025).
pub(super) fn blindspot(items: &[&BlindspotOutcome], report: &mut Report) {
    type Condition = fn(&BlindspotOutcome) -> &ConditionResult;
    let user: Condition = |i| &i.conditions.user;
    let own: Condition = |i| &i.conditions.own;
    let own_wait: Condition = |i| &i.conditions.own_wait;
    let n = items.len();
    for (name, cond) in
        [("correction_rate_user", user), ("correction_rate_own", own), ("correction_rate_wait", own_wait)]
    {
        let k = items.iter().filter(|i| cond(i).correct).count();
        report.metrics.insert(name.into(), Metric::proportion(k, n));
    }
    let shortfall = |cond: Condition| {
        move |s: &[&&BlindspotOutcome]| {
            let corrected_user = s.iter().filter(|i| user(i).correct).count() as f64;
            let corrected = s.iter().filter(|i| cond(i).correct).count() as f64;
            (corrected_user > 0.0).then(|| 1.0 - corrected / corrected_user)
        }
    };
    // 1 - own/user over a handful of user corrections says nothing: shown from
    // MIN_USER_CORRECTIONS on, with why otherwise.
    let corrected_user = items.iter().filter(|i| user(i).correct).count();
    report.counts.insert("corrections in the user condition".into(), corrected_user);
    for (name, cond) in [("blind_spot_rate", own), ("blind_spot_rate_wait", own_wait)] {
        let metric = if corrected_user < MIN_USER_CORRECTIONS {
            Metric::undefined(
                format!(
                    "{corrected_user} corrections in the user condition (the ratio needs at least {MIN_USER_CORRECTIONS})"
                ),
                n,
            )
        } else {
            let (interval, share) = bootstrap_share(items, shortfall(cond));
            Metric { defined_share: Some(share), ..Metric::from_interval(interval, n) }
        };
        report.metrics.insert(name.into(), metric);
    }
    let mut user_own = Flips::default();
    let mut own_then_wait = Flips::default();
    for i in items {
        user_own.add(user(i).correct, own(i).correct);
        own_then_wait.add(own(i).correct, own_wait(i).correct);
    }
    report.flips.insert("user -> own".into(), user_own);
    report.flips.insert("own -> own + Wait".into(), own_then_wait);
}

fn label_name(l: Label) -> &'static str {
    match l {
        Label::Supported => "supported",
        Label::Contradicted => "contradicted",
        Label::NotEnoughInfo => "not_enough_info",
    }
}

/// Macro-F1 over the labels that occur in the gold or the predictions.
fn macro_f1(items: &[&&VerifyOutcome]) -> Option<f64> {
    let mut f1s = Vec::new();
    for l in Label::ALL {
        let tp = items.iter().filter(|i| i.gold == l && i.predicted == l).count() as f64;
        let gold = items.iter().filter(|i| i.gold == l).count() as f64;
        let predicted = items.iter().filter(|i| i.predicted == l).count() as f64;
        if gold + predicted == 0.0 {
            continue;
        }
        f1s.push(2.0 * tp / (gold + predicted));
    }
    (!f1s.is_empty()).then(|| f1s.iter().sum::<f64>() / f1s.len() as f64)
}

/// The verifier against gold labels: accuracy and macro-F1 beside the majority-class
/// baseline, per-label precision and recall, the share of each predicted label (a
/// constant answerer shows here), evidence-document recall, and the confusion matrix.
pub(super) fn verify(items: &[&VerifyOutcome], report: &mut Report) {
    let n = items.len();
    report.metrics.insert("label_accuracy".into(), Metric::proportion(items.iter().filter(|i| i.correct).count(), n));
    report.metrics.insert("macro_f1".into(), Metric::from_interval(bootstrap(items, macro_f1), n));
    let majority = Label::ALL.iter().map(|l| items.iter().filter(|i| i.gold == *l).count()).max().unwrap_or(0);
    report.metrics.insert("majority_class_accuracy".into(), Metric::proportion(majority, n));
    for l in Label::ALL {
        let name = label_name(l);
        let tp = items.iter().filter(|i| i.gold == l && i.predicted == l).count();
        let predicted = items.iter().filter(|i| i.predicted == l).count();
        let gold = items.iter().filter(|i| i.gold == l).count();
        report.metrics.insert(format!("precision_{name}"), Metric::proportion(tp, predicted));
        report.metrics.insert(format!("recall_{name}"), Metric::proportion(tp, gold));
        report.metrics.insert(format!("predicted_share_{name}"), Metric::proportion(predicted, n));
        for p in Label::ALL {
            let count = items.iter().filter(|i| i.gold == l && i.predicted == p).count();
            report.counts.insert(format!("confusion: gold {name} -> {}", label_name(p)), count);
        }
    }
    let with_docs: Vec<&&VerifyOutcome> = items.iter().filter(|i| !i.gold_docs.is_empty()).collect();
    let found = with_docs.iter().filter(|i| i.gold_docs.iter().any(|d| i.retrieved_docs.contains(d))).count();
    report.metrics.insert("evidence_doc_recall".into(), Metric::proportion(found, with_docs.len()));
}
