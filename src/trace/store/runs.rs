//! Writing runs: starting, finishing and reopening them, their steps, and imported
//! records.

use chrono::Utc;
use serde::Serialize;

use super::{indexed_key, printable_key, TraceStore};
use crate::trace::{
    error::locked, wal::Kind, GroupSlot, RunId, RunRecord, RunStatus, StepRecord, TraceError, SCHEMA_VERSION,
};

/// What a new run is, besides its config.
struct NewRun<'a> {
    kind: &'a str,
    input: serde_json::Value,
    parent: Option<RunId>,
    group: Option<GroupSlot>,
}

impl TraceStore {
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
            seq: 1,
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
        self.known_runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
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
    pub(super) fn index_member(&self, run: &RunRecord) -> Result<(), TraceError> {
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
        run.seq += 1;
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

    /// Store an imported step as it is (not logged: [`TraceStore::put_imported_runs`]
    /// flushes sled once the import's runs are in).
    pub(crate) fn put_imported_step(&self, step: &StepRecord) -> Result<(), TraceError> {
        self.put(&self.steps, &indexed_key(step.run_id, step.index), step)
    }

    /// Store imported runs as they are, after their steps, and flush sled.
    pub(crate) fn put_imported_runs(&self, runs: &[RunRecord]) -> Result<(), TraceError> {
        for run in runs {
            let stored = RunRecord { config: self.intern_config(&run.config)?, ..run.clone() };
            let new = !self.runs.contains_key(run.id.as_bytes()).map_err(|e| self.sled_err(e))?;
            self.put(&self.runs, run.id.as_bytes(), &stored)?;
            if new {
                self.known_runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            self.index_member(run)?;
        }
        self.flush_sled()
    }

    /// Whether `run` may fill `slot`: no completed run other than it fills it already.
    /// The error says which run does.
    pub(crate) fn check_slot_free(&self, slot: GroupSlot, run: RunId) -> Result<(), String> {
        let key = indexed_key(slot.run, slot.index);
        let holder = match self.members.get(key) {
            Ok(Some(v)) => <[u8; 16]>::try_from(v.as_ref()).ok().map(RunId::from_bytes),
            Ok(None) => None,
            Err(e) => return Err(format!("reading slot {} of run {}: {e}", slot.index, slot.run)),
        };
        let Some(holder) = holder.filter(|h| *h != run) else { return Ok(()) };
        match self.stored_run(holder) {
            Ok(Some(h)) if h.status == RunStatus::Completed => Err(format!(
                "run {run} claims slot {} of run {}, which completed run {holder} already fills; import never replaces a completed run",
                slot.index, slot.run
            )),
            _ => Ok(()),
        }
    }
}
