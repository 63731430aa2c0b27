//! The tantivy index of passages: incremental updates and BM25 search.
//!
//! Each passage is one tantivy document. Which documents are indexed, with which
//! content hash, lives in the commit payload, so the record of what is indexed is
//! committed atomically with the index itself: an interrupted run leaves the last
//! committed state, never a half-updated one.

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tantivy::{
    collector::TopDocs,
    query::{BooleanQuery, Occur, Query, QueryParser, TermQuery},
    schema::{Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED, STRING},
    snippet::SnippetGenerator,
    tokenizer::{Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer},
    Index, IndexReader, ReloadPolicy, TantivyDocument, Term,
};

use super::{
    dense::passage_text,
    split_passages,
    vectors::{self, Vectors, VectorsRef},
    CorpusError, Document, Embedder, Hit, Passage, PassageConfig, Retrieval, Retriever, SearchOptions,
};

const ANALYZER: &str = "recheck_en";
const MANIFEST_VERSION: u32 = 1;

/// What an update did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UpdateStats {
    /// Documents new to the index.
    pub added: usize,
    /// Documents whose content changed and were replaced.
    pub updated: usize,
    /// Documents skipped because their content hash is unchanged.
    pub unchanged: usize,
    /// Documents deleted by pruning.
    pub removed: usize,
    /// Passages written.
    pub passages_written: usize,
    /// Documents in the index after the update.
    pub documents_total: usize,
    /// Passages embedded (with an embedder).
    pub passages_embedded: usize,
}

/// What an update is doing, for its progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Splitting and indexing documents (counts documents).
    Indexing,
    /// Embedding written passages (counts passages).
    Embedding,
}

/// The committed record of what is indexed.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    passage: Option<PassageConfig>,
    /// Document id -> content hash.
    docs: BTreeMap<String, String>,
    /// The passages' vectors, if the index has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vectors: Option<VectorsRef>,
}

/// Passages embedded at a time while indexing.
const EMBED_BATCH: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Fields {
    doc_id: Field,
    passage_id: Field,
    title: Field,
    text: Field,
    start: Field,
    end: Field,
}

/// A passage index in a directory.
pub struct CorpusIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    dir: PathBuf,
    /// How searches rank (BM25 unless [`CorpusIndex::with_retrieval`] chose another).
    pub(super) retrieval: Retrieval,
    /// The query embedder and the committed vectors, for dense and hybrid search.
    pub(super) dense: Option<super::hybrid::DenseSide>,
}

impl std::fmt::Debug for CorpusIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CorpusIndex").field("dir", &self.dir).finish()
    }
}

fn schema() -> Schema {
    let mut b = Schema::builder();
    let text_options = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(ANALYZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
        .set_stored();
    b.add_text_field("doc_id", STRING | STORED);
    b.add_text_field("passage_id", STRING | STORED);
    b.add_text_field("title", text_options.clone());
    b.add_text_field("text", text_options);
    b.add_u64_field("start", STORED);
    b.add_u64_field("end", STORED);
    b.build()
}

fn analyzer() -> TextAnalyzer {
    let builder =
        TextAnalyzer::builder(SimpleTokenizer::default()).filter(RemoveLongFilter::limit(40)).filter(LowerCaser);
    match StopWordFilter::new(Language::English) {
        Some(stop) => builder.filter(stop).filter(Stemmer::new(Language::English)).build(),
        None => builder.filter(Stemmer::new(Language::English)).build(),
    }
}

impl CorpusIndex {
    /// Open the index in `dir`, creating an empty one if the directory has none.
    pub fn open_or_create(dir: &Path) -> Result<Self, CorpusError> {
        std::fs::create_dir_all(dir).map_err(|e| CorpusError::Io { path: dir.to_path_buf(), source: e })?;
        if dir.join("meta.json").exists() {
            return Self::open(dir);
        }
        let index = Index::create_in_dir(dir, schema()).map_err(|e| CorpusError::index(dir, e))?;
        Self::from_index(index, dir)
    }

    /// Open an existing index.
    pub fn open(dir: &Path) -> Result<Self, CorpusError> {
        if !dir.join("meta.json").exists() {
            return Err(CorpusError::NoIndex(dir.to_path_buf()));
        }
        let index = Index::open_in_dir(dir).map_err(|e| CorpusError::index(dir, e))?;
        Self::from_index(index, dir)
    }

    fn from_index(index: Index, dir: &Path) -> Result<Self, CorpusError> {
        index.tokenizers().register(ANALYZER, analyzer());
        let s = index.schema();
        let field = |name: &str| {
            s.get_field(name).map_err(|_| CorpusError::index(dir, format!("not a recheck index (no field {name:?})")))
        };
        let fields = Fields {
            doc_id: field("doc_id")?,
            passage_id: field("passage_id")?,
            title: field("title")?,
            text: field("text")?,
            start: field("start")?,
            end: field("end")?,
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| CorpusError::index(dir, e))?;
        Ok(Self { index, reader, fields, dir: dir.to_path_buf(), retrieval: Retrieval::default(), dense: None })
    }

    /// The index directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn manifest(&self) -> Result<Manifest, CorpusError> {
        let metas = self.index.load_metas().map_err(|e| CorpusError::index(&self.dir, e))?;
        match metas.payload {
            None => Ok(Manifest { version: MANIFEST_VERSION, ..Default::default() }),
            Some(p) => {
                serde_json::from_str(&p).map_err(|e| CorpusError::index(&self.dir, format!("bad manifest: {e}")))
            }
        }
    }

    /// The committed vectors' record, if the index has vectors.
    pub fn vectors(&self) -> Result<Option<VectorsRef>, CorpusError> {
        Ok(self.manifest()?.vectors)
    }

    /// Number of documents and passages indexed.
    pub fn counts(&self) -> Result<(usize, u64), CorpusError> {
        Ok((self.manifest()?.docs.len(), self.reader.searcher().num_docs()))
    }

    /// Add new documents, replace changed ones, skip unchanged ones; with `prune`,
    /// delete indexed documents absent from `docs`. One atomic commit. An index with
    /// vectors needs its embedder: use [`CorpusIndex::update_with`].
    pub fn update(
        &mut self,
        docs: &[Document],
        config: &PassageConfig,
        prune: bool,
        progress: &dyn Fn(usize),
    ) -> Result<UpdateStats, CorpusError> {
        self.update_with(docs, config, prune, None, &|stage, n, _| {
            if stage == Stage::Indexing {
                progress(n)
            }
        })
    }

    /// [`CorpusIndex::update`], embedding the written passages with `embedder` when it
    /// is given or the index already has vectors (then it must be the embedder that
    /// made them). The vectors of changed and removed documents are replaced, the rest
    /// kept; the new vector file is committed with the tantivy commit.
    /// `progress(stage, done, total)` counts documents while indexing and passages
    /// while embedding.
    pub fn update_with(
        &mut self,
        docs: &[Document],
        config: &PassageConfig,
        prune: bool,
        embedder: Option<&dyn Embedder>,
        progress: &dyn Fn(Stage, usize, usize),
    ) -> Result<UpdateStats, CorpusError> {
        let mut manifest = self.manifest()?;
        let embedder = match (embedder, &manifest.vectors) {
            (None, None) => None,
            (Some(e), None) => Some(e),
            (None, Some(r)) => {
                return Err(CorpusError::NeedsEmbedder { index: self.dir.clone(), made_by: r.embedder.to_string() })
            }
            (Some(e), Some(r)) => {
                super::hybrid::check_embedder(&self.dir, &r.embedder, e.identity())?;
                Some(e)
            }
        };
        let mut replaced: HashSet<String> = HashSet::new();
        let mut fresh: Vec<Passage> = Vec::new();
        let mut writer: tantivy::IndexWriter<TantivyDocument> = self.index.writer(100_000_000).map_err(|e| {
            if matches!(e, tantivy::TantivyError::LockFailure(..)) {
                CorpusError::InUse(self.dir.clone())
            } else {
                CorpusError::index(&self.dir, e)
            }
        })?;
        let mut stats = UpdateStats::default();
        let mut seen = HashSet::with_capacity(docs.len());
        for (n, doc) in docs.iter().enumerate() {
            seen.insert(doc.id.as_str());
            let hash = content_hash(doc, config);
            match manifest.docs.get(&doc.id) {
                Some(old) if *old == hash => stats.unchanged += 1,
                existing => {
                    if existing.is_some() {
                        writer.delete_term(Term::from_field_text(self.fields.doc_id, &doc.id));
                        stats.updated += 1;
                    } else {
                        stats.added += 1;
                    }
                    replaced.insert(doc.id.clone());
                    for passage in split_passages(doc, config) {
                        writer
                            .add_document(self.tantivy_doc(&passage))
                            .map_err(|e| CorpusError::index(&self.dir, e))?;
                        stats.passages_written += 1;
                        if embedder.is_some() {
                            fresh.push(passage);
                        }
                    }
                    manifest.docs.insert(doc.id.clone(), hash);
                }
            }
            if n % 256 == 0 {
                progress(Stage::Indexing, n, docs.len());
            }
        }
        if prune {
            let gone: Vec<String> =
                manifest.docs.keys().filter(|id| !seen.contains(String::as_str(id))).cloned().collect();
            for id in gone {
                writer.delete_term(Term::from_field_text(self.fields.doc_id, &id));
                manifest.docs.remove(&id);
                replaced.insert(id);
                stats.removed += 1;
            }
        }
        progress(Stage::Indexing, docs.len(), docs.len());
        if let Some(embedder) = embedder {
            let committed = match &manifest.vectors {
                None => None,
                // A damaged vector file is rebuilt: the documents are intact, and
                // re-embedding them is the way back.
                Some(r) => {
                    Vectors::read(&self.dir, r).map_err(|e| tracing::warn!("{e}; embedding every passage again")).ok()
                }
            };
            let unchanged = committed.is_some() && fresh.is_empty() && replaced.is_empty();
            if !unchanged {
                let old = match committed {
                    Some(v) => v,
                    None => {
                        // Vectors added to an index that had none (or whose vectors
                        // were damaged): its unchanged passages are embedded too.
                        let kept = self.all_passages()?.into_iter().filter(|p| !replaced.contains(&p.doc_id));
                        fresh.splice(0..0, kept);
                        Vectors::new(embedder.identity().dim)
                    }
                };
                let mut all = old.retain_docs(|d| !replaced.contains(d));
                stats.passages_embedded = embed_passages(embedder, &fresh, &mut all, progress)?;
                manifest.vectors = Some(all.write(&self.dir, embedder.identity())?);
            }
        }
        manifest.version = MANIFEST_VERSION;
        manifest.passage = Some(*config);
        stats.documents_total = manifest.docs.len();
        let payload = serde_json::to_string(&manifest).map_err(|e| CorpusError::index(&self.dir, e))?;
        let mut commit = writer.prepare_commit().map_err(|e| CorpusError::index(&self.dir, e))?;
        commit.set_payload(&payload);
        commit.commit().map_err(|e| CorpusError::index(&self.dir, e))?;
        // Only now is the new vector file the committed one; older files can go.
        vectors::remove_stale(&self.dir, manifest.vectors.as_ref().map(|r| r.file.as_str()));
        writer.wait_merging_threads().map_err(|e| CorpusError::index(&self.dir, e))?;
        self.reader.reload().map_err(|e| CorpusError::index(&self.dir, e))?;
        Ok(stats)
    }

    fn tantivy_doc(&self, p: &Passage) -> TantivyDocument {
        let f = &self.fields;
        let mut d = TantivyDocument::new();
        d.add_text(f.doc_id, &p.doc_id);
        d.add_text(f.passage_id, &p.passage_id);
        d.add_text(f.title, &p.title);
        d.add_text(f.text, &p.text);
        d.add_u64(f.start, p.start as u64);
        d.add_u64(f.end, p.end as u64);
        d
    }

    fn passage_of(&self, d: &TantivyDocument) -> Passage {
        let f = &self.fields;
        let text = |field| d.get_first(field).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let num = |field| d.get_first(field).and_then(|v| v.as_u64()).unwrap_or_default() as usize;
        Passage {
            doc_id: text(f.doc_id),
            passage_id: text(f.passage_id),
            title: text(f.title),
            text: text(f.text),
            start: num(f.start),
            end: num(f.end),
        }
    }

    /// A query for raw natural-language text: its analysed terms, OR-ed over title and
    /// text. Never a syntax error, whatever punctuation the text holds.
    fn natural_query(&self, text: &str) -> Option<Box<dyn Query>> {
        let mut analyzer = analyzer();
        let mut stream = analyzer.token_stream(text);
        let mut words = Vec::new();
        let mut seen = HashSet::new();
        while stream.advance() {
            let t = stream.token().text.clone();
            if seen.insert(t.clone()) {
                words.push(t);
            }
        }
        let clauses: Vec<(Occur, Box<dyn Query>)> = words
            .iter()
            .flat_map(|w| [self.fields.title, self.fields.text].map(|f| (f, w)))
            .map(|(field, w)| {
                let q: Box<dyn Query> =
                    Box::new(TermQuery::new(Term::from_field_text(field, w), IndexRecordOption::WithFreqs));
                (Occur::Should, q)
            })
            .collect();
        (!clauses.is_empty()).then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>)
    }

    fn parse_query(&self, text: &str) -> Result<Box<dyn Query>, CorpusError> {
        let parser = QueryParser::for_index(&self.index, vec![self.fields.title, self.fields.text]);
        parser.parse_query(text).map_err(|e| CorpusError::BadQuery { query: text.to_string(), detail: e.to_string() })
    }

    /// Look up one passage by its id.
    pub fn passage(&self, passage_id: &str) -> Result<Option<Passage>, CorpusError> {
        let searcher = self.reader.searcher();
        let q = TermQuery::new(Term::from_field_text(self.fields.passage_id, passage_id), IndexRecordOption::Basic);
        let top = searcher
            .search(&q, &TopDocs::with_limit(1).order_by_score())
            .map_err(|e| CorpusError::index(&self.dir, e))?;
        match top.first() {
            Some((_, addr)) => {
                let d: TantivyDocument = searcher.doc(*addr).map_err(|e| CorpusError::index(&self.dir, e))?;
                Ok(Some(self.passage_of(&d)))
            }
            None => Ok(None),
        }
    }
}

impl Retriever for CorpusIndex {
    fn search(&self, query: &str, options: &SearchOptions) -> Result<Vec<Hit>, CorpusError> {
        self.search_ranked(query, options)
    }

    fn location(&self) -> Option<std::path::PathBuf> {
        Some(self.dir.clone())
    }

    fn retrieval(&self) -> Option<Retrieval> {
        Some(self.retrieval)
    }
}

impl CorpusIndex {
    /// Every committed passage, in passage-id order.
    fn all_passages(&self) -> Result<Vec<Passage>, CorpusError> {
        let searcher = self.reader.searcher();
        let addrs = searcher
            .search(&tantivy::query::AllQuery, &tantivy::collector::DocSetCollector)
            .map_err(|e| CorpusError::index(&self.dir, e))?;
        let mut out = Vec::with_capacity(addrs.len());
        for addr in addrs {
            let d: TantivyDocument = searcher.doc(addr).map_err(|e| CorpusError::index(&self.dir, e))?;
            out.push(self.passage_of(&d));
        }
        out.sort_by(|a, b| a.passage_id.cmp(&b.passage_id));
        Ok(out)
    }

    /// Number of passages searchable now.
    pub(super) fn passage_count(&self) -> usize {
        usize::try_from(self.reader.searcher().num_docs()).unwrap_or(usize::MAX)
    }

    /// The query tantivy runs for `query` (`None`: no searchable term).
    pub(super) fn bm25_query(&self, query: &str, syntax: bool) -> Result<Option<Box<dyn Query>>, CorpusError> {
        if syntax {
            self.parse_query(query).map(Some)
        } else {
            Ok(self.natural_query(query))
        }
    }

    /// The `pool` best passages by BM25, best first, ties by passage id.
    pub(super) fn bm25_pool(&self, q: &dyn Query, pool: usize) -> Result<Vec<(f32, Passage)>, CorpusError> {
        let searcher = self.reader.searcher();
        // Never ask tantivy for more hits than there are passages: a huge `k` would
        // size its heap by it.
        let passages = self.passage_count().max(1);
        let pool = pool.min(passages);
        // Equal scores come back in index order, which depends on how segments were
        // built and merged: the same corpus indexed twice could answer differently. Fetch
        // until the pool's last score is settled, then order ties by passage id.
        let mut fetch = pool;
        let top = loop {
            let top = searcher
                .search(q, &TopDocs::with_limit(fetch).order_by_score())
                .map_err(|e| CorpusError::index(&self.dir, e))?;
            let tied_past_pool =
                top.len() == fetch && fetch < passages && pool > 0 && top[pool - 1].0 == top[fetch - 1].0;
            if !tied_past_pool {
                break top;
            }
            fetch = fetch.saturating_mul(2).min(passages);
        };
        let mut candidates = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let d: TantivyDocument = searcher.doc(addr).map_err(|e| CorpusError::index(&self.dir, e))?;
            candidates.push((score, self.passage_of(&d)));
        }
        candidates.sort_by(|(a, p), (b, q)| b.total_cmp(a).then_with(|| p.passage_id.cmp(&q.passage_id)));
        candidates.truncate(pool);
        Ok(candidates)
    }

    /// The chosen passages as hits, with snippets marking `q`'s terms (the passage's
    /// opening when none of them is in it).
    pub(super) fn hits(&self, q: Option<&dyn Query>, chosen: Vec<(f32, Passage)>) -> Vec<Hit> {
        let searcher = self.reader.searcher();
        let mut snippets = q.and_then(|q| SnippetGenerator::create(&searcher, q, self.fields.text).ok());
        if let Some(g) = snippets.as_mut() {
            g.set_max_num_chars(200);
        }
        chosen
            .into_iter()
            .map(|(score, p)| {
                let snippet = match &snippets {
                    Some(g) => g.snippet(&p.text).to_html(),
                    None => String::new(),
                };
                let snippet = if snippet.is_empty() { p.text.chars().take(200).collect() } else { snippet };
                Hit { score, snippet, passage: p }
            })
            .collect()
    }
}

/// Embed `passages` in batches into `into`, returning how many were embedded.
fn embed_passages(
    embedder: &dyn Embedder,
    passages: &[Passage],
    into: &mut Vectors,
    progress: &dyn Fn(Stage, usize, usize),
) -> Result<usize, CorpusError> {
    let dim = embedder.identity().dim;
    for (n, batch) in passages.chunks(EMBED_BATCH).enumerate() {
        progress(Stage::Embedding, n * EMBED_BATCH, passages.len());
        let texts: Vec<String> = batch.iter().map(passage_text).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = embedder.embed(&refs)?;
        if vectors.len() != batch.len() || vectors.iter().any(|v| v.len() != dim) {
            return Err(CorpusError::Embed(format!(
                "{} returned {} vectors for {} passages (dimension {dim} expected)",
                embedder.identity(),
                vectors.len(),
                batch.len()
            )));
        }
        for (p, v) in batch.iter().zip(&vectors) {
            into.push(p.passage_id.clone(), p.doc_id.clone(), v);
        }
    }
    progress(Stage::Embedding, passages.len(), passages.len());
    Ok(passages.len())
}

/// Hash of everything that shapes a document's passages.
fn content_hash(doc: &Document, config: &PassageConfig) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(config).unwrap_or_default());
    for part in [&doc.title, &doc.text] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    if let Some(sentences) = &doc.sentences {
        for r in sentences {
            h.update((r.start as u64).to_le_bytes());
            h.update((r.end as u64).to_le_bytes());
        }
    }
    format!("{:x}", h.finalize())[..16].to_string()
}
