//! Loaders for the public evaluation datasets (kept outside the repository, under a
//! data root such as `../shared/evals`).

pub mod scifact;

use std::path::PathBuf;

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
        /// 1-based line.
        line: usize,
        /// What was wrong.
        detail: String,
    },
}
