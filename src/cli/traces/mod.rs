//! `recheck traces`: list, show, export and import recorded runs.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use recheck::{
    home::{Home, Remote},
    trace::{ListedRun, Listing, RunRecord, StepPayload, StepRecord},
};

/// `recheck traces`: the subcommand, and where to read from.
#[derive(Debug, clap::Args)]
pub struct TracesArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: TracesCommand,

    /// Read through a running `recheck serve` at URL (e.g. http://127.0.0.1:8787)
    /// instead of the store. Without it, a `recheck serve` holding this home's store is
    /// found and read through on its own.
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,

    /// Environment variable holding that server's key, if it has one.
    #[arg(long, global = true, value_name = "NAME")]
    pub server_key_env: Option<String>,
}

/// The `traces` subcommands.
#[derive(Debug, Subcommand)]
pub enum TracesCommand {
    /// List recorded runs, oldest first (an experiment's item runs only with --items).
    List {
        /// Print JSON (`{"runs": [...]}`) instead of a table.
        #[arg(long)]
        json: bool,
        /// Include the per-item runs of experiments (`eval run`).
        #[arg(long)]
        items: bool,
    },
    /// Show one run and its steps.
    Show {
        /// Run id, or a unique prefix of at least 4 characters.
        id: String,
        /// Print JSON (`{"run": ..., "steps": [...]}`).
        #[arg(long)]
        json: bool,
    },
    /// Export runs with their steps as JSONL (one record a line), or send them to an
    /// OpenTelemetry collector as traces (--otlp).
    Export {
        /// File to write; `-` for standard output (the summary then goes to stderr). A
        /// regular file is replaced only once the export is complete; a link is
        /// followed; a device or pipe is written in place.
        #[arg(long, value_name = "FILE.jsonl", required_unless_present = "otlp", conflicts_with = "otlp")]
        out: Option<PathBuf>,
        /// Only these runs (repeatable); default all.
        #[arg(long = "run", value_name = "ID")]
        runs: Vec<String>,
        /// Only the `ask`/`serve` runs FILTER selects (as `recheck replay --runs`:
        /// kind=, since=, until=, verdict=, model=, tag=, limit=).
        #[arg(long = "runs", value_name = "FILTER", conflicts_with = "runs")]
        filter: Option<String>,
        /// Send the runs as OTLP/HTTP traces to the collector at URL (Phoenix:
        /// http://127.0.0.1:6006) instead of writing a file: one trace a run, a span a step.
        #[arg(long, value_name = "URL")]
        otlp: Option<String>,
        /// With --otlp: leave message content out of the spans.
        #[arg(long, requires = "otlp")]
        otlp_no_content: bool,
        /// Print counts as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild a damaged store: a new store from every record that can still be read
    /// in the old one's files and its write-ahead log. The damaged store is kept beside
    /// it as `traces.damaged-<time>`; nothing is deleted.
    Salvage {
        /// Print what was recovered as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Import a JSONL export; runs already present are skipped.
    Import {
        /// File to read.
        file: PathBuf,
        /// Print counts as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(home: &Home, args: TracesArgs) -> anyhow::Result<()> {
    let command = args.command;
    if let TracesCommand::Salvage { json } = command {
        if args.server.is_some() {
            super::usage!("salvage works on the store's files; drop --server");
        }
        return salvage(home, json);
    }
    let remote = match (&command, &args.server) {
        (TracesCommand::Import { .. }, Some(_)) => super::usage!("import writes to the store itself; drop --server"),
        (TracesCommand::Import { .. }, None) => None,
        (_, Some(url)) => {
            Some(Remote::new(url, args.server_key_env.as_deref()).map_err(|e| super::UsageError(e.to_string()))?)
        }
        (_, None) => Remote::running(home, &|line| eprintln!("{line}")).await?,
    };
    // Reads work while another process holds the store: through the `recheck serve`
    // that holds it, or from a snapshot; import writes.
    let store = match (&command, &remote) {
        (TracesCommand::Import { .. }, _) => super::open_store(home)?,
        (TracesCommand::Salvage { .. }, _) => anyhow::bail!("salvage opens no store"),
        (TracesCommand::List { .. }, Some(_)) => recheck::trace::TraceStore::temporary()?,
        (TracesCommand::Show { id, .. }, Some(r)) => r.fetch(std::slice::from_ref(id)).await?,
        (TracesCommand::Export { runs, .. }, Some(r)) => r.fetch(runs).await?,
        _ => super::open_store_for_reading(home)?,
    };
    match command {
        TracesCommand::List { json, items } => {
            let Listing { runs: rows, unreadable, hidden } = match &remote {
                Some(r) => r.list(items).await?,
                None => store.listing(items)?,
            };
            for bad in &unreadable {
                eprintln!("skipped an unreadable run record: {}", super::shown(bad));
            }
            if json {
                return super::print_json(&json!({ "runs": rows }));
            }
            if rows.is_empty() {
                match &remote {
                    Some(r) => println!("no runs recorded in the store of {}", r.url()),
                    None => println!("no runs recorded in {}", store.path().display()),
                }
            }
            if hidden > 0 {
                eprintln!("({hidden} item runs of experiments not shown; --items lists them)");
            }
            for ListedRun { run, steps } in &rows {
                println!(
                    "{}  {}  {:<10}  {:<5}  {:>3} steps  {}",
                    run.id,
                    run.started_at.format("%Y-%m-%d %H:%M:%S"),
                    run.status,
                    run.kind,
                    steps,
                    summary(&run.input, 60)
                );
            }
            Ok(())
        }
        TracesCommand::Show { id, json } => {
            let id = store.resolve(&id)?;
            let run = store.run(id)?.ok_or_else(|| anyhow::anyhow!("run {id} vanished"))?;
            let steps = store.steps(id)?;
            if json {
                return super::print_json(&json!({ "run": run, "steps": steps }));
            }
            print_run(&run, &steps);
            Ok(())
        }
        TracesCommand::Export { out, runs, filter, otlp, otlp_no_content, json } => {
            let mut ids = runs.iter().map(|r| store.resolve(r)).collect::<Result<Vec<_>, _>>()?;
            if let Some(filter) = &filter {
                ids = filter.parse::<recheck::orchestrator::RunFilter>()?.select(&store)?;
                if ids.is_empty() {
                    anyhow::bail!("--runs {filter:?}: no stored completed ask or serve run matches");
                }
            }
            if let Some(url) = otlp {
                let otlp = super::otlp::OtlpArgs { otlp: Some(url), otlp_no_content };
                return export_otlp(&store, ids, &otlp, json);
            }
            let Some(out) = out else { super::usage!("give --out FILE.jsonl or --otlp URL") };
            let counts = store.export_jsonl(&out, &ids)?;
            let summary = if json {
                serde_json::to_string(&counts)?
            } else {
                format!(
                    "exported {} runs, {} steps ({} bytes) to {}",
                    counts.runs,
                    counts.steps,
                    counts.bytes,
                    out.display()
                )
            };
            for bad in &counts.unreadable {
                eprintln!("left out an unreadable record: {}", super::shown(bad));
            }
            // With `--out -` the export itself is on standard output.
            if out.as_os_str() == "-" {
                eprintln!("{summary}");
            } else {
                println!("{summary}");
            }
            Ok(())
        }
        TracesCommand::Salvage { .. } => anyhow::bail!("salvage opens no store"),
        TracesCommand::Import { file, json } => {
            let counts = store.import_jsonl(&file)?;
            if json {
                return super::print_json(&counts);
            }
            println!(
                "imported {} runs, {} steps; repaired {} runs stored with fewer steps; skipped {} runs already present",
                counts.runs, counts.steps, counts.repaired_runs, counts.skipped_runs
            );
            Ok(())
        }
    }
}

/// `recheck traces salvage`: build a new store beside the damaged one, then swap them.
fn salvage(home: &Home, json: bool) -> anyhow::Result<()> {
    let traces = home.traces_dir();
    if !traces.is_dir() {
        anyhow::bail!("there is no trace store at {} to salvage", traces.display());
    }
    if recheck::trace::TraceStore::is_held(&traces) {
        anyhow::bail!(
            "the trace store at {} is in use by another recheck process; stop it first (salvage needs the store to itself)",
            traces.display()
        );
    }
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let sibling = |what: &str| traces.with_file_name(format!("traces.{what}-{stamp}"));
    let (new, kept) = (sibling("salvaged"), sibling("damaged"));
    let report = recheck::trace::TraceStore::salvage(&traces, &new)?;
    // The new store takes the old one's place; the old one stays, renamed.
    std::fs::rename(&traces, &kept).map_err(|e| {
        anyhow::anyhow!(
            "cannot move {} aside to {}: {e} (the salvaged store is at {})",
            traces.display(),
            kept.display(),
            new.display()
        )
    })?;
    std::fs::rename(&new, &traces).map_err(|e| {
        anyhow::anyhow!(
            "cannot move the salvaged store {} into place at {}: {e} (the damaged one is at {})",
            new.display(),
            traces.display(),
            kept.display()
        )
    })?;
    if json {
        return super::print_json(&serde_json::json!({ "report": report, "store": traces, "damaged_kept_at": kept }));
    }
    if let Some(why) = &report.sled_error {
        println!("sled could not open the damaged store ({}); its files were scanned", super::shown(why));
    }
    println!(
        "salvaged {} runs ({} steps, {} configs) from its files and {} records from its write-ahead log; {} records unreadable",
        report.runs, report.steps, report.configs, report.logged, report.unreadable
    );
    println!("the new store at {} holds {} runs", traces.display(), report.total_runs);
    if report.runs_without_config > 0 {
        println!(
            "{} of them lack their config and read as unreadable (`recheck traces list` names them)",
            report.runs_without_config
        );
    }
    println!("the damaged store is kept at {}", kept.display());
    Ok(())
}

/// Send `ids` (default: every run) to the collector `otlp` names.
fn export_otlp(
    store: &recheck::trace::TraceStore,
    mut ids: Vec<recheck::trace::RunId>,
    otlp: &super::otlp::OtlpArgs,
    json: bool,
) -> anyhow::Result<()> {
    let Some(mut options) = otlp.options()? else { return Ok(()) };
    if ids.is_empty() {
        ids = store.list_runs()?.into_iter().map(|r| r.id).collect();
    }
    options.queue = ids.len().max(1);
    let exporter = recheck::telemetry::OtlpExporter::start(store, &options)?;
    for id in &ids {
        exporter.send(*id);
    }
    let counts = exporter.finish(std::time::Duration::from_secs(600));
    if json {
        super::print_json(&counts)?;
    } else {
        println!("sent {} runs ({} spans) to {}", counts.runs, counts.spans, options.endpoint);
    }
    if counts.failed + counts.dropped + counts.pending > 0 {
        anyhow::bail!(
            "{} of {} runs were not delivered to {} (see the log above); they are still in the store",
            counts.failed + counts.dropped + counts.pending,
            ids.len(),
            options.endpoint
        );
    }
    Ok(())
}

fn summary(value: &serde_json::Value, max: usize) -> String {
    let text = match value {
        serde_json::Value::Object(map) if map.len() == 1 => map.values().next().map(plain).unwrap_or_default(),
        other => plain(other),
    };
    clip(&text.replace('\n', " "), max)
}

fn plain(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// At most `max` characters of `text`, safe for a terminal.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return super::shown(text).into_owned();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", super::shown(&cut))
}

fn print_run(run: &RunRecord, steps: &[StepRecord]) {
    println!("run      {}", run.id);
    println!("kind     {}", run.kind);
    println!("status   {}", run.status);
    println!("started  {}", run.started_at.to_rfc3339());
    if let Some(end) = run.ended_at {
        println!("ended    {}", end.to_rfc3339());
    }
    if let Some(parent) = run.parent {
        println!("parent   {parent}");
    }
    println!("input    {}", summary(&run.input, 200));
    if let Some(err) = &run.error {
        println!("error    {}", super::shown(err));
    }
    if let Some(out) = &run.output {
        println!("output   {}", summary(out, 200));
    }
    for step in steps {
        let what = match &step.payload {
            StepPayload::ModelCall { model, request, response } => {
                let asked =
                    request.messages.last().map(|m| clip(&m.content.replace('\n', " "), 80)).unwrap_or_default();
                let got = response.as_ref().map(|r| clip(&r.text().replace('\n', " "), 80)).unwrap_or_default();
                format!("model {}\n      > {asked}\n      < {got}", model.spec)
            }
            StepPayload::Scoring { model, continuation, score, .. } => format!(
                "score {} {:?} = {}",
                model.spec,
                clip(continuation, 60),
                score.as_ref().map(|s| format!("{:.3}", s.total_logprob)).unwrap_or_else(|| "-".into())
            ),
            StepPayload::ToolCall { tool, input, output } => format!(
                "tool {tool}({}) -> {}",
                clip(&input.to_string(), 60),
                output.as_ref().map(|o| clip(&o.to_string(), 60)).unwrap_or_else(|| "-".into())
            ),
            StepPayload::Event { name, data } => format!("{name}: {}", clip(&data.to_string(), 100)),
        };
        let usage = step.usage();
        println!(
            "#{:<3} {:<10} {:>6} ms  {:>5}+{:<5} tok  {what}",
            step.index, step.agent, step.latency_ms, usage.prompt_tokens, usage.completion_tokens
        );
        if let Some(err) = &step.error {
            println!("      error: {}", super::shown(err));
        }
    }
}
