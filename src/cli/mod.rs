//! The command line: parses arguments, calls the library, prints results.
//!
//! Exit codes: 0 success, 1 a run or command failed, 2 bad usage.

mod ask;
mod corpus;
mod eval;
mod model;
mod models;
mod traces;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::home::Home;

/// recheck: verified, cited, replayable answers from language models.
#[derive(Debug, Parser)]
#[command(name = "recheck", version, about, long_about = None, after_help = "Exit codes: 0 success, 1 failure, 2 bad usage.")]
pub struct Cli {
    /// Directory holding all state: trace store, model cache, indexes.
    /// Default: the platform data dir (e.g. ~/.local/share/recheck).
    #[arg(long, global = true, env = "RECHECK_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// More log output on stderr (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ask a model a question; the run is recorded in the trace store.
    Ask(ask::AskArgs),
    /// List, show, export and import recorded runs.
    #[command(subcommand)]
    Traces(traces::TracesCommand),
    /// Build or update a passage index from JSONL files, directories or text files.
    Index(corpus::IndexArgs),
    /// Search an index for passages (BM25, optional MMR re-ranking).
    Search(corpus::SearchArgs),
    /// Fetch and list local model files.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Experiments: measure feedback friction, snowballing and the self-correction blind spot.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Re-run a stored experiment from its record (no model calls), or fork it from a step.
    Replay(eval::ReplayArgs),
}

/// Run a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let home = Home::resolve(cli.home)?;
    match cli.command {
        Command::Ask(args) => ask::run(&home, args).await,
        Command::Traces(cmd) => traces::run(&home, cmd).await,
        Command::Model(cmd) => model::run(&home, cmd),
        Command::Index(args) => corpus::index(&home, args),
        Command::Search(args) => corpus::search(&home, args),
        Command::Eval(cmd) => eval::run(&home, cmd).await,
        Command::Replay(args) => eval::replay(&home, args).await,
    }
}

/// Open the trace store under `home`, creating the home directory if needed.
fn open_store(home: &Home) -> anyhow::Result<crate::trace::TraceStore> {
    home.ensure()?;
    Ok(crate::trace::TraceStore::open(home.traces_dir())?)
}

/// A progress bar on stderr; indicatif hides it when stderr is not a terminal.
fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({per_sec}, eta {eta})") {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar
}

/// Print `value` as one line of JSON.
fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
