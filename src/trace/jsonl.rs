//! JSONL export and import of traces.
//!
//! One record a line, each an object with `"record": "run"` or `"record": "step"` and
//! the record's own fields (see [`RunRecord`] and [`StepRecord`]). A run's line comes
//! before its steps, steps in order. Import checks the whole file before writing.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::File,
    io::{BufRead, BufReader},
    path::Path,
};

use serde::{Deserialize, Serialize};

use super::{RunId, RunRecord, StepRecord, TraceError, TraceStore, SCHEMA_VERSION};

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

    /// Read a JSONL export into the store. Runs already present are skipped.
    /// Nothing is written unless the whole file is valid.
    pub fn import_jsonl(&self, input: &Path) -> Result<TransferCounts, TraceError> {
        let file = File::open(input).map_err(|source| TraceError::Io { path: input.to_path_buf(), source })?;
        let bad = |line: usize, detail: String| TraceError::BadImport { path: input.to_path_buf(), line, detail };
        let mut runs: BTreeMap<RunId, (usize, ExportedRun)> = BTreeMap::new();
        let mut steps: Vec<(usize, StepRecord)> = Vec::new();
        let mut counts = TransferCounts::default();
        for (n, line) in BufReader::new(file).lines().enumerate() {
            let line_no = n + 1;
            let line = line.map_err(|e| bad(line_no, format!("cannot read line: {e}")))?;
            counts.bytes += line.len() as u64 + 1;
            if line.trim().is_empty() {
                continue;
            }
            let record: TraceLine = serde_json::from_str(&line).map_err(|e| bad(line_no, e.to_string()))?;
            let schema = match &record {
                TraceLine::Run(r) => r.run.schema,
                TraceLine::Step(s) => s.schema,
            };
            if schema > SCHEMA_VERSION {
                return Err(TraceError::NewerSchema {
                    what: format!("{}:{line_no}", input.display()),
                    found: schema,
                    supported: SCHEMA_VERSION,
                });
            }
            match record {
                TraceLine::Run(run) => {
                    if runs.insert(run.run.id, (line_no, run)).is_some() {
                        return Err(bad(line_no, "run appears twice in the file".into()));
                    }
                }
                TraceLine::Step(step) => steps.push((line_no, step)),
            }
        }
        let mut seen = BTreeSet::new();
        let mut held: BTreeMap<RunId, usize> = BTreeMap::new();
        for (line_no, step) in &steps {
            if !runs.contains_key(&step.run_id) {
                return Err(bad(*line_no, format!("step of run {} whose run record is not in the file", step.run_id)));
            }
            if !seen.insert((step.run_id, step.index)) {
                return Err(bad(*line_no, format!("step {} of run {} appears twice", step.index, step.run_id)));
            }
            *held.entry(step.run_id).or_default() += 1;
        }
        // A run whose steps the file does not all hold was cut off: refuse the file.
        for (id, (line_no, run)) in &runs {
            let held = held.get(id).copied().unwrap_or(0);
            if let Some(declared) = run.steps.filter(|n| *n as usize != held) {
                return Err(bad(
                    *line_no,
                    format!("run {id} has {declared} steps but the file holds {held}: the file is incomplete"),
                ));
            }
        }
        let mut new_runs = Vec::new();
        for (id, (_, exported)) in runs {
            match (self.run(id)?, exported.steps) {
                (None, _) => new_runs.push(exported.run),
                // A complete copy repairs a run stored with fewer steps.
                (Some(_), Some(declared)) if self.step_count(id)? < declared as usize => {
                    counts.repaired_runs += 1;
                    new_runs.push(exported.run);
                }
                (Some(_), _) => counts.skipped_runs += 1,
            }
        }
        let new_ids: BTreeSet<RunId> = new_runs.iter().map(|r| r.id).collect();
        let new_steps: Vec<StepRecord> =
            steps.into_iter().map(|(_, s)| s).filter(|s| new_ids.contains(&s.run_id)).collect();
        counts.runs = new_runs.len();
        counts.steps = new_steps.len();
        self.put_raw(&new_runs, &new_steps)?;
        Ok(counts)
    }
}
