//! Salvage: a new store built from whatever a damaged one still holds.
//!
//! sled 0.34 cannot open some damaged files at all (it panics), so salvage reads the
//! damaged store two ways: through sled, on a copy, when sled can open it; otherwise
//! by scanning its files for the records' JSON, which sled keeps as written (its values
//! are stored unframed and uncompressed). Of several versions of a run record the one
//! with the highest `seq` is kept, as recovery keeps it; then the write-ahead log is
//! applied on top, by the same rule. The damaged store is only read, never changed.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

use super::{indexed_key, recovery::catch_quietly, TraceStore};
use crate::trace::{wal, RunRecord, RunStatus, StepRecord, TraceError};

/// What a salvage recovered.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SalvageReport {
    /// Why sled could not open the damaged store's files, when it could not (they are
    /// scanned either way).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sled_error: Option<String>,
    /// Run records recovered from the store's files (before the log).
    pub runs: usize,
    /// Steps recovered from them.
    pub steps: usize,
    /// Distinct run configs recovered from them.
    pub configs: usize,
    /// Records of the write-ahead log applied on top.
    pub logged: usize,
    /// Records found that did not decode, skipped.
    pub unreadable: usize,
    /// Runs in the new store that cannot be read whole (their config was not found).
    pub runs_without_config: usize,
    /// Runs in the new store.
    pub total_runs: usize,
}

/// Which of two versions of a run record is kept: the higher `seq`, and at equal
/// `seq` (records before schema 4 all have 0) a finished one over one still running.
type Rank = (u64, bool);

/// The records read from a damaged store's files.
#[derive(Default)]
pub(super) struct Found {
    /// Run records by id, raw, with their rank.
    pub(super) runs: HashMap<[u8; 16], (Rank, Vec<u8>)>,
    steps: HashMap<[u8; 20], Vec<u8>>,
    configs: HashMap<[u8; 32], Vec<u8>>,
    unreadable: usize,
}

impl TraceStore {
    /// Build a new store in `into` (which must not exist yet) from every record that
    /// can still be read in the store at `damaged` and its write-ahead log. `damaged`
    /// is only read.
    pub fn salvage(damaged: &Path, into: &Path) -> Result<SalvageReport, TraceError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TraceError::Io { path: path.clone(), source }
        };
        if into.exists() {
            let source = std::io::Error::new(std::io::ErrorKind::AlreadyExists, "already exists");
            return Err(TraceError::Io { path: into.to_path_buf(), source });
        }
        if !damaged.join("db").is_file() && !damaged.join(wal::FILE).is_file() {
            return Err(TraceError::Store { path: damaged.to_path_buf(), detail: "no trace store here".into() });
        }
        let mut report = SalvageReport::default();
        // Both ways, merged: sled drops what follows damage in its files (and may not
        // open them at all), while the scan finds every record still written there.
        let mut found = scan_files(damaged).map_err(io(damaged))?;
        match read_with_sled(damaged) {
            Ok(through_sled) => found.merge(through_sled),
            Err(why) => report.sled_error = Some(why),
        }
        let store = TraceStore::open(into)?;
        // Configs and steps first, runs last: a run is visible once all it names is in.
        for (hash, json) in &found.configs {
            store.configs.restore(*hash, json)?;
        }
        for (key, bytes) in &found.steps {
            store.steps.insert(key, bytes.as_slice()).map_err(|e| store.sled_err(e))?;
        }
        for (_, bytes) in found.runs.values() {
            match serde_json::from_slice::<RunRecord>(bytes) {
                Ok(run) => {
                    store.put_run_unless_older(&run, bytes)?;
                }
                Err(_) => found.unreadable += 1,
            }
        }
        (report.runs, report.steps, report.configs) = (found.runs.len(), found.steps.len(), found.configs.len());
        let log = std::fs::read(damaged.join(wal::FILE)).or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Ok(Vec::new()),
            _ => Err(e),
        });
        for (kind, bytes) in wal::parse(&log.map_err(io(&damaged.join(wal::FILE)))?).records {
            match store.apply_logged(kind, &bytes)? {
                super::recovery::Applied::Undecodable(_) => found.unreadable += 1,
                _ => report.logged += 1,
            }
        }
        report.unreadable = found.unreadable;
        store.recover_dead_runs()?;
        store.checkpoint()?;
        let (runs, bad) = store.readable_runs()?;
        report.total_runs = runs.len() + bad.len();
        report.runs_without_config = bad.len();
        Ok(report)
    }

    /// Whether a process holds the store in `path` (sled's lock on its `db` file).
    pub fn is_held(path: &Path) -> bool {
        use std::os::fd::AsRawFd as _;
        let Ok(file) = std::fs::File::open(path.join("db")) else { return false };
        // SAFETY: a valid open descriptor; LOCK_NB never blocks.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if locked == 0 {
            // SAFETY: as above; the lock is ours to release.
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
            return false;
        }
        std::io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK)
    }
}

/// The records of the store at `dir`, read through sled on a copy (sled writes on open).
fn read_with_sled(dir: &Path) -> Result<Found, String> {
    let copy = tempfile::Builder::new().prefix("recheck-salvage").tempdir().map_err(|e| e.to_string())?;
    // The log is applied separately; kept-aside logs and the manifest are not sled's.
    super::copy_dir(dir, copy.path(), &[wal::FILE, super::recovery::MANIFEST]).map_err(|e| e.to_string())?;
    let read = || -> Result<Found, String> {
        let db = sled::Config::new().path(copy.path()).open().map_err(|e| e.to_string())?;
        let mut found = Found::default();
        let tree = |name: &str| db.open_tree(name).map_err(|e| e.to_string());
        for kv in tree("runs")?.iter() {
            let (_, v) = kv.map_err(|e| e.to_string())?;
            found.add_run(&v);
        }
        for kv in tree("steps")?.iter() {
            let (_, v) = kv.map_err(|e| e.to_string())?;
            found.add_step(&v);
        }
        for kv in tree("configs")?.iter() {
            let (k, v) = kv.map_err(|e| e.to_string())?;
            match <[u8; 32]>::try_from(k.as_ref()) {
                Ok(hash) => {
                    found.configs.insert(hash, v.to_vec());
                }
                Err(_) => found.unreadable += 1,
            }
        }
        Ok(found)
    };
    catch_quietly(read).unwrap_or_else(|panic| Err(format!("sled panicked: {panic}")))
}

impl Found {
    /// Add what `other` found: the newer version of each run, every step and config.
    fn merge(&mut self, other: Found) {
        for (id, (rank, bytes)) in other.runs {
            if self.runs.get(&id).is_none_or(|(have, _)| rank >= *have) {
                self.runs.insert(id, (rank, bytes));
            }
        }
        self.steps.extend(other.steps);
        self.configs.extend(other.configs);
        self.unreadable += other.unreadable;
    }

    fn add_run(&mut self, bytes: &[u8]) -> bool {
        let Ok(run) = serde_json::from_slice::<RunRecord>(bytes) else { return false };
        let rank = (run.seq, run.status != RunStatus::Running);
        if self.runs.get(run.id.as_bytes()).is_none_or(|(have, _)| rank >= *have) {
            self.runs.insert(*run.id.as_bytes(), (rank, bytes.to_vec()));
        }
        true
    }

    fn add_step(&mut self, bytes: &[u8]) -> bool {
        let Ok(step) = serde_json::from_slice::<StepRecord>(bytes) else { return false };
        self.steps.insert(indexed_key(step.run_id, step.index), bytes.to_vec());
        true
    }
}

/// The records found by scanning every file under `dir` (but the logs) for JSON
/// objects: run and step records by their shape, configs by the hash runs refer to.
pub(super) fn scan_files(dir: &Path) -> std::io::Result<Found> {
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    let mut found = Found::default();
    for file in &files {
        let bytes = std::fs::read(file)?;
        for (start, end) in objects_at(&bytes, b"{\"schema\":") {
            let record = &bytes[start..end];
            if !(found.add_run(record) || found.add_step(record)) {
                found.unreadable += 1;
            }
        }
    }
    // Configs: any JSON object whose SHA-256 a run record names.
    let wanted: HashSet<[u8; 32]> = found
        .runs
        .values()
        .filter_map(|(_, bytes)| serde_json::from_slice::<RunRecord>(bytes).ok())
        .filter_map(|run| crate::trace::configs::referenced(&run.config))
        .collect();
    // Each file is read again rather than all kept: a store can be larger than memory.
    for file in &files {
        if found.configs.len() == wanted.len() {
            break;
        }
        let bytes = std::fs::read(file)?;
        for (start, end) in objects_at(&bytes, b"{\"") {
            let hash: [u8; 32] = Sha256::digest(&bytes[start..end]).into();
            if wanted.contains(&hash) {
                found.configs.insert(hash, bytes[start..end].to_vec());
            }
        }
    }
    Ok(found)
}

/// Every file under `dir` but the write-ahead logs.
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_files(&entry.path(), out)?;
        } else if kind.is_file() && !entry.file_name().to_string_lossy().starts_with(wal::FILE) {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// The byte ranges of the JSON objects that start with `prefix` in `bytes`.
fn objects_at<'a>(bytes: &'a [u8], prefix: &'a [u8]) -> impl Iterator<Item = (usize, usize)> + 'a {
    let mut at = 0;
    std::iter::from_fn(move || loop {
        let found = bytes.get(at..)?.windows(prefix.len()).position(|w| w == prefix)?;
        let start = at + found;
        at = start + 1;
        let mut objects = serde_json::Deserializer::from_slice(&bytes[start..]).into_iter::<serde::de::IgnoredAny>();
        if let Some(Ok(_)) = objects.next() {
            return Some((start, start + objects.byte_offset()));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_found_among_other_bytes() {
        let bytes = b"\x00\x01{\"schema\":1,\"a\":{\"b\":2}}\xff\xfe{\"schema\":2 broken{\"schema\":3}";
        let found: Vec<&[u8]> = objects_at(bytes, b"{\"schema\":").map(|(s, e)| &bytes[s..e]).collect();
        assert_eq!(found, vec![&b"{\"schema\":1,\"a\":{\"b\":2}}"[..], &b"{\"schema\":3}"[..]]);
    }
}
