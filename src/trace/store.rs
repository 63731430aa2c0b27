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

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use chrono::Utc;
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::Notify;

use super::{
    configs::Configs,
    error::locked,
    wal::{self, CheckpointError, Kind, Wal},
    GroupSlot, RunId, RunRecord, RunStatus, StepRecord, TraceError, SCHEMA_VERSION,
};

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
}

/// What a new run is, besides its config.
struct NewRun<'a> {
    kind: &'a str,
    input: serde_json::Value,
    parent: Option<RunId>,
    group: Option<GroupSlot>,
}

/// A function told of each run that finishes.
type FinishHook = Box<dyn Fn(RunId) + Send + Sync>;

/// The runs of a store as `recheck traces list` shows them (and `recheck serve` sends
/// them: `GET /recheck/v1/runs`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Listing {
    /// The runs listed, oldest first.
    pub runs: Vec<ListedRun>,
    /// Why each unreadable run record could not be read.
    #[serde(default)]
    pub unreadable: Vec<String>,
    /// Item runs of experiments left out.
    #[serde(default)]
    pub hidden: usize,
}

/// A run and how many steps it has.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ListedRun {
    /// The run.
    pub run: RunRecord,
    /// Its step count.
    pub steps: usize,
}

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

/// Shared state of group commit (see [`TraceStore::flush`]).
#[derive(Default)]
struct GroupCommit {
    state: Mutex<CommitState>,
    done: Notify,
    /// Steps appended, and of those the ones a finished flush covered: a run's next
    /// model call waits for a flush only when some step is not yet covered.
    steps_appended: std::sync::atomic::AtomicU64,
    steps_synced: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct CommitState {
    /// Tickets handed out: one per write that wants to be durable.
    written: u64,
    /// Every ticket up to this one is on disk.
    flushed: u64,
    /// A flush is running.
    flushing: bool,
    /// Flushes done since the store was opened.
    flushes: u64,
}

impl GroupCommit {
    fn lock(&self, path: &Path) -> Result<std::sync::MutexGuard<'_, CommitState>, TraceError> {
        locked(&self.state, path, "commit state")
    }
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

    /// Open (or create) the store in directory `path` with the given durability.
    pub fn open_with(path: impl AsRef<Path>, durability: Durability) -> Result<Self, TraceError> {
        let path = path.as_ref().to_path_buf();
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
                Err(e) => return Err(TraceError::Store { path: path.clone(), detail: e.to_string() }),
            }
        };
        let mut store = Self::from_db(db, path.clone())?;
        store.durability = durability;
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
        copy_dir(&path, copy.path()).map_err(io)?;
        let db = sled::Config::new()
            .path(copy.path())
            .open()
            .map_err(|e| TraceError::Store { path: path.clone(), detail: format!("snapshot: {e}") })?;
        let mut store = Self::from_db(db, path)?;
        store.check_schema()?;
        store.attach_wal(copy.path())?;
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
        })
    }

    /// Open the write-ahead log in `dir`, put what it holds back into sled (records a
    /// crash left only there), fold it into sled and empty it.
    fn attach_wal(&mut self, dir: &Path) -> Result<(), TraceError> {
        let (log, records) = Wal::open(dir).map_err(|e| self.wal_err(&dir.join(wal::FILE), e))?;
        let replayed = !records.is_empty();
        for (kind, bytes) in records {
            match kind {
                Kind::Run => {
                    let run: RunRecord = self.decode_logged(&bytes)?;
                    self.runs.insert(run.id.as_bytes(), bytes).map_err(|e| self.sled_err(e))?;
                    self.index_member(&run)?;
                }
                Kind::Step => {
                    let step: StepRecord = self.decode_logged(&bytes)?;
                    self.steps.insert(indexed_key(step.run_id, step.index), bytes).map_err(|e| self.sled_err(e))?;
                }
                Kind::Config => {
                    let (hash, json) = wal::split_config(&bytes).ok_or_else(|| TraceError::Corrupt {
                        key: format!("{} (write-ahead log)", self.path.display()),
                        detail: "a config record too short for its hash".into(),
                    })?;
                    self.configs.restore(hash, json)?;
                }
            }
        }
        self.wal = Some(Arc::new(log));
        if replayed {
            self.checkpoint()?;
        }
        Ok(())
    }

    fn decode_logged<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, TraceError> {
        serde_json::from_slice(bytes).map_err(|e| TraceError::Corrupt {
            key: format!("{} (write-ahead log)", self.path.display()),
            detail: e.to_string(),
        })
    }

    /// Flush sled and empty the log (its records are then in sled's files).
    fn checkpoint(&self) -> Result<(), TraceError> {
        let Some(log) = &self.wal else { return self.flush_sled() };
        log.checkpoint(|| self.flush_sled()).map_err(|e| match e {
            CheckpointError::Persist(e) => e,
            CheckpointError::Io(e) => self.wal_err(log.path(), e),
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

    /// We hold sled's exclusive lock, so no live process is writing these runs.
    fn recover_dead_runs(&self) -> Result<(), TraceError> {
        let mut changed = false;
        for kv in self.runs.iter() {
            let (k, v) = kv.map_err(|e| self.sled_err(e))?;
            // As stored: the config stays a reference.
            let mut run: RunRecord = decode(&k, &v)?;
            if run.status == RunStatus::Running {
                run.status = RunStatus::Incomplete;
                self.put_run(&run)?;
                changed = true;
            }
        }
        if changed {
            self.checkpoint()?;
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
        tree.insert(key, bytes.as_slice()).map_err(|e| self.sled_err(e))?;
        if let (Some(kind), Some(wal)) = (log, &self.wal) {
            wal.append(kind, &bytes).map_err(|e| self.wal_err(wal.path(), e))?;
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

    /// Make every write made before this call durable. Group commit: a caller whose
    /// write lands while another flush runs waits for the next flush, which one of the
    /// waiters leads, so concurrent writers share fsyncs instead of queueing for one each.
    async fn flush(&self) -> Result<(), TraceError> {
        let commit = &self.commit;
        let ticket = {
            let mut s = commit.lock(&self.path)?;
            s.written += 1;
            s.written
        };
        loop {
            let notified = commit.done.notified();
            tokio::pin!(notified);
            // Registered before the state is read, so no wake-up is missed.
            notified.as_mut().enable();
            let target = {
                let mut s = commit.lock(&self.path)?;
                if s.flushed >= ticket {
                    return Ok(());
                }
                if s.flushing {
                    None
                } else {
                    s.flushing = true;
                    Some(s.written)
                }
            };
            let Some(target) = target else {
                notified.await;
                continue;
            };
            let steps = self.commit.steps_appended.load(std::sync::atomic::Ordering::SeqCst);
            let result = self.flush_now();
            if result.is_ok() {
                self.commit.steps_synced.fetch_max(steps, std::sync::atomic::Ordering::SeqCst);
            }
            {
                let mut s = commit.lock(&self.path)?;
                s.flushing = false;
                s.flushes += 1;
                if result.is_ok() {
                    s.flushed = s.flushed.max(target);
                }
            }
            commit.done.notify_waiters();
            result?;
        }
    }

    /// Everything written so far is on disk when this returns (for a store opened with
    /// [`Durability::Periodic`], or before a process exits).
    pub async fn sync(&self) -> Result<(), TraceError> {
        self.flush().await
    }

    /// Disk flushes since the store was opened (group commit shares them among writers).
    pub fn flush_count(&self) -> u64 {
        self.commit.lock(&self.path).map(|s| s.flushes).unwrap_or(0)
    }

    /// One flush, on the calling thread. A flush takes a fraction of a millisecond, and
    /// handing it to a blocking thread costs more CPU in wake-ups than the flush itself
    /// (measured in `benches/pipeline.rs`). Not sled's `flush_async`: in sled 0.34
    /// concurrent `flush_async` futures can miss their wake-up and hang (sled #1241, #1308).
    fn flush_now(&self) -> Result<(), TraceError> {
        let Some(log) = &self.wal else { return self.flush_sled() };
        log.sync().map_err(|e| self.wal_err(log.path(), e))?;
        if log.len() > wal::CHECKPOINT_BYTES {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Start a run: stores it as `running` (synced with its first call or its end).
    pub async fn create_run(
        &self,
        kind: &str,
        input: serde_json::Value,
        config: serde_json::Value,
        parent: Option<RunId>,
    ) -> Result<RunRecord, TraceError> {
        self.create_run_in(kind, input, config, parent, None).await
    }

    /// Start a run that fills slot `group` of a group run; it replaces whatever run
    /// filled the slot before (a resumed item replaces its interrupted attempt).
    pub async fn create_member_run(
        &self,
        kind: &str,
        input: serde_json::Value,
        config: serde_json::Value,
        group: GroupSlot,
    ) -> Result<RunRecord, TraceError> {
        self.create_run_in(kind, input, config, None, Some(group)).await
    }

    /// Start a run with a parent, a group slot, both or neither (a fork in a batch of
    /// forks has both): what [`TraceStore::create_run`] and
    /// [`TraceStore::create_member_run`] do.
    pub async fn create_run_in(
        &self,
        kind: &str,
        input: serde_json::Value,
        config: serde_json::Value,
        parent: Option<RunId>,
        group: Option<GroupSlot>,
    ) -> Result<RunRecord, TraceError> {
        let stored = self.begin(NewRun { kind, input, parent, group }, &config)?;
        Ok(RunRecord { config, ..stored })
    }

    /// [`TraceStore::create_run_in`] for a caller that has its config as a typed value
    /// and needs only the new run's id (`ask`, `serve`): the config is encoded straight
    /// from its type, with no JSON tree built on the way.
    pub async fn start_run(
        &self,
        kind: &str,
        input: serde_json::Value,
        config: &impl Serialize,
        parent: Option<RunId>,
        group: Option<GroupSlot>,
    ) -> Result<RunId, TraceError> {
        Ok(self.begin(NewRun { kind, input, parent, group }, config)?.id)
    }

    /// Store a new run as `running` and return it as stored (its config a reference).
    fn begin(&self, new: NewRun<'_>, config: &impl Serialize) -> Result<RunRecord, TraceError> {
        let stored = RunRecord {
            schema: SCHEMA_VERSION,
            id: RunId::new(),
            kind: new.kind.to_string(),
            input: new.input,
            config: self.intern_config(config)?,
            parent: new.parent,
            group: new.group,
            started_at: Utc::now(),
            ended_at: None,
            status: RunStatus::Running,
            error: None,
            output: None,
        };
        self.put_run(&stored)?;
        self.index_member(&stored)?;
        let mut running = self.running_runs()?;
        // Only a cache: a run abandoned unfinished must not keep it growing.
        if running.len() >= 10_000 {
            running.clear();
        }
        running.insert(stored.id, stored.clone());
        drop(running);
        // Written to the log, not synced: a killed process's run still shows as
        // `incomplete` with what it was asked (the log outlives the process); a lost
        // machine loses it only if none of its calls was synced either.
        Ok(stored)
    }

    /// Point the run's group slot at it, unless a newer run holds the slot.
    fn index_member(&self, run: &RunRecord) -> Result<(), TraceError> {
        let Some(slot) = run.group else { return Ok(()) };
        let key = indexed_key(slot.run, slot.index);
        let newer = self
            .members
            .get(key)
            .map_err(|e| self.sled_err(e))?
            .is_some_and(|v| v.as_ref() > run.id.as_bytes().as_slice());
        if !newer {
            self.members.insert(key, run.id.as_bytes().as_slice()).map_err(|e| self.sled_err(e))?;
        }
        Ok(())
    }

    /// The runs filling a group run's slots: (slot index, run id), by index.
    pub fn members(&self, group: RunId) -> Result<Vec<(u32, RunId)>, TraceError> {
        self.members
            .scan_prefix(group.as_bytes())
            .map(|kv| {
                let (k, v) = kv.map_err(|e| self.sled_err(e))?;
                let bad = || TraceError::Corrupt { key: printable_key(&k), detail: "bad member entry".into() };
                let index = <[u8; 4]>::try_from(k.get(16..).unwrap_or_default()).map_err(|_| bad())?;
                let id = <[u8; 16]>::try_from(v.as_ref()).map_err(|_| bad())?;
                Ok((u32::from_be_bytes(index), RunId::from_bytes(id)))
            })
            .collect()
    }

    /// Mark a run finished with `status`, its output and error, and flush.
    pub async fn finish_run(
        &self,
        id: RunId,
        status: RunStatus,
        output: Option<serde_json::Value>,
        error: Option<String>,
    ) -> Result<(), TraceError> {
        self.update_run(id, |run| {
            run.status = status;
            run.ended_at = Some(Utc::now());
            run.output = output;
            run.error = error;
        })
        .await?;
        if let Some(hook) = self.finished.get() {
            hook(id);
        }
        Ok(())
    }

    /// Call `hook` with the id of every run that finishes from now on, once it is
    /// durable (live export). It runs on the finishing task, so it must only hand the
    /// id on. One hook a store (every handle shares it); false if one was already set.
    pub fn on_finish(&self, hook: impl Fn(RunId) + Send + Sync + 'static) -> bool {
        self.finished.set(Box::new(hook)).is_ok()
    }

    /// Change a stored run record with `change` (its config as stored: a reference, or
    /// inline in an old record), write it back and flush.
    async fn update_run(&self, id: RunId, change: impl FnOnce(&mut RunRecord)) -> Result<(), TraceError> {
        let cached = self.running_runs()?.remove(&id);
        let mut run = match cached {
            Some(run) => run,
            None => self.stored_run(id)?.ok_or_else(|| TraceError::NoSuchRun(id.to_string()))?,
        };
        change(&mut run);
        self.put_run(&run)?;
        if run.status == RunStatus::Running {
            self.running_runs()?.insert(id, run);
        }
        self.flush().await
    }

    fn running_runs(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, std::collections::HashMap<RunId, RunRecord>>, TraceError> {
        locked(&self.running, &self.path, "run cache")
    }

    /// Mark a finished or interrupted run as running again (resuming it).
    pub async fn reopen_run(&self, id: RunId) -> Result<(), TraceError> {
        self.update_run(id, |run| {
            run.status = RunStatus::Running;
            run.ended_at = None;
        })
        .await
    }

    /// Append a step: in the store at once, on disk with the next sync
    /// ([`TraceStore::sync_steps`], a run's end).
    pub async fn append_step(&self, step: &StepRecord) -> Result<(), TraceError> {
        self.put_logged(&self.steps, &indexed_key(step.run_id, step.index), step, Some(Kind::Step))?;
        self.commit.steps_appended.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// With [`Durability::EveryStep`], make every step appended so far durable (a
    /// no-op when a flush already covered them). Called before each model call.
    pub async fn sync_steps(&self) -> Result<(), TraceError> {
        use std::sync::atomic::Ordering::SeqCst;
        let pending = self.commit.steps_synced.load(SeqCst) < self.commit.steps_appended.load(SeqCst);
        if self.durability == Durability::EveryStep && pending {
            self.flush().await?;
        }
        Ok(())
    }

    /// Store records as they are (import); flushes once at the end.
    pub(crate) fn put_raw(&self, runs: &[RunRecord], steps: &[StepRecord]) -> Result<(), TraceError> {
        for step in steps {
            self.put(&self.steps, &indexed_key(step.run_id, step.index), step)?;
        }
        // Runs last: a run is visible only once all its steps are in.
        for run in runs {
            let stored = RunRecord { config: self.intern_config(&run.config)?, ..run.clone() };
            self.put(&self.runs, run.id.as_bytes(), &stored)?;
            self.index_member(run)?;
        }
        self.flush_sled()?;
        Ok(())
    }

    /// One run by id.
    pub fn run(&self, id: RunId) -> Result<Option<RunRecord>, TraceError> {
        let Some(mut run) = self.stored_run(id)? else { return Ok(None) };
        self.configs.resolve(&mut run)?;
        Ok(Some(run))
    }

    /// One run as stored (its config may be a reference).
    fn stored_run(&self, id: RunId) -> Result<Option<RunRecord>, TraceError> {
        let key = id.as_bytes();
        self.runs.get(key).map_err(|e| self.sled_err(e))?.map(|raw| decode(key, &raw)).transpose()
    }

    /// A stored run record decoded, its config put back.
    fn decode_run(&self, key: &[u8], raw: &[u8]) -> Result<RunRecord, TraceError> {
        let mut run = decode(key, raw)?;
        self.configs.resolve(&mut run)?;
        Ok(run)
    }

    /// Every run, oldest first.
    pub fn list_runs(&self) -> Result<Vec<RunRecord>, TraceError> {
        self.runs
            .iter()
            .map(|kv| {
                let (k, v) = kv.map_err(|e| self.sled_err(e))?;
                self.decode_run(&k, &v)
            })
            .collect()
    }

    /// What `recheck traces list` shows: the readable runs (experiments' item runs only
    /// with `items`) with their step counts, oldest first.
    pub fn listing(&self, items: bool) -> Result<Listing, TraceError> {
        let (all, unreadable) = self.readable_runs()?;
        let total = all.len();
        let runs = all
            .into_iter()
            .filter(|r| items || r.group.is_none())
            .map(|run| Ok(ListedRun { steps: self.step_count(run.id)?, run }))
            .collect::<Result<Vec<_>, TraceError>>()?;
        let hidden = total - runs.len();
        Ok(Listing { runs, unreadable: unreadable.iter().map(ToString::to_string).collect(), hidden })
    }

    /// Every run that can be read, and an error for each record that cannot (a record
    /// written by a buggy or newer build), so one bad record never hides the rest.
    pub fn readable_runs(&self) -> Result<(Vec<RunRecord>, Vec<TraceError>), TraceError> {
        self.decode_readable(self.runs.iter(), |k, v| self.decode_run(k, v))
    }

    /// A run's steps that can be read, and an error for each that cannot.
    pub fn readable_steps(&self, id: RunId) -> Result<(Vec<StepRecord>, Vec<TraceError>), TraceError> {
        self.decode_readable(self.steps.scan_prefix(id.as_bytes()), decode)
    }

    /// Decode `entries` with `decode`, keeping the records that decode and an error for
    /// each that does not; only a failure of the store itself stops it.
    fn decode_readable<T>(
        &self,
        entries: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
        decode: impl Fn(&[u8], &[u8]) -> Result<T, TraceError>,
    ) -> Result<(Vec<T>, Vec<TraceError>), TraceError> {
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for kv in entries {
            let (k, v) = kv.map_err(|e| self.sled_err(e))?;
            match decode(&k, &v) {
                Ok(record) => good.push(record),
                Err(e) => bad.push(e),
            }
        }
        Ok((good, bad))
    }

    /// A run's steps in order.
    pub fn steps(&self, id: RunId) -> Result<Vec<StepRecord>, TraceError> {
        self.steps
            .scan_prefix(id.as_bytes())
            .map(|kv| {
                let (k, v) = kv.map_err(|e| self.sled_err(e))?;
                decode(&k, &v)
            })
            .collect()
    }

    /// How many steps a run has, without decoding them.
    pub fn step_count(&self, id: RunId) -> Result<usize, TraceError> {
        let mut n = 0;
        for key in self.steps.scan_prefix(id.as_bytes()).keys() {
            key.map_err(|e| self.sled_err(e))?;
            n += 1;
        }
        Ok(n)
    }

    /// Resolve a full run id or a unique prefix of one.
    pub fn resolve(&self, id_or_prefix: &str) -> Result<RunId, TraceError> {
        let wanted = id_or_prefix.trim().to_ascii_lowercase();
        if let Ok(id) = wanted.parse::<RunId>() {
            return match self.run(id)? {
                Some(_) => Ok(id),
                None => Err(TraceError::NoSuchRun(id_or_prefix.to_string())),
            };
        }
        if wanted.is_empty() {
            return Err(TraceError::NoSuchRun(id_or_prefix.to_string()));
        }
        let mut hits = Vec::new();
        for key in self.runs.iter().keys() {
            let key = key.map_err(|e| self.sled_err(e))?;
            let Ok(bytes) = <[u8; 16]>::try_from(key.as_ref()) else { continue };
            let id = RunId::from_bytes(bytes);
            if id.to_string().starts_with(&wanted) {
                hits.push(id);
            }
        }
        match hits.as_slice() {
            [one] => Ok(*one),
            [] => Err(TraceError::NoSuchRun(id_or_prefix.to_string())),
            many => Err(TraceError::AmbiguousRun { prefix: id_or_prefix.to_string(), count: many.len() }),
        }
    }
}

/// Copy the files under `from` into `to` (sled's directory: files and subdirectories).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_dir(&entry.path(), &target)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_a_store_from_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("traces");
        {
            let store = TraceStore::open(&path).unwrap();
            store.db.insert(META_SCHEMA_KEY, &(SCHEMA_VERSION + 1).to_be_bytes()).unwrap();
            store.db.flush().unwrap();
        }
        let err = TraceStore::open(&path).unwrap_err();
        assert!(matches!(err, TraceError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1), "{err}");
        assert!(err.to_string().contains("upgrade recheck"));
    }

    #[tokio::test]
    async fn refuses_a_record_from_a_newer_schema() {
        let store = TraceStore::temporary().unwrap();
        let mut run = store.create_run("ask", serde_json::json!("q"), serde_json::json!({}), None).await.unwrap();
        run.schema = SCHEMA_VERSION + 1;
        store.put(&store.runs, run.id.as_bytes(), &run).unwrap();
        let err = store.run(run.id).unwrap_err();
        assert!(matches!(err, TraceError::NewerSchema { .. }), "{err}");
    }

    #[tokio::test]
    async fn resolves_unique_prefixes_only() {
        let store = TraceStore::temporary().unwrap();
        let a = store.create_run("ask", serde_json::json!(1), serde_json::json!({}), None).await.unwrap();
        let full = a.id.to_string();
        assert_eq!(store.resolve(&full).unwrap(), a.id);
        assert_eq!(store.resolve(&full[..13]).unwrap(), a.id);
        assert!(matches!(store.resolve("zzzz"), Err(TraceError::NoSuchRun(_))));
        assert!(matches!(store.resolve("ab"), Err(TraceError::NoSuchRun(_))));
        // A short prefix that several runs share says so (it said "no run").
        let b = store.create_run("ask", serde_json::json!(2), serde_json::json!({}), None).await.unwrap();
        let shared: String =
            full.chars().zip(b.id.to_string().chars()).take_while(|(x, y)| x == y).map(|(x, _)| x).collect();
        assert!(!shared.is_empty());
        assert!(matches!(store.resolve(&shared[..1]), Err(TraceError::AmbiguousRun { count: 2, .. })));
    }
    fn tool_call(i: u32) -> crate::trace::StepPayload {
        crate::trace::StepPayload::ToolCall {
            tool: "t".into(),
            input: serde_json::json!(i),
            output: Some(serde_json::json!(i)),
        }
    }

    #[tokio::test]
    async fn synced_steps_are_kept_by_the_log_until_sled_has_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("traces");
        let store = TraceStore::open(&path).unwrap();
        let config = serde_json::json!({"model": "m", "prompt": "x".repeat(2000)});
        let run = store.create_run("t", serde_json::json!({}), config.clone(), None).await.unwrap();
        let recorder = crate::trace::RunRecorder::new(store.clone(), run.id, 0);
        for i in 0..50 {
            recorder
                .record(recorder.reserve(), "tool", (Utc::now(), std::time::Instant::now()), tool_call(i), None)
                .await
                .unwrap();
        }
        recorder.event("a", "after", serde_json::json!({})).await.unwrap();
        recorder.sync_steps().await.unwrap();
        // Synced through the log, not through sled: the log holds them.
        let logged = std::fs::metadata(path.join(wal::FILE)).unwrap().len();
        assert!(logged > 50 * 100, "{logged} bytes logged");
        // A copy taken now (a crash, or another process's snapshot) replays the log:
        // every synced step, the run still `running`.
        let copy = TraceStore::open_snapshot(&path).unwrap();
        assert_eq!(copy.steps(run.id).unwrap().len(), 51);
        let copied = copy.run(run.id).unwrap().unwrap();
        assert_eq!((copied.status, copied.config), (RunStatus::Running, config.clone()));
        // Reopening folds the log into sled and empties it.
        drop((copy, recorder, store));
        let reopened = TraceStore::open(&path).unwrap();
        assert_eq!(reopened.steps(run.id).unwrap().len(), 51);
        assert_eq!(reopened.run(run.id).unwrap().unwrap().config, config);
        assert_eq!(std::fs::metadata(path.join(wal::FILE)).unwrap().len(), 0);
    }

    #[tokio::test]
    async fn a_config_is_stored_once_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = TraceStore::open(dir.path()).unwrap();
        let config = serde_json::json!({"model": {"name": "m"}, "prompt": "p".repeat(3000)});
        let other = serde_json::json!({"model": {"name": "n"}});
        let mut ids = Vec::new();
        for i in 0..20 {
            let c = if i % 2 == 0 { &config } else { &other };
            let run = store.create_run("ask", serde_json::json!(i), c.clone(), None).await.unwrap();
            assert_eq!(&run.config, c, "create_run hands back the whole config");
            store.finish_run(run.id, RunStatus::Completed, Some(serde_json::json!(i)), None).await.unwrap();
            ids.push(run.id);
        }
        let configs = store.db.open_tree("configs").unwrap();
        assert_eq!(configs.len(), 2, "two distinct configs, each stored once");
        // On disk a record names its config; read, it holds it whole.
        let raw = store.runs.get(ids[0].as_bytes()).unwrap().unwrap();
        assert!(raw.len() < 400, "{} bytes: {}", raw.len(), String::from_utf8_lossy(&raw));
        assert!(String::from_utf8_lossy(&raw).contains("\"$ref\":\"sha256:"));
        for (i, id) in ids.iter().enumerate() {
            let run = store.run(*id).unwrap().unwrap();
            assert_eq!(run.config, if i % 2 == 0 { config.clone() } else { other.clone() });
            assert_eq!((run.status, run.output), (RunStatus::Completed, Some(serde_json::json!(i))));
        }
        let listed = store.list_runs().unwrap();
        assert_eq!(listed.iter().filter(|r| r.config == config).count(), 10);
        // Across a reopen too (the caches start empty).
        drop((configs, store));
        let store = TraceStore::open(dir.path()).unwrap();
        assert_eq!(store.run(ids[1]).unwrap().unwrap().config, other);
        store.create_run("ask", serde_json::json!(20), config.clone(), None).await.unwrap();
        assert_eq!(store.db.open_tree("configs").unwrap().len(), 2);
    }

    #[tokio::test]
    async fn records_with_their_config_inline_still_read_and_finish() {
        // Schema 2 stored the config inside the run record.
        let store = TraceStore::temporary().unwrap();
        let config = serde_json::json!({"strategy": "single"});
        let old = RunRecord {
            schema: 2,
            id: RunId::new(),
            kind: "ask".into(),
            input: serde_json::json!({"question": "q"}),
            config: config.clone(),
            parent: None,
            group: None,
            started_at: Utc::now(),
            ended_at: None,
            status: RunStatus::Running,
            error: None,
            output: None,
        };
        store.put(&store.runs, old.id.as_bytes(), &old).unwrap();
        assert_eq!(store.run(old.id).unwrap().unwrap(), old);
        store.finish_run(old.id, RunStatus::Completed, None, None).await.unwrap();
        let finished = store.run(old.id).unwrap().unwrap();
        assert_eq!((finished.status, finished.config), (RunStatus::Completed, config));
    }

    #[tokio::test]
    async fn a_run_whose_config_is_missing_is_unreadable_alone() {
        use sha2::Digest as _;
        let store = TraceStore::temporary().unwrap();
        let lost = store.create_run("ask", serde_json::json!(1), serde_json::json!({"a": 1}), None).await.unwrap();
        let kept = store.create_run("ask", serde_json::json!(2), serde_json::json!({"b": 2}), None).await.unwrap();
        let configs = store.db.open_tree("configs").unwrap();
        let hash: [u8; 32] = sha2::Sha256::digest(br#"{"a":1}"#).into();
        assert!(configs.remove(hash).unwrap().is_some());
        let err = store.run(lost.id).unwrap_err();
        assert!(err.to_string().contains("config is not in the store"), "{err}");
        let (good, bad) = store.readable_runs().unwrap();
        assert_eq!((good.len(), good[0].id, bad.len()), (1, kept.id, 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = TraceStore::open(dir.path()).unwrap();
        let run = store.create_run("t", serde_json::json!({}), serde_json::json!({}), None).await.unwrap();
        let before = store.flush_count();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..200u32 {
            let store = store.clone();
            tasks.spawn(async move {
                let step = crate::trace::StepRecord {
                    schema: SCHEMA_VERSION,
                    run_id: run.id,
                    index: i,
                    agent: "a".into(),
                    started_at: Utc::now(),
                    latency_ms: 0,
                    payload: tool_call(i),
                    error: None,
                };
                store.append_step(&step).await.unwrap();
                store.sync_steps().await.unwrap();
            });
        }
        while tasks.join_next().await.is_some() {}
        // How many flushes they shared depends on scheduling; the bench reports it.
        let flushes = store.flush_count() - before;
        assert!((1..=200).contains(&flushes), "{flushes}");
        // Nothing appended since: nothing to sync.
        store.sync_steps().await.unwrap();
        assert_eq!(store.flush_count() - before, flushes);
        let steps = store.steps(run.id).unwrap();
        assert_eq!(steps.iter().map(|s| s.index).collect::<Vec<_>>(), (0..200).collect::<Vec<_>>());
    }
}
