//! `recheck index` and `recheck search`.

use std::{path::PathBuf, time::Instant};

use clap::Args;
use serde_json::json;

use recheck::{
    corpus::{read_sources, CorpusIndex, JsonlFields, PassageConfig, Retriever, SearchOptions},
    home::Home,
};

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
    /// Parse the query as tantivy query syntax.
    #[arg(long)]
    pub syntax: bool,
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
    let started = Instant::now();
    let fields = JsonlFields { id: args.id_field, title: args.title_field, text: args.text_field };
    let ingested = read_sources(&args.sources, &fields)?;
    for bad in &ingested.bad {
        eprintln!("bad input: {bad}");
    }
    let prune = args.prune && ingested.bad.is_empty();
    if args.prune && !prune {
        eprintln!("not pruning: some input was bad, and its documents would be deleted");
    }
    let mut index = CorpusIndex::open_or_create(&dir)?;
    let bar = super::progress_bar(ingested.documents.len() as u64, "indexing");
    let config = PassageConfig { max_chars: args.max_chars, overlap_sentences: args.overlap };
    let stats = index.update(&ingested.documents, &config, prune, &|n| bar.set_position(n as u64))?;
    bar.finish_and_clear();
    let (_, passages_total) = index.counts()?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        super::print_json(&json!({
            "index": dir,
            "documents_read": ingested.documents.len(),
            "added": stats.added,
            "updated": stats.updated,
            "unchanged": stats.unchanged,
            "removed": stats.removed,
            "passages_written": stats.passages_written,
            "documents_total": stats.documents_total,
            "passages_total": passages_total,
            "bad": ingested.bad,
            "bytes_read": ingested.bytes,
            "seconds": seconds,
        }))?;
    } else {
        println!(
            "{} documents read: {} added, {} updated, {} unchanged, {} removed; {} passages written",
            ingested.documents.len(),
            stats.added,
            stats.updated,
            stats.unchanged,
            stats.removed,
            stats.passages_written
        );
        println!(
            "index {} now holds {} documents, {} passages ({:.1} s)",
            dir.display(),
            stats.documents_total,
            passages_total,
            seconds
        );
    }
    if !ingested.bad.is_empty() && !args.skip_bad {
        anyhow::bail!(
            "{} bad input item(s) (listed above); the rest was indexed. Use --skip-bad to exit 0",
            ingested.bad.len()
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
    let index = CorpusIndex::open(&dir)?;
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
        return super::print_json(&json!({ "results": results }));
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
