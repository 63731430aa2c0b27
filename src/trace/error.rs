//! Errors of the trace store.

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard},
};

/// Everything that can go wrong reading or writing traces.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// sled could not open or write the store.
    #[error("trace store at {path}: {detail}")]
    Store {
        /// Store directory.
        path: PathBuf,
        /// What sled said.
        detail: String,
    },
    /// sled cannot read the store's files: they were damaged (a disk fault, a partial
    /// copy, an edit). Nothing was changed; a salvage builds a new store from what can
    /// still be read.
    #[error("trace store at {path} is damaged: {detail}")]
    Damaged {
        /// Store directory.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// Another recheck process holds the store's lock.
    #[error("trace store at {path} is in use by another recheck process")]
    InUse {
        /// Store directory.
        path: PathBuf,
    },
    /// The store or a record was written by a newer recheck.
    #[error(
        "{what} uses trace schema version {found}, but this recheck reads up to version {supported}; upgrade recheck"
    )]
    NewerSchema {
        /// Where the version was found.
        what: String,
        /// Version found.
        found: u32,
        /// Highest version this build reads.
        supported: u32,
    },
    /// A stored record could not be decoded.
    #[error("corrupt trace record {key}: {detail}")]
    Corrupt {
        /// The record's key, printable.
        key: String,
        /// Decode error.
        detail: String,
    },
    /// No run matches the id or prefix given.
    #[error("no run with id {0:?} (see `recheck traces list`)")]
    NoSuchRun(String),
    /// A prefix matches more than one run.
    #[error("run id prefix {prefix:?} matches {count} runs; give more characters")]
    AmbiguousRun {
        /// The prefix given.
        prefix: String,
        /// How many runs it matches.
        count: usize,
    },
    /// A JSONL file to import is malformed.
    #[error("{path}:{line}: {detail}")]
    BadImport {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        detail: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// `mutex` locked, or an error of the store at `path` naming `what` when a holder that
/// panicked poisoned it.
pub(super) fn locked<'a, T>(mutex: &'a Mutex<T>, path: &Path, what: &str) -> Result<MutexGuard<'a, T>, TraceError> {
    mutex.lock().map_err(|_| TraceError::Store { path: path.to_path_buf(), detail: format!("{what} poisoned") })
}
