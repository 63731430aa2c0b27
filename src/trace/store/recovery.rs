//! Recovery when a store opens: the write-ahead log put back into sled without moving
//! any record backwards, damage reported and kept for inspection, runs of a dead
//! process marked `incomplete`, and sled's own panics on a damaged file turned into
//! an error.

use std::{
    cell::Cell,
    io::Write as _,
    panic::AssertUnwindSafe,
    path::{Path, PathBuf},
    sync::{atomic::Ordering, Arc, Once},
};

use super::{decode, indexed_key, TraceStore};
use crate::trace::{
    wal::{self, CheckpointError, Kind, Wal},
    RunRecord, RunStatus, StepRecord, TraceError,
};

/// What opening a store found in its write-ahead log beyond a clean shutdown or a torn
/// tail: damage skipped, records that could not be decoded, and where the damaged log
/// was kept. A store opened after such damage holds it ([`TraceStore::log_recovery`]);
/// it is also logged as a warning.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LogRecovery {
    /// Records put back into sled.
    pub replayed: usize,
    /// Run records older than the one sled already held, left alone.
    pub stale: usize,
    /// Damaged stretches of the log skipped (readable records followed each).
    pub damaged_regions: usize,
    /// Bytes in them.
    pub damaged_bytes: u64,
    /// Records read after the first damaged stretch.
    pub recovered_after_damage: usize,
    /// Records whose checksum held but whose content did not decode, skipped.
    pub undecodable: usize,
    /// Why the first of those did not decode.
    pub first_undecodable: Option<String>,
    /// Bytes of a torn last record dropped (normal after a crash).
    pub torn_tail_bytes: u64,
    /// Where the damaged log was kept (`steps.wal.corrupt-<time>`).
    pub kept_at: Option<PathBuf>,
}

impl LogRecovery {
    /// Whether anything was damaged (not just a torn tail).
    pub fn damaged(&self) -> bool {
        self.damaged_regions > 0 || self.undecodable > 0
    }
}

impl std::fmt::Display for LogRecovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the write-ahead log was damaged: ")?;
        if self.damaged_regions > 0 {
            write!(
                f,
                "{} damaged stretch(es) ({} bytes) skipped, {} records after them recovered; ",
                self.damaged_regions, self.damaged_bytes, self.recovered_after_damage
            )?;
        }
        if self.undecodable > 0 {
            write!(f, "{} records skipped that did not decode", self.undecodable)?;
            if let Some(why) = &self.first_undecodable {
                write!(f, " (first: {why})")?;
            }
            write!(f, "; ")?;
        }
        write!(f, "{} records replayed, {} older than the stored ones left alone", self.replayed, self.stale)?;
        match &self.kept_at {
            Some(path) => write!(f, "; the damaged log is kept at {}", path.display()),
            None => write!(f, "; the damaged log could not be kept"),
        }
    }
}

/// What putting back one logged record did.
pub(super) enum Applied {
    /// Written to sled.
    Put,
    /// A run record older than the stored one: skipped.
    Stale,
    /// The record does not decode: skipped, with why.
    Undecodable(String),
}

impl TraceStore {
    /// Open the write-ahead log in `dir`, put what it holds back into sled (records a
    /// crash left only there), fold it into sled and empty it. A damaged log is copied
    /// aside first and what was skipped is reported.
    pub(super) fn attach_wal(&mut self, dir: &Path) -> Result<(), TraceError> {
        let (log, parsed) = Wal::open(dir).map_err(|e| self.wal_err(&dir.join(wal::FILE), e))?;
        let mut report = LogRecovery {
            damaged_regions: parsed.damaged.len(),
            damaged_bytes: parsed.damaged.iter().map(|r| r.end - r.start).sum(),
            recovered_after_damage: parsed.after_damage,
            torn_tail_bytes: parsed.torn_tail,
            ..LogRecovery::default()
        };
        let fold = !parsed.records.is_empty() || report.damaged();
        for (kind, bytes) in parsed.records {
            match self.apply_logged(kind, &bytes)? {
                Applied::Put => report.replayed += 1,
                Applied::Stale => report.stale += 1,
                Applied::Undecodable(why) => {
                    report.undecodable += 1;
                    report.first_undecodable.get_or_insert(why);
                }
            }
        }
        if report.damaged() {
            // Kept before the checkpoint empties it; a failure to keep it is said, and
            // does not stop the store from opening with what could be read.
            report.kept_at = log.keep_aside().ok();
            tracing::warn!("trace store {}: {report}", self.path.display());
        }
        let log = Arc::new(log);
        self.wal = Some(log);
        if fold {
            self.checkpoint()?;
        }
        if report.damaged() {
            self.recovery = Some(Arc::new(report));
        }
        Ok(())
    }

    /// Put one logged record back into sled: a step or a config as it is, a run record
    /// only when it is not older than the one stored (a stale prefix of the log must
    /// never undo a run's later writes).
    pub(super) fn apply_logged(&self, kind: Kind, bytes: &[u8]) -> Result<Applied, TraceError> {
        match kind {
            Kind::Run => {
                let run: RunRecord = match serde_json::from_slice(bytes) {
                    Ok(run) => run,
                    Err(e) => return Ok(Applied::Undecodable(format!("a run record: {e}"))),
                };
                self.put_run_unless_older(&run, bytes)
            }
            Kind::Step => {
                let step: StepRecord = match serde_json::from_slice(bytes) {
                    Ok(step) => step,
                    Err(e) => return Ok(Applied::Undecodable(format!("a step record: {e}"))),
                };
                self.steps.insert(indexed_key(step.run_id, step.index), bytes).map_err(|e| self.sled_err(e))?;
                Ok(Applied::Put)
            }
            Kind::Config => {
                let Some((hash, json)) = wal::split_config(bytes) else {
                    return Ok(Applied::Undecodable("a config record too short for its hash".into()));
                };
                if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(json) {
                    return Ok(Applied::Undecodable(format!("a config record: {e}")));
                }
                self.configs.restore(hash, json)?;
                Ok(Applied::Put)
            }
        }
    }

    /// Store run record `run` (encoded as `bytes`) unless the store holds a newer
    /// version of it (a higher `seq`). A stored record that does not decode is replaced.
    pub(super) fn put_run_unless_older(&self, run: &RunRecord, bytes: &[u8]) -> Result<Applied, TraceError> {
        #[derive(serde::Deserialize)]
        struct Version {
            #[serde(default)]
            seq: u64,
        }
        let key = run.id.as_bytes();
        let stored = self.runs.get(key).map_err(|e| self.sled_err(e))?;
        let new = stored.is_none();
        let stored_seq = stored.and_then(|raw| serde_json::from_slice::<Version>(&raw).ok()).map(|v| v.seq);
        if stored_seq.is_some_and(|seq| seq > run.seq) {
            return Ok(Applied::Stale);
        }
        self.runs.insert(key, bytes).map_err(|e| self.sled_err(e))?;
        if new {
            self.known_runs.fetch_add(1, Ordering::SeqCst);
        }
        self.index_member(run)?;
        Ok(Applied::Put)
    }

    /// Flush sled and empty the log (its records are then in sled's files), noting in
    /// the manifest how many runs sled now holds durably.
    pub(super) fn checkpoint(&self) -> Result<(), TraceError> {
        let Some(log) = &self.wal else { return self.flush_sled() };
        let persist = || {
            // Read before the flush: every run counted is in sled by then (a run is
            // counted after its record is inserted), so the manifest never overstates.
            let runs = self.known_runs.load(Ordering::SeqCst);
            self.flush_sled()?;
            match &self.manifest {
                Some(path) => write_manifest(path, runs).map_err(|e| self.wal_err(path, e)),
                None => Ok(()),
            }
        };
        log.checkpoint(persist).map_err(|e| {
            self.write_error(match e {
                CheckpointError::Persist(e) => e,
                CheckpointError::Io(e) => self.wal_err(log.path(), e),
            })
        })
    }

    /// Count the runs sled holds and compare them with the manifest, before anything
    /// is written: runs are never deleted, so fewer runs than the last checkpoint
    /// recorded means sled dropped records on opening a damaged file (sled 0.34 treats
    /// the first bad stretch of its log as its end). A store opened for writing is then
    /// refused; a snapshot (a copy taken while another process writes can be torn) only
    /// warns.
    pub(super) fn check_manifest(&self, manifest: &Path, strict: bool) -> Result<(), TraceError> {
        let mut held = 0u64;
        for key in self.runs.iter().keys() {
            key.map_err(|e| self.sled_err(e))?;
            held += 1;
        }
        self.known_runs.store(held, Ordering::SeqCst);
        let Some(recorded) = read_manifest(manifest) else { return Ok(()) };
        if held >= recorded {
            return Ok(());
        }
        let detail = format!(
            "its files hold {held} runs, but {recorded} were stored by its last checkpoint: sled dropped records \
             that followed damage in its files"
        );
        if strict {
            return Err(TraceError::Damaged { path: self.path.clone(), detail });
        }
        tracing::warn!("snapshot of {}: {detail}", self.path.display());
        Ok(())
    }

    /// Mark the runs a dead process left `running` as `incomplete`. We hold sled's
    /// exclusive lock, so no live process is writing them. A record that does not
    /// decode is left as it is (listings report it).
    pub(super) fn recover_dead_runs(&self) -> Result<(), TraceError> {
        let mut changed = false;
        for kv in self.runs.iter() {
            let (k, v) = kv.map_err(|e| self.sled_err(e))?;
            // As stored: the config stays a reference.
            let Ok(mut run) = decode::<RunRecord>(&k, &v) else { continue };
            if run.status == RunStatus::Running {
                run.status = RunStatus::Incomplete;
                run.seq += 1;
                self.put_run(&run)?;
                changed = true;
            }
        }
        if changed {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// What opening this store found wrong in its write-ahead log, if anything was
    /// damaged (see [`LogRecovery`]).
    pub fn log_recovery(&self) -> Option<&LogRecovery> {
        self.recovery.as_deref()
    }
}

/// The manifest's file name in the store's directory: `{"runs": N}`, the runs sled
/// held durably at the last checkpoint.
pub(super) const MANIFEST: &str = "manifest.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct Manifest {
    runs: u64,
}

fn read_manifest(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice::<Manifest>(&bytes).ok().map(|m| m.runs)
}

/// Write the manifest whole or not at all: a new file, synced, renamed over the old.
fn write_manifest(path: &Path, runs: u64) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&serde_json::to_vec(&Manifest { runs }).map_err(std::io::Error::other)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Open the store at `path` with `open`, sled's panic on a damaged file (see
/// [`catch_quietly`]) becoming [`TraceError::Damaged`].
pub(super) fn guarded(
    path: &Path,
    open: impl FnOnce() -> Result<TraceStore, TraceError>,
) -> Result<TraceStore, TraceError> {
    catch_quietly(open).unwrap_or_else(|panic| {
        Err(TraceError::Damaged { path: path.to_path_buf(), detail: format!("sled could not read it ({panic})") })
    })
}

thread_local! {
    /// Set while [`catch_quietly`] runs on this thread: its panics are not printed.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Run `f`, turning a panic into an error with its message, printing nothing. sled
/// 0.34 panics on some damaged files instead of returning an error; a caught panic
/// would still print through the panic hook, so a hook that stays quiet on a thread
/// inside this call (and defers to the previous hook otherwise) is installed once.
pub(super) fn catch_quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into())
    })
}
