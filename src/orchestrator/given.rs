//! Verifying an answer recheck did not write: a RAG app's, another model's, a human's.
//!
//! The answer goes through exactly the verification `ask` ends with
//! ([`super::run`]'s `Loop::finish`): the tool-checker's exact tools, the decomposer's
//! atomic claims, the judge against evidence, the citation attributor. Nothing is
//! revised. The record's own contexts are the first evidence: each is cut into
//! passages with exact character offsets (as the corpus cuts documents) and searched
//! by content-word overlap; an index, when given, adds its passages after them.

use std::{collections::HashSet, sync::Arc};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{
    run::{end_run, Loop, Revised},
    AskOptions, AskOutcome, AskRecord, ClaimReport, Evidence, StopReason,
};
use crate::{
    agents::attributor::{content_words, word_share},
    corpus::{split_passages, CorpusError, Document, Hit, Passage, PassageConfig, Retriever, SearchOptions},
    llm::{ChatModel, FinishReason},
    trace::{run_kind, RunRecorder, RunStatus, StepPayload, TraceStore},
    Error, Result,
};

/// An answer to verify, with what it was asked and the passages it was written from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GivenAnswer {
    /// The record's id in its batch (its line number when the input has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The question, if there was one (the tool-checker reads yes/no against it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    /// The answer.
    pub answer: String,
    /// The passages the answer was written from (a RAG app's retrieved contexts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contexts: Vec<Context>,
}

/// One context of a [`GivenAnswer`]; read from a string or from `{"id"?, "text"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "ContextInput")]
pub struct Context {
    /// Its id, when the input named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its text.
    pub text: String,
}

impl From<&str> for Context {
    fn from(text: &str) -> Self {
        Self { id: None, text: text.to_string() }
    }
}

impl From<String> for Context {
    fn from(text: String) -> Self {
        Self { id: None, text }
    }
}

/// A context as records write it: its text alone, or with an id.
#[derive(Deserialize)]
#[serde(untagged)]
enum ContextInput {
    Text(String),
    Full {
        #[serde(default)]
        id: Option<Value>,
        text: String,
    },
}

impl From<ContextInput> for Context {
    fn from(input: ContextInput) -> Self {
        match input {
            ContextInput::Text(text) => Self { id: None, text },
            ContextInput::Full { id, text } => {
                Self { id: id.map(|v| v.as_str().map_or_else(|| v.to_string(), String::from)), text }
            }
        }
    }
}

/// Where a claim's evidence is in a record's own context.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContextQuote {
    /// The context: its id, or its index in the record (from 0).
    pub context: serde_json::Value,
    /// Start, in characters, in that context.
    pub start: usize,
    /// End (exclusive), in characters.
    pub end: usize,
    /// The quoted text, exactly `context[start..end]`.
    pub quote: String,
}

/// What verifying one given answer found (also the `verify` run's stored output):
/// everything `ask` reports of its verification (`outcome`: verdict, support counts,
/// claims, cited answer, sources, citation quality, usage, model calls, run id; its
/// fields are this object's in JSON), and what `verify` adds to it.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyOutcome {
    /// The record's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Supported claims over all claims (RAGAS's faithfulness), counting the answer's
    /// atomic claims (the tool-checker's claims inside them are how some were decided,
    /// not more claims) or, with decomposition off, the tool-checker's; `None` with no
    /// claims.
    pub faithfulness: Option<f64>,
    /// Why `faithfulness` is undefined, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faithfulness_undefined: Option<String>,
    /// For each claim of `outcome` (same order), where its passage evidence sits in the
    /// record's own contexts.
    pub quotes: Vec<Vec<ContextQuote>>,
    /// The verification as `ask` reports it; `verified` means what it means there.
    #[serde(flatten)]
    pub outcome: AskOutcome,
}

/// The document id a record's context `i` gets in the passages it is cut into.
fn context_doc(i: usize) -> String {
    format!("context:{i}")
}

/// A record's contexts as passages, searched by content-word overlap, then `index`.
struct Contexts {
    passages: Vec<(Passage, HashSet<String>)>,
    index: Option<Arc<dyn Retriever>>,
}

impl Contexts {
    fn new(contexts: &[Context], index: Option<Arc<dyn Retriever>>) -> Self {
        let config = PassageConfig::default();
        let passages = contexts
            .iter()
            .enumerate()
            .flat_map(|(i, c)| {
                let title = c.id.clone().unwrap_or_else(|| format!("context {i}"));
                let doc = Document { id: context_doc(i), title, text: c.text.clone(), sentences: None };
                split_passages(&doc, &config)
            })
            .map(|p| {
                let words = content_words(&p.text);
                (p, words)
            })
            .collect();
        Self { passages, index }
    }
}

impl Retriever for Contexts {
    fn search(&self, query: &str, options: &SearchOptions) -> std::result::Result<Vec<Hit>, CorpusError> {
        let wanted = content_words(query);
        let mut hits: Vec<Hit> = self
            .passages
            .iter()
            .map(|(p, words)| Hit {
                score: word_share(&wanted, words) as f32,
                passage: p.clone(),
                snippet: String::new(),
            })
            .filter(|h| h.score > 0.0)
            .collect();
        // Best first; ties in the record's order, so the ranking never depends on layout.
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(options.k);
        if let Some(index) = &self.index {
            let more =
                index.search(query, &SearchOptions { k: options.k.saturating_sub(hits.len()), ..options.clone() })?;
            hits.extend(more);
        }
        Ok(hits)
    }
}

/// Verify `given` with `model` (used only by the decomposer and the judge, and for
/// `--samples`, which draws answers to the question), storing one `verify` run.
/// `options` are `ask`'s: its verification options, judge, agents and index.
pub async fn verify(
    store: &TraceStore,
    model: Arc<dyn ChatModel>,
    given: &GivenAnswer,
    options: &AskOptions,
) -> Result<VerifyOutcome> {
    if options.verify.samples > 0 && given.question.as_deref().is_none_or(|q| q.trim().is_empty()) {
        return Err(Error::BadInput(
            "self-consistency samples are answers to the record's question, and it has none".into(),
        ));
    }
    let info = crate::llm::identity(model.as_ref());
    // Recorded before the contexts join the index: the record names the index (to
    // open again on replay), and the contexts are in the run's input.
    let config = AskRecord::of(options, info.clone());
    let mut options = options.clone();
    options.retriever = Some(Arc::new(Contexts::new(&given.contexts, options.retriever.clone())));
    let input = json!(given);
    let run_id = store.start_run(run_kind::VERIFY, input, &config, options.parent, options.group).await?;
    let question = given.question.clone().unwrap_or_default();
    let state = Loop::new(&options, &[], model, RunRecorder::new(store.clone(), run_id, 0));
    let revised = Revised {
        answer: given.answer.clone(),
        finish: FinishReason::Stop,
        rounds: Vec::new(),
        stopped_by: StopReason::Given,
        candidates: Vec::new(),
    };
    let outcome = match state.finish(&question, revised, info, run_id).await {
        Ok(outcome) => describe(given, outcome),
        Err(e) => return end_run(store, run_id, Err(e)).await,
    };
    // `ask` keeps an answer whose verification degraded; here the verification is the
    // whole result, so a failed model call makes the record fail, its verdicts kept.
    let failed = store.steps(run_id)?.into_iter().find_map(|s| match (&s.payload, s.error) {
        (StepPayload::ModelCall { .. } | StepPayload::Scoring { .. }, Some(e)) => {
            Some(format!("{} call: {e}", s.agent))
        }
        _ => None,
    });
    if let Some(reason) = failed {
        store.finish_run(run_id, RunStatus::Failed, Some(json!(outcome)), Some(reason.clone())).await?;
        return Err(Error::Unverifiable { run_id, reason });
    }
    // The run's output is the whole outcome, so a batch resumed later reads its row
    // back instead of verifying the record again.
    end_run(store, run_id, Ok::<_, crate::agents::AgentError>(outcome)).await
}

/// The outcome of a given answer's verification, in the terms `verify` reports.
fn describe(given: &GivenAnswer, outcome: AskOutcome) -> VerifyOutcome {
    let claims = &outcome.claims;
    let atomic: Vec<&ClaimReport> = claims.iter().filter(|c| c.kind.is_none()).collect();
    let counted: Vec<&ClaimReport> = if atomic.is_empty() { claims.iter().collect() } else { atomic };
    let supported = counted.iter().filter(|c| c.verdict == crate::agents::Verdict::Supported).count();
    let (faithfulness, undefined) = if counted.is_empty() {
        (None, Some("the answer has no claims".to_string()))
    } else {
        (Some(supported as f64 / counted.len() as f64), None)
    };
    let quotes = claims.iter().map(|c| quotes(given, c)).collect();
    VerifyOutcome { id: given.id.clone(), faithfulness, faithfulness_undefined: undefined, quotes, outcome }
}

/// Where `claim`'s passage evidence sits in the record's contexts.
fn quotes(given: &GivenAnswer, claim: &ClaimReport) -> Vec<ContextQuote> {
    claim
        .evidence
        .iter()
        .filter_map(|e| match e {
            Evidence::Passage { doc_id, start, end, .. } => {
                let i: usize = doc_id.strip_prefix("context:")?.parse().ok()?;
                let context = given.contexts.get(i)?;
                let quote: String = context.text.chars().skip(*start).take(end.saturating_sub(*start)).collect();
                let name = context.id.clone().map_or(json!(i), |id| json!(id));
                Some(ContextQuote { context: name, start: *start, end: *end, quote })
            }
            Evidence::Tool { .. } => None,
        })
        .collect()
}

/// The row `recheck verify` writes (and `POST /recheck/v1/verify` answers) for a
/// [`VerifyOutcome`] serialised as a `verify` run stores it, so a resumed batch builds
/// rows of finished records from their runs: id, verdict, support, faithfulness,
/// claims with their quotes, the cited answer and its sources, the run, model calls.
pub fn verify_row(o: &Value) -> Value {
    let quotes = o["quotes"].as_array().cloned().unwrap_or_default();
    let claims: Vec<Value> = o["claims"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, mut claim)| {
            if quotes.get(i).and_then(Value::as_array).is_some_and(|q| !q.is_empty()) {
                claim["quotes"] = quotes[i].clone();
            }
            claim
        })
        .collect();
    let mut row = json!({
        "id": o["id"],
        "verified": o["verified"],
        "support": o["support"],
        "faithfulness": o["faithfulness"],
        "claims": claims,
        "cited_answer": o["cited_answer"],
        "sources": o["sources"],
        "trace_id": o["trace_id"],
        "model_calls": o["model_calls"],
    });
    for (key, value) in
        [("faithfulness_undefined", &o["faithfulness_undefined"]), ("citation_quality", &o["citation_quality"])]
    {
        if !value.is_null() {
            row[key] = value.clone();
        }
    }
    row
}
