//! The report as one self-contained HTML page with inline SVG plots: accuracy per
//! round with intervals, every rate with its interval, and the flip matrices.

use std::fmt::Write;

use super::{Flips, Metric, Report};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Points of accuracy per round with interval bars.
fn rounds_plot(points: &[(String, &Metric)]) -> String {
    let (w, h, left, top, bottom) = (520.0, 260.0, 50.0, 20.0, 40.0);
    let plot_h = h - top - bottom;
    let step = (w - left - 20.0) / (points.len().max(1) as f64);
    let y = |v: f64| top + plot_h * (1.0 - v);
    let mut s =
        format!(r#"<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="accuracy per round">"#);
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{y0}" y2="{y0}" stroke="#ddd"/><text x="{}" y="{}" font-size="11" text-anchor="end">{tick:.2}</text>"##,
            w - 10.0,
            left - 6.0,
            y(tick) + 4.0,
            y0 = y(tick)
        );
    }
    let mut line = String::new();
    for (i, (label, m)) in points.iter().enumerate() {
        let x = left + step * (i as f64 + 0.5);
        if let (Some(v), Some(lo), Some(hi)) = (m.value, m.low, m.high) {
            let _ = write!(
                s,
                r##"<line x1="{x}" x2="{x}" y1="{}" y2="{}" stroke="#555"/><circle cx="{x}" cy="{}" r="4" fill="#1f6feb"/><text x="{x}" y="{}" font-size="11" text-anchor="middle">{v:.2}</text>"##,
                y(lo),
                y(hi),
                y(v),
                y(hi) - 6.0
            );
            let _ = write!(line, "{}{x},{} ", if line.is_empty() { "M" } else { "L" }, y(v));
        }
        let _ =
            write!(s, r#"<text x="{x}" y="{}" font-size="12" text-anchor="middle">{}</text>"#, h - 15.0, esc(label));
    }
    let _ = write!(s, r##"<path d="{line}" fill="none" stroke="#1f6feb" stroke-width="1.5"/></svg>"##);
    s
}

/// Horizontal bars of rates in [0, 1] with interval whiskers.
fn rates_plot(rates: &[(&String, &Metric)]) -> String {
    // Room on the right for the "value (n=...)" label of a rate near 1.
    let (w, left, row, right) = (740.0, 290.0, 26.0, 130.0);
    let h = row * rates.len() as f64 + 30.0;
    let x = |v: f64| left + (w - left - right) * v;
    let mut s = format!(r#"<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="rates">"#);
    for (i, (name, m)) in rates.iter().enumerate() {
        let y = 10.0 + row * i as f64;
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" font-size="12" text-anchor="end">{}</text>"#,
            left - 8.0,
            y + 14.0,
            esc(name)
        );
        if let (Some(v), Some(lo), Some(hi)) = (m.value, m.low, m.high) {
            let _ = write!(
                s,
                r##"<rect x="{left}" y="{}" width="{}" height="14" fill="#9ecbff"/><line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#333"/><text x="{}" y="{}" font-size="11">{v:.3} (n={})</text>"##,
                y + 3.0,
                x(v.clamp(0.0, 1.0)) - left,
                x(lo.clamp(0.0, 1.0)),
                x(hi.clamp(0.0, 1.0)),
                y + 10.0,
                y + 10.0,
                x(hi.clamp(0.0, 1.0)) + 6.0,
                y + 14.0,
                m.n
            );
        } else {
            let _ = write!(s, r#"<text x="{left}" y="{}" font-size="11">undefined (n={})</text>"#, y + 14.0, m.n);
        }
    }
    s.push_str("</svg>");
    s
}

fn flip_table(name: &str, f: &Flips) -> String {
    let total = (f.right_right + f.right_wrong + f.wrong_right + f.wrong_wrong).max(1) as f64;
    let cell = |k: usize| {
        let shade = 255.0 - 140.0 * (k as f64 / total);
        format!(r#"<td style="background:rgb({s:.0},{s:.0},255)">{k}</td>"#, s = shade)
    };
    format!(
        "<table class=\"flip\"><caption>{}</caption><tr><th></th><th>after: right</th><th>after: wrong</th></tr>\
         <tr><th>before: right</th>{}{}</tr><tr><th>before: wrong</th>{}{}</tr></table>",
        esc(name),
        cell(f.right_right),
        cell(f.right_wrong),
        cell(f.wrong_right),
        cell(f.wrong_wrong)
    )
}

/// Render `report` as a self-contained HTML page.
pub fn render_html(report: &Report) -> String {
    let mut rounds: Vec<(String, &Metric)> = report
        .metrics
        .iter()
        .filter_map(|(k, m)| k.strip_prefix("accuracy_round_").and_then(|r| r.parse::<u32>().ok()).map(|r| (r, m)))
        .map(|(r, m)| (format!("round {r}"), m))
        .collect();
    rounds.sort_by_key(|(label, _)| label.trim_start_matches("round ").parse::<u32>().unwrap_or(0));
    let rates: Vec<(&String, &Metric)> = report
        .metrics
        .iter()
        .filter(|(k, m)| !k.starts_with("accuracy_round_") && m.value.is_none_or(|v| (0.0..=1.0).contains(&v)))
        .collect();
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>{}: {}</h1><p>Experiment <code>{}</code>, model <code>{}</code>. {} items, {} with a completed run{}.</p>",
        esc(&report.name),
        report.protocol,
        report.run_id,
        esc(&report.model),
        report.items,
        report.n,
        if report.unfinished > 0 { format!(", {} failed or unfinished", report.unfinished) } else { String::new() }
    );
    for (condition, how) in &report.conditions {
        let _ = write!(body, "<p>Condition <b>{}</b>: {}</p>", esc(condition), esc(how));
    }
    if !rounds.is_empty() {
        let _ = write!(body, "<h2>Accuracy per round (95% Wilson intervals)</h2>{}", rounds_plot(&rounds));
    }
    if !rates.is_empty() {
        let _ = write!(body, "<h2>Rates (95% intervals)</h2>{}", rates_plot(&rates));
    }
    if !report.flips.is_empty() {
        body.push_str("<h2>Flips</h2><div class=\"flips\">");
        for (name, f) in &report.flips {
            body.push_str(&flip_table(name, f));
        }
        body.push_str("</div>");
    }
    if let Some(c) = &report.comparison {
        let _ = write!(
            body,
            "<h2>Against the parent run</h2>{}",
            flip_table(&format!("parent {} -> fork", c.parent), &c.flips)
        );
    }
    body.push_str(
        "<h2>All metrics</h2><table><tr><th>metric</th><th>value</th><th>95% interval</th><th>n</th><th>published</th></tr>",
    );
    for (name, m) in &report.metrics {
        let cells = match (m.value, m.low, m.high) {
            (Some(v), Some(lo), Some(hi)) => format!("<td>{v:.3}</td><td>[{lo:.3}, {hi:.3}]</td>"),
            _ => "<td colspan=\"2\">undefined</td>".to_string(),
        };
        let note = super::text::note(m).map(|n| format!("<br><small>{}</small>", esc(&n))).unwrap_or_default();
        let paper = report
            .published
            .get(name)
            .map(|p| format!("{}<br><small>{}</small>", esc(&p.figure), esc(&p.source)))
            .unwrap_or_default();
        let _ = write!(body, "<tr><td>{}{note}</td>{cells}<td>{}</td><td>{paper}</td></tr>", esc(name), m.n);
    }
    body.push_str("</table>");
    for (name, count) in &report.counts {
        let _ = write!(body, "<p>{}: {count}</p>", esc(name));
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>recheck report {}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2em;max-width:60em;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}\
         .flips{{display:flex;gap:2em;flex-wrap:wrap}}caption{{font-weight:600;padding:4px}}</style></head>\
         <body>{body}</body></html>\n",
        report.run_id
    )
}
