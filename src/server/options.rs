//! Per-request options (`"recheck": {...}` in the body, sent by SDKs with
//! `extra_body`), checked field by field, over the server's defaults.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use serde::Deserialize;
use serde_json::Value;

use super::ApiError;
use crate::{
    corpus::{Mode, Retriever},
    embed::RetrievalChoice,
    orchestrator::{JudgeChoice, Strategy},
    AskOptions,
};

/// What a client may set per request. Unknown fields are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecheckOptions {
    /// single, self-refine, critic, ioe, wait, backtrack, best-of-n.
    pub strategy: Option<String>,
    /// Answers `best-of-n` draws (1 to 32).
    pub candidates: Option<u32>,
    /// Review rounds at most (0 to 100).
    pub rounds: Option<u32>,
    /// The name of an index under the server's index directory.
    pub index: Option<String>,
    /// bm25, dense or hybrid: how the request's index (or the server's) is searched.
    pub retrieval: Option<String>,
    /// model or lexical.
    pub judge: Option<String>,
    /// Self-consistency samples (0 to 32).
    pub samples: Option<u32>,
    /// Model calls the loop may make (1 to 1000).
    pub max_calls: Option<u32>,
    /// Labels stored with the run, beside the server's own `--tag`s (at most 16).
    pub tags: Option<Vec<String>>,
}

impl RecheckOptions {
    /// Read `value` (the body's `recheck` field), naming the field at fault.
    pub fn parse(value: &Value) -> Result<Self, ApiError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let detail = e.inner().to_string();
            // An unknown field's error sits at the object itself; name the field.
            let unknown = detail.strip_prefix("unknown field `").and_then(|rest| rest.split('`').next());
            let param = match (unknown, path.as_str()) {
                (Some(field), _) => format!("recheck.{field}"),
                (None, ".") => "recheck".to_string(),
                (None, path) => format!("recheck.{path}"),
            };
            ApiError::invalid(param, format!("bad `recheck` option: {detail}"))
        })
    }

    /// `base` with these options applied.
    pub fn apply(&self, mut base: AskOptions, indexes: &Indexes) -> Result<AskOptions, ApiError> {
        if let Some(s) = &self.strategy {
            let strategy: Strategy = s.parse().map_err(|e| ApiError::invalid("recheck.strategy", format!("{e}")))?;
            base.loop_options.strategy = strategy;
        }
        if let Some(r) = self.rounds {
            if r > 100 {
                return Err(ApiError::invalid("recheck.rounds", format!("rounds must be 0 to 100, got {r}")));
            }
            base.loop_options.rounds = r;
        }
        if let Some(n) = self.candidates {
            if !(1..=32).contains(&n) {
                return Err(ApiError::invalid("recheck.candidates", format!("candidates must be 1 to 32, got {n}")));
            }
            base.loop_options.candidates = n;
        }
        if let Some(j) = &self.judge {
            base.verify.judge = match j.as_str() {
                "model" => JudgeChoice::Model,
                "lexical" => JudgeChoice::Lexical,
                other => {
                    return Err(ApiError::invalid(
                        "recheck.judge",
                        format!("judge must be model or lexical, got {other:?}"),
                    ))
                }
            };
        }
        if let Some(n) = self.samples {
            if n > 32 {
                return Err(ApiError::invalid("recheck.samples", format!("samples must be 0 to 32, got {n}")));
            }
            base.verify.samples = n;
        }
        if let Some(n) = self.max_calls {
            if !(1..=1000).contains(&n) {
                return Err(ApiError::invalid("recheck.max_calls", format!("max_calls must be 1 to 1000, got {n}")));
            }
            base.loop_options.max_calls = n;
        }
        if let Some(tags) = &self.tags {
            if tags.len() > 16 {
                return Err(ApiError::invalid("recheck.tags", format!("at most 16 tags, got {}", tags.len())));
            }
            for (i, tag) in tags.iter().enumerate() {
                crate::orchestrator::check_tag(tag).map_err(|e| ApiError::invalid(format!("recheck.tags[{i}]"), e))?;
            }
            base.tags.extend(tags.iter().cloned());
        }
        let mode = match &self.retrieval {
            None => None,
            Some(m) => Some(m.parse::<Mode>().map_err(|e| ApiError::invalid("recheck.retrieval", e))?),
        };
        if let Some(name) = &self.index {
            base = base.corpus(indexes.open(name, mode)?);
        } else if let Some(mode) = mode {
            let Some(dir) = base.retriever.as_ref().and_then(|r| r.location()) else {
                return Err(ApiError::invalid(
                    "recheck.retrieval",
                    "this request searches no index: name one (recheck.index) or start the server with --index",
                ));
            };
            base = base.corpus(indexes.open_dir(&dir, Some(mode), "recheck.retrieval")?);
        }
        Ok(base)
    }
}

/// The indexes clients may name: directories under one root, opened on first use in
/// each retrieval mode asked for. Names only, never paths: a client cannot make the
/// server open a directory it chose.
#[derive(Default)]
pub struct Indexes {
    root: Option<PathBuf>,
    retrieval: RetrievalChoice,
    open: Mutex<HashMap<OpenKey, Arc<dyn Retriever>>>,
}

/// An opened index: its directory and the mode asked for (`None`: the server's).
type OpenKey = (PathBuf, Option<Mode>);

impl Indexes {
    /// Indexes under `root` (`None`: clients may not name one), searched as `retrieval`
    /// says unless a request names a mode.
    pub fn new(root: Option<PathBuf>, retrieval: RetrievalChoice) -> Self {
        Self { root, retrieval, open: Mutex::new(HashMap::new()) }
    }

    /// The index in `dir` searched in `mode` (the server's default when `None`);
    /// `param` is the request field blamed when it cannot be.
    pub fn open_dir(&self, dir: &Path, mode: Option<Mode>, param: &str) -> Result<Arc<dyn Retriever>, ApiError> {
        let mut open = self.open.lock().map_err(|_| ApiError::internal("index cache poisoned"))?;
        let key = (dir.to_path_buf(), mode);
        if let Some(r) = open.get(&key) {
            return Ok(r.clone());
        }
        let choice = RetrievalChoice { mode: mode.or(self.retrieval.mode), ..self.retrieval.clone() };
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let index = crate::orchestrator::open_index(dir, &choice)
            .map_err(|e| ApiError::invalid(param, format!("no usable index {name:?}: {e}")))?;
        let retriever: Arc<dyn Retriever> = Arc::new(index);
        open.insert(key, retriever.clone());
        Ok(retriever)
    }

    /// The index called `name`, searched in `mode` (the server's default when `None`).
    pub fn open(&self, name: &str, mode: Option<Mode>) -> Result<Arc<dyn Retriever>, ApiError> {
        let valid = !name.is_empty()
            && name.len() <= 128
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !name.starts_with('.');
        if !valid {
            return Err(ApiError::invalid(
                "recheck.index",
                format!("{name:?} is not an index name (letters, digits, - _ .)"),
            ));
        }
        let Some(root) = &self.root else {
            return Err(ApiError::invalid("recheck.index", "this server has no index directory to choose from"));
        };
        self.open_dir(&root.join(name), mode, "recheck.index")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_option_is_named() {
        let err = RecheckOptions::parse(&serde_json::json!({"rounds": 2, "colour": "red"})).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("recheck.colour"), "{err:?}");
        assert!(err.message.contains("colour"), "{}", err.message);
        let err = RecheckOptions::parse(&serde_json::json!({"rounds": "two"})).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("recheck.rounds"));
        let base = AskOptions::builtin().unwrap();
        let opts = RecheckOptions::parse(&serde_json::json!({"strategy": "critic", "rounds": 3})).unwrap();
        let applied = opts.apply(base.clone(), &Indexes::default()).unwrap();
        assert_eq!((applied.loop_options.strategy, applied.loop_options.rounds), (Strategy::Critic, 3));
        let too_many = RecheckOptions { rounds: Some(101), ..Default::default() };
        assert_eq!(
            too_many.apply(base.clone(), &Indexes::default()).unwrap_err().param.as_deref(),
            Some("recheck.rounds")
        );
        let escape = RecheckOptions { index: Some("../etc".into()), ..Default::default() };
        assert!(escape.apply(base.clone(), &Indexes::new(Some("/tmp".into()), RetrievalChoice::default())).is_err());
    }

    #[test]
    fn a_retrieval_is_checked_and_needs_an_index() {
        let base = AskOptions::builtin().unwrap();
        let sparse = RecheckOptions { retrieval: Some("sparse".into()), ..Default::default() };
        let err = sparse.apply(base.clone(), &Indexes::default()).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("recheck.retrieval"));
        assert!(err.message.contains("bm25, dense or hybrid"), "{}", err.message);
        let no_index = RecheckOptions { retrieval: Some("dense".into()), ..Default::default() };
        let err = no_index.apply(base.clone(), &Indexes::default()).unwrap_err();
        assert!(err.message.contains("searches no index"), "{}", err.message);
        // An index without vectors asked for dense search is refused, naming the field.
        let root = tempfile::tempdir().unwrap();
        let mut index = crate::corpus::CorpusIndex::open_or_create(&root.path().join("plain")).unwrap();
        let doc =
            crate::corpus::Document { id: "d".into(), title: String::new(), text: "Text.".into(), sentences: None };
        index.update(&[doc], &Default::default(), false, &|_| ()).unwrap();
        let dense =
            RecheckOptions { index: Some("plain".into()), retrieval: Some("dense".into()), ..Default::default() };
        let indexes = Indexes::new(Some(root.path().to_path_buf()), RetrievalChoice::default());
        let err = dense.apply(base.clone(), &indexes).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("recheck.index"));
        assert!(err.message.contains("no vectors"), "{}", err.message);
        let bm25 = RecheckOptions { index: Some("plain".into()), retrieval: Some("bm25".into()), ..Default::default() };
        let applied = bm25.apply(base, &indexes).unwrap();
        let retriever = applied.retriever.unwrap();
        assert_eq!(retriever.retrieval().map(|r| r.mode), Some(Mode::Bm25));
    }
}
