//! `recheck verify`: check and attribute answers recheck did not write, one given on
//! the command line or a JSONL file of them, through the same verification `ask` ends
//! with. A batch is one stored group run (`verify-batch`) with one `verify` run a record.

mod page;
pub(super) mod records;

use std::{path::PathBuf, sync::Arc};

use clap::Args;
use serde_json::{json, Value};

use recheck::{
    files::FileKind,
    home::Home,
    orchestrator::{AskOptions, ClaimUnit, Context, GivenAnswer, JudgeChoice, VerifyOptions, VerifyOutcome},
    trace::{run_kind, GroupSlot, RunStatus, TraceStore},
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

    /// Judge of claims against evidence: model (agents/judge.toml) or lexical.
    #[arg(long, default_value = "model", value_parser = super::ask::parse_judge)]
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

    /// Directory overriding agents/*.toml files (default: built-in configs).
    #[arg(long, value_name = "DIR")]
    pub agents_dir: Option<PathBuf>,

    /// Directory overriding prompts/*.j2 templates (default: built-in prompts).
    #[arg(long, value_name = "DIR")]
    pub prompts_dir: Option<PathBuf>,

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
    super::calibrate::check_judge(&options, model.as_ref())?;
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
        Some(file) => batch(&store, model, &args, &options, file).await,
    }
}

/// The URL of the `recheck serve` that announced itself on this home, if any.
fn serving(home: &Home) -> Option<String> {
    let text = std::fs::read(super::serve::serve_file(home)).ok()?;
    serde_json::from_slice::<super::serve::ServeFile>(&text).ok().map(|f| f.url)
}

/// The verification options these flags describe (`ask`'s, with no loop; an agent's
/// own model, as in `ask`, opened with `open`).
fn options(
    args: &VerifyArgs,
    open: impl Fn(&str) -> anyhow::Result<Arc<dyn recheck::ChatModel>>,
) -> anyhow::Result<AskOptions> {
    let agents = recheck::agents::AgentSet::load(args.agents_dir.as_deref(), args.prompts_dir.as_deref())?;
    let mut options = super::ask::agent_options(agents, args.index.as_deref(), open)?;
    options.loop_options.seed = args.seed;
    options.verify = VerifyOptions {
        decompose: !args.no_decompose,
        claims: args.claims,
        judge: args.judge,
        calibration: super::calibrate::resolve(args.calibration.as_deref(), &options.agents)?,
        citation_quality: args.citation_quality,
        samples: args.samples,
        contradictions: args.contradictions,
        ..Default::default()
    };
    Ok(options)
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

/// `recheck verify RECORDS.jsonl`.
async fn batch(
    store: &TraceStore,
    model: Arc<dyn recheck::ChatModel>,
    args: &VerifyArgs,
    options: &AskOptions,
    file: &std::path::Path,
) -> anyhow::Result<()> {
    let (records, format) = records::read(file, args.max_answer_chars, &args.fields)?;
    eprintln!(
        "reading {} as {} records ({}, {}, {}): {} records",
        file.display(),
        format.name,
        format.question,
        format.answer,
        format.contexts,
        records.len()
    );
    let (group, mut rows) = match &args.resume {
        None => {
            let input = json!({ "file": file.display().to_string(), "format": format.name, "records": records.len() });
            let config = recheck::orchestrator::AskRecord::of(options, recheck::llm::identity(model.as_ref()));
            let group = store.create_run(run_kind::VERIFY_BATCH, input, json!(config), None).await?.id;
            (group, vec![None; records.len()])
        }
        Some(batch) => resumed(store, batch, &records).await?,
    };
    verify_records(store, model, options, records, group, &mut rows, args.concurrency, "verifying").await?;
    let rows: Vec<Value> = rows.into_iter().flatten().collect();
    let summary = summarise(&rows);
    store.finish_run(group, RunStatus::Completed, Some(summary.clone()), None).await?;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("-"));
    recheck::trace::write_output(&out, |w| {
        for row in &rows {
            writeln!(w, "{row}")?;
        }
        Ok(())
    })
    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
    if let Some(html) = &args.html {
        let page = page::render(&rows, &summary, &group.to_string(), &file.display().to_string());
        recheck::trace::write_output(html, |w| w.write_all(page.as_bytes()))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", html.display()))?;
    }
    let failed = summary["failed"].as_u64().unwrap_or(0);
    eprintln!(
        "{} records: {} checked, {} failed; verified share {}, mean faithfulness {} (batch run {})",
        rows.len(),
        rows.len() as u64 - failed,
        failed,
        shown_interval(&summary["verified_share"]),
        shown_interval(&summary["mean_faithfulness"]),
        group
    );
    if failed > 0 && !args.skip_bad {
        anyhow::bail!("{failed} records could not be verified (see their error rows); --skip-bad exits 0");
    }
    Ok(())
}

/// Verify each record whose row is still `None` as slot `i` of group run `group`,
/// `concurrency` at once, filling its row (an error row for a record that failed);
/// a progress bar counts them with the running mean faithfulness.
pub(super) async fn verify_records(
    store: &TraceStore,
    model: Arc<dyn recheck::ChatModel>,
    options: &AskOptions,
    records: Vec<records::Record>,
    group: recheck::trace::RunId,
    rows: &mut [Option<Value>],
    concurrency: usize,
    what: &str,
) -> anyhow::Result<()> {
    let bar = super::progress_bar(records.len() as u64, what);
    let mut running = Running::default();
    for row in rows.iter().flatten() {
        running.add(row);
    }
    bar.inc(running.rows);
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    let mut finished = |done: (usize, usize, Option<String>, recheck::Result<VerifyOutcome>), rows: &mut [Option<Value>]| {
        let slot = done.0;
        finish_row(done, rows);
        if let Some(row) = &rows[slot] {
            running.add(row);
        }
        bar.set_message(format!("{what} (faithfulness {})", running.mean()));
        bar.inc(1);
    };
    for (slot, records::Record { line, id, given, .. }) in records.into_iter().enumerate() {
        if rows[slot].is_some() {
            continue;
        }
        let given = match given {
            Ok(g) => g,
            Err(why) => {
                rows[slot] = Some(json!({ "id": id, "line": line, "error": why }));
                bar.inc(1);
                continue;
            }
        };
        let permit = gate.clone().acquire_owned().await?;
        let (store, model) = (store.clone(), model.clone());
        let mut options = options.clone();
        options.group = Some(GroupSlot { run: group, index: slot as u32 });
        tasks.spawn(async move {
            let outcome = recheck::verify(&store, model, &given, &options).await;
            drop(permit);
            (slot, line, given.id, outcome)
        });
        while let Some(done) = tasks.try_join_next() {
            finished(done?, rows);
        }
    }
    while let Some(done) = tasks.join_next().await {
        finished(done?, rows);
    }
    bar.finish_and_clear();
    Ok(())
}

/// The running mean faithfulness of the rows so far, for the progress bar.
#[derive(Default)]
struct Running {
    rows: u64,
    sum: f64,
    scored: u32,
}

impl Running {
    fn add(&mut self, row: &Value) {
        self.rows += 1;
        if let Some(f) = row["faithfulness"].as_f64() {
            self.sum += f;
            self.scored += 1;
        }
    }

    fn mean(&self) -> String {
        match self.scored {
            0 => "-".into(),
            n => format!("{:.3}", self.sum / f64::from(n)),
        }
    }
}

/// Batch run `batch` reopened, with the rows of the records it finished read back from
/// their runs. Its finished records must be the file's at the same places.
async fn resumed(
    store: &TraceStore,
    batch: &str,
    records: &[records::Record],
) -> anyhow::Result<(recheck::trace::RunId, Vec<Option<Value>>)> {
    let id = store.resolve(batch)?;
    let run = store.run(id)?.ok_or_else(|| anyhow::anyhow!("run {id} vanished"))?;
    if run.kind != run_kind::VERIFY_BATCH {
        super::usage!("--resume {batch}: run {id} is a `{}` run, not a verify batch", run.kind);
    }
    let mut rows = vec![None; records.len()];
    for (slot, member) in store.members(id)? {
        let Some(stored) = store.run(member)?.filter(|r| r.status == RunStatus::Completed) else { continue };
        let Some(records::Record { id: record_id, .. }) = records.get(slot as usize) else {
            super::usage!("--resume {batch}: the batch has a record {slot} that this file does not; give the same file")
        };
        let output = stored.output.unwrap_or_default();
        if output["id"].as_str() != Some(record_id.as_str()) {
            super::usage!(
                "--resume {batch}: record {} of the batch has id {}, the file's has {record_id:?}; give the same file",
                slot + 1,
                output["id"]
            );
        }
        rows[slot as usize] = Some(recheck::orchestrator::verify_row(&output));
    }
    store.reopen_run(id).await?;
    let done = rows.iter().filter(|r| r.is_some()).count();
    eprintln!("resuming batch {id}: {done} records already verified, {} to go", records.len() - done);
    Ok((id, rows))
}

fn finish_row(
    (slot, line, id, outcome): (usize, usize, Option<String>, recheck::Result<VerifyOutcome>),
    rows: &mut [Option<Value>],
) {
    rows[slot] = Some(match outcome {
        Ok(o) => recheck::orchestrator::verify_row(&json!(o)),
        Err(e) => json!({ "id": id, "line": line, "error": e.to_string() }),
    });
}

/// The batch's verified share and mean faithfulness, each with a 95% interval.
fn summarise(rows: &[Value]) -> Value {
    let done: Vec<&Value> = rows.iter().filter(|r| r.get("error").is_none()).collect();
    let verified = done.iter().filter(|r| r["verified"] == json!(true)).count();
    let share = recheck::analysis::intervals::wilson(verified, done.len());
    let scores: Vec<f64> = done.iter().filter_map(|r| r["faithfulness"].as_f64()).collect();
    let mean = recheck::analysis::intervals::bootstrap(&scores, |s| {
        (!s.is_empty()).then(|| s.iter().copied().sum::<f64>() / s.len() as f64)
    });
    let interval = |v: Option<(f64, f64, f64)>| v.map(|(p, lo, hi)| json!({ "value": p, "low": lo, "high": hi }));
    json!({
        "records": rows.len(),
        "failed": rows.len() - done.len(),
        "verified": verified,
        "verified_share": interval(share),
        "mean_faithfulness": interval(mean),
        "with_faithfulness": scores.len(),
    })
}

fn shown_interval(v: &Value) -> String {
    match (v["value"].as_f64(), v["low"].as_f64(), v["high"].as_f64()) {
        (Some(p), Some(lo), Some(hi)) => format!("{p:.3} [{lo:.3}, {hi:.3}]"),
        _ => "undefined".into(),
    }
}
