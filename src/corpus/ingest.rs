//! Reading corpus sources: JSONL files, directories of Markdown or text, single files.
//!
//! Bad input (malformed lines, missing fields, non-UTF-8 files, empty files, duplicate
//! ids) never stops a batch: each problem is reported with its file and line, and the
//! good documents still come through.

use std::{
    collections::HashSet,
    fmt,
    path::{Path, PathBuf},
};

use serde_json::Value;

use super::{CorpusError, Document};

/// Which JSONL fields hold what.
#[derive(Debug, Clone)]
pub struct JsonlFields {
    /// Id field (string or number).
    pub id: String,
    /// Title field; missing titles are empty.
    pub title: String,
    /// Text field: a string, or an array of sentences.
    pub text: String,
}

impl Default for JsonlFields {
    fn default() -> Self {
        Self { id: "id".into(), title: "title".into(), text: "text".into() }
    }
}

/// One problem found in the input.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BadInput {
    /// The file.
    pub path: PathBuf,
    /// 1-based line, for line-oriented files.
    pub line: Option<usize>,
    /// What was wrong.
    pub reason: String,
}

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.reason),
            None => write!(f, "{}: {}", self.path.display(), self.reason),
        }
    }
}

/// Documents read from sources, plus every problem met.
#[derive(Debug, Default)]
pub struct Ingested {
    /// Good documents, first occurrence of each id.
    pub documents: Vec<Document>,
    /// Problems, in the order met.
    pub bad: Vec<BadInput>,
    /// Bytes of input read.
    pub bytes: u64,
}

/// Read every source. A missing source is an error; bad content is collected in `bad`.
pub fn read_sources(sources: &[PathBuf], fields: &JsonlFields) -> Result<Ingested, CorpusError> {
    let mut out = Ingested::default();
    let mut seen = HashSet::new();
    for source in sources {
        let meta = std::fs::metadata(source).map_err(|e| CorpusError::Io { path: source.clone(), source: e })?;
        if meta.is_dir() {
            let mut files = Vec::new();
            collect_text_files(source, &mut files)?;
            files.sort();
            for file in files {
                let id = file.strip_prefix(source).unwrap_or(&file).to_string_lossy().replace('\\', "/");
                read_text_file(&file, id, &mut out, &mut seen);
            }
        } else if is_jsonl(source) {
            read_jsonl(source, fields, &mut out, &mut seen)?;
        } else {
            let id = source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            read_text_file(source, id, &mut out, &mut seen);
        }
    }
    Ok(out)
}

fn is_jsonl(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "jsonl" || e == "ndjson")
}

/// The text files under `dir`. Symbolic links are followed, but every directory and
/// file is taken once (by its real path), so a link loop cannot repeat a document.
fn collect_text_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CorpusError> {
    let mut visited = HashSet::new();
    let mut taken = HashSet::new();
    collect_once(dir, out, &mut visited, &mut taken)
}

fn collect_once(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    visited: &mut HashSet<PathBuf>,
    taken: &mut HashSet<PathBuf>,
) -> Result<(), CorpusError> {
    let real = std::fs::canonicalize(dir).map_err(|e| CorpusError::Io { path: dir.to_path_buf(), source: e })?;
    if !visited.insert(real) {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| CorpusError::Io { path: dir.to_path_buf(), source: e })?;
    for entry in entries {
        let path = entry.map_err(|e| CorpusError::Io { path: dir.to_path_buf(), source: e })?.path();
        if path.is_dir() {
            collect_once(&path, out, visited, taken)?;
        } else if path.extension().is_some_and(|e| e == "md" || e == "txt" || e == "markdown") {
            // A broken link has no real path; it is skipped like any unreadable entry.
            if std::fs::canonicalize(&path).is_ok_and(|real| taken.insert(real)) {
                out.push(path);
            }
        }
    }
    Ok(())
}

fn bad(path: &Path, line: Option<usize>, reason: impl Into<String>) -> BadInput {
    BadInput { path: path.to_path_buf(), line, reason: reason.into() }
}

fn push_doc(doc: Document, path: &Path, line: Option<usize>, out: &mut Ingested, seen: &mut HashSet<String>) {
    if doc.text.trim().is_empty() {
        out.bad.push(bad(path, line, format!("document {:?} has empty text", doc.id)));
    } else if !seen.insert(doc.id.clone()) {
        out.bad.push(bad(path, line, format!("duplicate id {:?}; the first one is kept", doc.id)));
    } else {
        out.documents.push(doc);
    }
}

/// A Markdown or text file: one document; title = first Markdown heading, if any.
fn read_text_file(path: &Path, id: String, out: &mut Ingested, seen: &mut HashSet<String>) {
    let bytes = match crate::files::read(path, crate::files::FileKind::Document) {
        Ok(b) => b,
        Err(e) => return out.bad.push(bad(path, None, format!("cannot read: {}", e.problem))),
    };
    out.bytes += bytes.len() as u64;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return out.bad.push(bad(
                path,
                None,
                format!("not UTF-8 (invalid byte at offset {})", e.utf8_error().valid_up_to()),
            ))
        }
    };
    if text.trim().is_empty() {
        return out.bad.push(bad(path, None, "empty file"));
    }
    let title = text.lines().find_map(|l| l.strip_prefix("# ")).map(|t| t.trim().to_string()).unwrap_or_default();
    push_doc(Document { id, title, text, sentences: None }, path, None, out, seen);
}

fn read_jsonl(
    path: &Path,
    fields: &JsonlFields,
    out: &mut Ingested,
    seen: &mut HashSet<String>,
) -> Result<(), CorpusError> {
    let io = |e: crate::files::FileError| CorpusError::Io { path: e.path.clone(), source: e.into_io() };
    let mut any = false;
    for line in crate::files::Lines::open(path).map_err(io)? {
        let (line_no, buf) = line.map_err(io)?;
        out.bytes += buf.len() as u64 + 1;
        let Ok(line) = std::str::from_utf8(&buf) else {
            out.bad.push(bad(path, Some(line_no), "not UTF-8"));
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        any = true;
        match parse_line(line, fields) {
            Ok(doc) => push_doc(doc, path, Some(line_no), out, seen),
            Err(reason) => out.bad.push(bad(path, Some(line_no), reason)),
        }
    }
    if !any {
        out.bad.push(bad(path, None, "empty file"));
    }
    Ok(())
}

fn parse_line(line: &str, fields: &JsonlFields) -> Result<Document, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("malformed JSON: {e}"))?;
    let obj = value.as_object().ok_or("line is not a JSON object")?;
    let id = match obj.get(&fields.id) {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(format!("id field {:?} must be a non-empty string or a number", fields.id)),
        None => return Err(format!("missing id field {:?}", fields.id)),
    };
    let title = match obj.get(&fields.title) {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    match obj.get(&fields.text) {
        Some(Value::String(s)) => Ok(Document { id, title, text: s.clone(), sentences: None }),
        Some(Value::Array(items)) => {
            let sentences: Option<Vec<String>> = items.iter().map(|v| v.as_str().map(str::to_string)).collect();
            let sentences = sentences.ok_or_else(|| format!("text field {:?} must hold only strings", fields.text))?;
            Ok(Document::from_sentences(id, title, &sentences))
        }
        Some(_) => Err(format!("text field {:?} must be a string or an array of strings", fields.text)),
        None => Err(format!("missing text field {:?}", fields.text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_symlink_loop_indexes_each_file_once() {
        // Regression: `mkdir -p d/sub; ln -s ../ d/sub/up` indexed one file 41 times.
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("d");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("a.md"), "Alpha.").unwrap();
        std::fs::write(d.join("sub/b.md"), "Beta.").unwrap();
        std::os::unix::fs::symlink("../", d.join("sub/up")).unwrap();
        std::os::unix::fs::symlink(d.join("a.md"), d.join("alias.md")).unwrap();
        let mut files = Vec::new();
        collect_text_files(&d, &mut files).unwrap();
        assert_eq!(files.len(), 2, "{files:?}");
    }
}
