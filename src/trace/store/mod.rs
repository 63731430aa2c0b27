//! The sled-backed trace store.
//!
//! Layout: tree `runs` maps a run id (16 bytes, time-ordered) to its JSON record;
//! tree `steps` maps run id ++ step index (u32 big-endian) to a step, so a prefix
//! scan reads a run's steps in order. `members` maps a group run id ++ slot index to
//! the newest run filling that slot (an experiment's items). `meta` holds the store's
//! schema version.
//! sled's file lock means one process writes a store at a time; a run still marked
//! `running` when a process opens the store was left by a dead process and is
//! marked `incomplete`. `configs` holds each distinct run config once, by content hash
//! ([`super::configs`]). Durability comes from a write-ahead log beside sled's files
//! ([`super::wal`]): a record is in sled at once and on disk once the log is synced.

mod commit;
mod read;
mod recovery;
mod runs;
mod salvage;
#[cfg(test)]
mod tests;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use serde::{de::DeserializeOwned, Serialize};

use super::{
    configs::Configs,
    wal::{Kind, Wal},
    RunId, RunRecord, TraceError, SCHEMA_VERSION,
};
use commit::GroupCommit;
pub use read::{parse_time, ListedRun, Listing, ListingFilter};
pub use recovery::LogRecovery;
pub use salvage::SalvageReport;

const META_SCHEMA_KEY: &[u8] = b"schema_version";

/// A handle on the trace store; cheap to clone and share across tasks.
#[derive(Clone)]
pub struct TraceStore {
    db: sled::Db,
    runs: sled::Tree,
    steps: sled::Tree,
    members: sled::Tree,
    configs: Arc<Configs>,
    path: PathBuf,
    commit: Arc<GroupCommit>,
    durability: Durability,
    /// For a snapshot: the copy's directory, removed when the last handle goes.
    snapshot: Option<Arc<tempfile::TempDir>>,
    /// Told of every run that finishes (see [`TraceStore::on_finish`]).
    finished: Arc<std::sync::OnceLock<FinishHook>>,
    /// The write-ahead log; `None` for a store in memory, which flushes sled instead.
    wal: Option<Arc<Wal>>,
    /// The records of runs this process started and has not finished, as stored (the
    /// config a reference): finishing one changes it without reading it back.
    running: Arc<Mutex<std::collections::HashMap<RunId, RunRecord>>>,
    /// What opening the store found damaged in its write-ahead log, if anything.
    recovery: Option<Arc<LogRecovery>>,
    /// Runs in sled, counted at open and kept since (runs are never deleted).
    known_runs: Arc<std::sync::atomic::AtomicU64>,
    /// Where the checkpoint writes the manifest (`None` in memory and in snapshots).
    manifest: Option<PathBuf>,
    /// The first write that failed, if one did (see [`TraceStore::write_failure`]).
    health: Arc<Health>,
}

/// Whether a write has failed: once one has, later writes may not be durable (sled
/// keeps its error; an fsync that failed may have dropped pages), so the store says so.
#[derive(Default)]
struct Health {
    failure: std::sync::OnceLock<String>,
    changed: tokio::sync::Notify,
}

/// A function told of each run that finishes.
type FinishHook = Box<dyn Fn(RunId) + Send + Sync>;

/// How eagerly the store's writes reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every step is written to the store's log at once, so a killed process loses
    /// none, and synced to disk before the run's next model call is made and before the
    /// run ends (the default): one fsync per model call, and a machine that fails loses
    /// at most what a run did since its last call began. Concurrent runs share fsyncs.
    #[default]
    EveryStep,
    /// Steps are written at once but not synced before model calls: they reach the disk
    /// with sled's background flush every `ms` milliseconds, or with their run's end,
    /// which is still synced. A machine that fails can lose the last `ms` milliseconds
    /// of a run still going. For serving many requests, where each fsync's CPU counts.
    Periodic {
        /// Flush interval.
        ms: u64,
    },
}

impl std::fmt::Debug for TraceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceStore").field("path", &self.path).finish()
    }
}

impl TraceStore {
    /// Open (or create) the store in directory `path`, every step durable before the next.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TraceError> {
        Self::open_with(path, Durability::EveryStep)
    }

    /// Open (or create) the store in directory `path` with the given durability. A
    /// store whose files sled cannot read is [`TraceError::Damaged`] (sled's own panic
    /// on such a file is caught and nothing is printed).
    pub fn open_with(path: impl AsRef<Path>, durability: Durability) -> Result<Self, TraceError> {
        let path = path.as_ref().to_path_buf();
        recovery::guarded(&path, || Self::open_unguarded(&path, durability))
    }

    fn open_unguarded(path: &Path, durability: Durability) -> Result<Self, TraceError> {
        let path = path.to_path_buf();
        // With every step durable in the write-ahead log, sled's own periodic flush
        // (every 500 ms by default: a write, an fsync and wake-ups of its thread pool)
        // buys nothing; sled is flushed when the log is folded into it and when the
        // store closes.
        let flush_every = match durability {
            Durability::EveryStep => None,
            Durability::Periodic { ms } => Some(ms.max(1)),
        };
        let config = sled::Config::new().path(&path).flush_every_ms(flush_every);
        // A store just closed by this process can hold sled's file lock a moment
        // longer (a sled I/O thread finishing its last write keeps the file open), so
        // the lock is tried for up to half a second before the store is said in use.
        let mut tries = 0;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(e) if e.to_string().contains("could not acquire lock") => {
                    tries += 1;
                    if tries >= 20 {
                        return Err(TraceError::InUse { path: path.clone() });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                Err(e) => return Err(open_error(&path, e)),
            }
        };
        let mut store = Self::from_db(db, path.clone())?;
        store.durability = durability;
        let manifest = path.join(recovery::MANIFEST);
        store.check_manifest(&manifest, true)?;
        store.manifest = Some(manifest);
        store.check_schema()?;
        store.attach_wal(&path)?;
        store.recover_dead_runs()?;
        Ok(store)
    }

    /// A read-only view of the store in `path` as it is now, for when it cannot be opened
    /// itself: another process holds it (a long `eval run`), or it is not writable. The
    /// directory is copied to a temporary one and the copy opened, as after a crash: it
    /// holds every step flushed before the copy; runs still being written show as
    /// `running`. Writes go to the copy and are lost with it. The copy costs the store's
    /// size in disk and time.
    pub fn open_snapshot(path: impl AsRef<Path>) -> Result<Self, TraceError> {
        let path = path.as_ref().to_path_buf();
        let io = |e: std::io::Error| TraceError::Store { path: path.clone(), detail: format!("snapshot: {e}") };
        if !path.is_dir() {
            return Err(TraceError::Store { path: path.clone(), detail: "no trace store here".into() });
        }
        let copy = tempfile::Builder::new().prefix("recheck-snapshot").tempdir().map_err(io)?;
        // The manifest first: copied before sled's files, it cannot claim runs the
        // copy of them lacks unless the copy itself is damaged.
        let manifest = path.join(recovery::MANIFEST);
        if manifest.is_file() {
            std::fs::copy(&manifest, copy.path().join(recovery::MANIFEST)).map_err(io)?;
        }
        copy_dir(&path, copy.path(), &[recovery::MANIFEST]).map_err(io)?;
        let open = || {
            let db = sled::Config::new().path(copy.path()).open().map_err(|e| open_error(&path, e))?;
            let mut store = Self::from_db(db, path.clone())?;
            store.check_manifest(&copy.path().join(recovery::MANIFEST), false)?;
            store.check_schema()?;
            store.attach_wal(copy.path())?;
            Ok(store)
        };
        let mut store = recovery::guarded(&path, open)?;
        store.snapshot = Some(Arc::new(copy));
        Ok(store)
    }

    /// Whether this is a snapshot ([`TraceStore::open_snapshot`]).
    pub fn is_snapshot(&self) -> bool {
        self.snapshot.is_some()
    }

    /// A store that lives in memory only (tests, benchmarks).
    pub fn temporary() -> Result<Self, TraceError> {
        let path = PathBuf::from("<temporary>");
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(|e| TraceError::Store { path: path.clone(), detail: e.to_string() })?;
        let store = Self::from_db(db, path)?;
        store.check_schema()?;
        Ok(store)
    }

    fn from_db(db: sled::Db, path: PathBuf) -> Result<Self, TraceError> {
        let err = |e: sled::Error| TraceError::Store { path: path.clone(), detail: e.to_string() };
        let runs = db.open_tree("runs").map_err(err)?;
        let steps = db.open_tree("steps").map_err(err)?;
        let members = db.open_tree("members").map_err(err)?;
        let configs = Arc::new(Configs::new(db.open_tree("configs").map_err(err)?, path.clone()));
        Ok(Self {
            db,
            runs,
            steps,
            members,
            configs,
            path,
            commit: Arc::default(),
            durability: Durability::EveryStep,
            snapshot: None,
            finished: Arc::default(),
            wal: None,
            running: Arc::default(),
            recovery: None,
            known_runs: Arc::default(),
            manifest: None,
            health: Arc::default(),
        })
    }

    /// Flush sled's own log (a checkpoint, the schema mark, an import; the store in
    /// memory, which has no write-ahead log).
    fn flush_sled(&self) -> Result<(), TraceError> {
        self.db.flush().map(|_| ()).map_err(|e| self.sled_err(e))
    }

    /// An I/O error of the write-ahead log at `file`.
    fn wal_err(&self, file: &Path, e: std::io::Error) -> TraceError {
        TraceError::Store { path: self.path.clone(), detail: format!("write-ahead log {}: {e}", file.display()) }
    }

    /// Why the first failed write failed, if one has: the store may not be writable
    /// any more (a full disk, a failed fsync), and its holder should stop or reopen it.
    pub fn write_failure(&self) -> Option<String> {
        self.health.failure.get().cloned()
    }

    /// Resolves with [`TraceStore::write_failure`] once a write fails.
    pub async fn write_failed(&self) -> String {
        loop {
            let changed = self.health.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(why) = self.health.failure.get() {
                return why.clone();
            }
            changed.await;
        }
    }

    /// Note that a write failed with `e`, and hand `e` back.
    fn write_error(&self, e: TraceError) -> TraceError {
        if self.health.failure.set(e.to_string()).is_ok() {
            tracing::error!("a write to the trace store failed: {e}");
            self.health.changed.notify_waiters();
        }
        e
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sled_err(&self, e: sled::Error) -> TraceError {
        TraceError::Store { path: self.path.clone(), detail: e.to_string() }
    }

    fn check_schema(&self) -> Result<(), TraceError> {
        match self.db.get(META_SCHEMA_KEY).map_err(|e| self.sled_err(e))? {
            Some(raw) => {
                let found = <[u8; 4]>::try_from(raw.as_ref()).map(u32::from_be_bytes).map_err(|_| {
                    TraceError::Corrupt { key: "meta/schema_version".into(), detail: "not 4 bytes".into() }
                })?;
                if found > SCHEMA_VERSION {
                    return Err(TraceError::NewerSchema {
                        what: format!("trace store {}", self.path.display()),
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                if found < SCHEMA_VERSION {
                    // Older records stay readable; the mark tells older builds that
                    // this store now holds records they may not read.
                    self.db.insert(META_SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes()).map_err(|e| self.sled_err(e))?;
                    self.flush_sled()?;
                }
            }
            None => {
                self.db.insert(META_SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes()).map_err(|e| self.sled_err(e))?;
                self.flush_sled()?;
            }
        }
        Ok(())
    }

    fn put<T: Serialize>(&self, tree: &sled::Tree, key: &[u8], value: &T) -> Result<(), TraceError> {
        self.put_logged(tree, key, value, None)
    }

    /// Store `value` in sled and, with `log`, append it to the write-ahead log. sled
    /// first: a checkpoint that empties the log between the two has flushed it already.
    fn put_logged<T: Serialize>(
        &self,
        tree: &sled::Tree,
        key: &[u8],
        value: &T,
        log: Option<Kind>,
    ) -> Result<(), TraceError> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| TraceError::Corrupt { key: printable_key(key), detail: e.to_string() })?;
        tree.insert(key, bytes.as_slice()).map_err(|e| self.write_error(self.sled_err(e)))?;
        if let (Some(kind), Some(wal)) = (log, &self.wal) {
            wal.append(kind, &bytes).map_err(|e| self.write_error(self.wal_err(wal.path(), e)))?;
        }
        Ok(())
    }

    /// Store a run record as it is, logged.
    fn put_run(&self, run: &RunRecord) -> Result<(), TraceError> {
        self.put_logged(&self.runs, run.id.as_bytes(), run, Some(Kind::Run))
    }

    /// The reference to write in place of `config`, which is stored (and logged) now
    /// unless it was already.
    fn intern_config(&self, config: &impl Serialize) -> Result<serde_json::Value, TraceError> {
        let bytes = serde_json::to_vec(config)
            .map_err(|e| TraceError::Corrupt { key: "run config".into(), detail: e.to_string() })?;
        let interned = self.configs.intern(bytes)?;
        if let (Some(bytes), Some(wal)) = (&interned.new_bytes, &self.wal) {
            wal.append_config(&interned.hash, bytes).map_err(|e| self.wal_err(wal.path(), e))?;
        }
        Ok(interned.reference)
    }
}

/// The error for sled failing to open the store at `path`: damage where sled says so.
fn open_error(path: &Path, e: sled::Error) -> TraceError {
    match e {
        sled::Error::Corruption { .. } => TraceError::Damaged { path: path.to_path_buf(), detail: e.to_string() },
        e => TraceError::Store { path: path.to_path_buf(), detail: e.to_string() },
    }
}

/// Copy the files under `from` into `to` (sled's directory: files and subdirectories),
/// but those directly under `from` whose names start with one of `skip`.
fn copy_dir(from: &Path, to: &Path, skip: &[&str]) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if skip.iter().any(|s| entry.file_name().to_string_lossy().starts_with(s)) {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_dir(&entry.path(), &target, &[])?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// A run id followed by a big-endian index: a step's key, or a group slot's key.
fn indexed_key(run: RunId, index: u32) -> [u8; 20] {
    let mut key = [0u8; 20];
    key[..16].copy_from_slice(run.as_bytes());
    key[16..].copy_from_slice(&index.to_be_bytes());
    key
}

fn printable_key(key: &[u8]) -> String {
    match <[u8; 16]>::try_from(key.get(..16).unwrap_or_default()) {
        Ok(b) if key.len() == 16 => RunId::from_bytes(b).to_string(),
        Ok(b) if key.len() == 20 => {
            let idx = u32::from_be_bytes([key[16], key[17], key[18], key[19]]);
            format!("{}#{idx}", RunId::from_bytes(b))
        }
        _ => format!("{key:02x?}"),
    }
}

/// Decode a record, refusing ones written by a newer schema.
fn decode<T: DeserializeOwned>(key: &[u8], raw: &[u8]) -> Result<T, TraceError> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        schema: u32,
    }
    let corrupt = |e: serde_json::Error| TraceError::Corrupt { key: printable_key(key), detail: e.to_string() };
    let version: Versioned = serde_json::from_slice(raw).map_err(corrupt)?;
    if version.schema > SCHEMA_VERSION {
        return Err(TraceError::NewerSchema {
            what: format!("record {}", printable_key(key)),
            found: version.schema,
            supported: SCHEMA_VERSION,
        });
    }
    serde_json::from_slice(raw).map_err(corrupt)
}
