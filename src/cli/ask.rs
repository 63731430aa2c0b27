//! `recheck ask`: one question through a verify-and-revise strategy, recorded as a run.

use std::{path::PathBuf, sync::Arc};

use clap::Args;

use recheck::{
    agents::{AgentSet, ClaimKind, Verdict},
    corpus::{CorpusIndex, Retriever},
    home::Home,
    orchestrator::{AskOptions, AskOutcome, LoopOptions, Strategy},
    tools::{CorpusSearch, ToolRegistry},
};

/// Arguments of `recheck ask`.
#[derive(Debug, Args)]
pub struct AskArgs {
    /// The question.
    pub question: String,

    /// Model spec: `local` (embedded default model), `local:/path/model.gguf`,
    /// `openai:MODEL` for any OpenAI-compatible server, or `sim:PARAMS` (the
    /// simulator for checking analyses, not a model).
    #[arg(long, short, default_value = "local", value_name = "SPEC")]
    pub model: String,

    /// Strategy: single, self-refine, critic (tool-verified critique), ioe, wait, backtrack.
    #[arg(long, default_value = "single")]
    pub strategy: Strategy,

    /// Review rounds at most.
    #[arg(long, default_value_t = 2)]
    pub rounds: u32,

    /// A corpus index (from `recheck index`) for context passages, the search tool and citations.
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,

    /// Passages given to the solver as numbered context (with --index).
    #[arg(long, default_value_t = 3)]
    pub context: usize,

    /// Citation scorer: lexical, or contextcite (ablation with continuation scoring;
    /// local models only). Default: agents/attributor.toml.
    #[arg(long, value_name = "SCORER")]
    pub citation_scorer: Option<String>,

    /// Directory overriding agents/*.toml files (default: built-in configs).
    #[arg(long, value_name = "DIR")]
    pub agents_dir: Option<PathBuf>,

    /// Directory overriding prompts/*.j2 templates (default: built-in prompts).
    #[arg(long, value_name = "DIR")]
    pub prompts_dir: Option<PathBuf>,

    /// Server, key, timeout and retries for `openai:` models.
    #[command(flatten)]
    pub server: super::models::ServerArgs,

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

    /// Seed for sampled calls, recorded in the trace.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub(super) async fn run(home: &Home, args: AskArgs) -> anyhow::Result<()> {
    let agents = agents(&args)?;
    let retriever: Option<Arc<dyn Retriever>> = match &args.index {
        Some(dir) => Some(Arc::new(CorpusIndex::open(dir)?)),
        None => None,
    };
    let mut tools = ToolRegistry::standard();
    if let Some(r) = &retriever {
        tools.register(Arc::new(CorpusSearch::new(r.clone(), Default::default())));
    }
    let store = super::open_store(home)?;
    let model = args.server.open(home, &args.model)?;
    // An agent config may name its own model; "default" (or none) means --model.
    let critic_model = match agents.critic.model.as_deref() {
        None | Some("default") => None,
        Some(critic_spec) => Some(args.server.open(home, critic_spec)?),
    };
    let ask = AskOptions {
        loop_options: LoopOptions {
            strategy: args.strategy,
            rounds: args.rounds,
            temperature_step: args.temperature_step,
            reject_repeats: args.reject_repeats,
            max_calls: args.max_calls,
            token_budget: args.token_budget,
            seed: args.seed,
            ..Default::default()
        },
        agents: Arc::new(agents),
        tools,
        retriever,
        context_passages: args.context,
        critic_model,
    };
    let started = std::time::Instant::now();
    let outcome = recheck::ask(&store, model, &args.question, &ask).await?;
    let latency_ms = started.elapsed().as_millis() as u64;
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

/// The agents, with this command line's overrides.
fn agents(args: &AskArgs) -> anyhow::Result<AgentSet> {
    let mut agents = AgentSet::load(args.agents_dir.as_deref(), args.prompts_dir.as_deref())?;
    if let Some(t) = args.temperature {
        agents.solver.temperature = Some(t);
    }
    if let Some(n) = args.max_tokens {
        agents.solver.max_tokens = Some(n);
    }
    match args.citation_scorer.as_deref() {
        None => {}
        Some(s @ ("lexical" | "contextcite")) => agents.attributor.scorer = Some(s.to_string()),
        Some(other) => super::usage!("--citation-scorer must be lexical or contextcite, got {other:?}"),
    }
    Ok(agents)
}

/// The answer with citations on stdout; claims, rounds and the run on stderr.
fn print_outcome(outcome: &AskOutcome, latency_ms: u64) {
    println!("{}", outcome.cited_answer);
    if !outcome.sources.is_empty() {
        println!("\nSources:");
        for (i, p) in outcome.sources.iter().enumerate() {
            println!("  [{}] {} (chars {}..{}) {}", i + 1, p.passage_id, p.start, p.end, p.title);
        }
    }
    let checked: Vec<_> =
        outcome.claims.iter().filter(|c| c.verdict != Verdict::Unsupported || outcome.sources.is_empty()).collect();
    if !checked.is_empty() {
        println!("\nClaims:");
        for c in checked {
            // A question the answer never settles has a claim with no text of its own.
            let text = match (&c.kind, c.text.is_empty()) {
                (Some(ClaimKind::NoVerdict { n }), true) => format!("(the answer never says whether {n} is prime)"),
                _ => c.text.clone(),
            };
            println!("  {:<12} {text}", format!("{:?}", c.verdict).to_lowercase());
        }
    }
    for r in &outcome.rounds {
        let verdict = match (&r.critique, r.critique_failed) {
            (Some(c), _) if c.is_correct() => "correct",
            (Some(_), _) => "incorrect",
            (None, true) => "critique invalid",
            (None, false) => "-",
        };
        let changed = if r.revision.is_some() { "revised" } else { "kept" };
        eprintln!("round {}: {} tool calls, critique {verdict}, {changed}", r.round, r.tool_calls.len());
    }
    eprintln!(
        "(run {}, strategy {}, {} model calls, {} ms; stopped: {})",
        outcome.trace_id, outcome.strategy, outcome.model_calls, latency_ms, outcome.stopped_by
    );
}
