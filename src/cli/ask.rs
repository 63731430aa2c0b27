//! `recheck ask`: one question through a verify-and-revise strategy, recorded as a run.

use std::{path::PathBuf, sync::Arc};

use clap::Args;

use recheck::{
    agents::{ClaimKind, Verdict},
    files::FileKind,
    home::Home,
    llm::ChatModel,
    orchestrator::{AskOptions, AskOutcome, ClaimReport, JudgeChoice, Settings, Strategy, Verification},
    trace::JudgeKind,
};

/// Arguments of `recheck ask`.
#[derive(Debug, Args)]
pub struct AskArgs {
    /// The question; `-` reads it from standard input.
    #[arg(required_unless_present = "file")]
    pub question: Option<String>,

    /// Read the question from FILE (for long questions).
    #[arg(long, value_name = "FILE", conflicts_with = "question")]
    pub file: Option<PathBuf>,

    /// Model spec: `local` (embedded default model), `local:/path/model.gguf`,
    /// `openai:MODEL` for any OpenAI-compatible server, or `sim:PARAMS` (the
    /// simulator for checking analyses, not a model).
    #[arg(long, short, default_value = "local", value_name = "SPEC")]
    pub model: String,

    /// Strategy, agents, corpus and verification.
    #[command(flatten)]
    pub run: RunArgs,

    /// Server, key, timeout and retries for `openai:` models.
    #[command(flatten)]
    pub server: super::models::ServerArgs,

    /// OpenTelemetry export of the run.
    #[command(flatten)]
    pub otlp: super::otlp::OtlpArgs,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// How a question is answered and verified: shared by `ask` and `serve` (where these
/// are the defaults a request's `recheck` options override).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Strategy: single, self-refine, critic (tool-verified critique), ioe, wait,
    /// backtrack, best-of-n (draw --candidates answers, keep the one the verifier
    /// supports best).
    #[arg(long, default_value = "single")]
    pub strategy: Strategy,

    /// Review rounds at most (0 to 100).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub rounds: u32,

    /// best-of-n: answers drawn (temperature at least 0.7), each verified claim by
    /// claim; kept: fewest contradicted claims, then the highest share supported, then
    /// the model's likelihood, then the first (1 to 32).
    #[arg(long, default_value_t = recheck::orchestrator::best_of_n::DEFAULT_CANDIDATES, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=32))]
    pub candidates: u32,

    /// A corpus index (from `recheck index`) for context passages, the search tool and citations.
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,

    /// Passages given to the solver as numbered context (with --index).
    #[arg(long, default_value_t = recheck::orchestrator::DEFAULT_CONTEXT_PASSAGES)]
    pub context: usize,

    /// How --index is searched.
    #[command(flatten)]
    pub retrieval: super::corpus::RetrievalArgs,

    /// Citation scorer: lexical, contextcite (ablation with continuation scoring; local
    /// models), or leave_one_out (the judge without each passage; any backend).
    /// contextcite on a backend that cannot score runs leave_one_out, and says so.
    /// Default: agents/attributor.toml.
    #[arg(long, value_name = "SCORER")]
    pub citation_scorer: Option<String>,

    /// Agent configs and prompt templates.
    #[command(flatten)]
    pub dirs: super::models::AgentDirs,

    /// Solver temperature (default: agents/solver.toml); 0 is greedy.
    #[arg(long)]
    pub temperature: Option<f32>,

    /// Temperature added to the solver's each round (anti-friction schedule, e.g. 0.15).
    #[arg(long, default_value_t = 0.0)]
    pub temperature_step: f32,

    /// Tell the solver which answers were rejected and resample if it repeats one.
    #[arg(long)]
    pub reject_repeats: bool,

    /// Solver generation limit (default: agents/solver.toml).
    #[arg(long)]
    pub max_tokens: Option<u32>,

    /// Model calls the verify-and-revise loop may make (citation scoring is not limited).
    #[arg(long, default_value_t = 24)]
    pub max_calls: u32,

    /// Tokens (prompt + completion) the loop may spend; 0 = no limit.
    #[arg(long, default_value_t = 0)]
    pub token_budget: u64,

    /// Judge of atomic claims against corpus passages: model (agents/judge.toml) or
    /// lexical (word overlap, a baseline).
    #[arg(long, default_value = "model", value_parser = recheck::orchestrator::parse_judge)]
    pub judge: JudgeChoice,

    /// Self-consistency: draw N more answers (temperature 0.7) and judge each claim no
    /// tool or passage settled against each; most samples not backing it makes it
    /// `unsupported` (`consistency.kind = inconsistent`).
    #[arg(long, default_value_t = 0, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=32))]
    pub samples: u32,

    /// Self-contradiction: judge every pair of the answer's claims (the first 8); a
    /// contradictory pair makes both `contradicted`.
    #[arg(long)]
    pub contradictions: bool,

    /// Check only the claims the tool-checker's patterns find; do not split the answer
    /// into atomic claims (saves the decomposer's model call).
    #[arg(long)]
    pub no_decompose: bool,

    /// Correct the model judge's label prior: `contextual` (divided out as measured on
    /// content-free inputs, once a run), a file from `recheck calibrate`, or `none`.
    /// Default: agents/judge.toml's `calibration`, else none. Needs a judge model that
    /// gives label probabilities (the local model; servers returning logprobs).
    #[arg(long, value_name = "contextual|FILE|none")]
    pub calibration: Option<String>,

    /// Seed for sampled calls, recorded in the trace.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// A label stored with the run (repeatable); `replay --runs tag=NAME` selects by it.
    #[arg(long = "tag", value_name = "NAME", value_parser = parse_tag)]
    pub tags: Vec<String>,
}

/// A tag: 1 to 64 characters, no comma (filters are comma-separated) or `=`.
pub(super) fn parse_tag(s: &str) -> Result<String, String> {
    recheck::orchestrator::check_tag(s).map(|()| s.to_string())
}

impl RunArgs {
    /// These flags as the library's settings (checked when options are made).
    pub fn settings(&self) -> Settings {
        Settings {
            strategy: self.strategy,
            rounds: self.rounds,
            candidates: self.candidates,
            index: self.index.clone(),
            context: self.context,
            retrieval: self.retrieval.retrieval,
            alpha: self.retrieval.alpha,
            embedder: self.retrieval.embedder.clone(),
            citation_scorer: self.citation_scorer.clone(),
            agents_dir: self.dirs.agents_dir.clone(),
            prompts_dir: self.dirs.prompts_dir.clone(),
            temperature: self.temperature,
            temperature_step: self.temperature_step,
            reject_repeats: self.reject_repeats,
            max_tokens: self.max_tokens,
            max_calls: self.max_calls,
            token_budget: self.token_budget,
            judge: self.judge,
            samples: self.samples,
            contradictions: self.contradictions,
            decompose: !self.no_decompose,
            calibration: self.calibration.clone(),
            seed: self.seed,
            tags: self.tags.clone(),
            ..Settings::default()
        }
    }

    /// The options these flags describe. `open` opens a model an agent config names
    /// for itself (its `model`; "default" or none means the run's model).
    pub fn options(&self, open: impl Fn(&str) -> anyhow::Result<Arc<dyn ChatModel>>) -> anyhow::Result<AskOptions> {
        self.settings().ask_options(&|spec| open(spec).map_err(library)).map_err(super::flagged)
    }
}

/// An error from opening an agent's own model, carried through the library's options
/// as its own error (its message kept whole).
pub(super) fn library(e: anyhow::Error) -> recheck::Error {
    match e.downcast::<recheck::Error>() {
        Ok(e) => e,
        Err(e) => recheck::Error::BadInput(format!("{e:#}")),
    }
}

pub(super) async fn run(home: &Home, args: AskArgs) -> anyhow::Result<()> {
    let question = question(&args)?;
    let ask = args.run.options(|spec| args.server.open(home, spec))?;
    let store = super::open_store(home)?;
    let model = args.server.open(home, &args.model)?;
    recheck::orchestrator::check_judge(&ask, model.as_ref()).map_err(super::flagged)?;
    let exporter = args.otlp.live(&store)?;
    let started = std::time::Instant::now();
    let outcome = recheck::ask(&store, model, &question, &ask).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    // A failed run is stored too: it is exported before the error is reported.
    super::otlp::finish(exporter, None);
    let outcome = outcome?;
    if args.json {
        let mut value = serde_json::to_value(&outcome)?;
        value["model_info"] = value["model"].clone();
        value["model"] = serde_json::json!(outcome.model.spec);
        value["latency_ms"] = serde_json::json!(latency_ms);
        return super::print_json(&value);
    }
    print_outcome(&outcome, latency_ms);
    Ok(())
}

/// The question: the argument, standard input for `-`, or `--file`.
fn question(args: &AskArgs) -> anyhow::Result<String> {
    let text = match (&args.question, &args.file) {
        (_, Some(file)) => recheck::files::read_to_string(file, FileKind::Question)
            .map_err(|e| anyhow::anyhow!("cannot read the question from {e}"))?,
        (Some(q), None) if q == "-" => recheck::files::read_stdin(FileKind::Question)
            .map_err(|e| anyhow::anyhow!("cannot read the question from standard input: {}", e.problem))?,
        (Some(q), None) => q.clone(),
        (None, None) => super::usage!("give a question, `-` for standard input, or --file FILE"),
    };
    if text.trim().is_empty() {
        super::usage!("the question is empty");
    }
    Ok(text.trim_end_matches('\n').to_string())
}

/// The verdict in one line, then the answer with citations, sources and claims on
/// stdout; rounds and the run on stderr.
fn print_outcome(outcome: &AskOutcome, latency_ms: u64) {
    println!("{}\n", verdict_line(outcome.verified, &outcome.claims));
    println!("{}", super::shown(&outcome.cited_answer));
    if !outcome.sources.is_empty() {
        println!("\nSources:");
        for (i, p) in outcome.sources.iter().enumerate() {
            let (id, title) = (super::shown(&p.passage_id), super::shown(&p.title));
            println!("  [{}] {id} (chars {}..{}) {title}", i + 1, p.start, p.end);
        }
    }
    print_claims(&outcome.claims);
    for r in &outcome.rounds {
        let verdict = match (&r.critique, r.critique_failed) {
            (Some(c), _) if c.is_correct() => "correct",
            (Some(_), _) => "incorrect",
            (None, true) => "invalid",
            (None, false) => "-",
        };
        let changed = if r.revision.is_some() { "revised" } else { "kept" };
        eprintln!("round {}: {} tool calls, critique {verdict}, {changed}", r.round, r.tool_calls.len());
    }
    for c in &outcome.candidates {
        let kept = if c.chosen { "kept" } else { "-" };
        let answer: String = super::shown(&c.answer).chars().take(60).collect();
        eprintln!(
            "candidate {}: {} claims, {} contradicted, {} supported, {kept}: {answer}",
            c.index, c.claims, c.contradicted, c.supported
        );
    }
    eprintln!(
        "(run {}, strategy {}, {} model calls, {} ms; stopped: {})",
        outcome.trace_id, outcome.strategy, outcome.model_calls, latency_ms, outcome.stopped_by
    );
}

/// The claims, one line a span of the answer with every check that decided it (a
/// sentence the decomposer kept whole and the tool-checker's claim on it are one span).
pub(super) fn print_claims(claims: &[ClaimReport]) {
    if claims.is_empty() {
        return;
    }
    let groups = by_span(claims);
    let count = |v: Verdict| groups.iter().filter(|g| decisive(g) == v).count();
    println!(
        "\nClaims: {} supported, {} contradicted, {} unsupported, {} unchecked",
        count(Verdict::Supported),
        count(Verdict::Contradicted),
        count(Verdict::Unsupported),
        count(Verdict::Unchecked)
    );
    for group in groups {
        let first = group[0];
        // A question the answer never settles has a claim with no text of its own.
        let text = match (&first.kind, first.text.is_empty()) {
            (Some(ClaimKind::NoVerdict { n }), true) => format!("(the answer never says whether {n} is prime)"),
            _ => first.text.clone(),
        };
        let checks: Vec<String> =
            checks(&group).into_iter().map(|(who, verdict)| format!("{who}: {}", verdict_word(verdict))).collect();
        let checks = if checks.is_empty() { String::new() } else { format!(" [{}]", checks.join("; ")) };
        println!("  {:<12} {}{checks}", verdict_word(decisive(&group)), super::shown(&text));
    }
}

/// The run's verdict in one line: "not verified: 1 claim contradicted by the primality tool".
pub(super) fn verdict_line(verified: Verification, claims: &[ClaimReport]) -> String {
    let (word, wanted) = match verified {
        Verification::Verified => ("verified", Verdict::Supported),
        Verification::Refuted => ("not verified", Verdict::Contradicted),
        Verification::Unknown => ("unknown", Verdict::Unchecked),
    };
    let spans = by_span(claims);
    if spans.is_empty() {
        return format!("{word}: the answer has no claim to check");
    }
    if verified == Verification::Unknown {
        let count = |v: Verdict| spans.iter().filter(|g| decisive(g) == v).count();
        let (s, u, c) = (count(Verdict::Supported), count(Verdict::Unsupported), count(Verdict::Unchecked));
        return format!(
            "{word}: none contradicted, but not all supported ({s} supported, {u} unsupported, {c} unchecked)"
        );
    }
    let deciding: Vec<&Vec<&ClaimReport>> = spans.iter().filter(|g| decisive(g) == wanted).collect();
    let mut who: Vec<String> = Vec::new();
    for (name, _) in deciding.iter().flat_map(|g| checks(g)).filter(|(_, v)| *v == wanted) {
        if !who.contains(&name) {
            who.push(name);
        }
    }
    let n = deciding.len();
    let claims = if n == 1 { "claim" } else { "claims" };
    let by = if who.is_empty() { String::new() } else { format!(" by the {}", who.join(" and the ")) };
    format!("{word}: {n} {claims} {}{by}", verdict_word(wanted))
}

/// The claims grouped by the span of the answer they check, in order: an atomic claim
/// (or sentence) first, with the tool-checker's claims inside its span.
fn by_span(claims: &[ClaimReport]) -> Vec<Vec<&ClaimReport>> {
    let mut groups: Vec<Vec<&ClaimReport>> = claims.iter().filter(|c| c.kind.is_none()).map(|c| vec![c]).collect();
    for claim in claims.iter().filter(|c| c.kind.is_some()) {
        let inside = |g: &&mut Vec<&ClaimReport>| {
            g[0].kind.is_none() && g[0].start <= claim.start && claim.end <= g[0].end && claim.end > claim.start
        };
        match groups.iter_mut().find(inside) {
            Some(group) => group.push(claim),
            None => groups.push(vec![claim]),
        }
    }
    groups.sort_by_key(|g| (g[0].start, g[0].end));
    groups
}

/// A span's verdict from its checks: a contradiction decides it, then support.
fn decisive(group: &[&ClaimReport]) -> Verdict {
    [Verdict::Contradicted, Verdict::Supported, Verdict::Unsupported]
        .into_iter()
        .find(|v| group.iter().any(|c| c.verdict == *v))
        .unwrap_or(Verdict::Unchecked)
}

/// The checks of one span, each with its verdict: the tools by name, and the judge of
/// the atomic claim unless that was the tools themselves.
fn checks(group: &[&ClaimReport]) -> Vec<(String, Verdict)> {
    let has_tools = group.iter().any(|c| c.kind.is_some());
    group
        .iter()
        .filter(|c| !(has_tools && c.kind.is_none() && c.judge == Some(JudgeKind::Tool)))
        .filter_map(|c| checker(c).map(|who| (who, c.verdict)))
        .collect()
}

/// What checked a claim, in words.
fn checker(c: &ClaimReport) -> Option<String> {
    let tool = |kind: &ClaimKind| match kind {
        ClaimKind::Primality { .. } | ClaimKind::NoVerdict { .. } => "primality tool",
        ClaimKind::Divisibility { .. } => "divisibility tool",
        ClaimKind::Arithmetic { .. } => "arithmetic tool",
        ClaimKind::Edge { .. } | ClaimKind::Reachability { .. } => "flight-graph tool",
    };
    match (&c.kind, c.judge) {
        (Some(kind), _) => Some(tool(kind).to_string()),
        (None, Some(JudgeKind::Tool)) => Some("exact tools".into()),
        (None, Some(JudgeKind::ModelLogprobs | JudgeKind::ModelVotes)) => Some("model judge".into()),
        (None, Some(JudgeKind::Lexical)) => Some("lexical judge".into()),
        (None, None) => None,
    }
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Supported => "supported",
        Verdict::Contradicted => "contradicted",
        Verdict::Unsupported => "unsupported",
        Verdict::Unchecked => "unchecked",
    }
}
