//! The home directory: where recheck keeps its trace store, model cache and indexes.

use std::path::{Path, PathBuf};

mod remote;

pub use remote::{serve_file, Remote, RemoteError, ServeFile};

/// Why the home directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("home directory {path}: {detail}")]
pub struct HomeError {
    /// The directory.
    pub path: PathBuf,
    /// What was wrong.
    pub detail: String,
}

/// The resolved home directory.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// `explicit` (from `--home` or `RECHECK_HOME`), else the platform data dir.
    pub fn resolve(explicit: Option<PathBuf>) -> Result<Self, HomeError> {
        let root = match explicit {
            Some(p) => p,
            None => dirs::data_dir().map(|d| d.join("recheck")).ok_or_else(|| HomeError {
                path: PathBuf::from("?"),
                detail: "no platform data directory is known".into(),
            })?,
        };
        Ok(Self { root })
    }

    /// Create the directory if needed and check that it is a writable directory.
    pub fn ensure(&self) -> Result<(), HomeError> {
        let err = |detail: String| HomeError { path: self.root.clone(), detail };
        if self.root.exists() && !self.root.is_dir() {
            return Err(err("exists but is not a directory".into()));
        }
        std::fs::create_dir_all(&self.root).map_err(|e| err(format!("cannot create it: {e}")))?;
        // Probe writability up front so a later write cannot fail halfway through a run.
        let probe = self.root.join(".write-probe");
        std::fs::write(&probe, b"ok").map_err(|e| err(format!("not writable: {e}")))?;
        let _ = std::fs::remove_file(&probe);
        std::fs::read_dir(&self.root).map_err(|e| err(format!("not readable: {e}")))?;
        Ok(())
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The sled trace store.
    pub fn traces_dir(&self) -> PathBuf {
        self.root.join("traces")
    }

    /// Cached model files.
    pub fn models_dir(&self) -> PathBuf {
        self.root.join("models")
    }

    /// Corpus indexes.
    pub fn indexes_dir(&self) -> PathBuf {
        self.root.join("indexes")
    }
}
