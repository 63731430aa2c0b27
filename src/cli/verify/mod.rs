//! `recheck verify`: check and attribute answers recheck did not write, one given on
//! the command line or a JSONL file of them, through the same verification `ask` ends
//! with. A batch is one stored group run (`verify-batch`) with one `verify` run a record.

mod batch;
mod page;
pub(super) mod records;

pub(super) use batch::{verify_records, Verifier};

use std::{path::PathBuf, sync::Arc};

use clap::Args;
use serde_json::json;

use recheck::{
    files::FileKind,
    home::Home,
    orchestrator::{AskOptions, ClaimUnit, Context, GivenAnswer, JudgeChoice, Settings, VerifyOutcome},
    trace::TraceStore,
};

/// Arguments of `recheck verify`.
#[derive(Debug, Args)]
#[command(after_help = "Input records (JSONL, one a line; the format is detected per file and said on stderr):\n  \
    recheck:  {\"id\"?, \"question\"?, \"answer\", \"contexts\"?: [string | {\"id\", \"text\"}]}\n  \
    RAGAS:    {\"user_input\", \"response\", \"retrieved_contexts\"}\n  \
    DeepEval: {\"input\", \"actual_output\", \"retrieval_context\"}\n\
A record that fails is an error row naming its line; the batch goes on, and the exit \
code is 1 afterwards unless --skip-bad.")]
pub struct VerifyArgs {
    /// A JSONL file of records to verify (instead of --answer).
    #[arg(value_name = "RECORDS.jsonl", required_unless_present = "answer", conflicts_with = "answer")]
    pub records: Option<PathBuf>,

    /// The answer to verify.
    #[arg(long, value_name = "TEXT")]
    pub answer: Option<String>,

    /// The question it answers (the tool-checker reads a yes/no against it).
    #[arg(long, value_name = "TEXT", requires = "answer")]
    pub question: Option<String>,

    /// A file holding one context the answer was written from (repeatable; `-` reads
    /// standard input).
    #[arg(long = "context", value_name = "FILE", requires = "answer")]
    pub contexts: Vec<PathBuf>,

    /// Where the results go, one JSON object a record in input order (`-` standard
    /// output, the default). A file is replaced only once every record is written.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Model spec for the decomposer and the judge (as `ask`'s).
    #[arg(long, short, default_value = "local", value_name = "SPEC")]
    pub model: String,

    /// A corpus index whose passages are evidence after the record's own contexts.
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,

    /// How --index is searched.
    #[command(flatten)]
    pub retrieval: super::corpus::RetrievalArgs,

    /// Judge of claims against evidence: model (agents/judge.toml) or lexical.
    #[arg(long, default_value = "model", value_parser = recheck::orchestrator::parse_judge)]
    pub judge: JudgeChoice,

    /// Check only the claims the tool-checker's patterns find (no decomposer call).
    #[arg(long, conflicts_with = "claims")]
    pub no_decompose: bool,

    /// What a claim is: `atomic` (the decomposer's, one model call), `sentences` (the
    /// answer's sentences) or `whole` (the answer is one claim, as in SciFact).
    #[arg(long, default_value = "atomic", value_name = "UNIT")]
    pub claims: ClaimUnit,

    /// Correct the model judge's label prior: `contextual`, a file from `recheck
    /// calibrate`, or `none`. Default: agents/judge.toml's `calibration`, else none.
    #[arg(long, value_name = "contextual|FILE|none")]
    pub calibration: Option<String>,

    /// Self-consistency: draw N answers to the record's question (temperature 0.7) and
    /// judge each claim no context settled against them; a record with no question
    /// is an error row.
    #[arg(long, default_value_t = 0, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=32))]
    pub samples: u32,

    /// Score ALCE citation recall and precision of the cited answer (judge calls for
    /// each cited sentence).
    #[arg(long)]
    pub citation_quality: bool,

    /// Self-contradiction: judge every pair of the answer's claims (the first 8).
    #[arg(long)]
    pub contradictions: bool,

    /// Seed for sampled calls, recorded in the trace.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Records verified at once, 1 to 65536.
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = super::in_flight())]
    pub concurrency: usize,

    /// The longest answer verified, in characters; a longer one is an error row.
    #[arg(long, default_value_t = 20_000, value_name = "CHARS")]
    pub max_answer_chars: usize,

    /// Where a field is in records of another shape: NAME=PATH, NAME one of id,
    /// question, answer, contexts, PATH dotted (`output.text`, `docs.0`); repeatable.
    #[arg(long = "field", value_name = "NAME=PATH", value_parser = records::parse_field)]
    pub fields: Vec<(records::Field, String)>,

    /// Also write the batch as an HTML page to FILE: the summary with its intervals,
    /// each record's verdict, faithfulness and claims with their quotes.
    #[arg(long, value_name = "FILE", requires = "records")]
    pub html: Option<PathBuf>,

    /// Exit 0 even when some records failed (their error rows are still written).
    #[arg(long)]
    pub skip_bad: bool,

    /// Resume batch run BATCH (after a crash or kill -9) over the same records: the
    /// records it finished are read back from the store, the rest verified, each once.
    #[arg(long, value_name = "BATCH", requires = "records")]
    pub resume: Option<String>,

    /// Agent configs and prompt templates.
    #[command(flatten)]
    pub dirs: super::models::AgentDirs,

    /// Server, key, timeout and retries for `openai:` models.
    #[command(flatten)]
    pub server: super::models::ServerArgs,

    /// Print JSON (one answer: one object; a batch: one object a record).
    #[arg(long)]
    pub json: bool,
}

pub(super) async fn run(home: &Home, args: VerifyArgs) -> anyhow::Result<()> {
    let options = options(&args, |spec| args.server.open(home, spec))?;
    let model = args.server.open(home, &args.model)?;
    recheck::orchestrator::check_judge(&options, model.as_ref()).map_err(super::flagged)?;
    let store = match super::open_store(home) {
        Ok(store) => store,
        Err(e) => match serving(home) {
            // The store is held by a server: say where the same verification runs.
            Some(url) => anyhow::bail!(
                "{e:#}; it is held by `recheck serve` at {url}: POST the records to {url}/recheck/v1/verify, or stop the server"
            ),
            None => return Err(e),
        },
    };
    match &args.records {
        None => one(&store, model, &args, &options).await,
        Some(file) => batch::batch(&store, model, &args, &options, file).await,
    }
}

/// The URL of the `recheck serve` that announced itself on this home, if any.
fn serving(home: &Home) -> Option<String> {
    let text = std::fs::read(recheck::home::serve_file(home)).ok()?;
    serde_json::from_slice::<recheck::home::ServeFile>(&text).ok().map(|f| f.url)
}

/// The verification options these flags describe (`ask`'s, with no loop; an agent's
/// own model, as in `ask`, opened with `open`).
fn options(
    args: &VerifyArgs,
    open: impl Fn(&str) -> anyhow::Result<Arc<dyn recheck::ChatModel>>,
) -> anyhow::Result<AskOptions> {
    let settings = Settings {
        index: args.index.clone(),
        retrieval: args.retrieval.retrieval,
        alpha: args.retrieval.alpha,
        embedder: args.retrieval.embedder.clone(),
        agents_dir: args.dirs.agents_dir.clone(),
        prompts_dir: args.dirs.prompts_dir.clone(),
        judge: args.judge,
        samples: args.samples,
        contradictions: args.contradictions,
        decompose: !args.no_decompose,
        claims: args.claims,
        citation_quality: args.citation_quality,
        calibration: args.calibration.clone(),
        seed: args.seed,
        ..Settings::default()
    };
    settings.verify_options(&|spec| open(spec).map_err(super::ask::library)).map_err(super::flagged)
}

/// `recheck verify --answer ...`.
async fn one(
    store: &TraceStore,
    model: Arc<dyn recheck::ChatModel>,
    args: &VerifyArgs,
    options: &AskOptions,
) -> anyhow::Result<()> {
    let mut contexts = Vec::new();
    for file in &args.contexts {
        let text = if file.as_os_str() == "-" {
            recheck::files::read_stdin(FileKind::Document).map_err(|e| anyhow::anyhow!("--context -: {}", e.problem))?
        } else {
            recheck::files::read_to_string(file, FileKind::Document).map_err(|e| anyhow::anyhow!("--context {e}"))?
        };
        contexts.push(Context { id: Some(file.display().to_string()), text });
    }
    let answer = args.answer.clone().unwrap_or_default();
    if answer.chars().count() > args.max_answer_chars {
        super::usage!("--answer is longer than --max-answer-chars ({})", args.max_answer_chars);
    }
    let given = GivenAnswer { id: None, question: args.question.clone(), answer, contexts };
    let outcome = recheck::verify(store, model, &given, options).await?;
    if args.json || args.out.is_some() {
        let line = serde_json::to_string(&recheck::orchestrator::verify_row(&json!(outcome)))?;
        let out = args.out.clone().unwrap_or_else(|| PathBuf::from("-"));
        return recheck::trace::write_output(&out, |w| writeln!(w, "{line}"))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()));
    }
    print_text(&outcome);
    Ok(())
}

/// The verdict, the cited answer, each span's checks (as `ask` prints them) and the
/// quotes from the record's contexts that decided claims.
fn print_text(o: &VerifyOutcome) {
    let faithfulness = o.faithfulness.map_or_else(|| "undefined (no claims)".to_string(), |f| format!("{f:.2}"));
    let claims = &o.outcome.claims;
    println!("{}; faithfulness {faithfulness}\n", super::ask::verdict_line(o.outcome.verified, claims));
    println!("{}", super::shown(&o.outcome.cited_answer));
    super::ask::print_claims(claims);
    let quoted: Vec<_> = claims.iter().zip(&o.quotes).filter(|(_, q)| !q.is_empty()).collect();
    if !quoted.is_empty() {
        println!("\nEvidence:");
    }
    for (c, quotes) in quoted {
        for q in quotes {
            println!("  {}  <-  context {}: \"{}\"", super::shown(&c.text), q.context, super::shown(&q.quote));
        }
    }
    eprintln!("(run {}, {} model calls)", o.outcome.trace_id, o.outcome.model_calls);
}
