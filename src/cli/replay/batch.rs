//! `recheck replay --runs FILTER`: fork many stored runs with one change and print the
//! comparison as text, JSON or an HTML page.

use std::{collections::BTreeSet, fmt::Write as _};

use recheck::{
    analysis::Metric,
    home::Home,
    orchestrator::{fork_batch, AskRecord, BatchOptions, BatchReport, RunFilter, Verification},
    trace::TraceStore,
};

use super::{agents, ask_change, ReplayArgs};

/// Fork what `filter` selects; print and store the comparison.
pub(super) async fn run(home: &Home, store: &TraceStore, filter: &str, args: &ReplayArgs) -> anyhow::Result<()> {
    let ids = filter.parse::<RunFilter>()?.select(store)?;
    if ids.is_empty() {
        anyhow::bail!("--runs {filter:?}: no stored completed ask or serve run matches");
    }
    let live_spec = match &args.model {
        Some(spec) => spec.clone(),
        None => {
            let specs: BTreeSet<String> = ids
                .iter()
                .filter_map(|id| store.run(*id).ok().flatten())
                .filter_map(|r| serde_json::from_value::<AskRecord>(r.config).ok())
                .map(|r| r.model.spec)
                .collect();
            match specs.len() {
                1 => specs.into_iter().next().unwrap_or_default(),
                0 => anyhow::bail!("the selected runs have no recorded model; give --model SPEC"),
                _ => super::super::usage!(
                    "the selected runs were made with several models ({}); give --model SPEC or add model=... to --runs",
                    specs.into_iter().collect::<Vec<_>>().join(", ")
                ),
            }
        }
    };
    let (change, models) = ask_change(home, args, &live_spec)?;
    let agents = agents(args)?;
    let options = BatchOptions {
        from_step: args.from_step.unwrap_or(u32::MAX),
        change,
        concurrency: args.models.concurrency.max(1),
    };
    eprintln!("forking {} runs with {} on {live_spec}", ids.len(), options.change.describe());
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr())
        .then(|| super::super::progress_bar(ids.len() as u64, "forks"));
    let progress = |done: usize, total: usize| match &bar {
        Some(bar) => bar.set_position(done as u64),
        None if done % (total / 20).max(1) == 0 || done == total => eprintln!("{done}/{total} forks"),
        None => {}
    };
    let report = fork_batch(store, filter, &options, &models, &agents, &progress).await?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    super::super::print_report(&report, args.json, args.html.as_deref(), render_text, render_html)
}

/// The report's measures, named, with the digits each is shown with.
fn measures(r: &BatchReport) -> [(&'static str, &Metric, usize); 9] {
    [
        ("verdict changed", &r.verdict_changed, 3),
        ("answer changed", &r.answer_changed, 3),
        ("verified, originals", &r.verified_before, 3),
        ("verified, forks", &r.verified_after, 3),
        ("verified, fork - original", &r.verified_difference, 3),
        ("model calls a run, originals", &r.calls_before, 2),
        ("model calls a run, forks", &r.calls_after, 2),
        ("tokens a run, originals", &r.tokens_before, 1),
        ("tokens a run, forks", &r.tokens_after, 1),
    ]
}

/// `0.412 [0.301, 0.530]`, or why there is no value.
fn metric(m: &Metric, digits: usize) -> String {
    match (m.value, m.low, m.high) {
        (Some(v), Some(lo), Some(hi)) => format!("{v:.digits$} [{lo:.digits$}, {hi:.digits$}]"),
        _ => "undefined: no completed forks".into(),
    }
}

fn step(report: &BatchReport) -> String {
    match report.from_step {
        u32::MAX => "the first request that differs from the record".into(),
        k => format!("step {k}"),
    }
}

/// The comparison as text.
pub fn render_text(r: &BatchReport) -> String {
    let mut s = String::new();
    let pairs = r.pairs.len();
    let _ = writeln!(s, "batch {}: {} runs selected by {:?}, forked with {}", r.group, r.selected, r.filter, r.change);
    let _ = writeln!(s, "live on {} from {}; {pairs} forks completed, {} skipped", r.model, step(r), r.skipped.len());
    let _ = writeln!(s, "\nverdict flips (rows: original, columns: fork)");
    let _ = writeln!(s, "{:<10} {:>9} {:>9} {:>9}", "", "verified", "refuted", "unknown");
    for before in Verification::ALL {
        let _ = write!(s, "{:<10}", before.as_str());
        for after in Verification::ALL {
            let _ = write!(s, " {:>9}", r.flipped(before, after));
        }
        s.push('\n');
    }
    let _ = writeln!(s, "\n95% intervals (Wilson for shares, paired bootstrap for means and the difference)");
    for (name, m, digits) in measures(r) {
        let _ = writeln!(s, "{name:<30} {}  (n = {})", metric(m, digits), m.n);
    }
    let _ = writeln!(s, "(a fork's calls and tokens include its recorded part, as the original paid for them)");
    for skipped in &r.skipped {
        let _ = writeln!(s, "skipped {}: {}", skipped.run, super::super::shown(&skipped.reason));
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The comparison as one self-contained HTML page.
pub fn render_html(r: &BatchReport) -> String {
    let mut body = format!(
        "<h1>Batch of forks</h1><p>Group <code>{}</code>: {} runs selected by <code>{}</code>, forked with \
         <code>{}</code>, live on <code>{}</code> from {}. {} forks completed, {} skipped.</p>",
        r.group,
        r.selected,
        esc(&r.filter),
        esc(&r.change),
        esc(&r.model),
        esc(&step(r)),
        r.pairs.len(),
        r.skipped.len()
    );
    let total = r.pairs.len().max(1) as f64;
    body.push_str("<h2>Verdict flips</h2><table class=\"flip\"><tr><th>original \\ fork</th>");
    for after in Verification::ALL {
        let _ = write!(body, "<th>{after}</th>");
    }
    body.push_str("</tr>");
    for before in Verification::ALL {
        let _ = write!(body, "<tr><th>{before}</th>");
        for after in Verification::ALL {
            let k = r.flipped(before, after);
            let shade = 255.0 - 140.0 * (k as f64 / total);
            let _ = write!(body, r#"<td style="background:rgb({shade:.0},{shade:.0},255)">{k}</td>"#);
        }
        body.push_str("</tr>");
    }
    body.push_str("</table><h2>Measures (95% intervals)</h2><table><tr><th>measure</th><th>value [95% interval]</th><th>n</th></tr>");
    for (name, m, digits) in measures(r) {
        let _ = write!(body, "<tr><td>{name}</td><td>{}</td><td>{}</td></tr>", metric(m, digits), m.n);
    }
    body.push_str("</table><h2>Runs</h2><table><tr><th>original</th><th>fork</th><th>before</th><th>after</th><th>answer</th></tr>");
    for p in &r.pairs {
        let _ = write!(
            body,
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            p.original,
            p.fork,
            p.before,
            p.after,
            if p.answer_changed { "changed" } else { "same" }
        );
    }
    body.push_str("</table>");
    for skipped in &r.skipped {
        let _ = write!(body, "<p>Skipped <code>{}</code>: {}</p>", skipped.run, esc(&skipped.reason));
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>recheck batch {}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2em;max-width:60em;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}}</style></head><body>{body}</body></html>\n",
        r.group
    )
}
