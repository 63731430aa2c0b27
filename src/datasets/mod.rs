//! Loaders for the public evaluation datasets (kept outside the repository, under a
//! data root such as `../shared/evals`) and our own JSONL sets.
//!
//! Every loader yields [`Item`]s: a question, its gold answer and, for reasoning
//! traces with a known first mistake, the steps and the mistake's index.

mod bbm;
mod jsonl;
pub mod scifact;
mod snowball;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use bbm::load_bbm;
pub use jsonl::load_jsonl;
pub use snowball::load_snowball;

/// Errors reading a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A record is malformed.
    #[error("{path}:{line}: {detail}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line (or item number for JSON lists).
        line: usize,
        /// What was wrong.
        detail: String,
    },
}

/// One evaluation item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Stable id: `FILE_STEM:N` with N the 0-based position in the file.
    pub id: String,
    /// The question as the model sees it.
    pub question: String,
    /// The gold answer.
    pub gold: String,
    /// A reasoning trace for the question (BIG-Bench Mistake), one step an entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
    /// 0-based index of the trace's first wrong step; `None` when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mistake_index: Option<usize>,
    /// Documents holding the gold evidence (SciFact claims for the verify protocol).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence_docs: Vec<String>,
}

/// Which loader reads a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loader {
    /// Snowballed-hallucination JSON lists (primality objects, senator and graph strings).
    Snowball,
    /// BIG-Bench Mistake JSONL (`input`, `steps`, `target`, `mistake_index`).
    Bbm,
    /// Generic JSONL with `question` and `answer` fields.
    Jsonl,
    /// SciFact claims with evidence, as yes/no questions.
    Scifact,
    /// Every SciFact claim with its gold label (`SUPPORT`, `CONTRADICT`, or `NOT ENOUGH
    /// INFO` when it has no evidence) and evidence documents, for the verify protocol.
    ScifactLabels,
}

/// Load `path` with `loader`.
pub fn load(loader: Loader, path: &Path) -> Result<Vec<Item>, DatasetError> {
    match loader {
        Loader::Snowball => load_snowball(path),
        Loader::Bbm => load_bbm(path),
        Loader::Jsonl => load_jsonl(path),
        Loader::Scifact => scifact::load_claim_items(path),
        Loader::ScifactLabels => scifact::load_labelled_claims(path),
    }
}

pub(crate) fn read(path: &Path) -> Result<String, DatasetError> {
    crate::files::read_to_string(path, crate::files::FileKind::Document)
        .map_err(|e| DatasetError::Io { path: path.to_path_buf(), source: e.into_io() })
}

pub(crate) fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into())
}

/// Parse JSONL, calling `each` with the value of every non-blank line; an error from
/// either names the file and the 1-based line.
pub(crate) fn for_each_line(
    path: &Path,
    text: &str,
    mut each: impl FnMut(serde_json::Value) -> Result<(), String>,
) -> Result<(), DatasetError> {
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let malformed = |detail: String| DatasetError::Malformed { path: path.to_path_buf(), line: i + 1, detail };
        let value = serde_json::from_str(line).map_err(|e| malformed(format!("not JSON: {e}")))?;
        each(value).map_err(malformed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn loaders_read_each_format() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "primality_testing.json",
            r#"[{"question": "Is 7 a prime number?", "number": 7, "answer": true}]"#,
        );
        let items = load(Loader::Snowball, &p).unwrap();
        assert_eq!((items[0].id.as_str(), items[0].gold.as_str()), ("primality_testing:0", "yes"));
        let p = write(dir.path(), "senator_search.json", r#"["Was there ever a US senator ...?"]"#);
        assert_eq!(load(Loader::Snowball, &p).unwrap()[0].gold, "no");
        let p = write(
            dir.path(),
            "word_sorting.jsonl",
            r#"{"input": "b a", "steps": ["s0", "s1"], "answer": "b a", "target": "a b", "mistake_index": 1}"#,
        );
        let item = &load(Loader::Bbm, &p).unwrap()[0];
        assert!(item.question.ends_with("List: b a"));
        assert_eq!((item.mistake_index, item.steps.len()), (Some(1), 2));
        let p = write(
            dir.path(),
            "own.jsonl",
            "{\"question\": \"2+2?\", \"answer\": 4}\n\n{\"id\": \"x\", \"question\": \"q\", \"answer\": \"a\"}\n",
        );
        let items = load(Loader::Jsonl, &p).unwrap();
        assert_eq!((items[0].gold.as_str(), items[1].id.as_str()), ("4", "own:x"));
    }

    #[test]
    fn bad_records_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                Loader::Jsonl,
                "a.jsonl",
                "{\"question\": \"q\", \"answer\": \"a\"}\n{\"question\": \"q\"}\n",
                ":2:",
                "answer",
            ),
            (Loader::Jsonl, "b.jsonl", "not json\n", ":1:", "not JSON"),
            (
                Loader::Bbm,
                "c.jsonl",
                r#"{"input": "i", "steps": ["s"], "target": "t", "mistake_index": 3}"#,
                ":1:",
                "past the last",
            ),
            (Loader::Snowball, "d.json", "[3]", ":1:", "neither a string"),
            (Loader::Snowball, "e.json", "{", "e.json", "not a JSON list"),
        ];
        for (loader, name, text, place, what) in cases {
            let err = load(loader, &write(dir.path(), name, text)).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains(place) && err.contains(what), "{name}: {err}");
        }
        let err = load(Loader::Jsonl, &dir.path().join("missing.jsonl")).unwrap_err().to_string();
        assert!(err.contains("missing.jsonl"), "{err}");
    }
}
