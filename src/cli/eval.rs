//! `recheck eval`: run, resume, report, list.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Instant,
};

use clap::{Args, Subcommand};
use serde_json::json;

use super::models::ServerArgs;
use recheck::{
    analysis::{self, render_html, render_text},
    eval::{self, EvalSpec, Progress, RunOptions},
    home::Home,
    llm::ChatModel,
    trace::{RunId, TraceStore},
};

/// `recheck eval` subcommands.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Run an experiment spec (evals/*.toml) over its datasets; prints the run id.
    Run(RunArgs),
    /// Continue an interrupted experiment without redoing finished items.
    Resume(ResumeArgs),
    /// Compute an experiment's metrics from its stored traces and print them.
    Report(ReportArgs),
    /// List stored experiments.
    List(ListArgs),
    /// Put several experiments of one spec (other models, or a fork) side by side:
    /// every metric with its interval, and each pair's flips with McNemar's test.
    Compare(CompareArgs),
}

/// Arguments of `recheck eval compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Two or more experiment run ids (or unique prefixes) of one protocol.
    #[arg(required = true, num_args = 2.., value_name = "RUN")]
    pub runs: Vec<String>,

    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,

    /// Also write it as an HTML page to FILE (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// Model, agents and concurrency of an experiment.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Agent configs and prompt templates.
    #[command(flatten)]
    pub dirs: super::models::AgentDirs,

    /// Items in flight at once, 1 to 65536 (on the embedded model they decode together, up
    /// to its `--sequences`).
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = super::in_flight())]
    pub concurrency: usize,

    /// Server options for `openai:` models.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Arguments of `recheck eval run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The experiment spec (TOML), e.g. evals/friction.toml.
    pub spec: PathBuf,

    /// Model spec: `local`, `local:/path.gguf`, `openai:MODEL`, or `sim:PARAMS` (the
    /// simulator for checking analyses, not a model).
    #[arg(long, short, default_value = "local", value_name = "SPEC")]
    pub model: String,

    /// The first N items of each dataset.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,

    /// Where the spec's dataset paths point.
    #[arg(long, env = "RECHECK_DATA_ROOT", default_value = "../shared/evals", value_name = "DIR")]
    pub data_root: PathBuf,

    /// Model, agent and concurrency options.
    #[command(flatten)]
    pub models: ModelArgs,

    /// OpenTelemetry export of each item's run as it finishes.
    #[command(flatten)]
    pub otlp: super::otlp::OtlpArgs,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `recheck eval resume`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The experiment's run id (or a unique prefix).
    pub run: String,

    /// Model spec; default: the one the experiment recorded.
    #[arg(long, short, value_name = "SPEC")]
    pub model: Option<String>,

    /// Model, agent and concurrency options.
    #[command(flatten)]
    pub models: ModelArgs,

    /// OpenTelemetry export of each item's run as it finishes.
    #[command(flatten)]
    pub otlp: super::otlp::OtlpArgs,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `recheck eval report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The experiment's run id (or a unique prefix).
    pub run: String,

    /// Print `{"run_id", "protocol", "n", "metrics": {NAME: {"value", "low", "high", "n"}}, ...}`.
    #[arg(long)]
    pub json: bool,

    /// Also write a self-contained HTML report with plots to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// Arguments of `recheck eval list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// One JSON object a line.
    #[arg(long)]
    pub json: bool,
}

/// Run an `eval` subcommand.
pub(super) async fn run(home: &Home, cmd: EvalCommand) -> anyhow::Result<()> {
    match cmd {
        EvalCommand::Run(args) => run_spec(home, args).await,
        EvalCommand::Resume(args) => resume(home, args).await,
        EvalCommand::Report(args) => report(home, args),
        EvalCommand::List(args) => list(home, args),
        EvalCommand::Compare(args) => compare(home, args),
    }
}

/// Run options for an experiment of `spec` whose data is under `data_root`.
pub(super) fn options(
    home: &Home,
    args: &ModelArgs,
    model: Arc<dyn ChatModel>,
    spec: &EvalSpec,
    data_root: &std::path::Path,
) -> anyhow::Result<RunOptions> {
    let agents = args.dirs.load()?;
    let open = |spec: &str| args.server.open(home, spec).map_err(super::ask::library);
    let progress = |line: &str| eprintln!("{line}");
    Ok(RunOptions::for_spec(spec, data_root, home, model, agents, &open, args.concurrency, &progress)?)
}

async fn run_spec(home: &Home, args: RunArgs) -> anyhow::Result<()> {
    let spec = EvalSpec::load(&args.spec)?;
    let model = args.models.server.open(home, &args.model)?;
    let opts = options(home, &args.models, model, &spec, &args.data_root)?;
    let store = super::open_store(home)?;
    let exporter = args.otlp.live(&store)?;
    let progress = CliProgress::new(&spec.name);
    let run = eval::start(&store, &spec, &args.data_root, args.limit, &opts, &progress).await;
    super::otlp::finish(exporter, None);
    finish(&store, run?, args.json, &args.model)
}

async fn resume(home: &Home, args: ResumeArgs) -> anyhow::Result<()> {
    let store = super::open_store(home)?;
    let id = store.resolve(&args.run)?;
    let experiment = eval::experiment(&store, id)?;
    let spec = args.model.unwrap_or(experiment.model.spec);
    let model = args.models.server.open(home, &spec)?;
    let opts = options(home, &args.models, model, &experiment.spec, &experiment.data_root)?;
    let exporter = args.otlp.live(&store)?;
    let progress = CliProgress::new(&experiment.name);
    let run = eval::resume(&store, id, &opts, &progress).await;
    super::otlp::finish(exporter, None);
    finish(&store, run?, args.json, &spec)
}

pub(super) fn finish(store: &TraceStore, run: eval::EvalRun, json_out: bool, model: &str) -> anyhow::Result<()> {
    if let Some(why) = &run.first_error {
        eprintln!("{} item(s) failed; the first: {}", run.failed, super::shown(why));
    }
    if run.completed() == 0 {
        anyhow::bail!(
            "experiment {}: no item completed ({} failed), so it measured nothing; the first failure: {}",
            run.run_id,
            run.failed,
            run.first_error.as_deref().unwrap_or("unknown")
        );
    }
    if json_out {
        let mut v = serde_json::to_value(&run)?;
        v["model"] = json!(model);
        return super::print_json(&v);
    }
    let report = analysis::compute(store, run.run_id)?;
    eprintln!(
        "{} items: {} ran now, {} done before, {} failed. Report: recheck eval report {}",
        run.items, run.ran, run.skipped, run.failed, run.run_id
    );
    eprint!("{}", render_text(&report));
    println!("{}", run.run_id);
    Ok(())
}

fn report(home: &Home, args: ReportArgs) -> anyhow::Result<()> {
    let store = super::open_store_for_reading(home)?;
    let id = store.resolve(&args.run)?;
    let report = analysis::compute(&store, id)?;
    super::print_report(&report, args.json, args.html.as_deref(), render_text, render_html)
}

fn compare(home: &Home, args: CompareArgs) -> anyhow::Result<()> {
    let store = super::open_store_for_reading(home)?;
    let ids = args.runs.iter().map(|r| store.resolve(r)).collect::<Result<Vec<_>, _>>()?;
    let comparison = analysis::compare_runs(&store, &ids)?;
    let (text, page) = (analysis::render_comparison_text, analysis::render_comparison_html);
    super::print_report(&comparison, args.json, args.html.as_deref(), text, page)
}

fn list(home: &Home, args: ListArgs) -> anyhow::Result<()> {
    let store = super::open_store_for_reading(home)?;
    for e in eval::experiments(&store)? {
        if args.json {
            super::print_json(&json!({
                "run_id": e.run_id, "name": e.name, "protocol": e.protocol, "model": e.model.spec,
                "items": e.items, "status": e.status, "parent": e.parent, "started_at": e.started_at,
            }))?;
        } else {
            println!(
                "{}  {:<10} {:<10} {:<24} {:>5} items  {}{}",
                e.run_id,
                e.name,
                e.protocol,
                e.model.spec,
                e.items,
                e.status,
                e.parent.map(|p| format!("  fork of {p}")).unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// A progress bar on a terminal; plain lines otherwise.
pub(super) struct CliProgress {
    name: String,
    state: Mutex<ProgressState>,
}

struct ProgressState {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    done: usize,
    correct: usize,
    graded: usize,
    started: Instant,
    ran: usize,
}

impl CliProgress {
    pub(super) fn new(name: &str) -> Self {
        let state =
            ProgressState { bar: None, total: 0, done: 0, correct: 0, graded: 0, started: Instant::now(), ran: 0 };
        Self { name: name.to_string(), state: Mutex::new(state) }
    }
}

impl Progress for CliProgress {
    fn start(&self, run: RunId, total: usize, done: usize) {
        let Ok(mut s) = self.state.lock() else { return };
        (s.total, s.done, s.started) = (total, done, Instant::now());
        eprintln!("experiment {run} ({}): {total} items, {done} already done", self.name);
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let bar = super::progress_bar(total as u64, &self.name);
            bar.set_position(done as u64);
            s.bar = Some(bar);
        }
    }

    fn item(&self, correct: Option<bool>) {
        let Ok(mut s) = self.state.lock() else { return };
        s.done += 1;
        s.ran += 1;
        if let Some(c) = correct {
            s.graded += 1;
            s.correct += usize::from(c);
        }
        let accuracy = if s.graded > 0 { s.correct as f64 / s.graded as f64 } else { 0.0 };
        match &s.bar {
            Some(bar) => {
                bar.set_message(format!("{} acc {accuracy:.2}", self.name));
                bar.inc(1);
            }
            None => {
                let every = (s.total / 20).max(1);
                if s.done % every == 0 || s.done == s.total {
                    let rate = s.ran as f64 / s.started.elapsed().as_secs_f64().max(1e-9);
                    let eta = (s.total - s.done) as f64 / rate.max(1e-9);
                    eprintln!(
                        "{}/{} items, {rate:.2} items/s, eta {eta:.0} s, running accuracy {accuracy:.3}",
                        s.done, s.total
                    );
                }
            }
        }
    }

    fn finish(&self) {
        if let Ok(s) = self.state.lock() {
            if let Some(bar) = &s.bar {
                bar.finish_and_clear();
            }
        }
    }
}
