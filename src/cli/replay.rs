//! `recheck replay`: replay or fork one stored run, or fork many at once.

mod batch;

use std::sync::Arc;

use clap::Args;
use serde_json::json;

use super::eval::{finish, options, CliProgress, ModelArgs};
use recheck::{
    agents::AgentSet,
    eval::{self, Change, ForkOptions},
    home::Home,
    llm::ReplayModel,
    orchestrator::{AskChange, AskRecord, ForkModels},
    trace::{run_kind, RunId, TraceStore},
};

/// Arguments of `recheck replay`.
#[derive(Debug, Args)]
#[command(after_help = "Without --from-step, the run is re-run from its recorded model replies (no model \
calls) and compared with what was stored; exit code 1 if it differs.\n\
With --from-step K, recorded replies are reused before step K (see `traces show`), --change applies from \
there on, and the rest runs live; the fork is stored as a new run whose parent is the original.\n\
With --runs FILTER, every `ask`/`serve`/`verify` run the filter selects is forked with the same change, the forks \
are stored as one group, and a comparison (verdict flips, calls, tokens, with 95% intervals) is printed. \
FILTER: `all`, or key=value pairs joined by commas: kind=ask|serve|verify (default ask and serve), since=DATE, until=DATE, \
verdict=verified|refuted|unknown, model=TEXT, tag=NAME, limit=N (the newest N).\n\
Changes of ask/serve/verify runs: none, strategy=NAME, rounds=N, samples=N, candidates=N, judge=model|lexical, \
calibration=contextual|none|FILE, judge_model=SPEC, index=DIR, prompt.NAME=FILE (a prompt template), agent.NAME=FILE (an agent's config). \
Changes of experiments: none, wait, feedback=TEXT, inject=TEXT, feedback_mode=binary, rounds=N, \
temperature_step=X, reject_repeats=true, ...")]
pub struct ReplayArgs {
    /// The run id (or a unique prefix): an experiment, or an `ask`, `serve` or `verify` run.
    #[arg(required_unless_present = "runs", conflicts_with = "runs")]
    pub run: Option<String>,

    /// Fork every stored `ask`/`serve`/`verify` run FILTER selects (see below).
    #[arg(long, value_name = "FILTER")]
    pub runs: Option<String>,

    /// Fork: reuse recorded steps before this index, run the rest live. With --runs,
    /// default: reuse recorded replies until the first request that differs.
    #[arg(long, value_name = "K")]
    pub from_step: Option<u32>,

    /// The fork's change (see below).
    #[arg(long, value_name = "WHAT")]
    pub change: Option<String>,

    /// The fork's model for the live part; default: the recorded one.
    #[arg(long, short, value_name = "SPEC")]
    pub model: Option<String>,

    /// Model, agent and concurrency options (forks).
    #[command(flatten)]
    pub models: ModelArgs,

    /// With --runs: also write the comparison as an HTML page to FILE (`-` for stdout).
    #[arg(long, value_name = "FILE", requires = "runs")]
    pub html: Option<std::path::PathBuf>,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `recheck replay`.
pub(super) async fn run(home: &Home, args: ReplayArgs) -> anyhow::Result<()> {
    if args.from_step.is_none() && args.runs.is_none() && (args.change.is_some() || args.model.is_some()) {
        super::usage!("--change and --model make a fork: give --from-step K (or --runs FILTER)");
    }
    let store = super::open_store(home)?;
    if let Some(filter) = &args.runs {
        return batch::run(home, &store, filter, &args).await;
    }
    let Some(run) = &args.run else { super::usage!("give a run id, or --runs FILTER") };
    let id = store.resolve(run)?;
    let kind = store.run(id)?.map(|r| r.kind).unwrap_or_default();
    if kind == run_kind::ASK || kind == run_kind::SERVE || kind == run_kind::VERIFY {
        return replay_ask(home, &store, id, &args).await;
    }
    replay_experiment(home, &store, id, &args).await
}

/// The agents forks and replays run with (`--agents-dir`, `--prompts-dir`).
fn agents(args: &ReplayArgs) -> anyhow::Result<AgentSet> {
    Ok(args.models.dirs.load()?)
}

/// The change of an `ask`/`serve` fork, and the models it runs on (`live_spec` for
/// every agent; a judge model's own for `judge_model=SPEC`).
fn ask_change(home: &Home, args: &ReplayArgs, live_spec: &str) -> anyhow::Result<(AskChange, ForkModels)> {
    let change: AskChange = match &args.change {
        Some(c) => c.parse()?,
        None if args.model.is_some() => AskChange::None,
        None => super::usage!("a fork needs --change WHAT or --model SPEC (what the fork changes)"),
    };
    let mut models = ForkModels::live(args.models.server.open(home, live_spec)?);
    if let AskChange::JudgeModel(spec) = &change {
        models.judge = Some(args.models.server.open(home, spec)?);
    }
    Ok((change, models))
}

/// `recheck replay` of an `ask` or `serve` run: exact from its record, or a fork.
async fn replay_ask(home: &Home, store: &TraceStore, id: RunId, args: &ReplayArgs) -> anyhow::Result<()> {
    let agents = agents(args)?;
    if let Some(from_step) = args.from_step {
        return fork_ask(home, store, id, from_step, args, &agents).await;
    }
    let outcome = recheck::orchestrator::replay(store, id, &agents).await?;
    if args.json {
        super::print_json(&outcome)?;
    } else {
        println!(
            "replayed {} from its record ({} model calls): outcome {}",
            outcome.run_id,
            outcome.calls,
            if outcome.identical { "identical" } else { "DIFFERS" }
        );
        for d in &outcome.differences {
            println!("  {d}");
        }
    }
    if !outcome.identical {
        anyhow::bail!("the replay of {id} does not reproduce its outcome");
    }
    Ok(())
}

/// `recheck replay RUN --from-step K ...` of an `ask` or `serve` run.
async fn fork_ask(
    home: &Home,
    store: &TraceStore,
    id: RunId,
    from_step: u32,
    args: &ReplayArgs,
    agents: &AgentSet,
) -> anyhow::Result<()> {
    let record: AskRecord = store
        .run(id)?
        .and_then(|r| serde_json::from_value(r.config).ok())
        .ok_or_else(|| anyhow::anyhow!("run {id} has no ask config to fork"))?;
    let spec = args.model.clone().unwrap_or(record.model.spec);
    let (change, models) = ask_change(home, args, &spec)?;
    let fork = recheck::orchestrator::fork(store, id, from_step, &change, &models, agents).await?;
    if args.json {
        return super::print_json(&fork);
    }
    println!(
        "forked {} as {} from step {from_step} ({} recorded calls reused, then {spec} live): {} -> {}, answer {}",
        fork.parent,
        fork.run_id,
        fork.replayed_calls,
        fork.verified_before,
        fork.verified_after,
        if fork.answer_changed { "changed" } else { "unchanged" }
    );
    println!("{}", super::shown(&fork.outcome.answer));
    Ok(())
}

/// `recheck replay` of an experiment: exact, or a fork from a step.
async fn replay_experiment(home: &Home, store: &TraceStore, id: RunId, args: &ReplayArgs) -> anyhow::Result<()> {
    let experiment = eval::experiment(store, id)?;
    let Some(from_step) = args.from_step else {
        // Nothing is called live: any model call not in the record is an error.
        let recorded = Arc::new(ReplayModel::exact(experiment.model.clone(), vec![]));
        let opts = options(home, &args.models, recorded, &experiment.spec, &experiment.data_root)?;
        let outcome = eval::replay(store, id, &opts).await?;
        if args.json {
            super::print_json(&json!({
                "run_id": outcome.run_id, "identical": outcome.identical,
                "metrics": outcome.metrics, "differences": outcome.differences,
            }))?;
        } else {
            println!(
                "replayed {} from its record: metrics {}",
                outcome.run_id,
                if outcome.identical { "identical" } else { "DIFFER" }
            );
            for d in &outcome.differences {
                println!("  {d}");
            }
        }
        if !outcome.identical {
            anyhow::bail!("the replay of {id} does not reproduce its metrics");
        }
        return Ok(());
    };
    let change: Change = match &args.change {
        Some(c) => c.parse()?,
        None if args.model.is_some() => Change::None,
        None => super::usage!("--from-step needs --change WHAT or --model SPEC (what the fork changes)"),
    };
    let live_spec = args.model.clone().unwrap_or(experiment.model.spec);
    let live = args.models.server.open(home, &live_spec)?;
    let opts = options(home, &args.models, live.clone(), &experiment.spec, &experiment.data_root)?;
    let fork_opts = ForkOptions { from_step, change, model: Some(live) };
    let progress = CliProgress::new("fork");
    let run = eval::fork(store, id, &fork_opts, &opts, &progress).await?;
    finish(store, run, args.json, &live_spec)
}
