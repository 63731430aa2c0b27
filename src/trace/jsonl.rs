//! JSONL export and import of traces.
//!
//! One record a line, each an object with `"record": "run"` or `"record": "step"` and
//! the record's own fields (see [`RunRecord`] and [`StepRecord`]). A run's line comes
//! before its steps, steps in order. Import checks the whole file before writing.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use serde::{Deserialize, Serialize};

use super::{GroupSlot, RunId, RunRecord, RunStatus, StepRecord, TraceError, TraceStore, SCHEMA_VERSION};
use crate::files::{FileError, Lines};

/// One line of a trace export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum TraceLine {
    /// A run record, with how many step lines follow it.
    Run(ExportedRun),
    /// A step record.
    Step(StepRecord),
}

/// A run as exported: the record and its step count, so a file cut short is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedRun {
    /// The run.
    #[serde(flatten)]
    pub run: RunRecord,
    /// Its steps in the file; `None` in files written before counts were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u32>,
}

/// What an export or import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TransferCounts {
    /// Runs written.
    pub runs: usize,
    /// Steps written.
    pub steps: usize,
    /// Runs left alone because the store already had them.
    pub skipped_runs: usize,
    /// Runs the store held incomplete (fewer steps) that a complete copy replaced.
    pub repaired_runs: usize,
    /// Bytes written (export) or read (import).
    pub bytes: u64,
    /// Records the export could not read and left out, each with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
}

impl TraceStore {
    /// Write `runs` (all runs when empty) with their steps to `out` as JSONL (`-` for
    /// standard output; see [`super::write_output`] for how other targets are written).
    pub fn export_jsonl(&self, out: &Path, runs: &[RunId]) -> Result<TransferCounts, TraceError> {
        let io = |source| TraceError::Io { path: out.to_path_buf(), source };
        let mut unreadable = Vec::new();
        let selected: Vec<RunRecord> = if runs.is_empty() {
            let (runs, bad) = self.readable_runs()?;
            unreadable.extend(bad.iter().map(ToString::to_string));
            runs
        } else {
            // A group run (an experiment) goes out with the runs of its items.
            let mut ids = Vec::new();
            for id in runs {
                ids.push(*id);
                ids.extend(self.members(*id)?.into_iter().map(|(_, m)| m));
            }
            ids.iter()
                .map(|id| self.run(*id)?.ok_or_else(|| TraceError::NoSuchRun(id.to_string())))
                .collect::<Result<_, _>>()?
        };
        let mut counts = TransferCounts { unreadable, ..Default::default() };
        let mut failure = None;
        // Never half a file in place of `out`: see `write_output`.
        super::write_output(out, |writer| {
            let mut write_line = |line: &TraceLine, counts: &mut TransferCounts| -> std::io::Result<()> {
                let mut bytes = serde_json::to_vec(line).map_err(std::io::Error::other)?;
                bytes.push(b'\n');
                counts.bytes += bytes.len() as u64;
                writer.write_all(&bytes)
            };
            for run in selected {
                let steps = match self.readable_steps(run.id) {
                    Ok((steps, bad)) => {
                        counts.unreadable.extend(bad.iter().map(ToString::to_string));
                        steps
                    }
                    Err(e) => {
                        failure = Some(e);
                        return Err(std::io::Error::other("reading the store failed"));
                    }
                };
                let exported = ExportedRun { run, steps: Some(steps.len() as u32) };
                write_line(&TraceLine::Run(exported), &mut counts)?;
                counts.runs += 1;
                for step in steps {
                    write_line(&TraceLine::Step(step), &mut counts)?;
                    counts.steps += 1;
                }
            }
            Ok(())
        })
        .map_err(|e| failure.take().unwrap_or_else(|| io(e)))?;
        Ok(counts)
    }

    /// Read a JSONL export into the store. Runs already present are skipped, except
    /// that a complete copy repairs a run the store holds with fewer steps, when the
    /// copy agrees with everything stored: the run's identity (kind, input, config,
    /// start, parent, group) and every stored step, and for a run not stored
    /// `incomplete`, the whole record. A run that disagrees with the stored run of its
    /// id, or that claims an experiment's slot a completed run already fills, makes the
    /// whole file refused. Nothing is written unless the whole file is valid: it is
    /// checked in a first pass, line by line (each line at most
    /// [`crate::files::FileKind::JsonLine`]'s limit), and written in a second.
    pub fn import_jsonl(&self, input: &Path) -> Result<TransferCounts, TraceError> {
        let (plan, mut counts, stamp) = self.check_import(input)?;
        // The second pass reads what the first checked.
        if file_stamp(input)? != stamp {
            let source = std::io::Error::other("the file changed while it was being imported; nothing was written");
            return Err(TraceError::Io { path: input.to_path_buf(), source });
        }
        let mut runs = Vec::new();
        for line in lines(input)? {
            let (line_no, bytes) = line.map_err(file_error)?;
            let Some(record) = parse_line(input, line_no, &bytes)? else { continue };
            match record {
                TraceLine::Run(exported) => {
                    if let Some(action) = plan.get(&exported.run.id).filter(|a| a.writes()) {
                        let mut run = exported.run;
                        if let Action::Repair { stored_seq } = action {
                            run.seq = run.seq.max(*stored_seq) + 1;
                            counts.repaired_runs += 1;
                        } else {
                            counts.runs += 1;
                        }
                        runs.push(run);
                    }
                }
                TraceLine::Step(step) => {
                    if plan.get(&step.run_id).is_some_and(Action::writes) {
                        self.put_imported_step(&step)?;
                        counts.steps += 1;
                    }
                }
            }
        }
        // Runs last: a run is visible only once all its steps are in.
        self.put_imported_runs(&runs)?;
        Ok(counts)
    }

    /// The first pass of an import: every line checked, and what to do with each run.
    fn check_import(&self, input: &Path) -> Result<(BTreeMap<RunId, Action>, TransferCounts, FileStamp), TraceError> {
        let bad = |line: usize, detail: String| TraceError::BadImport { path: input.to_path_buf(), line, detail };
        let stamp = file_stamp(input)?;
        let mut runs: BTreeMap<RunId, FileRun> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        let mut orphans: Vec<(usize, RunId)> = Vec::new();
        let mut counts = TransferCounts::default();
        for line in lines(input)? {
            let (line_no, bytes) = line.map_err(file_error)?;
            counts.bytes += bytes.len() as u64 + 1;
            let Some(record) = parse_line(input, line_no, &bytes)? else { continue };
            match record {
                TraceLine::Run(exported) => {
                    let id = exported.run.id;
                    if runs.contains_key(&id) {
                        return Err(bad(line_no, "run appears twice in the file".into()));
                    }
                    let stored = match self.run(id)? {
                        None => None,
                        Some(stored) => {
                            if let Some(what) = identity_difference(&stored, &exported.run) {
                                return Err(bad(
                                    line_no,
                                    format!("run {id} differs from the stored run of that id in its {what}; import never changes a stored run"),
                                ));
                            }
                            Some(StoredRun {
                                steps: self.step_count(id)?,
                                seq: stored.seq,
                                incomplete: stored.status == RunStatus::Incomplete,
                                same_outcome: same_outcome(&stored, &exported.run),
                            })
                        }
                    };
                    let slot = exported.run.group;
                    runs.insert(id, FileRun { line: line_no, declared: exported.steps, held: 0, stored, slot });
                }
                TraceLine::Step(step) => {
                    if !seen.insert((step.run_id, step.index)) {
                        return Err(bad(line_no, format!("step {} of run {} appears twice", step.index, step.run_id)));
                    }
                    let Some(run) = runs.get_mut(&step.run_id) else {
                        orphans.push((line_no, step.run_id));
                        continue;
                    };
                    run.held += 1;
                    let stored_steps = run.stored.as_ref().map_or(0, |s| s.steps);
                    if (step.index as usize) < stored_steps
                        && !matches!(self.step(step.run_id, step.index), Ok(Some(s)) if s == step)
                    {
                        return Err(bad(
                            line_no,
                            format!(
                                "step {} of run {} differs from the stored step; import never changes a stored run",
                                step.index, step.run_id
                            ),
                        ));
                    }
                }
            }
        }
        // Steps may come before their run's line in files not written by recheck.
        for (line_no, id) in orphans {
            match runs.get_mut(&id) {
                Some(run) => run.held += 1,
                None => return Err(bad(line_no, format!("step of run {id} whose run record is not in the file"))),
            }
        }
        let mut plan = BTreeMap::new();
        for (id, run) in &runs {
            // A run whose steps the file does not all hold was cut off: refuse the file.
            if let Some(declared) = run.declared.filter(|n| *n != run.held) {
                return Err(bad(
                    run.line,
                    format!("run {id} has {declared} steps but the file holds {}: the file is incomplete", run.held),
                ));
            }
            let action = match &run.stored {
                None => {
                    if let Some(slot) = run.slot {
                        self.check_slot_free(slot, *id).map_err(|what| bad(run.line, what))?;
                    }
                    Action::Add
                }
                Some(stored) => match run.declared {
                    // More steps than stored: a repair, of a run stored incomplete, or
                    // of one whose stored record the copy repeats exactly (a run an old
                    // export without step counts cut short).
                    Some(declared) if stored.steps < declared as usize => {
                        if !(stored.incomplete || stored.same_outcome) {
                            return Err(bad(
                                run.line,
                                format!(
                                    "run {id} is stored finished with {} steps and the file's copy has {declared} and another outcome; import repairs only runs stored incomplete",
                                    stored.steps
                                ),
                            ));
                        }
                        Action::Repair { stored_seq: stored.seq }
                    }
                    _ => {
                        counts.skipped_runs += 1;
                        Action::Skip
                    }
                },
            };
            plan.insert(*id, action);
        }
        Ok((plan, counts, stamp))
    }
}

/// What an import does with one run of the file.
enum Action {
    /// Not in the store: written.
    Add,
    /// In the store with fewer steps: written over it, its version past the stored one.
    Repair { stored_seq: u64 },
    /// In the store already: left alone.
    Skip,
}

impl Action {
    fn writes(&self) -> bool {
        !matches!(self, Self::Skip)
    }
}

/// A run of the file as the first pass saw it.
struct FileRun {
    line: usize,
    declared: Option<u32>,
    held: u32,
    stored: Option<StoredRun>,
    slot: Option<GroupSlot>,
}

/// The stored run of the same id.
struct StoredRun {
    steps: usize,
    seq: u64,
    incomplete: bool,
    /// The file's copy has the same status, output, error and end.
    same_outcome: bool,
}

/// Which field fixed at a run's start differs between two copies of it, if any.
fn identity_difference(stored: &RunRecord, file: &RunRecord) -> Option<&'static str> {
    [
        ("kind", stored.kind == file.kind),
        ("input", stored.input == file.input),
        ("config", stored.config == file.config),
        ("start time", stored.started_at == file.started_at),
        ("parent", stored.parent == file.parent),
        ("experiment slot", stored.group == file.group),
    ]
    .into_iter()
    .find(|(_, same)| !same)
    .map(|(what, _)| what)
}

fn same_outcome(stored: &RunRecord, file: &RunRecord) -> bool {
    stored.status == file.status
        && stored.output == file.output
        && stored.error == file.error
        && stored.ended_at == file.ended_at
}

/// A file's size and modification time: the second pass of an import reads the file
/// the first pass checked.
type FileStamp = (u64, Option<std::time::SystemTime>);

fn file_stamp(path: &Path) -> Result<FileStamp, TraceError> {
    let meta = std::fs::metadata(path).map_err(|source| TraceError::Io { path: path.to_path_buf(), source })?;
    Ok((meta.len(), meta.modified().ok()))
}

/// The lines of `path`, a regular file, each bounded.
fn lines(path: &Path) -> Result<Lines<std::io::BufReader<std::fs::File>>, TraceError> {
    Lines::open(path).map_err(file_error)
}

fn file_error(e: FileError) -> TraceError {
    TraceError::Io { path: e.path.clone(), source: e.into_io() }
}

/// One line of an export decoded (`None` for a blank line), refusing a newer schema.
fn parse_line(path: &Path, line_no: usize, bytes: &[u8]) -> Result<Option<TraceLine>, TraceError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let record: TraceLine = serde_json::from_slice(bytes).map_err(|e| TraceError::BadImport {
        path: path.to_path_buf(),
        line: line_no,
        detail: e.to_string(),
    })?;
    let schema = match &record {
        TraceLine::Run(r) => r.run.schema,
        TraceLine::Step(s) => s.schema,
    };
    if schema > SCHEMA_VERSION {
        return Err(TraceError::NewerSchema {
            what: format!("{}:{line_no}", path.display()),
            found: schema,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(Some(record))
}
