//! `ask`, `verify` and `verify_many`: the crate's entry points on the home's one store
//! handle, with settings read by the crate (the async twins call the first two).

use std::{ops::ControlFlow, path::PathBuf, sync::Arc};

use pyo3::prelude::*;
use serde_json::{json, Value};

use recheck::{
    orchestrator::{
        check_judge, records, verify_batch, verify_row, BatchRun, BatchTally, Context, GivenAnswer, Settings,
    },
    trace::{run_kind, RunStatus, TraceStore},
    AskOptions,
};

use crate::{
    errors::{class, json_text, json_value, message, to_py},
    model::{object, NativeModel},
    runtime::{block_on, detached, Cancel},
    store::{home, shared},
};

/// Which settings a call reads.
#[derive(Clone, Copy)]
enum Call {
    /// A question through a strategy, then verification.
    Ask,
    /// Verification of a given answer.
    Verify,
}

/// What a call needs before it runs: the store, the model and the checked options.
struct Prepared {
    store: TraceStore,
    model: Arc<dyn recheck::ChatModel>,
    options: AskOptions,
}

fn prepare(
    py: Python<'_>,
    model: &NativeModel,
    store: Option<PathBuf>,
    settings: &str,
    call: Call,
) -> PyResult<Prepared> {
    let settings = Settings::from_values(&object(settings)?).map_err(to_py)?;
    let home = home(store)?;
    detached(py, || {
        let open = |spec: &str| model.open_other(spec);
        let options = match call {
            Call::Ask => settings.ask_options(&open)?,
            Call::Verify => settings.verify_options(&open)?,
        };
        check_judge(&options, model.model.as_ref())?;
        let store = shared(&home)?;
        Ok(Prepared { store, model: model.model.clone(), options })
    })?
    .map_err(to_py)
}

/// Ask `question`; the outcome as JSON. `cancel`, set from another thread, stops it.
#[pyfunction]
#[pyo3(signature = (question, model, settings, store=None, cancel=None))]
pub fn ask(
    py: Python<'_>,
    question: String,
    model: PyRef<'_, NativeModel>,
    settings: &str,
    store: Option<PathBuf>,
    cancel: Option<PyRef<'_, Cancel>>,
) -> PyResult<String> {
    let Prepared { store, model, options } = prepare(py, &model, store, settings, Call::Ask)?;
    block_on(py, cancel.as_deref(), async move {
        let outcome = recheck::ask(&store, model, &question, &options).await.map_err(to_py)?;
        json_text(&outcome)
    })
}

/// A given answer from the Python layer's arguments: contexts are `(id, text)`.
fn given(answer: String, question: Option<String>, contexts: Vec<(Option<String>, String)>) -> GivenAnswer {
    let contexts = contexts.into_iter().map(|(id, text)| Context { id, text }).collect();
    GivenAnswer { id: None, question, answer, contexts }
}

/// Verify one given answer; its row (as `recheck verify --json` prints it) as JSON.
/// `cancel`, set from another thread, stops it.
#[pyfunction]
#[pyo3(signature = (answer, question, contexts, model, settings, store=None, cancel=None))]
#[allow(clippy::too_many_arguments)]
pub fn verify(
    py: Python<'_>,
    answer: String,
    question: Option<String>,
    contexts: Vec<(Option<String>, String)>,
    model: PyRef<'_, NativeModel>,
    settings: &str,
    store: Option<PathBuf>,
    cancel: Option<PyRef<'_, Cancel>>,
) -> PyResult<String> {
    let Prepared { store, model, options } = prepare(py, &model, store, settings, Call::Verify)?;
    let given = given(answer, question, contexts);
    block_on(py, cancel.as_deref(), async move {
        let outcome = recheck::verify(&store, model, &given, &options).await.map_err(to_py)?;
        json_text(&verify_row(&json_value(&outcome)?))
    })
}

/// Verify many records (each a JSON object in recheck's, RAGAS's or DeepEval's field
/// names, or `fields` NAME=PATH over them) as one `verify-batch` run, `concurrency` at
/// a time, as `recheck verify FILE` does. JSON `{"batch", "rows", "summary"}`: a row a
/// record in input order, an error row (`error`, `error_class`) for a record that failed.
#[pyfunction]
#[pyo3(signature = (records, model, settings, store=None, concurrency=4, max_answer_chars=20_000, fields=Vec::new()))]
#[allow(clippy::too_many_arguments)]
pub fn verify_many(
    py: Python<'_>,
    records: Vec<String>,
    model: PyRef<'_, NativeModel>,
    settings: &str,
    store: Option<PathBuf>,
    concurrency: usize,
    max_answer_chars: usize,
    fields: Vec<String>,
) -> PyResult<String> {
    recheck::check_in_flight("concurrency", concurrency).map_err(to_py)?;
    let fields = fields
        .iter()
        .map(|f| records::parse_field(f).map_err(|e| crate::errors::usage(format!("fields: {e}"))))
        .collect::<PyResult<Vec<_>>>()?;
    let values = records.iter().map(|r| serde_json::from_str::<Value>(r).unwrap_or(Value::Null)).collect::<Vec<_>>();
    let Prepared { store, model, options } = prepare(py, &model, store, settings, Call::Verify)?;
    let format = records::detect(values.first().unwrap_or(&Value::Null), &fields);
    // Records that cannot be verified are error rows in their place.
    let mut rows: Vec<Option<Value>> = vec![None; values.len()];
    let mut ids = Vec::with_capacity(values.len());
    let mut given = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        let id = records::record_id(value, &format, i + 1);
        match records::given(value, &format, &format!("record {}", i + 1), max_answer_chars) {
            Ok(g) => given.push(Some(GivenAnswer { id: Some(id.clone()), ..g })),
            Err(why) => {
                rows[i] = Some(json!({ "id": id, "index": i, "error": why, "error_class": "UsageError" }));
                given.push(None);
            }
        }
        ids.push(id);
    }
    block_on(py, None, async move {
        let input = json!({ "records": values.len(), "format": format.name, "from": "python" });
        let config =
            json_value(&recheck::orchestrator::AskRecord::of(&options, recheck::llm::identity(model.as_ref())))?;
        let group =
            store.create_run(run_kind::VERIFY_BATCH, input, config, None).await.map_err(|e| to_py(e.into()))?.id;
        let mut tally = BatchTally::default();
        let each = |i: usize, outcome: Option<recheck::Result<recheck::VerifyOutcome>>| {
            let row = match outcome {
                None => rows[i].take().unwrap_or(Value::Null),
                Some(Ok(o)) => match json_value(&o) {
                    Ok(v) => verify_row(&v),
                    Err(e) => json!({ "id": ids[i], "index": i, "error": e.to_string(), "error_class": "Error" }),
                },
                Some(Err(e)) => json!({ "id": ids[i], "index": i, "error": message(&e), "error_class": class(&e) }),
            };
            tally.add(&row);
            rows[i] = Some(row);
            ControlFlow::Continue(())
        };
        let run = BatchRun { group: Some(group), concurrency };
        verify_batch(&store, model, &options, given, run, each).await.map_err(to_py)?;
        let summary = tally.summary();
        store
            .finish_run(group, RunStatus::Completed, Some(summary.clone()), None)
            .await
            .map_err(|e| to_py(e.into()))?;
        let rows: Vec<Value> = rows.into_iter().map(Option::unwrap_or_default).collect();
        json_text(&json!({ "batch": group.to_string(), "rows": rows, "summary": summary }))
    })
}
