//! The command line: parses arguments, calls the library, prints results. Part of the
//! binary, not the library: library errors describe what went wrong, and the hints
//! that name flags are added here, in [`diagnose`], with the exit code.
//!
//! Exit codes: 0 success, 1 a run or command failed, 2 bad usage.

mod ask;
mod calibrate;
mod corpus;
mod eval;
mod model;
mod models;
mod otlp;
mod replay;
mod serve;
mod traces;
mod verify;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use recheck::{
    corpus::CorpusError,
    eval::EvalError,
    home::{Home, HomeError},
    llm::LlmError,
    trace::TraceError,
    Error,
};

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
    Traces(traces::TracesArgs),
    /// Build or update a passage index from JSONL files, directories or text files.
    Index(corpus::IndexArgs),
    /// Search an index for passages (bm25, dense or hybrid; optional MMR re-ranking).
    Search(corpus::SearchArgs),
    /// Fetch and list local model files.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Experiments: measure feedback friction, snowballing and the self-correction blind spot.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Re-run a stored run from its record (no model calls), fork it from a step with
    /// one change, or fork many stored `ask`/`serve` runs at once (--runs) and compare.
    Replay(replay::ReplayArgs),
    /// Serve an OpenAI-compatible API whose answers are verified, cited and stored.
    Serve(Box<serve::ServeArgs>),
    /// Verify answers recheck did not write (one, or a JSONL file of RAG records):
    /// claims, verdicts, evidence quotes and faithfulness, each record a stored run.
    Verify(Box<verify::VerifyArgs>),
    /// Fit the model judge's label calibration on labelled claims (for --calibration).
    Calibrate(Box<calibrate::CalibrateArgs>),
}

/// Run a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let home = Home::resolve(cli.home)?;
    // An index's vectors name their embedder by spec; it is opened from this home's
    // model cache (and, for openai:MODEL, the server OPENAI_BASE_URL names).
    recheck::embed::configure(recheck::embed::EmbedOptions {
        models_dir: home.models_dir(),
        base_url: std::env::var("OPENAI_BASE_URL").ok(),
        api_key: std::env::var("OPENAI_API_KEY").ok(),
    });
    match cli.command {
        Command::Ask(args) => ask::run(&home, args).await,
        Command::Traces(cmd) => traces::run(&home, cmd).await,
        Command::Model(cmd) => model::run(&home, cmd),
        Command::Index(args) => corpus::index(&home, args),
        Command::Search(args) => corpus::search(&home, args),
        Command::Eval(cmd) => eval::run(&home, cmd).await,
        Command::Replay(args) => replay::run(&home, args).await,
        Command::Serve(args) => serve::run(&home, *args).await,
        Command::Verify(args) => verify::run(&home, *args).await,
        Command::Calibrate(args) => calibrate::run(&home, *args).await,
    }
}

/// A command line that asks for something impossible (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Bail out of a command with a usage error.
macro_rules! usage {
    ($($arg:tt)*) => { return Err(crate::cli::UsageError(format!($($arg)*)).into()) };
}
pub(crate) use usage;

/// The hint to print after `err` (naming the flag or command that helps) and the
/// process exit code: 2 for bad usage, 1 for everything else.
pub fn diagnose(err: &anyhow::Error) -> (Option<&'static str>, i32) {
    let mut hint = None;
    let mut code = 1;
    for cause in err.chain() {
        let (h, usage) = classify(cause);
        hint = hint.or(h);
        if usage {
            code = 2;
        }
    }
    (hint, code)
}

/// A hint for one error in the chain, and whether it is a usage error: the library
/// says both of its own errors ([`Error::hint`], [`Error::is_usage`]).
fn classify(cause: &(dyn std::error::Error + 'static)) -> (Option<&'static str>, bool) {
    if cause.is::<UsageError>() || cause.is::<clap::Error>() {
        return (None, true);
    }
    if let Some(e) = cause.downcast_ref::<Error>() {
        return (e.hint(), e.is_usage());
    }
    if let Some(l) = cause.downcast_ref::<LlmError>() {
        return (recheck::llm_hint(l), matches!(l, LlmError::BadSpec { .. }));
    }
    if let Some(t) = cause.downcast_ref::<TraceError>() {
        return (recheck::trace_hint(t), false);
    }
    if let Some(c) = cause.downcast_ref::<CorpusError>() {
        return (recheck::corpus_hint(c), recheck::corpus_is_usage(c));
    }
    if let Some(e) = cause.downcast_ref::<recheck::embed::EmbedError>() {
        return match e {
            recheck::embed::EmbedError::Corpus(c) => (recheck::corpus_hint(c), recheck::corpus_is_usage(c)),
            recheck::embed::EmbedError::BadSpec { .. } => (None, true),
            _ => (None, false),
        };
    }
    if let Some(v) = cause.downcast_ref::<EvalError>() {
        return (recheck::eval_hint(v), matches!(v, EvalError::BadChange { .. }));
    }
    if cause.is::<HomeError>() {
        return (Some(recheck::HOME_HINT), false);
    }
    (None, false)
}

/// A library error as the command line says it: a refused setting names its flag
/// (`temperature_step` is `--temperature-step`, `decompose` is `--no-decompose`).
pub(crate) fn flagged(e: Error) -> anyhow::Error {
    match e {
        Error::BadSetting { setting, problem } => {
            let flag = match setting.as_str() {
                "decompose" => "no-decompose".to_string(),
                "tags" => "tag".to_string(),
                other => other.replace('_', "-"),
            };
            UsageError(format!("--{flag} {problem}")).into()
        }
        other => other.into(),
    }
}

/// The parser of a flag that sets how much is in flight at once (`--concurrency`,
/// `--max-in-flight`): 1 to 65,536. Larger values would exceed what a tokio semaphore
/// holds (found by the second adversarial round) and buy nothing on any machine.
fn in_flight() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..=recheck::MAX_IN_FLIGHT as u64)
}

/// A duration flag's value: seconds in (0, 86400]. Up to a day, because a larger value
/// would not fit a `Duration` (found by a property test); NaN and infinities refused.
fn seconds(flag: &str, value: f64) -> anyhow::Result<std::time::Duration> {
    if !(value > 0.0 && value <= 86_400.0) {
        usage!("{flag} must be a number of seconds in (0, 86400], got {value}");
    }
    Ok(std::time::Duration::from_secs_f64(value))
}

/// Open the trace store for reading: the store itself, or, when another process holds
/// it or it cannot be opened for writing, a snapshot of it (said on stderr).
fn open_store_for_reading(home: &Home) -> anyhow::Result<recheck::trace::TraceStore> {
    match open_store(home) {
        Ok(store) => Ok(store),
        // A damaged store reads no better from a copy.
        Err(e) if is_damaged(&e) => Err(e),
        Err(e) if home.traces_dir().is_dir() => {
            let store = recheck::trace::TraceStore::open_snapshot(home.traces_dir()).map_err(|_| e)?;
            eprintln!("(the store is busy or read-only: reading a snapshot of it as of now)");
            Ok(store)
        }
        Err(e) => Err(e),
    }
}

fn is_damaged(e: &anyhow::Error) -> bool {
    e.chain().any(|c| matches!(c.downcast_ref::<TraceError>(), Some(TraceError::Damaged { .. })))
}

/// Open the trace store under `home`, creating the home directory if needed.
fn open_store(home: &Home) -> anyhow::Result<recheck::trace::TraceStore> {
    home.ensure()?;
    Ok(recheck::trace::TraceStore::open(home.traces_dir())?)
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

/// `text` made safe for a terminal: control characters other than newline and tab,
/// and the bidirectional overrides, are shown escaped (`\u{1b}`), so a model's reply or
/// a document cannot move the cursor, ring the bell or reorder what the user reads.
/// JSON output is not passed through this: it stays exact.
pub(crate) fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .map(|c| if unsafe_char(c) { c.escape_unicode().to_string() } else { c.to_string() })
        .collect::<String>()
        .into()
}

/// Print `value` as one line of JSON.
/// The output of a command that can print text, JSON (`json`) and write an HTML page
/// (`html`, `-` for standard output): the page first, then JSON or text.
fn print_report<T: serde::Serialize>(
    value: &T,
    json: bool,
    html: Option<&std::path::Path>,
    text: impl FnOnce(&T) -> String,
    page: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    if let Some(path) = html {
        let page = page(value);
        recheck::trace::write_output(path, |w| std::io::Write::write_all(w, page.as_bytes()))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        if !json && path.as_os_str() != "-" {
            eprintln!("wrote {}", path.display());
        }
    }
    if json {
        return print_json(value);
    }
    print!("{}", text(value));
    Ok(())
}

fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_text_has_no_live_control_characters() {
        assert_eq!(shown("plain\ttext\nline"), "plain\ttext\nline");
        let hostile = "ok\u{1b}[2J\u{7}\u{0}\u{202e}evil";
        let out = shown(hostile);
        assert!(!out.chars().any(|c| c.is_control() && c != '\n' && c != '\t'), "{out:?}");
        assert!(out.contains("\\u{1b}[2J") && out.contains("\\u{202e}evil"), "{out}");
    }
}
