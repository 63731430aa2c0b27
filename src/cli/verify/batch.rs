//! A file of records verified as one batch: streamed from the file through the
//! library's `verify_batch` (`--concurrency` at a time, each row written as soon as
//! every row before it is, so a file of any length runs in bounded memory); resumable
//! after a crash from the runs the store holds.

use std::{
    cell::RefCell,
    collections::HashMap,
    io::Write,
    ops::ControlFlow,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde_json::{json, Value};

use recheck::{
    orchestrator::{verify_row, AskOptions, BatchRun, BatchTally, VerifyOutcome},
    trace::{run_kind, RunId, RunStatus, TraceStore},
};

use super::{page, records, VerifyArgs};

/// `recheck verify RECORDS.jsonl`.
pub(super) async fn batch(
    store: &TraceStore,
    model: Arc<dyn recheck::ChatModel>,
    args: &VerifyArgs,
    options: &AskOptions,
    file: &Path,
) -> anyhow::Result<()> {
    let records = records::Records::open(file, args.max_answer_chars, &args.fields)?;
    let lines = records::count_lines(file);
    let f = &records.format;
    eprintln!(
        "reading {} as {} records ({}, {}, {}): {} lines",
        file.display(),
        f.name,
        f.question,
        f.answer,
        f.contexts,
        lines.map_or_else(|| "?".into(), |n| n.to_string())
    );
    let (group, finished) = match &args.resume {
        None => {
            let input = json!({ "file": file.display().to_string(), "format": f.name, "lines": lines });
            let config = recheck::orchestrator::AskRecord::of(options, recheck::llm::identity(model.as_ref()));
            (store.create_run(run_kind::VERIFY_BATCH, input, json!(config), None).await?.id, HashMap::new())
        }
        Some(batch) => resumed(store, batch).await?,
    };
    let out_path = args.out.clone().unwrap_or_else(|| PathBuf::from("-"));
    let cannot = |e: std::io::Error| anyhow::anyhow!("cannot write {}: {e}", out_path.display());
    let mut out = recheck::trace::Output::create(&out_path).map_err(cannot)?;
    let mut tally = BatchTally::default();
    // The page holds every record, so only a batch asked for one keeps its rows.
    let mut kept = args.html.as_ref().map(|_| Vec::new());
    let with = Verifier { store, model, options, concurrency: args.concurrency };
    let emit = |row: Value| -> anyhow::Result<String> {
        writeln!(out, "{row}").map_err(cannot)?;
        tally.add(&row);
        if let Some(rows) = kept.as_mut() {
            rows.push(row);
        }
        Ok(tally.running())
    };
    verify_records(with, records, group, &finished, lines, emit, "verifying").await?;
    let summary = tally.summary();
    store.finish_run(group, RunStatus::Completed, Some(summary.clone()), None).await?;
    out.commit().map_err(cannot)?;
    if let (Some(html), Some(rows)) = (&args.html, &kept) {
        let page = page::render(rows, &summary, &group.to_string(), &file.display().to_string());
        recheck::trace::write_output(html, |w| w.write_all(page.as_bytes()))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", html.display()))?;
    }
    eprintln!(
        "{} records: {} checked, {} failed; verified share {}, mean faithfulness {} (batch run {})",
        tally.records,
        tally.records - tally.failed,
        tally.failed,
        shown_interval(&summary["verified_share"]),
        shown_interval(&summary["mean_faithfulness"]),
        group
    );
    if tally.failed > 0 && !args.skip_bad {
        let failed = tally.failed;
        anyhow::bail!("{failed} records could not be verified (see their error rows); --skip-bad exits 0");
    }
    Ok(())
}

/// What verifies a batch's records: where runs are stored, the model, the options, and
/// how many records at once.
pub(in crate::cli) struct Verifier<'a> {
    pub store: &'a TraceStore,
    pub model: Arc<dyn recheck::ChatModel>,
    pub options: &'a AskOptions,
    pub concurrency: usize,
}

/// Verify each record as slot `i` of group run `group` (the slots in `finished` are
/// read back from their stored runs instead) through [`recheck::orchestrator::verify_batch`],
/// handing `emit` each row in input order as soon as the rows before it are out (an
/// error row for a record that failed). `emit` returns the running mean faithfulness,
/// shown by a progress bar saying `what` over `total` records.
pub(in crate::cli) async fn verify_records(
    with: Verifier<'_>,
    records: impl Iterator<Item = anyhow::Result<records::Record>>,
    group: RunId,
    finished: &HashMap<usize, RunId>,
    total: Option<u64>,
    mut emit: impl FnMut(Value) -> anyhow::Result<String>,
    what: &str,
) -> anyhow::Result<()> {
    let Verifier { store, model, options, concurrency } = with;
    let bar = super::super::progress_bar(total.unwrap_or(0), what);
    // What the rows of records not verified here are, and the line and id of those
    // being verified (an error row names them): only slots not yet written are held.
    let rows: RefCell<HashMap<usize, Value>> = RefCell::default();
    let names: RefCell<HashMap<usize, (usize, String)>> = RefCell::default();
    let failure: RefCell<Option<anyhow::Error>> = RefCell::default();
    let given = records.enumerate().map_while(|(slot, record)| {
        let records::Record { line, id, given, .. } = match record {
            Ok(r) => r,
            Err(e) => {
                failure.replace(Some(e));
                return None;
            }
        };
        if let Some(run) = finished.get(&slot) {
            match stored_row(store, *run, slot, &id) {
                Ok(row) => rows.borrow_mut().insert(slot, row),
                Err(e) => {
                    failure.replace(Some(e));
                    return None;
                }
            };
            return Some(None);
        }
        match given {
            Err(why) => {
                rows.borrow_mut().insert(slot, json!({ "id": id, "line": line, "error": why }));
                Some(None)
            }
            Ok(given) => {
                names.borrow_mut().insert(slot, (line, id));
                Some(Some(given))
            }
        }
    });
    let each = |slot: usize, outcome: Option<recheck::Result<VerifyOutcome>>| {
        let row = match outcome {
            None => rows.borrow_mut().remove(&slot).unwrap_or(Value::Null),
            Some(result) => {
                let (line, id) = names.borrow_mut().remove(&slot).unwrap_or_default();
                match result {
                    Ok(o) => verify_row(&json!(o)),
                    Err(e) => json!({ "id": id, "line": line, "error": e.to_string() }),
                }
            }
        };
        match emit(row) {
            Ok(mean) => {
                bar.set_message(format!("{what} (faithfulness {mean})"));
                bar.inc(1);
                ControlFlow::Continue(())
            }
            Err(e) => {
                failure.replace(Some(e));
                ControlFlow::Break(())
            }
        }
    };
    let run = BatchRun { group: Some(group), concurrency };
    recheck::orchestrator::verify_batch(store, model, options, given, run, each).await?;
    bar.finish_and_clear();
    match failure.into_inner() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The row of a record the batch finished before it was resumed, from its run; its id
/// must be the file's at the same place.
fn stored_row(store: &TraceStore, run: RunId, slot: usize, id: &str) -> anyhow::Result<Value> {
    let stored = store.run(run)?.ok_or_else(|| anyhow::anyhow!("run {run} vanished"))?;
    let output = stored.output.unwrap_or_default();
    if output["id"].as_str() != Some(id) {
        super::super::usage!(
            "--resume: record {} of the batch has id {}, the file's has {id:?}; give the same file",
            slot + 1,
            output["id"]
        );
    }
    Ok(verify_row(&output))
}

/// Batch run `batch` reopened, with the runs of the records it finished by slot.
async fn resumed(store: &TraceStore, batch: &str) -> anyhow::Result<(RunId, HashMap<usize, RunId>)> {
    let id = store.resolve(batch)?;
    let run = store.run(id)?.ok_or_else(|| anyhow::anyhow!("run {id} vanished"))?;
    if run.kind != run_kind::VERIFY_BATCH {
        super::super::usage!("--resume {batch}: run {id} is a `{}` run, not a verify batch", run.kind);
    }
    let mut finished = HashMap::new();
    for (slot, member) in store.members(id)? {
        if store.run(member)?.is_some_and(|r| r.status == RunStatus::Completed) {
            finished.insert(slot as usize, member);
        }
    }
    store.reopen_run(id).await?;
    eprintln!("resuming batch {id}: {} records already verified", finished.len());
    Ok((id, finished))
}

/// An interval summary value as text: `p [low, high]`, or `undefined`.
pub(super) fn shown_interval(v: &Value) -> String {
    match (v["value"].as_f64(), v["low"].as_f64(), v["high"].as_f64()) {
        (Some(p), Some(lo), Some(hi)) => format!("{p:.3} [{lo:.3}, {hi:.3}]"),
        _ => "undefined".into(),
    }
}
