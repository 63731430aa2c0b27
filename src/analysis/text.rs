//! The report as a plain-text table.

use std::fmt::Write;

use super::Report;

fn num(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into())
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
    let _ = writeln!(out, "\n{:<34} {:>7}  {:<17} {:>5}", "metric", "value", "95% interval", "n");
    for (name, m) in &report.metrics {
        let interval = format!("[{}, {}]", num(m.low), num(m.high));
        let _ = writeln!(out, "{:<34} {:>7}  {:<17} {:>5}", name, num(m.value), interval, m.n);
    }
    if !report.flips.is_empty() {
        let _ = writeln!(out, "\n{:<24} {:>6} {:>6} {:>6} {:>6}", "flips", "R->R", "R->W", "W->R", "W->W");
        for (name, f) in &report.flips {
            let _ = writeln!(
                out,
                "{:<24} {:>6} {:>6} {:>6} {:>6}",
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
