//! Several experiments of one spec side by side (other models, or a fork): every
//! metric with its interval per run, and for each pair of runs the items both
//! completed, their flips, and McNemar's exact test on the discordant ones, so a
//! difference is called only when the paired test says so.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::{Deserialize, Serialize};

use super::{compute_with_outcomes, intervals::bootstrap, AnalysisError, ChangedItem, Flips, Metric, Report, Result};
use crate::trace::{Protocol, RunId, RunStatus, StepPayload, TraceStore};

/// Runs compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunComparison {
    /// Their protocol.
    pub protocol: Protocol,
    /// Each run's report, in the order given.
    pub reports: Vec<Report>,
    /// Every metric any run has, in name order.
    pub metrics: Vec<String>,
    /// Each pair of runs on their shared items.
    pub pairs: Vec<PairTest>,
}

/// Two runs on the items both completed (matched by item id), by headline grade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairTest {
    /// The first run.
    pub a: RunId,
    /// The second.
    pub b: RunId,
    /// Items both completed.
    pub shared: usize,
    /// Grades of `a` (before) against `b` (after).
    pub flips: Flips,
    /// `a`'s headline accuracy on the shared items.
    pub accuracy_a: Metric,
    /// `b`'s.
    pub accuracy_b: Metric,
    /// `b` minus `a`, on the shared items.
    pub difference: Option<f64>,
    /// McNemar's exact two-sided p-value on the discordant items; `None` when no item
    /// differs.
    pub mcnemar_p: Option<f64>,
    /// Whether p < 0.05.
    pub significant: bool,
    /// The items whose grade differs.
    pub changed: Vec<ChangedItem>,
}

/// Compare the experiments `runs` (at least two, of one protocol) from the store.
pub fn compare_runs(store: &TraceStore, runs: &[RunId]) -> Result<RunComparison> {
    let bad = |run: RunId, detail: String| AnalysisError::NotAnEval { run, detail };
    let Some(&first) = runs.first() else {
        return Err(AnalysisError::Incomparable("no runs given".into()).into());
    };
    if runs.len() < 2 {
        return Err(AnalysisError::Incomparable("give at least two runs to compare".into()).into());
    }
    let mut reports = Vec::new();
    let mut outcomes = Vec::new();
    for &id in runs {
        let (report, items) = compute_with_outcomes(store, id)?;
        if let Some(r) = reports.first().filter(|r: &&Report| r.protocol != report.protocol) {
            return Err(bad(
                id,
                format!(
                    "is a {} experiment and {} is a {} one; compare runs of one protocol",
                    report.protocol, first, r.protocol
                ),
            )
            .into());
        }
        let by_id: BTreeMap<String, (u32, bool)> =
            items.iter().map(|(slot, o)| (o.item_id().to_string(), (*slot, o.correct()))).collect();
        outcomes.push(by_id);
        let mut report = report;
        report.metrics.extend(cost(store, id)?);
        reports.push(report);
    }
    let mut metrics: Vec<String> = reports.iter().flat_map(|r| r.metrics.keys().cloned()).collect();
    metrics.sort();
    metrics.dedup();
    let mut pairs = Vec::new();
    for i in 0..runs.len() {
        for j in i + 1..runs.len() {
            pairs.push(pair(runs[i], runs[j], &outcomes[i], &outcomes[j]));
        }
    }
    Ok(RunComparison { protocol: reports[0].protocol, reports, metrics, pairs })
}

/// What each completed item cost, from its stored steps: model calls and tokens
/// (prompt + completion) per item, means with bootstrap intervals. Shown beside the
/// accuracy so a strategy that draws more (`best-of-n`) shows its price.
fn cost(store: &TraceStore, run: RunId) -> Result<Vec<(String, Metric)>> {
    let mut per_item: Vec<(f64, f64)> = Vec::new();
    for (_, member) in store.members(run)? {
        if store.run(member)?.is_none_or(|r| r.status != RunStatus::Completed) {
            continue;
        }
        let (mut calls, mut tokens) = (0u64, 0u64);
        for step in store.steps(member)? {
            if let StepPayload::ModelCall { response, .. } = &step.payload {
                calls += 1;
                tokens += response.as_ref().map_or(0, |r| u64::from(r.usage.prompt_tokens + r.usage.completion_tokens));
            }
        }
        per_item.push((calls as f64, tokens as f64));
    }
    let n = per_item.len();
    let mean = |pick: fn(&(f64, f64)) -> f64| {
        move |s: &[&(f64, f64)]| (!s.is_empty()).then(|| s.iter().map(|x| pick(x)).sum::<f64>() / s.len() as f64)
    };
    Ok(vec![
        ("model_calls_per_item".into(), Metric::from_interval(bootstrap(&per_item, mean(|x| x.0)), n)),
        ("tokens_per_item".into(), Metric::from_interval(bootstrap(&per_item, mean(|x| x.1)), n)),
    ])
}

fn pair(
    a: RunId,
    b: RunId,
    graded_a: &BTreeMap<String, (u32, bool)>,
    graded_b: &BTreeMap<String, (u32, bool)>,
) -> PairTest {
    let mut flips = Flips::default();
    let mut changed = Vec::new();
    let (mut right_a, mut right_b, mut shared) = (0, 0, 0);
    for (item, &(slot, was)) in graded_a {
        let Some(&(_, now)) = graded_b.get(item) else { continue };
        shared += 1;
        right_a += usize::from(was);
        right_b += usize::from(now);
        flips.add(was, now);
        if was != now {
            changed.push(ChangedItem { slot, item_id: item.clone(), before: was, after: now });
        }
    }
    let mcnemar_p = mcnemar_exact(flips.right_wrong, flips.wrong_right);
    let accuracy_a = Metric::proportion(right_a, shared);
    let accuracy_b = Metric::proportion(right_b, shared);
    let difference = accuracy_a.value.zip(accuracy_b.value).map(|(x, y)| y - x);
    PairTest {
        a,
        b,
        shared,
        flips,
        accuracy_a,
        accuracy_b,
        difference,
        mcnemar_p,
        significant: mcnemar_p.is_some_and(|p| p < 0.05),
        changed,
    }
}

/// McNemar's exact test: with `b` and `c` discordant pairs, the two-sided binomial
/// p-value of a split this uneven under p = 1/2. `None` with no discordant pair.
pub fn mcnemar_exact(b: usize, c: usize) -> Option<f64> {
    let n = b + c;
    if n == 0 {
        return None;
    }
    let k = b.min(c);
    // Binomial(n, 1/2) terms in logs, so large n does not underflow.
    let mut log_term = -(n as f64) * std::f64::consts::LN_2;
    let mut tail = log_term.exp();
    for i in 1..=k {
        log_term += ((n - i + 1) as f64).ln() - (i as f64).ln();
        tail += log_term.exp();
    }
    Some((2.0 * tail).min(1.0))
}

fn cell(m: Option<&Metric>) -> String {
    match m {
        Some(Metric { value: Some(v), low: Some(lo), high: Some(hi), .. }) => format!("{v:.3} [{lo:.3}, {hi:.3}]"),
        Some(_) => "undefined".into(),
        None => "(not measured)".into(),
    }
}

fn verdict(p: &PairTest) -> String {
    match p.mcnemar_p {
        None => "no item differs".into(),
        Some(pv) if p.significant => format!("McNemar p = {pv:.4}: different"),
        Some(pv) => format!("McNemar p = {pv:.4}: not shown to differ"),
    }
}

/// The comparison as text: a metric table, then each pair.
pub fn render_comparison_text(c: &RunComparison) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} experiments of protocol {}:", c.reports.len(), c.protocol);
    for (i, r) in c.reports.iter().enumerate() {
        let _ = writeln!(out, "  [{}] {} {} (model {}, {} items)", i + 1, r.run_id, r.name, r.model, r.n);
    }
    let _ = write!(out, "\n{:<30}", "metric");
    for i in 0..c.reports.len() {
        let _ = write!(out, " {:<26}", format!("[{}]", i + 1));
    }
    out.push('\n');
    for name in &c.metrics {
        let _ = write!(out, "{name:<30}");
        for r in &c.reports {
            let _ = write!(out, " {:<26}", cell(r.metrics.get(name)));
        }
        out.push('\n');
    }
    let index = |id: RunId| c.reports.iter().position(|r| r.run_id == id).map_or(0, |i| i + 1);
    for p in &c.pairs {
        let f = p.flips;
        let _ = writeln!(
            out,
            "\n[{}] -> [{}] on {} shared items: headline accuracy {} -> {} ({:+.3}); R->R {}, R->W {}, W->R {}, W->W {}; {}",
            index(p.a),
            index(p.b),
            p.shared,
            cell(Some(&p.accuracy_a)),
            cell(Some(&p.accuracy_b)),
            p.difference.unwrap_or(0.0),
            f.right_right,
            f.right_wrong,
            f.wrong_right,
            f.wrong_wrong,
            verdict(p)
        );
        for item in &p.changed {
            let grade = |b: bool| if b { "right" } else { "wrong" };
            let _ = writeln!(out, "  {}: {} -> {}", item.item_id, grade(item.before), grade(item.after));
        }
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The comparison as one self-contained HTML page.
pub fn render_comparison_html(c: &RunComparison) -> String {
    let mut body = format!("<h1>{} experiments compared ({})</h1><ol>", c.reports.len(), c.protocol);
    for r in &c.reports {
        let _ = write!(
            body,
            "<li><code>{}</code> {}, model <code>{}</code>, {} items</li>",
            r.run_id,
            esc(&r.name),
            esc(&r.model),
            r.n
        );
    }
    body.push_str("</ol><h2>Metrics (95% intervals)</h2><table><tr><th>metric</th>");
    for i in 0..c.reports.len() {
        let _ = write!(body, "<th>[{}]</th>", i + 1);
    }
    body.push_str("</tr>");
    for name in &c.metrics {
        let _ = write!(body, "<tr><td>{}</td>", esc(name));
        for r in &c.reports {
            let _ = write!(body, "<td>{}</td>", esc(&cell(r.metrics.get(name))));
        }
        body.push_str("</tr>");
    }
    body.push_str("</table><h2>Pairs on shared items (McNemar's exact test)</h2>");
    let index = |id: RunId| c.reports.iter().position(|r| r.run_id == id).map_or(0, |i| i + 1);
    for p in &c.pairs {
        let f = p.flips;
        let _ = write!(
            body,
            "<h3>[{}] &rarr; [{}]: {} shared items, {}</h3><table class=\"flip\"><tr><th></th><th>after: right</th>\
             <th>after: wrong</th></tr><tr><th>before: right</th><td>{}</td><td>{}</td></tr><tr><th>before: wrong</th>\
             <td>{}</td><td>{}</td></tr></table>",
            index(p.a),
            index(p.b),
            p.shared,
            esc(&verdict(p)),
            f.right_right,
            f.right_wrong,
            f.wrong_right,
            f.wrong_wrong
        );
        if !p.changed.is_empty() {
            body.push_str("<details><summary>Items that changed</summary><ul>");
            for item in &p.changed {
                let grade = |b: bool| if b { "right" } else { "wrong" };
                let _ = write!(
                    body,
                    "<li>{}: {} &rarr; {}</li>",
                    esc(&item.item_id),
                    grade(item.before),
                    grade(item.after)
                );
            }
            body.push_str("</ul></details>");
        }
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>recheck comparison</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}}</style></head><body>{body}</body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcnemar_exact_matches_the_binomial_tail() {
        // 0 vs 6 discordant: 2 * 0.5^6 = 0.03125.
        assert!((mcnemar_exact(0, 6).unwrap() - 0.03125).abs() < 1e-12);
        // 1 vs 9: 2 * (1 + 10) / 1024.
        assert!((mcnemar_exact(9, 1).unwrap() - 22.0 / 1024.0).abs() < 1e-12);
        assert_eq!(mcnemar_exact(5, 5), Some(1.0));
        assert_eq!(mcnemar_exact(0, 0), None);
        // Large counts stay finite.
        let p = mcnemar_exact(2000, 2300).unwrap();
        assert!(p > 0.0 && p < 1e-4, "{p}");
    }
}
