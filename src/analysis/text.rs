//! The report as a plain-text table.

use std::fmt::Write;

use super::{Metric, Report};

fn num(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_default()
}

/// What to say under the table about `m`, if anything: why it has no value, or that
/// its interval comes from only part of the resamples.
pub(super) fn note(m: &Metric) -> Option<String> {
    match (&m.undefined, m.defined_share) {
        (Some(why), _) => Some(format!("undefined: {why}")),
        (None, Some(share)) if share < 1.0 => {
            Some(format!("interval from the {:.1}% of resamples where it is defined", share * 100.0))
        }
        _ => None,
    }
}

/// Render `report` as the table `eval report` prints.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "experiment {} ({}, protocol {}, model {})\n{} items, {} with a completed run{}",
        report.run_id,
        report.name,
        report.protocol,
        report.model,
        report.items,
        report.n,
        if report.unfinished > 0 { format!(", {} failed or unfinished", report.unfinished) } else { String::new() }
    );
    for (condition, how) in &report.conditions {
        let _ = writeln!(out, "condition {condition}: {how}");
    }
    // Per-task names ("processbench_f1:tracking_shuffled_objects") are long: the column fits them.
    let w = report.metrics.keys().map(|k| k.chars().count()).max().unwrap_or(0).max(34);
    let _ = writeln!(out, "\n{:<w$} {:>7}  {:<17} {:>5}", "metric", "value", "95% interval", "n");
    for (name, m) in &report.metrics {
        let (value, interval) = match m.value {
            Some(v) => (format!("{v:.3}"), format!("[{}, {}]", num(m.low), num(m.high))),
            None => ("undef.".to_string(), "(see below)".to_string()),
        };
        let _ = writeln!(out, "{:<w$} {:>7}  {:<17} {:>5}", name, value, interval, m.n);
        if let Some(p) = report.published.get(name) {
            let _ = writeln!(out, "    published: {} ({})", p.figure, p.source);
        }
    }
    for (name, m) in &report.metrics {
        if let Some(note) = note(m) {
            let _ = writeln!(out, "  {name}: {note}");
        }
    }
    if !report.flips.is_empty() {
        let fw = report.flips.keys().map(|k| k.chars().count()).max().unwrap_or(0).max(24);
        let _ = writeln!(out, "\n{:<fw$} {:>6} {:>6} {:>6} {:>6}", "flips", "R->R", "R->W", "W->R", "W->W");
        for (name, f) in &report.flips {
            let _ = writeln!(
                out,
                "{:<fw$} {:>6} {:>6} {:>6} {:>6}",
                name, f.right_right, f.right_wrong, f.wrong_right, f.wrong_wrong
            );
        }
    }
    if !report.counts.is_empty() {
        let _ = writeln!(out);
        for (name, count) in &report.counts {
            let _ = writeln!(out, "{name}: {count}");
        }
    }
    if let Some(c) = &report.comparison {
        let f = c.flips;
        let _ = writeln!(
            out,
            "\nagainst parent {}: R->R {}, R->W {}, W->R {}, W->W {}",
            c.parent, f.right_right, f.right_wrong, f.wrong_right, f.wrong_wrong
        );
        for item in &c.changed {
            let grade = |b: bool| if b { "right" } else { "wrong" };
            let _ = writeln!(
                out,
                "  item {} ({}): {} -> {}",
                item.slot,
                item.item_id,
                grade(item.before),
                grade(item.after)
            );
        }
    }
    out
}
